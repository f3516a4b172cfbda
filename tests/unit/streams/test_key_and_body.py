"""t166: stored state whose key and body disagree, and keys too long to show whole.

A table entry that names its own key in its body (a muted alert's ``alert_id``, a
group's run id, an open episode's alert id) read back under another key (another tool's
changelog entry, a hand-written one) is refused at read-back, ``bad_shape``, said,
counted and audited under the key it is stored under; and no audit record built from a
stored key or text is ever larger than one Kafka message the producer sends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from playbooks.engine import Run
from streams.app import create_app
from streams.bursts import BurstTracker
from streams.context import Context, audit_record, burst_key
from streams.detection import alert_id_for, state_bytes
from streams.errors import MAX_SHOWN_KEY, shown_key
from streams.events import MAX_MESSAGE_BYTES, IncidentReport
from streams.settings import Settings
from streams.tables import BAD_SHAPE, ReadBack

ROUTE = {
    "id": "r",
    "playbook": "flash-flood",
    "group_wait": 0.0,
    "group_interval": 300.0,
    "repeat_interval": 3600.0,
}


def changelog_event(key: bytes, entry: bytes, table: Any) -> Any:
    """A changelog record as table recovery hands it over (as test_tables')."""
    message = SimpleNamespace(key=key, value=entry, partition=0)
    return SimpleNamespace(key=key, value=table.value_serializer.loads(entry), message=message)


def worker(tmp_path: Path) -> tuple[Any, Context]:
    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())
    table = app.tables["groups"]
    assert isinstance(table, ReadBack) and table.on_unreadable is not None
    ctx = table.on_unreadable.__self__  # type: ignore[attr-defined]
    assert isinstance(ctx, Context)
    return app, ctx


def a_group(key: str, generation: int = 2) -> dict[str, Any]:
    run = Run(f"{key}.{generation}", "al-1", "flash-flood", "c-1", "water_level", "water")
    run.created_at = run.updated_at = 1.7e9
    return {
        "generation": generation,
        "run": run.to_dict(),
        "seen": ["al-1"],
        "commands": [],
        "route": ROUTE,
    }


def a_muted(alert_id: str) -> dict[str, Any]:
    alert = {
        "alert_id": alert_id,
        "status": "firing",
        "kind": "water_level",
        "severity": "major",
        "grid_cell": "c-1",
        "labels": {"category": "flood"},
    }
    return {"alert": alert, "mute": "silenced", "by": "sil-1", "since": 1.7e9}


def a_sensor_state(sensor_id: str, started_at: float = 1.7e9) -> dict[str, Any]:
    episode = {
        "alert_id": alert_id_for(sensor_id, started_at),
        "started_at": started_at,
        "last_anomalous_at": started_at + 60,
        "peak_score": 0.9,
        "peak_value": 12.5,
        "quiet": 0,
    }
    return {"detector": {}, "last_ts": started_at + 60, "last_offset": 7, "episode": episode}


def an_open_burst_window() -> dict[str, Any]:
    tracker, state = BurstTracker(), None
    for n in range(12):
        report = IncidentReport(1.7e9 + 30 * n, f"r-{n}", "Noise", "loud", "app", "c-top")
        state, _, _ = tracker.observe_all(state, report, "police", position=(0, n))
        if state and state["episode"]:
            return dict(orjson.loads(orjson.dumps(state)))
    raise AssertionError("no episode opened")


def cases() -> list[tuple[str, bytes, bytes, bytes]]:
    """(table, its own key, another key, an entry that belongs under the first)."""
    window = an_open_burst_window()
    return [
        ("muted", b"al-1", b"al-2", orjson.dumps(a_muted("al-1"))),
        ("groups", b"grp-a", b"grp-b", orjson.dumps(a_group("grp-a"))),
        ("sensor-state", b"gauge-1", b"gauge-2", state_bytes(a_sensor_state("gauge-1"))),
        (
            "burst-windows",
            burst_key("c-top", "Noise"),
            burst_key("c-top", "Rats"),
            orjson.dumps(window),
        ),
        ("burst-state", b"c-top", b"c-other", orjson.dumps({"Noise": window})),
    ]


@pytest.mark.parametrize("case", range(5))
def test_an_entry_whose_body_names_another_key_is_refused_at_read_back(
    tmp_path: Path, case: int
) -> None:
    """Each fails on the code before t166: the entry read back under the other key and
    was obeyed under its body's id (a muted alert released as another alert, a run
    notified and escalated under an id ``runs ack`` looks up in another group, an
    episode's resolution resolving another sensor's or cell's alert)."""
    name, own, other, entry = cases()[case]
    app, ctx = worker(tmp_path)
    table = app.tables[name]
    table.apply_changelog_batch(
        [changelog_event(own, entry, table), changelog_event(other, entry, table)]
    )
    assert own in table.data and other not in table.data
    [said] = ctx._unreadable_audit
    assert (said["table"], said["key"], said["reason"]) == (name, other.decode(), BAD_SHAPE)
    assert "its own" in said["detail"] and f"({len(entry)} bytes)" in said["detail"]
    counted = ctx.metrics.state_unreadable.labels(name, BAD_SHAPE)._value.get()
    assert counted == 1


