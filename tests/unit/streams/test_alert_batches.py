"""t187, the routed agent's sibling on the alerts stage: the alerts agent took one alert at
a time and awaited each alert's routed messages on Kafka (a round trip per alert), so a
storm of alerts held every other alert read after it. It now takes a batch (one
partition's fetch) and awaits the delivery of the batch's routed messages once, at its
end, before the batch is acked. An alert whose muted entry is dropped once it is routed
still awaits its own (the entry must not go before the routed message is on Kafka).

No broker: the stage of tests/unit/streams/test_muted_alerts.py, its sends recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.partitioning import key_partition
from tests.unit.streams.test_muted_alerts import Stage, burst, far_future


def messages(*docs: dict[str, Any], partition: int | None = None) -> list[Any]:
    """A batch of the alerts topic, as the batch drain hands it (offsets in order), each
    alert on its id's partition (``partition``: all on that one), keyed by its id."""
    return [
        SimpleNamespace(
            topic="t.alerts",
            partition=key_partition(doc["alert_id"].encode(), 2)
            if partition is None
            else partition,
            offset=n,
            key=doc["alert_id"].encode(),
            value=orjson.dumps(doc),
            timestamp=None,
            timestamp_type=0,
            headers=[],
        )
        for n, doc in enumerate(docs)
    ]


class Sends:
    """``queue_all`` recorded: what was queued and when each delivery was awaited, in one
    log; the delivery of ``refused`` alerts fails."""

    def __init__(self, s: Stage, monkeypatch: pytest.MonkeyPatch, refused: set[str]) -> None:
        self.log: list[str] = []
        self.letters: list[tuple[str, str, str]] = []

        async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
            futures = []
            for _, doc in items:
                alert_id = doc["alert"]["alert_id"]
                self.log.append(f"queued {alert_id}")
                s.routed.append((_, doc))
                futures.append(self.delivery(alert_id, alert_id in refused))
            return futures

        async def dead_letter(role: str, event: Any, code: str, reason: str, *a: Any) -> None:
            self.letters.append((role, code, reason))

        monkeypatch.setattr(s.ctx, "queue_all", queue_all)
        monkeypatch.setattr(s.ctx, "dead_letter", dead_letter)

    async def delivery(self, alert_id: str, refused: bool) -> None:
        self.log.append(f"delivered {alert_id}")
        if refused:
            raise OSError(f"Kafka refused the routed message of {alert_id}")


def test_a_batch_of_alerts_awaits_their_routed_messages_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every routed message of the batch queued before any delivery is awaited (fails on
    the old code: one alert at a time, each awaited before the next was read)."""
    s = Stage(tmp_path, monkeypatch)
    sends = Sends(s, monkeypatch, refused=set())
    docs = [burst(f"al-{n}", "Noise - Vehicle", community=f"c{n % 3}") for n in range(50)]
    asyncio.run(s.stage.on_alert_batch(messages(*docs)))
    queued = [line for line in sends.log if line.startswith("queued")]
    assert len(queued) == 50
    assert sends.log[:50] == queued  # all queued first, then delivered
    assert s.run_ids() == [f"al-{n}" for n in range(50)]  # each routed, in order
    assert sends.letters == []


def test_a_routed_message_refused_costs_only_its_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka refuses one alert's routed message: that alert is dead-lettered with the
    reason, as one alert at a time was; the batch's other alerts are routed."""
    s = Stage(tmp_path, monkeypatch)
    sends = Sends(s, monkeypatch, refused={"al-1"})
    docs = [burst(f"al-{n}", "Noise - Vehicle") for n in range(3)]
    asyncio.run(s.stage.on_alert_batch(messages(*docs)))
    assert [(role, code) for role, code, _ in sends.letters] == [("alerts", "processing_error")]
    assert "Kafka refused the routed message of al-1" in sends.letters[0][2]
    assert sum(line.startswith("delivered") for line in sends.log) == 3


