"""A content-addressed cache of objects that are costly to build and never change for the
same inputs (the parsed grid, the fitted department classifier): one pickle per key in
the user's own cache directory, read back at the next start instead of built again.

Lives in ``playbooks`` because the grid is built here and ``streams`` may import
``playbooks`` (not the other way round)."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_or_build(
    cached: Path,
    build: Callable[[], T],
    valid: Callable[[Any], bool],
    *,
    log: logging.Logger,
    what: str,
    unkept: str,
) -> T:
    """The object pickled at ``cached`` if it is there and ``valid``; else ``build()``,
    written there (to a ``.part`` file renamed over it, so a reader never sees half a
    file) and returned. The caller names ``cached`` by a hash of everything the object
    depends on, so a stale one is never found.

    A missing file is built quietly; an unreadable, damaged or foreign one is said at
    INFO and built again; one that cannot be written is said at WARNING with ``unkept``
    (what each start costs without it) and skipped. Never raises for the cache itself;
    raises what ``build`` raises (nothing is written then). ``what`` names the object in
    the messages ("grid: cached grid", "departments: cached model")."""
    try:
        found = pickle.loads(cached.read_bytes())
        if valid(found):
            return found  # type: ignore[no-any-return]
    except FileNotFoundError:
        pass
    except Exception as exc:  # a damaged or foreign file: built again, replaced
        log.info("citybrain: %s %s not read (%r); building it again", what, cached, exc)
    built = build()
    part = cached.with_name(f"{cached.name}.{os.getpid()}.part")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL))
        part.replace(cached)
    except OSError as exc:
        with contextlib.suppress(OSError):  # nothing written, or no directory
            part.unlink()
        log.warning(
            "citybrain: %s cannot be kept in %s (%s): %s",
            what,
            cached.parent,
            exc.strerror or exc,
            unkept,
        )
    return built
