"""Grafana annotations through grafana-client's async API: points for ``annotate`` steps,
regions for alerts and runs (created when they open, ended when they resolve).

Never blocks the caller: every call starts a background task and returns; at most
``max_in_flight`` calls run at once (beyond that, annotations are dropped and the caller
told), each bounded by ``timeout``. Failures go to ``on_error`` (the host audits and
counts them); the token is never part of a message. An answer is read up to
``MAX_ANSWER_BYTES`` (decoded), and a redirect is not followed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast
from urllib.parse import urlparse

import niquests
from grafana_client.api import AsyncGrafanaApi
from niquests.packages.urllib3.contrib.resolver._async.system import SystemResolver

from playbooks.executors.resolve import (
    RESOLVE_SECONDS,
    BoundedResolution,
    Resolve,
    ResolveTimeoutError,
)

# Characters of a failed call's exception text kept in its error: grafana-client puts the
# whole answer's body in it, and a 10 MB error page became a 10 MB audit record, which
# Kafka refused (the failure went unaudited, with a traceback).
MAX_ERROR_TEXT = 300


log = logging.getLogger(__name__)

# Bytes of an answer read at most, after decoding (Grafana's answers to our two calls are
# a few hundred): grafana-client reads an answer whole, so a Grafana (or a proxy in front
# of it) sending an endless 200 put ~400 MB into the worker in a 3 s timeout, per call
# in flight (50), and a gzip bomb more.
MAX_ANSWER_BYTES = 1 << 20


class BoundedSession(niquests.AsyncSession):
    """niquests' async session as grafana-client uses it (``AsyncGrafanaClient.s``,
    grafana-client 5.1.4, niquests 3.21), but reading each answer as a stream up to
    ``MAX_ANSWER_BYTES`` (``niquests.HTTPError`` past it, which grafana-client reports as
    a ``GrafanaException``) and never following a redirect (a POST answered 302 was sent
    again as a GET, up to 30 times)."""

    async def send(  # type: ignore[override]
        self, request: niquests.PreparedRequest, **kwargs: Any
    ) -> niquests.Response:
        kwargs["stream"], kwargs["allow_redirects"] = True, False
        response = await super().send(request, **kwargs)
        try:
            if 300 <= response.status_code < 400:
                where = response.headers.get("Location", "")[:200]
                raise niquests.HTTPError(
                    f"HTTP {response.status_code}: a redirect to {where!r}, not followed"
                )
            body = bytearray()
            chunks = await response.iter_content(1 << 16)
            async for chunk in chunks:
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise niquests.HTTPError(
                        f"HTTP {response.status_code}: an answer longer than "
                        f"{MAX_ANSWER_BYTES:,} bytes, not read further"
                    )
        finally:
            if not response._content_consumed:
                await response.close()
        # What niquests does once it has read a whole answer (``_swap_context``): the
        # plain Response grafana-client reads synchronously (``r.json()``).
        response._content = bytes(body)
        response.__class__ = niquests.Response
        return cast(niquests.Response, response)


class BoundedSystemResolver(SystemResolver):  # type: ignore[misc]
    """urllib3-future's system resolver (``contrib.resolver._async.system``, niquests
    3.21 / urllib3-future 2.25), which resolves with ``loop.getaddrinfo`` on the loop's
    default executor, resolving on ``BoundedResolution``'s own threads instead, within
    its bound: a Grafana host whose resolution hangs took a default-executor thread per
    annotation in flight (the annotation's 5 s timeout ended the await, not the thread)
    and starved aiokafka's and aiohttp's name resolution."""

    def __init__(self, resolution: BoundedResolution) -> None:
        super().__init__()
        self.resolution = resolution

    def recycle(self) -> BoundedSystemResolver:
        return self

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: str | int | None,
        family: Any,
        type: Any,
        proto: int = 0,
        flags: int = 0,
        *,
        quic_upgrade_via_dns_rr: bool = False,
    ) -> list[Any]:
        return await self.resolution.getaddrinfo(host, port, family, type, proto, flags)


def _failure(where: str, exc: BaseException) -> str:
    """``<grafana>: <exception type>: <its text>``, the text cut to ``MAX_ERROR_TEXT``
    characters with its length."""
    cause: BaseException | None = exc
    while cause is not None:  # niquests wraps it twice, in 300 characters of its own
        if isinstance(cause, ResolveTimeoutError):
            return f"{where}: {cause}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if len(text) > MAX_ERROR_TEXT:
        text = f"{text[:MAX_ERROR_TEXT]}... ({len(text):,} characters, cut)"
    return f"{where}: {type(exc).__name__}: {text}"


class GrafanaAnnotator:
    """Annotations to the Grafana at ``url`` with ``token``; see the module. ``timeout``
    (seconds) bounds each call, its name resolution half of it at most (on threads of
    its own, one per name at a time, ``resolve.BoundedResolution``; ``resolve`` is the
    blocking resolver,
    ``socket.getaddrinfo``), so a failure says which part hung."""

    def __init__(
        self,
        url: str,
        token: str,
        on_error: Callable[[str, str], Awaitable[None]],
        timeout: float = 5.0,
        max_in_flight: int = 50,
        resolve: Resolve | None = None,
    ) -> None:
        parsed = urlparse(url)
        self.api = AsyncGrafanaApi.from_url(url, credential=token, timeout=timeout)
        client = self.api.client
        if not isinstance(getattr(client, "s", None), niquests.AsyncSession):
            # A grafana-client upgrade moved its session: bounded reads would be lost.
            raise TypeError("grafana-client's AsyncGrafanaClient.s is no niquests.AsyncSession")
        self.resolution = BoundedResolution(
            resolve or socket.getaddrinfo,
            timeout=min(RESOLVE_SECONDS, timeout / 2),
            name="grafana-dns",
        )
        session = BoundedSession(
            pool_maxsize=max_in_flight, resolver=BoundedSystemResolver(self.resolution)
        )
        session.headers.update(client.s.headers)
        client.s = session
        self.where = f"{parsed.scheme}://{parsed.netloc}"
        self.on_error = on_error
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        # Region annotations opened here, by our key (alert or run id) -> Grafana's id.
        self._regions: OrderedDict[str, int] = OrderedDict()
        self._regions_limit = 10_000

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, annotation_id: str, text: str, tags: list[str], at_ms: int) -> bool:
        """A point annotation (an ``annotate`` step)."""
        return self._spawn(self._post(annotation_id, text, tags, at_ms))

    def open_region(self, key: str, text: str, tags: list[str], at_ms: int) -> bool:
        """Start a region annotation (an alert or a run opened); ``close_region`` ends it."""
        return self._spawn(self._post(key, text, tags, at_ms, remember=True))

    def close_region(
        self, key: str, text: str, tags: list[str], start_ms: int, end_ms: int
    ) -> bool:
        """End the region opened for ``key``; if it is unknown here (opened before a
        restart), create the whole region at once."""
        return self._spawn(self._close(key, text, tags, start_ms, end_ms))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> bool:
        if len(self._tasks) >= self.max_in_flight:
            coro.close()
            return False
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _post(
        self,
        key: str,
        text: str,
        tags: list[str],
        at_ms: int,
        remember: bool = False,
        end_ms: int | None = None,
    ) -> None:
        try:
            reply = await asyncio.wait_for(
                self.api.annotations.add_annotation(
                    time_from=at_ms, time_to=end_ms, tags=tags, text=text
                ),
                timeout=self.timeout,
            )
            if remember and isinstance(reply, dict) and "id" in reply:
                self._regions[key] = int(reply["id"])
                while len(self._regions) > self._regions_limit:
                    self._regions.popitem(last=False)
        except Exception as exc:  # any failure of a remote call is reported, never raised
            await self._report(key, _failure(self.where, exc))

    async def _close(
        self, key: str, text: str, tags: list[str], start_ms: int, end_ms: int
    ) -> None:
        grafana_id = self._regions.pop(key, None)
        if grafana_id is None:
            await self._post(key, text, tags, start_ms, end_ms=end_ms)
            return
        try:
            await asyncio.wait_for(
                # grafana-client sends every field; give them all, or Grafana's PATCH
                # would clear the tags.
                self.api.annotations.partial_update_annotation(
                    grafana_id, time_from=start_ms, time_to=end_ms, tags=tags, text=text
                ),
                timeout=self.timeout,
            )
        except Exception as exc:
            await self._report(key, _failure(self.where, exc))

    async def _report(self, key: str, failure: str) -> None:
        """``on_error``, and a WARNING when that fails too (its audit record's send):
        before, the failure was lost in a task exception nobody retrieved."""
        try:
            await self.on_error(key, failure)
        except Exception as exc:
            log.warning(
                "citybrain: annotation %s failed (%s), and recording that failed: %s: %s",
                key,
                failure,
                type(exc).__name__,
                str(exc)[:200],
            )

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.resolution.shutdown()
