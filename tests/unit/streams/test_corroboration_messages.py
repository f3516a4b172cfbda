"""Odd but well-formed values on the corroboration topic (helper t52): each is refused
naming the field and value before it reaches an area's state, where it cost the area's
other marks and held alerts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context
from streams.corroborating import CorroborationStage, read_area_state
from streams.corroboration import checked_message
from streams.detection import SensorDetection
from streams.errors import EventError
from streams.events import AM_TIME_TAKEN, format_ts
from streams.metrics import Metrics
from streams.settings import Settings

DEAD_RUN = ("usgs-01589330-discharge", "usgs-01589330-water_level")
AT = 1_557_500_000.0  # 2019-05-10T14:53:20Z


def alert(sensor: str, score: Any = 0.5, **change: Any) -> dict[str, Any]:
    sensor_id = sensor
    return {
        "alert_id": f"al-{sensor_id}",
        "status": "firing",
        "sensor_id": sensor_id,
        "kind": sensor_id.rsplit("-", 1)[1],
        "grid_cell": "md-gauge-01589330",  # the Dead Run gauges' cell
        "severity": "minor",
        "score": score,
        "started_at": format_ts(AT),
        "labels": {"source": "sensor"},
        **change,
    }


def mark(sensor_id: str, ts: Any = AT, score: Any = 0.5) -> dict[str, Any]:
    return {"type": "mark", "sensor_id": sensor_id, "ts": ts, "score": score}


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (mark(DEAD_RUN[0], ts=1e308), 'field "ts" is 1e+308: expected epoch seconds (years'),
        (mark(DEAD_RUN[0], ts=-5e-324), 'field "ts" is -5e-324: expected a reading\'s event time'),
        (mark(DEAD_RUN[0], ts=float("nan")), 'field "ts" is nan: expected epoch seconds'),
        (mark(DEAD_RUN[0], ts=253_402_300_799), "expected a reading's event time, from 1990"),
        (mark(DEAD_RUN[0], ts=1_557_500_000_000), "looks like epoch milliseconds"),
        (mark(DEAD_RUN[0], ts="1557500000"), "field \"ts\" is '1557500000': expected epoch"),
        (mark(DEAD_RUN[0], ts=True), 'field "ts" is true: expected epoch seconds'),
        (mark(DEAD_RUN[0], score=float("inf")), 'field "score" is inf: expected a score from 0'),
        (mark(DEAD_RUN[0], score=10**400), 'field "score" is 1000000'),
        (mark(""), "field \"sensor_id\" is '': expected a non-empty string"),
        # t199: a mark's reading value tells a copy or a stuck witness (fails on the old
        # code, which took any value unread).
        ({**mark(DEAD_RUN[0]), "value": "3.2"}, "field \"value\" is '3.2': expected the"),
        ({**mark(DEAD_RUN[0]), "value": True}, 'field "value" is true: expected the reading'),
        ({**mark(DEAD_RUN[0]), "value": float("inf")}, 'field "value" is inf: expected the'),
        ({**mark(DEAD_RUN[0]), "value": 10**400}, 'field "value" is 1000000'),
        # A suspect note (t199) is checked as a mark is.
        ({"type": "suspect", "sensor_id": "", "ts": AT}, "field \"sensor_id\" is ''"),
        ({"type": "suspect", "sensor_id": "s", "ts": 1e308}, 'field "ts" is 1e+308'),
        ({"type": "suspect", "sensor_id": "s", "Ts": AT}, "the key looks like 'ts'"),
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], score=float("nan"))},
            'field "alert.score" is nan: expected a score from 0 to 1',
        ),
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], score=-0.5)},
            'field "alert.score" is -0.5: expected a score from 0 to 1',
        ),
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], labels="x")},
            "field \"alert.labels\" is 'x': labels are 'x', expected a mapping",
        ),
        # A spelling no worker took (an earlier worker's 2019-05-10t14:53:20z is read on
        # this topic, citybrain's own, since t146).
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], started_at="2019-05-10T14:53:20 UTC")},
            "field \"alert.started_at\" is '2019-05-10T14:53:20 UTC': expected a time as "
            f"Alertmanager takes it (2026-11-01T10:00:00Z); {AM_TIME_TAKEN}",
        ),
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], started_at=None)},
            'field "alert.started_at" is null: expected when it started',
        ),
        (
            {"type": "alert", "alert": alert(DEAD_RUN[0], sensor_id=None)},
            'field "alert.sensor_id" is null: expected a sensor\'s id',
        ),
        ({"type": "alert", "alert": [1]}, "expected a JSON object"),
        ({"type": "note"}, "field \"type\" is 'note': expected an object whose type is mark"),
    ],
)
def test_odd_values_are_refused_naming_the_field(message: dict[str, Any], said: str) -> None:
    with pytest.raises(EventError) as refused:
        checked_message(message, time.time(), 300.0)
    assert said in str(refused.value), str(refused.value)


def test_the_worker_s_own_messages_pass() -> None:
    for message in (
        mark(DEAD_RUN[0]),
        mark(DEAD_RUN[0], score=1),
        {**mark(DEAD_RUN[0]), "value": 0},
        {**mark(DEAD_RUN[0]), "value": None},  # a worker before t199: unknown
        {"type": "suspect", "sensor_id": DEAD_RUN[0], "ts": AT},
        {"type": "alert", "alert": alert(DEAD_RUN[0], score=0)},
    ):
        assert checked_message(message, time.time(), 300.0) is message
    # A time with no zone (UTC, t140) is taken, passed on written with its zone (t144).
    message = {"type": "alert", "alert": alert(DEAD_RUN[0], started_at="2019-05-10T14:53:20")}
    taken = checked_message(message, time.time(), 300.0)
    assert taken["alert"] == {**message["alert"], "started_at": "2019-05-10T14:53:20Z"}


def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CorroborationStage, list[Any]]:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-odd", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    built = CorroborationStage(app, ctx, SensorDetection.from_settings(settings))
    forwarded: list[Any] = []

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        forwarded.extend(doc for _, doc in items)

    async def write(key: bytes, entry: bytes) -> None:
        return None

    monkeypatch.setattr(ctx, "send_all", send_all)
    monkeypatch.setattr(built.table, "_send", write)
    return built, forwarded


def deliver(on: CorroborationStage, key: bytes, message: dict[str, Any]) -> None:
    event = SimpleNamespace(key=key, value=orjson.dumps(message))
    asyncio.run(on.on_message(event))  # type: ignore[arg-type]


def test_a_mark_far_in_the_future_costs_its_sensor_no_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mark at 1e308 (or in the year 9999) became its sensor's newest, and each mark is
    kept by its sensor's newest: every real mark of the sensor, then and after, was
    pruned, and a held alert its real mark should corroborate went on isolated."""
    on, forwarded = stage(tmp_path, monkeypatch)
    key = on.areas.area(DEAD_RUN[1]).encode()
    deliver(on, key, {"type": "alert", "alert": alert(DEAD_RUN[1])})
    assert forwarded == []  # lone, not decisive: held
    for ts in (1e308, 253_402_300_799.0):
        with pytest.raises(EventError):
            deliver(on, key, mark(DEAD_RUN[0], ts=ts))
    deliver(on, key, mark(DEAD_RUN[0], ts=AT + 60))
    (out,) = forwarded
    assert out["labels"]["corroboration"] == "corroborated"


