"""Every number option has an upper bound, as every numeric setting has (streams/settings.py):
a slip of magnitude is refused in one line, not taken to mean "never" or "no limit"."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from citybrain.cli import EXIT_USAGE, build_parser, main


def _number_options(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _number_options(sub, (*path, name))
        elif action.option_strings and getattr(action.type, "__name__", "") in ("int", "float"):
            yield path, action.option_strings[-1], action


# Options whose any size means what it says: a replay's speed factor (larger is faster,
# as fast as it can go at the most) and the rows a resumed replay skips.
UNBOUNDED = {("replay", "--speed"), ("replay", "--skip")}
NUMBER_OPTIONS = [
    (path, option, action)
    for path, option, action in _number_options(build_parser())
    if action.choices is None  # a choice list bounds it already (--qos 0|1)
    and action.dest != "seed"  # any whole number is a seed
    and (" ".join(path), option) not in UNBOUNDED
]


def test_the_walk_finds_the_options() -> None:
    found = {(" ".join(path), option) for path, option, _ in NUMBER_OPTIONS}
    assert {
        ("ingest http", "--max-body"),
        ("ingest mqtt", "--max-payload"),
        ("ingest mqtt", "--max-pending"),
        ("deadletters", "--limit"),
        ("replay", "--pack"),
    } <= found, found


@pytest.mark.parametrize(
    ("path", "option", "action"),
    NUMBER_OPTIONS,
    ids=[f"{' '.join(p)} {o}" for p, o, _ in NUMBER_OPTIONS],
)
def test_a_huge_value_is_refused(
    path: tuple[str, ...], option: str, action: argparse.Action
) -> None:
    # Before: ingest's --max-body 10**20 (a body is read whole: no limit), --max-pending
    # 10**20 (back-pressure never came), --stats-every 1e300 (no stats line, ever),
    # deadletters --limit 10**20 (the whole topic read into memory).
    for value in ("1e300", "1" + "0" * 20):
        with pytest.raises(argparse.ArgumentTypeError):
            assert action.type is not None
            action.type(value)  # type: ignore[operator]


def test_the_refusal_is_one_line_naming_option_value_and_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ingest", "http", "--max-body", "1" + "0" * 20]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "argument --max-body: '100000000000000000000': expected more than 0 and at most "
        "67,108,864 bytes"
    ) in err
