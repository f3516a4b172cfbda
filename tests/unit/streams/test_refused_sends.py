"""A dead letter or audit record Kafka refuses is said, not lost unsaid (t176: faust
logged only ``_on_published error …`` and, at the worker's stop, a traceback for an
exception never retrieved). The broker-level case: tests/integration/test_topic_limits.py."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context
from streams.metrics import Metrics
from streams.settings import Settings
from tests.unit.streams.test_dead_letter_original import FIXTURES


class RefusingTopic:
    """faust's channel interface as ``Context.send_said`` uses it; Kafka refuses all."""

    def __init__(self, name: str) -> None:
        self.name = name

    def as_future_message(self, key: Any, value: Any, headers: Any) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    async def publish_message(self, message: asyncio.Future[None]) -> None:
        message.set_exception(MessageSizeTooLargeError())

    def get_topic_name(self) -> str:
        return self.name


def test_a_refused_dead_letter_and_audit_record_are_said_with_the_topic_and_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("t-refused", store="memory://", broker="kafka://127.0.0.1:1")
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    ctx.deadletter = RefusingTopic("p.deadletter")  # type: ignore[assignment]
    ctx.audit_topic = RefusingTopic("p.audit")  # type: ignore[assignment]
    unretrieved: list[Any] = []

    async def send() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: unretrieved.append(c))
        await ctx.send_dead_letter("readings", b"{" * 600, b"gauge-1", "bad_json", "why", "p.r/0/6")
        await ctx.audit({"action": "alert_silenced", "alert_id": "a-1", "at": 1.0})
        await asyncio.sleep(0)
        gc.collect()

    with caplog.at_level(logging.ERROR, logger="streams.context"):
        asyncio.run(send())
    lines = [r.getMessage() for r in caplog.records if "Kafka refused" in r.getMessage()]
    assert len(lines) == 2, lines
    dead, audit = lines
    assert "Kafka refused the dead letter of p.r/0/6 (bad_json, " in dead
    assert "on p.deadletter, which is lost: MessageSizeTooLargeError" in dead
    assert "less than the 1,004,096 bytes" in dead and "max.message.bytes" in dead
    assert "the audit record alert_silenced (" in audit and "on p.audit, which is lost" in audit
    assert unretrieved == []  # each refusal retrieved: no traceback at the loop's end
