"""The ingest's answers and counts, on an in-process server (port 0) and an MQTT ingest
that never connects: a publisher stand-in takes what would go to Kafka.

Trial 3: GET on a POST path was 404 "no such path"; the 401 said "missing or unknown";
the ingest served no metrics, so its dead letters never reached Prometheus; an empty
retained publish (MQTT's way to clear a retained value) was dead-lettered bad_payload."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from prometheus_client.parser import text_string_to_metric_families

from citybrain.errors import ListenError
from citybrain.ingest.http import IngestHttpServer
from citybrain.ingest.mapping import MqttMapping
from citybrain.ingest.metrics import IngestMetrics
from citybrain.ingest.mqtt import MqttIngest
from citybrain.ingest.ngsi import NgsiMapping
from citybrain.ingest.publisher import PublisherStats
from citybrain.ingest.service import (
    IngestOptions,
    run_http,
    run_mqtt,
    serve_metrics,
    serve_metrics_from,
)
from playbooks.grid import Grid
from streams.auth import TokenStore, hash_token
from streams.bounds import Bounds
from streams.events import EventValidator, Reading
from streams.settings import Settings
from tests.raw_http import read_all, send
from tests.unit.citybrain.ingest.conftest import T_NOW, example
from tests.unit.citybrain.ingest.test_http import GOOD

GATEWAY = "gw-secret"


class Kafka:
    """Stands in for PackPublisher: acknowledges at once, keeps what it was given."""

    def __init__(self) -> None:
        self.stats = PublisherStats()
        self.pending = 0
        self.readings: list[Reading] = []
        self.dead: list[tuple[bytes, list[tuple[str, bytes]]]] = []
        self.keys: list[bytes | None] = []  # each dead letter's key
        self.originals: list[list[tuple[str, bytes]]] = []  # what each sender sent beside

    def submit(self, reading: Reading, done: Any, timeout: float | None = None) -> bool:
        self.readings.append(reading)
        self.stats.readings += 1
        done()
        return True

    def dead_letter(
        self,
        value: bytes,
        key: Any,
        headers: list[tuple[str, bytes]],
        done: Any,
        timeout: float | None = None,
        original: Any = (),
    ) -> bool:
        self.dead.append((value, headers))
        self.originals.append(list(original))
        self.keys.append(key)
        done()
        return True


def mqtt_ingest(grid: Grid, kafka: Kafka, **kw: Any) -> MqttIngest:
    """An MQTT ingest on ``grid`` publishing to the in-memory ``kafka``, never connected
    (``handle`` is called directly)."""
    return MqttIngest(
        "127.0.0.1",
        1,
        MqttMapping.build(grid),
        EventValidator(grid),
        kafka,  # type: ignore[arg-type]
        **kw,
    )


Labels = tuple[tuple[str, str], ...]


def samples(text: str, name: str) -> dict[Labels, float]:
    """``name``'s samples in a /metrics text, keyed by their sorted (label, value) pairs."""
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


@pytest.fixture
def server(ingest_grid: Grid) -> Iterator[IngestHttpServer]:
    tokens = TokenStore([(hash_token(GATEWAY), "gateway", "gateway")])
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        tokens,
        clock=lambda: T_NOW,
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(
    srv: IngestHttpServer,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/ingest/v1/readings", "POST"),
        ("GET", "/ingest/v1/ngsi", "POST"),
        ("PUT", "/ingest/v1/readings", "POST"),
        ("POST", "/ingest/v1/health", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        # Trial 13: methods with no handler were the standard library's HTML 501.
        ("TRACE", "/ingest/v1/readings", "POST"),
        ("HEAD", "/ingest/v1/readings", "POST"),
        ("BREW", "/metrics", "GET, HEAD"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(
    server: IngestHttpServer, method: str, path: str, allow: str
) -> None:
    status, headers, body = call(
        server, method, path, b"{}" if method not in ("GET", "HEAD", "TRACE") else None
    )
    assert (status, headers["Allow"]) == (405, allow)
    if method != "HEAD":  # a HEAD answer has no body
        assert json.loads(body)["error"] == f"{path} takes {allow}, not {method}"


def test_head_is_answered_as_get_without_a_body(server: IngestHttpServer) -> None:
    status, headers, body = call(server, "HEAD", "/ingest/v1/health")
    assert (status, headers["Content-Type"], body) == (200, "application/json", b"")
    assert int(headers["Content-Length"]) > 0


def statuses(answers: bytes) -> list[bytes]:
    """The status lines of the answers read off one connection (an answer's body ends
    with no line break before the next status line)."""
    return re.findall(rb"HTTP/1\.[01] [0-9]{3} [^\r]*", answers)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_body_sent_with_a_get_costs_the_next_request_on_the_connection_nothing(
    server: IngestHttpServer, method: str
) -> None:
    """t150: the health check's body was left in the socket and read as the next
    request's line, so a good POST after it on the same (keep-alive) connection was
    answered ``405 … not {"a":1}POST`` and its reading lost."""
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    reading = json.dumps([GOOD]).encode()
    post = (
        f"POST /ingest/v1/readings HTTP/1.1\r\nAuthorization: Bearer {GATEWAY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(reading)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + reading
    probe = f"{method} /ingest/v1/health HTTP/1.1\r\nContent-Length: 7\r\n\r\n".encode()
    answers = read_all(send(server.server_address[1], probe + b'{"a":1}' + post))
    assert statuses(answers) == [b"HTTP/1.1 200 OK"] * 2, answers
    assert answers.endswith(b'{"accepted":1}')
    assert [r.sensor_id for r in kafka.readings] == ["gauge-1"]


@pytest.mark.parametrize(
    "framing",
    [b"Transfer-Encoding: chunked", b"Content-Length: x", b"Content-Length: 99999999999999"],
)
def test_a_get_body_whose_end_cannot_be_found_closes_the_connection_once_answered(
    server: IngestHttpServer, framing: bytes
) -> None:
    """Its bytes are never read as another request: the connection is closed after the
    answer (a chunked body is not decoded here; a length past any body is not waited for)."""
    probe = b"GET /ingest/v1/health HTTP/1.1\r\n" + framing + b"\r\n\r\n"
    answers = read_all(send(server.server_address[1], probe + b"7\r\nPOST / H\r\n0\r\n\r\n"))
    assert statuses(answers) == [b"HTTP/1.1 200 OK"], answers


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /ingest/v1/readings HTTP/1.1\r\nContent-Length: 2", 401),
        (b"POST /ingest/v1/readings HTTP/1.1\r\nAUTH\r\nContent-Type: text/plain\r\nCL2", 415),
        (b"POST /ingest/v1/readings HTTP/1.1\r\nAUTH\r\nContent-Encoding: gzip\r\nCL2", 415),
        (b"POST /ingest/v1/readings HTTP/1.1\r\nAUTH\r\nContent-Length: 9999999", 413),
        (b"POST /ingest/v1/readings HTTP/1.1\r\nAUTH\r\nTransfer-Encoding: chunked", 411),
        (b"POST /ingest/v1/readingz HTTP/1.1\r\nContent-Length: 2", 404),
        (b"PUT /ingest/v1/readings HTTP/1.1\r\nContent-Length: 2", 405),
    ],
)
def test_an_answer_that_closes_its_connection_says_so(
    server: IngestHttpServer, head: bytes, status: int
) -> None:
    """t150: a refusal whose body is left unread closes the connection, but the answer
    did not say so: a client that reused the kept-alive connection for its next (good)
    POST had that one fail on the closed socket. Now ``Connection: close`` tells it to
    open a new one; an answer that keeps the connection (a 400 for a body that was read)
    says nothing of it."""
    auth = f"Authorization: Bearer {GATEWAY}".encode()
    request = head.replace(b"AUTH", auth).replace(b"CL2", b"Content-Length: 2")
    answer = read_all(send(server.server_address[1], request + b"\r\n\r\n{}"))
    first, _, _ = answer.partition(b"\r\n\r\n")
    assert first.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"\r\nConnection: close" in first, first

    bad = b"POST /ingest/v1/readings HTTP/1.1\r\n" + auth + b"\r\nContent-Length: 2\r\n\r\n{}"
    conn = send(server.server_address[1], bad)
    data = b""
    while b'"errors"' not in data and (chunk := conn.recv(65536)):
        data += chunk
    conn.close()
    assert data.startswith(b"HTTP/1.1 400 ") and b"Connection:" not in data, data


EXPECT = b"Expect: 100-continue\r\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Authorization: Bearer wrong\r\nContent-Length: 900000\r\n", 401),
        (b"AUTH\r\nContent-Length: 50000000\r\n", 413),
        (b"AUTH\r\nContent-Type: text/plain\r\nContent-Length: 900000\r\n", 415),
    ],
)
def test_a_refused_request_that_awaits_100_continue_gets_its_refusal_not_continue(
    server: IngestHttpServer, head: bytes, status: int
) -> None:
    """t165: the standard library answered ``Expect: 100-continue`` on reading the
    headers, before any check, so a client with a wrong token, or a 50 MB body, was
    told to send it, and the 401 or 413 came while it sent, the connection closed under
    it (a broken pipe, the answer lost). Now the refusal comes instead of the 100 and
    the connection is closed (the client may or may not send its body)."""
    head = head.replace(b"AUTH", f"Authorization: Bearer {GATEWAY}".encode())
    request = b"POST /ingest/v1/readings HTTP/1.1\r\n" + head + EXPECT + b"\r\n"
    answer = read_all(send(server.server_address[1], request))
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"100 Continue" not in answer and b"\r\nConnection: close\r\n" in answer


