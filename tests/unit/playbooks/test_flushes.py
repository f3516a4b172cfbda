"""A run's later notifications follow Alertmanager's group flushes (trial 18).

Alertmanager (0.25, ``dispatch/dispatch.go`` ``aggrGroup.run`` and ``notify.DedupStage``)
flushes a group every ``group_interval`` after its first notification; at a flush it
notifies when the group has alerts not in the last notification, or when
``repeat_interval`` has passed since it. citybrain notified an alert joining a notified
run only if ``group_interval`` had passed when it joined (one joining sooner waited for
the repeat, 4 h by default, or for ever once acknowledged), and repeated every
``repeat_interval`` even when that was shorter than ``group_interval`` (Alertmanager
repeats at flushes only). ``reference`` is Alertmanager's flush loop, written from that
source; the engine, driven as the worker's deadline timer drives it, must notify at the
same times.
"""

from __future__ import annotations

import random

import pytest

from playbooks.engine import (
    GroupPhase,
    PlaybookEngine,
    Run,
    group_next_tick,
    group_phase,
    next_group_flush,
)
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbooks

PLAYBOOK = load_playbooks(PLAYBOOK_DIR)["sensor-anomaly"]
ALERT = {"alert_id": "al-0", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}
START = 1_000.0


def reference(
    group_interval: int, repeat_interval: int, joins: dict[str, float], acked: float, end: int
) -> list[int]:
    """The times Alertmanager notifies a group first notified at START: at each flush
    tick START + k * group_interval, if an alert joined by then is not in the last
    notification, or (citybrain repeats only while nobody acknowledged, ``acked``) the
    repeat interval has passed since the last notification."""
    notified, last, times = {"al-0"}, START, []
    tick = START + group_interval
    while tick <= START + end:
        firing = {"al-0", *(a for a, at in joins.items() if at <= tick)}
        if not firing <= notified or (tick < acked and tick - last >= repeat_interval):
            notified, last = firing, tick
            times.append(int(tick - START))
        tick += group_interval
    return times


def drive(
    grid: Grid,
    group_interval: int,
    repeat_interval: int,
    joins: dict[str, float],
    acked: float,
    end: int,
) -> tuple[list[int], Run]:
    """The engine's later notifications, with the worker's timer calling ``flush`` each
    second and the alerts joining (and the acknowledgement coming) in between."""
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, _ = engine.new_run("run-x", ALERT, START)
    assert run.last_notified_at == START  # the playbook notifies first
    times = []
    events = sorted([(at, a) for a, at in joins.items()] + [(acked, "")])
    for second in range(1, end + 1):
        now = START + second
        while events and events[0][0] <= now:
            at, alert_id = events.pop(0)
            if alert_id:
                run, _ = engine.join(run, alert_id, at)
            else:
                run.acknowledged_at = at  # what acknowledge sets; the ladder is not under test
        run, cmds = engine.flush(run, group_interval, repeat_interval, now)
        times += [second for c in cmds if c.action == "notify"]
    return times, run


def test_an_alert_joining_within_group_interval_is_notified_at_the_next_flush(
    grid: Grid,
) -> None:
    # group_interval 5m, repeat 4h: al-1 joins a minute after the first notification.
    times, run = drive(grid, 300, 14_400, {"al-1": START + 60.5}, acked=START + 30, end=900)
    assert times == [300]  # before: never (acknowledged, so no repeat either)
    assert run.unnotified == {}


def test_a_repeat_shorter_than_group_interval_comes_at_each_flush(grid: Grid) -> None:
    # repeat_interval 1m under group_interval 5m: every 5 min, not every minute.
    times, _ = drive(grid, 300, 60, {}, acked=float("inf"), end=1_000)
    assert times == [300, 600, 900]


def test_a_repeat_comes_at_the_first_flush_after_repeat_interval(grid: Grid) -> None:
    times, _ = drive(grid, 300, 700, {}, acked=float("inf"), end=2_000)
    assert times == [900, 1_800]


