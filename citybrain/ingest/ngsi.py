"""NGSI-v2 notifications of Smart Data Models entities to reading documents (pure).

An Orion subscription notifies ``{"subscriptionId": ..., "data": [entity, ...]}`` with
entities in NGSI-v2 normalized form (``{"id", "type", "<attr>": {"type", "value",
"metadata"}}``; Orion's NGSI-v2 specification, "Notification Messages"). Each mapped
attribute of an entity becomes one reading:

- AirQualityObserved: ``pm25``, ``pm10``, ``no2``, ``o3`` -> the same kinds, ug/m3
  (unitCode GQ, the default, x1; GP, mg/m3, x1000);
- TrafficFlowObserved: ``averageVehicleSpeed`` -> traffic_speed (km/h, KMH);
  ``intensity`` (vehicles in the observation period) -> traffic_flow, scaled to 5 minutes;
- WaterQualityObserved: ``conductivity`` (S/m, D10) -> conductance, x10,000 to uS/cm.

Units and attribute names are the Smart Data Models specifications' (dataModel.Environment
AirQualityObserved and WaterQualityObserved, dataModel.Transportation
TrafficFlowObserved). Other attributes (co, so2, temperature, pH, occupancy, ...) have no
citybrain kind and are skipped.

Each reading stands alone: a mapped attribute that cannot become a reading (its sensor id
not registered, a bad value or unit code) is an error naming that attribute
(``data[0].no2``) and costs neither the entity's other attributes nor the other entities;
an entity whose id, type or observation time is bad costs that entity's readings only.

Event time of each reading: the attribute's own ``observedAt`` (NGSI-LD) or metadata
``observedAt``/``dateObserved`` (NGSI-v2), else the entity's ``dateObservedTo``, else its
``dateObserved`` (the end of an ISO 8601 interval ``start/end``), else a ``TimeInstant``
(the attribute's metadata, then the entity's). A DateTime is text, NGSI-v2's
``{"type": "DateTime", "value": ...}`` or NGSI-LD's ``{"@type": "DateTime", "@value": ...}``,
as a Property's value or alone (concise form). Without a zone it is UTC, as Orion reads it;
a date alone is its midnight. Otherwise the form is streams.events' ``parse_ts`` (ASCII
ISO 8601 extended, years 0001-9999 in UTC); anything else is ``bad_timestamp`` naming the
field.

Sensor id: ``sensor_id_template`` filled with the entity ``id``, ``type``, ``kind`` and any
Text attribute, by default ``{id}-{kind}``; the grid registers that id to a cell.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from citybrain.errors import InputError
from citybrain.ingest.mapping import encoded_twice
from citybrain.text import first_named
from playbooks.errors import did_you_mean
from playbooks.grid import DEFAULT_KINDS, Grid
from streams.errors import MISSING, EventError, detach, number_hint
from streams.events import (
    ISO_DATETIME,
    READING_SCHEMA,
    epoch_text_fault,
    format_ts,
    key_skeleton,
    lookalike_key_error,
    parse_ts,
    timestamp_fault,
    underflow_fault,
)

DEFAULT_SENSOR_ID = "{id}-{kind}"
FIVE_MINUTES = 300.0

_CONCENTRATION = {"GQ": 1.0, "GP": 1000.0}  # UN/CEFACT: ug/m3, mg/m3 -> ug/m3
# entity type -> attribute -> (kind, {unitCode: factor to citybrain's unit}, default code)
ATTRIBUTES: dict[str, dict[str, tuple[str, dict[str, float], str]]] = {
    "AirQualityObserved": {
        "pm25": ("pm25", _CONCENTRATION, "GQ"),
        "pm10": ("pm10", _CONCENTRATION, "GQ"),
        "no2": ("no2", _CONCENTRATION, "GQ"),
        "o3": ("o3", _CONCENTRATION, "GQ"),
    },
    "TrafficFlowObserved": {
        "averageVehicleSpeed": ("traffic_speed", {"KMH": 1.0}, "KMH"),
        "intensity": ("traffic_flow", {"": 1.0}, ""),  # a count: scaled by its period
    },
    "WaterQualityObserved": {
        "conductivity": ("conductance", {"D10": 10_000.0}, "D10"),  # D10: siemens per metre
    },
}


@dataclass(frozen=True, slots=True)
class EntityReadings:
    """What one entity gave: reading documents (not yet validated), the attribute each
    came from (``attributes[i]`` gave ``documents[i]``), the attributes skipped because
    citybrain has no kind for them, and the mapped attributes that could not become a
    reading (``EventError``, field relative to the entity: ``no2``, ``no2.value``).
    ``sent[i]`` is the value ``attributes[i]`` gave as sent and ``converted[i]`` how it
    became ``documents[i]``'s (``"with unit code GP, 6000.0 ug/m3"``; empty when it is
    the value as sent), so a refusal of the reading's value names the value sent; and
    ``times[i]`` the field its time was read from and the text sent there."""

    documents: list[dict[str, Any]]
    skipped: list[str]
    attributes: list[str] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    # times[i]: (the field documents[i]'s time was read from, its text as sent)
    times: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MappedNotification:
    """What one notification gave: (its index in ``data``, entity id, its readings) per
    entity that could be read, and every error with its field named from the body (``data[1].no2``,
    ``data[2].dateObserved.value``), entity-level and attribute-level alike."""

    entities: list[tuple[int, str, EntityReadings]]
    errors: list[tuple[int, EventError]]  # (entity index, error)


def template_fault(template: str) -> str | None:
    """What a sensor id template lacks, as ``expected …`` words, or None: a template (no
    lone brace) of plain ``{name}`` placeholders, ``{kind}`` among them. A format spec,
    a conversion, an attribute or an index (``{id:>100000000}``, ``{id!r}``,
    ``{id.real}``, ``{id[0]}``, ``{0}``) passed the start-up check, and then every
    reading was an ``internal`` dead letter (AttributeError, IndexError) or built a
    100 MB id (helper t52)."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:  # a lone { or }
        return f"a template ({exc})"
    names = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name or name.isdigit() or "." in name or "[" in name or spec or conversion:
            odd = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            return (
                "a template of plain placeholders, {id}, {type}, {kind} or an entity's Text "
                f"attribute by name, with no format, conversion or index: not {odd!r}"
            )
        names.add(name)
    if "kind" not in names:
        # Without the kind, an entity's pm25 and no2 would be one sensor.
        return "a template with {kind}"
    return None


