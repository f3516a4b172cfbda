"""Table state that cannot be read back, on the real Kafka (issue 12 item 2's kind, for
every table): a changelog entry that is truncated, has an unknown format byte, is not
UTF-8, not JSON or msgpack, not a mapping, lacks the fields of its table, or was written
by a newer version, is written straight into the changelog topics of a stopped worker's
tables; the worker restarted must start, drop that one key (a sensor warms up again),
count it (``citybrain_state_unreadable_total{table,reason}``) and audit it, and recover
every other key intact (the warmed-up sensor alerts on its next spike with no new
warm-up)."""

from __future__ import annotations

import math
import time

import msgspec
import orjson
import pytest

from detectors import RobustZScore, ScoreThreshold
from detectors.base import pack_floats, unpack_floats
from streams.detection import Incoming, SensorDetection, read_state, state_bytes
from streams.errors import shown_key
from tests.integration.routed import ROUTED_ALERT, ROUTED_ROUTE
from tests.integration.test_pipeline import docs, firing, reading, real_levels, send_readings
from tests.services import OPERATOR_TOKEN, Pipeline, scrape_sum

pytestmark = pytest.mark.integration

ROUTE = {"id": "r", "playbook": "flash-flood", "group_interval": 300.0, "repeat_interval": 3600.0}
GROUP = orjson.dumps({"generation": 0, "run": None, "seen": [], "commands": [], "route": ROUTE})
# A sensor state of the right envelope but a field judged at read-back (t33).
ENVELOPE = {"detector": {}, "last_ts": 1.7e9, "last_offset": 3, "episode": None}
EPISODE = {
    "alert_id": "al-x",
    "started_at": 1.7e9,
    "last_anomalous_at": 1.7e9,
    "peak_score": 0.9,
    "peak_value": 8.0,
    "quiet": "two",
}
# The largest integer orjson and msgpack write (and read back).
U64 = 2**64 - 1
RUN = {
    "run_id": "grp-x.1",
    "alert_id": "al-1",
    "playbook": "flash-flood",
    "grid_cell": "c-bridge",
    "kind": "water_level",
    "department": "water-authority",
}
MUTED = {
    "alert": {
        "alert_id": "al-1",
        "status": "firing",
        "kind": "water_level",
        "severity": "major",
        "grid_cell": "c-bridge",
        "labels": {"category": "flood"},
    },
    "mute": "silenced",
    "by": "sil-1",
    "since": 1.7e9,
}
# (table, key, changelog value, reason counted)
BAD: list[tuple[str, bytes, bytes, str]] = [
    # gauge-2 has a real state: its latest entry is replaced by a truncated one.
    (
        "sensor-state",
        b"gauge-2",
        b"\x01" + msgspec.msgpack.encode({"detector": {}})[:5],
        "not_decodable",
    ),
    ("sensor-state", b"ghost-fmt", b"\xc3\x00\x01", "unknown_format"),
    ("sensor-state", b"ghost-future", b"\x02" + msgspec.msgpack.encode({"v": 9}), "newer_format"),
    ("sensor-state", b"ghost-list", b"\x01" + msgspec.msgpack.encode([1, 2]), "bad_shape"),
    (
        "sensor-state",
        b"ghost-shape",
        b"\x01" + msgspec.msgpack.encode({"detector": {}, "last_ts": "yesterday"}),
        "bad_shape",
    ),
    ("groups", b"grp-latin1", b'{"run": "caf\xe9"}', "not_decodable"),
    ("groups", b"grp-text", b"not json at all", "not_decodable"),
    ("silences", b"sil-deep", b"[" * 2000 + b"]" * 2000, "not_decodable"),
    ("firing", b"al-number", b"12", "bad_shape"),
    ("burst-windows", b"c-mill\x1fNoise", b'{"ids": [', "not_decodable"),
    ("burst-state", b"c-top", b"\xff\xfe", "not_decodable"),
    ("burst-windows", b"c-top\x1fNoise", b'{"slot": 3, "counts": null}', "bad_shape"),
    ("groups", b"grp-\xff", GROUP, "not_decodable"),  # a key that is not UTF-8
    # A group without its run and route: the deadline check read every group's, and one
    # without them stopped every run's deadlines at every tick.
    ("groups", b"grp-old", b'{"run": null}', "bad_shape"),
    ("muted", b"al-muted", b'"just text"', "bad_shape"),
    ("corroboration", b"c-bridge", b"\x00\x00", "not_decodable"),
    # An area state of another shape: the release timer read its "held" and crashed the
    # worker at every start.
    ("corroboration", b"area-old", b'{"marks": {}}', "bad_shape"),
    ("groups", b"grp-future", orjson.dumps({"format": 99, "run": {}}), "newer_format"),
    # Fields judged once at read-back, not at every use (t33): a sensor's last value
    # that is text, an open episode of another shape, a run whose status no version
    # wrote, a muted entry without its mute, a firing alert's label that is a number.
    (
        "sensor-state",
        b"ghost-value",
        b"\x01" + msgspec.msgpack.encode({**ENVELOPE, "last_value": "9.5"}),
        "bad_shape",
    ),
    (
        "sensor-state",
        b"ghost-episode",
        b"\x01" + msgspec.msgpack.encode({**ENVELOPE, "episode": EPISODE}),
        "bad_shape",
    ),
    (
        "groups",
        b"grp-status",
        orjson.dumps(
            {
                **orjson.loads(GROUP),
                "run": {
                    "run_id": "grp-status.1",
                    "alert_id": "al-1",
                    "playbook": "flash-flood",
                    "grid_cell": "c-bridge",
                    "kind": "water_level",
                    "department": "water-authority",
                    "status": "done",
                },
            }
        ),
        "bad_shape",
    ),
    ("groups", b"grp-opened", orjson.dumps({**orjson.loads(GROUP), "opened_ts": "x"}), "bad_shape"),
    ("muted", b"al-nomute", orjson.dumps({"alert": {"alert_id": "al-nomute"}}), "bad_shape"),
    ("firing", b"al-labels", b'{"severity": 3}', "bad_shape"),
    # Counts past JSON's exact integers (t128): each read back, and counted once more,
    # could not be written again by the tables' encoder (64 bits), and every alert,
    # command or report meeting it failed (test_counts_at_the_64_bit_edge_...).
    ("generations", b"generations-0", orjson.dumps({"floor": U64}), "bad_shape"),
    ("groups", b"grp-gen", orjson.dumps({**orjson.loads(GROUP), "generation": U64}), "bad_shape"),
    (
        "groups",
        b"grp-seq",
        orjson.dumps(
            {
                **orjson.loads(GROUP),
                "generation": 1,
                "run": {**RUN, "run_id": "grp-seq.1", "seq": U64},
            }
        ),
        "bad_shape",
    ),
    (
        "burst-windows",
        b"c-mill\x1fOdd",
        orjson.dumps({"slot": 1, "counts": [U64], "baseline": 0.0, "held": [], "episode": None}),
        "bad_shape",
    ),
    (
        "sensor-state",
        b"ghost-quiet",
        b"\x01" + msgspec.msgpack.encode({**ENVELOPE, "episode": {**EPISODE, "quiet": U64}}),
        "bad_shape",
    ),
    # t166: an entry whose body names another key than its own (another tool's): a run
    # whose id is another group's, a muted alert that is another alert; and a key of
    # 1 MB, whose audit record (its key whole) was larger than the producer sends.
    (
        "groups",
        b"grp-stray",
        orjson.dumps({**orjson.loads(GROUP), "generation": 1, "run": RUN}),
        "bad_shape",
    ),
    ("muted", b"al-stray", orjson.dumps(MUTED), "bad_shape"),
    ("groups", b"grp-" + b"k" * 1_000_000, b"[1]", "bad_shape"),
]


