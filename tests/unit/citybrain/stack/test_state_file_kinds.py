"""t194: a file the stack keeps under its run directory that is no file it can use. A pid
file that was a directory made `stack status` say the service had exited (and `stack up`
would start it) and `stack down` end at the first one with "cannot use …/worker.pid: Is a
directory", exit 2, no advice, leaving the rest running; a socket or a symbolic link to
nothing was taken as "not running" unsaid; the demo's lock as a directory was "cannot use
…: Is a directory" and as a link "Too many levels of symbolic links". Now each names the
path, what it is and what to do, exit 2, and `stack down` still stops the others."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, main
from citybrain.stack.process import pid_in, read_pid, state_file_fault

PID_FILES = {
    "kafka": Path("kafka/kafka.pid"),
    "prometheus": Path("prometheus/prometheus.pid"),
    "mosquitto": Path("mosquitto/mosquitto.pid"),
    "demo worker": Path("demo/worker.pid"),
}


def make(path: Path, kind: str) -> str:
    """Put a ``kind`` where ``path`` belongs; what the message says of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        path.mkdir()
        return "is a directory, not a file"
    if kind == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
        return "is a socket, not a file"
    if kind == "fifo":
        os.mkfifo(path)
        return "is a named pipe (FIFO), not a file"
    os.symlink(path.parent / "gone", path)
    return f"is a symbolic link to {path.parent / 'gone'}, which does not exist"


@pytest.mark.parametrize("kind", ["directory", "socket", "fifo", "dangling"])
@pytest.mark.parametrize("service", list(PID_FILES))
def test_a_pid_file_that_is_no_file_is_named_with_what_to_do_by_status_and_down(
    kind: str, service: str, shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fails on the old code: "exited"/"down" with exit 1 or 0, or "cannot use …"."""
    run = shell / "run"
    path = run / PID_FILES[service]
    said = make(path, kind)
    whose = "the demo worker" if service == "demo worker" else service
    assert main(["stack", "status"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert f"{service:11} unknown" in out, out
    assert f"citybrain: {path}, the pid file of {whose}, {said}" in err, err
    assert "Traceback" not in err and "unexpected" not in err
    assert main(["stack", "down"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    # The others are stopped (none runs here: "was not running"), this one said.
    assert f"{service:11} not stopped: its pid file is no file" in out, out
    others = [name for name in PID_FILES if name != service]
    assert all(f"{name:11} was not running" in out for name in others), out
    assert f"citybrain: {path}, the pid file of {whose}, {said}" in err, err
    if kind in ("directory", "socket", "fifo"):
        assert "point CITYBRAIN_RUN_DIR at another directory" in err
    else:
        assert f"remove the link (`rm {path}`)" in err


def test_an_unreadable_pid_file_says_whose_it_is_and_what_to_do(
    shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shell / "run" / "kafka" / "kafka.pid"
    path.parent.mkdir(parents=True)
    path.write_text("4242\n")
    path.chmod(0)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if p == path else real(p, mode))
    fault = state_file_fault(path, "the pid file of kafka")
    assert fault is not None and "cannot be read by you" in fault and "----------" in fault
    assert "run citybrain as the user that started the stack" in fault
    with pytest.raises(ValueError, match="cannot be read by you"):
        read_pid(path)


def test_a_pid_file_naming_init_is_no_service() -> None:
    assert pid_in("1") is None and pid_in("2") == 2


@pytest.mark.parametrize("kind", ["directory", "socket", "dangling", "link"])
def test_the_demo_lock_that_is_no_file_is_named(kind: str, shell: Path) -> None:
    import datetime

    from citybrain.demo import DemoFiles, demo_lock
    from citybrain.stack.process import StateFileError

    files = DemoFiles(shell / "run" / "demo")
    if kind == "link":
        files.dir.mkdir(parents=True)
        (files.dir / "elsewhere").write_text("")
        os.symlink(files.dir / "elsewhere", files.lock)
        said = "is a symbolic link, which citybrain does not follow for its lock"
    else:
        said = make(files.lock, kind)
    with (
        pytest.raises(StateFileError) as caught,
        demo_lock(files, "demo-x", datetime.datetime.now(datetime.UTC)),
    ):
        pass
    assert str(caught.value).startswith(f"{files.lock}, the demo's lock file, {said}")


@pytest.mark.parametrize("kind", ["directory", "dangling", "unreadable"])
def test_any_file_the_stack_uses_that_is_no_file_is_said_with_what_to_do(
    kind: str, shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log, settings file or token file met as the wrong kind by any command: the
    CLI's boundary said "cannot use PATH: Is a directory" (no advice); now what it is
    and what to do, exit 2 (fails on the old code)."""
    import errno

    from citybrain.cli.main import _describe

    path = shell / "run" / "demo" / "worker.log"
    if kind == "unreadable":
        path.parent.mkdir(parents=True)
        path.write_text("")
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if p == path else real(p, mode))
        exc: OSError = PermissionError(errno.EACCES, "Permission denied", str(path))
    else:
        said = make(path, kind)
        code = errno.EISDIR if kind == "directory" else errno.ENOENT
        exc = OSError(code, os.strerror(code), str(path))
    status, message = _describe(exc)
    assert status == EXIT_USAGE
    if kind == "unreadable":  # under the run directory: t111's message, the setting named
        assert message.startswith("CITYBRAIN_RUN_DIR ") and str(path) in message, message
    else:
        assert message.startswith(f"{path}, a file citybrain uses, {said}"), message