class NgsiMapping:
    def __init__(self, grid: Grid, sensor_id_template: str = DEFAULT_SENSOR_ID) -> None:
        fault = template_fault(sensor_id_template)
        if fault is not None:
            raise InputError(f"sensor id template is {sensor_id_template!r}: expected {fault}")
        self.grid = grid
        self.template = sensor_id_template

    def notification(self, body: Any) -> MappedNotification:
        """An Orion notification -> each entity's readings and every error, named by field
        (``data[1].intensity.value``); one entity's or attribute's fault costs only its
        own readings. Raises ``EventError`` when the body is no notification."""
        if not isinstance(body, dict):
            raise EventError(
                "bad_type",
                "body",
                body,
                'expected an Orion notification {"data": [entity, ...]}' + _shape_hint(body),
            )
        data = body.get("data", MISSING)
        if data is MISSING:
            raise EventError(
                "missing_field",
                "data",
                MISSING,
                'expected an Orion notification {"data": [entity, ...]}' + _shape_hint(body),
            )
        if not isinstance(data, list) or not data:
            said = f"expected a non-empty list of entities{encoded_twice(data)}"
            raise EventError("bad_type", "data", data, said)
        out = []
        errors: list[tuple[int, EventError]] = []
        for i, entity in enumerate(data):
            if not isinstance(entity, dict):
                # Checked, not caught: an AttributeError from anywhere in entity() was
                # named "expected an object" and cost the entity's other readings
                # (trial 26: a concise dateObservedTo before dateObservedFrom).
                said = f"expected an object{encoded_twice(entity)}"
                bad = EventError("bad_type", f"data[{i}]", entity, said)
                errors.append((i, bad))
                continue
            try:
                # entity() checks the id is text first: str() of an id nested 1,000 levels
                # deep raised RecursionError (a 500).
                readings = self.entity(entity)
            except EventError as exc:
                errors.append((i, _within(i, exc)))
                continue
            out.append((i, entity["id"], readings))
            errors.extend((i, _within(i, exc)) for exc in readings.errors)
        return MappedNotification(out, errors)

    def entity(self, entity: dict[str, Any]) -> EntityReadings:
        """One normalized entity -> its readings; field names in errors are relative to
        the entity (``no2.metadata.unitCode.value``). Raises ``EventError`` for a bad id,
        type or observation time (no reading of it can be placed); an attribute's own
        fault is in ``errors`` and the other attributes still give their readings."""
        entity_id, entity_type = entity.get("id", MISSING), entity.get("type", MISSING)
        if not isinstance(entity_id, str) or not entity_id:
            code = "missing_field" if entity_id is MISSING else "bad_type"
            raise EventError(code, "id", entity_id, "expected the entity id (a non-empty string)")
        mapped_type = _mapped_type(entity_type)
        if mapped_type is None:
            raise EventError(
                "unknown_entity_type",
                "type",
                entity_type,
                f"expected one of {', '.join(sorted(ATTRIBUTES))}"
                f"{did_you_mean(entity_type, ATTRIBUTES)}",
            )
        table = ATTRIBUTES[mapped_type]
        entity = _compact(entity, mapped_type)
        # An attribute's own observedAt comes first; then the entity's dateObserved;
        # then an IoT Agent's TimeInstant (the attribute's, the entity's), which may be
        # when the agent received the value: read only when nothing better is given.
        observed = _entity_observed(entity)
        stamped = _entity_stamped(entity) if observed is None else None
        if observed is None and stamped is None and not _any_own_time(entity, table):
            raise _no_time(entity)
        texts = {
            k: v["value"]
            for k, v in entity.items()
            if isinstance(v, dict) and isinstance(v.get("value"), str)
        }
        out = EntityReadings([], [])
        # Kind -> the attributes giving it: "no2" and "NO2" (the older spelling) in one
        # entity are two values for one sensor at one time, which is meant cannot be
        # known (trial 13: the worker kept the first and dropped the other as a repeat).
        spellings: dict[str, list[str]] = {}
        for attr in entity:
            row = _row(table, attr) if attr not in ("id", "type") else None
            if row is not None:
                spellings.setdefault(row[0], []).append(attr)
        for attr, spec in entity.items():
            if attr in ("id", "type"):
                continue
            spec_row = _row(table, attr)
            if spec_row is None:
                # An attribute that looks like a mapped one without being it ("n\u043e2",
                # a Cyrillic o) was skipped as unmapped, its reading lost unsaid (t95).
                alike = _lookalike(table, attr)
                if alike is None:
                    out.skipped.append(attr)
                else:
                    out.errors.append(lookalike_key_error(entity, attr, alike))
                continue
            given = spellings[spec_row[0]]
            if len(given) > 1:
                # The first few others, each clipped: every one of 20,000 spellings
                # (IRIs ending in /no2) named all the others, 4 GB of text (t198).
                others = first_named((f"{a!r:.80}" for a in given if a != attr), len(given) - 1)
                out.errors.append(
                    EventError(
                        "duplicate_attribute",
                        attr,
                        spec.get("value", spec) if isinstance(spec, dict) else spec,
                        f"{spec_row[0]} is given by {others} too: which value is meant?",
                    )
                )
                continue
            try:
                ts, when, sent_time = _reading_time(spec, attr, observed, stamped)
                doc, converted = self._reading(entity, attr, spec, spec_row, ts, texts)
            except EventError as exc:
                # One attribute's fault (an unregistered sensor, a bad value) costs only
                # its own reading: the entity's others still go (trial 5: an unregistered
                # no2 lost the registered pm25 with it). Kept without its frames (detach).
                detach(exc)
                out.errors.append(exc)
                continue
            except Exception as exc:
                # Unexpected, and still this attribute's alone (docs/ingest.md: internal).
                out.errors.append(
                    EventError("internal", attr, None, f"could not be mapped: {type(exc).__name__}")
                )
                continue
            out.documents.append(doc)
            out.attributes.append(attr)
            out.sent.append(spec["value"])
            out.converted.append(converted)
            out.times.append((when, sent_time))
        return out

    def _reading(
        self,
        entity: dict[str, Any],
        attr: str,
        spec: Any,
        spec_row: tuple[str, dict[str, float], str],
        ts: float,
        texts: dict[str, Any],
    ) -> tuple[dict[str, Any], str]:
        """One mapped attribute -> its reading document and how its value was converted
        (``"with unit code GP, 6000.0 ug/m3"``, empty when not); ``EventError`` naming it."""
        entity_id, entity_type = entity["id"], entity["type"]
        kind, factors, default_code = spec_row
        value = sent = _number(spec, attr)
        code = _unit_code(spec, attr, default_code)
        if code not in factors:
            raise EventError(
                "bad_unit",
                f"{attr}.unitCode" if "unitCode" in spec else f"{attr}.metadata.unitCode.value",
                code,
                f"expected one of {', '.join(sorted(factors))} for {kind} "
                f"({DEFAULT_KINDS[kind].unit}){did_you_mean(code, factors)}",
            )
        value *= factors[code]
        how = f"with unit code {code}" if factors[code] != 1.0 else ""
        if kind == "traffic_flow":
            period = _period(entity)
            value *= FIVE_MINUTES / period
            how = f"over {period:g} s" if period != FIVE_MINUTES else how
        if not math.isfinite(value):
            # 1e308 mg/m3 is inf in ug/m3: refused here, where the attribute is known.
            raise EventError(
                "not_finite", f"{attr}.value", spec["value"], f"is not finite in {kind}'s unit"
            )
        # id, type and kind are the entity's own: a Text attribute named so (a
        # "kind" attribute) neither replaces them nor collides with them.
        fields = {**texts, "id": entity_id, "type": entity_type, "kind": kind}
        try:
            sensor_id = self.template.format(**fields)
        except KeyError as exc:
            raise EventError(
                "missing_field", str(exc.args[0]), None, "the sensor id template needs it"
            ) from None
        sensor = self.grid.sensors.get(sensor_id)
        if sensor is None:
            # Named by the attribute: the entity's other attributes may be registered.
            raise EventError(
                "unknown_sensor",
                attr,
                sensor_id,
                f"no sensor with this id (template {self.template!r}) is registered in the "
                f"grid{self.grid.near_sensor(sensor_id)}",
            )
        unit = DEFAULT_KINDS[kind].unit
        doc = {
            "schema": READING_SCHEMA,
            "ts": format_ts(ts),
            "sensor_id": sensor_id,
            "kind": kind,
            "value": value,
            # The unit the factors convert to: the built-in kind's (a grid that
            # re-declares the kind with another unit gets a bad_unit dead letter).
            "unit": unit,
            "grid_cell": sensor.cell,
        }
        return doc, f"{how}, {value!r} {unit}" if how and value != sent else ""


