"""Records as the field's producers write them, on the real broker.

citybrain's own code writes with kafka-python and aiokafka, uncompressed and outside
transactions; readings and reports in a city come from Kafka Connect sources and vendors'
gateways built on Kafka's Java client or librdkafka, which compress batches (lz4, zstd,
snappy, gzip), write in transactions, and carry headers. Kafka's own Java producer
(``tests/fixtures/java/FieldProducer.java``, run on the stack's Kafka jars) writes them
here; every record must be processed or dead-lettered with its reason, costing no other.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections import Counter
from collections.abc import Sequence

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from citybrain.cli import EXIT_OK, main
from citybrain.stack.kafka import KAFKA_VERSION
from streams.events import Reading
from streams.partitioning import sensor_partition
from tests.integration.test_poison_pills import assert_committed_to_end, wait_scored
from tests.services import FIXTURES, TEST_PORTS, Pipeline, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(10)
JAVA = FIXTURES / "java" / "FieldProducer.java"


def b64(data: bytes | None) -> str:
    return "-" if data is None else base64.b64encode(data).decode()


def send_line(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    partition: int | None = None,
    timestamp_ms: int | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> str:
    """One ``send`` command of FieldProducer.java."""
    fields = [
        "send",
        topic,
        "-" if partition is None else str(partition),
        b64(key),
        b64(value),
        "-" if timestamp_ms is None else str(timestamp_ms),
        *(f"{name}={b64(data)}" for name, data in headers),
    ]
    return " ".join(fields)


def java_produce(p: Pipeline, commands: Sequence[str], **properties: str) -> None:
    """Run Kafka's Java producer with ``properties`` (dots written as ``_``) on
    ``commands``; fails with its output if it does not exit 0."""
    libs = p.settings.home / f"kafka-{KAFKA_VERSION}" / "libs"
    props = {"bootstrap.servers": p.settings.kafka_bootstrap, "acks": "all"}
    props |= {name.replace("_", "."): value for name, value in properties.items()}
    proc = subprocess.run(
        ["java", "-cp", f"{libs}/*", str(JAVA), *(f"{k}={v}" for k, v in props.items())],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"FieldProducer.java failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"


def readings(sensor: str, n: int, first: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` valid readings of ``sensor`` (a water_level gauge of the test grid), 5 min
    apart from reading ``first`` on."""
    cell = {"gauge-1": "c-bridge", "gauge-2": "c-mill"}[sensor]
    return [
        (
            sensor.encode(),
            Reading(START + 300 * i, sensor, "water_level", 10.0 + i % 3, "ft", cell).to_json(),
        )
        for i in range(first, first + n)
    ]


@pytest.mark.parametrize("codec", ["lz4", "zstd", "snappy", "gzip"])
def test_batches_compressed_by_a_field_producer_are_read(pipeline: Pipeline, codec: str) -> None:
    # aiokafka decodes lz4, zstd and snappy only with cramjam installed, which was no
    # dependency: the Java producer's compression.type=lz4 batches were UnsupportedCodecError.
    worker = pipeline.worker().start()
    try:
        topic = pipeline.topic("readings")
        sent = readings("gauge-1", 30) + readings("gauge-2", 30)
        commands = [send_line(topic, key, value) for key, value in sent]
        # And one bad message in a compressed batch: dead-lettered as any other.
        commands.append(send_line(topic, b"gauge-1", b"{not json"))
        java_produce(pipeline, commands, compression_type=codec, linger_ms="50")
        [dead] = pipeline.read("deadletter", lambda m: len(m) >= 1, timeout=120, settle=2)
        assert dead.value == b"{not json"
        assert dict(dead.headers)["citybrain.error.reason"] == b"bad_json"
        wait_scored(pipeline, len(sent), f"{codec} readings were not all scored", timeout=120)
        assert scrape_sum(pipeline.settings.worker_port, "citybrain_readings_total") == len(sent)
        assert worker.alive() and "Traceback" not in worker.log()
        assert_committed_to_end(pipeline, "readings")
    finally:
        worker.stop()


