"""How citybrain commands are printed for the user to copy: one form everywhere (the
demo's closing lines, replay's hints and resume line, error messages)."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

# The settings that say where the stack keeps its pid files and the demo's demo.json.
RUN_DIR_SETTINGS = ("CITYBRAIN_HOME", "CITYBRAIN_RUN_DIR")


def cli_command() -> str:
    """How the user can type citybrain from any directory: the bare name if it is on the
    PATH (an activated venv), else the absolute path of this interpreter's script
    (``/home/me/citybrain/.venv/bin/citybrain``; trial 9: a relative ``.venv/bin/…``
    printed by the demo failed outside the checkout)."""
    script = Path(sys.executable).parent / "citybrain"
    found = shutil.which("citybrain")
    if found and Path(found).resolve() == script.resolve():
        return "citybrain"
    return str(script.absolute())


def command_line(
    *args: str, env: Mapping[str, str] | None = None, only: Collection[str] | None = None
) -> str:
    """A citybrain command line to print, shell-quoted and runnable as shown, in a fresh
    shell too: ``command_line("replay", "a b.csv")`` gives ``.venv/bin/citybrain replay
    'a b.csv'``, after the settings this process runs with that differ from their
    defaults (``CITYBRAIN_TOPIC_PREFIX=t5a CITYBRAIN_KAFKA_PORT=19892 …``,
    ``changed_settings``; trial 5: a resume line without them went to the default prefix
    and port). ``env`` adds or replaces ``NAME=value`` assignments. ``only``: just those
    of these settings (``CITYBRAIN_WORKER_PORT``, ...), the ones the command reads (trial
    8: `runs list` was printed after every Kafka and Prometheus port it never reads)."""
    changed = changed_settings()
    if only is not None:
        changed = {name: value for name, value in changed.items() if name in only}
    merged = {**changed, **(env or {})}
    assignments = [f"{name}={shlex.quote(value)}" for name, value in merged.items()]
    return " ".join([*assignments, shlex.quote(cli_command()), *map(shlex.quote, args)])


def changed_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``CITYBRAIN_*`` settings (streams.settings.Settings fields) set in ``environ``
    (default: this process's environment) to something other than their default, in
    field order, as given. Secrets (``SECRET_SETTINGS``) are never included: a printed
    command must not carry them (the user's shell still has them)."""
    import os

    from streams.settings import SECRET_SETTINGS, Settings, variable

    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        env_name = variable(name)
        value = environ.get(env_name)
        if value is None or name in SECRET_SETTINGS or _is_default(value, info.default):
            continue
        out[env_name] = value
    return out


def _is_default(value: str, default: object) -> bool:
    """Whether the text of a setting reads as its default (``19092``, ``60`` for 60.0)."""
    text = value.strip()
    if default is None:
        return text == ""
    if isinstance(default, bool):
        return text.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def start_stack_hint() -> str:
    """The hint that starts the local stack, runnable as typed from any directory in a
    fresh shell: ``start the local stack with `CITYBRAIN_KAFKA_PORT=19892 citybrain stack
    up` (`CITYBRAIN_KAFKA_PORT=19892 make stack-up` in the checkout)``. It carries every
    setting changed from its default (``changed_settings``): ``stack up`` reads the
    ports, run directory, topic prefix, partitions and heap (trial 10: without them it
    started the default-port stack)."""
    changed = changed_settings()
    make = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in changed.items()), "make stack-up"])
    return f"start the local stack with `{command_line('stack', 'up')}` (`{make}` in the checkout)"
