"""What field producers put on Kafka around or instead of a JSON document, on the real
broker (t170): each bad record between good ones in one compressed producer batch,
on the readings, incidents and commands topics. The good ones are processed and alerted
on once, each bad one is dead-lettered once naming what it is (never "invalid JSON"
alone), the offsets are committed to the end, and a restart repeats nothing."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import KafkaProducer

from citybrain.cli import EXIT_OK, main
from citybrain.demo import read_topic
from streams.events import IncidentReport, Reading
from streams.partitioning import sensor_partition
from tests.integration.test_field_producers import START, readings
from tests.integration.test_poison_pills import assert_committed_to_end, wait_scored
from tests.services import TEST_PORTS, Pipeline, scrape_sum

pytestmark = pytest.mark.integration

CLOUDEVENT = {"specversion": "1.0", "id": "e-1", "source": "/gw/7", "type": "city.reading"}
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def wrappings(doc: bytes) -> list[tuple[Record, str]]:
    """Another system's wrappings of ``doc`` (a document of ours), each with what its
    dead letter's message must say."""
    parsed = json.loads(doc)
    schema = {"type": "struct", "fields": [], "optional": False}
    return [
        (
            (b"k", b"\x00\x00\x00\x00\x07" + doc, []),
            "Confluent Schema Registry wire format (magic byte 0, schema id 7, then JSON",
        ),
        (
            (b"k", b"\x00\x00\x00\x01\x00\x0egauge-1\x00\x00\x00\x00\x00\x00$@", []),
            "schema id 256, then Avro or Protobuf bytes",
        ),
        (
            (b"k", json.dumps({"schema": schema, "payload": parsed}).encode(), []),
            "a Kafka Connect JsonConverter envelope",
        ),
        (
            (b"k", json.dumps({**CLOUDEVENT, "data": parsed}).encode(), []),
            "a CloudEvents event in structured mode (specversion '1.0'",
        ),
        (
            (
                b"k",
                json.dumps({"station": "x", "v": 2}).encode(),
                [("ce_specversion", b"1.0"), ("ce_type", b"city.v2"), ("ce_source", b"/gw")],
            ),
            "CloudEvents event in binary mode (ce_type 'city.v2', ce_source '/gw')",
        ),
        ((b"k", json.dumps(doc.decode()).encode(), []), "JSON text in a JSON string"),
        ((b"k", b"\x82\xa6schema\xa9reading/1\xa1v\x02", []), "MessagePack data"),
        ((b"k", b"\xbfeschemaireading/1\xff", []), "CBOR data"),
    ]


def produce(p: Pipeline, topic: str, records: Sequence[Record], codec: str) -> None:
    """``records`` in one flush of one producer compressing its batches with ``codec``
    (one batch per partition: linger long enough to gather them)."""
    producer = KafkaProducer(
        bootstrap_servers=p.settings.kafka_bootstrap, compression_type=codec, linger_ms=200
    )
    try:
        for key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
    finally:
        producer.close()


def said_once(dead: list[Any], expected: list[str]) -> None:
    """Each of ``expected`` is said by exactly one of the dead letters ``dead``."""
    messages = [dict(m.headers)["citybrain.error.message"].decode() for m in dead]
    for text in expected:
        assert sum(text in m for m in messages) == 1, (text, messages)
    assert not any(m.strip() in ("bad JSON", "invalid JSON") for m in messages)


