"""The route stage keeps muted firing alerts and routes each once it is no longer muted
(trial 10, finding 2: alerts still firing after their silence expired, or after the alert
inhibiting them resolved, never got a run). No broker: the stage's sends and table writes
are recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.alerting import MUTED_REPORTS, Alerting, muted_entry, read_muted
from streams.app import create_app
from streams.context import Context
from streams.metrics import Metrics
from streams.partitioning import key_partition
from streams.settings import Settings
from streams.tables import UnreadableEntryError
from tests.services import FIXTURES

ROUTING = (FIXTURES / "routing-mutes.yaml").read_text()
CELL = "c-top"  # a community of the stage's grid (tests/fixtures/grid.yaml)


class Stage:
    """An Alerting stage on a broker-less app, with what it sent and stored recorded."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "t") -> None:
        routing = tmp_path / "routing.yaml"
        routing.write_text(ROUTING)
        self.settings = Settings(
            run_dir_override=tmp_path,
            topic_prefix="t",
            routing_file=routing,
            grid_file=FIXTURES / "grid.yaml",  # the response stage's (test_response_races)
        )
        self.app = faust.App(f"t-muted-{name}", store="memory://", datadir=str(tmp_path / name))
        self.registry = CollectorRegistry()
        ctx = Context(
            self.app,
            self.settings,
            load_grid(self.settings.grid_file),
            Metrics.create(self.registry),
        )
        self.ctx = ctx
        self.firing: dict[bytes, dict[str, str]] = {}
        self.silences: dict[bytes, dict[str, Any]] = {}
        self.routed: list[tuple[str, dict[str, Any]]] = []
        # The notices of alerts muted on arrival (``{"muted": …}``), kept apart.
        self.notices: list[tuple[str, dict[str, Any]]] = []
        self.audits: list[dict[str, Any]] = []
        self.changelog: list[tuple[bytes, Any]] = []  # the muted table's entries, in order
        monkeypatch.setattr(ctx, "firing", self.firing)
        monkeypatch.setattr(ctx, "silences", self.silences)

        async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
            assert topic is ctx.routed
            self.routed.extend(i for i in items if "muted" not in i[1])
            self.notices.extend(i for i in items if "muted" in i[1])

        async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
            # As ``send_all``'s, delivered at once (tests/unit/streams/test_alert_batches.py
            # and test_mute_check_batches.py record the deliveries themselves).
            await ctx.send_all(topic, items)
            return []

        async def audit(record: dict[str, Any]) -> None:
            self.audits.append(record)

        async def audit_all(records: list[dict[str, Any]]) -> None:
            self.audits.extend(records)  # delivered at once (the mute check's records)

        monkeypatch.setattr(ctx, "send_all", send_all)
        monkeypatch.setattr(ctx, "queue_all", queue_all)
        monkeypatch.setattr(ctx, "audit", audit)
        monkeypatch.setattr(ctx, "audit_all", audit_all)
        self.stage = Alerting(ctx)
        table = self.stage.muted

        async def write(key: bytes, entry: bytes) -> None:
            self.changelog.append((key, read_muted(entry)))  # as recovery reads it

        def send_changelog(partition: Any, key: bytes, value: Any, *a: Any, **k: Any) -> Any:
            self.changelog.append((key, value))  # a deletion's tombstone: value None
            return SimpleNamespace(message=SimpleNamespace(partition=partition))

        monkeypatch.setattr(table, "_send", write)
        monkeypatch.setattr(table, "send_changelog", send_changelog)
        monkeypatch.setattr(self.app.tables.recovery.completed, "is_set", lambda: True)
        self.mine = set(range(self.settings.partitions))
        monkeypatch.setattr(
            self.app.consumer,
            "assignment",
            lambda: {TP(self.stage.topic_name, p) for p in self.mine},
        )

    def alert(self, doc: dict[str, Any]) -> None:
        event = SimpleNamespace(value=orjson.dumps(doc))
        asyncio.run(self.stage.on_alert(event))  # type: ignore[arg-type]

    def recheck(self) -> int:
        return asyncio.run(self.stage.recheck_muted())

    def silence(self, silence_id: str, matchers: list[str], starts: float, ends: float) -> None:
        self.silences[silence_id.encode()] = {
            "id": silence_id,
            "matchers": matchers,
            "starts_at": starts,
            "ends_at": ends,
            "author": "op",
            "reason": "works",
        }

    def run_ids(self) -> list[str]:
        return [doc["alert"]["alert_id"] for _, doc in self.routed]

    def unmuted(self, kind: str, why: str) -> float:
        value = self.registry.get_sample_value(
            "citybrain_alerts_unmuted_total", {"kind": kind, "why": why}
        )
        return value or 0.0


