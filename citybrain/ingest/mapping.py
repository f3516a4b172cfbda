"""MQTT messages to reading documents: topic patterns and payload rules (pure).

A topic pattern names its levels: ``city/{district}/{sensor_id}/{kind}`` subscribes to
``city/+/+/+`` and reads ``sensor_id`` and ``kind`` from the topic. Placeholders other than
``sensor_id``, ``kind`` and ``grid_cell`` are allowed and ignored (a gateway's district
level, say). A pattern without ``{sensor_id}`` (a gateway's own topic,
``gw/{gateway}/up``) takes the sensor id from each JSON payload. A payload (or each item
of a JSON array payload, read alone by citybrain/ingest/mqtt.py) is either

- a plain number (``12.5``, ``1e3``): the value, observed when it was received; or
- a JSON object: ``value`` (or the configured ``value_field``), optional ``ts`` (or
  ``ts_field``: ISO 8601 with a zone, or epoch seconds), optional ``unit``, and any
  reading field (``sensor_id``, ``kind``, ``grid_cell``) the topic leaves out. A field
  given by both topic and payload must agree.

Missing ``unit`` is the kind's unit in the grid's kinds (playbooks.grid); missing
``grid_cell`` is the cell the grid registers the sensor to. The result is a ``reading/1``
document for ``EventValidator``, which decides whether it is a valid reading.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from citybrain.errors import InputError
from playbooks.grid import UNIT_SPELLING, Grid
from streams.errors import MISSING, EventError, number_hint
from streams.events import (
    PACK_SCHEMA,
    READING_SCHEMA,
    OverflowFloat,
    decode_json,
    epoch_unit_hint,
    format_ts,
    json_float,
    json_int,
    lookalike_key,
    lookalike_key_error,
)

DEFAULT_TOPIC = "city/{district}/{sensor_id}/{kind}"
READING_FIELDS = ("sensor_id", "kind", "grid_cell")
_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# Gateways send numbers as text, some with surrounding whitespace; nothing else. Each
# digit is matched one way only, never given back (possessive ``++``): ``\d+\.?\d*``
# could split a run of digits anywhere, and a payload of 100,000 digits then an x held
# the ingest for hours of backtracking.
_NUMBER = re.compile(rb"^\s*+[-+]?(\d++(?:\.\d*+)?|\.\d++)([eE][-+]?\d++)?\s*$")
# What a device writes for a float that holds no reading (ESPHome's and Arduino's "nan",
# C's printf "inf", JavaScript's "Infinity"): read as a value that is not finite, shown as
# sent, so it is not_finite as JSON's NaN is, not a payload that is no number.
_NOT_FINITE = re.compile(rb"^\s*+[-+]?(?:nan|inf|infinity)\s*$", re.IGNORECASE)


class TopicPatternError(InputError):
    """A topic pattern is malformed; the message names the pattern and the level."""


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """One configured pattern: its MQTT subscription and where each named level sits."""

    pattern: str
    levels: tuple[str | None, ...]  # a placeholder's name, or None for a literal level
    literals: tuple[str | None, ...]

    @classmethod
    def parse(cls, pattern: str) -> TopicPattern:
        """``city/{district}/{sensor_id}/{kind}`` -> a pattern; raises ``TopicPatternError``
        for an empty level, MQTT wildcards (use placeholders) or a repeated name."""
        names: list[str | None] = []
        literals: list[str | None] = []
        for i, level in enumerate(pattern.split("/")):
            match = _PLACEHOLDER.match(level)
            if match:
                name = match.group(1)
                if name in names:
                    raise TopicPatternError(f"topic pattern {pattern!r}: {{{name}}} twice")
                names.append(name)
                literals.append(None)
            elif not level or "+" in level or "#" in level or "{" in level or "}" in level:
                raise TopicPatternError(
                    f"topic pattern {pattern!r}: level {i + 1} is {level!r}, expected a "
                    "literal or a {name} placeholder"
                )
            else:
                names.append(None)
                literals.append(level)
        return cls(pattern, tuple(names), tuple(literals))

    @property
    def subscription(self) -> str:
        return "/".join("+" if lit is None else lit for lit in self.literals)

    def match(self, topic: str) -> dict[str, str] | None:
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            return None
        out: dict[str, str] = {}
        for part, name, literal in zip(parts, self.levels, self.literals, strict=True):
            if name is None:
                if part != literal:
                    return None
            else:
                out[name] = part
        return out


@dataclass(frozen=True, slots=True)
class MqttMapping:
    """How topics and payloads become readings; ``to_document`` applies it."""

    patterns: tuple[TopicPattern, ...]
    grid: Grid
    value_field: str = "value"
    ts_field: str = "ts"

    @classmethod
    def build(
        cls,
        grid: Grid,
        patterns: list[str] | None = None,
        value_field: str = "value",
        ts_field: str = "ts",
    ) -> MqttMapping:
        parsed = tuple(TopicPattern.parse(p) for p in (patterns or [DEFAULT_TOPIC]))
        return cls(parsed, grid, value_field, ts_field)

    @property
    def subscriptions(self) -> list[str]:
        return list(dict.fromkeys(p.subscription for p in self.patterns))

    def to_document(
        self, topic: str, payload: bytes, received: float, retained: bool = False
    ) -> dict[str, Any]:
        """A ``reading/1`` document (not yet validated) for one message received at
        ``received`` (epoch seconds). Raises ``EventError`` naming the topic level or the
        payload field that cannot be mapped. A ``retained`` message (the broker's stored
        last value, sent on subscribing, perhaps days old) must carry its own time:
        stamped on receipt it would be an old value at a new time
        (``retained_without_time``)."""
        pattern, fields = self._topic_fields(topic)
        doc: dict[str, Any] = {"schema": READING_SCHEMA}
        if _NUMBER.match(payload) or _NOT_FINITE.match(payload):
            doc["value"] = _plain_number(payload)
        else:
            self._payload_fields(payload, fields, doc)
        if "ts" not in doc:
            if retained:
                raise EventError(
                    "retained_without_time",
                    self.ts_field,
                    MISSING,
                    "a retained message (the broker's stored last value) has no time of its "
                    "own; its time of receipt is not when it was observed",
                )
            doc["ts"] = _ReceiptTime(format_ts(received))
        for name in READING_FIELDS:
            if name in fields:
                doc[name] = fields[name]
        if "sensor_id" not in doc:
            # Only a pattern without {sensor_id} gets here: the payload had to name it.
            raise EventError(
                "missing_field",
                "sensor_id",
                MISSING,
                f"the topic pattern {pattern.pattern!r} has no {{sensor_id}} level, so the "
                'payload must be a JSON object with "sensor_id"',
            )
        kind = doc.get("kind")
        sensor = self.grid.sensors.get(doc["sensor_id"])
        if kind is None and sensor is not None:
            doc["kind"] = kind = sensor.kind
        if "unit" not in doc and isinstance(kind, str) and kind in self.grid.kinds:
            doc["unit"] = self.grid.kinds[kind].unit
        if "grid_cell" not in doc:
            if sensor is None:
                # The validator would name the missing cell; the sensor is the cause.
                given = doc.get("sensor_id")
                hint = self.grid.near_sensor(given) if isinstance(given, str) else ""
                raise EventError(
                    "unknown_sensor", "sensor_id", given, f"sensor is not registered{hint}"
                )
            doc["grid_cell"] = sensor.cell
        return doc

    def as_sent(self, exc: EventError, payload: bytes, doc: dict[str, Any]) -> EventError:
        """The validator's ``exc`` for ``to_document(…, payload)``'s ``doc``, naming the
        payload's own field and its value as sent: ``--value-field`` and ``--ts-field``
        for the reading's ``value`` and ``ts``, a unit as spelt (``µg/m³``, not the
        ``ug/m3`` read from it), a number in a string as the string, and an epoch-seconds
        time by the number sent, then the instant read from it (t105: ``field "ts" is
        '2029-11-22T00:00:00Z'`` for a payload whose ``time`` was 1890000000). An error
        of ``to_document`` itself (``doc`` empty) already names them."""
        if not doc or _NUMBER.match(payload) or _NOT_FINITE.match(payload):
            return exc  # a plain number has no field of its own: 'value' it stays
        name = {"value": self.value_field, "ts": self.ts_field}.get(exc.field or "", exc.field)
        if name is None or isinstance(doc.get(exc.field or ""), _ReceiptTime):
            return exc
        try:
            body = decode_json(payload)  # read before, by to_document: an object
        except EventError:
            return exc
        if not isinstance(body, dict) or name not in body:
            return exc  # from the topic or the grid: as the validator named it
        reason = exc.reason
        if isinstance(doc.get(exc.field or ""), EpochTime):
            reason = f"{doc[exc.field or '']}: {reason}"
        return EventError(exc.code, name, body[name], reason)

    def check_topic(self, topic: str) -> None:
        """Raises ``EventError`` (``unknown_topic``) when ``topic`` matches no pattern or
        a placeholder level of the one it matches is empty (as ``to_document``)."""
        self._topic_fields(topic)

    def sensor_of(self, topic: str) -> str | None:
        """The sensor id ``topic``'s ``{sensor_id}`` level gives, None when it matches no
        pattern or its pattern has no such level (a dead letter's key, docs/events.md)."""
        try:
            _, fields = self._topic_fields(topic)
        except EventError:
            return None
        return fields.get("sensor_id")

    def _topic_fields(self, topic: str) -> tuple[TopicPattern, dict[str, str]]:
        """The first pattern ``topic`` matches, and the fields its levels give."""
        for pattern in self.patterns:
            fields = pattern.match(topic)
            if fields is not None:
                # MQTT's + matches an empty level: "city/east/gauge-1/" gave kind '' and
                # "city/east//pm25" sensor_id '' (t109), said as fields never sent.
                empty = [name for name in pattern.levels if name and fields[name] == ""]
                if empty:
                    raise EventError(
                        "unknown_topic",
                        "topic",
                        topic,
                        f"its {{{empty[0]}}} level is empty (a trailing slash or '//'?): "
                        f"the pattern is {pattern.pattern!r}",
                    )
                return pattern, fields
        raise EventError(
            "unknown_topic",
            "topic",
            topic,
            f"matches none of {[p.pattern for p in self.patterns]}",
        )

    def _payload_fields(self, payload: bytes, topic: dict[str, str], doc: dict[str, Any]) -> None:
        try:
            body = decode_json(payload, unique_keys=True)  # as the worker reads it, keys once
        except EventError as exc:
            # A number with a decimal comma ("1,5") is said as one, not as JSON's words.
            comma = number_hint(payload.decode("utf-8", "replace"))
            raise EventError(
                "bad_payload",
                "payload",
                _preview(payload),
                f"expected a number or a JSON object{comma or f' ({exc.reason})'}",
            ) from None
        if isinstance(body, (int, float)) and not isinstance(body, bool):
            doc["value"] = body  # an int past a double is the validator's out_of_range
            return
        if not isinstance(body, dict):
            raise EventError(
                "bad_payload",
                "payload",
                _preview(payload),
                f"expected a number or a JSON object{encoded_twice(body)}",
            )
        # A key that looks like a field without being it ("v\u0430lue", "val\u0000ue") is
        # named, as the worker names it: ignored, it was "value is missing" or dropped.
        odd = lookalike_key(body, _payload_keys(self.value_field, self.ts_field), "mqtt_payload")
        if odd is not None:
            raise lookalike_key_error(body, *odd)
        if self.value_field not in body:
            if body.get("schema") in (PACK_SCHEMA, READING_SCHEMA) and "value" not in body:
                # citybrain's own documents are the HTTP door's and Kafka's; said as such,
                # not as a payload missing its value (t150).
                raise EventError(
                    "bad_payload",
                    "payload.schema",
                    body["schema"],
                    "the MQTT ingest reads a number, a JSON object of the mapped fields "
                    f"({self.value_field!r}, {self.ts_field!r}) or a JSON array of them; "
                    f"send a {body['schema']} document to the HTTP ingest "
                    "(POST /ingest/v1/readings) or the readings topic",
                )
            hint = _value_elsewhere(body, self.value_field, self.ts_field)
            raise EventError("missing_field", self.value_field, None, hint or "field is missing")
        value = body[self.value_field]
        if isinstance(value, str) and (
            _NUMBER.match(value.encode()) or _NOT_FINITE.match(value.encode())
        ):
            value = _plain_number(value.encode())
        doc["value"] = value  # its type is the validator's to judge
        if self.ts_field in body:
            doc["ts"] = _event_time(body[self.ts_field], self.ts_field)
        if "unit" in body:
            doc["unit"] = _unit_spelling(body["unit"], self.grid)
        for name in READING_FIELDS:
            if name in body:
                if not isinstance(body[name], str) or not body[name]:
                    # Named here: a list or an object would otherwise reach a grid lookup
                    # and be dead-lettered "internal: unhashable type".
                    raise EventError("bad_type", name, body[name], "expected a non-empty string")
                if name in topic and body[name] != topic[name]:
                    raise EventError(
                        "topic_mismatch",
                        name,
                        body[name],
                        f"the topic says {topic[name]!r}",
                    )
                doc[name] = body[name]


def encoded_twice(value: Any) -> str:
    """`` (JSON text in a JSON string: encoded twice? …)`` for a string whose text is a
    JSON object or array (a sender that serialised its document, then serialised the
    string again: ``"{\"value\": 2.1}"``), else "". Before t165 it was "expected a JSON
    object" alone, which the sender, seeing its object in the message, could not place."""
    if not isinstance(value, str) or value.strip()[:1] not in ("{", "["):
        return ""
    try:
        inner = json.loads(value[:MAX_ENCODED_TWICE])
    except (ValueError, RecursionError):
        return ""
    if not isinstance(inner, dict | list):
        return ""
    return " (JSON text in a JSON string: encoded twice? send the object itself, not as a string)"


# How much of a string is read as JSON to tell whether it was encoded twice.
MAX_ENCODED_TWICE = 1024 * 1024


# SenML's (RFC 8428) record keys: names, base values, values, times, units (and
# "e", the list of records of its drafts).
_SENML = frozenset(
    {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut", "e"}
)


def _value_elsewhere(body: dict[str, Any], value_field: str, ts_field: str) -> str:
    """Where a JSON object payload without ``value_field`` seems to give its value, as
    words for the refusal ("" when nowhere): a SenML record (RFC 8428, ``{"n", "v"}``),
    a number under another key (``val``, ``v``: ``--value-field val?``), the value one
    object down (``{"data": {"value": 2.1}}``). Before t165 each was "field "value" is
    missing" alone, which sent the sender looking for a value it had sent."""
    keys = [k for k in body if isinstance(k, str)]
    if keys and set(keys) <= _SENML and ("n" in body or "bn" in body):
        return (
            "this looks like a SenML record (RFC 8428: 'n', 'v'), which the MQTT ingest does "
            "not read: send one reading a payload, a number or "
            f'{{"{value_field}": …, "{ts_field}": …}}, the sensor and kind in the topic'
        )
    numbers = [
        k
        for k in keys
        if k not in READING_FIELDS
        and k != "unit"
        and (
            (isinstance(body[k], int | float) and not isinstance(body[k], bool))
            or (isinstance(body[k], str) and _NUMBER.match(body[k].encode()) is not None)
        )
    ][:3]
    if len(numbers) == 1:
        return f"the payload gives a number under {numbers[0]!r} (--value-field {numbers[0]}?)"
    if numbers:
        listed = ", ".join(repr(k) for k in numbers)
        return f"the payload gives numbers under {listed}: which is the value? (--value-field)"
    inner = [k for k in keys if isinstance(body[k], dict) and value_field in body[k]][:1]
    if inner:
        return f"it is one level down, under {inner[0]!r}: send the object under it as the payload"
    return ""


@lru_cache(maxsize=16)
def _payload_keys(value_field: str, ts_field: str) -> frozenset[str]:
    """The keys of a JSON payload that are read (any other is ignored)."""
    return frozenset({value_field, ts_field, "unit", *READING_FIELDS})


def _unit_spelling(unit: Any, grid: Grid) -> Any:
    """``unit`` as the grid spells it when it is one of the grid's units written with
    ``µ``, ``μ``, ``³`` or ``²`` (trial 21: "µg/m3" was bad_unit for a pm25 in ug/m3);
    anything else as given, for the validator to judge and show as it was sent. Only the
    spelling: a different unit (mg/m3) is never converted."""
    if not isinstance(unit, str):
        return unit
    plain = unit.strip().translate(UNIT_SPELLING)
    if plain != unit and any(kind.unit == plain for kind in grid.kinds.values()):
        return plain
    return unit


def _plain_number(text: bytes) -> int | float:
    """A plain number's value (``_NUMBER``): an integer as an int, compared with its
    kind's range before any conversion as the worker compares a JSON integer (trial 19:
    a payload of 1 and 400 zeros was float()ed to inf, ``not_finite`` showing ``inf``,
    where the worker says ``out_of_range`` showing the digits), else a float; a
    ``_NOT_FINITE`` spelling is nan or +-inf shown as sent."""
    digits = text.strip()
    if _NOT_FINITE.match(digits):
        return OverflowFloat(digits.decode("ascii"))  # nan or +-inf, shown as sent
    if digits.lstrip(b"+-").isdigit():
        return json_int(digits.decode("ascii"))
    # One past a double's range keeps its text (t98: "-1e400" was refused as "-inf").
    return json_float(digits.decode("ascii"))


class EpochTime(str):
    """An event time sent as epoch seconds, as the ISO 8601 text the validator reads,
    keeping the number (or digits in a string) as sent: ``sent``."""

    sent: Any

    def __new__(cls, text: str, sent: Any) -> EpochTime:
        self = super().__new__(cls, text)
        self.sent = sent
        return self


class _ReceiptTime(str):
    """The time a message was received, given as its event time (it had none)."""


def _event_time(value: Any, field: str) -> Any:
    """Epoch seconds become ISO 8601; a string passes on for the validator to parse."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EventError("bad_type", field, value, "expected ISO 8601 or epoch seconds")
    shown = value  # as sent: a string's text, not the number read from it
    if isinstance(value, str):
        if not _NUMBER.match(value.encode("utf-8", "replace")):
            return value
        # Epoch seconds in a string, as a number in a string is a value (trial 21: a
        # gateway's "ts": "1789999990" was bad_timestamp, its "value": "12.5" read).
        value = _plain_number(value.encode())
    # Compared as given: math.isfinite() of an integer past a double (1 and 400 zeros)
    # raised OverflowError, dead-lettered as "internal" (trial 13).
    finite = isinstance(value, int) or math.isfinite(value)
    if not finite or not 0 <= value < 1e11:
        # 1e11 s is the year 5138: a larger number is epoch milli-, micro- or nanoseconds
        # sent by mistake, which the message says (t109: only milliseconds were); a
        # negative one is before 1970, no reading's time.
        hint = epoch_unit_hint(value) if finite else ""
        if finite and value < 0:
            hint = "a negative epoch is before 1970"
        raise EventError(
            "bad_timestamp", field, shown, f"expected epoch seconds{f' ({hint})' if hint else ''}"
        )
    return EpochTime(_iso(float(value)), shown)


@lru_cache(maxsize=16_384)
def _iso(ts: float) -> str:
    # A city's sensors report on the same clock ticks: few distinct times per second.
    return format_ts(ts)


def _preview(payload: bytes) -> str | bytes:
    """The payload's first 60 bytes as shown in a dead letter: its text when they are
    UTF-8 (a character cut at the end dropped), else the bytes themselves, shown as
    ``b'\\xff…'`` (trial 8: replacement characters hid which byte was wrong; the reason
    names its offset)."""
    head = payload[:60]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as bad:
        if bad.start >= len(head) - 3 and bad.reason == "unexpected end of data":
            return head[: bad.start].decode("utf-8")
        return head
