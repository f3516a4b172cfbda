"""The local services' lifecycle as a newcomer meets it (t36): one demo at a time (a
second refuses, naming the first), a demo stopped from another shell says by what, a demo
whose worker went says what became of it, and advice that depends on what runs. The same
with the real stack: tests/e2e/test_demo_lifecycle.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citybrain.cli import main
from citybrain.cli.demo import WorkerState, no_alerts_advice
from citybrain.demo import (
    DemoFiles,
    DemoRunningError,
    RunningDemo,
    demo_lock,
    interrupted_message,
    lost_worker_message,
    running_demo,
    running_message,
    stop_running_demo,
    stopped_by,
)
from streams.settings import Settings
from tests.stalls import sigstop

STARTED = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _settings(tmp_path: Path) -> Settings:
    return Settings(run_dir_override=tmp_path)


def test_a_second_demo_refuses_naming_the_running_one(tmp_path: Path) -> None:
    """t36, fault 1: a second `make demo` stopped the first one's worker and deleted its
    topics without a word."""
    settings = _settings(tmp_path)
    files = DemoFiles.of(settings)
    assert running_demo(settings) is None
    with demo_lock(files, "demo-20261203120000", STARTED):
        assert running_demo(settings) == RunningDemo(
            os.getpid(), "demo-20261203120000", "2026-12-03T12:00:00Z"
        )
        with (
            pytest.raises(DemoRunningError) as refused,
            demo_lock(files, "demo-20261203120500", STARTED),
        ):
            pytest.fail("a second demo got the lock")
        message = str(refused.value)
        assert message.startswith(f"another demo is running on this stack (pid {os.getpid()}, ")
        assert "topic prefix demo-20261203120000" in message
        assert f"`kill {os.getpid()}`" in message and "Wait until it ends" in message
        assert "would stop its worker and delete its topics" in message
    assert running_demo(settings) is None  # released with the demo
    # A lock file left by a demo that ended (killed: no one holds it) stops nothing.
    with demo_lock(files, "demo-20261203121000", STARTED):
        assert running_demo(settings) is not None


def test_a_lock_left_by_a_killed_demo_is_free(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.lock.write_text(json.dumps({"pid": 999_999_999, "prefix": "demo-1", "started": ""}))
    assert running_demo(settings) is None
    with demo_lock(files, "demo-2", STARTED):
        assert running_demo(settings) == RunningDemo(os.getpid(), "demo-2", "2026-12-03T12:00:00Z")


def test_the_refusal_says_how_long_the_demo_has_run() -> None:
    files = DemoFiles(Path("/run/demo"))
    demo = RunningDemo(4242, "demo-20261203120000", "2026-12-03T12:00:00Z")
    message = running_message(demo, files, STARTED.replace(minute=3, second=5))
    assert message.startswith(
        "another demo is running on this stack (pid 4242, started 12:00:00 UTC, 3 min ago, "
        "topic prefix demo-20261203120000): "
    )
    assert "Ctrl-C in its terminal, or `kill 4242`" in message
    assert len(f"citybrain: {message}") < 300, message  # t60: 370 with the lock's path
    starting = running_message(RunningDemo(None, "", ""), files, STARTED)
    assert "(still starting; its lock" in starting and "`kill` on its process" in starting


def _holder(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A process holding the demo's lock, as a running demo does, until SIGTERM."""
    code = (
        "import sys, time\n"
        "from datetime import UTC, datetime\n"
        "from citybrain.demo import DemoFiles, demo_lock\n"
        "from streams.settings import Settings\n"
        f"files = DemoFiles.of(Settings(run_dir_override={str(tmp_path)!r}))\n"
        "with demo_lock(files, 'demo-20261203120000', datetime.now(UTC)):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


def test_stopping_a_running_demo_tells_it_by_what(tmp_path: Path) -> None:
    """The sibling: `stack down` stopped the demo's worker and Kafka under it, and the
    demo said "a service did not answer ... start the local stack"."""
    settings = _settings(tmp_path)
    holder = _holder(tmp_path)
    try:
        stopped = stop_running_demo(settings, "citybrain stack down", timeout=20)
        assert stopped is not None and stopped.pid == holder.pid
        assert holder.wait(timeout=10) != 0  # SIGTERM ended it
        assert running_demo(settings) is None
        files = DemoFiles.of(settings)
        assert stopped_by(files, holder.pid) == f"`citybrain stack down` (pid {os.getpid()})"
        assert stopped_by(files) == ""  # not this process's demo
    finally:
        holder.kill()
    assert stop_running_demo(settings, "citybrain stack down") is None


def test_stopping_a_frozen_demo_resumes_it_to_take_the_sigterm(tmp_path: Path) -> None:
    """t104: a kill -STOPped demo held `stack down`'s SIGTERM until its timeout (60 s),
    then `stack down` failed; it is sent SIGCONT after the SIGTERM, as process.stop does."""
    import signal
    import time

    settings = _settings(tmp_path)
    holder = _holder(tmp_path)
    try:
        sigstop(holder.pid)
        began = time.monotonic()
        stopped = stop_running_demo(settings, "citybrain stack down", timeout=15)
        assert stopped is not None and stopped.pid == holder.pid
        assert time.monotonic() - began < 5.0
        assert holder.wait(timeout=10) == -signal.SIGTERM
    finally:
        holder.kill()


def test_a_demo_stopped_by_stack_down_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.stopped_by.write_text(
        json.dumps({"by": "citybrain stack down", "pid": 77, "demo_pid": os.getpid()})
    )
    monkeypatch.delenv("CITYBRAIN_RUN_DIR", raising=False)
    message = interrupted_message(settings)
    assert message.startswith(
        "stopped: `citybrain stack down` (pid 77) in another shell stopped this demo and its "
        "worker, and is stopping the stack; "
    )
    assert "start the local stack" not in message
    # `stack up` interrupted by Ctrl-C is not a demo stopped by another command.
    assert interrupted_message(settings, stack_up=True).startswith("interrupted: ")


def test_stack_down_stops_a_running_demo_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    holder = _holder(tmp_path)
    try:
        assert main(["stack", "down"]) == 0
        assert holder.wait(timeout=10) != 0
    finally:
        holder.kill()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"demo        stopped (pid {holder.pid}, topic prefix demo-20261203120000)")
    # Not "was not running" after the demo line: the demo stops its own worker (t48).
    assert lines[1] == "demo worker stopped with the demo"


