"""streams/faust_patches.py replaces faust internals: fail loudly when faust changes."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from streams import faust_patches
from streams.faust_patches import (
    FAUST_VERSION,
    PATCHED_SOURCES,
    TABLE_SOURCES,
    WRAPPED_SOURCES,
    Batch,
    BatchDrain,
    original,
    source_hash,
)
from streams.loop_dns import LoopResolution

CONSUMER_ATTRIBUTES = (
    "_wait_next_records",
    "_to_message",
    "_add_gap",
    "perform_seek",
    "seek_to_committed",
    "commit",
    "highwater",
    "consumer_stopped_errors",
)
CONSUMER_STATE = (
    "_read_offset",
    "_committed_offset",
    "_acked",
    "_acked_index",
    "_n_acked",
    "_unacked_messages",
    "_waiting_for_ack",
    "_buffered_partitions",
    "_commit_every",
    "flow_active",
    "scheduler",
)


def test_faust_is_the_pinned_version() -> None:
    assert faust.__version__ == FAUST_VERSION, (
        f"faust {faust.__version__} is installed; streams/faust_patches.py was written "
        f"against {FAUST_VERSION}: re-read Consumer._drain_messages and Consumer.ack"
    )


def test_the_replaced_methods_are_unchanged_upstream() -> None:
    faust_patches.install()
    for name, digest in PATCHED_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"faust's Consumer.{name} changed: port streams/faust_patches.py to it"
        )


def test_the_table_manager_starts_as_faust_s_does_but_for_its_second() -> None:
    # Change 15: faust slept 1.0 s before registering the tables' changelog channels,
    # and the worker subscribed to nothing until then, at every start and restart (t103).
    from faust.tables.manager import TableManager

    faust_patches.start_tables_at_once()
    for name, digest in TABLE_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"faust's TableManager.{name} changed: port streams/faust_patches.py to it"
        )
    assert TableManager.on_start is not original("on_start")
    calls: list[str] = []

    async def update_channels() -> None:
        calls.append("channels")

    async def start() -> None:
        calls.append("recovery")

    async def sleep(seconds: float) -> None:
        calls.append(f"sleep {seconds}")

    manager = SimpleNamespace(
        should_stop=False,
        _update_channels=update_channels,
        recovery=SimpleNamespace(start=start),
        sleep=sleep,
    )
    asyncio.run(TableManager.on_start(manager))  # type: ignore[arg-type]
    assert calls == ["channels", "recovery"]
    calls.clear()
    asyncio.run(original("on_start")(manager))  # faust's own: the same after its sleep
    assert calls == ["sleep 1.0", "channels", "recovery"]
    calls.clear()
    manager.should_stop = True  # stopped before it started: neither, as faust's
    asyncio.run(TableManager.on_start(manager))  # type: ignore[arg-type]
    assert calls == []


def test_the_wrapped_consumer_factory_is_unchanged_upstream() -> None:
    faust_patches.set_fetch_max_wait(faust.App("patch-check-wait"), 0.1)
    for name, digest in WRAPPED_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"faust's AIOKafkaConsumerThread.{name} changed: port streams/faust_patches.py"
        )
    # The value the wrapper overrides, and where aiokafka reads it.
    assert "fetch_max_wait_ms=1500" in inspect.getsource(original("_create_worker_consumer"))
    from aiokafka import AIOKafkaConsumer

    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)

    async def built() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=7)
        return cast(int, consumer._fetch_max_wait_ms)

    assert asyncio.run(built()) == 7


def test_the_consumer_gets_the_apps_fetch_wait(monkeypatch: Any) -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    app = faust.App("patch-check-wait-value")
    faust_patches.set_fetch_max_wait(app, 0.25)
    faust_patches.set_fetch_max_wait(app, 0.1)  # idempotent: the last value counts
    assert AIOKafkaConsumerThread._create_worker_consumer is faust_patches._create_worker_consumer
    monkeypatch.setitem(
        faust_patches._ORIGINAL,
        "_create_worker_consumer",
        lambda thread, transport: SimpleNamespace(_fetch_max_wait_ms=1500),
    )
    consumer = faust_patches._create_worker_consumer(_thread(app), None)
    assert consumer._fetch_max_wait_ms == 100
    # An app that never set one keeps faust's.
    other = faust_patches._create_worker_consumer(_thread(faust.App("patch-check-no-wait")), None)
    assert other._fetch_max_wait_ms == 1500


def test_the_consumer_reads_committed_records_only(monkeypatch: Any) -> None:
    # faust's worker read uncommitted: a field producer's aborted transaction was scored.
    from aiokafka import AIOKafkaConsumer

    assert 'isolation_level: str = "read_uncommitted"' in inspect.getsource(
        original("_create_worker_consumer")
    )
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)
    app = faust.App("patch-check-isolation")
    faust_patches.read_committed(app)
    monkeypatch.setitem(
        faust_patches._ORIGINAL,
        "_create_worker_consumer",
        lambda thread, transport: SimpleNamespace(
            _fetch_max_wait_ms=1500, _isolation_level="read_uncommitted"
        ),
    )
    consumer = faust_patches._create_worker_consumer(_thread(app), None)
    assert consumer._isolation_level == "read_committed"


def _thread(app: faust.App) -> Any:
    """A stand-in for faust's consumer thread: its app and its own loop."""
    return SimpleNamespace(app=app, thread_loop=asyncio.new_event_loop())


def test_the_consumer_threads_loop_resolves_names_on_its_own_threads(monkeypatch: Any) -> None:
    # aiokafka's consumer runs on the thread's loop: its broker names resolved through
    # streams.loop_dns, not that loop's default executor (helper t92).
    app = faust.App("patch-check-dns")
    faust_patches.read_committed(app)
    monkeypatch.setitem(
        faust_patches._ORIGINAL,
        "_create_worker_consumer",
        lambda thread, transport: SimpleNamespace(_isolation_level="read_uncommitted"),
    )
    thread = _thread(app)
    faust_patches._create_worker_consumer(thread, None)
    resolution = getattr(thread.thread_loop.getaddrinfo, "__self__", None)
    assert isinstance(resolution, LoopResolution)
    resolution.shutdown()
    thread.thread_loop.close()


def test_install_replaces_the_four_methods_once() -> None:
    faust_patches.install()
    faust_patches.install()
    assert Consumer._drain_messages is faust_patches._drain_messages
    assert Consumer.ack is faust_patches._ack
    assert Consumer.perform_seek is faust_patches._perform_seek
    assert Consumer._new_offset is faust_patches._new_offset
    assert original("_new_offset") is not faust_patches._new_offset
    assert original("ack") is not faust_patches._ack
    assert original("perform_seek") is not faust_patches._perform_seek


def test_the_internals_it_relies_on_exist() -> None:
    source = inspect.getsource(Consumer)
    for name in CONSUMER_ATTRIBUTES:
        assert hasattr(Consumer, name), name
    for name in CONSUMER_STATE:
        assert f"self.{name}" in source or f"    {name}:" in source, name
    assert "generation_id" in Message.__slots__ and "acked" in Message.__slots__
    assert list(inspect.signature(original("_drain_messages")).parameters) == ["self", "fetcher"]
    assert list(inspect.signature(original("ack")).parameters) == ["self", "message"]
    assert list(inspect.signature(original("perform_seek")).parameters) == ["self"]
    from faust.transport.consumer import ThreadDelegateConsumer
    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

    # The seek to the log start the replacement uses is the worker's consumer's own.
    assert issubclass(AIOKafkaConsumer, ThreadDelegateConsumer)
    assert hasattr(AIOKafkaConsumer, "earliest_offsets") and hasattr(AIOKafkaConsumer, "_seek")
    assert hasattr(faust.App("patch-check-tables").tables, "changelog_topics")
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    # The changelog rewind runs on the consumer's thread (its _thread).
    assert "self._thread" in inspect.getsource(ThreadDelegateConsumer)
    assert hasattr(AIOKafkaConsumerThread, "call_thread")
    assert hasattr(AIOKafkaConsumerThread, "_ensure_consumer")
    wait = inspect.signature(Consumer._wait_next_records)
    assert list(wait.parameters) == ["self", "timeout"]
    from faust.types.tuples import ack_lock

    assert hasattr(ack_lock, "__enter__")
    app = faust.App("patch-check")
    assert hasattr(app, "consumer_generation_id") and hasattr(app, "flow_control")


