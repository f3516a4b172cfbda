"""t104: `citybrain demo` (and `stack up`) on a stack whose Kafka ran but was frozen
(`kill -STOP`) waited 90 s without a word, then said only "Kafka not ready after 90s;
last log lines:" over nothing: kafka.out, the log it read, is the JVM's own output, and
Kafka writes its lines to server.log. A stopped service is now said at once with its pid
and `kill -CONT`; a service that runs but does not answer names its pid and the restart;
the lines shown are server.log's; an empty log is said to be empty."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from citybrain.stack.mosquitto import MosquittoBroker
from citybrain.stack.process import StackError, alive, wait_until
from citybrain.stack.prometheus import PrometheusServer
from streams.settings import Settings
from tests.services import free_port, free_ports
from tests.stalls import sigstop


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing for a service the stack started."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    sigstop(proc.pid)


def test_a_stopped_process_is_said_at_once_with_its_pid_and_kill_cont(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    pid_file, log = tmp_path / "svc.pid", tmp_path / "svc.log"
    pid_file.write_text(str(sleeper.pid))
    log.write_text("started\n")
    _stopped(sleeper)
    began = time.monotonic()
    with pytest.raises(StackError) as caught:
        wait_until(lambda: False, 20.0, "Kafka", log, lambda: alive(sleeper.pid), pid_file=pid_file)
    assert time.monotonic() - began < 5.0  # not the whole timeout
    message = str(caught.value)
    assert f"Kafka (pid {sleeper.pid}) is frozen" in message
    assert f"`kill -CONT {sleeper.pid}` resumes it" in message
    assert "stack down" in message and "stack up" in message
    # The cause is known: the log is named, its lines (from before the stop) not shown.
    assert message.endswith(f"(its log: {log})")


def test_a_running_process_that_never_answers_names_its_pid_and_the_restart(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    pid_file, log = tmp_path / "svc.pid", tmp_path / "svc.log"
    pid_file.write_text(str(sleeper.pid))
    log.touch()
    with pytest.raises(StackError) as caught:
        wait_until(
            lambda: False, 0.5, "Prometheus", log, lambda: alive(sleeper.pid), pid_file=pid_file
        )
    message = str(caught.value)
    assert message.startswith(f"Prometheus (pid {sleeper.pid}) runs but did not answer within")
    assert "`" in message and "stack down` then `" in message
    # An empty log is said to be empty, not a colon over nothing.
    assert message.endswith(f"its log {log} is empty")
    log.write_text("line 1\nline 2\n")
    with pytest.raises(StackError) as caught:
        wait_until(
            lambda: False, 0.3, "Prometheus", log, lambda: alive(sleeper.pid), pid_file=pid_file
        )
    assert str(caught.value).endswith(f"last lines of {log}:\nline 1\nline 2")


def test_kafka_exiting_at_start_shows_server_log_not_the_empty_jvm_output(
    tmp_path: Path,
) -> None:
    """A broker that exits during start-up: its fatal error is in server.log (log4j), its
    kafka.out (the JVM's stdout) empty, so the message showed a colon over nothing."""
    out, server = tmp_path / "kafka.out", tmp_path / "server.log"
    out.touch()
    server.write_text("[x] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)\n")
    with pytest.raises(StackError) as caught:
        wait_until(lambda: False, 5.0, "Kafka", out, lambda: False, logs=(out, server))
    assert str(caught.value) == (
        f"Kafka exited during start-up; last lines of {server}:\n"
        "[x] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)"
    )


def test_kafka_stopped_is_said_at_once_with_server_log_lines(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """The broker's own start path: its pid file names a stopped process, its kafka.out is
    empty (as it always is) and its server.log holds the lines."""
    broker, controller = free_ports(2)
    settings = Settings(
        run_dir_override=tmp_path, kafka_port=broker, kafka_controller_port=controller
    )
    kafka = KafkaBroker(settings)
    kafka.log_file.parent.mkdir(parents=True)
    kafka.config.write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port},"
        f"CONTROLLER://127.0.0.1:{settings.kafka_controller_port}\n"
    )
    kafka.log_file.touch()
    kafka.server_log.write_text("[2026-12-05] INFO [KafkaRaftServer nodeId=1] started\n")
    kafka.pid_file.write_text(str(sleeper.pid))
    _stopped(sleeper)
    began = time.monotonic()
    with pytest.raises(StackError) as caught:
        kafka.start(timeout=20.0)
    assert time.monotonic() - began < 10.0
    message = str(caught.value)
    assert f"Kafka (pid {sleeper.pid}) is frozen" in message
    # server.log, which holds Kafka's lines, not the empty kafka.out.
    assert message.endswith(f"(its log: {kafka.server_log})")
    assert kafka.shown_log == kafka.server_log


