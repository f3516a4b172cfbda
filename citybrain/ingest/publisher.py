"""The ingest's only Kafka code: readings in, ``readings/1`` packs out, each sender told
when Kafka has acknowledged its reading.

``submit`` buffers a reading with a callback; a flusher thread packs the buffer every
``pack_ms`` milliseconds with ``streams.partitioning.ReadingPacker`` (one pack per sensor
partition, at most ``pack_size`` readings) and sends it with kafka-python (acks=all,
idempotent, so a partition's packs stay in order through retries). A reading's callback
runs once Kafka acknowledged its pack: the MQTT ingest acknowledges the QoS 1 message
then, the HTTP ingest answers then.

Back-pressure, never a silent drop: at most ``max_pending`` readings (and dead letters)
are waiting for Kafka; ``submit`` blocks while that many are. kafka-python retries a
send for ``delivery_timeout`` (a day by default), so a Kafka outage stalls the ingest and
fills its MQTT session queue in the broker; a send that fails for good (a record too
large, an authorisation error) stops the ingest with the error (``failure``), and the
unacknowledged messages are delivered again to its successor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from citybrain.errors import InputError
from citybrain.text import counted
from streams.errors import EventError
from streams.events import MAX_MESSAGE_BYTES, Reading, fit_dead_letter
from streams.partitioning import ReadingPacker, alone_in_pack_bytes, sensor_partition

log = logging.getLogger(__name__)

Done = Callable[[], None]


# Below this many characters of text fields a reading cannot fill a pack (a pack holds
# MAX_MESSAGE_BYTES): ``packable`` measures only readings past it, so the hot path does
# not encode each reading twice.
_SURELY_PACKABLE = 100_000


def packable(reading: Reading) -> Reading:
    """``reading``, or ``EventError`` (``too_large``, naming ``sensor_id``) when it alone
    is larger than a pack may be, so that it is refused and dead-lettered as any bad
    reading, its sender told (an HTTP answer names it). Only a grid id of about a
    megabyte makes one; before t198 it raised in the packing thread, which died with a
    traceback: every later reading waited for Kafka for ever (HTTP 503s, MQTT messages
    never acknowledged)."""
    text = len(reading.sensor_id) + len(reading.kind) + len(reading.unit)
    if text + len(reading.grid_cell) < _SURELY_PACKABLE:
        return reading
    size = alone_in_pack_bytes(reading)
    if size <= MAX_MESSAGE_BYTES:
        return reading
    raise EventError(
        "too_large",
        "sensor_id",
        reading.sensor_id,
        f"the reading is {size:,} bytes packed, more than one Kafka message of the "
        f"readings topic holds ({MAX_MESSAGE_BYTES:,}): the grid registers an id too long "
        "to be sent (its sensor id, cell, kind or unit); shorten it in the grid",
    )


@dataclass(slots=True)
class PublisherStats:
    readings: int = 0  # acknowledged by Kafka
    packs: int = 0
    dead_letters: int = 0
    max_pending: int = 0  # the high-water mark of readings waiting for Kafka


class PackPublisher:
    def __init__(
        self,
        producer: Any,
        readings_topic: str,
        deadletter_topic: str,
        partitions: int,
        pack_size: int = 1000,
        pack_ms: float = 5.0,
        max_pending: int = 50_000,
    ) -> None:
        """``producer`` is a kafka-python ``KafkaProducer`` (``make_producer``)."""
        if max_pending < pack_size:
            raise InputError(
                f"--max-pending is {max_pending}, below --pack-size {pack_size}: give at "
                "least one pack's worth"
            )
        self.producer = producer
        self.readings_topic = readings_topic
        self.deadletter_topic = deadletter_topic
        self.partitions = partitions
        self.pack_size = pack_size
        self.pack_ms = pack_ms
        self.max_pending = max_pending
        self.stats = PublisherStats()
        self.failure: BaseException | None = None
        # What ``failure`` is, for the ingest's stop line.
        self.failure_said = "Kafka refused a send"
        self._buffer: list[tuple[Reading, Done]] = []
        # Dead letters waiting for the flusher: (value, key, headers, done).
        self._dead: list[tuple[bytes, bytes | None, list[tuple[str, bytes]], Done]] = []
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._abandoned = False  # set by close(): Kafka did not answer in time
        self._thread = threading.Thread(target=self._run, name="ingest-packer", daemon=True)

    def start(self) -> PackPublisher:
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, reading: Reading, done: Done, timeout: float | None = None) -> bool:
        """Queue one reading; ``done`` runs once Kafka has it. Blocks while ``max_pending``
        readings wait (``timeout`` seconds at most: False when it ran out, nothing queued)."""
        with self._cond:
            if not self._wait_for_room(timeout):
                return False
            self._buffer.append((reading, done))
            self._pending += 1
            self.stats.max_pending = max(self.stats.max_pending, self._pending)
            if len(self._buffer) >= self.pack_size * self.partitions:
                self._cond.notify_all()
        return True

    def dead_letter(
        self,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        done: Done,
        timeout: float | None = None,
        original: Sequence[tuple[str, bytes]] = (),
    ) -> bool:
        """Send a rejected message to the dead-letter topic (the worker's header
        convention, streams/app.py); ``done`` runs once Kafka has it. A value too large
        for one Kafka message is cut (``fit_dead_letter``). Blocks while ``max_pending``
        messages wait (``timeout`` seconds at most: False when it ran out, nothing sent;
        the HTTP ingest then answers 503 rather than hold its sender forever). ``original``:
        what the sender sent beside the payload, as dead-letter headers (an MQTT 5
        message's user properties, an HTTP request's trace headers; ``carried_headers``)."""
        key, value, headers = fit_dead_letter(value, key, headers, original=original)
        with self._cond:
            if self.failure is not None:
                raise RuntimeError(f"Kafka send failed: {self.failure}") from self.failure
            if not self._wait_for_room(timeout) and timeout is not None:
                return False
            self._pending += 1
            # Sent by the flusher thread, as readings are: sent here, a Kafka without
            # metadata held the caller in send()'s retries, and an HTTP sender got no
            # 503 after ack_timeout but a connection held until Kafka came back
            # (trial 13).
            self._dead.append((value, key, headers, done))
            self._cond.notify_all()
        return True

    def close(self, timeout: float = 30.0, give_up: threading.Event | None = None) -> int:
        """Send what is buffered and wait for Kafka to acknowledge every reading and dead
        letter: at most ``timeout`` seconds, less once ``give_up`` is set (a second
        Ctrl-C). Then stop the producer, dropping what Kafka has not acknowledged, and
        return how many readings and dead letters that was (0: everything delivered).
        Their senders were never acknowledged (MQTT delivers them again to the next
        ingest; an HTTP sender got no 2xx). Never raises for a Kafka that does not answer,
        and leaves kafka-python no exit-time flush to fail with a traceback."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending and self.failure is None and time.monotonic() < deadline:
                if give_up is not None and give_up.is_set():
                    break
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            undelivered = self._pending
            if undelivered:
                self._abandoned = True  # the flusher stops retrying; errbacks stay quiet
        if undelivered:
            abandon_sends(self.producer)
        self._thread.join(1.0)
        try:
            # What Kafka acknowledged is done; what it did not was aborted above.
            self.producer.close(timeout=1.0)
        except Exception as exc:  # a flush that could not finish: nothing more to lose
            log.debug("ingest: closing the Kafka producer: %r", exc)
        return undelivered

    # -- the flusher thread --------------------------------------------------------
    def _wait_for_room(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending >= self.max_pending:
            if self._abandoned:  # stopping without Kafka: the sender is not acknowledged
                return False
            if self.failure is not None:
                raise RuntimeError(f"Kafka send failed: {self.failure}") from self.failure
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._cond.wait(left if left is not None else 1.0)
        return True

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            # A fault of ours here left every later reading waiting for Kafka for ever
            # (t198: a reading too large for a pack killed the thread, the ingest went on
            # answering 503s): it stops the ingest instead, its messages unacknowledged.
            log.error("ingest: the packing thread failed: %r", exc)
            with self._cond:
                if self.failure is None:
                    self.failure = exc
                    self.failure_said = "the packing thread failed (a fault of the ingest's own)"
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._closing and not self._dead:
                    self._cond.wait(self.pack_ms / 1000)
                batch, self._buffer = self._buffer, []
                dead, self._dead = self._dead, []
                closing = self._closing
            if dead:
                self._send_dead(dead)
            if batch:
                self._send(batch)
            if closing and not batch and not dead:
                return

    def _queue(
        self,
        what: str,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Queue one message on the producer, retrying in place (in order) every 0.5 s
        while it refuses (``KafkaTimeoutError``: no metadata, a full buffer); its future,
        or None once ``close()`` has abandoned the sends."""
        while True:
            try:
                return self.producer.send(
                    topic, key=key, value=value, partition=partition, headers=headers
                )
            except Exception as exc:  # KafkaTimeoutError: metadata, full buffer
                if self._abandoned:
                    return None
                log.warning("Kafka %s not queued (%s); retrying", what, exc)
                time.sleep(0.5)

    def _send_dead(
        self, dead: list[tuple[bytes, bytes | None, list[tuple[str, bytes]], Done]]
    ) -> None:
        for value, key, headers, done in dead:
            future = self._queue("dead letter", self.deadletter_topic, key, value, headers=headers)
            if future is None:
                return  # close() counts these as undelivered: still pending
            future.add_callback(self._acked, [done], dead_letter=True)
            future.add_errback(self._failed, "dead letter")

    def _send(self, batch: list[tuple[Reading, Done]]) -> None:
        by_partition: dict[int, list[tuple[Reading, Done]]] = {}
        packer = ReadingPacker(self.partitions, self.pack_size)
        for item in batch:
            home = sensor_partition(item[0].sensor_id, self.partitions)
            by_partition.setdefault(home, []).append(item)
        for items in by_partition.values():
            # One partition's readings, in arrival order: each pack holds the next
            # `count` of them, `pack_size` or fewer (the byte bound closes a pack first).
            packs = list(packer.pack_counted(r for r, _ in items))
            start = 0
            for partition, key, value, count in packs:
                chunk, start = items[start : start + count], start + count
                future = self._queue("send", self.readings_topic, key, value, partition=partition)
                if future is None:
                    return  # close() counts these as undelivered
                future.add_callback(self._acked, [done for _, done in chunk])
                future.add_errback(self._failed, f"pack of {counted(len(chunk), 'reading')}")

    def _acked(self, dones: list[Done], _metadata: Any, dead_letter: bool = False) -> None:
        # kafka-python calls partial(callback, *args)(value): our arguments come first.
        for done in dones:
            try:
                done()
            except Exception:
                log.exception("ingest: acknowledging a message failed")
        with self._cond:
            self._pending -= len(dones)
            if dead_letter:
                self.stats.dead_letters += 1
            else:
                self.stats.readings += len(dones)
                self.stats.packs += 1
            self._cond.notify_all()

    def _failed(self, what: str, exc: BaseException) -> None:
        # Not acknowledged, so the MQTT broker still holds the messages: stop and let the
        # next ingest receive them again, rather than carry on past a hole.
        if self._abandoned:
            return  # close() aborted it and counts it as undelivered
        log.error("ingest: Kafka refused a %s for good: %r", what, exc)
        with self._cond:
            if self.failure is None:
                self.failure = exc
            self._cond.notify_all()


def abandon_sends(producer: Any) -> None:
    """Make kafka-python drop the records Kafka has not acknowledged, so that closing the
    producer returns at once instead of its exit-time flush failing with a traceback
    (``Exception ignored in atexit callback … KafkaTimeoutError``). kafka-python 3.0.12
    has no public way: ``KafkaProducer._sender`` (the I/O thread) and its
    ``force_close()``, which aborts every incomplete batch (their futures fail). Checked
    by tests/unit/citybrain/ingest/test_publisher_stop.py."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()


def make_producer(bootstrap: str, options: dict[str, Any], client_id: str) -> Any:
    """A kafka-python producer for the ingest: every replica's acknowledgement, idempotent
    (in-order retries), retrying for a day before it gives up on a record."""
    from kafka import KafkaProducer

    return KafkaProducer(
        **options,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        delivery_timeout_ms=24 * 3600 * 1000,
        max_block_ms=10_000,
    )
