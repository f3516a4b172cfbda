"""A value that starts with ``-`` after an option that takes one (t98's newcomer walk).

``silences add --duration -2h`` said only ``argument --duration: expected one argument``:
argparse read ``-2h`` as an unknown option, so the message named neither the value nor
the way out, and a note or reason that starts with a dash (``--reason -late``) could not
be typed the natural way. Now such a word is the option's value, checked by the option's
own rule, and an option left without a value says why.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.cli.parser import build_parser
from streams.settings import REPO_ROOT
from tests.unit.citybrain.test_cli_errors import argument_values, command_line, leaf_commands

DASHED = "-zq"


def _citybrain(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, with no CITYBRAIN_* setting of this shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *argv],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_negative_duration_is_named_with_its_value() -> None:
    done = _citybrain(
        "silences", "add", "--matcher", "kind=pm25", "--duration", "-2h", "--reason", "x"
    )
    assert done.returncode == 2
    assert "expected one argument" not in done.stderr
    assert "duration is '-2h'" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_abbreviated_option_takes_a_dashed_value_too() -> None:
    done = _citybrain("campaign", "report", "--fr", "-2024-01-01", "--to", "today")
    assert done.returncode == 2
    assert "--from is '-2024-01-01'" in done.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Nothing after the option.
        (["runs", "ack", "grp-1.1", "--token", "t", "--note"], "(nothing follows it)"),
        # A known option after it: not taken as the value, and the way to say so named.
        (
            ["runs", "ack", "grp-1.1", "--token", "t", "--note", "--token", "t"],
            "the next word, '--token', is an option: give --note its value, "
            "or write --note=--token",
        ),
    ],
)
def test_an_option_without_its_value_says_why(argv: list[str], said: str) -> None:
    done = _citybrain(*argv)
    assert done.returncode == 2
    assert "argument --note: expected one argument" in done.stderr
    assert said in done.stderr


def _one_value_options() -> list[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    found = []
    for path, parser in leaf_commands(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.nargs is None and action.dest != "help":
                found.append((path, parser, action.option_strings[-1]))
    return found


OPTIONS = _one_value_options()


def test_the_sweep_finds_the_options_of_the_walk() -> None:
    named = {(" ".join(path), option) for path, _, option in OPTIONS}
    assert {("silences add", "--duration"), ("runs ack", "--note"), ("replay", "--speed")} <= named


@pytest.mark.parametrize(
    ("path", "parser", "option"), OPTIONS, ids=[f"{' '.join(p)} {o}" for p, _, o in OPTIONS]
)
def test_every_option_reads_a_dashed_word_as_its_value(
    path: tuple[str, ...], parser: argparse.ArgumentParser, option: str, tmp_path: Path
) -> None:
    """Siblings: every option of every command that takes one value either takes the
    dashed word or refuses it by name, never "expected one argument"."""
    argv = [*command_line(path, parser, argument_values(tmp_path, tmp_path / "x.csv"))]
    action = parser._option_string_actions[option]
    for group in parser._mutually_exclusive_groups:
        # The walk gives a required group's first option (silences add --duration):
        # another of the group is given instead of it, not beside it.
        if action in group._group_actions:
            for other in group._group_actions:
                if other.option_strings and other.option_strings[-1] in argv:
                    at = argv.index(other.option_strings[-1])
                    del argv[at : at + 1 + (other.nargs is None)]
    if option in argv:  # a required option the walk already gave: give it once
        at = argv.index(option)
        del argv[at : at + 2]
    argv += [option, DASHED]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        args = build_parser().parse_args(argv)
        action = parser._option_string_actions[option]
        value = getattr(args, action.dest)
        assert value == DASHED or (isinstance(value, list) and DASHED in value), value
        return
    said = err.getvalue()
    assert "expected one argument" not in said
    assert repr(DASHED) in said or DASHED in said, said