def burst(
    alert_id: str,
    category: str,
    community: str = "c1",
    status: str = "firing",
    reports: list[str] | None = None,
) -> dict[str, Any]:
    labels = {
        "alert_id": alert_id,
        "source": "citizen",
        "kind": "incident_burst",
        "severity": "minor",
        "category": category,
        "community": community,
        "grid_cell": community,
    }
    return {
        "alert_id": alert_id,
        "status": status,
        "kind": "incident_burst",
        "severity": "minor",
        # A cell of the worker's grid (the alerts agent refuses one it lacks, t137); the
        # labels, which the routing reads, keep the community named.
        "grid_cell": CELL,
        "labels": labels,
        "reports": [{"report_id": r, "channel": "311"} for r in reports or []],
    }


def far_future() -> float:
    return 4e9


def test_a_silenced_alert_is_routed_once_after_its_silence_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r1"]))
    assert s.routed == [] and [a["action"] for a in s.audits] == ["alert_silenced"]
    assert s.recheck() == 0 and s.routed == []  # still silenced: kept, not routed
    # A follow-up while silenced: its reports join the kept entry.
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r2"]))
    s.silences[b"s1"]["ends_at"] = 1.0  # expired (as the API's DELETE writes it)
    assert s.recheck() == 1
    [(group, doc)] = s.routed
    assert doc["alert"]["alert_id"] == "al-1" and doc["route"]["playbook"] == "citizen-report-burst"
    assert [r["report_id"] for r in doc["alert"]["reports"]] == ["r1", "r2"]
    assert group.startswith("grp-")
    [unmuted] = [a for a in s.audits if a["action"] == "alert_unmuted"]
    assert unmuted["alert_id"] == "al-1" and "silence s1 no longer mutes it" in unmuted["detail"]
    assert s.unmuted("incident_burst", "silenced") == 1
    # Once: not again on the next ticks, and its entry is gone from the changelog.
    assert s.recheck() == 0 and s.recheck() == 0 and len(s.routed) == 1
    assert s.changelog[-1] == (b"al-1", None)
    assert b"al-1" not in s.stage.muted.data


def test_an_inhibited_alert_is_routed_once_its_source_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stage(tmp_path, monkeypatch)
    s.alert(burst("al-park", "Illegal Parking"))
    s.alert(burst("al-noise", "Noise - Vehicle"))
    s.alert(burst("al-noise-c2", "Noise - Vehicle", community="c2"))  # `equal` differs
    assert s.run_ids() == ["al-park", "al-noise-c2"]
    [inhibited] = [a for a in s.audits if a["action"] == "alert_inhibited"]
    assert inhibited["detail"] == "inhibited by firing alert al-park"
    assert s.recheck() == 0
    s.alert(burst("al-park", "Illegal Parking", status="resolved"))
    assert s.run_ids() == ["al-park", "al-noise-c2", "al-park"]
    assert s.recheck() == 1
    assert s.run_ids()[-1] == "al-noise"
    assert s.unmuted("incident_burst", "inhibited") == 1
    assert s.recheck() == 0 and len(s.routed) == 4


