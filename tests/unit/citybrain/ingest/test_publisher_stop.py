"""Stopping the ingest while Kafka is down ends within the grace period (or at once on a
second signal), says how many messages Kafka never acknowledged, and leaves kafka-python
no exit-time flush to fail with a traceback (trial 3: no exit for 40 s, then
``Exception ignored in atexit callback … KafkaTimeoutError``).

A real kafka-python producer pointed at a port nothing listens on: no broker needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.future import Future

from citybrain.ingest.publisher import PackPublisher, packable
from streams.errors import EventError
from streams.events import Reading
from streams.partitioning import PackTooLargeError
from tests.unit.citybrain.test_cli_errors import _closed_port

READING = Reading(1_790_000_000.0, "gauge-1", "water_level", 2.4, "m", "c1")


@pytest.fixture
def publisher() -> Iterator[PackPublisher]:
    # make_producer's options, with the broker version given: without it kafka-python
    # asks the (absent) broker for it in the constructor.
    producer = KafkaProducer(
        bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        api_version=(3, 0),
        acks="all",
        linger_ms=2,
        max_block_ms=10_000,
        delivery_timeout_ms=24 * 3600 * 1000,
    )
    pub = PackPublisher(producer, "t.readings", "t.deadletter", 2, pack_size=10, max_pending=100)
    yield pub.start()


def test_a_stop_without_kafka_counts_what_it_drops(publisher: PackPublisher) -> None:
    acked: list[int] = []
    for _ in range(3):
        publisher.submit(READING, lambda: acked.append(1))
    undelivered = publisher.close(timeout=0.5)
    assert undelivered == 3
    assert acked == []  # never acknowledged to their senders: not silently lost
    assert publisher.producer._closed  # kafka-python 3.0.12: closed, no atexit flush left


def test_a_second_signal_gives_up_at_once(publisher: PackPublisher) -> None:
    publisher.submit(READING, lambda: None)
    give_up = threading.Event()
    give_up.set()
    started = time.monotonic()
    assert publisher.close(timeout=3600, give_up=give_up) == 1
    # Not a timing assertion on the machine's speed: the hour-long grace was not waited.
    assert time.monotonic() - started < 600


def test_a_stop_with_nothing_pending_drops_nothing(publisher: PackPublisher) -> None:
    assert publisher.close(timeout=0.5) == 0


def test_a_dead_letter_waits_for_room_at_most_its_timeout(publisher: PackPublisher) -> None:
    """The HTTP ingest dead-letters a body's bad readings; with Kafka away and the
    pending readings at --max-pending, it gets False (and answers 503) rather than
    holding its sender's connection forever."""
    for _ in range(publisher.max_pending):
        assert publisher.submit(READING, lambda: None, timeout=1.0)
    assert not publisher.dead_letter(b"{}", None, [], lambda: None, timeout=0.2)
    assert publisher.pending == publisher.max_pending  # nothing was queued for it
    publisher.close(timeout=0.5)


class StuckKafka:
    """A producer whose send() blocks, as kafka-python's does for up to max_block_ms
    (and the ingest retried) while Kafka has no metadata to give."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.sends = 0

    def send(self, *args: object, **kw: object) -> None:
        self.sends += 1
        self.released.wait()
        raise RuntimeError("stopped")


def test_a_dead_letter_does_not_hold_its_caller_while_kafka_is_away() -> None:
    """Trial 13: with Kafka stopped, a body with a bad reading held its HTTP sender far
    past the 10 s after which the ingest answers 503 (20 s and more, until Kafka came
    back): dead_letter() called send() itself and retried it. Now the flusher sends it."""
    kafka = StuckKafka()
    pub = PackPublisher(kafka, "t.readings", "t.deadletter", 2, pack_size=10, max_pending=100)
    pub.start()
    queued: list[bool] = []
    caller = threading.Thread(
        target=lambda: queued.append(pub.dead_letter(b"{}", None, [], lambda: None, 0.2))
    )
    caller.start()
    caller.join(60)  # a guard against a hang, not a measure of speed
    try:
        assert not caller.is_alive() and queued == [True]
        assert pub.pending == 1  # waiting for Kafka, not acknowledged: not lost
    finally:
        pub._abandoned = True
        kafka.released.set()
        caller.join(60)


class HeldKafka:
    """A producer that holds each send's kafka-python future for the test to settle:
    which readings a pack's acknowledgement releases is what is checked."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Future]] = []

    def send(self, topic: str, value: bytes, **kw: object) -> Future:
        future = Future()
        self.sent.append((value, future))
        return future