class FakeApp:
    """The few attributes of a faust app the bookkeeping below reads."""

    def __init__(self, generation: int) -> None:
        self.consumer_generation_id = generation


def consumer_state(generation: int) -> Any:
    from collections import defaultdict
    from types import SimpleNamespace
    from weakref import WeakSet

    return SimpleNamespace(
        app=FakeApp(generation),
        _unacked_messages=WeakSet(),
        _waiting_for_ack=None,
        _committed_offset=defaultdict(lambda: None),
        _acked_index=defaultdict(set),
        _acked=defaultdict(list),
        _n_acked=0,
    )


def message(offset: int, generation: int) -> Message:
    tp = TP("t.readings", 0)
    return Message(
        "t.readings", 0, offset, 0.0, 0, None, b"k", b"v", None, tp=tp, generation_id=generation
    )


def test_a_message_of_an_older_generation_is_released_but_never_acked() -> None:
    consumer = consumer_state(generation=5)
    stale = message(10, generation=4)
    consumer._unacked_messages.add(stale)
    assert faust_patches._ack(consumer, stale) is False
    assert stale.acked and stale not in consumer._unacked_messages
    assert not consumer._acked  # its offset never enters the commit bookkeeping


def test_a_batch_is_acked_whole_only_if_done_in_its_generation() -> None:
    consumer = consumer_state(generation=3)
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=3)
    drain = object.__new__(BatchDrain)
    drain.app = app
    tp = TP("t.readings", 0)
    current = Batch(drain, tp, [message(o, 3) for o in (7, 8, 9)], generation=3)
    drain.done(current, acked=True)
    assert consumer._acked[tp] == [7, 8, 9] and consumer._n_acked == 3
    failed = Batch(drain, tp, [message(o, 3) for o in (10, 11)], generation=3)
    drain.done(failed, acked=False)  # raised: released, not acked
    assert consumer._acked[tp] == [7, 8, 9] and failed.messages[-1].acked
    stale = Batch(drain, tp, [message(o, 2) for o in (12, 13)], generation=2)
    drain.done(stale, acked=True)  # fetched before a rebalance: read again instead
    assert consumer._acked[tp] == [7, 8, 9]


class SeekRecorder:
    """A consumer after a rebalance: its committed offsets as aiokafka reports them
    (None: never committed), and the seeks ``perform_seek`` asks of it."""

    def __init__(self, committed: dict[TP, int | None], changelogs: set[str]) -> None:
        self.committed = committed
        self.app: Any = SimpleNamespace(tables=SimpleNamespace(changelog_topics=changelogs))
        self._read_offset: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self.to_beginning: list[TP] = []
        self.log_start = 3  # retention has deleted offsets 0-2
        # The seeks go to aiokafka's consumer on the consumer's own thread, never through
        # faust's ``_seek``, which seeks from the caller's: aiokafka is not thread-safe.
        self._thread = SeekingThread(self, set(committed))

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed  # aiokafka has seeked only the offsets above 0

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.log_start for tp in partitions}

    async def _seek(self, tp: TP, offset: int) -> None:
        raise AssertionError(f"{tp} seeked from the event loop's thread, not the consumer's")


class SeekingThread:
    """faust's consumer thread as ``perform_seek`` uses it: ``call_thread`` runs a
    function on the thread, the aiokafka consumer it hands out records the seeks."""

    def __init__(self, recorder: SeekRecorder, assigned: set[TP]) -> None:
        self.recorder = recorder
        self.assigned = assigned
        self.on_thread = False

    def _ensure_consumer(self) -> SeekingThread:
        return self

    def assignment(self) -> set[Any]:
        from aiokafka import TopicPartition

        return {TopicPartition(tp.topic, tp.partition) for tp in self.assigned}

    def seek(self, tp: Any, offset: int) -> None:
        assert self.on_thread, "aiokafka's consumer seeked off its thread"
        assert offset == self.recorder.log_start
        self.recorder.to_beginning.append(TP(tp.topic, tp.partition))

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        self.on_thread = True
        try:
            return await fun(*args)
        finally:
            self.on_thread = False


def test_a_partition_never_committed_is_read_again_from_its_log_start() -> None:
    """The SIGKILL takeover: the dead worker never committed readings partition 1, and
    the new owner fetched it while its flow was stopped. Seeking back to the committed
    offset must rewind it too, or the dropped records are never processed."""
    import asyncio

    readings0, readings1, zero = TP("t.readings", 0), TP("t.readings", 1), TP("t.alerts", 0)
    changelog = TP("t-sensor-state-changelog", 1)
    consumer = SeekRecorder(
        {readings0: 615, readings1: None, zero: 0, changelog: None},
        changelogs={"t-sensor-state-changelog"},
    )
    asyncio.run(faust_patches._perform_seek(cast(Consumer, consumer)))
    # Never committed (None) and committed at 0 both start at the log start; the
    # changelog is table recovery's to seek.
    assert sorted(consumer.to_beginning) == sorted([readings1, zero])
    assert consumer._read_offset == {readings0: 615, readings1: None, zero: 0, changelog: None}
    assert consumer._committed_offset == {readings0: 615, zero: None}  # as faust's


def test_committed_partitions_are_not_rewound() -> None:
    import asyncio

    tp = TP("t.readings", 0)
    consumer = SeekRecorder({tp: 12}, changelogs=set())
    asyncio.run(faust_patches._perform_seek(cast(Consumer, consumer)))
    assert consumer.to_beginning == [] and consumer._read_offset == {tp: 12}


class AIOKafkaPositions:
    """aiokafka's consumer as ``_rewind_in_thread`` sees it: its own subscription state
    (aiokafka's class: a renamed internal fails here), positions (None: being reset, no
    valid position) and seeks. ``position()``, which waits for a reset without end, must
    not be called (t99)."""

    def __init__(self, positions: dict[Any, int | None]) -> None:
        import asyncio

        from aiokafka.consumer.subscription_state import SubscriptionState

        async def subscribed() -> SubscriptionState:  # its futures want a running loop
            state = SubscriptionState()
            state.assign_from_user(set(positions))
            for tp, position in positions.items():
                if position is not None:
                    state.subscription.assignment.state_value(tp).seek(position)
            return state

        self._subscription = asyncio.run(subscribed())
        self.seeks: dict[Any, int] = {}

    def assignment(self) -> frozenset[Any]:
        return cast(frozenset[Any], self._subscription.assigned_partitions())

    async def position(self, tp: Any) -> int:
        raise AssertionError(f"position({tp}) waits while the partition's offset is reset")

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset


class ConsumerThread:
    def __init__(self, consumer: AIOKafkaPositions) -> None:
        self.consumer = consumer

    def _ensure_consumer(self) -> AIOKafkaPositions:
        return self.consumer

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


def record(offset: int) -> Any:
    return SimpleNamespace(offset=offset)


def test_changelog_records_dropped_while_the_flow_stopped_are_read_again() -> None:
    """Recovery seeked the changelog to 0 and its records 0-5 were fetched, then dropped
    because the flow had not resumed yet: without a rewind recovery never gets them."""
    import asyncio

    from aiokafka import TopicPartition

    fetched = TP("t-sensor-state-changelog", 1)  # fetched from recovery's seek: rewind
    reseeked = TP("t-groups-changelog", 0)  # recovery seeked it again since: leave it
    stream = TP("t.readings", 1)  # perform_seek's (committed offset or log start)
    aio = AIOKafkaPositions(
        {
            TopicPartition(fetched.topic, 1): 6,
            TopicPartition(reseeked.topic, 0): 0,
            TopicPartition(stream.topic, 1): 40,
        }
    )
    consumer = SimpleNamespace(
        app=SimpleNamespace(
            tables=SimpleNamespace(
                changelog_topics={"t-sensor-state-changelog", "t-groups-changelog"}
            )
        ),
        _thread=ConsumerThread(aio),
    )
    records = {
        fetched: [record(o) for o in range(6)],
        reseeked: [record(o) for o in range(10, 14)],
        stream: [record(o) for o in range(30, 40)],
    }
    asyncio.run(faust_patches._rewind_changelogs(cast(Consumer, consumer), records))
    assert aio.seeks == {TopicPartition(fetched.topic, 1): 0}


