"""Topics an operator made with a smaller ``max.message.bytes`` than citybrain writes.

Every writer of the worker and the ingest bounds its messages by one figure,
``streams.events.MAX_MESSAGE_BYTES`` (1,000,000 bytes, under Kafka's default 1,048,588):
packs, dead letters (cut, ``citybrain.error.truncated``), audit records, changelog
entries. A topic created or altered to take less (``max.message.bytes=200000`` on the
dead-letter topic, to keep it small) refused what fit that bound: a bad reading of
600 kB, whose dead letter the broker refused, stopped the worker, and its replacement
read the same batch again and stopped again (a crash loop), the good readings after it
never scored. A worker refuses to start on such a topic instead (exit 2), naming the
topic, what it takes and what it must take, and the command that raises it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streams.events import Reading
from streams.partitioning import sensor_partition
from tests.integration.test_poison_pills import wait_scored
from tests.services import Pipeline, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(10)


def set_limit(p: Pipeline, role: str, limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    p.topic(role),
                    configs={"max.message.bytes": str(limit)},
                )
            ]
        )
    finally:
        admin.close()


def send_readings_around_a_bad_one(p: Pipeline) -> None:
    """20 good readings of gauge-1, 5 minutes apart, and after the sixth a bad one of
    600,000 bytes (``{`` repeated: bad_json), all on the sensor's home partition."""
    home = sensor_partition("gauge-1", p.settings.partitions)
    for i in range(20):
        reading = Reading(START + 300 * i, "gauge-1", "water_level", 10.0, "ft", "c-bridge")
        p.producer.send(
            p.topic("readings"), key=b"gauge-1", value=reading.to_json(), partition=home
        )
        if i == 5:
            p.producer.send(
                p.topic("readings"), key=b"gauge-1", value=b"{" * 600_000, partition=home
            )
    p.flush()


def test_a_worker_refuses_to_start_on_a_topic_that_takes_less_than_it_writes(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    set_limit(p, "deadletter", 200_000)
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "worker"],
        env=p.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert f"topic {p.topic('deadletter')} takes messages of at most 200,000 bytes" in out, out
    assert "the worker writes messages of up to 1,004,096 bytes to it" in out, out
    assert f"--entity-name {p.topic('deadletter')} --add-config max.message.bytes=1048588" in out
    assert "Worker ready" not in out, out[-3000:]  # refused before joining the group
    # Raised, the worker starts, and a bad reading near the old limit is dead-lettered
    # with the good ones around it scored.
    set_limit(p, "deadletter", 1_048_588)
    worker = p.worker().start()
    try:
        send_readings_around_a_bad_one(p)
        wait_scored(p, 20, "the good readings were not all scored")
        dead = p.read("deadletter", lambda m: len(m) >= 1, settle=2)
        assert [dict(m.headers)["citybrain.error.reason"] for m in dead] == [b"bad_json"]
        assert len(dead[0].value) == 600_000
        assert worker.alive(), worker.log()[-3000:]
    finally:
        worker.stop()


def test_the_http_ingest_refuses_to_start_on_a_readings_topic_that_takes_less_than_its_packs(
    pipeline: Pipeline,
) -> None:
    """Its packs of up to 1,000,000 bytes, refused by the broker, stopped the ingest (exit
    1), and the restarted ingest got them again."""
    p = pipeline
    set_limit(p, "readings", 500_000)
    proc = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "ingest", "http"],
        env=p.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "HTTP ready" not in out, out[-3000:]
    assert f"topic {p.topic('readings')} takes messages of at most 500,000 bytes" in out, out
    assert "the ingest writes messages of up to 1,004,096 bytes to it" in out, out


def test_the_http_ingest_refuses_to_start_on_a_topic_not_made_yet_the_broker_makes_too_small(
    pipeline: Pipeline,
) -> None:
    """t204: a topic not made yet was left out of the check; on a broker whose
    message.max.bytes is 500,000 the ingest started on a fresh prefix, and the broker
    made its topics to take less than its packs."""
    from tests.integration.test_replay import broker_takes_at_most

    p = pipeline
    fresh = f"{p.name}n"  # a prefix of no topics yet
    was = broker_takes_at_most(p, 500_000)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "citybrain.cli", "ingest", "http"],
            env={**p.env, "CITYBRAIN_TOPIC_PREFIX": fresh},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        broker_takes_at_most(p, was)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "HTTP ready" not in out, out[-3000:]
    assert (
        f"topic {fresh}.deadletter is not made yet, and the broker makes a topic to take "
        "messages of at most 500,000 bytes (its message.max.bytes)"
    ) in out, out
    assert "--entity-type brokers --entity-default --add-config message.max.bytes=1048588" in out


def test_a_dead_letter_refused_by_a_topic_lowered_under_the_worker_is_said_not_lost_unsaid(
    pipeline: Pipeline,
) -> None:
    """The start-up check cannot see a topic's limit lowered later: Kafka then refuses
    the dead letter, which faust only logged as ``_on_published error`` (and, at the
    worker's stop, a traceback for an exception never retrieved). Now one ERROR names the
    dead letter, the topic and what to raise; the good readings are still scored."""
    p = pipeline
    worker = p.worker().start()
    try:
        set_limit(p, "deadletter", 200_000)
        time.sleep(2)  # the broker applies a topic's config change within moments
        send_readings_around_a_bad_one(p)
        wait_scored(p, 20, "the good readings were not all scored")
        deadline = time.monotonic() + 30
        while "Kafka refused the dead letter" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        assert worker.alive(), worker.log()[-3000:]
    finally:
        worker.stop()
    log = worker.log()
    line = next(x for x in log.splitlines() if "Kafka refused the dead letter" in x)
    home = sensor_partition("gauge-1", p.settings.partitions)
    origin = f"{p.topic('readings')}/{home}/6"
    assert f"the dead letter of {origin} (bad_json, " in line, line
    assert f"on {p.topic('deadletter')}, which is lost" in line, line
    assert "MessageSizeTooLargeError" in line and "max.message.bytes" in line, line
    assert "never retrieved" not in log and "Traceback" not in log, log[-3000:]