def _local(name: str) -> str:
    """A term's local name: the last segment of an expanded IRI, as an NGSI-LD broker
    writes a type or attribute its subscriber's @context does not define
    (``https://smartdatamodels.org/dataModel.Environment/no2`` is ``no2``); else the
    name itself."""
    return re.split(r"[/#]", name)[-1] if "/" in name or "#" in name else name


def _row(
    table: dict[str, tuple[str, dict[str, float], str]], attr: str
) -> tuple[str, dict[str, float], str] | None:
    # Older examples spell pollutants in capitals (NO2); the current models do not.
    name = _local(attr)
    return table.get(name) or table.get(name.lower())


def _lookalike(table: dict[str, tuple[str, dict[str, float], str]], attr: str) -> str | None:
    """The mapped attribute of ``table`` that ``attr`` (mapped to none) looks like
    (``streams.events.key_skeleton``: another script's letter, a control or format
    character, a fullwidth form), None when it looks like none of them."""
    if len(attr) > 64:
        return None
    skeleton = key_skeleton(_local(attr))
    return next((name for name in table if name.casefold() == skeleton), None)


def _mapped_type(given: Any) -> str | None:
    """The mapped entity type an entity's ``type`` names: the type (NGSI-v2, NGSI-LD),
    compacted or expanded to an IRI, or NGSI-LD's list of types (an entity may have
    several) holding exactly one mapped type; None otherwise."""
    types = given if isinstance(given, list) else [given]
    found = {_local(t) for t in types if isinstance(t, str) and _local(t) in ATTRIBUTES}
    return found.pop() if len(found) == 1 else None


