"""A new user's stumbles (issue 15, part A): each fixed as the kind of fault it is."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, main
from citybrain.ingest.publisher import PublisherStats
from citybrain.ingest.service import stats_sentence


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A port that accepts TCP connections (and speaks no protocol)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    for name in ("KAFKA_PORT", "MQTT_PORT", "WORKER_PORT", "INGEST_HTTP_PORT"):
        monkeypatch.setenv(f"CITYBRAIN_{name}", str(_closed_port()))


# 2. ingest mqtt without a broker hung silently; 3. without Kafka it logged ~22 lines.


@pytest.mark.parametrize("action", ["mqtt", "http"])
def test_ingest_without_kafka_says_one_line(
    action: str, stopped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", action]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: no Kafka broker answers at 127.0.0.1:")
    assert err.count("\n") == 1, err


def test_ingest_mqtt_without_a_broker_names_it_and_make_stack_up(
    stopped: None,
    listening: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    mqtt = _closed_port()
    monkeypatch.setenv("CITYBRAIN_MQTT_PORT", str(mqtt))
    assert main(["ingest", "mqtt"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: no MQTT broker answers at 127.0.0.1:{mqtt}: ")
    assert "`make stack-up` starts Mosquitto" in err
    assert err.count("\n") == 1, err


def test_bad_ingest_options_are_bad_input_before_any_service(
    stopped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "mqtt", "--topic", "a/#"]) == 2
    assert "--topic" in capsys.readouterr().err


# 8. the ingest's stop line printed PublisherStats(readings=2, ...).


def test_the_ingest_stop_line_is_a_sentence() -> None:
    text = stats_sentence(PublisherStats(readings=2, packs=1, dead_letters=0, max_pending=2))
    assert text == (
        "sent 2 readings to Kafka in 1 pack, dead-lettered 0 messages; "
        "at most 2 readings waited for Kafka at once"
    )
    assert "PublisherStats" not in text
