"""The response stage notifies an alert that joins a notified run at the group's next
flush (trial 18): before, one joining within ``group_interval`` of the last notification
was never notified (the run was acknowledged) or only with the repeat, 4 h later by
default; Alertmanager notifies it at the next ``group_interval`` tick.

No broker: the context's sends are captured (as in test_response_races)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from playbooks.routing import new_silence
from streams.context import Context
from streams.errors import EventError
from streams.metrics import Metrics
from streams.response import OUTBOX, Response, routed_fields
from streams.settings import Settings
from tests.unit.streams.test_response_races import KEY, Event, alert

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def stage(tmp_path: Path) -> tuple[Response, list[dict[str, Any]]]:
    return make_stage(tmp_path)


def make_stage(tmp_path: Path) -> tuple[Response, list[dict[str, Any]]]:
    """A response stage on the fixture grid whose sends are captured: it and the sent
    values."""
    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("flushes", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    sent: list[dict[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(value for _, value in items if isinstance(value, dict))
        return []

    async def write(key: bytes, entry: bytes) -> None:
        return None

    async def nothing(*args: Any) -> None:
        return None

    async def audit_all(records: list[dict[str, Any]]) -> None:
        for record in records:
            await ctx.audit(record)  # (as sent: a test's own ``ctx.audit`` sees them)

    ctx.queue = queue  # type: ignore[method-assign]
    ctx.audit = nothing  # type: ignore[method-assign]
    ctx.audit_all = audit_all  # type: ignore[method-assign]
    ctx.groups._send = write  # type: ignore[method-assign]
    response = Response(ctx)
    response._update_lag = nothing  # type: ignore[method-assign]
    return response, sent


@pytest.fixture
def clock(stage: tuple[Response, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The response stage's clock, from 1,000,000 s, with its tables' recovery done."""
    return start_clock(stage[0], monkeypatch)


