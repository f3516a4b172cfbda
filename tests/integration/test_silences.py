"""Silences on the real Kafka (issue 12, field cases silence-escaped-quote and
silence-matches-all): the API stores an escaped quote so it reads back; a stored silence
that cannot be read (written by an earlier version, straight into the table's changelog)
is skipped, audited and counted, never a crash of the route agent; an expired one is not
even read; a silence that would mute every alert is refused with a 400. Trial 10,
finding 2: an alert still firing when its silence ends, or when the alert inhibiting it
resolves, is routed then (a run), once, and not again by a restarted worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from citybrain.cli import EXIT_FAILED, EXIT_OK, main
from tests.integration.test_pipeline import docs, steps_of
from tests.integration.test_silence_retention import changelog
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, Pipeline, scrape_sum

pytestmark = pytest.mark.integration

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "field-cases"


def stored(silence_id: str, matchers: list[str], ends_at: float) -> dict[str, Any]:
    return {
        "id": silence_id,
        "matchers": matchers,
        "starts_at": 0.0,
        "ends_at": ends_at,
        "author": "earlier-version",
        "reason": "stored before issue 12",
    }


def seed_silences(p: Pipeline, silences: list[dict[str, Any]]) -> None:
    """Write silences into the silences table's changelog, as an earlier worker did."""
    topic = f"{p.settings.app_id}-silences-changelog"
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, p.settings.partitions, 1)])
    finally:
        admin.close()
    for s in silences:
        p.producer.send(topic, key=s["id"].encode(), value=orjson.dumps(s))
    p.flush()


def alert(alert_id: str, **labels: str) -> bytes:
    """The field case's flood alert, placed on the test grid."""
    doc = json.loads((CASES / "silence-escaped-quote" / "alert.json").read_text())
    cell = {"grid_cell": "c-mill", "community": "c-mill", "street": "s-river"}
    doc.update(alert_id=alert_id, grid_cell="c-mill")
    doc["labels"].update(cell, district="d-east", city="testcity", alert_id=alert_id, **labels)
    return orjson.dumps(doc)


