"""t209: another program on a stack service's port (a leftover server, another tool's
Kafka): `stack status` said the service was "down" and advised the `stack up` that then
refused the port. Status now says what `stack up` would: the setting, the port, the
process holding it and a free port to give instead."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_FAILED, main
from tests.services import free_port


@pytest.fixture
def taken() -> Iterator[int]:
    """A port this process listens on, as another program would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    for name in (
        "KAFKA_PORT",
        "KAFKA_CONTROLLER_PORT",
        "PROMETHEUS_PORT",
        "MQTT_PORT",
        "WORKER_PORT",
        "INGEST_HTTP_PORT",
        "INGEST_METRICS_PORT",
    ):
        monkeypatch.setenv(f"CITYBRAIN_{name}", str(free_port()))


@pytest.mark.parametrize("setting", ["PROMETHEUS_PORT", "KAFKA_CONTROLLER_PORT"])
def test_status_names_the_program_on_a_needed_services_port(
    setting: str,
    taken: int,
    shell: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fails on the old code: the last line was "the stack is not ready: start the
    local stack with `… stack up`"."""
    monkeypatch.setenv(f"CITYBRAIN_{setting}", str(taken))
    assert main(["stack", "status"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    assert "(its port is taken: below)" in out
    assert err.startswith(
        f"citybrain: the stack is not ready: CITYBRAIN_{setting} is {taken}, but "
        f"127.0.0.1:{taken} is already in use by pid "
    )
    assert "stack up" not in err and err.count("\n") == 1


def test_status_names_the_program_on_mosquittos_port_and_stays_ready_without_it(
    taken: int,
    shell: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Mosquitto is optional: its line says the port is taken instead of advising
    `stack up`, and the stack's verdict stays about Kafka and Prometheus."""
    monkeypatch.setenv("CITYBRAIN_MQTT_PORT", str(taken))
    assert main(["stack", "status"]) == EXIT_FAILED  # Kafka and Prometheus are down
    out, err = capsys.readouterr()
    mosquitto = next(line for line in out.splitlines() if line.startswith("mosquitto"))
    assert f"CITYBRAIN_MQTT_PORT is {taken}, but 127.0.0.1:{taken} is already in use" in mosquitto
    assert "stack up` starts it" not in mosquitto
    assert "the stack is not ready: start the local stack with" in err