def test_records_of_a_partition_paused_during_the_fetch_are_read_again() -> None:
    """faust drops the records of a partition paused while the fetch was in flight, with
    the position past them: without a rewind, the next record's gap committed over them
    (change 5; the likely path of trial 11's two lost commands)."""
    import asyncio

    from aiokafka import TopicPartition

    paused = TP("t.commands", 1)  # nothing moved it since the fetch: rewind
    seeked = TP("t.commands", 0)  # recovery seeked it since: leave it
    aio = AIOKafkaPositions(
        {TopicPartition(paused.topic, 1): 10, TopicPartition(seeked.topic, 0): 3}
    )
    consumer = SimpleNamespace(_thread=ConsumerThread(aio))
    records = {paused: [record(8), record(9)], seeked: [record(20), record(21)]}
    asyncio.run(faust_patches._rewind(cast(Consumer, consumer), records))
    assert aio.seeks == {TopicPartition(paused.topic, 1): 8}


def test_a_rewind_never_waits_for_a_partition_being_reset() -> None:
    """A partition re-assigned during the fetch has no position until its committed
    offset is known: aiokafka's ``position()`` waited for it one request timeout after
    another, without end while Kafka did not answer, and the drain with it (t99). It is
    left to its reset (which reads it from at or before the records); the others are
    rewound as before, and ``position()`` is never called (it raises here)."""
    import asyncio

    from aiokafka import TopicPartition

    resetting, paused = TP("t.commands", 0), TP("t.commands", 1)
    aio = AIOKafkaPositions(
        {TopicPartition(resetting.topic, 0): None, TopicPartition(paused.topic, 1): 10}
    )
    consumer = SimpleNamespace(_thread=ConsumerThread(aio))
    records = {resetting: [record(5), record(6)], paused: [record(8), record(9)]}
    asyncio.run(faust_patches._rewind(cast(Consumer, consumer), records))
    assert aio.seeks == {TopicPartition(paused.topic, 1): 8}


def test_a_record_past_the_next_offset_is_read_again_once_then_passed_as_a_gap() -> None:
    """Change 7: the storm test's lost commands were committed over as a gap."""
    verdict = faust_patches.order_verdict
    assert verdict(80, expected=80, reread_from=None) == "in order"
    assert verdict(79, expected=80, reread_from=None) == "in order"  # a redelivery
    assert verdict(12, expected=None, reread_from=None) == "in order"  # before any seek
    assert verdict(460, expected=80, reread_from=None) == "read again"
    assert verdict(460, expected=80, reread_from=75) == "read again"  # another hole
    # Read again from 80 and the hole came back: not in the log (retention, markers).
    assert verdict(460, expected=80, reread_from=80) == "gap"


def test_a_seek_to_the_committed_offsets_sets_each_stream_partitions_next_offset() -> None:
    import asyncio

    readings, never, changelog = TP("t.readings", 0), TP("t.commands", 1), TP("t-g-changelog", 0)
    consumer = SeekRecorder(
        {readings: 615, never: None, changelog: 4}, changelogs={"t-g-changelog"}
    )
    faust_patches.next_offsets(cast(Consumer, consumer))[TP("t.revoked", 0)] = 9
    before = faust_patches._seeks(cast(Consumer, consumer))
    asyncio.run(faust_patches._perform_seek(cast(Consumer, consumer)))
    assert faust_patches.next_offsets(cast(Consumer, consumer)) == {
        readings: 615,
        never: consumer.log_start,  # read again from the log start (change 3)
    }  # the changelog is recovery's; the revoked partition forgotten
    # Counted before and after: a fetch begun during the seek is not delivered (change 6).
    assert faust_patches._seeks(cast(Consumer, consumer)) == before + 2


def test_a_fetch_begun_before_a_seek_is_stale() -> None:
    consumer: Any = SimpleNamespace(app=FakeApp(4), flow_active=True)
    seeks = faust_patches._seeks(consumer)
    assert not faust_patches._stale(consumer, 4, seeks)
    faust_patches._count_seek(consumer)
    assert faust_patches._stale(consumer, 4, seeks)
    assert faust_patches._stale(consumer, 3, faust_patches._seeks(consumer))  # rebalance


def test_a_fetch_begun_during_a_seek_is_stale_even_if_it_returns_before_the_seek_ends() -> None:
    """The freeze storm's lost commands: a fetch begun while a seek to the committed
    offsets was under way (the count odd) and returned before it ended was delivered.
    Its records came from either side of the seek, and the seek then set the next
    offsets under them: a later hole at the committed offset passed as a gap."""
    consumer: Any = SimpleNamespace(app=FakeApp(4), flow_active=True)
    faust_patches._count_seek(consumer)  # the seek begins
    during = faust_patches._seeks(consumer)
    assert faust_patches._stale(consumer, 4, during)  # same count, still under way
    faust_patches._count_seek(consumer)  # it ends
    assert faust_patches._stale(consumer, 4, during)
    assert not faust_patches._stale(consumer, 4, faust_patches._seeks(consumer))


def test_a_fetch_after_the_group_dropped_the_member_is_stale() -> None:
    """Change 10: a worker frozen past its session wakes in faust's old generation;
    aiokafka's first heartbeat is told the member is unknown and resets its coordinator's
    generation to -1. What it fetches then is another worker's to handle."""
    coordinator = SimpleNamespace(generation=4)
    consumer: Any = SimpleNamespace(
        app=FakeApp(4),
        flow_active=True,
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator)),
    )
    seeks = faust_patches._seeks(consumer)
    assert not faust_patches._stale(consumer, 4, seeks)
    coordinator.generation = -1  # reset_generation(): UnknownMemberIdError
    assert faust_patches._stale(consumer, 4, seeks)
    coordinator.generation = 5  # joined again; faust's assignment callback not yet run
    assert faust_patches._stale(consumer, 4, seeks)
    consumer.app.consumer_generation_id = 5  # faust's on_partitions_assigned
    assert not faust_patches._stale(consumer, 5, seeks)
    # Not started yet (no aiokafka consumer): only faust's own generation counts.
    consumer._thread._consumer = None
    assert not faust_patches._stale(consumer, 5, seeks)


