"""Odd times among a cell's citizen reports (t185): a report more than a day after its
window's newest (``streams.bursts.CLOCK_JUMP``) is held aside, the window not moved,
until the window's next report or the city's clock reaches its time. Before, one report
dated a year ahead (before the worker's clock, so not ``in_future``) moved its window
there: every later report of its cell and category was late, counted towards no burst,
for good, and its time became the burst sweep's clock for every cell."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.bursts import CLOCK_JUMP, BurstTracker
from streams.context import burst_key, read_burst_window
from streams.events import IncidentReport
from streams.ingest import Ingest
from streams.tables import UnreadableEntryError

from .test_burst_sweep import home, ingest  # noqa: F401  (the fixture)

T0 = 1_716_700_000.0  # 2024-05-26
YEAR = 365 * 86_400.0


def report(ts: float, rid: str, cell: str = "c1") -> IncidentReport:
    return IncidentReport(ts, rid, "Noise", "loud", "app", cell)


def quiet_window(tracker: BurstTracker) -> dict[str, Any]:
    """Five reports an hour apart: a window with a baseline and no burst."""
    state: dict[str, Any] | None = None
    for i in range(5):
        state, _, _ = tracker.observe_all(state, report(T0 + 3600 * i, f"q{i}"), "police")
    assert state is not None
    return state


def test_one_report_a_year_ahead_makes_no_later_report_late_and_is_said_in_no_alert() -> None:
    tracker = BurstTracker(min_reports=5)
    state = quiet_window(tracker)
    odd = report(T0 + YEAR, "odd")
    state, bursts, unalerted = tracker.observe_all(state, odd, "police")
    assert (bursts, unalerted) == ([], [])
    said: list[tuple[str, str]] = []
    fired = []
    start = T0 + 3600 * 6
    for i in range(6):  # a burst: six reports in six minutes, after the quiet ones
        r = report(start + 60 * i, f"b{i}")
        assert tracker.dropped(state, r) is None  # (before: every one "late")
        state, bursts, unalerted = tracker.observe_all(state, r, "police")
        said += unalerted
        fired += [b for b in bursts if b.status == "firing" and b.first]
    assert ("odd", "app") in said  # the odd report: in no alert, said, never lost
    assert len(fired) == 1 and "odd" not in [rid for rid, _ in fired[0].reports]
    assert "jump" not in state
    # A re-send of the odd report is a duplicate, as of any report seen.
    assert tracker.dropped(state, odd) == "duplicate"


def test_a_cell_quiet_for_days_resumes_and_its_first_report_counts() -> None:
    tracker = BurstTracker(min_reports=3)
    state = quiet_window(tracker)
    later = T0 + 3 * 86_400
    state, bursts, _ = tracker.observe_all(state, report(later, "a"), "police")
    assert bursts == [] and state["jump"][0] == "a"
    state, bursts, _ = tracker.observe_all(state, report(later + 60, "b"), "police")
    state, bursts, _ = tracker.observe_all(state, report(later + 120, "c"), "police")
    [burst] = [b for b in bursts if b.first]
    assert sorted(rid for rid, _ in burst.reports) == ["a", "b", "c"]


def test_the_sweep_folds_a_held_report_once_the_citys_clock_reaches_it() -> None:
    tracker = BurstTracker(min_reports=5)
    state, _, _ = tracker.observe_all(quiet_window(tracker), report(T0 + 2 * 86_400, "x"), "p")
    slot = int((T0 + 86_400) // tracker.step)
    assert tracker.expire(state, ("c1", "Noise"), slot)[0]["jump"][0] == "x"  # not yet
    assert not tracker.forgettable(state, slot + 10**6)
    slot = int((T0 + 2 * 86_400 + tracker.bucket_seconds) // tracker.step)
    after, bursts, unalerted = tracker.expire(state, ("c1", "Noise"), slot)
    assert after is not None and "jump" not in after and bursts == []
    # Folded (the quiet window's last report leaving with it), then left in no alert.
    assert unalerted == [("q4", "app"), ("x", "app")]


def test_the_edge_a_report_a_day_later_is_no_jump() -> None:
    tracker = BurstTracker()
    state = quiet_window(tracker)
    state, _, _ = tracker.observe_all(state, report(T0 + 4 * 3600 + CLOCK_JUMP, "d"), "p")
    assert "jump" not in state and state["ts"] == T0 + 4 * 3600 + CLOCK_JUMP


@pytest.mark.parametrize(
    "jump",
    [["x", "app", 1, "p"], ["x", "app", 1, "p", 1e300], ["x", "app", "1", "p", T0], "x"],
)
def test_a_held_report_of_another_shape_is_refused_at_read_back(jump: Any) -> None:
    window = {**quiet_window(BurstTracker()), "jump": jump}
    with pytest.raises(UnreadableEntryError, match="field 'jump'"):
        read_burst_window(orjson.dumps(window))
    assert read_burst_window(orjson.dumps({**window, "jump": None}))["ts"] == window["ts"]


def test_one_report_a_year_ahead_moves_no_sweep_clock(
    ingest: tuple[Ingest, list[Any], list[Any]],  # noqa: F811
) -> None:
    """At the worker: the city's burst clock stays at the newest report its windows
    counted, so the next sweep resolves no other cell's burst (before: the clock a year
    ahead, every window's reports said in no alert and each open burst resolved)."""
    stage, _, _ = ingest
    reports = [report(T0 + 60 * i, f"m{i}", ("c-mill", "c-top")[i % 2]) for i in range(3)]
    reports.append(report(T0 + 200 + YEAR, "odd", "c-top"))
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=home(stage, r), offset=i)
        for i, r in enumerate(reports)
    ]
    asyncio.run(stage.on_incidents(messages))  # type: ignore[arg-type]
    assert stage.event_time == T0 + 120
    held = stage.ctx.burst_windows.data[burst_key("c-top", "Noise")]
    assert held["jump"][0] == "odd"