def _compact(entity: dict[str, Any], mapped_type: str) -> dict[str, Any]:
    """The entity with its mapped type and each attribute under its local name (an
    expanded IRI shortened), unless that name is taken by another of its attributes,
    given as it is or expanded: then both stay, and each names the other
    (duplicate_attribute)."""
    out: dict[str, Any] = {}
    # Two expanded IRIs with one local name (``…/a/no2``, ``…/b/no2``) also keep their
    # own names: shortened, the second replaced the first silently (trial 26).
    shortened = Counter(_local(n) for n in entity if n not in ("id", "type"))
    for name, spec in entity.items():
        local = _local(name) if name not in ("id", "type") else name
        keep = local == name or (local not in entity and shortened[local] == 1)
        out[local if keep else name] = spec
    out["type"] = mapped_type
    return out


def _shape_hint(body: Any) -> str:
    """What a body that is no notification looks like, when it is another NGSI shape a
    field system sends (t105: a batch update was told only 'data is missing')."""
    post = "; post each entity in a notification's data, or have Orion notify citybrain"
    readings = " (these are citybrain's own readings: post them to /ingest/v1/readings)"
    items = body if isinstance(body, list) else [body]
    if items and all(isinstance(e, dict) and "sensor_id" in e for e in items):
        return readings
    if isinstance(body, dict) and body.get("schema") in ("reading/1", "readings/1"):
        return readings
    if isinstance(body, list):
        if body and all(isinstance(e, dict) and "id" in e and "type" in e for e in body):
            return f" (this is a list of entities, an NGSI-LD batch body?){post}"
        return ""
    if not isinstance(body, dict):
        return ""
    if "entities" in body:
        return f' (this has "entities": a batch update, POST /v2/op/update?){post}'
    if "contextResponses" in body:
        return (
            ' (this has "contextResponses": an NGSI-v1 notification; subscribe with '
            'NGSI-v2, "attrsFormat": "normalized")'
        )
    if "id" in body and "type" in body:
        return ' (this is one entity: post {"data": [entity]})'
    return ""


