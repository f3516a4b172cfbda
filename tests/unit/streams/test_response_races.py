"""A run's state is read, changed and written by three writers on one event loop (routed
alerts, operator commands, the deadline timer). Each awaits Kafka between its read and its
write; nothing another writer did in that await may be lost.

No broker: the context's sends are replaced by ones the test holds open, so the
interleaving is forced, not hoped for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context
from streams.errors import EventError
from streams.metrics import INCIDENTS_UNALERTED, Metrics
from streams.partitioning import key_partition
from streams.response import OFFER_MAX_AGE, Response, RunTooLarge
from streams.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
KEY = b"grp-flood"


class Event:
    """What the handlers read of a faust event: its key, value and message (on the
    partition Kafka's default partitioner gives the key, of two, as a producer keyed by
    the group puts it; ``partition`` to place it elsewhere)."""

    def __init__(
        self,
        key: bytes,
        value: dict[str, Any],
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.key, self.value = key, orjson.dumps(value)
        self.message = SimpleNamespace(
            topic="citybrain.commands",
            partition=key_partition(key, 2) if partition is None else partition,
            offset=0,
            key=key,
            value=self.value,
            timestamp=None,
            timestamp_type=0,
            headers=headers or [],
        )


def alert(alert_id: str) -> dict[str, Any]:
    return {
        "alert": {
            "alert_id": alert_id,
            "status": "firing",
            "sensor_id": "gauge-1",
            "kind": "water_level",
            "grid_cell": "c-bridge",
            "severity": "critical",
            "labels": {"alert_id": alert_id, "kind": "water_level", "grid_cell": "c-bridge"},
        },
        "route": {
            "id": "flood",
            "playbook": "flash-flood",
            "group_wait": 0.0,
            "group_interval": 300.0,
            "repeat_interval": 3600.0,
        },
    }


class Gate:
    """Holds the first send after ``hold()`` until ``release()``; every other passes."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.opened.set()
        self.armed = False

    def hold(self) -> None:
        self.opened.clear()
        self.armed = True

    def release(self) -> None:
        self.opened.set()

    async def pass_through(self) -> None:
        if self.armed:
            self.armed = False
            await self.opened.wait()


