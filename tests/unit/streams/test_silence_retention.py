"""Silences are forgotten SILENCE_RETENTION (120 h, Alertmanager's --data.retention)
after they ended: each ended silence was kept for good by every worker (a global table)
and listed by ``silences list``; only those not yet ended are bounded (MAX_SILENCES). The
worker owning a silence key's ``alerts`` partition tombstones it on the changelog, from
which every worker forgets it. No broker: the producer's sends are recorded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.alerting import SILENCE_RETENTION, Alerting
from streams.context import Context
from streams.metrics import SILENCES_FORGOTTEN, Metrics
from streams.partitioning import key_partition
from streams.settings import Settings
from tests.unit.streams.test_api_silences import count_parses


def silence(silence_id: str, ends: Any) -> dict[str, Any]:
    return {
        "id": silence_id,
        "matchers": ['category="Fireworks"'],
        "starts_at": 0.0,
        "ends_at": ends,
        "author": "op",
        "reason": "works",
    }


def test_a_silence_ended_past_the_retention_is_tombstoned_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-silences", store="memory://", datadir=str(tmp_path))
    registry = CollectorRegistry()
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(registry))
    stage = Alerting(ctx)
    sent: list[tuple[str, bytes, Any, int]] = []

    async def send(topic: str, key: bytes, value: Any, partition: int, *a: Any) -> None:
        sent.append((topic, key, value, partition))

    app.producer = SimpleNamespace(send=send)  # type: ignore[assignment]
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    now = time.time()
    table = ctx.silences.data
    n = settings.partitions
    # Many ended long ago, on both partitions; one ended within the retention; one in
    # force; one whose end no date can show (unreadable: kept, listed as such).
    for i in range(2_000):
        table[f"sil-old-{i}".encode()] = silence(f"sil-old-{i}", now - SILENCE_RETENTION - 60)
    table[b"sil-recent"] = silence("sil-recent", now - SILENCE_RETENTION + 3600)
    table[b"sil-on"] = silence("sil-on", now + 3600)
    table[b"sil-odd"] = silence("sil-odd", "tomorrow")
    owned = {0}
    monkeypatch.setattr(
        app.consumer, "assignment", lambda: {TP(settings.topic("alerts"), p) for p in owned}
    )
    forgotten = asyncio.run(stage.forget_ended_silences())
    mine = [f"sil-old-{i}".encode() for i in range(2_000)]
    mine = [k for k in mine if key_partition(k, n) == 0]
    assert forgotten == len(mine) and 0 < len(mine) < 2_000
    assert sorted(key for _, key, _, _ in sent) == sorted(mine)
    assert all(
        value is None and topic.endswith("silences-changelog") for topic, _, value, _ in sent
    )
    assert all(partition == key_partition(key, n) for _, key, _, partition in sent)
    # The other partition's owner forgets the rest.
    owned = {1}
    asyncio.run(stage.forget_ended_silences())
    assert set(table) == {b"sil-recent", b"sil-on", b"sil-odd"}
    assert registry.get_sample_value(SILENCES_FORGOTTEN) == 2_000


def test_the_silences_are_read_ahead_of_the_first_alert_once_the_table_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t141: the worker's first read of its silences (10,000: seconds of parsing) began
    only at its first alert, which waited for it; now each mute-check tick reads the
    table ahead (nothing before table recovery completes), so the first alert and a
    listing find the book read, and an unreadable silence is reported then, once."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-silences-ahead", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    stage = Alerting(ctx)
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(ctx, "audit", audit)
    now = time.time()
    for i in range(300):
        ctx.silences.data[f"s{i}".encode()] = silence(f"s{i}", now + 3600)
    ctx.silences.data[b"bad"] = {**silence("bad", now + 3600), "matchers": ['kind=~"("']}
    parsed = count_parses(monkeypatch)
    recovered = [False]
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: recovered[0])
    assert asyncio.run(stage.read_silences_ahead()) is False
    assert parsed[0] == 0 and audited == []
    recovered[0] = True
    assert asyncio.run(stage.read_silences_ahead()) is True
    assert parsed[0] == 301  # before: none until the first alert, which waited for them
    assert [(r["action"], r["silence_id"]) for r in audited] == [("silence_unreadable", "bad")]
    silences = asyncio.run(stage._active_silences(time.time()))  # the first alert's
    assert len(silences) == 300 and parsed[0] == 301 and len(audited) == 1
    asyncio.run(stage.read_silences_ahead())  # the table unchanged: nothing more
    assert parsed[0] == 301 and len(audited) == 1