def test_each_pack_acknowledges_its_own_readings_when_the_byte_bound_splits_it() -> None:
    """t66 (the kind of replay-pack-too-large, at the ingest): with --pack-size 10000,
    8,000 readings of one partition went out as packs of 6,802 and 1,198 (1 MB each at
    most), but the first pack's acknowledgement released all 8,000 to their senders
    (MQTT PUBACK, HTTP 200): the second pack's readings were acked before Kafka had
    them, and lost when Kafka refused it ("a pack of 0 readings")."""
    kafka = HeldKafka()
    pub = PackPublisher(kafka, "t.readings", "t.deadletter", 1, pack_size=10_000, pack_ms=50)
    acked: list[int] = []
    for i in range(8_000):
        # A real gauge's names: ~150 bytes packed, so 8,000 pass 1 MB.
        reading = Reading(
            1.79e9 + i, "usgs-01589330-water_level", "water_level", 2.4, "ft", "md-gauge-01589330"
        )
        pub.submit(reading, lambda i=i: acked.append(i))
    pub.start()
    deadline = time.monotonic() + 60
    while len(kafka.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    first, second = (len(orjson.loads(value)["readings"]) for value, _ in kafka.sent)
    assert first + second == 8_000 and second > 0
    kafka.sent[0][1].success(None)
    assert acked == list(range(first))  # the first pack's readings only
    kafka.sent[1][1].failure(KafkaError("refused"))
    assert acked == list(range(first)) and pub.pending == second  # not acked: not lost
    assert isinstance(pub.failure, KafkaError)
    pub._abandoned = True


def test_a_reading_too_large_for_a_pack_is_refused_before_it_is_queued() -> None:
    """t198: a reading whose grid id is a megabyte (the grid takes one) passed every
    check, and the packing thread raised PackTooLargeError on it and died with a
    traceback: every later reading of the ingest waited for Kafka for ever (HTTP 503s,
    MQTT messages never acknowledged). ``packable`` refuses it as a reading's fault,
    naming the size and the limit (fails on the old code: no such check)."""
    big = Reading(1.79e9, "g" * 1_100_000, "water_level", 2.4, "ft", "c1")
    with pytest.raises(EventError) as err:
        packable(big)
    assert (err.value.code, err.value.field) == ("too_large", "sensor_id")
    assert err.value.reason.startswith("the reading is 1,100,143 bytes packed, more than one")
    assert "holds (1,000,000)" in err.value.reason
    assert packable(READING) is READING
    # One just under the bound passes: only what cannot be sent is refused.
    fits = Reading(1.79e9, "g" * 999_000, "water_level", 2.4, "ft", "c1")
    assert packable(fits) is fits


def test_a_fault_in_the_packing_thread_stops_the_ingest_instead_of_hanging_it() -> None:
    """t198: the packing thread's exception ended it unsaid but for a traceback, and
    the ingest went on taking readings nobody would send. Now the fault is the
    publisher's failure, which stops the ingest (its messages unacknowledged: the MQTT
    broker delivers them again) (fails on the old code: failure stayed None)."""
    kafka = HeldKafka()
    pub = PackPublisher(kafka, "t.readings", "t.deadletter", 1, pack_size=10, pack_ms=5)
    big = Reading(1.79e9, "g" * 1_100_000, "water_level", 2.4, "ft", "c1")
    pub.submit(big, lambda: None)  # past packable's check: a fault of the packer's own
    pub.start()
    deadline = time.monotonic() + 30
    while pub.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(pub.failure, PackTooLargeError)
    assert pub.failure_said == "the packing thread failed (a fault of the ingest's own)"
    with pytest.raises(RuntimeError, match="Kafka send failed"):
        pub.dead_letter(b"x", None, [], lambda: None)
