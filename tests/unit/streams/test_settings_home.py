"""A ``~`` that the shell did not expand (a quoted ``export CITYBRAIN_RUN_DIR="~/run"``).

t98: the run directory became a folder named ``~`` under the current directory, while
every printed command named ``$HOME/run``, so the printed ``stack down`` acted on another
run directory than the stack's, and ``CITYBRAIN_GRID_FILE="~/grid.yaml"`` was "no such
file" for a file that is there. Now every path setting reads ``~`` as the shell would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path, PurePath

import pytest

from citybrain.commands import absolute_setting, path_settings
from streams.settings import PATH_FIELDS, REPO_ROOT, Settings, variable


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_path_fields_are_every_setting_that_names_a_path() -> None:
    typed = {
        name
        for name, info in Settings.model_fields.items()
        if any(
            isinstance(k, type) and issubclass(k, PurePath)
            for k in (getattr(info.annotation, "__args__", None) or (info.annotation,))
        )
    }
    assert set(PATH_FIELDS) == typed
    assert {variable(name) for name in PATH_FIELDS} == set(path_settings())


def test_a_quoted_tilde_run_dir_is_the_home_one_and_printed_so(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", "~/run")
    assert Settings().run_dir == home / "run"
    # The printed command names the same directory, typed in any shell, quoted or not.
    assert absolute_setting("CITYBRAIN_RUN_DIR", "~/run") == str(home / "run")


def test_a_quoted_tilde_file_setting_names_the_file_in_home(home: Path, tmp_path: Path) -> None:
    grid = home / "grid.yaml"
    grid.write_bytes((REPO_ROOT / "datasets" / "grid.yaml").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env["CITYBRAIN_GRID_FILE"] = "~/grid.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "playbooks", "check"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{grid} are valid" in done.stdout
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("field", PATH_FIELDS)
def test_a_blank_path_setting_is_unset_and_printed_commands_agree(
    field: str, blank: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t111: ``CITYBRAIN_RUN_DIR=`` (``export CITYBRAIN_RUN_DIR=$UNSET``) made the run
    directory the current one, so `stack up` wrote Kafka's data and pid files there while
    printed commands (which read it as unset) named ~/.cache/citybrain/run; an empty
    CITYBRAIN_GRID_FILE was refused as "is '.': a directory"."""
    from citybrain import commands
    from citybrain.commands import _run_dir, changed_settings

    # The real default home (the unit tests' conftest gives commands another).
    monkeypatch.setattr(commands, "default_home", lambda: Settings.model_fields["home"].default)
    for name in PATH_FIELDS:
        monkeypatch.delenv(variable(name), raising=False)
    unset = Settings()
    monkeypatch.setenv(variable(field), blank)
    blanked = Settings()
    assert getattr(blanked, field) == getattr(unset, field)
    assert blanked.run_dir == unset.run_dir == _run_dir(os.environ)
    assert variable(field) not in changed_settings()
