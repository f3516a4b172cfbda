"""Numbers the worker's encoder cannot write as sent (t137), in a message an agent passes
on or stores whole: a number past a double's range (``1e400``, read by the lenient
parser as an ``OverflowFloat``), a bare ``NaN`` or ``Infinity`` (which orjson writes as
``null``) and, as t128 found for alerts, an integer past 64 bits. In any field, nested or
not, of an alert (routed on), a corroboration alert or mark (held in its area's state) or
a command (kept whole as an Idempotency-Key request's answer) each was a
``processing_error`` with a traceback in the worker's log (``TypeError: Type is not JSON
serializable: OverflowFloat``); now it is refused with the agent's own reason, naming the
place and the number as sent, and costs no other message."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.errors import EventError
from streams.events import message_json, refuse_unwritable_number, unwritable_number
from streams.response import Response
from tests.unit.streams.test_corroboration_messages import DEAD_RUN, deliver, mark, stage
from tests.unit.streams.test_corroboration_messages import alert as area_alert
from tests.unit.streams.test_muted_alerts import Stage
from tests.unit.streams.test_response_races import KEY, Event, Gate, alert, response

__all__ = ["response"]  # the fixture, used by name

# Each number as written, where it is, and the start of the reason.
ODD = [
    (b"1e400", "1e400", "a number past a double's range"),
    (b"-1E+999", "-1E+999", "a number past a double's range"),
    (b"1" + b"0" * 400 + b".5", "1" + "0" * 400 + ".5", "a number past a double's range"),
    (b"NaN", "nan", "not a number JSON has"),
    (b"-Infinity", "-inf", "not a number JSON has"),
    (b"18446744073709551616", "18446744073709551616", "an integer past 64 bits"),
    # t183: read as 0.0 and passed on so, a value nobody sent.
    (b"1e-400", "1e-400", "a number not zero as written but too small for a double"),
    (b"-1E-999", "-1E-999", "a number not zero as written but too small for a double"),
    (b"0." + b"0" * 400 + b"1", "0." + "0" * 400 + "1", "a number not zero as written"),
]


def with_extra(doc: dict[str, Any], number: bytes, nested: bool = False) -> bytes:
    """``doc``'s JSON with a field ``extra`` holding ``number`` as written (in a list in an
    object when ``nested``)."""
    extra = b'{"n": [1, ' + number + b"]}" if nested else number
    return orjson.dumps({**doc, "extra": "X"}).replace(b'"X"', extra)


@pytest.mark.parametrize(("number", "shown", "why"), ODD)
@pytest.mark.parametrize("nested", [False, True])
def test_the_first_number_the_encoder_cannot_write_is_found_with_its_place(
    number: bytes, shown: str, why: str, nested: bool
) -> None:
    raw = with_extra({"a": 1.5, "b": [2, None]}, number, nested)
    doc = message_json(raw)
    place = "extra.n[1]" if nested else "extra"
    found = unwritable_number(doc)
    assert found is not None and found[0] == place and found[2].startswith(why)
    with pytest.raises(EventError) as refused:
        refuse_unwritable_number(raw, doc, "bad_alert")
    assert refused.value.code == "bad_alert" and refused.value.field == place
    assert str(refused.value).startswith(f'field "{place}" is {shown[:77]}')


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v": 1e308, "w": -1.7976931348623157e308, "x": 5e-324, "y": 18446744073709551615}',
        b'{"t": "NaN", "u": "Infinity", "s": "1e400", "z": -9223372036854775808}',
        # Zero however written (-0, 0e-400, 0.000...0): zero as sent, written as zero.
        b'{"a": [true, false, null, 0.0, -0.0, -0, 0e-400, -0.0E-999, 1.5e-300, "1e-400"]}',
        b'{"b": 0.' + b"0" * 400 + b"}",
    ],
)
def test_numbers_it_writes_and_text_that_only_looks_like_one_pass(raw: bytes) -> None:
    doc = message_json(raw)
    assert unwritable_number(doc) is None
    refuse_unwritable_number(raw, doc, "bad_alert")
    orjson.dumps(doc)  # what the worker writes of it


def test_a_document_nested_to_the_decoders_limit_is_walked_without_recursion() -> None:
    raw = b'{"a": ' + b"[" * 1000 + b"NaN" + b"]" * 1000 + b"}"
    found = unwritable_number(message_json(raw))
    assert found is not None and found[0] == "a" + "[0]" * 1000


ALERT = {
    "schema": "alert/1",
    "alert_id": "al-x",
    "status": "firing",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "minor",
    "labels": {"alert_id": "al-x", "kind": "water_level", "severity": "minor"},
}


@pytest.mark.parametrize(("number", "shown", "why"), ODD)
def test_an_alert_holding_one_is_refused_and_the_next_is_routed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: bytes, shown: str, why: str
) -> None:
    on = Stage(tmp_path, monkeypatch)
    said: list[tuple[str, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str) -> None:
        said.append((stream, code, message))

    monkeypatch.setattr(on.ctx, "dead_letter", dead_letter)
    # Before: TypeError from orjson when the alert was routed on, a processing_error.
    asyncio.run(on.stage.on_alert(SimpleNamespace(value=with_extra(ALERT, number))))  # type: ignore[arg-type]
    [(stream, code, message)] = said
    assert (stream, code) == ("alerts", "bad_alert")
    assert message.startswith(f'alert not readable: field "extra" is {shown[:77]}')
    assert why in message
    on.alert({**ALERT, "alert_id": "al-y", "labels": {**ALERT["labels"], "alert_id": "al-y"}})
    assert on.run_ids() == ["al-y"]


@pytest.mark.parametrize(("number", "shown", "why"), ODD)
def test_an_area_keeps_its_held_alert_when_a_message_holds_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: bytes, shown: str, why: str
) -> None:
    on, forwarded = stage(tmp_path, monkeypatch)
    key = on.areas.area(DEAD_RUN[1]).encode()
    deliver(on, key, {"type": "alert", "alert": area_alert(DEAD_RUN[1])})
    odd_alert = {"type": "alert", "alert": area_alert(DEAD_RUN[0], alert_id="al-odd")}
    for message, code in ((odd_alert, "bad_alert"), (mark(DEAD_RUN[0]), "bad_mark")):
        event = SimpleNamespace(key=key, value=with_extra(message, number, nested=True))
        # Before: the area's state did not encode, a processing_error with a traceback.
        with pytest.raises(EventError) as refused:
            asyncio.run(on.on_message(event))  # type: ignore[arg-type]
        assert refused.value.code == code and refused.value.field == "extra.n[1]"
        assert why in str(refused.value)
    deliver(on, key, mark(DEAD_RUN[0]))  # a neighbour agrees: the held alert goes on
    (out,) = forwarded
    assert out["labels"]["corroboration"] == "corroborated"


@pytest.mark.parametrize(("number", "shown", "why"), ODD)
def test_a_keyed_command_holding_one_is_refused_and_the_run_is_left_as_it_was(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
    number: bytes,
    shown: str,
    why: str,
) -> None:
    stage_, _ = response
    said: list[tuple[str, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str) -> None:
        said.append((stream, code, message))

    monkeypatch.setattr(stage_.ctx, "dead_letter", dead_letter)

    async def scenario() -> dict[str, Any]:
        await stage_.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage_.ctx.groups.data[KEY]["run"]["run_id"]
        command = {"id": "c-1", "run_id": run_id, "action": "ack", "by": "ana", "request": "k"}
        odd = Event(KEY, {})
        odd.value = with_extra(command, number)
        # Before: the command was applied, then the group (keeping it whole as the
        # request's answer) did not encode: a processing_error, the ack lost.
        await stage_.on_command(odd)  # type: ignore[arg-type]
        await stage_.on_command(Event(KEY, {**command, "id": "c-2", "by": "bo"}))  # type: ignore[arg-type]
        return dict(stage_.ctx.groups.data[KEY])

    group = asyncio.run(scenario())
    [(stream, code, message)] = said
    assert (stream, code) == ("commands", "bad_command")
    assert message.startswith(f'not readable: field "extra" is {shown[:77]}')
    assert group["run"]["acknowledged_by"] == "bo"
    assert "c-1" not in group["commands"] and "c-2" in group["commands"]


def test_a_command_not_kept_whole_takes_such_a_number_as_before(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a command with an Idempotency-Key (``request``) is stored whole; an ``at`` of
    # 400 digits on another is read as now, as it was (test_response_warnings).
    stage_, _ = response
    said: list[str] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str) -> None:
        said.append(message)

    monkeypatch.setattr(stage_.ctx, "dead_letter", dead_letter)

    async def scenario() -> dict[str, Any]:
        await stage_.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage_.ctx.groups.data[KEY]["run"]["run_id"]
        command = {"id": "c-1", "run_id": run_id, "action": "ack", "by": "ana"}
        odd = Event(KEY, {})
        odd.value = with_extra(command, b"9" * 400).replace(b'"extra"', b'"at"')
        await stage_.on_command(odd)  # type: ignore[arg-type]
        return dict(stage_.ctx.groups.data[KEY])

    group = asyncio.run(scenario())
    assert said == [] and group["run"]["acknowledged_by"] == "ana"
