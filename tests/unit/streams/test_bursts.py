"""Bursts of citizen reports against a cell's own baseline, on the real NYC 311 slice."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path

import pytest

from streams.bursts import Burst, BurstTracker, episode_alert_id
from streams.events import IncidentReport
from streams.feeds import load_events

ROOT = Path(__file__).resolve().parents[3]


def report(ts: float, cell: str = "c1", category: str = "Noise") -> IncidentReport:
    return IncidentReport(ts, f"r{ts}", category, "loud", "app", cell)


def test_quiet_baseline_then_a_burst_gives_one_alert() -> None:
    tracker = BurstTracker(bucket_seconds=600, min_reports=5)
    state = None
    alerts = []
    # One report per 10-minute bucket for a day: the baseline settles near one.
    for i in range(144):
        state, burst = tracker.observe(state, report(i * 600.0), "police")
        assert burst is None
    for j in range(12):  # twelve in one bucket
        state, burst = tracker.observe(state, report(144 * 600.0 + j), "police")
        if burst and burst.first:
            alerts.append((j, burst))
    assert len(alerts) == 1
    j, burst = alerts[0]
    assert burst.count == j + 1 >= 5 and burst.department == "police"
    assert 0.5 < burst.baseline < 1.5
    # Deterministic id per cell, category and bucket.
    again = BurstTracker(bucket_seconds=600, min_reports=5)
    s2 = None
    ids = set()
    for i in range(144):
        s2, _ = again.observe(s2, report(i * 600.0), "police")
    for j in range(12):
        s2, b = again.observe(s2, report(144 * 600.0 + j), "police")
        if b:  # the alert and its follow-ups share the id
            ids.add(b.alert_id)
    assert ids == {burst.alert_id}


def test_busy_cells_need_more_to_count_as_a_burst() -> None:
    tracker = BurstTracker(bucket_seconds=600, min_reports=5)
    state = None
    for i in range(144):
        for k in range(6):  # a busy cell: six reports every bucket
            state, burst = tracker.observe(state, report(i * 600.0 + k), "police")
    flagged = []
    for k in range(8):  # eight in a bucket is normal here, not a burst
        state, burst = tracker.observe(state, report(144 * 600.0 + k), "police")
        flagged.append(burst)
    assert state is not None and state["baseline"] > 4
    assert flagged == [None] * 8


def test_real_311_night_finds_bursts_in_few_cells() -> None:
    events = load_events([ROOT / "datasets" / "nyc311_2024-05-26.csv.gz"])
    tracker = BurstTracker()
    states: dict[tuple[str, str], dict[str, object]] = {}
    bursts = []
    for e in events:
        assert isinstance(e, IncidentReport)
        key = (e.grid_cell, e.category)
        states[key], burst = tracker.observe(states.get(key), e, "police")  # type: ignore[arg-type]
        if burst and burst.first:
            bursts.append(burst)
    per_cell = Counter(b.grid_cell for b in bursts)
    assert bursts, "a Memorial Day eve of noise complaints has bursts"
    assert len(per_cell) < len({e.grid_cell for e in events}) / 5
    assert all(b.count >= tracker.min_reports for b in bursts)


def test_every_report_of_a_burst_travels_with_its_alert_or_follows_it() -> None:
    tracker = BurstTracker(bucket_seconds=600, min_reports=3)
    state = None
    out = []
    for j in range(5):
        r = IncidentReport(60.0 + j, f"r-{j}", "Noise", "loud", ("app", "hotline")[j % 2], "c1")
        state, burst = tracker.observe(state, r, "police")
        out.append(burst)
    assert out[:2] == [None, None]
    alert, *follow = out[2:]
    assert alert is not None and alert.first
    assert alert.reports_doc() == [
        {"report_id": "r-0", "channel": "app"},
        {"report_id": "r-1", "channel": "hotline"},
        {"report_id": "r-2", "channel": "app"},
    ]
    assert [(b.first, b.alert_id, b.reports) for b in follow if b] == [
        (False, alert.alert_id, [("r-3", "hotline")]),
        (False, alert.alert_id, [("r-4", "app")]),
    ]
    # Once the window has moved past them, the episode is over: a new report is held
    # afresh (id, channel, sub-bucket, department), not a follow-up.
    state, burst = tracker.observe(state, report(700.0), "police")
    assert burst is None and state["episode"] is None
    assert state["held"] == [["r700.0", "app", 7, "police"]]


def reports_from(t0: float, n: int, gap: float = 30.0) -> list[IncidentReport]:
    return [
        IncidentReport(t0 + gap * i, f"r-{t0:g}-{i}", "Noise", "loud", "hotline", "c1")
        for i in range(n)
    ]


def first_alerts(tracker: BurstTracker, reports: list[IncidentReport]) -> list[Burst]:
    state = None
    out = []
    for r in reports:
        state, burst = tracker.observe(state, r, "police")
        if burst is not None and burst.first:
            out.append(burst)
    return out


@pytest.mark.parametrize("phase", range(0, 1800, 45))
def test_a_burst_alerts_whatever_its_phase_against_the_clock(phase: int) -> None:
    # The CI case: eight reports 30 s apart, which fixed 30-minute buckets split 4 + 4
    # when they straddled a boundary. Every phase of the half hour now alerts once.
    alerts = first_alerts(BurstTracker(), reports_from(1_800_000.0 + phase, 8))
    assert len(alerts) == 1
    assert alerts[0].count == 5 and len(alerts[0].reports) == 5


def test_a_sustained_burst_is_one_episode_and_a_later_one_a_new_alert() -> None:
    tracker = BurstTracker()
    flood = reports_from(0.0, 80, gap=90.0)  # two hours at 20 reports per half hour
    # Quiet for four hours, then a sharper burst (the baseline has learnt the flood).
    later = reports_from(80 * 90.0 + 4 * 3600.0, 20)
    alerts = first_alerts(tracker, flood + later)
    assert len(alerts) == 2
    assert alerts[0].alert_id != alerts[1].alert_id
    assert alerts[1].bucket_start >= later[0].ts - tracker.step


def test_a_report_older_than_the_window_is_late_and_counted_nowhere() -> None:
    tracker = BurstTracker()
    state, _ = tracker.observe(None, report(10_000.0), "police")
    before = [list(h) for h in state["held"]], list(state["counts"])
    late = report(10_000.0 - 1800.0 - 300.0)
    assert tracker.dropped(state, late) == "late"  # the agent counts and logs it
    state, burst = tracker.observe(state, late, "police")
    assert burst is None and ([list(h) for h in state["held"]], state["counts"]) == before


def test_a_re_sent_report_is_a_duplicate_and_counted_once() -> None:
    """Trial 5: twelve re-sent reports vanished with no count or word; each is now a
    duplicate (by report id) whether still in the window or long after it."""
    tracker = BurstTracker(min_reports=3)
    state: dict[str, object] | None = None
    alerts = []
    sent = [report(1_000.0 + 30 * i) for i in range(3)]
    for r in sent:
        state, burst = tracker.observe(state, r, "police")
        alerts += [burst] if burst else []
    assert [len(b.reports) for b in alerts] == [3]
    counts = list(state["counts"])  # type: ignore[index]
    for r in sent:  # re-sent at once: would have been follow-ups counted twice
        assert tracker.dropped(state, r) == "duplicate"
        state, burst = tracker.observe(state, r, "police")
        assert burst is None
    assert state["counts"] == counts  # type: ignore[index]
    state, _ = tracker.observe(state, report(1_000.0 + 6 * 3600.0), "police")
    assert [tracker.dropped(state, r) for r in sent] == ["duplicate"] * 3  # hours later
    state, _ = tracker.observe(state, report(1_000.0 + 2 * 86_400.0), "police")
    # Their event times still match the copies seen: re-sent days later, still duplicates
    # (the rule compares the copies' event times, not the cell's newest one).
    assert [tracker.dropped(state, r) for r in sent] == ["duplicate"] * 3
    assert tracker.dropped(state, report(1_000.0 + 2 * 86_400.0 + 1)) is None


def test_a_late_report_is_remembered_so_its_re_send_is_a_duplicate() -> None:
    """Trial 7: two late copies of one report were two incidents. Duplicates come first,
    and a late report's id is kept (only its id: the window is untouched)."""
    tracker = BurstTracker()
    state, _ = tracker.observe(None, report(10_000.0), "police")
    first = IncidentReport(10_000.0 - 3600.0, "lt-1", "Noise", "loud", "inspector", "c1")
    again = IncidentReport(10_000.0 - 3540.0, "lt-1", "Noise", "loud", "inspector", "c1")
    assert tracker.dropped(state, first) == "late"
    counts = list(state["counts"])
    state, bursts, unalerted = tracker.observe_all(state, first, "police")
    assert (bursts, unalerted, state["counts"]) == ([], [], counts)
    assert tracker.dropped(state, again) == "duplicate"
    assert tracker.dropped(state, first) == "duplicate"