def test_a_lost_worker_is_said_as_what_became_of_it() -> None:
    """Never "a service did not answer ... start the local stack": the stack was fine."""
    files = DemoFiles(Path("/run/demo"))
    removed = lost_worker_message(41, None, files, "last line")
    assert removed == (
        "the demo's worker (pid 41) was stopped by another command: its pid file "
        "/run/demo/worker.pid is gone (`citybrain stack down` removes it, and stops the "
        "stack); its log /run/demo/worker.log ends:\nlast line"
    )
    replaced = lost_worker_message(41, 52, files, "")
    assert "now names pid 52: another command stopped it and started a worker" in replaced
    crashed = lost_worker_message(41, 41, files, "Traceback")
    assert crashed.startswith("the demo's worker (pid 41) exited (it crashed, or was killed)")
    # t134: a worker refused by its own check names the check's line as the cause.
    refused = lost_worker_message(
        41,
        41,
        files,
        "citybrain: warning: x\ncitybrain: CITYBRAIN_GRID_FILE g.yaml:2: not valid YAML",
    )
    assert refused.startswith(
        "the demo's worker (pid 41) exited: CITYBRAIN_GRID_FILE g.yaml:2: not valid YAML; its log"
    )
    for message in (removed, replaced, crashed):
        assert "start the local stack" not in message


def _state(**kw: object) -> WorkerState:
    base: dict[str, object] = {
        "demo_running": None,
        "demo_prefix": "demo-1",
        "demo_worker": "running",
        "demo_url": "http://127.0.0.1:16066",
        "port": 16066,
        "port_free": False,
        "free_port": 16067,
    }
    return WorkerState(**{**base, **kw})  # type: ignore[arg-type]


