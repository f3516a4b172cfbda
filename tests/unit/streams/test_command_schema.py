"""A command whose action no worker applies, or an answer whose ``report_id`` or
``satisfied`` is malformed, is dead-lettered ``bad_command`` naming the field and value
(t137). Before, ``command_fields`` let it through and the engine refused it: one
``command_refused`` audit record, no dead letter (nothing counted, nothing to replay
with ``citybrain deadletters --replay``), where an ``action_result``'s ``ok`` of
``"false"`` or an answer's ``comment`` of 5 were dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.response import COMMAND_ACTIONS, EventError, Response, command_fields
from tests.unit.streams.test_response_races import (
    KEY,
    Event,
    Gate,
    alert,
    dead_letters_and_audit,
    response,
)

__all__ = ["response"]  # the fixture, used by name

BASE = {"id": "c-1", "run_id": "g.1", "by": "ana"}
ANSWER = {**BASE, "action": "answer", "report_id": "r-1", "satisfied": True}


@pytest.mark.parametrize(
    ("cmd", "said"),
    [
        ({**BASE, "action": "frobnicate"}, "field \"action\" is 'frobnicate': expected one of ack"),
        ({**BASE, "action": "ak"}, "(did you mean 'ack'?)"),
        ({**BASE, "action": "ACK"}, "(did you mean 'ack'?)"),
        (
            {**ANSWER, "satisfied": "false"},
            "field \"satisfied\" is 'false': expected true or false",
        ),
        ({**ANSWER, "satisfied": 0}, 'field "satisfied" is 0: expected true or false'),
        ({**ANSWER, "satisfied": None}, 'field "satisfied" is null: expected true or false'),
        ({k: v for k, v in ANSWER.items() if k != "satisfied"}, 'field "satisfied" is missing'),
        ({**ANSWER, "report_id": 5}, 'field "report_id" is 5: expected a non-empty string'),
        ({**ANSWER, "report_id": ""}, "field \"report_id\" is '': expected a non-empty string"),
        ({k: v for k, v in ANSWER.items() if k != "report_id"}, 'field "report_id" is missing'),
    ],
)
def test_a_command_no_worker_applies_is_refused_naming_the_field(
    cmd: dict[str, Any], said: str
) -> None:
    with pytest.raises(EventError) as refused:
        command_fields(cmd)
    assert refused.value.code == "bad_command" and said in str(refused.value)


@pytest.mark.parametrize("action", sorted(COMMAND_ACTIONS - {"answer", "action_result"}))
def test_every_action_the_worker_applies_is_taken(action: str) -> None:
    assert command_fields({**BASE, "action": action})["action"] == action
    assert command_fields({**ANSWER, "satisfied": False})["satisfied"] is False
    assert command_fields({**BASE, "action": "action_result", "ok": True})["ok"] is True


def test_a_malformed_answer_is_a_dead_letter_not_an_audit_record(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    stage, _ = response
    said, audited = dead_letters_and_audit(stage, monkeypatch)

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        odd = [
            {"id": "c-1", "run_id": run_id, "action": "answer", "report_id": "r-1"},
            {"id": "c-2", "run_id": run_id, "action": "answer", "report_id": "r-1"},
            {"id": "c-3", "run_id": run_id, "action": "acknowledge", "by": "bo"},
        ]
        odd[0]["satisfied"] = "false"
        for cmd in odd:
            await stage.on_command(Event(KEY, cmd))  # type: ignore[arg-type]
        await stage.on_command(Event(KEY, {"id": "c-4", "run_id": run_id, "action": "ack"}))  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert [(stream, code) for stream, code, _ in said] == [("commands", "bad_command")] * 3
    assert "field \"satisfied\" is 'false'" in said[0][2]
    assert 'field "satisfied" is missing' in said[1][2]
    assert "field \"action\" is 'acknowledge'" in said[2][2]
    assert not [r for r in audited if r.get("action") == "command_refused"]
    group = stage.ctx.groups.data[KEY]
    assert group["run"]["acknowledged_by"] == "unknown"  # the good one after them applied
