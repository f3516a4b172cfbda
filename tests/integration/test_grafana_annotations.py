"""Annotations through grafana-client against a local HTTP server that implements the one
Grafana endpoint we call (POST /api/annotations). It STANDS IN FOR GRAFANA, which cannot
be installed on this machine; it checks what Grafana would check (path, bearer token,
JSON body) and can be made slow or absent."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from playbooks.executors.grafana import GrafanaAnnotator
from playbooks.executors.resolve import Resolve
from tests.stalls import NeverAnswers, loop_still_resolves

pytestmark = pytest.mark.integration
TOKEN = "glsa_test_token"


class StandInGrafana(BaseHTTPRequestHandler):
    delay: ClassVar[float] = 0.0
    status: ClassVar[int] = 200
    page: ClassVar[str] = ""  # an error page sent instead of Grafana's JSON message
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(StandInGrafana.delay)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"message": "Unauthorized"})
        elif self.path != "/api/annotations":
            self._reply(404, {"message": "Not found"})
        elif StandInGrafana.status != 200:
            self._reply(
                StandInGrafana.status, {"message": StandInGrafana.page or "database is locked"}
            )
        else:
            StandInGrafana.received.append(body)
            self._reply(200, {"id": len(StandInGrafana.received), "message": "Annotation added"})

    def _reply(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    StandInGrafana.delay, StandInGrafana.received, StandInGrafana.status = 0.0, [], 200
    StandInGrafana.page = ""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def annotate(
    url: str, token: str = TOKEN, timeout: float = 2.0, resolve: Resolve | None = None
) -> tuple[float, list[str]]:
    errors: list[str] = []

    async def on_error(annotation_id: str, detail: str) -> None:
        errors.append(f"{annotation_id}: {detail}")

    async def main() -> float:
        annotator = GrafanaAnnotator(url, token, on_error, timeout=timeout, resolve=resolve)
        start = time.monotonic()
        assert annotator.submit(
            "run-1:4",
            "flash-flood: water rising at c-bridge",
            ["citybrain", "flash-flood"],
            1_700_000_000_000,
        )
        took = time.monotonic() - start
        while annotator.in_flight:
            await asyncio.sleep(0.02)
        return took

    return asyncio.run(main()), errors


def test_annotation_reaches_grafana_with_the_token(grafana: str) -> None:
    _, errors = annotate(grafana)
    assert errors == []
    [body] = StandInGrafana.received
    assert {k: body[k] for k in ("time", "tags", "text")} == {
        "time": 1_700_000_000_000,
        "tags": ["citybrain", "flash-flood"],
        "text": "flash-flood: water rising at c-bridge",
    }


def test_wrong_token_is_reported_not_raised(grafana: str) -> None:
    _, errors = annotate(grafana, token="wrong")
    assert len(errors) == 1 and errors[0].startswith("run-1:4: ") and "Unauthorized" in errors[0]
    assert "wrong" not in errors[0]


def test_grafana_server_errors_are_reported_not_raised(grafana: str) -> None:
    StandInGrafana.status = 500
    took, errors = annotate(grafana)
    assert took < 0.1 and len(errors) == 1 and "GrafanaServerError" in errors[0]
    assert StandInGrafana.received == []


def test_a_huge_error_page_is_reported_cut_not_whole(grafana: str) -> None:
    # Before: grafana-client's error carried the whole answer's body, and a 10 MB page
    # became a 10 MB annotation_failed audit record, which Kafka refused.
    # A page past MAX_ANSWER_BYTES is not even read (test_an_endless_answer_…).
    StandInGrafana.status, StandInGrafana.page = 502, "<html>" + "x" * 1_000_000
    _, errors = annotate(grafana)
    [error] = errors
    assert "GrafanaServerError" in error and len(error) < 500
    assert error.endswith(" characters, cut)")
    StandInGrafana.page = "<html>" + "x" * 10_000_000
    _, errors = annotate(grafana)
    [error] = errors
    assert "HTTP 502: an answer longer than 1,048,576 bytes" in error and len(error) < 500


def test_slow_grafana_never_blocks_the_caller(grafana: str) -> None:
    StandInGrafana.delay = 3.0
    took, errors = annotate(grafana, timeout=0.5)
    assert took < 0.1  # submit returned at once
    assert len(errors) == 1 and "Timeout" in errors[0]


def test_grafana_down_is_reported() -> None:
    took, errors = annotate("http://127.0.0.1:9", timeout=1.0)
    assert took < 0.1 and len(errors) == 1


def test_regions_open_then_close_by_patching_the_same_annotation(grafana: str) -> None:
    patched: list[tuple[str, dict[str, Any]]] = []

    def do_PATCH(self: StandInGrafana) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        patched.append((self.path, body))
        self._reply(200, {"message": "Annotation patched"})

    StandInGrafana.do_PATCH = do_PATCH  # type: ignore[attr-defined]
    errors: list[str] = []

    async def on_error(annotation_id: str, detail: str) -> None:
        errors.append(detail)

    async def main() -> None:
        annotator = GrafanaAnnotator(grafana, TOKEN, on_error)
        annotator.open_region("al-1", "pm25 alert", ["citybrain", "alert"], 1_000)
        while annotator.in_flight:
            await asyncio.sleep(0.02)
        annotator.close_region("al-1", "pm25 alert, ended", ["citybrain", "alert"], 1_000, 9_000)
        # Unknown here (opened before a restart): the whole region is created at once.
        annotator.close_region("al-2", "no2 alert, ended", ["citybrain", "alert"], 2_000, 5_000)
        while annotator.in_flight:
            await asyncio.sleep(0.02)

    asyncio.run(main())
    assert errors == []
    assert patched == [
        (
            "/api/annotations/1",
            {
                "time": 1_000,
                "timeEnd": 9_000,
                "tags": ["citybrain", "alert"],
                "text": "pm25 alert, ended",
            },
        )
    ]
    assert [(b["time"], b.get("timeEnd")) for b in StandInGrafana.received] == [
        (1_000, None),
        (2_000, 5_000),
    ]


class RawGrafana:
    """A raw TCP endpoint in Grafana's place that answers every call with ``head`` and
    then up to ``endless`` bytes of body (counted in ``sent``): a proxy or a broken
    Grafana that never stops sending, or a redirect."""

    def __init__(self, head: bytes, endless: int = 0, body: bytes = b"") -> None:
        self.head, self.endless, self.body = head, endless, body
        self.calls, self.sent = 0, 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.calls += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.head + self.body)
            chunk = b" " * (1 << 20)
            while self.sent < self.endless:
                writer.write(chunk)
                await writer.drain()
                self.sent += len(chunk)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def annotate_raw(endpoint: RawGrafana, timeout: float = 30.0) -> list[str]:
    errors: list[str] = []

    async def on_error(annotation_id: str, detail: str) -> None:
        errors.append(detail)

    async def main() -> None:
        server = await asyncio.start_server(endpoint, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        annotator = GrafanaAnnotator(url, TOKEN, on_error, timeout=timeout)
        assert annotator.open_region("al-1", "pm25 alert", ["citybrain"], 1_000)
        try:
            while annotator.in_flight:
                await asyncio.sleep(0.02)
        finally:
            await annotator.shutdown()
            server.close()

    asyncio.run(main())
    return errors


def test_an_endless_answer_is_read_no_further_than_a_bound() -> None:
    # Before: grafana-client read an answer whole: a 200 whose body never ended put
    # ~400 MB into the worker per call in a 3 s timeout (50 calls in flight at once).
    endless = RawGrafana(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
        endless=10_000_000_000,
    )
    [error] = annotate_raw(endless)
    assert "longer than 1,048,576 bytes, not read further" in error
    assert endless.sent < 100_000_000  # the connection was closed, not drained


def test_a_compressed_answer_is_bounded_as_it_is_decoded() -> None:
    # 10 MB of zeros gzip to ~10 KB: the bound is on what decoding gives.
    bomb = gzip.compress(b"0" * 10_000_000)
    endpoint = RawGrafana(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: " + str(len(bomb)).encode() + b"\r\n\r\n",
        body=bomb,
    )
    [error] = annotate_raw(endpoint)
    assert "longer than 1,048,576 bytes" in error


def test_a_redirect_is_not_followed() -> None:
    # Before: a 302 to itself was followed (the POST sent again as a GET) until
    # niquests' 30 redirects ran out.
    loop = RawGrafana(
        b"HTTP/1.1 302 Found\r\nLocation: /api/annotations\r\nContent-Length: 0\r\n\r\n"
    )
    [error] = annotate_raw(loop)
    assert "HTTP 302: a redirect to '/api/annotations', not followed" in error
    assert loop.calls == 1


def test_a_failure_that_cannot_be_recorded_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Before: on_error's own failure (the audit send, Kafka away) escaped the task.
    async def on_error(annotation_id: str, detail: str) -> None:
        raise RuntimeError("Kafka is unreachable")

    async def main() -> None:
        annotator = GrafanaAnnotator("http://127.0.0.1:9", TOKEN, on_error, timeout=1.0)
        assert annotator.submit("run-1:4", "text", ["citybrain"], 1_000)
        while annotator.in_flight:
            await asyncio.sleep(0.02)

    with caplog.at_level("WARNING", logger="playbooks.executors.grafana"):
        asyncio.run(main())
    [record] = caplog.records
    assert record.getMessage().startswith(
        "citybrain: annotation run-1:4 failed (http://127.0.0.1:9"
    )
    assert record.getMessage().endswith("RuntimeError: Kafka is unreachable")


def _grafana_example(host: str, port: int, *args: Any) -> list[Any]:
    """A resolver knowing one name, ``grafana.example``, as 127.0.0.1."""
    assert host == "grafana.example", host
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def test_grafanas_host_name_is_resolved_by_the_annotators_own_resolver(grafana: str) -> None:
    # t90: niquests resolved with loop.getaddrinfo on the loop's default executor.
    port = grafana.rsplit(":", 1)[1]
    _, errors = annotate(f"http://grafana.example:{port}", resolve=_grafana_example)
    assert errors == []
    assert len(StandInGrafana.received) == 1


def test_a_resolver_that_never_answers_costs_neither_the_loop_nor_its_executor() -> None:
    # t90: a Grafana whose host name's resolution hangs held one thread of asyncio's
    # default executor per annotation in flight (the call's timeout ended the await,
    # not the thread), and with them every other name resolution of the worker.
    hangs = NeverAnswers()

    errors: list[str] = []

    async def on_error(annotation_id: str, detail: str) -> None:
        errors.append(f"{annotation_id}: {detail}")

    async def annotate_ten() -> None:
        annotator = GrafanaAnnotator(
            "http://grafana.example:3000", TOKEN, on_error, timeout=1.0, resolve=hangs
        )
        for i in range(10):
            assert annotator.submit(f"run-{i}:1", "text", ["citybrain"], 1_000)
        while annotator.in_flight:
            await asyncio.sleep(0.02)
        await annotator.shutdown()

    # The loop's own resolution still has its executor's one thread.
    loop_still_resolves(annotate_ten, hangs)
    assert len(errors) == 10
    assert sorted(errors) == sorted(
        f"run-{i}:1: http://grafana.example:3000: resolving the host name "
        "'grafana.example' took longer than 0.5 s (the DNS resolver does not answer)"
        for i in range(10)
    )
