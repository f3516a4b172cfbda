"""t129: a replay's memory does not grow with its files' rows. It checks every row first,
holding none, then reads the files again, merged in time order, as it sends; these tests
pin that structure (what is read before the first send, what is held), not a size in
bytes, which depends on the machine."""

from __future__ import annotations

import gzip
import itertools
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citybrain.cli import main
from streams import feeds
from streams.events import Reading, format_ts
from streams.feeds import FeedStream, ReplayStats, check_feeds, load_events
from tests.unit.citybrain.test_cli_stumbles import listening, stopped

__all__ = ["listening", "stopped"]  # fixtures, used by name

HEADER = "timestamp,sensor_id,kind,value,unit,grid_cell\n"


T0 = 1_557_532_800.0  # 2019-05-11T00:00:00Z


def _rows(start: int, n: int, step: int = 1, sensor: str = "s1") -> str:
    """``n`` readings of ``sensor`` from ``start`` s after T0, ``step`` s apart, valued
    0, 1, …"""
    return "".join(
        f"{format_ts(T0 + start + i * step)},{sensor},water_level,{i},ft,c\n" for i in range(n)
    )


@pytest.fixture
def unpickled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events have been read back from the check's copies so far (one count)."""
    loaded = [0]
    load = feeds.pickle.load

    def counting(file: Any) -> Any:
        block = load(file)
        loaded[0] += len(block)
        return block

    monkeypatch.setattr(feeds.pickle, "load", counting)
    return loaded


class _Taking:
    """Stands in for streams.feeds.Replayer: takes every event it is given, noting how
    many events had been read back from the check's copies when the first came."""

    taken: list[Any]
    loaded_at_first: int
    loaded: list[int]

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.stats = ReplayStats()

    def replay(self, events: Any, speed: object, progress: Any) -> ReplayStats:
        type(self).taken = []
        for event in events:
            if not self.taken:
                type(self).loaded_at_first = self.loaded[0]
            self.taken.append(event)
            self.stats.readings += 1
        return self.stats

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_replay_holds_a_block_of_events_per_file_not_the_files(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unpickled: list[int],
) -> None:
    """Before t129 the replay read every file whole into a list, holding every event
    (~145 bytes each: 10^7 rows 1.5 GB), before it sent the first: here, when the first
    event goes out, at most one block (RUN_BLOCK) of each file's checked events has been
    read back, in a merge of three files, one of them gzip."""
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    monkeypatch.setattr("streams.feeds.Replayer", _Taking)
    _Taking.loaded = unpickled
    n = 30_000
    files = [tmp_path / "a.csv", tmp_path / "b.csv.gz", tmp_path / "c.csv"]
    files[0].write_text(HEADER + _rows(0, n, 3, "s1"))
    files[1].write_bytes(gzip.compress((HEADER + _rows(1, n, 3, "s2")).encode()))
    files[2].write_text(HEADER + _rows(2, n, 3, "s3"))
    assert main(["replay", *map(str, files), "--max"]) == 0
    assert 0 < _Taking.loaded_at_first <= 3 * feeds.RUN_BLOCK < 3 * n
    # Every event, once, in time order: the three files' rows interleaved.
    assert [e.ts for e in _Taking.taken] == sorted(e.ts for e in _Taking.taken)
    assert [e.sensor_id for e in _Taking.taken[:4]] == ["s1", "s2", "s3", "s1"]
    assert len(_Taking.taken) == 3 * n == unpickled[0]