def test_a_firing_alert_under_a_key_no_alert_id_has_is_refused_at_read_back(
    tmp_path: Path,
) -> None:
    """Fails on the code before t166: a firing entry under a key past the alerts door's
    256 characters (another tool's) was read back, and inhibited alerts as a source
    whose id no muted entry may hold."""
    app, ctx = worker(tmp_path)
    table = app.tables["firing"]
    labels = orjson.dumps({"kind": "water_level"})
    edge, long = b"a" * 256, b"a" * 257
    table.apply_changelog_batch(
        [changelog_event(edge, labels, table), changelog_event(long, labels, table)]
    )
    assert edge in table.data and long not in table.data
    [said] = ctx._unreadable_audit
    assert said["table"] == "firing" and "257 characters, no alert id" in said["detail"]


def test_a_group_under_a_key_no_group_has_is_refused_at_read_back(tmp_path: Path) -> None:
    """Fails on the code before t166: a group under a key of 300 characters, its run id
    made of it, read back (every group key is "grp-" and 16 hex digits); one of 1 MB
    could not be written again nor its steps sent, nor its run named in a request."""
    app, ctx = worker(tmp_path)
    table = app.tables["groups"]
    edge, long = "g" * 256, "g" * 300
    table.apply_changelog_batch(
        [
            changelog_event(edge.encode(), orjson.dumps(a_group(edge)), table),
            changelog_event(long.encode(), orjson.dumps(a_group(long)), table),
        ]
    )
    assert edge.encode() in table.data and long.encode() not in table.data
    [said] = ctx._unreadable_audit
    assert "300 characters, no group key" in said["detail"]


def test_a_superseded_run_of_another_group_is_refused_at_read_back(tmp_path: Path) -> None:
    app, ctx = worker(tmp_path)
    table = app.tables["groups"]
    group = a_group("grp-a")
    old = {**a_group("grp-a", 1)["run"], "status": "resolved"}
    kept = {"run": old, "at": 1.7e9, "by": "grp-a.2"}
    good = orjson.dumps({**group, "superseded": [kept]})
    stray = {**kept, "run": {**old, "run_id": "grp-z.1"}}
    bad = orjson.dumps({**group, "superseded": [stray]})
    table.apply_changelog_batch(
        [changelog_event(b"grp-a", good, table), changelog_event(b"grp-a", bad, table)]
    )
    assert b"grp-a" not in table.data
    [said] = ctx._unreadable_audit
    assert "superseded run's id 'grp-z.1'" in said["detail"]


def test_a_key_of_a_megabyte_is_shown_cut_in_its_audit_record(tmp_path: Path) -> None:
    """Fails on the code before t166: the 1 MB key went whole into ``state_unreadable``,
    larger than the producer sends (1,048,576 bytes), and the failed audit send cost
    the alert or batch in hand when it was reported."""
    app, ctx = worker(tmp_path)
    table = app.tables["groups"]
    key = b"grp-" + b"k" * 1_048_000
    table.apply_changelog_batch([changelog_event(key, b"[1]", table)])
    [said] = ctx._unreadable_audit
    assert said["key"] == shown_key(key) and said["key"].startswith("grp-kkk")
    assert f"({len(key):,} characters, sha256 " in said["key"]
    audit_key, value = ctx.audit_send(said)
    assert len(audit_key) + len(value) < 2_000
    # Two long keys with one start are told apart by their digests.
    assert shown_key(key + b"x") != shown_key(key)
    assert shown_key("s" * MAX_SHOWN_KEY) == "s" * MAX_SHOWN_KEY


def test_an_unreadable_silence_of_a_megabyte_key_is_audited_cut(tmp_path: Path) -> None:
    """Fails on the code before t166: ``silence_unreadable`` held the whole key, and the
    route agent's send of it failed the alert being routed, at every alert."""
    _, ctx = worker(tmp_path)
    key = "s" * 1_048_000
    ctx.silences.data[key.encode()] = {"id": "another", "matchers": ["a=b"]}
    sent: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audit_key, value = ctx.audit_send(record)
        assert len(audit_key) + len(value) <= MAX_MESSAGE_BYTES
        sent.append(record)

    ctx.audit = audit  # type: ignore[method-assign]
    asyncio.run(ctx.read_silences(1.7e9))
    [said] = sent
    assert said["action"] == "silence_unreadable"
    assert said["silence_id"] == shown_key(key) and len(said["silence_id"]) < 200
    assert len(said["detail"]) <= 1_100


def test_no_audit_record_is_larger_than_the_producer_sends() -> None:
    """Any record built from stored or incoming text: its long texts cut, said by
    ``cut``; one of many short texts kept to its id, action, time and actor."""
    long = {"action": "x", "run_id": "r" * 2_000_000, "detail": "d" * 2_000_000, "at": 1.0}
    key, value = audit_record(long)
    doc = orjson.loads(value)
    assert len(key) + len(value) <= MAX_MESSAGE_BYTES and doc["cut"] is True
    assert key.decode().startswith("rrr") and "2,000,000 characters" in key.decode()
    assert doc["detail"].endswith("(2,000,000 characters, cut)")
    many = {"action": "x", "id": "i", "at": 1.0, "actor": "a", "data": ["z" * 900] * 2_000}
    key, value = audit_record(many)
    doc = orjson.loads(value)
    assert len(value) < 1_000 and doc["cut"] is True and doc["id"] == "i"
    assert "too large to send" in doc["detail"]
    small = {"action": "x", "alert_id": "al-1"}
    assert audit_record(small) == (b"al-1", orjson.dumps({"schema": "audit/1", **small}))
