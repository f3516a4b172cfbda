"""A SIGTERM inside ``sigterm_as_interrupt`` is Ctrl-C: the block's ``finally`` runs (a
benchmark ended by ``timeout`` left its topics on the broker, since Python's default
SIGTERM runs none), and only the first one; another handler already set is left alone."""

from __future__ import annotations

import os
import signal
from types import FrameType

import pytest

from bench import EXIT_INTERRUPTED, run_main
from citybrain.stack.process import sigterm_as_interrupt


def test_a_sigterm_in_the_block_runs_its_finally_then_the_default_is_back() -> None:
    ran: list[str] = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            ran.append("finally")
    assert ran == ["finally"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_second_sigterm_is_not_turned_into_an_exception() -> None:
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    # Inside the first one's unwinding, SIGTERM is the default again (ends at once).
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_handler_already_set_is_left_alone() -> None:
    heard: list[int] = []

    def own(signum: int, frame: FrameType | None) -> None:
        heard.append(signum)

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is own
            os.kill(os.getpid(), signal.SIGTERM)
        assert heard == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_interrupted_benchmark_ends_in_one_line_and_status_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def main() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as ended:
        run_main(main)
    assert ended.value.code == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip().endswith("interrupted") and len(err.strip().splitlines()) == 1
