"""Keys a reading, a pack, a report or an MQTT payload carries beyond its schema (t112).

Before, every such key was dropped without a trace: ``{"categroy": "noise"}`` was
``field "category" is missing`` with nothing naming the key sent, an MQTT payload's
``"timestamp"`` was stamped with the time of receipt, and ``lat``/``contact`` vanished.
Now a key close to a field that is not given (case, separators, two edits, an alias of
``ts``) is refused naming both; any other is read past, counted per message kind in
``citybrain_unknown_fields_total{kind}`` and named in one log line per key."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from citybrain.ingest.mapping import MqttMapping
from citybrain.ingest.metrics import IngestMetrics
from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import INCIDENT_KEYS, EventValidator, IncidentReport, near_name
from streams.metrics import Metrics
from streams.unknown import UNKNOWN, UnknownFields
from tests.unit.streams.test_columns import GOOD, batched, good, home_of_gauge
from tests.unit.streams.test_poison_pills import NOW

READING_KEYS = frozenset({"schema", "ts", "sensor_id", "kind", "value", "unit", "grid_cell"})


@pytest.mark.parametrize(
    ("key", "names", "meant"),
    [
        ("categroy", INCIDENT_KEYS, "category"),  # a transposition
        ("sensorid", READING_KEYS, "sensor_id"),  # no separator
        ("Sensor-Id", READING_KEYS, "sensor_id"),  # case and another separator
        ("grid_cel", READING_KEYS, "grid_cell"),
        ("timestamp", READING_KEYS, "ts"),  # an alias
        ("timestmap", READING_KEYS, "ts"),  # its misspelling
        ("units", READING_KEYS, "unit"),
        ("lat", READING_KEYS, None),
        ("lon", INCIDENT_KEYS, None),
        ("contact", INCIDENT_KEYS, None),
        ("tz", READING_KEYS, None),  # two letters: only another case or separator of ts
        ("battery", READING_KEYS, None),
    ],
)
def test_a_key_near_a_field_is_seen_as_its_misspelling(
    key: str, names: frozenset[str], meant: str | None
) -> None:
    assert near_name(key, names) == meant


def report(**extra: object) -> bytes:
    doc = json.loads(IncidentReport(NOW - 60, "r-1", "Noise", "loud", "app", "c-bridge").to_json())
    return json.dumps({**doc, **extra}).encode()


def test_a_misspelt_report_key_is_refused_naming_the_field_it_means(grid: Grid) -> None:
    doc = json.loads(report())
    doc["categroy"] = doc.pop("category")
    with pytest.raises(EventError) as caught:
        EventValidator(grid).incident(json.dumps(doc).encode(), NOW)
    assert (caught.value.code, caught.value.field) == ("bad_json", "categroy")
    assert "a misspelling of 'category'?" in caught.value.reason


def test_a_misspelt_reading_key_is_refused_on_the_fast_path_too(grid: Grid) -> None:
    doc = {**GOOD, "ts": "2026-11-01T10:03:00Z"}
    doc["sensorid"] = doc.pop("sensor_id")
    incoming, refused = batched(grid, [good(1), json.dumps(doc).encode()], [home_of_gauge()] * 2)
    assert len(incoming) == 1
    assert [(code, "a misspelling of 'sensor_id'?" in text) for _, code, text, _, _ in refused] == [
        ("bad_json", True)
    ]


def test_a_near_key_beside_its_field_is_another_field(grid: Grid) -> None:
    # {"sensor": ..., "sensor_id": ...}: a sensor's name beside its id, not a misspelling.
    before = UNKNOWN.counts()["reading"]
    doc = {**GOOD, "ts": "2026-11-01T10:03:00Z", "sensor": "the bridge gauge"}
    incoming, refused = batched(grid, [json.dumps(doc).encode()], [home_of_gauge()])
    assert (len(incoming), refused) == (1, [])
    assert UNKNOWN.counts()["reading"] == before + 1


def test_other_keys_are_read_past_counted_and_named_once(
    grid: Grid, caplog: pytest.LogCaptureFixture
) -> None:
    before = UNKNOWN.counts()
    caplog.set_level(logging.WARNING, logger="streams.unknown")
    validator = EventValidator(grid)
    for _ in range(3):
        got = validator.incident(report(lat=30.66, lon=104.06, contact="+86 28 1234"), NOW)
        assert got.report_id == "r-1"
    reading = {**GOOD, "ts": "2026-11-01T10:04:00Z", "battery": 87}
    incoming, refused = batched(grid, [json.dumps(reading).encode()], [home_of_gauge()])
    assert (len(incoming), refused) == (1, [])
    after = UNKNOWN.counts()
    assert after["incident"] - before["incident"] == 9
    assert after["reading"] - before["reading"] == 1
    named = [r.getMessage() for r in caplog.records if "does not define" in r.getMessage()]
    for key in ("'lat'", "'lon'", "'contact'"):
        assert sum(key in line for line in named) <= 1  # once per key per process
    assert all("citybrain_unknown_fields_total" in line for line in named)


def test_the_named_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    tally = UnknownFields()
    caplog.set_level(logging.WARNING, logger="streams.unknown")
    tally.note("reading", [f"k{i}" for i in range(1_500)])
    assert tally.counts()["reading"] == 1_500
    assert len([r for r in caplog.records if "does not define" in r.getMessage()]) == 1_000


def test_an_mqtt_payload_key_near_a_field_is_refused_and_others_counted(grid: Grid) -> None:
    mapping = MqttMapping.build(grid)
    sensor = next(iter(grid.sensors.values()))
    topic = f"city/east/{sensor.id}/{sensor.kind}"
    with pytest.raises(EventError) as caught:
        mapping.to_document(topic, b'{"value": 2.5, "timestamp": "2026-11-01T10:00:00Z"}', NOW)
    assert caught.value.field == "timestamp" and "a misspelling of 'ts'?" in caught.value.reason
    before = UNKNOWN.counts()["mqtt_payload"]
    assert mapping.to_document(topic, b'{"value": 2.5, "rssi": -70}', NOW)["value"] == 2.5
    assert UNKNOWN.counts()["mqtt_payload"] == before + 1


def test_the_count_is_exported_by_the_worker_and_the_ingest() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    ingest = IngestMetrics.create("http", lambda: 0)
    for text in (generate_latest(registry), generate_latest(ingest.registry)):
        assert b'citybrain_unknown_fields_total{kind="incident"}' in text
        assert b'citybrain_unknown_fields_total{kind="mqtt_payload"}' in text


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("incident", "an incident carries the key 'lat'"),  # t137: "a incident"
        ("reading", "a reading carries the key 'lat'"),
        ("pack", "a pack carries the key 'lat'"),
        ("mqtt_payload", "an MQTT payload carries the key 'lat'"),
    ],
)
def test_each_kinds_line_reads_as_english(
    kind: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streams.unknown")
    UnknownFields().note(kind, ["lat"])
    [line] = [r.getMessage() for r in caplog.records if "does not define" in r.getMessage()]
    assert line.startswith(f"citybrain: {said}, which its schema does not define")
