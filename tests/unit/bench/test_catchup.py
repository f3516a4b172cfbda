"""The catch-up benchmark's count of what the worker wrote to its tables' changelogs,
read from the broker's data directory (no services)."""

from __future__ import annotations

from pathlib import Path

from kafka import TopicPartition

from bench.catchup import changelog_logs


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