def test_a_good_request_that_awaits_100_continue_is_told_to_send_its_body(
    server: IngestHttpServer,
) -> None:
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    body = json.dumps([GOOD]).encode()
    head = (
        f"POST /ingest/v1/readings HTTP/1.1\r\nAuthorization: Bearer {GATEWAY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    conn = send(server.server_address[1], head + EXPECT + b"\r\n")
    assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.sendall(body)
    answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"accepted":1}'), answer
    assert [r.sensor_id for r in kafka.readings] == ["gauge-1"]


def test_a_get_that_awaits_100_continue_closes_its_connection_once_answered(
    server: IngestHttpServer,
) -> None:
    """Never told to send its body, the client may send it or not: waiting for it would
    hold the connection until the timeout, reading it as the next request would take it
    for one (t150), so the answer says ``Connection: close``."""
    probe = b"GET /ingest/v1/health HTTP/1.1\r\nContent-Length: 7\r\n" + EXPECT + b"\r\n"
    started = time.monotonic()
    answer = read_all(send(server.server_address[1], probe))
    assert statuses(answer) == [b"HTTP/1.1 200 OK"], answer
    assert b"\r\nConnection: close\r\n" in answer and time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /ingest/v1/health HTTP/9.9\r\n\r\n", 505),
        (b"G\x00T / HTTP/1.1 extra\r\n\r\n", 400),
    ],
)
def test_what_the_standard_library_refuses_is_answered_in_json(
    server: IngestHttpServer, request_bytes: bytes, status: int
) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1])) as conn:
        conn.sendall(request_bytes)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()) or head.startswith(
        f"HTTP/1.0 {status} ".encode()
    ), head[:100]
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "said"),
    [
        # urlsplit raised ValueError (a bracket never closed): no answer, a traceback.
        (b"GET http://[::1/ingest/v1/health HTTP/1.1\r\n\r\n", 404, "no such path"),
        (b"POST http://[::1/ingest/v1/readings HTTP/1.1\r\n\r\n", 404, "no such path"),
        # HTTP/0.9's form: the server waited for headers never sent, answered nothing.
        (b"GET /ingest/v1/health\r\n", 400, "has no HTTP version"),
        # A header line with no colon: every header after it was dropped unsaid (this
        # Connection: close, a POST's Content-Length, a GET's body framing).
        (
            b"GET /ingest/v1/health HTTP/1.1\r\nX-Gw: 1\r\nno colon\r\nConnection: close\r\n\r\n",
            400,
            "header line 'no colon' is not 'Name: value'",
        ),
        (
            b"GET /ingest/v1/health HTTP/1.1\r\n X-Gw: 1\r\nConnection: close\r\n\r\n",
            400,
            "header line ' X-Gw: 1' starts with white space",
        ),
        (
            b"GET /ingest/v1/health HTTP/1.1\r\n: 1\r\nConnection: close\r\n\r\n",
            400,
            "a header line has no name before its colon",
        ),
    ],
)
def test_a_request_the_parser_misreads_is_answered_at_once_naming_it(
    server: IngestHttpServer, request_bytes: bytes, status: int, said: str
) -> None:
    """t165: each was answered by no one (a closed connection or the 30 s timeout), or
    read with headers silently lost."""
    started = time.monotonic()
    answer = read_all(send(server.server_address[1], request_bytes))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert said in json.loads(body)["error"] and time.monotonic() - started < 5