def test_state_from_fixed_buckets_keeps_its_baseline() -> None:
    # Tables written before the sliding window hold {"bucket", "count", "alerted", ...}.
    old = {"bucket": 0.0, "count": 3, "baseline": 6.0, "alerted": True, "departments": {}}
    state, burst = BurstTracker().observe(old, report(1800.0), "police")
    assert burst is None and state["baseline"] == 6.0 and sum(state["counts"]) == 1


def trial6_reports() -> list[IncidentReport]:
    """Trial 6's bursts in one cell and category (event time, minutes after 03:00)."""
    rows = [(f"m-{i + 1}", 11 + i) for i in range(8)]  # 03:11-03:18
    rows += [(f"n-{i + 1}", 60 + 11 + i) for i in range(6)]  # 04:11-04:16
    rows += [(f"p-{i + 1}", 120 + 11 + i) for i in range(6)]  # 05:11-05:16
    rows += [("lone", 5 * 60 + 1)]  # 08:01
    rows += [(f"s-{i + 1}", 7 * 60 + 11 + i) for i in range(6)]  # 10:11-10:16
    t0 = 1_716_778_800.0  # 2024-05-27T03:00:00Z
    return [IncidentReport(t0 + m * 60.0, rid, "Noise", "loud", "app", "c1") for rid, m in rows]


