"""Fixtures of the stack commands' unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import free_ports


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Free ports, a run directory and home under ``tmp_path``, and no mvn on the PATH:
    a start that got as far as the download is refused at once, never downloads."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path / "home"))
    names = ("KAFKA", "KAFKA_CONTROLLER", "PROMETHEUS", "MQTT", "WORKER")
    for name, port in zip(names, free_ports(len(names)), strict=True):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    return tmp_path
