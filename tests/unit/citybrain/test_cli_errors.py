"""No traceback ever reaches a user (issue 15, item 2).

Every subcommand the parser knows is run, as a user runs it, against a stopped stack
(ports nothing listens on): each ends with one ``citybrain: <reason>`` line and a
documented exit status. The subcommands are read from the parser, so a new one is
covered without touching this file; a new required argument fails
``test_every_required_argument_has_a_value`` until ARGUMENT_VALUES gives it one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citybrain.cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SERVICE,
    EXIT_STATUSES,
    EXIT_USAGE,
    build_parser,
    main,
)
from citybrain.commands import cli_command
from streams.settings import REPO_ROOT

# Ports handed out in this process: one pick after another can be given the same port
# back once the first socket closed, and Settings refuses two servers' ports alike (CI:
# a test's MQTT port equal to the fixture's ingest port, `stack down` exit 2).
_HANDED_OUT: set[int] = set()


def _closed_port() -> int:
    """A port nothing listens on now, never one this process was handed before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command path (``("runs", "list")``, ``("stack", "up")``, ...) with
    its parser; a positional with choices (``stack up|down|status``) gives one path each."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for name, child in subs[0].choices.items():
            yield from leaf_commands(child, (*path, name))
        return
    choice = [a for a in parser._actions if not a.option_strings and a.choices and a.dest != "help"]
    if choice:
        for value in choice[0].choices:
            yield (*path, str(value)), parser
    else:
        yield path, parser


# A value for every required argument, by its dest: files that do not exist where
# reading them is the point, canonical CSVs where the command must get as far as Kafka.
def argument_values(tmp: Path, csv: Path) -> dict[str, list[str]]:
    return {
        "files": [str(csv)],
        "labels": ["kind=water_level"],
        "run_id": ["run-1"],
        "silence_id": ["silence-1"],
        "matcher": ['kind="pm25"'],
        "duration": ["1h"],
        "reason": ["maintenance"],
        "prefix": ["no-such-prefix"],
        "data": [str(csv)],
        "out": [str(tmp / "out.html")],  # report --out takes a .html file
        "input": [str(tmp / "no-such-input.csv")],
        "output": [str(tmp / "output.csv")],
        "url": [f"http://127.0.0.1:{_closed_port()}"],
        "token": ["some-token"],
        "shared": [str(tmp / "no-such-shared")],
        "start": ["2024-05-26"],
        "end": ["2024-05-27"],
        "incidents": [str(tmp / "no-such-incidents.csv")],
        "units": [str(tmp / "no-such-units.yaml")],
        "report": ["nyc311-1"],
        "note": ["on my way"],
    }


def command_line(
    path: tuple[str, ...], parser: argparse.ArgumentParser, values: dict[str, list[str]]
) -> list[str]:
    argv = list(path)
    for action in parser._actions:
        if action.dest in ("help",) or (not action.option_strings and action.choices):
            continue
        if not action.option_strings:
            if action.nargs not in ("?", "*"):  # optional positionals keep their default
                argv += values[action.dest]
        # Required options, and the API token, without which the API is never tried.
        elif action.required or action.dest == "token":
            argv += [action.option_strings[-1], *values[action.dest][:1]]
    for group in parser._mutually_exclusive_groups:  # e.g. --satisfied | --unsatisfied
        if group.required:
            first = group._group_actions[0]  # a flag, or an option and its value
            argv += [first.option_strings[-1], *values.get(first.dest, [])[:1]]
    return argv


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("stopped")
    csv = tmp / "readings.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-11T00:00:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env.update(
        {
            "CITYBRAIN_HOME": str(tmp / "home"),
            "CITYBRAIN_RUN_DIR": str(tmp / "run"),
            "CITYBRAIN_KAFKA_PORT": str(_closed_port()),
            "CITYBRAIN_KAFKA_CONTROLLER_PORT": str(_closed_port()),
            "CITYBRAIN_PROMETHEUS_PORT": str(_closed_port()),
            "CITYBRAIN_WORKER_PORT": str(_closed_port()),
            "CITYBRAIN_MQTT_PORT": str(_closed_port()),
            "CITYBRAIN_INGEST_HTTP_PORT": str(_closed_port()),
        }
    )
    return tmp, env, csv


