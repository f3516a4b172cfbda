"""The burst sweep (``Ingest.sweep_bursts``): event time ends windows that hear no report
of their own, and one odd window costs only itself, never the timer (a timer's exception
would stop the worker, and its restart would meet the same window)."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.alerting import checked_alert
from streams.bursts import BurstTracker
from streams.context import Context, burst_key
from streams.events import IncidentReport, format_ts
from streams.ingest import Ingest
from streams.metrics import Metrics
from streams.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
T0 = 1_780_000_000.0


@pytest.fixture
def ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Ingest, list[Any], list[Any]]:
    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("t-sweep", store="memory://", broker="kafka://127.0.0.1:1")
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    stage = Ingest(ctx)
    sent: list[Any] = []
    audited: list[Any] = []

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        sent.extend(items)

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    async def nothing(*args: Any) -> None:
        return None

    monkeypatch.setattr(ctx, "send_all", send_all)
    monkeypatch.setattr(ctx, "audit", audit)
    monkeypatch.setattr(ctx.burst_windows, "_send", nothing)
    app.producer = SimpleNamespace(flush=nothing)  # type: ignore[method-assign,assignment]
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    owned = set(range(settings.partitions))  # a test may take partitions away
    monkeypatch.setattr(ctx, "owned_partitions", lambda role: owned)
    return stage, sent, audited


def window(tracker: BurstTracker, cell: str, n: int) -> dict[str, Any]:
    state: dict[str, Any] | None = None
    for i in range(n):
        report = IncidentReport(T0 + 30 * i, f"{cell}-{i}", "Noise", "loud", "app", cell)
        state, _, _ = tracker.observe_all(state, report, "police")
    assert state is not None
    return state


def test_one_odd_window_costs_only_itself(
    ingest: tuple[Ingest, list[Any], list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    stage, sent, audited = ingest
    tracker = stage.bursts
    burst = window(tracker, "c-top", 8)  # an open episode
    assert burst["episode"] is not None
    lone = window(tracker, "c-mill", 1)
    odd = {**window(tracker, "c-bridge", 1), "counts": "not a list"}
    gone = window(tracker, "c-gone", 8)  # a cell a grid change dropped
    stage.ctx.burst_windows.stage_many(
        {
            burst_key("c-top", "Noise"): burst,
            burst_key("c-mill", "Noise"): lone,
            burst_key("c-bridge", "Noise"): odd,
            burst_key("c-gone", "Noise"): gone,
        }
    )
    stage.event_time = T0 + 3 * 3600
    with caplog.at_level(logging.WARNING, logger="streams.ingest"):
        changed = asyncio.run(stage.sweep_bursts())
    assert changed == 2
    assert [(doc["status"], doc["grid_cell"]) for _, doc in sent] == [("resolved", "c-top")]
    assert [r["data"]["report_ids"] for r in audited] == [["c-mill-0"]]
    data = stage.ctx.burst_windows.data
    assert data[burst_key("c-top", "Noise")]["episode"] is None
    assert data[burst_key("c-bridge", "Noise")] is odd  # left as it was, and said
    assert data[burst_key("c-gone", "Noise")] is gone
    assert "the window of 'Noise' at c-bridge was left as it is" in caplog.text
    # Swept again at the same event time: nothing more to end or to say.
    sent.clear()
    with caplog.at_level(logging.WARNING, logger="streams.ingest"):
        assert asyncio.run(stage.sweep_bursts()) == 0 and sent == []
    # Said once, not at every sweep (a WARNING per window per sweep before), and counted
    # at each pass, so a dashboard or rule sees it for as long as it fails.
    said = [r for r in caplog.records if "at c-bridge was left as it is" in r.getMessage()]
    assert len(said) == 1
    assert 'citybrain_loop_items_skipped_total{loop="burst_sweep"}' in said[0].getMessage()
    metrics = stage.metrics
    assert metrics.loop_items_skipped.labels("burst_sweep")._value.get() == 2
    assert metrics.loop_items_failing.labels("burst_sweep")._value.get() == 1


def test_nothing_is_swept_before_a_report_is_read(
    ingest: tuple[Ingest, list[Any], list[Any]],
) -> None:
    stage, sent, _ = ingest
    assert math.isinf(stage.event_time)
    assert asyncio.run(stage.sweep_bursts()) == 0 and sent == []


def late_window(tracker: BurstTracker, cell: str, ts: float) -> dict[str, Any]:
    report = IncidentReport(ts, f"{cell}-late", "Noise", "loud", "app", cell)
    state, _, _ = tracker.observe_all(None, report, "police")
    return state


@pytest.mark.parametrize("kept_ts", [True, False])
def test_a_restarted_worker_takes_its_event_time_back_from_its_windows(
    ingest: tuple[Ingest, list[Any], list[Any]], kept_ts: bool
) -> None:
    """t75: a worker restarted (or given the cells in a rebalance) after the last report
    of a replay or a quiet night swept nothing, as its event time was only in memory:
    14 burst alerts of the nyc311 slice stayed firing for good (listed by the alerts
    API, inhibiting, in the firing table) where a worker never stopped resolved them.
    It now takes it back from the newest report its recovered windows hold (``ts``, or
    a window written before it was kept: its newest sub-bucket's start)."""
    stage, sent, _ = ingest
    newest = T0 + 3 * 3600 + 17
    mill = late_window(stage.bursts, "c-mill", newest)
    if not kept_ts:
        del mill["ts"]
    stage.ctx.burst_windows.stage_many(
        {
            burst_key("c-top", "Noise"): window(stage.bursts, "c-top", 8),  # open episode
            burst_key("c-mill", "Noise"): mill,
        }
    )
    assert math.isinf(stage.event_time)  # the restart: nothing read since
    assert asyncio.run(stage.sweep_bursts()) == 1
    [(_, ended)] = sent
    assert (ended["status"], ended["grid_cell"]) == ("resolved", "c-top")
    slot_start = newest // stage.bursts.step * stage.bursts.step
    assert stage.event_time == (newest if kept_ts else slot_start)


def test_a_report_that_cannot_be_folded_costs_only_itself(
    ingest: tuple[Ingest, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exception in one message may cost another: a window that raises (here, written
    by something else in an odd shape) dead-letters its report alone; the batch's other
    reports are folded and the odd window is kept as it was. Before, the batch failed as
    a whole and the worker stopped, to meet the same batch at every restart."""
    stage, sent, _ = ingest
    dead: list[tuple[bytes, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str, *a: Any) -> None:
        dead.append((event.value, code, message))

    monkeypatch.setattr(stage.ctx, "dead_letter", dead_letter)
    odd = {**window(stage.bursts, "c-top", 1), "counts": "not a list"}
    stage.ctx.burst_windows.stage_many({burst_key("c-top", "Noise"): odd})
    reports = [
        IncidentReport(T0 + 600, "odd-1", "Noise", "loud", "app", "c-top"),
        *[
            IncidentReport(T0 + 600 + i, f"ok-{i}", "Noise", "loud", "app", "c-mill")
            for i in range(8)
        ],
    ]
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=home(stage, r), offset=i)
        for i, r in enumerate(reports)
    ]
    asyncio.run(stage.on_incidents(messages))  # type: ignore[arg-type]
    assert [(value, code) for value, code, _ in dead] == [
        (reports[0].to_json(), "processing_error")
    ]
    assert dead[0][2].startswith("TypeError")
    assert stage.ctx.burst_windows.data[burst_key("c-top", "Noise")] is odd
    firing = [doc for _, doc in sent if doc.get("status") == "firing" and not doc["follow_up"]]
    assert [doc["grid_cell"] for doc in firing] == ["c-mill"]


def test_a_burst_resolution_never_ends_before_its_episode_started(
    ingest: tuple[Ingest, list[Any], list[Any]],
) -> None:
    """t139: Alertmanager's API refuses an alert whose ``endsAt`` is before its
    ``startsAt``, and so does the alerts agent; a burst's refused resolution left its run
    open for ever. A window written under 30-minute windows and read by a worker restarted
    with CITYBRAIN_BURST_BUCKET_SECONDS=600 counts its slots in other steps: a report 20
    minutes older than the episode was taken, found the window thinned out and resolved
    the burst at its own time, before the episode started. It ends at the start now. (A
    window stored with its step, or its newest report's time, is converted since t148:
    this one, written before either was kept, is still read in the new steps.)"""
    stage, sent, _ = ingest
    key = burst_key("c-top", "Noise")
    stored = window(stage.bursts, "c-top", 8)
    del stored["step"], stored["ts"]
    stage.ctx.burst_windows.stage_many({key: stored})
    start = stage.ctx.burst_windows.data[key]["episode"]["start"]
    stage.bursts = BurstTracker(bucket_seconds=600.0)  # the restarted worker's setting
    older = IncidentReport(start - 1200, "older-1", "Noise", "loud", "app", "c-top")
    message = SimpleNamespace(
        value=older.to_json(), topic="incidents", partition=home(stage, older), offset=99
    )
    asyncio.run(stage.on_incidents([message]))  # type: ignore[list-item]
    [resolved] = [doc for _, doc in sent if doc.get("status") == "resolved"]
    assert resolved["started_at"] == format_ts(start)
    assert resolved["ended_at"] == resolved["started_at"]
    checked_alert(resolved)  # the alerts agent takes it, as Alertmanager's API would


def home(stage: Ingest, report: IncidentReport) -> int:
    """The incidents partition a report belongs on: its cell's."""
    return stage.ctx.burst_windows.partition_for_key(burst_key(report.grid_cell, report.category))


def test_a_report_on_another_partition_than_its_cells_is_refused_alone(
    ingest: tuple[Ingest, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 19: a report keyed by something other than its grid_cell (a gateway keying
    by report_id) was counted by whichever worker read its partition, in a copy of its
    cell's window that worker does not own: with two workers a burst was split between
    them and never alerted. Refused wrong_partition, as a reading off its sensor's is."""
    stage, sent, _ = ingest
    dead: list[tuple[bytes, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str, *a: Any) -> None:
        dead.append((event.value, code, message))

    monkeypatch.setattr(stage.ctx, "dead_letter", dead_letter)
    reports = [IncidentReport(T0 + i, f"r-{i}", "Noise", "loud", "app", "c-top") for i in range(9)]
    right = home(stage, reports[0])
    wrong = 1 - right  # of the fixture's 2
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=p, offset=i)
        for i, (r, p) in enumerate(zip(reports, [wrong] + [right] * 8, strict=True))
    ]
    asyncio.run(stage.on_incidents(messages))  # type: ignore[arg-type]
    assert dead == [
        (
            reports[0].to_json(),
            "wrong_partition",
            f"field \"grid_cell\" is 'c-top': the cell's reports belong on partition {right}, "
            f"this message is on {wrong} (it has no key, so its producer chose the partition: "
            "key it by 'c-top')",
        )
    ]
    firing = [doc for _, doc in sent if doc.get("status") == "firing"]
    assert {r["report_id"] for doc in firing for r in doc["reports"]} == {
        f"r-{i}" for i in range(1, 9)
    }  # the other eight: the burst and its follow-ups


def test_a_window_whose_cell_moved_during_the_sweep_is_not_written_back(
    ingest: tuple[Ingest, list[Any], list[Any]],
) -> None:
    """A rebalance during the sweep's sends may move a cell away (its window forgotten
    by the assignment); writing it back would leave this worker sweeping it again."""
    stage, _, _ = ingest
    key = burst_key("c-top", "Noise")
    stage.ctx.burst_windows.stage_many({key: window(stage.bursts, "c-top", 8)})
    stage.event_time = T0 + 3 * 3600
    moved = stage.ctx.burst_windows.partition_for_key(key)

    async def sends_then_moves(topic: Any, items: list[tuple[str, Any]]) -> None:
        stage.ctx.owned_partitions("incidents").discard(moved)
        stage.ctx.burst_windows.forget_partitions({moved})

    stage.ctx.send_all = sends_then_moves  # type: ignore[method-assign]
    asyncio.run(stage.sweep_bursts())
    assert key not in stage.ctx.burst_windows.data


def test_the_sweep_forgets_windows_quiet_for_two_days_and_says_how_many(
    ingest: tuple[Ingest, list[Any], list[Any]],
) -> None:
    """t80: burst windows were kept for good, one per cell and category ever sent. The
    sweep drops those ``BurstTracker.forgettable`` allows, with a tombstone on the
    changelog (so recovery forgets them too), counts them and sets the windows gauge;
    a burst open until this sweep resolves first (its alert sent), then goes; a window
    with a recent report stays."""
    stage, sent, audited = ingest
    tombstones: list[tuple[str, bytes, Any]] = []

    async def send(topic: str, key: bytes, value: Any, *args: Any) -> None:
        tombstones.append((topic, key, value))

    async def nothing() -> None:
        return None

    stage.ctx.app.producer = SimpleNamespace(flush=nothing, send=send)  # type: ignore[assignment]
    quiet = {burst_key("c-mill", f"cat-{i}"): window(stage.bursts, "c-mill", 1) for i in range(3)}
    quiet[burst_key("c-top", "Noise")] = window(stage.bursts, "c-top", 8)  # an open episode
    now = T0 + 3 * 86_400
    recent = late_window(stage.bursts, "c-bridge", now - 3600)
    stage.ctx.burst_windows.stage_many({**quiet, burst_key("c-bridge", "Noise"): recent})
    stage.event_time = now
    assert asyncio.run(stage.sweep_bursts()) == 5  # four forgotten, c-bridge's said
    assert set(stage.ctx.burst_windows.data) == {burst_key("c-bridge", "Noise")}
    assert sorted(key for _, key, value in tombstones if value is None) == sorted(quiet)
    assert [(doc["status"], doc["grid_cell"]) for _, doc in sent] == [("resolved", "c-top")]
    # Each lone report was said unalerted before its window went.
    assert sorted(r["data"]["grid_cell"] for r in audited) == ["c-bridge"] + ["c-mill"] * 3
    metrics = stage.ctx.metrics
    assert metrics.burst_windows_forgotten._value.get() == 4
    assert metrics.burst_windows._value.get() == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"ts": 1e12},  # its newest report in the year 33658
        {"ts": 1e300},
        {"slot": 10**15},  # a window of the layout before ``ts``: its slot says the time
    ],
)
def test_one_window_claiming_a_report_from_the_far_future_does_not_move_the_sweeps_clock(
    ingest: tuple[Ingest, list[Any], list[Any]],
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any],
) -> None:
    """The sweep's event time is the newest report of any window: one window (a damaged
    changelog entry: no report past the clock's skew is accepted) claiming one in the
    far future set every window's clock there, and every episode's resolution failed to
    be formatted (``ended_at`` past the year 9999) at every sweep: no burst of any cell
    resolved again. It now costs only itself: left as it is, said once, counted."""
    stage, sent, _ = ingest
    burst = window(stage.bursts, "c-top", 8)
    odd = window(stage.bursts, "c-mill", 1)
    if "slot" in claims:
        odd.pop("ts")
    odd.update(claims)
    stage.ctx.burst_windows.stage_many(
        {burst_key("c-top", "Noise"): burst, burst_key("c-mill", "Noise"): odd}
    )
    stage.event_time = T0 + 3 * 3600
    with caplog.at_level(logging.WARNING, logger="streams.ingest"):
        assert asyncio.run(stage.sweep_bursts()) == 1
        assert asyncio.run(stage.sweep_bursts()) == 0
    assert [(doc["status"], doc["grid_cell"]) for _, doc in sent] == [("resolved", "c-top")]
    assert sent[0][1]["ended_at"].startswith("2026-")
    assert stage.event_time == T0 + 3 * 3600
    assert stage.ctx.burst_windows.data[burst_key("c-mill", "Noise")] is odd
    said = [r.getMessage() for r in caplog.records if "at c-mill" in r.getMessage()]
    assert len(said) == 1 and "ahead of the clock" in said[0], said
    metrics = stage.metrics
    assert metrics.loop_items_skipped.labels("burst_sweep")._value.get() == 2
    assert metrics.loop_items_failing.labels("burst_sweep")._value.get() == 1