def test_an_alert_freed_from_a_mute_carries_when_it_was_first_muted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alertmanager keeps a muted alert in its aggregation group from its arrival, so the
    run its release opens notifies at that group's next flush (``grouped_at``, read by the
    respond stage's ``next_group_flush``); alerts routed unmuted carry nothing."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    since = s.stage.muted.data[b"al-1"]["since"]
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r2"]))  # a follow-up: since kept
    assert s.stage.muted.data[b"al-1"]["since"] == since
    s.alert(burst("al-2", "Illegal Parking", community="c2"))  # not muted (c2)
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 1
    assert [(d["alert"]["alert_id"], d.get("grouped_at")) for _, d in s.routed] == [
        ("al-2", None),
        ("al-1", since),
    ]
    # Its first mute told its group (one notice per route, none for the follow-up): the
    # group exists from then on, as Alertmanager's does.
    [(group, notice)] = s.notices
    assert group == s.routed[-1][0]
    assert notice == {
        "muted": {"alert_id": "al-1"},
        "route": s.routed[-1][1]["route"],
        "grouped_at": since,
        "legacy_key": s.routed[-1][1]["legacy_key"],  # the group's key before t126
    }


def test_an_alert_that_resolves_while_muted_is_never_routed_firing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.alert(burst("al-1", "Noise - Vehicle", status="resolved"))
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 0
    assert [doc["alert"]["status"] for _, doc in s.routed] == ["resolved"]
    assert not s.stage.muted.data


def test_an_alert_that_fires_again_unmuted_is_routed_then_and_not_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.silences[b"s1"]["ends_at"] = 1.0
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r3"]))  # a new report: routed at once
    assert s.run_ids() == ["al-1"] and not s.stage.muted.data
    assert s.recheck() == 0 and s.run_ids() == ["al-1"]


def test_a_silence_made_while_the_alert_fires_keeps_its_later_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reverse: a firing alert already routed, then silenced. Its run stays (the
    respond stage does not read silences); a follow-up is muted and kept, routed when the
    silence ends (its run takes it as a repeat of an alert it has, covering its reports)."""
    s = Stage(tmp_path, monkeypatch)
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r1"]))
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r2"]))
    assert s.run_ids() == ["al-1"]
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 1
    assert [r["report_id"] for r in s.routed[-1][1]["alert"]["reports"]] == ["r2"]


def test_only_the_owner_of_the_alerts_partition_routes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers hold every firing alert and silence (global tables); each re-checks only
    the muted alerts of its own alerts partitions, so one alert is routed by one worker."""
    s = Stage(tmp_path, monkeypatch)
    ids = [f"al-{i}" for i in range(12)]
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    for alert_id in ids:
        s.alert(burst(alert_id, "Noise - Vehicle", community=f"c{alert_id}"))
    s.silences[b"s1"]["ends_at"] = 1.0
    n = s.settings.partitions
    s.mine = {p for p in range(n) if p % 2 == 0}
    first = s.recheck()
    owned = sorted(a for a in ids if key_partition(a.encode(), n) in s.mine)
    assert sorted(s.run_ids()) == owned and first == len(owned)
    s.mine = set(range(n)) - s.mine  # the other worker's partitions
    assert s.recheck() == len(ids) - len(owned)
    assert sorted(s.run_ids()) == sorted(ids)


