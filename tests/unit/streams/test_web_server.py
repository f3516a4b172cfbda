"""streams/web_server.py bends aiohttp's and faust's web internals: fail loudly when they
change; and its bounds, on a real aiohttp server on a loopback port (no worker, no Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import faust
import pytest
from aiohttp import web

from streams import web_server
from streams.bounds import Bounds
from streams.web_server import (
    AIOHTTP_VERSION,
    FAUST_VERSION,
    PINNED_SOURCES,
    BoundedAppRunner,
    BoundedRequestHandler,
    BoundedServer,
    pinned_classes,
    source_hash,
)


def test_faust_and_aiohttp_are_the_pinned_versions() -> None:
    assert (faust.__version__, aiohttp.__version__) == (FAUST_VERSION, AIOHTTP_VERSION), (
        "streams/web_server.py was written against faust-streaming "
        f"{FAUST_VERSION} and aiohttp {AIOHTTP_VERSION}: re-read the internals it names"
    )
    web_server.check_versions()


def test_the_functions_it_relies_on_are_unchanged_upstream() -> None:
    classes = pinned_classes()
    for owner, functions in PINNED_SOURCES.items():
        for name, digest in functions.items():
            assert source_hash(getattr(classes[owner], name)) == digest, (
                f"{owner}.{name} changed upstream: port streams/web_server.py to it"
            )


def test_the_attributes_it_relies_on_exist() -> None:
    import inspect

    from aiohttp.web_protocol import RequestHandler, _ErrInfo

    handler = inspect.getsource(RequestHandler)
    for name in (
        "_waiter",
        "_keepalive",
        "_force_close",
        "_next_keepalive_close_time",
        "_request_count",
        "_request_in_progress",
        "_messages",
        "_current_request",
    ):
        assert f"self.{name}" in handler, name
    assert {"status", "exc", "message"} <= set(_ErrInfo.__annotations__)
    # faust builds its runner in Web.__init__ and serves through it.
    assert "self._runner: AppRunner = AppRunner(self.web_app, access_log=None)" in (
        inspect.getsource(pinned_classes()["Web"].__init__)
    )
    app = faust.App("web-bounds-check")
    web_server.install(app, Bounds(timeout=2), lambda reason: None)
    runner = app.web._runner  # type: ignore[attr-defined]
    assert isinstance(runner, BoundedAppRunner)
    assert runner.bounds.timeout == 2
    assert runner.app is app.web.web_app  # type: ignore[attr-defined]


Client = Callable[[bytes, float], Awaitable[tuple[float, bytes]]]


def serve(
    bounds: Bounds, scenario: Callable[[Client, list[str], int], Awaitable[None]]
) -> list[str]:
    """Run ``scenario(ask, refused, port)`` against an aiohttp app served through
    ``BoundedAppRunner``; the reasons it counted."""
    refused: list[str] = []

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a fault of the view")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 16_000_000)

    async def echo(request: web.Request) -> web.Response:
        from streams.api import read_body

        return web.json_response({"bytes": len(await read_body(request, 1 << 20, 30))})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ok", lambda request: web.json_response({"ok": True}))
        app.router.add_get("/boom", boom)
        app.router.add_get("/big", big)
        app.router.add_post("/echo", echo)
        runner = BoundedAppRunner(app, bounds, refused.append)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        async def ask(data: bytes, wait: float = 10.0) -> tuple[float, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            start = time.monotonic()
            out = await asyncio.wait_for(reader.read(), wait)
            writer.close()
            return time.monotonic() - start, out

        try:
            await scenario(ask, refused, port)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return refused


def body(answer: bytes) -> dict[str, Any]:
    head, _, data = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    return json.loads(data)  # type: ignore[no-any-return]


def test_a_request_line_too_long_is_a_json_400_naming_it() -> None:
    """aiohttp's own was plain text quoting a Python ``bytearray(b'/aaa...')``."""

    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        _, answer = await ask(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 10)
        assert answer.split(b"\r\n")[0].endswith(b"400 Bad Request")
        said = body(answer)
        assert said["reason"] == "too_long"
        assert said["error"].startswith(
            "the request line is longer than the 8,190 bytes the server reads (it starts 'GET /aaaa"
        )
        assert "bytearray" not in said["error"]

    assert serve(Bounds(timeout=5), scenario) == ["too_long"]


@pytest.mark.parametrize(
    ("head", "error"),
    [
        (
            b"X-Long: " + b"a" * 9000 + b"\r\n",
            "header 'X-Long' is longer than the 8,190 bytes the server reads (its name and value)",
        ),
        (
            b"X-" + b"n" * 9000 + b": 1\r\n",
            "a header name is longer than the 8,190 bytes the server reads (it starts "
            "'X-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'...)",
        ),
        (
            b"".join(b"X-%d: 1\r\n" % i for i in range(200)),
            "the request has more than 128 headers",
        ),
    ],
)
def test_a_header_too_long_or_too_many_is_a_json_400_naming_it(head: bytes, error: str) -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n", 10)
        assert body(answer) == {"error": error, "reason": "too_long"}

    assert serve(Bounds(timeout=5), scenario) == ["too_long"]