def test_an_alert_with_a_score_json_cannot_keep_costs_its_area_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A score of NaN (written by a producer as the bare NaN, or 1e400 read as infinity)
    was held as it was and stored as null: the area's state then did not read back, and
    the alerts it held with it were dropped."""
    on, _ = stage(tmp_path, monkeypatch)
    key = on.areas.area(DEAD_RUN[1]).encode()
    deliver(on, key, {"type": "alert", "alert": alert(DEAD_RUN[1])})
    raw = orjson.dumps({"type": "alert", "alert": alert(DEAD_RUN[0], alert_id="al-x")})
    for odd in (b"NaN", b"1e400"):
        event = SimpleNamespace(key=key, value=raw.replace(b'"score":0.5', b'"score":' + odd))
        # Each as sent: 1e400 no longer shown as the inf it overflows to (t98).
        with pytest.raises(EventError, match=r'"alert.score" is (nan|1e400):'):
            asyncio.run(on.on_message(event))  # type: ignore[arg-type]
    state = read_area_state(orjson.dumps(on.table.data[key]))
    assert list(state["held"]) == [f"al-{DEAD_RUN[1]}"]


def test_an_alert_s_area_state_is_encoded_once_and_written_as_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The area's state was encoded for its size check and again by set_many (t103).
    on, _ = stage(tmp_path, monkeypatch)
    encoded: list[bytes] = []
    sent: list[tuple[bytes, bytes]] = []
    encode = on.table.encode

    def counted(value: Any) -> bytes:
        encoded.append(encode(value))
        return encoded[-1]

    async def send(key: bytes, entry: bytes) -> None:
        sent.append((key, entry))

    monkeypatch.setattr(on.table, "encode", counted)
    monkeypatch.setattr(on.table, "_send", send)
    key = on.areas.area(DEAD_RUN[1]).encode()
    deliver(on, key, {"type": "alert", "alert": alert(DEAD_RUN[1])})
    assert len(encoded) == 1 and sent == [(key, encoded[0])]
    assert read_area_state(sent[0][1]) == read_area_state(encode(on.table.data[key]))


def test_a_mark_s_value_reaches_its_area_held_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t199 (fails on the old code): the stage records each mark's reading value, in
    place for an area holding no alert and through the copy for one holding alerts; a
    site-mate whose readings are the alert's own is no witness, and a mark from a
    worker before t199 (no value) is one, as before."""
    on, forwarded = stage(tmp_path, monkeypatch)
    key = on.areas.area(DEAD_RUN[1]).encode()
    deliver(on, key, {**mark(DEAD_RUN[0]), "value": 7.5})  # in place: no alert held
    assert on.table.data[key]["values"][DEAD_RUN[0]] == [7.5]
    deliver(on, key, {"type": "alert", "alert": alert(DEAD_RUN[1], value=7.5)})
    assert forwarded == []  # its one witness reads what it reads: held
    deliver(on, key, {**mark(DEAD_RUN[0], ts=AT + 60), "value": 8.0})
    assert forwarded == [] and on.table.data[key]["values"][DEAD_RUN[0]] == [7.5, 8.0]
    deliver(on, key, mark(DEAD_RUN[0], ts=AT + 120))  # unknown value: a witness
    (out,) = forwarded
    assert out["labels"]["corroboration"] == "corroborated"
    assert on.table.data[key]["values"][DEAD_RUN[0]] == [7.5, 8.0, None]