def test_a_gzipped_body_is_415_with_accept_encoding(server: IngestHttpServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/ingest/v1/readings"
    headers = {
        "Authorization": f"Bearer {GATEWAY}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    request = urllib.request.Request(
        url, data=gzip.compress(json.dumps(GOOD).encode()), method="POST", headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert (raised.value.code, raised.value.headers["Accept-Encoding"]) == (415, "identity")
    assert json.loads(raised.value.read())["field"] == "Content-Encoding"


def test_an_unknown_path_is_404_listing_the_paths(server: IngestHttpServer) -> None:
    status, _, body = call(server, "GET", "/ingest/v1/reading")
    assert status == 404
    assert "POST /ingest/v1/readings" in json.loads(body)["error"]
    # A letter off: the path meant, as the operator API answers it.
    assert json.loads(body)["error"].endswith(" (did you mean '/ingest/v1/readings'?)")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/ingest/v1/readings/"), ("GET", "/ingest/v1/health//")]
)
def test_a_trailing_slash_is_404_naming_the_path_without_it(
    server: IngestHttpServer, method: str, path: str
) -> None:
    # Trial 25: the operator API's sibling; the 404 listed the paths as if none were meant.
    status, _, body = call(server, method, path, b"{}" if method == "POST" else None)
    assert status == 404
    meant = path.rstrip("/")
    assert json.loads(body)["error"] == (
        f"no such path {path!r}; without the trailing slash, {meant!r}"
    )


def test_401_tells_a_missing_token_from_an_unknown_one(server: IngestHttpServer) -> None:
    status, _, body = call(server, "POST", "/ingest/v1/readings", b"{}")
    assert status == 401
    assert json.loads(body)["error"].startswith("no bearer token: send the header")
    status, _, body = call(server, "POST", "/ingest/v1/readings", b"{}", token="nope")
    assert status == 401
    assert json.loads(body)["error"].startswith("unknown bearer token")


def test_an_ingest_without_tokens_says_which_setting_to_set(ingest_grid: Grid) -> None:
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        TokenStore([]),
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, _, body = call(srv, "POST", "/ingest/v1/readings", b"{}", token=GATEWAY)
        assert status == 401
        assert "the ingest has no tokens configured" in json.loads(body)["error"]
        assert "CITYBRAIN_API_TOKENS_FILE" in json.loads(body)["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_refused_readings_and_sent_ones_are_on_metrics(server: IngestHttpServer) -> None:
    good = GOOD
    bad = [{**good, "value": "high"}, {**good, "sensor_id": "gauge-99"}]
    assert call(server, "POST", "/ingest/v1/readings", json.dumps(bad).encode(), GATEWAY)[0] == 400
    assert (
        call(server, "POST", "/ingest/v1/readings", json.dumps([good]).encode(), GATEWAY)[0] == 200
    )
    assert call(server, "POST", "/ingest/v1/ngsi", b"{}", token="nope")[0] == 401
    status, headers, text = call(server, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    refused = samples(text.decode(), "citybrain_ingest_refused_total")
    assert refused[(("reason", "bad_type"), ("stream", "http"))] == 1
    assert refused[(("reason", "unknown_sensor"), ("stream", "http"))] == 1
    assert refused[(("reason", "unauthenticated"), ("stream", "ngsi"))] == 1
    sent = samples(text.decode(), "citybrain_ingest_readings_total")
    assert sent == {(("stream", "http"),): 1}


@pytest.mark.parametrize(
    "path",
    [
        "/ingest/v1/ngsi?subscription=air&token=x",  # Orion httpCustom "qs"
        "/ingest/v1/ngsi?",
        "http://ingest.example:16080/ingest/v1/ngsi",  # absolute form, as via a proxy
    ],
)
def test_a_notification_url_with_a_query_reaches_its_path(
    server: IngestHttpServer, path: str
) -> None:
    # Trial 13: 404 "no such path '/ingest/v1/ngsi?…'", which Orion does not retry.
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    body = json.dumps({"data": [example("AirQualityObserved")]}).encode()
    if path.startswith("http:"):  # urllib would send the path alone
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GATEWAY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    else:
        assert call(server, "POST", path, body, GATEWAY)[:1] == (200,)
    assert [r.kind for r in kafka.readings] == ["no2"]


def test_one_bad_reading_of_a_body_is_dead_lettered_and_the_rest_sent(
    server: IngestHttpServer,
) -> None:
    """Trial 5: an NGSI entity with an unregistered attribute was a 400 for the whole
    notification, and Orion does not retry a 4xx: the registered readings were lost. Now
    each reading stands alone (as in the worker's packs), for NGSI and readings bodies."""
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    entity = example("AirQualityObserved")
    entity["pm10"] = {"type": "Number", "value": 12.0}  # no sensor registered for it
    status, _, body = call(
        server, "POST", "/ingest/v1/ngsi", json.dumps({"data": [entity]}).encode(), GATEWAY
    )
    answer = json.loads(body)
    assert (status, answer["accepted"], answer["refused"]) == (200, 1, 1)
    assert [e["field"] for e in answer["errors"]] == ["data[0].pm10"]
    assert answer["error"].startswith('1 accepted, 1 refused (dead-lettered): field "data[0].pm10"')
    assert [r.kind for r in kafka.readings] == ["no2"]
    [(value, headers)] = kafka.dead
    said = dict(headers)
    assert said["citybrain.error.reason"] == b"unknown_sensor"
    assert said["citybrain.error.origin"] == b"http:/ingest/v1/ngsi"
    assert b"data[0].pm10" in said["citybrain.error.message"]
    assert json.loads(value)["pm10"] == entity["pm10"]

    listed = [GOOD, {**GOOD, "value": "high"}]
    status, _, body = call(
        server, "POST", "/ingest/v1/readings", json.dumps(listed).encode(), GATEWAY
    )
    answer = json.loads(body)
    assert (status, answer["accepted"], answer["refused"]) == (200, 1, 1)
    # The reading as it was sent (its own bytes, no "schema" added: trial 62).
    assert json.loads(kafka.dead[-1][0]) == {**GOOD, "value": "high"}
    # A reading's dead letter is keyed by its sensor id; the NGSI entity has none.
    assert kafka.keys == [None, GOOD["sensor_id"].encode()]
    text = call(server, "GET", "/metrics")[2].decode()
    refused = samples(text, "citybrain_ingest_refused_total")
    assert refused[(("reason", "unknown_sensor"), ("stream", "ngsi"))] == 1
    assert refused[(("reason", "bad_type"), ("stream", "http"))] == 1


def test_an_answer_past_100_refusals_names_every_refused_field(server: IngestHttpServer) -> None:
    """t198: of a body with 150 bad readings, the answer told the first 100 and said of
    the other 50 only that they were refused: which ones, the sender could not read
    (fails on the old code). Now ``refused_fields`` names each, in body order; an answer
    of 100 refusals or fewer is as before."""
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    listed = [GOOD] + [{**GOOD, "value": "high"}] * 80 + [{**GOOD, "unit": "m"}] * 70
    status, _, body = call(
        server, "POST", "/ingest/v1/readings", json.dumps(listed).encode(), GATEWAY
    )
    answer = json.loads(body)
    assert (status, answer["accepted"], answer["refused"], len(answer["errors"])) == (
        200,
        1,
        150,
        100,
    )
    assert answer["refused_fields"] == [f"readings[{i}].value" for i in range(1, 81)] + [
        f"readings[{i}].unit" for i in range(81, 151)
    ]
    assert len(kafka.dead) == 150
    status, _, body = call(
        server, "POST", "/ingest/v1/readings", json.dumps(listed[1:]).encode(), GATEWAY
    )
    answer = json.loads(body)
    assert (status, len(answer["errors"]), len(answer["refused_fields"])) == (400, 100, 150)
    status, _, body = call(
        server, "POST", "/ingest/v1/readings", json.dumps(listed[:101]).encode(), GATEWAY
    )
    assert "refused_fields" not in json.loads(body)


def test_two_values_for_one_sensor_at_one_time_are_dead_lettered_and_the_rest_sent(
    server: IngestHttpServer,
) -> None:
    """Trial 21: both went to Kafka and the worker dropped the second as a duplicate."""
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    other = {**GOOD, "sensor_id": "gauge-2", "grid_cell": "c-mill"}
    listed = [GOOD, other, {**GOOD, "value": 9.5}]
    status, _, body = call(
        server, "POST", "/ingest/v1/readings", json.dumps(listed).encode(), GATEWAY
    )
    answer = json.loads(body)
    assert (status, answer["accepted"], answer["refused"]) == (200, 1, 2)
    assert [r.sensor_id for r in kafka.readings] == ["gauge-2"]
    assert [json.loads(value)["value"] for value, _ in kafka.dead] == [GOOD["value"], 9.5]
    assert {dict(h)["citybrain.error.reason"] for _, h in kafka.dead} == {b"conflicting_reading"}
    text = call(server, "GET", "/metrics")[2].decode()
    refused = samples(text, "citybrain_ingest_refused_total")
    assert refused[(("reason", "conflicting_reading"), ("stream", "http"))] == 2


def test_mqtt_dead_letters_count_in_the_workers_family(ingest_grid: Grid) -> None:
    kafka = Kafka()
    metrics = IngestMetrics.create("mqtt", lambda: kafka.stats.readings)
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW, metrics=metrics)
    acked: list[str] = []
    ingest.handle("city/e/gauge-99/water_level", b"1.5", lambda: acked.append("unknown"))
    ingest.handle("city/e/gauge-1/water_level", b"oops", lambda: acked.append("bad"))
    ingest.handle("city/e/gauge-1/water_level", b"2.5", lambda: acked.append("good"))
    assert acked == ["unknown", "bad", "good"]
    dead = samples(metrics.exposition().decode(), "citybrain_dead_letters_total")
    assert {k: v for k, v in dead.items() if v} == {
        (("reason", "unknown_sensor"), ("stream", "mqtt")): 1,
        (("reason", "bad_payload"), ("stream", "mqtt")): 1,
    }
    # The other reasons are there at 0, so increase() counts each one's first (trial 28).
    assert dead[(("reason", "bad_unit"), ("stream", "mqtt"))] == 0
    assert all(dict(headers)["citybrain.error.stream"] == b"mqtt" for _, headers in kafka.dead)
    # Keyed by the sensor the topic names, as every reading's dead letter (docs/events.md).
    assert kafka.keys == [b"gauge-99", b"gauge-1"]


def test_an_mqtt_dead_letter_without_a_sensor_is_keyed_by_its_topic(ingest_grid: Grid) -> None:
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    ingest.handle("elsewhere/x", b"1.5", lambda: None)
    assert kafka.keys == [b"elsewhere/x"]


def test_a_payload_that_is_not_utf8_is_shown_as_its_bytes(ingest_grid: Grid) -> None:
    # Trial 8: the message echoed U+FFFD replacement characters, hiding the byte.
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    ingest.handle("city/e/gauge-1/water_level", b"\xff\xfe{}", lambda: None)
    message = dict(kafka.dead[0][1])["citybrain.error.message"].decode()
    assert message.startswith("field \"payload\" is b'\\xff\\xfe{}': expected a number")
    assert "byte 0xff at offset 0 is not UTF-8" in message


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        # The payload's own field names (--value-field level --ts-field time): the
        # reading's 'value' and 'ts' are no field the sender wrote.
        (b'{"level": 99999}', 'field "level" is 99999: kind water_level is plausible'),
        (b'{"level": "x"}', "field \"level\" is 'x': expected a number"),
        (
            b'{"level": 2.5, "time": "2029-09-21T14:00:00Z"}',
            "field \"time\" is '2029-09-21T14:00:00Z': event time is more than 300s ahead",
        ),
        # Epoch seconds are named by the number sent, then the instant read from it.
        (
            b'{"level": 2.5, "time": 1890000000}',
            'field "time" is 1890000000: 2029-11-22T00:00:00Z: event time is more than',
        ),
        (
            b'{"level": 2.5, "time": "1890000000"}',
            "field \"time\" is '1890000000': 2029-11-22T00:00:00Z: event time is more than",
        ),
        # A unit as spelt, not the spelling read from it; a number in a string as sent.
        ('{"level": 2.5, "unit": "µg/m³"}'.encode(), "field \"unit\" is 'µg/m³': kind"),
        (b'{"level": "99999"}', "field \"level\" is '99999': kind water_level is"),
        # A plain number has no field of its own: the reading's value it stays.
        (b"99999", 'field "value" is 99999: kind water_level is plausible'),
    ],
)
def test_an_mqtt_refusal_names_the_payload_field_and_value_as_sent(
    ingest_grid: Grid, payload: bytes, says: str
) -> None:
    # t105: with --value-field level --ts-field time, a value out of range was 'field
    # "value" is 99999' and an epoch time in the future 'field "ts" is
    # '2029-11-22T00:00:00Z'', naming a field and a value the payload does not hold.
    kafka = Kafka()
    mapping = MqttMapping.build(ingest_grid, value_field="level", ts_field="time")
    ingest = MqttIngest(
        "127.0.0.1",
        1,
        mapping,
        EventValidator(ingest_grid),
        kafka,  # type: ignore[arg-type]
        clock=lambda: T_NOW,
    )
    acked: list[bool] = []
    ingest.handle("city/e/gauge-1/water_level", payload, lambda: acked.append(True))
    ingest.handle("city/e/gauge-1/water_level", b"2.5", lambda: acked.append(True))
    assert (len(kafka.dead), len(kafka.readings), acked) == (1, 1, [True, True])
    message = dict(kafka.dead[0][1])["citybrain.error.message"].decode()
    assert message.startswith(says)


def test_an_empty_mqtt_payload_is_counted_and_skipped_not_dead_lettered(ingest_grid: Grid) -> None:
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    acked: list[bool] = []
    for retained in (True, False):
        ingest.handle("city/e/gauge-1/water_level", b"", lambda: acked.append(True), retained)
    assert (kafka.dead, kafka.readings, acked, ingest.skipped) == ([], [], [True, True], 2)
    skipped = samples(ingest.metrics.exposition().decode(), "citybrain_ingest_skipped_total")
    assert skipped == {(("reason", "empty_payload"), ("stream", "mqtt")): 2}


