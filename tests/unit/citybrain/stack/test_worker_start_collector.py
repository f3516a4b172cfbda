"""``citybrain worker`` builds its app with the garbage collector off (t103: its passes
over the start's half a million lasting objects took about half of every start), and
the collector is on again once the app is built, or when the start fails."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from typing import Any

import pytest

import streams.app
from citybrain.cli.stack import cmd_worker
from streams.app import settle_garbage_collector


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_the_app_is_built_with_the_collector_off_and_a_failed_start_turns_it_on(
    monkeypatch: pytest.MonkeyPatch, collector: None
) -> None:
    seen: list[bool] = []

    def create_app(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        raise RuntimeError("stop here")

    monkeypatch.setattr(streams.app, "create_app", create_app)
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="stop here"):
        cmd_worker(argparse.Namespace(loglevel="info"))
    assert seen == [False]
    assert gc.isenabled()


def test_settling_collects_freezes_and_turns_the_collector_on(collector: None) -> None:
    gc.disable()
    settle_garbage_collector()
    assert gc.isenabled()
    assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_freeze_count() > 0


def test_the_ready_line_says_the_url_the_topic_prefix_and_the_app_id() -> None:
    """t134: a hand-started worker logged ~165 lines of faust's and never said where it
    serves or which topics it reads."""
    from citybrain.cli.stack import worker_ready_line
    from streams.settings import Settings

    settings = Settings(worker_port=16766, topic_prefix="demo-1", app_id="demo-1-app")
    assert worker_ready_line(settings) == (
        "worker ready: serving http://127.0.0.1:16766 (operator API, /metrics), reading "
        "topics prefixed 'demo-1.', app id demo-1-app"
    )
