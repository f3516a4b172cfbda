"""A dead letter carries its original record whole: ``original_record`` and the
original headers' share of ``fit_dead_letter`` (helper t81: headers were dropped)."""

from __future__ import annotations

from pathlib import Path

from streams.events import MAX_MESSAGE_BYTES, fit_dead_letter, original_record

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_the_original_headers_are_kept_in_order_binary_and_namespaced() -> None:
    sent = [("hop", b"a"), ("hop", b"b"), ("bin", b"\x00\xff"), ("nul", None)]
    sent.append(("citybrain.error.reason", b"spoofed"))
    carried = original_record(b"pack-1", b"gauge-1", 1.5, 1, sent)
    assert carried == [
        ("citybrain.original.timestamp", b"1500"),
        ("citybrain.original.timestamp_type", b"LogAppendTime"),
        ("citybrain.original.key", b"pack-1"),
        ("citybrain.original.header.hop", b"a"),
        ("citybrain.original.header.hop", b"b"),
        ("citybrain.original.header.bin", b"\x00\xff"),
        ("citybrain.original.header.nul", None),  # null, not empty
        ("citybrain.original.header.citybrain.error.reason", b"spoofed"),
    ]


def test_the_original_key_is_said_only_when_the_dead_letter_has_another() -> None:
    assert original_record(b"k", b"k", None, None, None) == []
    assert original_record(None, b"gauge-1", None, None, ()) == [
        ("citybrain.original.key_null", b"")
    ]


def test_a_tombstone_is_said_apart_from_an_empty_value() -> None:
    assert original_record(b"k", b"k", None, None, (), tombstone=True) == [
        ("citybrain.original.value_null", b"")
    ]
    assert original_record(b"k", b"k", None, None, ()) == []


def test_headers_too_large_for_one_message_keep_their_first_and_say_so() -> None:
    ours = [("citybrain.error.reason", b"bad_json")]
    carried = [(f"citybrain.original.header.h{i}", b"x" * 10_000) for i in range(200)]
    key, value, headers = fit_dead_letter(b"v" * 900_000, b"k", ours, original=carried)
    size = len(key or b"") + len(value) + sum(len(n) + len(v) for n, v in headers)
    assert size <= MAX_MESSAGE_BYTES
    kept = [h for h in headers if h[0].startswith("citybrain.original.header.")]
    assert kept == carried[: len(kept)] and 0 < len(kept) < 200
    assert dict(headers)["citybrain.error.headers_truncated"] == f"{len(kept)} of 200".encode()
    assert "citybrain.error.truncated" in dict(headers)  # the value made room too


def test_a_pack_s_record_goes_whole_with_its_first_dead_letters_only() -> None:
    """t150: each refused reading of a pack carried the pack record's headers (and key)
    whole: a pack of 100 kB of headers and 10,000 bad readings made 1 GB of dead
    letters. Now a message's dead letters carry its record while all carried stays
    within 500,000 bytes; the later ones keep its timestamp and say what they left out.
    Another message starts afresh."""
    from streams.events import CarriedSpend

    spend = CarriedSpend(kept=2)
    sent = [("trace", b"t" * 100_000)]
    pack = original_record(b"pack-1", b"gauge-1", 1.5, 0, sent)
    shares = [spend.share(("p.readings", 0, 7), pack) for _ in range(10)]
    assert shares[:4] == [pack] * 4
    assert shares[4] == [
        ("citybrain.original.timestamp", b"1500"),
        ("citybrain.original.timestamp_type", b"CreateTime"),
        ("citybrain.error.headers_truncated", b"0 of 2"),
    ]
    assert spend.share(("p.readings", 0, 8), pack) == pack  # another message
    assert spend.share(("p.readings", 1, 8), pack) == pack
    # Two remembered: the first message is forgotten, and would start afresh.
    assert spend.share(("p.readings", 0, 7), pack) == pack
    # A record with nothing of its own to carry always carries it.
    bare = original_record(b"k", b"k", 1.5, 0, [])
    assert all(spend.share(("p.readings", 0, 9), bare) == bare for _ in range(3))


def test_the_worker_s_dead_letters_of_one_pack_share_its_record(tmp_path: Path) -> None:
    """The worker's ``send_dead_letter`` keeps the bound: 20 refused readings of one pack
    with 100 kB of headers carry them 4 times, not 20."""
    import asyncio
    from types import SimpleNamespace
    from typing import Any

    import faust
    from prometheus_client import CollectorRegistry

    from playbooks.loader import load_grid
    from streams.context import Context
    from streams.metrics import Metrics
    from streams.settings import Settings

    settings = Settings(run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml")
    app = faust.App("t-carried", store="memory://", broker="kafka://127.0.0.1:1")
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    sent: list[list[tuple[str, bytes]]] = []

    class Topic:
        """faust's channel interface as ``Context.send_said`` uses it."""

        def as_future_message(self, key: Any, value: Any, headers: Any) -> asyncio.Future[None]:
            sent.append(headers)
            return asyncio.get_running_loop().create_future()

        async def publish_message(self, message: asyncio.Future[None]) -> None:
            message.set_result(None)

        def get_topic_name(self) -> str:
            return "t.deadletter"

    ctx.deadletter = Topic()  # type: ignore[assignment]
    pack = SimpleNamespace(
        topic="t.readings",
        partition=0,
        offset=3,
        key=b"pack-1",
        value=b"{}",
        timestamp=1.5,
        timestamp_type=0,
        headers=[("trace", b"t" * 100_000)],
    )

    async def refuse() -> None:
        for i in range(20):
            await ctx.send_dead_letter(
                "readings",
                b"{}",
                b"gauge-1",
                "bad_type",
                "why",
                f"t.readings/0/3#{i}",
                pack,  # type: ignore[arg-type]
            )

    asyncio.run(refuse())
    carrying = [any(n == "citybrain.original.header.trace" for n, _ in h) for h in sent]
    assert carrying == [True] * 4 + [False] * 16
    assert all(dict(h)["citybrain.error.headers_truncated"] == b"0 of 2" for h in sent[4:])
