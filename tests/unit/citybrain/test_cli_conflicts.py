"""Options that cannot be given together are refused, naming both, before any work
(helper brief t47, fault 3: ``campaign report --input exp.jsonl --prefix citybrain``
ran without saying which it used; ``--out c3.html --json`` ignored --json). Every
parser is walked: its pairs are the table below, so a new pair is tested as it is added,
and each pair given together is the one ``citybrain:`` line, status 2."""

from __future__ import annotations

import argparse

import pytest

from citybrain.cli import EXIT_USAGE, build_parser, main
from tests.unit.citybrain.test_cli_help import ALL

CAMPAIGN = ["campaign", "report", "--from", "2024-01-01", "--to", "2024-01-02"]
# Each command's argv before the two options (what it requires).
BASE: dict[tuple[str, ...], list[str]] = {
    ("campaign", "report"): CAMPAIGN,
    ("runs", "list"): ["runs", "list"],
    ("detect",): ["detect"],
}
EXPECTED: dict[tuple[str, ...], set[tuple[str, str]]] = {
    ("campaign", "report"): {
        ("--out", "--json"),
        ("--out", "--wide"),
        ("--json", "--wide"),
        ("--input", "--prefix"),
        ("--input", "--export"),
    },
    ("runs", "list"): {
        ("--json", "--wide"),
        ("--active", "--status"),
        ("--ids", "--json"),
        ("--ids", "--wide"),
    },
    ("replay",): {("--speed", "--max")},  # argparse's own group
    ("silences", "add"): {("--duration", "--end")},  # argparse's, one required (t197)
    ("detect",): {
        ("--input", "--input-dir"),
        ("--input", "--output-dir"),
        ("--output", "--input-dir"),
        ("--output", "--output-dir"),
    },
}
VALUES = {
    "--out": "c3.html",
    "--input": "exp.jsonl",
    "--prefix": "citybrain",
    "--export": "records.jsonl",
    "--output": "o.csv",
    "--input-dir": "in",
    "--output-dir": "out",
    "--status": "open",
}


def _pairs(parser: argparse.ArgumentParser) -> set[tuple[str, str]]:
    own = {(a, b) for a, b, _ in getattr(parser, "conflicts", [])}
    for group in parser._mutually_exclusive_groups:
        names = [a.option_strings[-1] for a in group._group_actions]
        own |= {(x, y) for i, x in enumerate(names) for y in names[i + 1 :]}
    return own


def test_every_pair_of_options_refused_together_is_listed() -> None:
    walked = {path: _pairs(parser) for path, parser in ALL if _pairs(parser)}
    walked.pop(("runs", "answer"))  # --satisfied | --unsatisfied, one required
    assert walked == EXPECTED


CASES = [(path, a, b) for path, pairs in EXPECTED.items() if path in BASE for a, b in sorted(pairs)]


@pytest.mark.parametrize(("path", "first", "second"), CASES)
@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_options_given_together_are_refused_naming_both(
    path: tuple[str, ...],
    first: str,
    second: str,
    order: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = [first, second] if order == "as listed" else [second, first]
    argv = [*BASE[path]]
    for option in given:
        argv += [option, VALUES[option]] if option in VALUES else [option]
    assert main(argv) == EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"citybrain: {' '.join(path)}: argument {second}: not allowed with argument {first} ("
    )
    assert line.endswith(f"see `{line.split('see `')[-1]}") and "--help" in line


@pytest.mark.parametrize(("path", "first", "second"), CASES)
def test_each_of_a_pair_alone_is_taken(path: tuple[str, ...], first: str, second: str) -> None:
    for option in (first, second):
        argv = [*BASE[path], option] + ([VALUES[option]] if option in VALUES else [])
        args = build_parser().parse_args(argv)
        dest = option.removeprefix("--").replace("-", "_")
        assert getattr(args, dest) == VALUES.get(option, True)


@pytest.mark.parametrize("action", ["up", "status", "restart-worker"])
def test_stack_wipe_with_another_action_than_down_is_refused(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t51's walk: `stack up --wipe` (and `--wip`, argparse's abbreviation) started the
    stack on the old data without a word; only down wipes."""
    for wipe in ("--wipe", "--wip"):
        assert main(["stack", action, wipe]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith(
            f"citybrain: stack: argument --wipe: not allowed with ACTION {action!r} (only `"
        )
        assert "stack down --wipe` deletes Kafka's data); see `" in err
        assert err.count("\n") == 1


def test_every_option_allowed_with_one_value_only_is_known() -> None:
    """Each parser's ``only_with`` entries, walked as the pairs above are: the table of
    them, so a new one is tested as it is added."""
    found = set()
    for path, parser in ALL:
        for option, dest, value, _ in getattr(parser, "only", []):
            found.add((path, option, dest, value))
    assert found == {(("stack",), "--wipe", "action", "down")}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--input", "s.csv"], "--input needs --output (where the scores go: a .csv file, or -)"),
        (["--output", "o.csv"], "--output needs --input (the CSV to score)"),
        (["--input-dir", "d"], "--input-dir needs --output-dir (where the scores go)"),
        (["--output-dir", "d"], "--output-dir needs --input-dir (the folder of CSVs to score)"),
        ([], "give --input FILE --output FILE, or --input-dir DIR --output-dir DIR"),
    ],
)
def test_detect_without_the_other_half_of_a_pair_names_it_as_the_parser_would(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t51's walk: `detect --input s.csv` said "give --input and --output, or
    --input-dir and --output-dir": not which was missing, nor the command and its help,
    as every other bad command line does."""
    assert main(["detect", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: detect: {said}; see `")
    assert err.endswith(" detect --help`\n")
