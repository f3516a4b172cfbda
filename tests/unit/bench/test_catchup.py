"""The catch-up benchmark's count of what the worker wrote to its tables' changelogs,
read from the broker's data directory (no services)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kafka import TopicPartition

from bench.catchup import changelog_logs
from streams.settings import REPO_ROOT


def test_changelog_bytes_are_the_runs_changelog_segments_only(tmp_path: Path) -> None:
    def segment(directory: str, name: str, size: int) -> None:
        (tmp_path / directory).mkdir(exist_ok=True)
        (tmp_path / directory / name).write_bytes(b"x" * size)

    segment("bench1-sensor-state-changelog-0", "00000000000000000000.log", 1000)
    segment("bench1-sensor-state-changelog-0", "00000000000000000000.index", 77)
    segment("bench1-sensor-state-changelog-1", "00000000000000000000.log", 500)
    segment("bench1-sensor-state-changelog-1", "00000000000000004000.log", 20)
    segment("bench1-groups-changelog-1", "00000000000000000000.log", 3)
    segment("bench1.readings-0", "00000000000000000000.log", 9999)  # a source topic
    segment("bench12-sensor-state-changelog-0", "00000000000000000000.log", 9999)  # a run
    (tmp_path / "bench1-sensor-state-changelog-0.checkpoint").write_text("a file")

    parts, size = changelog_logs(tmp_path, "bench1")
    assert size == 1000 + 500 + 20 + 3
    assert parts == [
        TopicPartition("bench1-groups-changelog", 1),
        TopicPartition("bench1-sensor-state-changelog", 0),
        TopicPartition("bench1-sensor-state-changelog", 1),
    ]


def test_the_quix_candidate_imports_nothing_of_faust() -> None:
    # The Quix candidate runs in its own virtualenv (bench.catchup.QUIX_REQUIREMENTS: no
    # faust); it imports streams.detection, which once reached faust through
    # streams.tables, so `make bench` ended in a ModuleNotFoundError traceback.
    code = (
        "import sys; sys.modules['faust'] = None\n"
        "import ast, pathlib\n"
        "src = pathlib.Path('bench/quix_candidate.py').read_text()\n"
        "for node in ast.parse(src).body:\n"
        "    if isinstance(node, ast.ImportFrom) and node.module.split('.')[0] in ('streams', 'playbooks'):\n"
        "        __import__(node.module)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert (out.returncode, out.stdout) == (0, "ok\n"), out.stderr


def test_the_drain_ends_when_the_worker_counted_its_last_batch() -> None:
    """One worker is looked at twice a second while it drains (20 looks a second cost it
    about 3 % of its loop); its end is its own time of the last counted batch, and by
    interpolation between the looks when that time is missing or outside them."""
    from bench.catchup import drain_end

    last, now = (10.0, 900.0), (10.5, 1000.0)
    assert drain_end(last, now, 1000, 10.31) == 10.31
    assert drain_end(last, now, 1000, None) == 10.5
    assert drain_end(last, now, 950, None) == 10.25
    # A worker clock far off (stepped, or another host's) is not believed.
    assert drain_end(last, now, 950, 9.0) == 10.25
    assert drain_end(last, now, 950, 11.0) == 10.25