def test_a_restarted_worker_does_not_route_again_what_it_routed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a restarted owner recovers is the table's changelog: a released alert's
    tombstone follows its entry, so nothing is left to route."""
    s = Stage(tmp_path, monkeypatch, "first")
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.alert(burst("al-2", "Noise - Vehicle", community="c2"))
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 2
    after = Stage(tmp_path, monkeypatch, "second")
    after.firing.update(s.firing)
    after.silences.update(s.silences)
    for key, value in s.changelog:  # recovery: the last entry of each key, None deletes
        if value is None:
            after.stage.muted.data.pop(key, None)
        else:
            after.stage.muted.data[key] = value
    assert after.recheck() == 0 and after.routed == []


def test_a_rebalance_begun_during_a_pass_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.alert(burst("al-2", "Noise - Vehicle", community="c2"))
    s.silences[b"s1"]["ends_at"] = 1.0
    gate = asyncio.Event()

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        s.routed.extend(items)
        await gate.wait()

    monkeypatch.setattr(s.ctx, "send_all", send_all)

    async def scenario() -> None:
        passing = asyncio.create_task(s.stage.recheck_muted())
        await asyncio.sleep(0.01)  # the first alert is being routed ...
        s.app.rebalancing = True  # ... when a rebalance begins
        gate.set()
        await passing

    asyncio.run(scenario())
    assert len(s.routed) == 1
    assert s.recheck() == 0  # nothing while rebalancing


def test_the_entry_keeps_the_newest_reports_once_each() -> None:
    from playbooks.routing import Decision

    decision = Decision((), inhibited_by=None, inhibiting="")
    first = muted_entry(None, burst("al-1", "x", reports=["a", "b"]), decision, 10.0)
    assert first["since"] == 10.0
    later = muted_entry(first, burst("al-1", "x", reports=["b", "c"]), decision, 20.0)
    assert [r["report_id"] for r in later["alert"]["reports"]] == ["a", "b", "c"]
    assert later["since"] == 10.0
    many = burst("al-1", "x", reports=[f"r{i}" for i in range(MUTED_REPORTS + 5)])
    capped = muted_entry(later, many, decision, 30.0)
    assert len(capped["alert"]["reports"]) == MUTED_REPORTS
    assert capped["alert"]["reports"][-1]["report_id"] == f"r{MUTED_REPORTS + 4}"


def test_the_worker_has_the_table_and_the_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t", mute_check_interval=3.5)
    app = create_app(settings, CollectorRegistry())
    assert "muted" in app.tables
    timers: list[Any] = []
    monkeypatch.setattr(
        faust.App, "timer", lambda self, interval, **kw: lambda fun: timers.append((fun, interval))
    )
    create_app(settings, CollectorRegistry())
    assert [i for fun, i in timers if fun.__name__ == "mute_check"] == [3.5]


def test_a_silence_made_during_a_pass_mutes_the_alerts_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass reads the silences once, and again after each await: a silence stored
    while it routes one alert keeps the next one muted."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.alert(burst("al-2", "Noise - Vehicle", community="c2"))
    s.silences[b"s1"]["ends_at"] = 1.0

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        s.routed.extend(items)
        s.silence("s2", ['category="Noise - Vehicle"'], 0.0, far_future())  # meanwhile

    monkeypatch.setattr(s.ctx, "send_all", send_all)
    assert s.recheck() == 1 and len(s.routed) == 1
    [kept] = s.stage.muted.data.values()
    assert (kept["mute"], kept["by"]) == ("silenced", "s2")


def test_a_muted_entry_that_cannot_be_routed_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 26: an entry whose alert has no alert_id (a state of another version) was
    routed, then raised KeyError at its audit: it stayed in the table and was routed
    again every tick, and the pass ended there, so the muted alerts after it were never
    routed. Now it is dropped unrouted, said, and the pass goes on."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category=~"Noise.*"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r1"]))
    s.alert(burst("al-2", "Noise - Street", community="c2", reports=["r2"]))
    entry = dict(s.stage.muted.data[b"al-1"])
    entry["alert"] = {k: v for k, v in entry["alert"].items() if k != "alert_id"}
    s.stage.muted.data[b"al-1"] = entry
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 1
    assert s.run_ids() == ["al-2"]
    assert b"al-1" not in s.stage.muted.data
    assert s.recheck() == 0 and s.run_ids() == ["al-2"]  # neither routed again


def test_a_muted_alert_whose_routing_fails_is_tried_again_and_the_pass_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial 26: a send that raised for one unmuted alert ended the pass at it; the
    alerts after it waited for that one to succeed. Now it is kept and tried again next
    tick, and the others are routed in the same pass, each once."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category=~"Noise.*"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r1"]))
    s.alert(burst("al-2", "Noise - Street", community="c2", reports=["r2"]))
    s.silences[b"s1"]["ends_at"] = 1.0
    record = s.ctx.send_all
    failures = [1]

    async def flaky(topic: Any, items: list[tuple[str, Any]]) -> None:
        if failures and items[0][1]["alert"]["alert_id"] == "al-1":
            failures.pop()
            raise ConnectionError("broker away")
        await record(topic, items)

    monkeypatch.setattr(s.ctx, "send_all", flaky)
    assert s.recheck() == 1 and s.run_ids() == ["al-2"]
    assert "muted alert al-1 was left as it is, tried again next tick" in caplog.text
    metrics = s.ctx.metrics
    assert metrics.loop_items_skipped.labels("mute_check")._value.get() == 1
    assert metrics.loop_items_failing.labels("mute_check")._value.get() == 1
    assert s.recheck() == 1 and s.run_ids() == ["al-2", "al-1"]
    assert metrics.loop_items_failing.labels("mute_check")._value.get() == 0
    assert s.recheck() == 0 and s.run_ids() == ["al-2", "al-1"]


def test_a_muted_entry_that_cannot_be_read_is_dropped_counted_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trial 27: it was dropped with a log line only, uncounted and unaudited.
    s = Stage(tmp_path, monkeypatch)
    s.firing[b"al-old"] = {"alertname": "x"}
    s.stage.muted.data[b"al-old"] = {"alert": {"labels": {}}, "since": 1.0}  # no mute, by
    assert s.recheck() == 0 and s.routed == []
    assert b"al-old" not in s.stage.muted.data
    asyncio.run(s.ctx.audit_unreadable_state())
    [said] = [a for a in s.audits if a["action"] == "state_unreadable"]
    assert (said["table"], said["key"], said["reason"]) == ("muted", "al-old", "bad_shape")
    assert "KeyError" in said["detail"]
    counted = s.registry.get_sample_value(
        "citybrain_state_unreadable_total", {"table": "muted", "reason": "bad_shape"}
    )
    assert counted == 1


def test_a_pass_over_many_alerts_still_muted_lets_the_event_loop_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: an alert still muted takes no await, and taking an unlocked lock does not
    # yield, so a pass over 10,000 of them held the event loop (the readings agent,
    # Kafka heartbeats, the API) from its first alert to its last.
    from streams.alerting import RECHECK_YIELD_EVERY

    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    n = 4 * RECHECK_YIELD_EVERY
    for i in range(n):
        s.alert(burst(f"al-{i}", "Noise - Vehicle"))
    assert len(s.stage.muted.data) == n

    async def pass_beside_another_task() -> tuple[int, int]:
        ran = 0
        done = False

        async def other() -> None:
            nonlocal ran
            while not done:
                await asyncio.sleep(0)
                ran += 1

        task = asyncio.get_running_loop().create_task(other())
        await asyncio.sleep(0)  # it starts
        before = ran
        released = await s.stage.recheck_muted()
        done = True
        await task
        return released, ran - before

    released, ran = asyncio.run(pass_beside_another_task())
    assert released == 0 and s.routed == []  # all still muted, kept
    assert ran >= n // RECHECK_YIELD_EVERY - 1  # it ran between parts of the pass


def test_a_worker_killed_between_storing_a_muted_alert_and_its_notice_tells_its_group_on_re_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t120's open item: the entry was stored before the group's `muted` notice was sent,
    and only an alert with no entry was noticed, so a worker killed between the two read
    the alert again (offset not committed), found its entry and never told the group
    (a later run of it then waited up to a group_interval for its first flush). Now the
    entry says whether its notice went out, and the re-read sends it; once sent, a
    second re-read sends nothing more."""
    first = Stage(tmp_path, monkeypatch, "first")
    first.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())

    async def killed(topic: Any, items: list[tuple[str, Any]]) -> None:
        raise SystemExit("SIGKILL")  # the process ends here: nothing after it runs

    monkeypatch.setattr(first.ctx, "send_all", killed)
    doc = burst("al-1", "Noise - Vehicle", reports=["r1"])
    with pytest.raises(SystemExit):
        first.alert(doc)
    assert [k for k, _ in first.changelog] == [b"al-1"] and first.notices == []

    def restarted(name: str, changelog: list[tuple[bytes, Any]]) -> Stage:
        after = Stage(tmp_path, monkeypatch, name)
        after.silences.update(first.silences)
        for key, value in changelog:  # recovery: the last entry of each key
            after.stage.muted.data[key] = value
        return after

    second = restarted("second", first.changelog)
    second.alert(doc)  # the restarted worker reads the alert again
    assert [group for group, _ in second.notices] and all(
        n["muted"] == {"alert_id": "al-1"} for _, n in second.notices
    )
    assert second.changelog[-1][1]["noted"] is True
    third = restarted("third", first.changelog + second.changelog)
    third.alert(doc)  # read again after the notice went out: told once is enough
    assert third.notices == [] and third.routed == []