@pytest.mark.parametrize("component", [PrometheusServer, MosquittoBroker])
def test_prometheus_and_mosquitto_stopped_are_said_at_once(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], component: type
) -> None:
    """The same kind in the stack's other two services' start paths."""
    prometheus, mqtt = free_ports(2)
    settings = Settings(run_dir_override=tmp_path, prometheus_port=prometheus, mqtt_port=mqtt)
    service = component(settings)
    service.dir.mkdir(parents=True, exist_ok=True)
    service.pid_file.write_text(str(sleeper.pid))
    service.log_file.write_text("listening\n")
    _stopped(sleeper)
    # Its own port, as the stack wrote it, so it is not "running elsewhere".
    if component is MosquittoBroker:
        service.config.write_text(f"listener {settings.mqtt_port} 127.0.0.1\n")
    began = time.monotonic()
    with pytest.raises(StackError) as caught:
        service.start(timeout=20.0)
    assert time.monotonic() - began < 10.0
    assert f"(pid {sleeper.pid}) is frozen" in str(caught.value)
    assert service.shown_log == service.log_file


def test_stack_status_says_a_stopped_kafka_is_stopped_and_how_to_resume_it(
    tmp_path: Path,
    sleeper: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`stack status` on a stopped broker said "starting" for its first 3 minutes (its
    pid file that new) and then "not answering", restart as the only fix."""
    from citybrain.cli import EXIT_FAILED, main

    port, *others = free_ports(5)
    kafka = KafkaBroker(Settings(run_dir_override=tmp_path, kafka_port=port))
    kafka.dir.mkdir(parents=True)
    kafka.config.write_text(
        f"node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}\n"
    )
    kafka.pid_file.write_text(str(sleeper.pid))  # just started: within the start-up grace
    _stopped(sleeper)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(port))
    for name, other in zip(
        ("KAFKA_CONTROLLER", "PROMETHEUS", "MQTT", "WORKER"), others, strict=True
    ):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(other))
    assert main(["stack", "status"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    line = next(line for line in out.splitlines() if line.startswith("kafka"))
    assert line == (
        f"kafka       frozen   127.0.0.1:{port} (pid {sleeper.pid} is stopped by a signal: "
        f"`kill -CONT {sleeper.pid}` resumes it; its log: {kafka.server_log})"
    )
    assert err.startswith(
        f"citybrain: the stack is not ready: kafka (pid {sleeper.pid}) is frozen"
    ), err
    assert f"`kill -CONT {sleeper.pid}` resumes it" in err


def test_stack_status_says_a_frozen_demo_worker_is_frozen_not_running(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """`runs list` against the frozen demo worker waited 10 s and pointed to `stack
    status` to see why; status said the worker was "running" and exited 0."""
    from citybrain.cli.stack import demo_worker_lines, stopped_demo_worker_failure
    from tests.unit.citybrain.test_demo_worker import _demo

    settings = _demo(tmp_path, sleeper.pid)
    assert demo_worker_lines(settings)[-1].split()[2] == "running"
    assert stopped_demo_worker_failure(settings) == ""
    _stopped(sleeper)
    line = demo_worker_lines(settings)[-1]
    assert line.startswith(
        f"demo worker frozen   http://127.0.0.1:16766 (pid {sleeper.pid} is stopped by a signal"
    ), line
    assert f"`kill -CONT {sleeper.pid}` resumes it" in line
    assert stopped_demo_worker_failure(settings) == (
        f"the demo's worker (pid {sleeper.pid}) is frozen (stopped by `kill -STOP` or a "
        f"debugger), so its runs get no deadlines or operator API: `kill -CONT {sleeper.pid}` "
        "resumes it"
    )


def test_runs_names_a_frozen_demo_worker_and_kill_cont(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `runs`/`silences` add to "did not answer within 10 s" for the demo's worker."""
    from citybrain.cli.api import frozen_demo_worker
    from tests.unit.citybrain.test_demo_worker import _demo

    settings = _demo(tmp_path, sleeper.pid)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(settings.run_dir))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    assert frozen_demo_worker("http://127.0.0.1:16766") == ""  # running: no word
    _stopped(sleeper)
    assert frozen_demo_worker("http://127.0.0.1:16766/") == (
        f"it is the demo's worker (pid {sleeper.pid}), frozen (stopped by `kill -STOP` or a "
        f"debugger): `kill -CONT {sleeper.pid}` resumes it"
    )
    assert frozen_demo_worker("http://127.0.0.1:16767") == ""  # another worker's address


