"""A SIGHUP while the worker starts (citybrain/cli/stack.py, StartHangups; t125). Before,
the start ignored it (SIG_IGN until the loop's handler was in), so a routing file edited
and signalled after the start had read it stayed out of the worker, unsaid: the gauge
said the last reload succeeded. Now it is noted and the worker reloads once after its
start. The signal here is real, sent to this process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from citybrain.cli.stack import StartHangups


@pytest.fixture
def restore_sighup() -> Iterator[None]:
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


@pytest.mark.usefixtures("restore_sighup")
def test_a_sighup_during_the_start_is_kept_for_after_it() -> None:
    hangups = StartHangups()
    assert hangups.take() is False  # none came
    os.kill(os.getpid(), signal.SIGHUP)  # the process goes on (its default ends it)
    os.kill(os.getpid(), signal.SIGHUP)
    assert hangups.take() is True  # two while starting: one reload after the start
    assert hangups.take() is False  # taken once