def test_a_bad_last_row_stops_the_replay_before_anything_is_sent(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Streaming keeps --on-error stop's promise: the files are checked whole first."""
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    monkeypatch.setattr("streams.feeds.Replayer", _Taking)
    _Taking.taken = []
    path = tmp_path / "r.csv"
    path.write_text(HEADER + _rows(0, 5000) + "2019-05-12T00:00:00Z,s1,water_level,x,ft,c\n")
    assert main(["replay", str(path), "--max"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5002: field \"value\" is 'x'" in err and "nothing was sent" in err
    assert _Taking.taken == []


def _merged(paths: list[Path], **kwargs: Any) -> list[Any]:
    with FeedStream(check_feeds(paths, **kwargs)) as stream:
        return list(stream)


def test_files_out_of_time_order_are_sent_as_sorting_them_all_sent_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file out of time order (an export sorted by sensor, then time) is sorted on
    disk in runs of at most RUN_EVENTS, then merged: the same order, ties in file then
    row order, as the whole-list sort before t129, holding one run at a time."""
    monkeypatch.setattr(feeds, "RUN_EVENTS", 4)
    monkeypatch.setattr(feeds, "RUN_BLOCK", 3)
    by_sensor = tmp_path / "by-sensor.csv"
    # Two sensors, each in time order, one after the other; equal times across them.
    by_sensor.write_text(HEADER + _rows(0, 9, 60, "s1") + _rows(0, 9, 60, "s2"))
    in_order = tmp_path / "in-order.csv.gz"
    in_order.write_bytes(gzip.compress((HEADER + _rows(30, 7, 60, "s3")).encode()))
    ties = tmp_path / "ties.csv"
    ties.write_text(HEADER + _rows(120, 3, 0, "s4") + _rows(0, 2, 0, "s5"))
    paths = [by_sensor, in_order, ties]
    check = check_feeds(paths)
    assert check.files[0].disorder == (
        f"{by_sensor}:11: 2019-05-11T00:00:00Z is before line 10's 2019-05-11T00:08:00Z"
    )
    assert check.files[1].disorder == ""
    assert check.files[2].disorder.startswith(f"{ties}:5: ")
    stream = FeedStream(check)
    stream.open()
    try:
        assert check.tmp is not None
        runs = sorted(Path(check.tmp.name).iterdir())
        # 18 and 5 events out of order: runs of at most 4, each read back 3 at a time;
        # the file in order is read back as checked (its events, written 3 at a time).
        assert [p.name for p in runs] == [
            *(f"0-{i}.run" for i in range(5)),
            "1.events",
            "2-0.run",
            "2-1.run",
        ]
        for run in runs[:5] + runs[6:]:
            blocks = list(feeds._run_blocks(run))
            assert sum(map(len, blocks)) <= 4 and all(len(b) <= 3 for b in blocks)
        got = list(stream)
    finally:
        stream.close()
    assert got == load_events(paths)  # the whole-list sort, stable
    assert [(e.sensor_id, e.value) for e in got[:4]] == [
        ("s1", 0.0),
        ("s2", 0.0),
        ("s5", 0.0),
        ("s5", 1.0),
    ]


def test_the_merge_holds_one_event_per_file_in_time_order() -> None:
    """The k-way merge pulls a file's next event only once its last one is sent."""
    pulled = {name: 0 for name in "abc"}

    def source(name: str, start: float) -> Iterator[Reading]:
        for i in range(1000):
            pulled[name] += 1
            yield Reading(start + 3 * i, name, "noise", 1.0, "dB", "c")

    import heapq

    merged = heapq.merge(*(source(n, i) for i, n in enumerate("abc")), key=feeds._ts)
    for sent, _ in enumerate(itertools.islice(merged, 100), start=1):
        # At most one event of each file is held beyond those sent.
        assert sum(pulled.values()) <= sent + 3


def test_the_events_sent_are_those_checked_whatever_the_file_does_since(
    tmp_path: Path,
) -> None:
    """A feed still being written: the events its check counted go out, read back from
    the check's own copy, not rows added after it (the summary's counts hold); the copy
    is removed when the stream closes."""
    path = tmp_path / "r.csv"
    path.write_text(HEADER + _rows(0, 5))
    check = check_feeds([path])
    with path.open("a") as more:
        more.write(_rows(100, 3) + "not a row\n")
    assert check.tmp is not None
    copy = Path(check.tmp.name)
    with FeedStream(check) as stream:
        got = list(stream)
    assert [e.value for e in got] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert not copy.exists() and check.tmp is None


def test_checked_events_that_cannot_be_written_are_refused_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + _rows(0, 5))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(feeds.pickle, "dump", full)
    with pytest.raises(feeds.FeedError) as info:
        check_feeds([path])
    assert str(info.value).startswith(f"{path}: cannot write its checked events to ")
    assert "No space left on device" in str(info.value) and "TMPDIR" in str(info.value)


def test_the_check_counts_what_the_replays_notes_need(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + _rows(0, 4, 600) + "bad\n")
    bad_path = tmp_path / "h.csv"
    bad_path.write_text(HEADER)
    check = check_feeds([path, bad_path], on_error="skip", late_after=T0 + 900)
    assert (check.events, len(check.bad_rows), check.headers_only) == (4, 1, [bad_path])
    assert (check.late, check.first_late) == (2, T0 + 1200)
    assert check.last_ts == T0 + 1800


def test_a_check_that_stops_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad row (--on-error stop) or Ctrl-C in the check removes the events it wrote."""
    import tempfile

    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text(HEADER + _rows(0, 3000))
    bad.write_text(HEADER + _rows(0, 3) + "x,s1,water_level,1,ft,c\n")
    with pytest.raises(feeds.FeedError, match=f"{bad}:5: "):
        check_feeds([good, bad])
    assert list(where.iterdir()) == []
    check = check_feeds([good, bad], on_error="skip")
    assert len(list(where.iterdir())) == 1
    check.close()
    assert list(where.iterdir()) == []


def test_the_check_holds_a_block_of_bad_rows_not_every_one(tmp_path: Path) -> None:
    """Before t204 a replay's check held every bad row it skipped (~250 bytes each) until
    the replay had printed them: a file whose every row is bad (a Latin-1 export, each row
    holding a byte that is not UTF-8) took 250 MB more for 10^6 rows. Now the first
    HELD_BAD_ROWS are held and the rest wait on disk, read back, in order, as printed."""
    n = 20_000
    path = tmp_path / "r.csv"
    path.write_text(HEADER + _rows(0, 2) + "".join(f"bad {i},s1\n" for i in range(n)))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        check = check_feeds([path], on_error="skip")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    try:
        assert held < 1_000_000  # the old check held 20,000 rows: about 4 MB
        assert (check.events, len(check.bad_rows)) == (2, n)
        lines = [row.line for row in check.bad_rows]
        assert lines == list(range(4, 4 + n))  # every one, in file order, read again alike
        assert [row.line for row in check.bad_rows] == lines
        last = list(check.bad_rows)[-1]
        assert str(last).startswith(f"{path}:{3 + n}: row has 2 fields, expected 6: ")
    finally:
        check.close()
