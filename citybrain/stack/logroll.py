"""Bound the log of a process the stack started: roll ``LOG`` by size while process ``PID``
lives, as log4j rolls Kafka's server.log (t176).

Run as a script beside the process ``spawn`` starts (``python logroll.py PID TICKS LOG
MAX_BYTES FILES``): the demo's worker, Prometheus, Mosquitto and Kafka's ``kafka.out``
write their output straight into their log in the run directory, which grew without
bound for as long as they ran (a worker left up for weeks, a flood of warnings). Every
``POLL_SECONDS`` the log is looked at; past ``MAX_BYTES`` it is copied to ``LOG.1`` (the
older ones moved up to ``LOG.FILES``, the oldest dropped) and cut to nothing, as
logrotate's ``copytruncate`` does: the process keeps its file open, appending
(``O_APPEND``), so its next line starts the fresh log. So at most about ``(FILES + 1) *
MAX_BYTES`` bytes in all, plus what the process writes in one poll. A line written
between the copy and the cut (microseconds) may be lost, the price of rolling a file
whose writer cannot be told to reopen it.

The script exits once ``PID`` is gone (or is another process: its start time, ``TICKS``,
differs) or a zombie, so it outlives the process by one poll at most; it forks at once,
its first process exiting, so its starter waits for nothing. Standard library
only, no citybrain import: it starts in a fraction of a second and holds no state.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

POLL_SECONDS = 1.0


def _ticks_and_state(pid: int) -> tuple[int, str] | None:
    """Process ``pid``'s start time (clock ticks after boot) and state letter, None when
    it is gone (``/proc/<pid>/stat``; the name, in parentheses, may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rfind(")") + 1 :].split()
        return int(fields[19]), fields[0]
    except (OSError, ValueError, IndexError):
        return None


def rolled(log: Path, index: int) -> Path:
    """``log``'s ``index``-th older file: ``worker.log.1`` the newest."""
    return log.with_name(f"{log.name}.{index}")


def shift(log: Path, files: int) -> None:
    """Make room for a new ``LOG.1``: ``LOG.(files-1)`` to ``LOG.files`` (the oldest
    replaced), ..., ``LOG.1`` to ``LOG.2``. A missing one is passed over."""
    for index in range(files - 1, 0, -1):
        with_index = rolled(log, index)
        if with_index.exists():
            with_index.replace(rolled(log, index + 1))


def roll(log: Path, files: int) -> None:
    """Copy ``log`` to ``LOG.1`` (the older ones moved up) and cut it to nothing, its
    writer appending on into the emptied file. What it wrote while it was copied is
    copied too, right before the cut."""
    shift(log, files)
    target = rolled(log, 1)
    with log.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.write(src.read())  # the lines written during the copy
        os.truncate(log, 0)


def watch(pid: int, ticks: int | None, log: Path, max_bytes: int, files: int) -> None:
    """Roll ``log`` past ``max_bytes`` every ``POLL_SECONDS`` until process ``pid``
    (started at ``ticks``, None: not checked) is gone or a zombie; once more then, so
    its last lines are bounded too."""
    while True:
        seen = _ticks_and_state(pid)
        gone = seen is None or seen[1] in ("Z", "X") or (ticks is not None and seen[0] != ticks)
        try:
            if log.stat().st_size > max_bytes:
                roll(log, files)
        except OSError:
            pass  # the log moved or removed (a wipe of the run directory): nothing to bound
        if gone:
            return
        time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    pid, ticks, log, max_bytes, files = argv
    # Away from the process that started it (``spawn``'s caller, which waits for this
    # first process only): the watch goes on in a child the init process reaps, so it
    # is never a zombie of a long-running command such as the demo.
    if os.fork():
        return 0
    watch(int(pid), int(ticks) if ticks != "-" else None, Path(log), int(max_bytes), int(files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
