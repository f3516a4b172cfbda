"""Trial 15: a closure (reply) webhook call is made in the background; a worker SIGKILLed
before its outcome came back took the call with it (1 closure in 96 never reached the
channels' webhook in each of two restart storms, tests/integration/test_report_storm.py).
The run's group now keeps each call until its outcome arrives on ``commands``, and the
run's next owner (a worker that did not make the call) makes it again under the same
delivery id. No broker: the context's sends are stubbed, as in test_response_races."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from playbooks.engine import Command, Run
from playbooks.executors.webhook import WebhookOutcome
from streams.context import run_key
from streams.replies import RESEND, UNDELIVERED, result_id, undelivered_of
from streams.response import Response
from tests.unit.streams.test_response_races import (
    KEY,
    Event,
    Gate,
    alert,
    dead_letters_and_audit,
)
from tests.unit.streams.test_response_races import response as races_response

URL = "http://127.0.0.1:9/replies"


@pytest.fixture
def response(tmp_path: Path) -> tuple[Response, Gate]:
    stage, gate = races_response.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    stage.ctx.settings = stage.ctx.settings.model_copy(update={"replies_webhook_url": URL})
    stage.settings = stage.ctx.settings
    stage.ctx.app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    return stage, gate


def calls_of(stage: Response) -> list[tuple[str, str, dict[str, Any]]]:
    made: list[tuple[str, str, dict[str, Any]]] = []

    def submit(command_id: str, url: str, payload: dict[str, Any]) -> bool:
        made.append((command_id, url, payload))
        return True

    async def no_lag() -> None:  # no consumer here
        return None

    stage.webhooks.submit = submit  # type: ignore[method-assign]
    stage._update_lag = no_lag  # type: ignore[method-assign]
    return made


async def replied(stage: Response, **fields: Any) -> tuple[Run, Command]:
    """An alert routed to ``KEY`` and its run advanced by a closure reply (a call to the
    reporter's channel, ``reply_calls``; ``fields``: the reply's other fields, ``unit``,
    ``detail``): the run and the reply."""
    await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
    group = dict(stage.ctx.groups.data[KEY])
    run = Run.from_dict(group["run"])
    reply = Command(
        f"{run.run_id}:90",
        run.run_id,
        run.alert_id,
        "reply",
        time.time(),
        level="community",
        data={"report_id": "r-1", "channel": "hotline", "outcome": "resolved", "what": "ok"},
        **fields,
    )
    async with stage.ctx.runs_settled:
        await stage.advance(KEY, group, run, [reply])
    return run, reply


def gave_up(run: Run, reply: Command) -> dict[str, Any]:
    """The command the replies webhook's delivery writes for ``reply`` when it gives up
    (its ``action_result``: not ok, after its attempts)."""
    return {
        "id": f"{reply.id}:result",
        "run_id": run.run_id,
        "action": "action_result",
        "command_id": reply.id,
        "ok": False,
        "detail": "HTTP 503 after 5 attempt(s)",
        "by": "citybrain",
        "at": time.time(),
    }


def keys_passed_on(stage: Response, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The keys of the commands ``stage`` passes on to their runs' partitions, as it
    sends them (the commands topic's producer replaced by one that takes every send)."""
    passed: list[bytes] = []

    async def send(*, key: bytes, **_: Any) -> asyncio.Future[None]:
        passed.append(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(stage.ctx.commands, "send", send)
    return passed


def test_a_closure_call_cut_by_a_kill_is_made_again_by_the_next_owner_until_its_outcome(
    response: tuple[Response, Gate],
) -> None:
    stage, _ = response
    made = calls_of(stage)

    async def scenario() -> None:
        run, reply = await replied(
            stage, unit="bridge community station", detail="Your report r-1 …"
        )
        [(reply_id, url, doc)] = made
        assert (reply_id, url, doc["report_id"]) == (reply.id, URL, "r-1")
        assert stage.ctx.groups.data[KEY]["reply_calls"] == {reply.id: doc}

        await stage.check_deadlines()  # the worker that made it: not again
        assert len(made) == 1
        restarted = Response(stage.ctx)  # a new process: it made no call
        again = calls_of(restarted)
        await restarted.check_deadlines()
        assert again == [(reply.id, URL, doc)]  # the same delivery id and closure
        await restarted.check_deadlines()
        assert len(again) == 1  # once per worker

        outcome = {
            "id": f"{reply.id}:result",
            "run_id": run.run_id,
            "action": "action_result",
            "command_id": reply.id,
            "ok": True,
            "by": "citybrain",
            "at": time.time(),
        }
        await restarted.on_command(Event(KEY, outcome))  # type: ignore[arg-type]
        assert stage.ctx.groups.data[KEY]["reply_calls"] == {}
        later = Response(stage.ctx)
        none = calls_of(later)
        await later.check_deadlines()
        assert none == []

    asyncio.run(scenario())


def test_the_outcome_of_a_superseded_runs_closure_call_is_no_dead_letter(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 26: a closure call's outcome that came back after a new alert had opened the
    group's next run was taken off the group's calls, then dead-lettered as unknown_run
    ("no run …"): a dead letter for the worker's own message, on every such closure of
    a storm."""
    stage, _ = response
    calls_of(stage)
    letters: list[tuple[str, str, str]] = []

    async def dead_letter(role: str, event: Any, code: str, reason: str) -> None:
        letters.append((role, code, reason))

    monkeypatch.setattr(stage.ctx, "dead_letter", dead_letter)

    async def scenario() -> None:
        run, reply = await replied(stage)
        cancel = {"id": "c-1", "run_id": run.run_id, "action": "cancel", "by": "op"}
        await stage.on_command(Event(KEY, cancel))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, alert("al-2")))  # the group's next run
        assert stage.ctx.groups.data[KEY]["run"]["run_id"] != run.run_id
        outcome = {
            "id": f"{reply.id}:result",
            "run_id": run.run_id,
            "action": "action_result",
            "command_id": reply.id,
            "ok": True,
            "by": "citybrain",
            "at": time.time(),
        }
        await stage.on_command(Event(KEY, outcome))  # type: ignore[arg-type]
        assert stage.ctx.groups.data[KEY]["reply_calls"] == {}

    asyncio.run(scenario())
    assert letters == []


def test_a_closure_call_given_up_after_its_retries_is_audited_once(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a closure call that failed for good left only its attempts' records (the
    run is resolved: the engine ignores the outcome); nothing said it was given up."""
    stage, _ = response
    calls_of(stage)
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(stage.ctx, "audit", audit)

    async def scenario() -> None:
        run, reply = await replied(stage)
        audited.clear()
        outcome = gave_up(run, reply)
        await stage.on_command(Event(KEY, outcome))  # type: ignore[arg-type]
        await stage.on_command(Event(KEY, outcome))  # the same outcome again: no record
        assert stage.ctx.groups.data[KEY]["reply_calls"] == {}

    asyncio.run(scenario())
    [record] = [r for r in audited if r["action"] == "reply_webhook_failed"]
    assert record["detail"].startswith(f"{record['run_id']}:90 for report r-1 to {URL}: ")
    assert "HTTP 503 after 5 attempt(s); given up" in record["detail"]


def test_a_closure_given_up_is_kept_undelivered_counted_and_resent_once(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a closure given up was one audit record; the citizen never heard and
    nothing asked an operator to act. Now it stays with the group as undelivered
    (counted by the gauge, the group not forgotten) until a ``resend_closures`` command
    calls it again under its reply id; a second such command calls nothing."""
    stage, _ = response
    made = calls_of(stage)
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(stage.ctx, "audit", audit)
    stage.settings = stage.ctx.settings = stage.ctx.settings.model_copy(
        update={"group_retention": 0.0}
    )

    async def scenario() -> None:
        run, reply = await replied(stage)
        [(_, _, doc)] = made
        failed = {
            "id": f"{reply.id}:result",
            "run_id": run.run_id,
            "action": "action_result",
            "command_id": reply.id,
            "ok": False,
            "detail": "HTTP 503 after 3 attempt(s)",
            "by": "citybrain",
            "at": time.time(),
        }
        await stage.on_command(Event(KEY, failed))  # type: ignore[arg-type]
        [entry] = stage.ctx.groups.data[KEY][UNDELIVERED].values()
        assert (entry["reply"], entry["detail"]) == (doc, "HTTP 503 after 3 attempt(s)")
        assert undelivered_of(stage.ctx.groups.data[KEY], run.run_id) == {reply.id: entry}
        cancel = {"id": "c-1", "run_id": run.run_id, "action": "cancel", "by": "op"}
        await stage.on_command(Event(KEY, cancel))  # type: ignore[arg-type]
        resolved = alert("al-1")
        resolved["alert"]["status"] = "resolved"
        await stage.on_routed(Event(KEY, resolved))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        ended = Run.from_dict(group["run"])
        later = time.time() + 10 * 86400.0
        # Finished, every alert resolved, retention passed: only the closure keeps it.
        assert stage._ended({**group, UNDELIVERED: {}}, ended, later)
        assert not stage._ended(group, ended, later)
        await stage.check_deadlines()
        assert KEY in stage.ctx.groups.data
        assert stage.metrics.closures_undelivered._value.get() == 1
        resend = {"id": "rs-1", "run_id": run.run_id, "action": RESEND, "by": "op"}
        await stage.on_command(Event(KEY, resend))  # type: ignore[arg-type]
        assert made[1:] == [(reply.id, URL, doc)]  # the same delivery id and closure
        assert stage.ctx.groups.data[KEY][UNDELIVERED] == {}
        assert stage.ctx.groups.data[KEY]["reply_calls"] == {reply.id: doc}
        again = {"id": "rs-2", "run_id": run.run_id, "action": RESEND, "by": "op"}
        await stage.on_command(Event(KEY, again))  # type: ignore[arg-type]
        await stage.on_command(Event(KEY, resend))  # redelivered: nothing either
        assert len(made) == 2
        await stage.check_deadlines()
        assert stage.metrics.closures_undelivered._value.get() == 0

    asyncio.run(scenario())
    [resent] = [r for r in audited if r["action"] == "closures_resent"]
    assert (resent["actor"], resent["detail"]) == (
        "op",
        f"1 closure(s) re-sent to {URL} (reports r-1)",
    )


def test_a_closure_the_executor_drops_is_undelivered_too(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closure the executor would not take (too many calls in flight) was audited
    ``reply_webhook_dropped`` and stayed in the calls in flight, never made again by
    its worker: now its failed outcome goes to ``commands`` as any given-up call's. Its
    record has the reply's id (``:webhook_dropped``): the closure emitted again after a
    crash drops again, and a reader dedupes the repeat by it."""
    stage, _ = response
    sent: list[dict[str, Any]] = []
    audited: list[dict[str, Any]] = []

    async def on_webhook_outcome(outcome: Any) -> None:
        sent.append({"command_id": outcome.command_id, "ok": outcome.ok, "detail": outcome.detail})

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(stage.webhooks, "submit", lambda *a: False)
    monkeypatch.setattr(stage, "on_webhook_outcome", on_webhook_outcome)
    monkeypatch.setattr(stage.ctx, "audit", audit)

    async def scenario() -> None:
        _, reply = await replied(stage)
        assert sent == [
            {"command_id": reply.id, "ok": False, "detail": "too many webhook calls in flight"}
        ]
        [dropped] = [r for r in audited if r["action"] == "reply_webhook_dropped"]
        assert dropped["id"] == f"{reply.id}:webhook_dropped"

    asyncio.run(scenario())


def test_a_command_read_again_after_its_run_was_superseded_is_no_dead_letter(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t120: a worker SIGKILLed after applying a command (a cancel, a closure call's
    outcome) and after a new alert opened the group's next run, but before the commands
    offset was committed, reads the command again after its restart. The run it names is
    superseded by then, and the repeat was dead-lettered ``unknown_run`` ("no run …")
    though it had been applied: a dead letter for every such command of a kill, and for
    the outcome, its closure call's record gone from the group so nothing knew it for a
    repeat. A command the group applied (or whose call it ended) is a repeat whatever run
    is current: nothing happens, no dead letter."""
    stage, _ = response
    calls_of(stage)
    letters, audited = dead_letters_and_audit(stage, monkeypatch)

    async def scenario() -> str:
        run, reply = await replied(stage)
        cancel = {"id": "c-1", "run_id": run.run_id, "action": "cancel", "by": "op"}
        await stage.on_command(Event(KEY, cancel))  # type: ignore[arg-type]
        outcome = gave_up(run, reply)
        await stage.on_command(Event(KEY, outcome))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, alert("al-2")))  # the group's next run
        group = stage.ctx.groups.data[KEY]
        assert group["run"]["run_id"] != run.run_id
        assert undelivered_of(group, run.run_id)  # the give-up kept, once
        before = dict(group)
        # The restarted worker (no call in memory) reads both again.
        restarted = Response(stage.ctx)
        calls_of(restarted)
        for repeat in (cancel, outcome):
            await restarted.on_command(Event(KEY, repeat))  # type: ignore[arg-type]
        assert stage.ctx.groups.data[KEY] == before  # nothing changed
        # A command never applied, for the superseded run, is still an unknown run's.
        late = {"id": "c-2", "run_id": run.run_id, "action": "ack", "by": "op"}
        await restarted.on_command(Event(KEY, late))  # type: ignore[arg-type]
        return run.run_id

    run_id = asyncio.run(scenario())
    assert letters == [("commands", "unknown_run", f"no run {run_id}")]  # c-2's only
    given_up = [r for r in audited if r["action"] == "reply_webhook_failed"]
    assert len(given_up) == 1, given_up


def test_a_resent_closures_outcome_has_its_own_id_and_a_first_calls_read_again_changes_nothing(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t148: the outcome of a closure re-sent by `runs resend` was sent under its first
    call's id (``<reply id>:result``). A worker stopped after taking the re-send but
    before committing the first call's failure read that failure again: the closure, in
    its calls again, took it for the re-send's outcome (undelivered again, given up a
    second time in the audit), and the re-send's own outcome, delivered, was then
    dropped as a repeat of an id applied. Each call of a closure now answers under its
    own id (``result_id``); the same outcome read again is a repeat, another call's is
    another command."""
    stage, _ = response
    made = calls_of(stage)
    _, audited = dead_letters_and_audit(stage, monkeypatch)
    outcomes: list[dict[str, Any]] = []

    async def send(key: bytes, value: bytes) -> None:
        outcomes.append(orjson.loads(value))

    monkeypatch.setattr(stage.ctx.commands, "send", send)

    async def scenario() -> None:
        run, reply = await replied(stage)
        failed = gave_up(run, reply)
        await stage.on_command(Event(KEY, failed))  # type: ignore[arg-type]
        resend = {"id": "rs-1", "run_id": run.run_id, "action": RESEND, "by": "op"}
        await stage.on_command(Event(KEY, resend))  # type: ignore[arg-type]
        assert [m[0] for m in made] == [reply.id, reply.id]  # one delivery id, for dedupe
        # The re-send's call succeeds: its outcome is sent under an id of its own.
        await stage.on_webhook_outcome(WebhookOutcome(reply.id, URL, True, 1, "HTTP 200", 0.1))
        [delivered] = outcomes
        assert delivered["command_id"] == reply.id
        assert delivered["id"] == f"{reply.id}:result:1" != failed["id"]
        # Restarted before the first failure's offset was committed: read again first.
        restarted = Response(stage.ctx)
        calls_of(restarted)
        await restarted.on_command(Event(KEY, failed))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        assert group[UNDELIVERED] == {} and reply.id in group["reply_calls"]
        await restarted.on_command(Event(KEY, delivered))  # type: ignore[arg-type]
        await restarted.on_command(Event(KEY, delivered))  # and again: a repeat
        group = stage.ctx.groups.data[KEY]
        assert (group[UNDELIVERED], group["reply_calls"]) == ({}, {})
        # A second give-up and re-send: the next call's outcome id again its own.
        assert result_id(reply.id, 2) == f"{reply.id}:result:2"

    asyncio.run(scenario())
    given_up = [r for r in audited if r["action"] == "reply_webhook_failed"]
    assert len(given_up) == 1, given_up
    assert stage.metrics.closures_given_up._value.get() == 1


class Killed(Exception):
    """The worker's process ends here (SIGKILL)."""


@pytest.mark.parametrize("action", ["reply_webhook_failed", "closures_resent"])
def test_a_kill_right_after_a_give_up_or_resend_is_stored_loses_no_audit_record(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """t152: a closure given up (and an operator's re-send of it) was stored first, its
    audit record sent after: a kill in between lost the record for good, since the
    outcome (or the command) read again is a repeat that says nothing. Now the record is
    stored with the change (the group's ``say``) and sent after, and again by the run's
    next touch after a kill, under one id; the give-up counted once."""
    stage, _ = response
    calls_of(stage)
    audited: list[dict[str, Any]] = []
    armed = [False]

    async def audit(record: dict[str, Any]) -> None:
        if armed[0] and record["action"] == action:
            raise Killed  # killed once the change is stored, before its record is out
        audited.append(record)

    async def audit_all(records: list[dict[str, Any]]) -> None:
        for record in records:
            await audit(record)

    monkeypatch.setattr(stage.ctx, "audit", audit)
    monkeypatch.setattr(stage.ctx, "audit_all", audit_all)

    async def scenario() -> None:
        run, reply = await replied(stage)
        outcome = gave_up(run, reply)
        resend = {"id": "rs-1", "run_id": run.run_id, "action": RESEND, "by": "op"}
        armed[0] = action == "reply_webhook_failed"
        with pytest.raises(Killed) if armed[0] else contextlib.nullcontext():
            await stage.on_command(Event(KEY, outcome))  # type: ignore[arg-type]
        if armed[0]:
            armed[0] = False
            restarted = Response(stage.ctx)
            calls_of(restarted)
            await restarted.on_command(Event(KEY, outcome))  # read again: a repeat
            return
        armed[0] = True
        with pytest.raises(Killed):
            await stage.on_command(Event(KEY, resend))  # type: ignore[arg-type]
        armed[0] = False
        restarted = Response(stage.ctx)
        calls_of(restarted)
        await restarted.on_command(Event(KEY, resend))  # type: ignore[arg-type]

    asyncio.run(scenario())
    records = [r for r in audited if r["action"] == action]
    assert len(records) == 1, audited
    assert "say" not in stage.ctx.groups.data[KEY]


@pytest.mark.parametrize(
    "run_id",
    [
        "grp-nowhere.1",  # a group this worker never had
        "grp-flood.99",  # a generation its group never issued
        "grp-flood.0",  # none is ever issued: they start at 1
        "grp-flood",  # no generation at all (the group key itself)
        "grp-flood.01",
        "grp-flood." + "9" * 5000,
        "grp-flood.\x00",
    ],
)
def test_a_resend_for_a_run_that_never_was_is_dead_lettered_unknown_run(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    """t211 (poison-pill-batch: a command for an unknown run shaped oddly): a
    ``resend_closures`` command on the commands topic whose run never was, on its run's
    partition, was consumed with nothing said (no dead letter, no audit record, nothing
    counted), where every other action is dead-lettered ``unknown_run`` (docs/events.md).
    A resend for a superseded run, or for one with nothing left undelivered, stays a
    repeat that changes nothing (test above)."""
    stage, _ = response
    calls_of(stage)
    letters, audited = dead_letters_and_audit(stage, monkeypatch)

    async def scenario() -> None:
        run, _ = await replied(stage)
        before = dict(stage.ctx.groups.data[KEY])
        # Its own run, nothing undelivered: nothing to do, nothing said.
        ours = {"id": "rs-0", "run_id": run.run_id, "action": RESEND, "by": "op"}
        await stage.on_command(Event(KEY, ours))  # type: ignore[arg-type]
        odd = {"id": "rs-1", "run_id": run_id, "action": RESEND, "by": "op"}
        # Keyed as the API keys a command (by its run's group), so on its run's partition.
        await stage.on_command(Event(run_key(run_id), odd))  # type: ignore[arg-type]
        assert stage.ctx.groups.data[KEY] == before  # nothing changed

    asyncio.run(scenario())
    [(role, code, reason)] = letters
    assert (role, code) == ("commands", "unknown_run")
    assert reason.startswith("no run ")
    assert not [r for r in audited if r["action"] == "closures_resent"]


def test_a_command_whose_group_key_would_not_fit_beside_it_is_not_passed_on(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t211 (poison-pill-batch: a very long id): a command off its run's partition is
    passed on keyed by its run's group key, and a run_id is any text. One of 499,900
    characters (its value within the own topics' 500,000 bytes) with a 55-byte
    traceparent header was checked without its new key, passed, and the producer refused
    the 1,000,001 bytes (aiokafka's estimate): a processing_error with a traceback.
    Now ``bad_command`` saying the sizes, and nothing is sent."""
    stage, _ = response
    letters, _ = dead_letters_and_audit(stage, monkeypatch)
    passed = keys_passed_on(stage, monkeypatch)
    run_id = "r" * 499_900
    command = {"id": "c-4", "run_id": run_id, "action": "ack"}
    home = Event(run_key(run_id), command).message.partition
    trace = [("traceparent", b"00-" + b"a" * 52)]
    event = Event(b"k", command, partition=1 - home, headers=trace)
    asyncio.run(stage.ctx.guarded("commands", stage._command, event))  # type: ignore[arg-type]
    assert passed == []
    [(role, code, reason)] = letters
    assert (role, code) == ("commands", "bad_command")
    assert "it would be 500,005 bytes and 499,900 of its run's group key" in reason
    # A short run_id is passed on as before, whatever its value's size.
    small = {"id": "c-5", "run_id": "grp-x.1", "action": "ack", "note": "n" * 400_000}
    home = Event(run_key("grp-x.1"), small).message.partition
    again = Event(b"k", small, partition=1 - home, headers=trace)
    asyncio.run(stage.ctx.guarded("commands", stage._command, again))  # type: ignore[arg-type]
    assert passed == [b"grp-x"]


def test_an_outcome_naming_another_run_than_its_calls_ends_no_call(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t211 (poison-pill-batch: an outcome for an unknown run): a closure call's outcome
    (``action_result``) whose ``run_id`` is not the run that made the call (a producer's,
    on the commands topic, keyed by the group) ended that call all the same, kept it as
    undelivered under its own run, and, its run_id being no run, was dropped with nothing
    said. The call is its run's: such an outcome is read as any command for its run id,
    here ``unknown_run``, and the call stays in flight for its own outcome."""
    stage, _ = response
    calls_of(stage)
    letters, _ = dead_letters_and_audit(stage, monkeypatch)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], str]:
        run, reply = await replied(stage)
        before = dict(stage.ctx.groups.data[KEY])
        assert reply.id in before["reply_calls"]
        odd = {**gave_up(run, reply), "run_id": KEY.decode() + ".99"}
        await stage.on_command(Event(KEY, odd))  # type: ignore[arg-type]
        after = dict(stage.ctx.groups.data[KEY])
        # Its own outcome still ends it.
        await stage.on_command(Event(KEY, gave_up(run, reply)))  # type: ignore[arg-type]
        return before, after, run.run_id

    before, after, run_id = asyncio.run(scenario())
    assert after == before
    assert letters == [("commands", "unknown_run", "no run grp-flood.99")]
    group = stage.ctx.groups.data[KEY]
    assert group["reply_calls"] == {} and undelivered_of(group, run_id)
