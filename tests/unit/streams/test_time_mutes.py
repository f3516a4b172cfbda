"""The response stage holds a group's notifications while its route's time intervals
mute it (``mute_time_intervals``, or outside its ``active_time_intervals``), as
Alertmanager's TimeMuteStage and TimeActiveStage drop a flush's notification: the group
still collects alerts and notifies, once, at its first flush after the mute ends.

No broker: the context's sends are captured (as in test_group_flushes)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from playbooks.loader import load_routing
from streams.alerting import _route_doc
from streams.context import Context
from streams.errors import EventError
from streams.response import Response, routed_fields
from tests.unit.streams.test_group_flushes import Clock, _muting_stage
from tests.unit.streams.test_response_races import KEY, Event, alert

ROUTING = """version: 1
route:
  playbook: flash-flood
  group_by: [alert_id]
  routes:
    - matchers: ['kind="water_level"']
      mute_time_intervals: [lunch]
    - matchers: ['kind="noise"']
      active_time_intervals: [night]
time_intervals:
  - name: lunch
    time_intervals:
      - times: [{start_time: 13:00, end_time: 14:00}]
  - name: night  # 22:00 to 06:00 in Chengdu: 14:00 to 22:00 UTC
    time_intervals:
      - times: [{start_time: 22:00, end_time: 24:00}, {start_time: 00:00, end_time: 06:00}]
        location: Asia/Shanghai
"""

# Monday 7 December 2026, 13:50 UTC: ten minutes before lunch ends.
T0 = datetime(2026, 12, 7, 13, 50, tzinfo=UTC).timestamp()


def _stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Response, Context, list[dict[str, Any]], Clock]:
    return _muting_stage(tmp_path, monkeypatch, "time-mutes", ROUTING, T0)


def routed(alert_id: str, route: dict[str, Any], group_wait: float = 30.0) -> dict[str, Any]:
    doc = alert(alert_id)
    doc["route"].update(route, group_wait=group_wait)
    return doc


def actions(sent: list[dict[str, Any]]) -> list[str]:
    return [
        f"{s['action']}: {s['detail']}"
        for s in sent
        if s.get("action") in ("notify", "notification_held", "run_started")
    ]


async def tick(response: Response, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):  # the worker's deadline check, once a second
        clock.now += 1
        await response.check_deadlines()


LUNCH = {"id": "root.0", "mute_time_intervals": ["lunch"]}
NIGHT = {"id": "root.1", "active_time_intervals": ["night"]}


@pytest.mark.parametrize(
    ("route", "why"),
    [
        (LUNCH, "route root.0 is in its mute time interval 'lunch'"),
        (NIGHT, "route root.1 is outside its active time intervals 'night'"),
    ],
)
def test_a_time_muted_route_notifies_once_at_its_first_flush_after_the_mute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: dict[str, Any], why: str
) -> None:
    response, ctx, sent, clock = _stage(tmp_path, monkeypatch)

    async def scenario() -> None:
        doc = routed("al-1", route)
        ctx.firing.data[b"al-1"] = doc["alert"]["labels"]
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        await tick(response, clock, 31)  # group_wait over at 13:50:30: muted, held
        assert actions(sent) == [f"notification_held: {why}"]
        assert ctx.groups.data[KEY]["run"]["status"] == "pending"
        # Another alert of the group arrives while muted: collected, not notified.
        await response.on_routed(Event(KEY, routed("al-1", route)))  # type: ignore[arg-type]
        await tick(response, clock, 540)  # 13:59:31: flushes at 13:55:30 held, said once
        assert actions(sent) == [f"notification_held: {why}"]
        await tick(response, clock, 60)  # 14:00:31: the flush at 14:00:30 notifies
        notified = [a for a in actions(sent) if a.startswith("notify")]
        assert len(notified) == 1
        assert ctx.groups.data[KEY]["run"]["status"] == "waiting_ack"
        assert ctx.groups.data[KEY]["run"]["last_notified_at"] == T0 + 630
        await tick(response, clock, 600)  # no duplicate: the next is the repeat, 1 h on
        assert [a for a in actions(sent) if a.startswith("notify")] == notified

    asyncio.run(scenario())


def test_an_old_alert_in_a_muted_route_is_held_not_notified_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert that started more than group_wait ago (or a group_wait of 0) is notified
    at once, unless its route is time-muted now: then held to the group's next flush."""
    response, ctx, sent, clock = _stage(tmp_path, monkeypatch)

    async def scenario() -> None:
        doc = routed("al-1", LUNCH, group_wait=0.0)
        ctx.firing.data[b"al-1"] = doc["alert"]["labels"]
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        assert actions(sent) == [
            "notification_held: route root.0 is in its mute time interval 'lunch'"
        ]
        await tick(response, clock, 300)  # 13:55: still lunch
        assert len(actions(sent)) == 1
        await tick(response, clock, 301)  # the flush after 14:00
        assert len([a for a in actions(sent) if a.startswith("notify")]) == 1

    asyncio.run(scenario())


