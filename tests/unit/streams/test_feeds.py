"""Canonical replay files: parsing, ordering and errors that name file and line."""

from __future__ import annotations

import gzip
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from citybrain.demo import DEMO_DATA
from streams import feeds
from streams.errors import FeedError
from streams.events import IncidentReport, Reading
from streams.feeds import BadRow, Replayer, event_key, load_events, read_canonical

ROOT = Path(__file__).resolve().parents[3]
HEADER = "timestamp,sensor_id,kind,value,unit,grid_cell\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_committed_slices_parse_and_merge_in_event_time_order() -> None:
    events = load_events(DEMO_DATA)
    assert len(events) > 30_000
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))
    assert {type(e) for e in events} == {Reading, IncidentReport}


def test_keys_are_sensor_for_readings_and_cell_for_incidents() -> None:
    r = Reading(0.0, "s1", "pm25", 1.0, "ug/m3", "c1")
    i = IncidentReport(0.0, "r1", "Noise", "loud", "app", "c9")
    assert (event_key(r), event_key(i)) == (b"s1", b"c9")


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("2024-01-01T00:00:00Z,s1,pm25,abc,ug/m3,c1\n", 2, "field \"value\" is 'abc'"),
        ("2024-01-01T00:00:00Z,s1,pm25,1.0,ug/m3\n", 2, "row has 5 fields, expected 6"),
        (
            "2024-01-01T00:00:00Z,s1,pm25,1,ug/m3,c1\nnot-a-time,s1,pm25,1,ug/m3,c1\n",
            3,
            "field \"timestamp\" is 'not-a-time'",
        ),
        ("2024-01-01T00:00:00Z,s1,pm25,inf,ug/m3,c1\n", 2, "expected a finite number"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = write(tmp_path, "bad.csv.gz", HEADER + body)
    with pytest.raises(FeedError) as info:
        list(read_canonical(path))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert reason in str(info.value)


def test_an_incident_row_the_worker_would_refuse_as_too_long_is_a_bad_row(tmp_path: Path) -> None:
    header = "timestamp,report_id,category,text,source,grid_cell\n"
    row = f"2024-01-01T00:00:00Z,{'x' * 300},Noise,loud,app,c1\n"
    path = write(tmp_path, "long.csv", header + row)
    with pytest.raises(FeedError) as info:
        list(read_canonical(path))
    assert str(info.value).startswith(f'{path}:2: field "report_id" is \'xxx')
    assert str(info.value).endswith("300 characters, at most 256")


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "time,id,value\n")
    with pytest.raises(FeedError, match=r"x.csv:1: header is"):
        list(read_canonical(path))


def test_skip_mode_reports_bad_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.csv",
        HEADER + "2024-01-01T00:00:05Z,s1,pm25,2,ug/m3,c1\n"
        "2024-01-01T00:00:00Z,s1,pm25,oops,ug/m3,c1\n"
        "2024-01-01T00:00:01Z,s1,pm25,3,ug/m3,c1\n",
    )
    bad: list[BadRow] = []
    events = load_events([path], on_error="skip", bad_rows=bad)
    assert [e.value for e in events if isinstance(e, Reading)] == [3.0, 2.0]  # time order
    assert [(b.line, "oops" in b.reason) for b in bad] == [(3, True)]


class _Sent:
    def __init__(self, answered: bool = True) -> None:
        self.answered = answered

    def add_callback(self, callback: Any) -> None:
        if self.answered:
            callback(None)  # Kafka acknowledged it at once

    def add_errback(self, _: object) -> None:
        pass


class _Producer:
    def __init__(self, answering: bool = True) -> None:
        self.sent: list[bytes] = []
        self.answering = answering

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> _Sent:
        self.sent.append(value)
        return _Sent(self.answering)

    def flush(self, timeout: float | None = None) -> None:
        from kafka.errors import KafkaTimeoutError

        if not self.answering:
            time.sleep(timeout or 0.0)
            raise KafkaTimeoutError("not flushed")