def write_changelog(p: Pipeline, table: str, key: bytes, value: bytes | None) -> None:
    p.producer.send(f"{p.settings.app_id}-{table}-changelog", key=key, value=value)


def test_unreadable_changelog_entries_are_dropped_counted_and_audited(pipeline: Pipeline) -> None:
    base = real_levels(120)
    worker = pipeline.worker().start()
    try:
        send_readings(pipeline, base[:40])
        send_readings(pipeline, base[:40], sensor="gauge-2")
        pipeline.read("alerts", lambda m: True, timeout=5, settle=4)
    finally:
        worker.stop()  # commits and writes every sensor's state to the changelog
    for table, key, value, _ in BAD:
        write_changelog(pipeline, table, key, value)
    # A readable silence beside the unreadable ones: every other key recovers intact.
    silence = {
        "id": "sil-good",
        "matchers": ['category="Fireworks"'],
        "starts_at": 0.0,
        "ends_at": 4e9,
        "author": "op",
        "reason": "kept",
    }
    write_changelog(pipeline, "silences", b"sil-good", orjson.dumps(silence))
    # A tombstone is a deletion, not a fault.
    write_changelog(pipeline, "groups", b"grp-gone", GROUP)
    write_changelog(pipeline, "groups", b"grp-gone", None)
    pipeline.flush()

    worker = pipeline.worker().start()
    try:
        # gauge-1's state came back whole: a spike right after its 40 readings alerts.
        send_readings(pipeline, [base[39] * 8], start=40)
        alerts = pipeline.read("alerts", lambda m: len(firing(m)) >= 1, settle=2)
        assert [d["sensor_id"] for d in firing(alerts)] == ["gauge-1"]
        # gauge-2's state was dropped: its readings are scored from a new warm-up, none
        # dead-lettered, and its spike after a full warm-up again alerts.
        send_readings(pipeline, base[40:80], start=40, sensor="gauge-2")
        send_readings(pipeline, [base[79] * 8], start=80, sensor="gauge-2")
        alerts = pipeline.read("alerts", lambda m: len(firing(m)) >= 2, settle=2)
        assert sorted(d["sensor_id"] for d in firing(alerts)) == ["gauge-1", "gauge-2"]
        audit = pipeline.read(
            "audit",
            lambda m: (
                len([d for d in docs(m) if d.get("action") == "state_unreadable"]) >= len(BAD)
            ),
            settle=2,
        )
        unreadable = [d for d in docs(audit) if d.get("action") == "state_unreadable"]
        assert sorted((d["table"], d["key"]) for d in unreadable) == sorted(
            (t, shown_key(k)) for t, k, _, _ in BAD
        )
        assert all(len(orjson.dumps(d)) < 2_000 for d in unreadable)
        port = pipeline.settings.worker_port
        expected: dict[tuple[str, str], int] = {}
        for table, _, _, reason in BAD:
            expected[table, reason] = expected.get((table, reason), 0) + 1
        for (table, reason), n in expected.items():
            got = scrape_sum(
                port, f'citybrain_state_unreadable_total{{reason="{reason}",table="{table}"}}'
            )
            assert got == n, (table, reason, got)
        status, listed = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
        assert status == 200
        assert [(x["id"], x["active"]) for x in listed["silences"]] == [("sil-good", True)]
        time.sleep(2)
        assert worker.alive()
        log = worker.log()
        assert "Traceback" not in log and "Crashed" not in log
    finally:
        worker.stop()
    dead = pipeline.read("deadletter", lambda m: True, timeout=3, settle=1)
    assert dead == []


