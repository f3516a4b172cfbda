"""The ingests say where their dead letters are (t60's walk: a newcomer's misspelt MQTT
sensor showed only as ``dead_letters=1`` in the stats line, with no word of where it
went or why)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from citybrain.commands import command_line
from citybrain.ingest.publisher import PublisherStats
from citybrain.ingest.service import _wait, deadletters_hint
from streams.settings import Settings


class _Publisher:
    """Dead-letters one message before the first stats line, none before the second,
    two before the third, then fails (which ends ``_wait``)."""

    def __init__(self) -> None:
        self.stats = PublisherStats()
        self.pending = 0
        self.checks = 0
        self.plan = [1, 1, 3]
        self.failure_said = "Kafka refused a send"

    @property
    def failure(self) -> Exception | None:
        self.checks += 1
        if not self.plan:
            return RuntimeError("done")
        self.stats.dead_letters = self.plan.pop(0)
        return None


def test_the_stats_line_is_followed_by_the_command_that_shows_new_dead_letters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with caplog.at_level(logging.INFO):
            assert _wait(_Publisher(), 0.0, deadletters="CMD") == 1  # type: ignore[arg-type]
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    hints = [r.getMessage() for r in caplog.records if "dead-lettered since" in r.getMessage()]
    assert hints == [
        "ingest: 1 message dead-lettered since the last stats line; why each was refused: CMD",
        "ingest: 2 messages dead-lettered since the last stats line; why each was refused: CMD",
    ]


def test_the_command_reads_the_ingest_s_own_prefix(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="gw1")
    assert deadletters_hint(settings) == command_line("deadletters", "--prefix", "gw1")


def test_the_stop_line_names_the_command_after_its_dead_letters() -> None:
    """An ingest stopped before its first stats line said only "dead-lettered 1 message"."""
    from citybrain.ingest.service import stats_sentence

    stats = PublisherStats(readings=0, packs=0, dead_letters=1, max_pending=0)
    assert stats_sentence(stats, 0, "CMD").startswith(
        "sent 0 readings to Kafka in 0 packs, dead-lettered 1 message (why: CMD), skipped 0 "
    )
    none = PublisherStats(readings=1, packs=1, dead_letters=0, max_pending=1)
    assert "why" not in stats_sentence(none, None, "CMD")
