"""streams/faust_patches.py replaces faust internals: fail loudly when faust changes."""

from __future__ import annotations

import inspect

import faust
from faust.transport.consumer import Consumer
from faust.types import Message

from streams import faust_patches
from streams.faust_patches import FAUST_VERSION, PATCHED_SOURCES, original, source_hash

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