def test_records_of_an_aborted_transaction_are_not_processed(pipeline: Pipeline) -> None:
    # A gateway writing in transactions (Kafka Connect's exactly-once sources, a Java
    # client with transactional.id) aborts one: its records stay in the log, marked
    # aborted. faust's consumer reads uncommitted unless the app itself is exactly-once,
    # so the aborted readings were scored (phantom readings and alerts) and the aborted
    # bad message dead-lettered.
    worker = pipeline.worker().start()
    try:
        topic = pipeline.topic("readings")
        aborted = readings("gauge-1", 25)
        committed = readings("gauge-2", 30) + readings("gauge-1", 30, first=25)
        commands = ["begin"]
        commands += [send_line(topic, key, value) for key, value in aborted]
        commands += [send_line(topic, b"gauge-1", b"{aborted"), "abort", "begin"]
        commands += [send_line(topic, key, value) for key, value in committed]
        commands += [send_line(topic, b"gauge-2", b"{committed"), "commit"]
        java_produce(pipeline, commands, transactional_id=f"{pipeline.name}-gateway")
        dead = pipeline.read("deadletter", lambda m: len(m) >= 1, timeout=120, settle=4)
        assert [m.value for m in dead] == [b"{committed"]
        wait_scored(pipeline, len(committed), "committed readings were not all scored")
        assert scrape_sum(pipeline.settings.worker_port, "citybrain_readings_total") == len(
            committed
        )
        assert worker.alive() and "Traceback" not in worker.log()
        assert_committed_to_end(pipeline, "readings")
    finally:
        worker.stop()


def test_odd_records_of_a_field_producer_each_cost_only_themselves(pipeline: Pipeline) -> None:
    # What gateways write beside plain records: many, binary, repeated and null headers,
    # no key, an empty value, a record timestamp of 0 (a producer with no clock), and a
    # value five times the broker's message.max.bytes in an lz4 batch (the broker bounds
    # the compressed batch, not the record).
    worker = pipeline.worker().start()
    try:
        topic = pipeline.topic("readings")
        home = sensor_partition("gauge-1", pipeline.settings.partitions)
        headers: list[tuple[str, bytes | None]] = [("trace", bytes(range(256)))] * 3
        headers += [(f"h{i}", b"\x00\xff" * 8) for i in range(300)] + [("empty", None)]
        sent = readings("gauge-1", 40)
        # A spike among the readings stamped 0, so an alert is timed from one of them.
        spike = Reading(START + 300 * 25, "gauge-1", "water_level", 500.0, "ft", "c-bridge")
        sent[25] = (b"gauge-1", spike.to_json())
        commands = [send_line(topic, key, value, headers=headers) for key, value in sent[:10]]
        commands += [send_line(topic, None, value, partition=home) for _, value in sent[10:20]]
        commands += [send_line(topic, key, value, timestamp_ms=0) for key, value in sent[20:30]]
        commands += [send_line(topic, key, value) for key, value in sent[30:]]
        huge = b"{" * 5_000_000
        bad = [
            send_line(topic, b"gauge-1", b"{headers", headers=headers),
            send_line(topic, None, b"{no key", partition=home),
            send_line(topic, b"gauge-1", b""),
            send_line(topic, b"gauge-1", huge),
        ]
        commands[5:5] = bad
        java_produce(pipeline, commands, compression_type="lz4", max_request_size="8000000")
        dead = pipeline.read("deadletter", lambda m: len(m) >= 4, timeout=120, settle=4)
        said = Counter(
            (m.key, dict(m.headers)["citybrain.error.reason"], m.value[:9]) for m in dead
        )
        assert said == {
            (None, b"bad_json", b"{no key"): 1,
            (b"gauge-1", b"bad_json", b""): 1,
            (b"gauge-1", b"bad_json", b"{" * 9): 1,
            (b"gauge-1", b"bad_json", b"{headers"): 1,
        }
        [cut] = [m for m in dead if m.value.startswith(b"{{")]
        assert dict(cut.headers)["citybrain.error.truncated"] == b"5000000"
        wait_scored(pipeline, len(sent), "the readings beside them were not all scored")
        assert scrape_sum(pipeline.settings.worker_port, "citybrain_readings_total") == len(sent)
        # Timed from the batch's admission, not from 1970 (1.7e9 s).
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_event_to_alert_seconds_count") >= 1
        assert scrape_sum(port, "citybrain_event_to_alert_seconds_sum") < 86_400
        assert worker.alive() and "Traceback" not in worker.log()
        assert_committed_to_end(pipeline, "readings")
    finally:
        worker.stop()