def test_a_request_that_is_not_http_and_a_views_fault_are_json() -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        _, answer = await ask(b"GE T /ok HTTP/1.1\r\nHost: x\r\n\r\n", 10)
        assert body(answer) == {
            "error": "the request is not HTTP/1.1 the worker can read: Invalid method encountered",
            "reason": "bad_request",
        }
        _, answer = await ask(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 10)
        assert answer.startswith(b"HTTP/1.1 500")
        said = body(answer)
        assert said["reason"] == "internal" and "Traceback" not in said["error"]

    assert serve(Bounds(timeout=5), scenario) == ["bad_request"]


def test_a_request_head_sent_slowly_is_cut_at_the_timeout_with_a_408() -> None:
    """A header every 0.2 s, never the blank line: aiohttp kept it for an hour (its
    keep-alive default, 3,630 s, as faust passes none)."""

    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\n")
        start = time.monotonic()
        answer = b""
        for _ in range(50):
            try:
                writer.write(b"X-Drip: 1\r\n")
                await writer.drain()
                answer += await asyncio.wait_for(reader.read(65536), 0.2)
            except (TimeoutError, ConnectionError):
                continue
            if not answer or reader.at_eof():
                break
        answer += await asyncio.wait_for(reader.read(), 5)
        took = time.monotonic() - start
        writer.close()
        assert 0.9 <= took < 3, took
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:80]
        assert body(answer) == {
            "error": "the request's line and headers were not sent within 1s "
            "(CITYBRAIN_HTTP_TIMEOUT); the connection is closed",
            "reason": "timeout",
        }

    assert serve(Bounds(timeout=1), scenario) == ["timeout"]


def test_a_silent_connection_and_an_idle_keep_alive_are_closed_at_the_timeout() -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        took, answer = await ask(b"", 5)  # connects, sends nothing
        assert answer == b"" and 0.9 <= took < 3, took
        assert refused == ["timeout"]
        took, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        assert answer.startswith(b"HTTP/1.1 200") and 0.9 <= took < 3, took
        assert refused == ["timeout"]  # an idle keep-alive closes quietly, uncounted

    serve(Bounds(timeout=1), scenario)


def test_connections_past_the_cap_are_a_json_503_at_once() -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)
        took, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        assert took < 1.5
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer[:80]
        assert b"\r\nRetry-After: 1\r\n" in answer
        assert body(answer) == {
            "error": "the worker serves at most 3 connections at once "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS) and has that many open; retry in a moment",
            "reason": "busy",
        }
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]

    assert serve(Bounds(timeout=5, max_connections=3), scenario) == ["busy"]


def test_a_connection_past_the_cap_takes_the_place_of_the_one_waiting_longest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # t191: every connection past the cap was refused 503, so one client holding the
    # cap's connections and sending nothing (slowloris) had every other client refused,
    # the operator API and Prometheus' scrapes alike, for as long as it renewed them.
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        part_reader, part = await asyncio.open_connection("127.0.0.1", port)
        part.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")  # a head never finished
        await part.drain()
        await asyncio.sleep(0.05)  # it is the oldest
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(1.2)  # all three waited past evict_after (1 s)
        for _ in range(3):  # each served; the first took the part-sent head's place
            _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        told = await asyncio.wait_for(part_reader.read(), 5)
        assert told.startswith(b"HTTP/1.1 408"), told[:80]
        assert body(told) == {
            "error": "the request's line and headers were not all sent "
            + body(told)["error"].split("sent ", 1)[1].split("s after", 1)[0]
            + "s after the connection began, while the worker had all its 3 connections "
            "open (CITYBRAIN_HTTP_MAX_CONNECTIONS): the connection is closed to serve "
            "another; send the request as you connect",
            "reason": "timeout",
        }
        for _, writer in silent:
            writer.close()

    with caplog.at_level("WARNING", logger="streams.web_server"):
        refused = serve(Bounds(timeout=5, max_connections=3), scenario)
    # The part-sent head, and a silent one when an answered request's place was not free
    # yet: never a 503.
    assert set(refused) == {"timeout"} and len(refused) <= 3, refused
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(
        "citybrain: web: the worker had all its 3 connections open (CITYBRAIN_HTTP_MAX_CONNECTIONS): "
        "closed 1 that had sent no whole request for a while to serve new ones (the last "
        "from 127.0.0.1, after 1."
    ), line


