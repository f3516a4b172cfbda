"""Trial 22: one report, one covering run, one closure. A report in no alert is offered
to its group's open run as a follow-up, but stays in its burst window; when that window
later reaches the threshold, the burst alert carries it. If the run that covered it has
closed by then, the burst opens the group's next run, which covered the report again: its
reporter heard a second closure when that run closed. No broker: the context's sends are
captured, as in test_response_races."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import INCIDENTS_UNALERTED, Metrics
from streams.response import Response
from tests.unit.streams.test_group_flushes import start_clock
from tests.unit.streams.test_response_races import Event
from tests.unit.streams.test_response_races import response as races_response

KEY = b"grp-noise"


def burst(alert_id: str, *reports: str) -> dict[str, Any]:
    labels = {"source": "citizen", "category": "Noise", "department": "police"}
    return {
        "alert": {
            "alert_id": alert_id,
            "status": "firing",
            "kind": "incident_burst",
            "grid_cell": "c-top",
            "severity": "major",
            "labels": {"alert_id": alert_id, "grid_cell": "c-top", **labels},
            "reports": [{"report_id": r, "channel": "app"} for r in reports],
        },
        "route": {
            "id": "root",
            "playbook": "citizen-report-burst",
            "group_wait": 0.0,
            "group_interval": 300.0,
            "repeat_interval": 3600.0,
        },
    }


def sending_response(tmp_path: Path) -> tuple[Response, list[dict[str, Any]]]:
    """A response stage whose queued messages (dicts) are kept in the list returned."""
    stage, _ = races_response.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(value for _, value in items if isinstance(value, dict))
        return []

    stage.ctx.queue = queue  # type: ignore[method-assign]
    return stage, sent


@pytest.fixture
def stage(tmp_path: Path) -> tuple[Response, list[dict[str, Any]]]:
    return sending_response(tmp_path)


def test_a_report_a_closed_run_covered_is_not_covered_again_by_the_next_run(
    stage: tuple[Response, list[dict[str, Any]]],
) -> None:
    response, sent = stage

    async def scenario() -> None:
        await response.on_routed(Event(KEY, burst("al-1", "r-1")))  # type: ignore[arg-type]
        first = response.ctx.groups.data[KEY]["run"]["run_id"]
        # r-2 came in no alert and was offered to the open run, which covers it.
        offer = {"report": {"report_id": "r-2", "channel": "hotline", "ts": None}}
        await response.on_routed(Event(KEY, offer))  # type: ignore[arg-type]
        assert set(response.ctx.groups.data[KEY]["run"]["reports"]) == {"r-1", "r-2"}
        done = {"id": "cmd-1", "run_id": first, "action": "resolve", "by": "ana"}
        await response.on_command(Event(KEY, done))  # type: ignore[arg-type]
        # r-2's window then tips over: the burst carries r-2 with the new r-3.
        await response.on_routed(Event(KEY, burst("al-2", "r-2", "r-3")))  # type: ignore[arg-type]
        second = response.ctx.groups.data[KEY]["run"]
        assert second["run_id"] != first
        assert set(second["reports"]) == {"r-3"}
        noted = [s for s in sent if s.get("action") == "reports_covered_before"]
        assert [(s["run_id"], s["detail"]) for s in noted] == [
            (second["run_id"], f"r-2 (run {first})")
        ]
        # The same alert read again (a redelivery) covers nothing new and says it once.
        await response.on_routed(Event(KEY, burst("al-2", "r-2", "r-3")))  # type: ignore[arg-type]
        assert len([s for s in sent if s.get("action") == "reports_covered_before"]) == 1
        again = {"id": "cmd-2", "run_id": second["run_id"], "action": "resolve", "by": "ana"}
        await response.on_command(Event(KEY, again))  # type: ignore[arg-type]

    asyncio.run(scenario())
    replies = sorted(
        (s["data"]["report_id"], s["run_id"]) for s in sent if s.get("action") == "reply"
    )
    assert [rid for rid, _ in replies] == ["r-1", "r-2", "r-3"]  # each reporter once


OPENED = 1_700_000_000.0  # 2023-11-14T22:13:20Z, the first burst's started_at
# Offers of reports in no alert, by event time against the run's opening: after it, a
# minute and an hour before it, with no event time, and two days before it (late: older
# than the burst window, never in it).
OFFERS: list[tuple[str, float | None, bool]] = [
    ("r-after", OPENED + 60, False),
    ("r-before", OPENED - 60, False),
    ("r-hour", OPENED - 3600, True),
    ("r-untimed", None, False),
    ("r-old", OPENED - 2 * 86_400, True),
]


def offer(rid: str, ts: float | None, late: bool) -> Event:
    doc = {"report": {"report_id": rid, "channel": "hotline", "ts": ts, "late": late}}
    return Event(KEY, doc)  # type: ignore[arg-type]


def offer_to(key: bytes, rid: str) -> Event:
    """``rid``'s offer to group ``key``'s run."""
    return Event(key, {"report": {"report_id": rid, "channel": "hotline", "ts": None}})


def opening(alert_id: str, report: str, started_at: str) -> Event:
    first = burst(alert_id, report)
    first["alert"]["started_at"] = started_at
    return Event(KEY, first)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ["offers first", "run first"])
def test_an_offer_is_taken_alike_before_and_after_its_groups_run_opens(
    stage: tuple[Response, list[dict[str, Any]]], order: str
) -> None:
    """Helper t75: catching up after a restart, a burst's alert passes the alerting stage
    while the offers of the reports after it go straight to the routed topic, so an offer
    came first, found no run and was dropped: its reporter never heard a closure. Held
    (stored with its group, t124) for the run the group opens next, it is taken as if read once the run was
    open: covered unless more than a day older than the opening, which is refused (a late
    one audited as in no alert) — in either order the same. Before, a held offer was
    covered only if made at or after the opening: a second worker reading the offers
    again after the run had opened covered 3 reports more than one worker's run."""
    response, sent = stage
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    response.ctx.audit = audit  # type: ignore[method-assign]

    async def scenario() -> None:
        if order == "run first":
            await response.on_routed(opening("al-1", "r-1", "2023-11-14T22:13:20Z"))
        for rid, ts, late in OFFERS:
            await response.on_routed(offer(rid, ts, late))
        if order == "offers first":
            # Held in the group's stored entry, with no run (t124: held in memory, a
            # SIGKILL lost them).
            group = response.ctx.groups.data[KEY]
            assert group["run"] is None
            held = [h["report"]["report_id"] for h in group["held_offers"]]
            assert held == [rid for rid, _, _ in OFFERS]
            await response.on_routed(opening("al-1", "r-1", "2023-11-14T22:13:20Z"))
        run = response.ctx.groups.data[KEY]["run"]
        assert set(run["reports"]) == {"r-1", "r-after", "r-before", "r-hour", "r-untimed"}
        # The group's held offers went with its run: the next run covers none of them.
        done = {"id": "cmd-1", "run_id": run["run_id"], "action": "resolve", "by": "ana"}
        await response.on_command(Event(KEY, done))  # type: ignore[arg-type]
        await response.on_routed(opening("al-2", "r-2", "2023-11-14T21:13:20Z"))
        assert set(response.ctx.groups.data[KEY]["run"]["reports"]) == {"r-2"}

    asyncio.run(scenario())
    replies = sorted(s["data"]["report_id"] for s in sent if s.get("action") == "reply")
    assert replies == ["r-1", "r-after", "r-before", "r-hour", "r-untimed"]
    refused = [a for a in audited if a["action"] == "reports_not_alerted"]
    assert [a["data"]["report_ids"] for a in refused] == [["r-old"]], audited