def test_the_no_data_sweep_leaves_out_a_sensor_state_from_the_far_future_said_once(
    ingest: tuple[Ingest, list[Any], list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """The no-data sweep's sibling of the burst clock's fault: a sensor state whose last
    reading is in the far future (damaged) set its kind's clock on its partition there,
    and gauge-2, in an episode and a minute behind gauge-1, was resolved for no data.
    Now the state is left out of the clock, said once and counted at each sweep."""
    stage, sent, _ = ingest
    data = stage.ctx.sensor_state.data
    data[b"gauge-1"] = {"detector": None, "last_ts": 1e12, "episode": None}
    data[b"gauge-2"] = {"detector": None, "last_ts": T0, "episode": {"alert_id": "al-2"}}
    stage._partitions = 1  # both sensors on one partition: one clock per kind
    with caplog.at_level(logging.WARNING, logger="streams.ingest"):
        assert asyncio.run(stage.sweep_silent_sensors()) == 0
        assert asyncio.run(stage.sweep_silent_sensors()) == 0
    assert sent == [] and data[b"gauge-2"]["episode"] == {"alert_id": "al-2"}
    said = [r.getMessage() for r in caplog.records if "no-data sweep" in r.getMessage()]
    assert len(said) == 1 and "sensor 'gauge-1'" in said[0], said
    metrics = stage.metrics
    assert metrics.loop_items_skipped.labels("no_data_sweep")._value.get() == 2
    assert metrics.loop_items_failing.labels("no_data_sweep")._value.get() == 1


def held_window(tracker: BurstTracker, n: int, keep_step: bool) -> dict[str, Any]:
    """``n`` reports of c-top's Noise a minute apart, below the threshold (held), as a
    worker with ``tracker``'s setting stored them; without ``step`` as one before t148."""
    state = window(tracker, "c-top", n)
    assert state["episode"] is None and len(state["held"]) == n
    if not keep_step:
        del state["step"]
    return state


@pytest.mark.parametrize("keep_step", [True, False], ids=["step stored", "before t148"])
def test_a_window_stored_under_another_bucket_setting_is_read_in_this_workers_buckets(
    ingest: tuple[Ingest, list[Any], list[Any]], keep_step: bool
) -> None:
    """t148: a burst window counts its slots in sub-buckets of the setting of the worker
    that wrote it (CITYBRAIN_BURST_BUCKET_SECONDS / 6). A worker restarted with a longer
    window (3600 s) read them as its own: every report of the cell and category was late
    (its slot far below the stored one) for hours, and 4 held reports and a fifth made no
    burst. One restarted with a shorter window (600 s) saw the window's slots far behind:
    a re-sent report was no duplicate, counted again, and the held reports were said as
    in no alert at once. Stored with its step (or, written before, its step taken from its
    newest report's time), the window is converted."""
    stage, sent, audited = ingest
    key = burst_key("c-top", "Noise")
    stage.ctx.burst_windows.stage_many({key: held_window(stage.bursts, 4, keep_step)})
    stage.bursts = BurstTracker(bucket_seconds=3600.0)  # the restarted worker's setting
    fifth = IncidentReport(T0 + 30 * 4, "c-top-4", "Noise", "loud", "app", "c-top")
    message = SimpleNamespace(
        value=fifth.to_json(), topic="incidents", partition=home(stage, fifth), offset=99
    )
    asyncio.run(stage.on_incidents([message]))  # type: ignore[list-item]
    assert stage.metrics.incidents_late.labels("app")._value.get() == 0
    [burst] = [doc for _, doc in sent if doc.get("status") == "firing"]
    assert sorted(r["report_id"] for r in burst["reports"]) == [f"c-top-{i}" for i in range(5)]
    assert stage.ctx.burst_windows.data[key]["step"] == 600.0

    # The other way: a shorter window, and a re-send of a report of the stored window.
    sent.clear()
    stage.bursts = BurstTracker()
    stage.ctx.burst_windows.stage_many({key: held_window(stage.bursts, 4, keep_step)})
    stage.bursts = BurstTracker(bucket_seconds=600.0)
    again = IncidentReport(T0 + 30 * 3, "c-top-3", "Noise", "loud", "app", "c-top")
    message = SimpleNamespace(
        value=again.to_json(), topic="incidents", partition=home(stage, again), offset=100
    )
    asyncio.run(stage.on_incidents([message]))  # type: ignore[list-item]
    assert stage.metrics.incidents_duplicate.labels("app")._value.get() == 1
    assert stage.metrics.incidents_unalerted.labels("app")._value.get() == 0
    assert not [a for a in audited if a["action"] == "reports_not_alerted"]
    window_now = stage.ctx.burst_windows.data[key]
    assert (window_now["step"], len(window_now["held"])) == (100.0, 4)


def test_a_late_report_offered_to_no_group_is_said_as_in_no_alert(
    ingest: tuple[Ingest, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t148: a late report (older than its burst window, never in it) is said as in no
    alert by the response stage when its group's run refuses or never takes its offer;
    one offered to no group (every route it reaches keeps a group per alert, which a
    report in no alert cannot join) was said by nobody."""
    stage, sent, audited = ingest
    key = burst_key("c-top", "Noise")
    stage.ctx.burst_windows.stage_many({key: held_window(stage.bursts, 1, True)})
    monkeypatch.setattr(stage, "_offer", lambda *a: [])  # a route with group_by ['...']
    late = IncidentReport(T0 - 7200, "late-1", "Noise", "loud", "app", "c-top")
    message = SimpleNamespace(
        value=late.to_json(), topic="incidents", partition=home(stage, late), offset=7
    )
    asyncio.run(stage.on_incidents([message]))  # type: ignore[list-item]
    assert stage.metrics.incidents_late.labels("app")._value.get() == 1
    assert stage.metrics.incidents_unalerted.labels("app")._value.get() == 1
    [record] = [a for a in audited if a["action"] == "reports_not_alerted"]
    assert record["data"]["report_ids"] == ["late-1"]
    assert sent == []


class Killed(Exception):
    """The worker's process ends here (SIGKILL)."""


@pytest.mark.parametrize("where", ["batch", "sweep"])
def test_a_kill_before_the_windows_store_says_each_unalerted_report_again_under_one_id(
    ingest: tuple[Ingest, list[Any], list[Any]], where: str
) -> None:
    """t152: reports that left their window in no alert were counted in
    citybrain_incidents_unalerted_total and audited (with no id) before the window's
    store: a worker killed in between, restarted from the stored window, made the batch
    (or the sweep) again, said them again under nothing a reader could dedupe by, and its
    new counter counted them again on top of the dead one's. Now the record's ``id`` is
    made of its cell, category and report ids (the same when made again), and they are
    counted once the window is stored: once over both processes."""
    stage, _, audited = ingest
    key = burst_key("c-top", "Noise")
    stored = held_window(stage.bursts, 1, True)
    stage.ctx.burst_windows.stage_many({key: stored})
    counters: list[Metrics] = []

    async def killed(items: Any) -> None:
        raise Killed

    async def once() -> None:
        if where == "sweep":
            stage.event_time = T0 + 7200.0  # the window's report long past it
            await stage.sweep_bursts()
        else:
            late = IncidentReport(T0 + 7200, "c-top-new", "Noise", "loud", "app", "c-top")
            message = SimpleNamespace(
                value=late.to_json(), topic="incidents", partition=home(stage, late), offset=7
            )
            await stage.on_incidents([message])  # type: ignore[list-item]

    for kill in (True, False):  # killed at the store, then the restarted worker
        stage.ctx.burst_windows.data.clear()
        stage.ctx.burst_windows.stage_many({key: stored})  # as on the changelog
        stage.metrics = stage.ctx.metrics = Metrics.create(CollectorRegistry())
        counters.append(stage.metrics)
        if kill:
            kept = stage.ctx.burst_windows.set_many
            stage.ctx.burst_windows.set_many = killed  # type: ignore[method-assign,assignment]
            with pytest.raises(Killed):
                asyncio.run(once())
            stage.ctx.burst_windows.set_many = kept  # type: ignore[method-assign]
        else:
            asyncio.run(once())
    records = [a for a in audited if a["action"] == "reports_not_alerted"]
    assert [r["data"]["report_ids"] for r in records] == [["c-top-0"], ["c-top-0"]]
    assert records[0]["id"] == records[1]["id"]
    assert sum(m.incidents_unalerted.labels("app")._value.get() for m in counters) == 1


def test_a_fault_counting_a_burst_or_the_reports_costs_no_batch(
    ingest: tuple[Ingest, list[Any], list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """t205: an incidents batch counted the bursts it opened outside the per-report guard
    (before its alerts were sent and its windows stored) and its reports after the
    windows were stored: a fault in either failed the whole batch and stopped the
    worker, its replacement reading the batch again. Fails on the old code (ValueError
    out of ``on_incidents``). Now the burst is sent and its window stored, the fault
    said with its traceback."""
    stage, sent, _ = ingest
    m = stage.metrics

    def refused(*values: str) -> Any:
        raise ValueError(f"the metric refused {values}")

    monkeypatch.setattr(m.incident_bursts, "labels", refused)
    monkeypatch.setattr(m.incidents, "labels", refused)
    reports = [IncidentReport(T0 + i, f"r-{i}", "Noise", "loud", "app", "c-top") for i in range(9)]
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=home(stage, r), offset=i)
        for i, r in enumerate(reports)
    ]
    with caplog.at_level(logging.ERROR):
        asyncio.run(stage.on_incidents(messages))  # type: ignore[arg-type]
    burst = [doc for _, doc in sent if "status" in doc]  # the burst and its follow-ups
    assert burst and {(d["alert_id"], d["status"]) for d in burst} == {
        (burst[0]["alert_id"], "firing")
    }
    stored = stage.ctx.burst_windows.get_many([burst_key("c-top", "Noise")])
    assert stored[0] is not None and stored[0]["episode"] is not None
    said = [r.getMessage() for r in caplog.records if "incidents: counting" in r.getMessage()]
    assert said and "burst failed" in said[0]