def test_trial6_every_report_ends_in_an_alert_or_is_said_unalerted() -> None:
    """Trial 6: after a first burst, later bursts of 6 reports in 6 minutes raised no
    alert (the burst's own sub-buckets were folded into the baseline while still in the
    window: 6 met a threshold of 6.45), the first alert never resolved, and a follow-up
    changed its severity. Each report now ends in an alert (as its opener or a follow-up)
    or among the ``unalerted`` reports; every episode that ends resolves."""
    tracker = BurstTracker()
    state: dict[str, object] | None = None
    firing: dict[str, list[str]] = {}  # alert id -> its reports, in order
    severities: dict[str, set[str]] = {}
    resolved: list[tuple[str, str]] = []  # (alert id, the report that ended it)
    unalerted: list[str] = []
    for r in trial6_reports():
        state, bursts, gone = tracker.observe_all(state, r, "police")  # type: ignore[arg-type]
        unalerted += [rid for rid, _ in gone]
        for b in bursts:
            severities.setdefault(b.alert_id, set()).add(b.severity)
            if b.status == "resolved":
                assert b.reports == [] and b.alert_id in firing
                resolved.append((b.alert_id, r.report_id))
            else:
                assert b.first == (b.alert_id not in firing)
                firing.setdefault(b.alert_id, []).extend(rid for rid, _ in b.reports)
    covered = [rid for ids in firing.values() for rid in ids]
    assert len(firing) == 3  # m, n and s each raised one alert
    by_burst = sorted({rid.split("-")[0] for rid in covered})
    assert by_burst == ["m", "n", "s"]
    assert all(len(ids) == len(set(ids)) for ids in firing.values())
    # p (6 reports an hour after n: the baseline learned two bursts) and the lone
    # report stayed below the threshold: said when they left the window.
    assert sorted(unalerted) == ["lone"] + [f"p-{i + 1}" for i in range(6)]
    assert state["held"] == []  # type: ignore[index]
    everyone = {r.report_id for r in trial6_reports()}
    assert set(covered) | set(unalerted) == everyone and len(covered) == 20  # none lost
    # One severity per alert, whatever its follow-ups' counts.
    assert all(len(s) == 1 for s in severities.values())
    # m's episode ends at n-1 (its window is empty), n's at p-1; s's is still open.
    first_ids = list(firing)
    assert resolved == [(first_ids[0], "n-1"), (first_ids[1], "p-1")]


