"""t187: the routed agent takes a batch (one partition's fetch) at a time, and the alerts
of the batch joining one group's open run are one change of that run: its state stored
once, the joins' steps sent together. Before, every joining alert stored its own change
(two Kafka round trips), and a storm into one group held every other group's alert read
after it for 13-16 s (docs/playbooks.md, "One group's storm").

No broker: the context's changelog writes and sends are counted (the fixture of
tests/unit/streams/test_response_races.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.response import Response
from tests.unit.streams.test_response_races import (
    KEY,
    Event,
    Gate,
    alert,
    captured,
    dead_letters_and_audit,
    offer,
    response,
)

__all__ = ["response"]  # the fixture, used by name

OTHER = b"grp-other"


def resolved(alert_id: str) -> dict[str, Any]:
    doc = alert(alert_id)
    doc["alert"]["status"] = "resolved"
    return doc


def batch(*items: tuple[bytes, dict[str, Any]]) -> list[Any]:
    """The messages of one routed batch (what the batch drain hands the agent)."""
    return [Event(key, value).message for key, value in items]


def writes_of(stage: Response) -> list[bytes]:
    """The group keys ``stage`` writes to the groups changelog from now on, in order."""
    written: list[bytes] = []

    async def write(key: bytes, entry: bytes) -> None:
        written.append(key)

    stage.ctx.groups._send = write  # type: ignore[method-assign]
    return written


def joined(sent: list[tuple[str, Any]]) -> list[str]:
    return [body["detail"] for _, body in sent if body.get("action") == "alert_joined"]


def test_a_batch_of_joins_into_one_group_is_one_change_of_its_run(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old code (400 changelog writes for 200 joins, one per alert and
    send; the routed agent took one message at a time)."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)

    async def scenario() -> list[bytes]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        written = writes_of(stage)
        ids = [f"al-{n}" for n in range(1, 201)]
        await stage.on_routed_batch(batch(*((KEY, alert(i)) for i in ids)))
        return written

    written = asyncio.run(scenario())
    assert written == [KEY, KEY]  # its state with the outbox, then without: one change
    assert joined(sent) == [f"al-{n}" for n in range(1, 201)]  # every join's step, in order
    group = stage.ctx.groups.data[KEY]
    assert group["run"]["alerts"] == [f"al-{n}" for n in range(101, 201)]  # the newest 100
    assert "al-200" in group["seen"] and "outbox" not in group
    steps = [body["id"] for _, body in sent]
    assert len(steps) == len(set(steps))  # each step its own id


def test_the_resolutions_of_a_storm_in_one_batch_are_one_change_too(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storm's end: its alerts' resolutions read in one batch are one change of the
    run (each its own alert_resolved step), not one each."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    ids = [f"al-{n}" for n in range(1, 51)]

    async def scenario() -> list[bytes]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        await stage.on_routed_batch(batch(*((KEY, alert(i)) for i in ids)))
        written = writes_of(stage)
        await stage.on_routed_batch(batch(*((KEY, resolved(i)) for i in ids)))
        return written

    assert asyncio.run(scenario()) == [KEY, KEY]
    noted = [body["detail"] for _, body in sent if body.get("action") == "alert_resolved"]
    assert noted == ids
    assert stage.ctx.groups.data[KEY]["run"]["ended_alerts"] == ids


def test_the_batch_gives_the_state_and_steps_one_message_at_a_time_gives(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run, alerts and step ids as the one-at-a-time handler, with a repeat of
    an alert (dedup by alert id) and a resolution among the joins (the joins before it
    are stored before it, in order)."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    items = [
        (KEY, alert("al-1")),
        (KEY, alert("al-2")),
        (KEY, alert("al-1")),  # read again: changes nothing
        (KEY, resolved("al-2")),
        (KEY, alert("al-3")),
    ]

    async def batched() -> dict[str, Any]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        await stage.on_routed_batch(batch(*items))
        return dict(stage.ctx.groups.data[KEY])

    async def alone() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-0")))  # type: ignore[arg-type]
        for key, value in items:
            await stage.on_routed(Event(key, value))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY])

    group = asyncio.run(batched())
    steps = [(body["id"], body["action"], body.get("detail")) for _, body in sent]
    del stage.ctx.groups.data[KEY]
    sent.clear()
    expected = asyncio.run(alone())
    expected_steps = [(body["id"], body["action"], body.get("detail")) for _, body in sent]
    assert [s[1:] for s in steps] == [s[1:] for s in expected_steps]
    assert [s[0] for s in steps] == [s[0] for s in expected_steps]
    assert joined(sent) == ["al-1", "al-2", "al-3"]
    for field in ("alerts", "ended_alerts", "status"):
        assert group["run"][field] == expected["run"][field]
    assert group["seen"] == expected["seen"]


def test_a_group_whose_change_cannot_be_stored_costs_only_its_own_messages(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One group's change refused by the changelog: each of its joins dead-lettered with
    the reason (nothing lost, nothing acked unsaid); the other
    group's joins in the same batch stored."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)

    async def scenario() -> list[tuple[str, str, str]]:
        await stage.on_routed_batch(batch((KEY, alert("al-0")), (OTHER, alert("ot-0"))))
        before = dict(stage.ctx.groups.data[KEY])

        async def write(key: bytes, entry: bytes) -> None:
            if key == KEY:
                raise OSError("the changelog refused it")

        stage.ctx.groups._send = write  # type: ignore[method-assign]
        letters, _ = dead_letters_and_audit(stage, monkeypatch)
        await stage.on_routed_batch(
            batch(
                (KEY, alert("al-1")),
                (OTHER, alert("ot-1")),
                (KEY, alert("al-2")),
                (OTHER, {"alert": "not an alert"}),  # its own dead letter, alone
            )
        )
        # As one message at a time leaves a failed send: the change with its outbox in
        # memory, sent again (same ids) at the group's next touch.
        assert stage.ctx.groups.data[KEY]["outbox"]
        assert before["run"]["alerts"] == ["al-0"]
        return letters

    letters = asyncio.run(scenario())
    assert [code for _, code, _ in letters].count("processing_error") == 2
    refused = [why for _, code, why in letters if code == "processing_error"]
    assert all("the changelog refused it" in why for why in refused)
    assert len(letters) == 3  # and the unreadable message's own
    assert "ot-1" in stage.ctx.groups.data[OTHER]["run"]["alerts"]
    assert "ot-1" in joined(sent)


def test_a_run_too_large_leaves_the_group_as_stored(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change refused before anything is sent (``RunTooLarge``): the memory is put
    back as stored, so no later message builds on joins that never reached Kafka."""
    stage, _ = response
    captured(stage, monkeypatch)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        before = dict(stage.ctx.groups.data[KEY])
        letters, _ = dead_letters_and_audit(stage, monkeypatch)
        monkeypatch.setattr("streams.response.MAX_MESSAGE_BYTES", 10)
        await stage.on_routed_batch(batch((KEY, alert("al-1")), (KEY, alert("al-2"))))
        return before, dict(stage.ctx.groups.data[KEY]), letters

    before, after, letters = asyncio.run(scenario())
    assert after == before
    assert [code for _, code, _ in letters] == ["processing_error", "processing_error"]
    assert all("RunTooLarge" in why for _, _, why in letters)


