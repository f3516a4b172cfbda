"""Every worker dead letter names where it came from (``citybrain.error.origin``,
docs/events.md), packed readings included: trial 3 found the ``out_of_order`` dead letters
of readings sent through the MQTT and HTTP ingest (which packs) without the header."""

from __future__ import annotations

import json

import pytest
from faust.types import Message

from detectors import RobustZScore, ScoreThreshold
from playbooks.grid import Grid
from streams.columns import BatchAdmission
from streams.context import message_origin
from streams.detection import SensorDetection
from streams.events import EventValidator, dead_letter_key
from streams.ingest import rejected_origin
from streams.partitioning import sensor_partition
from tests.unit.streams.test_poison_pills import GOOD, NOW

PARTITIONS = 2
HOME = sensor_partition("gauge-1", PARTITIONS)


def reading(minute: int) -> dict[str, object]:
    return {**GOOD, "ts": f"2026-11-01T10:{minute:02d}:00Z"}


def message(offset: int, value: bytes) -> Message:
    return Message("t.readings", HOME, offset, 0.0, 0, None, b"gauge-1", value, None)


def refused_origins(grid: Grid, messages: list[Message]) -> list[tuple[str, str]]:
    """(reason, origin) of every reading detection refuses in one batch, as the worker's
    readings agent would dead-letter them."""
    incoming, refused = BatchAdmission(EventValidator(grid), PARTITIONS).admit(
        [m.value for m in messages],
        [m.partition for m in messages],
        [m.offset for m in messages],
        [0.0] * len(messages),
        NOW,
    )
    assert refused == []
    detection = SensorDetection(RobustZScore(window=48, min_samples=4), ScoreThreshold(0.6), 3)
    result = detection.process(incoming, {})
    return [(code, rejected_origin(messages, item)) for item, code, _ in result.rejected]


def test_an_out_of_order_reading_of_a_pack_names_its_message_and_place(grid: Grid) -> None:
    pack = {"schema": "readings/1", "readings": [reading(30), reading(40), reading(35)]}
    got = refused_origins(grid, [message(7, json.dumps(pack).encode())])
    assert got == [("out_of_order", f"t.readings/{HOME}/7#2")]


def test_an_out_of_order_single_reading_names_its_message(grid: Grid) -> None:
    messages = [message(8 + i, json.dumps(reading(m)).encode()) for i, m in enumerate((30, 40, 35))]
    assert refused_origins(grid, messages) == [("out_of_order", f"t.readings/{HOME}/10")]


def test_origin_reads_topic_partition_offset_and_place() -> None:
    assert message_origin("p.readings", 1, 42) == "p.readings/1/42"
    assert message_origin("p.readings", 1, 42, 0) == "p.readings/1/42#0"


def test_every_refused_reading_of_a_pack_is_keyed_by_its_sensor(grid: Grid) -> None:
    """Trial 8: a pack's bad_type and wrong_partition dead letters kept the pack's key,
    its out_of_order ones had the sensor's: one rule now (docs/events.md)."""
    other = next(s for s in grid.sensors if sensor_partition(s, PARTITIONS) != HOME)
    sensor = grid.sensors[other]
    elsewhere = {**reading(31), "sensor_id": other, "kind": sensor.kind, "grid_cell": sensor.cell}
    elsewhere["unit"] = grid.kinds[sensor.kind].unit
    pack = {
        "schema": "readings/1",
        "readings": [reading(30), {**reading(31), "value": "x"}, elsewhere],
    }
    pack_message = Message(
        "t.readings", HOME, 3, 0.0, 0, None, b"pack-1", json.dumps(pack).encode(), None
    )
    _, refused = BatchAdmission(EventValidator(grid), PARTITIONS).admit(
        [pack_message.value], [HOME], [3], [0.0], NOW
    )
    keys = {r.error.code: dead_letter_key(r.raw or b"", pack_message.key) for _, r in refused}
    assert keys == {"bad_type": b"gauge-1", "wrong_partition": other.encode()}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"sensor_id": "s-1", "value": "x"}', b"s-1"),
        (b'{"sensor_id": "", "value": 1}', b"pack-1"),  # no sensor id to key by
        (b'{"sensor_id": 7}', b"pack-1"),
        (b'{"sensor_id": "\\ud800"}', b"pack-1"),  # a lone surrogate cannot be a key
        (b"[1, 2]", b"pack-1"),
        (b"not json", b"pack-1"),
        (b'{"schema": "readings/1", "readings": []}', b"pack-1"),  # a whole pack
    ],
)
def test_a_dead_letter_key_is_the_sensor_id_when_there_is_one(raw: bytes, key: bytes) -> None:
    assert dead_letter_key(raw, b"pack-1") == key
