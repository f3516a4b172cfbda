"""The small stumbles of t40: `citybrain` alone said only "required: COMMAND"; the hint
after an unsatisfied `runs answer` lacked the citybrain path every other hint has;
`make help` left Mosquitto out of what stack-status shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, build_parser, main
from citybrain.cli.runs import accepted_message
from citybrain.commands import cli_command
from streams.settings import REPO_ROOT
from tests.services import free_ports


def test_citybrain_alone_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: give a command:\n")
    listed = re.findall(r"^  (\S+) +\S", err, re.MULTILINE)
    [sub] = [a for a in build_parser()._actions if a.dest == "command"]
    assert listed == list(sub.choices)  # type: ignore[attr-defined]
    assert err.rstrip().endswith(f"`{shlex.quote(cli_command())} COMMAND --help` describes each")


def test_the_unsatisfied_answer_hint_is_a_command_as_typed() -> None:
    line = accepted_message("answer", "grp-a.1", {"run": {"run_id": "grp-a.1"}}, False, None)
    command = line.split("(`")[-1].split("`")[0]
    assert shlex.split(command)[-3:] == ["runs", "show", "grp-a.1"]
    assert command.startswith(shlex.quote(cli_command())) or "=" in command.split()[0]


def test_make_help_names_what_stack_status_shows() -> None:
    out = subprocess.run(
        ["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    [line] = [ln for ln in out.splitlines() if "stack-status" in ln]
    for shown in ("Kafka", "Prometheus", "Mosquitto", "worker"):
        assert shown in line


def test_make_help_lines_up_every_target() -> None:
    # Helper brief t47, fault 7: `docker-tokens`, longer than the padding, pushed its
    # description out of the column.
    out = subprocess.run(
        ["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert any("docker-tokens" in ln for ln in lines)
    starts = {len(ln) - len(ln.lstrip()[len(ln.split()[0]) :].lstrip()) for ln in lines}
    assert len(starts) == 1, out


def test_make_stack_status_on_a_stopped_stack_is_one_line_and_status_0(
    tmp_path: Path,
) -> None:
    # Helper brief t72, fault 1: with the stack down, make added its own
    # `make: *** [Makefile:63: stack-status] Error 1` after citybrain's one line.
    kafka, controller, prom, mqtt, worker = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env |= {
        "CITYBRAIN_RUN_DIR": str(tmp_path),
        "CITYBRAIN_KAFKA_PORT": str(kafka),
        "CITYBRAIN_KAFKA_CONTROLLER_PORT": str(controller),
        "CITYBRAIN_PROMETHEUS_PORT": str(prom),
        "CITYBRAIN_MQTT_PORT": str(mqtt),
        "CITYBRAIN_WORKER_PORT": str(worker),
    }
    done = subprocess.run(
        ["make", "stack-status"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        "citybrain: the stack is not ready: start the local stack with"
    ), done.stderr
    assert re.search(r"^kafka +down ", done.stdout, re.MULTILINE), done.stdout
    # Both into one pipe: the table first, then the line (t76: piped, the line came first).
    merged = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "stack", "status"],
        cwd=REPO_ROOT,
        env={k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"},  # a user's shell
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = merged.stdout.splitlines()
    assert lines[0].startswith("kafka ") and lines[-1].startswith("citybrain: the stack is not")
    # A real failure (a bad setting, status 2) still fails the target.
    env["CITYBRAIN_KAFKA_PORT"] = "99999"
    bad = subprocess.run(
        ["make", "stack-status"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert "CITYBRAIN_KAFKA_PORT is '99999'" in bad.stderr


def one_pipe(script: str) -> subprocess.CompletedProcess[str]:
    """``python -c script`` with stdout and stderr into one pipe (``2>&1 |``), in a user's
    shell (no PYTHONUNBUFFERED)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_commands_output_comes_before_its_reason_in_one_pipe() -> None:
    # t76: piped (`2>&1 | less`), stdout is block-buffered, and the boundary's reason on
    # stderr came above what the command had printed before it failed.
    script = (
        "import sys\n"
        "from citybrain.cli import CliError, main, parser\n"
        "def command(args):\n"
        "    print('the table')\n"
        "    raise CliError('the reason')\n"
        "parser.cmd_detect = command\n"
        "sys.exit(main(['detect']))\n"
    )
    done = one_pipe(script)
    assert done.returncode == 2
    assert done.stdout.splitlines() == ["the table", "citybrain: the reason"]


def test_a_warning_in_the_middle_of_a_commands_output_keeps_its_place_in_one_pipe() -> None:
    # Piped into one stream (`2>&1 | less`), stdout was block-buffered: a warning printed to
    # stderr, or logged, while a command printed its lines came out above all of them.
    script = (
        "import logging, sys\n"
        "from citybrain.cli import main, parser\n"
        "def command(args):\n"
        "    print('line 1')\n"
        "    print('citybrain: warning: w', file=sys.stderr)\n"
        "    print('line 2')\n"
        "    logging.getLogger('x').warning('logged')\n"
        "    print('line 3')\n"
        "    return 0\n"
        "parser.cmd_detect = command\n"
        "sys.exit(main(['detect']))\n"
    )
    done = one_pipe(script)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == [
        "line 1",
        "citybrain: warning: w",
        "line 2",
        "logged",
        "line 3",
    ]