def test_the_mqtt_ingest_serves_metrics_and_a_taken_port_names_the_setting() -> None:
    metrics = IngestMetrics.create("mqtt", lambda: 3)
    stop = serve_metrics(metrics, "127.0.0.1", 0)  # 0: any free port, for this test
    stop()
    # A taken port whose next is free, so the suggestion is known (CI once found the
    # next one in use by another program, and the message rightly suggested the one after).
    with _taken_port_with_a_free_next() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as err:
            serve_metrics(metrics, "127.0.0.1", port)
    # As every other taken port (citybrain/ports.py): exit 3, the setting and a next port.
    assert str(err.value).startswith(f"CITYBRAIN_INGEST_METRICS_PORT is {port}, but 127.0.0.1")
    assert f"CITYBRAIN_INGEST_METRICS_PORT={port + 1}" in str(err.value)
    sent = samples(metrics.exposition().decode(), "citybrain_ingest_readings_total")
    assert sent == {(("stream", "mqtt"),): 3}


def test_a_session_taken_by_a_second_ingest_with_the_same_client_id_is_named(
    ingest_grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    # The case (trial 4): two ingests with the default client id knocked each other off
    # every second, each saying only "disconnected (Unspecified error); reconnecting".
    from paho.mqtt.reasoncodes import ReasonCode

    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-ingest")
    unspecified = ReasonCode(PacketTypes.DISCONNECT, identifier=128)
    caplog.set_level("WARNING")
    for _ in range(3):  # connected, then dropped at once, three times in a row
        ingest._connected_at = time.monotonic()
        ingest._on_disconnect(None, None, None, unspecified, None)
    hints = [r.getMessage() for r in caplog.records if "--client-id" in r.getMessage()]
    assert hints == [
        "ingest: the broker keeps dropping this connection right after it connects: "
        "probably another client uses the client id 'gw-ingest' and takes the session; give "
        "each ingest its own --client-id (docs/ingest.md, Operating it)"
    ]
    # A drop long after connecting (a network blip) is only the usual line.
    caplog.clear()
    ingest._quick_drops = 0
    ingest._on_disconnect(None, None, None, unspecified, None)
    assert not any("--client-id" in r.getMessage() for r in caplog.records)


def test_an_ingest_whose_session_another_client_takes_stops_naming_the_client_id(
    ingest_grid: Grid,
) -> None:
    """t101: an MQTT 5 broker says the session was taken (reason 0x8E); reconnecting took
    it back, and two ingests with one client id dropped each other once a second for
    ever. The one that lost it stops reconnecting and the run loop stops it (exit 3)."""
    from paho.mqtt.reasoncodes import ReasonCode

    class Client:
        disconnects = 0

        def disconnect(self) -> None:
            self.disconnects += 1

    client = Client()
    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-ingest")
    ingest.connected.set()
    ingest._on_disconnect(
        client, None, None, ReasonCode(PacketTypes.DISCONNECT, identifier=142), None
    )
    assert ingest.taken_over.is_set() and client.disconnects == 1
    message = ingest.taken_over_message()
    assert "client id 'gw-ingest'" in message and "--client-id" in message
    assert "session taken over" in message and "docs/ingest.md" in message


def test_a_later_instance_s_claim_on_the_client_id_stops_this_one_an_earlier_one_s_not(
    ingest_grid: Grid,
) -> None:
    """t101: Mosquitto 2.0 closes a taken-over connection without reason 0x8E, so each
    ingest claims its client id, retained, on connecting; the later claim wins."""
    import json

    class Client:
        disconnects = 0

        def disconnect(self) -> None:
            self.disconnects += 1

    def claim(started: float, instance: str) -> bytes:
        return json.dumps(
            {"instance": instance, "started": started, "pid": 7, "host": "gw-2"}
        ).encode()

    client = Client()
    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw/ingest#1")
    assert ingest.owner_topic == "citybrain/ingest-owner/gw_ingest_1-82b6a011"
    for payload in (
        claim(ingest.started - 60, "f" * 32),  # an earlier instance's (stale) claim
        claim(ingest.started, ingest.instance),  # its own
        b"not json",
        b'{"started": "x"}',
    ):
        ingest._claim(client, payload)
        assert not ingest.taken_over.is_set() and client.disconnects == 0
    ingest._claim(client, claim(ingest.started + 1, "0" * 32))
    assert ingest.taken_over.is_set() and client.disconnects == 1
    assert "(pid 7 on gw-2, started " in ingest.taken_over_message()


@pytest.mark.parametrize(
    ("started", "said"),
    [
        (b"1" + b"0" * 400, "not a time"),  # float() of it: OverflowError
        (b"NaN", "gives started nan, not a time"),  # gmtime(nan): ValueError
        (b"1e300", "after this host's clock"),  # gmtime: OverflowError
        (b"4102444800", "after this host's clock"),  # 2100: stopped every start
        (b'"soon"', "gives started 'soon', not epoch seconds"),
        (b"true", "gives started True, not epoch seconds"),
    ],
)
def test_an_unreadable_claim_on_the_client_id_is_said_and_passed_over(
    ingest_grid: Grid, started: bytes, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """t117: anyone may publish the retained claim; one whose "started" is past any float,
    NaN or past year 9999 raised out of the message callback (paho's network thread
    ended: nothing more was read), one far in the future stopped the ingest at every
    start. (Through Mosquitto: tests/integration/test_ingest.py.)"""
    from types import SimpleNamespace

    class Client:
        disconnects = 0

        def disconnect(self) -> None:
            self.disconnects += 1

        def ack(self, mid: int, qos: int) -> None:
            pass

    client = Client()
    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-a")
    payload = b'{"instance": "' + b"f" * 32 + b'", "started": ' + started + b', "pid": 7}'
    msg = SimpleNamespace(mid=1, qos=1, _topic=ingest.owner_topic.encode(), payload=payload)
    with caplog.at_level(logging.WARNING):
        ingest._on_message(client, None, msg)
    assert not ingest.taken_over.is_set() and client.disconnects == 0
    [line] = [r.getMessage() for r in caplog.records]
    assert "the claim on client id 'gw-a'" in line and said in line and "passed over" in line


def test_a_message_the_ingest_cannot_handle_never_reaches_paho(
    ingest_grid: Grid, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """t117: an exception out of the message callback ended paho's network thread."""
    from types import SimpleNamespace

    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-a")

    def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "_message", broken)
    msg = SimpleNamespace(mid=1, qos=1, _topic=b"city/east/gauge-1/water_level", payload=b"1")
    with caplog.at_level(logging.ERROR):
        ingest._on_message(object(), None, msg)
    assert [r.getMessage() for r in caplog.records] == [
        "ingest: a message on city/east/gauge-1/water_level was not handled: RuntimeError('boom')"
    ]


def test_client_ids_that_differ_only_in_replaced_characters_claim_apart() -> None:
    """t117: "gw/1", "gw#1" and "gw_1" all claimed citybrain/ingest-owner/gw_1, so the
    later of two such ingests stopped the other, "another MQTT client ... with this
    ingest's client id". An id of plain characters keeps its topic."""
    from citybrain.ingest.mqtt import owner_topic

    ids = ["gw/1", "gw#1", "gw+1", "gw 1", "gw_1", "", "_"]
    topics = [owner_topic(i) for i in ids]
    assert len(set(topics)) == len(ids)
    assert owner_topic("gw_1") == "citybrain/ingest-owner/gw_1"
    assert owner_topic("gw-ingest.2") == "citybrain/ingest-owner/gw-ingest.2"
    assert all("/" not in t.removeprefix("citybrain/ingest-owner/") for t in topics)
    assert all(c not in t for t in topics for c in "+# ")


def test_a_stopping_ingest_clears_its_claim_unless_another_took_the_session(
    ingest_grid: Grid,
) -> None:
    """Left behind, a stopped newer ingest's claim stopped an older one that reconnected
    after it (a network blip): a clean stop clears it with an empty retained message."""

    class Client:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
            self.calls.append(("publish", topic, payload, qos, retain))

        def disconnect(self) -> None:
            self.calls.append(("disconnect",))

        def loop_stop(self) -> None:
            self.calls.append(("loop_stop",))

    for taken in (False, True):
        ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-ingest")
        client = Client()
        ingest.client = client  # type: ignore[assignment]
        ingest.connected.set()
        if taken:
            ingest.taken_over.set()
        assert ingest.stop(lambda: 0) == 0
        cleared = [("publish", "citybrain/ingest-owner/gw-ingest", b"", 1, True)]
        assert client.calls == [*([] if taken else cleared), ("disconnect",), ("loop_stop",)]


def test_a_drop_is_said_once_however_many_times_the_client_reports_it(
    ingest_grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    """t85: a frozen Mosquitto's keepalive timeout was logged twice for one drop
    ("disconnected from the MQTT broker (Keep alive timeout); reconnecting"): one
    warning for the drop, later reports while not connected at information level."""
    from paho.mqtt.reasoncodes import ReasonCode

    ingest = mqtt_ingest(ingest_grid, Kafka(), client_id="gw-ingest")
    keepalive = ReasonCode(PacketTypes.DISCONNECT, identifier=141)
    caplog.set_level("INFO")
    ingest.connected.set()  # connected, as _on_connect leaves it
    ingest._connected_at = 0.0
    for _ in range(3):
        ingest._on_disconnect(None, None, None, keepalive, None)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        ("WARNING", "ingest: disconnected from the MQTT broker (Keep alive timeout); reconnecting"),
        ("INFO", "ingest: MQTT broker not reached yet (Keep alive timeout); still reconnecting"),
        ("INFO", "ingest: MQTT broker not reached yet (Keep alive timeout); still reconnecting"),
    ]


class _Stop(Exception):
    """Raised by run_http's ``require`` hook: the test ends before Kafka is asked."""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "the HTTP ingest has no tokens configured (CITYBRAIN_API_TOKENS_FILE is not set)"),
        ("tokens: []\n", "has no gateway token, so the HTTP ingest refuses every request"),
    ],
)
def test_an_ingest_without_gateway_tokens_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str | None, reason: str
) -> None:
    """Fourth new-user trial, item 5: the HTTP ingest started silently without them."""
    tokens = None
    if text is not None:
        tokens = tmp_path / "tokens.yaml"
        tokens.write_text(text)
        tokens.chmod(0o600)  # others may not read it: that would be a second warning
    with socket.socket() as probe:  # a port free now: run_http checks it before `require`
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A run directory of its own: a demo this machine ran adds where its token is.
    settings = Settings(api_tokens_file=tokens, ingest_http_port=port, run_dir_override=tmp_path)

    def stop() -> None:
        raise _Stop

    with caplog.at_level(logging.WARNING), pytest.raises(_Stop):
        run_http(settings, IngestOptions(), require=stop)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith("citybrain: ") and reason in line
    assert line.endswith(": every POST gets 401 (docs/ingest.md, Tokens)")


