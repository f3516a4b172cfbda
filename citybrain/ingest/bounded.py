"""The ingests' HTTP servers (the standard library's, a thread per connection) bounded
against slow and greedy clients, as the worker's is (streams/web_server.py; the rules
and the answers are streams/bounds.py's):

- a request's line and headers (and, at the HTTP ingest, its body) must come within
  ``Bounds.timeout`` seconds from its start (``CITYBRAIN_HTTP_TIMEOUT``): one cut part-way
  is answered 408, a connection that sent nothing or idles after an answer is closed; the
  rule counts from the request's start, so a byte every few seconds does not extend it
  (the socket's own timeout is per read, and a drip reset it: trial 29);
- at most ``Bounds.max_connections`` connections at once (``CITYBRAIN_HTTP_MAX_CONNECTIONS``),
  each holding a thread; one more takes the place of the connection waiting longest for
  a request's line and headers, when it has waited ``Bounds.evict_after`` (1 s) or more
  (``_make_room``: its read is cut, a part-sent head answered 408, one WARNING a minute),
  else it is answered 503 and closed before its request is read (before t191 always: one
  client holding the cap's connections and sending nothing had every gateway refused);
- a request line or header past the server's limits (65,536 bytes a line, 100 headers)
  and a request that is not HTTP are JSON ``{"error", "reason"}`` answers naming it (the
  standard library's were HTML pages), in the worker's words (streams/bounds.py
  ``HeadTracker``): the request line by its start, a header by its name. The standard
  library's parser raises before naming the line, so the head's lines are followed as
  they are read (``_HeadReader``).

``BoundedHTTPServer`` and ``BoundedHandler`` serve the HTTP ingest (citybrain/ingest/http.py)
and the MQTT ingest's /metrics (``MetricsServer``), which was prometheus_client's
``start_http_server``: no timeout, no cap, a thread per connection for as long as a
client held it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.errors import FirstHeaderLineIsContinuationDefect
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.bounds import (
    Bounds,
    EvictionLog,
    HeadTracker,
    busy_answer,
    evicted_text,
    eviction_line,
    timeout_text,
)

log = logging.getLogger("citybrain.ingest")

# The standard library's limits (http.client's _MAXLINE and _MAXHEADERS), named in answers.
MAX_LINE = 65_536
MAX_HEADERS = 100
# The most of a body its handler left unread (a GET's) read past to keep the connection
# open for the next request; a longer one closes it (``BoundedHandler._past_the_body``).
MAX_DRAIN = 1024 * 1024
_DIGITS = re.compile(r"[0-9]+")


def request_path(target: str) -> str:
    """The path of a request target: without its query or fragment, and an absolute
    form's scheme and host. A target ``urlsplit`` cannot read (``http://[::1/…``, a
    bracket never closed: ValueError) is its own path, so it is a 404 naming it; the
    ValueError reached the server's error handler, and the client got no answer at all,
    the log a traceback (t165)."""
    try:
        return urlsplit(target).path
    except ValueError:
        return target


def header_bytes(value: str) -> bytes:
    """A request header's value as its sender sent it: http.server reads header bytes as
    ISO-8859-1, so that is what gives them back. Written as UTF-8 (t117), a
    ``User-Agent: café`` reached the dead letter as ``cafÃ©`` (each byte encoded again)
    and a byte that is not UTF-8 (0xFF) as two others."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (no header read so holds one)
        return value.encode("utf-8", "backslashreplace")


def sent_text(value: str) -> str:
    """A header value or request path quoted as its sender wrote it, for an answer that
    shows it: its bytes (``header_bytes``) read as UTF-8, a byte that is not UTF-8 as
    its escape (``'charset=\\xff'``). Shown as http.server read them (ISO-8859-1),
    ``charset=ütf-8`` was ``'charset=Ã¼tf-8'`` and a byte 0xFF was ``'ÿ'`` (t117)."""
    text = repr(header_bytes(value).decode("utf-8", "surrogateescape"))
    # surrogateescape keeps byte 0xNN (not UTF-8) as U+DCNN, which repr writes \udcNN.
    # Left to right, a written backslash (\\) is passed over whole, never read as one.
    return _ESCAPED_BYTE.sub(lambda m: f"\\x{m[1]}" if m[1] else m[0], text)


