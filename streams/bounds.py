"""Bounds on an HTTP server's clients, shared by the worker's web server
(streams/web_server.py, aiohttp) and the ingests' servers (citybrain/ingest/bounded.py,
the standard library's): how long a client may take, how many connections are served at
once, and the JSON answers of a refusal. Pure: no sockets, no event loop.

A request's line and headers must arrive within ``timeout`` seconds of the connection's
start (or of the end of the answer before it, on a keep-alive connection), and an idle
keep-alive connection is closed after it; a client that reads no part of its answer for
that long is cut off too. At most ``max_connections`` connections are served at once. One
more takes the place of the connection waiting longest for a request's line and headers,
when it has waited ``Bounds.evict_after`` seconds or more (one that sent nothing or part
of a head, then one idling after an answer, then a request whose body has not all
come: it is closed, a part-sent head or body answered 408 first,
``evicted_text``); with none such (every connection in a request), it is answered 503
before its request is read. Before t191 every connection past the cap was refused: one
client holding the cap's connections and sending nothing (slowloris) had every other
client refused 503, the operator API, the ingests and Prometheus' scrapes of /metrics,
for as long as it renewed them. A request line or header past the server's limits is a
JSON 400 naming it. Each refusal is counted by its reason (``REFUSAL_REASONS``,
streams/metrics.py ``citybrain_api_refused_total``; a connection closed to make room
as ``timeout``, as any that sent no request in time).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import orjson

# The reason label of each refusal (citybrain_api_refused_total{reason}).
REFUSAL_REASONS = ("busy", "timeout", "too_long", "bad_request")

TIMEOUT_SETTING = "CITYBRAIN_HTTP_TIMEOUT"
CONNECTIONS_SETTING = "CITYBRAIN_HTTP_MAX_CONNECTIONS"
# A refused connection's answer is sent, then the connection is held at most this long
# (seconds) for the client to read it and close, reading and dropping what it sends:
# closed at once with its request unread, the kernel resets it and the client may lose
# the answer.
REFUSAL_LINGER = 1.0
# The first bytes of a line kept to name it (a header's name), and the most lines of one
# request head remembered for that (past the server's header limit it refuses anyway).
KEPT_PREFIX = 96
KEPT_LINES = 256
# Seconds a connection has waited for a request's line and headers (or its body) before
# a new connection past the cap may take its place: a client sends its request as it
# connects, in milliseconds; one that has not within a second is the first to go when
# the server is full. With a timeout of a second or less, the timeout cuts it first.
EVICT_AFTER = 1.0
# Seconds between two WARNING lines of one server about connections closed to make room.
EVICTION_LOG_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Bounds:
    """``timeout``: seconds (above 0) for a request's line and headers, an idle
    keep-alive connection and a stalled answer; ``max_connections``: connections served
    at once (at least 1); the longest request line and header (name and value) in bytes
    and the most headers, aiohttp's defaults (the standard library's server has its own,
    65,536 bytes and 100 headers)."""

    timeout: float = 30.0
    max_connections: int = 256
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 128

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout is {self.timeout!r}, expected more than 0 seconds")
        if self.max_connections < 1:
            raise ValueError(f"max_connections is {self.max_connections!r}, expected at least 1")

    @property
    def evict_after(self) -> float:
        """Seconds a connection waits for a request's head (or body) before a connection
        past the cap may take its place: ``EVICT_AFTER``, whatever the timeout (a shorter
        wait took connections a client had just opened and was about to use)."""
        return EVICT_AFTER


def evicted_text(server: str, limit: int, waited: float, body: bool = False) -> str:
    """The 408's text of a connection closed part-way through its request's head (or,
    ``body``, its body) to make room: ``server`` (``the worker``) had ``limit``
    connections open and this one had waited ``waited`` seconds for it."""
    what, since = (
        ("the body was", "its headers")
        if body
        else ("the request's line and headers were", "the connection began")
    )
    return (
        f"{what} not all sent {waited:.1f}s after {since}, while {server} had all its "
        f"{limit:,} connections open ({CONNECTIONS_SETTING}): the connection is closed to "
        "serve another; send the request as you connect"
    )


class EvictionLog:
    """When a server says, in one WARNING line, the connections it closed to make room:
    the first at once, then at most once every ``every`` seconds with the count since
    the last line (a client renewing thousands of connections is one line a minute,
    not one a connection). Pure: the caller gives the clock and writes the line."""

    __slots__ = ("_last", "_untold", "every")

    def __init__(self, every: float = EVICTION_LOG_EVERY) -> None:
        self.every = every
        self._last: float | None = None
        self._untold = 0

    def evicted(self, now: float) -> int:
        """Count one eviction at ``now`` (monotonic seconds); the number to say now
        (this one and those not yet said), or 0 while the last line is recent."""
        self._untold += 1
        if self._last is not None and now - self._last < self.every:
            return 0
        told, self._untold, self._last = self._untold, 0, now
        return told


def eviction_line(server: str, limit: int, count: int, peer: str, waited: float) -> str:
    """The WARNING line of ``count`` connections closed to make room at ``server``, the
    last from ``peer`` after ``waited`` seconds without a whole request."""
    return (
        f"{server} had all its {limit:,} connections open ({CONNECTIONS_SETTING}): closed "
        f"{count:,} that had sent no whole request for a while to serve new ones (the last "
        f"from {peer}, after {waited:.1f}s); a client holding connections without "
        "requests (slowloris) is being turned over (counted as refusals for timeout)"
    )


def answer(status: int, error: str, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer that closes its connection, for a server that writes to
    the socket itself: ``status``, ``{"error": error, "reason": reason}`` as JSON, and
    ``headers`` (``Retry-After``)."""
    body = orjson.dumps({"error": error, "reason": reason})
    phrase = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def busy_text(server: str, limit: int) -> str:
    """The 503's text when ``server`` (``the worker``, ``the MQTT ingest``) already
    serves ``limit`` connections."""
    return (
        f"{server} serves at most {limit:,} connections at once ({CONNECTIONS_SETTING}) and "
        "has that many open; retry in a moment"
    )