def held(response: Response, key: bytes = KEY) -> list[str]:
    """The report ids group ``key`` holds for its next run, oldest first."""
    group = response.ctx.groups.data.get(key) or {}
    return [h["report"]["report_id"] for h in group.get("held_offers") or []]


def test_held_offers_are_bounded_per_worker_oldest_dropped_after_a_restart_too(
    stage: tuple[Response, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t124: stored with their groups, the held offers keep the bound they had in memory
    (``MAX_HELD_OFFERS``, 3 here; oldest dropped, whatever its group), counted again from
    the table by a restarted worker; and one group holds at most ``MAX_HELD_PER_GROUP``."""
    response, _ = stage
    clock = start_clock(response, monkeypatch)
    monkeypatch.setattr("streams.response.MAX_HELD_OFFERS", 3)
    monkeypatch.setattr("streams.response.MAX_HELD_PER_GROUP", 2)
    keys = [f"grp-{n}".encode() for n in range(5)]

    async def scenario() -> Response:
        for n, key in enumerate(keys[:4]):
            clock.now += 1
            await response.on_routed(offer_to(key, f"r-{n}"))
        assert [held(response, k) for k in keys[:4]] == [[], ["r-1"], ["r-2"], ["r-3"]]
        restarted = Response(response.ctx)  # its memory gone, the table read back
        restarted._update_lag = response._update_lag  # type: ignore[method-assign]
        clock.now += 1
        await restarted.on_routed(offer_to(keys[4], "r-4"))
        assert [held(response, k) for k in keys[1:]] == [[], ["r-2"], ["r-3"], ["r-4"]]
        for rid in ("r-5", "r-6", "r-7"):  # one group: its own bound, then the worker's
            clock.now += 1
            await restarted.on_routed(offer_to(keys[4], rid))
        return restarted

    asyncio.run(scenario())
    assert held(response, keys[4]) == ["r-6", "r-7"]
    assert sum(len(held(response, k)) for k in keys) == 3


def test_a_held_offer_expires_by_message_time_and_its_group_is_forgotten_past_retention(
    stage: tuple[Response, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t124: an offer is held for ``HOLD_OFFER_SECONDS`` (300 s) of message time: a run
    opened 301 s after it does not take it (one opened within it does); a group holding
    only expired offers is forgotten once past CITYBRAIN_GROUP_RETENTION, not before."""
    response, _ = stage
    clock = start_clock(response, monkeypatch)
    # A clock its alerts can have started by: one started past the clock is refused (t128).
    clock.now = OPENED + 3600

    async def write(key: bytes, entry: bytes | None) -> None:
        return None

    async def delete_many(keys: Any) -> None:  # (no producer here: the store alone)
        for key in keys:
            response.ctx.groups.data.pop(key, None)

    response.ctx.generations._send = write  # type: ignore[method-assign]
    response.ctx.groups.delete_many = delete_many  # type: ignore[method-assign]

    async def scenario() -> None:
        await response.on_routed(offer("r-stale", None, False))
        clock.now += 301
        await response.on_routed(offer("r-fresh", None, False))
        assert held(response) == ["r-fresh"]  # the stale one dropped with the new one
        clock.now += 299
        await response.on_routed(opening("al-1", "r-1", "2023-11-14T22:13:20Z"))
        run = response.ctx.groups.data[KEY]["run"]
        assert set(run["reports"]) == {"r-1", "r-fresh"} and held(response) == []
        other = b"grp-quiet"
        await response.on_routed(offer_to(other, "r-q"))
        await response.check_deadlines()
        assert held(response, other) == ["r-q"]
        clock.now += 301 + response.settings.group_retention
        await response.check_deadlines()
        assert other not in response.ctx.groups.data

    asyncio.run(scenario())


def late_offer(key: bytes, rid: str, offers: int | None = None) -> Event:
    """A late report's offer (older than its burst window, never in it) to group ``key``;
    ``offers``: to how many groups the incidents stage offered it (absent: an earlier
    worker's offer)."""
    report: dict[str, Any] = {"report_id": rid, "channel": "app", "ts": OPENED, "late": True}
    report |= {"grid_cell": "c-top", "category": "Noise"}
    if offers is not None:
        report["offers"] = offers
    return Event(key, {"report": report})  # type: ignore[arg-type]


def test_a_late_offer_held_and_let_go_with_no_run_is_counted_and_audited_as_not_alerted(
    stage: tuple[Response, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t148: a late report (never in its burst window, so its window never says it) whose
    offer was held for a run that did not open within ``HOLD_OFFER_SECONDS`` ended
    unsaid: not counted in citybrain_incidents_unalerted_total, no reports_not_alerted
    record, though no run and no alert covered it (docs/events.md: "otherwise it is
    dropped, a late one counted and audited as in no alert"). Each way a held offer is let
    go with no run taking it says it once: expired when the group's next offer or run
    comes, dropped at the worker's bound, or expired with its group forgotten. A report
    that was in its window (said by the window) and one offered to several groups
    (another group's run may take it) are not said here."""
    response, _ = stage
    clock = start_clock(response, monkeypatch)
    clock.now = OPENED + 3600
    monkeypatch.setattr("streams.response.MAX_HELD_OFFERS", 3)
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    async def delete_many(keys: Any) -> None:  # (no producer here: the store alone)
        for key in keys:
            response.ctx.groups.data.pop(key, None)

    async def write(key: bytes, entry: bytes | None) -> None:
        return None

    response.ctx.audit = audit  # type: ignore[method-assign]
    response.ctx.groups.delete_many = delete_many  # type: ignore[method-assign]
    response.ctx.generations._send = write  # type: ignore[method-assign]
    unalerted = response.metrics.incidents_unalerted

    def counted() -> float:
        return sum(unalerted.labels(c)._value.get() for c in ("app", "hotline"))

    def said() -> list[str]:
        return [
            rid
            for a in audited
            if a["action"] == "reports_not_alerted"
            for rid in a["data"]["report_ids"]
        ]

    async def scenario() -> None:
        await response.on_routed(late_offer(KEY, "r-expires"))
        await response.on_routed(late_offer(KEY, "r-shared", offers=3))
        await response.on_routed(offer("r-windowed", OPENED, False))
        clock.now += 301
        # The group's next offer: the three expired, with no run taking them.
        await response.on_routed(late_offer(KEY, "r-run-late"))
        assert held(response) == ["r-run-late"]
        assert said() == ["r-expires"] and counted() == 1
        # A run opened past the hold: r-run-late expired when it could take it.
        clock.now += 301
        await response.on_routed(opening("al-1", "r-1", "2023-11-14T22:13:20Z"))
        assert said() == ["r-expires", "r-run-late"] and counted() == 2
        # The worker's bound (3 here): the oldest held offer dropped, said.
        for n in range(4):
            await response.on_routed(late_offer(f"grp-{n}".encode(), f"r-bound-{n}"))
            clock.now += 1
        assert said()[-1] == "r-bound-0" and counted() == 3
        # A group holding an expired offer, forgotten past retention: said with it.
        clock.now += 301 + response.settings.group_retention
        await response.check_deadlines()
        assert b"grp-1" not in response.ctx.groups.data
        assert sorted(said()[3:]) == ["r-bound-1", "r-bound-2", "r-bound-3"]
        assert counted() == 6
        # Said once each: a second pass finds nothing more.
        await response.check_deadlines()
        assert counted() == 6

    asyncio.run(scenario())
    records = [a for a in audited if a["action"] == "reports_not_alerted"]
    assert len({a["id"] for a in records}) == len(records) == 6
    first = records[0]
    assert first["data"]["group"] == KEY.decode() and first["data"]["grid_cell"] == "c-top"
    assert "late (older than its burst window)" in first["detail"]


class Killed(Exception):
    """The worker's process ends here (SIGKILL): nothing after this point happens."""


def old_late_offer(key: bytes, rid: str, offers: int | None = None, offer: int = 0) -> Event:
    """A late report's offer, two days older than the run ``opening`` opens: refused."""
    report: dict[str, Any] = {"report_id": rid, "channel": "app", "ts": OPENED - 2 * 86_400}
    report |= {"late": True, "grid_cell": "c-top", "category": "Noise"}
    if offers is not None:
        report |= {"offers": offers, "offer": offer}
    return Event(key, {"report": report})


# Each: the ops (a routed message, a clock move in s, or a deadline pass), and the
# reports_not_alerted records one unkilled worker makes (by report id).
NOT_ALERTED_OPS: dict[str, tuple[list[Any], list[str]]] = {
    # Held, then expired when the group's next offer came (``_hold_offer``).
    "expired at the next offer": ([late_offer(KEY, "r-a"), 301, late_offer(KEY, "r-b")], ["r-a"]),
    # Refused by the open run as too old (``_on_offered_report``).
    "refused by the open run": (
        [opening("al-1", "r-1", "2023-11-14T22:13:20Z"), old_late_offer(KEY, "r-old")],
        ["r-old"],
    ),
    # Held, then the run opened: one expired, one too old (``_cover_held``).
    "let go when the run opened": (
        [
            late_offer(KEY, "r-a"),
            301,
            old_late_offer(KEY, "r-old"),
            opening("al-1", "r-1", "2023-11-14T22:13:20Z"),
        ],
        ["r-a", "r-old"],
    ),
    # Held, its group forgotten past the hold and retention (``_forget_delivered``).
    "expired with its group forgotten": ([late_offer(KEY, "r-a"), "forget", "tick"], ["r-a"]),
}


def play_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops: list[Any], kill: int | None
) -> tuple[list[dict[str, Any]], float, set[bytes]]:
    """Play ``ops``; the process is killed at its ``kill``-th side effect (a changelog write
    of ``groups`` or an audit record sent, counted from 0) and a new one reads back the
    table's changelog as written and reads the message it was on again (its offset was
    not committed). Returns the audit records sent, the sum of every process's
    ``citybrain_incidents_unalerted_total`` and the groups left."""
    response, _ = sending_response(tmp_path)
    clock = start_clock(response, monkeypatch)
    clock.now = OPENED + 3600
    ctx = response.ctx
    changelog: dict[bytes, bytes] = {}
    audited: list[dict[str, Any]] = []
    effects = [0]

    def effect() -> None:
        effects[0] += 1
        if effects[0] - 1 == kill:
            raise Killed

    async def write(key: bytes, entry: bytes) -> None:
        effect()
        changelog[key] = entry

    async def audit(record: dict[str, Any]) -> None:
        effect()
        audited.append(record)

    async def audit_all(records: list[dict[str, Any]]) -> None:
        for record in records:
            await audit(record)

    async def delete_many(keys: Any) -> None:
        for key in keys:
            effect()
            ctx.groups.data.pop(key, None)
            changelog.pop(key, None)

    async def nothing(*args: Any) -> None:
        return None

    ctx.groups._send = write  # type: ignore[method-assign]
    ctx.generations._send = nothing  # type: ignore[method-assign]
    ctx.audit = audit  # type: ignore[method-assign]
    ctx.audit_all = audit_all  # type: ignore[method-assign]
    ctx.groups.delete_many = delete_many  # type: ignore[method-assign]
    stages = [response]

    def restart() -> Response:
        ctx.groups.data.clear()
        for key, entry in changelog.items():
            ctx.groups.data[key] = orjson.loads(entry)
        stage = Response(ctx)
        stage.metrics = Metrics.create(CollectorRegistry())  # a new process's counters
        stage._update_lag = nothing  # type: ignore[method-assign]
        stage._holds_partition = lambda key: True  # type: ignore[method-assign]
        stages.append(stage)
        return stage

    async def apply(stage: Response, op: Any) -> None:
        if op == "forget":
            clock.now += 301 + stage.settings.group_retention
        elif op == "tick":
            await stage.check_deadlines()
        elif isinstance(op, int):
            clock.now += op
        else:
            await stage.on_routed(op)  # type: ignore[arg-type]

    async def scenario() -> None:
        stage = response
        for op in ops:
            try:
                await apply(stage, op)
            except Killed:
                stage = restart()
                await apply(stage, op)  # read again: not committed
        await stage.check_deadlines()  # the timer's next pass

    asyncio.run(scenario())
    counted = sum(
        sample.value
        for stage in stages
        for sample in stage.metrics.incidents_unalerted.collect()[0].samples
        if sample.name == INCIDENTS_UNALERTED
    )
    return audited, counted, set(ctx.groups.data)


@pytest.mark.parametrize("kill", range(12))
@pytest.mark.parametrize("name", list(NOT_ALERTED_OPS))
def test_a_kill_at_any_write_says_and_counts_each_not_alerted_report_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, kill: int
) -> None:
    """t152: a late report in no alert was audited (and counted) before the store that
    made it idempotent: a kill between the two said it again, and counted it again, when
    the message was read again (or the next pass forgot the group again). Now the record
    goes into its group's entry (``say``) with the change and out after: killed at any
    changelog write or audit send, each record is sent at least once, under one id with
    one content, and counted once over every process's counter."""
    ops, reports = NOT_ALERTED_OPS[name]
    expected, counted, groups = play_killed(tmp_path / "a", monkeypatch, ops, None)
    said = sorted(rid for a in expected for rid in a["data"]["report_ids"])
    assert said == sorted(reports) and counted == len(reports)
    audited, counted, left = play_killed(tmp_path / "b", monkeypatch, ops, kill)
    by_id: dict[str, bytes] = {}
    for record in audited:
        assert record["action"] == "reports_not_alerted"
        body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        assert by_id.setdefault(record["id"], body) == body, record["id"]
    assert sorted(orjson.loads(b)["data"]["report_ids"][0] for b in by_id.values()) == sorted(
        reports
    )
    assert counted == len(reports)
    assert left == groups


def test_a_late_report_refused_by_the_runs_of_several_groups_is_counted_once(
    stage: tuple[Response, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t152: a late report offered to three groups (a route grouping by severity) whose
    open runs each refused it as too old was counted and audited three times, once per
    group. Said by the group of its first offer (``offer`` 0) alone; its other offers'
    groups refuse it without a word."""
    response, _ = stage
    clock = start_clock(response, monkeypatch)
    clock.now = OPENED + 3600
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    response.ctx.audit = audit  # type: ignore[method-assign]
    keys = [b"grp-minor", b"grp-major", b"grp-critical"]

    async def scenario() -> None:
        for key in keys:
            first = burst("al-" + key.decode(), "r-1")
            first["alert"]["started_at"] = "2023-11-14T22:13:20Z"
            await response.on_routed(Event(key, first))  # type: ignore[arg-type]
        for n, key in enumerate(keys):
            await response.on_routed(old_late_offer(key, "r-old", offers=3, offer=n))  # type: ignore[arg-type]

    asyncio.run(scenario())
    unalerted = response.metrics.incidents_unalerted
    assert unalerted.labels("app")._value.get() == 1
    records = [a for a in audited if a["action"] == "reports_not_alerted"]
    assert [a["data"]["report_ids"] for a in records] == [["r-old"]]
