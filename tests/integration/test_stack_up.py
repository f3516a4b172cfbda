"""``stack up`` on a stack that is already up (the project's own servers, real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import EXIT_OK, main
from citybrain.stack import MosquittoBroker, PrometheusServer
from tests.services import TEST_PORTS


def test_a_second_stack_up_says_each_server_was_already_running(
    stack: PrometheusServer,
    mosquitto: MosquittoBroker,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t51's walk: a second `stack up` said "ready" as the first did, so a newcomer could
    not tell the stack had been up all along (and a server still starting was said
    ready without waiting for it)."""
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run_dir))
    assert main(["stack", "up"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("kafka", "prometheus", "mosquitto"):
        assert f"{name:11} ready (already running) on " in out, out
    assert "starting on" not in out, out  # nothing is started: nothing to wait for
