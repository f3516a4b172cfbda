"""NGSI-v2 notifications of the real Smart Data Models examples to reading documents."""

from __future__ import annotations

import copy

import pytest

from citybrain.ingest.ngsi import NgsiMapping
from playbooks.grid import Grid
from streams.errors import EventError
from tests.unit.citybrain.ingest.conftest import example


@pytest.fixture
def ngsi(ingest_grid: Grid) -> NgsiMapping:
    return NgsiMapping(ingest_grid)


def values(ngsi: NgsiMapping, name: str) -> dict[str, tuple[str, float]]:
    docs = ngsi.entity(example(name)).documents
    return {d["kind"]: (d["ts"], d["value"]) for d in docs}


def test_air_quality_no2_in_micrograms_zone_less_time_as_utc(ngsi: NgsiMapping) -> None:
    # The example: no2 69 (unitCode GQ), dateObserved "2016-03-15T11:00:00"; co, so2 and
    # the rest have no citybrain kind.
    assert values(ngsi, "AirQualityObserved") == {"no2": ("2016-03-15T11:00:00Z", 69.0)}


def test_traffic_flow_speed_and_five_minute_intensity(ngsi: NgsiMapping) -> None:
    # intensity 197 over 11:10-11:15 is 197 vehicles/5min; averageVehicleSpeed 52.6 km/h.
    assert values(ngsi, "TrafficFlowObserved") == {
        "traffic_flow": ("2016-12-07T11:15:00Z", 197.0),
        "traffic_speed": ("2016-12-07T11:15:00Z", 52.6),
    }
    entity = example("TrafficFlowObserved")
    entity["dateObservedFrom"]["value"] = "2016-12-07T11:05:00Z"  # a ten-minute count
    flow = next(d for d in ngsi.entity(entity).documents if d["kind"] == "traffic_flow")
    assert flow["value"] == pytest.approx(98.5)


def test_water_conductivity_from_siemens_per_metre(ngsi: NgsiMapping) -> None:
    # 0.005 S/m = 50 uS/cm; NO2 in water, pH, metals: no citybrain kind.
    assert values(ngsi, "WaterQualityObserved") == {"conductance": ("2017-01-31T06:45:00Z", 50.0)}


def test_a_notification_maps_each_entity(ngsi: NgsiMapping) -> None:
    body = {
        "subscriptionId": "57458eb60962ef754e7c0998",
        "data": [example(n) for n in ("AirQualityObserved", "WaterQualityObserved")],
    }
    found = ngsi.notification(body)
    assert [entity_id for entity_id, _ in found] == [
        "Madrid-AmbientObserved-28079004-2016-03-15T11:00:00",
        "waterqualityobserved:Sevilla:D1",
    ]


def test_milligrams_convert_and_unknown_unit_codes_are_refused(ngsi: NgsiMapping) -> None:
    entity = example("AirQualityObserved")
    entity["no2"]["metadata"]["unitCode"]["value"] = "GP"
    assert ngsi.entity(entity).documents[0]["value"] == 69_000.0
    entity["no2"]["metadata"]["unitCode"]["value"] = "59"  # ppm: not converted
    with pytest.raises(EventError) as err:
        ngsi.entity(entity)
    assert (err.value.code, err.value.field) == ("bad_unit", "no2.metadata.unitCode.value")


def bad(mutate: str) -> dict[str, object]:
    entity = copy.deepcopy(example("TrafficFlowObserved"))
    if mutate == "type":
        entity["type"] = "ParkingSpot"
    elif mutate == "value":
        entity["intensity"]["value"] = "lots"
    elif mutate == "time":
        for attr in ("dateObserved", "dateObservedTo"):
            del entity[attr]
    elif mutate == "period":
        for attr in ("dateObservedFrom", "dateObservedTo"):
            del entity[attr]
        entity["dateObserved"]["value"] = "2016-12-07T11:15:00Z"
    elif mutate == "timestamp":
        entity["dateObservedTo"]["value"] = "yesterday"
    elif mutate == "sensor":
        entity["id"] = "TrafficFlowObserved-Elsewhere"
    return entity


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        ("type", "unknown_entity_type", "data[0].type"),
        ("value", "bad_type", "data[0].intensity.value"),
        ("time", "missing_field", "data[0].dateObserved"),
        ("period", "missing_field", "data[0].dateObservedFrom"),
        ("timestamp", "bad_timestamp", "data[0].dateObservedTo.value"),
        ("sensor", "unknown_sensor", "data[0].id"),
    ],
)
def test_a_bad_entity_names_its_field(
    ngsi: NgsiMapping, mutate: str, code: str, field: str
) -> None:
    with pytest.raises(EventError) as err:
        ngsi.notification({"subscriptionId": "s", "data": [bad(mutate)]})
    assert (err.value.code, err.value.field) == (code, field)


@pytest.mark.parametrize("body", [[], {"data": []}, {"data": "x"}, {"data": [1]}])
def test_a_bad_notification_is_refused(ngsi: NgsiMapping, body: object) -> None:
    with pytest.raises(EventError):
        ngsi.notification(body)


def test_the_template_must_name_the_kind(ingest_grid: Grid) -> None:
    with pytest.raises(ValueError, match=r"no \{kind\}"):
        NgsiMapping(ingest_grid, "{id}")
    m = NgsiMapping(ingest_grid, "{areaServed}-{kind}")
    with pytest.raises(EventError) as err:
        m.entity(example("WaterQualityObserved"))
    assert (err.value.code, err.value.field) == ("missing_field", "areaServed")
