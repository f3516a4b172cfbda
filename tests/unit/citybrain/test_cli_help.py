"""`--help` everywhere (issue 15, item 5): the parser is walked, so a new command or
option without a description fails here."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import build_parser, main
from detectors import DEFAULT_DETECTOR, DETECTORS
from streams.settings import REPO_ROOT

# reStructuredText and Markdown that would show as-is in a terminal.
MARKUP = re.compile(r"``|`|:(class|func|meth|mod|attr|data):|\*\*|\.\. ")


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


ALL = list(parsers(build_parser()))


def _help(path: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*path, "--help"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "citybrain")
def test_every_command_and_option_is_described(path: tuple[str, ...]) -> None:
    parser = dict(ALL)[path]
    assert parser.description and not MARKUP.search(parser.description), path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {a.dest: a.help for a in action._choices_actions}
            assert set(described) == set(action.choices), path
            for name, text in described.items():
                assert text and not MARKUP.search(text), (path, name)
            continue
        assert action.help, (path, action.dest)
        assert not MARKUP.search(action.help), (path, action.dest, action.help)
    text = _help(path)
    assert "%(" not in text and "exit statuses:" in text


def test_detector_options_list_every_registered_detector() -> None:
    for path in (("detect",), ("bench", "nab")):
        text = " ".join(_help(path).split())
        for name in DETECTORS:
            assert name in text, (path, name)
        assert f"(default {DEFAULT_DETECTOR})" in text


def test_defaults_are_shown() -> None:
    assert "replay at N times real time (default: 60.0)" in " ".join(_help(("replay",)).split())
    demo = " ".join(_help(("demo",)).split())
    assert "in the demo (default: 5.0)" in demo


def test_every_command_name_shares_a_line_with_its_description() -> None:
    """The new-user trial of issue 15: `playbooks`, `hash-token` and `dashboards` stood
    alone on a line with their description wrapped under them."""
    import re

    from citybrain.cli import build_parser

    text = build_parser().format_help()
    listed = re.findall(r"^    (\S+)( *)(.*)$", text, re.M)
    assert {"playbooks", "hash-token", "dashboards"} <= {name for name, _, _ in listed}
    for name, gap, description in listed:
        assert gap and description, f"{name!r} has its description on another line"


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "citybrain")
def test_a_repeatable_option_says_so(path: tuple[str, ...]) -> None:
    """Trial 25: `silences add --matcher` took several matchers and its help said "a label
    matcher", so an operator silencing on two labels could not tell how."""
    for action in dict(ALL)[path]._actions:
        if isinstance(action, argparse._AppendAction):
            assert "repeat" in (action.help or ""), (path, action.option_strings)


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "citybrain")
def test_a_bad_option_value_is_named_without_a_python_type(path: tuple[str, ...]) -> None:
    """Trial 25: `replay --pack x` and `rehearse --seed x` said "invalid int value: 'x'"
    (argparse's words, Python's type name), where `--limit x` said "'x' is not a whole
    number"."""
    for action in dict(ALL)[path]._actions:
        if action.type is None or not action.option_strings:
            continue
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main([*path, action.option_strings[0], "x!"])
        said = err.getvalue()
        assert status == 2, (path, action.option_strings, said)
        # argparse's own "invalid int value: 'x!'" names the type's Python name.
        assert not re.search(r"invalid \w+ value", said), said


def test_every_option_is_named_in_the_readme_or_docs() -> None:
    """Trial 25: worker and ingest --loglevel, report --title, bench nab --labels and
    dashboards push --generated were in --help only."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    docs = (root / "README.md").read_text() + "".join(
        p.read_text() for p in sorted((root / "docs").glob("*.md"))
    )
    missing = [
        (" ".join(path), action.option_strings[-1])
        for path, parser in ALL
        for action in parser._actions
        if action.option_strings
        and action.option_strings[0] not in ("-h", "--help", "--version")
        and action.option_strings[-1] not in docs
    ]
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "citybrain")
def test_help_examples_work_typed_from_any_directory(
    path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t79: `citybrain --help` said "Start with 'make demo'", which outside the checkout
    is "No rule to make target"; `rehearse --help`'s example units file was relative,
    missing from any other directory. A file a help text names is one that exists as
    typed from anywhere, and `make` is said with the checkout it runs in."""
    monkeypatch.chdir(tmp_path)
    text = " ".join(_help(path).split())
    for named in re.findall(r"[\w./-]+/[\w.-]+\.(?:yaml|yml|csv|gz|json)\b", text):
        assert Path(named).exists(), (path, named)
    for make in re.finditer(r"'make [a-z-]+'", text):
        assert str(REPO_ROOT) in text[make.end() : make.end() + 200], (path, text)


def test_the_demo_s_default_data_is_named_as_it_is() -> None:
    """t79: `demo --help` said the default was datasets/*.csv.gz, which holds the report
    classifier's incident_departments.csv.gz too; the demo replays four named slices."""
    from citybrain.demo import DEMO_DATA

    text = " ".join(_help(("demo",)).split())
    assert "*.csv.gz" not in text
    for path in DEMO_DATA:
        assert path.name.removesuffix(".csv.gz") in text, path


@pytest.mark.parametrize("columns", [40, 60])
def test_help_fits_a_narrow_terminal(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """t123's walk: at 40 columns a command's description came as one line of up to 131
    characters, the exit statuses at 86 and `ingest mqtt`'s usage at 68 (options indented
    under the command's name), which the terminal broke mid-word. Every line of every
    `--help` now fits, and the words are all still there."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for path, _ in ALL:
        text = _help(path)
        wide = [line for line in text.splitlines() if len(line) > columns]
        assert not wide, (path, wide)
    monkeypatch.setenv("COLUMNS", "400")
    wide_text = _help(("alerts", "list"))
    monkeypatch.setenv("COLUMNS", str(columns))
    narrow = _help(("alerts", "list"))
    # Only the line breaks differ (argparse's own option help breaks long words too).
    assert "".join(wide_text.split()) == "".join(narrow.split())