def test_a_burst_does_not_raise_its_own_threshold() -> None:
    """Sub-buckets still in the window stay out of the baseline: the baseline moves only
    when a sub-bucket leaves the window."""
    tracker = BurstTracker()
    state: dict[str, object] | None = None
    for i in range(12):  # one report a minute for 12 minutes: three sub-buckets
        state, _ = tracker.observe(state, report(600_000.0 + 60.0 * i), "police")
        assert state["baseline"] == 0.0  # type: ignore[index]
    state, _ = tracker.observe(state, report(600_000.0 + 3600.0), "police")
    assert state["baseline"] > 0.0  # type: ignore[index]


def test_a_report_id_is_a_duplicate_within_a_day_of_event_time_only() -> None:
    # docs/events.md: "already seen there within a day of event time". The seen list is
    # pruned only when a report is counted, so a re-send after a quiet spell of two days
    # (nothing else in that cell and category) must not be held against it.
    tracker = BurstTracker()
    t0 = 1.7e9
    state, _ = tracker.observe(None, IncidentReport(t0, "r-1", "Noise", "loud", "app", "c1"), "p")
    again = IncidentReport(t0 + 3600.0, "r-1", "Noise", "loud", "app", "c1")
    assert tracker.dropped(state, again) == "duplicate"
    later = IncidentReport(t0 + 2 * 86_400.0 + 60.0, "r-1", "Noise", "loud", "app", "c1")
    assert tracker.dropped(state, later) is None


def test_a_reason_the_caller_already_asked_gives_the_same_fold() -> None:
    """The incidents agent asks ``dropped`` to count and log a report, then hands its answer
    to ``observe_all`` (asked once, not twice): the fold is the same either way."""
    tracker = BurstTracker(min_reports=3)
    mixed = [*reports_from(5_000.0, 6), report(5_000.0 - 3600.0), *reports_from(5_000.0, 2)]
    asked: dict[str, object] | None = None
    unasked: dict[str, object] | None = None
    for r in mixed:
        reason = None if asked is None else tracker.dropped(asked, r)
        asked, bursts, unalerted = tracker.observe_all(asked, r, "police", reason)
        unasked, bursts_again, unalerted_again = tracker.observe_all(unasked, r, "police")
        assert (asked, bursts, unalerted) == (unasked, bursts_again, unalerted_again)
    assert asked is not None and sum(asked["counts"]) == 6  # type: ignore[call-overload]


def slot_of(tracker: BurstTracker, ts: float) -> int:
    return math.floor(ts / tracker.step)


def test_a_burst_resolves_when_event_time_passes_it_with_no_report_of_its_own() -> None:
    """Its cell and category may never see another report: the city's event time (other
    cells' reports) ends the episode, once, and the next report of its own finds nothing
    left to resolve."""
    tracker = BurstTracker(min_reports=3)
    state: dict[str, object] | None = None
    for r in reports_from(1_000.0, 4):
        state, bursts, _ = tracker.observe_all(state, r, "police")
    assert state is not None and state["episode"] is not None
    opened = state["episode"]["alert_id"]  # type: ignore[index]
    where = ("c1", "Noise")
    # Still within the window: nothing to say.
    assert tracker.expire(state, where, slot_of(tracker, 1_000.0 + 600.0)) == (state, [], [])
    later, bursts, unalerted = tracker.expire(state, where, slot_of(tracker, 1_000.0 + 2400.0))
    assert [(b.alert_id, b.status, b.grid_cell, b.category) for b in bursts] == [
        (opened, "resolved", "c1", "Noise")
    ]
    assert unalerted == [] and later is not None and later["episode"] is None
    assert (later["slot"], later["counts"], later["baseline"]) == (
        state["slot"],
        state["counts"],
        state["baseline"],
    )  # the window itself is left for the next report to move
    assert tracker.expire(later, where, slot_of(tracker, 1_000.0 + 9000.0))[1] == []
    _, bursts, _ = tracker.observe_all(later, report(1_000.0 + 9000.0), "police")
    assert [b.status for b in bursts] == []  # not resolved a second time, not a new burst