@pytest.fixture
def response(tmp_path: Path) -> tuple[Response, Gate]:
    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("races", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    gate = Gate()

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        await gate.pass_through()
        return []

    async def write(key: bytes, entry: bytes) -> None:
        return None

    async def audit(record: dict[str, Any]) -> None:
        return None

    async def audit_all(records: list[dict[str, Any]]) -> None:
        for record in records:
            await ctx.audit(record)  # (as sent: a test's own ``ctx.audit`` sees them)

    ctx.queue = queue  # type: ignore[method-assign]
    ctx.audit = audit  # type: ignore[method-assign]
    ctx.audit_all = audit_all  # type: ignore[method-assign]
    ctx.groups._send = write  # type: ignore[method-assign]
    stage = Response(ctx)
    # One worker holding every partition (no consumer group here): a group stored under
    # its key from before t126 is looked up in place, not probed for through Kafka.
    stage._holds_partition = lambda key: True  # type: ignore[method-assign]
    return stage, gate


def test_an_ack_during_another_writers_await_is_kept(
    response: tuple[Response, Gate],
) -> None:
    stage, gate = response

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        gate.hold()
        # A second alert joins the run and is held while its steps are being sent ...
        joining = asyncio.create_task(stage.on_routed(Event(KEY, alert("al-2"))))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        # ... when the operator's acknowledgement arrives.
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "duty-operator"}
        acking = asyncio.create_task(stage.on_command(Event(KEY, ack)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(joining, acking)
        return dict(stage.ctx.groups.data[KEY])

    group = asyncio.run(scenario())
    assert group["run"]["acknowledged_by"] == "duty-operator"
    assert group["run"]["alerts"] == ["al-1", "al-2"]
    assert "cmd-1" in group["commands"]


def test_the_deadline_timer_does_not_write_back_a_state_read_before_an_ack(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    stage, gate = response

    async def scenario() -> tuple[dict[str, Any], str]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        level = stage.ctx.groups.data[KEY]["run"]["level"]
        # The timer finds the run due (its deadline has passed) and is held sending the
        # escalation, while the acknowledgement that came just in time is processed.
        monkeypatch.setattr(stage.engines["flash-flood"], "is_due", lambda run, now: True)
        monkeypatch.setattr(stage, "_update_lag", _nothing)
        monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)
        gate.hold()
        timer = asyncio.create_task(stage.check_deadlines())
        await asyncio.sleep(0.01)
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "duty-operator"}
        acking = asyncio.create_task(stage.on_command(Event(KEY, ack)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(timer, acking)
        return dict(stage.ctx.groups.data[KEY]), level

    group, level = asyncio.run(scenario())
    assert group["run"]["acknowledged_by"] == "duty-operator"
    assert "cmd-1" in group["commands"]
    assert group["run"]["level"] != level  # and the escalation it came after is kept too


def captured(
    stage: Response, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """The audit records and the queued outputs ``stage`` writes from now on, kept in
    two lists (its context's ``audit`` and ``queue`` replaced)."""
    audited: list[dict[str, Any]] = []
    sent: list[tuple[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(items)
        return []

    monkeypatch.setattr(stage.ctx, "audit", audit)
    monkeypatch.setattr(stage.ctx, "queue", queue)
    return audited, sent


def dead_letters_and_audit(
    stage: Response, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """The dead letters (role, code, reason) and the audit records ``stage`` writes from
    now on, kept in two lists (its context's ``dead_letter`` and ``audit`` replaced)."""
    letters: list[tuple[str, str, str]] = []
    audited: list[dict[str, Any]] = []

    async def dead_letter(role: str, event: Any, code: str, reason: str) -> None:
        letters.append((role, code, reason))

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(stage.ctx, "dead_letter", dead_letter)
    monkeypatch.setattr(stage.ctx, "audit", audit)
    return letters, audited


async def _nothing() -> None:
    return None


def offer(report_id: str) -> dict[str, Any]:
    """A report in no alert, as the incidents stage offers it (streams.ingest._offer)."""
    return {
        "report": {
            "report_id": report_id,
            "channel": "app",
            "grid_cell": "c-bridge",
            "category": "Noise",
        },
        "route": {"id": "flood", "playbook": "flash-flood"},
    }


def test_a_report_in_no_alert_joins_its_groups_open_run_only(
    response: tuple[Response, Gate],
) -> None:
    """Trial 6: reports that came while a run for their cell and category waited for an
    acknowledgement reached no run. Offered to the group's run, an open run covers them;
    with no run, or a finished one, the offer is only held (stored with its group, no run made, t124) for
    the run the group opens next (``r-0``, as if it came once that run was open); a finished
    run takes nothing (``r-2``)."""
    stage, _ = response

    async def scenario() -> list[dict[str, Any]]:
        groups = stage.ctx.groups.data
        await stage.on_routed(Event(KEY, offer("r-0")))  # type: ignore[arg-type]
        assert groups[KEY]["run"] is None  # no run: nothing to join, held with the group
        assert [h["report"]["report_id"] for h in groups[KEY]["held_offers"]] == ["r-0"]
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, offer("r-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, offer("r-1")))  # type: ignore[arg-type]  # again
        covered = dict(groups[KEY]["run"]["reports"])
        run_id = groups[KEY]["run"]["run_id"]
        resolve = {"id": "cmd-1", "run_id": run_id, "action": "resolve", "by": "ana"}
        await stage.on_command(Event(KEY, resolve))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, offer("r-2")))  # type: ignore[arg-type]
        return [covered, dict(groups[KEY]["run"]["reports"])]

    open_run, finished = asyncio.run(scenario())
    assert open_run == {r: {"channel": "app", "status": "open"} for r in ("r-0", "r-1")}
    assert finished == {r: {"channel": "app", "status": "replied"} for r in ("r-0", "r-1")}


def test_a_report_days_older_than_the_runs_opening_is_not_offered_to_it(
    response: tuple[Response, Gate],
) -> None:
    """Trial 7: late reports of 06-01 23:57 to 06-02 00:01, replayed after run .2 opened
    for a burst on 06-04, were covered by run .2 and got its closures. A report more than
    OFFER_MAX_AGE (a day) older than the run's opening is in no alert: a late one is
    counted and audited as reports_not_alerted here; one within the day is covered."""
    stage, _ = response
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    stage.ctx.audit = audit  # type: ignore[method-assign]
    opened = 1_717_480_860.0  # 2024-06-04T06:01:00Z
    opening = alert("al-1")
    opening["alert"]["started_at"] = "2024-06-04T06:01:00Z"

    def aged(report_id: str, ts: float, late: bool) -> dict[str, Any]:
        doc = offer(report_id)
        doc["report"].update(ts=ts, late=late)
        return doc

    registry = CollectorRegistry()
    stage.metrics = Metrics.create(registry)

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, opening))  # type: ignore[arg-type]
        old = opened - OFFER_MAX_AGE - 2 * 86_400.0
        await stage.on_routed(Event(KEY, aged("o-1", old, late=True)))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, aged("o-2", old, late=False)))  # type: ignore[arg-type]
        recent = opened - OFFER_MAX_AGE + 60.0
        await stage.on_routed(Event(KEY, aged("o-3", recent, late=True)))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]["run"]["reports"])

    covered = asyncio.run(scenario())
    assert list(covered) == ["o-3"]
    # o-1 only: o-2 (not late) is counted by its window when it leaves it.
    assert registry.get_sample_value(INCIDENTS_UNALERTED, {"source": "app"}) == 1.0
    [record] = [r for r in audited if r["action"] == "reports_not_alerted"]
    assert record["data"]["report_ids"] == ["o-1"]
    assert "older than run grp-flood.1" in record["detail"]


