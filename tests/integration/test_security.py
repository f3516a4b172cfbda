"""Kafka security on a real broker: a second local broker, started by citybrain's own stack
code with a SASL/SCRAM listener, accepts a worker with credentials and refuses one
without; configuration errors name the setting and never echo a secret."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from citybrain.stack import KafkaBroker
from citybrain.stack.topics import create_topics
from streams.errors import SettingsError
from streams.settings import load_settings
from tests.services import FIXTURES, Worker, shifted_port

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
    ],
)
def test_configuration_errors_name_the_setting_and_hide_secrets(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)