def test_an_ingest_without_tokens_after_a_demo_says_where_the_demos_gateway_token_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ingest_grid: Grid
) -> None:
    """t66: after `make demo` the README's curl line got a 401 saying only to set
    CITYBRAIN_API_TOKENS_FILE; the start-up warning and the 401 now name the demo's."""
    from citybrain.demo import DemoFiles, demo_gateway_hint, make_demo_token

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(ingest_http_port=port, run_dir_override=tmp_path)
    files = DemoFiles.of(settings)
    make_demo_token(files)
    said = f"(the demo's: CITYBRAIN_API_TOKENS_FILE={files.tokens}, its gateway token in"

    def stop() -> None:
        raise _Stop

    with caplog.at_level(logging.WARNING), pytest.raises(_Stop):
        run_http(settings, IngestOptions(), require=stop)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said in line and line.endswith("(docs/ingest.md, Tokens)")
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        TokenStore([]),
        token_hint=demo_gateway_hint(settings),
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, _, body = call(srv, "POST", "/ingest/v1/readings", b"{}", token=GATEWAY)
        assert status == 401 and said in json.loads(body)["error"]
        gateway = files.gateway_token.read_text().strip()
        # With the demo's file, as the hint says, the same token is taken.
        srv.tokens = TokenStore.load(files.tokens)
        status, _, body = call(srv, "POST", "/ingest/v1/readings", b"[]", token=gateway)
        assert status != 401, body
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_tokens_file_without_a_gateway_token_is_named_in_the_401(
    ingest_grid: Grid, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: []\n")
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        TokenStore.load(path),
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, _, body = call(srv, "POST", "/ingest/v1/readings", b"{}", token=GATEWAY)
        assert status == 401
        assert json.loads(body)["error"] == (
            f"CITYBRAIN_API_TOKENS_FILE {path} has no gateway token, so the ingest refuses "
            "every request: add one (role: gateway) for citybrain ingest http "
            "(docs/ingest.md, Tokens)"
        )
    finally:
        srv.shutdown()
        srv.server_close()


def _taken_port_with_a_free_next() -> socket.socket:
    """A listening socket on a port whose next port is free now."""
    while True:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", taken.getsockname()[1] + 1))
            except OSError:
                taken.close()
                continue
        return taken


def test_metrics_move_on_to_the_next_port_when_one_is_taken() -> None:
    metrics = IngestMetrics.create("mqtt", lambda: 0)
    with _taken_port_with_a_free_next() as taken:
        port = taken.getsockname()[1]
        stop, served = serve_metrics_from(metrics, "127.0.0.1", port, 4)
        stop()
        assert served == port + 1
        with pytest.raises(ListenError, match=f"CITYBRAIN_INGEST_METRICS_PORT is {port}, "):
            serve_metrics_from(metrics, "127.0.0.1", port, 1)


@pytest.mark.parametrize("explicit", [True, False])
def test_a_second_mqtt_ingest_takes_the_next_metrics_port_unless_one_was_set(
    ingest_grid: Grid, caplog: pytest.LogCaptureFixture, explicit: bool
) -> None:
    """Trial 8: README says a second MQTT ingest on one machine takes the next port; it
    stopped with exit 3 on the default port in use. A port set explicitly still stops."""

    def stop() -> None:
        raise _Stop

    with _taken_port_with_a_free_next() as taken:
        port = taken.getsockname()[1]
        settings = Settings(ingest_metrics_port=port)
        if not explicit:  # as if CITYBRAIN_INGEST_METRICS_PORT were not in the environment
            settings.model_fields_set.discard("ingest_metrics_port")
        with caplog.at_level(logging.INFO), pytest.raises(ListenError if explicit else _Stop):
            run_mqtt(settings, IngestOptions(), require=stop)
    said = [r.getMessage() for r in caplog.records]
    moved = f"ingest: metrics port {port} is taken (another MQTT ingest?): serving metrics on {port + 1}"
    assert any(line.startswith(moved) for line in said) != explicit


def test_every_request_refusal_reason_exists_at_0_from_the_start() -> None:
    """Trial 28: increase() never counts a series' first sample, so each reason the HTTP
    ingest refuses with is there at 0 before its first refusal."""
    from citybrain.ingest.http import HEADER_REASONS
    from citybrain.ingest.metrics import REQUEST_REASONS

    assert set(HEADER_REASONS.values()) <= set(REQUEST_REASONS)
    metrics = IngestMetrics.create("http", lambda: 0)
    refused = samples(metrics.exposition().decode(), "citybrain_ingest_refused_total")
    for stream in ("http", "ngsi"):
        for reason in (*REQUEST_REASONS, "bad_unit", "missing_field"):
            assert refused[(("reason", reason), ("stream", stream))] == 0


def _send(srv: IngestHttpServer, head: str, body: bytes = b"") -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10)
    conn.sendall(head.encode("latin-1") + body)
    return conn


def _answer(conn: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := conn.recv(65536):
            data += chunk
    return data


POST_HEAD = (
    "POST /ingest/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Connection: close\r\n"
)


@pytest.mark.parametrize(
    "second", [f"Authorization: Bearer {GATEWAY}", "authorization: Bearer other"]
)
def test_a_second_authorization_header_is_400_whichever_comes_first(
    server: IngestHttpServer, second: str
) -> None:
    """Trial 29: the first of two was taken, so an operator's token after a gateway's
    passed as the gateway (and a proxy checking the last would disagree)."""
    for first in (f"Authorization: Bearer {GATEWAY}", "Authorization: Bearer other"):
        body = json.dumps(GOOD).encode()
        head = f"{POST_HEAD}{first}\r\n{second}\r\nContent-Length: {len(body)}\r\n\r\n"
        answer = _answer(_send(server, head, body))
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
            "error": "the Authorization header is given 2 times: send it once, "
            "Authorization: Bearer <token>",
            "field": "Authorization",
        }
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    assert kafka.readings == []


def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_read_timeout_in_all(
    server: IngestHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 29: the 30 s rule was the socket's, per read: a byte every 20 s kept a
    thread for as long as the client liked. Here the rule is 1 s and a byte comes every
    0.2 s: the 408 comes long before the last byte would."""
    monkeypatch.setattr(server, "bounds", Bounds(timeout=1.0))
    body = json.dumps(GOOD).encode()
    conn = _send(
        server, f"{POST_HEAD}Authorization: Bearer {GATEWAY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    conn.settimeout(0.05)
    answer = b""
    sent = 0
    for byte in body:
        with contextlib.suppress(OSError):
            conn.sendall(bytes([byte]))
        sent += 1
        time.sleep(0.2)
        with contextlib.suppress(TimeoutError, OSError):
            answer += conn.recv(65536)
        if answer:
            break
    assert sent < len(body)
    conn.settimeout(10)
    answer += _answer(conn)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": "the body was not sent within 1s",
        "reason": "timeout",
    }
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    assert kafka.readings == []
    assert call(server, "GET", "/ingest/v1/health")[0] == 200


def test_a_body_shorter_than_its_content_length_is_a_timeout_or_says_its_length(
    server: IngestHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 62: a Content-Length 10 bytes past the body sent, the client then waiting,
    was answered 400 "the body ended after 0 of its Content-Length … bytes" (the socket's
    timeout came before the deadline's and the bytes read were dropped): a timeout, 408.
    A client that closes its side instead is told how much came."""
    monkeypatch.setattr(server, "bounds", Bounds(timeout=1.0))
    # The socket's timeout first, as it mostly is (the deadlines' check is held off).
    monkeypatch.setattr(server, "service_actions", lambda: None)
    body = json.dumps(GOOD).encode()
    head = f"{POST_HEAD}Authorization: Bearer {GATEWAY}\r\nContent-Length: {len(body) + 10}\r\n\r\n"
    conn = _send(server, head, body)
    conn.settimeout(10)
    answer = _answer(conn)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": "the body was not sent within 1s",
        "reason": "timeout",
    }
    conn = _send(server, head, body)
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(10)
    answer = _answer(conn)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": f"the body ended after {len(body)} of its Content-Length {len(body) + 10} bytes",
        "field": "Content-Length",
    }
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    assert kafka.readings == []


