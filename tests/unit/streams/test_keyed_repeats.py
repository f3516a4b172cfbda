"""t110: two operators' acknowledgements of one run, each answered 503 while Kafka froze,
both reach the worker once Kafka resumes; the first acknowledges the run, the second
changes nothing. Retried with their Idempotency-Keys, both were told 202 "accepted: ack
… by <them>" (the second's stored answer was the first answer it would have had), though
the run shows only the first. A no-op is not kept as a request's answer, so its retry
is told what happened: already acknowledged, by whom (``streams.api.already_done``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from playbooks.engine import Run
from streams.api import already_done
from streams.response import Response
from tests.unit.streams.test_response_races import KEY, Event, Gate, alert, response

__all__ = ["response"]  # the fixture, used by name


def keyed(command_id: str, run_id: str, action: str, by: str, note: str) -> dict[str, Any]:
    """A command as the operator API sends one made with an Idempotency-Key."""
    return {
        "id": command_id,
        "run_id": run_id,
        "action": action,
        "by": by,
        "role": "operator",
        "note": note,
        "at": 1_796_500_000.0,
        "request": f"fingerprint-{command_id}",
        "reply": {},
    }


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_a_keyed_command_that_changed_nothing_is_not_kept_as_its_answer(
    response: tuple[Response, Gate], action: str
) -> None:
    stage, _ = response

    async def scenario() -> dict[str, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        for command_id, by in (("cmd-ana", "ana"), ("cmd-bo", "bo")):
            command = keyed(command_id, run_id, action, by, f"{by} on it")
            await stage.on_command(Event(KEY, command))  # type: ignore[arg-type]
        return dict(stage.ctx.groups.data[KEY])

    group = asyncio.run(scenario())
    assert {"cmd-ana", "cmd-bo"} <= set(group["commands"])  # both applied, once each
    assert list(group.get("keyed", {})) == ["cmd-ana"]  # only the one that changed the run
    run = Run.from_dict(group["run"])
    assert [a["by"] for a in run.actions if a["action"] == action] == ["ana"]
    # What bo's retry is answered with instead: the API's "already", naming ana.
    done = already_done(run, action)
    assert done is not None and (done["by"], done["note"]) == ("ana", "ana on it")
