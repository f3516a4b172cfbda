"""UTC offsets a clock cannot show (-12:00..+14:00 is civil time's range; minutes 00-59)
are refused by every reader of a timestamp, naming the offset as sent (t109: ``+15:00``
and ``-13:00`` were read, shifting the reading by hours; ``+05:99`` got the generic
"expected an ISO 8601 timestamp")."""

from __future__ import annotations

import pytest

from citybrain.ingest.ngsi import NgsiMapping
from playbooks.loader import load_grid
from streams.api import ApiError, request_time
from streams.errors import EventError
from streams.events import iso_instant, parse_ts
from tests.services import FIXTURES
from tests.unit.citybrain.ingest.conftest import example

OUTSIDE = [
    ("2026-11-01T10:00:00+15:00", "+15:00 is outside"),
    ("2026-11-01T10:00:00-13:00", "-13:00 is outside"),
    ("2026-11-01T10:00:00+14:30", "+14:30 is outside"),
    ("2026-11-01T10:00:00-1201", "-1201 is outside"),
    ("2026-11-01T10:00:00+23", "+23 is outside"),
    ("2026-11-01T10:00:00+05:99", "+05:99 has minutes past 59"),
    ("2026-11-01T10:00:00+0599", "+0599 has minutes past 59"),
]


@pytest.mark.parametrize(("ts", "why"), OUTSIDE)
def test_an_offset_no_clock_shows_is_a_bad_timestamp_naming_it(ts: str, why: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_ts(ts)
    assert caught.value.code == "bad_timestamp"
    assert f"the UTC offset {why}" in str(caught.value) and repr(ts) in str(caught.value)


@pytest.mark.parametrize(
    "ts", ["2026-11-02T00:00:00+14:00", "2026-10-31T22:00:00-12:00", "2026-11-01T15:45:00+05:45"]
)
def test_the_ends_of_civil_time_still_read(ts: str) -> None:
    assert parse_ts(ts) == 1_793_527_200.0


@pytest.mark.parametrize(("ts", "why"), OUTSIDE)
def test_every_reader_refuses_it(ts: str, why: str) -> None:
    # detect's rows and the commands' --from/--to
    assert iso_instant(ts) is None
    # NGSI dateObserved
    entity = example("AirQualityObserved")
    entity["dateObserved"]["value"] = ts
    # (an entity's own time refuses the entity: none of its readings can be placed)
    with pytest.raises(EventError) as ngsi:
        NgsiMapping(load_grid(FIXTURES / "grid-ingest.yaml")).entity(entity)
    assert (ngsi.value.code, ngsi.value.field) == ("bad_timestamp", "dateObserved.value")
    assert why in str(ngsi.value)


@pytest.mark.parametrize(
    ("ts", "offset_minutes"),
    [
        ("2026-11-01T10:00:00+15:00", 900),
        ("2026-11-01T10:00:00-23:59", -1439),
        ("2026-11-01T10:00:00+24:00", 1440),  # taken by Go, past RFC 3339's range
        ("2026-11-01T10:00:00+05:99", 399),  # Go reads any two digits of minutes
        ("2026-11-01T10:00:00-99:59", -5999),
    ],
)
def test_the_silences_api_takes_every_offset_alertmanager_takes(
    ts: str, offset_minutes: int
) -> None:
    """Alertmanager's silences API (go-openapi strfmt over Go's time.Parse) takes any
    offset it can write back under 100 hours, its minutes any two digits; the operator
    API's silences follow it (t146: ±23:59 was the bound here, so +24:00 and -99:59 were
    refused, and -2359 without ':', which Alertmanager refuses, was taken)."""
    utc = 1_793_527_200.0  # 2026-11-01T10:00:00Z
    assert request_time("ends_at", ts, utc) == utc - offset_minutes * 60
    for bad, why in (
        ("2026-11-01T10:00:00+99:99", "100 hours or more"),
        ("2026-11-01T10:00:00-2359", "an offset without ':' is not taken"),
        ("2026-11-01T10:00:00+01", "expected a time as Alertmanager takes it"),
    ):
        with pytest.raises(ApiError) as api:
            request_time("ends_at", bad, utc)
        assert why in str(api.value) and repr(bad) in str(api.value)