def test_a_head_and_a_body_each_sent_within_the_timeout_are_cut_in_all(
    server: IngestHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 62: the deadline was set afresh once the headers were read, so a client
    could take the whole timeout for its head and again for its body. The rule counts
    from the request's start (docs/ingest.md): 0.7 s of head and 0.7 s of body in a
    1 s rule is a 408."""
    monkeypatch.setattr(server, "bounds", Bounds(timeout=1.0))
    body = json.dumps(GOOD).encode()
    conn = _send(server, "POST /ingest/v1/readings HTTP/1.1\r\n")
    lines = [
        "Host: x",
        "Content-Type: application/json",
        "Connection: close",
        f"Authorization: Bearer {GATEWAY}",
        f"Content-Length: {len(body)}",
    ]
    for line in lines:
        time.sleep(0.14)
        conn.sendall(f"{line}\r\n".encode())
    conn.sendall(b"\r\n")
    conn.settimeout(0.05)
    answer = b""
    for part in (body[:10], body[10:20], body[20:30], body[30:40], body[40:]):
        time.sleep(0.14)
        with contextlib.suppress(OSError):
            conn.sendall(part)
        with contextlib.suppress(TimeoutError, OSError):
            answer += conn.recv(65536)
    conn.settimeout(10)
    answer += _answer(conn)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    assert kafka.readings == []


def test_headers_sent_slowly_are_cut_too(
    server: IngestHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "bounds", Bounds(timeout=1.0))
    conn = _send(server, "POST /ingest/v1/readings HTTP/1.1\r\n")
    for _ in range(30):  # a header line every 0.2 s, never the blank line
        try:
            conn.sendall(b"X-Drip: 1\r\n")
        except OSError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the server read headers for 6 s")


def test_connections_past_the_limit_are_answered_503_at_once(ingest_grid: Grid) -> None:
    """Trial 29: every connection had its own thread, with no limit: one client opening
    thousands held a thread and a file each."""
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        TokenStore([(hash_token(GATEWAY), "gateway", "gateway")]),
        clock=lambda: T_NOW,
        bounds=Bounds(max_connections=2),
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        held = [_send(srv, "POST /ingest/v1/readings HTTP/1.1\r\n") for _ in range(2)]
        answer = _answer(_send(srv, "GET /ingest/v1/health HTTP/1.1\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        assert b"Retry-After: 1\r\n" in answer
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
            "error": "the HTTP ingest serves at most 2 connections at once "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS) and has that many open; retry in a moment",
            "reason": "busy",
        }
        for conn in held:
            conn.close()
        turned_away = 1
        for _ in range(100):  # the held connections' threads end on their own time
            status = call(srv, "GET", "/ingest/v1/health")[0]
            if status == 200:
                break
            assert status == 503
            turned_away += 1
            time.sleep(0.1)
        assert status == 200
        exposition = srv.metrics.exposition().decode()
        busy = samples(exposition, "citybrain_ingest_refused_total")[
            (("reason", "busy"), ("stream", "http"))
        ]
        assert busy == turned_away
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_body_dripped_past_the_limit_gives_its_place_to_a_new_connection(
    ingest_grid: Grid,
) -> None:
    """t191: a client sending whole heads and then bodies a byte at a time held each of
    its places for the timeout (30 s), and every gateway's post was refused 503."""
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(ingest_grid),
        NgsiMapping(ingest_grid),
        Kafka(),  # type: ignore[arg-type]
        TokenStore([(hash_token(GATEWAY), "gateway", "gateway")]),
        clock=lambda: T_NOW,
        bounds=Bounds(max_connections=2),
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    head = (
        "POST /ingest/v1/readings HTTP/1.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {GATEWAY}\r\nContent-Length: 100\r\n\r\n["
    )
    try:
        drips = [_send(srv, head) for _ in range(2)]
        time.sleep(1.3)  # past evict_after, their bodies not all sent
        assert call(srv, "GET", "/ingest/v1/health")[0] == 200
        # The older gave its place: older by when the server read its head, which under
        # load may be the second connection's (CI once waited 10 s on the first's).
        readable, _, _ = select.select(drips, [], [], 10)
        assert len(readable) == 1, readable
        told = _answer(readable[0])
        assert told.startswith(b"HTTP/1.1 408"), told[:100]
        error = json.loads(told.partition(b"\r\n\r\n")[2])["error"]
        assert error.startswith("the body was not all sent 1."), error
        assert error.endswith(
            "s after its headers, while the HTTP ingest had all its 2 connections open "
            "(CITYBRAIN_HTTP_MAX_CONNECTIONS): the connection is closed to serve another; "
            "send the request as you connect"
        ), error
        for conn in drips:
            conn.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_ingest_whose_tokens_file_others_may_read_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial 29: a tokens file any local user could read (or write: add a token) was
    taken without a word."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{name: gw, role: gateway, sha256: '{hash_token('t')}'}}\n")
    tokens.chmod(0o644)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(api_tokens_file=tokens, ingest_http_port=port)

    def stop() -> None:
        raise _Stop

    with caplog.at_level(logging.WARNING), pytest.raises(_Stop):
        run_http(settings, IngestOptions(), require=stop)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line == (
        f"citybrain: CITYBRAIN_API_TOKENS_FILE {tokens} may be read by other users "
        f"(mode 0644): chmod 600 {tokens}"
    )
    assert hash_token("t") not in line


def test_an_mqtt5_messages_properties_go_with_its_dead_letter() -> None:
    # Helper t81: its content type and user properties were dropped; MQTT 3.1.1 has none.
    from types import SimpleNamespace

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from citybrain.ingest.mqtt import carried_headers, mqtt_properties

    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.UserProperty = [("hop", "a"), ("hop", "b")]
    assert carried_headers(mqtt_properties(SimpleNamespace(properties=props))) == [
        ("citybrain.original.header.content-type", b"text/plain"),
        ("citybrain.original.header.hop", b"a"),
        ("citybrain.original.header.hop", b"b"),
    ]
    assert mqtt_properties(SimpleNamespace(properties=None)) == []


def test_another_client_id_s_claim_is_no_reading_under_a_pattern_that_matches_it(
    ingest_grid: Grid,
) -> None:
    """A topic pattern of three free levels (``{district}/{sensor_id}/{kind}``, i.e.
    ``+/+/+``) also matches ``citybrain/ingest-owner/<id>``: t101 kept the ingest's own
    claim out of the readings, but another ingest's claim (one per topic subset, each
    with its own client id) was read as a reading of sensor 'ingest-owner' and
    dead-lettered, again at every connect (retained). Claims are acked and never read."""
    import json
    from types import SimpleNamespace

    class Client:
        def __init__(self) -> None:
            self.acks: list[tuple[int, int]] = []

        def ack(self, mid: int, qos: int) -> None:
            self.acks.append((mid, qos))

    kafka = Kafka()
    ingest = MqttIngest(
        "127.0.0.1",
        1,
        MqttMapping.build(ingest_grid, ["{district}/{sensor_id}/{kind}"]),
        EventValidator(ingest_grid),
        kafka,  # type: ignore[arg-type]
        client_id="gw-a",
    )
    other = json.dumps({"instance": "0" * 32, "started": ingest.started + 5, "pid": 1, "host": "h"})
    client = Client()
    for mid, topic in enumerate(["citybrain/ingest-owner/gw-b", "citybrain/ingest-owner/gw-a"]):
        payload = other.encode() if topic.endswith("gw-b") else b"not json"
        msg = SimpleNamespace(mid=mid, qos=1, _topic=topic.encode(), payload=payload, retain=True)
        ingest._on_message(client, None, msg)
    assert client.acks == [(0, 1), (1, 1)]
    assert kafka.readings == [] and kafka.dead == [] and ingest.received == 0
    # Another id's later claim is not this one's: it goes on.
    assert not ingest.taken_over.is_set()


def test_a_refused_readings_dead_letter_keeps_the_header_bytes_as_sent(
    server: IngestHttpServer,
) -> None:
    """t117: http.server reads header bytes as ISO-8859-1 and the dead letter wrote them
    as UTF-8: a ``User-Agent`` in UTF-8 (``café``) reached it as ``cafÃ©`` and a byte
    that is not UTF-8 as two others; now the bytes sent."""
    body = json.dumps([GOOD, {**GOOD, "value": "high"}]).encode()
    head = (
        f"{POST_HEAD}Authorization: Bearer {GATEWAY}\r\nContent-Length: {len(body)}\r\n"
        "User-Agent: caf\u00c3\u00a9-gateway\r\nX-Request-Id: r-\u00ff\r\n\r\n"
    )  # _send writes each character as its one byte: c3 a9 is UTF-8's é
    answer = _answer(_send(server, head, body))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    assert [value for value, _ in kafka.dead] == [json.dumps({**GOOD, "value": "high"}).encode()]
    assert dict(kafka.originals[0]) == {
        "citybrain.original.header.content-type": b"application/json",
        "citybrain.original.header.user-agent": "café-gateway".encode(),
        "citybrain.original.header.x-request-id": b"r-\xff",
    }


