"""A timer pass that fails as a whole: said once a minute, counted at every pass
(``citybrain_timer_failures_total{timer}``), and the timer goes on. Before, the failure
was a log line only: nothing a dashboard or an alert rule could see."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from streams.alerting import Alerting
from streams.app import create_app
from streams.metrics import TIMERS
from streams.response import Response
from streams.settings import Settings


def test_a_failing_timer_pass_is_counted_each_time_said_once_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    timers: dict[str, Any] = {}
    monkeypatch.setattr(
        faust.App,
        "timer",
        lambda self, interval, **kw: lambda fun: timers.setdefault(fun.__name__, fun),
    )

    async def broken(self: Any) -> None:
        raise RuntimeError("a state no code reads")

    checked: list[str] = []

    async def fine(self: Any) -> int:
        checked.append("mute check")
        return 0

    monkeypatch.setattr(Response, "check_deadlines", broken)
    monkeypatch.setattr(Alerting, "recheck_muted", fine)
    registry = CollectorRegistry()
    create_app(settings, registry)
    for name in TIMERS:  # every series from the start, so increase() sees the first
        assert registry.get_sample_value("citybrain_timer_failures_total", {"timer": name}) == 0

    async def passes() -> None:
        for _ in range(3):
            await timers["deadlines"]()
            await timers["mute_check"]()

    with caplog.at_level(logging.ERROR, logger="streams.app"):
        asyncio.run(passes())
    value = registry.get_sample_value("citybrain_timer_failures_total", {"timer": "deadlines"})
    assert value == 3
    said = [r.getMessage() for r in caplog.records if "deadlines failed" in r.getMessage()]
    assert said == [
        "citybrain: timer deadlines failed, tried again next tick: "
        "RuntimeError('a state no code reads')"
    ]
    assert checked == ["mute check"] * 3  # another timer is not stopped by it
    mute = registry.get_sample_value("citybrain_timer_failures_total", {"timer": "mute check"})
    assert mute == 0
