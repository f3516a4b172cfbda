"""How citybrain commands are printed for the user to copy: one form everywhere (the
demo's closing lines, replay's hints and resume line, error messages)."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePath

# The settings that say where the stack keeps its pid files and the demo's demo.json.
RUN_DIR_SETTINGS = ("CITYBRAIN_HOME", "CITYBRAIN_RUN_DIR")
# The settings the operator API commands (runs, silences) read: the worker's port (the
# default --url), the grid file (cell names), and where the demo keeps its tokens and
# demo.json (helper brief t72: a demo with CITYBRAIN_RUN_DIR set printed `runs` lines
# without it, whose 403 then named the default run directory's coordinator token).
API_SETTINGS = ("CITYBRAIN_WORKER_PORT", "CITYBRAIN_GRID_FILE", *RUN_DIR_SETTINGS)
# Set while a demo starts and runs its own stack (``own_settings``).
_OWN_SETTINGS: ContextVar[bool] = ContextVar("citybrain_own_settings", default=False)


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


def shell_word(word: str) -> str:
    """``word`` as one shell word to print for the user to copy: ``shlex.quote``'s when
    every character of it prints, else bash's (and zsh's) ANSI-C quoting, ``$'…'``, with
    each character that does not print written as its escape (``\\n``, ``\\t``, ``\\r``,
    ``\\xHH`` for each byte of its UTF-8, or the byte itself for one a file's name held
    that is not UTF-8, kept as a lone surrogate). shlex.quote left a line feed, an ESC
    sequence or a U+202E in a file's name raw inside its quotes: the printed command was
    cut in two lines or played on the terminal, and a name's byte that is not UTF-8 was
    printed as the text ``\\udce9``, another file (t169). Typed into bash or zsh, the
    word is the one given, byte for byte."""
    if word.isprintable():
        return shlex.quote(word)
    out = []
    for c in word:
        if c in "\\'":
            out.append("\\" + c)
        elif c in _C_ESCAPES:
            out.append(_C_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        else:
            raw = c.encode(
                "utf-8", "surrogateescape" if "\udc80" <= c <= "\udcff" else "surrogatepass"
            )
            out.append("".join(f"\\x{b:02x}" for b in raw))
    return "$'" + "".join(out) + "'"


_C_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def command_line(
    *args: str, env: Mapping[str, str] | None = None, only: Collection[str] | None = None
) -> str:
    """A citybrain command line to print, shell-quoted and runnable as shown, in a fresh
    shell too: ``command_line("replay", "a b.csv")`` gives ``.venv/bin/citybrain replay
    'a b.csv'``, after the settings it needs to act on the same stack
    (``printed_settings``: this shell's that differ from their defaults and the last
    demo's recorded ones, ``CITYBRAIN_TOPIC_PREFIX=t5a CITYBRAIN_KAFKA_PORT=19892 …``;
    trial 5: a resume line without them went to the default prefix and port). ``env``
    adds or replaces ``NAME=value`` assignments. ``only``: just those of these settings
    (``CITYBRAIN_WORKER_PORT``, ...), the ones the command reads (trial 8: `runs list`
    was printed after every Kafka and Prometheus port it never reads)."""
    assignments = _assignments(printed_settings(env, only))
    return " ".join([*assignments, shell_word(cli_command()), *map(shell_word, args)])


def make_command(target: str, env: Mapping[str, str] | None = None) -> str:
    """A ``make`` command line to print for the checkout, after the same settings as
    ``command_line``: ``CITYBRAIN_KAFKA_CONTROLLER_PORT=19094 make stack-up``."""
    return " ".join([*_assignments(printed_settings(env)), "make", target])


def printed_settings(
    env: Mapping[str, str] | None = None, only: Collection[str] | None = None
) -> dict[str, str]:
    """The ``NAME=value`` settings a printed command carries so that, typed in a fresh
    shell, it acts on the same stack: those the last demo under this shell's run
    directory was started with (``demo_settings``; t40: `restart-worker` after `stack
    down` advised `stack up` without the demo's CITYBRAIN_KAFKA_CONTROLLER_PORT and, typed
    so, it failed on the default port), then this shell's (``changed_settings``, which
    win; within ``own_settings``, this shell's only), limited to ``only`` when given,
    then ``env``."""
    import os

    # The demo of the run directory the command will use (``env`` may name another);
    # none while a new demo replaces it (``own_settings``).
    recorded = {} if _OWN_SETTINGS.get() else demo_settings({**os.environ, **(env or {})})
    merged = {**recorded, **changed_settings()}
    if only is not None:
        merged = {name: value for name, value in merged.items() if name in only}
    return {**merged, **(env or {})}


@contextmanager
def own_settings() -> Iterator[None]:
    """Within it, printed commands carry this process's settings only, not the last
    demo's recorded ones: a new demo replaces that demo's stack, worker and topics with
    its own, started with this shell's settings (t46: a plain `make demo` after one with
    CITYBRAIN_KAFKA_CONTROLLER_PORT=19094 printed `…=19094 make stack-up` in its first
    line, then started Kafka on 19093)."""
    token = _OWN_SETTINGS.set(True)
    try:
        yield
    finally:
        _OWN_SETTINGS.reset(token)


def _assignments(settings: Mapping[str, str]) -> list[str]:
    return [f"{name}={shell_word(value)}" for name, value in settings.items()]


def demo_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the last demo under the run directory of ``environ`` (default: this
    process's) recorded in its demo.json (``settings``: its shell's, no secret, no topic
    prefix) that differ from their defaults; ``{}`` when there is none or it cannot be
    read (bad settings, no file, not JSON)."""
    import json
    import os

    environ = os.environ if environ is None else environ
    try:
        doc = json.loads((_run_dir(environ) / "demo" / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    recorded = doc.get("settings") if isinstance(doc, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return changed_settings({str(k): str(v) for k, v in recorded.items()})


def _run_dir(environ: Mapping[str, str]) -> Path:
    """The run directory ``environ`` names, as ``Settings.run_dir`` reads it
    (CITYBRAIN_RUN_DIR, else CITYBRAIN_HOME/run), without validating other settings."""
    if environ.get("CITYBRAIN_RUN_DIR", "").strip():
        return Path(environ["CITYBRAIN_RUN_DIR"].strip())
    return home_dir(environ) / "run"


def home_dir(environ: Mapping[str, str]) -> Path:
    """CITYBRAIN_HOME as ``environ`` sets it, else its default, unvalidated."""
    home = environ.get("CITYBRAIN_HOME", "").strip()
    return Path(home) if home else default_home()


def default_home() -> Path:
    """CITYBRAIN_HOME's default (``~/.cache/citybrain``); unit tests replace it so that
    no demo of this machine's user shows in what they print."""
    from streams.settings import Settings

    return Path(str(Settings.model_fields["home"].default))


def changed_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``CITYBRAIN_*`` settings (streams.settings.Settings fields) set in ``environ``
    (default: this process's environment) to something other than their default, in
    field order, as given; this process's relative paths made absolute
    (``absolute_setting``). Secrets (``SECRET_SETTINGS``) are never included: a printed
    command must not carry them (the user's shell still has them)."""
    import os

    from streams.settings import SECRET_SETTINGS, Settings, variable

    own = environ is None
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        env_name = variable(name)
        value = environ.get(env_name)
        if value is None or name in SECRET_SETTINGS or _is_default(value, info.default):
            continue
        out[env_name] = absolute_setting(env_name, value) if own else value
    return out


def path_settings() -> frozenset[str]:
    """The variables of the settings that name a file or directory
    (``CITYBRAIN_RUN_DIR``, ``CITYBRAIN_GRID_FILE``, …: Settings fields typed ``Path``)."""
    from pathlib import PurePath

    from streams.settings import Settings, variable

    names = set()
    for name, info in Settings.model_fields.items():
        kinds = getattr(info.annotation, "__args__", None) or (info.annotation,)
        if any(isinstance(k, type) and issubclass(k, PurePath) for k in kinds):
            names.add(variable(name))
    return frozenset(names)


def absolute_setting(name: str, value: str) -> str:
    """``value`` of the setting ``name`` as a printed command carries it: a relative path
    setting made absolute from this process's directory (t51: `CITYBRAIN_RUN_DIR=run`,
    printed so, named another run directory once typed in a new shell, which starts in
    ``~``); any other value, or an empty one, as given."""
    if name not in path_settings() or not value.strip():
        return value
    path = Path(value.strip()).expanduser()
    if value.strip().startswith("~"):
        return str(path)  # as the settings read it (streams.settings), not quoted as '~/…'
    return value if path.is_absolute() else str(path.absolute())


def _is_default(value: str, default: object) -> bool:
    """Whether the text of a setting reads as its default (``19092``, ``60`` for 60.0)."""
    text = value.strip()
    if default is None or (isinstance(default, PurePath) and text == ""):
        # A blank file or directory setting is unset (Settings._blank_is_unset).
        return text == ""
    if isinstance(default, bool):
        return text.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def start_stack_hint(env: Mapping[str, str] | None = None) -> str:
    """The hint that starts the local stack, runnable as typed from any directory in a
    fresh shell: ``start the local stack with `CITYBRAIN_KAFKA_PORT=19892 citybrain stack
    up` (`CITYBRAIN_KAFKA_PORT=19892 make stack-up` in the checkout)``. It carries every
    setting changed from its default (``changed_settings``): ``stack up`` reads the
    ports, run directory, topic prefix, partitions and heap (trial 10: without them it
    started the default-port stack). ``env``: settings that win over this shell's, for a
    stack other than this shell's (the demo's worker's, which `stack restart-worker`
    starts with the demo's recorded settings: t168, a shell on another Kafka port was
    told to start the stack on its own port, where the worker would not look); then the
    checks of this shell's stack (another run directory's, an exited Kafka) are not
    made."""
    if env is not None:
        return (
            f"start the local stack with `{command_line('stack', 'up', env=env)}` "
            f"(`{make_command('stack-up', env=env)}` in the checkout)"
        )
    elsewhere = _kafka_elsewhere()
    if elsewhere:
        # t76: "start the local stack" while it runs, on the port this shell lacks.
        # other_port's line ends with the `stack status` that carries them (t217).
        return elsewhere
    exited = _kafka_exited()
    if exited:
        # t111: a Kafka a full disk killed right after `stack up` said "ready" was told
        # to be started with `stack up`, which had just started it.
        return exited
    unwritable = _run_dir_unwritable()
    if unwritable:
        # t123: with the run directory read-only, status and deadletters said to run
        # `stack up`, which then refused the directory.
        return f"{unwritable}, then start the local stack there with `{cli_command()} stack up`"
    starting = _demo_starting_stack()
    if starting:
        # t123: typed while `make demo` started Kafka, deadletters, report and stack
        # status said to run `stack up`, a second start racing the demo's own.
        return starting
    return (
        f"start the local stack with `{command_line('stack', 'up')}` "
        f"(`{make_command('stack-up')}` in the checkout)"
    )


def _run_dir_unwritable() -> str:
    """``dirs.unwritable_message`` for the run directory or CITYBRAIN_HOME when the
    nearest existing folder of either cannot be written (a read-only disk, no
    permission), without creating anything; "" when both can, or when the settings do
    not load."""
    import errno
    import os

    from pydantic import ValidationError

    from citybrain.stack.dirs import unwritable_message
    from streams.settings import Settings

    try:
        settings = Settings()
    except ValidationError:
        return ""
    for path in (settings.run_dir, Path(os.path.abspath(settings.home))):
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            code = errno.ENOTDIR  # a file in the way
        elif os.access(existing, os.W_OK):
            continue
        else:
            try:
                read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
            except OSError:
                read_only = False
            code = errno.EROFS if read_only else errno.EACCES
        return unwritable_message(settings, path, os.strerror(code), code) or ""
    return ""


def _demo_starting_stack() -> str:
    """While a demo runs under this shell's run directory (it holds its lock) and the
    stack does not answer yet: that the demo is starting it, with Kafka's log, and to
    wait (the callers add what to do then); "" when no demo runs, or when the settings
    do not load."""
    from pydantic import ValidationError

    from citybrain.demo import running_demo
    from citybrain.stack import KafkaBroker
    from streams.settings import Settings

    try:
        settings = Settings()
    except ValidationError:
        return ""
    demo = running_demo(settings)
    if demo is None:
        return ""
    facts = ", ".join(
        [f"pid {demo.pid}" if demo.pid is not None else "still writing its lock"]
        + ([f"topic prefix {demo.prefix}"] if demo.prefix else [])
    )
    return (
        f"the running demo ({facts}) is still starting the local stack (Kafka's log: "
        f"{KafkaBroker(settings).server_log}): wait until it prints its progress lines"
    )


def _kafka_elsewhere() -> str:
    """``KafkaBroker.elsewhere``: the run directory's broker runs on another port than
    this shell's CITYBRAIN_KAFKA_PORT; "" when not, or when the settings do not load (the
    command that failed says so itself)."""
    from pydantic import ValidationError

    from citybrain.stack import KafkaBroker
    from streams.settings import Settings

    try:
        return KafkaBroker(Settings()).elsewhere()
    except ValidationError:
        return ""


def _kafka_exited() -> str:
    """``KafkaBroker.exited``: the run directory's broker was started and has exited
    since, and why when its log says (a full or read-only disk); "" when not, or when the
    settings do not load."""
    from pydantic import ValidationError

    from citybrain.stack import KafkaBroker
    from streams.settings import Settings

    try:
        return KafkaBroker(Settings()).exited() or ""
    except ValidationError:
        return ""


def written_path(path: str | Path) -> str:
    """A file a command wrote, as its "written to" line names it: absolute, so the line
    says where it is from any directory (t60's walk: `report --out r.html` said "report
    written to r.html", as the demo its summary and report, while its printed commands
    name files absolute). A name holding a character that does not print (a line feed, an
    ESC, a byte that is not UTF-8) is written as ``shell_word`` writes it, ``$'…'``: its
    byte printed raw stopped the command with UnicodeEncodeError after the file was
    written (exit 70, "a bug", on a terminal whose stdout is strict UTF-8: t169)."""
    text = str(Path(path).absolute())
    return text if text.isprintable() else shell_word(text)