def test_an_offered_report_at_a_time_no_date_can_show_is_named(
    response: tuple[Response, Gate],
) -> None:
    """Helper t52: a late report offered at -1e308 (or before the year 1) was compared
    with the run's opening, then written as a date in the audit: "OverflowError" with a
    traceback in the worker's log. Now refused naming the field and value; the run keeps
    taking reports."""
    stage, _ = response

    def aged(report_id: str, ts: float) -> dict[str, Any]:
        doc = offer(report_id)
        doc["report"].update(ts=ts, late=True)
        return doc

    opening = alert("al-1")
    opening["alert"]["started_at"] = "2024-06-04T06:01:00Z"

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, opening))  # type: ignore[arg-type]
        for ts in (-1e308, -62_135_596_801.0, 1.7e12):
            with pytest.raises(EventError) as refused:
                await stage.on_routed(Event(KEY, aged("o-1", ts)))  # type: ignore[arg-type]
            assert refused.value.code == "bad_reports"
            assert f'field "report.ts" is {ts!r}: expected epoch seconds' in str(refused.value)
        await stage.on_routed(Event(KEY, aged("o-2", time.time())))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]["run"]["reports"])

    assert list(asyncio.run(scenario())) == ["o-2"]


def test_a_change_too_large_for_the_changelog_sends_nothing(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 8: a run that outgrew one Kafka message failed at its state write, after its
    steps had gone out (the API showed it resolved; after a restart it was open, and a
    later resolve sent a second step with the same id). Now refused before anything."""
    stage, _ = response
    sent: list[Any] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(items)
        return []

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        before = orjson.dumps(stage.ctx.groups.data[KEY])
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        monkeypatch.setattr(stage.ctx, "queue", queue)
        # A command of 1.1 MB is refused at the door now (MAX_OWN_MESSAGE_BYTES, t99): a
        # run still outgrows one message by what it gathers, here with a smaller limit.
        monkeypatch.setattr("streams.response.MAX_MESSAGE_BYTES", 100_000)
        ack = {
            "id": "cmd-big",
            "run_id": run_id,
            "action": "ack",
            "by": "duty-operator",
            "note": "n" * 110_000,  # past the API's bound: as a foreign producer might
        }
        with pytest.raises(RunTooLarge, match=r"more than one Kafka message holds"):
            await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        assert sent == []
        assert orjson.dumps(stage.ctx.groups.data[KEY]) == before

    asyncio.run(scenario())


def test_a_run_whose_playbook_is_gone_does_not_stop_the_other_runs_deadlines(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run opened under a playbook a later deployment removed raised KeyError in the
    deadline timer every tick: faust ended the timer and crashed the worker, and no run's
    deadline was checked again. Now it is skipped and said once; and (t49) audited and
    counted once, where before it was in the log only."""
    stage, _ = response
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(stage.ctx, "audit", audit)

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(b"grp-other", alert("al-2")))  # type: ignore[arg-type]
        other = stage.ctx.groups.data[b"grp-other"]
        stage.ctx.groups.data[b"grp-other"] = {
            **other,
            "run": {**other["run"], "playbook": "retired-playbook"},
        }
        level = stage.ctx.groups.data[KEY]["run"]["level"]
        monkeypatch.setattr(stage.engines["flash-flood"], "is_due", lambda run, now: True)
        monkeypatch.setattr(stage, "_update_lag", _nothing)
        monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)
        with caplog.at_level(logging.WARNING, logger="streams.response"):
            await stage.check_deadlines()
            await stage.check_deadlines()
        assert stage.ctx.groups.data[KEY]["run"]["level"] != level  # escalated all the same

    asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if "is skipped" in r.getMessage()]
    assert said == [
        "citybrain: deadlines: the run of group grp-other is skipped (no playbook "
        "'retired-playbook' in the library): it keeps its state; restore its playbook to "
        "act on it, or resolve or cancel it; audited as run_playbook_gone"
    ]
    gone = [r for r in audited if r["action"] == "run_playbook_gone"]
    assert [(r["run_id"], r["detail"]) for r in gone] == [
        (
            "grp-other.1",
            "skipped by the deadline check (no playbook 'retired-playbook' in the library): "
            "it keeps its state; restore its playbook to act on it, or resolve or cancel it",
        )
    ]
    assert _stale(stage, "playbook_gone") == 1