def test_a_connection_kept_after_its_answer_is_the_last_to_lose_its_place() -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        kept_reader, kept = await asyncio.open_connection("127.0.0.1", port)
        kept.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        await kept.drain()
        head = await asyncio.wait_for(kept_reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await kept_reader.readexactly(length)  # answered; kept for its next request
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(1.2)  # all three past evict_after, the kept one the oldest
        _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        kept.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await kept.drain()
        again = await asyncio.wait_for(kept_reader.read(), 5)
        assert again.startswith(b"HTTP/1.1 200"), again[:80]
        for _, writer in silent:
            writer.close()

    assert serve(Bounds(timeout=5, max_connections=3), scenario) == ["timeout"]


def test_a_flood_of_silent_connections_costs_no_request_its_answer() -> None:
    # One client keeps the cap's connections open and sends nothing (slowloris),
    # opening more as its old ones are closed; requests of others are all answered.
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        held = []
        answered = []
        for _ in range(4):
            held += [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
            await asyncio.sleep(1.1)
            for _ in range(3):
                _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answered.append(answer.split(b"\r\n", 1)[0])
        assert answered == [b"HTTP/1.1 200 OK"] * 12
        for _, writer in held:
            writer.close()

    refused = serve(Bounds(timeout=30, max_connections=8), scenario)
    # Of the 80 silent connections, those past the cap while every place was young were
    # refused; the rest were closed in turn to make room (12 for the requests, and the
    # flood's own newer connections in each round).
    assert set(refused) <= {"busy", "timeout"} and refused.count("timeout") >= 12


def test_a_flood_past_the_cap_scans_the_connections_once_per_second_not_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loop that serves the API runs the streams too: a connection past the cap
    # looked at every connection for one that may make room, 256 a connection.
    looks: list[int] = []
    room_rank = BoundedRequestHandler.room_rank

    def counted(self: BoundedRequestHandler) -> tuple[int, float] | None:
        looks.append(1)
        return room_rank(self)

    monkeypatch.setattr(BoundedRequestHandler, "room_rank", counted)

    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        await asyncio.sleep(0.1)
        for _ in range(100):  # all young: no place to take, each refused
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.3)
        assert refused.count("busy") == 100
        assert len(looks) <= 8, len(looks)  # one scan of the eight
        await asyncio.sleep(1.0)  # the eight past evict_after
        del looks[:]
        for _ in range(8):  # each takes the place of one of the eight, from one scan
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.3)
        assert refused.count("timeout") == 8
        assert len(looks) <= 8 + 8, len(looks)
        for _, writer in held:
            writer.close()

    serve(Bounds(timeout=30, max_connections=8), scenario)


def test_a_client_gone_while_its_body_is_read_is_no_error_of_the_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # t191: an ERROR with a traceback ("web: error handling POST ...",
    # ConnectionResetError) per client that closed its connection part-way through a
    # body: a client dropping its POSTs filled the worker's log.
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            await writer.drain()
            await asyncio.sleep(0.1)  # the view reads the body
            writer.close()
        await asyncio.sleep(0.3)
        _, answer = await ask(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"bytes": 3}'), answer

    with caplog.at_level("DEBUG", logger="streams.web_server"):
        serve(Bounds(timeout=5), scenario)
    assert [r.levelname for r in caplog.records if r.levelno >= 30] == []
    gone = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert (
        gone
        == ["web: POST /echo: the client went away: ConnectionResetError('Connection lost')"] * 3
    )


def test_a_client_that_reads_nothing_of_its_answer_is_cut_off() -> None:
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(2.5)  # reads nothing: the server's buffers fill, then it waits
        assert refused == ["timeout"]
        got = 0
        with contextlib.suppress(ConnectionError):
            while data := await asyncio.wait_for(reader.read(1 << 20), 5):
                got += len(data)
        writer.close()
        assert got < 16_000_000

    serve(Bounds(timeout=1), scenario)


def test_a_connection_whose_transport_never_came_does_not_hold_its_place() -> None:
    # asyncio calls the factory, then may fail to build the transport (an accept error,
    # a TLS failure): the handler then never hears connection_made or connection_lost.
    refused: list[str] = []

    async def main() -> None:
        runner = BoundedAppRunner(
            web.Application(), Bounds(timeout=5, max_connections=2), refused.append
        )
        await runner.setup()
        try:
            server = runner.server
            assert isinstance(server, BoundedServer)
            for _ in range(2):
                server()  # dropped: the transport failed
            gc.collect()
            assert server.open == 0
            assert isinstance(server(), BoundedRequestHandler)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert refused == []


def test_a_body_dripped_past_the_cap_gives_its_place_to_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # t191: a client sending whole heads and then bodies a byte at a time held each of
    # its places for the timeout (30 s), and every other connection was refused 503.
    async def scenario(ask: Client, refused: list[str], port: int) -> None:
        drips = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            await writer.drain()
            drips.append((reader, writer))
        await asyncio.sleep(1.2)  # past evict_after, their bodies not all sent
        _, answer = await ask(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        told = await asyncio.wait_for(drips[0][0].read(), 5)  # the oldest gave its place
        assert told.startswith(b"HTTP/1.1 408"), told[:80]
        assert body(told)["error"].startswith("the body was not all sent 1.")
        assert body(told)["error"].endswith(
            "s after its headers, while the worker had all its 3 connections open "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS): the connection is closed to serve another; "
            "send the request as you connect"
        )
        for _, writer in drips:
            writer.close()

    with caplog.at_level("WARNING", logger="streams.web_server"):
        refused = serve(Bounds(timeout=30, max_connections=3), scenario)
    assert "busy" not in refused and "timeout" in refused, refused
    assert [r.getMessage()[:51] for r in caplog.records] == [
        "citybrain: web: the worker had all its 3 connection"
    ]