class Killed(Exception):
    """The worker's process ends here (SIGKILL)."""


def test_a_muted_alert_read_again_after_a_kill_is_said_under_one_id_and_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t152: an alert muted on arrival was audited (no id) and counted in
    citybrain_alerts_suppressed_total before its muted entry was stored, and again each
    time the same message was read: killed before the store, the restarted worker said
    it again under nothing to dedupe by and counted it again; read again after the store
    (offsets not yet committed), it said and counted it a second time. Now the record's
    id is the alert message's (the same when made again), it is counted after the store,
    and a message muted as its stored entry already is changes nothing. Its release is
    audited under one id and counted once likewise."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    doc = burst("al-1", "Noise - Vehicle", reports=["r1"])
    table = s.stage.muted
    write = table._send

    async def killed(key: bytes, entry: bytes) -> None:
        raise Killed

    monkeypatch.setattr(table, "_send", killed)
    with pytest.raises(Killed):
        s.alert(doc)
    table.data.pop(b"al-1", None)  # what the kill lost: the entry never reached Kafka
    suppressed = [
        s.registry.get_sample_value(
            "citybrain_alerts_suppressed_total", {"kind": "incident_burst", "why": "silenced"}
        )
        or 0.0
    ]
    s.registry = CollectorRegistry()  # the restarted worker's counters
    s.stage.metrics = Metrics.create(s.registry)
    monkeypatch.setattr(table, "_send", write)
    s.alert(doc)  # read again: not committed
    s.alert(doc)  # and again, past the store
    suppressed.append(
        s.registry.get_sample_value(
            "citybrain_alerts_suppressed_total", {"kind": "incident_burst", "why": "silenced"}
        )
        or 0.0
    )
    said = [a for a in s.audits if a["action"] == "alert_silenced"]
    assert len({a["id"] for a in said}) == 1 and 1 <= len(said) <= 2
    assert sum(suppressed) == 1
    # The silence ends: released (routed) once, its record under one id, counted once.
    s.silences.clear()
    assert s.recheck() == 1
    [unmuted] = [a for a in s.audits if a["action"] == "alert_unmuted"]
    assert unmuted["id"].startswith("al-1:unmuted:silenced:s1:")
    assert s.unmuted("incident_burst", "silenced") == 1