def test_a_very_slow_replay_waits_in_bounded_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # `replay --speed 1e-300`: one time.sleep() of 3e302 s raised OverflowError ("a bug",
    # exit 70) after the first reading had gone out.
    replayer = Replayer.__new__(Replayer)
    replayer.producer, replayer.packer = _Producer(), None
    replayer.readings_topic, replayer.incidents_topic = "r", "i"
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt  # as Ctrl-C ends a replay

    monkeypatch.setattr(feeds.time, "sleep", sleep)
    first = Reading(1_790_000_000.0, "gauge-1", "water_level", 1.0, "ft", "c-bridge")
    second = Reading(1_790_000_300.0, "gauge-1", "water_level", 2.0, "ft", "c-bridge")
    with pytest.raises(KeyboardInterrupt):
        replayer.replay([first, second], speed=1e-300)
    assert len(replayer.producer.sent) == 1
    assert slept == [86_400.0] * 3


def test_a_replay_keeps_each_repeated_text_once(tmp_path: Path) -> None:
    """t121: a replay holds every event of its files until it sends them, each row's
    sensor id, kind, unit and cell (a report's category, source and cell) as texts of its
    own: a million readings of one sensor peaked at 470 MB, 216 MB with them shared."""
    readings = tmp_path / "r.csv"
    readings.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"2026-11-01T10:0{i}:00Z,bj-dongsi-pm25,pm25,{i},ug/m3,bj-site-dongsi\n"
            for i in range(3)
        )
    )
    reports = tmp_path / "i.csv"
    reports.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        + "".join(
            f"2026-11-01T10:0{i}:00Z,r{i},noise,loud {i},hotline,bj-site-dongsi\n" for i in range(3)
        )
    )
    events = load_events([readings, reports])
    kept = [e for e in events if isinstance(e, Reading)]
    assert [r.value for r in kept] == [0.0, 1.0, 2.0]
    for field in ("sensor_id", "kind", "unit", "grid_cell"):
        assert len({id(getattr(r, field)) for r in kept}) == 1, field
    said = [e for e in events if isinstance(e, IncidentReport)]
    assert [r.report_id for r in said] == ["r0", "r1", "r2"]
    for field in ("category", "source", "grid_cell"):
        assert len({id(getattr(r, field)) for r in said}) == 1, field


def test_a_gzip_file_named_in_capitals_is_read_as_gzip(tmp_path: Path) -> None:
    """t121: ``DATA.CSV.GZ`` (Windows tools and FTP exports write names in capitals) was
    read as plain bytes: replay refused it as "gzip-compressed; name it DATA.CSV.GZ.gz"."""
    from streams.inputs import unreadable

    path = tmp_path / "DATA.CSV.GZ"
    path.write_bytes(gzip.compress((HEADER + "2026-11-01T10:00:00Z,s,pm25,1.5,ug/m3,c\n").encode()))
    assert unreadable(path, "CSV") == ""
    assert [e.value for e in load_events([path])] == [1.5]  # type: ignore[union-attr]