def test_no_repeat_once_every_alert_of_the_run_has_resolved(grid: Grid) -> None:
    # Alertmanager deletes a group whose alerts have all resolved once their resolution
    # is flushed: nothing repeats. One alert of two resolved: the repeats go on.
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, _ = engine.new_run("run-x", ALERT, START)
    run, _ = engine.join(run, "al-1", START + 10)
    run, _ = engine.flush(run, 300, 600, START + 300)  # al-1 notified
    run, _ = engine.alert_resolved(run, "al-0", START + 400)
    run, cmds = engine.flush(run, 300, 600, START + 900)
    assert [c.detail for c in cmds if c.action == "notify"] == ["repeat: still unacknowledged"]
    run, _ = engine.alert_resolved(run, "al-1", START + 1_000)
    for now in range(1_001, 10_000, 60):
        run, cmds = engine.flush(run, 300, 600, START + now)
        assert not [c for c in cmds if c.action == "notify"], now
    # A citizen's report the run covers keeps it open: the repeats go on.
    run.reports = {"r-1": {"channel": "app", "status": "open"}}
    run, cmds = engine.flush(run, 300, 600, START + 10_200)
    assert [c.detail for c in cmds if c.action == "notify"] == ["repeat: still unacknowledged"]


@pytest.mark.parametrize("seed", range(4))
def test_notifications_follow_alertmanagers_flushes(grid: Grid, seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(150):
        group_interval = rng.choice([1, 2, 5, 10, 30])
        repeat_interval = rng.choice([1, 3, 10, 25, 60, 600])
        end = rng.randint(20, 200)
        joins = {f"al-{i}": START + rng.randint(0, end) + 0.5 for i in range(rng.randint(0, 6))}
        acked = rng.choice([float("inf"), START + rng.randint(0, end) + 0.25])
        expected = reference(group_interval, repeat_interval, joins, acked, end)
        assert drive(grid, group_interval, repeat_interval, joins, acked, end)[0] == expected, (
            group_interval,
            repeat_interval,
            joins,
            acked,
        )
        checked += bool(expected)
    assert checked > 50  # most rounds notify again at least once


def muted_reference(
    group_interval: int, repeat_interval: int, muted: list[tuple[int, int]], end: int
) -> list[int]:
    """As ``reference``, with the group's one alert muted (silenced or inhibited) over
    the ``muted`` spans [from, to) of seconds after START, nobody acknowledging:
    Alertmanager's MuteStage leaves nothing to send at a flush within a span, and its
    notification log keeps the last notification's time."""
    last, times = START, []
    tick = START + group_interval
    while tick <= START + end:
        quiet = any(a <= tick - START < b for a, b in muted)
        if not quiet and tick - last >= repeat_interval:
            last = tick
            times.append(int(tick - START))
        tick += group_interval
    return times


@pytest.mark.parametrize("seed", range(3))
def test_flushes_under_a_mute_notify_as_alertmanagers(grid: Grid, seed: int) -> None:
    """t58: a started run's flush is held (``hold_flush``) while its alert is muted, as
    the response stage holds it; the repeats come at Alertmanager's flushes."""
    rng = random.Random(seed)
    for _ in range(100):
        group_interval = rng.choice([1, 2, 5, 10])
        repeat_interval = rng.choice([1, 3, 10, 25])
        end = rng.randint(20, 150)
        spans = []
        for _ in range(rng.randint(0, 3)):
            a = rng.randint(0, end)
            spans.append((a, a + rng.randint(1, 40)))
        engine = PlaybookEngine(PLAYBOOK, grid)
        run, _ = engine.new_run("run-x", ALERT, START)
        times, held = [], 0
        for second in range(1, end + 1):
            now = START + second
            due = engine.flush_due(run, group_interval, repeat_interval, now)
            if due is not None and any(a <= due[0] - START < b for a, b in spans):
                run, cmds = engine.hold_flush(run, "al-0 silenced by s-1", due[0], now)
                held += len(cmds)
                # Said once per reason; the same tick is not due again.
                assert engine.flush_due(run, group_interval, repeat_interval, now) is None
                continue
            run, cmds = engine.flush(run, group_interval, repeat_interval, now)
            times += [second for c in cmds if c.action == "notify"]
        expected = muted_reference(group_interval, repeat_interval, spans, end)
        assert times == expected, (group_interval, repeat_interval, spans)


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (1_000.0, 30.0),  # muted on arrival and freed at once: the group's first flush
        (1_020.0, 10.0),  # freed within group_wait: still that first flush
        (1_030.0, 0.0),  # freed at a flush
        (1_031.0, 299.0),  # freed after the first flush: the next tick, not group_wait
        (1_330.0, 0.0),
        (1_331.5, 298.5),
        (900.0, 30.0),  # a clock behind the mute's: counted from now
    ],
)
def test_the_next_flush_of_a_group_made_when_its_alert_was_muted(now: float, wait: float) -> None:
    """Alertmanager's group (group_wait 30 s, group_interval 5 min) made at 1,000 s,
    when its alert arrived muted, flushes at 1,030 s and every 300 s after, sending
    nothing while the mute lasts; freed, the alert goes out at the next of those."""
    assert next_group_flush(1_000.0, 30.0, 300.0, now) == pytest.approx(wait)