_ESCAPED_BYTE = re.compile(r"\\\\|\\udc([89a-f][0-9a-f])")


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server with ``bounds``; ``refused(reason)`` counts each refusal
    made before a handler knows the request (``busy``); ``what`` names the server in
    the 503 (``the HTTP ingest``)."""

    daemon_threads = True

    def __init__(
        self,
        bind: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        bounds: Bounds,
        refused: Callable[[str], None],
        what: str,
    ) -> None:
        # IPv6 bind addresses too (HTTPServer binds AF_INET only), as prometheus_client
        # chose the family; a name this machine cannot resolve raises socket.gaierror.
        infos = socket.getaddrinfo(
            bind[0], bind[1], type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, sockaddr = infos[0]
        self.address_family = family
        super().__init__((str(sockaddr[0]), bind[1]), handler)
        self.bounds = bounds
        self.refused = refused
        self.what = what
        self._busy = busy_answer(what, bounds.max_connections)
        self._connections = 0
        # Each connection reading a request -> monotonic deadline; one past it is cut
        # (service_actions): its handler's read then ends short.
        self._deadlines: dict[socket.socket, float] = {}
        self._late: set[socket.socket] = set()
        # Each connection waiting for a request's line and headers, or for its body ->
        # (0 for a first request's head, 1 a later one's, 2 a body; monotonic time since
        # when; its peer's address): the one waiting longest of the lowest kind may be
        # closed to make room.
        self._heads: dict[socket.socket, tuple[int, float, str]] = {}
        # Connections closed to make room -> seconds they had waited (their 408's text);
        # their place was given up then, not when their thread ends.
        self._evicted: dict[socket.socket, float] = {}
        self._evictions = EvictionLog()
        self._conn_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        room: tuple[socket.socket, str, float] | None = None
        with self._conn_lock:
            busy = self._connections >= self.bounds.max_connections
            if busy:
                room = self._make_room()
                busy = room is None
            if not busy:
                self._connections += 1
        if room is not None:
            self._evict(*room)
        if busy:
            self._turn_away(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._conn_lock:
                self._connections -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                if self._evicted.pop(request, None) is None:  # else given up already
                    self._connections -= 1
                self._deadlines.pop(request, None)
                self._late.discard(request)
                self._heads.pop(request, None)

    def _make_room(self) -> tuple[socket.socket, str, float] | None:
        """Under the lock, with every place taken: give up the place of the connection
        waiting longest for a request's head, when it has waited ``evict_after``
        seconds or more, and return it, its peer and how long it waited; None when none
        has (every connection is in a request, or has just begun). One that never sent
        a request goes before one idling after an answer (a gateway keeping its
        connection for its next post)."""
        now = time.monotonic()
        rank: tuple[int, float] | None = None
        oldest: socket.socket | None = None
        latest = now - self.bounds.evict_after
        for conn, (kind, began, _) in self._heads.items():
            if began <= latest and (rank is None or (kind, began) < rank):
                oldest, rank = conn, (kind, began)
        if oldest is None:
            return None
        _, since, peer = self._heads.pop(oldest)
        self._deadlines.pop(oldest, None)
        self._late.add(oldest)
        self._evicted[oldest] = now - since
        self._connections -= 1
        return oldest, peer, now - since

    def _evict(self, conn: socket.socket, peer: str, waited: float) -> None:
        """Cut ``conn``'s read (its handler then answers a part-sent head 408 and ends,
        as at its deadline) and say it, at most once a minute."""
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RD)
        told = self._evictions.evicted(time.monotonic())
        if told:
            limit = self.bounds.max_connections
            log.warning("ingest: %s", eviction_line(self.what, limit, told, peer, waited))

    def awaiting_head(self, conn: socket.socket, kind: int, since: float, peer: str) -> None:
        """``conn`` waits since ``since`` (monotonic) for a request's line and headers
        (``kind`` 0 on a new connection, 1 after an answer) or its body (2)."""
        with self._conn_lock:
            if conn not in self._evicted:
                self._heads[conn] = (kind, since, peer)

    def head_read(self, conn: socket.socket) -> None:
        """``conn``'s request head (or body) was read, or its wait ended."""
        with self._conn_lock:
            self._heads.pop(conn, None)

    def evicted_after(self, conn: socket.socket) -> float | None:
        """Seconds ``conn`` had waited when it was closed to make room, or None."""
        with self._conn_lock:
            return self._evicted.get(conn)

    def body_late_text(self, conn: socket.socket, limit: float) -> str:
        """The 408's text of a body cut on ``conn``: not sent within ``limit`` seconds,
        or, closed to make room, not all sent in the seconds it had waited."""
        waited = self.evicted_after(conn)
        if waited is None:
            return f"the body was not sent within {limit:g}s"
        return evicted_text(self.what, self.bounds.max_connections, waited, body=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away while answered (a broken pipe, a reset) is no fault
        of ours: one DEBUG line, not the standard library's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("ingest: client %s went away: %s", client_address[0], exc)
            return
        log.exception("ingest: request from %s failed", client_address[0])

    def _turn_away(self, request: socket.socket) -> None:
        """503 without reading the request, on the accepting thread: never blocks it."""
        self.refused("busy")
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(self._busy)
        self.shutdown_request(request)

    def arm(self, conn: socket.socket, seconds: float) -> None:
        """Start ``conn``'s deadline: its request must be read within ``seconds``."""
        with self._conn_lock:
            self._deadlines[conn] = time.monotonic() + seconds

    def disarm(self, conn: socket.socket) -> bool:
        """End ``conn``'s deadline; False when it had passed (what was read is cut). What
        it waited for has come: it no longer waits to make room."""
        with self._conn_lock:
            self._heads.pop(conn, None)
            self._deadlines.pop(conn, None)
            late = conn in self._late
            self._late.discard(conn)
        return not late

    def is_late(self, conn: socket.socket) -> bool:
        """Whether ``conn``'s deadline has passed (it stays armed)."""
        with self._conn_lock:
            return conn in self._late

    def service_actions(self) -> None:
        """Between polls of serve_forever (every 0.5 s): stop reading from every
        connection past its deadline. Its handler's read then ends short."""
        now = time.monotonic()
        with self._conn_lock:
            late = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
            for conn in late:
                del self._deadlines[conn]
                self._late.add(conn)
        for conn in late:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)


