"""The directories the local stack writes, and the setting that names each: the run
directory (CITYBRAIN_RUN_DIR, else CITYBRAIN_HOME/run: pid files, logs, Kafka's data,
the demo's tokens) and CITYBRAIN_HOME (Kafka's jars, caches).

t111: a read-only or full run directory or home was found part-way through a start,
after "kafka starting" or "first run: downloading Kafka" had been printed, and said as
"cannot use /path: Read-only file system", naming neither the setting nor what to do;
a full disk that killed Kafka right after "kafka ready" was told to start the stack.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from citybrain.errors import InputError
from streams.settings import Settings

# What a service (Kafka's JVM) writes in its log when its disk refused a write.
DISK_PHRASES = {
    "No space left on device": errno.ENOSPC,
    "Read-only file system": errno.EROFS,
    "Disk quota exceeded": errno.EDQUOT,
}


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def owner(settings: Settings, path: Path) -> tuple[str, Path] | None:
    """The setting's name (as a user would set it) and the directory it chose for
    ``path`` (absolute), when ``path`` lies under the run directory or CITYBRAIN_HOME;
    else None. The run directory, unless CITYBRAIN_RUN_DIR sets it, is named as
    CITYBRAIN_HOME's."""
    path = Path(os.path.abspath(path))
    run_dir = settings.run_dir
    named = (
        "CITYBRAIN_RUN_DIR"
        if settings.run_dir_override is not None
        else "CITYBRAIN_HOME's run directory"
    )
    roots = [(named, run_dir), ("CITYBRAIN_HOME", Path(os.path.abspath(settings.home)))]
    # The deepest that holds it: either may lie inside the other.
    holding = [(name, root) for name, root in roots if _under(path, root)]
    return max(holding, key=lambda found: len(found[1].parts), default=None)


def _fix(named: str, reason_errno: int | None) -> str:
    """What to do about a directory ``named`` (owner's first item) that refused a write."""
    setting = "CITYBRAIN_HOME" if named.startswith("CITYBRAIN_HOME") else named
    alone = " (or CITYBRAIN_RUN_DIR for the run directory alone)"
    other = alone if "run directory" in named else ""
    if reason_errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space there, or point {setting}{other} at a directory on another disk"
    return f"point {setting}{other} at a directory you can write"


def unwritable_message(
    settings: Settings,
    path: Path,
    reason: str,
    reason_errno: int | None,
    state: str = "cannot be written",
) -> str | None:
    """One line for a write under the run directory or CITYBRAIN_HOME that failed with
    ``reason`` (an OSError's strerror): the setting, its directory, the file when it is
    another, and what to do (``state``: what is wrong with it). None when ``path`` lies
    under neither."""
    found = owner(settings, path)
    if found is None:
        return None
    named, root = found
    shown = Path(os.path.abspath(path))
    which = "" if shown == root else f": {shown}"
    return f"{named} {root} {state} ({reason}{which}): {_fix(named, reason_errno)}"


def not_a_directory(settings: Settings, path: Path) -> str | None:
    """One line (``unwritable_message``'s) when ``path`` (under the run directory or
    CITYBRAIN_HOME, or one of those itself) could not be made or used because a file
    stands where a directory belongs: the directory itself, a folder above it or one in
    it, named. None when ``path`` lies under neither, or no file is in its way."""
    path = Path(os.path.abspath(path))
    found = owner(settings, path)
    if found is None:
        return None
    root = found[1]
    blocking = next(
        (above for above in reversed([path, *path.parents]) if above.is_file()),
        None,
    )
    if blocking is None:
        return None
    if blocking == root:
        reason, where = "it is a file, not a directory", root
    elif _under(blocking, root):
        reason, where = "a file where a directory belongs", blocking
    else:
        reason, where = f"{blocking} above it is a file, not a directory", root
    return unwritable_message(settings, where, reason, errno.ENOTDIR)


# Free space the run directory needs for a start: Kafka's logs and the topics' first
# segments. On a disk fuller than this Kafka died right after "ready" (its memory-mapped
# indexes fault), or at its next start with a Java stack trace (t111).
MIN_FREE_MB = 100


def require_writable(settings: Settings, *, home: bool = False) -> None:
    """Create the run directory (and, with ``home``, CITYBRAIN_HOME: Kafka's jars are
    downloaded there) and write and delete a file in each; the run directory's disk must
    have ``MIN_FREE_MB`` free. Raises InputError (exit 2) naming the setting, the
    directory and what to do when one cannot be written or its disk is that full: before
    a start prints anything, not part-way through it."""
    dirs = [settings.run_dir]
    if home:
        dirs.insert(0, Path(os.path.abspath(settings.home)))
    for path in dirs:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".citybrain-write-check-"):
                pass
        except OSError as exc:
            # The directory checked names the setting (the file that failed may be a
            # parent the other setting's directory holds); a file in its very place is
            # said so (t164: "cannot be written (File exists)").
            message = (
                not_a_directory(settings, path) if exc.errno == errno.EEXIST else None
            ) or unwritable_message(settings, path, exc.strerror or str(exc), exc.errno)
            raise InputError(message or f"cannot write {path} ({exc.strerror})") from None
    stat = os.statvfs(settings.run_dir)
    free_mb = stat.f_bavail * stat.f_frsize / 1e6
    if free_mb < MIN_FREE_MB:
        reason = f"{free_mb:.1f} MB free, the stack needs at least {MIN_FREE_MB} MB"
        message = unwritable_message(
            settings, settings.run_dir, reason, errno.ENOSPC, state="is on a disk too full"
        )
        raise InputError(message or f"{settings.run_dir}: {reason}")


def disk_trouble(settings: Settings, logs: list[Path]) -> str | None:
    """When one of ``logs`` (a service's) says its disk refused a write (full, read-only):
    that, naming the setting whose directory it was and what to do; else None."""
    for log in logs:
        text = ""
        with contextlib.suppress(OSError), log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200_000))
            text = f.read().decode(errors="replace")
        for phrase, code in DISK_PHRASES.items():
            if phrase in text:
                message = unwritable_message(settings, settings.run_dir, phrase, code)
                return f"{message} (its log {log} says so)" if message else None
    return None