# Groups emptied of alerts (t71). Alertmanager deletes a group at the flush that finds
# every alert of it resolved (``dispatch.go``, ``aggrGroup.flush``: DeleteIfNotModified
# with destroy-if-empty; 0.25 removes the empty group at its next 30 s cleanup), so the
# next alert of that group key starts a fresh group: it waits group_wait, and its flushes
# tick from then. citybrain kept the run's ticks: the new alert went out at the old
# group's next tick. The run stays open (people close runs); its group timing restarts.


def am_groups(
    group_wait: int, group_interval: int, repeat: int, events: list[tuple[int, str, str]], end: int
) -> list[int]:
    """The seconds after START at which Alertmanager (upstream's immediate deletion,
    webhooks with send_resolved false) notifies one group key: al-0 fires at START into a
    group with no wait (the run's first notification), ``events`` are ``(second, "fire" |
    "resolve", alert id)``; events at a second come before that second's flush."""
    alerts: dict[str, bool] = {"al-0": True}  # id -> firing, in the live group
    next_flush: int | None = 0
    notified: set[str] = set()
    last: int | None = None
    times = []
    for second in range(end + 1):
        for at, what, alert_id in events:
            if at != second:
                continue
            if what == "fire":
                if next_flush is None:  # the group was deleted: a fresh one
                    next_flush, notified, last, alerts = second + group_wait, set(), None, {}
                alerts[alert_id] = True
            elif alert_id in alerts:
                alerts[alert_id] = False
        if next_flush != second:
            continue
        firing = {a for a, on in alerts.items() if on}
        if firing and (not firing <= notified or (last is not None and second - last >= repeat)):
            notified, last = firing, second
            times.append(second)
        alerts = {a: True for a in firing}  # the resolved ones deleted at the flush
        next_flush = None if not firing else second + group_interval
    return times


def drive_groups(
    grid: Grid,
    group_wait: int,
    group_interval: int,
    repeat: int,
    events: list[tuple[int, str, str]],
    end: int,
) -> list[int]:
    """The engine's notifications of one run, driven as the worker drives it."""
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, cmds = engine.new_run("run-x", ALERT, START)
    times = [0] if any(c.action == "notify" for c in cmds) else []
    for second in range(1, end + 1):
        now = START + second
        for at, what, alert_id in events:
            if at != second:
                continue
            if what == "fire":
                run, _ = engine.join(run, alert_id, now, group_interval, group_wait)
            elif alert_id in run.alerts:
                run, _ = engine.alert_resolved(run, alert_id, now)
        run, cmds = engine.flush(run, group_interval, repeat, now)
        times += [second for c in cmds if c.action == "notify"]
    return times


def test_an_alert_after_its_group_emptied_waits_group_wait(grid: Grid) -> None:
    # group_wait 30, group_interval 60: al-0 resolves at 10, the flush at 60 empties
    # the group; al-1 at 100 starts a fresh group, flushed at 130 (before: 120), whose
    # ticks run from there (al-2 at 140 goes out at 190).
    events = [(10, "resolve", "al-0"), (100, "fire", "al-1"), (140, "fire", "al-2")]
    assert am_groups(30, 60, 10_000, events, 300) == [0, 130, 190]
    assert drive_groups(grid, 30, 60, 10_000, events, 300) == [0, 130, 190]
    # Before that flush the group lives: al-1 at 50 goes out at its tick, 60.
    events = [(10, "resolve", "al-0"), (50, "fire", "al-1")]
    assert drive_groups(grid, 30, 60, 10_000, events, 300) == [0, 60]
    # An alert that joins and resolves between two flushes is in no notification.
    events = [(20, "fire", "al-1"), (40, "resolve", "al-1")]
    assert drive_groups(grid, 30, 60, 10_000, events, 300) == [0]  # before: [0, 60]


