"""Property: whatever bytes arrive, validation returns a reading or raises EventError with
a bounded reason code and a message -- never anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator, Reading

NOW = 1_800_000_000.0
CODES = {
    "bad_json",
    "bad_schema",
    "missing_field",
    "bad_type",
    "not_finite",
    "bad_timestamp",
    "too_old",
    "in_future",
    "unknown_kind",
    "bad_unit",
    "unknown_cell",
    "unknown_sensor",
    "registration_mismatch",
    "out_of_range",
}
GOOD: dict[str, Any] = {
    "schema": "reading/1",
    "ts": "2026-11-01T10:00:00Z",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "value": 1.5,
    "unit": "ft",
    "grid_cell": "c-bridge",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    doc = dict(GOOD)
    for field in draw(st.lists(st.sampled_from(sorted(GOOD)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del doc[field]
        else:
            doc[field] = draw(json_values)
    raw = json.dumps(doc, allow_nan=True).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8))
    return raw


@settings(max_examples=3000, deadline=None)
@given(st.one_of(mutated(), st.binary(max_size=200)))
def test_validation_never_crashes(grid: Grid, raw: bytes) -> None:
    try:
        reading = EventValidator(grid).reading(raw, NOW)
    except EventError as exc:
        assert exc.code in CODES
        assert str(exc)
    else:
        assert isinstance(reading, Reading)
