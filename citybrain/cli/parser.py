"""The command line: every command's options, help and usage errors (argparse)."""

from __future__ import annotations

import argparse
import difflib
import itertools
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from citybrain.cli.alerts import cmd_alerts
from citybrain.cli.base import (
    EXIT_USAGE,
    MAX_DEADLETTER_LIMIT,
    MAX_INGEST_BYTES,
    MAX_INGEST_PENDING,
    REHEARSAL_MAX_DEADLINE,
    RUN_ID,
    _positive,
    _whole,
    _whole_in,
    an_id_shown_by,
    home_path,
)
from citybrain.cli.campaign import cmd_campaign, takes_instant
from citybrain.cli.check import cmd_playbooks
from citybrain.cli.deadletters import cmd_deadletters
from citybrain.cli.demo import cmd_demo, cmd_report
from citybrain.cli.detect import cmd_detect
from citybrain.cli.feeds import cmd_ingest, cmd_replay
from citybrain.cli.hidden import cut_long, hide
from citybrain.cli.rehearse import cmd_rehearse
from citybrain.cli.runs import cmd_runs
from citybrain.cli.silences import cmd_silences
from citybrain.cli.stack import cmd_stack, cmd_worker
from citybrain.cli.tokens import cmd_hash_token
from citybrain.cli.tools import cmd_bench_nab, cmd_dashboards, cmd_datasets
from citybrain.commands import (
    command_line,
    shell_word,
)
from detectors import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, OWN_THRESHOLDS
from playbooks.schema import MIN_DEADLINE_SECONDS
from streams.errors import closest
from streams.events import MAX_PACK_READINGS
from streams.settings import REPO_ROOT


# Typed from any directory (t79: `--help`'s "Start with 'make demo'" failed outside the
# checkout, "No rule to make target"): make's in the checkout, named by its path.
def _partition_offset(text: str) -> tuple[int, int]:
    """``PARTITION:OFFSET`` (two whole numbers >= 0) for ``deadletters --replay``."""
    partition, _, offset = text.partition(":")
    if not re.fullmatch(r"[0-9]+:[0-9]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not PARTITION:OFFSET (two whole numbers, e.g. 0:17)"
        )
    return int(partition), int(offset)


def _same_file(name: str) -> str:
    """A file's real path (``x.csv``, ``./x.csv``, ``'~/x.csv'`` and a link to it are one
    file)."""
    return os.path.realpath(home_path(name))


DESCRIPTION = f"""\
citybrain: a streaming city-operations brain. Sensor readings and citizen reports flow
through Kafka into stream workers that detect anomalies, raise alerts, route them to
response playbooks and escalate when nobody acts; Prometheus and Grafana show it all.

Start with 'citybrain demo' (or 'make demo' in the checkout,
{REPO_ROOT}); 'citybrain COMMAND --help' describes each command.
Settings come from CITYBRAIN_* environment variables (README, Configuration).
"""

EPILOG = """\
exit statuses:
  0    done
  1    the command ran and the answer is no (checks failed, a stack or demo worker not
       ready in stack status, the API refused, no alert, no run in the period)
  2    a bad command line, input file or setting (the message names it)
  3    a service the command needs did not answer or could not start, or is busy
  70   an unexpected error, a bug (CITYBRAIN_DEBUG=1 prints the traceback)
  130  interrupted (Ctrl-C or SIGTERM)
  141  the output was closed early (| head)
"""


# An exit-status line of EPILOG: its number and the spaces before its text.
_STATUS_ENTRY = re.compile(r"^\s+\d+\s+")


# A word of a usage line, a bracketed or parenthesised group (one level of nesting) whole.
_USAGE_PART = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]|\((?:[^()]|\([^()]*\))*\)|\S+")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; every option's default shown, unless it has
    none worth showing or the help already says it. Help text starts at column 30, so
    every command name (``playbooks``, ``hash-token``, ``dashboards``) and most options
    share a line with their description instead of wrapping above it."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 30,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures the command names of a subcommand list without the extra
        # indent it prints them with, so the longest ones wrapped above their help.
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            names = [len(sub.dest) for sub in action._get_subactions()]
            if names:
                needed = max(names) + self._current_indent + self._indent_increment
                self._action_max_length = max(self._action_max_length, needed)

    def _format_usage(
        self,
        usage: str | None,
        actions: Any,
        groups: Any,
        prefix: str | None,
    ) -> str:
        """argparse's usage, unless a line of it is wider than the terminal (it indents
        the options under a long command's name, 29 columns for ``ingest mqtt``): then
        its words and bracketed groups packed to the width, under a 2-space indent."""
        text = super()._format_usage(usage, actions, groups, prefix)
        if all(len(line) <= self._width for line in text.splitlines()):
            return text
        parts = [
            word
            for part in _USAGE_PART.findall(" ".join(text.split()))
            # A group wider than a line on its own goes word by word.
            for word in ([part] if len(part) + 2 <= self._width else part.split())
        ]
        lines = [parts[0]]
        for part in parts[1:]:
            if len(lines[-1]) + 1 + len(part) <= self._width:
                lines[-1] += " " + part
            else:
                lines.append("  " + part)
        return "\n".join(lines) + "\n\n"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """As written when every line fits ``width`` (the terminal's, or 78 in a pipe);
        else each paragraph and each exit-status entry refilled to it, an entry's lines
        under its text (t123: at 40 columns a command's description was one line of up
        to 131 characters, and the exit statuses 86, which the terminal broke mid-word)."""
        lines = text.splitlines()
        if all(len(indent) + len(line) <= width for line in lines):
            return super()._fill_text(text, width, indent)
        out: list[str] = []
        entry: list[str] = []  # the words of the paragraph or entry being read
        first = hang = ""  # its first line's start, and the indent of the lines after
        for line in [*lines, ""]:
            lead = line[: len(line) - len(line.lstrip())]
            status = _STATUS_ENTRY.match(line)
            goes_on = entry and not status and line.strip() and len(lead) == len(hang)
            if goes_on:
                entry += line.split()
                continue
            if entry:
                out.append(
                    textwrap.fill(
                        " ".join(entry),
                        max(width, 20),
                        initial_indent=indent + first,
                        subsequent_indent=indent + hang,
                        break_on_hyphens=False,
                    )
                )
            entry, first, hang = [], "", ""
            if not line.strip():
                out.append("")
            elif status:
                first, hang = status.group(0), " " * len(status.group(0))
                entry = line[len(first) :].split()
            else:
                first = hang = lead
                entry = line.split()
        return "\n".join(out[:-1])

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, "", argparse.SUPPRESS)
            # A flag's default is its absence: "--unsatisfied (default: True)" read as
            # if the flag were on (it is the dest shared with --satisfied that is True).
            or isinstance(action, argparse._StoreConstAction | argparse.BooleanOptionalAction)
            or action.nargs in ("?", "*", "+")
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


