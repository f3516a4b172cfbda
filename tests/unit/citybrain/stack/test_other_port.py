"""t76: a run directory's services started on other ports (a demo run with
CITYBRAIN_KAFKA_PORT=25092 …) asked about from a shell with only its CITYBRAIN_RUN_DIR:
`stack status` said they were "starting" on the default ports for ever and `stack up`
waited 90 s there. Each now says the port it runs on and the setting to give."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from citybrain.stack.mosquitto import MosquittoBroker
from citybrain.stack.process import StackError
from citybrain.stack.prometheus import PrometheusServer
from streams.settings import Settings
from tests.services import free_port, free_ports


@pytest.fixture
def prometheus_like() -> Iterator[int]:
    """A live process whose command line names a Prometheus listen address, as the
    stack starts Prometheus (the port is in no file of its own)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "--web.listen-address=127.0.0.1:25090",
        ]
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _started(tmp_path: Path, prometheus_pid: int) -> Settings:
    """The run directory of a stack started on ports 25092, 25090 and 17883."""
    started = Settings(run_dir_override=tmp_path, kafka_port=25092, mqtt_port=17883)
    kafka, mqtt = KafkaBroker(started), MosquittoBroker(started)
    kafka.dir.mkdir(parents=True)
    kafka.config.write_text(
        "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:25092,CONTROLLER://127.0.0.1:25093\n"
    )
    mqtt.dir.mkdir(parents=True)
    mqtt.config.write_text("listener 17883 127.0.0.1\nallow_anonymous true\n")
    prom = PrometheusServer(started)
    prom.dir.mkdir(parents=True)
    for comp, pid in ((kafka, os.getpid()), (mqtt, os.getpid()), (prom, prometheus_pid)):
        comp.pid_file.write_text(str(pid))
    return started


def test_each_service_names_the_port_it_runs_on_and_stack_up_says_so(
    tmp_path: Path, prometheus_like: int
) -> None:
    _started(tmp_path, prometheus_like)
    shell = Settings(run_dir_override=tmp_path)  # only the run directory: default ports
    kafka, mqtt, prom = KafkaBroker(shell), MosquittoBroker(shell), PrometheusServer(shell)
    assert kafka.elsewhere().startswith(
        "Kafka of this run directory runs on port 25092, not 19092: it was started with "
        "CITYBRAIN_KAFKA_PORT=25092; set that (and the stack's other settings) in this shell, "
        "as this command carries them: `CITYBRAIN_KAFKA_PORT=25092 "
    )
    # t217: it named no other setting and no command; the `stack status` with them now.
    assert kafka.elsewhere().endswith(" stack status`"), kafka.elsewhere()
    assert mqtt.elsewhere().startswith("Mosquitto of this run directory runs on port 17883, ")
    assert "CITYBRAIN_PROMETHEUS_PORT=25090" in prom.elsewhere()
    # `stack up` says it at once rather than waiting for a server on the wrong port.
    for comp in (kafka, mqtt, prom):
        with pytest.raises(StackError, match="runs on port"):
            comp.start(timeout=0.1)


def test_the_same_ports_or_nothing_running_is_not_elsewhere(
    tmp_path: Path, prometheus_like: int
) -> None:
    started = _started(tmp_path, prometheus_like)
    same = Settings(
        run_dir_override=tmp_path, kafka_port=25092, mqtt_port=17883, prometheus_port=25090
    )
    assert [c.elsewhere() for c in (KafkaBroker(same), MosquittoBroker(same))] == ["", ""]
    assert PrometheusServer(same).elsewhere() == ""
    for comp in (KafkaBroker(started), MosquittoBroker(started)):
        comp.pid_file.unlink()
        assert comp.elsewhere() == ""  # not running: nothing to say


def test_stack_up_and_status_from_a_shell_with_only_the_run_directory(
    tmp_path: Path,
    prometheus_like: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from citybrain.cli import EXIT_FAILED, EXIT_SERVICE, main

    _started(tmp_path, prometheus_like)
    # Ports nothing listens on, not the defaults: a stack may run on those here.
    ports = dict(zip(("KAFKA", "PROMETHEUS", "MQTT"), free_ports(3), strict=True))
    for name, port in ports.items():
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    assert main(["stack", "up"]) == EXIT_SERVICE
    assert capsys.readouterr().err.startswith(
        f"citybrain: Kafka of this run directory runs on port 25092, not {ports['KAFKA']}"
    )
    assert main(["stack", "status"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    # What to set, not `stack up`, which refuses it as above (t83).
    assert err.startswith(
        f"citybrain: the stack is not ready: Kafka of this run directory runs on port 25092, "
        f"not {ports['KAFKA']}: it was started with CITYBRAIN_KAFKA_PORT=25092; set that (and "
        "the stack's other settings) in this shell, as this command carries them: `"
    ), err
    # t217: the command carries the port it runs on over this shell's wrong one.
    typed = err.split("carries them: `")[1].split("`")[0].split()
    assert "CITYBRAIN_KAFKA_PORT=25092" in typed and typed[-2:] == ["stack", "status"], typed
    assert "starting" not in out
    for name, started in (("kafka", 25092), ("prometheus", 25090), ("mosquitto", 17883)):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert line.split()[1] == "running", line
        assert f"runs on port {started}, not " in line, line


def test_no_kafka_answering_names_the_run_directory_s_broker_elsewhere(
    tmp_path: Path, prometheus_like: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deadletters` and the other Kafka commands said "start the local stack with …"
    while this run directory's broker served on the demo's port."""
    from citybrain.commands import cli_command, start_stack_hint

    _started(tmp_path, prometheus_like)
    port = free_port()
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(port))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    hint = start_stack_hint()
    assert hint.startswith(
        f"Kafka of this run directory runs on port 25092, not {port}: it was started with "
        "CITYBRAIN_KAFKA_PORT=25092; set that (and the stack's other settings) in this shell, "
        "as this command carries them: `CITYBRAIN_KAFKA_PORT=25092 "
    )
    assert hint.endswith(f"{cli_command()} stack status`")
    KafkaBroker(Settings(run_dir_override=tmp_path)).pid_file.unlink()
    assert start_stack_hint().startswith("start the local stack with `")