def test_report_advice_follows_what_runs() -> None:
    """t36, fault 3: `report` on a demo with no alerts advised starting a worker while the
    demo's was running (on the port such a worker would need)."""
    head = "prefix 'demo-1' has no alerts and no steps"
    served = no_alerts_advice("demo-1", _state())
    assert served.startswith(f"{head}: the demo's worker, running on http://127.0.0.1:16066, ")
    assert "start one" not in served and "CITYBRAIN_TOPIC_PREFIX" not in served
    still = no_alerts_advice("demo-1", _state(demo_running=4242))
    assert still.startswith(f"{head} yet: its demo is still running (pid 4242)")
    stopped = no_alerts_advice("demo-1", _state(demo_worker="stopped", port_free=True))
    assert "stack restart-worker` starts it again" in stopped and "start one" not in stopped
    # Another prefix while the demo's worker holds the port: a worker on a free port.
    other = no_alerts_advice("mine", _state())
    assert "the demo's worker (prefix demo-1) listens on port 16066" in other
    assert "CITYBRAIN_TOPIC_PREFIX=mine CITYBRAIN_WORKER_PORT=16067" in other
    # Nothing runs: start one, on the port it has.
    idle = no_alerts_advice("mine", _state(demo_worker="none", demo_prefix="", port_free=True))
    assert "no worker has read its events yet (start one: CITYBRAIN_TOPIC_PREFIX=mine " in idle
    assert "CITYBRAIN_WORKER_PORT" not in idle


def test_campaign_report_reads_the_running_demos_prefix_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t36, fault 3: without --prefix, `campaign report` read the default prefix and said
    nothing, while `deadletters` read the running demo's and said so."""
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "1")  # no broker: the note comes first
    monkeypatch.delenv("CITYBRAIN_TOPIC_PREFIX", raising=False)
    files = DemoFiles.of(_settings(tmp_path))
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))  # this process stands in for the demo's worker
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    assert main(["campaign", "report", "--from", "2026-12-01", "--to", "2026-12-02"]) == 3
    err = capsys.readouterr().err
    note = "(the running demo's prefix demo-1; --prefix reads another)\n"
    assert note in err and err.index(note) < err.index("citybrain: no Kafka broker answers")
    assert main(["campaign", "report", "--from", "2026-12-01", "--to", "2026-12-02",
                 "--prefix", "mine"]) == 3  # fmt: skip
    assert "running demo" not in capsys.readouterr().err


def test_stack_status_names_a_running_demo_and_what_holds_its_workers_port(
    tmp_path: Path,
) -> None:
    import socket

    from citybrain.cli.stack import demo_worker_lines

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        settings = Settings(run_dir_override=tmp_path, worker_port=port)
        files = DemoFiles.of(settings)
        with demo_lock(files, "demo-7", STARTED):
            lines = demo_worker_lines(settings)
        assert lines[0] == f"demo        running  pid {os.getpid()}, topic prefix demo-7"
        assert lines[1] == f"demo worker down     http://127.0.0.1:{port} (optional)"
        # t36, fault 2: a worker started by hand there was neither shown nor stopped.
        assert lines[2].strip().startswith(f"but something answers on port {port}: a server")
    # The listening socket closed: nothing is said of the port.
    assert len(demo_worker_lines(settings)) == 1


