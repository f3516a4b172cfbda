"""citybrain/ingest/bounded.py: the MQTT ingest's /metrics server (prometheus_client's,
unbounded, before) under the same bounds as the worker's, on a loopback port."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from citybrain.ingest.metrics import IngestMetrics
from citybrain.ingest.service import serve_metrics_from
from streams.bounds import Bounds
from tests.raw_http import read_all, send


def started(bounds: Bounds) -> tuple[int, IngestMetrics, Callable[[], None]]:
    metrics = IngestMetrics.create("mqtt", lambda: 7, CollectorRegistry())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop, taken = serve_metrics_from(metrics, "127.0.0.1", port, 1, bounds)
    assert taken == port
    return port, metrics, stop


def refused(metrics: IngestMetrics) -> dict[str, float]:
    assert metrics.server_refused is not None
    return {
        s.labels["reason"]: s.value
        for family in metrics.server_refused.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }


def counted_soon(
    metrics: IngestMetrics, reason: str, at_least: int = 1, wait: float = 10.0
) -> float:
    """``reason``'s refusal count once it is ``at_least``, or after ``wait`` seconds: a
    refusal is counted by its connection's thread, after the answer the test reads."""
    end = time.monotonic() + wait
    while refused(metrics)[reason] < at_least and time.monotonic() < end:
        time.sleep(0.05)
    return refused(metrics)[reason]


def body(answer: bytes) -> dict[str, object]:
    head, _, data = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    return json.loads(data)  # type: ignore[no-any-return]


