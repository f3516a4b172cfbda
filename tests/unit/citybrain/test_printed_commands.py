"""Every command line citybrain prints works as typed in a fresh shell on the same stack
(t40): it carries the settings that differ from their defaults, this shell's and those
the last demo under the run directory recorded (demo.json ``settings``). A demo started
with CITYBRAIN_KAFKA_CONTROLLER_PORT=19094 was followed, after `stack down`, by
restart-worker advising a bare `stack up`, which failed on port 19093."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from citybrain.cli import EXIT_SERVICE, main
from citybrain.cli.stack import demo_worker_lines
from citybrain.commands import (
    API_SETTINGS,
    command_line,
    demo_settings,
    make_command,
    own_settings,
    printed_settings,
    start_stack_hint,
)
from citybrain.demo import (
    DemoFiles,
    interrupted_message,
    restart_command,
    run_demo,
    starting_line,
)
from citybrain.errors import ListenError
from streams.settings import REPO_ROOT, Settings
from tests.services import free_port

SETTING = "CITYBRAIN_KAFKA_CONTROLLER_PORT=19094"


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@pytest.fixture
def demo_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A run directory (this shell's CITYBRAIN_RUN_DIR) where a demo started with
    CITYBRAIN_KAFKA_CONTROLLER_PORT=19094 ran, then `stack down` stopped it; its Kafka
    port answers nothing. The shell that types the advice has no such setting."""
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("CITYBRAIN_KAFKA_CONTROLLER_PORT", raising=False)
    settings = Settings(run_dir_override=tmp_path)
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    kafka = str(free_port())
    files.state.write_text(
        json.dumps(
            {
                "topic_prefix": "demo-1",
                "worker_url": "http://127.0.0.1:16766",
                "worker_log": str(files.log),
                "settings": {
                    "CITYBRAIN_KAFKA_CONTROLLER_PORT": "19094",
                    "CITYBRAIN_KAFKA_PORT": "19092",  # the default: printed by no one
                },
                "worker_settings": {
                    "CITYBRAIN_KAFKA_CONTROLLER_PORT": "19094",
                    "CITYBRAIN_KAFKA_PORT": kafka,
                    "CITYBRAIN_TOPIC_PREFIX": "demo-1",
                },
            }
        )
    )
    return settings


def test_the_demos_recorded_settings_are_printed_the_defaults_not(demo_ran: Settings) -> None:
    assert demo_settings() == {"CITYBRAIN_KAFKA_CONTROLLER_PORT": "19094"}
    assert printed_settings()["CITYBRAIN_KAFKA_CONTROLLER_PORT"] == "19094"
    assert "CITYBRAIN_RUN_DIR=" in command_line("stack", "up")
    assert SETTING in command_line("stack", "up")
    assert SETTING in make_command("stack-up")


