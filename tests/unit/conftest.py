"""Unit tests print commands as a fresh machine would: the demo this machine's user may
have run under the default run directory (its demo.json's settings, which printed
commands carry) is not theirs, and neither is a demo running while they run (a CLI
error's hint named its worker: `make demo`, then the README's test command, failed
test_cli_runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain import commands, demo
from streams.settings import Settings


@pytest.fixture(autouse=True)
def _no_demo_of_this_machine(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.getbasetemp() / "default-home"
    real_home = commands.default_home()
    monkeypatch.setattr(commands, "default_home", lambda: Path(home))
    # The settings read the real default home at import (Kafka's download is kept there,
    # so it stays): only the demo's files under its run directory are moved.
    real_run, own_run = (real_home / "run").absolute(), home / "run"
    of = demo.DemoFiles.of.__func__  # type: ignore[attr-defined]

    def files_of(cls: type[demo.DemoFiles], settings: Settings) -> demo.DemoFiles:
        if settings.run_dir == real_run:
            return cls(own_run / "demo")
        return of(cls, settings)  # type: ignore[no-any-return]

    monkeypatch.setattr(demo.DemoFiles, "of", classmethod(files_of))
