"""t208, the mute check's sibling of t187 and t193: a pass of the re-check timer routed
each alert freed by an ending silence (or a resolved inhibiting alert) with its delivery
awaited, a Kafka round trip each, while holding the alerts stage's lock: a silence over
10,000 alerts ending held every other alert's routing for 10,000 round trips. Now the
pass queues every freed alert's routed messages (under the lock, alert by alert) and
awaits their delivery once, at its end, without the lock; each entry is then audited,
dropped (if still the one routed) and counted.

No broker: the stage of tests/unit/streams/test_muted_alerts.py, its deliveries recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tests.unit.streams.test_muted_alerts import Stage, burst, far_future


class Deliveries:
    """``queue_all`` recorded in one log with each delivery's await; whether the stage's
    lock was held at each delivery; the delivery of ``refused`` alerts fails, and
    ``meanwhile`` runs at the first delivery (the alerts agent's turn)."""

    def __init__(self, s: Stage, monkeypatch: pytest.MonkeyPatch, refused: set[str]) -> None:
        self.s, self.refused = s, refused
        self.log: list[str] = []
        self.locked: list[bool] = []
        self.meanwhile: list[Any] = []

        async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
            futures = []
            for item in items:
                alert_id = item[1]["alert"]["alert_id"]
                self.log.append(f"queued {alert_id}")
                s.routed.append(item)  # in the order Kafka gets it
                futures.append(self.delivery(item))
            return futures

        monkeypatch.setattr(s.ctx, "queue_all", queue_all)

    async def delivery(self, item: tuple[str, Any]) -> None:
        alert_id = item[1]["alert"]["alert_id"]
        self.log.append(f"delivered {alert_id}")
        self.locked.append(self.s.stage.settled.locked())
        while self.meanwhile:
            await self.meanwhile.pop(0)()
        if alert_id in self.refused:
            raise OSError(f"Kafka refused the routed message of {alert_id}")


def storm(s: Stage, n: int) -> None:
    """``n`` alerts silenced on arrival, then the silence ended."""
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    for i in range(n):
        s.alert(burst(f"al-{i}", "Noise - Vehicle", community=f"c{i % 3}"))
    assert len(s.stage.muted.data) == n and s.routed == []
    s.silences[b"s1"]["ends_at"] = 1.0


def test_a_silence_ending_over_a_storm_awaits_the_freed_alerts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every freed alert's routed message queued before any delivery is awaited, and
    none awaited under the stage's lock (fails on the old code: each freed alert awaited
    its own delivery, ``send_all``, holding the lock, before the next was checked);
    each entry dropped, audited and counted once its message is on Kafka."""
    s = Stage(tmp_path, monkeypatch)
    storm(s, 50)
    sends = Deliveries(s, monkeypatch, refused=set())
    assert s.recheck() == 50
    queued = [line for line in sends.log if line.startswith("queued")]
    assert len(queued) == 50 and sends.log[:50] == queued  # all queued, then delivered
    assert sends.locked == [False] * 50
    assert s.stage.muted.data == {}
    unmuted = [a["alert_id"] for a in s.audits if a["action"] == "alert_unmuted"]
    assert unmuted == [f"al-{i}" for i in range(50)]
    assert s.unmuted("incident_burst", "silenced") == 50
    assert s.recheck() == 0 and len(s.routed) == 50  # routed once


def test_a_freed_alert_kafka_refuses_is_kept_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One delivery refused costs only its alert: kept, not audited nor counted, said and
    counted as a skipped item, and routed at the next pass; the others go."""
    s = Stage(tmp_path, monkeypatch)
    storm(s, 10)
    sends = Deliveries(s, monkeypatch, refused={"al-3"})
    assert s.recheck() == 9
    assert list(s.stage.muted.data) == [b"al-3"]
    assert [a["alert_id"] for a in s.audits if a["action"] == "alert_unmuted"] == [
        f"al-{i}" for i in range(10) if i != 3
    ]
    skipped = s.registry.get_sample_value(
        "citybrain_loop_items_skipped_total", {"loop": "mute_check"}
    )
    failing = s.registry.get_sample_value("citybrain_loop_items_failing", {"loop": "mute_check"})
    assert (skipped, failing) == (1.0, 1.0)
    sends.refused.clear()
    assert s.recheck() == 1 and s.stage.muted.data == {}
    assert [d["alert"]["alert_id"] for _, d in s.routed].count("al-3") == 2
    assert s.unmuted("incident_burst", "silenced") == 10