def _stale(stage: Response, reason: str) -> float:
    """citybrain_playbook_runs_stale_total{reason} as the worker exports it."""
    return stage.metrics.runs_stale.labels(reason)._value.get()  # type: ignore[no-any-return]


def test_a_run_whose_playbook_is_gone_can_be_resolved_and_refuses_other_commands(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t49: every command on a run whose playbook a redeployment removed raised KeyError:
    a traceback in the worker's log and a processing_error dead letter, so a desk could
    not even resolve it, and its reporters never heard. Now what needs none of its steps
    applies (resolve, cancel, escalate, answer); an ack, which would take its next step,
    is refused and audited, naming why."""
    stage, _ = response
    audited, sent = captured(stage, monkeypatch)

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        stage.ctx.groups.data[KEY] = {**group, "run": {**group["run"], "playbook": "retired"}}
        run_id = group["run"]["run_id"]
        sent.clear()
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "op"}
        await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        assert sent == []
        resolve = {"id": "cmd-2", "run_id": run_id, "action": "resolve", "by": "op", "note": "ok"}
        await stage.on_command(Event(KEY, resolve))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]["run"])

    run = asyncio.run(scenario())
    [refused] = [r for r in audited if r["action"] == "command_refused"]
    assert refused["detail"] == (
        "run grp-flood.1's playbook 'retired' is no longer in the library: ack cannot be "
        "applied (only answer, cancel, escalate, resolve; or restore the playbook and "
        "reload the worker, kill -HUP, or restart it)"
    )
    assert (run["status"], run["resolved_by"], run["resolution"]) == ("resolved", "op", "ok")
    assert "resolved" in [body["action"] for _, body in sent]


def test_a_refused_command_read_again_after_a_crash_is_audited_under_one_id(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused command is not stored as applied, so the same command read again (a
    worker killed before its offset was committed) is refused and audited again: the
    two records carry one ``id`` (the command's, ``:refused``) for a reader to dedupe;
    they had none, and the audit counted two refusals."""
    stage, _ = response
    audited, _ = captured(stage, monkeypatch)
    ack = {"id": "cmd-7", "action": "ack", "by": "op"}

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        stage.ctx.groups.data[KEY] = {**group, "run": {**group["run"], "playbook": "retired"}}
        command = {**ack, "run_id": group["run"]["run_id"]}
        for _ in range(2):  # read, then read again after a crash
            await stage.on_command(Event(KEY, dict(command)))  # type: ignore[arg-type]

    asyncio.run(scenario())
    refused = [r for r in audited if r["action"] == "command_refused"]
    assert len(refused) == 2
    assert {r["id"] for r in refused} == {"cmd-7:refused"}


class StampedEvent(Event):
    """An event whose Kafka message has a timestamp (epoch seconds, as faust gives it)."""

    def __init__(self, key: bytes, value: dict[str, Any], timestamp: float) -> None:
        super().__init__(key, value)
        self.message.timestamp = timestamp


def test_a_command_applied_again_after_a_crash_emits_the_same_steps(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 10, finding 5: an ack re-applied after a crash (its steps out, the run's
    state not stored) got the restart's time: acknowledged_at 12 s after the operator's
    202, and steps re-emitted under the same ids with other content. A command's time is
    its own ``at`` (stamped by the API), a routed alert's its message's timestamp."""
    stage, _ = response
    sent: list[tuple[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(items)
        return []

    monkeypatch.setattr(stage.ctx, "queue", queue)
    opened_at = time.time() - 60  # the routed message's timestamp

    async def scenario() -> tuple[list[Any], list[Any], dict[str, Any], dict[str, Any]]:
        routed = alert("al-1")
        await stage.on_routed(StampedEvent(KEY, routed, opened_at))  # type: ignore[arg-type]
        opening = list(sent)
        before = dict(stage.ctx.groups.data[KEY])
        del stage.ctx.groups.data[KEY]  # the crash: the run's state never stored
        sent.clear()
        await stage.on_routed(StampedEvent(KEY, routed, opened_at))  # type: ignore[arg-type]
        assert sent == opening  # the run opened again: same ids, same content
        run_id = before["run"]["run_id"]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "op", "at": opened_at + 5}
        sent.clear()
        await stage.on_command(StampedEvent(KEY, ack, opened_at + 5.01))  # type: ignore[arg-type]
        first, acked = list(sent), dict(stage.ctx.groups.data[KEY])
        stage.ctx.groups.data[KEY] = before  # the crash: the ack's state never stored
        sent.clear()
        await stage.on_command(StampedEvent(KEY, ack, opened_at + 5.01))  # type: ignore[arg-type]
        return first, list(sent), acked, dict(stage.ctx.groups.data[KEY])

    first, again, acked, reacked = asyncio.run(scenario())
    assert first and again == first
    assert acked["run"]["acknowledged_at"] == opened_at + 5  # the API's accept time
    assert reacked["run"] == acked["run"]
    assert {body["at"] for _, body in first} == {opened_at + 5}


def test_a_run_that_cannot_advance_does_not_stop_the_other_runs_deadlines(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Trial 26: one run the timer could not advance (then: its current step gone from a
    redeployed playbook, KeyError) ended the deadline pass at its key, every tick: the
    runs after it were never escalated. Now (a send that fails) it is said once a minute,
    and the pass goes on; its change is stored with its outbox, whose outputs are sent
    again at the next tick, under the same ids (t49)."""
    stage, _ = response
    queued: list[Any] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        if any(body.get("run_id") == "grp-flood.1" for _, body in items):
            raise KafkaTimeoutError()
        queued.extend(items)
        return []

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(b"grp-other", alert("al-2")))  # type: ignore[arg-type]
        level = stage.ctx.groups.data[b"grp-other"]["run"]["level"]
        monkeypatch.setattr(stage.ctx, "queue", queue)
        monkeypatch.setattr(stage.engines["flash-flood"], "is_due", lambda run, now: True)
        monkeypatch.setattr(stage, "_update_lag", _nothing)
        monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)
        with caplog.at_level(logging.WARNING, logger="streams.response"):
            await stage.check_deadlines()
            await stage.check_deadlines()
        assert stage.ctx.groups.data[b"grp-other"]["run"]["level"] != level  # escalated
        stored = stage.ctx.groups.data[KEY]
        assert stored["run"]["level"] == "street"  # the change, stored with its outbox
        assert [c["action"] for c in stored["outbox"]][:2] == ["timeout", "transition"]
        assert stored["outbox"][-1]["id"] == f"grp-flood.1:{stored['run']['seq']}"

    asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if "could not be advanced" in r.getMessage()]
    assert said == [
        "citybrain: deadlines: the run of group grp-flood could not be advanced "
        "(KafkaTimeoutError: KafkaTimeoutError): it keeps its state, tried again next tick; "
        "the other runs' deadlines go on (counted in "
        'citybrain_loop_items_skipped_total{loop="deadlines"})'
    ]
    # Counted at each pass that left it (two), the gauge what fails now (one run).
    assert stage.metrics.loop_items_skipped.labels("deadlines")._value.get() == 2
    assert stage.metrics.loop_items_failing.labels("deadlines")._value.get() == 1