# The free text an action carries is `--note` on a run, `--reason` on a silence and
# `--comment` on a reporter's answer (t91: `runs cancel --reason dup` was asked "did you
# mean --json?", `silences add --note x` nothing): each names the others.
_TEXT_OPTIONS = ("--note", "--reason", "--comment")
_SAME_MEANING = {o: tuple(x for x in _TEXT_OPTIONS if x != o) for o in _TEXT_OPTIONS}
# t151: `deadletters --requeue 0:17` was told to write --prefix 'demo-… --requeue 0:17'.
_SAME_MEANING.update(
    dict.fromkeys(("--requeue", "--retry", "--resend", "--resubmit"), ("--replay",))
)
# Words typed after a command that takes no ACTION, for what one of its options does
# (t151: `deadletters replay 0:17`, `deadletters list` said only "unrecognized arguments").
_ACTION_WORDS: dict[str, dict[str, str]] = {
    "deadletters": {
        **dict.fromkeys(
            ("replay", "requeue", "retry", "resend", "resubmit"),
            "deadletters takes no ACTION: a dead letter is sent back with --replay "
            "PARTITION:OFFSET, its place as the table's AT column shows it, one --replay each",
        ),
        **dict.fromkeys(
            ("list", "show", "ls"),
            "deadletters takes no ACTION: it lists the latest dead letters as it is",
        ),
        **dict.fromkeys(
            ("follow", "tail", "watch"), "deadletters takes no ACTION: --follow does that"
        ),
    },
}
# A number, a unit, or both (`1`, `h`, `1h`, `30m`, `1.5`): the pieces of a value with
# no space in it, split by the shell.
_NUMBER_AND_UNIT = re.compile(r"[0-9]+(?:\.[0-9]+)?[A-Za-z]*|[A-Za-z]{1,3}")
# A word that is a label matcher by itself: a label name, then its operator (`kind=pm25`,
# `kind!~"pm.*"`, `kind=`), unlike the pieces of one split by spaces (`kind`, `=`, `pm25`).
_MATCHER_WORD = re.compile(r'\s*[^\s"=!~{},]+\s*(?:=~|!~|!=|=)')
# Options that take any text but whose value this parser can tell apart, by dest: a hint
# that joins words into one value checks it as the command will (t147: `campaign report
# --from 2024-05-26 2024-05-27` was told to write --from '2024-05-26 2024-05-27').
_VALUE_CHECKS: dict[str, Callable[[str], bool]] = {
    "matcher": lambda word: _MATCHER_WORD.match(word) is not None,
    # A topic prefix is a Kafka name: no space (t151: --prefix 'demo-… retry 0:0').
    "prefix": lambda word: re.fullmatch(r"[A-Za-z0-9._-]+", word) is not None,
    "start": takes_instant,
    "end": takes_instant,
}


def _takes(action: argparse.Action, value: str) -> bool:
    """Whether ``action`` takes ``value`` as it is typed: its type's check (every one of
    this parser's is pure), or ``_VALUE_CHECKS``' for its dest; a value of any other
    option without a type is taken."""
    check = _VALUE_CHECKS.get(action.dest)
    if check is not None:
        return check(value)
    if not callable(action.type):
        return True
    try:
        action.type(value)
    except (argparse.ArgumentTypeError, TypeError, ValueError):
        return False
    return True


# Words a newcomer types for a choice by its meaning, not its spelling (t116: `stack start`
# was asked "did you mean 'status'?", the closest spelling; `stack stop` got every choice).
_SYNONYMS = {
    "start": "up",
    "stop": "down",
    "shutdown": "down",
    # t143: `silences rm ID` and `runs close ID` listed every choice; `citybrain send
    # x.csv` was asked "did you mean 'runs resend'?", `publish x.csv` 'dashboards push'.
    "rm": "expire",
    "delete": "expire",
    "remove": "expire",
    "close": "resolve",
    "feed": "replay",
    "send": "replay",
    "publish": "replay",
}
# Words typed as a command that are one of the top parser's options.
_OPTION_WORDS = {"version": "--version", "-version": "--version"}
# Words typed as a command for what citybrain keeps as files (t116: `citybrain logs`
# listed every command, and the worker's log path was only in the demo's lines).
# The command line of the last top-level parse (hidden.hide masks its secrets).
_TYPED: list[str] = []

_FILE_WORDS = frozenset({"logs", "log"})


def logs_hint() -> str:
    """Where the logs are, under this shell's run directory (CITYBRAIN_RUN_DIR, else
    CITYBRAIN_HOME/run), as a hint for `citybrain logs`: the demo's worker, then each
    service of the stack (docs/operations.md lists the run directory)."""
    import os

    from citybrain.commands import _run_dir

    run = _run_dir(os.environ).expanduser().absolute()
    return (
        f"the logs are files: the demo's worker {run / 'demo' / 'worker.log'}, Kafka "
        f"{run / 'kafka' / 'logs' / 'server.log'}, Prometheus "
        f"{run / 'prometheus' / 'prometheus.log'}, Mosquitto "
        f"{run / 'mosquitto' / 'mosquitto.log'}; follow one with "
        f"`tail -f {run / 'demo' / 'worker.log'}`"
    )


def _nested(action: argparse.Action, value: str) -> list[str]:
    """The commands one level down that ``value`` names, or that it misspells when it
    names none, as typed after the parser's own name: ``['playbooks route-test']`` for
    ``route-test``, ``['runs list', 'silences list']`` for ``list``; [] for none."""
    commands = action.choices
    if not isinstance(commands, dict):
        return []
    found: dict[str, list[str]] = {}
    for name, parser in commands.items():
        for inner in parser._actions:
            # A command's actions: its subcommands, or a first positional ACTION's
            # choices (`stack up`).
            if isinstance(inner, argparse._SubParsersAction) or (
                inner.metavar == "ACTION" and inner.choices is not None
            ):
                for choice in inner.choices or ():
                    found.setdefault(str(choice), []).append(f"{name} {choice}")
    if value in found:
        return found[value]
    near = closest(value, list(found))
    if near is None:
        return []
    # The nearer of the two wins, a command on a tie (`stak` is `stack`): t143's `acks`
    # was asked "did you mean 'stack'?", as a command was preferred however far.
    top = closest(value, commands)
    return found[str(near)] if top is None or _likeness(value, near) > _likeness(value, top) else []


def _likeness(value: str, choice: object) -> float:
    """How alike ``value`` and ``choice`` are, ignoring case: difflib's ratio, 0..1, as
    ``closest`` compares them."""
    return difflib.SequenceMatcher(None, value.casefold(), str(choice).casefold()).ratio()


