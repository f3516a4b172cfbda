"""Readings are checked against the grid's kinds (issue 12 item 10), not a list in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from playbooks.loader import load_grid
from streams.errors import EventError
from streams.events import EventValidator, Reading
from tests.services import FIXTURES

NOW = 1_793_530_000.0


def gauge(**over: Any) -> bytes:
    doc = {
        "schema": "reading/1",
        "ts": "2026-11-01T10:00:00Z",
        "sensor_id": "q1",
        "kind": "water_discharge",
        "value": 12.5,
        "unit": "m3/s",
        "grid_cell": "c-bridge",
    }
    return orjson.dumps({**doc, **over})


@pytest.fixture
def validator(tmp_path: Path) -> EventValidator:
    text = (FIXTURES / "grid.yaml").read_text()
    text = text.replace(
        "cells:\n",
        "kinds:\n  - {id: water_discharge, unit: m3/s, min: 0, max: 100000}\ncells:\n",
        1,
    )
    text += "  - {id: q1, kind: water_discharge, unit: m3/s, cell: c-bridge}\n"
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return EventValidator(load_grid(path))


def test_a_discharge_gauge_of_a_declared_kind_is_accepted(validator: EventValidator) -> None:
    reading = validator.reading(gauge(), NOW)
    assert reading == Reading(1_793_527_200.0, "q1", "water_discharge", 12.5, "m3/s", "c-bridge")


@pytest.mark.parametrize(
    ("over", "code", "message"),
    [
        ({"kind": "water_flow"}, "unknown_kind", "field \"kind\" is 'water_flow': not a kind"),
        ({"unit": "ft3/s"}, "bad_unit", "kind water_discharge is measured in m3/s"),
        # the sensor's registered kind and the reading's disagree
        (
            {"kind": "water_level", "unit": "ft"},
            "registration_mismatch",
            "field \"kind\" is 'water_level': sensor q1 is registered as water_discharge",
        ),
        ({"value": -3.0}, "out_of_range", 'field "value" is -3.0: kind water_discharge'),
        ({"value": 1e308}, "out_of_range", "plausible in [0, 100000] m3/s"),
        ({"value": 10**401}, "out_of_range", "plausible in [0, 100000] m3/s"),
    ],
)
def test_kind_faults_are_dead_letter_reasons(
    validator: EventValidator, over: dict[str, Any], code: str, message: str
) -> None:
    raw = gauge(**over) if over.get("value") != 10**401 else _bigint()
    with pytest.raises(EventError) as info:
        validator.reading(raw, NOW)
    assert info.value.code == code
    assert message in str(info.value)


def _bigint() -> bytes:
    # orjson cannot write it; the wire can carry it.
    return gauge(value=0).replace(b'"value":0', b'"value":' + str(10**401).encode())


def test_built_in_kinds_keep_their_ranges(validator: EventValidator) -> None:
    raw = orjson.dumps(
        {
            "schema": "reading/1",
            "ts": "2026-11-01T10:00:00Z",
            "sensor_id": "gauge-1",
            "kind": "water_level",
            "value": 1e308,
            "unit": "ft",
            "grid_cell": "c-bridge",
        }
    )
    with pytest.raises(EventError, match=r"plausible in \[-1000, 1000\] ft") as info:
        validator.reading(raw, NOW)
    assert info.value.code == "out_of_range"