def test_the_group_phase_of_a_run_closed_by_people(grid: Grid) -> None:
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, _ = engine.new_run("run-x", ALERT, START)
    run, _ = engine.resolve(run, "op", "done", START + 5)
    # Its alert still fires: the group flushes on (the next run's first notification
    # is at its next tick, 60 s after the last notification).
    assert group_phase(run, 60, START + 70) is GroupPhase.FLUSHING
    assert group_next_tick(run, 60, START + 70) == 50
    run, _ = engine.alert_resolved(run, "al-0", START + 80)
    assert group_next_tick(run, 60, START + 110) == 10  # its resolution not yet flushed
    assert group_phase(run, 60, START + 121) is GroupPhase.EMPTIED
    assert group_next_tick(run, 60, START + 121) is None  # a fresh group: group_wait


@pytest.mark.parametrize("seed", range(4))
def test_groups_emptied_and_refilled_notify_as_alertmanagers(grid: Grid, seed: int) -> None:
    rng = random.Random(seed)
    fresh = 0
    for _ in range(150):
        group_wait = rng.choice([0, 1, 3, 10])
        group_interval = rng.choice([1, 2, 5, 10])
        repeat = rng.choice([1, 7, 25, 10_000])
        end = rng.randint(20, 120)
        events: list[tuple[int, str, str]] = [(rng.randint(1, end), "resolve", "al-0")]
        for i in range(1, rng.randint(1, 7)):
            fired = rng.randint(1, end)
            events.append((fired, "fire", f"al-{i}"))
            if rng.random() < 0.7:
                events.append((rng.randint(fired + 1, end + 10), "resolve", f"al-{i}"))
        events.sort()
        expected = am_groups(group_wait, group_interval, repeat, events, end)
        got = drive_groups(grid, group_wait, group_interval, repeat, events, end)
        assert got == expected, (group_wait, group_interval, repeat, events)
        emptied = am_groups(10**6, group_interval, repeat, events, end)
        fresh += expected != emptied  # a case where a fresh group's group_wait showed
    assert fresh > 20


def test_a_storm_joining_one_group_is_counted_whole_in_its_next_notification(
    grid: Grid,
) -> None:
    """t178: 3,000 alerts joining a notified group between two flushes were notified as
    "al-2996, …, al-3000 and 95 more": ``unnotified`` keeps the newest 100 ids, and the
    count was of those. The ids beyond it are counted (``unnotified_beyond``), said in
    the "and N more", and forgotten with the notification. Fails on the old code."""
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, _ = engine.new_run("run-x", ALERT, START)
    for n in range(1, 3_001):
        run, _ = engine.join(run, f"al-{n}", START + n / 100)
    assert len(run.unnotified) == 100 and run.unnotified_beyond == 2_900
    run, cmds = engine.flush(run, 300, 14_400, START + 300)
    [detail] = [c.detail for c in cmds if c.action == "notify"]
    assert (
        detail
        == "new alerts in the group: al-2901, al-2902, al-2903, al-2904, al-2905 and 2,995 more"
    )
    assert (run.unnotified, run.unnotified_beyond) == ({}, 0)
    # The next join is counted from 0 again; a stored run with the count reads back.
    run, _ = engine.join(run, "al-3001", START + 301)
    assert Run.from_dict(run.to_dict()).unnotified_beyond == 0
    run.unnotified_beyond = 7
    assert Run.from_dict(run.to_dict()).unnotified_beyond == 7


# Alerts that fire again after resolving (t196). Alertmanager keys an alert by its
# labels: one that resolves and fires again is the same alert firing again in its group,
# new to the next flush unless the last notification carried it (DedupStage's
# notification log). citybrain took its second firing for the first read again: it
# stayed resolved in the run, was never notified again, and a run whose alerts had all
# resolved repeated nothing though they fired again.