def test_a_lone_report_is_said_unalerted_once_event_time_passes_its_window() -> None:
    tracker = BurstTracker(min_reports=5)
    lone = IncidentReport(5_000.0, "pothole-1", "Roads", "hole", "app", "c7")
    state, _, _ = tracker.observe_all(None, lone, "transport")
    where = ("c7", "Roads")
    state2, bursts, unalerted = tracker.expire(state, where, slot_of(tracker, 5_000.0 + 1800.0))
    assert (bursts, unalerted) == ([], [("pothole-1", "app")])
    assert state2 is not None and state2["held"] == []
    # The next report of its cell and category does not say it a second time.
    nxt = IncidentReport(5_000.0 + 7200.0, "pothole-2", "Roads", "hole", "app", "c7")
    _, _, again = tracker.observe_all(state2, nxt, "transport")
    assert again == []
    # Without the sweep, that next report is where it was said (as before).
    _, _, before = tracker.observe_all(state, nxt, "transport")
    assert before == [("pothole-1", "app")]


def test_expire_leaves_new_and_current_states_alone() -> None:
    tracker = BurstTracker()
    assert tracker.expire(None, ("c1", "Noise"), 10) == (None, [], [])
    state, _, _ = tracker.observe_all(None, report(3_000.0), "police")
    assert tracker.expire(state, ("c1", "Noise"), slot_of(tracker, 3_000.0)) == (state, [], [])


def test_a_report_read_again_from_its_own_message_is_redelivered_not_re_sent() -> None:
    """Trial 15: after a SIGKILL the new owner read reports again from the committed
    offset and called them re-sent ("duplicate"), though no gateway had re-sent them.
    The id is kept with its Kafka message's (partition, offset): the same message again
    is ``redelivered``; the same id from another message is still a duplicate."""
    tracker = BurstTracker(min_reports=3)
    first = report(1_000.0)
    state, _, _ = tracker.observe_all(None, first, "police", position=(2, 41))
    counts = list(state["counts"])
    assert tracker.dropped(state, first, (2, 41)) == "redelivered"
    assert tracker.dropped(state, first, (2, 57)) == "duplicate"  # a gateway's re-send
    assert tracker.dropped(state, first, (0, 41)) == "duplicate"
    assert tracker.dropped(state, first) == "duplicate"  # position unknown: as before
    again, bursts, unalerted = tracker.observe_all(state, first, "police", position=(2, 41))
    assert (again["counts"], bursts, unalerted) == (counts, [], [])
    # A late report's position is kept too: read again, it is redelivered, not re-sent.
    late = IncidentReport(1_000.0 - 7_200.0, "lt-2", "Noise", "loud", "inspector", "c1")
    state, _ = tracker.observe(state, report(4_000.0), "police")
    assert tracker.dropped(state, late, (2, 43)) == "late"
    state, _, _ = tracker.observe_all(state, late, "police", position=(2, 43))
    assert tracker.dropped(state, late, (2, 43)) == "redelivered"


def test_seen_ids_written_before_positions_were_kept_still_make_duplicates() -> None:
    """A window read back from a changelog written before positions were kept holds
    ``[id, slot]`` entries: a copy of one is a duplicate, never a redelivery."""
    tracker = BurstTracker()
    state, _ = tracker.observe(None, report(1_000.0), "police")
    for width in (2, 3):  # before positions; before digests
        old = {**state, "seen": [s[:width] for s in state["seen"]]}
        assert tracker.dropped(old, report(1_000.0), (0, 5)) == "duplicate"
        other = IncidentReport(1_000.0, "r1000.0", "Noise", "another report", "app", "c1")
        assert tracker.dropped(old, other, (0, 5)) == "duplicate"  # no digest to tell