def run_cli(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *argv],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


COMMANDS = sorted(leaf_commands(build_parser()), key=lambda c: c[0])


def test_the_walk_finds_every_command() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"stack up", "stack down", "stack status", "worker", "runs list", "runs ack"} <= paths
    assert {"silences add", "playbooks route-test", "dashboards push", "bench nab"} <= paths


def test_every_required_argument_has_a_value(tmp_path: Path) -> None:
    values = argument_values(tmp_path, tmp_path / "x.csv")
    for path, parser in COMMANDS:
        command_line(path, parser, values)  # a KeyError names the missing dest
        build_parser().parse_args(command_line(path, parser, values))


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def worker_refusal(tmp_path: Path, settings: dict[str, str]) -> list[str]:
    """Start ``citybrain worker`` with ``settings`` added to the environment (a run
    directory of its own in ``tmp_path``); asserts that it exits 2 before starting,
    with no traceback, and returns its stderr lines."""
    env = {**os.environ, **settings, "CITYBRAIN_RUN_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()


def run_in_process(argv: list[str], env: dict[str, str]) -> Outcome:
    """``main(argv)`` with ``env`` as the whole CITYBRAIN_* environment and empty stdin:
    the same boundary a user's command goes through, without an interpreter start per
    command (the subprocess tests below cover what only a real process shows)."""
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        for key in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith("CITYBRAIN_")})
        stdin, sys.stdin = sys.stdin, io.StringIO("")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            sys.stdin = stdin
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def outcomes(stopped: tuple[Path, dict[str, str], Path]) -> dict[tuple[str, ...], Outcome]:
    tmp, env, csv = stopped
    blocker = tmp / "a-file"
    blocker.write_text("")
    # These two start the stack themselves; here its home is under a plain file, so
    # installing Kafka must fail, and say so in a line.
    starts_stack = {
        **env,
        "CITYBRAIN_HOME": str(blocker / "home"),
        "CITYBRAIN_RUN_DIR": str(blocker / "run"),
    }
    results = {}
    for path, parser in COMMANDS:
        argv = command_line(path, parser, argument_values(tmp, csv))
        chosen = starts_stack if path in (("stack", "up"), ("demo",)) else env
        results[path] = run_in_process(argv, chosen)
    return results


# A Python exception's class name or an OSError's "[Errno N]" in a user's line.
PYTHONISM = re.compile(r"\[Errno \d+\]|\b[A-Z][A-Za-z]+(Error|Exception|Available)\b")


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_against_a_stopped_stack_ends_in_one_line(
    path: tuple[str, ...],
    outcomes: dict[tuple[str, ...], Outcome],
) -> None:
    proc = outcomes[path]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode in EXIT_STATUSES, (proc.returncode, proc.stderr)
    if proc.returncode != EXIT_OK:
        reasons = [line for line in proc.stderr.splitlines() if line.startswith("citybrain: ")]
        assert len(reasons) == 1, proc.stderr
        assert len(reasons[0]) > len("citybrain: ") + 10
        # In words, not Python's (trial 25: "(NoBrokersAvailable)", "([Errno 111] …)").
        assert not PYTHONISM.search(reasons[0]), reasons[0]


