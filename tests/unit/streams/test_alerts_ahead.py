"""An alert whose ``started_at`` or ``ended_at`` lies past the clock (more than
``CITYBRAIN_MAX_FUTURE_SKEW``) is refused at the doors that take alerts (t128): its run
would open in the future, and every report offered to its group be "too old" for it."""

from __future__ import annotations

import pytest

from streams.corroboration import checked_message
from streams.errors import EventError
from streams.events import format_ts, refuse_alert_ahead

NOW = 1_790_000_000.0
ALERT = {
    "alert_id": "al-1",
    "status": "firing",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "minor",
    "score": 0.9,
    "started_at": format_ts(NOW - 60),
    "labels": {},
}


def test_an_alert_within_the_skew_is_taken() -> None:
    refuse_alert_ahead({**ALERT, "started_at": format_ts(NOW + 300)}, NOW, 300.0, "bad_alert")
    refuse_alert_ahead({**ALERT, "ended_at": None}, NOW, 300.0, "bad_alert")


@pytest.mark.parametrize(
    ("field", "value"),
    [("started_at", "9999-12-31T23:59:59Z"), ("ended_at", format_ts(NOW + 301))],
)
def test_an_alert_past_the_skew_is_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(EventError) as refused:
        refuse_alert_ahead({**ALERT, field: value}, NOW, 300.0, "bad_routed", at="alert.")
    assert refused.value.code == "bad_routed"
    assert str(refused.value) == (
        f"field \"alert.{field}\" is '{value}': an alert's time is more than 300s ahead of "
        "the clock (CITYBRAIN_MAX_FUTURE_SKEW)"
    )


def test_the_corroboration_topic_refuses_it_too() -> None:
    message = {"type": "alert", "alert": {**ALERT, "started_at": "9999-12-31T23:59:59Z"}}
    with pytest.raises(EventError, match=r'field "alert\.started_at"') as refused:
        checked_message(message, NOW, 300.0)
    assert refused.value.code == "bad_alert"
