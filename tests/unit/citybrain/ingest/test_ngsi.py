"""NGSI-v2 notifications of the real Smart Data Models examples to reading documents."""

from __future__ import annotations

import copy

import pytest

from citybrain.ingest.ngsi import NgsiMapping
from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import UnderflowFloat, decode_json
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
    entity["dateObserved"]["value"] = "2016-12-07T11:05:00Z/2016-12-07T11:15:00Z"
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
    assert found.errors == []
    assert [entity_id for _, entity_id, _ in found.entities] == [
        "Madrid-AmbientObserved-28079004-2016-03-15T11:00:00",
        "waterqualityobserved:Sevilla:D1",
    ]


def test_milligrams_convert_and_unknown_unit_codes_are_refused(ngsi: NgsiMapping) -> None:
    entity = example("AirQualityObserved")
    entity["no2"]["metadata"]["unitCode"]["value"] = "GP"
    assert ngsi.entity(entity).documents[0]["value"] == 69_000.0
    entity["no2"]["metadata"]["unitCode"]["value"] = "59"  # ppm: not converted
    [err] = ngsi.entity(entity).errors
    assert (err.code, err.field) == ("bad_unit", "no2.metadata.unitCode.value")


@pytest.mark.parametrize(
    ("no2", "code", "field"),
    [
        # NGSI-LD's Property form: the unit code beside the value, not in metadata.
        ({"type": "Property", "value": 0.069, "unitCode": "GP"}, None, None),
        ({"type": "Number", "value": 0.069, "unitCode": "GP", "metadata": {}}, None, None),
        ({"type": "Property", "value": 69, "unitCode": "59"}, "bad_unit", "no2.unitCode"),
        ({"type": "Property", "value": 69, "unitCode": ["GP"]}, "bad_type", "no2.unitCode"),
        (
            {"type": "Number", "value": 69, "unitCode": "GQ", "metadata": {"unitCode": "GP"}},
            "bad_unit",
            "no2.unitCode",
        ),
        # Metadata as a list (NGSI-v1's "metadatas" shape): the unit was taken as GQ.
        (
            {"type": "Number", "value": 0.069, "metadata": [{"name": "unitCode", "value": "GP"}]},
            "bad_type",
            "no2.metadata",
        ),
        ({"type": "Number", "value": 0.069, "metadata": "GP"}, "bad_type", "no2.metadata"),
    ],
)
def test_a_unit_code_is_read_where_it_is_given_or_refused_never_defaulted(
    ngsi: NgsiMapping, no2: dict[str, object], code: str | None, field: str | None
) -> None:
    # Trial 13: {"value": 0.069, "unitCode": "GP"} (mg/m3) was read as 0.069 ug/m3.
    entity = example("AirQualityObserved")
    entity["no2"] = no2
    found = ngsi.entity(entity)
    if code is None:
        assert [d["value"] for d in found.documents] == [69.0]
    else:
        [err] = found.errors
        assert (err.code, err.field) == (code, field) and not found.documents


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
    elif mutate == "reversed":
        start, end = entity["dateObservedFrom"]["value"], entity["dateObservedTo"]["value"]
        entity["dateObservedFrom"]["value"], entity["dateObservedTo"]["value"] = end, start
        del entity["dateObserved"]  # its interval would contradict them (entity refused)
    return entity


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        ("type", "unknown_entity_type", "data[0].type"),
        ("value", "bad_type", "data[0].intensity.value"),
        ("time", "missing_field", "data[0].dateObserved"),
        ("period", "missing_field", "data[0].dateObservedFrom"),
        ("timestamp", "bad_timestamp", "data[0].dateObservedTo.value"),
        # Named by the attribute (was data[0].id): each attribute is its own sensor.
        ("sensor", "unknown_sensor", "data[0].intensity"),
        # To before From was "dateObservedFrom is missing", which it was not.
        ("reversed", "bad_timestamp", "data[0].dateObservedTo"),
    ],
)
def test_a_bad_entity_names_its_field(
    ngsi: NgsiMapping, mutate: str, code: str, field: str
) -> None:
    found = ngsi.notification({"subscriptionId": "s", "data": [bad(mutate)]})
    (_, err), *_ = found.errors
    assert (err.code, err.field) == (code, field)


def test_an_attribute_fault_costs_only_its_own_reading(ngsi: NgsiMapping) -> None:
    """Trial 5: one unregistered (or bad) attribute lost the entity's other readings and
    the notification's other entities."""
    found = ngsi.notification(
        {"data": [bad("value"), example("WaterQualityObserved"), bad("type")]}
    )
    kinds = [[d["kind"] for d in readings.documents] for _, _, readings in found.entities]
    assert kinds == [["traffic_speed"], ["conductance"]]
    assert [(i, e.code, e.field) for i, e in found.errors] == [
        (0, "bad_type", "data[0].intensity.value"),
        (2, "unknown_entity_type", "data[2].type"),
    ]


@pytest.mark.parametrize("body", [[], {"data": []}, {"data": "x"}])
def test_a_bad_notification_is_refused(ngsi: NgsiMapping, body: object) -> None:
    with pytest.raises(EventError):
        ngsi.notification(body)


def test_an_entity_that_is_no_object_is_named(ngsi: NgsiMapping) -> None:
    found = ngsi.notification({"data": [1]})
    assert [(e.code, e.field) for _, e in found.errors] == [("bad_type", "data[0]")]


def test_the_template_must_name_the_kind(ingest_grid: Grid) -> None:
    with pytest.raises(ValueError, match=r"expected a template with \{kind\}"):
        NgsiMapping(ingest_grid, "{id}")
    # Helper t52: each mapped every reading to an internal dead letter.
    for odd in ("{id.real}-{kind}", "{0}-{kind}"):
        with pytest.raises(ValueError, match="with no format, conversion or index"):
            NgsiMapping(ingest_grid, odd)
    m = NgsiMapping(ingest_grid, "{areaServed}-{kind}")
    [err] = m.entity(example("WaterQualityObserved")).errors
    assert (err.code, err.field) == ("missing_field", "areaServed")


# Siblings of the kind "a malformed entity is a 400 naming its field, never a 500".
DEEP: list[object] = []
for _ in range(1000):
    DEEP = [DEEP]


def aq(**changes: object) -> dict[str, object]:
    entity = copy.deepcopy(example("AirQualityObserved"))
    entity.update(changes)
    return entity


@pytest.mark.parametrize(
    ("entity", "code", "field"),
    [
        # Each of these raised TypeError or ValueError (a 500, no answer naming the field).
        # (A list of types is NGSI-LD's multi-typing, read since trial 21; a list in it
        # is no type.)
        (aq(type=[["AirQualityObserved"]]), "unknown_entity_type", "data[0].type"),
        (
            aq(dateObserved={"type": "DateTime", "value": "9999-12-31T23:59:59-12:00"}),
            "bad_timestamp",
            "data[0].dateObserved.value",
        ),
        (
            aq(dateObserved={"type": "DateTime", "value": "0001-01-01T00:00:00+14:00"}),
            "bad_timestamp",
            "data[0].dateObserved.value",
        ),
        # fromisoformat took any separator.
        (
            aq(dateObserved={"type": "DateTime", "value": "2016-03-15X11:00:00Z"}),
            "bad_timestamp",
            "data[0].dateObserved.value",
        ),
        # 1e308 mg/m3 is inf in ug/m3; the JSON round trip made it null ("None: expected
        # a number") under the sensor id instead of the attribute.
        (
            aq(no2={"type": "Number", "value": 1e308, "metadata": {"unitCode": {"value": "GP"}}}),
            "not_finite",
            "data[0].no2.value",
        ),
        # t183: -1e-400 (as the HTTP ingest's decoder reads it) was read as -0.0 and sent
        # as a reading of 0.
        (
            aq(no2={"type": "Number", "value": UnderflowFloat("-1e-400")}),
            "not_finite",
            "data[0].no2.value",
        ),
        # keyValues form: the attribute is its bare value.
        (aq(no2=69), "bad_type", "data[0].no2"),
        # An id nested 1,000 levels: str() of it raised RecursionError (a 500).
        (aq(id=DEEP), "bad_type", "data[0].id"),
    ],
)
def test_malformed_entities_name_the_field(
    ngsi: NgsiMapping, entity: dict[str, object], code: str, field: str
) -> None:
    [(_, err)] = ngsi.notification({"subscriptionId": "s", "data": [entity]}).errors
    assert (err.code, err.field) == (code, field)


def test_an_ngsi_ld_multi_attribute_is_refused_saying_what_it_is(ngsi: NgsiMapping) -> None:
    # Before: "expected a normalized attribute ... (keyValues form? ...)", which it is not.
    instances = [
        {"type": "Property", "value": 60, "datasetId": "urn:a"},
        {"type": "Property", "value": 70, "datasetId": "urn:b"},
    ]
    entity = aq(no2=instances, pm25={"type": "Number", "value": 12})
    mapped = ngsi.notification({"data": [entity]})
    [(_, err)] = mapped.errors
    assert (err.code, err.field) == ("bad_type", "data[0].no2")
    assert "an NGSI-LD multi-attribute (a list of instances, one per datasetId)" in str(err)
    assert "keyValues" not in str(err)
    [(_, _, found)] = mapped.entities
    assert found.attributes == ["pm25"]  # the entity's other reading still goes


def test_a_text_attribute_named_kind_does_not_collide_with_the_template(
    ngsi: NgsiMapping,
) -> None:
    # Before: str.format() got multiple values for keyword argument 'kind' (TypeError).
    entity = aq(kind={"type": "Text", "value": "ambient"})
    [doc] = ngsi.entity(entity).documents
    assert doc["kind"] == "no2" and doc["sensor_id"].endswith("-no2")


@pytest.mark.parametrize(
    "when", ["2016-03-15T11:00:00.000Z", "2016-03-15T12:00:00+01:00", "2016-03-15T11:00:00"]
)
def test_date_observed_in_iso_forms_reads_the_same_instant(ngsi: NgsiMapping, when: str) -> None:
    entity = aq(dateObserved={"type": "DateTime", "value": when})
    assert ngsi.entity(entity).documents[0]["ts"] == "2016-03-15T11:00:00Z"


def test_a_date_alone_is_its_midnight(ngsi: NgsiMapping) -> None:
    entity = aq(dateObserved={"type": "DateTime", "value": "2016-03-15"})
    assert ngsi.entity(entity).documents[0]["ts"] == "2016-03-15T00:00:00Z"


def test_one_kind_given_by_two_spellings_is_refused_for_both(ngsi: NgsiMapping) -> None:
    # Trial 13: "no2" and "NO2" in one entity made two readings of one sensor at one time;
    # the worker kept the first and dropped the other as a repeat, whichever was right.
    entity = aq(NO2={"type": "Number", "value": 12})
    found = ngsi.entity(entity)
    assert found.documents == []
    assert sorted((e.code, e.field) for e in found.errors) == [
        ("duplicate_attribute", "NO2"),
        ("duplicate_attribute", "no2"),
    ]
    assert "no2 is given by 'NO2' too: which value is meant?" in str(found.errors[0])


AT = "2016-03-15T11:00:00Z"
NO2 = {"type": "Property", "value": 69, "unitCode": "GQ"}


@pytest.mark.parametrize(
    "changes",
    [
        # NGSI-LD's typed value: the Smart Data Models' NGSI-LD examples write it so.
        {"dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": AT}}},
        # ... with the type expanded, or XML Schema's.
        {
            "dateObserved": {
                "type": "Property",
                "value": {"@type": "https://uri.etsi.org/ngsi-ld/DateTime", "@value": AT},
            }
        },
        {"dateObserved": {"type": "Property", "value": {"@type": "xsd:dateTime", "@value": AT}}},
        # NGSI-LD Property with text; its concise form (the value alone, typed or text).
        {"dateObserved": {"type": "Property", "value": AT}},
        {"dateObserved": {"@type": "DateTime", "@value": AT}},
        {"dateObserved": AT},
        # An NGSI-v2 typed value nested as the value.
        {"dateObserved": {"type": "StructuredValue", "value": {"type": "DateTime", "value": AT}}},
        # The attribute's own NGSI-LD observedAt, with no dateObserved at all.
        {"dateObserved": None, "no2": {**NO2, "observedAt": AT}},
        # ... and in NGSI-v2 metadata, as observedAt or dateObserved.
        {
            "dateObserved": None,
            "no2": {**NO2, "metadata": {"observedAt": {"type": "DateTime", "value": AT}}},
        },
        {
            "dateObserved": None,
            "no2": {**NO2, "metadata": {"dateObserved": {"type": "DateTime", "value": AT}}},
        },
        # An IoT Agent's TimeInstant: the attribute's metadata, the entity's attribute.
        {
            "dateObserved": None,
            "no2": {**NO2, "metadata": {"TimeInstant": {"type": "DateTime", "value": AT}}},
        },
        {"dateObserved": None, "TimeInstant": {"type": "DateTime", "value": AT}},
        # observedAt comes before the entity's dateObserved; dateObserved before TimeInstant.
        {
            "dateObserved": {"type": "DateTime", "value": "2016-03-15T10:00:00Z"},
            "no2": {**NO2, "observedAt": AT},
        },
        {
            "TimeInstant": {"type": "DateTime", "value": "2016-03-15T11:00:07Z"},
            "no2": {
                **NO2,
                "metadata": {"TimeInstant": {"type": "DateTime", "value": "2016-03-15T11:00:05Z"}},
            },
        },
    ],
)
def test_every_ngsi_form_of_the_observation_time_is_read(
    ngsi: NgsiMapping, changes: dict[str, object]
) -> None:
    """Trial 21: the NGSI-LD forms (a typed ``@value``, a Property, ``observedAt``) and
    NGSI-v2's DateTime metadata were refused (bad_timestamp or "is not read")."""
    entity = aq(**changes)
    entity = {k: v for k, v in entity.items() if v is not None}
    found = ngsi.entity(entity)
    assert found.errors == []
    assert [(d["kind"], d["ts"]) for d in found.documents] == [("no2", AT)]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        # A time of day is no observation time; a typed value that is not a date.
        (
            {
                "dateObserved": {
                    "type": "Property",
                    "value": {"@type": "Time", "@value": "11:00:00"},
                }
            },
            "bad_timestamp",
            "data[0].dateObserved.value",
        ),
        (
            {"dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": 5}}},
            "bad_timestamp",
            "data[0].dateObserved.value.@value",
        ),
        (
            {"dateObserved": {"@type": "DateTime", "@value": "2016-03-15 11h"}},
            "bad_timestamp",
            "data[0].dateObserved.@value",
        ),
        # Two own times that differ: which is meant?
        (
            {
                "no2": {
                    **NO2,
                    "observedAt": AT,
                    "metadata": {
                        "observedAt": {"type": "DateTime", "value": "2016-03-15T12:00:00Z"}
                    },
                }
            },
            "bad_timestamp",
            "data[0].no2.metadata.observedAt.value",
        ),
        (
            {"no2": {**NO2, "observedAt": "yesterday"}},
            "bad_timestamp",
            "data[0].no2.observedAt",
        ),
    ],
)
def test_a_bad_observation_time_is_named_where_it_is(
    ngsi: NgsiMapping, changes: dict[str, object], code: str, field: str
) -> None:
    [(_, err)] = ngsi.notification({"data": [aq(**changes)]}).errors
    assert (err.code, err.field) == (code, field)


def test_without_any_time_the_entity_is_refused_saying_where_a_time_may_be(
    ngsi: NgsiMapping,
) -> None:
    entity = aq()
    del entity["dateObserved"]
    with pytest.raises(EventError) as err:
        ngsi.entity(entity)
    assert (err.value.code, err.value.field) == ("missing_field", "dateObserved")
    assert "an observedAt on each attribute, or a TimeInstant" in err.value.reason


def test_an_attribute_without_a_time_costs_only_itself(ngsi: NgsiMapping) -> None:
    """One attribute with its own observedAt and another without, and no dateObserved:
    the one is read, the other refused naming its observedAt."""
    entity = aq(pm25={"type": "Property", "value": 12})
    del entity["dateObserved"]
    entity["no2"] = {**NO2, "observedAt": AT}
    found = ngsi.entity(entity)
    assert [d["kind"] for d in found.documents] == ["no2"]
    assert [(e.code, e.field) for e in found.errors] == [("missing_field", "pm25.observedAt")]


SDM = "https://smartdatamodels.org/dataModel.Environment/"


@pytest.mark.parametrize(
    "changes",
    [
        # NGSI-LD: a type the subscriber's @context does not define arrives expanded.
        {"type": SDM + "AirQualityObserved"},
        # NGSI-LD's list of types (an entity may have several), one of them mapped.
        {"type": ["AirQualityObserved", "https://example.org/Station"]},
        # Attributes expanded too: the measurement and the observation time.
        {
            "no2": None,
            SDM + "no2": {"type": "Property", "value": 69, "unitCode": "GQ"},
            "dateObserved": None,
            "https://smartdatamodels.org/dateObserved": {
                "type": "Property",
                "value": {"@type": "DateTime", "@value": AT},
            },
        },
    ],
)
def test_ngsi_ld_expanded_types_and_attribute_names_are_read(
    ngsi: NgsiMapping, changes: dict[str, object]
) -> None:
    """Trial 21: an expanded type was unknown_entity_type; an expanded attribute was
    skipped as unmapped (and without dateObserved the entity was refused)."""
    entity = {k: v for k, v in aq(**changes).items() if v is not None}
    found = ngsi.entity(entity)
    assert found.errors == []
    assert [(d["kind"], d["ts"], d["sensor_id"].endswith("-no2")) for d in found.documents] == [
        ("no2", AT, True)
    ]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        # Two mapped types: which model is meant?
        ({"type": ["AirQualityObserved", "WaterQualityObserved"]}, "unknown_entity_type", "type"),
        # The same attribute compact and expanded: two values for one sensor.
        (
            {SDM + "no2": {"type": "Property", "value": 70, "unitCode": "GQ"}},
            "duplicate_attribute",
            "no2",
        ),
    ],
)
def test_ngsi_ld_ambiguous_types_and_names_are_refused(
    ngsi: NgsiMapping, changes: dict[str, object], code: str, field: str
) -> None:
    try:
        found = ngsi.entity(aq(**changes))
    except EventError as exc:
        errors = [exc]
    else:
        errors = found.errors
    assert (errors[0].code, errors[0].field) == (code, field)


def test_a_concise_period_end_before_its_start_costs_only_the_count(ngsi: NgsiMapping) -> None:
    """Trial 26: dateObservedTo in concise form (text alone) before dateObservedFrom raised
    AttributeError in the period check; the entity was named "expected an object" and its
    averageVehicleSpeed was lost with the intensity."""
    entity = example("TrafficFlowObserved")
    entity["dateObservedFrom"] = "2016-12-07T11:20:00Z"
    entity["dateObservedTo"] = "2016-12-07T11:15:00Z"
    del entity["dateObserved"]  # its interval would contradict them (entity refused)
    found = ngsi.notification({"data": [entity]})
    assert [[d["kind"] for d in r.documents] for _, _, r in found.entities] == [["traffic_speed"]]
    assert [(e.code, e.field, e.value) for _, e in found.errors] == [
        ("bad_timestamp", "data[0].dateObservedTo", "2016-12-07T11:15:00Z")
    ]


def test_two_expanded_names_of_one_attribute_are_both_refused(ngsi: NgsiMapping) -> None:
    """Trial 26: two IRIs with one local name were both shortened to it, and the second
    replaced the first silently (no2 10 lost, 99 sent)."""
    entity = aq()
    no2 = entity.pop("no2")
    assert isinstance(no2, dict)
    entity["https://example.org/a/no2"] = {**no2, "value": 10}
    entity["https://example.org/b/no2"] = {**no2, "value": 99}
    found = ngsi.entity(entity)
    assert found.documents == []
    assert [(e.code, e.field, e.value) for e in found.errors] == [
        ("duplicate_attribute", "https://example.org/a/no2", 10),
        ("duplicate_attribute", "https://example.org/b/no2", 99),
    ]


@pytest.mark.parametrize(
    "given",
    [
        decode_json(b"[" * 1000 + b"]" * 1000),  # as deep as the decoder reads
        decode_json(b'{"a":' * 1000 + b"1" + b"}" * 1000),
        decode_json(b"9" * 5000),  # past the 4,300 digits str() converts
    ],
    ids=["deep-list", "deep-object", "5000-digits"],
)
def test_an_entity_type_no_type_could_be_is_unknown_not_a_500(
    ngsi: NgsiMapping, given: object
) -> None:
    """t66: an entity `type` nested 1,000 lists deep was a RecursionError while looking
    for the type it misspells (`did_you_mean`'s str()), so the HTTP ingest answered 500
    and the notification's other entities were lost; now that entity alone is refused."""
    found = ngsi.notification({"data": [aq(type=given), example("WaterQualityObserved")]})
    [(index, err)] = found.errors
    assert (index, err.code, err.field) == (0, "unknown_entity_type", "data[0].type")
    assert [[d["kind"] for d in r.documents] for _, _, r in found.entities] == [["conductance"]]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2016-02-30T11:15:00Z", "day is out of range for month"),
        ("20161207T111500Z", "basic format"),
        ("2016-12-07T11:15:00Z/2016-12-07T11:75:00Z", "minute must be in 0..59"),
        ("yesterday", "expected an ISO 8601 timestamp"),
    ],
)
def test_a_bad_observation_time_says_what_is_wrong_with_it(
    ngsi: NgsiMapping, text: str, says: str
) -> None:
    # Every bad DateTime was "expected ISO 8601 (or start/end)", a day past the month's
    # end and the basic format alike.
    entity = copy.deepcopy(example("TrafficFlowObserved"))
    entity["dateObservedTo"]["value"] = text
    found = ngsi.notification({"subscriptionId": "s", "data": [entity]})
    (_, err), *_ = found.errors
    assert err.code == "bad_timestamp" and says in str(err), str(err)


@pytest.mark.parametrize(
    ("attr", "field"),
    [("n\u043e2", "n\\u043e2"), ("n\u200bo2", "n\\u200bo2"), ("\uff4e\uff4f2", "\\uff4e\\uff4f2")],
)
def test_an_attribute_that_looks_like_a_mapped_one_is_refused_naming_it(
    ngsi: NgsiMapping, attr: str, field: str
) -> None:
    # t95: "n\u043e2" (a Cyrillic o) was skipped as an attribute with no kind, its
    # reading lost unsaid; the entity's other attributes still give theirs.
    entity = example("AirQualityObserved")
    entity[attr] = entity.pop("no2")
    entity["pm25"] = {"type": "Number", "value": 12.0}
    found = ngsi.entity(entity)
    assert [d["kind"] for d in found.documents] == ["pm25"]
    [error] = found.errors
    assert (error.code, error.field) == ("bad_json", field)
    assert "looks like 'no2' but is not it" in str(error)
    assert attr not in found.skipped


@pytest.mark.parametrize(
    "interval",
    ["2016-03-15T11:00:00Z/2016-03-15T10:00:00Z", "2016-03-15/2016-03-14"],
)
def test_an_interval_that_ends_before_it_starts_is_refused(
    ngsi: NgsiMapping, interval: str
) -> None:
    # t105: its end was taken as the event time as if nothing were wrong (and a traffic
    # count's period was said to be missing).
    entity = example("AirQualityObserved")
    entity["dateObserved"]["value"] = interval
    with pytest.raises(EventError) as err:
        ngsi.entity(entity)
    assert (err.value.code, err.value.field) == ("bad_timestamp", "dateObserved.value")
    assert "ends before it starts" in str(err.value)