def _within(index: int, exc: EventError) -> EventError:
    """``exc`` with its field named from the notification body (``data[0].no2``)."""
    where = f"data[{index}].{exc.field}" if exc.field else f"data[{index}]"
    return EventError(exc.code, where, exc.value, exc.reason)


def _keyvalues(attr: str, spec: Any) -> EventError:
    """A bare attribute value: the entity was sent in keyValues form; or an NGSI-LD
    multi-attribute (a list of instances, each with its ``datasetId``), which was said
    to be keyValues form too."""
    if isinstance(spec, list) and spec and all(isinstance(i, dict) for i in spec):
        return EventError(
            "bad_type",
            attr,
            spec,
            "an NGSI-LD multi-attribute (a list of instances, one per datasetId) is not "
            "read: which instance is the sensor's cannot be known; notify one instance "
            "(the default, without datasetId) per attribute",
        )
    return EventError(
        "bad_type",
        attr,
        spec,
        'expected a normalized attribute {"type", "value"} (keyValues form? subscribe '
        'with "attrsFormat": "normalized")',
    )


def _number(spec: Any, attr: str) -> float:
    if not isinstance(spec, dict):
        raise _keyvalues(attr, spec)
    value = spec.get("value", MISSING)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(
            "bad_type", f"{attr}.value", value, f"expected a number{number_hint(value)}"
        )
    if (tiny := underflow_fault(value)) is not None:
        # Read as 0.0 by float() and the unit's factor (t183), as the worker refuses it.
        raise EventError("not_finite", f"{attr}.value", value, tiny)
    try:
        return float(value)
    except OverflowError:
        # A JSON integer past a double (1 and 400 zeros): OverflowError was a 500 for
        # the whole notification (trial 13); the worker names it out_of_range too.
        raise EventError(
            "out_of_range", f"{attr}.value", value, "is too large for any plausible value"
        ) from None


