"""`citybrain deadletters`: what the dead-letter topic holds, for an operator.

``<prefix>.deadletter`` holds every refused message (docs/events.md): its original bytes
as the value, why in the ``citybrain.error.*`` headers. This module reads the latest of
them (and, following, the new ones) and shows each as a table row or a JSON line. The
pure part (``DeadLetter``, ``rows``, ``json_line``) needs no broker; ``read_latest`` and
``follow`` are the only Kafka code (kafka-python, as the demo's and report's readers).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from citybrain.text import cell, display_width, pad
from streams.errors import escaped_json
from streams.events import ORIGINAL_HEADER_PREFIX, ORIGINAL_PREFIX
from streams.settings import Settings

HEADER_PREFIX = "citybrain.error."
# The headers every dead letter carries, then the ones only a cut dead letter has.
HEADERS = ("stream", "reason", "message", "origin", "truncated", "key_truncated")
# AT: the dead letter's own PARTITION:OFFSET, which --replay takes (t151: the table showed
# only the original's, ORIGIN, and --replay of that offset named another dead letter or
# none; the dead letter's own was in --json alone).
COLUMNS = ("AT", "TIME", "STREAM", "REASON", "KEY", "ORIGIN", "MESSAGE")
# A table cell's longest (the whole text is in --json): a key or an origin past this is
# cut in the middle, a message at the end.
MAX_CELL = 60
MAX_MESSAGE = 200
# A follow with no new dead letter for this long asks whether Kafka still answers.
QUIET_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as read back: where it sits, when Kafka took it (epoch seconds),
    its key and value (bytes) and its ``citybrain.error.*`` headers by short name
    (``reason``, ``message``, ...; text, a byte that is not UTF-8 escaped)."""

    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    # What the original record held besides its value (``citybrain.original.*``, in
    # order, bytes as sent, a null header value as None): timestamp and type, key,
    # whether it was a tombstone, and its own headers.
    original: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def of(cls, message: Any) -> DeadLetter:
        """From a kafka-python ``ConsumerRecord``."""
        headers = {
            name.removeprefix(HEADER_PREFIX): raw.decode("utf-8", "backslashreplace")
            for name, raw in (message.headers or [])
            if name.startswith(HEADER_PREFIX) and raw is not None
        }
        original = tuple(
            (name, raw)  # a null header value stays None: Kafka tells it from an empty one
            for name, raw in (message.headers or [])
            if name.startswith(ORIGINAL_PREFIX)
        )
        return cls(
            message.partition,
            message.offset,
            message.timestamp / 1000,
            message.key,
            message.value or b"",
            headers,
            original,
        )

    def original_headers(self) -> list[tuple[str, bytes | None]]:
        """The original record's headers, in order, as its producer sent them (a null
        value as None)."""
        return [
            (name.removeprefix(ORIGINAL_HEADER_PREFIX), raw)
            for name, raw in self.original
            if name.startswith(ORIGINAL_HEADER_PREFIX)
        ]

    def original_field(self, name: str) -> bytes | None:
        """One of ``citybrain.original.<name>`` (``timestamp``, ``timestamp_type``,
        ``key``, ``key_null``, ``value_null``), or None."""
        for header, raw in self.original:
            if header == ORIGINAL_PREFIX + name:
                return raw or b""
        return None

    @property
    def tombstone(self) -> bool:
        """Whether the original's value was null (its dead letter's value is empty)."""
        return self.original_field("value_null") is not None


def _text(raw: bytes | None) -> str:
    """Bytes as text for a person: UTF-8 as it is, any other byte escaped (``\\xff``)."""
    return "" if raw is None else raw.decode("utf-8", "backslashreplace")


