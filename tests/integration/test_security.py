"""Kafka security on a real broker: a second local broker, started by citybrain's own stack
code with a SASL/SCRAM listener, accepts a worker with credentials and refuses one
without; configuration errors name the setting and never echo a secret."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from citybrain.stack import KafkaBroker
from citybrain.stack.topics import create_topics
from streams.auth import hash_token
from streams.errors import SettingsError
from streams.settings import load_settings
from tests.services import (
    COORDINATOR_TOKEN,
    FIXTURES,
    OPERATOR_TOKEN,
    IngestProcess,
    Pipeline,
    Worker,
    shifted_port,
)

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-scram-password"
# Shifted like every test port, so checkouts testing side by side get their own broker.
SCRAM_PORT, SCRAM_CONTROLLER_PORT = shifted_port(21092), shifted_port(21093)


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    run_dir = tmp_path_factory.mktemp("scram")
    settings = load_settings(
        kafka_port=SCRAM_PORT, kafka_controller_port=SCRAM_CONTROLLER_PORT, run_dir_override=run_dir
    )
    broker = KafkaBroker(settings, scram_users={"citybrain": PASSWORD})
    broker.start()
    yield broker
    broker.stop()


def env_for(broker: KafkaBroker, password: str | None, name: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CITYBRAIN_KAFKA_PORT": str(SCRAM_PORT),
        "CITYBRAIN_WORKER_PORT": str(shifted_port(21066)),
        "CITYBRAIN_RUN_DIR": str(broker.settings.run_dir),
        "CITYBRAIN_APP_ID": name,
        "CITYBRAIN_TOPIC_PREFIX": name,
        "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml"),
        "CITYBRAIN_SESSION_TIMEOUT": "6",
    }
    if password is not None:
        env.update(
            CITYBRAIN_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
            CITYBRAIN_KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
            CITYBRAIN_KAFKA_USERNAME="citybrain",
            CITYBRAIN_KAFKA_PASSWORD=password,
        )
    return env


def test_worker_with_credentials_processes_events(
    scram_broker: KafkaBroker, tmp_path: Path
) -> None:
    env = env_for(scram_broker, PASSWORD, "sasl-ok")
    settings = load_settings(
        kafka_port=SCRAM_PORT,
        topic_prefix="sasl-ok",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="citybrain",
        kafka_password=PASSWORD,
    )
    create_topics(settings)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{SCRAM_PORT}", **settings.kafka_python_options()
        )
        producer.send("sasl-ok.readings", key=b"gauge-1", value=b"not json")
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            "sasl-ok.deadletter",
            bootstrap_servers=f"127.0.0.1:{SCRAM_PORT}",
            auto_offset_reset="earliest",
            consumer_timeout_ms=20000,
            **settings.kafka_python_options(),
        )
        dead = next(iter(consumer))
        consumer.close()
        assert dict(dead.headers)["citybrain.error.reason"] == b"bad_json"
    finally:
        worker.stop()
    assert PASSWORD not in worker.log()


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_worker_without_valid_credentials_is_refused(
    scram_broker: KafkaBroker, tmp_path: Path, password: str | None
) -> None:
    env = env_for(scram_broker, password, f"sasl-refused-{password is None}")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # PLAINTEXT against a SASL listener: the broker hangs up; a wrong password fails SCRAM.
    expected = "KafkaConnectionError" if password is None else "AuthenticationFailed"
    try:
        # Until the refusal is logged or the worker gives up: a fixed wait failed on a
        # loaded machine, where the worker had not yet logged anything.
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline
            and expected not in log.read_text(errors="replace")
            and proc.poll() is None
        ):
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert "Worker ready" not in text
        if password is None:  # PLAINTEXT against a SASL listener: the broker hangs up
            assert "KafkaConnectionError" in text
        else:
            assert "AuthenticationFailed" in text
            assert "wrong-password" not in text
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_password": "hunter2"},
            "CITYBRAIN_KAFKA_USERNAME is required when CITYBRAIN_KAFKA_SECURITY_PROTOCOL is "
            "SASL_SSL",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "u"},
            "CITYBRAIN_KAFKA_PASSWORD is required",
        ),
        (
            {"kafka_security_protocol": "TLS", "kafka_password": "hunter2"},
            "CITYBRAIN_KAFKA_SECURITY_PROTOCOL is 'TLS': expected",
        ),
        (
            {"kafka_port": "many", "kafka_password": "hunter2"},
            "CITYBRAIN_KAFKA_PORT is 'many': expected",
        ),
        # Trial 29: a URL's password went into the error, and would have gone into
        # every audit record and warning naming the URL.
        (
            {"grafana_url": "http://admin:hunter2@127.0.0.1:3000"},
            "CITYBRAIN_GRAFANA_URL is 'http://admin:***@127.0.0.1:3000': expected no user or "
            "password in the URL",
        ),
        (
            {"replies_webhook_url": "file:///etc/hunter2"},
            "CITYBRAIN_REPLIES_WEBHOOK_URL is 'file:///etc/hunter2': expected an http:// or https://",
        ),
    ],
)
def test_configuration_errors_name_the_setting_and_hide_secrets(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert message in str(info.value)
    if "file://" not in message:  # the path is no secret, and is named
        assert "hunter2" not in str(info.value)


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Send one request exactly as written (``head``: request line and headers, CRLF
    separated, without the blank line), as no HTTP client would (a header twice, a byte
    past ASCII); (status, JSON body) of the answer, read to the connection's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
        sock.sendall(head + b"\r\nConnection: close\r\n" + length + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65_536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")


def bearer(token: str) -> bytes:
    return f"Authorization: Bearer {token}".encode()


def test_the_operator_api_refuses_a_second_authorization_header_and_odd_bytes(
    stack: Any, run_dir: Path
) -> None:
    """Trial 29: with two Authorization headers the worker took the first (a proxy may
    check the last); a byte past ASCII in the token was a 500 (hashing it raised). Each
    refusal is audited and no token is in the audit record, the answer or the log."""
    tokens = run_dir / "security-tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f"  - {{name: duty-operator, role: operator, sha256: '{hash_token(OPERATOR_TOKEN)}'}}\n"
        f"  - {{name: night-lead, role: coordinator, sha256: '{hash_token(COORDINATOR_TOKEN)}'}}\n"
    )
    tokens.chmod(0o644)  # others may read it: warned of at start
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_API_TOKENS_FILE": str(tokens)})
    worker = p.worker().start()
    port = p.settings.worker_port
    try:
        get = b"GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1"
        for first, second in ((OPERATOR_TOKEN, COORDINATOR_TOKEN), (COORDINATOR_TOKEN, "x")):
            status, said = raw_request(
                port, get + b"\r\n" + bearer(first) + b"\r\n" + bearer(second)
            )
            assert (status, said["error"]) == (
                400,
                "the Authorization header is given 2 times: send it once, "
                "Authorization: Bearer <token>",
            )
        # In another casing the name is the same header (RFC 9110 section 5.1).
        lower = get + b"\r\n" + bearer(OPERATOR_TOKEN) + b"\r\nauthorization: Bearer x"
        assert raw_request(port, lower)[0] == 400
        status, said = raw_request(port, get + b"\r\nAuthorization: Bearer \xff" + b"a" * 8)
        assert (status, said["error"]) == (
            401,
            "unknown bearer token: it is none of the 2 configured tokens",
        )
        # One header, extra spaces around the token (RFC 9110's 1*SP), the scheme in
        # capitals: accepted.
        spaced = get + b"\r\nAuthorization: BEARER   " + OPERATOR_TOKEN.encode() + b"  "
        assert raw_request(port, spaced)[0] == 200
        # An operator approving, which needs a coordinator: 403 naming both roles.
        post = b"POST /api/v1/runs/no-such-run/approve HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        status, said = raw_request(
            port, post + bearer(OPERATOR_TOKEN) + b"\r\nContent-Type: application/json", b"{}"
        )
        assert (status, said["error"]) == (
            403,
            "token 'duty-operator' has role operator, which may not approve a step: that "
            "needs role coordinator",
        )
        refused = p.read(
            "audit",
            lambda m: sum(json.loads(r.value).get("action") == "api_refused" for r in m) >= 5,
        )
        records = [r.value.decode() for r in refused]
        statuses = sorted(
            json.loads(r)["status"] for r in records if json.loads(r)["action"] == "api_refused"
        )
        assert statuses == [400, 400, 400, 401, 403]
    finally:
        worker.stop()
        p.close()
    log = worker.log_file.read_text(errors="replace")
    for secret in (OPERATOR_TOKEN, COORDINATOR_TOKEN, hash_token(OPERATOR_TOKEN)):
        assert not any(secret in r for r in records)
        assert secret not in log
    assert (
        f"citybrain: CITYBRAIN_API_TOKENS_FILE {tokens} may be read by other users "
        f"(mode 0644): chmod 600 {tokens}"
    ) in log


def test_the_http_ingest_refuses_a_second_authorization_header(stack: Any, run_dir: Path) -> None:
    """Trial 29: the HTTP ingest took the first of two Authorization headers, so an
    operator's token after a gateway's passed as the gateway."""
    gateway = "security-gateway-token"
    tokens = run_dir / "security-ingest-tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f"  - {{name: gw, role: gateway, sha256: '{hash_token(gateway)}'}}\n"
        f"  - {{name: duty-operator, role: operator, sha256: '{hash_token(OPERATOR_TOKEN)}'}}\n"
    )
    tokens.chmod(0o600)
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_API_TOKENS_FILE": str(tokens)})
    ingest = IngestProcess(p.env, run_dir / f"{p.name}-ingest-http.log", "http").start()
    port = p.settings.ingest_http_port
    reading = {
        "schema": "reading/1",
        "ts": "2026-01-01T00:00:00Z",
        "sensor_id": "s-1",
        "kind": "pm25",
        "value": 1.0,
        "unit": "ug/m3",
        "grid_cell": "c-1",
    }
    body = json.dumps(reading).encode()
    head = (
        b"POST /ingest/v1/readings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
    )
    try:
        for first, second in ((gateway, OPERATOR_TOKEN), (OPERATOR_TOKEN, gateway)):
            status, said = raw_request(port, head + bearer(first) + b"\r\n" + bearer(second), body)
            assert (status, said["field"]) == (400, "Authorization"), said
        status, said = raw_request(port, head + b"Authorization: Bearer \xff", body)
        assert (status, said["error"]) == (
            401,
            "unknown bearer token: it is none of the 2 configured tokens",
        )
    finally:
        ingest.stop()
        p.close()
    log = ingest.log_file.read_text(errors="replace")
    assert gateway not in log and OPERATOR_TOKEN not in log
    assert "may be read by other users" not in log  # 0600: nothing to warn of
