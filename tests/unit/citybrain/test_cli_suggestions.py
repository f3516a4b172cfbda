"""A misspelt subcommand, choice or option is answered with the closest one (helper
brief t37, fault 1: ``citybrain stak up`` and ``citybrain campaing report`` listed every
command; ``runs list --status resolvd`` every status). The parser is walked, so every
subcommand list and every ``choices=`` option of every command is covered, and a new one
is covered as it is added."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, build_parser, main
from citybrain.commands import cli_command
from streams.errors import closest
from tests.unit.citybrain.test_cli_help import ALL


def misspellings(choice: str) -> Iterator[str]:
    """Slips a hand makes: its last letter doubled, two letters swapped, its case."""
    yield choice + choice[-1]
    if len(choice) >= 4:
        middle = len(choice) // 2
        yield choice[: middle - 1] + choice[middle] + choice[middle - 1] + choice[middle + 1 :]
    if choice.upper() != choice:
        yield choice.upper()


def _choice_cases() -> Iterator[tuple[list[str], str, str]]:
    """(argv, the misspelt value, the choice it should suggest) for every string choice
    of every action with choices, subcommand lists included."""
    for path, parser in ALL:
        positionals = [a for a in parser._actions if not a.option_strings]
        for action in parser._actions:
            if action.choices is None:
                continue
            for choice in action.choices:
                if not isinstance(choice, str):
                    continue
                for wrong in misspellings(choice):
                    if wrong in action.choices:
                        continue
                    if action.option_strings:
                        argv = [*path, action.option_strings[0], wrong]
                    else:
                        # A positional with choices is its parser's first, so the
                        # misspelt value is the first one that parser reads.
                        assert positionals[0] is action, (path, action.dest)
                        argv = [*path, wrong]
                    yield argv, wrong, choice


CHOICE_CASES = list(_choice_cases())


def test_the_walk_reaches_every_kind_of_choice() -> None:
    reached = {tuple(argv[:-1]) for argv, _, _ in CHOICE_CASES}
    # Subcommand lists (top level and nested), positional choices and option choices.
    for expected in [(), ("campaign",), ("stack",), ("runs", "list", "--status")]:
        assert expected in reached, expected
    assert ("detect", "--detector") in reached and ("ingest", "mqtt", "--loglevel") in reached


@pytest.mark.parametrize(
    ("argv", "wrong", "choice"), CHOICE_CASES, ids=[" ".join(c[0]) for c in CHOICE_CASES]
)
def test_a_misspelt_choice_suggests_the_closest(
    argv: list[str], wrong: str, choice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    command = " ".join(a for a in argv[:-1] if not a.startswith("-")).strip()
    # One line, the usual one: the command, the bad value, the closest choice, the help.
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("citybrain: " + (f"{command}: " if command else "")), err
    assert f"invalid choice: {wrong!r} (did you mean {choice!r}?)" in err, err
    assert "choose from" not in err, err
    typed = " ".join([shlex.quote(cli_command()), *command.split()])
    assert err.endswith(f"; see `{typed} --help`\n"), err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["stak", "up"], "argument COMMAND: invalid choice: 'stak' (did you mean 'stack'?)"),
        (
            ["campaing", "report"],
            "argument COMMAND: invalid choice: 'campaing' (did you mean 'campaign'?)",
        ),
        (
            ["runs", "list", "--status", "Resolvd"],
            "runs list: argument --status: invalid choice: 'Resolvd' (did you mean 'resolved'?)",
        ),
    ],
)
def test_the_brief_s_cases(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert f"citybrain: {line}; see `" in capsys.readouterr().err


def test_nothing_close_lists_every_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--status", "zzz"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice: 'zzz' (choose from 'pending', 'running'," in err
    assert "did you mean" not in err
    # A number choice: 2 is as near 0 as 1, so both are listed.
    assert main(["ingest", "mqtt", "--qos", "2"]) == EXIT_USAGE
    assert "invalid choice: 2 (choose from 0, 1);" in capsys.readouterr().err


def _options() -> Iterator[tuple[list[str], str, str]]:
    """(argv, a misspelt long option, the option) for every long option of every command
    (``--help`` and ``--version`` too)."""
    for path, parser in ALL:
        for action in parser._actions:
            for option in action.option_strings:
                if not option.startswith("--"):
                    continue
                wrong = option + option[-1]
                if any(o.startswith(wrong) for o in parser._option_string_actions):
                    continue  # argparse would take it as that option's abbreviation
                yield [*path, wrong], wrong, option


OPTION_CASES = list(_options())


@pytest.mark.parametrize(
    ("argv", "wrong", "option"), OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES]
)
def test_a_misspelt_option_suggests_the_closest(
    argv: list[str], wrong: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {wrong} (did you mean {option}?)" in err, err
    assert err.count("\n") == 1, err


def test_several_misspelt_options_say_which_is_which(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "x.csv", "--speeed", "3", "--jsn"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unrecognized arguments: --speeed 3 --jsn (did you mean --speed for --speeed?)" in err
    assert main(["runs", "list", "--stauts=open"]) == EXIT_USAGE
    assert "--stauts=open (did you mean --status?)" in capsys.readouterr().err


def test_closest() -> None:
    assert closest("Opne", ["open", "resolved"]) == "open"
    assert closest(0, [0, 1]) == 0
    assert closest("zzz", ["open", "resolved"]) is None
    # The whole word for a short choice, a choice's start; not when two choices share it.
    assert closest("Acknowledge", ["list", "ack", "resolve"]) == "ack"
    assert closest("esc", ["escalate", "cancel"]) == "escalate"
    assert closest("re", ["resolve", "reject"]) is None


def test_a_whole_word_for_a_short_subcommand_suggests_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Helper walk (twentieth session): `runs acknowledge` listed every action.
    assert main(["runs", "acknowledge", "x"]) == EXIT_USAGE
    assert "invalid choice: 'acknowledge' (did you mean 'ack'?)" in capsys.readouterr().err


def test_argparse_still_checks_choices_where_citybrain_overrides_it() -> None:
    # Parser._check_value overrides a private argparse method (Python 3.11's; 3.14 has
    # suggest_on_error instead): an upgrade that stops calling it fails here.
    parser = build_parser()
    assert isinstance(parser, argparse.ArgumentParser)
    assert "_check_value" in vars(type(parser))
    assert callable(argparse.ArgumentParser._check_value)


def _flag_cases() -> Iterator[tuple[list[str], str]]:
    """(the command's words, an option of it that takes no value) for every such option
    of every command (--help and --version aside)."""
    for path, parser in ALL:
        for action in parser._actions:
            if action.nargs != 0 or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            yield list(path), next(o for o in action.option_strings if o.startswith("--"))


@pytest.mark.parametrize(("path", "flag"), list(_flag_cases()))
def test_a_value_after_an_option_that_takes_none_is_named(
    path: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t60: ``replay --max 50 x.csv`` said ``FILE '50': no such file`` and ``runs list
    --json 5`` ``unrecognized arguments: 5``: the option that takes no value is named."""
    assert main([*path, flag, "50"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {flag}: takes no value, but '50' follows it" in err, err
    assert err.count("\n") == 1, err
    assert main([*path, flag, "yes"]) == EXIT_USAGE
    assert f"argument {flag}: takes no value, but 'yes' follows it" in capsys.readouterr().err


def test_a_word_after_an_option_that_takes_none_names_it_beside_the_unrecognized(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["runs", "list", "--wide", "now"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unrecognized arguments: now (--wide takes no value: it is on when given)" in err


def test_a_value_joined_to_an_option_that_takes_none_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """argparse said ``argument --max: ignored explicit argument '50'``."""
    assert main(["replay", "--max=50", "x.csv"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "argument --max: takes no value, but '50' is given to it" in err, err
    assert "ignored" not in err


def test_an_unknown_option_is_compared_without_the_dashes_all_options_share(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t60: `silences add --for 1h` was asked "did you mean --url?" ("--" and "r" alike)."""
    argv = ["silences", "add", "--matcher", "kind=pm25", "--for", "1h", "--reason", "r"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unrecognized arguments: --for" in err and "did you mean" not in err, err
    assert main(["runs", "list", "--stauts", "open"]) == EXIT_USAGE
    assert "(did you mean --status?)" in capsys.readouterr().err


def test_a_file_typed_where_a_command_takes_it_by_option_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer's ``detect one.csv`` said only ``unrecognized arguments: one.csv``:
    the option that takes the file is named, with the line to type."""
    series = tmp_path / "one series.csv"
    series.write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    assert main(["detect", str(series)]) == EXIT_USAGE
    err = capsys.readouterr().err
    hint = f"(a file is given with --input: --input {shlex.quote(str(series))})"
    assert hint in err, err
    # A word that is no file gets no such hint.
    assert main(["detect", "now"]) == EXIT_USAGE
    assert "a file is given" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "where"),
    [(["help"], ""), (["runs", "help"], " runs"), (["campaign", "HELP"], " campaign")],
)
def test_help_typed_as_a_command_points_to_the_help_option(
    argv: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t76: a newcomer's `citybrain help` (or `runs help`) was answered with every
    command listed and no word of ``--help``."""
    assert main(argv) == EXIT_USAGE
    argument = "ACTION" if where else "COMMAND"
    assert capsys.readouterr().err == (
        f"citybrain:{where}{':' if where else ''} argument {argument}: invalid choice: {argv[-1]!r} (did you mean --help?); "
        f"see `{shlex.join([cli_command(), *argv[:-1], '--help'])}`\n"
    )


def _nested_names() -> dict[str, list[str]]:
    """Each name a command takes as its action (``route-test``, ``list``, ``up``) that is
    no top-level command, with the commands it is the action of."""
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    names: dict[str, list[str]] = {}
    for path, parser in ALL:
        if len(path) != 1:
            continue
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.metavar == "ACTION":
                for choice in action.choices or ():
                    if choice not in top:
                        names.setdefault(str(choice), []).append(f"{path[0]} {choice}")
    return names


NESTED = _nested_names()


def test_the_nested_walk_reaches_the_readme_s_actions() -> None:
    assert NESTED["route-test"] == ["playbooks route-test"]
    assert NESTED["up"] == ["stack up"]
    assert sorted(NESTED["list"]) == ["alerts list", "runs list", "silences list"]


@pytest.mark.parametrize("name", sorted(NESTED))
def test_an_action_typed_without_its_command_names_the_command(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t91: the README's row `citybrain playbooks check [DIR]` / `route-test key=value…`
    led a newcomer to `citybrain route-test kind=water_level`, answered with the list of
    every command and no word of `playbooks route-test`."""
    assert main([name]) == EXIT_USAGE
    out, err = capsys.readouterr()
    said = " or ".join(repr(full) for full in NESTED[name])
    assert out == "" and err.count("\n") == 1, err
    assert f"argument COMMAND: invalid choice: {name!r} (did you mean {said}?)" in err, err
    assert "choose from" not in err, err


def test_a_misspelt_action_without_its_command_names_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A top-level command close to the word still comes first (`stak` is `stack`).
    assert main(["route_test"]) == EXIT_USAGE
    assert "(did you mean 'playbooks route-test'?)" in capsys.readouterr().err
    assert main(["stak"]) == EXIT_USAGE
    assert "(did you mean 'stack'?)" in capsys.readouterr().err


@pytest.mark.parametrize(("word", "meant"), [("acks", "runs ack"), ("statsu", "stack status")])
def test_an_action_nearer_than_any_command_is_suggested(
    word: str, meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t143: `citybrain acks` was asked "did you mean 'stack'?": a command was preferred
    to an action however much nearer the action was ('ack': 0.86, 'stack': 0.67)."""
    assert main([word]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"invalid choice: {word!r} (did you mean {meant!r}?)" in err, err


@pytest.mark.parametrize(
    ("argv", "wrong", "option"),
    [
        (["runs", "cancel", "grp-1.1", "--reason", "dup"], "--reason", "--note"),
        (["runs", "ack", "grp-1.1", "--reason", "x"], "--reason", "--note"),
        (["runs", "ack", "grp-1.1", "--comment", "x"], "--comment", "--note"),
        (
            ["silences", "add", "--matcher", "kind=pm25", "--duration", "1h", "--note", "x"],
            "--note",
            "--reason",
        ),
        (
            ["runs", "answer", "grp-1.1", "--report", "r", "--satisfied", "--note", "x"],
            "--note",
            "--comment",
        ),
    ],
)
def test_the_free_text_option_of_another_command_names_this_one_s(
    argv: list[str], wrong: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t91: a run's text is --note, a silence's --reason, an answer's --comment; `runs
    cancel RUN --reason dup` was asked "did you mean --json?", a look-alike of no use."""
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {wrong}" in err, err
    assert f"(did you mean {option}?)" in err, err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # t134: a matcher typed with spaces around its =, as a newcomer writes kind = pm25.
        (
            ["--matcher", "kind", "=", "pm25"],
            "unrecognized arguments: = pm25 (--matcher takes one word: write "
            "--matcher kind=pm25, quoted if it has spaces)",
        ),
        (
            ["--matcher", "kind=~", "pm.*"],
            "(--matcher takes one word: write --matcher 'kind=~pm.*', quoted if it has spaces)",
        ),
        # The same kind for any one-value option: a reason of several words unquoted.
        (
            ["--matcher", "kind=pm25", "--reason", "road", "works"],
            "unrecognized arguments: works (--reason takes one word: write --reason 'road works')",
        ),
        # t143: a number and its unit split were to be written quoted, `--duration '1 h'`,
        # which --duration then refused: they are joined.
        (
            ["--matcher", "kind=pm25", "--reason", "x", "--duration", "1", "h"],
            "unrecognized arguments: h (--duration takes one word: write --duration 1h)",
        ),
        (
            ["--matcher", "kind=pm25", "--reason", "x", "--duration", "1h", "30m"],
            "unrecognized arguments: 30m (--duration takes one word: write --duration 1h30m)",
        ),
        # Text stays as typed: a note of a number and a short word too.
        (
            ["--matcher", "kind=pm25", "--duration", "2h", "--reason", "2", "km"],
            "unrecognized arguments: km (--reason takes one word: write --reason '2 km')",
        ),
    ],
)
def test_a_value_split_by_spaces_is_named_with_the_one_word_to_type(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = ["silences", "add", "--duration", "2h", "--reason", "x", *argv]
    if "--reason" in argv:
        full = ["silences", "add", *argv]
        if "--duration" not in argv:
            full.insert(2, "2h")
            full.insert(2, "--duration")
    assert main(full) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["runs", "list", "--status", "open,resolved"],
            "argument --status: invalid choice: 'open,resolved' (one choice, not a list: "
            "give 'open' or 'resolved')",
        ),
        (
            ["runs", "list", "--status", "open", "resolved"],
            "unrecognized arguments: resolved (--status takes one choice, not a list: "
            "give 'open' or 'resolved')",
        ),
        (
            ["replay", "x.csv", "--on-error", "stop,skip"],
            "argument --on-error: invalid choice: 'stop,skip' (one choice, not a list: "
            "give 'stop' or 'skip')",
        ),
    ],
)
def test_a_list_of_choices_for_a_one_choice_option_is_said_as_a_list(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t143: `runs list --status open,resolved` was asked "did you mean 'resolved'?", as
    if the list misspelt its last item, and `--status open resolved` said only
    "unrecognized arguments: resolved"."""
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


_REHEARSE = ("rehearse", "--incidents", "i.csv", "--units", "u.yaml")


@pytest.mark.parametrize(
    ("argv", "said", "then"),
    [
        # t147: each was told to glue its values into one: `--replay '0:1 0:2'`, which
        # --replay then refused; `kind=pm25severity=critical` and `60120`, taken with
        # another meaning (a matcher no alert meets, a deadline of 16 hours).
        (
            ["deadletters", "--replay", "0:1", "0:2"],
            "(--replay takes one value each time: repeat it, --replay 0:1 --replay 0:2)",
            ["deadletters", "--replay", "0:1", "--replay", "0:2"],
        ),
        (
            [
                *("silences", "add", "--duration", "1h", "--reason", "r"),
                *("--matcher", "kind=pm25", "severity=critical"),
            ],
            "(--matcher takes one value each time: repeat it, --matcher kind=pm25 "
            "--matcher severity=critical)",
            None,
        ),
        (
            [*_REHEARSE, "--ack-deadline", "60", "120"],
            "(--ack-deadline takes one value each time: repeat it, --ack-deadline 60 "
            "--ack-deadline 120)",
            None,
        ),
        (
            ["ingest", "mqtt", "--topic", "a/+/b", "c/#"],
            "(--topic takes one value each time: repeat it, --topic a/+/b --topic 'c/#')",
            None,
        ),
        # A number and its unit for an option of seconds: `60s` is refused, so the number.
        (
            [*_REHEARSE, "--ack-deadline", "60", "s"],
            "(--ack-deadline takes a number without a unit: write --ack-deadline 60)",
            None,
        ),
        (
            ["demo", "--ack-deadline", "5", "s"],
            "(--ack-deadline takes a number without a unit: write --ack-deadline 5)",
            None,
        ),
        # Two dates for one: one of them, not both quoted as one (refused).
        (
            ["campaign", "report", "--to", "tomorrow", "--from", "2024-05-26", "2024-05-27"],
            "(--from takes one value: give '2024-05-26' or '2024-05-27')",
            None,
        ),
    ],
)
def test_a_hint_for_values_typed_after_one_option_is_a_line_the_parser_takes(
    argv: list[str], said: str, then: list[str] | None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    if then is not None:
        # The line suggested parses (it then needs Kafka, which is not this test's).
        parsed = build_parser().parse_args(then)
        assert parsed.replay == [(0, 1), (0, 2)]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["campaign", "report", "--to", "tomorrow", "--from", "2024-05-26", "10:00Z"],
            "(--from takes one word: write --from '2024-05-26 10:00Z')",
        ),
        (["deadletters", "--replay", "0:1", "x"], "unrecognized arguments: x; see"),
        # A stray word after a whole matcher is not glued to it (kind="pm25x").
        (
            [
                *("silences", "add", "--duration", "1h", "--reason", "r"),
                "--matcher",
                "kind=pm25",
                "x",
            ],
            "unrecognized arguments: x; see",
        ),
    ],
)
def test_a_joined_value_is_suggested_only_when_the_option_takes_it(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["silences", "expire", "12dda1738f21", "5fd2086e84c6"],
            "unrecognized arguments: 5fd2086e84c6 (silences expire takes one SILENCE_ID: run "
            "it once for each); see",
        ),
        (
            ["runs", "ack", "grp-1.1", "grp-2.1", "grp-3.1", "--note", "x"],
            "unrecognized arguments: grp-2.1 grp-3.1 (runs ack takes one RUN_ID: run it once "
            "for each); see",
        ),
    ],
)
def test_more_ids_than_a_command_takes_are_said_as_one_a_time(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t147: `silences expire ID ID` said only "unrecognized arguments: ID"."""
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


def test_a_stray_word_after_a_choice_is_not_said_as_another_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stack", "status", "foo"]) == EXIT_USAGE
    assert "unrecognized arguments: foo; see" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # t147: "'1e9' is not a whole number", as if it were not one.
        (
            ["ingest", "http", "--max-body", "1e9"],
            "argument --max-body: '1e9': write the whole number in digits, 1000000000; see",
        ),
        (
            ["deadletters", "--limit", "1,000"],
            "argument --limit: '1,000': write the whole number in digits, 1000; see",
        ),
        (
            ["ingest", "http", "--max-body", "1M"],
            # In bytes, as the settings say it (t151: "the number alone" was 1 byte).
            "argument --max-body: '1M' is not a whole number of bytes: write 1000000; see",
        ),
        (
            [*_REHEARSE, "--ack-deadline", "1,000.5"],
            "argument --ack-deadline: '1,000.5': write the number without digit groups, "
            "1000.5; see",
        ),
        (["deadletters", "--limit", "1.5"], "argument --limit: '1.5' is not a whole number; see"),
    ],
)
def test_a_number_written_otherwise_than_in_digits_is_given_its_digits(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