def _unit_code(spec: dict[str, Any], attr: str, default: str) -> str:
    """The attribute's UN/CEFACT unit code: NGSI-v2's ``metadata.unitCode.value``, or
    NGSI-LD's ``unitCode`` beside the value; ``default`` only when neither is given.
    A unit given in a shape not read here is refused, never taken for the default
    (trial 13: ``"unitCode": "GP"`` beside the value, and metadata as a list, read
    0.05 mg/m3 as 0.05 ug/m3)."""
    meta = spec.get("metadata", MISSING)
    codes: dict[str, Any] = {}
    if meta is not MISSING and meta is not None:
        if not isinstance(meta, dict):
            raise EventError(
                "bad_type",
                f"{attr}.metadata",
                meta,
                'expected an object of metadata ({"unitCode": {"value": "GQ"}}, NGSI-v2): '
                "its unit code is not guessed",
            )
        if "unitCode" in meta:
            unit = meta["unitCode"]
            code = unit.get("value", MISSING) if isinstance(unit, dict) else unit
            codes[f"{attr}.metadata.unitCode.value"] = code
    if "unitCode" in spec:  # NGSI-LD puts it beside the value
        codes[f"{attr}.unitCode"] = spec["unitCode"]
    for where, code in codes.items():
        if not isinstance(code, str):
            raise EventError("bad_type", where, code, "expected a UN/CEFACT code")
    if len(set(codes.values())) > 1:
        (first, one), (second, other) = codes.items()
        raise EventError("bad_unit", second, other, f"differs from {first} {one!r}")
    return next(iter(codes.values()), default)


# The JSON-LD types of a DateTime or Date value, by their local name: NGSI-LD writes a
# temporal Property's value as {"@type": "DateTime", "@value": "..."} (ETSI GS CIM 009,
# 4.6.3), the type compacted or expanded (https://uri.etsi.org/ngsi-ld/DateTime,
# xsd:dateTime).
_TEMPORAL_TYPES = {"datetime", "date"}


def _datetime_text(value: Any, where: str) -> tuple[str, str]:
    """The ISO 8601 text of a DateTime value given in any form the NGSI specs give it,
    and the field it was read from: text; NGSI-LD's typed value ``{"@type": "DateTime",
    "@value": text}`` (``where.@value``); an NGSI-v2 typed value ``{"type": "DateTime",
    "value": text}`` (``where.value``). ``EventError`` (``bad_timestamp``) naming the
    field for anything else (a time of day alone, ``@type`` Time, included)."""
    if isinstance(value, dict):
        key = "@value" if "@value" in value else "value"
        kind = value.get("@type" if key == "@value" else "type", "DateTime")
        name = re.split(r"[/#:]", kind)[-1] if isinstance(kind, str) else None
        if name is None or name.lower() not in _TEMPORAL_TYPES:
            raise EventError(
                "bad_timestamp",
                where,
                value,
                f"a value of type {kind!r} is not a DateTime or a Date",
            )
        where, value = f"{where}.{key}", value.get(key, MISSING)
    if not isinstance(value, str):
        # An epoch number is said as the time it looks like (t109).
        number = isinstance(value, int | float) and not isinstance(value, bool)
        try:
            epoch = epoch_text_fault(float(value)) if number else None
        except OverflowError:
            epoch = None
        raise EventError(
            "bad_timestamp",
            where,
            value,
            'expected an ISO 8601 string (or {"@type": "DateTime", "@value": "..."})'
            + (f"; {epoch}" if epoch else ""),
        )
    return value, where


