"""The topic prefix a reading command (``deadletters``, ``report``, ``campaign
report``) reads: chosen (``--prefix``, the setting, or the running demo's), said, and
checked to hold events before anything is read."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from citybrain.cli.base import CliError, given_argv
from citybrain.cli.stack import _require_kafka
from playbooks.errors import did_you_mean
from streams.settings import Settings


def chosen_prefix(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The topic prefix a reading command (``deadletters``, ``campaign report``,
    ``report``) reads, and a note to print first ("" for none): --prefix, else
    CITYBRAIN_TOPIC_PREFIX; when neither was given and the last demo's worker still runs,
    the demo's (it writes under its own ``demo-…`` prefix). CliError for an empty
    --prefix, or one holding the examples' ``…``."""
    from citybrain.demo import read_demo_state

    if args.prefix is not None:
        if not args.prefix.strip():
            raise CliError("--prefix is empty: give a topic prefix, e.g. citybrain")
        if "…" in args.prefix:
            # t91: the README's `report --prefix demo-… …`, typed as printed, was "no
            # events under it", as a real prefix that never ran is.
            demo = read_demo_state(settings)
            prefix = demo.get("topic_prefix") if demo else None
            running = (
                f"the running demo's is {prefix} (--prefix left out reads it)"
                if isinstance(prefix, str) and prefix
                else "the demo prints its own (`demo-` and its start time)"
            )
            raise CliError(
                f"--prefix {args.prefix!r} is the placeholder the examples print: give a "
                f"topic prefix; {running}"
            )
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


def last_demo_hint(
    args: argparse.Namespace, settings: Settings, defaulted: bool, found: Sequence[str]
) -> str:
    """``; the last demo's prefix is demo-…, …: `COMMAND --prefix demo-…```: the command
    again with the last demo's prefix, when none was given (``defaulted``: no --prefix,
    no CITYBRAIN_TOPIC_PREFIX), the default one (``settings``') was read instead because
    the demo's worker no longer runs (crashed, interrupted, `stack down`), and Kafka
    still has that demo's topics (``found``); else "". t217: `campaign report` and
    `deadletters` after the demo's worker stopped said "no topic citybrain.steps …;
    prefixes there: demo-…", and not what to type."""
    from citybrain.commands import command_line
    from citybrain.demo import last_demo_prefix

    if not defaulted:
        return ""
    last = last_demo_prefix(settings)
    if last is None or last == settings.topic_prefix or last not in found:
        return ""
    return (
        f"; the last demo's prefix is {last} (read without --prefix only while its worker "
        f"runs): `{command_line(*given_argv(args), '--prefix', last)}`"
    )


def need_prefix(
    settings: Settings,
    option: str,
    roles: tuple[str, ...] = ("readings", "incidents", "alerts"),
    named: tuple[str, ...] = ("alerts",),
    given: str = "",
) -> None:
    """CliError (status 2) unless the topics of ``roles`` (those the command reads) under
    ``settings``' prefix hold messages, any of them; naming the prefix as ``given``
    (default: ``option`` and the prefix), the topics looked for (``named``) and the
    prefixes there are."""
    from citybrain.demo import messages_in, read_demo_state, topic_prefixes

    prefix = settings.topic_prefix
    given = given or f"{option} {prefix!r}"
    # Events in any of the topics read are events (trial 6: a prefix whose ingest had
    # written readings, read by no worker yet, has no alerts topic and was "no events").
    if messages_in(settings, roles):
        return
    found = topic_prefixes(settings)
    if prefix in found:
        # The other prefixes, as a prefix with no topics gets them (t51: the default
        # prefix, empty, advised "give the prefix of a replay that ran" naming none).
        others = [p for p in found if p != prefix]
        there = f"; {prefixes_there('other prefixes there', others, prefix)}" if others else ""
        raise CliError(
            f"{given}: no events under it: its topics "
            f"({', '.join(settings.topic(r) for r in roles)}) on Kafka at "
            f"{settings.kafka_bootstrap} are empty; replay to it first, or give the prefix "
            f"of a replay that ran (the demo prints its own){there}"
        )
    demo = read_demo_state(settings)
    latest = f"; the running demo's is {demo['topic_prefix']}" if demo else ""
    there = (
        prefixes_there("prefixes there", found, prefix)
        if found
        else "no citybrain topics are there at all"
    )
    raise CliError(
        f"{given}: no events under it: Kafka at {settings.kafka_bootstrap} has no "
        f"topic {' or '.join(settings.topic(r) for r in named)}; {there}{latest}"
    )


def prefixed_settings(
    args: argparse.Namespace, settings: Settings, roles: tuple[str, ...]
) -> Settings:
    """``settings`` under the prefix ``args`` chooses (``chosen_prefix``; its note said on
    stderr first), once Kafka answers and the topics of ``roles`` there hold events
    (``need_prefix``). Raises CliError (status 2 or 3) naming the prefix otherwise."""
    prefix, note = chosen_prefix(args, settings)
    given = named_prefix(args, settings, prefix, note)
    defaulted = args.prefix is None and "topic_prefix" not in settings.model_fields_set
    settings = settings.model_copy(update={"topic_prefix": prefix})
    if note:
        print(note, file=sys.stderr)
    _require_kafka(settings)
    try:
        need_prefix(settings, "--prefix", roles, roles, given)
    except CliError as exc:
        from citybrain.demo import topic_prefixes

        hint = last_demo_hint(args, settings, defaulted, topic_prefixes(settings))
        if not hint:
            raise
        raise CliError(exc.message + hint, exc.status) from None
    return settings