# -- a new window's FIRST report far ahead (t206) --------------------------------------


def test_a_new_windows_first_report_a_year_ahead_of_the_citys_clock_makes_no_later_report_late() -> (
    None
):
    """Another cell's reports set the city's clock; a new window's first report a year
    ahead of it is held aside (a window of no slot yet), so the cell's real reports after
    it count and burst, and the odd one is said in no alert. Before, it opened the window
    a year ahead: every later report of the cell and category ``late``, no burst (fails
    on the old code)."""
    tracker = BurstTracker(min_reports=5)
    clock = T0 + 3600 * 4  # (quiet_window's newest, in another cell)
    odd = report(T0 + YEAR, "odd", cell="c2")
    state, bursts, unalerted = tracker.observe_all(None, odd, "police", clock=clock)
    assert (bursts, unalerted) == ([], []) and "slot" not in state
    assert state["jump"][0] == "odd"
    assert tracker.dropped(state, odd) == "duplicate"
    said: list[tuple[str, str]] = []
    fired = []
    for i in range(6):
        r = report(clock + 600 + 60 * i, f"b{i}", cell="c2")
        assert tracker.dropped(state, r) is None  # (before: every one "late")
        state, bursts, unalerted = tracker.observe_all(state, r, "police", clock=clock)
        said += unalerted
        fired += [b for b in bursts if b.status == "firing" and b.first]
    assert ("odd", "app") in said
    assert len(fired) == 1 and sorted(rid for rid, _ in fired[0].reports) == [
        f"b{i}" for i in range(5)
    ]
    assert "jump" not in state and state["ts"] == clock + 600 + 300


def test_a_new_windows_first_report_ahead_but_confirmed_is_counted() -> None:
    """A new window's first report two days past the city's clock (a cell that starts
    reporting after a quiet spell of the feed) is held aside, then counted with the
    reports after it, or within a day before it (reports come a little out of order);
    the sweep folds it once the city's clock reaches it."""
    tracker = BurstTracker(min_reports=3)
    clock = T0
    first = report(T0 + 2 * 86_400, "a", cell="c2")
    state, _, _ = tracker.observe_all(None, first, "police", clock=clock)
    state, _, _ = tracker.observe_all(state, report(first.ts - 60, "b", cell="c2"), "p")
    state, bursts, _ = tracker.observe_all(state, report(first.ts + 60, "c", cell="c2"), "p")
    [burst] = [b for b in bursts if b.first]
    assert sorted(rid for rid, _ in burst.reports) == ["a", "b", "c"]
    # The sweep's clock reaching a held first report folds it (then left in no alert).
    held, _, _ = tracker.observe_all(None, first, "police", clock=clock)
    slot = int((first.ts + tracker.bucket_seconds) // tracker.step)
    after, bursts, unalerted = tracker.expire(held, ("c2", "Noise"), slot)
    assert after is not None and "jump" not in after and unalerted == [("a", "app")]
    # Within a day of the clock, or with no clock at all, a first report opens its window.
    near, _, _ = tracker.observe_all(None, report(T0 + CLOCK_JUMP, "n"), "p", clock=clock)
    assert "jump" not in near and near["ts"] == T0 + CLOCK_JUMP
    assert "jump" not in tracker.observe_all(None, first, "p")[0]


def test_a_new_windows_held_first_report_is_judged_at_read_back() -> None:
    tracker = BurstTracker()
    state, _, _ = tracker.observe_all(None, report(T0 + YEAR, "odd"), "p", clock=T0)
    assert read_burst_window(orjson.dumps(state)) == state
    for bad in (["x", "app", 1, "p"], ["x", "app", 1, "p", 1e300]):
        with pytest.raises(UnreadableEntryError, match="field 'jump'"):
            read_burst_window(orjson.dumps({**state, "jump": bad}))
    with pytest.raises(UnreadableEntryError, match="field 'held'"):
        read_burst_window(orjson.dumps({**state, "held": 5}))


def test_a_new_windows_first_report_a_year_ahead_costs_its_cell_no_burst_at_the_worker(
    ingest: tuple[Ingest, list[Any], list[Any]],  # noqa: F811
) -> None:
    """At the worker: the city's clock from earlier reports, then a new cell and
    category's first report a year ahead, then its real burst: alerted, the odd report
    left out. Before, the burst's reports were all late (no alert: fails on the old
    code)."""
    stage, _, _ = ingest
    reports = [report(T0 + 60 * i, f"m{i}", "c-mill") for i in range(3)]
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=home(stage, r), offset=i)
        for i, r in enumerate(reports)
    ]
    asyncio.run(stage.on_incidents(messages))  # type: ignore[arg-type]
    assert stage.event_time == T0 + 120
    later = [report(T0 + YEAR, "odd", "c-top")]
    later += [report(T0 + 600 + 30 * i, f"b{i}", "c-top") for i in range(8)]
    messages = [
        SimpleNamespace(value=r.to_json(), topic="incidents", partition=home(stage, r), offset=i)
        for i, r in enumerate(later, start=10)
    ]
    for m in messages:
        asyncio.run(stage.on_incidents([m]))  # type: ignore[list-item]
    window = stage.ctx.burst_windows.data[burst_key("c-top", "Noise")]
    assert "jump" not in window and window["episode"] is not None
    assert stage.event_time == T0 + 600 + 30 * 7