def test_unreadable_silences_are_skipped_audited_and_counted(pipeline: Pipeline) -> None:
    seed_silences(
        pipeline,
        [
            # What the API stored before: the quotes not re-escaped.
            stored("old-quote", ['category="Noise "loud" party"'], 4e9),
            # Mutes everything: accepted before, refused now.
            stored("old-empty", ['department=""'], 4e9),
            # Unreadable too, but expired (an hour ago: one ended more than 120 h ago is
            # forgotten, test_silence_retention): never read, listed as ended.
            stored("old-expired", ['category="a"b"'], time.time() - 3600),
        ],
    )
    worker = pipeline.worker().start()
    try:
        body = json.loads((CASES / "silence-escaped-quote" / "silence.json").read_text())
        status, created = pipeline.api("POST", "/silences", OPERATOR_TOKEN, body)
        assert status == 201, created
        assert created["silence"]["matchers"] == ['category="Noise \\"loud\\" party"']
        everything = json.loads((CASES / "silence-matches-all" / "silence.json").read_text())
        status, refused = pipeline.api("POST", "/silences", OPERATOR_TOKEN, everything)
        assert status == 400
        assert "at least one matcher must not match the empty string" in json.dumps(refused)
        assert 'category!~\\"noise.+\\"' in json.dumps(refused)
        for bad in ("kind=x", ['kind="a"b"'], [1]):
            status, _ = pipeline.api("POST", "/silences", OPERATOR_TOKEN, {**body, "matchers": bad})
            assert status == 400, bad
        # Siblings: read as amtool silence add reads it, or refused (a wider silence
        # before); a regex Alertmanager's silences refuse; fields that are not text; a
        # body nested 1,000 levels (RecursionError, a 500, before).
        for bad, why in (
            (["category=noise,kind=pm25"], "is ambiguous"),
            (['kind="pm25", category=~"a)|(b"'], "is not valid on its own"),
        ):
            status, said = pipeline.api(
                "POST", "/silences", OPERATOR_TOKEN, {**body, "matchers": bad}
            )
            assert status == 400 and why in said["error"], (bad, said)
        for name, value in (("reason", {"why": 1}), ("duration", 30)):
            status, said = pipeline.api("POST", "/silences", OPERATOR_TOKEN, {**body, name: value})
            assert status == 400 and f'field \\"{name}\\"' in json.dumps(said), said
        deep = b'{"matchers": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        status, said = pipeline.api("POST", "/silences", OPERATOR_TOKEN, deep)
        assert status == 400 and "nests deeper than" in json.dumps(said), said
        # Trial 8: a 1 MB reason crashed the worker's producer (the silence is one message
        # on a changelog every worker reads); 10,000 matchers were taken.
        for oversized, says in (
            ({"reason": "r" * 1_040_000}, 'field "reason" is 1,040,000 characters, at most 2,000'),
            (
                {"matchers": ['kind="pm25"'] * 10_000},
                'field "matchers" has 10,000 entries, at most 64',
            ),
            (
                {"matchers": ['category="' + "c" * 1100 + '"']},
                'field "matchers[0]" is 1,111 characters',
            ),
        ):
            status, said = pipeline.api("POST", "/silences", OPERATOR_TOKEN, {**body, **oversized})
            assert status == 400 and said["error"].startswith(says), said

        # An alert whose labels are not text is dead-lettered, not a crash of the agent;
        # an unrelated flood alert gets its run; the block-party alert is silenced.
        bad = json.loads(alert("al-bad"))
        bad["labels"]["severity"] = 5
        pipeline.send("alerts", b"al-bad", orjson.dumps(bad))
        pipeline.send("alerts", b"al-field-flood-q1", alert("al-field-flood-q1"))
        pipeline.send("alerts", b"al-party", alert("al-party", category='Noise "loud" party'))
        pipeline.flush()
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "run_created")), settle=3)
        assert len(steps_of(steps, "run_created")) == 1
        audit = pipeline.read(
            "audit",
            lambda m: (
                len([d for d in docs(m) if d.get("action") == "silence_unreadable"]) >= 2
                and any(d.get("action") == "alert_silenced" for d in docs(m))
            ),
            settle=2,
        )
        unreadable = [d for d in docs(audit) if d.get("action") == "silence_unreadable"]
        assert sorted(d["silence_id"] for d in unreadable) == ["old-empty", "old-quote"]
        assert {d["detail"].split(":")[0] for d in unreadable} == {"matcher", "matches_empty"}
        [silenced] = [d for d in docs(audit) if d.get("action") == "alert_silenced"]
        assert silenced["alert_id"] == "al-party"
        assert created["silence"]["id"] in silenced["detail"]
        dead = pipeline.read("deadletter", lambda m: len(m) >= 1)
        assert [m.key for m in dead] == [b"al-bad"]
        assert dict(dead[0].headers)["citybrain.error.reason"] == b"bad_alert"
        port = pipeline.settings.worker_port
        assert scrape_sum(port, 'citybrain_silences_invalid_total{problem="matcher"}') == 1
        assert scrape_sum(port, 'citybrain_silences_invalid_total{problem="matches_empty"}') == 1
        assert "Crashed" not in worker.log()
        # The API lists what it stored, escaped so it reads back.
        status, listed = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
        assert status == 200
        by_id = {s["id"]: s for s in listed["silences"]}
        assert by_id[created["silence"]["id"]]["matchers"] == created["silence"]["matchers"]
        assert by_id[created["silence"]["id"]]["active"] is True
        assert "unescaped double quote" in by_id["old-quote"]["unreadable"]
        assert by_id["old-expired"]["active"] is False
        # An unreadable silence can still be expired.
        status, expired = pipeline.api("DELETE", "/silences/old-quote", COORDINATOR_TOKEN)
        assert status == 200 and expired["silence"]["ends_at"] <= time.time()
    finally:
        worker.stop()


# Each alert in a group (and a run) of its own, so runs count alerts; trial 10's rule.
MUTE_ROUTING = """version: 1
route:
  playbook: sensor-anomaly
  group_by: [alert_id]
  group_wait: 0s
inhibit_rules:
  - source_matchers: ['category="Illegal Parking"']
    target_matchers: ['category="Noise - Vehicle"']
    equal: [community]
"""
COMMUNITIES = {"c-mill": "s-river", "c-bridge": "s-river", "c-top": "s-hill"}


def burst_alert(alert_id: str, category: str, community: str, status: str = "firing") -> bytes:
    """A citizen-report burst alert of ``category`` in ``community`` (test grid)."""
    doc = json.loads((CASES / "silence-escaped-quote" / "alert.json").read_text())
    labels = {
        "grid_cell": community,
        "community": community,
        "street": COMMUNITIES[community],
        "district": "d-east",
        "city": "testcity",
        "alert_id": alert_id,
        "kind": "incident_burst",
        "severity": "minor",
        "source": "citizen",
        "category": category,
    }
    doc.update(
        alert_id=alert_id,
        grid_cell=community,
        kind="incident_burst",
        sensor_id=None,
        severity="minor",
        status=status,
        labels=labels,
    )
    return orjson.dumps(doc)