def test_aiokafka_resets_the_generation_when_the_member_is_dropped() -> None:
    """What change 10 reads: aiokafka's coordinator generation, reset by
    ``reset_generation`` on UnknownMemberIdError or IllegalGenerationError in a
    heartbeat, and copied to the app by faust's rebalance listener."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ConsumerRebalanceListener

    reset = inspect.getsource(GroupCoordinator.reset_generation)
    assert "self.generation = OffsetCommitRequest.DEFAULT_GENERATION_ID" in reset
    heartbeat = inspect.getsource(GroupCoordinator)
    assert heartbeat.count("self.reset_generation()") >= 2
    assigned = inspect.getsource(ConsumerRebalanceListener.on_partitions_assigned)
    assert "_coordinator.generation" in assigned and "consumer_generation_id" in assigned
    assert "self._consumer = self._create_consumer(" in inspect.getsource(AIOKafkaConsumerThread)


def test_a_seek_to_the_committed_offsets_forgets_earlier_holes() -> None:
    """Generation 9 read offsets 7885.. again (a hole there); generation 10 seeked back
    to the same committed offset 7885, and a hole there was passed as a gap at once,
    unread, because the mark from generation 9 was still set: three commands fetched
    before the rebalance were committed over and never processed. After a seek, a hole
    is read again once before it may pass as a gap."""
    import asyncio

    commands = TP("t.commands", 0)
    consumer = SeekRecorder({commands: 7885}, changelogs=set())
    faust_patches._reread_from(cast(Consumer, consumer))[commands] = 7885  # generation 9's
    assert faust_patches.order_verdict(7937, 7885, 7885) == "gap"  # what it did
    asyncio.run(faust_patches._perform_seek(cast(Consumer, consumer)))
    reread = faust_patches._reread_from(cast(Consumer, consumer))
    assert reread == {}
    expected = faust_patches.next_offsets(cast(Consumer, consumer))[commands]
    assert faust_patches.order_verdict(7937, expected, reread.get(commands)) == "read again"


def commit_state(committed: int | None, acked: list[int]) -> Any:
    from collections import defaultdict

    from intervaltree import IntervalTree

    tp = TP("t.commands", 0)
    state = SimpleNamespace(
        _acked=defaultdict(list, {tp: list(acked)}),
        _acked_index=defaultdict(set, {tp: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {tp: committed}),
    )
    return state, tp


def test_a_commit_never_passes_the_message_at_the_committed_offset() -> None:
    """Change 8: faust's own check committed 13 here, over message 10 still in hand."""
    faust_offset = original("_new_offset")
    state, tp = commit_state(10, [11, 12])
    assert faust_offset(state, tp) == 13  # the fault, as faust 0.15.3 has it
    state, tp = commit_state(10, [11, 12])
    assert faust_patches._new_offset(cast(Consumer, state), tp) is None
    state, tp = commit_state(10, [10, 11, 12, 14])
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 13
    assert state._acked[tp] == [14]  # kept for the next commit, as faust does


def test_a_never_committed_partition_commits_only_from_its_log_start() -> None:
    state, tp = commit_state(None, [5, 6])
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 7  # no floor known
    state, tp = commit_state(None, [5, 6])
    setattr(state, faust_patches.FLOOR_ATTRIBUTE, {tp: 3})
    assert faust_patches._new_offset(cast(Consumer, state), tp) is None  # 3 and 4 in hand
    state, tp = commit_state(None, [3, 4, 5])
    setattr(state, faust_patches.FLOOR_ATTRIBUTE, {tp: 3})
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 6


def test_a_hole_not_in_the_log_is_committed_over_once_read_again() -> None:
    """Change 7's "gap" (retention deleted 10..459): the gap starts at the committed
    offset itself, so the commit does not wait for it forever."""
    state, tp = commit_state(10, [460, 461])
    state._gap[tp].addi(10, 460)
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 462


def test_a_gap_at_the_end_of_a_partition_is_committed_over() -> None:
    """Change 12: a transaction's commit marker (offset 31) ends a partition that then
    goes quiet; change 9 passes it as a gap. faust merged only gaps below the last acked
    offset, and none at all with nothing acked: the commit stayed at 31 of 32 for good."""
    faust_offset = original("_new_offset")
    state, tp = commit_state(31, [])
    state._gap[tp].addi(31, 32)
    assert faust_offset(state, tp) is None  # the fault, as faust 0.15.3 has it
    state, tp = commit_state(31, [])
    state._gap[tp].addi(31, 32)
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 32
    # Right after the acked run, and a second gap right after the first: both merged.
    state, tp = commit_state(20, [20, 21, 22])
    state._gap[tp].addi(23, 24)
    state._gap[tp].addi(24, 30)
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 30
    assert not state._gap[tp]
    # A gap past a message still in hand waits for it.
    state, tp = commit_state(20, [20, 21])
    state._gap[tp].addi(23, 24)
    assert faust_patches._new_offset(cast(Consumer, state), tp) == 22
    assert state._gap[tp].overlaps(23)


def records(offsets: list[int], partition: int = 0) -> list[Any]:
    """aiokafka's records as its fetcher hands them to faust (timestamps in ms)."""
    from aiokafka.structs import ConsumerRecord

    return [
        ConsumerRecord(
            topic="t.readings",
            partition=partition,
            offset=o,
            timestamp=1_767_225_600_123 + o,
            timestamp_type=0,
            key=f"k{o}".encode(),
            value=f'{{"n":{o}}}'.encode(),
            checksum=None,
            serialized_key_size=3,
            serialized_value_size=8,
            headers=[("h", b"x")],
        )
        for o in offsets
    ]


def built_by_faust(tp: TP, record: Any, generation: int) -> Message:
    """faust's own ``_to_message`` on a consumer whose app is at ``generation``."""
    consumer = SimpleNamespace(app=FakeApp(generation))
    return cast(Message, original("_to_message")(consumer, tp, record))


def fields(message: Message) -> tuple[Any, ...]:
    return (
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.timestamp_type,
        message.headers,
        message.key,
        message.value,
        message.checksum,
        message.serialized_key_size,
        message.serialized_value_size,
        message.tp,
        message.generation_id,
    )


def test_a_batch_builds_faust_messages_only_when_asked_and_equal_to_fausts() -> None:
    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

    tp = TP("t.readings", 1)
    fetched = records([40, 41, 42, 43], partition=1)
    built: list[int] = []

    def to_message(tp: TP, record: Any) -> Message:
        built.append(record.offset)
        return built_by_faust(tp, record, generation=9)  # the app moved on since the fetch

    drain = object.__new__(BatchDrain)
    batch = Batch(drain, tp, fetched, generation=8, to_message=to_message)
    assert built == [43]  # the last one only: it stands for the batch until it is done
    messages = batch.messages
    assert len(messages) == 4 and batch.last is messages[-1] is messages[3]
    assert messages[1] is messages[1] and built == [43, 41]  # built once
    for record, message in zip(fetched, messages, strict=True):
        expected = built_by_faust(tp, record, generation=8)
        assert fields(message) == fields(expected)  # the batch's generation, not the app's
    assert [m.offset for m in messages[1:3]] == [41, 42]
    assert [m.offset for m in messages[::-2]] == [43, 41]
    for outside in (4, -5):
        try:
            messages[outside]
        except IndexError:
            continue
        raise AssertionError(f"index {outside} of a batch of 4 did not raise IndexError")
    values, partitions, offsets, timestamps = messages.columns()
    assert values == [m.value for m in messages]
    assert partitions == [1, 1, 1, 1] and offsets == [40, 41, 42, 43]
    assert timestamps == [m.timestamp for m in messages]  # seconds, as faust's
    # The records are aiokafka's, read the way faust's own _to_message reads them.
    assert "timestamp / 1000.0" in inspect.getsource(AIOKafkaConsumer._to_message)
    assert source_hash(original("_to_message")) == TO_MESSAGE_SOURCE


TO_MESSAGE_SOURCE = faust_patches.READ_SOURCES["_to_message"]


def test_a_batch_of_records_is_acked_by_offset_like_a_batch_of_messages() -> None:
    consumer = consumer_state(generation=3)
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=3)
    drain = object.__new__(BatchDrain)
    drain.app = app
    tp = TP("t.readings", 0)

    def to_message(tp: TP, record: Any) -> Message:
        return built_by_faust(tp, record, generation=3)

    consumer._committed_offset[tp] = 5  # a redelivery from below the committed offset
    first = Batch(drain, tp, records([3, 4, 5, 6]), generation=3, to_message=to_message)
    drain.done(first, acked=True)
    assert consumer._acked[tp] == [5, 6] and consumer._n_acked == 2 and first.last.acked
    again = Batch(drain, tp, records([6, 7, 8]), generation=3, to_message=to_message)
    drain.done(again, acked=True)  # 6 was acked already
    assert consumer._acked[tp] == [5, 6, 7, 8] and consumer._n_acked == 4
    failed = Batch(drain, tp, records([9, 10]), generation=3, to_message=to_message)
    drain.done(failed, acked=False)
    assert consumer._acked[tp] == [5, 6, 7, 8] and failed.last.acked