def _header_defect(headers: Any) -> str:
    """What is wrong with ``headers`` whose parse has ``defects``: the first line the
    parser did not read as a header (the start of its payload), cut and escaped."""
    rest = headers.get_payload()
    line = rest.split("\n", 1)[0].rstrip("\r") if isinstance(rest, str) else ""
    if line:
        return (
            f"header line {sent_text(line[:64])} is not 'Name: value' "
            "(the headers after it would be lost)"
        )
    # The defects that leave no payload: a first line that starts with white space (the
    # defect holds it) or a line with no name before its colon.
    for defect in headers.defects:
        if isinstance(defect, FirstHeaderLineIsContinuationDefect) and defect.args:
            said = sent_text(str(defect.args[0]).rstrip("\r\n")[:64])
            return f"header line {said} starts with white space (a continuation of no header)"
    return "a header line has no name before its colon ('Name: value')"


class _HeadReader:
    """A connection's ``rfile`` that feeds the lines read while ``tracking`` (a request's
    line and headers, which the standard library reads with ``readline``) to ``head``;
    anything else is the file's own."""

    def __init__(self, raw: Any, head: HeadTracker) -> None:
        self._raw = raw
        self.head = head
        self.tracking = False
        self.body_read = 0  # bytes of the current request's body read (``read``)

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._raw.readline(limit)
        if self.tracking:
            self.head.feed(line)
        return line

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        self.body_read += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class BoundedHandler(BaseHTTPRequestHandler):
    """A request handler under its server's bounds; answers are JSON (``answer``)."""

    server: BoundedHTTPServer
    protocol_version = "HTTP/1.1"
    _requests = 0  # requests begun on this connection
    _started = 0.0  # time.monotonic() when the current request's first line was awaited
    _parsed = False  # the current request's line and headers were read (parse_request)
    # The client sent ``Expect: 100-continue`` and has not been told to send its body yet
    # (``go_on``): it may never send it.
    _awaits_continue = False

    @property
    def limit(self) -> float:
        """Seconds a request may take (``Bounds.timeout``)."""
        return self.server.bounds.timeout

    def setup(self) -> None:
        super().setup()
        # The socket's own timeout, per read: a stalled client costs one thread this
        # long; the deadline (service_actions) bounds the request as a whole.
        self.connection.settimeout(self.limit)
        self._head = _HeadReader(self.rfile, HeadTracker())
        self.rfile = self._head  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def count(self, reason: str) -> None:
        """Count a refusal (``REFUSAL_REASONS``); the HTTP ingest counts by its path."""
        self.server.refused(reason)

    def handle_one_request(self) -> None:
        # The request (line, headers and body) must come within `timeout` seconds.
        self.path = ""  # not read yet (the last request's, on a keep-alive connection)
        self._head.head.reset()
        self._head.tracking = True  # until the headers are read (parse_request)
        self._head.body_read = 0
        self._parsed = False  # this request's line and headers read (parse_request)
        self._awaits_continue = False
        self.server.arm(self.connection, self.limit)
        start = self._started = time.monotonic()
        peer = str(self.client_address[0])
        self.server.awaiting_head(self.connection, int(self._requests > 0), start, peer)
        try:
            super().handle_one_request()
            self._past_the_body()
        finally:
            self.server.head_read(self.connection)
            # Cut by the deadline, or by the socket's own timeout (the same length, and
            # it may come first: the deadlines are checked every half second).
            late = not self.server.disarm(self.connection) or (
                time.monotonic() - start >= self.limit
            )
        if late and not getattr(self, "raw_requestline", b"") and not self._requests:
            self.count("timeout")  # a connection that never sent a request
        self._requests += 1

    def _past_the_body(self) -> None:
        """After an answer on a connection kept open: read past what is left of the
        request's body, which its handler did not read (a GET or HEAD sent with one: the
        answer needs none), within the request's deadline; close the connection when
        that cannot be done (a chunked body, a length that is no number or past
        ``MAX_DRAIN``, a body that does not come). Left in the socket, the body was read
        as the next request's line: a GET with a body, then a good POST on the same
        connection, and the POST was answered ``405 … not {"a":1}POST``, its readings
        lost (t150)."""
        if self.close_connection or not self._parsed:
            return
        if self._awaits_continue:  # never told to send it: it may never come (send_body)
            self.close_connection = True
            return
        framing = self.headers.get("Transfer-Encoding")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length", [])}
        if framing is None and not lengths:
            return  # no body
        digits = (lengths.pop().lstrip("0") or "0") if len(lengths) == 1 else "x"
        if framing is not None or not _DIGITS.fullmatch(digits) or len(digits) > 12:
            # Its end cannot be found: chunked (not decoded here), or a length that is
            # no number, given two ways, or past any body.
            self.close_connection = True
            return
        left = int(digits) - self._head.body_read
        if left > MAX_DRAIN:
            self.close_connection = True
            return
        while left > 0:
            try:
                chunk = self._head.read(min(left, 65_536))
            except OSError:  # TimeoutError: the body stopped coming
                chunk = b""
            if not chunk or self.server.is_late(self.connection):
                self.close_connection = True
                return
            left -= len(chunk)

    def parse_request(self) -> bool:
        if self.server.is_late(self.connection):  # cut while its line came
            self.request_version = "HTTP/1.0"  # so the status line and headers are sent
            self._late()
            return False
        line = str(getattr(self, "raw_requestline", b""), "iso-8859-1").rstrip("\r\n")
        if len(line.split()) == 2:
            # "GET /path" with no version, HTTP/0.9's form: the standard library then
            # waited for headers the client never sends, and the client had no answer
            # until the timeout closed its connection (t165).
            self.command, self.request_version, self.requestline = "", "HTTP/1.0", line
            self.send_error(400, "the request line has no HTTP version (HTTP/0.9)")
            return False
        parsed = super().parse_request()
        self._head.tracking = False  # the body, if any, is no line of the head
        self.server.head_read(self.connection)  # in a request now: not closed for room
        if not parsed:
            return False
        if self.headers.defects:
            # A header line that is not "Name: value": the standard library's parser
            # (the email package's) stops there and drops every header after it unsaid:
            # a Content-Length after it was "Content-Length is required", a GET's body
            # was read as the next request, a Connection: close was not seen (t165).
            self.send_error(400, _header_defect(self.headers))
            return False
        self._parsed = True
        if not self.server.disarm(self.connection):  # cut while its headers came
            self._late()
            return False
        # What is left of it for the body (the rule counts from the request's start: a
        # fresh limit here let a client take twice as long, its head and then its body).
        self.server.arm(self.connection, self.limit - (time.monotonic() - self._started))
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0") not in (
            "",
            "0",
        ):
            # Its body may be closed to make room until read (the handler disarms then).
            peer = str(self.client_address[0])
            self.server.awaiting_head(self.connection, 2, time.monotonic(), peer)
        return True

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: the ``100 Continue`` waits until the request's
        handler has checked its line and headers and is about to read its body
        (``go_on``), as RFC 9110 section 10.1.1 has a server that will refuse the request
        answer with the final status instead. The standard library sent it on reading the
        headers, before any check: a client with a wrong token, or a 50 MB body past the
        limit, was told to send its body, and the 401 or 413 came while it sent, the
        connection closed under it (a broken pipe, the answer lost)."""
        self._awaits_continue = True
        return True

    def go_on(self) -> None:
        """Before reading a body: tell a client that awaits it (``Expect: 100-continue``)
        to send it now."""
        if self._awaits_continue:
            self._awaits_continue = False
            self.send_response_only(100)
            self.end_headers()

    def _late(self) -> None:
        self.server.disarm(self.connection)
        self.close_connection = True
        self.count("timeout")
        waited = self.server.evicted_after(self.connection)
        if waited is None:
            text = timeout_text(self.limit)
        else:  # closed to make room for a new connection, before its deadline
            text = evicted_text(self.server.what, self.server.bounds.max_connections, waited)
        self.answer(408, {"error": text, "reason": "timeout"})

    def answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Send ``body`` as JSON with ``status`` and ``headers``."""
        self.send_body(status, orjson.dumps(body), "application/json", headers)

    def send_body(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """Send ``data`` (bytes of ``content_type``) with ``status`` and ``headers``; a
        HEAD request gets the headers alone. An answer after which the connection is
        closed (a refused request whose body is left unread) says so, ``Connection:
        close`` (RFC 9112 section 9.6): without it, a client that reused the connection
        for its next request (a good POST after a 415) had it fail on the closed
        connection, and most clients do not send a POST again by themselves (t150). A
        client that awaits ``100 Continue`` and was not sent it may send its body or not
        (RFC 9110 section 10.1.1), so the connection is closed after the answer."""
        if self._awaits_continue:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection and self.request_version == "HTTP/1.1":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals as JSON ``{"error", "reason"}`` naming
        what was wrong, as the worker's web server words them: a request line too long
        (414, by its start) or a header line (431, by the header's name), too many
        headers (431), a request line it cannot read (400, 505); it sent HTML."""
        self.close_connection = True
        if self.request_version in ("", "HTTP/0.9"):  # a request line it could not read
            self.request_version = "HTTP/1.0"  # so the status line and headers are sent
        reason = "too_long" if code in (414, 431) else "bad_request"
        if code == 431 and message == "Too many headers":
            text = f"the request has more than {MAX_HEADERS} headers"
        elif code in (414, 431):
            # The longest line of the head is the one the parser stopped at.
            text = self._head.head.too_long(MAX_LINE, MAX_LINE)
        else:
            default = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "error"
            text = message or default
            if code in (400, 505):
                reason = "bad_request"
                text = f"the request is not HTTP/1.1 {self.server.what} can read: {text}"
        if code < 500 or code == 505:
            self.count(reason)
        self.answer(code, {"error": text, "reason": reason})


METRICS_PATH = "/metrics"


class MetricsServer(BoundedHTTPServer):
    """``GET /metrics`` (and HEAD) of ``registry`` in Prometheus' text format, with
    client_python's ``name[]`` filter; a JSON 404 for another path, 405 (``Allow``) for
    another method. Refusals are counted in ``refused``."""

    def __init__(
        self,
        bind: tuple[str, int],
        registry: CollectorRegistry,
        bounds: Bounds,
        refused: Callable[[str], None],
        what: str,
    ) -> None:
        super().__init__(bind, _MetricsHandler, bounds, refused, what)
        self.registry = registry


class _MetricsHandler(BoundedHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if request_path(path) != METRICS_PATH:
            self.close_connection = True
            self.answer(
                404,
                {
                    "error": f"no such path {sent_text(self.path[:200])}; the server serves "
                    "GET /metrics"
                },
            )
            return
        names = parse_qs(query).get("name[]", [])
        registry = self.server.registry
        data = generate_latest(registry.restricted_registry(names) if names else registry)
        self.send_body(200, data, CONTENT_TYPE_LATEST)

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is left unread
        self.answer(
            405,
            {"error": f"{METRICS_PATH} takes GET, HEAD, not {self.command}"},
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed
