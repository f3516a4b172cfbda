"""An unregistered sensor id near a registered one is answered with it on every ingest
path: the HTTP body's refusal, the NGSI attribute's and the MQTT message's dead letter
(a newcomer's ``water_levl`` got "sensor is not registered" alone)."""

from __future__ import annotations

import json

import pytest

from citybrain.ingest.http import BadBody, ngsi_readings, readings_from_body, refusal_text
from citybrain.ingest.mapping import MqttMapping
from citybrain.ingest.ngsi import NgsiMapping
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.errors import EventError
from streams.events import EventValidator
from tests.services import FIXTURES
from tests.unit.citybrain.ingest.conftest import T_NOW, example


@pytest.fixture
def grid() -> Grid:
    # Its own grid: the lookups a grid makes per minute are bounded (NearIds).
    return load_grid(FIXTURES / "grid-ingest.yaml")


def test_an_http_reading_of_a_misspelt_sensor_is_refused_naming_the_registered_one(
    grid: Grid,
) -> None:
    body = {
        "schema": "reading/1",
        "ts": "2026-09-21T14:00:00Z",
        "sensor_id": "guage-1",
        "kind": "water_level",
        "value": 2.1,
        "unit": "ft",
        "grid_cell": "c-bridge",
    }
    with pytest.raises(BadBody) as err:
        readings_from_body(json.dumps(body).encode(), EventValidator(grid), T_NOW)
    assert err.value.errors[0]["code"] == "unknown_sensor"
    assert refusal_text(err.value.errors).endswith(
        "sensor is not registered (did you mean 'gauge-1'?)"
    )


def test_an_ngsi_entity_of_a_misspelt_id_is_refused_naming_the_registered_sensor(
    grid: Grid,
) -> None:
    entity = example("AirQualityObserved")
    entity["id"] = entity["id"].replace("28079004", "28079040")
    body = json.dumps({"data": [entity]}).encode()
    with pytest.raises(BadBody) as err:
        ngsi_readings(body, NgsiMapping(grid), EventValidator(grid), T_NOW)
    assert "(did you mean 'Madrid-AmbientObserved-28079004-2016-03-15T11:00:00-no2'?)" in (
        refusal_text(err.value.errors)
    )


def test_an_mqtt_message_of_a_misspelt_sensor_is_dead_lettered_naming_the_registered_one(
    grid: Grid,
) -> None:
    with pytest.raises(EventError) as err:
        MqttMapping.build(grid).to_document("city/e/guage-1/water_level", b"1", T_NOW)
    assert err.value.code == "unknown_sensor"
    assert str(err.value).endswith("sensor is not registered (did you mean 'gauge-1'?)")


def test_an_unregistered_sensor_near_none_gets_no_suggestion(grid: Grid) -> None:
    with pytest.raises(EventError) as err:
        MqttMapping.build(grid).to_document("city/e/zzzz-9/water_level", b"1", T_NOW)
    assert str(err.value).endswith("sensor is not registered")
