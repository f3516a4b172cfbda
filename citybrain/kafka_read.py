"""Reading topics with kafka-python past records it cannot decode.

kafka-python raises ``CorruptRecordError`` out of ``poll`` for a batch that fails its
CRC check and for a record it cannot parse (a header name that is not UTF-8, which the
broker accepts from other clients), and after that raise it never moves past the record:
every later poll fails again or returns nothing. Its message may not name the partition.
``poll`` here finds the partition and the unreadable range with probe consumers assigned
one partition each, warns of the range in one line, seeks past it and carries on, so one
unreadable record costs only the records kafka-python cannot read (the rest of its batch),
never the other records or partitions. Every citybrain command that reads topics with
kafka-python (``deadletters``, ``report``, ``campaign report``, the demo's summary) polls
through it. (The worker reads with aiokafka: streams/faust_patches.py handles it there.)

Nor does a read wait for ever on a broker that went away part-way: kafka-python's
``poll`` answers "no message" alike when a partition holds nothing more to read and when
the broker stopped or froze (a SIGSTOPped broker still takes TCP connections and answers
nothing): a reader counting on the end offsets it asked for first waited for ever
(``citybrain deadletters``, helper t85), and one giving up after a quiet spell returned
part of a topic as if it were all (``report``, ``campaign report``, the demo's summary).
So a quiet spell is settled by asking Kafka anew, on a fresh connection, with a bounded
wait (``kafka_answers``).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CorruptRecordError, UnsupportedCodecError

from citybrain.text import shown_lines
from streams.settings import Settings

# What kafka-python raises for bytes it cannot turn into records (a bad CRC, a record
# structure it cannot parse, a compression codec it lacks).
UNREADABLE: tuple[type[Exception], ...] = (CorruptRecordError, UnsupportedCodecError)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Offsets ``first``..``last`` (inclusive) of ``topic``/``partition`` that
    kafka-python cannot read, and its ``error`` (one line)."""

    topic: str
    partition: int
    first: int
    last: int
    error: str

    def line(self) -> str:
        """``<topic>/<partition> offsets F-L: …, skipped`` (the worker's wording)."""
        return (
            f"{self.topic}/{self.partition} offsets {self.first}-{self.last}: "
            f"records kafka-python cannot read, skipped ({self.error})"
        )


def warn_stderr(skipped: Skipped) -> None:
    """The default report of a skipped range: one ``citybrain: warning:`` line on stderr."""
    print(f"citybrain: warning: {shown_lines(skipped.line())}", file=sys.stderr, flush=True)


# Offsets of the transaction batches kafka-python passed over while reading, by topic
# and partition: each control batch (a transaction's commit or abort marker, never
# returned) and each transactional batch (the records of an aborted transaction, left out
# under read_committed), as [first, next) ranges. Filled as kafka-python decodes a
# fetch, before the record after them is returned, so a hole they leave is told from one
# a broken batch's length makes (``SafePoller._say_holes``).
_TRANSACTION_BATCHES: dict[tuple[str, int], list[tuple[int, int]]] = {}
_BATCHES_LOCK = threading.Lock()


class _NotedBatches:
    """A fetch's ``MemoryRecords`` for kafka-python's decoding, noting every transaction
    batch it hands out in ``_TRANSACTION_BATCHES``. Only ``next_batch`` is met here;
    anything else is the records' own."""

    def __init__(self, records: Any, tp: Any) -> None:
        self._records = records
        self._key = (tp.topic, tp.partition)

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._records.next_batch(*args, **kwargs)
        if (
            batch is not None
            and batch.magic == 2
            and (batch.is_control_batch or batch.is_transactional)
        ):
            with _BATCHES_LOCK:
                _TRANSACTION_BATCHES.setdefault(self._key, []).append(
                    (batch.base_offset, batch.next_offset)
                )
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