def test_topics_the_broker_compresses_are_read_by_the_worker_and_the_tools(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An operator saving disk sets compression.type=zstd on the topics: the broker then
    # recompresses every batch, the worker's own (alerts, routed, dead letters) too, and
    # kafka-python (`citybrain deadletters`, the demo, `report`) needs zstandard to read them.
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    admin = KafkaAdminClient(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(f"{pipeline.name}.")]
        admin.alter_configs(
            [ConfigResource("TOPIC", t, {"compression.type": "zstd"}) for t in ours]
        )
    finally:
        admin.close()
    worker = pipeline.worker().start()
    try:
        sent = readings("gauge-1", 30)
        spike = Reading(START + 300 * 20, "gauge-1", "water_level", 500.0, "ft", "c-bridge")
        sent[20] = (b"gauge-1", spike.to_json())
        for key, value in sent:
            pipeline.send("readings", key, value)
        pipeline.send("readings", b"gauge-1", b"{zstd")
        pipeline.flush()
        pipeline.read("alerts", lambda m: len(m) >= 1, timeout=120)
        pipeline.read("deadletter", lambda m: len(m) >= 1, timeout=120)
        wait_scored(pipeline, len(sent), "readings on a zstd topic were not all scored")
        assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
        [letter] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert letter["value"] == "{zstd" and letter["headers"]["reason"] == "bad_json"
        assert worker.alive() and "Traceback" not in worker.log()
        assert_committed_to_end(pipeline, "readings")
    finally:
        worker.stop()


def test_topics_stamped_by_the_broker_lose_no_alert_and_name_their_time_kind(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # t183: an operator sets message.timestamp.type=LogAppendTime on every topic and
    # changelog (the broker's clock, not the producer's, stamps each record). A poison
    # among the readings is dead-lettered saying so, the spike alerts once, and a restart
    # (its state read back from changelogs the broker stamped) alerts nothing again.
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    admin = KafkaAdminClient(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(pipeline.name)]
        config = {"message.timestamp.type": "LogAppendTime"}
        admin.alter_configs([ConfigResource("TOPIC", t, config) for t in ours])
    finally:
        admin.close()
    worker = pipeline.worker().start()
    try:
        sent = readings("gauge-1", 30)
        spike = Reading(START + 300 * 20, "gauge-1", "water_level", 500.0, "ft", "c-bridge")
        sent[20] = (b"gauge-1", spike.to_json())
        topic = pipeline.topic("readings")
        for i, (key, value) in enumerate(sent):
            # Producers' own times the broker overwrites: none, the epoch, an hour ahead.
            stamp = [None, 0, 1][i % 3]
            pipeline.producer.send(topic, key=key, value=value, timestamp_ms=stamp)
            if i == 10:
                pipeline.producer.send(topic, key=key, value=b"\xef\xbb\xbf  ", timestamp_ms=0)
        pipeline.flush()
        alerts = pipeline.read("alerts", lambda m: len(m) >= 1, timeout=120, settle=3)
        [dead] = pipeline.read("deadletter", lambda m: len(m) >= 1, timeout=120, settle=2)
        wait_scored(pipeline, len(sent), "readings on a LogAppendTime topic were not all scored")
        headers = dict(dead.headers)
        assert headers["citybrain.original.timestamp_type"] == b"LogAppendTime"
        assert int(headers["citybrain.original.timestamp"]) > 1e12  # the broker's, not 0
        assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
        [letter] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert letter["headers"]["reason"] == "bad_json"
        assert "white space only" in letter["headers"]["message"]
        assert_committed_to_end(pipeline, "readings")
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
    worker = pipeline.worker().start()
    try:
        more = readings("gauge-1", 3, first=30)
        for key, value in more:
            pipeline.send("readings", key, value)
        pipeline.flush()
        wait_scored(pipeline, 3, "readings after the restart were not scored")
        again = pipeline.read("alerts", lambda m: len(m) >= len(alerts), timeout=60, settle=5)
        assert [m.value for m in again] == [m.value for m in alerts]  # nothing twice
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
