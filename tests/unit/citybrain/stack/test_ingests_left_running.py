"""`stack down` says which of the user's ingests it left running, and how to stop them
(t174).

A newcomer ran `citybrain ingest mqtt` and `ingest http` (README, Pointing a city's
gateways), then `citybrain stack down`: Kafka, Prometheus, Mosquitto and the demo's worker
were said stopped, and not a word of the two ingests, which went on retrying (the MQTT one
"reconnecting" for good, the HTTP one answering 503). They are the user's processes, so
they are left running (a `stack up` resumes them), but named, with `kill`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from citybrain.cli import main
from citybrain.stack.process import code_changed_since, ingest_action, running_ingests
from tests.unit.citybrain.test_cli_errors import _closed_port
from tests.unit.citybrain.test_cli_stumbles import stopped

__all__ = ["stopped"]  # fixture, used by name

Start = Callable[..., int]
DEFAULTS = {"CITYBRAIN_KAFKA_PORT": 19092, "CITYBRAIN_MQTT_PORT": 11883}


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Start]:
    """Starts stand-ins for `citybrain ingest ACTION` with the given settings."""
    script = tmp_path / "venv" / "bin" / "citybrain"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    started: list[subprocess.Popen[bytes]] = []

    def start(action: str, **settings: str) -> int:
        env = {"PATH": os.environ.get("PATH", ""), **settings}
        proc = subprocess.Popen([sys.executable, str(script), "ingest", action], env=env)
        started.append(proc)
        time.sleep(0.1)  # exec'd: its cmdline is the new program's
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_an_ingest_command_line_is_told_apart() -> None:
    assert ingest_action(["/c/.venv/bin/python3.11", "/c/.venv/bin/citybrain", "ingest", "mqtt"])
    assert ingest_action(["python", "-m", "citybrain", "ingest", "http"]) == "http"
    assert ingest_action(["python", "-m", "citybrain.cli", "ingest", "mqtt"]) == "mqtt"
    assert ingest_action(["/c/.venv/bin/citybrain", "worker"]) is None
    assert ingest_action(["/c/.venv/bin/citybrain", "ingest"]) is None
    assert ingest_action(["grep", "ingest", "mqtt"]) is None


def test_the_ingests_feeding_this_stack_are_found_by_their_ports(ingest: Start) -> None:
    start = ingest
    ours = {"CITYBRAIN_KAFKA_PORT": 27392, "CITYBRAIN_MQTT_PORT": 20183}
    mqtt = start("mqtt", CITYBRAIN_MQTT_PORT="20183")
    http = start("http", CITYBRAIN_KAFKA_PORT="27392")
    others = {
        start("http", CITYBRAIN_KAFKA_PORT="27492"),  # another stack's
        start("http", CITYBRAIN_KAFKA_PORT="27392", CITYBRAIN_KAFKA_HOST="kafka.city"),
    }
    default = start("mqtt")
    mine = {mqtt, http, default, *others}  # other users of this machine run theirs

    def found(ports: dict[str, int]) -> list[tuple[int, str]]:
        return [(pid, action) for pid, action in running_ingests(ports, DEFAULTS) if pid in mine]

    assert found(ours) == sorted([(mqtt, "mqtt"), (http, "http")])
    # The first MQTT one sends to the default Kafka (its port unset): it feeds that too.
    assert found(DEFAULTS) == sorted([(mqtt, "mqtt"), (default, "mqtt")])


def test_stack_down_names_the_ingests_it_left_running(
    stopped: None,
    ingest: Start,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fails on the old code: no `ingests` line."""
    port = str(_closed_port())  # no one else's ingest feeds it
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", port)
    monkeypatch.setenv("CITYBRAIN_MQTT_PORT", str(_closed_port()))
    pid = ingest("http", CITYBRAIN_KAFKA_PORT=port)
    assert main(["stack", "down"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("ingests"))
    assert line.startswith(
        f"ingests     left running, not the stack's: pid {pid} (citybrain ingest http); "
        "each waits for Kafka to come back (`"
    ), line
    assert line.endswith(f"`kill {pid}` stops it")
    assert main(["stack", "status"]) == 1
    assert f"ingests     running  pid {pid} (citybrain ingest http)" in capsys.readouterr().out


def test_stack_down_without_ingests_says_nothing_of_them(
    stopped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "down"]) == 0
    assert "ingests" not in capsys.readouterr().out


def test_a_worker_of_another_virtualenv_is_not_judged_by_this_checkouts_files(
    tmp_path: Path,
) -> None:
    """The run directory may be shared by two checkouts: a worker started by another
    virtualenv's python runs that checkout's code, which these files do not say."""
    other = tmp_path / "other" / "bin" / "python"
    other.parent.mkdir(parents=True)
    other.symlink_to(sys.executable)
    root = tmp_path / "checkout"
    (root / "streams").mkdir(parents=True)
    procs = [
        subprocess.Popen([python, "-c", "import time; time.sleep(30)"])
        for python in (str(other), sys.executable)
    ]
    try:
        time.sleep(0.1)
        (root / "streams" / "events.py").write_text("NEW = 2\n")
        assert code_changed_since(procs[0].pid, root) == []
        assert code_changed_since(procs[1].pid, root) == [Path("streams/events.py")]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
