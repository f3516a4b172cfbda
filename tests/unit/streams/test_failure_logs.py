"""A fault in the code that every message of a kind hits is logged with its traceback once
a minute per stream and exception type, not once per message (10,000 such messages wrote
10,000 tracebacks), while every message still has its dead letter."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context
from streams.errors import EventError
from streams.metrics import Metrics
from streams.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_a_fault_every_message_hits_is_one_traceback_and_a_dead_letter_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("t-failures", store="memory://", broker="kafka://127.0.0.1:1")
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    dead: list[tuple[str, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, text: str, *rest: Any) -> None:
        dead.append((stream, code, text))

    monkeypatch.setattr(ctx, "dead_letter", dead_letter)

    async def broken(event: Any) -> None:
        if event.value == b"bad input":
            raise EventError("bad_json", None, None, "the message is not JSON")
        raise KeyError(event.value.decode())

    def event(offset: int, value: bytes) -> Any:
        message = SimpleNamespace(topic="t.commands", partition=0, offset=offset)
        return SimpleNamespace(message=message, value=value)

    async def handle() -> None:
        for i in range(50):
            await ctx.guarded("commands", broken, event(i, f"run-{i}".encode()))
        await ctx.guarded("commands", broken, event(50, b"bad input"))
        await ctx.guarded("alerts", broken, event(51, b"al-1"))

    with caplog.at_level(logging.ERROR, logger="streams.context"):
        asyncio.run(handle())
    assert [code for _, code, _ in dead] == ["processing_error"] * 50 + ["bad_json"] + [
        "processing_error"
    ]
    assert dead[7] == ("commands", "processing_error", "KeyError: 'run-7'")
    tracebacks = [r for r in caplog.records if r.exc_info]
    # One per stream and exception type; bad input has no traceback at all.
    assert [r.getMessage() for r in tracebacks] == [
        "citybrain: commands: processing t.commands/0/0 failed",
        "citybrain: alerts: processing t.commands/0/51 failed",
    ]


def test_dead_letters_are_said_once_a_minute_per_stream_and_reason_unless_each_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway sending thousands of bad messages wrote a WARNING line each (t96); now
    one per stream and reason a minute (each still sent to the dead-letter topic), and
    CITYBRAIN_LOG_EACH_DEAD_LETTER keeps the line per message for those who want it."""

    def said(each: bool) -> tuple[list[str], int]:
        settings = Settings(
            run_dir_override=tmp_path,
            grid_file=FIXTURES / "grid.yaml",
            log_each_dead_letter=each,
        )
        app = faust.App(f"t-dead-{each}", store="memory://", broker="kafka://127.0.0.1:1")
        grid = load_grid(settings.grid_file)
        ctx = Context(app, settings, grid, Metrics.create(CollectorRegistry()))
        sent: list[Any] = []

        async def send_dead_letter(*args: Any) -> None:
            sent.append(args)

        monkeypatch.setattr(ctx, "send_dead_letter", send_dead_letter)

        async def letters() -> None:
            for i in range(100):
                msg = SimpleNamespace(
                    topic="t.readings", partition=0, offset=i, key=None, value=b"x", headers=[]
                )
                reason = "bad_json" if i % 2 else "unknown_sensor"
                await ctx.dead_letter("readings", SimpleNamespace(message=msg), reason, "why")

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="streams.context"):
            asyncio.run(letters())
        return [r.getMessage() for r in caplog.records], len(sent)

    lines, sent = said(each=False)
    assert sent == 100
    assert lines == [
        "citybrain: dead-letter t.readings/0/0: why (unknown_sensor); each is on the "
        "dead-letter topic (`citybrain deadletters`)",
        "citybrain: dead-letter t.readings/0/1: why (bad_json); each is on the "
        "dead-letter topic (`citybrain deadletters`)",
    ]
    lines, sent = said(each=True)
    assert sent == 100 and len(lines) == 100
    assert lines[7] == "citybrain: dead-letter t.readings/0/7: why (bad_json)"