def mute_pipeline(pipeline: Pipeline) -> Pipeline:
    routing = pipeline.run_dir / f"{pipeline.name}-routing.yaml"
    routing.write_text(MUTE_ROUTING)
    pipeline.env["CITYBRAIN_ROUTING_FILE"] = str(routing)
    pipeline.env["CITYBRAIN_MUTE_CHECK_INTERVAL"] = "1"
    return pipeline


def runs_by_alert(messages: list[Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for step in steps_of(messages, "run_created"):
        found.setdefault(step["alert_id"], []).append(step)
    return found


def audited(messages: list[Any], action: str) -> list[str]:
    return sorted(d["alert_id"] for d in docs(messages) if d.get("action") == action)


def test_an_alert_still_firing_when_its_silence_ends_gets_a_run_once(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 10: 8 burst alerts stayed firing with no run 10 minutes after their silence
    expired (a real Alertmanager notified them within seconds)."""
    p = mute_pipeline(pipeline)
    worker = p.worker().start()
    try:
        status, made = p.api(
            "POST",
            "/silences",
            OPERATOR_TOKEN,
            {"matchers": ['category="Noise - Vehicle"'], "duration": "6s", "reason": "trial 10"},
        )
        assert status == 201, made
        ends_at = made["silence"]["ends_at"]
        quiet = ["al-quiet-mill", "al-quiet-top"]
        for alert_id, community in zip(quiet, ("c-mill", "c-top"), strict=True):
            p.send("alerts", alert_id.encode(), burst_alert(alert_id, "Noise - Vehicle", community))
        p.send("alerts", b"al-loud", burst_alert("al-loud", "Graffiti", "c-bridge"))
        p.flush()
        audit = p.read("audit", lambda m: audited(m, "alert_silenced") == quiet)
        # Each silenced alert gets its run once the silence ends, exactly one each: ticks
        # after (settle) route nothing again.
        steps = p.read("steps", lambda m: len(runs_by_alert(m)) == 3, settle=4)
        runs = runs_by_alert(steps)
        assert sorted(runs) == sorted([*quiet, "al-loud"])
        assert all(len(r) == 1 for r in runs.values()), runs
        assert all(runs[a][0]["at"] >= ends_at for a in quiet)  # not while silenced
        audit = p.read("audit", lambda m: audited(m, "alert_unmuted") == quiet, settle=2)
        assert audited(audit, "alert_unmuted") == quiet
        port = p.settings.worker_port
        assert scrape_sum(port, 'citybrain_alerts_unmuted_total{kind="incident_burst"') == 2
        # The alerts API lists them firing, and runs list them.
        status, alerts = p.api("GET", "/alerts", OPERATOR_TOKEN)
        assert status == 200
        assert {a["alert_id"] for a in alerts["firing"]} >= set(quiet)
        # `citybrain alerts list` shows them from the real worker (t116: no command had them).
        url = f"http://127.0.0.1:{port}"
        assert main(["alerts", "list", "--url", url, "--token", OPERATOR_TOKEN]) == EXIT_OK
        listed = capsys.readouterr().out
        assert f"{len(alerts['firing'])} alerts firing now" in listed
        assert all(a in listed for a in quiet) and "Noise - Vehicle" in listed
        # The stack's Prometheus has an /api/v1/alerts of its own: refused, not "0 alerts".
        prometheus = f"http://127.0.0.1:{p.settings.prometheus_port}"
        argv = ["alerts", "list", "--url", prometheus, "--token", OPERATOR_TOKEN]
        assert main(argv) == EXIT_FAILED
        assert "no citybrain worker there" in capsys.readouterr().err
    finally:
        worker.stop()
    # Restarted, the worker recovers the firing alerts and what was routed: no second run.
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-after", burst_alert("al-after", "Graffiti", "c-top"))
        p.flush()
        steps = p.read("steps", lambda m: "al-after" in runs_by_alert(m), settle=4)
        runs = runs_by_alert(steps)
        assert all(len(r) == 1 for r in runs.values()), runs
        assert sorted(runs) == sorted([*quiet, "al-loud", "al-after"])
        assert "Crashed" not in worker.log()
    finally:
        worker.stop()


def test_an_alert_inhibited_until_its_source_resolves_then_gets_a_run(pipeline: Pipeline) -> None:
    """Trial 10: after the 5 Illegal Parking sources resolved, the 5 Noise - Vehicle
    targets (`equal: [community]`) stayed firing with no run."""
    p = mute_pipeline(pipeline)
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-park", burst_alert("al-park", "Illegal Parking", "c-mill"))
        p.flush()
        p.read("steps", lambda m: "al-park" in runs_by_alert(m))
        p.send("alerts", b"al-noise", burst_alert("al-noise", "Noise - Vehicle", "c-mill"))
        # Another community: not inhibited (`equal`), routed at once.
        p.send("alerts", b"al-noise-top", burst_alert("al-noise-top", "Noise - Vehicle", "c-top"))
        p.flush()
        audit = p.read("audit", lambda m: audited(m, "alert_inhibited") == ["al-noise"])
        steps = p.read("steps", lambda m: "al-noise-top" in runs_by_alert(m), settle=3)
        assert "al-noise" not in runs_by_alert(steps)  # inhibited while al-park fires
        p.send(
            "alerts", b"al-park", burst_alert("al-park", "Illegal Parking", "c-mill", "resolved")
        )
        p.flush()
        steps = p.read("steps", lambda m: "al-noise" in runs_by_alert(m), settle=4)
        runs = runs_by_alert(steps)
        assert sorted(runs) == ["al-noise", "al-noise-top", "al-park"]
        assert all(len(r) == 1 for r in runs.values()), runs
        audit = p.read("audit", lambda m: audited(m, "alert_unmuted") == ["al-noise"])
        [unmuted] = [d for d in docs(audit) if d.get("action") == "alert_unmuted"]
        assert "inhibiting alert al-park no longer mutes it" in unmuted["detail"]
        [why] = [d for d in docs(audit) if d.get("action") == "alert_inhibited"]
        assert why["detail"] == "inhibited by firing alert al-park"  # which one, said
        assert "Crashed" not in worker.log()
    finally:
        worker.stop()


def test_a_freed_alert_read_again_after_a_sigkill_leaves_its_group_no_muted_member(
    pipeline: Pipeline,
) -> None:
    """t120, a kill while a silence expires: an alert silenced, freed when its silence
    ended (its run opened), the run cancelled, and the worker SIGKILLed before its routed
    offsets were committed (a commit interval of 60 s makes that the kill point every
    time). The restarted worker read the muted notice again (the run finished: a member
    of the group again) and the freed alert (a repeat, returned unstored): the group kept
    the member for good, on its changelog. Now the last entry of the group holds none."""
    p = mute_pipeline(pipeline)
    p.env["CITYBRAIN_COMMIT_INTERVAL"] = "60"
    worker = p.worker().start()
    try:
        status, made = p.api(
            "POST",
            "/silences",
            OPERATOR_TOKEN,
            {"matchers": ['category="Noise - Vehicle"'], "duration": "4s", "reason": "t120"},
        )
        assert status == 201, made
        p.send("alerts", b"al-freed", burst_alert("al-freed", "Noise - Vehicle", "c-mill"))
        p.flush()
        p.read("audit", lambda m: audited(m, "alert_silenced") == ["al-freed"])
        steps = p.read("steps", lambda m: "al-freed" in runs_by_alert(m))
        [created] = runs_by_alert(steps)["al-freed"]
        run_id, key = created["run_id"], created["run_id"].rsplit(".", 1)[0].encode()
        cancel = {"id": "t120-cancel", "run_id": run_id, "action": "cancel", "by": "op"}
        p.send("commands", key, orjson.dumps({**cancel, "at": time.time()}))
        p.flush()
        p.read("steps", lambda m: bool(steps_of(m, "cancelled")))
        worker.kill()
        worker.start()
        time.sleep(6)  # the re-reading, and a few deadline ticks
    finally:
        worker.stop()
    entries = [doc for k, doc in changelog(p, "groups") if k == key and doc is not None]
    last = orjson.loads(entries[-1])
    assert last["run"]["run_id"] == run_id and last["run"]["status"] == "cancelled"
    assert not last.get("muted"), last.get("muted")
    steps = p.read("steps", lambda m: True, settle=1)
    assert len(runs_by_alert(steps)["al-freed"]) == 1