def test_counts_at_the_64_bit_edge_are_dropped_and_cost_no_other_group(
    pipeline: Pipeline,
) -> None:
    """t128: a generation floor of 2**64 - 1 written into the ``generations`` changelog
    (orjson reads integers up to 64 bits) was read back; every new group of its partition
    then started at that generation, its first run's 2**64 could not be written (``TypeError:
    Integer exceeds 64-bit range``), and each routed alert of a new group there was
    dead-lettered as a ``processing_error`` with a traceback, as was every alert of a group
    stored at that generation. Now both entries are dropped at read-back (counted and
    audited) and every group opens its run."""
    from streams.context import generation_keys
    from streams.partitioning import key_partition

    p = pipeline
    n = p.settings.partitions
    worker = p.worker().start()
    worker.stop()  # its tables' changelog topics now exist
    groups = [f"grp-edge-{i}" for i in range(6)]
    home = key_partition(groups[0].encode(), n)
    assert any(key_partition(g.encode(), n) != home for g in groups)  # both partitions
    floor_key = generation_keys(n)[home]
    write_changelog(p, "generations", floor_key, orjson.dumps({"floor": U64}))
    stored = {**orjson.loads(GROUP), "generation": U64, "route": ROUTED_ROUTE}
    write_changelog(p, "groups", groups[1].encode(), orjson.dumps(stored))
    p.flush()
    worker = p.worker().start()
    try:
        for group in groups:
            alert = {**ROUTED_ALERT, "alert_id": f"al-{group}"}
            alert["labels"] = {**ROUTED_ALERT["labels"], "alert_id": f"al-{group}"}
            doc = {"alert": alert, "route": ROUTED_ROUTE}
            p.send("routed", group.encode(), orjson.dumps(doc))
        p.flush()
        want = {f"{g}.1" for g in groups}
        steps = p.read(
            "steps", lambda m: {orjson.loads(s.value)["run_id"] for s in m} >= want, settle=2
        )
        assert {orjson.loads(s.value)["run_id"] for s in steps} == want
        audit = p.read(
            "audit",
            lambda m: len([d for d in docs(m) if d.get("action") == "state_unreadable"]) >= 2,
            settle=2,
        )
        dropped = sorted(
            (d["table"], d["key"]) for d in docs(audit) if d.get("action") == "state_unreadable"
        )
        assert dropped == sorted([("generations", floor_key.decode()), ("groups", groups[1])])
        log = worker.log()
        assert worker.alive() and "Traceback" not in log and "Crashed" not in log
    finally:
        worker.stop()
    assert p.read("deadletter", lambda m: True, timeout=3, settle=1) == []


