"""The worker's web server (faust's aiohttp driver: the operator API and /metrics) bounded
against slow and greedy clients, written against faust-streaming 0.15.3 and aiohttp
3.14.5 exactly. Shaped like an upstream pull request: ``install()`` swaps the
``AppRunner`` faust builds for one whose server makes ``BoundedRequestHandler`` (a
subclass of aiohttp's ``RequestHandler``) and nothing else.

1. **A slow client is cut off** (``Bounds.timeout``, ``CITYBRAIN_HTTP_TIMEOUT``, 30 s).
   faust's ``AppRunner`` passes no ``keepalive_timeout``, so aiohttp's default of 3,630 s
   held a connection that sent nothing, or its request line and headers a byte at a time
   (slowloris), or idled after an answer, for an hour. aiohttp 3.14.5 arms its keep-alive
   timer at the connection's start and again after each answer, and closes a connection
   still waiting for a request when it fires (bytes arriving do not move it): with the
   timeout as ``keepalive_timeout`` a request's line and headers must arrive within it.
   One cut in the middle of its head is answered ``408`` in JSON first
   (``_process_keepalive``); an idle connection is closed silently, as aiohttp does. A
   client that reads nothing of its answer for as long is cut off too (``pause_writing``,
   which aiohttp leaves to wait for ever). The body's own bound is the API's
   (``streams.api.read_body``).
2. **At most ``Bounds.max_connections`` at once** (``CITYBRAIN_HTTP_MAX_CONNECTIONS``, 256).
   aiohttp takes every connection it is offered: thousands of them exhaust the process's
   file descriptors, and the worker's event loop, which also runs the streams, spends
   itself on them. One more takes the place of the connection waiting longest for a
   request's head, if it has waited ``Bounds.evict_after`` (1 s) or more
   (``BoundedRequestHandler.make_room``: closed, a part-sent head answered ``408``
   first; said in one WARNING a minute, ``streams.bounds.EvictionLog``); else, every
   connection being in a request, it is answered ``503`` in JSON (``Retry-After: 1``)
   before its request is read (``Refusal``), never reaching aiohttp. Before t191 one
   client holding the cap's connections and sending nothing had every other refused.
3. **A request line or header past aiohttp's limits is a JSON 400 naming it**
   (``handle_error``). aiohttp answered a plain-text 400 quoting a Python ``bytearray(...)``
   of the line, and logged a traceback per request; there is no public hook for the
   errors of its parser. The head's bytes are followed as they arrive (``HeadTracker``,
   streams/bounds.py) so the answer names the line. Any other request aiohttp cannot read
   is a JSON 400 too, and its own 500 and 504 are JSON.

4. **A body that cannot be read closes its connection once answered**
   (``_handle_request``). aiohttp decodes a gzip or deflate body as it comes; one that
   is not what its ``Content-Encoding`` says fails the view's read (the API answers 400,
   streams/api.py ``read_body``), and ``start`` then read the rest of it to keep the
   connection (lingering), met the same error and logged "Unhandled exception" with a
   traceback. Now the connection is closed after the answer instead.

Every refusal is counted by its reason in ``citybrain_api_refused_total`` (busy, timeout,
too_long, bad_request) through the ``refused`` callback.

aiohttp and faust internals relied on (``tests/unit/streams/test_web_server.py`` fails
loudly if any of them changes; each function's source hash is pinned below): faust's
``Web.__init__`` (builds ``self._runner = AppRunner(self.web_app, access_log=None)``),
``Web.start_server`` and ``Web._new_transport_tcp`` (``self._runner`` set up, then a
``TCPSite`` on it); aiohttp's ``AppRunner._make_server`` (its ``Server`` is rebuilt from
``request_handler``, ``request_factory``, ``handler_cancellation``, ``_loop`` and
``_kwargs``), ``Server.__call__`` (replaced: the same ``RequestHandler(self,
loop=self._loop, **self._kwargs)``), and of ``RequestHandler``: ``connection_made`` (arms
the keep-alive timer at the start), ``start`` (re-arms it after each answer),
``_process_keepalive`` (closes a connection whose ``_waiter`` is pending once
``_next_keepalive_close_time`` has passed; ``_make_room`` reads ``_waiter``,
``_force_close``, ``_request_count`` and ``_current_request`` as it does),
``data_received`` (a parser error becomes an ``_ErrInfo`` message; ``_request_count``
counts messages), ``_handle_request``
(``_request_in_progress``), ``handle_error`` (replaced) and ``BaseProtocol.pause_writing``
/ ``resume_writing``; the parser raises ``LineTooLong`` for a long line and
``BadHttpMessage("Too many headers received")``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import faust
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from faust.web.drivers.aiohttp import Web

from streams.bounds import (
    REFUSAL_LINGER,
    Bounds,
    EvictionLog,
    HeadTracker,
    answer,
    busy_answer,
    evicted_text,
    eviction_line,
    timeout_text,
)

log = logging.getLogger(__name__)

FAUST_VERSION = "0.15.3"
AIOHTTP_VERSION = "3.14.5"
# sha256 of inspect.getsource() of each function relied on, by its class, in those versions
# (faust's Web; aiohttp's AppRunner, Server, RequestHandler and BaseProtocol).
PINNED_SOURCES = {
    "Web": {
        "__init__": "52b00c1bd653c82d64519cfc55285b6ca5973a929129d1809c4aff79e262fc2f",
        "start_server": "b0c4f10491828520ad69fdc1b3716cfc7b807d213221ea6fd1082985eb6d2f83",
        "_new_transport_tcp": "3f9463d869f309eca590868c95441621aa1566545236e18149d7c5e70498a92f",
    },
    "AppRunner": {
        "_make_server": "2d5358865abd00e34faa0ba952f8be77a51dfbb05c4175e6aabdb8c296228308",
    },
    "Server": {
        "__init__": "ceb06418afb91a22338248eb671a6d54c269658731c60c07ac15e1f87b2af5ce",
        "__call__": "c5700549e688b1642127dabf810686e87af8acb2be722a02847646ffd1b31401",
    },
    "RequestHandler": {
        "connection_made": "44d50b5763b2c7e481c84b4abda1d4003325bd30938e68147644b9b02549e334",
        "start": "2e565fd40c8e04fb3afb481d5ba52691a61d28396573b4b8a4cf3b168782288e",
        "_process_keepalive": "b472e0fb8445ce423486a2dbe04ef553507bb47c5e7e6fa7e4f2e2ac20090674",
        "data_received": "1ee57ebe052e6c80ced26c96e4ccb1223172e1d55afba460353c5e414914d3f6",
        "_handle_request": "a88a34ee65a2714c6b392d23963ba9a80e7d50d4889905cd949a94d479102d8f",
        "handle_error": "94962ffef500c17222910ffeb4dc46ab273ed0bce8622472138f316d4a5cb1f6",
    },
    "BaseProtocol": {
        "pause_writing": "e727e6c57a46116eda33c612e65549d7276ec497ab295d6c1b488a5212790cdd",
        "resume_writing": "7db135e0841e042548bfa7b1f83ea6b748b74725fed6676453a35afc5b1551c0",
    },
}
TOO_MANY_HEADERS = "Too many headers received"


def pinned_classes() -> dict[str, type]:
    """The classes of ``PINNED_SOURCES`` by name (as installed, never our subclasses)."""
    return {
        "Web": Web,
        "AppRunner": web.AppRunner,
        "Server": web.Server,
        "RequestHandler": RequestHandler,
        "BaseProtocol": BaseProtocol,
    }


def source_hash(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def check_versions() -> None:
    """``RuntimeError`` unless faust and aiohttp are the versions this was written for."""
    found = (faust.__version__, aiohttp.__version__)
    if found != (FAUST_VERSION, AIOHTTP_VERSION):
        raise RuntimeError(
            f"streams/web_server.py was written for faust-streaming {FAUST_VERSION} and "
            f"aiohttp {AIOHTTP_VERSION}, found {found[0]} and {found[1]}: re-read the "
            "internals its docstring names before upgrading"
        )


Refused = Callable[[str], None]


def install(app: faust.App, bounds: Bounds, refused: Refused) -> None:
    """Bound ``app``'s web server (before the worker starts): its ``AppRunner`` becomes a
    ``BoundedAppRunner``. ``refused(reason)`` is called for each refusal (a reason of
    ``streams.bounds.REFUSAL_REASONS``). Raises ``RuntimeError`` for other versions of
    faust or aiohttp."""
    check_versions()
    driver = cast(Web, app.web)
    driver._runner = BoundedAppRunner(driver.web_app, bounds, refused)


class BoundedAppRunner(web.AppRunner):
    """faust's ``AppRunner(web_app, access_log=None)`` with the bounds as aiohttp's own
    handler settings and a ``BoundedServer``."""

    def __init__(self, web_app: web.Application, bounds: Bounds, refused: Refused) -> None:
        super().__init__(
            web_app,
            access_log=None,
            keepalive_timeout=bounds.timeout,
            max_line_size=bounds.max_line_size,
            max_field_size=bounds.max_field_size,
            max_headers=bounds.max_headers,
            # An unread body is read and dropped this long after the answer (aiohttp: 10 s).
            lingering_time=min(10.0, bounds.timeout),
        )
        self.bounds = bounds
        self.refused = refused

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return BoundedServer(
            made.request_handler,
            bounds=self.bounds,
            refused=self.refused,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


class BoundedServer(web.Server):
    """aiohttp's ``Server`` (the protocol factory of the listening socket) that makes a
    ``BoundedRequestHandler`` per connection, or a ``Refusal`` past the connection cap."""

    def __init__(self, handler: Any, *, bounds: Bounds, refused: Refused, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.bounds = bounds
        self.refused = refused
        # Connections from the factory's call to their end (connection_made comes a
        # loop iteration later: counting there let a burst past the cap). Weak: a handler
        # whose transport asyncio then failed to build never sees connection_lost, and
        # leaves the set when collected instead of holding its place for ever.
        self._live: weakref.WeakSet[BoundedRequestHandler] = weakref.WeakSet()
        self._busy = busy_answer("the worker", bounds.max_connections)
        self._evictions = EvictionLog()
        # The connections one scan found may make room, best last (``room_rank``,
        # handler), taken one per connection past the cap; and the
        # loop time before which a scan finds none (the soonest any connection's wait
        # reaches evict_after): a flood of connections past the cap costs the loop,
        # which also runs the streams, one scan of the connections per evict_after,
        # not one per connection (t191).
        self._room: list[tuple[tuple[int, float], BoundedRequestHandler]] = []
        self._no_room_until = 0.0

    @property
    def open(self) -> int:
        """Connections counted against the cap."""
        return len(self._live)

    def __call__(self) -> Any:
        if self.open >= self.bounds.max_connections and not self._make_room():
            self.refused("busy")
            return Refusal(self._loop, self._busy)
        handler = BoundedRequestHandler(self, loop=self._loop, **self._kwargs)
        self._live.add(handler)
        return handler

    def _make_room(self) -> bool:
        """Close the connection waiting longest for a request's head, when it has waited
        ``evict_after`` seconds or more (its place is free at once); False when none
        has (every connection is in a request, or has just begun). One that never sent
        a whole request goes before one idling after an answer (a client keeping its
        connection for its next request)."""
        now = self._loop.time()
        victim = self._next_room()
        if victim is None and now >= self._no_room_until:
            self._scan(now)
            victim = self._next_room()
        if victim is None:
            return False
        handler, (kind, since) = victim
        # One reading a body: its view then meets the connection closed (the client gone).
        peer = handler.make_room(now - since, body=kind == 2)
        told = self._evictions.evicted(now)
        if told:
            limit = self.bounds.max_connections
            log.warning(
                "citybrain: web: %s", eviction_line("the worker", limit, told, peer, now - since)
            )
        return True

    def _next_room(self) -> tuple[BoundedRequestHandler, tuple[int, float]] | None:
        """The best connection the last scan found that still waits as it did then (one
        that began a request since, or answered one, is passed over), and its rank."""
        while self._room:
            rank, handler = self._room.pop()
            if handler.room_rank() == rank:
                return handler, rank
        return None

    def _scan(self, now: float) -> None:
        """Find the connections that may make room now, best last, and the time before
        which no other can (a connection waiting, or one in a request or made since, can
        be one only ``evict_after`` after its wait began, which is now at the soonest)."""
        latest = now - self.bounds.evict_after
        found = []
        soonest = now
        for handler in self._live:
            rank = handler.room_rank()
            if rank is None:
                continue
            if rank[1] <= latest:
                found.append((rank, handler))
            else:
                soonest = min(soonest, rank[1])
        found.sort(key=lambda pair: pair[0], reverse=True)
        self._room = found
        self._no_room_until = soonest + self.bounds.evict_after

    def closed(self, handler: BoundedRequestHandler) -> None:
        self._live.discard(handler)


class Refusal(asyncio.Protocol):
    """A connection past the cap: ``answer`` is written, then the connection is held
    ``REFUSAL_LINGER`` seconds at most for the client to read it and close, dropping
    what it sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, answer: bytes) -> None:
        self._loop = loop
        self._answer = answer
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = cast(asyncio.Transport, transport)
        sock.write(self._answer)
        if sock.can_write_eof():
            sock.write_eof()
        self._timer = self._loop.call_later(REFUSAL_LINGER, sock.abort)

    def data_received(self, data: bytes) -> None:
        pass  # read and dropped, so the close is no reset that could lose the answer

    def eof_received(self) -> bool:
        return False  # the transport closes

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class BoundedRequestHandler(RequestHandler):
    """aiohttp's handler of one connection, with the answers of changes 1 and 3."""

    def __init__(self, manager: BoundedServer, **kwargs: Any) -> None:
        self._server = manager
        self._bounds = manager.bounds
        self._refused = manager.refused
        self._head = HeadTracker()
        self._stall: asyncio.TimerHandle | None = None
        self._counted = True
        super().__init__(manager, **kwargs)
        # loop.time() since when a request's head is awaited (the connection's start,
        # then each answer's end): ``waiting_since``; and since when the request being
        # handled has had its headers, when it has a body (``room_rank``).
        self._awaiting = self._loop.time()
        self._body_since: float | None = None

    def waiting_since(self) -> float | None:
        """loop.time() since when this connection has waited for a request's line and
        headers, or None when it is in a request (or not yet made, or closing). Waiting
        is ``start`` awaiting its ``_waiter`` (no request read whole), as
        ``_process_keepalive`` reads it."""
        waiter = self._waiter
        if self.transport is None or self._force_close or waiter is None or waiter.done():
            return None
        return self._awaiting

    def room_rank(self) -> tuple[int, float] | None:
        """How this connection may make room, and since when (loop.time()): 0 waiting
        for its first request's head, 1 for a later one (kept after an answer), 2 in a
        request whose body has not all come (its view reading it); None otherwise (a
        request's body read, its answer being made)."""
        since = self.waiting_since()
        if since is not None:
            return (1 if self._request_count > 0 else 0, since)
        request = self._current_request
        body = self._body_since
        if body is None or request is None or self.transport is None or self._force_close:
            return None
        return None if request.content.is_eof() else (2, body)

    def make_room(self, waited: float, body: bool = False) -> str:
        """Close this connection, waiting ``waited`` seconds for a request's head, for
        a new one: its place is given up at once; a part-sent head is answered 408 in
        JSON first, a connection that sent nothing (or idles after an answer) is closed
        as aiohttp closes an idle one. Counted as a ``timeout`` refusal, as at the
        timeout (one idling after an answer is not). Returns the peer's address, for the
        log."""
        if self._counted:
            self._counted = False
            self._server.closed(self)
        if body or self._head.size or self._request_count == 0:
            self._refused("timeout")  # as at the timeout: an idle keep-alive is not
        transport = self.transport
        peer = "an unknown address"
        if transport is not None:
            name = transport.get_extra_info("peername")
            if isinstance(name, tuple) and name:
                peer = str(name[0])
            if body or self._head.size:
                limit = self._bounds.max_connections
                text = evicted_text("the worker", limit, waited, body=body)
                transport.write(answer(408, text, "timeout"))
        self.force_close()
        if transport is not None:
            transport.close()
        return peer

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._server.closed(self)
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes that come while no request is being handled start (or continue) the
        # next request's head; a body's bytes come while its request is handled.
        if data and not self._request_in_progress and not self._messages:
            self._head.feed(data)
        before = self._request_count
        super().data_received(data)
        if self._request_count != before and not self._parse_failed():
            self._head.reset()

    def _parse_failed(self) -> bool:
        return bool(self._messages) and isinstance(self._messages[-1][0], _ErrInfo)

    async def _handle_request(self, request: BaseRequest, *args: Any, **kwargs: Any) -> Any:
        if request.body_exists:
            self._body_since = self._loop.time()
        try:
            return await super()._handle_request(request, *args, **kwargs)
        finally:
            self._head.reset()  # answered: what comes now is the next request's
            self._awaiting = self._loop.time()
            self._body_since = None
            if isinstance(request.content.exception(), web.RequestPayloadError):
                # Change 4: a body aiohttp could not read (not the gzip its
                # Content-Encoding said) is answered by the API (400), then the connection
                # closes: ``start``'s lingering read of its rest raised the same error
                # again, logged as "Unhandled exception" with a traceback (t117). The
                # answer is written by now; closing flushes it first.
                self.force_close()

    def _process_keepalive(self) -> None:
        waiter = self._waiter
        if (
            not self._force_close
            and self._keepalive
            and self.transport is not None
            and waiter is not None
            and not waiter.done()
            and self._loop.time() >= self._next_keepalive_close_time
        ):
            # aiohttp closes it now: said and counted when a request was under way or
            # none ever came (an idle keep-alive connection closes quietly).
            if self._head.size:
                said = answer(408, timeout_text(self._bounds.timeout), "timeout")
                self.transport.write(said)
            if self._head.size or self._request_count == 0:
                self._refused("timeout")
        super()._process_keepalive()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._stall = self._loop.call_later(self._bounds.timeout, self._stalled)

    def resume_writing(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        super().resume_writing()

    def _stalled(self) -> None:
        """The client has read nothing of its answer for ``timeout`` seconds."""
        self._stall = None
        if self.transport is not None:
            self._refused("timeout")
            log.debug("web: a client read nothing of its answer in %gs", self._bounds.timeout)
            self.transport.abort()
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """aiohttp's own error answers as the API's JSON ``{"error", "reason"}``: a
        request its parser refused (400, naming the line that was too long), a view's
        unexpected exception (500, logged with its traceback here, never sent; a
        connection lost while its body was read is the client gone, logged at DEBUG) and
        a view's timeout (504). Closes the connection, as aiohttp's does."""
        if request.writer.output_size > 0:  # part of an answer went out: none can follow
            raise ConnectionError("an answer was partly sent, no error answer can follow")
        if isinstance(exc, HttpProcessingError):
            reason, text = self._unreadable(exc)
            self._refused(reason)
            log.debug("web: refused a request from %s: %s", request.remote, text)
        elif status == 504:
            reason, text = "timeout", "the worker did not answer in time; retry"
        elif isinstance(exc, ConnectionError) and (
            self.transport is None or self.transport.is_closing()
        ):
            # The client went away while its body was read (it closed or reset the
            # connection part-way, or its place was taken): no fault of the worker's,
            # and nobody to answer. Before, an ERROR with a traceback per such request:
            # a client dropping its POSTs part-way filled the worker's log (t191).
            log.debug("web: %s %s: the client went away: %r", request.method, request.path, exc)
            reason, text = "bad_request", "the connection closed before the body was read"
        else:
            log.error("web: error handling %s %s", request.method, request.path, exc_info=exc)
            reason = "internal"
            text = "the worker failed to answer this request (its log says why); retry"
        resp = web.json_response({"error": text, "reason": reason}, status=status)
        resp.force_close()
        return resp

    def _unreadable(self, exc: HttpProcessingError) -> tuple[str, str]:
        """The reason and text of a request aiohttp's parser refused."""
        if isinstance(exc, LineTooLong):
            return "too_long", self._head.too_long(
                self._bounds.max_line_size, self._bounds.max_field_size
            )
        said = str(exc.message or "").strip()
        if isinstance(exc, ContentEncodingError):
            # aiohttp refuses a coding it has no decoder for (br, zstd) as it parses: its
            # words, "... Please install `Brotli`", told the client to mend the server.
            coding = said.splitlines()[0].partition("content-encoding:")[2].split(". ")[0].strip()
            return "bad_request", (
                f"the body's Content-Encoding is {coding[:80] or 'unknown'}, which the worker "
                "does not read: send JSON uncompressed or in one gzip or deflate coding"
            )
        if said.startswith(TOO_MANY_HEADERS):
            return "too_long", f"the request has more than {self._bounds.max_headers} headers"
        first = said.splitlines()[0].rstrip(":") if said else "unreadable"
        return "bad_request", f"the request is not HTTP/1.1 the worker can read: {first[:200]}"