class QuietConsumer:
    """aiokafka's consumer as ``_positions_past_in_thread`` sees it: its own subscription
    state (aiokafka's class, so a renamed internal fails here) and its seeks."""

    def __init__(self, positions: dict[Any, int | None]) -> None:
        from aiokafka.consumer.subscription_state import SubscriptionState

        self._subscription = SubscriptionState()
        self._subscription.assign_from_user(set(positions))
        for tp, position in positions.items():
            if position is not None:  # None: no valid position yet (being reset)
                self.state(tp).seek(position)
        self.seeks: dict[Any, int] = {}

    def state(self, tp: Any) -> Any:
        return self._subscription.subscription.assignment.state_value(tp)

    def assignment(self) -> frozenset[Any]:
        return cast(frozenset[Any], self._subscription.assigned_partitions())

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset
        self.state(tp).seek(offset)


def quiet_owner(aio: QuietConsumer, nexts: dict[TP, int]) -> Any:
    from collections import defaultdict

    from intervaltree import IntervalTree

    warnings: list[str] = []
    owner: Any = SimpleNamespace(
        app=SimpleNamespace(
            consumer_generation_id=5,
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        ),
        flow_active=True,
        _thread=ConsumerThread(cast(Any, aio)),
        _gap=defaultdict(IntervalTree),
        log=SimpleNamespace(
            warning=lambda fmt, *args: warnings.append(fmt % args),
            debug=lambda fmt, *args: None,
        ),
        warnings=warnings,
    )
    faust_patches.next_offsets(owner).update(nexts)
    return owner


def test_a_quiet_partition_past_its_next_offset_is_read_again_then_passed_as_a_gap() -> None:
    """Trial 15: after a rebalance alerts[0]'s position was past records never handed to
    the agent, and no later record came to show the hole (change 7 needs one): the
    partition stayed committed at 14 of 24 until another message arrived. The sweep
    (change 9) seeks it back; if the same hole comes back, those offsets are not in the
    log and pass as a gap, as change 7 does."""
    asyncio.run(_quiet_partition())


async def _quiet_partition() -> None:
    from aiokafka import TopicPartition

    stalled, busy, fresh = TP("t.alerts", 0), TP("t.alerts", 1), TP("t.commands", 0)
    aio = QuietConsumer(
        {
            TopicPartition(stalled.topic, 0): 24,  # records 14..23 passed over
            TopicPartition(busy.topic, 1): 16,  # at its next offset: nothing to do
            TopicPartition(fresh.topic, 0): None,  # no valid position yet: left alone
        }
    )
    owner = quiet_owner(aio, {stalled: 14, busy: 16, fresh: 0})
    seeks = faust_patches._seeks(owner)
    await faust_patches._sweep(owner, 5, seeks)
    assert aio.seeks == {TopicPartition(stalled.topic, 0): 14}
    assert aio.state(TopicPartition(stalled.topic, 0)).position == 14
    assert faust_patches._reread_from(owner) == {stalled: 14}
    # Not a warning yet: most holes are transaction markers or aborted records.
    assert owner.warnings == []
    assert faust_patches._holes(owner) == {stalled: (14, 23)}
    # Read again from 14 and the position came back past the hole with nothing
    # delivered: not in the log (retention, transaction markers): a gap, as change 7.
    aio.state(TopicPartition(stalled.topic, 0)).consumed_to(24)
    aio.seeks.clear()
    await faust_patches._sweep(owner, 5, seeks)
    assert aio.seeks == {}
    assert faust_patches.next_offsets(owner)[stalled] == 24
    assert [(i.begin, i.end) for i in owner._gap[stalled]] == [(14, 24)]
    assert owner.warnings == [] and faust_patches._holes(owner) == {}  # nothing was lost


@pytest.mark.parametrize(
    ("first_after", "warned"),
    [(14, True), (20, True), (23, True), (24, False), (None, False)],
)
def test_a_hole_read_again_warns_only_if_records_were_in_it(
    first_after: int | None, warned: bool
) -> None:
    """Helper t77: read committed (change 11), a transactional feed leaves a hole at each
    transaction's marker and each aborted transaction; each was read again under the
    warning "were passed over unprocessed", once per transaction boundary. The warning
    now waits for the re-read: records found in the hole (a record at 14..23 handed on
    first) were passed over; the first one past it, or the hole passing as a gap, means
    none was there."""
    tp = TP("t.readings", 1)
    owner = quiet_owner(cast(Any, None), {tp: 14})
    faust_patches.note_hole(owner, tp, 14, 23)
    faust_patches.settle_hole(owner, tp, first_after)
    expected = [
        "citybrain: t.readings[1]: offsets 14..23 had been passed over unprocessed; read again"
    ]
    assert owner.warnings == (expected if warned else [])
    assert faust_patches._holes(owner) == {}
    faust_patches.settle_hole(owner, tp, 14)  # said once: the hole is settled
    assert owner.warnings == (expected if warned else [])


def test_the_sweep_leaves_positions_alone_during_a_seek_or_a_rebalance() -> None:
    """A seek to the committed offsets (counted odd while under way, or since the count
    was read) or a new generation sets positions and next offsets anew: the sweep must
    not seek back to next offsets it has made stale."""
    asyncio.run(_seek_under_way())


async def _seek_under_way() -> None:
    from aiokafka import TopicPartition

    tp = TP("t.alerts", 0)
    aio = QuietConsumer({TopicPartition(tp.topic, 0): 24})
    owner = quiet_owner(aio, {tp: 14})
    faust_patches._count_seek(owner)  # a seek under way
    await faust_patches._sweep(owner, 5, faust_patches._seeks(owner))
    faust_patches._count_seek(owner)  # ended: the sweep's count is now out of date
    await faust_patches._sweep(owner, 5, faust_patches._seeks(owner) - 2)
    await faust_patches._sweep(owner, 4, faust_patches._seeks(owner))  # old generation
    assert aio.seeks == {} and owner.warnings == []
    await faust_patches._sweep(owner, 5, faust_patches._seeks(owner))
    assert aio.seeks == {TopicPartition(tp.topic, 0): 14}


def test_a_key_deleted_outside_recovery_leaves_no_partition_note_in_the_memory_store() -> None:
    """Change 14: faust's memory store notes the changelog partition of every key it
    recovers (``_key_partition``); ``forget_recovered_key`` drops the note as recovery
    does for a tombstone. Fails (AttributeError or a kept note) if faust changes it."""
    from faust.stores.memory import Store as MemoryStore

    app = faust.App("patches-store-test", autodiscover=False)
    table = SimpleNamespace(name="groups")
    store = MemoryStore("memory://", app, table)  # type: ignore[arg-type]

    def event(key: bytes, value: bytes | None, partition: int) -> Any:
        message = SimpleNamespace(partition=partition, value=value)
        return SimpleNamespace(key=key, value=value, message=message)

    batch = [event(b"grp-1", b"{}", 0), event(b"grp-2", b"{}", 1)]
    store.apply_changelog_batch(batch, lambda k: k, lambda v: v)
    assert store._key_partition == {b"grp-1": 0, b"grp-2": 1}  # noted at recovery
    store.data.pop(b"grp-1")  # deleted by citybrain after its retention
    faust_patches.forget_recovered_key(store, b"grp-1")
    faust_patches.forget_recovered_key(store, b"never-recovered")
    assert store._key_partition == {b"grp-2": 1}
    faust_patches.forget_recovered_key(SimpleNamespace(), b"grp-2")  # not a memory store