def test_an_alert_freed_from_its_mute_in_a_batch_drops_its_entry_once_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert with a muted entry, no longer muted when it comes again: its routed
    message queued with the batch's and its entry dropped only once that is delivered
    (t208; before, ``send_all`` awaited its own delivery, a round trip per alert): the
    entry is still stored while the delivery is awaited, so a kill in between loses
    neither."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    assert b"al-1" in s.stage.muted.data and s.routed == []
    del s.silences[b"s1"]
    sends = Sends(s, monkeypatch, refused=set())
    kept_while_delivered: list[bool] = []
    deliver = sends.delivery

    async def delivery(alert_id: str, refused: bool) -> None:
        kept_while_delivered.append(b"al-1" in s.stage.muted.data)
        await deliver(alert_id, refused)

    monkeypatch.setattr(sends, "delivery", delivery)
    asyncio.run(s.stage.on_alert_batch(messages(burst("al-1", "Noise - Vehicle"))))
    assert sends.log == ["queued al-1", "delivered al-1"] and kept_while_delivered == [True]
    assert s.run_ids() == ["al-1"] and b"al-1" not in s.stage.muted.data


def test_a_silenced_storm_resolving_awaits_its_resolutions_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t208, the sibling of the mute check's: 50 silenced alerts resolved in one batch
    (the storm's end while its silence holds): every resolution queued before any
    delivery is awaited (fails on the old code: each alert with a muted entry awaited
    its own, ``send_all``, a round trip per alert), each entry dropped once delivered;
    one Kafka refuses is dead-lettered with the reason and keeps its entry."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    for n in range(50):
        s.alert(burst(f"al-{n}", "Noise - Vehicle", community=f"c{n % 3}"))
    assert len(s.stage.muted.data) == 50
    sends = Sends(s, monkeypatch, refused={"al-7"})
    docs = [
        burst(f"al-{n}", "Noise - Vehicle", community=f"c{n % 3}", status="resolved")
        for n in range(50)
    ]
    asyncio.run(s.stage.on_alert_batch(messages(*docs)))
    queued = [line for line in sends.log if line.startswith("queued")]
    assert len(queued) == 50 and sends.log[:50] == queued  # all queued, then delivered
    assert list(s.stage.muted.data) == [b"al-7"]
    assert [(code, why) for _, code, why in sends.letters] == [
        ("processing_error", "OSError: Kafka refused the routed message of al-7")
    ]


def test_an_alert_muted_again_after_its_release_in_one_batch_keeps_its_new_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolved, then firing again under a silence, in one batch: the resolution's
    release drops not the new entry, which is a fresh mute (its groups told again, as
    when the old entry was dropped at once)."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    told = len(s.notices)
    sends = Sends(s, monkeypatch, refused=set())
    s.notices.clear()

    async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        s.notices.extend(i for i in items if "muted" in i[1])
        return [sends.delivery(d["alert"]["alert_id"], False) for _, d in items if "alert" in d]

    monkeypatch.setattr(s.ctx, "queue_all", queue_all)
    batch = [burst("al-1", "Noise - Vehicle", status="resolved"), burst("al-1", "Noise - Vehicle")]
    asyncio.run(s.stage.on_alert_batch(messages(*batch)))
    assert b"al-1" in s.stage.muted.data and s.stage.muted.data[b"al-1"]["noted"]
    assert len(s.notices) == told  # its groups told of the new mute
    assert s.recheck() == 0  # still silenced: kept


def test_a_storm_of_muted_alerts_awaits_their_notices_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t193: 50 alerts silenced on arrival in one batch: every notice to their groups
    queued before any delivery is awaited (fails on the old code: each muted alert
    awaited its own notices, a Kafka round trip each, ``send_all``), each entry marked
    told once delivered; one whose notice Kafka refuses is dead-lettered with the reason
    and its entry left untold (told again when read again), the others told."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    log: list[str] = []
    letters: list[tuple[str, str]] = []

    async def delivery(alert_id: str) -> None:
        log.append(f"delivered {alert_id}")
        if alert_id == "al-7":
            raise OSError("Kafka refused the notice of al-7")

    async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        ids = [doc["muted"]["alert_id"] for _, doc in items]
        log.extend(f"queued {i}" for i in ids)
        return [delivery(i) for i in ids]

    async def dead_letter(role: str, event: Any, code: str, reason: str, *a: Any) -> None:
        letters.append((code, reason))

    monkeypatch.setattr(s.ctx, "queue_all", queue_all)
    monkeypatch.setattr(s.ctx, "dead_letter", dead_letter)
    docs = [burst(f"al-{n}", "Noise - Vehicle", community=f"c{n % 3}") for n in range(50)]
    asyncio.run(s.stage.on_alert_batch(messages(*docs)))
    queued = [line for line in log if line.startswith("queued")]
    assert len(queued) >= 50 and log[: len(queued)] == queued  # all queued, then delivered
    assert s.notices == [] and s.routed == []  # none sent one at a time
    noted = {k.decode(): e["noted"] for k, e in s.stage.muted.data.items()}
    assert noted == {f"al-{n}": n != 7 for n in range(50)}
    assert letters == [("processing_error", "OSError: Kafka refused the notice of al-7")]


class PassedOn:
    """The alerts topic's sends recorded (an alert passed on to its id's partition):
    ``sent`` (key, value, partition, headers)."""

    def __init__(self, s: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[bytes, bytes, int, Any]] = []

        async def delivered() -> None:
            return None

        async def send(
            key: bytes, value: bytes, partition: int, headers: Any = None, **kw: Any
        ) -> Any:
            self.sent.append((key, value, partition, headers))
            return delivered()

        monkeypatch.setattr(s.ctx.alerts, "send", send)


def astray(prefix: str, category: str) -> tuple[dict[str, Any], int]:
    """A burst alert whose id belongs on partition 1 of 2 (its muted entry's), and 1."""
    n = 0
    while key_partition(f"{prefix}-{n}".encode(), 2) != 1:
        n += 1
    return burst(f"{prefix}-{n}", category), 1


@pytest.mark.parametrize("muted", [False, True])
def test_an_alert_on_another_partition_than_its_ids_is_passed_on_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, muted: bool
) -> None:
    """t205: an alert its producer keyed otherwise than by its id (a sensor, a cell, no
    key) lands on another partition than its id's, where the ``muted`` table keeps its
    entry. It is passed on there, keyed by its id, its bytes and headers unchanged, and
    neither routed nor muted here; the batch's other alerts are routed. Fails on the old
    code: it was routed here, or (muted) stored in a table partition another worker
    owns, which never re-checked it, so it was never routed once its silence ended."""
    s = Stage(tmp_path, monkeypatch)
    if muted:
        s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    sends = Sends(s, monkeypatch, refused=set())
    passed = PassedOn(s, monkeypatch)
    doc, home = astray("al-x", "Noise - Vehicle")
    others = [burst(f"al-{n}", "Noise - Street") for n in range(3)]
    batch = messages(*others)
    (misplaced,) = messages(doc, partition=0)
    misplaced.key, misplaced.headers = b"gauge-1", [("trace", b"t-1")]
    asyncio.run(s.stage.on_alert_batch([*batch[:2], misplaced, batch[2]]))
    assert passed.sent == [(doc["alert_id"].encode(), misplaced.value, home, [("trace", b"t-1")])]
    assert s.run_ids() == [d["alert_id"] for d in others] and sends.letters == []
    assert doc["alert_id"].encode() not in s.stage.muted.data


def test_an_alert_passed_on_that_kafka_refuses_is_dead_lettered_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its delivery is awaited with the batch's routed messages: refused, the alert is
    dead-lettered with the reason; the others are routed."""
    s = Stage(tmp_path, monkeypatch)
    sends = Sends(s, monkeypatch, refused=set())

    async def refused() -> None:
        raise OSError("Kafka refused the alert passed on")

    async def send(key: bytes, value: bytes, partition: int, headers: Any = None) -> Any:
        return refused()

    monkeypatch.setattr(s.ctx.alerts, "send", send)
    doc, _ = astray("al-x", "Noise - Vehicle")
    (misplaced,) = messages(doc, partition=0)
    asyncio.run(s.stage.on_alert_batch([misplaced, *messages(burst("al-1", "Noise - Street"))]))
    assert sends.letters == [
        ("alerts", "processing_error", "OSError: Kafka refused the alert passed on")
    ]
    assert [line for line in sends.log if line.startswith("queued")] == ["queued al-1"]