def test_a_demo_refuses_a_worker_port_a_process_the_stack_did_not_start_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t36, fault 2: a worker started by hand held the port; the next demo started the
    stack, deleted the earlier demos' topics, and its worker exited quoting that one's
    log lines. Now it says so before anything starts."""
    import socket

    from citybrain.stack import KafkaBroker

    free = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free.append(probe.getsockname()[1])
    data = tmp_path / "r.csv"
    data.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330\n"
    )
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for name, value in (
            ("CITYBRAIN_RUN_DIR", str(tmp_path / "run")),
            ("CITYBRAIN_KAFKA_PORT", str(free[0])),
            ("CITYBRAIN_KAFKA_CONTROLLER_PORT", str(free[1])),
            ("CITYBRAIN_PROMETHEUS_PORT", str(free[2])),
            ("CITYBRAIN_WORKER_PORT", str(port)),
        ):
            monkeypatch.setenv(name, value)
        assert main(["demo", "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert f"citybrain: CITYBRAIN_WORKER_PORT is {port}, but 127.0.0.1:{port} is already" in err
    assert not KafkaBroker(Settings(run_dir_override=tmp_path / "run")).pid_file.exists()


def test_a_worker_refused_for_the_demo_workers_port_names_that_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t51's walk: `citybrain worker` while the demo's worker still served its runs said
    the port was in use "by another worker's, or another program's", not whose."""
    import json
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
        monkeypatch.setenv("CITYBRAIN_WORKER_PORT", str(port))
        files = DemoFiles.of(Settings(run_dir_override=tmp_path))
        files.dir.mkdir(parents=True)
        files.pid.write_text(f"{os.getpid()}\n")  # alive: this test's own process
        files.state.write_text(
            json.dumps({"topic_prefix": "demo-9", "worker_url": f"http://127.0.0.1:{port}"})
        )
        assert main(["worker"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"CITYBRAIN_WORKER_PORT is {port}, but 127.0.0.1:{port} is already in use" in err
    assert (
        f"; the demo's worker holds it (pid {os.getpid()}, topic prefix demo-9): "
        f"`kill {os.getpid()}` stops it, `"
    ) in err
    assert "stack restart-worker` starts it again" in err


def _stack_on_free_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """This test's stack: a run directory under ``tmp_path`` and Kafka, its controller,
    Prometheus and Mosquitto on ports free now (none of them running): those ports."""
    from tests.services import free_ports

    free = free_ports(4)  # different ports, each held until all are picked
    for name, value in (
        ("CITYBRAIN_RUN_DIR", str(tmp_path / "run")),
        ("CITYBRAIN_KAFKA_PORT", str(free[0])),
        ("CITYBRAIN_KAFKA_CONTROLLER_PORT", str(free[1])),
        ("CITYBRAIN_PROMETHEUS_PORT", str(free[2])),
        ("CITYBRAIN_MQTT_PORT", str(free[3])),
    ):
        monkeypatch.setenv(name, value)
    return free


def test_stack_status_names_mosquitto_s_commands_as_they_work_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t60's walk: a down Mosquitto was "(optional: citybrain ingest mqtt)", a bare
    `citybrain` where it is not on the PATH, and nothing said what starts it."""
    from citybrain.commands import command_line

    _stack_on_free_ports(tmp_path, monkeypatch)
    assert main(["stack", "status"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("mosquitto"))
    assert line.endswith(
        f"(optional, for `{command_line('ingest', 'mqtt')}`; "
        f"`{command_line('stack', 'up')}` starts it)"
    ), line


def test_the_demo_says_it_starts_its_worker_and_where_it_logs(tmp_path: Path) -> None:
    """t60's walk: 30-50 s of silence after the topic prefix line, as if it hung."""
    from citybrain.demo import WORKER_START_SECONDS, worker_starting_line

    files = DemoFiles.of(Settings(run_dir_override=tmp_path))
    line = worker_starting_line(files.log, then="the replay starts once it serves")
    assert line.startswith("starting its stream worker (about 30 s")
    assert f"at most {WORKER_START_SECONDS} s; log: {files.log}); the replay" in line
    assert len(line) < 200 + len(str(files.log))
    # `stack restart-worker` waits as long for it, and says so too.
    again = worker_starting_line(files.log, "the demo's")
    assert again.startswith("starting the demo's stream worker") and again.endswith(")")


def test_stack_up_says_it_starts_kafka_before_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t60's walk: `stack up` was silent for 40 s on 2 cores before "kafka ready"."""
    from citybrain.stack import KafkaBroker

    free = _stack_on_free_ports(tmp_path, monkeypatch)

    def interrupted(self: KafkaBroker, timeout: float = 90.0) -> None:
        raise KeyboardInterrupt  # Ctrl-C while Kafka starts

    monkeypatch.setattr(KafkaBroker, "start", interrupted)
    assert main(["stack", "up"]) == 130
    out = capsys.readouterr().out
    assert out.startswith(
        f"kafka       starting on 127.0.0.1:{free[0]} (about 30 s on 2 cores, at most 90 s; "
        f"log: {tmp_path / 'run'}"
    ), out


def test_runs_typed_while_a_demo_starts_its_worker_say_to_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t60's walk: `runs list` in a second shell while `make demo` started said "no worker
    serves it there; start one (`make demo` in the checkout …)", which refuses then."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", str(port))
    files = DemoFiles.of(Settings(run_dir_override=tmp_path))
    with demo_lock(files, "demo-7", STARTED):
        for argv in (["runs", "list"], ["silences", "list"]):
            assert main([*argv, "--token", "t"]) == 3
            err = capsys.readouterr().err
            assert err == (
                f"citybrain: cannot reach the operator API at http://127.0.0.1:{port} "
                f"(Connection refused): the running demo (pid {os.getpid()}, topic prefix "
                f"demo-7) is still starting its worker (log: {files.log}); run this again "
                "once the demo prints its progress lines\n"
            ), err
    assert main(["runs", "list", "--token", "t"]) == 3
    assert "no worker serves it there" in capsys.readouterr().err


def test_a_demo_still_writing_its_lock_is_signalled_once_its_pid_is_there(
    tmp_path: Path,
) -> None:
    """t112: a demo that held its lock before writing its pid was never sent SIGTERM,
    only waited for: `stack down` said "did not end within 60 s" (or, had it ended by
    itself, "demo stopped (pid None, topic prefix )")."""
    settings = _settings(tmp_path)
    files = DemoFiles.of(settings)
    code = (
        "import fcntl, json, os, sys, time\n"
        f"fd = os.open({str(files.lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0)\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.0)  # its pid not yet written\n"
        "doc = {'pid': os.getpid(), 'prefix': 'demo-2', 'started': ''}\n"
        "os.pwrite(fd, (json.dumps(doc) + '\\n').encode(), 0)\n"
        "time.sleep(120)\n"
    )
    files.dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert running_demo(settings) == RunningDemo(None, "", "")
        stopped = stop_running_demo(settings, "citybrain stack down", timeout=10)
        assert stopped == RunningDemo(holder.pid, "demo-2", "")
        assert holder.wait(timeout=10) != 0  # SIGTERM ended it
    finally:
        holder.kill()


def test_commands_typed_while_a_demo_starts_its_stack_say_to_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t123's walk: `deadletters`, `report`, `campaign report` and `stack status` typed in
    a second shell while `make demo` started Kafka said "start the local stack with
    `citybrain stack up`", a second start racing the demo's own."""
    from tests.services import free_ports

    kafka, prometheus, worker, mqtt = free_ports(4)
    for name, port in (
        ("KAFKA", kafka),
        ("PROMETHEUS", prometheus),
        ("WORKER", worker),
        ("MQTT", mqtt),
    ):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    settings = Settings(run_dir_override=tmp_path)
    files = DemoFiles.of(settings)
    data = Path(__file__).parents[3] / "datasets" / "usgs_flood_2019-05.csv.gz"
    wait = (
        f"the running demo (pid {os.getpid()}, topic prefix demo-7) is still starting the "
        f"local stack (Kafka's log: {tmp_path / 'kafka' / 'logs' / 'server.log'}): wait "
        "until it prints its progress lines"
    )
    with demo_lock(files, "demo-7", STARTED):
        for argv in (
            ["deadletters"],
            ["report", "--data", str(data), "--out", str(tmp_path / "r.html")],
            ["campaign", "report", "--from", "today", "--to", "tomorrow"],
            ["stack", "status"],
        ):
            code = main(argv)
            err = capsys.readouterr().err
            assert code in (1, 3), (argv, code, err)
            assert wait in err, (argv, err)
            assert "stack up" not in err, (argv, err)
    assert main(["deadletters", "--prefix", "demo-7"]) == 3
    assert "start the local stack with" in capsys.readouterr().err


def test_restart_worker_says_a_frozen_demo_worker_is_frozen_not_running(
    tmp_path: Path,
) -> None:
    """t168 (fails on the old code): with the demo's worker stopped by `kill -STOP`,
    `stack restart-worker` said "demo worker already running", exit 0, though it served
    nothing (`stack status` said frozen, exit 1)."""
    import signal

    from citybrain.cli.base import EXIT_FAILED, CliError
    from citybrain.cli.stack import restart_demo_worker
    from citybrain.stack.process import spawn

    settings = _settings(tmp_path)
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True, exist_ok=True)
    url = "http://127.0.0.1:16066"
    files.state.write_text(json.dumps({"topic_prefix": "demo-1", "worker_url": url}))
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], files.log, files.pid)
    try:
        sigstop(pid)
        with pytest.raises(CliError) as info:
            restart_demo_worker(settings)
        assert info.value.status == EXIT_FAILED
        assert info.value.message == (
            f"the demo's worker (pid {pid}) on {url} is frozen, not stopped (stopped by "
            "`kill -STOP` or a debugger: its runs get no deadlines or operator API): "
            f"`kill -CONT {pid}` resumes it (restart-worker leaves a frozen worker to you: "
            "it may be held on purpose, by a debugger)"
        )
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        os.waitpid(pid, 0)