def test_services_that_are_down_give_status_3(
    outcomes: dict[tuple[str, ...], Outcome],
) -> None:
    for path in [("worker",), ("replay",), ("report",), ("runs", "list"), ("silences", "add")]:
        assert outcomes[path].returncode == EXIT_SERVICE, (path, outcomes[path].stderr)


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (
            ["runs", "list", "--token", "x"],
            EXIT_SERVICE,
            "cannot reach the operator API at http://127.0.0.1:",
        ),
        (["runs", "list"], EXIT_USAGE, "give --token or set CITYBRAIN_API_TOKEN"),
        (["worker"], EXIT_SERVICE, "no Kafka broker answers at 127.0.0.1:"),
        (["hash-token"], EXIT_USAGE, "no token on standard input"),
        # A token HTTP cannot carry: UnicodeEncodeError / "Invalid header value", exit 70.
        (["runs", "list", "--token", "ಠ_ಠ"], EXIT_USAGE, "--token has 'ಠ' at position 1"),
        (["silences", "list", "--token", "a\nb"], EXIT_USAGE, "--token has '\\n' at position 2"),
        # Past '=' padding: the character after it, not the '=' (a lone '=' was blamed).
        (["runs", "list", "--token", "abc==é"], EXIT_USAGE, "--token has 'é' at position 6"),
    ],
)
def test_the_reason_says_what_was_tried_and_what_to_do(
    argv: list[str], status: int, says: str, stopped: tuple[Path, dict[str, str], Path]
) -> None:
    proc = run_in_process(argv, stopped[1])
    assert proc.returncode == status
    assert proc.stderr.startswith("citybrain: ") and says in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_token_setting_with_bytes_that_are_not_utf8_is_named_by_byte(
    stopped: tuple[Path, dict[str, str], Path],
) -> None:
    # The environment's bytes arrive as surrogate escapes: encoding one to find the bad
    # character raised UnicodeEncodeError ("a bug", exit 70).
    proc = run_cli(["runs", "list"], {**stopped[1], "CITYBRAIN_API_TOKEN": "ab\udcffcd"})
    assert proc.returncode == EXIT_USAGE
    assert "CITYBRAIN_API_TOKEN has byte 0xff at position 3" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_the_issue_case_as_a_user_runs_it(stopped: tuple[Path, dict[str, str], Path]) -> None:
    """`citybrain runs list --token x` with no worker printed a 40-line URLError."""
    proc = run_cli(["runs", "list", "--token", "x"], stopped[1])
    assert proc.returncode == EXIT_SERVICE
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv", [["playbooks", "check"], ["dashboards", "generate", "--out", "OUT"]]
)
def test_a_closed_pipe_ends_quietly(
    argv: list[str], stopped: tuple[Path, dict[str, str], Path], tmp_path: Path
) -> None:
    """`citybrain ... | head`: the reader goes away before the output is written."""
    argv = [str(tmp_path) if a == "OUT" else a for a in argv]
    read, write = os.pipe()
    os.close(read)  # nobody will ever read: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "citybrain.cli", *argv],
            env=stopped[1],
            cwd=REPO_ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == EXIT_PIPE, proc.stderr
    assert proc.stderr == ""