def test_an_alert_firing_again_after_its_resolution_is_notified_as_alertmanager_does(
    grid: Grid,
) -> None:
    # Fires again after a flush that left it out: new at the next flush (before: never).
    events = [(10, "fire", "al-1"), (20, "resolve", "al-1"), (80, "fire", "al-1")]
    assert am_groups(0, 60, 10_000, events, 200) == [0, 120]
    assert drive_groups(grid, 0, 60, 10_000, events, 200) == [0, 120]
    # Notified, resolved and firing again before the next flush: in the last
    # notification, so only a repeat sends it; the repeats go on (before: none, the run
    # thinking every alert resolved).
    events = [(30, "resolve", "al-0"), (40, "fire", "al-0")]
    assert am_groups(0, 60, 100, events, 300) == [0, 120, 240]
    assert drive_groups(grid, 0, 60, 100, events, 300) == [0, 120, 240]
    # The group emptied at its flush: the alert firing again starts a fresh one.
    events = [(30, "resolve", "al-0"), (70, "fire", "al-0")]
    assert am_groups(5, 60, 10_000, events, 200) == [0, 75]
    assert drive_groups(grid, 5, 60, 10_000, events, 200) == [0, 75]


@pytest.mark.parametrize("seed", range(4))
def test_alerts_firing_again_notify_as_alertmanagers(grid: Grid, seed: int) -> None:
    """As ``test_groups_emptied_and_refilled_notify_as_alertmanagers``, each alert
    firing and resolving several times."""
    rng = random.Random(seed)
    again = 0
    for _ in range(150):
        group_wait = rng.choice([0, 1, 3, 10])
        group_interval = rng.choice([1, 2, 5, 10])
        repeat = rng.choice([1, 7, 25, 10_000])
        end = rng.randint(20, 120)
        ids = [f"al-{i}" for i in range(rng.randint(1, 3))]
        events: list[tuple[int, str, str]] = []
        for alert_id in ids:
            at, firing = (0, True) if alert_id == "al-0" else (rng.randint(1, end), False)
            while at <= end:
                if not (firing and alert_id == "al-0" and at == 0):
                    events.append((at, "resolve" if firing else "fire", alert_id))
                    firing = not firing
                else:
                    firing = True
                at += rng.randint(1, 25)
        events.sort()
        expected = am_groups(group_wait, group_interval, repeat, events, end)
        got = drive_groups(grid, group_wait, group_interval, repeat, events, end)
        assert got == expected, (group_wait, group_interval, repeat, events)
        again += len([e for e in events if e[1] == "fire"]) > len(ids)
    assert again > 50


def test_an_alert_new_to_a_group_with_no_alert_of_the_run_firing_is_not_a_late_repeat(
    grid: Grid,
) -> None:
    """t201: every alert of the run resolved and its group lives on (a muted alert of it
    fires: the response stage keeps ``all_resolved_at`` None); the group's ticks sent
    nothing. A new alert joining then is new at the group's next tick, not a repeat for
    the tick before it sent by the first check after it (before: off the group's ticks
    from then on, found by the timeline differential, seed 27)."""
    engine = PlaybookEngine(PLAYBOOK, grid)
    run, _ = engine.new_run("run-x", ALERT, START)
    run, _ = engine.alert_resolved(run, "al-0", START + 1)
    run.all_resolved_at = None  # a muted alert keeps the group (streams.response)
    for second in range(2, 10):  # ticks at 3, 6, 9: nothing firing, nothing sent
        run, cmds = engine.flush(run, 3, 4, START + second)
        assert not cmds
    run, _ = engine.join(run, "al-1", START + 10, 3)
    run, cmds = engine.flush(run, 3, 4, START + 10)
    assert not [c for c in cmds if c.action == "notify"]  # not a repeat for the tick at 9
    run, cmds = engine.flush(run, 3, 4, START + 12)
    assert [c.detail for c in cmds if c.action == "notify"] == ["new alerts in the group: al-1"]
    assert run.last_notified_at == START + 12