@pytest.mark.parametrize(
    ("line", "header", "said"),
    [
        (
            "POST /ingest/v1/readings",
            "Content-Type: application/json; charset=\u00c3\u00bctf-8",  # UTF-8's ü
            "Content-Type is 'application/json; charset=ütf-8', expected application/json",
        ),
        (
            "POST /ingest/v1/readings",
            "Content-Type: application/json; charset=\u00ff",
            "Content-Type is 'application/json; charset=\\xff', expected application/json",
        ),
        (
            "POST /ingest/v1/readings\u00ff",
            "Content-Type: application/json",
            "no such path '/ingest/v1/readings\\xff';",
        ),
    ],
)
def test_a_refusal_shows_header_and_path_bytes_as_sent(
    server: IngestHttpServer, line: str, header: str, said: str
) -> None:
    """t117: http.server reads a request's bytes as ISO-8859-1, and a refusal showed that
    reading: a UTF-8 ``charset=ütf-8`` as ``charset=Ã¼tf-8``, a byte 0xFF as ``ÿ``."""
    body = json.dumps(GOOD).encode()
    head = (
        f"{line} HTTP/1.1\r\nHost: x\r\n{header}\r\nConnection: close\r\n"
        f"Authorization: Bearer {GATEWAY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )  # _send writes each character as its one byte
    answer = _answer(_send(server, head, body))
    assert said in json.loads(answer.partition(b"\r\n\r\n")[2])["error"], answer


def _at(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T_NOW - seconds))


def test_one_bad_reading_of_an_mqtt_array_is_dead_lettered_alone(ingest_grid: Grid) -> None:
    """t150: a gateway's JSON array of readings with one bad item was dead-lettered whole
    (``bad_payload``: expected a number or a JSON object), the good readings with it. Each
    item is now read alone, as an HTTP list's: the bad one dead-lettered by itself, its
    bytes as sent and its field named, and the message acknowledged once, when Kafka
    has them all."""
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    acked: list[bool] = []
    bad = f'{{"value": "high", "ts": "{_at(60)}"}}'.encode()
    payload = (
        f'[{{"value": 2.1, "ts": "{_at(120)}"}}, '.encode()
        + bad
        + f', {{"value": 2.3, "ts": "{_at(30)}"}}, 2.4]'.encode()
    )
    ingest.handle("city/east/gauge-1/water_level", payload, lambda: acked.append(True))
    assert acked == [True]
    assert [r.value for r in kafka.readings] == [2.1, 2.3, 2.4]
    [(value, headers)] = kafka.dead
    assert value == bad  # the item's own bytes
    said = dict(headers)
    assert said["citybrain.error.reason"] == b"bad_type"
    assert said["citybrain.error.message"] == (
        b"field \"payload[1].value\" is 'high': expected a number"
    )
    assert kafka.keys == [b"gauge-1"]


@pytest.mark.parametrize(
    ("payload", "reasons", "readings"),
    [
        # A byte that is not UTF-8 or nesting too deep in one item costs that item alone.
        (b'[2.5, {"value": "\xff"}]', [b"bad_payload"], 1),
        (b"[2.5, " + b"[" * 2000 + b"]" * 2000 + b"]", [b"bad_payload"], 1),
        # A list inside, or a string: no reading (a number or an object is one).
        (b'[[2.5], "2.5", 2.6]', [b"bad_payload", b"bad_payload"], 1),
        # Two values for one sensor at one time (items without ts: both at receipt).
        (b"[2.5, 2.6]", [b"conflicting_reading", b"conflicting_reading"], 0),
        (b"[2.5, 2.5]", [], 2),  # a repeat: sent, the worker drops it
        # No well-formed array: refused whole, with the parser's reason.
        (b"[2.5, 2.6", [b"bad_payload"], 0),
        (b"[]", [b"bad_payload"], 0),
        (b"[2.5] 7", [b"bad_payload"], 0),
    ],
)
def test_an_mqtt_array_costs_each_bad_item_alone(
    ingest_grid: Grid, payload: bytes, reasons: list[bytes], readings: int
) -> None:
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    acked: list[bool] = []
    ingest.handle("city/east/gauge-1/water_level", payload, lambda: acked.append(True))
    assert acked == [True]
    assert [dict(h)["citybrain.error.reason"] for _, h in kafka.dead] == reasons
    assert len(kafka.readings) == readings
    for _, headers in kafka.dead:
        message = dict(headers)["citybrain.error.message"]
        assert message.startswith((b'field "payload[', b'field "payload"')), message


def test_an_mqtt_array_past_a_pack_s_readings_is_refused_saying_so(ingest_grid: Grid) -> None:
    """t165: an array of 10,001 readings was dead-lettered ``bad_payload`` "expected a
    number or a JSON object", which hid why; it is ``pack_too_large``, as the HTTP
    ingest refuses such a list and the worker such a pack. 10,000 are read."""
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    acked: list[bool] = []
    ingest.handle(
        "city/east/gauge-1/water_level",
        b"[" + b"2.5," * 10_000 + b"2.5]",
        lambda: acked.append(True),
    )
    [(_, headers)] = kafka.dead
    said = dict(headers)
    assert said["citybrain.error.reason"] == b"pack_too_large"
    assert said["citybrain.error.message"] == (
        b"field \"payload\" is 'an array of 10,001 items': a message holds at most 10,000 "
        b"readings: send them in several messages"
    )
    assert acked == [True] and kafka.keys == [b"gauge-1"] and not kafka.readings
    ingest.handle("city/east/gauge-1/water_level", b"[" + b"2.5," * 9_999 + b"2.5]", lambda: None)
    assert len(kafka.readings) == 10_000


def test_an_mqtt_array_of_conflicting_readings_names_a_few_others_each(
    ingest_grid: Grid,
) -> None:
    """t198: each of 10,000 items of one array (one sensor, stamped alike at receipt, each
    another value) named the other 9,999 before its message was cut to 300 characters:
    a 70 kB payload held the MQTT callback, and every message behind it, for a minute.
    Now each names five and counts the rest (fails on the old code by its text)."""
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    acked: list[bool] = []
    payload = ("[" + ", ".join(str(1 + i / 1e5) for i in range(10_000)) + "]").encode()
    started = time.monotonic()
    ingest.handle("city/east/gauge-1/water_level", payload, lambda: acked.append(True))
    assert time.monotonic() - started < 15  # 50 s before
    assert acked == [True] and not kafka.readings and len(kafka.dead) == 10_000
    said = dict(kafka.dead[0][1])["citybrain.error.message"].decode()
    assert said.endswith(
        "is given another value by payload[1] 1.00001, payload[2] 1.00002, payload[3] "
        "1.00003, payload[4] 1.00004, payload[5] 1.00005 and 9,994 more: which is meant?"
    ), said


def test_a_retained_mqtt_array_needs_a_time_in_each_item(ingest_grid: Grid) -> None:
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    payload = f'[{{"value": 2.1, "ts": "{_at(60)}"}}, 2.2]'.encode()
    ingest.handle("city/east/gauge-1/water_level", payload, lambda: None, retained=True)
    assert [r.value for r in kafka.readings] == [2.1]
    [(value, headers)] = kafka.dead
    assert (value, dict(headers)["citybrain.error.reason"]) == (b"2.2", b"retained_without_time")
    assert dict(headers)["citybrain.error.message"].startswith(b'field "payload[1].ts" is missing')


def carried_bytes(kafka: Kafka) -> int:
    return sum(len(n) + len(v) for carried in kafka.originals for n, v in carried)


def test_an_mqtt_array_s_properties_go_with_its_first_dead_letters_only(
    ingest_grid: Grid,
) -> None:
    """t150: each bad item's dead letter carried the message's MQTT 5 user properties
    whole: 100 kB of them and 1,000 bad items were 100 MB of dead letters (500 kB and
    10,000 items, 5 GB). Now the first dead letters carry them while all carried stays
    within 500,000 bytes; the others say ``headers_truncated: 0 of 1``."""
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW)
    original = [("citybrain.original.header.note", b"n" * 100_000)]
    payload = b"[" + b",".join([b"null"] * 1000) + b"]"
    ingest.handle("city/east/gauge-1/water_level", payload, lambda: None, original=original)
    assert len(kafka.dead) == 1000
    assert 0 < carried_bytes(kafka) <= 500_000
    assert [bool(o) for o in kafka.originals] == [True] * 4 + [False] * 996
    cut = [dict(h).get("citybrain.error.headers_truncated") for _, h in kafka.dead]
    assert cut == [None] * 4 + [b"0 of 1"] * 996


