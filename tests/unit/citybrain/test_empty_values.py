"""An empty or blank value (``--title ''``, a script's unset ``"$VAR"``) is refused by the
parser, naming the argument and what to give, for every command's every argument that
takes text, but those whose command names it in words of its own. t151: ``report
--title ''`` wrote the default title, ``playbooks check --routing ''`` checked the
library's routing file, ``demo --expect ''`` ran a whole demo on the built-in events,
``replay x.csv ''`` and ``rehearse --incidents ''`` read the current directory
(``'.' is a directory``), and ``ingest mqtt --client-id ''`` connected with no id."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from citybrain.cli.parser import _EMPTY_SAID_BY_COMMAND, build_parser
from tests.unit.citybrain.test_cli_errors import argument_values, command_line, leaf_commands

COMMANDS = sorted(leaf_commands(build_parser()), key=lambda c: c[0])


def _takes_text(action: argparse.Action) -> bool:
    return (
        action.dest != "help"
        and action.nargs != 0
        and action.choices is None
        and not (set(action.option_strings) & _EMPTY_SAID_BY_COMMAND)
        and not getattr(action.type, "says_empty", False)
    )


CASES = [
    (path, action.option_strings[-1] if action.option_strings else action.dest, blank)
    for path, parser in COMMANDS
    for action in parser._actions
    if _takes_text(action)
    for blank in ("", "  ")
]


def test_the_walk_finds_the_arguments_of_t151() -> None:
    named = {(" ".join(path), name) for path, name, _ in CASES}
    assert {
        ("report", "--title"),
        ("playbooks check", "--routing"),
        ("demo", "--expect"),
        ("replay", "files"),
        ("rehearse", "--incidents"),
        ("ingest mqtt", "--client-id"),
        ("dashboards generate", "--out"),
    } <= named


@pytest.mark.parametrize(("path", "name", "blank"), CASES, ids=lambda x: repr(x))
def test_an_empty_value_is_refused_naming_the_argument(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: tuple[str, ...],
    name: str,
    blank: str,
) -> None:
    parser = dict(COMMANDS)[path]
    values = argument_values(tmp_path, tmp_path / "x.csv")
    action = next(a for a in parser._actions if name in (a.dest, *a.option_strings))
    if name.startswith("--"):
        argv = [*command_line(path, parser, values), name, blank]
    elif action.nargs in ("?", "*"):  # (command_line leaves optional positionals out)
        argv = [*command_line(path, parser, values), blank]
    else:
        argv = command_line(path, parser, {**values, name: [blank]})
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    said = "empty" if not blank else "blank"
    assert err.startswith(f"citybrain: {' '.join(path)}: argument "), err
    assert f": {blank!r} is {said}: give " in err, err
    assert err.count("\n") == 1, err


def test_leaving_out_is_offered_only_where_it_means_something(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, leave in (
        (["report", "--data", "x.csv", "--out", "r.html", "--title", ""], True),
        (["playbooks", "check", "--routing", ""], True),
        (["detect", "--input", "", "--output", "o.csv"], False),  # no default: a choice
        (["replay", "x.csv", ""], False),
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        err = capsys.readouterr().err
        assert (" out for its default" in err) is leave, err
