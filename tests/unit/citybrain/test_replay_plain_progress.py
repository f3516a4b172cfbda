"""t134: `citybrain replay FILE | tee log` showed no progress for 10 minutes (the bar draws
nothing when its output is no terminal): a plain line every few seconds instead."""

from __future__ import annotations

import io

from citybrain.cli.feeds import PLAIN_PROGRESS_SECONDS, PlainProgress


def test_a_plain_line_comes_every_few_seconds_of_sending_and_not_between() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = PlainProgress(10_000, out, clock=lambda: now[0])
    progress.advance(1_000)  # at once: no line yet
    now[0] += PLAIN_PROGRESS_SECONDS
    progress.advance(1_500)
    now[0] += 1.0
    progress.advance(500)  # a second later: still the one line
    now[0] += PLAIN_PROGRESS_SECONDS
    progress.advance(7_000)
    assert out.getvalue().splitlines() == [
        "replay: 2,500 of 10,000 events sent (25 %), 5 s",
        "replay: 10,000 of 10,000 events sent (100 %), 11 s",
    ]