def _span(text: str, where: str) -> tuple[float, float]:
    """(start, end) of an ISO 8601 instant or ``start/end`` interval; ``EventError``
    (``bad_timestamp``) naming ``where``."""
    parts = text.split("/")
    try:
        stamps = [_utc(p) for p in parts]
    except ValueError as exc:
        raise EventError("bad_timestamp", where, text, f"{exc} (or start/end)") from None
    except EventError as exc:
        raise EventError("bad_timestamp", where, text, exc.reason) from None
    if len(stamps) > 2:
        raise EventError("bad_timestamp", where, text, "expected ISO 8601 (or start/end)")
    if stamps[-1] < stamps[0]:
        # Which end was meant cannot be known (t105: its end was taken as the event
        # time, and a traffic count's period was said to be missing).
        raise EventError("bad_timestamp", where, text, "the interval ends before it starts")
    return stamps[0], stamps[-1]


def _attr_time(entity: dict[str, Any], attr: str) -> tuple[float, float, str, str] | None:
    """(start, end) of an entity's DateTime attribute (an instant or an ISO 8601
    interval), None when the entity has none. Read in each form the specs allow: NGSI-v2
    ``{"type": "DateTime", "value": text}``, NGSI-LD ``{"type": "Property", "value":
    text or {"@type": "DateTime", "@value": text}}``, and NGSI-LD's concise form, the
    value alone (text, or the typed value). Also the field read and its text."""
    spec = entity.get(attr)
    if spec is None:
        return None
    if isinstance(spec, dict) and "@value" not in spec:
        text, where = _datetime_text(spec.get("value", MISSING), f"{attr}.value")
    elif isinstance(spec, (dict, str)):
        text, where = _datetime_text(spec, attr)
    else:
        raise _keyvalues(attr, spec)
    return (*_span(text, where), where, text)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _utc(text: str) -> float:
    """Epoch seconds of an NGSI DateTime; ValueError saying why (``timestamp_fault``) if
    it is not ISO 8601, EventError if its time is not representable."""
    if _DATE.fullmatch(text):
        text += "T00:00:00"
    form = ISO_DATETIME.fullmatch(text)
    if form is None:
        raise ValueError(timestamp_fault(text))
    if form.group("zone") is None:
        text += "Z"  # Orion reads a zone-less DateTime as UTC
    return parse_ts(text)


# An event time: (epoch seconds, the field it was read from, its text as sent there).
Stamp = tuple[float, str, str]


def _entity_observed(entity: dict[str, Any]) -> Stamp | None:
    """The entity's observation time: ``dateObservedTo``, else ``dateObserved`` (the end
    of an interval); None when it gives neither. The entity's times must agree, else
    ``bad_timestamp`` naming the one that contradicts the others (t109: a dateObserved
    outside the entity's dateObservedFrom/To was accepted silently, the reading placed
    at dateObservedTo): a ``dateObserved`` instant within them, or its interval's ends
    equal to them. (``dateObservedTo`` before ``dateObservedFrom`` costs only a count
    over that period, ``_period``.)"""
    start = _attr_time(entity, "dateObservedFrom")
    end = _attr_time(entity, "dateObservedTo")
    observed = _attr_time(entity, "dateObserved")
    if observed is not None and (start is not None or end is not None):
        _agrees(observed, start, end)
    for span in (end, observed):
        if span is not None:
            return span[1:]
    return None


Span = tuple[float, float, str, str]


def _agrees(observed: Span, start: Span | None, end: Span | None) -> None:
    """``EventError`` (``bad_timestamp``, naming dateObserved as sent) when ``observed``
    contradicts the entity's ``dateObservedFrom`` (``start``) or ``dateObservedTo``
    (``end``): an instant outside them, an interval whose ends are not theirs."""
    o_start, o_end, where, text = observed
    if o_start == o_end:
        wrong = (start is not None and o_end < start[0]) or (end is not None and o_end > end[1])
    else:
        wrong = (start is not None and o_start != start[0]) or (end is not None and o_end != end[1])
    if wrong:
        period = f"{start[3] if start else '…'}/{end[3] if end else '…'}"
        said = "an interval other than" if o_start != o_end else "an instant outside"
        raise EventError(
            "bad_timestamp",
            where,
            text,
            f"{said} the entity's dateObservedFrom/dateObservedTo {period}: which "
            "observation time is meant?",
        )


def _entity_stamped(entity: dict[str, Any]) -> Stamp | None:
    """The entity's ``TimeInstant`` attribute (an IoT Agent's stamp), None without one."""
    span = _attr_time(entity, "TimeInstant")
    return None if span is None else span[1:]


