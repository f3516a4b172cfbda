"""A dead letter's message is one line, whatever text it was built from (t211,
poison-pill-batch: a field's raw text in the reason). A command's ``run_id`` is any text,
and its ``unknown_run`` reason (``no run <run_id>``) carried it as sent: a run_id
``"grp-x.1\\nFAKE"`` wrote a second worker log line, not starting ``citybrain: ``, and a
``citybrain.error.message`` header of two lines; a ``processing_error``'s exception text
can hold line breaks too."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from citybrain.ingest.mqtt import dead_letter_headers
from streams.context import run_key
from streams.errors import one_line
from streams.response import Response
from tests.unit.streams.test_reply_calls import keys_passed_on
from tests.unit.streams.test_response_races import Event, Gate
from tests.unit.streams.test_response_races import response as races_response

ODD = ["grp-x.1\nFAKE LINE", "grp-x.1\r\n", "grp-x.\x00\x1b[31m", "grp-x.1\u2028", "grp-x.\x85"]


@pytest.fixture
def response(tmp_path: Path) -> tuple[Response, Gate]:
    stage, gate = races_response.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    stage.ctx.settings = stage.ctx.settings.model_copy(update={"log_each_dead_letter": True})
    stage.settings = stage.ctx.settings
    stage.ctx.app.tables.recovery.completed.set()
    return stage, gate


@pytest.mark.parametrize("action", ["ack", "resend_closures"])
@pytest.mark.parametrize("run_id", ODD)
def test_an_unknown_runs_dead_letter_is_one_line(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    run_id: str,
    action: str,
) -> None:
    stage, _ = response
    sent: list[list[tuple[str, bytes]]] = []

    async def send_said(topic: Any, key: Any, value: Any, headers: Any, what: str) -> None:
        sent.append(headers)

    monkeypatch.setattr(stage.ctx, "send_said", send_said)
    command = {"id": "c-1", "run_id": run_id, "action": action, "by": "op"}
    with caplog.at_level(logging.WARNING):
        asyncio.run(stage.on_command(Event(run_key(run_id), command)))  # type: ignore[arg-type]
    [headers] = sent
    said = dict(headers)
    assert said["citybrain.error.reason"] == b"unknown_run"
    message = said["citybrain.error.message"].decode()
    assert message == "no run " + one_line(run_id)
    assert message.isprintable()
    assert all(c not in message for c in "\n\r\x00\x1b\u2028\x85")
    [line] = [r.getMessage() for r in caplog.records if "dead-letter" in r.getMessage()]
    assert line.startswith("citybrain: dead-letter ") and "\n" not in line and "\r" not in line


def test_one_line_writes_each_control_character_as_its_escape() -> None:
    assert one_line("a\nb\r\tc\x00\x7f\x85\u2028 é ✓") == "a\\nb\\r\\tc\\x00\\x7f\\x85\\u2028 é ✓"
    assert one_line("plain text, unchanged") == "plain text, unchanged"


def test_the_ingests_dead_letter_headers_are_one_line() -> None:
    """An MQTT topic is any UTF-8 text: ``city/east/gauge\n1/level``'s dead letter had an
    origin header of two lines (``mqtt:<topic>``)."""
    topic = "city/east/gauge\n1/water_level"
    headers = dict(dead_letter_headers(f"mqtt:{topic}", "unknown_sensor", f"x {topic}", "mqtt"))
    assert headers["citybrain.error.origin"] == b"mqtt:city/east/gauge\\n1/water_level"
    assert headers["citybrain.error.message"] == b"x city/east/gauge\\n1/water_level"


def test_a_command_passed_on_says_its_run_id_on_one_line(
    response: tuple[Response, Gate],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command off its run's partition is passed on, said with its run_id: a run_id
    with a line break wrote a second log line there too."""
    stage, _ = response
    passed = keys_passed_on(stage, monkeypatch)
    run_id = "grp-x.1\nFAKE LINE"
    command = {"id": "c-1", "run_id": run_id, "action": "ack", "by": "op"}
    home = Event(run_key(run_id), command).message.partition
    with caplog.at_level(logging.WARNING):
        asyncio.run(stage.on_command(Event(b"k", command, partition=1 - home)))  # type: ignore[arg-type]
    assert passed == [run_key(run_id)]
    [line] = [r.getMessage() for r in caplog.records if "passed on" in r.getMessage()]
    assert line.startswith("citybrain: command ") and "\n" not in line
    assert "grp-x.1\\nFAKE LINE" in line