def test_a_detector_state_its_detector_cannot_use_starts_it_over_said_and_counted(
    pipeline: Pipeline,
) -> None:
    # The envelope is judged at read-back; the detector's own document at its first use.
    # gauge-1's robust z-score state has an empty far run (set_state raised IndexError:
    # before, every later reading of the sensor was dead-lettered, detector_error, for
    # good), gauge-2's a window of NaN (scored NaN until the window had rolled past it;
    # no detector writes NaN into its state, so it is refused as corrupt).
    # Each detector starts over now, said, counted and audited as an unreadable entry.
    base = real_levels(120)
    worker = pipeline.worker().start()
    try:
        send_readings(pipeline, base[:40])
        pipeline.read("alerts", lambda m: True, timeout=5, settle=4)
    finally:
        worker.stop()
    # (The pipeline's detector: tests.services.Pipeline.)
    detection = SensorDetection(RobustZScore(window=48, min_samples=12), ScoreThreshold(0.6))
    for sensor in ("gauge-1", "gauge-2"):
        ours = [Incoming(reading(i, v, sensor), 0.0, -1) for i, v in enumerate(base[:40])]
        state = read_state(state_bytes(detection.process(ours, {}).states[sensor]))
        if sensor == "gauge-1":
            state["detector"]["run"] = []
        else:
            window = unpack_floats(state["detector"]["window"])
            state["detector"]["window"] = pack_floats([math.nan] * len(window))
        write_changelog(pipeline, "sensor-state", sensor.encode(), state_bytes(state))
    pipeline.flush()

    worker = pipeline.worker().start()
    try:
        for sensor in ("gauge-1", "gauge-2"):
            send_readings(pipeline, base[40:80], start=40, sensor=sensor)
            send_readings(pipeline, [base[79] * 8], start=80, sensor=sensor)
        alerts = pipeline.read("alerts", lambda m: len(firing(m)) >= 2, settle=2)
        assert sorted(d["sensor_id"] for d in firing(alerts)) == ["gauge-1", "gauge-2"]
        audit = pipeline.read(
            "audit",
            lambda m: len([d for d in docs(m) if d.get("action") == "state_unreadable"]) >= 2,
            settle=2,
        )
        said = {d["key"]: d for d in docs(audit) if d.get("action") == "state_unreadable"}
        assert sorted(said) == ["gauge-1", "gauge-2"]
        assert {(d["table"], d["reason"]) for d in said.values()} == {("sensor-state", "bad_shape")}
        assert "IndexError" in said["gauge-1"]["detail"]
        assert "state holds nan at place 0" in said["gauge-2"]["detail"]
        port = pipeline.settings.worker_port
        got = scrape_sum(
            port, 'citybrain_state_unreadable_total{reason="bad_shape",table="sensor-state"}'
        )
        assert got == 2
        log = worker.log()
        assert "Traceback" not in log and "Crashed" not in log
    finally:
        worker.stop()
    assert pipeline.read("deadletter", lambda m: True, timeout=3, settle=1) == []
