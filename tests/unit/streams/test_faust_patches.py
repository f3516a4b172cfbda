"""streams/faust_patches.py replaces faust internals: fail loudly when faust changes."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from streams import faust_patches
from streams.faust_patches import (
    FAUST_VERSION,
    PATCHED_SOURCES,
    Batch,
    BatchDrain,
    original,
    source_hash,
)

CONSUMER_ATTRIBUTES = (
    "_wait_next_records",
    "_to_message",
    "_add_gap",
    "perform_seek",
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


def test_install_replaces_both_methods_once() -> None:
    faust_patches.install()
    faust_patches.install()
    assert Consumer._drain_messages is faust_patches._drain_messages
    assert Consumer.ack is faust_patches._ack
    assert original("ack") is not faust_patches._ack


def test_the_internals_it_relies_on_exist() -> None:
    source = inspect.getsource(Consumer)
    for name in CONSUMER_ATTRIBUTES:
        assert hasattr(Consumer, name), name
    for name in CONSUMER_STATE:
        assert f"self.{name}" in source or f"    {name}:" in source, name
    assert "generation_id" in Message.__slots__ and "acked" in Message.__slots__
    assert list(inspect.signature(original("_drain_messages")).parameters) == ["self", "fetcher"]
    assert list(inspect.signature(original("ack")).parameters) == ["self", "message"]
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