def test_the_batch_drain_installs_after_another_change_was_installed_first() -> None:
    """``install`` returned as soon as any original was kept, and changes 4, 11 and 15
    keep theirs too: in a process whose first app ran the stock drain (``set_fetch_max_wait``
    and ``read_committed`` only), a later batch-drain app was left with faust's own
    ``_drain_messages``. A fresh interpreter, as the order matters."""
    import subprocess
    import sys

    script = (
        "import faust\n"
        "from faust.transport.consumer import Consumer\n"
        "from streams import faust_patches as p\n"
        "app = faust.App('t-order', broker='kafka://127.0.0.1:1', store='memory://')\n"
        "original = Consumer._drain_messages\n"
        "p.set_fetch_max_wait(app, 0.1); p.read_committed(app); p.start_tables_at_once()\n"
        "assert Consumer._drain_messages is original\n"
        "p.install()\n"
        "assert Consumer._drain_messages is not original, 'not installed'\n"
        "assert p.original('_drain_messages') is original\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_static_member_leaves_the_group_when_it_stops_as_a_dynamic_one_does() -> None:
    # Change 16 (t114): aiokafka 0.14.0 sends no LeaveGroup for a static member, so a
    # worker stopped on purpose left its partitions unread for the session timeout.
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.protocol.group import LeaveGroupRequest

    faust_patches.leave_group_on_stop()
    for name, digest in faust_patches.COORDINATOR_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"aiokafka's GroupCoordinator.{name} changed: port streams/faust_patches.py to it"
        )
    sent: list[Any] = []

    async def send_req(request: Any) -> None:
        sent.append(request)

    def coordinator(instance_id: str | None) -> SimpleNamespace:
        c = SimpleNamespace(
            generation=3, group_id="g", member_id="m-1", _group_instance_id=instance_id
        )
        c._send_req = send_req
        c.reset_generation = lambda: setattr(c, "generation", -1)
        return c

    for instance_id in ("g@http://127.0.0.1:16066", None):
        c = coordinator(instance_id)
        asyncio.run(GroupCoordinator._maybe_leave_group(c))  # type: ignore[arg-type]
        assert c.generation == -1
    assert [type(r) for r in sent] == [LeaveGroupRequest, LeaveGroupRequest]
    sent.clear()
    static = coordinator("g@http://127.0.0.1:16066")
    asyncio.run(original("_maybe_leave_group")(static))  # aiokafka's own: no leave
    assert sent == []


def test_the_recovery_internals_change_17_relies_on_are_unchanged_upstream() -> None:
    faust_patches.read_changelogs_once()
    for name, digest in faust_patches.RECOVERY_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"{name} changed upstream: port change 17 of streams/faust_patches.py to it"
        )