def test_wrapped_documents_between_good_ones_cost_only_themselves_named(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker().start()
    try:
        good = readings("gauge-1", 40)
        spike = Reading(START + 300 * 30, "gauge-1", "water_level", 500.0, "ft", "c-bridge")
        good[30] = (b"gauge-1", spike.to_json())
        bad = wrappings(good[0][1])
        records: list[Record] = [(k, v, []) for k, v in good[:20]]
        records += [(b"gauge-1", value, headers) for (_, value, headers), _ in bad]
        records += [(k, v, []) for k, v in good[20:]]
        produce(pipeline, pipeline.topic("readings"), records, "lz4")
        report = IncidentReport(START, "r-1", "noise", "loud", "app", "c-bridge").to_json()
        incident_bad = wrappings(report)
        produce(
            pipeline,
            pipeline.topic("incidents"),
            [(b"c-bridge", report, [])]
            + [(b"c-bridge", value, headers) for (_, value, headers), _ in incident_bad],
            "zstd",
        )
        command = json.dumps({"id": "c-1", "run_id": "grp-x.0", "action": "ack"}).encode()
        command_bad = wrappings(command)
        produce(
            pipeline,
            pipeline.topic("commands"),
            [(b"grp-x", value, headers) for (_, value, headers), _ in command_bad],
            "snappy",
        )
        total = len(bad) + len(incident_bad) + len(command_bad)
        dead = pipeline.read("deadletter", lambda m: len(m) >= total, timeout=120, settle=4)
        assert len(dead) == total
        by_stream: dict[str, list[Any]] = {}
        for m in dead:
            by_stream.setdefault(dict(m.headers)["citybrain.error.stream"].decode(), []).append(m)
        said_once(by_stream["readings"], [text for _, text in bad])
        said_once(by_stream["incidents"], [text for _, text in incident_bad])
        said_once(by_stream["commands"], [text for _, text in command_bad])
        wait_scored(pipeline, len(good), "the readings beside the wrapped ones")
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_readings_total") == len(good)
        deadline = time.monotonic() + 60
        while scrape_sum(port, "citybrain_incidents_total") < 1:
            assert time.monotonic() < deadline, "the report beside the wrapped ones"
            time.sleep(0.5)
        # The spike fires once and resolves once (the quiet readings after it).
        alerts = pipeline.read("alerts", lambda m: len(m) >= 2, timeout=120, settle=2)
        assert sorted(json.loads(m.value)["status"] for m in alerts) == ["firing", "resolved"]
        for role in ("readings", "incidents", "commands"):
            assert_committed_to_end(pipeline, role)
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
    # A restart reads nothing again: no second dead letter, no second alert.
    worker = pipeline.worker().start()
    try:
        time.sleep(5)
        assert len(pipeline.read("deadletter", lambda m: len(m) >= total, settle=3)) == total
        assert len(pipeline.read("alerts", lambda m: len(m) >= 2, settle=1)) == 2
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()


def test_the_tools_read_committed_records_and_pass_transaction_markers_unsaid(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A gateway writing in transactions: kafka-python (report, campaign report, the demo's
    # summary, deadletters) read uncommitted, so an aborted transaction's readings were
    # events the worker never took (it reads committed), and each transaction's marker,
    # an offset no record is returned at, was warned of as a batch whose framing is broken.
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    producer = KafkaProducer(
        bootstrap_servers=pipeline.settings.kafka_bootstrap,
        transactional_id=f"{pipeline.name}-gateway",
    )
    topic, dead_topic = pipeline.topic("readings"), pipeline.topic("deadletter")
    try:
        producer.init_transactions()
        for outcome, sent in (("abort", 4), ("commit", 3), ("commit", 2), ("abort", 5)):
            producer.begin_transaction()
            for key, value in readings("gauge-1", sent):
                producer.send(topic, key=key, value=value)
            producer.send(dead_topic, key=b"k", value=f"{outcome}-{sent}".encode())
            producer.flush()
            if outcome == "abort":
                producer.abort_transaction()
            else:
                producer.commit_transaction()
    finally:
        producer.close()
    read = read_topic(pipeline.settings, topic)
    assert len(read) == 5  # the committed 3 + 2, not the aborted 4 and 5
    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert [json.loads(line)["value"] for line in out.splitlines()] == ["commit-3", "commit-2"]
    assert "warning" not in err  # (read_topic's and deadletters' alike)


def test_a_reading_placed_by_another_partitioner_or_key_is_said_so(pipeline: Pipeline) -> None:
    # librdkafka's default partitioner (consistent_random: CRC32 of the key; the
    # confluent-kafka clients, kcat) places a sensor's key on another partition than
    # Kafka's Java client (murmur2) for about half the sensors: every reading of gauge-2
    # came to partition 1, its home 0, refused wrong_partition naming neither the key
    # nor the setting. Beside it: no key, and a key naming another sensor.
    from confluent_kafka import Producer

    assert sensor_partition("gauge-2", 2) == 0 and zlib.crc32(b"gauge-2") % 2 == 1
    worker = pipeline.worker().start()
    try:
        topic = pipeline.topic("readings")
        rdkafka = Producer({"bootstrap.servers": pipeline.settings.kafka_bootstrap})
        for key, value in readings("gauge-2", 3):
            rdkafka.produce(topic, key=key, value=value)
        assert rdkafka.flush(30) == 0
        fixed = Producer(
            {
                "bootstrap.servers": pipeline.settings.kafka_bootstrap,
                "partitioner": "murmur2_random",
            }
        )
        for key, value in readings("gauge-2", 20, first=3):
            fixed.produce(topic, key=key, value=value)
        assert fixed.flush(30) == 0
        del rdkafka, fixed  # (their threads would reconnect to a stack stopped after the test)
        [(_, stray)] = readings("gauge-2", 1, first=23)
        pipeline.producer.send(topic, key=None, value=stray, partition=1)
        [(_, other)] = readings("gauge-2", 1, first=24)
        pipeline.producer.send(topic, key=b"gauge-1", value=other)  # gauge-1's partition, 1
        pipeline.flush()
        dead = pipeline.read("deadletter", lambda m: len(m) >= 5, timeout=120, settle=3)
        said = [dict(m.headers)["citybrain.error.message"].decode() for m in dead]
        assert len(said) == 5
        assert all("belong on partition 0, this message is on 1" in m for m in said)
        crc32 = [m for m in said if "librdkafka's default partitioner consistent_random" in m]
        assert len(crc32) == 3 and all("partitioner=murmur2_random" in m for m in crc32)
        assert sum("it has no key, so its producer chose the partition" in m for m in said) == 1
        assert sum("its key is 'gauge-1', not 'gauge-2'" in m for m in said) == 1
        wait_scored(pipeline, 20, "the readings placed by murmur2")
        assert_committed_to_end(pipeline, "readings")
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
