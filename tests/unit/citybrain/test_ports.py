"""A server whose port is taken, or whose bind address is wrong, says so in one line
naming the setting and its value (trial 3: an OSError "this is a bug" and a faust
traceback)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, EXIT_USAGE
from citybrain.errors import InputError, ListenError
from citybrain.ports import check_listen, other_settings_ports
from tests.unit.citybrain.test_cli_errors import run_in_process


@pytest.fixture
def taken() -> Iterator[int]:
    """A port another program listens on, as a second worker or ingest would find it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_names_the_setting_and_a_free_choice(taken: int) -> None:
    with pytest.raises(ListenError) as info:
        check_listen("127.0.0.1", taken, "CITYBRAIN_WORKER_PORT", "worker")
    message = str(info.value)
    assert message.startswith(f"CITYBRAIN_WORKER_PORT is {taken}, but 127.0.0.1:{taken} is")
    suggested = int(message.rsplit("e.g. CITYBRAIN_WORKER_PORT=", 1)[1])
    assert suggested != taken
    check_listen("127.0.0.1", suggested, "CITYBRAIN_WORKER_PORT", "worker")


def test_the_suggested_port_is_neither_listening_nor_another_setting(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trial 4: Kafka on a taken port was told to try the next one, where the first
    # stack's controller listened; then the one after, this shell's own controller port.
    for key in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(taken))
    monkeypatch.setenv("CITYBRAIN_KAFKA_CONTROLLER_PORT", str(taken + 2))
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", taken + 1))
            other.listen()
        except OSError:
            pass  # someone else's already: taken all the same
        with pytest.raises(ListenError) as info:
            check_listen("127.0.0.1", taken, "CITYBRAIN_KAFKA_PORT", "Kafka")
        suggested = int(str(info.value).rsplit("e.g. CITYBRAIN_KAFKA_PORT=", 1)[1])
        assert suggested not in {taken, taken + 1, taken + 2}
        assert suggested not in other_settings_ports()
        check_listen("127.0.0.1", suggested, "CITYBRAIN_KAFKA_PORT", "Kafka")


@pytest.mark.parametrize("host", ["192.0.2.1", "notanip.invalid"])
def test_a_bind_address_this_machine_lacks_names_the_bind_setting(host: str) -> None:
    with pytest.raises(InputError) as info:
        check_listen(host, 16066, "CITYBRAIN_WORKER_PORT", "worker")
    assert str(info.value).startswith(f"CITYBRAIN_WORKER_BIND is {host!r}: the worker cannot")


def test_a_free_port_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check_listen("127.0.0.1", port, "CITYBRAIN_WORKER_PORT", "worker")


@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["ingest", "http"], "CITYBRAIN_INGEST_HTTP_PORT"),
        # Trial 4: ingest mqtt said "writing to Kafka at ..." before refusing its port.
        (["ingest", "mqtt"], "CITYBRAIN_INGEST_METRICS_PORT"),
        (["worker"], "CITYBRAIN_WORKER_PORT"),
    ],
)
def test_a_second_server_on_a_taken_port_is_refused_with_status_3(
    argv: list[str], setting: str, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["citybrain", *argv])  # the worker resets sys.argv
    proc = run_in_process(argv, {setting: str(taken)})
    assert proc.returncode == EXIT_SERVICE, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("citybrain: ")]
    assert errors[-1].startswith(f"citybrain: {setting} is {taken}, but 127.0.0.1:{taken}")
    # Where the readings would go is said only once the ingest is about to connect.
    assert "writing to Kafka" not in proc.stdout


@pytest.mark.parametrize("action", ["http", "mqtt"])
def test_a_bad_bind_address_is_status_2_before_any_kafka_line(action: str) -> None:
    proc = run_in_process(["ingest", action], {"CITYBRAIN_WORKER_BIND": "192.0.2.1"})
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.startswith("citybrain: CITYBRAIN_WORKER_BIND is '192.0.2.1'")
    assert "writing to Kafka" not in proc.stdout


@pytest.mark.parametrize(
    "setting", ["CITYBRAIN_PROMETHEUS_PORT", "CITYBRAIN_MQTT_PORT", "CITYBRAIN_KAFKA_PORT"]
)
def test_stack_up_checks_every_port_before_starting_anything(
    setting: str, taken: int, tmp_path: Path
) -> None:
    # Trial 4: a taken Prometheus port was found only after Kafka had started, and Kafka
    # was left running behind the exit 3.
    free = []
    for _ in range(4):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            free.append(sock.getsockname()[1])
    env = {
        "CITYBRAIN_HOME": str(tmp_path / "home"),
        "CITYBRAIN_RUN_DIR": str(tmp_path / "run"),
        "CITYBRAIN_KAFKA_PORT": str(free[0]),
        "CITYBRAIN_KAFKA_CONTROLLER_PORT": str(free[1]),
        "CITYBRAIN_PROMETHEUS_PORT": str(free[2]),
        "CITYBRAIN_MQTT_PORT": str(free[3]),
        setting: str(taken),
    }
    proc = run_in_process(["stack", "up"], env)
    assert proc.returncode == EXIT_SERVICE, proc.stderr
    assert proc.stderr.startswith(f"citybrain: {setting} is {taken}, but "), proc.stderr
    assert proc.stdout == ""  # nothing started, not even Kafka
    assert not (tmp_path / "home").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"cells:\n  - {id: caf\xe9}\n", ":2: byte 0xe9 at column 13 is not UTF-8"),
        (b"cells: [\n", "grid.yaml:"),
    ],
)
def test_stack_up_reads_the_grid_before_starting_anything(
    content: bytes, said: str, tmp_path: Path
) -> None:
    # Trial 27: Prometheus' location rules are written from the grid after Kafka started;
    # a grid that could not be read ended in "unexpected UnicodeDecodeError" with Kafka
    # left running.
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(content)
    env = {
        "CITYBRAIN_HOME": str(tmp_path / "home"),
        "CITYBRAIN_RUN_DIR": str(tmp_path / "run"),
        "CITYBRAIN_GRID_FILE": str(grid),
    }
    proc = run_in_process(["stack", "up"], env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.startswith("citybrain: CITYBRAIN_GRID_FILE "), proc.stderr
    assert said in proc.stderr and "unexpected" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
    assert not (tmp_path / "home").exists() and not (tmp_path / "run").exists()


def test_a_port_setting_in_other_digits_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Helper t52: "²".isdigit() is true, and int("²") raised where a free port was
    suggested; the setting itself is refused naming it (streams.settings)."""
    from streams.settings import Settings

    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "²")
    assert Settings.model_fields["kafka_port"].default in other_settings_ports()


def test_a_taken_port_names_the_process_listening_there() -> None:
    """t164: "already in use (another worker's, or another program's)" left a newcomer to
    find the holder with ss or lsof; the pid and command line listening there are named
    (fails on the old code)."""
    import subprocess

    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        with pytest.raises(ListenError) as info:
            check_listen("127.0.0.1", port, "CITYBRAIN_WORKER_PORT", "worker")
        message = str(info.value)
        assert f"is already in use by pid {listener.pid}, `{sys.executable} -c import" in message
        assert "another program's" not in message, message
    finally:
        listener.kill()
        listener.wait()
