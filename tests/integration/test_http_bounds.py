"""Slow and greedy clients against a really started worker (operator API, /metrics) and
MQTT ingest (/metrics), with CITYBRAIN_HTTP_TIMEOUT=1 and a small
CITYBRAIN_HTTP_MAX_CONNECTIONS: a request head sent slowly is cut with a JSON 408 after
the timeout, a connection past the cap is a JSON 503, an over-long request line or header
a JSON 400 naming it; each counted in citybrain_api_refused_total{reason}. Before,
aiohttp held a slow connection for an hour (its 3,630 s keep-alive default), took any
number, and answered a long line in plain text quoting a Python bytearray;
prometheus_client's /metrics server had no bound at all."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.raw_http import read_all, send
from tests.services import OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration
CAP = 6
BOUNDED = {"CITYBRAIN_HTTP_TIMEOUT": "1", "CITYBRAIN_HTTP_MAX_CONNECTIONS": str(CAP)}


def json_answer(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer[:300]
    return int(head.split()[1]), json.loads(body)


def refused(port: int) -> dict[str, float]:
    """citybrain_api_refused_total by reason, as the server's /metrics says."""
    answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    found = {}
    for line in answer.decode().splitlines():
        if line.startswith("citybrain_api_refused_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('reason="')[1].split('"')[0]] = float(value)
    return found


def slow_head(port: int, path: bytes) -> tuple[float, bytes]:
    """A request line, then a header every 0.2 s, never the blank line that ends the
    head: how long until the server answered and closed, and its answer."""
    conn = send(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    with contextlib.suppress(OSError):
        for _ in range(50):  # 10 s of dripping, far past the 1 s timeout
            conn.sendall(b"X-Drip: 1\r\n")
            time.sleep(0.2)
    return time.monotonic() - start, read_all(conn)


def over_cap(port: int) -> bytes:
    """``CAP`` connections held open (sending nothing), then one more asking."""
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CAP)]
    try:
        time.sleep(0.1)
        return read_all(send(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
    finally:
        for conn in held:
            conn.close()


def check_bounds(port: int, path: bytes, server: str) -> None:
    took, answer = slow_head(port, path)
    assert took < 4, f"the slow client was held {took:.1f}s with a 1 s timeout"
    status, body = json_answer(answer)
    assert (status, body) == (
        408,
        {
            "error": "the request's line and headers were not sent within 1s "
            "(CITYBRAIN_HTTP_TIMEOUT); the connection is closed",
            "reason": "timeout",
        },
    )
    status, body = json_answer(over_cap(port))
    assert status == 503, body
    assert body == {
        "error": f"{server} serves at most {CAP} connections at once "
        "(CITYBRAIN_HTTP_MAX_CONNECTIONS) and has that many open; retry in a moment",
        "reason": "busy",
    }
    time.sleep(1.5)  # the held connections' ends reach the server
    check_long_lines(port, path, LIMITS["worker" if server == "the worker" else "ingest"])
    counted = refused(port)
    assert counted["busy"] >= 1 and counted["timeout"] >= 1 and counted["too_long"] >= 2, counted


# The limits each server reads up to: (line, header) bytes, status of a long request line,
# of a long header. The worker's are aiohttp's (400), the ingests' the standard library's.
LIMITS = {"worker": (8190, 8190, 400, 400), "ingest": (65_536, 65_536, 414, 431)}


def check_long_lines(port: int, path: bytes, limits: tuple[int, int, int, int]) -> None:
    """An over-long request line is named by its start, an over-long header by its name
    (cut to 64 characters), in the same words at the worker and at the ingests (helper
    brief t37: the ingests said only "a header line is longer than 65,536 bytes")."""
    line, field, line_status, header_status = limits
    status, body = json_answer(
        read_all(send(port, b"GET " + path + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n"))
    )
    assert status == line_status
    assert body == {
        "error": f"the request line is longer than the {line:,} bytes the server reads (it "
        f"starts {('GET ' + path.decode() + 'x' * 40)[:40]!r}...): shorten the URL",
        "reason": "too_long",
    }
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
    big = head + b"X-Big: " + b"v" * 70_000 + b"\r\n\r\n"
    assert json_answer(read_all(send(port, big))) == (
        header_status,
        {
            "error": f"header 'X-Big' is longer than the {field:,} bytes the server reads "
            "(its name and value)",
            "reason": "too_long",
        },
    )
    # A long name is cut to 64 characters.
    name = b"X-Long-" + b"n" * 73
    status, body = json_answer(
        read_all(send(port, head + name + b": " + b"v" * 70_000 + b"\r\n\r\n"))
    )
    assert (status, body) == (
        header_status,
        {
            "error": f"header {name.decode()[:64]!r}... is longer than the {field:,} bytes the "
            "server reads (its name and value)",
            "reason": "too_long",
        },
    )
    # The header named is the long one, not the last one read before it.
    after_another = head + b"X-Small: 1\r\n" + big[len(head) :]
    assert "'X-Big'" in json_answer(read_all(send(port, after_another)))[1]["error"]


@pytest.fixture
def bounded_worker(stack: Any, run_dir: Path) -> Iterator[Pipeline]:
    p = Pipeline(run_dir, extra_env=BOUNDED)
    worker = p.worker().start()
    try:
        yield p
    finally:
        worker.stop()
        p.close()


def test_the_worker_cuts_slow_clients_caps_connections_and_names_long_lines(
    bounded_worker: Pipeline,
) -> None:
    port = bounded_worker.settings.worker_port
    check_bounds(port, b"/api/v1/runs", "the worker")
    # The specific text of aiohttp's parser refusals, through the real worker.
    long_header = b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n"
    status, body = json_answer(read_all(send(port, long_header)))
    assert (status, body) == (
        400,
        {
            "error": "header 'X-Big' is longer than the 8,190 bytes the server reads (its "
            "name and value)",
            "reason": "too_long",
        },
    )
    # And the API still answers as before.
    assert bounded_worker.api("GET", "/runs", OPERATOR_TOKEN)[0] in (200, 503)


def test_the_mqtt_ingest_metrics_server_is_bounded_the_same_way(
    mosquitto: Any, run_dir: Path
) -> None:
    from tests.integration.test_ingest import mqtt_ingest, pipeline_for_ingest

    p = pipeline_for_ingest(run_dir)
    p.env.update(BOUNDED)
    ingest = mqtt_ingest(p).start()
    try:
        port = int(p.env["CITYBRAIN_INGEST_METRICS_PORT"])
        check_bounds(port, b"/metrics", "the MQTT ingest")
    finally:
        ingest.stop()
        p.close()
    assert "Traceback" not in ingest.log()


def test_the_http_ingest_names_a_long_line_as_the_worker_does(stack: Any, run_dir: Path) -> None:
    from tests.integration.test_ingest import http_ingest, pipeline_for_ingest

    p = pipeline_for_ingest(run_dir)
    p.env.update(BOUNDED)
    ingest = http_ingest(p).start()
    try:
        port = p.settings.ingest_http_port
        check_long_lines(port, b"/ingest/v1/readings", LIMITS["ingest"])
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(120))
        status, body = json_answer(
            read_all(send(port, b"POST /ingest/v1/readings HTTP/1.1\r\n" + many + b"\r\n"))
        )
        assert (status, body) == (
            431,
            {"error": "the request has more than 100 headers", "reason": "too_long"},
        )
        status, body = json_answer(read_all(send(port, b"GET /ingest/v1/health HTTP/9\r\n\r\n")))
        assert (status, body["reason"]) == (400, "bad_request")
        assert body["error"].startswith("the request is not HTTP/1.1 the HTTP ingest can read: ")
    finally:
        ingest.stop()
        p.close()
    assert "Traceback" not in ingest.log()


# t191: the cap's connections held by one client that sends nothing, for as long as the
# timeout lets it (30 s, the default), renewed as they are closed.
SLOWLORIS = {"CITYBRAIN_HTTP_TIMEOUT": "30", "CITYBRAIN_HTTP_MAX_CONNECTIONS": str(CAP)}


def hold_silent(port: int, count: int) -> list[socket.socket]:
    """``count`` connections to ``port`` that send nothing (some refused or closed by the
    server: kept all the same, as a slowloris client keeps them)."""
    held = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return held


def metrics_status(port: int) -> bytes:
    answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    return answer.split(b"\r\n", 1)[0]


def test_a_client_holding_every_connection_costs_no_api_call_nor_reading_its_answer(
    stack: Any, run_dir: Path
) -> None:
    # Before t191 a connection past the cap was refused 503 whatever the others did:
    # thirty connections sending nothing had every operator call, Prometheus' scrape
    # and gateway's post refused for as long as the client renewed them.
    from tests.integration.test_ingest import GAUGE_READING, http_ingest, pipeline_for_ingest, post

    p = pipeline_for_ingest(run_dir)
    p.env.update(SLOWLORIS)
    worker = p.worker().start()
    ingest = http_ingest(p).start()
    held: list[socket.socket] = []
    try:
        port, ingest_port = p.settings.worker_port, p.settings.ingest_http_port
        assert p.api_until("/runs", OPERATOR_TOKEN, lambda s, b: s == 200)[0] == 200
        answers = []
        for n in range(3):
            held += hold_silent(port, 30) + hold_silent(ingest_port, 30)
            time.sleep(1.2)  # past the 1 s a connection may wait before its place is taken
            answers.append(p.api("GET", "/runs", OPERATOR_TOKEN)[0])
            answers.append(metrics_status(port))
            reading = {**GAUGE_READING, "ts": GAUGE_READING["ts"].replace(":00:00", f":0{n}:00")}
            status, body = post(p, "/ingest/v1/readings", json.dumps([reading]).encode())
            answers.append((status, body.get("accepted")))
        assert answers == [200, b"HTTP/1.1 200 OK", (200, 1)] * 3
        counted = refused(port)
        assert counted["timeout"] >= 6 and counted["busy"] >= 1, counted
    finally:
        for conn in held:
            conn.close()
        ingest.stop()
        worker.stop()
        p.close()
    said = "had all its 6 connections open (CITYBRAIN_HTTP_MAX_CONNECTIONS): closed "
    assert f"web: the worker {said}" in worker.log()
    assert f"ingest: the HTTP ingest {said}" in ingest.log()
    assert "Traceback" not in ingest.log()
