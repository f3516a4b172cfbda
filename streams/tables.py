"""faust tables whose changelog partition is computed from the key, and whose writes can
be staged in memory until the next offset commit (``stage_many``, ``coalesce_changelog``).

faust writes a changelog entry to the partition of the *current event*; with batches
(``take_events``), in timers and in web views there is no single current event, and its
``use_partitioner`` option needs the producer's topic metadata at the first write (it
crashes the agent when that metadata has not been fetched yet). Kafka's default
partitioner is a pure function of the key bytes, so compute it here: the changelog
partition then always equals the partition the same key has on the source topics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import faust
import orjson
from faust.serializers import codecs
from faust.types import EventT, ProducerT

# Why an entry cannot be read back (the bounded ``reason`` label of
# ``citybrain_state_unreadable_total``) and its error live in streams.errors, which needs
# no faust (streams.detection reads them; the Quix benchmark candidate imports it).
from streams.errors import BAD_SHAPE as BAD_SHAPE
from streams.errors import DELETED as DELETED
from streams.errors import NEWER_FORMAT as NEWER_FORMAT
from streams.errors import NOT_DECODABLE as NOT_DECODABLE
from streams.errors import REASONS as REASONS
from streams.errors import TOO_LARGE as TOO_LARGE
from streams.errors import UNKNOWN_FORMAT as UNKNOWN_FORMAT
from streams.errors import EventError, shown_key
from streams.errors import UnreadableEntryError as UnreadableEntryError
from streams.events import MAX_MESSAGE_BYTES
from streams.faust_patches import forget_recovered_key, read_whole_again
from streams.logs import SayEvery
from streams.partitioning import key_partition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unreadable:
    """What table recovery stores for an entry ``decode`` refused, until the table drops
    it (``apply_changelog_batch``): the reason, the detail and the entry's size in bytes."""

    reason: str
    detail: str
    size: int


# An entry from a newer citybrain may say so: a JSON table entry with a ``format`` field
# (this version writes none) is refused as ``newer_format``, not read as today's shape.
FORMAT_FIELD = "format"