def _note_transaction_batches() -> None:
    """Have kafka-python's fetcher note the transaction batches it passes over (its
    ``Fetcher.PartitionRecords._unpack_records(self, tp, records, key_deserializer,
    value_deserializer)``, kafka-python 3.0.12, reads a fetch's batches through
    ``records.next_batch()``; tests/unit/citybrain/test_kafka_read_transactions.py pins
    it). Once per process."""
    from kafka.consumer.fetcher import Fetcher

    records_class = Fetcher.PartitionRecords
    if getattr(records_class, "_citybrain_notes_batches", False):
        return
    original = records_class._unpack_records

    def unpack(self: Any, tp: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, tp, _NotedBatches(records, tp), *args, **kwargs)

    records_class._unpack_records = unpack
    records_class._citybrain_notes_batches = True


def transaction_offsets(tp: Any, first: int, end: int) -> bool:
    """Whether every offset from ``first`` up to ``end`` (exclusive) of ``tp`` lay in a
    transaction batch kafka-python passed over (a marker, an aborted transaction's
    records); the ranges noted below ``end`` are forgotten (read past)."""
    key = (tp.topic, tp.partition)
    with _BATCHES_LOCK:
        ranges = sorted(_TRANSACTION_BATCHES.get(key, ()))
        covered = first
        for start, stop in ranges:
            if start <= covered < stop:
                covered = stop
        _TRANSACTION_BATCHES[key] = [r for r in ranges if r[1] > end]
    return covered >= end


def _one_line(exc: BaseException) -> str:
    # kafka-python's errors read "[Error 2] CorruptRecordError: what": keep "what" once.
    text = re.sub(r"^\[Error -?\d+\] ", "", " ".join(str(exc).split()))
    name = type(exc).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def _unreadable_at(probe: KafkaConsumer, tp: TopicPartition, offset: int) -> Exception | None:
    """kafka-python's ``UNREADABLE`` error reading ``tp`` from ``offset``, or None when
    it reads a record there (or nothing: no record to read is no failure)."""
    probe.assign([tp])
    probe.seek(tp, offset)
    for _ in range(3):  # a fetch that finds data answers at once; nothing, after a wait
        try:
            if probe.poll(timeout_ms=1000, max_records=1):
                return None
        except UNREADABLE as exc:
            return exc
    return None


# Milliseconds a partition's position may take: known at once after records were read
# or a seek; a question to Kafka only after an offset reset (None past the bound).
POSITION_MS = 5000