def test_a_run_waiting_at_a_step_gone_from_its_playbook_fails_once_and_is_counted(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t49: a run read back waiting at a step the redeployed playbook no longer has raised
    KeyError at every tick (a warning a minute, for good) and at every ack (a traceback
    and a dead letter): stuck, never counted, never audited. Now the first deadline check
    fails it, saying why in its ``failed`` step and transition, counted once; the desk
    then resolves it and its reporters hear."""
    stage, _ = response
    sent: list[tuple[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(items)
        return []

    monkeypatch.setattr(stage.ctx, "queue", queue)
    monkeypatch.setattr(stage, "_update_lag", _nothing)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(b"grp-other", alert("al-2")))  # type: ignore[arg-type]
        first = stage.ctx.groups.data[KEY]
        stage.ctx.groups.data[KEY] = {**first, "run": {**first["run"], "step": "retired-step"}}
        sent.clear()
        await stage.check_deadlines()
        await stage.check_deadlines()  # nothing more: the run is finished
        run_id = first["run"]["run_id"]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "op"}
        await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        resolve = {"id": "cmd-2", "run_id": run_id, "action": "resolve", "by": "op"}
        await stage.on_command(Event(KEY, resolve))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]["run"])

    run = asyncio.run(scenario())
    reason = (
        "step 'retired-step' is no longer in playbook 'flash-flood' (edited since the run "
        "reached it): the run cannot go on; resolve or cancel it"
    )
    mine = [body for _, body in sent if body["run_id"] == "grp-flood.1"]
    assert [(b["action"], b["detail"]) for b in mine[:2]] == [
        ("failed", reason),
        ("transition", reason),
    ]
    assert mine[1]["data"] == {"from": "waiting_ack", "to": "failed", "event": "fail"}
    assert sorted(b["action"] for b in mine[2:]) == ["resolved", "transition"]
    assert run["status"] == "resolved"
    assert [b["action"] for _, b in sent if b["run_id"] == "grp-other.1"] == []
    assert _stale(stage, "step_gone") == 1


def test_a_timer_change_whose_store_failed_is_counted_once_when_made_again(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t49: KPIs were counted as the steps were queued, before the run's state was stored:
    an escalation whose state write failed was made again at the next tick (same step
    ids, as documented) and counted again, so citybrain_playbook_escalations_total said
    two escalations for one. Now counted once the state is stored."""
    stage, _ = response
    fail = [True]

    async def write(key: bytes, entry: bytes) -> None:
        if fail[0]:
            fail[0] = False
            raise KafkaTimeoutError()

    monkeypatch.setattr(stage, "_update_lag", _nothing)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        due = {**group["run"], "deadline_at": time.time() - 1}
        stage.ctx.groups.data[KEY] = {**group, "run": due}
        monkeypatch.setattr(stage.ctx.groups, "_send", write)
        await stage.check_deadlines()  # the store fails: tried again next tick
        stage.ctx.groups.data[KEY] = {**group, "run": due}  # as the failed store left it
        await stage.check_deadlines()
        return dict(stage.ctx.groups.data[KEY]["run"])

    run = asyncio.run(scenario())
    assert run["level"] == "street"
    escalations = stage.metrics.escalations.labels("flash-flood", "street")._value.get()
    assert escalations == 1
    assert stage.metrics.runs.labels("flash-flood", "water-authority")._value.get() == 1


def test_a_command_with_null_text_fields_keeps_no_python_none(
    response: tuple[Response, Gate],
) -> None:
    """Trial 26: a command on the topic with "by": null and "note": null (a foreign
    producer's) recorded the acknowledgement as by "None" with the note "None"."""
    stage, _ = response

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": None, "note": None}
        await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]["run"])

    run = asyncio.run(scenario())
    assert run["acknowledged_by"] == "unknown"
    [action] = [a for a in run["actions"] if a.get("action") == "ack"]
    assert (action["by"], action["note"]) == ("unknown", "")


