"""``deadletters``: the dead letters of a topic prefix, and which prefixes a
broker holds."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from citybrain.cli.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    _settings,
    _zone,
)
from citybrain.cli.prefixes import chosen_prefix, last_demo_hint, named_prefix, prefixes_there
from citybrain.cli.stack import _require_kafka
from citybrain.text import counted
from streams.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from citybrain.deadletters import Replay


def cmd_deadletters(args: argparse.Namespace) -> int:
    from citybrain.deadletters import dead_letter_topics

    settings = _settings()
    prefix, note = chosen_prefix(args, settings)
    given = named_prefix(args, settings, prefix, note)
    defaulted = args.prefix is None and "topic_prefix" not in settings.model_fields_set
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
            + last_demo_hint(args, settings, defaulted, others)
        )
    if note and not args.json:
        print(note, file=sys.stderr)
    if args.replay:
        return _replay(args, settings, topic)
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
                + ("; --replay AT sends one back" if latest else "")
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
        for letter in reader.new(notice=lambda line: print(f"citybrain: {line}", file=sys.stderr)):
            if args.json:
                print(json_line(letter, topic), flush=True)
                continue
            if not header:
                print(table_line(COLUMNS, columns), flush=True)
                header = True
            # Columns as wide as the first rows' (a longer cell widens its line only).
            print(table_line(row(letter), columns), flush=True)
    return EXIT_OK


def _replay(args: argparse.Namespace, settings: Settings, topic: str) -> int:
    """``deadletters --replay P:O ...``: send each named dead letter's original record
    back to the topic it came from, with its key and headers; nothing is sent unless
    every one named can be (each refusal is said)."""
    from citybrain.deadletters import (
        REPLAY_ROLES,
        NotReplayable,
        Reader,
        replay_of,
        send_back,
    )

    if args.follow:
        raise CliError("deadletters: --replay and --follow do not go together")
    from citybrain.commands import command_line

    allowed = [settings.topic(role) for role in REPLAY_ROLES]
    replays, refused, missing = [], [], False
    with Reader(settings, topic) as reader:
        for partition, offset in args.replay:
            letter = reader.at(partition, offset)
            if letter is None:
                missing = True
                refused.append(f"{topic}/{partition}/{offset}: {reader.missing(partition, offset)}")
                continue
            try:
                replays.append(replay_of(letter, topic, allowed))
            except NotReplayable as exc:
                refused.append(str(exc))
    listing = command_line("deadletters", "--prefix", settings.topic_prefix)
    if refused:
        # A place with no dead letter ends with what lists them, each at its AT (t219:
        # "partition 1 holds none" said nothing of where the dead letters are).
        where = f"; `{listing}` lists them, each at its AT (PARTITION:OFFSET)" if missing else ""
        raise CliError(
            "deadletters: nothing sent back; " + "; ".join(refused) + where, status=EXIT_FAILED
        )
    sent: dict[int, tuple[int, int]] = {}
    try:
        places = send_back(settings, replays, sent)
    except KeyboardInterrupt:
        raise CliError(
            interrupted_replay(topic, args.replay, replays, sent, listing), EXIT_INTERRUPTED
        ) from None
    for (partition, offset), replay, (at_p, at_o) in zip(args.replay, replays, places, strict=True):
        print(
            f"{topic}/{partition}/{offset}: sent back to {replay.topic} "
            f"(partition {at_p}, offset {at_o}) with {counted(len(replay.headers) - 1, 'header')} "
            "of its own"
        )
    # t189: an operator who fixed the cause (a sensor added to the grid, `stack reload`)
    # and sent a dead letter back was told where it went, and nothing of how to learn
    # whether the worker took it this time: the listing shows the old dead letter as before.
    print(
        f"a worker reading prefix {settings.topic_prefix} reads "
        f"{'it' if len(replays) == 1 else 'them'} again: one it refuses again is a new dead "
        f"letter whose ORIGIN is the offset above, listed by `{listing}` within seconds "
        "(none new: it was taken)"
    )
    return EXIT_OK


def interrupted_replay(
    topic: str,
    places: Sequence[tuple[int, int]],
    replays: Sequence[Replay],
    sent: dict[int, tuple[int, int]],
    listing: str,
) -> str:
    """What `deadletters --replay` interrupted while sending says (t219: Ctrl-C there said
    only "interrupted"): which replays Kafka acknowledged, and that the others' outcome is
    unknown and sending them again is safe: the worker drops a record it has taken already
    (a reading at its sensor's last time with the same value, a report, alert or command id
    it has seen: docs/events.md), or refuses it again as a new dead letter."""
    done = [
        f"{p}:{o} (to {replays[i].topic} partition {sent[i][0]}, offset {sent[i][1]})"
        for i, (p, o) in enumerate(places)
        if i in sent
    ]
    rest = [f"{p}:{o}" for i, (p, o) in enumerate(places) if i not in sent]
    said = f"sent back {', '.join(done)}" if done else "none known sent back"
    if not rest:
        return f"interrupted: {topic}: {said}: each was sent"
    one = len(rest) == 1
    again = " ".join(f"--replay {r}" for r in rest)
    return (
        f"interrupted: {topic}: {said}; whether {', '.join(rest)} {'was' if one else 'were'} "
        f"sent is unknown: sending {'it' if one else 'them'} again is safe, the worker drops "
        f"a record it has taken already: `{listing} {again}`"
    )