def at(offset: int, key: bytes, value: dict[str, Any]) -> Any:
    """The message of a routed batch at ``offset`` of its partition."""
    message = Event(key, value).message
    message.offset = offset
    return message


def test_an_alert_read_again_after_a_crash_joins_once_whatever_seen_forgot(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed before its offsets were committed reads its routed messages
    again; 600 alerts of one group outlast ``seen`` (500 ids). Those it forgot joined
    the run again, each a second alert_joined step under a new id and notified again
    (fails on the old code, which kept no position: seen by alert id only). Now the
    group keeps the offset of the last message applied (``routed_offset``): one read
    below it is a repeat; a new one after it joins."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    items = [(n, KEY, alert(f"al-{n}")) for n in range(601)]

    async def scenario() -> None:
        await stage.on_routed_batch([at(n, key, value) for n, key, value in items])
        # Read again from the committed offset (0), as after a SIGKILL; then a new one.
        await stage.on_routed_batch([at(n, key, value) for n, key, value in items])
        await stage.on_routed_batch([at(601, KEY, alert("al-601"))])

    asyncio.run(scenario())
    assert joined(sent) == [f"al-{n}" for n in range(1, 602)]  # each once, in order
    assert stage.ctx.groups.data[KEY]["routed_offset"] == [Event(KEY, {}).message.partition, 601]
    assert [body["action"] for _, body in sent].count("run_created") == 1


def test_a_routed_offset_of_another_shape_is_unreadable() -> None:
    from streams.context import read_group
    from streams.tables import UnreadableEntryError

    group = {"generation": 0, "run": None, "seen": [], "commands": [], "route": None}
    read_group(orjson.dumps({**group, "routed_offset": [1, 5]}))
    for odd in ([1], [1, -5], [1, True], "1:5", [1, 2**63]):
        with pytest.raises(UnreadableEntryError, match="routed_offset"):
            read_group(orjson.dumps({**group, "routed_offset": odd}))


def test_a_muted_notice_after_a_deferred_resolution_in_one_batch_is_kept(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t201: the run's last alert resolves (a change deferred to the batch's end) and an
    alert of its group comes muted in the same batch: the group holds the muted member
    (recorded though the run is open) and the run's group lives on (``all_resolved_at``
    None), the deferred resolution stored first (``_plain_join``), not over the notice's
    change. Fails on the old code (no member recorded while a run is open)."""
    from tests.unit.streams.test_group_flushes import muted_notice

    stage, _ = response
    captured(stage, monkeypatch)

    async def scenario() -> None:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        notice = muted_notice("al-1", 1_000_000.0)
        await stage.on_routed_batch(batch((KEY, alert("al-2")), (KEY, resolved("al-0"))))
        await stage.on_routed_batch(batch((KEY, resolved("al-2")), (KEY, notice)))

    asyncio.run(scenario())
    group = stage.ctx.groups.data[KEY]
    assert group["muted"] == {"al-1": 1_000_000.0}
    assert group["run"]["ended_alerts"] == ["al-0", "al-2"]
    assert group["run"]["all_resolved_at"] is None


def covered(sent: list[tuple[str, Any]]) -> list[str]:
    return [body["detail"] for _, body in sent if body.get("action") == "report_covered"]


def test_a_flood_of_reports_offered_to_one_open_run_is_one_change_of_it(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t208: 200 citizen reports offered to a group's open run in one batch, with joins
    among them, are one change of the run (fails on the old code: 400 changelog writes
    and as many round trips, each offer its own change), each report covered, in the
    order read, with its own report_covered step; a report offered twice changes
    nothing the second time."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    reports = [f"r-{n}" for n in range(200)]
    items = [(KEY, offer(r)) for r in reports]
    items.insert(50, (KEY, alert("al-1")))
    items.append((KEY, offer("r-7")))  # read again

    async def scenario() -> list[bytes]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        written = writes_of(stage)
        await stage.on_routed_batch(batch(*items))
        return written

    assert asyncio.run(scenario()) == [KEY, KEY]  # its state with the outbox, then without
    assert covered(sent) == reports
    assert joined(sent) == ["al-1"]
    run = stage.ctx.groups.data[KEY]["run"]
    assert list(run["reports"]) == reports and "al-1" in run["alerts"]
    steps = [body["id"] for _, body in sent]
    assert len(steps) == len(set(steps))


def test_offers_in_a_batch_give_what_one_message_at_a_time_gives(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run, reports, steps and step ids as the one-at-a-time handler, with an
    offer held for a group with no run (it stores the batch's changes first, ``OTHER``)
    and offers on both sides of a join and a resolution."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    items = [
        (KEY, offer("r-1")),
        (KEY, alert("al-1")),
        (KEY, offer("r-2")),
        (OTHER, offer("o-1")),  # no run: held, the batch's joins stored first
        (KEY, resolved("al-1")),
        (KEY, offer("r-3")),
        (KEY, offer("r-1")),  # again
    ]

    async def batched() -> tuple[dict[str, Any], dict[str, Any]]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        await stage.on_routed_batch(batch(*items))
        return dict(stage.ctx.groups.data[KEY]), dict(stage.ctx.groups.data[OTHER])

    async def alone() -> tuple[dict[str, Any], dict[str, Any]]:
        await stage.on_routed(Event(KEY, alert("al-0")))  # type: ignore[arg-type]
        for key, value in items:
            await stage.on_routed(Event(key, value))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY]), dict(stage.ctx.groups.data[OTHER])

    group, other = asyncio.run(batched())
    steps = [(body["id"], body["action"], body.get("detail")) for _, body in sent]
    stage.ctx.groups.data.clear()
    sent.clear()
    expected, expected_other = asyncio.run(alone())
    expected_steps = [(body["id"], body["action"], body.get("detail")) for _, body in sent]
    assert steps == expected_steps
    assert covered(sent) == ["r-1", "r-2", "r-3"]
    for field in ("alerts", "ended_alerts", "status", "reports"):
        assert group["run"][field] == expected["run"][field]
    assert [h["report"]["report_id"] for h in other["held_offers"]] == ["o-1"]
    assert [h["report"] for h in other["held_offers"]] == [
        h["report"] for h in expected_other["held_offers"]
    ]


def test_offers_whose_change_cannot_be_stored_are_each_dead_lettered(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's change of a run refused by the changelog costs its offers and joins
    each a dead letter with the reason, nothing acked unsaid; a run too large leaves
    the group as stored, no report covered in memory that Kafka never got."""
    stage, _ = response
    captured(stage, monkeypatch)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        await stage.on_routed_batch(batch((KEY, alert("al-0"))))
        before = dict(stage.ctx.groups.data[KEY])
        letters, _ = dead_letters_and_audit(stage, monkeypatch)
        monkeypatch.setattr("streams.response.MAX_MESSAGE_BYTES", 10)
        await stage.on_routed_batch(batch((KEY, offer("r-1")), (KEY, offer("r-2"))))
        return before, dict(stage.ctx.groups.data[KEY]), letters

    before, after, letters = asyncio.run(scenario())
    assert after == before and after["run"]["reports"] == {}
    assert [code for _, code, _ in letters] == ["processing_error", "processing_error"]
    assert all("RunTooLarge" in why for _, _, why in letters)
