"""`citybrain deadletters` reads a prefix's dead-letter topic on the real broker: the
latest --limit across partitions as a table or JSON lines, with the citybrain.error.*
headers; a prefix without the topic is one line naming the prefixes that have one
(trial 8: no documented way to read the topic)."""

from __future__ import annotations

import json
import time

import pytest

from citybrain.cli import EXIT_OK, EXIT_USAGE, main
from citybrain.deadletters import Reader
from tests.services import TEST_PORTS, Pipeline

pytestmark = pytest.mark.integration


def _headers(reason: str, message: str, origin: str) -> list[tuple[str, bytes]]:
    return [
        ("citybrain.error.stream", b"readings"),
        ("citybrain.error.reason", reason.encode()),
        ("citybrain.error.message", message.encode()),
        ("citybrain.error.origin", origin.encode()),
    ]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)


def test_the_latest_dead_letters_are_shown_with_their_headers(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = pipeline.topic("deadletter")
    base_ms = int(time.time() * 1000) - 60_000
    for i, (key, reason) in enumerate(
        [(b"gauge-1", "bad_type"), (b"gauge-2", "out_of_order"), (b"\xff-3", "bad_json")]
    ):
        pipeline.producer.send(
            topic,
            key=key,
            value=b'{"v": 1}' if i < 2 else b"\xff\xfe",
            headers=_headers(
                reason, f'field "value" is {{"v": {i}}}: expected a number', f"x/0/{i}"
            ),
            partition=i % 2,
            # Their own times, a second apart: the order across partitions is by time.
            timestamp_ms=base_ms + 1000 * i,
        )
    pipeline.producer.flush()

    assert main(["deadletters", "--prefix", pipeline.name, "--limit", "2"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{topic}: 2 dead letters (the latest, --limit); ")
    assert lines[1].split() == ["AT", "TIME", "STREAM", "REASON", "KEY", "ORIGIN", "MESSAGE"]
    assert [line.split()[4] for line in lines[2:]] == ["out_of_order", "bad_json"]
    # Each row's own PARTITION:OFFSET, as --replay takes it (t151).
    assert [line.split()[0] for line in lines[2:]] == ["1:0", "0:1"]
    assert "\\xff-3" in lines[3]  # a key byte that is not UTF-8, escaped

    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["headers"]["reason"] for d in docs] == ["bad_type", "out_of_order", "bad_json"]
    assert docs[0]["key"] == "gauge-1" and docs[0]["value"] == '{"v": 1}'
    assert docs[2]["value_base64"] == "//4=" and "value" not in docs[2]

    # What --follow shows after them: each new one, as it comes.
    with Reader(pipeline.settings, topic) as reader:
        assert len(reader.latest(10)) == 3
        pipeline.producer.send(
            topic, key=b"gauge-9", value=b"{}", headers=_headers("too_old", "m", "x/1/9")
        )
        pipeline.producer.flush()
        # (A bound so a broken follow fails rather than hangs; not a timing assertion.)
        give_up = time.monotonic() + 60
        new = next(reader.new(lambda: time.monotonic() > give_up), None)
    assert new is not None
    assert (new.key, new.headers["reason"]) == (b"gauge-9", "too_old")


def test_a_prefix_without_a_dead_letter_topic_is_named(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deadletters", "--prefix", "no-such-prefix"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "has no topic no-such-prefix.deadletter (a worker creates it as it starts)" in err
    assert pipeline.name in err or "the latest 8" in err
    assert err.startswith("citybrain: --prefix 'no-such-prefix': Kafka at ")


def test_a_prefix_from_the_setting_is_named_as_the_setting(
    pipeline: Pipeline,
    env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trial 17: with no --prefix typed, the error said "--prefix 'citybrain'"."""
    monkeypatch.setenv("CITYBRAIN_TOPIC_PREFIX", "no-such-setting")
    assert main(["deadletters"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: CITYBRAIN_TOPIC_PREFIX=no-such-setting: Kafka at ")
    assert "has no topic no-such-setting.deadletter" in err


def test_a_misspelt_sensor_is_dead_lettered_and_shown_with_the_registered_one(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer's typo in a sensor id: `deadletters` said "sensor is not registered"
    with no "did you mean"."""
    from streams.events import Reading

    worker = pipeline.worker().start()
    try:
        typo = Reading(time.time() - 60, "guage-1", "water_level", 1.0, "ft", "c-bridge")
        pipeline.send("readings", b"guage-1", typo.to_json())
        pipeline.flush()
        [dead] = pipeline.read("deadletter", lambda m: len(m) >= 1, settle=1)
    finally:
        worker.stop()
    message = dict(dead.headers)["citybrain.error.message"].decode()
    assert message.endswith("sensor is not registered (did you mean 'gauge-1'?)"), message
    assert main(["deadletters", "--prefix", pipeline.name]) == EXIT_OK
    assert "(did you mean 'gauge-1'?)" in capsys.readouterr().out


def test_a_prefix_near_one_with_a_dead_letter_topic_is_answered_with_it(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.producer.send(
        pipeline.topic("deadletter"), key=b"k", value=b"{}", headers=_headers("x", "m", "o")
    )
    pipeline.producer.flush()
    assert main(["deadletters", "--prefix", pipeline.name[:-1]]) == EXIT_USAGE
    assert f"(did you mean {pipeline.name!r}?)" in capsys.readouterr().err


def test_a_dead_letter_carries_its_original_record_whole(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # A field producer's headers (a trace context, its content type, a vendor's binary
    # device id, a key given twice, an empty value, one spelled as citybrain's own
    # reason header) were dropped from its dead letters: nobody could see or restore
    # what the producer sent (helper t81).
    from streams.events import Reading
    from tests.integration.test_field_producers import START

    sent_headers = [
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("content-type", b"application/json"),
        ("device-id", b"\x00\xff\xfe\x01"),
        ("hop", b"gw-1"),
        ("hop", b"gw-2"),
        ("empty", b""),
        ("citybrain.error.reason", b"spoofed"),
    ]
    readings, incidents = pipeline.topic("readings"), pipeline.topic("incidents")
    newer = Reading(START + 600, "gauge-1", "water_level", 10.0, "ft", "c-bridge").to_json()
    older = Reading(START, "gauge-1", "water_level", 10.0, "ft", "c-bridge").to_json()
    bad_type = newer.replace(b'"value":10.0', b'"value":"abc"')
    assert bad_type != newer
    worker = pipeline.worker().start()
    try:
        # Refused while decoding (keyed by its sensor, not its message's key), by the
        # detection (out_of_order, after the newer reading), and on another topic
        # with no key at all.
        pipeline.producer.send(
            readings, key=b"gauge-1", value=newer, headers=sent_headers, timestamp_ms=1_000
        )
        pipeline.producer.flush()
        pipeline.producer.send(
            readings, key=b"pack-7", value=bad_type, headers=sent_headers, timestamp_ms=2_000
        )
        pipeline.producer.send(
            readings, key=b"gauge-1", value=older, headers=sent_headers, timestamp_ms=3_000
        )
        pipeline.producer.send(
            incidents, key=None, value=b"{not json", headers=sent_headers, timestamp_ms=4_000
        )
        pipeline.producer.flush()
        dead = pipeline.read("deadletter", lambda m: len(m) >= 3, timeout=120, settle=2)
    finally:
        worker.stop()
    by_reason = {dict(m.headers)["citybrain.error.reason"]: m for m in dead}
    assert set(by_reason) == {b"bad_type", b"out_of_order", b"bad_json"}
    expected = [(f"citybrain.original.header.{n}", v) for n, v in sent_headers]
    for reason, stamp in (
        (b"bad_type", b"2000"),
        (b"out_of_order", b"3000"),
        (b"bad_json", b"4000"),
    ):
        headers = by_reason[reason].headers
        # citybrain's own reason stands, once; the producer's is kept under its own name.
        assert [v for n, v in headers if n == "citybrain.error.reason"] == [reason]
        assert [(n, v) for n, v in headers if n.startswith("citybrain.original.header.")] == (
            expected
        )
        assert dict(headers)["citybrain.original.timestamp"] == stamp
        assert dict(headers)["citybrain.original.timestamp_type"] == b"CreateTime"
    # Keyed by its sensor, the key it came with said beside; the others kept their own.
    assert by_reason[b"bad_type"].key == b"gauge-1"
    assert dict(by_reason[b"bad_type"].headers)["citybrain.original.key"] == b"pack-7"
    assert "citybrain.original.key" not in dict(by_reason[b"out_of_order"].headers)
    assert by_reason[b"bad_json"].key is None

    # What `citybrain deadletters --json` shows of them: the original, binary-safe.
    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [doc] = [d for d in docs if d["headers"]["reason"] == "bad_type"]
    assert doc["headers"]["reason"] == "bad_type"  # not the producer's "spoofed"
    assert doc["original"]["key"] == "pack-7" and doc["original"]["timestamp"] == 2000
    assert doc["original"]["headers"][2] == {"name": "device-id", "value_base64": "AP/+AQ=="}
    assert [h["name"] for h in doc["original"]["headers"]] == [n for n, _ in sent_headers]

    # Sent back (`deadletters --replay`): to the topic it came from, with the key and
    # every header its producer gave it, and which dead letter it was.
    bad = by_reason[b"bad_type"]
    where = f"{bad.partition}:{bad.offset}"
    assert main(["deadletters", "--prefix", pipeline.name, "--replay", where]) == EXIT_OK
    said = capsys.readouterr().out
    assert f"sent back to {readings}" in said and "with 7 headers of its own" in said
    # t189 (fails on the old code): how to learn whether the worker took it this time.
    last = said.splitlines()[-1]
    assert last.startswith(f"a worker reading prefix {pipeline.name} reads it again: one it")
    assert f"citybrain deadletters --prefix {pipeline.name}` within seconds" in last
    again = pipeline.read(
        "readings", lambda m: sum(r.value == bad_type and r.key == b"pack-7" for r in m) == 2
    )
    # The first is the one the producer sent; the second the one sent back.
    first, replayed = [r for r in again if r.key == b"pack-7" and r.value == bad_type]
    assert first.headers == sent_headers
    assert replayed.headers == [
        *sent_headers,
        (
            "citybrain.replayed_from",
            f"{pipeline.topic('deadletter')}/{where.replace(':', '/')}".encode(),
        ),
    ]
    # One that came from no Kafka topic (the ingest's), or is not there: nothing is sent.
    pipeline.producer.send(
        pipeline.topic("deadletter"),
        value=b"high",
        headers=_headers("bad_type", "m", "mqtt:city/e/gauge-1/water_level"),
        partition=0,
    )
    pipeline.producer.flush()
    end = {m.offset for m in pipeline.read("deadletter", lambda m: len(m) >= 4) if m.partition == 0}
    status = main(
        [
            "deadletters",
            "--prefix",
            pipeline.name,
            "--replay",
            f"0:{max(end)}",
            "--replay",
            "0:999999",
            "--replay",
            "7:0",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "nothing sent back" in err and "came from the MQTT ingest" in err
    # Why none is there (t147: "no dead letter there" alone, for a partition the topic
    # does not have too).
    assert (
        f"0/999999: no dead letter there: partition 0 holds offsets 0 to {max(end)} "
        "(as --json shows them)"
    ) in err
    assert "7/0: no dead letter there: the topic has no partition 7 (it has 0, " in err
    # t219 (fails on the old code): a place with no dead letter ends with what lists them.
    listing = f"citybrain deadletters --prefix {pipeline.name}` lists them, each at its AT"
    assert err.rstrip().endswith(f"{listing} (PARTITION:OFFSET)"), err


def test_a_replay_from_a_partition_holding_none_says_what_lists_them(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """t219 (fails on the old code): `--replay 1:0` with partition 1 empty said only
    "partition 1 holds none", not what lists the dead letters and their places."""
    pipeline.producer.send(
        pipeline.topic("deadletter"),
        value=b"high",
        headers=_headers("bad_type", "m", f"{pipeline.topic('readings')}/0/3"),
        partition=0,
    )
    pipeline.producer.flush()
    pipeline.read("deadletter", lambda m: len(m) >= 1)
    assert main(["deadletters", "--prefix", pipeline.name, "--replay", "1:0"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{pipeline.topic('deadletter')}/1/0: no dead letter there: partition 1 holds none; `"
        in err
    )
    assert err.rstrip().endswith(
        f"citybrain deadletters --prefix {pipeline.name}` lists them, each at its AT "
        "(PARTITION:OFFSET)"
    ), err


def test_null_stays_apart_from_empty_through_a_dead_letter_and_its_replay(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Kafka tells a null (length -1) header value, key or value from an empty one. A
    # dead letter wrote a null header value empty and a tombstone's value empty, and
    # `--replay` sent them back so, stamped with the time of sending: the record sent
    # back was not the one refused (helper t88). aiokafka's producer writes null header
    # values (kafka-python's refuses them).
    import asyncio

    from aiokafka import AIOKafkaProducer

    incidents = pipeline.topic("incidents")
    sent = [
        # (key, value, headers, timestamp_ms)
        (b"", b"{not json", [("n", None), ("e", b"")], 4_000),
        (b"t", None, [("n", None)], 5_000),  # a tombstone
        (b"k", b"", [("e", b"")], 6_000),
    ]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
        await producer.start()
        try:
            for key, value, headers, stamp in sent:
                await producer.send_and_wait(
                    incidents, key=key, value=value, headers=headers, timestamp_ms=stamp
                )
        finally:
            await producer.stop()

    worker = pipeline.worker().start()
    try:
        asyncio.run(produce())
        dead = pipeline.read("deadletter", lambda m: len(m) >= 3, timeout=120)
    finally:
        worker.stop()
    by_stamp = {dict(m.headers)["citybrain.original.timestamp"]: m for m in dead}
    assert set(by_stamp) == {b"4000", b"5000", b"6000"}
    first, tombstone, empty = by_stamp[b"4000"], by_stamp[b"5000"], by_stamp[b"6000"]
    assert first.key == b"" and tombstone.key == b"t" and empty.key == b"k"
    originals = [(n, v) for n, v in first.headers if n.startswith("citybrain.original.header.")]
    assert originals == [
        ("citybrain.original.header.n", None),
        ("citybrain.original.header.e", b""),
    ]
    assert dict(tombstone.headers).get("citybrain.original.value_null") == b""
    assert "citybrain.original.value_null" not in dict(empty.headers)

    # What `citybrain deadletters --json` shows: null as null, empty as "".
    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    docs = {
        d["original"]["timestamp"]: d
        for d in (json.loads(line) for line in capsys.readouterr().out.splitlines())
    }
    assert docs[4000]["key"] == "" and docs[5000]["key"] == "t"
    assert docs[4000]["original"]["headers"] == [
        {"name": "n", "value": None},
        {"name": "e", "value": ""},
    ]
    assert docs[5000]["value"] is None and docs[6000]["value"] == ""

    # Sent back: the same key, value and headers as the producer sent, stamped with the
    # time of sending: the worker reads a record's timestamp as the reading's arrival,
    # and the original's (seconds after the epoch here; days ago in a city) made the
    # replay's event-to-alert latency that old.
    places = [f"{m.partition}:{m.offset}" for m in (first, tombstone, empty)]
    args = ["deadletters", "--prefix", pipeline.name]
    for where in places:
        args += ["--replay", where]
    replayed_at = time.time() * 1000
    assert main(args) == EXIT_OK
    capsys.readouterr()
    again = pipeline.read("incidents", lambda m: len(m) >= 6)
    replayed = [r for r in again if any(n == "citybrain.replayed_from" for n, _ in r.headers)]
    assert len(replayed) == 3
    for record in replayed:
        [(key, value, headers, _)] = [s for s in sent if s[0] == record.key]
        assert (record.key, record.value) == (key, value)
        assert record.headers[:-1] == headers
        assert record.timestamp >= replayed_at - 1000  # now, not 4,000-6,000 ms


def test_dead_letters_of_odd_text_are_one_line_each_and_read_back_whole(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """t169: readings whose sensor ids hold an ESC sequence, U+2028, U+0085, U+202E and a
    report whose text holds a NEL (a control character, refused), sent to a worker on
    the real broker: `deadletters` shows each as one table row with its escapes, and
    `--json` as one line each however its lines are split (str.splitlines() too), whose
    key and value read back as sent. --json failed on the old code (a raw U+2028 cut a
    dead letter's line in two)."""
    from streams.events import IncidentReport, Reading

    ids = ["gauge\x1b[2J-1", "gauge\u2028-2", "gauge\u202e-3", "gauge\x85-4"]
    worker = pipeline.worker().start()
    try:
        for sensor in ids:
            reading = Reading(time.time() - 60, sensor, "water_level", 1.0, "ft", "c-bridge")
            pipeline.send("readings", sensor.encode(), reading.to_json())
        report = IncidentReport(
            time.time() - 60, "r1", "Noise", "loud\u2028party\x85now", "app", "c-top"
        )
        pipeline.send("incidents", b"c-top", report.to_json())
        pipeline.flush()
        dead = pipeline.read("deadletter", lambda m: len(m) >= 5, settle=1)
    finally:
        worker.stop()
    assert len(dead) == 5
    assert main(["deadletters", "--prefix", pipeline.name]) == EXIT_OK
    out = capsys.readouterr().out
    rows = out.split("\n")[2:-1]
    assert len(rows) == 5 and all(r.isprintable() for r in rows), out
    assert "\x1b" not in out and "\u2028" not in out and "\u202e" not in out
    assert any("gauge\\x1b[2J-1" in r for r in rows) and any("gauge\\u2028-2" in r for r in rows)
    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 5 and out.count("\n") == 5
    docs = [json.loads(line) for line in lines]
    assert sorted(d["key"] for d in docs if d["headers"]["stream"] == "readings") == sorted(ids)
    [incident] = [d for d in docs if d["headers"]["stream"] == "incidents"]
    assert json.loads(incident["value"])["text"] == "loud\u2028party\x85now"