def test_a_muted_entry_first_muted_past_the_year_9999_is_not_routed_every_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t154: a stored entry whose ``since`` was a number past the year 9999 (1e300: a
    damaged changelog entry, a clock of another planet) passed the read-back, which asked
    for a number only. Released, it was routed with ``grouped_at`` 1e300 (which the
    routed door dead-letters as ``bad_routed``), then its audit raised OverflowError
    showing ``since`` as a date: kept, and routed and dead-lettered again every tick,
    forever. Now the read-back refuses it (``bad_shape``, naming ``since``): recovery
    drops it, said and counted, and the others are released once each."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category=~"Noise.*"'], 0.0, far_future())
    s.alert(burst("al-1", "Noise - Vehicle", reports=["r1"]))
    s.alert(burst("al-2", "Noise - Street", community="c2", reports=["r2"]))
    # al-1's entry as the changelog holds it, read back as recovery reads it.
    damaged = orjson.dumps({**s.stage.muted.data[b"al-1"], "since": 1e300})
    s.stage.muted.data[b"al-1"] = s.stage.muted.value_serializer.decode(damaged)
    s.silences[b"s1"]["ends_at"] = 1.0
    for _ in range(3):
        s.recheck()
    assert sorted(s.run_ids()) == ["al-2"]  # once, and al-1 never with a time of no year
    assert all(doc.get("grouped_at", 0) < 4e9 for _, doc in s.routed)
    assert b"al-1" not in s.stage.muted.data
    with pytest.raises(UnreadableEntryError, match="'since' is 1e\\+300") as refused:
        read_muted(damaged)
    assert refused.value.reason == "bad_shape"