def test_a_body_s_headers_go_with_its_first_dead_letters_only(server: IngestHttpServer) -> None:
    """t150: a body of 100 bad readings and a 60 kB User-Agent was 100 dead letters of
    60 kB of headers each; now the request's headers go with the first ones only."""
    kafka: Kafka = server.publisher  # type: ignore[assignment]
    body = json.dumps([GOOD, *[{**GOOD, "value": "high"}] * 100]).encode()
    request = (
        f"POST /ingest/v1/readings HTTP/1.1\r\nAuthorization: Bearer {GATEWAY}\r\n"
        f"User-Agent: {'u' * 60_000}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    answer = read_all(send(server.server_address[1], request))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert len(kafka.dead) == 100
    assert 0 < carried_bytes(kafka) <= 500_000
    assert sum(bool(o) for o in kafka.originals) == 8


def test_a_redelivered_plain_number_is_stamped_at_its_first_receipt(ingest_grid: Grid) -> None:
    """t165: a QoS 1 message the ingest had handed to Kafka but not yet acknowledged when
    the broker's connection dropped is delivered again on the resumed session (DUP set,
    the same packet id). A plain number is stamped on receipt, so the redelivery was a
    second reading 5 s later, which the worker counted as one more reading. Now it is
    stamped at its first receipt: the same reading again, which the worker drops as a
    repeat. A new message that reuses the packet id, or another payload, is stamped anew."""
    from paho.mqtt.client import MQTTMessage

    class Client:
        def ack(self, mid: int, qos: int) -> None:
            pass

    times = iter([T_NOW - 60, T_NOW - 55, T_NOW - 50, T_NOW - 45, T_NOW - 40])
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: next(times))

    def deliver(
        mid: int, payload: bytes, dup: bool, topic: bytes = b"city/e/gauge-1/water_level"
    ) -> None:
        msg = MQTTMessage(mid=mid, topic=topic)
        msg.payload, msg.qos, msg.dup = payload, 1, dup
        ingest._on_message(Client(), None, msg)

    deliver(7, b"2.5", dup=False)  # T_NOW - 60
    deliver(7, b"2.5", dup=True)  # redelivered after a reconnect: its first receipt
    deliver(7, b"2.6", dup=True)  # another payload under that id: stamped anew
    deliver(7, b"2.5", dup=False)  # the id reused by a new message: stamped anew
    deliver(8, b"2.5", dup=True, topic=b"city/e/gauge-2/water_level")  # never seen: now
    stamped = [(r.sensor_id, r.value, T_NOW - r.ts) for r in kafka.readings]
    assert stamped == [
        ("gauge-1", 2.5, 60),
        ("gauge-1", 2.5, 60),
        ("gauge-1", 2.6, 50),
        ("gauge-1", 2.5, 45),
        ("gauge-2", 2.5, 40),
    ]


def test_a_publishers_qos1_retry_of_a_plain_number_is_stamped_at_its_first_receipt(
    ingest_grid: Grid,
) -> None:
    """t206 (fails on the old code): a gateway publishing a plain number every 60 s at
    QoS 1 loses its connection before the broker's PUBACK and sends the message again on
    reconnecting; the broker forwards the retry as a new message (its own packet id, DUP
    clear), which was stamped anew: a second reading 4 s later, counted twice by the
    worker. The same payload on its topic sooner than a quarter of the topic's pace is
    the retry, stamped at the first's receipt; the same value a whole pace later, another
    value, or a topic with no pace yet, is a new reading."""
    from paho.mqtt.client import MQTTMessage

    class Client:
        def ack(self, mid: int, qos: int) -> None:
            pass

    clock = [T_NOW - 600.0]
    kafka = Kafka()
    ingest = mqtt_ingest(ingest_grid, kafka, clock=lambda: clock[0])
    mids = iter(range(1, 100))

    def deliver(at: float, payload: bytes, topic: bytes = b"city/e/gauge-1/water_level") -> None:
        clock[0] = T_NOW - at
        msg = MQTTMessage(mid=next(mids), topic=topic)
        msg.payload, msg.qos, msg.dup = payload, 1, False
        ingest._on_message(Client(), None, msg)

    g2 = b"city/e/gauge-2/water_level"
    deliver(600, b"2.5", g2)
    deliver(598, b"2.5", g2)  # no pace yet: a new reading
    deliver(300, b"2.4")
    deliver(240, b"2.5")  # the pace: 60 s
    deliver(236, b"2.5")  # the retry, 4 s later: its first receipt
    deliver(233, b"2.5")  # and a retry of it
    deliver(180, b"2.5")  # the same value a pace later: a reading
    deliver(175, b"2.6")  # another value: a reading (the pace falls to 5 s)
    deliver(100, b"2.6")  # the same value 75 s later: a reading
    stamped = [(r.sensor_id, r.value, T_NOW - r.ts) for r in kafka.readings]
    assert stamped == [
        ("gauge-2", 2.5, 600),
        ("gauge-2", 2.5, 598),
        ("gauge-1", 2.4, 300),
        ("gauge-1", 2.5, 240),
        ("gauge-1", 2.5, 240),
        ("gauge-1", 2.5, 240),
        ("gauge-1", 2.5, 180),
        ("gauge-1", 2.6, 175),
        ("gauge-1", 2.6, 100),
    ]


def test_publisher_retries_remember_a_bounded_number_of_topics() -> None:
    from citybrain.ingest.receipts import PublisherRetries

    retries = PublisherRetries(max_topics=2)
    for topic in (b"a", b"b"):
        retries.stamp(topic, b"x", 0.0)
        retries.stamp(topic, b"y", 60.0)
    assert retries.stamp(b"a", b"y", 61.0) == 60.0  # a retry
    retries.stamp(b"c", b"x", 62.0)  # b, heard least lately, forgotten
    assert retries.stamp(b"a", b"y", 64.0) == 60.0
    assert retries.stamp(b"b", b"y", 63.0) == 63.0  # (no pace: taken as new)
    # A clock stepped back: a new reading.
    assert retries.stamp(b"c", b"x", 30.0) == 30.0


def test_a_plain_number_redelivered_to_a_new_ingest_keeps_its_first_receipt(
    ingest_grid: Grid, tmp_path: Path
) -> None:
    """t173 (fails on the old code): an ingest killed after handing a plain number to
    Kafka, before acknowledging it to the broker, left it to the next ingest of its
    client id (DUP set, the same packet id, topic and payload), which stamped it anew: a
    second reading, counted twice by the worker. The first receipts are now kept in a
    file under the run directory and read back by the next ingest; a line cut by the kill
    is skipped, and a file that cannot be written leaves them in memory, said."""
    from paho.mqtt.client import MQTTMessage

    from citybrain.ingest.receipts import receipts_path

    class Client:
        def ack(self, mid: int, qos: int) -> None:
            pass

    path = receipts_path(tmp_path, "gateway/1 east")
    assert path.parent == tmp_path / "ingest" and path.name.startswith("mqtt-gateway_1_east-")

    def deliver(ingest: MqttIngest, mid: int, payload: bytes, dup: bool) -> None:
        msg = MQTTMessage(mid=mid, topic=b"city/e/gauge-1/water_level")
        msg.payload, msg.qos, msg.dup = payload, 1, dup
        ingest._on_message(Client(), None, msg)

    kafka = Kafka()
    first = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW - 60, receipts=path)
    deliver(first, 7, b"2.5", dup=False)
    deliver(first, 8, b"3.5", dup=False)
    # SIGKILLed: nothing closed; its last line cut as it was written.
    with path.open("ab") as file:
        file.write(b"9 0123")
    second = mqtt_ingest(ingest_grid, kafka, clock=lambda: T_NOW - 10, receipts=path)
    deliver(second, 7, b"2.5", dup=True)  # its first receipt, by the killed ingest
    deliver(second, 8, b"3.6", dup=True)  # another payload under that id: stamped anew
    deliver(second, 9, b"4.5", dup=True)  # the cut line: never taken, stamped now
    stamped = [(r.value, T_NOW - r.ts) for r in kafka.readings]
    assert stamped == [(2.5, 60), (3.5, 60), (2.5, 60), (3.6, 10), (4.5, 10)]
    second.stop(close=lambda: 0)


def test_receipts_that_cannot_be_kept_on_disk_are_kept_in_memory_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from citybrain.ingest.receipts import Receipts

    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the ingest directory should be
    with caplog.at_level(logging.WARNING, logger="citybrain.ingest.receipts"):
        receipts = Receipts(blocked / "ingest" / "r.receipts", lambda: 0.0, 60.0)
    receipts.put(7, b"d" * 16, 5.0)
    assert receipts.get(7) == (b"d" * 16, 5.0) and receipts.path is None
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"ingest: cannot keep first receipts in {blocked}/ingest/r.receipts")


def test_the_receipts_file_is_written_again_past_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.ingest import receipts as module

    monkeypatch.setattr(module, "COMPACT_LINES", 10)
    path = tmp_path / "r.receipts"
    receipts = module.Receipts(path, lambda: 100.0, 60.0)
    for n in range(25):
        receipts.put(1 + n % 3, bytes([n]) * 16, 100.0 + n)
    assert len(path.read_text().splitlines()) <= 11
    receipts.close()
    again = module.Receipts(path, lambda: 130.0, 60.0)
    assert again.entries == {1 + n % 3: (bytes([n]) * 16, 100.0 + n) for n in range(22, 25)}
    # Older than the broker keeps a session: not read back.
    assert module.Receipts(path, lambda: 200.0, 60.0).entries == {}