def _middle(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters (both ends of an id or an
    origin tell more than either alone)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def row(letter: DeadLetter) -> tuple[str, ...]:
    """One dead letter as the table's cells (COLUMNS): its PARTITION:OFFSET (what
    ``--replay`` takes), the time in local time, the
    headers, the key (``-`` for none, ``""`` for an empty one); a cell's control
    characters escaped."""
    try:
        when = datetime.fromtimestamp(letter.timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        when = _not_a_date(letter)
    # Control characters escaped first, so a cut counts what is shown.
    message = cell(letter.headers.get("message", ""))
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    if "truncated" in letter.headers:  # said whole: the value is not all there
        message += f" (cut: the original was {cell(letter.headers['truncated'])[:20]} bytes)"
    if "key_truncated" in letter.headers:  # the key is not all there either
        message += f" (key cut: it was {cell(letter.headers['key_truncated'])[:20]} bytes)"
    return (
        f"{letter.partition}:{letter.offset}",
        when,
        cell(letter.headers.get("stream", "-")),
        cell(letter.headers.get("reason", "-")),
        # No key is "-", an empty one '""': Kafka tells them apart, and so does --replay.
        '""' if letter.key == b"" else _middle(cell(_text(letter.key)), MAX_CELL) or "-",
        _middle(cell(letter.headers.get("origin", "-")), MAX_CELL),
        message,
    )


def _not_a_date(letter: DeadLetter) -> str:
    """The Kafka timestamp of a dead letter no date can show, as it is: a producer sets
    its own (the year 10000 is 253402300800000 ms), and one such record on the topic
    ended every listing in "unexpected ValueError" (exit 70; helper t52)."""
    return f"{letter.timestamp * 1000:.0f} ms (not a date)"


def widths(rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column's width in terminal columns, the header's included."""
    return [max(display_width(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]


def table_line(cells: Sequence[str], columns: Sequence[int]) -> str:
    """One table line, each cell padded to its column (the last one never)."""
    return "  ".join(pad(c, w) for c, w in zip(cells, columns, strict=True)).rstrip()


def _bytes_field(name: str, raw: bytes | None) -> dict[str, str | None]:
    """``{name: text}`` when ``raw`` is UTF-8, else ``{name_base64: ...}``; ``{name:
    None}`` for a null one."""
    if raw is None:
        return {name: None}
    try:
        return {name: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(raw).decode("ascii")}


def original_doc(letter: DeadLetter) -> dict[str, Any]:
    """What the original record held besides its value, for ``--json``: ``timestamp``
    (epoch ms) and ``timestamp_type`` when known, ``key`` (or ``key_base64``; null for
    none) when the dead letter is keyed otherwise, and ``headers``: a list of
    ``{"name", "value"}`` (``value_base64`` when not UTF-8, null when null), in order,
    repeats kept."""
    doc: dict[str, Any] = {}
    stamp = letter.original_field("timestamp")
    if stamp is not None and stamp.isdigit():
        doc["timestamp"] = int(stamp)
    kind = letter.original_field("timestamp_type")
    if kind is not None:
        doc["timestamp_type"] = _text(kind)
    if letter.original_field("key_null") is not None:
        doc["key"] = None
    elif (key := letter.original_field("key")) is not None:
        doc.update(_bytes_field("key", key))
    doc["headers"] = [
        {"name": name, **_bytes_field("value", raw)} for name, raw in letter.original_headers()
    ]
    return doc


def json_line(letter: DeadLetter, topic: str) -> str:
    """One dead letter as one JSON object on one line: ``topic``, ``partition``,
    ``offset``, ``time`` (ISO 8601 UTC, when Kafka took it), ``key``, the ``headers``
    (short names), the ``original`` record's timestamp, key and headers
    (``original_doc``) and the value as ``value`` (text) when it is UTF-8, null for a
    tombstone's, else as ``value_base64``."""
    try:
        time_text = (
            datetime.fromtimestamp(letter.timestamp, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    except (ValueError, OverflowError, OSError):
        time_text = _not_a_date(letter)
    doc: dict[str, Any] = {
        "topic": topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "time": time_text,
        "key": _text(letter.key) if letter.key is not None else None,
        "headers": letter.headers,
        "original": original_doc(letter),
    }
    if letter.tombstone:
        doc["value"] = None
    else:
        try:
            doc["value"] = letter.value.decode("utf-8")
        except UnicodeDecodeError:
            doc["value_base64"] = base64.b64encode(letter.value).decode("ascii")
    # The same JSON with what is not printable written as its \u escape: a value's raw
    # U+2028 or U+0085 cut the line for a reader splitting with str.splitlines(), and a
    # U+202E or a C1 control (U+009B, the 8-bit CSI) reached the terminal raw (t169).
    return escaped_json(json.dumps(doc, ensure_ascii=False))


def _consumer(settings: Settings) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
        **settings.kafka_reader_options(),
    )


def dead_letter_topics(settings: Settings) -> list[str]:
    """Every ``*.deadletter`` topic on the broker, sorted."""
    from citybrain.kafka_read import topics_of

    consumer = _consumer(settings)
    try:
        return sorted(t for t in topics_of(consumer, settings) if t.endswith(".deadletter"))
    finally:
        consumer.close()


# The topics a dead letter may be replayed to: those of the prefix the worker reads.
REPLAY_ROLES = ("readings", "incidents", "alerts", "routed", "commands", "corroboration")
# The header a replayed record gains: which dead letter it was (its topic/partition/offset),
# so a record refused again can be traced back to its first refusal.
REPLAYED_FROM = "citybrain.replayed_from"


class NotReplayable(ValueError):
    """A dead letter that cannot be sent back as its producer sent it: the message says
    why and what to do instead."""


@dataclass(frozen=True, slots=True)
class Replay:
    """A dead letter's original record, to be sent back: ``topic`` (the one it came
    from), ``key``, ``value`` (bytes as sent; None for a tombstone), ``headers`` (the
    original's, in order, a null value as None, then ``REPLAYED_FROM``). Its timestamp is
    the time of sending, not the original's: the worker reads a record's timestamp as the
    reading's arrival (``citybrain_event_to_alert_seconds``), and a replay arrives now; the
    original's time stays in the dead letter (``citybrain.original.timestamp``)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def replay_of(letter: DeadLetter, topic: str, allowed: Sequence[str]) -> Replay:
    """The record ``letter`` (of the dead-letter ``topic``) came as, to send back to its
    origin topic, which must be one of ``allowed``. Raises ``NotReplayable`` for one whose
    original is not whole (cut value, key or headers; an unreadable batch's, which has
    none) or came from no Kafka topic (the MQTT or HTTP ingest's: send it there again)."""
    where = f"{topic}/{letter.partition}/{letter.offset}"
    origin = letter.headers.get("origin", "")
    reason = letter.headers.get("reason", "")
    if reason == "unreadable_batch":
        raise NotReplayable(f"{where}: an unreadable batch's dead letter holds no record")
    for cut in ("truncated", "key_truncated", "headers_truncated"):
        if cut in letter.headers:
            raise NotReplayable(
                f"{where}: the original was cut ({cut.replace('_', ' ')}: "
                f"{letter.headers[cut]}); only a whole one can be sent back"
            )
    if origin.startswith(("mqtt:", "http:")):
        raise NotReplayable(
            f"{where}: it came from the {origin.split(':', 1)[0].upper()} ingest "
            f"({origin}), not from a Kafka topic: send it to the ingest again"
        )
    # topic/partition/offset[#index]: a Kafka topic's name holds no "/".
    parts = origin.rsplit("/", 2)
    target = parts[0] if len(parts) == 3 else ""
    if target not in allowed:
        raise NotReplayable(
            f"{where}: its origin {origin!r} is no topic of this prefix ({', '.join(allowed)})"
        )
    key = letter.key
    if "#" not in origin:  # one reading of a pack keeps its sensor's key, not the pack's
        if letter.original_field("key_null") is not None:
            key = None
        elif (original_key := letter.original_field("key")) is not None:
            key = original_key
    headers = [*letter.original_headers(), (REPLAYED_FROM, where.encode())]
    value = None if letter.tombstone else letter.value
    if value is None and key is None:
        # Kafka takes one (a Java producer's), but no Python client sends it.
        raise NotReplayable(f"{where}: a tombstone without a key cannot be sent back")
    return Replay(target, key, value, headers)


class Reader:
    """A reader of one dead-letter topic, every partition assigned (no consumer group:
    nothing is committed, other readers are not disturbed). Close it (``with``)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from kafka import TopicPartition

        from citybrain.kafka_read import SafePoller, partitions_of

        self.settings = settings
        self.topic = topic
        self.consumer = _consumer(settings)
        try:
            partitions = partitions_of(self.consumer, settings, topic)
        except BaseException:
            self.consumer.close()
            raise
        self.assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.assigned)
        # Polls past records kafka-python cannot decode, with a warning line for each range.
        self.poller = SafePoller(self.consumer, lambda: _consumer(settings))

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.close()

    def latest(self, limit: int) -> list[DeadLetter]:
        """The latest ``limit`` dead letters (each partition's last ``limit``, merged by
        the time Kafka took them, the newest last); the reader then stands after them.
        Raises ``KafkaStoppedError`` when Kafka stops answering before every partition
        was read to the end it had when asked (it waited for ever: helper t85)."""
        from citybrain.errors import KafkaStoppedError
        from citybrain.kafka_read import IDLE_SECONDS, kafka_answers, stopped_message

        ends = self.consumer.end_offsets(self.assigned)
        starts = self.consumer.beginning_offsets(self.assigned)
        for tp in self.assigned:
            self.consumer.seek(tp, max(starts[tp], ends[tp] - limit))
        found: list[DeadLetter] = []
        left = {tp: ends[tp] for tp in self.assigned if ends[tp] > starts[tp]}
        quiet_until = time.monotonic() + IDLE_SECONDS
        while left:
            for tp, messages in self.poller.poll(timeout_ms=1000).items():
                end = left.get(tp)
                if end is None:
                    continue
                found.extend(DeadLetter.of(m) for m in messages if m.offset < end)
                if messages:
                    quiet_until = time.monotonic() + IDLE_SECONDS
            # By position, not the last message: a skipped unreadable range, or a partition
            # ending in transaction markers, has no message at its last offsets.
            for tp in list(left):
                position = self.consumer.position(tp, timeout_ms=1000)
                if position is not None and position >= left[tp]:
                    del left[tp]
            if left and time.monotonic() > quiet_until:
                if not kafka_answers(self.settings):
                    raise KafkaStoppedError(
                        stopped_message(
                            self.settings,
                            f"reading the latest dead letters of {self.topic}",
                            len(left),
                        )
                    )
                break  # it answers and has nothing more: markers or deleted records
        # Polled past an end (a dead letter that came meanwhile): the follow starts there.
        for tp in self.assigned:
            self.consumer.seek(tp, ends[tp])
        found.sort(key=lambda d: (d.timestamp, d.partition, d.offset))
        return found[-limit:]

    def missing(self, partition: int, offset: int) -> str:
        """Why ``at`` found no dead letter at ``partition``/``offset``, for the refusal:
        a partition the topic does not have (naming those it has), an offset outside the
        partition's (naming its range, or that it holds none), else a place Kafka skips
        (compacted away, a transaction's marker, an unreadable range). t147: ``--replay
        5:1`` on a topic of 2 partitions said only "no dead letter there"."""
        from kafka import TopicPartition

        tp = TopicPartition(self.topic, partition)
        if tp not in self.assigned:
            has = ", ".join(str(t.partition) for t in self.assigned)
            return f"no dead letter there: the topic has no partition {partition} (it has {has})"
        start = self.consumer.beginning_offsets([tp])[tp]
        end = self.consumer.end_offsets([tp])[tp]
        if start >= end:
            return f"no dead letter there: partition {partition} holds none"
        if not start <= offset < end:
            return (
                f"no dead letter there: partition {partition} holds offsets {start} to "
                f"{end - 1} (as --json shows them)"
            )
        return "no dead letter there (a place Kafka skips: compacted, or not a record)"

    def at(self, partition: int, offset: int) -> DeadLetter | None:
        """The dead letter at ``partition``/``offset``, or None when there is none.
        Raises ``KafkaStoppedError`` when Kafka stops answering before it came (it
        polled for ever: t92)."""
        from kafka import TopicPartition

        from citybrain.errors import KafkaStoppedError
        from citybrain.kafka_read import IDLE_SECONDS, kafka_answers, stopped_message

        tp = next((t for t in self.assigned if t.partition == partition), None)
        if tp is None:
            return None
        starts = self.consumer.beginning_offsets([tp])
        ends = self.consumer.end_offsets([tp])
        if not starts[tp] <= offset < ends[tp]:
            return None
        self.consumer.seek(TopicPartition(tp.topic, partition), offset)
        quiet_until = time.monotonic() + IDLE_SECONDS
        while True:
            for messages in self.poller.poll(timeout_ms=1000).values():
                for message in messages:
                    if message.offset == offset:
                        return DeadLetter.of(message)
                    if message.offset > offset:  # compacted or a transaction's marker
                        return None
            position = self.consumer.position(tp, timeout_ms=1000)
            if position is not None and position > offset:  # in a skipped unreadable range
                return None
            if time.monotonic() > quiet_until:
                # Below its end offset the record is there to fetch: nothing for this
                # long is a Kafka that stopped answering, or a slow one (asked again).
                if not kafka_answers(self.settings):
                    raise KafkaStoppedError(
                        stopped_message(
                            self.settings,
                            f"reading the dead letter at {tp.topic}/{partition}/{offset}",
                            1,
                        )
                    )
                quiet_until = time.monotonic() + IDLE_SECONDS

    def new(
        self,
        until: Callable[[], bool] = lambda: False,
        notice: Callable[[str], None] = lambda line: None,
    ) -> Iterator[DeadLetter]:
        """Dead letters as they arrive, each partition's in order, until ``until()``.
        Kafka going quiet is normal here, so each quiet spell of ``QUIET_SECONDS`` asks
        whether it still answers; ``notice`` gets one line when it stops answering and
        one when it answers again (the follow goes on, as ``tail -f`` does: an operator
        tailing dead letters through a broker restart wants them once it is back)."""
        from citybrain.kafka_read import kafka_answers

        where = self.settings.kafka_bootstrap
        down = False
        quiet_until = time.monotonic() + QUIET_SECONDS
        while not until():
            batch = self.poller.poll(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    yield DeadLetter.of(message)
            if any(batch.values()):
                quiet_until = time.monotonic() + QUIET_SECONDS
                if down:
                    down = False
                    notice(f"Kafka at {where} answers again; following {self.topic}")
                continue
            if time.monotonic() > quiet_until:
                answers = kafka_answers(self.settings)
                if answers == down:  # it changed
                    down = not answers
                    notice(
                        f"Kafka at {where} answers again; following {self.topic}"
                        if answers
                        else f"Kafka at {where} stopped answering; still following "
                        f"{self.topic}: new dead letters show once it answers again "
                        "(Ctrl-C stops)"
                    )
                quiet_until = time.monotonic() + QUIET_SECONDS
            time.sleep(0.1)


def send_back(
    settings: Settings, replays: Sequence[Replay], sent: dict[int, tuple[int, int]] | None = None
) -> list[tuple[int, int]]:
    """Send each replay to its topic (acks from all replicas), in order; each one's
    (partition, offset) once Kafka has it. aiokafka's producer, not kafka-python's: only
    it sends a null header value (kafka-python's refuses one), so a record goes back as it
    came. Its connection failures are raised as kafka-python's (``KafkaConnectionError``,
    ``KafkaTimeoutError``), which every command says in one line. ``sent`` gets each
    replay's place by its index as Kafka acknowledges it: what an interruption (Ctrl-C,
    ``KeyboardInterrupt``) leaves known to be sent (t219)."""
    import asyncio

    import aiokafka.errors
    import kafka.errors

    try:
        return asyncio.run(_send_back(settings, replays, {} if sent is None else sent))
    except aiokafka.errors.KafkaTimeoutError as exc:
        raise kafka.errors.KafkaTimeoutError(str(exc)) from exc
    except aiokafka.errors.KafkaConnectionError as exc:
        raise kafka.errors.KafkaConnectionError(str(exc)) from exc


async def _send_back(
    settings: Settings, replays: Sequence[Replay], sent: dict[int, tuple[int, int]]
) -> list[tuple[int, int]]:
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    options = settings.kafka_python_options()
    cafile = options.pop("ssl_cafile", None)
    if cafile is not None or options["security_protocol"] in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=cafile)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        request_timeout_ms=30_000,
        **options,
    )
    await producer.start()
    futures: list[asyncio.Future[Any]] = []
    try:
        for r in replays:
            futures.append(
                await producer.send(r.topic, key=r.key, value=r.value, headers=r.headers)
            )
        for index, future in enumerate(futures):
            meta = await future
            sent[index] = (meta.partition, meta.offset)
        return [sent[index] for index in range(len(replays))]
    finally:
        try:
            await producer.stop()
        finally:
            # Interrupted: those Kafka acknowledged meanwhile (stop() flushes) are sent too.
            for index, future in enumerate(futures):
                if future.done() and not future.cancelled() and future.exception() is None:
                    sent[index] = (future.result().partition, future.result().offset)