def test_a_traffic_count_over_a_reversed_interval_says_so(ngsi: NgsiMapping) -> None:
    entity = example("TrafficFlowObserved")
    del entity["dateObservedFrom"], entity["dateObservedTo"]
    entity["dateObserved"]["value"] = "2016-12-07T11:15:00Z/2016-12-07T11:10:00Z"
    with pytest.raises(EventError) as err:
        ngsi.entity(entity)
    assert (err.value.code, err.value.field) == ("bad_timestamp", "dateObserved.value")


@pytest.mark.parametrize(
    ("name", "times", "why"),
    [
        # t109: each was accepted silently, the reading placed at dateObservedTo.
        (
            "TrafficFlowObserved",
            {"dateObserved": "2016-12-07T12:12:00Z"},
            "an instant outside the entity's dateObservedFrom/dateObservedTo "
            "2016-12-07T11:10:00Z/2016-12-07T11:15:00Z",
        ),
        (
            "TrafficFlowObserved",
            {"dateObserved": "2016-12-08T11:10:00Z/2016-12-08T11:15:00Z"},
            "an interval other than the entity's",
        ),
        (
            "TrafficFlowObserved",
            {"dateObserved": "2016-12-07T11:05:00Z/2016-12-07T11:15:00Z"},
            "an interval other than the entity's",
        ),
        (
            "AirQualityObserved",
            {"dateObservedFrom": "2016-03-15T12:00:00Z"},
            "dateObservedFrom/dateObservedTo 2016-03-15T12:00:00Z/…",
        ),
        (
            "AirQualityObserved",
            {"dateObservedTo": "2016-03-15T10:00:00Z"},
            "dateObservedFrom/dateObservedTo …/2016-03-15T10:00:00Z",
        ),
        (
            "AirQualityObserved",
            {"dateObservedFrom": "2016-03-15T12:00:00Z", "dateObservedTo": "2016-03-15T10:00:00Z"},
            "an instant outside",
        ),
    ],
)
def test_a_date_observed_that_contradicts_the_entitys_period_is_refused(
    ngsi: NgsiMapping, name: str, times: dict[str, str], why: str
) -> None:
    entity = example(name)
    for attr, text in times.items():
        entity[attr] = {"type": "DateTime", "value": text}
    found = ngsi.notification({"data": [entity]})
    assert found.entities == []
    [(_, err)] = found.errors
    sent = entity["dateObserved"]["value"]
    assert (err.code, err.field, err.value) == ("bad_timestamp", "data[0].dateObserved.value", sent)
    assert why in err.reason and "which observation time is meant?" in err.reason


@pytest.mark.parametrize(
    "observed",
    ["2016-12-07T11:15:00Z", "2016-12-07T11:10:00Z", "2016-12-07T12:12:00+01:00"],
)
def test_a_date_observed_within_the_period_still_reads(ngsi: NgsiMapping, observed: str) -> None:
    entity = example("TrafficFlowObserved")
    entity["dateObserved"]["value"] = observed
    found = ngsi.notification({"data": [entity]})
    assert found.errors == []
    [(_, _, readings)] = found.entities
    assert {d["ts"] for d in readings.documents} == {"2016-12-07T11:15:00Z"}


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        # t109: "expected an ISO 8601 string" alone, as the worker's ts said.
        (
            1458039600,
            "1458039600 looks like epoch seconds: send it as ISO 8601 (2016-03-15T11:00:00Z)",
        ),
        (
            1458039600000,
            "looks like epoch milliseconds: send it as ISO 8601 (2016-03-15T11:00:00Z)",
        ),
        ("1458039600", "1458039600 looks like epoch seconds: send it as ISO 8601"),
        ("2016-W11-2T11:00:00Z", "an ISO week date (2016-W11-2) is not taken"),
    ],
)
def test_a_date_observed_as_epoch_or_week_date_is_said_as_the_time_it_looks_like(
    ngsi: NgsiMapping, sent: object, says: str
) -> None:
    entity = example("AirQualityObserved")
    entity["dateObserved"]["value"] = sent
    with pytest.raises(EventError) as caught:
        ngsi.entity(entity)
    assert (caught.value.code, caught.value.field) == ("bad_timestamp", "dateObserved.value")
    assert says in caught.value.reason
