"""A demo's worker older than the checkout's code is said, and restart-worker moves it
onto the new code (t174).

A newcomer pulled a newer commit with the stack running (README: `make install` is an
editable install, the checkout's files are the code). The demo's worker went on with the
code it had imported; `stack status` showed it `running` as before, `stack reload` said
it `reloaded` (its configuration: not its code), and `stack restart-worker` answered
"already running", so only `stack down` (Kafka with it) or a kill would have moved it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli.base import CliError
from citybrain.stack import process
from citybrain.stack.process import alive, code_changed_said, code_changed_since
from tests.unit.citybrain.test_demo_worker import _demo


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in checkout, its files written before the worker starts."""
    root = tmp_path / "checkout"
    for package in process.CODE_PACKAGES:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "streams" / "events.py").write_text("OLD = 1\n")
    past = time.time() - 600
    for path in root.rglob("*.py"):
        os.utime(path, (past, past))
    monkeypatch.setattr(process, "CODE_ROOT", root)
    return root


@pytest.fixture
def worker(checkout: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing for the demo's worker, started after the checkout's files."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(0.05)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _pulled(checkout: Path) -> None:
    """What `git pull` does to a file it changes: writes it, now."""
    time.sleep(0.05)
    (checkout / "streams" / "events.py").write_text("NEW = 2\n")
    (checkout / "citybrain" / "launch.py").write_text("")
    # The file system's clock may not tell the two writes apart: the second is the newer.
    now = time.time()
    os.utime(checkout / "streams" / "events.py", (now - 0.02, now - 0.02))
    os.utime(checkout / "citybrain" / "launch.py", (now, now))
    time.sleep(0.05)


def test_files_changed_since_a_process_started_are_named_newest_first(
    checkout: Path, worker: subprocess.Popen[bytes]
) -> None:
    assert code_changed_since(worker.pid) == []
    _pulled(checkout)
    changed = code_changed_since(worker.pid)
    assert changed == [Path("citybrain/launch.py"), Path("streams/events.py")]
    assert code_changed_said(changed) == (
        "2 Python files of the checkout changed since it started (citybrain/launch.py, "
        "streams/events.py): it runs the code it started with"
    )
    # A process started after them runs them.
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.05)
        assert code_changed_since(later.pid) == []
    finally:
        later.kill()
        later.wait()


def test_stack_status_says_the_demo_worker_runs_older_code_and_the_way_on(
    tmp_path: Path, checkout: Path, worker: subprocess.Popen[bytes]
) -> None:
    """Fails on the old code: `running`, and not a word more."""
    from citybrain.cli.stack import demo_worker_lines, stopped_demo_worker_failure

    settings = _demo(tmp_path, worker.pid)
    assert demo_worker_lines(settings)[-1].split()[2] == "running"
    _pulled(checkout)
    lines = demo_worker_lines(settings)
    assert lines[-2].split()[2] == "running"
    assert "2 Python files of the checkout changed since it started" in lines[-1]
    assert "stack restart-worker` starts it again on the new code" in lines[-1]
    assert stopped_demo_worker_failure(settings) == ""  # not a failure: status stays 0