SLIGO = ("usgs-01650800-turbidity", "usgs-01650800-water_level")


def test_a_suspect_in_its_own_area_is_no_witness_at_its_site_mates_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t199 (fails on the old code): Sligo Creek's turbidity probe alerts alone and goes
    on as a suspected sensor fault in the turbidity area. Its water-level site-mate's
    alerts are assessed in another area, where the probe's marks still counted: a
    suspect corroborated the gauge. Now the area that forwards it sends a suspect note
    to every other area its marks reach."""
    on, forwarded = stage(tmp_path, monkeypatch)
    probe, level = SLIGO
    own, other = on.areas.area(probe).encode(), on.areas.area(level).encode()
    assert own != other and other.decode() in on.areas.mark_areas(probe)
    deliver(on, own, {"type": "alert", "alert": alert(probe, grid_cell="md-gauge-01650800")})
    assert forwarded == []  # lone: held
    on.table.data[own]["held"][f"al-{probe}"]["held_at"] -= on.policy.grace
    monkeypatch.setattr(on.app.tables.recovery.completed, "is_set", lambda: True)
    every = {TP(on.topic_name, p) for p in range(on.ctx.settings.partitions)}
    monkeypatch.setattr(on.app.consumer, "assignment", lambda: every)
    asyncio.run(on.release_due())
    released, *notes = forwarded
    assert released["labels"]["assessment"] == "suspected_sensor_fault"
    assert {n["sensor_id"] for n in notes} == {probe} and len(notes) == len(
        on.areas.mark_areas(probe)
    ) - (own.decode() in on.areas.mark_areas(probe))
    assert all(n == {"type": "suspect", "sensor_id": probe, "ts": AT} for n in notes)
    forwarded.clear()
    for note in notes:
        deliver(on, other, note)  # what the topic brings the level's area
    assert on.table.data[other]["suspects"] == {probe: [AT]}
    deliver(on, other, {**mark(probe, ts=AT + 600), "value": 40.0})
    level_alert = alert(level, grid_cell="md-gauge-01650800", started_at=format_ts(AT + 900))
    deliver(on, other, {"type": "alert", "alert": level_alert})
    assert forwarded == []  # the suspect's mark is no witness: held