class Parser(argparse.ArgumentParser):
    """argparse's parser, its usage errors as the one ``citybrain:`` line every other
    error is (README): ``citybrain: ingest mqtt: argument --qos: invalid choice: 2 (choose
    from 0, 1); see `citybrain ingest mqtt --help` ``, status 2, not the usage block. The
    hint is typed as it works in this shell (``cli_command``: the script's path when
    ``citybrain`` is not on the PATH; a new-user walk typed the bare name and got "command
    not found").
    Subcommands' parsers are of this class too (add_subparsers takes the parent's)."""

    # The arguments this parser was given, to name an unknown option first (trial 9).
    _given: list[str] | None = None
    # Options that cannot be given together: (option, option, why), see refuse_together.
    conflicts: list[tuple[str, str, str]]
    # Many-valued arguments whose values must differ: (dest, key, why), see distinct.
    distincts: list[tuple[str, Callable[[Any], object], Callable[[Any], str], str]]
    # Options allowed only with one value of an argument: (option, dest, value, why).
    only: list[tuple[str, str, str, Callable[[], str]]]

    def refuse_together(self, first: str, second: str, why: str) -> None:
        """Refuse ``first`` and ``second`` (long options of this parser) given together,
        as argparse refuses a mutually exclusive group's (``argument --json: not allowed
        with argument --out (why)``, status 2), where a group cannot say it: an option
        in two pairs (``--out`` with ``--json`` and with ``--wide``), or a reason to give
        (helper brief t47: ``campaign report --out c3.html --json`` ignored --json, and
        ``--input F --prefix P`` ran without saying which it used)."""
        for option in (first, second):
            if option not in self._option_string_actions:
                raise ValueError(f"{self.prog} has no option {option}")
        self.conflicts = [*getattr(self, "conflicts", []), (first, second, why)]

    def only_with(self, option: str, dest: str, value: str, why: Callable[[], str]) -> None:
        """Refuse ``option`` (a long option of this parser) given when the argument
        ``dest`` is not ``value``, where it would go unused (t51: ``stack up --wipe``, a
        fresh start meant, ran on the old data without a word): ``argument --wipe: not
        allowed with ACTION 'up' (why)``, status 2; ``why`` is built only then (it may
        print a command, which reads the run directory)."""
        if option not in self._option_string_actions:
            raise ValueError(f"{self.prog} has no option {option}")
        self.only = [*getattr(self, "only", []), (option, dest, value, why)]

    def distinct(
        self,
        dest: str,
        key: Callable[[Any], object],
        why: str,
        show: Callable[[Any], str] = repr,
    ) -> None:
        """Refuse a value of the many-valued argument ``dest`` given twice, as ``key``
        sees them (a file by its real path: ``x.csv`` and ``./x.csv`` are one): ``argument
        FILE: 'x.csv' is given twice (also as './x.csv'; why)``, each value as ``show``
        writes it, status 2. t98: ``replay x.csv x.csv`` sent every event twice, and
        ``rehearse --ack-deadline 300 --ack-deadline 300`` compared a version with itself,
        without a word."""
        if not any(a.dest == dest for a in self._actions):
            raise ValueError(f"{self.prog} has no argument {dest}")
        self.distincts = [*getattr(self, "distincts", []), (dest, key, show, why)]

    def _refuse_repeats(self, namespace: argparse.Namespace) -> None:
        """``error`` on the first value of a ``distinct`` argument given twice."""
        for dest, key, show, why in getattr(self, "distincts", []):
            seen: dict[object, Any] = {}
            for value in getattr(namespace, dest, None) or []:
                first = seen.setdefault(key(value), value)
                if first is value:
                    continue
                action = next(a for a in self._actions if a.dest == dest)
                named = action.option_strings[-1] if action.option_strings else action.metavar
                said, again = show(first), show(value)
                also = "" if said == again else f"also as {again}; "
                self.error(f"argument {named}: {said} is given twice ({also}{why})")

    def _refuse_conflicts(self, namespace: argparse.Namespace) -> None:
        """``error`` on the first pair of ``conflicts`` both given, or the first option
        of ``only`` given without its argument's value: an option is given when its value
        is not its default (a flag set, a value typed)."""
        for first, second, why in getattr(self, "conflicts", []):
            a, b = self._option_string_actions[first], self._option_string_actions[second]
            if all(getattr(namespace, x.dest, x.default) != x.default for x in (a, b)):
                self.error(f"argument {second}: not allowed with argument {first} ({why})")
        for option, dest, value, why in getattr(self, "only", []):
            action = self._option_string_actions[option]
            given = getattr(namespace, dest, None)
            if getattr(namespace, action.dest, action.default) != action.default and (
                given != value
            ):
                named = next((a.metavar or a.dest for a in self._actions if a.dest == dest), dest)
                self.error(f"argument {option}: not allowed with {named} {given!r} ({why()})")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        """argparse's, refusing an empty or blank value first (``--title ''``, a script's
        unset variable): before t151 one was taken as the option left out (``--title ''``
        the default title, ``--routing ''`` the library's routing file, ``demo --expect
        ''`` a whole demo on the built-in events) or as the current directory (``replay
        ''`` read '.', ``--incidents ''`` was "'.' is a directory"), without a word. The
        options that name an empty value in words of their own (_EMPTY_SAID_BY_COMMAND, and
        types marked ``says_empty``: an_id_shown_by's: ``--comment is empty: …``) are
        left to their command."""
        if (
            action.nargs != 0
            and action.choices is None
            and not (set(action.option_strings) & _EMPTY_SAID_BY_COMMAND)
            and not getattr(action.type, "says_empty", False)
        ):
            for text in arg_strings:
                if isinstance(text, str) and not text.strip():
                    raise argparse.ArgumentError(action, empty_value(action, text))
        return super()._get_values(action, arg_strings)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a value against ``choices`` (a subcommand's name too), but
        a misspelt one is answered with the closest choice, as Python 3.14's
        ``suggest_on_error`` does: ``argument COMMAND: invalid choice: 'stak' (did you
        mean 'stack'?)``; with none close, every choice is listed, as before. Raises
        ``argparse.ArgumentError``, which ``error`` prints as the one ``citybrain:`` line."""
        choices = action.choices
        if choices is None or value in choices:
            return
        subcommand = isinstance(action, argparse._SubParsersAction)
        if subcommand and isinstance(value, str) and value.lower() in ("help", "h", "-help"):
            # t76: a newcomer's `citybrain help` / `runs help` got every choice listed
            # and no word of the option that gives help.
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (did you mean --help?)"
            )
        meant = _SYNONYMS.get(value.lower()) if isinstance(value, str) else None
        if meant is not None and meant in choices:
            # Before closeness: `stack start` is nearest 'status' by its letters.
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (did you mean {meant!r}?)"
            )
        top = self.prog == "citybrain"
        if top and subcommand and isinstance(value, str) and value.lower() in _FILE_WORDS:
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} ({logs_hint()})")
        if subcommand and isinstance(value, str):
            option = _OPTION_WORDS.get(value.lower())
            if option is not None and option in self._option_string_actions:
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r} (did you mean {option}?)"
                )
            if meant is not None and _nested(action, meant):
                value_meant = " or ".join(repr(name) for name in _nested(action, meant))
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r} (did you mean {value_meant}?)"
                )
        nested = _nested(action, value) if subcommand and isinstance(value, str) else []
        if nested:
            # t91: the README's `playbooks check [DIR]` / `route-test …` row led a newcomer
            # to `citybrain route-test`, answered with every command and no word of where
            # route-test is.
            said = " or ".join(repr(name) for name in nested)
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (did you mean {said}?)"
            )
        parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else []
        if len(parts) > 1 and all(part in choices for part in parts):
            # t143: `runs list --status open,resolved` was asked "did you mean
            # 'resolved'?", as if the list were a misspelling of its last item.
            named = " or ".join(map(repr, parts))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (one choice, not a list: give {named})"
            )
        near = closest(value, choices)
        if near is None:
            listed = ", ".join(map(repr, choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {listed})"
            )
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (did you mean {near!r}?)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[Any, list[str]]:
        """argparse's, but a subcommand's parser reports what it does not know itself,
        with its own help (trial 9: ``replay x.csv --bogus`` pointed at ``citybrain
        --help``, as argparse leaves extras to the top parser)."""
        typed = list(sys.argv[1:] if args is None else args)
        if self.prog == "citybrain":
            # The whole command line, as typed: a subcommand's parser sees only its own
            # words, and a secret that follows a misplaced --token is in the top's.
            _TYPED[:] = typed
        args = self._dash_values(typed)
        self._given = list(args)
        for flag, value in self._flag_values():
            if _FLAG_VALUE.fullmatch(value):
                # `replay --max 50 x.csv` read 50 as a FILE: "FILE '50': no such file".
                self.error(
                    f"argument {flag}: takes no value, but {value!r} follows it "
                    f"({flag} is on when given: drop {value!r})"
                )
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and self.prog != "citybrain":
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if namespace is not None:
            self._refuse_conflicts(namespace)
            self._refuse_repeats(namespace)
        return namespace, extras

    def _one_value_action(self, arg: str) -> argparse.Action | None:
        """The action of ``arg`` when it names (or abbreviates, as argparse allows) an
        option of this parser that takes exactly one value, typed without ``=``; else None."""
        if not arg.startswith("-") or "=" in arg:
            return None
        action = self._option_string_actions.get(arg)
        if action is None and arg.startswith("--"):
            found = {a for a, _, _ in self._get_option_tuples(arg)}
            action = found.pop() if len(found) == 1 else None
        return action if action is not None and action.nargs is None else None

    def _dash_values(self, args: list[str]) -> list[str]:
        """``args`` with a value that starts with ``-`` joined to its option (``--duration
        -2h`` as ``--duration=-2h``) when the option takes one value and the word is none
        of this parser's options. argparse reads such a word as an unknown option and said
        only ``argument --duration: expected one argument`` (t98: a newcomer's negative
        duration, a note such as ``--note -late``), naming neither the value nor the fix;
        joined, the option's own check names the value (``duration is '-2h', …``)."""
        joined: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                return [*joined, *args[index:]]
            after = args[index + 1] if index + 1 < len(args) else ""
            if (
                self._one_value_action(arg) is not None
                and len(after) > 1
                and after.startswith("-")
                and not after.startswith("--")
                and after.split("=", 1)[0] not in self._option_string_actions
                and not self._get_option_tuples(after)
            ):
                joined.append(f"{arg}={after}")
                index += 2
                continue
            joined.append(arg)
            index += 1
        return joined

    def _unknown_options(self) -> list[str]:
        """The options among this parser's arguments that it does not know, as argparse
        would read them (up to ``--``; ``-`` and negative numbers are values)."""
        unknown: list[str] = []
        for arg in self._given or []:
            if arg == "--":
                break
            try:
                parsed = self._parse_optional(arg)
            except (argparse.ArgumentError, SystemExit):
                continue  # an ambiguous abbreviation: argparse says so itself
            if parsed is not None and parsed[0] is None:
                unknown.append(arg)
        return unknown

    def _commands(self) -> str:
        """This parser's subcommands, one a line with its description, as --help lists
        them, and the line that says how to learn more of one."""
        lines = []
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    lines.append(f"  {choice.dest:<12} {choice.help or ''}".rstrip())
        typed = command_line(*self.prog.split()[1:], "COMMAND", "--help", only=())
        return "\n".join([*lines, f"`{typed}` describes each"]) + "\n"

    def _option_hint(self, unknown: list[str]) -> str:
        """`` (did you mean --status?)`` for the unknown options near one of this
        parser's (``--stauts``, ``--stauts=open``), or ""."""
        # Compared without their dashes, which every option shares (t60's walk: `silences
        # add --for 1h` was asked "did you mean --url?", two letters of five alike).
        known = {o[2:]: o for o in self._option_string_actions if o.startswith("--")}
        pairs = []
        for option in unknown:
            name = option.split("=", 1)[0]
            bare = closest(name.lstrip("-"), list(known))
            near = known[str(bare)] if bare is not None else None
            same = [o for o in _SAME_MEANING.get(name, ()) if o in self._option_string_actions]
            if same:
                near = same[0]  # the word this command uses for it, not a look-alike
            if near is not None:
                pairs.append(str(near) if len(unknown) == 1 else f"{near} for {name}")
        return f" (did you mean {', '.join(pairs)}?)" if pairs else ""

    def _flag_values(self) -> list[tuple[str, str]]:
        """Each option of this parser that takes no value (``--max``, ``--json``) with the
        word typed right after it when that word is no option (up to ``--``)."""
        pairs = []
        given = [*(self._given or []), ""]
        for arg, after in itertools.pairwise(given):
            if arg == "--":
                break
            action = self._option_string_actions.get(arg)
            if (
                action is not None
                and action.nargs == 0
                and after
                and not after.startswith("-")
                and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
            ):
                pairs.append((arg, after))
        return pairs

    def _file_option_hint(self, message: str) -> str:
        """`` (a file is given with --input: --input one.csv)`` when a file was typed
        where this command takes none but has one option for an input file (a newcomer's
        ``detect one.csv``), or ""."""
        from streams.inputs import is_file

        inputs = [
            action.option_strings[-1]
            for action in self._actions
            if action.option_strings and action.metavar == "FILE" and "out" not in action.dest
        ]
        unrecognized = message.removeprefix("unrecognized arguments:")
        files = [
            word
            for word in self._given or []
            if word in unrecognized and not word.startswith("-") and is_file(Path(word))
        ]
        if len(inputs) != 1 or not files:
            return ""
        return f" (a file is given with {inputs[0]}: {inputs[0]} {shell_word(files[0])})"

    def _split_value_hint(self, message: str) -> str:
        """`` (--matcher takes one word: write --matcher kind=pm25, quoted if it has
        spaces)`` when the unrecognized words follow the value of an option that takes one,
        its value split by spaces (t134: ``silences add --matcher kind = pm25`` said only
        ``unrecognized arguments: = pm25``), or "". A value of ``=``, ``!=`` or ``=~``
        pieces is joined without spaces; any other is quoted whole.

        The line it suggests is one this parser takes, meaning what was typed (t147): a
        repeatable option given several whole values after it once (``--replay 0:1 0:2``,
        ``--matcher kind=pm25 severity=critical``, ``--ack-deadline 60 120``) is repeated,
        not given them glued into one (``--replay '0:1 0:2'``, refused; ``kind=pm25severity=
        critical``, ``60120``, taken with another meaning); a joined value the option's own
        check refuses (``--ack-deadline 60s``) is not suggested: the number alone is, or
        the words it takes one of, or no hint."""
        given = self._given or []
        unrecognized = message.removeprefix("unrecognized arguments:").split()
        for index, word in enumerate(given[:-2]):
            action = self._one_value_action(word)
            if action is None:
                continue
            rest = given[index + 2 : index + 2 + len(unrecognized)]
            if not unrecognized or rest != unrecognized:
                continue
            if any(piece.startswith("-") and len(piece) > 1 for piece in rest):
                # An option typed after the value (`--prefix P --requeue 0:1`), unknown
                # here: _option_hint says it, never glued into this value (t151).
                return ""
            pieces = [given[index + 1], *rest]
            if action.choices is not None:
                # `--status open resolved` (t143: said only "unrecognized arguments:
                # resolved"), as `--status open,resolved` is said.
                if not all(piece in action.choices for piece in pieces):
                    continue
                named = " or ".join(map(repr, pieces))
                return f" ({word} takes one choice, not a list: give {named})"
            whole = [piece for piece in pieces if _takes(action, piece)]
            if isinstance(action, argparse._AppendAction) and whole == pieces:
                repeated = " ".join(f"{word} {shell_word(piece)}" for piece in pieces)
                return f" ({word} takes one value each time: repeat it, {repeated})"
            # Joined without spaces only where the split is at the operator (`kind = pm25`,
            # `kind=~ pm.*`), not a stray word after a whole matcher (`kind=pm25 x`).
            at_operator = all(
                a.endswith(("=", "~")) or b.startswith(("=", "!", "~"))
                for a, b in itertools.pairwise(pieces)
            )
            if action.dest == "matcher" and not at_operator:
                return ""  # a stray word after a whole matcher: argparse names it
            if at_operator and any(re.search(r"[=~]", piece) for piece in pieces):
                value = "".join(pieces)
                said = f"{word} {shell_word(value)}, quoted if it has spaces"
            elif word not in _TEXT_OPTIONS and all(map(_NUMBER_AND_UNIT.fullmatch, pieces)):
                # A number and its unit (t143: `--duration 1 h` was told to write
                # `--duration '1 h'`, which it then refused), or a number's digit groups.
                value = "".join(pieces)
                said = f"{word} {value}"
            else:
                value = " ".join(pieces)
                said = f"{word} {shell_word(value)}"
            if _takes(action, value):
                return f" ({word} takes one word: write {said})"
            if whole[:1] == pieces[:1] and all(map(_NUMBER_AND_UNIT.fullmatch, pieces)):
                # `--ack-deadline 60 s`: seconds without a unit (60s is refused).
                return f" ({word} takes a number without a unit: write {word} {pieces[0]})"
            if len(whole) > 1:
                named = " or ".join(map(repr, whole))
                return f" ({word} takes one value: give {named})"
            # One whole value and stray words: argparse's own line names them.
            return ""
        return ""

    def _one_at_a_time_hint(self, message: str) -> str:
        """`` (silences expire takes one SILENCE_ID: run it once for each)`` when the
        unrecognized words are more values of the command's one positional argument (t147:
        ``silences expire ID ID`` said only ``unrecognized arguments: ID``), or ""."""
        unrecognized = message.removeprefix("unrecognized arguments:").split()
        positionals = [a for a in self._actions if not a.option_strings and a.nargs is None]
        if len(positionals) != 1 or not unrecognized:
            return ""
        action = positionals[0]
        if any(word.startswith("-") or not _takes(action, word) for word in unrecognized):
            return ""
        if action.choices is not None and not all(w in action.choices for w in unrecognized):
            return ""  # `stack status foo`: a stray word, not another ACTION
        command = self.prog.removeprefix("citybrain").strip()
        return f" ({command} takes one {action.metavar}: run it once for each)"

    def _flag_value_hint(self) -> str:
        """`` (--max takes no value)`` when a value was typed after an option that takes
        none (t60: ``replay --max 50``, ``runs list --json 5`` said only ``unrecognized
        arguments: 50``, as if the 50 were the mistake, not the reading of --max), or ""."""
        flags = list(dict.fromkeys(flag for flag, _ in self._flag_values()))
        if not flags:
            return ""
        takes = "takes" if len(flags) == 1 else "take"
        return f" ({' and '.join(flags)} {takes} no value: it is on when given)"

    def _missing_value_hint(self, flags: list[str]) -> str:
        """Why an option that takes a value got none: `` (nothing follows it)`` or `` (the
        next word, '--json', is an option: … write --note=--json for a value that starts
        with -)``; t98: ``argument --note: expected one argument`` named no word."""
        given = self._given or []
        typed = [i for i, word in enumerate(given) if word in flags]
        if not typed:
            return ""
        flag, index = given[typed[-1]], typed[-1]
        if index + 1 >= len(given):
            return " (nothing follows it)"
        after = given[index + 1]
        return (
            f" (the next word, {after!r}, is an option: give {flag} its value, or write "
            f"{flag}={shell_word(after)} for a value that starts with -)"
        )

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("citybrain").strip()
        where = f"{command}: " if command else ""
        if message.endswith("required: COMMAND") and not self._unknown_options():
            # `citybrain` alone (t40: "required: COMMAND" only): the commands, one a line,
            # as --help lists them.
            self.exit(EXIT_USAGE, f"citybrain: {where}give a command:\n{self._commands()}")
        if message.startswith(("the following arguments are required", "one of the arguments")):
            # argparse checks what is missing before what is unknown: `replay --bogus`
            # said only that FILE is required (`silences add --for 1h`, that one of
            # --duration and --end is). The unknown option is the likelier slip.
            unknown = self._unknown_options()
            if unknown:
                message = (
                    f"unrecognized arguments: {' '.join(unknown)}{self._option_hint(unknown)} "
                    f"(and {message})"
                )
        elif message.startswith("unrecognized arguments"):
            if command == "hash-token" and not self._unknown_options():
                # A token typed as an argument (masked below, as every secret is).
                message += (
                    " (hash-token reads the token from standard input, not its arguments: "
                    f"`{command_line('hash-token', only=())} < token.txt`)"
                )
            flag_value = self._flag_value_hint()
            split = self._split_value_hint(message)
            words = _ACTION_WORDS.get(command, {})
            meant = next(
                (words[w.lower()] for w in message.split(":", 1)[-1].split() if w.lower() in words),
                "",
            )
            if meant:
                split = f" ({meant})"
            message += (
                self._option_hint(self._unknown_options())
                + flag_value
                + self._file_option_hint(message)
                # A value typed after a flag (`--json b.1`) is said as that, once.
                + (split or ("" if flag_value else self._one_at_a_time_hint(message)))
            )
        elif missing := re.fullmatch(r"argument (\S+): expected one argument", message):
            message += self._missing_value_hint(missing.group(1).split("/"))
        elif explicit := re.fullmatch(r"argument (\S+): ignored explicit argument (.*)", message):
            # argparse's words for `--max=50`, as if the 50 had been left out on purpose.
            flag, value = explicit.groups()
            message = (
                f"argument {flag}: takes no value, but {value} is given to it "
                f"({flag} is on when given: drop ={value.strip(chr(39))})"
            )
        # The hint is a command to type, so it is typed as it works in this shell (the
        # script's path when `citybrain` is not on the PATH), as every other hint is.
        typed = command_line(*command.split(), "--help", only=())
        # Last, over every message above: no usage error prints a secret typed on the
        # command line (t134: a misplaced --token was echoed as an invalid choice).
        message = hide(message, _TYPED or self._given or [])
        message = cut_long(message, _TYPED or self._given or [])
        self.exit(EXIT_USAGE, f"citybrain: {where}{message}; see `{typed}`\n")


# Options whose command names an empty value in its own words (``--prefix is empty: give a
# topic prefix``, ``--token is empty: …``, ``--duration: duration is empty, expected …``,
# ``--comment is empty: …``): _get_values leaves them be.
_EMPTY_SAID_BY_COMMAND = frozenset(
    {
        "--comment",
        "--duration",
        "--end",
        "--from",
        "--matcher",
        "--note",
        "--prefix",
        "--prometheus-url",
        "--reason",
        "--scrape-interval",
        "--sensor-id-template",
        "--start",
        "--to",
        "--token",
        "--topic",
        "--ts-field",
        "--url",
        "--value-field",
    }
)


def empty_value(action: argparse.Action, text: str) -> str:
    """What an empty or blank value of ``action`` is refused with: ``'' is empty: give a
    file's path, or leave --grid out for its default``."""
    metavar = action.metavar if isinstance(action.metavar, str) else None
    name = metavar or action.dest.upper()
    what = {"FILE": "a file's path", "DIR": "a folder's path"}.get(name, name)
    said = "empty" if not text else "blank"
    # "Leave it out" only where leaving it out means something: a default it has or names.
    has_default = action.default is not None or "default" in (action.help or "")
    leave = (
        f", or leave {action.option_strings[-1]} out for its default"
        if action.option_strings and not action.required and has_default
        else ""
    )
    return f"{text!r} is {said}: give {what}{leave}"


# A value typed after an option that takes none, read by argparse as the next positional
# argument (a FILE) otherwise: a number or a yes/no word, never a file or an id a command
# takes.
_FLAG_VALUE = re.compile(r"[+-]?(\d[\d_,]*\.?\d*|\.\d+)|(?i:yes|no|true|false|on|off)")


def _version() -> str:
    """citybrain's installed version (pyproject.toml), or "unknown" outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("citybrain")
    except PackageNotFoundError:
        return "unknown (not installed: make install)"


def build_parser() -> argparse.ArgumentParser:
    from detectors import DETECTORS
    from playbooks.machine import RUN_LIST_STATUSES

    parser: argparse.ArgumentParser = Parser(
        prog="citybrain",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    # A new user's first try after --help (trial 20: "unrecognized arguments: --version").
    parser.add_argument(
        "--version", action="version", version=f"citybrain {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: argparse._SubParsersAction[Any], name: str, text: str) -> Parser:
        made = parent.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=EPILOG,
            formatter_class=HelpFormatter,
        )
        assert isinstance(made, Parser)  # add_subparsers makes its parent's class
        return made

    def detector_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--detector",
            default=DEFAULT_DETECTOR,
            choices=sorted(DETECTORS),
            metavar="NAME",
            help=f"the detector to score with, one of {', '.join(sorted(DETECTORS))} "
            f"(default {DEFAULT_DETECTOR})",
        )

    p = command(sub, "stack", "start, stop or check the local Kafka, Prometheus and Mosquitto")
    p.add_argument(
        "action",
        choices=["up", "down", "status", "restart-worker", "reload"],
        metavar="ACTION",  # as every other command's; "required: action" before (trial 20)
        help="up, down, status, restart-worker or reload; up: start them (installing what "
        "is missing); down: stop a running demo, the demo's worker and them; status: say "
        "what runs (exit 1 when Kafka or Prometheus is not ready or the demo's worker "
        "crashed); restart-worker: start the last demo's worker again as the demo ran it, "
        "stopping it first when it runs (status shows it, down stops it); reload: after "
        "editing the grid, playbooks, routing or tokens, put them in force in Prometheus' "
        "map and the demo's worker "
        "(exit 1 when either kept the old ones)",
    )
    p.add_argument("--wipe", action="store_true", help="with down: also delete Kafka's data")
    p.only_with(
        "--wipe",
        "action",
        "down",
        lambda: f"only `{command_line('stack', 'down', '--wipe')}` deletes Kafka's data",
    )
    p.set_defaults(func=cmd_stack)

    p = command(sub, "worker", "run a stream-processing worker (faust) until Ctrl-C")
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the worker logs",
    )
    p.set_defaults(func=cmd_worker)

    p = command(sub, "replay", "publish canonical CSVs to Kafka in event-time order")
    p.add_argument("files", nargs="+", metavar="FILE", help="canonical reading or incident CSVs")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--speed",
        type=_positive(float),
        default=60.0,
        metavar="N",
        help="replay at N times real time",
    )
    speed.add_argument("--max", action="store_true", help="as fast as Kafka takes them")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="whether a bad row stops the replay or is skipped and reported",
    )
    p.add_argument(
        "--pack",
        type=_whole_in(1, MAX_PACK_READINGS),
        metavar="N",
        help="send readings as readings/1 packs of up to N (1..10000), as an edge gateway "
        "does; a pack is also split below --max-message-bytes",
    )
    p.add_argument(
        "--skip",
        type=_whole_in(0),
        default=0,
        metavar="N",
        help="leave out the first N events of the time-ordered replay: resumes one that "
        "was interrupted (it says N)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=_whole_in(1024, 2**31 - 1, "bytes"),  # Kafka's sizes are 32-bit
        default=1_000_000,
        metavar="B",
        help="largest message to send (default 1000000, under Kafka's 1 MiB default; a larger "
        "one is capped at what the broker's topics take); a row whose message is larger is a "
        "bad row",
    )
    p.distinct("files", _same_file, "each file is sent once; twice would send every event twice")
    p.set_defaults(func=cmd_replay)

    p = command(sub, "ingest", "take MQTT or HTTP (citybrain's schema, NGSI-v2) into Kafka")
    isub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        (
            "mqtt",
            "subscribe to the MQTT broker; readings to Kafka as packs; /metrics on "
            "CITYBRAIN_INGEST_METRICS_PORT",
        ),
        (
            "http",
            "serve POST /ingest/v1/readings and /ingest/v1/ngsi, and /metrics, on "
            "CITYBRAIN_INGEST_HTTP_PORT",
        ),
    ):
        i = command(isub, name, text)
        i.add_argument(
            "--pack-size",
            # The worker's pack limit (pack_too_large beyond it), as replay's --pack.
            type=_whole_in(1, MAX_PACK_READINGS),
            default=1000,
            metavar="N",
            help="readings per pack at most",
        )
        i.add_argument(
            "--pack-ms",
            type=_positive(float, 60_000, " milliseconds"),  # ingest.service.MAX_PACK_MS
            default=5.0,
            metavar="MS",
            help="send a pack every MS ms (at most 60000)",
        )
        i.add_argument(
            "--max-pending",
            # Each waiting reading is held in memory: 10**20 was taken, and back-pressure,
            # the bound on the ingest's memory, never came.
            type=_positive(int, MAX_INGEST_PENDING, " readings"),
            default=50_000,
            metavar="N",
            help="readings waiting for Kafka at most; then intake waits (back-pressure); "
            f"at most {MAX_INGEST_PENDING:,}",
        )
        i.add_argument(
            "--loglevel",
            default="info",
            choices=["debug", "info", "warning", "error"],
            help="how much the ingest logs",
        )
        i.add_argument(
            "--stats-every",
            # 1e300 was taken: no stats line, ever.
            type=_positive(float, 3600, " seconds"),
            default=10.0,
            metavar="S",
            help="seconds between stats (at most 3600)",
        )
        i.set_defaults(func=cmd_ingest)
        if name == "mqtt":
            i.add_argument(
                "--topic",
                action="append",
                metavar="PATTERN",
                help="topic pattern with {sensor_id}, {kind}, {grid_cell} or other {name} "
                "levels; repeatable (default city/{district}/{sensor_id}/{kind})",
            )
            i.add_argument(
                "--value-field", default="value", metavar="FIELD", help="JSON payloads' value field"
            )
            i.add_argument(
                "--ts-field", default="ts", metavar="FIELD", help="JSON payloads' event-time field"
            )
            i.add_argument(
                "--qos",
                type=_whole,
                choices=[0, 1],
                default=1,
                help="1: a message is acknowledged to the broker once Kafka has it",
            )
            i.add_argument(
                "--client-id",
                default="citybrain-ingest",
                metavar="ID",
                help="the persistent session's id",
            )
            i.add_argument(
                "--inflight",
                type=_whole_in(1, 65_535),  # MQTT 5's Receive Maximum is 16-bit
                default=10_000,
                metavar="N",
                help="unacknowledged QoS 1 messages the broker may send (Receive Maximum)",
            )
            i.add_argument(
                "--max-payload",
                type=_positive(int, MAX_INGEST_BYTES, " bytes"),
                default=1024 * 1024,
                metavar="BYTES",
                help="bytes per payload; a larger one is dead-lettered too_large (at most "
                f"{MAX_INGEST_BYTES:,})",
            )
        else:
            i.add_argument(
                "--sensor-id-template",
                default="{id}-{kind}",
                metavar="TEMPLATE",
                help="NGSI entity -> sensor id, from {id}, {type}, {kind} and Text attributes",
            )
            i.add_argument(
                "--max-body",
                # A body is read whole before it is parsed: 10**20 meant no limit at all.
                type=_positive(int, MAX_INGEST_BYTES, " bytes"),
                default=1024 * 1024,
                metavar="BYTES",
                help=f"bytes per body (at most {MAX_INGEST_BYTES:,})",
            )

    p = command(sub, "playbooks", "check playbooks and routing, test where an alert goes")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = command(psub, "check", "validate playbooks and routing, with file, line and reason")
    c.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="playbook directory (default: CITYBRAIN_PLAYBOOK_DIR, else the library's)",
    )
    c.add_argument(
        "--routing",
        metavar="FILE",
        help="routing file (default: CITYBRAIN_ROUTING_FILE, else the library's)",
    )
    c.add_argument(
        "--grid",
        metavar="FILE",
        help="grid file whose kinds and cells route matchers are checked against "
        "(default: CITYBRAIN_GRID_FILE)",
    )
    c.set_defaults(func=cmd_playbooks)
    r = command(psub, "route-test", "show which route and playbook an alert would take")
    r.add_argument(
        "labels",
        nargs="+",
        metavar="LABEL=VALUE",
        help='the alert\'s labels as amtool takes them: name=value or name="quoted \\"value\\""',
    )
    r.add_argument(
        "--dir",
        metavar="DIR",
        help="playbook directory (default: CITYBRAIN_PLAYBOOK_DIR, else the library's)",
    )
    r.add_argument(
        "--routing",
        metavar="FILE",
        help="routing file (default: CITYBRAIN_ROUTING_FILE, else the library's)",
    )
    r.add_argument(
        "--grid",
        metavar="FILE",
        help="grid file the cell, street and community labels come from, as in the worker "
        "(default: CITYBRAIN_GRID_FILE)",
    )
    r.set_defaults(func=cmd_playbooks)

    def api_options(parser: argparse.ArgumentParser, changes: bool = False) -> None:
        parser.add_argument(
            "--url", help="the worker's base URL (default http://127.0.0.1:CITYBRAIN_WORKER_PORT)"
        )
        parser.add_argument("--token", help="operator API token (default: $CITYBRAIN_API_TOKEN)")
        if changes:
            parser.add_argument(
                "--idempotency-key",
                metavar="KEY",
                type=an_id_shown_by("a key of your own, or leave --idempotency-key out"),
                help="this action's key: a retry with the same key is applied once (default: "
                "a new key each time; after a 503 the retry line printed carries it)",
            )

    run_actions = {
        "show": "show one run: cell, level, status, deadlines, alerts",
        "ack": "acknowledge a run: someone is on it (stops its escalation)",
        "resolve": "resolve a run (needs --note)",
        "escalate": "escalate a run to the next grid level now (coordinator)",
        "cancel": "cancel a run (needs --note; coordinator)",
        "approve": "approve the step a run waits on (coordinator)",
        "reject": "reject the step a run waits on (coordinator)",
        "resend": "send again a run's closures to citizens whose webhook call was given up "
        "(nothing when every one was delivered)",
    }
    p = command(sub, "runs", "list playbook runs and act on them through the operator API")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = command(
        rsub,
        "list",
        "list the runs as a table (latest run of each group; a line says how many earlier, "
        "superseded runs it hides and how to see one)",
    )
    statuses = list(RUN_LIST_STATUSES)
    lst.add_argument(
        "--status",
        choices=statuses,
        metavar="STATUS",
        help=f"only runs with this status, one of {', '.join(statuses)} (runs a "
        "reporter's answer reopened at least once)",
    )
    lst.add_argument(
        "--active",
        action="store_true",
        help="only runs not ended: every status but resolved, cancelled and failed (open "
        "is one status, a run whose steps ran out: it leaves out those still waiting)",
    )
    lst.add_argument(
        "--matcher",
        action="append",
        metavar="MATCHER",
        help="only runs whose alert labels match, as silences add takes it: "
        'district=md-baltimore-county, street=~"a|b" (labels as runs show lists them); '
        "repeat it for several, all of which must match",
    )
    lst.add_argument(
        "--ids",
        action="store_true",
        help="print only the run ids, one a line (for a loop: escalate each)",
    )
    lst.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    lst.add_argument(
        "--wide",
        action="store_true",
        help="every column with cell names and clock times, however wide (default: fit "
        "COLUMNS or the terminal's width; a pipe gets every column)",
    )
    lst.refuse_together("--json", "--wide", "--wide is for the table; --json prints the JSON")
    lst.refuse_together("--active", "--status", "--active is every status not ended; --status one")
    lst.refuse_together("--ids", "--json", "--ids prints the run ids; --json the whole JSON")
    lst.refuse_together("--ids", "--wide", "--ids prints the run ids; --wide the whole table")
    api_options(lst)
    lst.set_defaults(func=cmd_runs)
    for action, text in run_actions.items():
        a = command(rsub, action, text)
        a.add_argument(
            "run_id", metavar="RUN_ID", type=RUN_ID, help="the run's id, as 'runs list' shows it"
        )
        if action != "show":  # only the actions send a note
            needed = action in ("resolve", "cancel")  # the API refuses these without one
            a.add_argument(
                "--note",
                required=needed,
                help="why, for the audit trail" + (" (required)" if needed else ""),
            )
        if action == "escalate":
            a.add_argument(
                "--from",
                dest="from_level",
                choices=("community", "street", "district"),
                metavar="LEVEL",
                help="the level you saw the run at (community, street or district): if "
                "another coordinator or the playbook's ladder has moved it since, nothing "
                "is escalated and you are told who did (default: the level the run is at "
                "when the command asks, so two coordinators at once escalate it once)",
            )
        a.add_argument("--json", action="store_true", help="print the API's JSON as it is")
        api_options(a, changes=action != "show")
        a.set_defaults(func=cmd_runs)
    a = command(rsub, "answer", "relay a reporter's answer to a closure message")
    a.add_argument(
        "run_id", metavar="RUN_ID", type=RUN_ID, help="the run whose closure is answered"
    )
    a.add_argument(
        "--report",
        required=True,
        type=an_id_shown_by("a report's id as `runs show RUN_ID` lists it"),
        help="the report id, as 'runs show RUN_ID' lists it",
    )
    verdict = a.add_mutually_exclusive_group(required=True)
    verdict.add_argument(
        "--satisfied", dest="satisfied", action="store_true", help="the reporter is satisfied"
    )
    verdict.add_argument(
        "--unsatisfied",
        dest="satisfied",
        action="store_false",
        help="not satisfied: the run reopens (and escalates from the second time)",
    )
    a.add_argument("--comment", help="the reporter's words, optional")
    a.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(a, changes=True)
    a.set_defaults(func=cmd_runs)

    p = command(sub, "alerts", "list the alerts firing now through the operator API")
    asub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = command(
        asub,
        "list",
        "list the alerts firing now as a table, worst first (one that ended is listed no "
        "more: its run keeps it, as runs show RUN_ID lists)",
    )
    lst.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(lst)
    lst.set_defaults(func=cmd_alerts)

    p = command(sub, "silences", "list, add or expire silences through the operator API")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = command(ssub, "list", "list the silences as a table, active or not")
    lst.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(lst)
    lst.set_defaults(func=cmd_silences)
    add = command(ssub, "add", "silence the alerts that match every --matcher for a while")
    add.add_argument(
        "--matcher",
        action="append",
        required=True,
        help='a label matcher, e.g. kind="pm25"; repeat it for several, all of which must match',
    )
    # One of the two (amtool lets --end win over --duration without a word).
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument(
        "--duration",
        help="how long, a Prometheus duration above 0: 30m, 2h, 1h30m, 7d (or give --end)",
    )
    # amtool silence add's --start and --end (t197: "unrecognized arguments"), read as
    # Alertmanager's API reads startsAt/endsAt, and moved and refused as it does.
    add.add_argument(
        "--start",
        metavar="TIME",
        help="when it starts, RFC 3339 (2026-12-08T22:00:00Z, 2026-12-08T23:00:00+01:00); "
        "default now, and a time past is now, as in Alertmanager",
    )
    until.add_argument(
        "--end",
        metavar="TIME",
        help="when it ends, RFC 3339, instead of --duration (which counts from --start)",
    )
    add.add_argument("--reason", required=True, help="why, for the audit trail")
    add.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(add, changes=True)
    add.set_defaults(func=cmd_silences)
    exp = command(ssub, "expire", "end a silence now (coordinator)")
    exp.add_argument(
        "silence_id",
        metavar="SILENCE_ID",
        type=an_id_shown_by("an id as `silences list` shows it"),
        help="as 'silences list' shows it",
    )
    exp.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(exp, changes=True)
    exp.set_defaults(func=cmd_silences)

    p = command(
        sub, "deadletters", "show the dead-letter topic's latest messages and why each was refused"
    )
    p.add_argument(
        "--prefix",
        help="the topic prefix whose <prefix>.deadletter is read (default: "
        "CITYBRAIN_TOPIC_PREFIX, or the running demo's when that is not set)",
    )
    p.add_argument(
        "--limit",
        # Held in memory before they are shown, sorted across partitions: 10**20 read
        # the whole topic into memory (dead letters are up to 1 MB each).
        type=_positive(int, MAX_DEADLETTER_LIMIT),
        default=20,
        help="how many of the latest to show, across partitions (at most "
        f"{MAX_DEADLETTER_LIMIT:,})",
    )
    p.add_argument(
        "--follow", action="store_true", help="then show each new one as it comes, until Ctrl-C"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object a line: topic, partition, offset, time, key, headers, and the "
        "value (value_base64 when it is not UTF-8)",
    )
    p.add_argument(
        "--replay",
        action="append",
        type=_partition_offset,
        metavar="PARTITION:OFFSET",
        help="send the dead letter at PARTITION:OFFSET (as --json shows them) back to the "
        "topic it came from, with its original key and headers; repeat it for more "
        "(none is sent unless every one can be)",
    )
    p.distinct(
        "replay",
        lambda at: at,
        "each dead letter is sent back once",
        show=lambda at: f"{at[0]}:{at[1]}",
    )
    p.set_defaults(func=cmd_deadletters)

    p = command(sub, "hash-token", "print the SHA-256 of a token read from stdin")
    p.set_defaults(func=cmd_hash_token)

    p = command(sub, "demo", "the whole loop on real data: stack, worker, replay, summary")
    p.add_argument(
        "--data",
        nargs="+",
        metavar="FILE",
        help=f"canonical CSVs (default: the four real slices in {REPO_ROOT / 'datasets'}: "
        "usgs_flood_2019-05, beijing_air_2016-02, aarhus_traffic_2014-08 and nyc311_2024-05-26, "
        "each .csv.gz)",
    )
    p.add_argument(
        "--grid", metavar="FILE", help=f"grid file (default: {REPO_ROOT / 'datasets/grid.yaml'})"
    )
    p.add_argument(
        "--summary", metavar="FILE", help="write the summary as JSON here (a .json file)"
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write a what-if report (self-contained HTML) here (a .html file)",
    )
    p.add_argument(
        "--expect",
        metavar="FILE",
        help="YAML list of events you expect alerts for (keys name, sensor_prefix, start, "
        "end); the summary says which were detected or missed, and a missed one exits "
        "with status 1, for a CI check (default: the built-in events of the built-in data, "
        "reported only; none with --data)",
    )
    p.add_argument(
        "--ack-deadline",
        # It becomes CITYBRAIN_ACK_DEADLINE_SECONDS: from a second to a day.
        type=_positive(float, 86_400, " seconds", least=MIN_DEADLINE_SECONDS),
        default=5.0,
        metavar="SECONDS",
        help="how long each wait for an acknowledgement lasts in the demo",
    )
    p.distinct("data", _same_file, "each file is replayed once")
    p.set_defaults(func=cmd_demo)

    p = command(sub, "report", "write the what-if report (HTML) of a finished replay")
    p.add_argument(
        "--prefix",
        help="the replay's topic prefix (in the demo's summary; default: "
        "CITYBRAIN_TOPIC_PREFIX, or the running demo's)",
    )
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help="the replayed canonical CSVs"
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="where to write the HTML (a .html file)"
    )
    p.add_argument("--title", help="the page title (default: names the data files)")
    p.distinct("data", _same_file, "each file's events are counted once")
    p.set_defaults(func=cmd_report)

    p = command(sub, "campaign", "campaign reports from the steps and audit records")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = command(
        csub, "report", "per area and department: found, resolved, MTTA, MTTR, satisfaction"
    )
    c.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="DATE",
        help="first day (or ISO time), UTC; today, yesterday and tomorrow (any case) are UTC days",
    )
    c.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="end, exclusive (date or ISO time; or today, yesterday, tomorrow: the UTC day's "
        "start)",
    )
    c.add_argument(
        "--out", metavar="FILE", help="report.html or report.json (default: tables on stdout)"
    )
    c.add_argument("--json", action="store_true", help="without --out: JSON on stdout")
    c.add_argument(
        "--wide",
        action="store_true",
        help="tables on stdout with every figure, however wide (default: fit COLUMNS or the "
        "terminal's width; a pipe gets every figure)",
    )
    c.add_argument(
        "--input",
        metavar="FILE",
        help="exported step/audit records (JSON lines); default: read the topics",
    )
    c.add_argument(
        "--prefix",
        help="topic prefix to read (default: CITYBRAIN_TOPIC_PREFIX, or the running demo's "
        "when that is not set)",
    )
    c.add_argument(
        "--export",
        metavar="FILE",
        help="also write the step and audit records read from the topics here (JSON lines, "
        "what --input takes: a .jsonl file)",
    )
    c.add_argument("--grid", metavar="FILE", help="grid file (default: CITYBRAIN_GRID_FILE)")
    # Each pair would leave one of the two unused without a word.
    c.refuse_together("--out", "--json", "the file's name says its format: --out FILE.json")
    c.refuse_together("--out", "--wide", "--wide is for the tables on stdout")
    c.refuse_together("--json", "--wide", "--wide is for the tables; --json prints JSON")
    c.refuse_together(
        "--input", "--prefix", "--input reads an export, --prefix the topics: give one"
    )
    c.refuse_together(
        "--input",
        "--export",
        "--export writes the records read from the topics; --input reads none",
    )
    c.set_defaults(func=cmd_campaign)

    p = command(sub, "rehearse", "replay real reports with simulated field units")
    p.add_argument("--incidents", required=True, metavar="FILE", help="canonical incident CSV")
    p.add_argument(
        "--units",
        required=True,
        metavar="FILE",
        # Absolute, as the other defaults are shown: typed elsewhere a relative one is missing.
        help=f"units profile YAML, e.g. {REPO_ROOT / 'datasets/service_times/units-nyc.yaml'}",
    )
    p.add_argument(
        "--ack-deadline",
        type=_positive(float, REHEARSAL_MAX_DEADLINE, " seconds (about 292 years)"),
        action="append",
        metavar="SECONDS",
        help="seconds every wait_ack waits (up to about 292 years, as a playbook's "
        "deadlines); repeat to compare versions side by side",
    )
    p.add_argument(
        "--playbook",
        metavar="FILE",
        default=str(REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml"),
        help="the playbook the rehearsal runs",
    )
    p.add_argument("--grid", metavar="FILE", help="grid file (default: CITYBRAIN_GRID_FILE)")
    p.add_argument(
        "--seed", type=_whole, default=0, metavar="N", help="random seed of the simulated units"
    )
    p.add_argument("--out", metavar="FILE", help="report.html or report.json")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad row of --incidents stops (default) or is skipped and reported, as in replay",
    )
    p.distinct(
        "ack_deadline",
        lambda seconds: seconds,
        "each version is rehearsed once: give another deadline to compare with",
        show=lambda seconds: f"{seconds:g}",
    )
    p.set_defaults(func=cmd_rehearse)

    p = command(
        sub,
        "detect",
        "score timestamp,value CSVs with a detector, each row with only the rows before it",
    )
    p.add_argument("--input", metavar="FILE", help="one CSV to score")
    p.add_argument(
        "--output", metavar="FILE", help="where its scores go (a .csv file; '-': stdout)"
    )
    p.add_argument("--input-dir", metavar="DIR", help="score every CSV under DIR")
    p.add_argument("--output-dir", metavar="DIR", help="where their scores go")
    detector_option(p)
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad row stops (default) or is skipped, reported and left out of the output",
    )
    one_or_all = "one file is --input/--output, a folder --input-dir/--output-dir"
    for single in ("--input", "--output"):
        for folder in ("--input-dir", "--output-dir"):
            p.refuse_together(single, folder, one_or_all)
    p.set_defaults(func=cmd_detect)

    p = command(sub, "bench", "benchmarks that score detectors")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    nab = command(bsub, "nab", "score a detector on a NAB-layout corpus")
    nab.add_argument("--data", required=True, metavar="DIR", help="NAB's root or its data/")
    nab.add_argument(
        "--labels",
        metavar="FILE",
        help="combined_windows.json (default: labels/ beside the data directory)",
    )
    detector_option(nab)
    nab.add_argument(
        "--threshold",
        # Scores are in [0, 1]: above 1 nothing is ever flagged.
        type=_positive(float, 1),
        metavar="T",
        help="also score at this fixed threshold (default: the one the stream alerts at "
        f"with the detector, {OWN_THRESHOLDS['robust_zscore']:g} for robust_zscore, "
        f"{DEFAULT_THRESHOLD:g} for the others)",
    )
    nab.set_defaults(func=cmd_bench_nab)

    from dashboards.rules import SCRAPE_INTERVAL

    generated = str(REPO_ROOT / "dashboards" / "generated")
    p = command(sub, "dashboards", "generate Grafana dashboards or push them to a Grafana")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = command(dsub, "generate", "write dashboards, provisioning and Prometheus rules")
    g.add_argument("--out", default=generated, metavar="DIR", help="where to write them")
    g.set_defaults(func=cmd_dashboards)
    push = command(dsub, "push", "upsert folder, datasource and dashboards into a Grafana")
    push.add_argument("--url", help="Grafana's base URL (default: $CITYBRAIN_GRAFANA_URL)")
    push.add_argument("--token", help="service-account token (default: $CITYBRAIN_GRAFANA_TOKEN)")
    push.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="the datasource URL as Grafana reaches it (default: the local Prometheus)",
    )
    push.add_argument(
        "--scrape-interval",
        default=SCRAPE_INTERVAL,
        metavar="DURATION",
        help="how often that Prometheus scrapes the workers, told to Grafana so that "
        "$__rate_interval spans four scrapes (default: %(default)s, "
        f"{REPO_ROOT / 'docker/prometheus.yml'}'s)",
    )
    push.add_argument(
        "--generated", default=generated, metavar="DIR", help="the generated files to push"
    )
    push.set_defaults(func=cmd_dashboards)

    p = command(sub, "datasets", "rebuild the committed data slices from the shared data")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = command(dsub, "build", "convert ../shared/data/city into datasets/")
    b.add_argument(
        "--shared",
        default=str(REPO_ROOT.parent / "shared" / "data" / "city"),
        metavar="DIR",
        help="the shared city data",
    )
    b.add_argument(
        "--out", default=str(REPO_ROOT / "datasets"), metavar="DIR", help="where the slices go"
    )
    b.set_defaults(func=cmd_datasets)
    return parser
