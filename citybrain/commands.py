"""How citybrain commands are printed for the user to copy: one form everywhere (the
demo's closing lines, replay's hints and resume line, error messages)."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path


def cli_command() -> str:
    """How the user can type citybrain here: the bare name if it is on the PATH (an
    activated venv), else the path of this interpreter's script (``.venv/bin/citybrain``,
    relative to the working directory when it is under it)."""
    script = Path(sys.executable).parent / "citybrain"
    found = shutil.which("citybrain")
    if found and Path(found).resolve() == script.resolve():
        return "citybrain"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def command_line(*args: str, env: Mapping[str, str] | None = None) -> str:
    """A citybrain command line to print, shell-quoted and runnable as shown:
    ``command_line("replay", "a b.csv")`` gives ``.venv/bin/citybrain replay 'a b.csv'``;
    ``env`` puts ``NAME=value`` assignments before it."""
    assignments = [f"{name}={shlex.quote(value)}" for name, value in (env or {}).items()]
    return " ".join([*assignments, shlex.quote(cli_command()), *map(shlex.quote, args)])