def busy_answer(server: str, limit: int) -> bytes:
    """The whole 503 answer of a connection past ``limit`` (``Retry-After: 1``)."""
    return answer(503, busy_text(server, limit), "busy", {"Retry-After": "1"})


def timeout_text(seconds: float) -> str:
    """The 408's text of a request whose line and headers did not all come in time."""
    return (
        f"the request's line and headers were not sent within {seconds:g}s "
        f"({TIMEOUT_SETTING}); the connection is closed"
    )


def shown(raw: bytes, limit: int = 64) -> str:
    """Bytes of a request as an answer quotes them: text, cut to ``limit`` characters."""
    text = raw.decode("latin-1")
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}..."


class HeadTracker:
    """The lines of one request head as its bytes arrive: each line's length and first
    ``KEPT_PREFIX`` bytes, so that a refusal can say which line was too long. Memory is
    bounded (``KEPT_LINES`` lines), whatever the client sends."""

    __slots__ = ("_colon", "_length", "_lines", "_prefix", "size")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the head (a request was read, or its answer sent)."""
        self.size = 0  # bytes fed since the last reset
        # Complete lines: (length, prefix, offset of the first ':' or -1).
        self._lines: list[tuple[int, bytes, int]] = []
        self._length = 0  # the line being received
        self._prefix = b""
        self._colon = -1

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the head."""
        self.size += len(data)
        start = 0
        while True:
            end = data.find(b"\n", start)
            part = data[start:] if end < 0 else data[start:end]
            if len(self._prefix) < KEPT_PREFIX:
                self._prefix += part[: KEPT_PREFIX - len(self._prefix)]
            if self._colon < 0 and (colon := part.find(b":")) >= 0:
                # Where the name ends, even past the kept prefix: a long name is told
                # from a long value by it.
                self._colon = self._length + colon
            self._length += len(part)
            if end < 0:
                return
            if len(self._lines) < KEPT_LINES:
                self._lines.append((self._length, self._prefix, self._colon))
            self._length, self._prefix, self._colon = 0, b"", -1
            start = end + 1

    def too_long(self, max_line: int, max_field: int) -> str:
        """Which line of the head is too long, in words: the longest so far (the server
        stops reading at the first line past its limit, which is that one)."""
        lines = [*self._lines, (self._length, self._prefix, self._colon)]
        index = max(range(len(lines)), key=lambda i: lines[i][0])
        _, prefix, colon = lines[index]
        if index == 0:
            return (
                f"the request line is longer than the {max_line:,} bytes the server reads "
                f"(it starts {shown(prefix, 40)}): shorten the URL"
            )
        if colon < 0 or colon > max_field:
            return (
                f"a header name is longer than the {max_field:,} bytes the server reads "
                f"(it starts {shown(prefix, 40)})"
            )
        if colon > len(prefix):
            return (
                f"header {shown(prefix)} (a {colon:,}-byte name) is longer than the "
                f"{max_field:,} bytes the server reads (its name and value)"
            )
        return (
            f"header {shown(prefix[:colon].strip())} is longer than the {max_field:,} bytes "
            "the server reads (its name and value)"
        )