def test_restart_worker_restarts_a_running_worker_with_unchanged_code(
    tmp_path: Path,
    checkout: Path,
    worker: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t189: an operator restarting a worker was told "demo worker already running; `stack
    down` stops it" (Kafka and Prometheus with it), exit 0, and nothing restarted. Fails on
    the old code: that line, the worker left running."""
    from citybrain import demo
    from citybrain.cli import stack
    from citybrain.cli.stack import restart_demo_worker

    started: list[list[str]] = []

    def spawn(cmd: list[str], log: Path, pid_file: Path, env: object = None) -> int:
        assert worker.poll() is not None, "started while the old worker still ran"
        started.append(cmd)
        return 1

    monkeypatch.setattr(demo, "restart_env", lambda settings, doc: {})
    monkeypatch.setattr(stack, "_restart_environment", lambda env, recorded: {})
    monkeypatch.setattr(stack, "_answers", lambda host, port: True)  # its Kafka
    monkeypatch.setattr(process, "spawn", spawn)
    monkeypatch.setattr(demo, "wait_for_worker", lambda *args: None)
    assert restart_demo_worker(_demo(tmp_path, worker.pid)) == 0
    out = capsys.readouterr().out
    assert "already running" not in out and "stack down" not in out.split("started")[0]
    assert f"the demo's worker (pid {worker.pid}) on http://127.0.0.1:16766: stopping it" in out
    assert "demo worker started (pid 1)" in out
    assert worker.wait(timeout=10) == -signal.SIGTERM
    assert started and started[0][-1] == "worker"


def test_restart_worker_stops_a_worker_older_than_the_code_and_starts_it_again(
    tmp_path: Path,
    checkout: Path,
    worker: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fails on the old code: "demo worker already running", exit 0, the old code on."""
    from citybrain import demo
    from citybrain.cli import stack
    from citybrain.cli.stack import restart_demo_worker

    started: list[list[str]] = []

    def spawn(cmd: list[str], log: Path, pid_file: Path, env: object = None) -> int:
        assert worker.poll() is not None, "started while the old worker still ran"
        started.append(cmd)
        return 1

    monkeypatch.setattr(demo, "restart_env", lambda settings, doc: {})
    monkeypatch.setattr(stack, "_restart_environment", lambda env, recorded: {})
    monkeypatch.setattr(stack, "_answers", lambda host, port: True)  # its Kafka
    monkeypatch.setattr(process, "spawn", spawn)
    monkeypatch.setattr(demo, "wait_for_worker", lambda *args: None)
    settings = _demo(tmp_path, worker.pid)
    _pulled(checkout)
    assert restart_demo_worker(settings) == 0
    out = capsys.readouterr().out
    assert f"the demo's worker (pid {worker.pid}) on http://127.0.0.1:16766: 2 Python" in out
    assert "stopping it to start it again on the new code" in out
    assert "demo worker started (pid 1)" in out
    assert worker.wait(timeout=10) == -signal.SIGTERM
    assert started and started[0][-1] == "worker"


def test_restart_worker_refused_leaves_the_older_worker_serving(
    tmp_path: Path,
    checkout: Path,
    worker: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal (its Kafka down) comes before the stop: the runs keep their worker."""
    from citybrain import demo
    from citybrain.cli import stack
    from citybrain.cli.stack import restart_demo_worker

    monkeypatch.setattr(demo, "restart_env", lambda settings, doc: {})
    monkeypatch.setattr(stack, "_restart_environment", lambda env, recorded: {})
    monkeypatch.setattr(stack, "_answers", lambda host, port: False)
    settings = _demo(tmp_path, worker.pid)
    _pulled(checkout)
    with pytest.raises(CliError) as refused:
        restart_demo_worker(settings)
    assert "no Kafka broker answers at" in refused.value.message
    assert alive(worker.pid)


class _NoPrometheus:
    def ready(self) -> bool:
        return False


def test_reload_says_it_read_the_files_not_the_code(
    tmp_path: Path,
    checkout: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fails on the old code: `reloaded`, as if the pull had been taken."""
    from citybrain.cli.stack import reload_stack
    from citybrain.demo import DemoFiles

    settings = _demo(tmp_path, None)
    log = DemoFiles.of(settings).log
    # A worker that answers SIGHUP as the real one does, in its log.
    answer = (
        "import signal, time\n"
        "def hup(*_):\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        f.write('[x] INFO citybrain: configuration reloaded: 9 playbooks\\n')\n"
        "signal.signal(signal.SIGHUP, hup)\n"
        "time.sleep(60)\n"
    )
    fake = subprocess.Popen([sys.executable, "-c", answer])
    try:
        time.sleep(0.3)  # its handler in place
        DemoFiles.of(settings).pid.write_text(str(fake.pid))
        _pulled(checkout)
        assert reload_stack(settings, _NoPrometheus()) == 0
        out = capsys.readouterr().out
        assert f"demo worker reloaded (pid {fake.pid}): configuration reloaded" in out
        assert "not its code: 2 Python files of the checkout changed since it started" in out
        assert "stack restart-worker` starts it again on the new code" in out
    finally:
        fake.kill()
        fake.wait()


def test_a_file_put_back_as_the_worker_started_with_it_is_not_changed(
    tmp_path: Path, checkout: Path
) -> None:
    """t200: a developer edited detectors/registry.py, then put it back with `git
    checkout`; `stack reload` named it changed since the worker started and advised a
    restart, for the very code the worker runs. The digests recorded as a worker starts
    (process.record_code, written by the demo and restart-worker) tell them apart; a file
    whose contents differ is named as before, and so is every one without a record, or
    with another start's."""
    record = tmp_path / "worker.code.json"
    process.record_code(record)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        events = checkout / "streams" / "events.py"
        events.write_text("OLD = 1\n")  # put back as it was: written, the same bytes
        assert code_changed_since(proc.pid) == [Path("streams/events.py")]  # by time alone
        assert code_changed_since(proc.pid, record=record) == []
        (checkout / "citybrain" / "launch.py").write_text("X = 1\n")  # really changed
        assert code_changed_since(proc.pid, record=record) == [Path("citybrain/launch.py")]
        # Another start's record (taken long before this worker started) is not used.
        old = time.time() - 2 * process.CODE_RECORD_SECONDS
        os.utime(record, (old, old))
        assert Path("streams/events.py") in code_changed_since(proc.pid, record=record)
        assert code_changed_since(proc.pid, record=tmp_path / "none.json") != []
    finally:
        proc.kill()
        proc.wait()


def test_the_demo_and_restart_worker_record_the_code_as_the_worker_starts(
    tmp_path: Path,
    checkout: Path,
    worker: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """restart-worker writes the record just before it spawns the worker (the demo too:
    citybrain/demo.py), so stack status and reload read it."""
    from citybrain import demo
    from citybrain.cli import stack
    from citybrain.cli.stack import restart_demo_worker
    from citybrain.demo import DemoFiles

    records: list[bool] = []

    def spawn(cmd: list[str], log: Path, pid_file: Path, env: object = None) -> int:
        records.append(DemoFiles(pid_file.parent).code.is_file())
        return 1

    monkeypatch.setattr(demo, "restart_env", lambda settings, doc: {})
    monkeypatch.setattr(stack, "_restart_environment", lambda env, recorded: {})
    monkeypatch.setattr(stack, "_answers", lambda host, port: True)
    monkeypatch.setattr(process, "spawn", spawn)
    monkeypatch.setattr(demo, "wait_for_worker", lambda *args: None)
    assert restart_demo_worker(_demo(tmp_path, worker.pid)) == 0
    assert records == [True]
    # The demo records it the same way before it spawns its worker.
    assert "record_code(files.code)" in Path(demo.__file__).read_text()
