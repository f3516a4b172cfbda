"""The small stumbles of t40: `citybrain` alone said only "required: COMMAND"; the hint
after an unsatisfied `runs answer` lacked the citybrain path every other hint has;
`make help` left Mosquitto out of what stack-status shows."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from citybrain.cli import EXIT_USAGE, accepted_message, build_parser, main
from citybrain.commands import cli_command
from streams.settings import REPO_ROOT


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