def test_a_mute_that_begins_after_the_notification_holds_the_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    response, ctx, sent, clock = _stage(tmp_path, monkeypatch)
    clock.now = T0 - 3600 + 60  # 12:51
    route = {**LUNCH, "group_interval": 300.0, "repeat_interval": 600.0}

    async def scenario() -> None:
        doc = routed("al-1", route, group_wait=0.0)
        ctx.firing.data[b"al-1"] = doc["alert"]["labels"]
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        notified_at = ctx.groups.data[KEY]["run"]["last_notified_at"]
        assert notified_at == clock.now
        await tick(response, clock, 4300)  # 12:51 to 14:02:40, lunch in between
        notes = actions(sent)
        # Repeats at 13:01 ... 13:56 held (said once); the first after 14:00 at 14:01.
        assert notes[-2:] == [
            "notification_held: route root.0 is in its mute time interval 'lunch'",
            "notify: repeat: still unacknowledged",
        ]
        assert ctx.groups.data[KEY]["run"]["last_notified_at"] == notified_at + 4200

    asyncio.run(scenario())


def test_a_held_group_notifies_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What holds a group is its stored run (held, its deadline) and its stored route: a
    worker started again over the same tables notifies it once when the mute ends."""
    response, ctx, sent, clock = _stage(tmp_path, monkeypatch)

    async def scenario() -> None:
        doc = routed("al-1", LUNCH)
        ctx.firing.data[b"al-1"] = doc["alert"]["labels"]
        await response.on_routed(Event(KEY, doc))  # type: ignore[arg-type]
        await tick(response, clock, 31)
        again = Response(ctx)
        again._update_lag = response._update_lag  # type: ignore[method-assign]
        await tick(again, clock, 600)
        assert [a.split(":")[0] for a in actions(sent)] == ["notification_held", "notify"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mute_time_intervals", "lunch"),
        ("active_time_intervals", [1]),
        ("mute_time_intervals", None),
    ],
)
def test_a_routed_message_with_bad_interval_names_is_refused_naming_the_field(
    field: str, value: Any
) -> None:
    doc = routed("al-1", {field: value})
    with pytest.raises(EventError) as caught:
        routed_fields(doc)
    assert f"route.{field}" in str(caught.value)
    assert "a list of time interval names" in str(caught.value)


def test_the_routed_message_carries_a_routes_interval_names(tmp_path: Path) -> None:
    """The alerts stage writes the names of the route's time intervals into the routed
    message (a route without them writes what it wrote before), and they read back."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    router = load_routing(routing, ["flash-flood"])
    root, lunch, night = router.root, *router.root.routes
    assert "mute_time_intervals" not in _route_doc(root)
    assert _route_doc(lunch)["mute_time_intervals"] == ["lunch"]
    assert _route_doc(night)["active_time_intervals"] == ["night"]
    doc = alert("al-1")
    doc["route"] = _route_doc(night)
    assert routed_fields(doc)["route"]["active_time_intervals"] == ["night"]