def _own_times(spec: Any, attr: str, names: tuple[str, ...]) -> Stamp | None:
    """An attribute's own time under ``names``: NGSI-LD's ``observedAt`` beside the value
    (text), NGSI-v2's metadata (``{"type": "DateTime", "value": text}``); None without
    one. Two given and different is ``bad_timestamp`` naming both: which is meant cannot
    be known."""
    if not isinstance(spec, dict):
        return None
    given: dict[str, Any] = {}
    if "observedAt" in names and "observedAt" in spec:
        given[f"{attr}.observedAt"] = spec["observedAt"]
    meta = spec.get("metadata")
    if isinstance(meta, dict):
        given.update((f"{attr}.metadata.{n}", meta[n]) for n in names if n in meta)
    times: dict[str, float] = {}
    texts: dict[str, str] = {}
    for where, value in given.items():
        text, at = _datetime_text(value, where)
        times[at], texts[at] = _span(text, at)[1], text
    if len(set(times.values())) > 1:
        (first, one), (second, other) = list(times.items())[:2]
        raise EventError(
            "bad_timestamp",
            second,
            format_ts(other),
            f"differs from {first} {format_ts(one)}: which observation time is meant?",
        )
    return next(((ts, at, texts[at]) for at, ts in times.items()), None)


def _observed_at(spec: Any, attr: str) -> Stamp | None:
    """The time this attribute's value was observed, if it says so itself: NGSI-LD's
    ``observedAt`` (ETSI GS CIM 009: the observation time of a Property's value), or
    NGSI-v2 metadata ``observedAt`` / ``dateObserved``."""
    return _own_times(spec, attr, ("observedAt", "dateObserved"))


def _reading_time(spec: Any, attr: str, observed: Stamp | None, stamped: Stamp | None) -> Stamp:
    """One attribute's reading time (epoch seconds, the field read, its text as sent):
    its own observedAt, else the entity's dateObserved, else a TimeInstant (the
    attribute's metadata, else the entity's)."""
    for ts in (
        _observed_at(spec, attr),
        observed,
        _own_times(spec, attr, ("TimeInstant",)) if observed is None else None,
        stamped,
    ):
        if ts is not None:
            return ts
    raise EventError(
        "missing_field",
        f"{attr}.observedAt",
        MISSING,
        "the entity has no dateObserved, so each attribute needs its own observation time",
    )


def _any_own_time(entity: dict[str, Any], table: dict[str, Any]) -> bool:
    """Whether any mapped attribute gives its own time (a bad one counts: the attribute
    names it)."""
    for attr, spec in entity.items():
        if attr in ("id", "type") or _row(table, attr) is None:
            continue
        try:
            if _own_times(spec, attr, ("observedAt", "dateObserved", "TimeInstant")) is not None:
                return True
        except EventError:
            return True
    return False


def _no_time(entity: dict[str, Any]) -> EventError:
    return EventError(
        "missing_field",
        "dateObserved",
        MISSING,
        "the observation time is missing (give dateObserved, the Smart Data Models' "
        "observation time, an observedAt on each attribute, or a TimeInstant)",
    )


def _period(entity: dict[str, Any]) -> float:
    """Seconds observed by a TrafficFlowObserved (From/To, else the dateObserved interval)."""
    start = _attr_time(entity, "dateObservedFrom")
    end = _attr_time(entity, "dateObservedTo")
    if start is not None and end is not None:
        seconds = end[1] - start[0]
        if seconds <= 0:
            raise EventError(
                "bad_timestamp",
                "dateObservedTo",
                # The instant read, in whichever form it was given (concise form: text
                # alone, whose .get raised AttributeError and lost the entity).
                format_ts(end[1]),
                "is not after dateObservedFrom: intensity is a count over that period",
            )
    else:
        span = _attr_time(entity, "dateObserved")
        seconds = span[1] - span[0] if span is not None else 0.0
    if seconds <= 0:
        raise EventError(
            "missing_field",
            "dateObservedFrom",
            None,
            "intensity is a count over a period: give dateObservedFrom/To or an interval",
        )
    return seconds