def test_another_report_under_an_id_seen_is_a_reused_id_not_a_re_send() -> None:
    """t109: a report id reused for another report (another text or channel) was dropped
    as a re-send, counted as a duplicate and kept nowhere. A re-send is the same report
    (a re-export may stamp another time within the day); another one is ``reused_id``,
    which the incidents agent dead-letters, and it changes nothing in the window."""
    tracker = BurstTracker(min_reports=3)
    first = report(1_000.0)
    state, _, _ = tracker.observe_all(None, first, "police", position=(0, 1))
    counts = list(state["counts"])
    restamped = IncidentReport(1_600.0, first.report_id, "Noise", "loud", "app", "c1")
    assert tracker.dropped(state, restamped, (0, 2)) == "duplicate"
    for text, source in (("burst pipe on Elm St", "app"), ("loud", "hotline")):
        other = IncidentReport(1_000.0, first.report_id, "Noise", text, source, "c1")
        assert tracker.dropped(state, other, (0, 3)) == "reused_id"
        again, bursts, unalerted = tracker.observe_all(state, other, "police", position=(0, 3))
        assert (again["counts"], bursts, unalerted) == (counts, [], [])
    # Read again from its own message after a restart: still a redelivery.
    assert tracker.dropped(state, first, (0, 1)) == "redelivered"


def test_episode_ids_differ_for_other_cells_and_categories_whatever_they_hold() -> None:
    # t44: joined with "|", cell "c1|a" with category "b" was cell "c1" with "a|b".
    assert episode_alert_id("c1|a", "b", 60.0) != episode_alert_id("c1", "a|b", 60.0)
    assert episode_alert_id("c1", "a||b", 60.0) != episode_alert_id("c1|a|", "b", 60.0)
    # Values without "|" keep the ids alerts were stored under before.
    old = "al-" + hashlib.sha1(b"c1|Noise|60").hexdigest()[:16]
    assert episode_alert_id("c1", "Noise", 60.0) == old


def test_a_window_is_forgettable_only_when_nothing_in_it_can_matter_again() -> None:
    """t80: one window per cell and category, kept for good, grew without end under a
    feed sending a new category per report. A window is dropped once nothing in it can
    matter: no open episode, no held report, and its newest report further back than both
    the duplicate horizon and the idle span after which its baseline is ~0."""
    tracker = BurstTracker(min_reports=5)
    assert tracker.forget_seconds == 96 * 1800.0  # two days: past the one-day duplicates
    lone = IncidentReport(5_000.0, "pothole-1", "Roads", "hole", "app", "c7")
    state, _, _ = tracker.observe_all(None, lone, "transport")
    later = 5_000.0 + tracker.forget_seconds + tracker.step
    # Its report is still held (not yet said unalerted by expire): kept.
    assert not tracker.forgettable(state, slot_of(tracker, later))
    emptied, _, unalerted = tracker.expire(state, ("c7", "Roads"), slot_of(tracker, later))
    assert unalerted == [("pothole-1", "app")]
    assert tracker.forgettable(emptied, slot_of(tracker, later))
    # A day and a half on, a re-send of pothole-1 could still be a duplicate: kept.
    assert not tracker.forgettable(emptied, slot_of(tracker, 5_000.0 + 1.5 * 86_400))
    # An open episode is never dropped, however quiet.
    burst: dict[str, object] | None = None
    for r in reports_from(1_000.0, 6):
        burst, _, _ = tracker.observe_all(burst, r, "police")
    assert burst is not None and burst["episode"] is not None
    assert not tracker.forgettable(burst, slot_of(tracker, 1_000.0 + 10 * tracker.forget_seconds))
    assert not tracker.forgettable(None, 10**9)