def test_a_run_whose_cell_is_gone_is_audited_and_counted_once_and_goes_on(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t49: a run read back whose cell the edited grid file no longer has failed at every
    tick (GridError at its escalation, a warning a minute for good). Now it escalates to
    the city's unit, and the worker says so once: audited and counted."""
    stage, _ = response
    audited, sent = captured(stage, monkeypatch)
    monkeypatch.setattr(stage, "_update_lag", _nothing)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        gone = {**group["run"], "grid_cell": "c-demolished", "deadline_at": time.time() - 1}
        stage.ctx.groups.data[KEY] = {**group, "run": gone}
        sent.clear()
        await stage.check_deadlines()
        await stage.check_deadlines()

    asyncio.run(scenario())
    said = [r for r in audited if r["action"] == "run_cell_gone"]
    assert [r["detail"] for r in said] == [
        "grid cell 'c-demolished' of run grp-flood.1 is no longer in the grid: the run goes "
        "on, its notifications and escalations to city command centre (the city's)"
    ]
    assert [b["unit"] for _, b in sent if b["action"] == "escalate"] == ["city command centre"]
    assert _stale(stage, "cell_gone") == 1


def test_after_a_crash_amid_a_changes_outputs_no_step_id_is_reused_for_another_step(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t49: the deadline timer's escalation went out and the worker died before the run's
    new state was stored; after the restart an operator's ack, applied first, was applied
    to the state before the escalation and took the escalation's step ids: the steps
    topic held ``grp-flood.1:8`` as a timeout and as an acknowledgement, so a consumer
    deduping by id (as docs/operations.md says to) dropped one of them. Now the change
    is stored with its outbox before its outputs; the restarted worker sends the outbox
    again (same ids, same content) before applying the ack, which gets ids of its own."""
    stage, _ = response
    sent: list[tuple[str, Any]] = []
    dies = [False]

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(items)
        if dies[0]:  # the outputs are out, and the worker stops before anything else
            dies[0] = False
            raise KafkaTimeoutError()
        return []

    monkeypatch.setattr(stage.ctx, "queue", queue)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        due = {**group["run"], "deadline_at": time.time() - 1}
        stage.ctx.groups.data[KEY] = {**group, "run": due}
        dies[0] = True
        monkeypatch.setattr(stage, "_update_lag", _nothing)
        await stage.check_deadlines()  # the escalation's steps out, then the "crash"
        restarted = Response(stage.ctx)  # a new worker, the table read back as it was
        monkeypatch.setattr(restarted, "_update_lag", _nothing)
        ack = {"id": "cmd-1", "run_id": "grp-flood.1", "action": "ack", "by": "op"}
        await restarted.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        await restarted.check_deadlines()

    asyncio.run(scenario())
    by_id: dict[str, set[bytes]] = {}
    for _, body in sent:
        by_id.setdefault(body["id"], set()).add(orjson.dumps(body))
    assert {i: b for i, b in by_id.items() if len(b) > 1} == {}  # one content per id
    actions = [body["action"] for _, body in sent]
    assert "escalate" in actions and "acknowledged" in actions


def resolved(alert_id: str) -> dict[str, Any]:
    doc = alert(alert_id)
    return {**doc, "alert": {**doc["alert"], "status": "resolved"}}


def test_a_resolution_delivered_again_after_a_crash_adds_no_step(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A routed resolution read again (its run's state stored, the worker killed before
    the offset commit; or routed again by an alerts stage or detection replayed after a
    crash, with a later Kafka timestamp): it changes nothing. It added a second
    ``alert_resolved`` step under a new id (``<run>:<seq+1>``), which no consumer
    deduping by step id could drop."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    opened_at = time.time() - 60

    async def scenario() -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        await stage.on_routed(StampedEvent(KEY, alert("al-1"), opened_at))  # type: ignore[arg-type]
        await stage.on_routed(StampedEvent(KEY, resolved("al-1"), opened_at + 5))  # type: ignore[arg-type]
        before = dict(stage.ctx.groups.data[KEY])
        sent.clear()
        await stage.on_routed(StampedEvent(KEY, resolved("al-1"), opened_at + 5))  # type: ignore[arg-type]
        await stage.on_routed(StampedEvent(KEY, resolved("al-1"), opened_at + 9))  # type: ignore[arg-type]
        return list(sent), before, dict(stage.ctx.groups.data[KEY])

    again, before, after = asyncio.run(scenario())
    assert again == []
    assert after["run"] == before["run"]