def test_the_shells_own_value_wins_over_the_demos(
    demo_ran: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_KAFKA_CONTROLLER_PORT", "19594")
    assert "CITYBRAIN_KAFKA_CONTROLLER_PORT=19594" in command_line("stack", "up")
    assert SETTING not in command_line("stack", "up")


def test_restart_worker_advises_stack_up_with_the_demos_settings(
    demo_ran: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "restart-worker"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    advised = re.findall(r"`([^`]*stack up)`", err)
    assert advised and all(SETTING in line for line in advised), err
    assert SETTING in re.findall(r"`([^`]*make stack-up)`", err)[0]


def test_every_printed_stack_command_carries_the_demos_settings(demo_ran: Settings) -> None:
    DemoFiles.of(demo_ran).pid.write_text(str(_dead_pid()))  # crashed: status says so
    lines = [
        start_stack_hint(),
        restart_command(demo_ran),
        "\n".join(demo_worker_lines(demo_ran)),
        interrupted_message(demo_ran, stack_up=True),
        interrupted_message(demo_ran),
        starting_line(),
    ]
    for text in lines:
        for typed in re.findall(r"`([^`]+)`|: (\S*citybrain stack restart-worker)$", text):
            command = "".join(typed)
            if "citybrain" in command or command.split()[-2:-1] == ["make"]:
                assert SETTING in command, text


# Printed commands are built by citybrain.commands only (command_line, make_command,
# start_stack_hint): one assembled elsewhere dropped settings (t40; trials 5, 9, 10).
_BUILDERS = {"cli_command", "with_settings", "shell_settings"}
_MAKE = re.compile(r"`make (?:demo|stack-up|stack-down)")  # a target without its settings


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_every_printed_command_goes_through_citybrain_commands() -> None:
    """Walks every string and call of citybrain/: no message names a make target or
    builds a command line itself (demo.json records shell_settings: not printed)."""
    found = []
    for path in sorted((REPO_ROOT / "citybrain").rglob("*.py")):
        if path.name == "commands.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        where = path.relative_to(REPO_ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                if name in _BUILDERS and not (name == "shell_settings" and path.name == "demo.py"):
                    found.append(f"{where}:{node.lineno}: {name}()")
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docs and _MAKE.search(text):
                found.append(f"{where}:{node.lineno}: {text}")
    assert found == []


def test_a_printed_command_runs_in_a_fresh_shell(demo_ran: Settings) -> None:
    line = command_line("stack", "up")
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words if "=" in w and w.startswith("CITYBRAIN_"))
    assert env["CITYBRAIN_KAFKA_CONTROLLER_PORT"] == "19094"
    assert env["CITYBRAIN_RUN_DIR"] == str(demo_ran.run_dir)


def test_a_new_demo_prints_its_own_settings_not_the_last_demos(
    demo_ran: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t46: a plain `make demo` after one with CITYBRAIN_KAFKA_CONTROLLER_PORT=19094
    printed `…=19094 make stack-up` in its first line, then started Kafka on 19093. Here
    the new demo stops at its first port check (its Kafka port is taken): what it printed
    carries no recorded setting, and the last demo's record stays (nothing started)."""
    data = tmp_path / "one.csv"
    data.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(taken.getsockname()[1]))
        out = io.StringIO()
        with pytest.raises(ListenError) as raised:
            # Wide enough that no line wraps: at 400 columns a long checkout and tmp path
            # (CI's) broke "ingest mqtt" over two lines.
            run_demo([data], console=Console(file=out, width=100_000))
    said = out.getvalue() + str(raised.value)
    assert "make stack-up" in said and "ingest mqtt" in said, said
    assert "19094" not in said, said
    assert SETTING in command_line("stack", "up")  # the last demo's stack is still there


def test_within_own_settings_no_printed_command_carries_the_recorded_ones(
    demo_ran: Settings,
) -> None:
    DemoFiles.of(demo_ran).pid.write_text(str(_dead_pid()))
    with own_settings():
        lines = [
            starting_line(),
            interrupted_message(demo_ran),
            interrupted_message(demo_ran, prefix="demo-1"),
            start_stack_hint(),
        ]
    for text in lines:
        assert "19094" not in text, text
        assert f"CITYBRAIN_RUN_DIR={demo_ran.run_dir}" in text, text
    assert SETTING in starting_line()  # outside it, as before


def test_stack_status_and_runs_offer_restart_worker_for_a_demo_whose_worker_is_down(
    demo_ran: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """t46: after Ctrl-C in `make demo` (its worker stopped, its state recorded), status
    said `demo worker down (optional)` and `runs list` said to start one with `make demo`,
    which deletes that demo's topics; `stack restart-worker` brings its runs back."""
    status = "\n".join(demo_worker_lines(demo_ran))
    assert "demo worker down" in status
    assert re.search(
        rf"the last demo's \(prefix demo-1\); start it again, as the demo ran it: .*{SETTING}.*"
        r"citybrain stack restart-worker$",
        status,
        re.M,
    ), status
    assert main(["runs", "list", "--token", "t", "--url", "http://127.0.0.1:16766"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert "the last demo's worker (prefix demo-1) is not running" in err, err
    assert "stack restart-worker" in err and "make demo" not in err, err


def test_a_wiped_stack_keeps_no_record_of_the_last_demo(
    demo_ran: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its topics and runs are gone with Kafka's data: status offered restart-worker for
    them, and printed commands carried its settings."""
    assert main(["stack", "down", "--wipe"]) == 0
    out = capsys.readouterr().out
    assert "kafka       no data to wipe" in out and "demo        record removed" in out, out
    assert not DemoFiles.of(demo_ran).state.exists()
    assert "restart-worker" not in "\n".join(demo_worker_lines(demo_ran))
    assert "19094" not in command_line("stack", "up")


def test_an_interrupted_demo_that_recorded_its_state_names_restart_worker(
    demo_ran: Settings,
) -> None:
    """Its worker stopped, its runs and topics kept: `stack restart-worker` brings them
    back; not for a demo that had not recorded its state yet (demo.json is another's)."""
    from citybrain.stack import KafkaBroker

    kafka = KafkaBroker(demo_ran)
    kafka.pid_file.parent.mkdir(parents=True, exist_ok=True)
    kafka.pid_file.write_text(str(os.getpid()))  # a live process stands for Kafka
    said = interrupted_message(demo_ran, prefix="demo-1")
    assert f"(its worker was stopped; `{restart_command(demo_ran)}` starts it again" in said
    assert "restart-worker" not in interrupted_message(demo_ran, prefix="demo-2")


def test_every_printed_make_command_says_in_the_checkout() -> None:
    """A ``make`` line works only in the checkout: `runs list` without a token, typed in
    /tmp, advised a bare `make demo` (t53's walk), which there is `No rule to make target`.
    Every f-string naming ``make_command(...)`` says `` ` in the checkout`` right after."""
    found = []
    for path in sorted((REPO_ROOT / "citybrain").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr):
                continue
            parts = node.values
            for i, part in enumerate(parts):
                call = part.value if isinstance(part, ast.FormattedValue) else None
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "make_command"
                ):
                    continue
                after = parts[i + 1] if i + 1 < len(parts) else None
                text = after.value if isinstance(after, ast.Constant) else ""
                if not (isinstance(text, str) and text.startswith("` in the checkout")):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert found == []


def test_no_token_hint_says_make_demo_runs_in_the_checkout(demo_ran: Settings) -> None:
    from citybrain.cli.api import no_token_hint

    DemoFiles.of(demo_ran).token.unlink(missing_ok=True)
    assert "make demo` in the checkout prints a demo token" in no_token_hint()


def test_a_printed_runs_command_carries_the_run_directory(
    demo_ran: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Helper brief t72 (the newcomer's walk): a demo run with CITYBRAIN_RUN_DIR printed
    # `CITYBRAIN_WORKER_PORT=… citybrain runs list` only; typed so in a fresh shell, an
    # operator's 403 on escalate named the default run directory's coordinator token.
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "21566")
    line = command_line("runs", "escalate", "grp-a.1", only=API_SETTINGS)
    assert f"CITYBRAIN_RUN_DIR={demo_ran.run_dir}" in line
    assert "CITYBRAIN_WORKER_PORT=21566" in line
    assert "CITYBRAIN_KAFKA" not in line  # still only what the API commands read