def test_restart_worker_says_to_start_the_stack_the_demos_worker_looks_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t168 (fails on the old code): a shell on another Kafka port than the demo's was
    told "no Kafka broker answers at <the demo's port>: start the local stack with
    `CITYBRAIN_KAFKA_PORT=<this shell's> … stack up`", a stack the worker would not use,
    and without the demo's controller port."""
    from tests.services import free_ports

    shell, demo, controller = map(str, free_ports(3))
    ports = _stack_on_free_ports(tmp_path, monkeypatch)
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", shell)
    run = tmp_path / "run"
    (run / "demo").mkdir(parents=True)
    recorded = {
        "CITYBRAIN_TOPIC_PREFIX": "demo-1",
        "CITYBRAIN_KAFKA_PORT": demo,
        "CITYBRAIN_KAFKA_CONTROLLER_PORT": controller,
        "CITYBRAIN_RUN_DIR": str(run),
    }
    (run / "demo" / "demo.json").write_text(
        json.dumps({"topic_prefix": "demo-1", "worker_settings": recorded})
    )
    assert main(["stack", "restart-worker"]) == 3
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"citybrain: no Kafka broker answers at 127.0.0.1:{demo}, the demo's")
    up = err.split("start the local stack with `", 1)[1].split("`", 1)[0]
    assert f"CITYBRAIN_KAFKA_PORT={demo} " in up and f"CITYBRAIN_KAFKA_PORT={shell}" not in up
    assert f"CITYBRAIN_KAFKA_CONTROLLER_PORT={controller} " in up
    assert f"CITYBRAIN_KAFKA_CONTROLLER_PORT={ports[1]}" not in up


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{", "not JSON: Expecting property name"),
        ("[1]", "a JSON list, not an object"),
    ],
)
def test_restart_worker_names_a_demo_record_it_cannot_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    said: str,
) -> None:
    """t168 (fails on the old code): a demo.json cut short was "no demo ran under …
    (no …/demo.json)", with the file there."""
    _stack_on_free_ports(tmp_path, monkeypatch)
    record = tmp_path / "run" / "demo" / "demo.json"
    record.parent.mkdir(parents=True)
    record.write_text(text)
    assert main(["stack", "restart-worker"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {record} is not a demo's record ({said}"), err
    assert err.count("\n") == 1


def test_stack_reload_says_a_frozen_demo_worker_is_frozen_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t168's sibling (fails on the old code): `stack reload` sent a frozen worker SIGHUP,
    waited 60 s for a reload line it could not write, and said it "said nothing of a
    reload"."""
    import signal
    import time

    from citybrain.stack.process import spawn

    _stack_on_free_ports(tmp_path, monkeypatch)
    files = DemoFiles.of(Settings())
    files.dir.mkdir(parents=True, exist_ok=True)
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], files.log, files.pid)
    try:
        sigstop(pid)
        began = time.monotonic()
        assert main(["stack", "reload"]) == 1
        assert time.monotonic() - began < 10
        out = capsys.readouterr().out
        assert (
            f"demo worker not reloaded: it is frozen (pid {pid}, stopped by `kill -STOP` or a "
            f"debugger); `kill -CONT {pid}` resumes it, then run this again"
        ) in out.splitlines()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        os.waitpid(pid, 0)


def test_the_demo_says_it_starts_kafka_before_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209's walk: after "starting Kafka and Prometheus, then a stream worker" the demo
    said nothing for 25 s on 2 cores while Kafka started: no time to expect, no log. It
    now says what `stack up` says first. Fails on the old code."""
    import io

    from rich.console import Console

    from citybrain.demo import run_demo
    from citybrain.stack import KafkaBroker
    from tests.services import free_port

    free = _stack_on_free_ports(tmp_path, monkeypatch)
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", str(free_port()))

    def interrupted(self: KafkaBroker, timeout: float = 90.0) -> None:
        raise KeyboardInterrupt  # Ctrl-C while Kafka starts

    monkeypatch.setattr(KafkaBroker, "start", interrupted)
    data = tmp_path / "one.csv"
    data.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330\n"
    )
    out = io.StringIO()
    with pytest.raises(Exception, match="interrupted"):
        run_demo([data], console=Console(file=out, width=100_000))
    lines = out.getvalue().splitlines()
    assert lines[1].startswith(
        f"kafka       starting on 127.0.0.1:{free[0]} (about 30 s on 2 cores, at most 90 s; "
        f"log: {tmp_path / 'run'}"
    ), lines