def test_metrics_are_served_with_the_name_filter_and_json_refusals() -> None:
    port, _, stop = started(Bounds(timeout=5))
    try:
        answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 200") and b"citybrain_ingest_readings_total" in answer
        assert b'citybrain_api_refused_total{reason="busy"} 0.0' in answer
        query = b"GET /metrics?name[]=citybrain_dead_letters_total HTTP/1.1\r\n"
        answer = read_all(send(port, query + b"Connection: close\r\n\r\n"))
        assert b"citybrain_dead_letters_total" in answer
        assert b"citybrain_api_refused_total" not in answer
        answer = read_all(send(port, b"GET /nope HTTP/1.1\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 404") and "GET /metrics" in body(answer)["error"]
        answer = read_all(send(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD\r\n" in answer
        assert b"\r\nConnection: close\r\n" in answer  # its body is left unread (t150)
    finally:
        stop()


def test_a_request_line_or_header_too_long_is_a_json_answer_naming_it() -> None:
    port, metrics, stop = started(Bounds(timeout=5))
    try:
        answer = read_all(send(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 414"), answer[:80]
        # Named as the worker names them (helper brief t37: "a header line is longer
        # than 65,536 bytes" did not say which).
        assert body(answer) == {
            "error": "the request line is longer than the 65,536 bytes the server reads "
            "(it starts 'GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'...): shorten the URL",
            "reason": "too_long",
        }
        big = b"GET /metrics HTTP/1.1\r\nX-Small: 1\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n"
        answer = read_all(send(port, big))
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
        assert body(answer) == {
            "error": "header 'X-Big' is longer than the 65,536 bytes the server reads "
            "(its name and value)",
            "reason": "too_long",
        }
        # A name cut to 64 characters, its control characters escaped; on a connection
        # that was answered before (the head is followed anew for each request).
        name = b"X-\x1b[31m" + b"n" * 80
        first = b"GET /metrics HTTP/1.1\r\n\r\n"
        answer = read_all(send(port, first + b"GET /metrics HTTP/1.1\r\n" + name + b": v" * 40_000))
        assert body(answer.rpartition(b"HTTP/1.1 431")[2]) == {
            "error": f"header {name.decode()[:64]!r}... is longer than the 65,536 bytes the "
            "server reads (its name and value)",
            "reason": "too_long",
        }
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(120))
        answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\n" + many + b"\r\n"))
        assert body(answer) == {
            "error": "the request has more than 100 headers",
            "reason": "too_long",
        }
        answer = read_all(send(port, b"GET /metrics HTTP/9\r\n\r\n"))
        assert body(answer)["reason"] == "bad_request"
        assert refused(metrics) == {"busy": 0, "timeout": 0, "too_long": 4, "bad_request": 1}
    finally:
        stop()


def test_a_slow_client_is_cut_at_the_timeout_and_the_cap_holds() -> None:
    """prometheus_client's server kept a thread per connection for as long as a client
    held it, and took any number of them."""
    port, metrics, stop = started(Bounds(timeout=1, max_connections=3))
    try:
        drip = send(port, b"GET /metrics HTTP/1.1\r\n")
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(0.2)
        answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
        assert body(answer) == {
            "error": "the MQTT ingest serves at most 3 connections at once "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS) and has that many open; retry in a moment",
            "reason": "busy",
        }
        start = time.monotonic()
        with contextlib.suppress(OSError):
            for _ in range(20):  # a header every 0.2 s, never the blank line
                drip.sendall(b"X-Drip: 1\r\n")
                time.sleep(0.2)
        answer = read_all(drip)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert body(answer)["reason"] == "timeout"
        assert time.monotonic() - start < 3
        for conn in silent:
            assert read_all(conn) == b""  # closed, nothing said
        time.sleep(0.2)
        answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 200")
        assert refused(metrics) == {"busy": 1, "timeout": 3, "too_long": 0, "bad_request": 0}
    finally:
        stop()


def test_a_body_sent_with_a_get_is_read_past_not_taken_for_the_next_request() -> None:
    """t150: the body of a GET /metrics was left in the socket and read as the next
    request's line: the scrape after it on the same connection got ``501 Unsupported
    method ('{"a":1}GET')``."""
    port, metrics, stop = started(Bounds(timeout=5))
    try:
        first = b'GET /metrics HTTP/1.1\r\nContent-Length: 7\r\n\r\n{"a":1}'
        answers = read_all(
            send(port, first + b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        )
        assert answers.count(b"HTTP/1.1 200 OK\r\n") == 2, answers[-300:]
        assert b"501" not in answers
        assert refused(metrics)["bad_request"] == 0
    finally:
        stop()


def test_a_request_the_parser_misreads_is_answered_at_once_at_metrics_too() -> None:
    """t165, as at the HTTP ingest: a target urlsplit cannot read got no answer (a
    traceback in the log), an HTTP/0.9 line none until the timeout, and the headers
    after a line with no colon were dropped unsaid."""
    port, _, stop = started(Bounds(timeout=5))
    try:
        for request, status in (
            (b"GET http://[::1/metrics HTTP/1.1\r\n\r\n", b"404"),
            (b"GET /metrics\r\n", b"400"),
            (b"GET /metrics HTTP/1.1\r\nbad line\r\nConnection: close\r\n\r\n", b"400"),
        ):
            started_at = time.monotonic()
            answer = read_all(send(port, request))
            assert answer.startswith(b"HTTP/1.1 " + status), answer
            assert body(answer)["error"] and time.monotonic() - started_at < 4
    finally:
        stop()


def test_a_connection_past_the_cap_takes_the_place_of_the_one_waiting_longest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """t191: every connection past the cap was refused 503, so one client holding the
    cap's connections and sending nothing (slowloris) had Prometheus' scrapes (and, at
    the HTTP ingest, every gateway's readings) refused for as long as it renewed them."""
    port, metrics, stop = started(Bounds(timeout=30, max_connections=3))
    try:
        part = send(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        time.sleep(0.05)  # it is the oldest
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(1.3)  # all three waited past evict_after (1 s)
        with caplog.at_level("WARNING", logger="citybrain.ingest"):
            for _ in range(3):  # each answered; the first took the part-sent head's place
                ask = b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"
                answer = read_all(send(port, ask))
                assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        told = read_all(part)
        assert told.startswith(b"HTTP/1.1 408"), told[:80]
        error = str(body(told)["error"])
        assert error.startswith("the request's line and headers were not all sent 1."), error
        assert error.endswith(
            "s after the connection began, while the MQTT ingest had all its 3 connections "
            "open (CITYBRAIN_HTTP_MAX_CONNECTIONS): the connection is closed to serve "
            "another; send the request as you connect"
        ), error
        for conn in silent:
            conn.close()
        # The part-sent head, and a silent one when an answered request's place was not
        # free yet (its thread ending): said once, in one line.
        assert refused(metrics)["busy"] == 0 and 1 <= counted_soon(metrics, "timeout") <= 3
        [line] = [r.getMessage() for r in caplog.records]
        assert line.startswith(
            "ingest: the MQTT ingest had all its 3 connections open "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS): closed 1 that had sent no whole request for a "
            "while to serve new ones (the last from 127.0.0.1, after 1."
        ), line
    finally:
        stop()


def test_a_connection_kept_after_its_answer_is_the_last_to_lose_its_place() -> None:
    port, metrics, stop = started(Bounds(timeout=30, max_connections=3))
    try:
        kept = send(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        reader = kept.makefile("rb")
        length = 0
        while (line := reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        reader.read(length)  # answered; kept for its next request
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(1.3)  # all three past evict_after, the kept one the oldest
        answer = read_all(send(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        kept.sendall(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert reader.readline().startswith(b"HTTP/1.1 200")
        for conn in silent:
            conn.close()
        # Counted by the closed connection's own thread as it answers its 408: after the
        # place was given (a slow machine reads the count before it).
        assert counted_soon(metrics, "timeout") == 1
    finally:
        stop()


def test_a_flood_of_silent_connections_costs_no_scrape_its_answer() -> None:
    # One client keeps the cap's connections open and sends nothing, opening more as
    # its old ones are closed; every scrape is answered.
    port, metrics, stop = started(Bounds(timeout=30, max_connections=8))
    held: list[socket.socket] = []
    try:
        answered = []
        for _ in range(4):
            held += [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
            time.sleep(1.1)
            for _ in range(3):
                ask = b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"
                answered.append(read_all(send(port, ask)).split(b"\r\n", 1)[0])
        assert answered == [b"HTTP/1.1 200 OK"] * 12
        assert counted_soon(metrics, "timeout", at_least=12) >= 12
    finally:
        for conn in held:
            conn.close()
        stop()