def test_a_freed_alert_whose_record_kafka_refuses_is_kept_until_it_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t216: an entry is dropped only once Kafka has its ``alert_unmuted`` record. Fails
    on the old code: the record was only queued (refused later, or lost to a SIGKILL
    after the entry's tombstone was out) and the entry dropped and counted at once, so
    the alert was released with no record for good."""
    s = Stage(tmp_path, monkeypatch)
    storm(s, 4)
    Deliveries(s, monkeypatch, refused=set())
    refused = {"al-2"}

    async def audit_all(records: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)  # queued, then on Kafka: not at once
        for record in records:
            if record["alert_id"] in refused:
                raise OSError(f"Kafka refused the audit record of {record['alert_id']}")
            s.audits.append(record)

    async def audit(record: dict[str, Any]) -> None:
        # As ``Context.audit``: queued, a refusal said later, never raised to the caller.
        task = asyncio.ensure_future(audit_all([record]))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    monkeypatch.setattr(s.ctx, "audit_all", audit_all)
    monkeypatch.setattr(s.ctx, "audit", audit)
    assert s.recheck() == 3
    assert list(s.stage.muted.data) == [b"al-2"]  # kept: its record is not out
    assert s.unmuted("incident_burst", "silenced") == 3
    refused.clear()
    assert s.recheck() == 1 and s.stage.muted.data == {}
    unmuted = [a["alert_id"] for a in s.audits if a["action"] == "alert_unmuted"]
    assert sorted(unmuted) == [f"al-{i}" for i in range(4)]
    assert s.unmuted("incident_burst", "silenced") == 4


def test_an_entry_changed_by_the_agent_while_its_release_is_delivered_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is not held while the pass's messages are delivered, so the alerts
    agent routes meanwhile: an alert muted anew by another silence then keeps its new
    entry (the pass drops only the entry it routed); one resolved meanwhile is routed
    resolved after its release and its entry is gone once."""
    s = Stage(tmp_path, monkeypatch)
    storm(s, 3)
    sends = Deliveries(s, monkeypatch, refused=set())

    async def agent() -> None:
        s.silence("s2", ['community="c1"'], 0.0, far_future())
        await s.stage.on_alert(_event(burst("al-1", "Noise - Vehicle", community="c1")))
        await s.stage.on_alert(
            _event(burst("al-2", "Noise - Vehicle", community="c2", status="resolved"))
        )

    sends.meanwhile.append(agent)
    assert s.recheck() == 3
    assert list(s.stage.muted.data) == [b"al-1"]
    assert s.stage.muted.data[b"al-1"]["by"] == "s2"
    statuses = [(d["alert"]["alert_id"], d["alert"]["status"]) for _, d in s.routed]
    assert statuses.index(("al-2", "firing")) < statuses.index(("al-2", "resolved"))


def _event(doc: dict[str, Any]) -> Any:
    """An alerts message, as ``on_alert`` reads one."""
    return SimpleNamespace(value=orjson.dumps(doc))


def test_the_pass_yields_while_it_settles_a_storm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settling 1,000 freed alerts (each delivered already, an await that does not
    yield) lets the event loop run between parts of it."""
    s = Stage(tmp_path, monkeypatch)
    storm(s, 1_000)
    Deliveries(s, monkeypatch, refused=set())

    async def beside() -> tuple[int, int]:
        ran, done = 0, False

        async def other() -> None:
            nonlocal ran
            while not done:
                await asyncio.sleep(0)
                ran += 1

        task = asyncio.get_running_loop().create_task(other())
        await asyncio.sleep(0)
        released = await s.stage.recheck_muted()
        done = True
        await task
        return released, ran

    released, ran = asyncio.run(beside())
    assert released == 1_000 and ran >= 6