def test_ctrl_c_ends_with_one_line(stopped: tuple[Path, dict[str, str], Path]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    # Wait until it blocks reading fd 0 (x86_64 syscall 0 = read): imports are done.
    syscall = Path(f"/proc/{proc.pid}/syscall")
    for _ in range(600):
        fields = syscall.read_text().split()
        if fields[:2] == ["0", "0x0"]:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    # Standard input stays open until it has ended: communicate() closed it at once, and
    # on a loaded machine the end of input reached the read before the signal did (the
    # command then said "no token on standard input", exit 2).
    proc.wait(timeout=30)
    assert proc.stderr is not None and proc.stdin is not None and proc.stdout is not None
    err = proc.stderr.read()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        pipe.close()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err == "citybrain: interrupted\n"


@pytest.mark.parametrize(
    ("setting", "argv", "text", "line"),
    [
        ("CITYBRAIN_GRID_FILE", ["ingest", "http"], "version: 1\ncells: [a, b\nsensors: []\n", 3),
        (
            "CITYBRAIN_ROUTING_FILE",
            ["playbooks", "route-test", "kind=flood"],
            "route:\n  receiver: [a\n",
            2,  # its last line, at the end of the file (t151: 3, a line it does not have)
        ),
    ],
)
def test_a_yaml_mistake_in_the_grid_or_routing_file_names_its_setting(
    tmp_path: Path, setting: str, argv: list[str], text: str, line: int
) -> None:
    # Trial 4: the tokens file's errors named CITYBRAIN_API_TOKENS_FILE, these only a path.
    path = tmp_path / "file.yaml"
    path.write_text(text)
    proc = run_in_process(argv, {setting: str(path)})
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.startswith(f"citybrain: {setting} {path}:{line}: not valid YAML: "), (
        proc.stderr
    )


@pytest.mark.parametrize(
    ("given", "says"),
    [
        # Bytes that are not UTF-8 were a UnicodeEncodeError traceback ("a bug", 70).
        (
            b"\xff\xfetoken\n",
            "the token has byte 0xff at position 1 (a UTF-16 byte order mark: save the file "
            "as plain ASCII)",
        ),
        # t66: a file saved with a byte order mark (PowerShell) was only "byte 0xef".
        (
            b"\xef\xbb\xbftoken\r\n",
            "the token has byte 0xef at position 1 (a UTF-8 byte order mark: save the file "
            "as plain ASCII)",
        ),
        (b"two words\n", "the token has byte 0x20 at position 4"),
        (b"caf\xc3\xa9\n", "the token has byte 0xc3 at position 4"),
        (b"abc==\xc3\xa9\n", "the token has byte 0xc3 at position 6"),
    ],
)
def test_a_token_that_no_bearer_header_can_carry_is_refused(
    given: bytes, says: str, stopped: tuple[Path, dict[str, str], Path]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        input=given,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_USAGE
    err = proc.stderr.decode()
    assert err.startswith(f"citybrain: {says}: a bearer token is ") and err.count("\n") == 1


def test_a_bearer_token_is_hashed_as_the_api_compares_it(
    stopped: tuple[Path, dict[str, str], Path],
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        input=b"Abc-._~+/9==\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.decode().strip() == hashlib.sha256(b"Abc-._~+/9==").hexdigest()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        # Two tokens, one a line (`cat a.token b.token | hash-token`): the second was
        # dropped without a word, one hash printed for two.
        (b"abc\nxyz\n", "its first line holds a token, and line 2 is not empty"),
        # A blank line before the token: "no token on standard input", which was false.
        (b"\n\nabc", "its first line is empty, and line 3 is not empty"),
    ],
)
def test_more_than_one_line_of_token_is_refused_not_half_read(
    given: bytes, says: str, stopped: tuple[Path, dict[str, str], Path]
) -> None:
    """t98: hash-token read the first line and left the rest unread and unsaid."""
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        input=given,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_USAGE and proc.stdout == b""
    err = proc.stderr.decode()
    assert err.startswith(f"citybrain: standard input has more than the token's line: {says}; ")
    assert err.count("\n") == 1


def test_blank_lines_after_the_token_are_no_second_token(
    stopped: tuple[Path, dict[str, str], Path],
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        input=b"abc\r\n\r\n  \n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.decode().strip() == hashlib.sha256(b"abc").hexdigest()


def test_a_token_typed_at_a_terminal_is_hashed_at_enter(
    stopped: tuple[Path, dict[str, str], Path],
) -> None:
    """At a terminal the line typed is all there is: the check of further lines must not
    wait for Ctrl-D (the terminal stays open here: no EOF is ever sent)."""
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", "hash-token"],
            env=stopped[1],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.write(controller, b"abc\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0
    assert out.decode().strip() == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("size", [4097, 64 * 1024 * 1024])
def test_a_token_longer_than_any_header_takes_is_refused_unread(
    size: int, stopped: tuple[Path, dict[str, str], Path]
) -> None:
    """Trial 21: a first line without a newline (`< /dev/zero`) was read whole, growing
    memory without end; now at most one token's length is read."""
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "hash-token"],
        env=stopped[1],
        input=b"a" * size,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.decode() == (
        "citybrain: the token's first line is longer than 4,096 bytes (read no further): no "
        "server takes a bearer token that long in one header; is standard input the token "
        "file?\n"
    )


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_debug_mode_keeps_a_user_error_one_line_and_shows_a_bugs_traceback(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 9: debug mode re-raised user errors as tracebacks with exit 1; only a bug
    (status 70) shows its traceback there."""
    from citybrain.cli import parser

    monkeypatch.setenv("CITYBRAIN_DEBUG", value)
    missing = "/nonexistent/t9/in.csv"
    assert main(["detect", "--input", missing, "--output", "-"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: ") and len(err.splitlines()) == 1 and missing in err

    def bug(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(parser, "cmd_detect", bug)  # what build_parser hands ``detect``
    with pytest.raises(ZeroDivisionError):
        main(["detect"])


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_debug_off_values_leave_a_bug_as_one_line(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain.cli import EXIT_BUG, parser
    from citybrain.cli.main import debug_mode

    monkeypatch.setenv("CITYBRAIN_DEBUG", value)
    assert not debug_mode()

    def bug(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(parser, "cmd_detect", bug)
    assert main(["detect"]) == EXIT_BUG
    assert "This is a bug" in capsys.readouterr().err


def test_a_bad_debug_value_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_DEBUG", "maybe")
    assert main(["detect"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [err.rstrip("\n")] and "CITYBRAIN_DEBUG is 'maybe'" in err


@pytest.mark.parametrize("with_required", [True, False])
def test_an_unknown_option_is_named_first_with_its_subcommands_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_required: bool
) -> None:
    """Trial 9: ``replay x.csv --bogus`` pointed at ``citybrain --help`` and ``replay
    --bogus`` said only that FILE is required. Every subcommand, with and without its
    required arguments: the unknown option is named, with that subcommand's help."""
    values = argument_values(tmp_path, tmp_path / "in.csv")
    parser = build_parser()
    for path, leaf in leaf_commands(parser):
        argv = command_line(path, leaf, values) if with_required else list(path)
        assert main([*argv, "--bogus-t9"]) == EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert err.startswith("citybrain: ") and len(err.splitlines()) == 1, err
        assert "unrecognized arguments: --bogus-t9" in err, err
        typed = " ".join([shlex.quote(cli_command()), *leaf.prog.split()[1:]])
        assert f"see `{typed} --help`" in err and leaf.prog != "citybrain", err


def test_a_bad_csv_line_limit_is_named_as_a_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 21: named before any file is read, as a setting (not "fix the file")."""
    monkeypatch.setenv("CITYBRAIN_CSV_MAX_LINE_BYTES", "64k")
    assert main(["detect"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        err
        == "citybrain: CITYBRAIN_CSV_MAX_LINE_BYTES is '64k': expected a whole number of bytes, "
        "without a unit: write 64000\n"  # (t151: the unit said, as every size's)
    )


def test_a_failed_connection_is_said_in_words() -> None:
    import kafka.errors

    from citybrain.cli.base import _kafka_reason, said

    assert said(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    assert said(TimeoutError()) == "timed out"
    assert said("timed out") == "timed out"
    for name in ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError"):
        if hasattr(kafka.errors, name):
            assert not PYTHONISM.search(_kafka_reason(getattr(kafka.errors, name)()))
    assert "TopicAuthorizationFailed" not in _kafka_reason(
        kafka.errors.TopicAuthorizationFailedError()
    )


def interruptible() -> None:
    """In the child before it runs: Ctrl-C's default disposition. A suite started in the
    background by a non-interactive shell (`pytest … &`) inherits SIGINT ignored, as POSIX
    has it, and Python then installs no KeyboardInterrupt handler in its children."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("option", ["--routing", "--grid"])
def test_a_yaml_mistake_in_a_file_given_by_option_names_the_option(
    tmp_path: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t151: `route-test --routing x.yaml` said only `x.yaml:2: not valid YAML`, where a
    setting's file is led by the setting and every other option's file by the option."""
    path = tmp_path / "file.yaml"
    path.write_text('a: "b\n')
    assert main(["playbooks", "route-test", "kind=pm25", option, str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {option} {path}:1: not valid YAML: "), err


def test_a_message_is_cut_into_lines_at_its_line_feeds_only_and_shown_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: the boundary split a message with str.splitlines(), which also breaks at
    U+2028, U+0085, \\x1c-\\x1e, \\v and \\f: a value holding one was cut there and its
    rest shown as a detail line; an escape sequence or a bidirectional override in a
    message (a file's name) was played on the terminal. Fails on the old code."""
    from citybrain.cli import CliError, parser

    def refused(args: argparse.Namespace) -> int:
        raise CliError("file a\u2028b\x1cc\x85d\x1b[2J\u202eok: bad\nits detail\x0bline")

    monkeypatch.setattr(parser, "cmd_detect", refused)
    assert main(["detect"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "citybrain: file a\\u2028b\\x1cc\\x85d\\x1b[2J\\u202eok: bad\n  | its detail\\x0bline\n"
    )


def test_a_file_found_under_a_folder_is_named_escaped_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: detect --input-dir named a file by its name as it is: one holding a line
    feed cut 'file:line: reason' into two lines (the second shown as a detail), one
    holding an ESC sequence played it (the terminal turned red), in the refusal, the
    warnings and the 'skipped' lines alike. Fails on the old code."""
    src = tmp_path / "in"
    src.mkdir()
    name = "bad\nname\x1b[31m\u202e.csv"
    (src / name).write_text("timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,x\n")
    shown = str(src / "bad\\nname\\x1b[31m\\u202e.csv")
    argv = ["detect", "--input-dir", str(src), "--output-dir", str(tmp_path / "out")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {shown}:3: field \"value\" is 'x'"), err
    assert len(err.splitlines()) == 1 and "\x1b" not in err
    assert main([*argv, "--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert f"skipped {shown}:3: field \"value\" is 'x', expected a number" in err
    assert f"citybrain: warning: {shown}: 1 row," in err
    assert all(line.startswith(("skipped ", "citybrain: warning: ")) for line in lines), err


@pytest.mark.parametrize(
    "name",
    ["bad\nname\x1b[31m.csv", "caf\udce9.csv", "a\u2028b\u202ec.csv", "it's\t\r.csv", "nb\xa0sp"],
)
def test_a_printed_command_names_an_odd_file_on_one_line_as_bash_reads_it(name: str) -> None:
    """t169: command lines were quoted with shlex.quote, which leaves a line feed, an ESC
    sequence or a U+202E raw inside its quotes (the printed command cut in two, or played
    on the terminal) and wrote a file name's byte that is not UTF-8 as the text \\udce9
    (another file). Now such a word is bash's $'…' with escapes: one printable line that
    bash reads back as the name, byte for byte. Fails on the old code."""
    import os
    import shlex
    import subprocess

    from citybrain.commands import command_line

    line = command_line("replay", name)
    assert line.isprintable(), line
    word = line.rsplit(" ", 1)[-1]
    said = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True)
    assert said.stdout == os.fsencode(name)
    assert command_line("replay", "a b.csv").endswith(shlex.quote("a b.csv"))  # as before


def test_replays_detect_hint_names_a_file_whose_name_is_not_utf8_as_bash_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: the hint `detect --input '…caf\\udce9.csv'` named a file that does not
    exist. Fails on the old code."""
    import os
    import re
    import subprocess

    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.csv"))
    path.write_text("timestamp,value\n2024-01-01T00:00:00Z,1\n")
    assert main(["replay", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    word = re.search(r"detect --input (\$'[^']*')", err)
    assert word is not None, err
    said = subprocess.run(["bash", "-c", f"cat {word.group(1)}"], capture_output=True)
    assert said.stdout == path.read_bytes()


def one_step_record(tmp_path: Path, grid_cell: str) -> Path:
    """``records.jsonl`` in ``tmp_path`` holding one ``step/1`` record (run A created at
    the community level of ``grid_cell``), the smallest input `campaign report` takes."""
    import json

    export = tmp_path / "records.jsonl"
    record = {
        "schema": "step/1",
        "id": "A:1",
        "run_id": "A",
        "action": "run_created",
        "at": 1000,
        "level": "community",
        "detail": "",
        "data": {"grid_cell": grid_cell, "department": "police", "category": "Noise"},
    }
    export.write_text(json.dumps(record) + "\n")
    return export


def test_a_written_file_whose_name_does_not_print_is_named_as_bash_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: "campaign report written to …" printed a name's byte that is not UTF-8 raw:
    on a terminal whose stdout is strict UTF-8 (capsys's is) the command stopped with
    UnicodeEncodeError after writing the file, exit 70 "a bug". Fails on the old code."""
    import os

    from streams.settings import REPO_ROOT

    export = one_step_record(tmp_path, "c-top")
    out = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9\n.json"))
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid), "--out", str(out)]
    assert main([*argv, "--from", "1970-01-01", "--to", "1970-01-02"]) == 0
    said = capsys.readouterr().out
    assert said == f"campaign report written to $'{tmp_path}/caf\\xe9\\n.json' (5 rows)\n"
    assert out.is_file()


def test_a_warning_shows_a_values_escapes_and_separators_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: warnings were printed as they came: a misspelt setting's name holding an ESC
    sequence turned the terminal red, and one holding U+2028 cut the warning for any
    reader splitting lines with str.splitlines(). Fails on the old code."""
    from citybrain.cli import base

    monkeypatch.setattr(base, "_WARNED_UNKNOWN", False)
    monkeypatch.setenv("CITYBRAIN_GRID_FIL\x1b[31mE", "1")
    monkeypatch.setenv("CITYBRAIN_ROUTING_FIL\u2028E", "1")
    assert main(["playbooks", "check"]) == 0
    err = capsys.readouterr().err
    assert "citybrain: warning: CITYBRAIN_GRID_FIL\\x1b[31mE is not a citybrain setting" in err
    assert "citybrain: warning: CITYBRAIN_ROUTING_FIL\\u2028E is not a citybrain setting" in err
    assert err.isascii() and len(err.splitlines()) == 2, err


def test_text_lines_cut_at_line_ends_only() -> None:
    """t169: messages and log tails were cut with str.splitlines(). Fails on the old code
    (text_lines did not exist)."""
    from streams.errors import text_lines

    assert text_lines("a\u2028b\x1cc\x85d\x0be\x0cf\nnext\r\nthird\rlast\n") == [
        "a\u2028b\x1cc\x85d\x0be\x0cf",
        "next",
        "third",
        "last",
    ]
    assert (
        text_lines("") == []
        and text_lines("\n") == [""]
        and text_lines("a\n\nb")
        == [
            "a",
            "",
            "b",
        ]
    )


def test_a_warning_naming_a_file_shows_its_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: warnings built with a file's name (campaign report's grid that lacks a run's
    cell, replay's header-only files, report's --data files) were printed as built: a
    name holding an ESC sequence or a line feed played it or cut the line. Every warning
    now goes through text.warn. Fails on the old code."""
    import shutil

    from streams.settings import REPO_ROOT

    grid = tmp_path / "grid\x1b[31m\n.yaml"
    shutil.copy(REPO_ROOT / "tests" / "fixtures" / "grid.yaml", grid)
    export = one_step_record(tmp_path, "nowhere")
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid), "--json"]
    assert main([*argv, "--from", "1970-01-01", "--to", "1970-01-02"]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"citybrain: warning: the grid {tmp_path}/grid\\x1b[31m\\n.yaml lacks")