def test_stopping_a_frozen_service_resumes_it_to_take_the_sigterm(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """`stack down` of a kill -STOPped Kafka waited its whole 30 s (the SIGTERM held until
    the process runs again) and then SIGKILLed it, skipping its clean shutdown."""
    from citybrain.stack.process import stop

    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(str(sleeper.pid))
    _stopped(sleeper)
    began = time.monotonic()
    assert stop(pid_file, timeout=20.0) is True
    assert time.monotonic() - began < 5.0
    assert sleeper.wait(timeout=5) == -signal.SIGTERM  # ended by the SIGTERM, not a SIGKILL
    assert not pid_file.exists()


def test_the_demo_live_view_says_a_frozen_kafka_or_worker_stalls_it(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """With the stack's Kafka frozen mid-demo the live view said "replay sent; the worker
    is catching up: 33,445 of 33,775 events processed (99 %)" for the 45 s it was frozen."""
    from citybrain.demo import frozen_note, watch_phase

    pid_file = tmp_path / "kafka.pid"
    pid_file.write_text(str(sleeper.pid))
    assert frozen_note(pid_file, os.getpid()) == ""
    assert watch_phase(False, 33_445, 33_775, 0, 5.0, stuck="") == (
        "replay sent; the worker is catching up"
    )
    _stopped(sleeper)
    note = frozen_note(pid_file, os.getpid())
    assert note == (
        f"Kafka (pid {sleeper.pid}) is frozen (stopped by `kill -STOP` or a debugger); "
        f"nothing moves until `kill -CONT {sleeper.pid}`"
    )
    assert watch_phase(False, 33_445, 33_775, 0, 5.0, stuck=note) == f"stalled: {note}"
    # The demo's worker, frozen, is named the same way.
    assert frozen_note(None, sleeper.pid).startswith(
        f"the demo's worker (pid {sleeper.pid}) is frozen"
    )


def test_the_demo_counts_a_redelivered_event_once() -> None:
    """After that freeze the worker's group session expired and ~27,000 readings were
    delivered again (skipped as redeliveries); the live view added them to the processed
    count: "61,077 of 33,775 events processed (181 %)"."""
    from citybrain.demo import processed_events

    metrics = {
        "citybrain_readings_total": 32_700.0,
        "citybrain_readings_duplicate_total": 77.0,
        "citybrain_incidents_total": 998.0,
        "citybrain_readings_redelivered_total": 27_302.0,
        "citybrain_incidents_redelivered_total": 120.0,
    }
    assert processed_events(metrics) == 33_775


def test_the_demo_live_view_waits_on_a_frozen_worker_saying_so_at_once(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """t108: with the demo's worker frozen the live view printed nothing for 22 s (its
    /metrics did not answer, counted as a busy worker's missed scrapes), then gave up.
    Now each line says it is frozen and how to resume it, and the view waits on it as it
    waits on a frozen Kafka; it ends when the worker is gone."""
    import io
    import threading

    from rich.console import Console

    from citybrain.demo import DemoFiles, _watch

    files = DemoFiles(tmp_path / "demo")
    files.dir.mkdir()
    files.pid.write_text(str(sleeper.pid))
    files.log.write_text("")
    url = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens: scrapes refused
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=400)
    replay = threading.Thread(target=time.sleep, args=(60,), daemon=True)
    replay.start()
    _stopped(sleeper)
    ended: list[BaseException] = []

    def watch() -> None:
        try:
            _watch(console, files, sleeper.pid, url, replay, [0], 10, 5.0, line_every=0.0)
        except BaseException as exc:
            ended.append(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 15
    while out.getvalue().count("is frozen") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.getvalue().count(f"the demo's worker (pid {sleeper.pid}) is frozen") >= 3
    assert f"kill -CONT {sleeper.pid}" in out.getvalue()
    assert watcher.is_alive()  # waiting on it, not given up
    os.kill(sleeper.pid, signal.SIGKILL)
    sleeper.wait()
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], StackError)
    assert f"the demo's worker (pid {sleeper.pid}) exited" in str(ended[0])


def test_the_demo_live_view_in_a_dumb_terminal_prints_plain_lines(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t164: under TERM=dumb (Emacs' shell, a CI's pseudo-terminal) the live view was a
    rich Live, which draws there only once, when it stops: `make demo` said nothing from
    the replay's start to its summary. A dumb terminal gets the plain lines a pipe gets
    (fails on the old code: no line while it runs)."""
    import io
    import threading

    from rich.console import Console

    from citybrain.demo import DemoFiles, _watch

    monkeypatch.setenv("TERM", "dumb")
    files = DemoFiles(tmp_path / "demo")
    files.dir.mkdir()
    files.pid.write_text(str(sleeper.pid))
    files.log.write_text("")
    url = f"http://127.0.0.1:{free_port()}/metrics"
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=400)
    assert console.is_terminal and console.is_dumb_terminal
    replay = threading.Thread(target=time.sleep, args=(60,), daemon=True)
    replay.start()
    _stopped(sleeper)

    def watch() -> None:
        with contextlib.suppress(BaseException):
            _watch(console, files, sleeper.pid, url, replay, [0], 10, 5.0, line_every=0.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 15
    while out.getvalue().count("is frozen") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.getvalue().count(f"the demo's worker (pid {sleeper.pid}) is frozen") >= 2
    assert "\x1b[" not in out.getvalue()  # no cursor movement a dumb terminal cannot do
    os.kill(sleeper.pid, signal.SIGKILL)
    sleeper.wait()
    watcher.join(timeout=10)