def _recovery(active_offset: int) -> tuple[SimpleNamespace, list[dict[TP, int]], set[TP]]:
    """A recovery that has read the global table's changelog partition 0 (both active and
    standby) to ``active_offset``; partition 1 is a standby only, never read."""
    both, standby_only = TP("app-silences-changelog", 0), TP("app-silences-changelog", 1)
    seeks: list[dict[TP, int]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        seeks.append(dict(offsets))

    recovery = SimpleNamespace(
        active_tps={both},
        active_offsets={both: active_offset},
        standby_offsets={both: -1, standby_only: -1},  # faust's after _build_offsets
        log=SimpleNamespace(info=lambda *args: None),
        consumer=SimpleNamespace(seek_wait=seek_wait),
    )
    return recovery, seeks, {both, standby_only}


def test_a_global_tables_standby_read_goes_on_from_its_active_recovery() -> None:
    # Change 17 (t136): faust 0.15.3 sought a partition both active and standby back to
    # 0 after recovery had read it to its end, and a silence written after a start waited
    # for that second read of 9,990 others (22-36 s, t135).
    from faust.tables.recovery import Recovery

    faust_patches.read_changelogs_once()
    recovery, seeks, tps = _recovery(9_989)
    both, standby_only = sorted(tps)
    standby = recovery.standby_offsets
    asyncio.run(Recovery._seek_offsets(recovery, recovery.consumer, tps, standby, "standby"))  # type: ignore[arg-type]
    assert seeks == [{both: 9_989, standby_only: 0}]
    assert standby == {both: -1, standby_only: -1}  # faust's own bookkeeping unchanged
    # faust's own: from 0 again.
    asyncio.run(
        original("Recovery._seek_offsets")(recovery, recovery.consumer, tps, standby, "standby")
    )
    assert seeks[-1] == {both: 0, standby_only: 0}
    # The active seek is faust's (its offsets are not the standby ones).
    active = {both: 41}
    asyncio.run(Recovery._seek_offsets(recovery, recovery.consumer, {both}, active, "active"))  # type: ignore[arg-type]
    assert seeks[-1] == {both: 41}


def test_a_standby_start_is_never_moved_back() -> None:
    both, standby_only = TP("c", 0), TP("c", 1)
    starts = faust_patches.standby_seek_offsets(
        {both, standby_only}, {both: 50, standby_only: 7}, {both}, {both: 40}
    )
    assert starts == {both: 50, standby_only: 7}
    # An active partition not read yet (None), and a standby with no offset at all.
    assert faust_patches.standby_seek_offsets({both}, {both: None}, {both}, {both: None}) == {
        both: None
    }
    assert faust_patches.standby_seek_offsets({both}, {both: None}, {both}, {both: 3}) == {both: 3}


def test_the_changelog_queue_keeps_this_generations_records_when_the_flow_resumes() -> None:
    # Change 17's partner: faust empties its changelog queue at every flow resume, twice
    # while recovery reads a changelog (recovery.py:545 and :659), with the consumer's
    # read offset already past what it empties: an entry read then was lost.
    from faust.tables.manager import TableManager
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    faust_patches.read_changelogs_once()

    def event(offset: int, generation: int) -> SimpleNamespace:
        return SimpleNamespace(message=SimpleNamespace(offset=offset, generation_id=generation))

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        flow = FlowControlEvent(initially_suspended=False)
        app = SimpleNamespace(
            consumer_generation_id=4,
            conf=SimpleNamespace(stream_buffer_maxsize=100),
            FlowControlQueue=lambda **kw: FlowControlQueue(flow_control=flow, **kw),
        )
        manager = SimpleNamespace(app=app, _changelog_queue=None)
        queue = TableManager.changelog_queue.fget(manager)  # type: ignore[attr-defined]
        manager._changelog_queue = queue
        assert TableManager.changelog_queue.fget(manager) is queue  # type: ignore[attr-defined]
        for offset, generation in ((7, 3), (12, 4), (13, 4)):
            queue.put_nowait(event(offset, generation))
        flow.resume()  # recovery resumes the flow: the older generation's record goes
        resumed = [e.message.offset for e in queue._queue]
        flow.suspend()  # a revoke: everything goes, as faust's
        flow.clear()
        revoked = [e.message.offset for e in queue._queue]
        stock = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        stock.put_nowait(event(12, 4))
        flow.resume()
        return resumed, revoked, [e.message.offset for e in stock._queue]

    resumed, revoked, stock = asyncio.run(scenario())
    assert resumed == [12, 13]
    assert revoked == []
    assert stock == []  # mode's own clear: this generation's record lost


class ReassignedMidRead:
    """aiokafka's subscription state whose assignment the consumer's thread replaces
    (a rebalance, a new subscription) right after the event loop's thread first looks
    at it: between aiokafka's ``is_assigned`` check and its read of the partition's
    state, for aiokafka's ``highwater``, which reads that state in several steps."""

    def __init__(self, assigned: set[Any], after: set[Any]) -> None:
        from aiokafka.consumer.subscription_state import SubscriptionState

        self.state = SubscriptionState()
        self.state.subscribe(topics={tp.topic for tp in assigned | after})
        self.state.assign_from_subscribed(assigned)
        self.after: set[Any] | None = after
        self._fetched(assigned)

    def _fetched(self, tps: set[Any]) -> None:
        for tp in tps:  # as aiokafka's fetcher sets it from a fetch response
            self.state.subscription.assignment.state_value(tp).highwater = 100

    def _thread_runs(self) -> None:
        if self.after is not None:  # once
            self.state.assign_from_subscribed(self.after)
            self._fetched(self.after)
            self.after = None

    @property
    def subscription(self) -> Any:
        found = self.state.subscription
        self._thread_runs()
        return found

    def is_assigned(self, tp: Any) -> bool:
        answer = self.state.is_assigned(tp)
        self._thread_runs()
        return answer


class DrainedConsumer:
    """faust's aiokafka consumer as ``_drain_messages`` uses it for one fetch: the
    records it returns, the messages it hands on, and aiokafka's consumer (its
    ``highwater`` aiokafka's own) behind a consumer thread (its ``highwater`` faust's)."""

    def __init__(self, fetched: dict[TP, list[Any]], subscription: Any) -> None:
        from collections import defaultdict

        import aiokafka
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
        from faust.transport.utils import DefaultSchedulingStrategy

        self.fetched: dict[TP, list[Any]] | None = fetched
        self.handed_on: list[tuple[TP, int]] = []
        self.end_offsets: dict[TP, int] = {}
        self.errors: list[str] = []
        aio = SimpleNamespace(
            _subscription=subscription,
            highwater=lambda tp: aiokafka.AIOKafkaConsumer.highwater(aio, tp),
        )
        thread = SimpleNamespace(_consumer=aio, _ensure_consumer=lambda: aio, consumer=self)
        self._thread = thread
        self.highwater = lambda tp: AIOKafkaConsumerThread.highwater(cast(Any, thread), tp)
        self.in_transaction = False
        self.app = SimpleNamespace(
            consumer_generation_id=2,
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            tables=SimpleNamespace(changelog_topics=set()),
            monitor=SimpleNamespace(track_tp_end_offset=self.end_offsets.__setitem__),
        )
        self._stopped = asyncio.Event()
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self._commit_every = None
        self._buffered_partitions: set[TP] = set()
        self.flow_active = True
        self.should_stop = False
        self.scheduler = DefaultSchedulingStrategy()
        self.consumer_stopped_errors = ()
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.log = SimpleNamespace(
            exception=lambda fmt, *args: self.errors.append(fmt % args),
            warning=self.errors.append,
            info=lambda *args: None,
            debug=lambda *args: None,
        )

    def _to_message(self, tp: TP, record: Any) -> Message:
        return cast(Message, original("_to_message")(self, tp, record))

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        fetched, self.fetched = self.fetched, None
        if fetched is None:  # one fetch, then the worker stops
            self._stopped.set()
            return None, None
        return fetched, set(fetched)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def callback(self, message: Message) -> None:
        self.handed_on.append((message.tp, message.offset))


def test_a_partition_reassigned_while_its_end_offset_is_read_never_stops_the_drain() -> None:
    """The drain reads each fetched partition's end offset on the event loop's thread.
    faust's ``highwater`` (aiokafka's) asserts the partition is assigned, then reads the
    assignment again: the consumer's thread replacing it in between (a rebalance, a new
    subscription) raised ``AssertionError`` ("Partition is not assigned") or
    ``AttributeError`` (``None.highwater``) out of the drain, which stopped the worker.
    Read once, off the assignment in hand, it is only not known."""
    from aiokafka import TopicPartition

    kept, moved = TP("t.readings", 0), TP("t.readings", 1)

    async def drained() -> DrainedConsumer:
        subscription = ReassignedMidRead(  # its futures want a running loop
            assigned={TopicPartition(kept.topic, 0), TopicPartition(moved.topic, 1)},
            after={TopicPartition(kept.topic, 0)},
        )
        consumer = DrainedConsumer(
            {kept: records([5, 6]), moved: records([7], partition=1)}, subscription
        )
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        await faust_patches._drain_messages(cast(Consumer, consumer), cast(Any, fetcher))
        return consumer

    consumer = asyncio.run(drained())
    assert consumer.errors == []
    assert sorted(consumer.handed_on) == [(kept, 5), (kept, 6), (moved, 7)]
    # Known for the partition still assigned; not guessed for the other.
    assert consumer.end_offsets == {kept: 100}


class ThreadRecorder:
    """faust's consumer thread as ``Consumer.seek`` uses it: ``call_thread`` runs a
    function as the thread would, and aiokafka's seek must happen there."""

    def __init__(self) -> None:
        self.on_thread = False
        self.seeks: list[tuple[TP, int]] = []

    def seek(self, tp: TP, offset: int) -> None:  # AIOKafkaConsumerThread.seek's shape
        assert self.on_thread, "aiokafka's consumer seeked from the event loop's thread"
        self.seeks.append((tp, offset))

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        self.on_thread = True
        try:
            result = fun(*args)  # mode's method queue: maybe_async
            return await result if inspect.isawaitable(result) else result
        finally:
            self.on_thread = False


def test_fausts_seek_runs_on_the_consumers_thread() -> None:
    """``Consumer.seek`` (faust's public seek, ``ThreadDelegateConsumer._seek``) called
    aiokafka's ``seek`` from the event loop's thread: the KeyError of change 3 for any
    caller. It goes through ``call_thread`` now."""
    faust_patches.keep_to_the_consumer_thread()
    tp = TP("t.readings", 3)
    consumer = SimpleNamespace(
        _thread=ThreadRecorder(), _read_offset={}, log=SimpleNamespace(dev=lambda *a: None)
    )
    from faust.transport.consumer import ThreadDelegateConsumer

    consumer._seek = lambda partition, offset: ThreadDelegateConsumer._seek(
        cast(Any, consumer), partition, offset
    )
    asyncio.run(Consumer.seek(cast(Any, consumer), tp, 12))
    assert consumer._thread.seeks == [(tp, 12)]
    assert consumer._read_offset == {tp: 12}


class MovedWhileChecked:
    """aiokafka's subscription state whose assignment the consumer's thread replaces
    (a rebalance) right after its ``subscription`` is read for the ``moved_after``-th
    time: between two of faust's reads when it checks a partition."""

    def __init__(self, tps: set[Any], moved_after: int, position: int | None = 5) -> None:
        from aiokafka.consumer.subscription_state import SubscriptionState

        self.state = SubscriptionState()
        self.state.subscribe(topics={tp.topic for tp in tps})
        self.state.assign_from_subscribed(tps)
        for tp in tps:
            tp_state = self.state.subscription.assignment.state_value(tp)
            tp_state.timestamp = 1_000  # fetched (ms)
            if position is not None:  # None: its position being reset
                tp_state.seek(position)
        self.reads = 0
        self.moved_after = moved_after

    @property
    def subscription(self) -> Any:
        found = self.state.subscription
        self.reads += 1
        if self.reads == self.moved_after:
            self.state.assign_from_subscribed(set())  # its partitions went to another
        return found


def checked_thread(subscription: Any, errors: list[str]) -> Any:
    """faust's ``AIOKafkaConsumerThread`` as its partition checks read it."""
    aio = SimpleNamespace(
        _subscription=subscription, _fetcher=SimpleNamespace(_subscriptions=subscription)
    )
    app = SimpleNamespace(
        monitor=SimpleNamespace(stream_inbound_time={}),
        topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
    )
    return SimpleNamespace(
        _consumer=aio,
        _ensure_consumer=lambda: aio,
        consumer=SimpleNamespace(app=app),
        time_started=0.0,
        tp_fetch_request_timeout_secs=1e9,
        tp_stream_timeout_secs=1e9,
        tp_commit_timeout_secs=1e9,
        log=SimpleNamespace(error=lambda fmt, *args: errors.append(fmt % args)),
    )


@pytest.mark.parametrize("moved_after", [1, 2, 3, 4])
def test_a_partition_moved_while_faust_checks_it_is_let_go(moved_after: int) -> None:
    """faust's consumer checks each partition of an assignment read before it awaited
    (``verify_all_partitions_active``), reading aiokafka's subscription state on the
    event loop's thread twice: the consumer's thread replacing the assignment between
    the reads made ``state_value(tp)`` None and ``None.highwater`` raised out of faust's
    timer (moved after the second read), which crashed the consumer."""
    from aiokafka import TopicPartition
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_patches.keep_to_the_consumer_thread()
    tp = TP("t.readings", 0)

    async def checked() -> list[str]:
        errors: list[str] = []
        subscription = MovedWhileChecked({TopicPartition(tp.topic, 0)}, moved_after)
        thread = checked_thread(subscription, errors)
        thread._verify_aiokafka_event_path = lambda now, tp: (
            AIOKafkaConsumerThread._verify_aiokafka_event_path(thread, now, tp)
        )
        AIOKafkaConsumerThread.verify_event_path(thread, 10.0, tp)
        return errors

    assert asyncio.run(checked()) == []


def test_a_partition_no_longer_assigned_is_not_said_unfetched() -> None:
    """A partition a rebalance moved after faust read the assignment it checks was
    told "no fetch request sent at all since worker start" at error level."""
    from aiokafka import TopicPartition
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_patches.keep_to_the_consumer_thread()
    tp = TP("t.readings", 0)

    async def checked() -> list[str]:
        errors: list[str] = []
        subscription = MovedWhileChecked({TopicPartition(tp.topic, 1)}, moved_after=0)
        thread = checked_thread(subscription, errors)
        thread.tp_fetch_request_timeout_secs = 5.0
        thread._verify_aiokafka_event_path = lambda now, tp: (
            AIOKafkaConsumerThread._verify_aiokafka_event_path(thread, now, tp)
        )
        AIOKafkaConsumerThread.verify_recovery_event_path(thread, 10.0, tp)
        AIOKafkaConsumerThread.verify_event_path(thread, 10.0, tp)
        return errors

    assert asyncio.run(checked()) == []


def test_a_partition_whose_position_is_being_reset_is_checked_without_it() -> None:
    """faust's ``verify_event_path`` reads aiokafka's ``state.position``, which asserts
    a valid one: a partition assigned with no committed offset yet, or seeked to its
    log start, while the consumer's thread resets it, raised ``AssertionError`` out of
    faust's timer. Only its fetch is checked now (``_verify_aiokafka_event_path``)."""
    from aiokafka import TopicPartition
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_patches.keep_to_the_consumer_thread()
    tp = TP("t.readings", 0)

    async def checked(fetch_timeout: float) -> list[str]:
        errors: list[str] = []
        subscription = MovedWhileChecked({TopicPartition(tp.topic, 0)}, 0, position=None)
        thread = checked_thread(subscription, errors)
        thread.tp_fetch_request_timeout_secs = fetch_timeout  # its last fetch: 9 s ago
        thread._verify_aiokafka_event_path = lambda now, tp: (
            AIOKafkaConsumerThread._verify_aiokafka_event_path(thread, now, tp)
        )
        AIOKafkaConsumerThread.verify_event_path(thread, 10.0, tp)
        return errors

    assert asyncio.run(checked(fetch_timeout=60.0)) == []
    errors = asyncio.run(checked(fetch_timeout=5.0))  # a fetch overdue is still said
    assert len(errors) == 1 and "t.readings" in errors[0], errors


def test_the_thread_internals_are_unchanged_upstream() -> None:
    faust_patches.keep_to_the_consumer_thread()
    for name, digest in faust_patches.THREAD_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"{name} changed upstream: re-read which thread it runs on "
            "(streams/faust_patches.py, change 18)"
        )
    # What already runs on the consumer's thread, and must stay so.
    for name in ("seek_to_committed", "earliest_offsets", "seek_wait", "position", "commit"):
        assert "call_thread" in inspect.getsource(original(f"AIOKafkaConsumerThread.{name}"))
    # The ways in to what change 18 replaces: faust's consumer delegates to its thread.
    from faust.transport.consumer import ThreadDelegateConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

    delegations = {
        Consumer.seek: "await self._seek(partition, offset)",
        ThreadDelegateConsumer.assignment: "return self._thread.assignment()",
        ThreadDelegateConsumer.verify_recovery_event_path: (
            "return self._thread.verify_recovery_event_path(now, tp)"
        ),
        AIOKafkaConsumer.verify_event_path: "return self._thread.verify_event_path(now, tp)",
    }
    for method, call in delegations.items():
        assert call in inspect.getsource(method), method
    # The attributes read off it: aiokafka's consumer, and the consumer's transaction flag.
    assert "self._consumer = " in inspect.getsource(AIOKafkaConsumerThread)
    assert "self.in_transaction = " in inspect.getsource(Consumer)


