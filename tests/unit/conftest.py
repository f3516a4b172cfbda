"""Unit tests print commands as a fresh machine would: the demo this machine's user may
have run under the default run directory (its demo.json's settings, which printed
commands carry) is not theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain import commands


@pytest.fixture(autouse=True)
def _no_demo_of_this_machine(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.getbasetemp() / "default-home"
    monkeypatch.setattr(commands, "default_home", lambda: Path(home))