def start_clock(response: Response, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """``response``'s clock, from 1,000,000 s, with its tables' recovery done."""
    clock = Clock(1_000_000.0)
    monkeypatch.setattr("streams.response.time", clock)
    monkeypatch.setattr(response.ctx.app.tables.recovery.completed, "is_set", lambda: True)
    return clock


def notifies(sent: list[dict[str, Any]]) -> list[str]:
    return [s["detail"] for s in sent if s.get("action") == "notify"]


def test_an_alert_joining_an_acknowledged_run_is_notified_at_the_next_flush(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    response, sent = stage

    async def scenario() -> None:
        await response.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = response.ctx.groups.data[KEY]["run"]["run_id"]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "duty-operator"}
        clock.now += 10
        await response.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        clock.now += 50  # a minute after the first notification (group_interval 5 min)
        await response.on_routed(Event(KEY, alert("al-2")))  # type: ignore[arg-type]
        before = len(notifies(sent))
        clock.now += 200  # 4 min 20 s after it: no flush yet
        await response.check_deadlines()
        assert len(notifies(sent)) == before
        clock.now += 41  # 5 min 1 s: the flush
        await response.check_deadlines()
        assert notifies(sent)[before:] == ["new alerts in the group: al-2"]
        clock.now += 3_600  # acknowledged: nothing new, no repeat
        await response.check_deadlines()
        assert len(notifies(sent)) == before + 1

    asyncio.run(scenario())


ROUTING = """version: 1
route:
  playbook: flash-flood
  group_by: [alert_id]
  group_wait: 30s
  group_interval: 5m
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="minor"']
    equal: [district]
"""


def firing(alert_id: str, severity: str) -> dict[str, Any]:
    doc = alert(alert_id)
    labels = {"alert_id": alert_id, "kind": "water_level", "severity": severity, "district": "d1"}
    doc["alert"]["labels"] = labels
    doc["route"]["group_wait"] = 30.0
    return doc


def _muting_stage(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    routing_text: str = ROUTING,
    start: float = 1_000_000.0,
) -> tuple[Response, Context, list[dict[str, Any]], Clock]:
    """A response stage on ``routing_text`` with the fixture grid, whose queued outputs
    are kept in the list returned and whose clock is the ``Clock`` returned, at ``start``
    (epoch s; audit and the groups' writes dropped, recovery done): the mute tests'
    setting (the silences' and inhibitions' here, the time intervals' in
    test_time_mutes.py)."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_text)
    settings = Settings(
        run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml", routing_file=routing
    )
    app = faust.App(name, store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    sent: list[dict[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(value for _, value in items if isinstance(value, dict))
        return []

    async def nothing(*args: Any) -> None:
        return None

    ctx.queue = queue  # type: ignore[method-assign]
    ctx.audit = nothing  # type: ignore[method-assign]
    ctx.groups._send = nothing  # type: ignore[method-assign]
    response = Response(ctx)
    response._update_lag = nothing  # type: ignore[method-assign]
    clock = Clock(start)
    monkeypatch.setattr("streams.response.time", clock)
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    return response, ctx, sent, clock


@pytest.mark.parametrize("mute", ["inhibited", "silenced"])
def test_a_mute_that_came_during_group_wait_holds_the_first_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str
) -> None:
    """Trial 18: Alertmanager applies inhibition and silences at a group's flush; an alert
    whose inhibiting alert (or silence) came during its group_wait is never notified while
    that lasts, and is at the first flush after. citybrain decided when the alert arrived,
    so the run it opened notified after group_wait all the same."""
    response, ctx, sent, clock = _muting_stage(tmp_path, monkeypatch, "held")
    target = firing("al-minor", "minor")

    def actions() -> list[str]:
        return [s["action"] for s in sent if s.get("action") in ("notify", "notification_held")]

    async def scenario() -> None:
        # The minor alert arrives unmuted: routed, its run pending for group_wait.
        ctx.firing.data[b"al-minor"] = target["alert"]["labels"]
        await response.on_routed(Event(KEY, target))  # type: ignore[arg-type]
        clock.now += 5
        if mute == "inhibited":  # a critical alert of its district fires 5 s later
            ctx.firing.data[b"al-crit"] = firing("al-crit", "critical")["alert"]["labels"]
        else:  # an operator silences it 5 s later
            silence = new_silence("s-1", ['severity="minor"'], clock.now, clock.now + 600, "o", "r")
            ctx.silences.data[b"s-1"] = silence.to_dict()
        clock.now += 26  # group_wait over
        await response.check_deadlines()
        held = [s["detail"] for s in sent if s.get("action") == "notification_held"]
        by = "al-crit" if mute == "inhibited" else "s-1"
        assert held == [f"al-minor {mute} by {by}"]
        clock.now += 60
        await response.check_deadlines()  # still muted, before the next flush: nothing new
        assert actions() == ["notification_held"]
        if mute == "inhibited":
            del ctx.firing.data[b"al-crit"]  # the critical alert resolves
        else:
            clock.now += 600  # the silence ends
        clock.now += 300  # the next flush
        await response.check_deadlines()
        assert actions() == ["notification_held", "notify"]

    asyncio.run(scenario())


def test_a_run_whose_alerts_all_resolved_within_group_wait_is_withdrawn_unnotified(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """Trial 18: Alertmanager sends nothing for a group with no firing alert at its first
    flush. citybrain started the run when its group_wait ended and notified all the same;
    now it ends cancelled by citybrain, without compensation steps. A run covering citizen
    reports still starts (its reporters are owed an answer)."""
    response, sent = stage

    def routed(alert_id: str, status: str = "firing") -> Event:
        doc = alert(alert_id)
        doc["alert"]["status"] = status
        doc["route"]["group_wait"] = 30.0
        return Event(KEY, doc)

    async def scenario() -> dict[str, Any]:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        clock.now += 5
        await response.on_routed(routed("al-2"))  # type: ignore[arg-type]  # joins
        clock.now += 5
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        await response.on_routed(routed("al-2", "resolved"))  # type: ignore[arg-type]
        clock.now += 21  # group_wait over
        await response.check_deadlines()
        return dict(response.ctx.groups.data[KEY]["run"])

    run = asyncio.run(scenario())
    assert (run["status"], run["resolved_by"]) == ("cancelled", "citybrain")
    actions = [s["action"] for s in sent if s.get("action") != "transition"]
    assert actions == [
        "run_created",
        "alert_joined",
        "alert_resolved",
        "alert_resolved",
        "cancelled",
    ]
    assert "resolved within group_wait" in sent[-1]["detail"]


def test_a_run_with_one_alert_still_firing_starts_after_group_wait(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    response, sent = stage

    async def scenario() -> None:
        for alert_id, status in (("al-1", "firing"), ("al-2", "firing"), ("al-1", "resolved")):
            doc = alert(alert_id)
            doc["alert"]["status"], doc["route"]["group_wait"] = status, 30.0
            await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        clock.now += 31
        await response.check_deadlines()

    asyncio.run(scenario())
    assert response.ctx.groups.data[KEY]["run"]["status"] == "waiting_ack"
    assert notifies(sent)


@pytest.mark.parametrize("mute", ["inhibited", "silenced"])
def test_a_mute_that_came_after_the_first_notification_holds_the_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str
) -> None:
    """t58: Alertmanager applies inhibition and silences at every flush, so a notified
    group whose alerts all become silenced or inhibited gets no repeat while that lasts,
    and the repeat comes at the first flush after it ends (counted from the last real
    notification). citybrain checked mutes at the first flush only and repeated "still
    unacknowledged" every repeat_interval under a silence or an inhibiting alert."""
    response, ctx, sent, clock = _muting_stage(tmp_path, monkeypatch, "held-repeats")
    target = firing("al-minor", "minor")
    # group_interval 5 min, repeat_interval 10 min.
    target["route"].update(group_interval=300.0, repeat_interval=600.0)

    def actions() -> list[str]:
        return [
            f"{s['action']}: {s['detail']}"
            for s in sent
            if s.get("action") in ("notify", "notification_held")
        ]

    async def tick(seconds: int) -> None:
        for _ in range(seconds):  # the worker's deadline check, once a second
            clock.now += 1
            await response.check_deadlines()

    async def scenario() -> None:
        ctx.firing.data[b"al-minor"] = target["alert"]["labels"]
        await response.on_routed(Event(KEY, target))  # type: ignore[arg-type]
        await tick(31)  # group_wait over: notified
        started = len(actions())
        assert started >= 1
        notified_at = response.ctx.groups.data[KEY]["run"]["last_notified_at"]
        await tick(60)
        if mute == "inhibited":  # a critical alert of its district fires
            ctx.firing.data[b"al-crit"] = firing("al-crit", "critical")["alert"]["labels"]
        else:  # an operator silences it for 20 minutes
            silence = new_silence(
                "s-1", ['severity="minor"'], clock.now, clock.now + 1200, "o", "r"
            )
            ctx.silences.data[b"s-1"] = silence.to_dict()
        # The repeat was due 10 min after the notification: held, said once.
        await tick(int(notified_at + 900 - clock.now))
        by = "al-crit" if mute == "inhibited" else "s-1"
        assert actions()[started:] == [f"notification_held: al-minor {mute} by {by}"]
        if mute == "inhibited":
            del ctx.firing.data[b"al-crit"]  # the critical alert resolves
        await tick(int(notified_at + 1201 - clock.now))  # the silence too has ended
        # Held at 10 and 15 min, and 20 min for the silence; the repeat at the next flush.
        repeat_at = notified_at + (1200 if mute == "inhibited" else 1500)
        await tick(int(repeat_at - clock.now) + 1)
        assert actions()[started:] == [
            f"notification_held: al-minor {mute} by {by}",
            "notify: repeat: still unacknowledged",
        ]
        assert response.ctx.groups.data[KEY]["run"]["last_notified_at"] == repeat_at

    asyncio.run(scenario())


def test_an_alert_freed_from_a_mute_notifies_at_its_groups_next_flush(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """Alertmanager keeps a muted alert in its aggregation group, which flushes (sending
    nothing) group_wait after the alert arrived and every group_interval after; freed
    (its silence expired or deleted, its inhibiting alert resolved), the alert goes out
    at the group's next flush (a real Alertmanager: test_alertmanager_server.py). The run
    its release opened notified group_wait after the release instead."""
    response, sent = stage
    muted_at = clock.now
    doc = alert("al-1")
    doc["route"]["group_wait"] = 30.0  # group_interval 300 s
    doc["grouped_at"] = muted_at

    async def scenario() -> None:
        clock.now = muted_at + 100  # the silence ends; routed at its next check
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        created = [s for s in sent if s.get("action") == "run_created"]
        assert created[0]["detail"].startswith("group_wait 230s (the group's next flush")
        for at in (131, 329):  # a fresh group_wait ended; the flush not yet
            clock.now = muted_at + at
            await response.check_deadlines()
            assert notifies(sent) == []
        clock.now = muted_at + 330  # the group's first flush after the release
        await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


def test_a_routed_message_whose_grouped_at_is_no_time_is_refused_naming_it() -> None:
    doc = alert("al-1")
    doc["grouped_at"] = "yesterday"
    with pytest.raises(EventError, match="grouped_at") as caught:
        routed_fields(doc)
    assert (caught.value.code, caught.value.field) == ("bad_routed", "grouped_at")


def muted_notice(alert_id: str, since: float) -> dict[str, Any]:
    """The routed notice of an alert muted on arrival (``Alerting._on_alert``)."""
    return {"muted": {"alert_id": alert_id}, "route": alert(alert_id)["route"], "grouped_at": since}


@pytest.mark.parametrize("member", ["firing", "resolved", "resolved-before-its-flush"])
def test_an_alert_coming_to_a_group_holding_a_muted_alert_notifies_at_its_next_flush(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock, member: str
) -> None:
    """Alertmanager's group exists from its first alert, muted or not, and flushes every
    group_interval: an unmuted alert coming to it later is notified at its next flush
    (group_interval 300 s after the first), not group_wait after it came. A muted alert
    that resolved stays in the group until that group's next flush deletes it (t196:
    before, its resolution ended the group at once, and an alert coming before that
    flush waited group_wait, as in a fresh group; fails on the old code); after it, a
    new alert waits group_wait again."""
    response, sent = stage
    muted_at = clock.now
    came = muted_at + (400 if member == "resolved" else 100)

    async def scenario() -> None:
        await response.on_routed(Event(KEY, muted_notice("al-muted", muted_at)))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY]["muted"] == {"al-muted": muted_at}
        if member != "firing":
            gone = alert("al-muted")  # group_wait 0: the group flushes at 0, 300, ...
            gone["alert"]["status"] = "resolved"
            clock.now += 50
            await response.on_routed(Event(KEY, gone))  # type: ignore[arg-type]
            assert response.ctx.groups.data[KEY]["muted"] == {}
            assert response.ctx.groups.data[KEY]["muted_gone"] == {
                "made": muted_at,
                "until": muted_at + 300,  # the flush that deletes the group
            }
        clock.now = came
        doc = alert("al-new")
        doc["route"]["group_wait"] = 30.0
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        # A member still firing stays one (t202: before, the run's opening dropped it;
        # released, it joins the run); resolved ones are gone.
        kept = {"al-muted": muted_at} if member == "firing" else None
        assert response.ctx.groups.data[KEY].get("muted") == kept
        assert "muted_gone" not in response.ctx.groups.data[KEY]
        clock.now = came + 31
        await response.check_deadlines()
        if member == "resolved":
            assert len(notifies(sent)) == 1  # group_wait after it came: a fresh group
            return
        assert notifies(sent) == []
        clock.now = muted_at + 330  # the group's flush
        await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


def test_a_muted_alert_keeps_the_group_of_a_run_whose_alerts_resolved(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t196: a run's alerts all resolved; before the flush that would empty its group,
    an alert of the group comes muted: Alertmanager's group holds it and lives on, so
    once freed it goes out at the group's next flush, and a repeat is not sent for a
    tick before it. citybrain's group emptied at that flush all the same: the freed
    alert started a fresh group, notified group_wait (here 0 s) after its release, not
    at the group's tick. Fails on the old code."""
    response, sent = stage
    start = clock.now

    def routed(alert_id: str, status: str = "firing") -> Event:
        doc = alert(alert_id)  # group_wait 0, group_interval 300 s, repeat 1 h
        doc["alert"]["status"] = status
        return Event(KEY, doc)

    async def scenario() -> None:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 100
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        clock.now = start + 200  # al-2 comes muted before the flush at 300
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        clock.now = start + 301
        await response.check_deadlines()
        clock.now = start + 400  # al-2 freed: routed, it joins the run
        await response.on_routed(routed("al-2"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1  # not a fresh group's at once
        clock.now = start + 600  # the group's tick
        await response.check_deadlines()
        assert notifies(sent)[1:] == ["new alerts in the group: al-2"]

    asyncio.run(scenario())


def test_a_muted_alert_freed_after_earlier_members_resolved_keeps_to_the_earliest(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t201 (the timeline differential's seed 37, timeline 13, reduced): al-1 comes
    muted at 0, al-2 at 100; al-1 resolves while al-2 is still muted; al-2 is freed at
    200. Alertmanager's group, made at 0, holds al-2 all along: its first notification
    is at that group's flush (300 s; group_wait 0, group_interval 300 s), not a flush of
    a group made when al-2 came (400 s). Fails on the old code (``muted_gone`` was read only when members remained or
    its ``until`` was set)."""
    response, sent = stage
    start = clock.now

    async def scenario() -> None:
        await response.on_routed(Event(KEY, muted_notice("al-1", start)))  # type: ignore[arg-type]
        clock.now = start + 100
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        clock.now = start + 150
        gone = alert("al-1")
        gone["alert"]["status"] = "resolved"
        await response.on_routed(Event(KEY, gone))  # type: ignore[arg-type]
        clock.now = start + 200  # al-2 freed: it opens the group's run
        freed = alert("al-2") | {"grouped_at": start + 100}  # group_wait 0
        await response.on_routed(Event(KEY, freed))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert notifies(sent) == []
        clock.now = start + 301  # the flush of the group made at 0 (0, 300, 600, ...)
        await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


def test_a_muted_alert_coming_before_a_resolved_members_flush_keeps_the_earliest(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t202 (the timeline differential's seed 55, timeline 13 of the wide draws,
    reduced): al-1 comes muted at 0 and resolves at 50, the group's next flush (which
    would delete it) at 300; al-2 comes muted at 100, before it, and is freed at 350.
    Alertmanager's group, made at 0, holds al-2 all along: its first notification is at
    that group's flush at 600 (group_wait 0, group_interval 300 s), not at a flush of a
    group made when al-2 came (400). Fails on the old code (``muted_gone`` kept its
    ``until``, 300, so was no longer read at 350)."""
    response, sent = stage
    start = clock.now

    async def scenario() -> None:
        await response.on_routed(Event(KEY, muted_notice("al-1", start)))  # type: ignore[arg-type]
        clock.now = start + 50
        gone = alert("al-1")
        gone["alert"]["status"] = "resolved"
        await response.on_routed(Event(KEY, gone))  # type: ignore[arg-type]
        clock.now = start + 100
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY]["muted_gone"] == {"made": start, "until": None}
        clock.now = start + 350  # al-2 freed: it opens the group's run
        freed = alert("al-2") | {"grouped_at": start + 100}  # group_wait 0
        await response.on_routed(Event(KEY, freed))  # type: ignore[arg-type]
        await response.check_deadlines()
        clock.now = start + 401  # a flush of a group made at 100: not this group's
        await response.check_deadlines()
        assert notifies(sent) == []
        clock.now = start + 601  # the flush of the group made at 0 (0, 300, 600, ...)
        await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("member", ["firing", "resolved-before-the-flush"])
def test_a_muted_alert_coming_while_the_run_is_open_keeps_its_group(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock, member: str
) -> None:
    """t201 (the timeline differential's seed 25, timeline 5, reduced): an alert of the
    group comes muted while the run's alert fires; then the run's alert resolves.
    Alertmanager's group holds the muted alert, so the flush after that resolution does
    not delete it, and an alert coming later goes out at the group's next tick (here 600
    s), not as a fresh group's (group_wait 0: at once). citybrain recorded a muted alert
    only while no run was open: the run's resolution emptied the group at that flush.
    Fails on the old code. Once the muted alert resolves too, before that flush, the
    flush empties the group, as Alertmanager deletes it: a later alert starts afresh."""
    response, sent = stage
    start = clock.now

    def routed(alert_id: str, status: str = "firing") -> Event:
        doc = alert(alert_id)  # group_wait 0, group_interval 300 s, repeat 1 h
        doc["alert"]["status"] = status
        return Event(KEY, doc)

    async def scenario() -> None:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 100  # al-2 comes muted, the run open (al-1 fires)
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        clock.now = start + 150
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        if member == "resolved-before-the-flush":
            clock.now = start + 200
            await response.on_routed(routed("al-2", "resolved"))  # type: ignore[arg-type]
        clock.now = start + 301  # the flush after al-1's resolution
        await response.check_deadlines()
        clock.now = start + 400
        await response.on_routed(routed("al-3"))  # type: ignore[arg-type]
        await response.check_deadlines()
        if member == "resolved-before-the-flush":  # the group emptied: a fresh one
            assert notifies(sent)[1:] == [
                "new alerts in a fresh group (its alerts had all resolved): al-3"
            ]
            return
        assert len(notifies(sent)) == 1  # not a fresh group's at once
        clock.now = start + 600  # the group's tick
        await response.check_deadlines()
        assert notifies(sent)[1:] == ["new alerts in the group: al-3"]

    asyncio.run(scenario())


def test_an_alert_coming_to_a_group_a_muted_alert_keeps_is_not_a_repeat_off_its_ticks(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t201 (the timeline differential's seed 27, timeline 2, reduced): the run's alert
    resolved, a muted alert keeps the group, whose ticks send nothing; a new alert then
    fires. Alertmanager notifies it at the group's next tick as new; citybrain's first
    check after it found the repeat due at the tick before it (repeat_interval passed,
    an alert now firing) and sent a repeat at once, off the group's ticks from then on.
    Fails on the old code (as the muted alert did not keep the group there, on the code
    before this commit's first change only)."""
    response, sent = stage
    start = clock.now

    def routed(alert_id: str, status: str = "firing") -> Event:
        doc = alert(alert_id)  # group_wait 0, group_interval 300 s, repeat 500 s
        doc["route"] = {**doc["route"], "repeat_interval": 500.0}
        doc["alert"]["status"] = status
        return Event(KEY, doc)

    async def scenario() -> None:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 100  # al-2 comes muted, the run open (al-1 fires)
        notice = muted_notice("al-2", clock.now)
        notice["route"] = {**notice["route"], "repeat_interval": 500.0}
        await response.on_routed(Event(KEY, notice))  # type: ignore[arg-type]
        clock.now = start + 150
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        for at in (301, 601):  # the group's ticks: nothing firing unmuted, nothing sent
            clock.now = start + at
            await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 700
        await response.on_routed(routed("al-3"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1  # no repeat for the tick at 600
        clock.now = start + 901  # the group's tick
        await response.check_deadlines()
        assert notifies(sent)[1:] == ["new alerts in the group: al-3"]

    asyncio.run(scenario())


def test_a_pending_run_whose_alerts_resolved_while_a_muted_alert_fires_is_held(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t201: a pending run's group takes a muted alert, then the run's alert resolves
    within group_wait: Alertmanager's group holds the muted alert and flushes on, so
    the run waits for the group's next flush rather than being withdrawn; once the
    muted alert is freed it goes out at that group's tick. Before, the run was withdrawn
    (the muted alert was recorded only while no run was open), and the freed alert
    opened a run of its own, notified off the group's flushes. Fails on the old code."""
    response, sent = stage
    start = clock.now

    def message(alert_id: str, status: str = "firing") -> dict[str, Any]:
        doc = alert(alert_id)
        doc["route"] = {**doc["route"], "group_wait": 30.0}
        doc["alert"]["status"] = status
        return doc

    def routed(alert_id: str, status: str = "firing") -> Event:
        return Event(KEY, message(alert_id, status))

    async def scenario() -> None:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        run_id = response.ctx.groups.data[KEY]["run"]["run_id"]
        clock.now = start + 10
        notice = {**muted_notice("al-2", clock.now), "route": message("al-2")["route"]}
        await response.on_routed(Event(KEY, notice))  # type: ignore[arg-type]
        clock.now = start + 20
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        clock.now = start + 31  # the group's first flush: nothing firing unmuted
        await response.check_deadlines()
        run = response.ctx.groups.data[KEY]["run"]
        assert (run["run_id"], run["status"]) == (run_id, "pending")
        clock.now = start + 100  # al-2 freed: it joins the held run
        freed = message("al-2") | {"grouped_at": start + 10}
        await response.on_routed(Event(KEY, freed))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert notifies(sent) == []
        clock.now = start + 331  # the group's tick (30 s + 300 s)
        await response.check_deadlines()
        run = response.ctx.groups.data[KEY]["run"]
        assert (run["run_id"], run["status"]) == (run_id, "waiting_ack")
        assert run["alerts"] == ["al-1", "al-2"]
        assert len(notifies(sent)) == 1  # its first notification, at the group's tick

    asyncio.run(scenario())


def test_a_notice_for_a_group_with_an_open_run_only_records_the_member(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """The run is unchanged; the muted alert is a member of the group (t201: before,
    nothing was recorded, so the group died with the run's own alerts)."""
    response, _ = stage

    async def scenario() -> None:
        await response.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        before = dict(response.ctx.groups.data[KEY])
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY] == {**before, "muted": {"al-2": clock.now}}
        # Read again (a redelivery): the same.
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now + 1)))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY] == {**before, "muted": {"al-2": clock.now}}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"muted": "al-1"}, "muted"),
        ({"muted": {"alert_id": ""}}, "muted.alert_id"),
        ({"muted": {}}, "muted.alert_id"),
        ({"grouped_at": None}, "grouped_at"),
        ({"grouped_at": 1e300}, "grouped_at"),
    ],
)
def test_a_muted_notice_that_is_not_the_workers_shape_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    doc = {**muted_notice("al-1", 1_000_000.0), **change}
    if change == {"grouped_at": None}:
        del doc["grouped_at"]
    with pytest.raises(EventError) as caught:
        routed_fields(doc)
    assert (caught.value.code, caught.value.field) == ("bad_routed", field)


def started(alert_id: str, seconds_ago: float, now: float) -> dict[str, Any]:
    """A routed alert (group_wait 30 s) that started ``seconds_ago`` before ``now``."""
    doc = alert(alert_id)
    doc["route"]["group_wait"] = 30.0
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - seconds_ago))
    doc["alert"]["started_at"] = f"{at}Z"
    return doc


@pytest.mark.parametrize(("ago", "notified_at"), [(60, 0), (10, 30)])
def test_an_alert_that_started_more_than_group_wait_ago_is_notified_at_once(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock, ago: int, notified_at: int
) -> None:
    """Alertmanager flushes a group that has not flushed yet at once when an alert put in
    it started more than group_wait ago (``aggrGroup.insert``; a real Alertmanager:
    test_alertmanager_server.py): an alert held before routing (a corroboration grace, a
    replay) is not held group_wait again. citybrain waited group_wait from its arrival."""
    response, sent = stage
    clock.now = t0 = 1_800_000_000.0  # an alert's time is from 1990 on

    async def scenario() -> None:
        await response.on_routed(Event(KEY, started("al-1", ago, t0)))  # type: ignore[arg-type]
        await response.check_deadlines()
        if notified_at:
            assert notifies(sent) == []
            clock.now = t0 + notified_at
            await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


def test_an_old_alert_joining_a_pending_run_flushes_it_at_once(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    response, sent = stage
    clock.now = t0 = 1_800_000_000.0  # an alert's time is from 1990 on

    async def scenario() -> None:
        await response.on_routed(Event(KEY, started("al-1", 0, t0)))  # type: ignore[arg-type]
        clock.now += 5
        await response.check_deadlines()
        assert notifies(sent) == []
        await response.on_routed(Event(KEY, started("al-2", 120, clock.now)))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1

    asyncio.run(scenario())


def waiting(alert_id: str, status: str = "firing") -> Event:
    """``alert_id`` routed to the flood route with group_wait 30 s, group_interval 5 min."""
    doc = alert(alert_id)
    doc["alert"]["status"] = status
    doc["route"]["group_wait"] = 30.0
    return Event(KEY, doc)


def test_an_alert_after_the_runs_alerts_all_resolved_waits_a_fresh_group_wait(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t71: Alertmanager deletes a group once the flush after its last alert resolved has
    run; the next alert of the key makes a fresh group that waits group_wait. The run
    stays open (people close runs); al-2 went out at the old group's next tick (330 s
    after al-1 came, 200 s after it) and now goes out group_wait after it."""
    response, sent = stage

    async def scenario() -> None:
        t0 = clock.now
        await response.on_routed(waiting("al-1"))  # type: ignore[arg-type]
        clock.now = t0 + 31
        await response.check_deadlines()  # group_wait over: the first notification
        first = len(notifies(sent))
        assert first == 1
        clock.now = t0 + 40
        await response.on_routed(waiting("al-1", "resolved"))  # type: ignore[arg-type]
        clock.now = t0 + 400  # the flush at 331 sent the resolution: the group is gone
        await response.on_routed(waiting("al-2"))  # type: ignore[arg-type]
        run = response.ctx.groups.data[KEY]["run"]
        assert run["status"] != "resolved" and run["first_flush_at"] == t0 + 430
        clock.now = t0 + 429
        await response.check_deadlines()
        assert len(notifies(sent)) == first
        clock.now = t0 + 431
        await response.check_deadlines()
        assert notifies(sent)[first:] == [
            "new alerts in a fresh group (its alerts had all resolved): al-2"
        ]

    asyncio.run(scenario())


def test_a_new_run_of_a_group_whose_closed_run_still_fires_goes_out_at_its_next_tick(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t71: people resolved the run while al-1 still fires; Alertmanager never deleted
    that group, so al-2 goes out at the group's next tick (group_interval after the last
    notification), not group_wait after it came as a group of its own."""
    response, sent = stage

    async def scenario() -> None:
        t0 = clock.now
        await response.on_routed(waiting("al-1"))  # type: ignore[arg-type]
        clock.now = t0 + 30
        await response.check_deadlines()
        run_id = response.ctx.groups.data[KEY]["run"]["run_id"]
        clock.now = t0 + 60
        done = {"id": "cmd-1", "run_id": run_id, "action": "resolve", "by": "op", "note": "ok"}
        await response.on_command(Event(KEY, done))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY]["run"]["status"] == "resolved"
        clock.now = t0 + 100
        await response.on_routed(waiting("al-2"))  # type: ignore[arg-type]
        created = [s for s in sent if s.get("action") == "run_created"][-1]
        assert created["detail"].startswith("group_wait 230s (the group's next flush"), created

    asyncio.run(scenario())


def test_a_run_s_state_with_its_outbox_is_encoded_once(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measured for its size, then encoded again by set_many_delivered's own check and
    # again to be sent: three encodes of a run's state and outbox per change (t103).
    response, _ = stage
    groups = response.ctx.groups
    encoded: list[bytes] = []
    sent: list[bytes] = []
    encode = groups.encode

    def counted(value: Any) -> bytes:
        encoded.append(encode(value))
        return encoded[-1]

    async def send(key: bytes, entry: bytes) -> None:
        sent.append(entry)

    monkeypatch.setattr(groups, "encode", counted)
    monkeypatch.setattr(groups, "_send", send)
    asyncio.run(response.on_routed(Event(KEY, alert("al-1"))))  # type: ignore[arg-type]
    with_outbox = [e for e in encoded if orjson.loads(e).get(OUTBOX)]
    assert len(with_outbox) == 1
    assert with_outbox[0] in sent  # written as measured
    assert not orjson.loads(sent[-1]).get(OUTBOX)  # then the state, its outbox sent


def test_a_freed_alert_read_again_after_a_kill_leaves_no_muted_member(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t120: a muted alert freed when its silence expired opened its group's run, which
    was cancelled; the worker was SIGKILLed before its routed offsets were committed and
    read both messages again: the muted notice (the run finished: a member again) and the
    freed alert (seen: a repeat, returned before its member's removal was stored). The
    group kept the member for good: never forgotten, and every later run of the group
    dated by that old mute. Read again, the freed alert leaves no member, as the first
    time."""
    response, _ = stage
    muted_at = clock.now

    async def scenario() -> None:
        notice = Event(KEY, muted_notice("al-m", muted_at))
        freed = Event(KEY, {**alert("al-m"), "grouped_at": muted_at})
        await response.on_routed(notice)  # type: ignore[arg-type]
        clock.now += 60
        await response.on_routed(freed)  # type: ignore[arg-type]
        group = response.ctx.groups.data[KEY]
        assert not group.get("muted")
        cancel = {"id": "c-1", "run_id": group["run"]["run_id"], "action": "cancel", "by": "op"}
        await response.on_command(Event(KEY, cancel))  # type: ignore[arg-type]
        before = response.ctx.groups.data[KEY]["run"]
        for repeat in (notice, freed):  # the restarted worker's re-reading
            await response.on_routed(repeat)  # type: ignore[arg-type]
        group = response.ctx.groups.data[KEY]
        assert not group.get("muted"), group.get("muted")
        assert group["run"] == before  # nothing else changed

    asyncio.run(scenario())


def test_a_routed_route_with_a_zero_group_interval_is_refused_naming_it(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t161: the routing file refuses a zero ``group_interval``, as Alertmanager does (the
    zero-repeat-interval field case), but the routed topic took one, as a worker from
    before that rule writes it: an alert coming to a group holding a muted alert failed
    with a ZeroDivisionError where its run's first flush was reckoned, and one opening a
    run gave it a group that never flushed (an alert joining it never notified). Now
    ``bad_routed`` naming the field (the routed agent dead-letters it,
    ``Context.guarded``); the group is left as it was."""
    response, _ = stage
    muted_at = clock.now

    async def scenario() -> None:
        await response.on_routed(Event(KEY, muted_notice("al-muted", muted_at)))  # type: ignore[arg-type]
        clock.now += 100
        doc = alert("al-new")
        doc["route"]["group_interval"] = 0
        with pytest.raises(EventError) as caught:
            await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.field) == ("bad_routed", "route.group_interval")
        assert str(caught.value).startswith(
            'field "route.group_interval" is 0: expected seconds above 0 to 9.2e9 (292 years): '
            "a group_interval of zero is refused"
        ), str(caught.value)

    asyncio.run(scenario())
    group = response.ctx.groups.data[KEY]
    assert group["run"] is None and group["muted"] == {"al-muted": muted_at}


def test_a_routed_repeat_interval_of_zero_an_older_worker_wrote_repeats_at_each_flush(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """A ``repeat_interval`` of 0 in a routed message (a worker from before the routing
    file's rule wrote it) is taken, as that door takes what earlier workers wrote (t146):
    the unacknowledged run repeats at each group_interval (300 s), as a repeat_interval
    shorter than group_interval does, never once a second."""
    response, sent = stage

    async def scenario() -> None:
        doc = alert("al-1")
        doc["route"]["repeat_interval"] = 0
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        await response.check_deadlines()
        first = len(notifies(sent))
        for _ in range(299):
            clock.now += 1
            await response.check_deadlines()
        assert len(notifies(sent)) == first
        clock.now += 1
        await response.check_deadlines()
        assert notifies(sent)[first:] == ["repeat: still unacknowledged"]

    asyncio.run(scenario())


def test_an_alert_firing_again_after_its_resolution_is_notified_again(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t196: an alert that resolved and fires again is the same alert firing again in
    its Alertmanager group, notified at the group's next flush (here a fresh group: its
    one alert's resolution emptied it). The response stage took its second firing for
    the first read again ("runs are idempotent per alert"): never notified again. Fails
    on the old code."""
    response, sent = stage

    offsets = iter(range(100))

    def routed(status: str) -> Event:
        doc = alert("al-1")  # group_wait 0, group_interval 300 s
        doc["alert"]["status"] = status
        event = Event(KEY, doc)
        event.message.offset = next(offsets)  # each its own message, in order
        return event

    async def scenario() -> None:
        await response.on_routed(routed("firing"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now += 10
        await response.on_routed(routed("resolved"))  # type: ignore[arg-type]
        clock.now += 300  # the flush that empties the group
        await response.check_deadlines()
        clock.now += 100
        again = routed("firing")
        first = Event(KEY, alert("al-1"))  # the first firing read again (after a kill)
        first.message.offset = 0
        await response.on_routed(first)  # type: ignore[arg-type]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1  # not taken for a new firing
        await response.on_routed(again)  # type: ignore[arg-type]
        await response.check_deadlines()
        assert notifies(sent)[1:] == [
            "new alerts in a fresh group (its alerts had all resolved): al-1"
        ]
        assert response.ctx.groups.data[KEY]["run"]["ended_alerts"] == []

    asyncio.run(scenario())


@pytest.mark.parametrize("mute", ["inhibited", "silenced"])
def test_an_alert_muted_at_a_notification_is_notified_once_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str
) -> None:
    """t196: Alertmanager's notification carries the group's firing alerts not muted at
    the flush, and its notification log only those: an alert of the group muted then
    (silenced, or inhibited, as by the other side of a pair of rules inhibiting each
    other) is new to the first flush after its mute ends. The run had it as notified:
    it went out only with a repeat (an hour later here), or never. Fails on the old
    code."""
    response, ctx, sent, clock = _muting_stage(tmp_path, monkeypatch, f"left-out-{mute}")
    one, two = firing("al-1", "major"), firing("al-2", "minor")

    async def scenario() -> None:
        for doc in (one, two):  # one group (KEY): group_wait 30 s, group_interval 5 min
            ctx.firing.data[doc["alert"]["alert_id"].encode()] = doc["alert"]["labels"]
            await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        clock.now += 5  # within group_wait al-2 is muted
        if mute == "inhibited":
            ctx.firing.data[b"al-crit"] = firing("al-crit", "critical")["alert"]["labels"]
        else:
            silence = new_silence("s-1", ['alert_id="al-2"'], clock.now, clock.now + 95, "o", "r")
            ctx.silences.data[b"s-1"] = silence.to_dict()
        clock.now += 26  # the first flush: al-1 notified, al-2 left out
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        assert response.ctx.groups.data[KEY]["run"]["left_out"] == ["al-2"]
        clock.now += 100  # the mute is over
        if mute == "inhibited":
            del ctx.firing.data[b"al-crit"]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1  # not before the group's next flush
        clock.now += 200  # 5 min after the first notification
        await response.check_deadlines()
        assert notifies(sent)[1:] == ["new alerts in the group: al-2"]
        assert response.ctx.groups.data[KEY]["run"]["left_out"] == []

    asyncio.run(scenario())


def test_a_pending_run_whose_group_took_a_muted_alert_is_held_not_withdrawn(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t196: a pending run's one alert resolved within group_wait, and another alert of
    its group came muted: Alertmanager's group (made with the first alert, flushing at
    30 s and every 5 min after) holds the muted alert, so once freed it goes out at that
    group's next flush (330 s). The run was withdrawn at 30 s; the freed alert opened a
    run of its own, notified at 340 s (its own first mute's lattice). Fails on the old
    code."""
    response, sent = stage
    start = clock.now

    def routed(alert_id: str, status: str = "firing", **extra: Any) -> Event:
        doc = alert(alert_id)
        doc["alert"]["status"] = status
        doc["route"]["group_wait"] = 30.0  # group_interval 300 s
        return Event(KEY, {**doc, **extra})

    async def scenario() -> None:
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        clock.now = start + 5
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        clock.now = start + 10
        await response.on_routed(Event(KEY, muted_notice("al-2", clock.now)))  # type: ignore[arg-type]
        clock.now = start + 31
        await response.check_deadlines()
        run = response.ctx.groups.data[KEY]["run"]
        assert (run["status"], run["run_id"]) == ("pending", f"{KEY.decode()}.1")
        clock.now = start + 100  # al-2 freed
        await response.on_routed(routed("al-2", grouped_at=start + 10))  # type: ignore[arg-type]
        clock.now = start + 331
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        assert response.ctx.groups.data[KEY]["run"]["run_id"] == f"{KEY.decode()}.1"

    asyncio.run(scenario())


def test_a_muted_alert_that_came_before_the_run_opened_keeps_its_group(
    stage: tuple[Response, list[dict[str, Any]]], clock: Clock
) -> None:
    """t202 (the timeline differential's seed 76, timeline 1, reduced): al-m comes muted
    at 0, making the group (group_wait 0, group_interval 300 s: flushes at 0, 300, 600);
    al-1 opens its run at 10 and resolves at 20, al-m still muted. Alertmanager's group
    holds al-m and flushes on, so al-2 coming at 400 goes out at 600. The run's opening
    dropped the group's muted members: the pending run was withdrawn at 300, and al-2
    opened a fresh group, notified at once. Fails on the old code."""
    response, sent = stage
    start = clock.now

    def routed(alert_id: str, status: str = "firing") -> Event:
        doc = alert(alert_id)  # group_wait 0, group_interval 300 s
        doc["alert"]["status"] = status
        return Event(KEY, doc)

    async def scenario() -> None:
        await response.on_routed(Event(KEY, muted_notice("al-m", start)))  # type: ignore[arg-type]
        clock.now = start + 10
        await response.on_routed(routed("al-1"))  # type: ignore[arg-type]
        assert response.ctx.groups.data[KEY]["muted"] == {"al-m": start}
        clock.now = start + 20
        await response.on_routed(routed("al-1", "resolved"))  # type: ignore[arg-type]
        clock.now = start + 301
        await response.check_deadlines()
        assert response.ctx.groups.data[KEY]["run"]["status"] == "pending"  # held
        clock.now = start + 400
        await response.on_routed(routed("al-2"))  # type: ignore[arg-type]
        await response.check_deadlines()
        assert notifies(sent) == []
        clock.now = start + 601
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        assert response.ctx.groups.data[KEY]["run"]["run_id"] == f"{KEY.decode()}.1"

    asyncio.run(scenario())


@pytest.mark.parametrize("mute", ["inhibited", "silenced"])
def test_an_alert_new_to_a_notified_group_but_muted_at_its_flush_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str
) -> None:
    """t202 (the timeline differential's seed 33, timeline 4): an alert joins a notified
    group and is muted at the next flush, the group's other alert firing and already
    notified. Alertmanager's MuteStage drops it before its DedupStage, which finds every
    firing alert left in its notification log: nothing is sent, and the alert is new to
    the first flush after its mute ends. citybrain counted it new at that flush and
    notified the other alert again. Fails on the old code."""
    response, ctx, sent, clock = _muting_stage(tmp_path, monkeypatch, f"new-muted-{mute}")
    one, two = firing("al-1", "major"), firing("al-2", "minor")
    start = clock.now

    async def route(doc: dict[str, Any], offset: int) -> None:
        ctx.firing.data[doc["alert"]["alert_id"].encode()] = doc["alert"]["labels"]
        event = Event(KEY, doc)
        event.message.offset = offset
        await response.on_routed(event)  # type: ignore[arg-type]

    async def scenario() -> None:
        await route(one, 0)  # group_wait 30 s, group_interval 5 min
        clock.now = start + 30
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 60
        await route(two, 1)  # joins the notified group
        clock.now = start + 200  # muted before the group's next flush
        if mute == "inhibited":
            ctx.firing.data[b"al-crit"] = firing("al-crit", "critical")["alert"]["labels"]
        else:
            silence = new_silence("s-1", ['alert_id="al-2"'], clock.now, start + 400, "o", "r")
            ctx.silences.data[b"s-1"] = silence.to_dict()
        clock.now = start + 330  # the flush: al-2 muted, al-1 already notified
        await response.check_deadlines()
        assert len(notifies(sent)) == 1, notifies(sent)
        clock.now = start + 410  # the mute is over: not before the group's next flush
        if mute == "inhibited":
            del ctx.firing.data[b"al-crit"]
        await response.check_deadlines()
        assert len(notifies(sent)) == 1, notifies(sent)
        clock.now = start + 630
        await response.check_deadlines()
        assert notifies(sent)[1:] == ["new alerts in the group: al-2"]

    asyncio.run(scenario())


@pytest.mark.parametrize("resolved", ["not-muted", "muted"])
def test_a_flush_finding_no_alert_firing_unmuted_but_one_resolved_empties_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolved: str
) -> None:
    """t202 (the timeline differential's seed 37, timeline 3): two alerts notified; one
    is silenced, the other resolves. At the group's next flush nothing fires unmuted but
    a resolved alert is there: Alertmanager's DedupStage passes it on (``needsUpdate``:
    no firing alert, the last entry had some), the webhook (``send_resolved: false``)
    sends nothing, and the notification log is written with no firing alert, so the
    resolved alert firing again is new to the next flush. citybrain kept the last
    notification's alerts: it went out only with the repeat (an hour later here). When
    the resolved alert is silenced too, the flush has nothing left after its mutes and
    writes nothing: firing again it is not new. Fails on the old code (not-muted)."""
    response, ctx, sent, clock = _muting_stage(tmp_path, monkeypatch, f"log-{resolved}")
    one, two = firing("al-1", "major"), firing("al-2", "major")
    start = clock.now

    async def route(doc: dict[str, Any], offset: int, status: str = "firing") -> None:
        alert_id = doc["alert"]["alert_id"].encode()
        doc = {**doc, "alert": {**doc["alert"], "status": status}}
        if status == "firing":
            ctx.firing.data[alert_id] = doc["alert"]["labels"]
        else:
            ctx.firing.data.pop(alert_id, None)
        event = Event(KEY, doc)
        event.message.offset = offset
        await response.on_routed(event)  # type: ignore[arg-type]

    async def scenario() -> None:
        await route(one, 0)
        await route(two, 1)
        clock.now = start + 30  # both notified
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 100
        matchers = ['alert_id=~"al-1|al-2"'] if resolved == "muted" else ['alert_id="al-2"']
        silence = new_silence("s-1", matchers, clock.now, start + 3000, "o", "r")
        ctx.silences.data[b"s-1"] = silence.to_dict()
        clock.now = start + 110
        await route(one, 2, "resolved")
        clock.now = start + 330  # the flush: al-2 muted, al-1 resolved
        await response.check_deadlines()
        assert len(notifies(sent)) == 1
        clock.now = start + 400
        del ctx.silences.data[b"s-1"]  # both freed
        await route(one, 3)  # fires again
        clock.now = start + 630
        await response.check_deadlines()
        if resolved == "not-muted":  # the log empty: both new (al-2 freed at 400)
            assert notifies(sent)[1:] == ["new alerts in the group: al-1, al-2"]
        else:  # the log still holds al-1 and al-2: both fire, nothing new
            assert notifies(sent)[1:] == []

    asyncio.run(scenario())