def test_the_assignment_is_read_once_while_faust_subscribes_anew() -> None:
    """aiokafka's ``assigned_partitions`` reads the current subscription three times on
    the caller's thread; faust's conductor subscribing anew on the consumer's thread
    (the topics read changed) between the second and third read gave ``None.tps``, an
    ``AttributeError`` out of ``Consumer.assignment`` (a commit, a metric)."""
    from aiokafka import TopicPartition
    from aiokafka.consumer.subscription_state import Subscription, SubscriptionState
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_patches.keep_to_the_consumer_thread()
    tp = TopicPartition("t.readings", 0)

    class Resubscribed(SubscriptionState):
        reads: int | None = None  # counted once the test begins

        @property  # type: ignore[override]
        def _subscription(self) -> Any:
            found = self.__dict__.get("current")
            if self.reads is not None:
                self.reads += 1
            if self.reads == 2:  # the thread ran here: a new subscription, no assignment
                self.__dict__["current"] = Subscription({"t.readings", "t.more"})
            return found

        @_subscription.setter
        def _subscription(self, value: Any) -> None:
            self.__dict__["current"] = value

    async def assigned() -> set[TP]:
        state = Resubscribed()
        state.subscribe(topics={"t.readings"})
        state.assign_from_subscribed({tp})
        state.reads = 0
        aio = SimpleNamespace(_subscription=state, assignment=lambda: state.assigned_partitions())
        thread = SimpleNamespace(_ensure_consumer=lambda: aio)
        return cast(set[TP], AIOKafkaConsumerThread.assignment(cast(Any, thread)))

    assert asyncio.run(assigned()) == {TP("t.readings", 0)}  # as it was when read


def test_a_member_the_group_dropped_is_told_from_one_that_stops() -> None:
    """Change 19: aiokafka's coordinator generation -1 while it is not closing is the
    group's word that this member is gone (its partitions lost, not revoked); a stop's
    LeaveGroup resets the generation too, and is no loss."""
    closed = [False]
    coordinator = SimpleNamespace(generation=4, _closing=SimpleNamespace(done=lambda: closed[0]))
    consumer: Any = SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))
    )
    assert not faust_patches.group_dropped(consumer)
    coordinator.generation = -1  # reset_generation(): UnknownMemberIdError
    assert faust_patches.group_dropped(consumer)
    coordinator.generation = 5  # joined again
    assert not faust_patches.group_dropped(consumer)
    coordinator.generation = -1
    closed[0] = True  # close(): the LeaveGroup of a stop
    assert not faust_patches.group_dropped(consumer)
    consumer._thread._consumer = None  # not started
    assert not faust_patches.group_dropped(consumer)


def test_the_internals_change_19_relies_on_are_unchanged_upstream() -> None:
    """What ``group_dropped`` and ``read_whole_again`` read and call: aiokafka 0.14.0's
    generation reset to -1 (``OffsetCommitRequest.DEFAULT_GENERATION_ID``) and its
    ``_closing`` future, set at ``close`` before the LeaveGroup; the revocation listener
    called at a join after the reset; faust's ``Recovery.revoke``, which forgets the
    offset a changelog partition was read to, so it is read from its log start again."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.protocol.commit import OffsetCommitRequest
    from faust.tables.recovery import Recovery

    assert OffsetCommitRequest.DEFAULT_GENERATION_ID == faust_patches.NO_GENERATION
    reset = inspect.getsource(GroupCoordinator.reset_generation)
    assert "self.generation = OffsetCommitRequest.DEFAULT_GENERATION_ID" in reset
    close = inspect.getsource(GroupCoordinator.close)
    assert close.index("self._closing.set_result(None)") < close.index("_maybe_leave_group")
    assert "self._closing = create_future()" in inspect.getsource(GroupCoordinator.__init__)
    prepare = inspect.getsource(GroupCoordinator._on_join_prepare)
    assert "listener.on_partitions_revoked(revoked)" in prepare
    revoke = inspect.getsource(Recovery.revoke)
    assert "self.active_offsets.pop(tp, None)" in revoke
    add = inspect.getsource(Recovery._add)
    assert "offsets.setdefault(tp, None)" in add


def test_a_released_message_is_done_but_never_acked() -> None:
    """Change 19: a message an agent leaves unhandled (the group dropped the worker) is
    released: a revocation no longer waits for it, and no commit passes it."""

    class Held:
        acked = False

    message = cast(Message, Held())
    consumer = SimpleNamespace(_unacked_messages={message}, _waiting_for_ack=None, _acked={})
    faust_patches.release(consumer, message)
    assert message.acked and not consumer._unacked_messages and consumer._acked == {}
