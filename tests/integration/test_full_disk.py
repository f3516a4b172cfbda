"""A worker whose log and run directory are on a disk that fills while it runs (t184): it
goes on alerting, and once the disk has room again its log says how many lines it could
not write and why, with no traceback of Python's logging in it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_pipeline import docs, firing, real_levels, send_readings
from tests.services import Pipeline, Worker

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of this test's own (mounting takes root, as CI runs). Never
    skipped: without root the test fails saying so, so a missing proof is seen."""
    if os.geteuid() != 0:
        pytest.fail(
            "mounting a small tmpfs takes root: run the integration tests as root, as CI does"
        )
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, log: Path) -> Path:
    """Fills ``disk`` to the last byte, the page ``log`` ends in too; the filler file."""
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    with log.open("ab", buffering=0) as out:
        try:
            while True:
                out.write(b"\n")
        except OSError:
            pass
    return filler


def logged_since(
    log: Path, offset: int, text: str, timeout: float = 30.0, until: re.Pattern[str] | None = None
) -> str:
    """What ``log`` holds past ``offset`` once it holds ``text`` (and ``until`` matches,
    when given), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with log.open("rb") as fh:
            fh.seek(offset)
            seen = fh.read().decode(errors="replace")
        done = text in seen and (until is None or until.search(seen) is not None)
        if done or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_a_worker_whose_log_disk_fills_keeps_alerting_and_says_the_lines_it_lost(
    pipeline: Pipeline, small_disk: Path
) -> None:
    run = small_disk / "run"
    run.mkdir()
    log = run / "worker.log"
    worker = Worker({**pipeline.env, "CITYBRAIN_RUN_DIR": str(run)}, log).start()
    try:
        assert worker.proc is not None
        filler = fill(small_disk, log)
        full_at = log.stat().st_size
        worker.proc.send_signal(signal.SIGHUP)  # its "configuration reloaded" line is lost
        base = real_levels(60)
        send_readings(pipeline, [*base, base[-1] * 8, *base[:10]])
        alerts = pipeline.read("alerts", lambda m: len(m) >= 2)
        assert [d["status"] for d in docs(alerts)] == ["firing", "resolved"]
        assert firing(alerts)[0]["sensor_id"] == "gauge-1"
        time.sleep(1)  # the reload done (and its line lost)
        assert log.stat().st_size == full_at

        filler.unlink()
        worker.proc.send_signal(signal.SIGHUP)
        said = re.compile(
            r"\[WARNING\] citybrain: (\d+) log lines? lost from \S+ \S+ to \S+ \S+: the log "
            r"could not be written \(\[Errno 28\] No space left on device\)"
            r".*configuration reloaded",
            re.DOTALL,
        )
        seen = logged_since(log, full_at, "configuration reloaded", until=said)
        lost = said.search(seen)
        # The note comes before the reload after the disk has room. The line of the
        # reload while it was full, counted lost, may still have been in the stream's
        # buffer and come just before the note (CI, once; docs/operations.md).
        assert lost is not None, seen
        assert int(lost.group(1)) >= 1
        assert "Logging error" not in seen and "Traceback" not in seen, seen
    finally:
        worker.stop()
    assert worker.proc.returncode == 0, worker.log()[-3000:]
