"""What 10,000 stored silences cost a worker, in process (t141).

    python -m bench.silences [--silences 10000] [--rounds 3] [--profile]

No Kafka: the stored documents are given to ``SilenceBook`` as the silences table holds
them (each with its own ``sensor_id`` matcher and the shared ``kind="pm25"``). Phases, each
from a fresh process state (the parse caches emptied, a new book):

- **first read**: the route agent's first reading after a start (``SilenceBook.read``),
  regex silences (``sensor_id=~"sensor-N(-.*)?"``) and equality ones;
- **one more**: the reading after one silence is added to the 10,000 read;
- **GET cold / GET warm**: ``GET /silences`` as its handler lists them (each stored
  document with ``active``, encoded with faust's JSON), before the route agent read the
  book and after. Since t141 the handler reads the book first (in steps) and keeps it;
  before, it parsed every silence the book had not read, and kept nothing.

Prints CPU seconds per phase (``time.process_time``, the best of ``--rounds``: on a
machine shared with other work wall time says more about the others); ``--profile``
prints cProfile's top functions of one cold GET."""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import faust.utils.json as faust_json

from playbooks import routing
from playbooks.routing import SilenceBook
from streams.api import _listed

NOW = 2_000_000_000.0


def stored(n: int, regex: bool) -> list[tuple[str, dict[str, Any]]]:
    def doc(i: int) -> dict[str, Any]:
        first = f'sensor_id=~"sensor-{i}(-.*)?"' if regex else f'sensor_id="sensor-{i}"'
        return {
            "id": f"s{i:05d}",
            "matchers": [first, 'kind="pm25"'],
            "starts_at": NOW - 10,
            "ends_at": NOW + 3600 + i,
            "author": "op",
            "reason": "maintenance",
        }

    return [(f"s{i:05d}", doc(i)) for i in range(n)]


def cold() -> None:
    """Forget what this process parsed, as a new worker has."""
    for name in ("_compiled", "_parsed_matcher", "_silence_entry"):
        kept = getattr(routing, name, None)
        if kept is not None:
            kept.cache_clear()


def listing(book: SilenceBook, table: list[tuple[str, dict[str, Any]]]) -> bytes:
    """GET /silences' body, as its handler makes it."""
    if "report" in inspect.signature(book.read).parameters:  # since t141
        book.read(table, NOW, 1, report=False)  # the table unchanged since version 1
    if "key" in inspect.signature(_listed).parameters:  # since t160: listed by its key
        items = [_listed(key, doc, NOW, partial(book.reading_of, key)) for key, doc in table]
    else:
        items = [_listed(doc, NOW, partial(book.reading_of, key)) for key, doc in table]  # type: ignore[arg-type, call-arg]
    body = faust_json.dumps({"silences": items})
    return body if isinstance(body, bytes) else body.encode()


def best(rounds: int, phase: Callable[[], float]) -> float:
    return min(phase() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silences", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n = args.silences

    def first_read(regex: bool) -> float:
        cold()
        table, book = stored(n, regex), SilenceBook()
        start = time.process_time()
        book.read(table, NOW, 1)
        return time.process_time() - start

    def one_more() -> float:
        cold()
        table, book = stored(n + 1, True), SilenceBook()
        book.read(table[:n], NOW, 1)
        start = time.process_time()
        book.read(table, NOW, 2)
        return time.process_time() - start

    def get(warm: bool) -> float:
        cold()
        table, book = stored(n, True), SilenceBook()
        if warm:
            book.read(table, NOW, 1)
        start = time.process_time()
        listing(book, table)
        return time.process_time() - start

    phases: dict[str, Callable[[], float]] = {
        "first read, regex silences": partial(first_read, True),
        "first read, equality silences": partial(first_read, False),
        "one more after the first read": one_more,
        "GET cold (before the route agent read)": partial(get, False),
        "GET warm": partial(get, True),
    }
    for name, phase in phases.items():
        print(f"{name}: {best(args.rounds, phase):.3f} CPU s ({n:,} silences)", flush=True)
    if args.profile:
        cold()
        table, book = stored(n, True), SilenceBook()
        profile = cProfile.Profile()
        profile.runcall(listing, book, table)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()
