"""citybrain's own kafka-python readers (`deadletters`, `report`'s and the demo summary's
``read_topic``) read past records kafka-python cannot decode, on the real broker.

kafka-python raised ``CorruptRecordError`` out of ``poll`` for a record whose header name
is not UTF-8 (the broker takes it from any client) and for a batch that fails its CRC
check, and the command ended with exit 70 "unexpected error … a bug" (helper t86). Now
each unreadable range is skipped with one warning line naming topic, partition and
offsets, every other record and partition is read (`--follow` too), and the command
exits 0 (citybrain/kafka_read.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citybrain.cli import EXIT_OK, main
from citybrain.deadletters import Reader
from citybrain.demo import read_topic
from citybrain.stack import KafkaBroker, PrometheusServer
from tests.integration.test_unreadable_batches import (
    _corrupt,
    _lingering,
    _NotUtf8,
    _past_its_segment,
)
from tests.services import TEST_PORTS, Pipeline, stack_settings

pytestmark = pytest.mark.integration


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("citybrain: warning: ")]


def test_kafka_python_readers_skip_only_the_unreadable_records(
    stack: PrometheusServer,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    pipeline = Pipeline(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    topic = pipeline.topic("deadletter")

    def send(partition: int, i: int, value: bytes = b"{}", bad_header: bool = False) -> None:
        headers = [("citybrain.error.reason", b"bad_json")]
        if bad_header:
            headers.append((_NotUtf8("x"), b"v"))
        pipeline.producer.send(
            topic,
            key=f"k{partition}-{i}".encode(),
            value=value,
            headers=headers,
            partition=partition,
        )
        pipeline.flush()  # one batch per record: only the bad one's batch is unreadable

    try:
        # Partition 0: offsets 0-5, offset 3 with a header name that is not UTF-8.
        for i in range(6):
            send(0, i, bad_header=i == 3)
        # Partition 1: three batches (0-1, 2-4, 5-6), the middle one corrupted on disk.
        # Through a lingering producer: each flush one batch (t87: with linger 0 the
        # sender may take a batch's first record alone, and the corruption hit only it).
        batching = _lingering(pipeline)
        try:
            for first, count, value in (
                (0, 2, b"{}"),
                (2, 3, b'{"corrupted-middle": 1}'),
                (5, 2, b"{}"),
            ):
                for i in range(first, first + count):
                    batching.send(topic, key=f"k1-{i}".encode(), value=value, partition=1)
                batching.flush()
        finally:
            batching.close()
        assert kafka.stop()
        _corrupt(kafka.dir / "data" / f"{topic}-1" / f"{0:020d}.log", b"corrupted-middle")
        kafka.start()

        expected = {(0, o) for o in (0, 1, 2, 4, 5)} | {(1, o) for o in (0, 1, 5, 6)}
        said = [f"{topic}/0 offsets 3-3: ", f"{topic}/1 offsets 2-4: "]

        assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
        out, err = capsys.readouterr()
        docs = [json.loads(line) for line in out.splitlines()]
        assert {(d["partition"], d["offset"]) for d in docs} == expected
        warned = _warnings(err)
        assert len(warned) == 2 and all(s in w for s, w in zip(said, warned, strict=True))
        assert "UnicodeDecodeError" in warned[0] and "failed crc check" in warned[1]
        assert all(w.count("CorruptRecordError") == 1 for w in warned)
        assert err.splitlines() == warned  # nothing else: no traceback, no client log

        # The table, as a user runs the command (the client's own logging included).
        run = subprocess.run(
            [sys.executable, "-m", "citybrain.cli", "deadletters", "--prefix", pipeline.name],
            capture_output=True,
            text=True,
            env={**os.environ, **TEST_PORTS},
            timeout=300,
            check=False,
        )
        assert run.returncode == EXIT_OK, run.stderr
        assert f"{topic}: 9 dead letters" in run.stdout
        assert [line.split(": records")[0] for line in run.stderr.splitlines()] == [
            f"citybrain: warning: {s.removesuffix(': ')}" for s in said
        ]

        # A --replay of a record in the unreadable range.
        main(["deadletters", "--prefix", pipeline.name, "--replay", "0:3"])
        err = capsys.readouterr().err
        assert f"{topic}/0/3: no dead letter there" in err
        assert "Traceback" not in err and "bug" not in err

        # report's, campaign report's and the demo summary's reader.
        messages = read_topic(pipeline.settings, topic)
        assert {(m.partition, m.offset) for m in messages} == expected
        warned = _warnings(capsys.readouterr().err)
        assert len(warned) == 2 and all(s in w for s, w in zip(said, warned, strict=True))

        # --follow's reader: an unreadable record that comes while it follows.
        with Reader(pipeline.settings, topic) as reader:
            assert len(reader.latest(20)) == 9
            capsys.readouterr()
            send(0, 6, bad_header=True)
            send(0, 7)
            # (A bound so a broken follow fails rather than hangs; not a timing assertion.)
            give_up = time.monotonic() + 60
            new = next(reader.new(lambda: time.monotonic() > give_up), None)
        assert new is not None and (new.partition, new.offset) == (0, 7)
        [warned_once] = _warnings(capsys.readouterr().err)
        assert f"{topic}/0 offsets 6-6: " in warned_once
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()


def test_offsets_the_broker_skips_are_said_by_the_readers(
    stack: PrometheusServer,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A legacy magic byte on a partition's first batch (0-4): the broker serves its first
    # offset and skips the rest by the batch's length, and kafka-python went on at 5 with
    # no word of 1-4: dead letters lost from `deadletters`' answer unsaid (helper t88).
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    pipeline = Pipeline(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    topic = pipeline.topic("deadletter")
    try:
        batching = _lingering(pipeline)
        try:
            for first, count in ((0, 5), (5, 2)):
                for i in range(first, first + count):
                    batching.send(topic, key=f"k{i}".encode(), value=b"{}", partition=0)
                batching.flush()
        finally:
            batching.close()
        assert kafka.stop()
        segment = kafka.dir / "data" / f"{topic}-0" / f"{0:020d}.log"
        data = bytearray(segment.read_bytes())
        assert data[16] == 2
        data[16] = 1
        data[17] &= 0xF8  # attributes as a legacy message reads them: no codec
        segment.write_bytes(bytes(data))
        kafka.start()

        assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
        out, err = capsys.readouterr()
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    offsets = sorted(json.loads(line)["offset"] for line in out.splitlines())
    assert offsets[-2:] == [5, 6] and not set(offsets) & {1, 2, 3, 4}
    warned = _warnings(err)
    assert any(f"{topic}/0 offsets 1-4: " in w and "served offset 5 next" in w for w in warned), err
    assert err.splitlines() == warned


def test_a_segments_last_batch_running_past_its_file_is_said_by_the_readers(
    stack: PrometheusServer,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The first segment's last batch (5-9) runs 40 bytes past the end of its file: the
    # fetch from 0 ends in it (kafka-python leaves it as incomplete), the fetch from 5 is
    # served from the next segment. Not waited on for ever: 5-9 are said, 10-14 read (t92).
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    pipeline = Pipeline(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    topic = pipeline.topic("deadletter")
    try:
        _past_its_segment(
            pipeline,
            kafka,
            topic,
            0,
            lambda producer, i: producer.send(
                topic, key=f"k{i}".encode(), value=b"{}", partition=0
            ),
        )
        assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
        out, err = capsys.readouterr()
        records = read_topic(pipeline.settings, topic)
        err_topic = capsys.readouterr().err
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    offsets = sorted(json.loads(line)["offset"] for line in out.splitlines())
    assert offsets == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    warned = _warnings(err)
    assert [w for w in warned if f"{topic}/0 offsets 5-9: " in w and "offset 10 next" in w], err
    assert err.splitlines() == warned
    assert len(records) == 10
    assert f"{topic}/0 offsets 5-9: " in err_topic, err_topic