@pytest.mark.parametrize("speed", [1.0, None], ids=["paced", "max"])
def test_a_replay_kafka_answers_nothing_stops_rather_than_count_sends(
    speed: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t164: with the broker gone part-way, kafka-python buffers what it is handed and
    gives it up only after its 120 s delivery timeout: a paced replay said "2,000 …
    3,000 … events sent" for as long as it ran, having sent none. Messages waiting
    STALL_SECONDS with no answer from Kafka now stop it (KafkaTimeoutError, which the
    CLI says with exit 3 and the command that sends the rest). Fails on the old code:
    the replay went on to its end."""
    from kafka.errors import KafkaTimeoutError

    monkeypatch.setattr(feeds, "STALL_SECONDS", 0.3, raising=False)
    monkeypatch.setattr(feeds, "STALL_CHECK_SECONDS", 0.05, raising=False)
    replayer = Replayer.__new__(Replayer)
    replayer.producer, replayer.packer = _Producer(answering=False), None
    replayer.readings_topic, replayer.incidents_topic = "r", "i"
    events = [
        Reading(1_790_000_000.0 + i, "gauge-1", "water_level", float(i), "ft", "c-bridge")
        for i in range(5)
    ]
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match=r"no acknowledgement for 0 s, .* waiting"):
        replayer.replay(events, speed=speed)
    assert time.monotonic() - started < 3.0
    if speed is not None:
        assert len(replayer.producer.sent) == 1  # stopped in the first wait


def test_a_replay_kafka_answers_goes_on_through_long_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answered messages leave nothing waiting: a paced replay's long waits are no stall."""
    monkeypatch.setattr(feeds, "STALL_SECONDS", 0.1, raising=False)
    replayer = Replayer.__new__(Replayer)
    replayer.producer, replayer.packer = _Producer(), None
    replayer.readings_topic, replayer.incidents_topic = "r", "i"
    events = [
        Reading(1_790_000_000.0 + i * 0.2, "gauge-1", "water_level", float(i), "ft", "c-bridge")
        for i in range(3)
    ]
    stats = replayer.replay(events, speed=1.0)
    assert stats.readings == 3 and len(replayer.producer.sent) == 3


def test_a_bad_row_of_a_file_changed_while_read_says_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t180: a feed truncated or rotated under a replay stopped at the row the
    truncation cut ("big.csv:46262: row has 1 fields, expected 6"), with no word that the
    file changed (said only after a whole read). The file's size is looked up before and
    after; here the second look is made to differ."""
    path = tmp_path / "r.csv"
    path.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2026-11-01T10:00:00Z,s1,water_level,1.5,m,c1\n2026-11-01T10:01:00Z,s1\n"
    )
    looks = iter([(100, 1), (0, 2)])
    import streams.inputs

    for module in (feeds, streams.inputs):  # the look before, and the one after
        monkeypatch.setattr(module, "file_version", lambda _path: next(looks))
    with pytest.raises(FeedError) as stopped:
        list(feeds.FileCheck(path).read(None, 1_000_000))
    assert str(stopped.value) == (
        f"{path}:3: row has 2 fields, expected 6: read as timestamp "
        "'2026-11-01T10:01:00Z', sensor_id 's1', and none for kind, value, unit, grid_cell "
        f"({path} changed while it was read (100 "
        "bytes, then 0): still being written, truncated or rotated? replay it once it is "
        "complete)"
    )


class _Clock:
    """``time.monotonic`` and ``time.sleep`` of a virtual clock: a paced replay of
    minutes runs at once."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    "gap", [0.1, 60.0], ids=["short waits between many events", "one long wait"]
)
def test_a_paced_replay_tells_its_progress_at_least_every_second(
    gap: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209: `replay --speed 3000` of the 5-minute flood data (a wait of 0.1 s between
    instants, each under the 0.5 s that told progress) said no plain progress line for
    20 s, though one is promised every 5 s: progress heard of events only 1,000 at a
    time. Nor was anything heard during one long wait (sparse data at a slow speed).
    Fails on the old code: progress was heard once, at the end (short waits), or not
    during the 60 s wait."""
    clock = _Clock()
    monkeypatch.setattr(feeds, "time", clock)
    replayer = Replayer.__new__(Replayer)
    replayer.producer, replayer.packer = _Producer(), None
    replayer.readings_topic, replayer.incidents_topic = "r", "i"
    count = 300 if gap < 1 else 2
    events = [
        Reading(1_790_000_000.0 + i * gap, "gauge-1", "water_level", float(i), "ft", "c-bridge")
        for i in range(count)
    ]
    heard: list[tuple[float, int]] = []
    stats = replayer.replay(events, 1.0, lambda n: heard.append((clock.now, n)))
    assert stats.readings == count and sum(n for _, n in heard) == count
    times = [1_000.0] + [at for at, _ in heard]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 1.0 + 0.1 + 1e-6
    assert times[-1] - times[0] >= (count - 1) * gap
