"""``deadletters``: the dead letters of a topic prefix, and which prefixes a
broker holds."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from citybrain.cli.base import EXIT_OK, CliError, _settings, _zone
from citybrain.cli.stack import _require_kafka
from citybrain.text import counted
from playbooks.errors import did_you_mean
from streams.settings import Settings


def chosen_prefix(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The topic prefix a reading command (``deadletters``, ``campaign report``,
    ``report``) reads, and a note to print first ("" for none): --prefix, else
    CITYBRAIN_TOPIC_PREFIX; when neither was given and the last demo's worker still runs,
    the demo's (it writes under its own ``demo-…`` prefix). CliError for an empty
    --prefix."""
    from citybrain.demo import read_demo_state

    if args.prefix is not None:
        if not args.prefix.strip():
            raise CliError("--prefix is empty: give a topic prefix, e.g. citybrain")
        return args.prefix, ""
    if "topic_prefix" in settings.model_fields_set:
        return settings.topic_prefix, ""
    demo = read_demo_state(settings)
    prefix = demo.get("topic_prefix") if demo else None
    if isinstance(prefix, str) and prefix:
        return prefix, f"(the running demo's prefix {prefix}; --prefix reads another)"
    return settings.topic_prefix, ""


def named_prefix(args: argparse.Namespace, settings: Settings, prefix: str, note: str) -> str:
    """The prefix ``chosen_prefix`` gave, named as the user gave it: the option, the
    setting, the running demo's or the default (trial 17: "--prefix 'citybrain'" with
    no --prefix typed)."""
    if args.prefix is not None:
        return f"--prefix {prefix!r}"
    if "topic_prefix" in settings.model_fields_set:
        return f"CITYBRAIN_TOPIC_PREFIX={prefix}"
    if note:
        return f"the running demo's prefix {prefix!r} (no --prefix given)"
    return f"the default prefix {prefix!r} (no --prefix given)"


def prefixes_there(what: str, found: Sequence[str], prefix: str) -> str:
    """``prefixes there: a, b, … (the latest 8) (did you mean 'demo-20261203121245'?)``:
    the last 8 of the topic prefixes ``found`` (oldest first) and the one closest to the
    ``prefix`` asked for, when one is (a newcomer's prefix with a digit left off got the
    list alone)."""
    latest = " (the latest 8)" if len(found) > 8 else ""
    return f"{what}: {', '.join(found[-8:])}{latest}{did_you_mean(prefix, found)}"


def cmd_deadletters(args: argparse.Namespace) -> int:
    from citybrain.deadletters import dead_letter_topics

    settings = _settings()
    prefix, note = chosen_prefix(args, settings)
    given = named_prefix(args, settings, prefix, note)
    settings = settings.model_copy(update={"topic_prefix": prefix})
    topic = settings.topic("deadletter")
    _require_kafka(settings)
    # A prefix with no such topic is a bad command line (exit 2), as `report` and
    # `campaign report` refuse one: it was exit 1 here, the answer "no".
    if topic not in dead_letter_topics(settings):
        others = [t.removesuffix(".deadletter") for t in dead_letter_topics(settings)]
        there = (
            prefixes_there("prefixes with one", others, prefix)
            if others
            else "no dead-letter topic is there at all"
        )
        raise CliError(
            f"{given}: Kafka at {settings.kafka_bootstrap} has no topic {topic} "
            f"(a worker creates it as it starts); {there}"
        )
    if note and not args.json:
        print(note, file=sys.stderr)
    if not args.follow:
        return _show_dead_letters(args, settings, topic)
    # Ctrl-C (or SIGTERM) is how a follow ends, whenever it comes (also while the latest
    # are read, before any new one: that was exit 130): status 0.
    with contextlib.suppress(KeyboardInterrupt):
        _show_dead_letters(args, settings, topic)
    return EXIT_OK


def _show_dead_letters(args: argparse.Namespace, settings: Settings, topic: str) -> int:
    """``deadletters``' table or JSON lines: the latest ``--limit``, then with
    ``--follow`` each new one until interrupted (``KeyboardInterrupt`` propagates)."""
    from citybrain.deadletters import COLUMNS, Reader, json_line, row, table_line, widths

    with Reader(settings, topic) as reader:
        latest = reader.latest(args.limit)
        if args.json:
            for letter in latest:
                print(json_line(letter, topic), flush=True)
        else:
            more = " (the latest, --limit)" if len(latest) == args.limit else ""
            print(
                f"{topic}: {counted(len(latest), 'dead letter')}{more}; times in local time "
                f"({_zone()}); --json shows each whole"
                + ("; new ones follow as they come (Ctrl-C stops)" if args.follow else "")
            )
        rows = [row(letter) for letter in latest]
        columns = widths(rows)
        if rows and not args.json:
            print(table_line(COLUMNS, columns))
            for cells in rows:
                print(table_line(cells, columns), flush=True)
        if not args.follow:
            return EXIT_OK
        header = bool(rows)
        for letter in reader.new():
            if args.json:
                print(json_line(letter, topic), flush=True)
                continue
            if not header:
                print(table_line(COLUMNS, columns), flush=True)
                header = True
            # Columns as wide as the first rows' (a longer cell widens its line only).
            print(table_line(row(letter), columns), flush=True)
    return EXIT_OK