def read_document(entry: bytes) -> dict[str, Any]:
    """A JSON table's changelog entry (bytes) as its stored document (a mapping);
    raises ``UnreadableEntryError`` for bytes that are not JSON (UTF-8, at most 1,024
    levels deep), for a value that is not a mapping, or for one a newer version wrote
    (a ``format`` field)."""
    try:
        doc = orjson.loads(entry)
    except orjson.JSONDecodeError as exc:
        raise UnreadableEntryError(NOT_DECODABLE, f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UnreadableEntryError(BAD_SHAPE, f"a JSON {type(doc).__name__}, not an object")
    if FORMAT_FIELD in doc:
        raise UnreadableEntryError(
            NEWER_FORMAT,
            f"field {FORMAT_FIELD!r} is {doc[FORMAT_FIELD]!r}: written by a newer citybrain",
        )
    return doc


def guarded(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``decode`` that never raises: an entry it refuses becomes an ``Unreadable``.

    faust's recovery counts an entry as read only once it decoded: one that raised was
    logged ("Error in recovery") and never counted, so a partition whose last entry was
    unreadable never finished recovering and the worker never became ready."""

    def read(entry: bytes) -> Any:
        if len(entry) > MAX_MESSAGE_BYTES:
            # t156: a changelog takes up to the topic's 1,048,588 bytes (another tool's
            # entry), and one over what this worker writes read back whole when its
            # document was right. Its next change could not be written again (the size
            # check, the producer): a burst window's failed every incidents batch
            # holding a report of its cell and category, the whole batch each time.
            return Unreadable(
                TOO_LARGE,
                f"{len(entry):,} bytes, more than one entry this worker writes "
                f"({MAX_MESSAGE_BYTES:,}): it could not be written back once changed",
                len(entry),
            )
        try:
            return decode(entry)
        except UnreadableEntryError as exc:
            return Unreadable(exc.reason, exc.detail[:300], len(entry))
        except Exception as exc:  # any other fault of the bytes (a decoder's own error)
            return Unreadable(NOT_DECODABLE, f"{type(exc).__name__}: {exc}"[:300], len(entry))

    return read


class Pending:
    """A changelog entry as faust's recovery hands it to ``apply_changelog_batch``: its
    bytes, not yet read. Only the last entry of each key in a recovery batch is read
    (``ReadBack.apply_changelog_batch``): the ones before it never reach the store."""

    __slots__ = ("entry",)

    def __init__(self, entry: bytes) -> None:
        self.entry = entry

    def __repr__(self) -> str:
        return f"Pending({len(self.entry)} bytes)"


class ChangelogCodec(faust.Codec):
    """A table's own changelog encoding: ``encode`` (a stored value to bytes) and
    ``decode`` (the bytes back). faust decodes every changelog record as it is fetched
    (``loads``): here that only wraps the bytes (``Pending``), and table recovery reads
    the entries that matter with ``decode`` (t155: a groups changelog holds about seven
    entries per group, each read and checked in full before; its recovery took 28.6 CPU
    s for 140,000 records then, 22.0 s now, docs/benchmarks.md)."""

    def __init__(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> None:
        super().__init__()
        self.encode, self.decode = encode, decode

    def _dumps(self, value: Any) -> bytes:
        return self.encode(value)

    def _loads(self, entry: bytes) -> Any:
        return Pending(entry)


# What faust's own writes (``table[key] = value``) encoded with before: the same bytes.
_FAUST_JSON = codecs.get_codec("json")

# (table name, key, what was refused): told once per entry, by whoever built the tables.
OnUnreadable = Callable[[str, bytes, Unreadable], None]

# (key, the entry as read back) -> None, or why the entry's body names another key than
# the one it is stored under (t166, ``ReadBack.key_fault``).
KeyFault = Callable[[bytes, Any], str | None]

# A stored value -> the counter it holds (a whole number; ``ReadBack.counter_of``).
CounterOf = Callable[[Any], int]


@dataclass(frozen=True)
class Skipped:
    """A changelog entry of a counter table (``ReadBack.counter_of``) that read-back
    skipped: its key, why (``Unreadable``: a reason of ``REASONS``, ``deleted`` for a
    tombstone), where it lies (changelog partition and offset; -1 when not known) and the
    counter the key kept (its highest sound value, 0 when it has none)."""

    key: bytes
    entry: Unreadable
    partition: int
    offset: int
    kept: int


# (table name, what was skipped): told once per skipped entry.
OnSkipped = Callable[[str, Skipped], None]

# (key, the entries of a key whose last entry was refused: the value the store held
# before the batch, if any, then the batch's earlier entries' bytes, newest first).
OnRefusedHistory = Callable[[bytes, list[Any]], None]


def _bad_key(key: Any) -> bool:
    if type(key) is not bytes:
        return True
    try:
        key.decode()
    except UnicodeDecodeError:
        return True
    return False


class ReadBack:
    """Read-back for both table kinds: ``decode`` guarded, and an entry it refused
    dropped from the store and told to ``on_unreadable`` (the key is then absent: a
    sensor warms up again, a run or silence is gone), never fatal to recovery."""

    on_unreadable: OnUnreadable | None = None
    # A table whose entry names its own key in its body (a muted alert's ``alert_id``, a
    # group's run id) checks the two agree (t166): one stored under another key (another
    # tool's changelog entry, a hand-written one) was obeyed under the body's id, where
    # nothing an operator is shown (the key) could reach or end it.
    key_fault: KeyFault | None = None
    # A table of counters that must never go down (the run-id floors, ``generations``:
    # t194, a junk last entry or a tombstone read back as "no floor", and a restarted
    # worker opened runs under ids already used, merging two incidents' runs): every
    # entry of a key is read, not only its last; one refused, a tombstone, or a key that
    # is not UTF-8 is skipped (told to ``on_skipped``) and the key keeps its highest
    # sound value, from this batch or stored before. The counter of a sound value.
    counter_of: CounterOf | None = None
    on_skipped: OnSkipped | None = None
    # Told, before ``on_unreadable``, what a key whose last entry was refused held
    # before it (the stored value, the batch's earlier entries): the ``groups`` table
    # keeps a dropped group's run generation so (t194, ``Context.keep_generation``).
    on_refused_history: OnRefusedHistory | None = None
    name: str
    data: Any
    value_serializer: Any

    def _read_back(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> None:
        # Read when the changelog topic and the store are first made (both lazily).
        self.__dict__["value_serializer"] = ChangelogCodec(encode, guarded(decode))

    def _to_value(self, value: Any) -> Any:
        # faust's memory store stores ``to_value(event.value)`` of each record it applies.
        if type(value) is Pending:
            return self.value_serializer.decode(value.entry)
        return value

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        """Apply a recovery batch: only each key's last record in it is read (decoded and
        checked) and applied -- the store ends as it would after applying every record,
        and an entry a later one of its key replaces in the batch is never read, so
        never refused nor counted. A refused last entry is dropped and told; so is a key
        that is not UTF-8 text. A counter table (``counter_of``) keeps each key's highest
        sound value instead (``_apply_counters``)."""
        if self.counter_of is not None:
            self._apply_counters(batch, self.counter_of)
            return
        last: dict[Any, EventT[Any]] = {}
        tombstoned: set[Any] = set()
        history = self.on_refused_history
        # Each key's records before its last, kept only for a table told of them.
        earlier: dict[Any, list[EventT[Any]]] = {}
        for event in batch:
            key = event.key
            if event.message.value is None:
                tombstoned.add(key)
            replaced = last.pop(key, None)  # ordered by each key's last record, as faust applies
            if history is not None and replaced is not None:
                earlier.setdefault(key, []).append(replaced)
            last[key] = event
        stored = self.data
        before = {key: stored[key] for key in last if key in stored} if history else {}
        super().apply_changelog_batch(last.values())  # type: ignore[misc]
        for key in tombstoned:
            # As faust's memory store: a key tombstoned in the batch goes if its last
            # value is empty too (a tombstone, then ``{}``).
            if key in self.data and not self.data[key]:
                del self.data[key]
        for key, event in last.items():
            value = self.data.get(key)
            if type(value) is not Unreadable and key in self.data and not _bad_key(key):
                fault = self.key_fault(key, value) if self.key_fault is not None else None
                if fault is None:
                    continue
                value = Unreadable(BAD_SHAPE, fault[:300], len(event.message.value or b""))
            elif type(value) is not Unreadable:
                if key not in self.data:
                    continue
                # Every key citybrain writes is UTF-8 text (a sensor, cell, run or alert
                # id): another is a damaged entry no reader can name.
                value = Unreadable(NOT_DECODABLE, f"key {key!r:.60} is not UTF-8 text", len(key))
            del self.data[key]
            if history is not None and not _bad_key(key):
                held = [before[key]] if key in before else []
                entries = reversed(earlier.get(key, ()))
                held += [e.message.value for e in entries if e.message.value is not None]
                if held:
                    history(key, held)
            told = self.on_unreadable
            if told is not None:
                told(self.name, key, value)
            else:
                log.warning(
                    "citybrain: %s: dropped unreadable entry %r: %s",
                    self.name,
                    key,
                    value.detail,
                )

    def _apply_counters(self, batch: Iterable[EventT[Any]], counter_of: CounterOf) -> None:
        """Apply a recovery batch of a counter table: every entry is read (a counter
        table holds a handful of keys, each written rarely); each key ends with the
        sound value of the highest counter, among the batch's and the one stored. An
        entry refused, a tombstone or a key that is not UTF-8 text is skipped and told,
        with where it lies and the counter kept: it never lowers nor removes a key."""
        best: dict[Any, tuple[int, EventT[Any]]] = {}
        skipped: list[tuple[Any, Unreadable, Any]] = []
        for event in batch:
            key, message = event.key, event.message
            value: Any
            if _bad_key(key):
                value = Unreadable(NOT_DECODABLE, f"key {key!r:.60} is not UTF-8 text", 0)
            elif message.value is None:
                value = Unreadable(DELETED, "a tombstone: a counter this worker never deletes", 0)
            else:
                value = self._to_value(event.value)
            if type(value) is Unreadable:
                skipped.append((key, value, message))
                continue
            counter = counter_of(value)
            if key not in best or counter > best[key][0]:
                best[key] = (counter, event)
        stored = self.data
        # Only a key whose batch value is above the stored one is applied: faust's store
        # then also notes the key's changelog partition, as for any recovered entry.
        higher = [
            event
            for key, (counter, event) in best.items()
            if key not in stored or counter > counter_of(stored[key])
        ]
        super().apply_changelog_batch(higher)  # type: ignore[misc]
        for key, entry, message in skipped:
            kept = counter_of(stored[key]) if not _bad_key(key) and key in stored else 0
            where = Skipped(
                key,
                entry,
                int(getattr(message, "partition", -1)),
                int(getattr(message, "offset", -1)),
                kept,
            )
            told = self.on_skipped
            if told is not None:
                told(self.name, where)
            else:
                log.warning(
                    "citybrain: %s: skipped the entry of key %r at partition %d offset %d "
                    "(%s: %s); kept %d",
                    self.name,
                    key,
                    where.partition,
                    where.offset,
                    entry.reason,
                    entry.detail,
                    kept,
                )


class KeyPartitionedTable(ReadBack, faust.Table[bytes, Any]):
    """``encode`` turns a stored value into its changelog entry (bytes; JSON by default)
    and ``decode`` reads one back in table recovery (JSON by default): the store may
    hold live objects (a sensor's detector) that are serialised only when written.
    ``partition_of`` maps a key to the bytes its partition is computed from (default:
    the key itself), for a table keyed finer than its source topic (a cell's burst
    windows, one key per category, live on the cell's partition)."""

    def __init__(
        self,
        *args: Any,
        encode: Callable[[Any], bytes] | None = None,
        decode: Callable[[bytes], Any] | None = None,
        partition_of: Callable[[bytes], bytes] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.partition_of = partition_of
        self._dirty: set[bytes] = set()
        # An entry the flush could not write, said once a minute per exception type.
        self._say_unwritten = SayEvery(log, logging.ERROR, prefix="citybrain: ", what="failure")
        self.encode: Callable[[Any], bytes] = encode or orjson.dumps
        self._read_back(encode or _FAUST_JSON.dumps, decode or read_document)

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None  # always set by key_partitioned_table
        of = self.partition_of
        return key_partition(key if of is None else of(key), self.partitions)

    def get_many(self, keys: Iterable[bytes]) -> list[Any]:
        """The stored values of ``keys``, in order (None where absent), read from the
        store itself: ``table.get`` runs faust's per-key sensor calls, thousands per
        batch. The memory store keeps its entries in a plain dict (``Store.data``,
        faust-streaming 0.15.3's ``faust.stores.memory.Store``), read in one C call
        here: the store's own ``get`` is ``Mapping.get`` through a Python
        ``__getitem__`` (about 0.3 us a key); any other store is read key by key."""
        store = self.data
        data = getattr(store, "data", None)
        if type(data) is not dict:
            return [store.get(key) for key in keys]
        return list(map(data.get, keys))

    def stage_many(self, items: dict[bytes, Any]) -> None:
        """Update many keys in the store now; their changelog entries wait for
        ``flush_staged`` (which ``coalesce_changelog`` runs before every offset commit).

        A sensor read every second changes its state every batch; writing each change
        to the changelog costs a send per reading. Between two commits only the last
        state of each key matters for recovery, so one entry per key per commit is
        written instead. No await here: a cancelled batch (a rebalance) leaves either
        all of its keys updated in memory or none.
        """
        store = self.data
        data = getattr(store, "data", None)
        if type(data) is dict:
            data.update(items)  # the memory store's own dict (``get_many``)
        else:
            for key, value in items.items():
                store[key] = value
        self._dirty.update(items)

    def check_fits(
        self, items: dict[bytes, Any], entries: dict[bytes, bytes] | None = None
    ) -> dict[bytes, bytes]:
        """Each entry of ``items`` as its changelog bytes (``encode``; ``entries`` when
        the caller has them already), in order; raises ``EventError``
        (``processing_error``) naming the table, the first key and the size when one
        would be larger than one Kafka message the producer writes
        (``MAX_MESSAGE_BYTES``), before anything is stored. The producer refused such an
        entry only once the store held it (t99): the memory and the changelog then
        differed, and every later write of the key failed the same way, each costing its
        own message. The bytes are what ``set_many`` sends: each entry is encoded once
        (a run's state is a few kB of JSON, encoded twice per change before t103)."""
        checked: dict[bytes, bytes] = {}
        for key, value in items.items():
            entry = entries[key] if entries is not None else self.encode(value)
            size = len(key) + len(entry)
            if size > MAX_MESSAGE_BYTES:
                shown = key[:200].decode(errors="replace")
                raise EventError(
                    "processing_error",
                    None,
                    None,
                    f"the {self.name} table's entry for {shown!r} would be {size:,} bytes, "
                    f"more than one Kafka message holds ({MAX_MESSAGE_BYTES:,}): not "
                    "stored, the table kept as it was",
                )
            checked[key] = entry
        return checked

    async def set_many(
        self, items: dict[bytes, Any], entries: dict[bytes, bytes] | None = None
    ) -> None:
        """Update many keys and queue their changelog entries now (write-through, for
        states whose loss would change what a replay emits); the producer's own
        batching sends them, and faust flushes it before it commits any offset.
        ``entries``: the items' ``encode`` bytes, by key, when the caller measured them
        already (its own size check) and nothing can have changed a value since.
        Raises ``check_fits``' ``EventError`` for an entry too large, nothing stored."""
        assert self.partitions is not None
        checked = self.check_fits(items, entries)
        self.stage_many(items)  # the store first, with no await in between
        self._dirty.difference_update(items)
        for key, entry in checked.items():
            await self._send(key, entry)

    async def set_many_delivered(
        self, items: dict[bytes, Any], entries: dict[bytes, bytes] | None = None
    ) -> None:
        """``set_many``, then wait until Kafka has every entry (a state that must be on
        the changelog before what it describes is sent: a run's outbox, streams.response).
        Raises what the producer raises for an entry it could not deliver."""
        assert self.partitions is not None
        checked = self.check_fits(items, entries)
        self.stage_many(items)
        self._dirty.difference_update(items)
        futures = [await self._send(key, entry) for key, entry in checked.items()]
        for future in futures:
            if future is not None:
                await future

    async def delete_many(self, keys: Iterable[bytes]) -> None:
        """Remove ``keys`` from the store and queue a tombstone (a null value) for each
        on the changelog, so recovery and compaction forget them too. Straight to the
        producer, as ``_write``: faust's ``del table[key]`` needs the current event's
        partition and raises outside an agent (a timer's sweep)."""
        assert self.partitions is not None
        for key in keys:
            self.data.pop(key, None)
            self._dirty.discard(key)
            await _tombstone(self, key)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the keys of partitions this worker no longer owns (after a rebalance has
        flushed them): a stale entry must never be written over the new owner's, and
        faust re-reads a partition's whole changelog if it comes back."""
        gone = [key for key in self.data if self.partition_for_key(key) in partitions]
        for key in gone:
            del self.data[key]
        self._dirty.difference_update(gone)

    def drop_staged(self) -> int:
        """Write none of the keys staged since the last flush, and forget every value of
        every partition (``forget_partitions``): the group dropped this worker, whose
        partitions another worker owned meanwhile (``coalesce_changelog``). Returns how
        many staged keys were dropped."""
        dropped = len(self._dirty)
        self._dirty = set()
        assert self.partitions is not None
        self.forget_partitions(set(range(self.partitions)))
        return dropped

    async def flush_staged(self, settled: asyncio.Lock, chunk: int = 100) -> int:
        """Queue the changelog entry of every key staged since the last flush; returns
        how many. The caller flushes the producer to wait for them.

        ``settled`` is held by whoever updates stored values in place; it is taken per
        ``chunk`` keys, so a batch waits for one chunk (milliseconds), not for the whole
        flush (a commit writes every busy sensor: 150 ms at 2,000 sensors).
        """
        # Swap first: keys staged from here on go to the next flush (a key staged again
        # before its chunk is written goes out with its newest value, twice at worst).
        keys, self._dirty = list(self._dirty), set()
        for start in range(0, len(keys), chunk):
            async with settled:
                for key in keys[start : start + chunk]:
                    if key in self.data:
                        entry = self._staged_entry(key, self.data[key])
                        if entry is not None:
                            await self._send(key, entry)
            # Taking a free lock and queueing a send do not yield: let the batches run.
            await asyncio.sleep(0)
        return len(keys)

    def writable_entries(self, items: dict[bytes, Any]) -> dict[bytes, bytes]:
        """The changelog entries of those of ``items`` that can be written, by key
        (``_staged_entry``: each other one said, and left out)."""
        entries = {}
        for key, value in items.items():
            entry = self._staged_entry(key, value)
            if entry is not None:
                entries[key] = entry
        return entries

    def _staged_entry(self, key: bytes, value: Any) -> bytes | None:
        """``value``'s changelog entry for ``key`` (``encode``'s bytes, by default the
        JSON faust's own codec would write, which recovery reads with ``decode``), or
        None, said, when it cannot be made or is larger than one Kafka message
        (``MAX_MESSAGE_BYTES``). t205: the flush runs before every offset commit, and
        one staged entry whose encoding raised (or that the producer refused for its
        size) failed the commit as a whole and stopped the worker; its replacement read
        the same readings again to the same state and the same fault, at every start,
        no partition's offsets ever committed. Such a key keeps its last entry on the
        changelog (a restart takes it back to that), and is tried again at the next
        flush it is staged for; the others are written and the commit goes on. Only the
        value's own faults are taken so: a producer that cannot send fails the flush."""
        try:
            entry = self.encode(value)
            size = len(key) + len(entry)
            if size > MAX_MESSAGE_BYTES:
                raise EventError(
                    "processing_error",
                    None,
                    None,
                    f"the entry would be {size:,} bytes, more than one Kafka message holds "
                    f"({MAX_MESSAGE_BYTES:,})",
                )
        except Exception as exc:
            self._say_unwritten(
                f"{type(exc).__name__}",
                f"{self.name}: the changelog entry of {shown_key(key)!r} could not be "
                f"written ({type(exc).__name__}: {str(exc)[:300]}): its last written entry "
                "stays its state on the changelog (a restart takes it back to that); the "
                "table's other entries are written and the offsets committed",
                exc_info=not isinstance(exc, EventError),
            )
            return None
        return entry

    async def _send(self, key: bytes, entry: bytes) -> Awaitable[Any] | None:
        """Queue one changelog entry, already encoded, on the producer: every write of
        the table goes through here. Straight to the transport: faust's ``Topic.send``
        adds a future, callbacks and sensor calls per message, which a commit writing
        every sensor's state pays thousands of times. Returns the producer's future.
        (faust's sent-offset bookkeeping is skipped: it serves RocksDB checkpoints and
        standbys, and this worker runs the memory store without standbys.)"""
        assert self.partitions is not None
        return await self.app.producer.send(
            self.changelog_topic.get_topic_name(),
            key,
            entry,
            self.partition_for_key(key),
            None,
            None,
        )


def coalesce_changelog(
    app: faust.App,
    tables: list[KeyPartitionedTable],
    settled: asyncio.Lock,
    others: Sequence[ProducerT] = (),
    dropped: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Make ``tables``' staged keys reach their changelogs before any offset commit.

    faust commits offsets only after ``await app.producer.flush()`` (at every commit,
    on a rebalance and at shutdown); running ``flush_staged`` first keeps its rule --
    a committed offset's state is on the changelog -- while writing each key once per
    commit. faust has no awaitable pre-commit hook (sensors' ``on_commit_initiated``
    is synchronous), hence the wrapped method. ``settled`` is held by whoever updates
    stored values in place, so none is written halfway through an update. ``others``:
    the worker's other producers, flushed too, so every message queued before a commit
    is on Kafka when its offsets are.

    ``dropped``, asked before each flush, says whether the group has dropped this worker
    (``streams.faust_patches.group_dropped``, after waiting out a doubt: t192). Then the
    staged keys are not written: their partitions have been another worker's (a worker
    frozen past its session, woken, is flushed at its revocation), which read them back
    from the last commit and wrote newer states since; written now, each would be its
    key's last changelog entry, the older state, which the next recovery reads. The
    tables are emptied and read back whole from their changelogs at the next assignment
    (``read_whole_again``); Kafka refuses the dropped member's offset commit, so the
    readings behind the dropped states are read again by whoever owns them.
    """
    producer = app.producer
    flush = producer.flush

    async def flush_staged_then_producer() -> None:
        if dropped is not None and await dropped():
            lost = 0
            for table in tables:
                lost += table.drop_staged()
                read_whole_again(
                    app, [table.changelog_topic.get_topic_name()], table.partitions or 0
                )
            log.warning(
                "citybrain: the group dropped this worker (it stood still past its session, "
                "CITYBRAIN_SESSION_TIMEOUT) while another took its partitions: %d state%s "
                "staged for its next commit %s not written over the new owner's, and its "
                "tables are read back from Kafka when it is given partitions again",
                lost,
                "" if lost == 1 else "s",
                "is" if lost == 1 else "are",
            )
        else:
            for table in tables:
                await table.flush_staged(settled)
        await flush()
        for other in others:
            await other.flush()

    producer.flush = flush_staged_then_producer  # type: ignore[method-assign]


# Every change of any VersionedDict takes the next number: a version is never reused,
# not by another table nor by a store's dict replaced.
_CHANGES = itertools.count(1)


class Watcher(Protocol):
    """Told of every change of a VersionedDict it watches (``playbooks.routing.SourceIndex``
    keeps the firing alerts that can inhibit so)."""

    def put(self, key: Any, value: Any) -> None: ...
    def drop(self, key: Any) -> None: ...
    def clear(self) -> None: ...


class VersionedDict(dict[Any, Any]):
    """A memory store's dict that numbers its changes (``version``), so a reader can tell
    an unchanged table without walking it, and tells its ``watchers`` of each. Every
    mutating method faust's memory store (faust-streaming 0.15.3,
    ``faust.stores.memory.Store``) and the API call is counted."""

    version: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of every entry now, then of every change."""
        for key, value in self.items():
            watcher.put(key, value)
        self.watchers.append(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of nothing more (one not watching: nothing to do)."""
        if watcher in self.watchers:
            self.watchers.remove(watcher)

    def _changed(self) -> None:
        self.version = next(_CHANGES)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()
        for watcher in self.watchers:
            watcher.put(key, value)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()
        for watcher in self.watchers:
            watcher.drop(key)

    def pop(self, key: Any, *default: Any) -> Any:
        self._changed()
        if key in self:
            for watcher in self.watchers:
                watcher.drop(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        self._changed()
        key, value = super().popitem()
        for watcher in self.watchers:
            watcher.drop(key)
        return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        if not self.watchers:
            super().update(*args, **kwargs)
            self._changed()
            return
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        super().clear()
        self._changed()
        for watcher in self.watchers:
            watcher.clear()

    def __ior__(self, other: Any) -> VersionedDict:  # type: ignore[misc]
        self.update(other)
        return self


class KeyPartitionedGlobalTable(ReadBack, faust.GlobalTable):
    """Every worker holds all of it (silences, firing alerts for inhibition); ``decode``
    reads an entry back (JSON, a mapping, by default)."""

    def _store_dict(self) -> VersionedDict | None:
        """The memory store's own dict, made a VersionedDict the first time; None for
        any other store."""
        store = self.data
        data = getattr(store, "data", None)
        if type(data) is dict:
            data = store.data = VersionedDict(data)
            data._changed()  # a number of its own, never one an earlier dict had
        return data if isinstance(data, VersionedDict) else None

    def watch(self, watcher: Watcher) -> bool:
        """Tell ``watcher`` of every entry and every change from now on; False (it is told
        nothing) when the store cannot tell."""
        data = self._store_dict()
        if data is None:
            return False
        data.watch(watcher)
        return True

    def unwatch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of no more changes (a reload's index of old inhibit rules)."""
        data = self._store_dict()
        if data is not None:
            data.unwatch(watcher)

    def change_version(self) -> int | None:
        """A number that changes whenever the table does (None: a store that does not
        count its changes): equal twice, nothing changed in between."""
        data = self._store_dict()
        return None if data is None else data.version

    def stored_items(self) -> Iterable[tuple[Any, Any]]:
        """``(key, value)`` of every entry, read from the store itself: ``items()``
        runs faust's per-key sensor calls (walking 60,000 silences took ~75 ms)."""
        data = self._store_dict()
        return self.items() if data is None else list(data.items())

    def __init__(
        self, *args: Any, decode: Callable[[bytes], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._read_back(_FAUST_JSON.dumps, decode or read_document)

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None
        return key_partition(key, self.partitions)

    async def delete_many(self, keys: Iterable[bytes]) -> None:
        """Remove ``keys`` from this worker's copy and queue a tombstone for each on the
        changelog, from which every worker (this one too) and recovery forget them."""
        for key in keys:
            self.data.pop(key, None)
            await _tombstone(self, key)


async def _tombstone(table: Any, key: bytes) -> None:
    """Queue a tombstone (a null value) for ``key`` on ``table``'s changelog, in the
    key's own partition, straight to the producer (faust's ``del`` needs an event); the
    memory store's note of the key's partition goes too (``faust_patches`` change 14)."""
    forget_recovered_key(table.data, key)
    await table.app.producer.send(
        table.changelog_topic.get_topic_name(), key, None, table.partition_for_key(key), None, None
    )


def stored_items(table: Any) -> Iterable[tuple[Any, Any]]:
    """A table's ``(key, value)`` pairs, from its store when it is a global table
    (``KeyPartitionedGlobalTable.stored_items``), else through ``items()``."""
    if isinstance(table, KeyPartitionedGlobalTable):
        return table.stored_items()
    return cast(Iterable[tuple[Any, Any]], table.items())


def key_partitioned_table(
    app: faust.App,
    name: str,
    partitions: int,
    is_global: bool = False,
    encode: Callable[[Any], bytes] | None = None,
    decode: Callable[[bytes], Any] | None = None,
    partition_of: Callable[[bytes], bytes] | None = None,
    key_fault: KeyFault | None = None,
    counter_of: CounterOf | None = None,
) -> faust.Table[bytes, Any]:
    """A table with raw-bytes keys and JSON values, registered with ``app``; a
    partitioned table may have its own changelog entries instead (``encode`` a stored
    value to bytes), and either kind its own read-back (``decode`` them in recovery;
    ``key_fault``: why an entry read back does not belong under its key, refused
    ``bad_shape`` as one ``decode`` refuses; ``counter_of``: a table of counters that
    never go down, ``ReadBack._apply_counters``)."""
    kwargs: dict[str, Any] = dict(
        name=name, partitions=partitions, key_type=bytes, beacon=app.tables.beacon
    )
    table = (
        # faust marks a table global by these arguments, not by its class (``App.GlobalTable``
        # passes them): without them a ``GlobalTable`` was an ordinary partitioned table,
        # each worker holding only its own partitions of it. Every worker keeps reading
        # every partition, its own too: any worker's operator API writes a silence. faust
        # applies the entries it reads after recovery once a buffer of this many has
        # filled (1,000 by default: a silence waited for 999 more).
        KeyPartitionedGlobalTable(
            app,
            decode=decode,
            is_global=True,
            synchronize_all_active_partitions=True,
            recovery_buffer_size=1,
            standby_buffer_size=1,
            **kwargs,
        )
        if is_global
        else KeyPartitionedTable(
            app, encode=encode, decode=decode, partition_of=partition_of, **kwargs
        )
    )
    if key_fault is not None:
        cast(ReadBack, table).key_fault = key_fault
    if counter_of is not None:
        cast(ReadBack, table).counter_of = counter_of
    app.tables.add(table)
    return table