class SafePoller:
    """``poll`` of a kafka-python consumer that skips what kafka-python cannot read.

    ``fresh()`` makes a consumer of the same settings (no group, nothing committed), used
    to probe one partition at a time; ``warn`` is told of each skipped range (default: a
    warning line on stderr). ``skipped`` lists every range skipped so far."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        fresh: Callable[[], KafkaConsumer],
        warn: Callable[[Skipped], None] = warn_stderr,
    ) -> None:
        _note_transaction_batches()
        self.consumer = consumer
        self._fresh = fresh
        self._warn = warn
        self.skipped: list[Skipped] = []
        # The offset after the last record returned (or range skipped), by partition.
        self._next: dict[Any, int] = {}

    def poll(self, timeout_ms: int, **kwargs: Any) -> dict[Any, list[Any]]:
        """``consumer.poll(timeout_ms)``; on an unreadable record, the partition it is in
        is moved past it (warned of) and ``{}`` is returned: poll again. Raises the error
        only when no assigned partition is found unreadable (then it is not a record's)."""
        # Where each partition read so far stands now: a caller's seek elsewhere drops it.
        for tp, after in list(self._next.items()):
            if (
                tp not in self.consumer.assignment()
                or self.consumer.position(tp, timeout_ms=POSITION_MS) != after
            ):
                del self._next[tp]
        try:
            records = dict(self.consumer.poll(timeout_ms=timeout_ms, **kwargs))
        except UNREADABLE:
            if not self._skip_unreadable():
                raise
            return {}
        for tp, got in records.items():
            self._say_holes(tp, got)
        return records

    def _say_holes(self, tp: Any, records: list[Any]) -> None:
        """Warn of offsets passed over between the records read from ``tp``: no batch the
        broker served holds them (it skipped a batch whose framing is broken by its length,
        with the batches that length swallowed), and kafka-python passes them unsaid.
        citybrain's topics are not compacted, so each such offset held a record, but for
        the transaction batches a field producer's transactions leave (markers, an aborted
        transaction's records), which are no holes: before t170 each marker on the
        readings topic was warned of as a broken batch by ``report``."""
        expected = self._next.get(tp)
        for record in records:
            if (
                expected is not None
                and record.offset > expected
                and not transaction_offsets(tp, expected, record.offset)
            ):
                skipped = Skipped(
                    tp.topic,
                    tp.partition,
                    expected,
                    record.offset - 1,
                    "no record batch holds them: the broker skipped them, with a batch "
                    f"whose framing is broken, and served offset {record.offset} next",
                )
                self.skipped.append(skipped)
                self._warn(skipped)
            expected = record.offset + 1
        if expected is not None:
            self._next[tp] = expected

    def _skip_unreadable(self) -> bool:
        consumer = self.consumer
        tps = sorted(consumer.assignment() - consumer.paused(), key=lambda t: t.partition)
        # kafka-python returned every record before the bad one: the partition's position
        # is where it stopped. Probe each partition there, alone.
        # Bounded: a position still to be asked of Kafka (an offset reset) is None after
        # the bound, and such a partition is not probed (t92: None >= end, a TypeError).
        positions = {tp: consumer.position(tp, timeout_ms=POSITION_MS) for tp in tps}
        ends = consumer.end_offsets(tps)
        found = False
        probe = self._fresh()
        try:
            for tp in tps:
                start, end = positions[tp], ends[tp]
                if start is None:
                    continue
                error = None if start >= end else _unreadable_at(probe, tp, start)
                if error is None:
                    continue
                probe.close()
                probe = self._fresh()
                resume = self._first_readable(tp, start, end)
                skipped = Skipped(tp.topic, tp.partition, start, resume - 1, _one_line(error))
                self.skipped.append(skipped)
                self._warn(skipped)
                consumer.seek(tp, resume)
                self._next[tp] = resume
                found = True
        finally:
            probe.close()
        return found

    def _first_readable(self, tp: TopicPartition, bad: int, end: int) -> int:
        """The first offset after ``bad`` (unreadable) from which kafka-python reads
        ``tp`` again, at most ``end``: the broker answers a fetch with whole batches and
        kafka-python decodes a batch from its start, so the rest of a bad record's batch
        is unreadable too. Steps out by doubling, then bisects (a few probes per range)."""
        good, step = bad, 1
        while True:  # find an upper bound `hi` that reads (the end always does)
            hi = min(bad + step, end)
            if hi >= end or self._probe(tp, hi):
                break
            good, step = hi, step * 2
        lo = good  # unreadable; hi readable
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._probe(tp, mid):
                hi = mid
            else:
                lo = mid
        return hi

    def _probe(self, tp: TopicPartition, offset: int) -> bool:
        # A fresh consumer per probe: after the error kafka-python's fetcher keeps the
        # failed batch's state, which a probe must not inherit.
        probe = self._fresh()
        try:
            return _unreadable_at(probe, tp, offset) is None
        finally:
            probe.close()


# Seconds without a message, while partitions are left to read, before Kafka is asked
# whether it still answers (a live broker hands over what is left well within this).
IDLE_SECONDS = 3.0
# How long that question may take: a frozen broker accepts the connection, never answers.
PROBE_SECONDS = 5.0


def kafka_answers(settings: Settings, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a broker of ``settings.kafka_bootstrap`` answers a metadata request on a
    new connection within ``timeout`` seconds (False when stopped, frozen or refusing)."""
    from kafka import KafkaConsumer

    millis = max(1, int(timeout * 1000))
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=millis,
            request_timeout_ms=millis,
            **settings.kafka_python_options(),
        )
    except Exception:  # any failure to bootstrap is "does not answer"
        return False
    # Its bootstrap, bounded by the timeout, fetched the cluster's metadata: it answered.
    consumer.close()
    return True


def broker_answers(settings: Settings, timeout: float = PROBE_SECONDS) -> bool:
    """Whether the broker at ``settings.kafka_host``:``kafka_port`` answers an ApiVersions
    request (v0, which Kafka answers before any authentication) within ``timeout``
    seconds, over TLS (unverified: only liveness is asked) when the listener is SSL or
    SASL_SSL. A frozen broker takes the connection and answers nothing; a broker that
    refuses this client's credentials or protocol still answers this, so the worker's own
    start-up says what is wrong with them (``kafka_answers`` would call that silence)."""
    import socket
    import ssl
    import struct

    client_id = b"citybrain-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(
            (settings.kafka_host, settings.kafka_port), timeout=timeout
        ) as raw:
            raw.settimeout(timeout)
            sock: socket.socket = raw
            if settings.kafka_security_protocol.endswith("SSL"):
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw, server_hostname=settings.kafka_host)
            sock.sendall(struct.pack(">i", len(body)) + body)
            return len(sock.recv(4)) > 0
    except (OSError, ssl.SSLError):
        return False


# Seconds a metadata question of a CLI reader (which topics there are, a topic's
# partitions) may take. kafka-python's ``topics()``, ``partitions_for_topic()`` and the
# admin client's ``list_topics()`` take no timeout: kafka-python 3.0.12 gives up on a
# frozen broker after two request timeouts (60 s at its default) and raises an error the
# CLI called a bug; another release may wait for ever (its wait has no bound of its own).
METADATA_SECONDS = 15.0

T = TypeVar("T")


def bounded(
    settings: Settings, what: str, call: Callable[[], T], timeout: float | None = None
) -> T:
    """``call()`` (a blocking kafka-python metadata call), waited for at most ``timeout``
    seconds (default ``METADATA_SECONDS``). Returns its result or raises its exception.
    Raises ``KafkaStoppedError`` naming ``settings.kafka_bootstrap``, what was asked
    (``what``: ``listing its topics``) and what to do when it has not returned by then,
    or when kafka-python's own request timeout ends it (a frozen broker takes the
    connection and answers nothing). The call goes on in a daemon thread until
    kafka-python ends it: close the client after."""
    from kafka.errors import KafkaTimeoutError, RequestTimedOutError

    from citybrain.errors import KafkaStoppedError

    timeout = METADATA_SECONDS if timeout is None else timeout
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread, raised there
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name=f"kafka-metadata: {what}", daemon=True).start()
    unanswered = KafkaStoppedError(unanswered_message(settings, what, timeout))
    if not done.wait(timeout):
        raise unanswered
    ok, value = outcome[0]
    if ok:
        return cast(T, value)
    if isinstance(value, RequestTimedOutError | KafkaTimeoutError):
        raise unanswered from value
    raise value


def unanswered_message(settings: Settings, what: str, timeout: float) -> str:
    """The one line for a metadata question Kafka did not answer within ``timeout`` s."""
    return (
        f"Kafka at {settings.kafka_bootstrap} took the connection but did not answer "
        f"within {timeout:g} s while {what} (a broker frozen or overloaded?): "
        "`citybrain stack status` says whether the local stack's Kafka runs and answers; "
        "start it again and retry"
    )


def topics_of(consumer: KafkaConsumer, settings: Settings) -> set[str]:
    """``consumer.topics()`` within ``METADATA_SECONDS`` (``bounded``)."""
    return cast(set[str], bounded(settings, "listing its topics", consumer.topics))


def partitions_of(consumer: KafkaConsumer, settings: Settings, topic: str) -> set[int]:
    """``consumer.partitions_for_topic(topic)`` (an empty set for no such topic) within
    ``METADATA_SECONDS`` (``bounded``)."""
    found = bounded(
        settings,
        f"listing the partitions of {topic}",
        lambda: consumer.partitions_for_topic(topic),
    )
    return set(found or ())


def stopped_message(settings: Settings, what: str, left: int) -> str:
    """The one line for a read that Kafka stopped answering part-way."""
    return (
        f"Kafka at {settings.kafka_bootstrap} stopped answering while {what} "
        f"({left} partition{'s' if left != 1 else ''} not read to the end); "
        "nothing of it was shown or written: start Kafka again (`citybrain stack status` "
        "says whether it runs) and retry"
    )
