"""The HTTP ingest: its own small web server (stdlib, threaded), apart from the worker.

- ``POST /ingest/v1/readings``: one ``reading/1`` document, a ``readings/1`` pack, or a JSON
  list of readings (docs/events.md);
- ``POST /ingest/v1/ngsi``: an Orion NGSI-v2 subscription notification of Smart Data Models
  entities (citybrain/ingest/ngsi.py says which attributes become which readings);
- ``GET /ingest/v1/health``: 200 when the server runs (no token).

Every POST needs ``Authorization: Bearer <token>`` of a role that may ``ingest``
(``gateway``, streams/auth.py). Each reading stands alone, as in the worker's packs: the
valid readings of a body go to Kafka and each bad one is dead-lettered naming its field
(``readings[3].value``, ``data[0].no2``); the answer is 200 ``{"accepted": n}`` once Kafka
has acknowledged them all, with ``"refused": m`` and ``errors`` when some were bad (a
sender such as Orion does not retry a 4xx: it must not be told to drop the valid ones). A
body with no valid reading at all (not JSON, no reading, every reading bad) is 400 naming
every bad field, and nothing is sent. 503 (with ``Retry-After``) when Kafka has not
acknowledged within ``ack_timeout`` seconds (the readings may still arrive: a retry is
safe, the worker drops an exact duplicate). Bodies above
``max_body`` bytes are refused with 413, before they are read; a body needs a
``Content-Length`` (ASCII digits: 411 without one, 400 for another value; a chunked body
is 411, one with both headers 400, as RFC 9112 section 6.3 asks of a server that does not
take chunked bodies); a ``Content-Type`` other than JSON (``application/json`` or
``*/*+json``, UTF-8) is 415, and so is a compressed one (a ``Content-Encoding`` other than
``identity``; the answer's ``Accept-Encoding: identity`` says so). A body not sent within
``timeout`` seconds is 408. Any unexpected fault answers 500 and leaves the server running.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from citybrain.ingest import MAX_PAYLOAD
from citybrain.ingest.bounded import (
    BoundedHandler,
    BoundedHTTPServer,
    header_bytes,
    request_path,
    sent_text,
)
from citybrain.ingest.mapping import encoded_twice
from citybrain.ingest.metrics import IngestMetrics
from citybrain.ingest.mqtt import carried_headers, dead_letter_headers
from citybrain.ingest.ngsi import NgsiMapping
from citybrain.ingest.publisher import PackPublisher, packable
from citybrain.text import counted, first_named
from playbooks.errors import did_you_mean
from streams.auth import TokenStore, forbidden_reason, one_authorization, refusal_401
from streams.bounds import Bounds
from streams.errors import MISSING, EventError
from streams.events import (
    MAX_PACK_READINGS,
    PACK_SCHEMA,
    READING_SCHEMA,
    TOO_DEEP,
    EventValidator,
    PackedError,
    Reading,
    dead_letter_key,
    decode_json,
    duplicate_key_error,
    duplicate_keys,
    format_ts,
    items_read_alone,
    shared_original,
    text_fault,
)
from streams.spans import items_as_sent

log = logging.getLogger(__name__)

READINGS_PATH = "/ingest/v1/readings"
NGSI_PATH = "/ingest/v1/ngsi"
HEALTH_PATH = "/ingest/v1/health"
# Each path's one method: another method on a known path is 405 with Allow (RFC 9110
# section 15.5.6), an unknown path 404.
METRICS_PATH = "/metrics"  # Prometheus' default path; no token, as the worker's
METHODS = {READINGS_PATH: "POST", NGSI_PATH: "POST", HEALTH_PATH: "GET", METRICS_PATH: "GET"}
STREAMS = {READINGS_PATH: "http", NGSI_PATH: "ngsi"}  # the refusals' stream label
# The reason label of a request refused for its headers (the body is never read).
HEADER_REASONS = {400: "bad_header", 411: "no_length", 413: "too_large", 415: "bad_content_type"}
MAX_BODY = MAX_PAYLOAD
_LENGTH = re.compile(r"[0-9]+")  # str.isdigit also takes "²" and other digits int() refuses


class BadBody(Exception):
    """A request body that cannot be ingested; ``errors`` name each bad field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Refused:
    """One bad reading of a body that had good ones too: the 400-style ``problem``
    (``{"field", "code", "message"}``) and the ``payload`` dead-lettered for it (the
    reading, or the NGSI entity, as JSON)."""

    problem: dict[str, Any]
    payload: bytes
    index: int = -1  # the item's place in the body, when refusals are sorted by it
    # Whether this refusal sends a dead letter (False: another refusal of its NGSI entity
    # carries the entity's bytes for it, ``_letters_per_entity``), and what that dead
    # letter's message adds to the problem's (the refusals it stands for).
    letter: bool = True
    letter_note: str = ""


@dataclass(frozen=True, slots=True)
class BodyReadings:
    """A body's valid readings and its refused ones (each read on its own)."""

    readings: list[Reading]
    refused: list[Refused]


@dataclass(frozen=True, slots=True)
class Taken:
    """A valid reading of a body: the field it was read from (``readings[2]``,
    ``data[0].no2``; empty for a body that is one reading), the index of its item in the
    body, the item (dead-lettered if it is refused after all) and the reading."""

    field: str
    index: int
    item: Any
    reading: Reading


def _conflicts(taken: list[Taken], suffix: str) -> tuple[list[Reading], list[Refused]]:
    """The readings to send, and the refused ones: readings of one body for one sensor
    at one event time with different values (which is meant cannot be known: the worker
    keeps the first to arrive and drops the other as a duplicate, so a sender's second
    value would be lost silently), each refused ``conflicting_reading`` naming the others.
    The same value twice is a repeat, sent as it is (the worker drops and counts it)."""
    at: dict[tuple[str, float], list[Taken]] = {}
    for t in taken:
        at.setdefault((t.reading.sensor_id, t.reading.ts), []).append(t)
    clash = {
        id(t): same
        for same in at.values()
        if len({t.reading.value for t in same}) > 1
        for t in same
    }
    refused = []
    for t in taken:
        if id(t) not in clash:
            continue
        same = clash[id(t)]
        others = first_named(
            (f"{o.field or 'body'} {o.reading.value!r}" for o in same if o is not t),
            len(same) - 1,
        )
        exc = EventError(
            "conflicting_reading",
            f"{t.field}{suffix}" if t.field else suffix.lstrip("."),
            t.reading.value,
            f"sensor {t.reading.sensor_id!r} at {format_ts(t.reading.ts)} is given another "
            f"value by {others}: which is meant?",
        )
        problem = _problem(exc, exc.field)
        refused.append(Refused(problem, PackedError(t.index, t.item, exc).raw(), t.index))
    return [t.reading for t in taken if id(t) not in clash], refused


def _item_order(refused: Refused) -> int:
    return refused.index


def _sorted(readings: list[Reading], refused: list[Refused]) -> BodyReadings:
    """The body's readings; ``BadBody`` naming every bad field when none is valid."""
    if refused and not readings:
        raise BadBody([r.problem for r in refused])
    return BodyReadings(readings, refused)


def _problem(exc: EventError, field: str | None) -> dict[str, Any]:
    """One entry of a 400's ``errors``: the field (``body`` for the body as a whole),
    the reason code and the message."""
    return {"field": field or "body", "code": exc.code, "message": str(exc)}


def refusal_text(errors: list[dict[str, Any]]) -> str:
    """A 400's ``error``: ``readings[1].value: field … is 'x': expected a number`` for one
    bad field, ``2 bad fields, first readings[1].value: …`` for more."""
    first = errors[0]
    text = str(first["message"])
    if not text.startswith(f'field "{first["field"]}"'):
        text = f"{first['field']}: {text}"
    if len(errors) == 1:
        return text
    return f"{len(errors)} bad fields, first {text}"


# The refusals an answer tells in full (field, code, message); past these, it names the
# others' fields only.
MAX_ANSWER_ERRORS = 100


def answer_errors(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """An answer's ``errors``: the first ``MAX_ANSWER_ERRORS`` problems in full, and when
    there are more, ``refused_fields``, every refused field by name in body order, so a
    sender can tell which of its readings to mend and send again (t198: of a body with
    500 refused readings, the answer named the first 100, and which of the other 400
    were refused was said nowhere the sender could read)."""
    out: dict[str, Any] = {"errors": problems[:MAX_ANSWER_ERRORS]}
    if len(problems) > MAX_ANSWER_ERRORS:
        out["refused_fields"] = [p["field"] for p in problems]
    return out


def partly_refused_line(path: str, accepted: int, problems: list[dict[str, Any]]) -> str:
    """The log line on a body some of whose readings were refused: ``ingest: POST
    /ingest/v1/readings: 1 reading accepted, 2 refused and dead-lettered: 2 bad fields,
    first …`` (each count with its noun in the right number)."""
    return (
        f"ingest: POST {path}: {counted(accepted, 'reading')} accepted, "
        f"{counted(len(problems), 'reading')} refused and dead-lettered: "
        f"{refusal_text(problems)} (said once a minute per path; every one is counted and "
        "dead-lettered)"
    )


def _prefixed(exc: EventError, prefix: str) -> dict[str, Any]:
    field = f"{prefix}.{exc.field}" if exc.field else prefix
    return _problem(EventError(exc.code, field, exc.value, exc.reason), field)


def _not_empty(raw: bytes, expected: str) -> None:
    """``BadBody`` for a body of no bytes but white space: the worker's reason for an empty
    message spoke of a Kafka tombstone (trial 21), which a sender over HTTP never sent."""
    if not raw.strip():
        said = "nothing was sent (0 bytes)" if not raw else f"only white space ({len(raw):,} bytes)"
        bad = EventError("bad_json", None, None, f"{said}: expected {expected}")
        raise BadBody([_problem(bad, "body")])


def readings_from_body(raw: bytes, validator: EventValidator, now: float) -> BodyReadings:
    """citybrain's own schema: a reading, a pack, or a list -> its valid readings and its
    bad ones (``readings[i].<field>``), each read on its own; ``BadBody`` when the body
    is no reading, pack or list, or none of its readings is valid."""
    _not_empty(raw, "a reading, a readings/1 pack or a list of readings")
    body, read, deep = _json_body(raw, (None, "readings"))
    if isinstance(body, dict) and body.get("schema") == PACK_SCHEMA:
        items, prefix, key = body.get("readings", MISSING), "readings", "readings"
        if not isinstance(items, list) or not items:
            _whole(read, body, "readings")  # a key twice in it says more than its type
            bad = EventError("bad_type", "readings", items, "expected a non-empty list")
            raise BadBody([_problem(bad, "readings")])
        _not_too_many(items, "readings", "readings")
        faults = {**_item_faults(read, body, items, "readings"), **deep}
    elif isinstance(body, list):
        items, prefix, key = body, "readings", None
        if not items:
            bad = EventError("bad_type", "body", body, "expected at least one reading")
            raise BadBody([_problem(bad, "body")])
        _not_too_many(items, "body", "readings")
        faults = {**_item_faults(read, body, items, ""), **deep}
    else:
        items, prefix, key, faults = [body], "", None, {}
        if deep:  # a "readings" list not in a pack: the body is one (too deep) reading
            raise BadBody([_problem(EventError("bad_json", None, None, TOO_DEEP), None)])
        _whole(raw, body, None)
        _not_ngsi(body)
    out: list[Taken] = []
    refused: list[Refused] = []
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]" if prefix else ""
        if i in faults:
            fault = faults[i]
            problem = _fault_problem(fault, where)
            refused.append(Refused(problem, PackedError(i, item, fault).raw(), i))
            continue
        if not isinstance(item, dict):
            expected = (
                "expected a reading (a JSON object)"
                if prefix
                else "expected a reading (a JSON object), a readings/1 pack or a list of readings"
            ) + encoded_twice(item)
            bad = EventError("bad_type", where or "body", item, expected)
            refused.append(
                Refused(_problem(bad, where or "body"), PackedError(i, item, bad).raw(), i)
            )
            continue
        if prefix:
            item = {"schema": READING_SCHEMA, **item}  # packed readings may leave it out
        try:
            out.append(Taken(where, i, item, packable(validator.reading_document(item, now))))
        except EventError as exc:
            problem = _prefixed(exc, where) if where else _problem(exc, exc.field)
            refused.append(Refused(problem, PackedError(i, item, exc).raw(), i))
        except Exception as exc:
            # Unexpected, and still this reading's alone, as the worker and the MQTT
            # ingest take it (docs/ingest.md: internal): t171's 9999-12-31T24:00 raised
            # OverflowError here and the whole body was a 500, its good readings lost.
            log.exception("ingest: reading %s of a POST failed", where or "body")
            bad = _internal(exc)
            problem = _problem(bad, where or None)  # its message names no field
            refused.append(Refused(problem, PackedError(i, item, bad).raw(), i))
    kept, conflicting = _conflicts(out, ".value")
    refused = _as_sent(raw, key, len(items), refused + conflicting)
    return _sorted(kept, sorted(refused, key=_item_order))


def _internal(exc: Exception) -> EventError:
    """An unexpected exception while validating one reading, as the ``internal`` fault
    that reading alone is refused for (its type and text, no traceback)."""
    return EventError("internal", None, None, f"{type(exc).__name__}: {str(exc)[:200]}")


def _not_ngsi(body: Any) -> None:
    """``BadBody`` for an NGSI notification or entity posted as a reading (t105: "field
    "schema" is missing: expected 'reading/1'", the endpoint it belongs to unsaid)."""
    if not isinstance(body, dict) or "schema" in body or "specversion" in body:
        return  # (a structured CloudEvent, which the validator names: foreign_form)
    if isinstance(body.get("data"), list):
        shape = 'an Orion notification ("data": [entity, ...])'
    elif "id" in body and "type" in body and "sensor_id" not in body:
        shape = "an NGSI entity"
    else:
        return
    bad = EventError(
        "bad_schema",
        "schema",
        MISSING,
        f"expected 'reading/1': this is {shape}; post notifications to /ingest/v1/ngsi",
    )
    raise BadBody([_problem(bad, "schema")])


def ngsi_readings(
    raw: bytes, mapping: NgsiMapping, validator: EventValidator, now: float
) -> BodyReadings:
    """An Orion notification -> its valid readings and its bad ones, each named by entity
    and attribute (``data[0].no2``: one attribute's fault costs no other reading);
    ``BadBody`` when the body is no notification or none of its readings is valid."""
    _not_empty(raw, 'an Orion notification {"data": [entity, ...]}')
    body, read, deep = _json_body(raw, ("data",))
    listed = body.get("data") if isinstance(body, dict) else None
    if not isinstance(listed, list) or not listed:
        _whole(read, body, None)  # a key twice says more than the shape
        faults: dict[int, EventError] = {}
    else:
        _not_too_many(listed, "data", "entities")
        faults = {**_item_faults(read, body, listed, "data"), **deep}
    try:
        mapped = mapping.notification(body)
    except EventError as exc:
        raise BadBody([_problem(exc, exc.field)]) from None
    data = body["data"]
    # Each entity's bytes written once, however many of its attributes are refused: one
    # entity with 20,000 refused attributes was written 20,000 times (t198).
    written: dict[int, bytes] = {}

    def entity_bytes(i: int, exc: EventError) -> bytes:
        if i not in written:
            written[i] = PackedError(i, data[i], exc).raw()
        return written[i]

    # An entity whose JSON is at fault (a key given twice, a lone surrogate) is refused
    # for that alone, whatever its mapping found; the others go on.
    bad: list[tuple[int, Refused]] = [
        (i, Refused(_problem(exc, exc.field), entity_bytes(i, exc), i))
        for i, exc in mapped.errors
        if i not in faults
    ]
    bad.extend(
        (i, Refused(_fault_problem(exc, f"data[{i}]"), entity_bytes(i, exc), i))
        for i, exc in faults.items()
    )
    out: list[Taken] = []
    for i, _, found in mapped.entities:
        if i in faults:
            continue
        for attr, doc, sent, converted, (when, sent_time) in zip(
            found.attributes,
            found.documents,
            found.sent,
            found.converted,
            found.times,
            strict=True,
        ):
            try:
                reading = packable(validator.reading_document(doc, now))
                out.append(Taken(f"data[{i}].{attr}", i, data[i], reading))
            except Exception as caught:
                if isinstance(caught, EventError):
                    fault = caught
                else:
                    # Unexpected, and still this attribute's alone (docs/ingest.md:
                    # internal), as the mapping's faults are.
                    log.exception("ingest: data[%d].%s of a POST failed", i, attr)
                    fault = _internal(caught)
                # The reading field (ts, value) of the sensor this attribute maps to,
                # named below where the entity gave it otherwise.
                where = f"data[{i}].{attr}" + (f".{fault.field}" if fault.field else "")
                reason = f"{fault.reason} (sensor {doc['sensor_id']!r})"
                value = fault.value
                if fault.field == "value" and converted:
                    # Named by the value sent, not the one converted from it (t105: 6
                    # mg/m3 was refused as 'data[0].no2.value is 6000.0').
                    value, reason = sent, f"{converted}: {reason}"
                elif fault.field == "ts":
                    # Named by the field the time was read from, as sent there (t105:
                    # 'data[0].no2.ts', a field no entity has, for its dateObserved).
                    where, value = f"data[{i}].{when}", sent_time
                    if doc["ts"] != sent_time:
                        reason = f"{doc['ts']}: {reason}"
                problem = _problem(EventError(fault.code, where, value, reason), where)
                bad.append((i, Refused(problem, entity_bytes(i, fault), i)))
    kept, conflicting = _conflicts(out, ".value")
    bad.extend((int(_item_order(r)), r) for r in conflicting)
    refused = [r for _, r in sorted(bad, key=lambda pair: pair[0])]  # stable: by entity
    return _sorted(kept, _letters_per_entity(_as_sent(raw, "data", len(data), refused)))


# An NGSI entity's refused attributes dead-lettered one by one; past these, one more dead
# letter stands for the rest. Each dead letter of an entity's attribute is the whole entity
# as sent, so more copies keep nothing more: one entity of 20,000 attributes spelling no2
# (IRIs, look-alikes) was 20,000 dead letters of the 1 MB entity (t198).
MAX_ENTITY_LETTERS = 10


def _letters_per_entity(refused: list[Refused]) -> list[Refused]:
    """``refused`` (sorted by entity) with at most ``MAX_ENTITY_LETTERS`` dead letters per
    entity: every refusal stays (answered, counted); those past the cap send none but
    the first of them, whose dead letter names the others (the first few and how many)."""
    per_entity: dict[int, list[Refused]] = {}
    for r in refused:
        per_entity.setdefault(r.index, []).append(r)
    if all(len(rs) <= MAX_ENTITY_LETTERS for rs in per_entity.values()):
        return refused
    out: list[Refused] = []
    for rs in per_entity.values():
        out += rs[: MAX_ENTITY_LETTERS - 1]
        if len(rs) <= MAX_ENTITY_LETTERS:
            out += rs[MAX_ENTITY_LETTERS - 1 :]
            continue
        carrier, rest = rs[MAX_ENTITY_LETTERS - 1], rs[MAX_ENTITY_LETTERS:]
        named = first_named((str(o.problem["field"]) for o in rest), len(rest))
        note = (
            " (this dead letter stands for the entity's "
            f"{counted(len(rest), 'other refused attribute')} too: {named}; each is named "
            "in the answer and counted; "
            f"an entity, whole in each of its dead letters, is dead-lettered at most "
            f"{MAX_ENTITY_LETTERS} times)"
        )
        out.append(replace(carrier, letter_note=note))
        out += [replace(o, letter=False) for o in rest]
    return out


def _not_too_many(items: list[Any], field: str, noun: str) -> None:
    """``BadBody`` for a body of more than ``MAX_PACK_READINGS`` items, as the worker
    refuses such a pack: 500,000 bad items in a 1 MB body cost the server five seconds
    and became 500,000 dead letters (and as many again when its 503 was retried)."""
    if len(items) > MAX_PACK_READINGS:
        bad = EventError(
            "pack_too_large",
            field,
            f"{len(items):,} {noun}",
            f"a body holds at most {MAX_PACK_READINGS:,} {noun}: send them in several bodies",
        )
        raise BadBody([_problem(bad, field)])


def _json_body(
    raw: bytes, keys: tuple[str | None, ...]
) -> tuple[Any, bytes, dict[int, EventError]]:
    """The body's JSON value, the bytes it was read from and the items refused while
    reading it (index -> fault); ``BadBody`` when it is not JSON. Keys given twice and
    lone surrogates are left to ``_item_faults`` and ``_whole``: inside one reading or
    entity they cost that one alone, as a pack's reading costs no other in the worker.
    So do nesting past ``MAX_DEPTH`` and a byte that is not UTF-8 (or a NUL) inside one
    item of the list under one of ``keys``
    (None: the body is the list): the body is read with ``null`` in that item's place
    (the bytes returned), and the item is refused ``bad_json``; before, the whole body
    was a 400 and the good readings around it were lost with it."""
    try:
        return decode_json(raw, check_text=False), raw, {}
    except EventError as exc:
        # Whatever the reason said: orjson names the first fault it meets, and a NaN in
        # an item before the deep one hid it (the lenient parser then stops on its own
        # recursion limit).
        pinned = items_read_alone(raw, keys, exc)
        if pinned is None:
            raise BadBody([_problem(exc, None)]) from None
        return pinned


def _as_sent(raw: bytes, key: str | None, count: int, refused: list[Refused]) -> list[Refused]:
    """The refused items with their payload the sender's own bytes for the item (the
    list is the body's, ``key`` None, or under ``key``; ``count`` items), so a dead
    letter shows what was sent: written again from the parsed value, ``NaN`` and
    ``1e999`` became ``null`` and of a key given twice only one value was left. The
    written-again payload stays where the bytes cannot be told apart (no refusal
    needs them, or the spans do not match the parsed list)."""
    sent = items_as_sent(raw, key, count) if refused else None
    if sent is None:
        return refused
    return [replace(r, payload=sent[r.index]) if 0 <= r.index < count else r for r in refused]


def _fault_problem(fault: EventError, where: str) -> dict[str, Any]:
    """The refusal of the item at ``where`` (``readings[1]``, ``data[0]``) for a JSON
    ``fault`` of its own (``_item_faults``): the field within it when the fault names
    one (``readings[1].note``), else the item, with the fault's message, which says where."""
    if fault.field:
        return _prefixed(fault, where)
    return _problem(fault, where)


def _whole(raw: bytes, body: Any, items: str | None) -> None:
    """``BadBody`` for a key given twice or a lone surrogate anywhere in ``body`` but
    under its key ``items`` (the list whose items ``_item_faults`` judges one by one)."""
    for key, at in duplicate_keys(raw, body):
        if items is None or (not at.startswith((f"{items}[", f"{items}.")) and at != items):
            raise BadBody([_problem(duplicate_key_error(key, at), None)])
    _outside_text(raw, body, items)


def _outside_text(raw: bytes, body: Any, items: str | None) -> None:
    """``BadBody`` for a lone surrogate in ``body`` outside its key ``items``."""
    if b"\\u" not in raw:  # a lone surrogate is only ever written as an escape
        return
    outside = {k: v for k, v in body.items() if k != items} if isinstance(body, dict) else body
    fault = text_fault(outside)
    if fault is not None:
        raise BadBody([_problem(fault, None)])


def _item_faults(raw: bytes, body: Any, items: list[Any], key: str) -> dict[int, EventError]:
    """The JSON faults of a body of many items (``body`` a list, ``key`` empty; or a
    pack's or a notification's list under ``key``) that lie inside one item: index ->
    a key given twice in it or the first lone surrogate of its text (field relative to
    the item). ``BadBody`` for one outside every item (the pack's own keys given twice:
    which list is meant?)."""
    at_item = re.compile(rf"{re.escape(key)}\[([0-9]+)\](?:$|[.\[])")
    faults: dict[int, EventError] = {}
    for name, at in duplicate_keys(raw, body):
        place = at_item.match(at)
        if place is None:
            raise BadBody([_problem(duplicate_key_error(name, at), None)])
        # Named as the refusal names the item: readings[1] for a list's [1].
        shown = at if key else f"readings{at}"
        faults.setdefault(int(place.group(1)), duplicate_key_error(name, shown))
    if b"\\u" in raw:  # a lone surrogate is only ever written as an escape
        if key:  # a list body has nothing outside its items
            _outside_text(raw, body, key)
        for i, item in enumerate(items):
            fault = text_fault(item)
            if fault is not None:
                faults.setdefault(i, fault)
    return faults


class IngestHttpServer(BoundedHTTPServer):
    """The HTTP ingest's server, under ``bounds`` (citybrain/ingest/bounded.py: a request
    in ``bounds.timeout`` seconds, ``bounds.max_connections`` at once). ``token_hint``
    ends a 401's advice to set CITYBRAIN_API_TOKENS_FILE (``demo_gateway_hint``: where
    the demo's gateway token is)."""

    def __init__(
        self,
        bind: tuple[str, int],
        validator: EventValidator,
        ngsi: NgsiMapping,
        publisher: PackPublisher,
        tokens: TokenStore,
        max_body: int = MAX_BODY,
        ack_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        metrics: IngestMetrics | None = None,
        bounds: Bounds | None = None,
        token_hint: str = "",
    ) -> None:
        self.metrics = metrics or IngestMetrics.create("http", lambda: publisher.stats.readings)
        refused = self.metrics.refused.labels("http", "busy")
        # A refusal before the path is read (busy) counts under "http" (docs/ingest.md).
        super().__init__(
            bind, _Handler, bounds or Bounds(), lambda _: refused.inc(), "the HTTP ingest"
        )
        # One pair, swapped whole by a SIGHUP's grid (``reload``): a request reads both
        # from one snapshot.
        self.parsing: tuple[EventValidator, NgsiMapping] = (validator, ngsi)
        self.publisher = publisher
        self.tokens = tokens
        self.max_body = max_body
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.token_hint = token_hint
        self._said: dict[str, float] = {}  # path -> monotonic time of the last INFO line
        self._said_lock = threading.Lock()

    @property
    def validator(self) -> EventValidator:
        return self.parsing[0]

    @property
    def ngsi(self) -> NgsiMapping:
        return self.parsing[1]

    def reload(self, validator: EventValidator, ngsi: NgsiMapping, tokens: TokenStore) -> None:
        """Put a new grid's ``validator`` and ``ngsi`` mapping and new ``tokens`` in force
        (any thread): the next request reads them; one being handled finishes with the
        old ones."""
        self.parsing = (validator, ngsi)
        self.tokens = tokens

    def said_partly_refused(self, path: str, every: float = 60.0) -> bool:
        """Whether to log a partly refused body on ``path`` now: once ``every`` seconds
        per path, so a gateway with one misconfigured sensor does not flood the log."""
        now = time.monotonic()
        with self._said_lock:
            if now - self._said.get(path, -every) < every:
                return False
            self._said[path] = now
            return True

    def publish(
        self,
        readings: list[Reading],
        dead_letters: Sequence[tuple[bytes, list[Any]]] = (),
        original: Sequence[tuple[str, bytes]] = (),
    ) -> bool:
        """Send the readings and the dead letters (value, headers; each also carrying
        ``original``, the request's ``carried_headers``) and wait for Kafka's
        acknowledgement of every one; False on timeout."""
        left = [len(readings) + len(dead_letters)]
        all_acked = threading.Event()
        lock = threading.Lock()

        def done() -> None:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    all_acked.set()

        deadline = time.monotonic() + self.ack_timeout
        for reading in readings:
            if not self.publisher.submit(reading, done, max(0.0, deadline - time.monotonic())):
                return False
        # The request's headers go whole with its first dead letters only: a body of
        # 10,000 bad readings each carrying a 64 kB User-Agent was 640 MB of them.
        shares = shared_original(original, len(dead_letters))
        for (value, headers), (carried, said) in zip(dead_letters, shares, strict=True):
            left_s = max(0.0, deadline - time.monotonic())
            # Keyed by the reading's sensor id when it has one (docs/events.md).
            key = dead_letter_key(value, None)
            sent = self.publisher.dead_letter(value, key, [*headers, *said], done, left_s, carried)
            if not sent:
                return False
        return all_acked.wait(max(0.0, deadline - time.monotonic()))


# The request headers a refused reading's dead letter keeps (W3C trace context, the
# body's type, a request id): what tells an operator which request it was. Never a
# credential (Authorization, Cookie).
CARRIED_REQUEST_HEADERS = frozenset(
    {"traceparent", "tracestate", "baggage", "content-type", "x-request-id", "user-agent"}
)


class _Handler(BoundedHandler):
    server: IngestHttpServer

    def count(self, reason: str) -> None:
        """A refusal of the server's bounds, counted under the path's stream; one whose
        path is not read (yet) under "http", as a busy connection; none for another path."""
        route = self.route if self.path else ""
        stream = STREAMS.get(route, "" if route else "http")
        if stream:
            self.server.metrics.refused.labels(stream, reason).inc()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A method with no ``do_`` handler (TRACE, CONNECT, an invented one) is the 404
        or 405 of its path (trial 13: 501 for HEAD); the rest as every bounded server."""
        if code == 501 and self.command and self.path:
            self._routed()
            return
        super().send_error(code, message, explain)

    @property
    def route(self) -> str:
        """The request's path without its query (``?token=…``, Orion's ``httpCustom``
        ``qs``) or an absolute form's scheme and host: a notification URL with a query
        was a 404, which Orion does not retry (trial 13)."""
        return request_path(self.path)

    def _routed(self) -> bool:
        """True when the path takes this request's method; else answers 404 (unknown
        path) or 405 naming the method it takes (``Allow``). The body of a refused
        request is left unread, so the connection closes."""
        allowed = METHODS.get(self.route)
        if allowed == self.command or (allowed == "GET" and self.command == "HEAD"):
            return True
        self.close_connection = True
        if allowed is None:
            hint = "the ingest serves " + ", ".join(f"{m} {p}" for p, m in METHODS.items())
            hint += did_you_mean(self.route, METHODS)  # /ingest/v1/reading, a letter off
            stripped = self.route.rstrip("/")
            if stripped != self.route and stripped in METHODS:
                # Paths take no trailing slash; say which path was meant (trial 25).
                hint = f"without the trailing slash, {stripped!r}"
            self.answer(404, {"error": f"no such path {sent_text(self.path[:200])}; {hint}"})
        else:
            # HEAD goes where GET does (RFC 9110 section 9.3.2).
            allow = "GET, HEAD" if allowed == "GET" else allowed
            self.answer(
                405,
                {"error": f"{self.route} takes {allow}, not {self.command}"},
                {"Allow": allow},
            )
        return False

    def do_GET(self) -> None:
        if not self._routed():
            return
        if self.route == METRICS_PATH:
            self.send_body(200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
            return
        self.answer(200, {"status": "ok", "pending": self.server.publisher.pending})

    do_HEAD = do_GET

    def _refused(
        self,
        reason: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.server.metrics.refused.labels(STREAMS[self.route], reason).inc()
        self.answer(status, body, headers)

    # Every other method a client may try on a known path is 405, not the standard
    # library's 501 "Unsupported method".
    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _routed

    def do_POST(self) -> None:
        srv = self.server
        if not self._routed():
            return
        twice = one_authorization(self.headers.get_all("Authorization", []))
        if twice:
            self.close_connection = True  # the body is left unread
            self._refused("bad_header", 400, {"error": twice, "field": "Authorization"})
            return
        authorization = self.headers.get("Authorization")
        tokens = srv.tokens  # one store per request: SIGHUP may swap it (hup_http)
        principal = tokens.authenticate(authorization)
        if principal is None:
            where = f"for citybrain ingest http{srv.token_hint} (docs/ingest.md, Tokens)"
            text = refusal_401(tokens, authorization, "the ingest", where, ("gateway",))
            self.close_connection = True  # the body is left unread
            self._refused("unauthenticated", 401, {"error": text})
            return
        if not principal.may("ingest"):
            self.close_connection = True
            self._refused("forbidden", 403, {"error": forbidden_reason(principal, "ingest")})
            return
        refusal = _refusal(self.headers, srv.max_body)
        if refusal is not None:
            status, body = refusal
            self.close_connection = True  # the body is left unread
            # RFC 9110 section 12.5.3: a 415 for a content coding says which it takes.
            extra = {"Accept-Encoding": "identity"} if body["field"] == "Content-Encoding" else None
            self._refused(HEADER_REASONS[status], status, body, extra)
            return
        length = int(self.headers["Content-Length"])
        self.go_on()  # a client that sent Expect: 100-continue sends its body now
        stalled = False
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            # The socket's own timeout (as long as the deadline, and often first: the
            # deadlines are checked every half second) on a body that stopped short of its
            # Content-Length: a timeout, not "ended after 0 bytes" (trial 62).
            raw, stalled = b"", True
        if not srv.disarm(self.connection) or stalled:
            self.close_connection = True
            self._refused(
                "timeout",
                408,
                {
                    "error": srv.body_late_text(self.connection, self.limit),
                    "reason": "timeout",
                },
            )
            return
        if len(raw) < length:  # the client stopped sending: nothing to answer it on
            self.close_connection = True
            self._refused(
                "bad_header",
                400,
                {
                    "error": f"the body ended after {len(raw):,} of its Content-Length "
                    f"{length:,} bytes",
                    "field": "Content-Length",
                },
            )
            return
        now = srv.clock()
        stream = STREAMS[self.route]
        try:
            validator, ngsi = srv.parsing  # one grid per request: SIGHUP may swap it
            if self.route == READINGS_PATH:
                found = readings_from_body(raw, validator, now)
            else:
                found = ngsi_readings(raw, ngsi, validator, now)
        except BadBody as exc:
            for problem in exc.errors:  # each bad reading, as MQTT counts each dead letter
                srv.metrics.refused.labels(STREAMS[self.route], problem["code"]).inc()
            self.answer(400, {"error": refusal_text(exc.errors), **answer_errors(exc.errors)})
            return
        except Exception as exc:  # a fault of ours: answered, logged, the server goes on
            log.exception("ingest: POST %s failed", self.route)
            self.answer(500, {"error": f"internal: {type(exc).__name__}"})
            return
        readings, refused = found.readings, found.refused
        dead_letters = []
        for bad in refused:
            code, message = bad.problem["code"], bad.problem["message"]
            srv.metrics.refused.labels(stream, code).inc()
            if not bad.letter:
                continue  # its entity's bytes go in another refusal's dead letter
            origin = f"http:{self.route}"
            headers = dead_letter_headers(origin, code, message + bad.letter_note, stream)
            dead_letters.append((bad.payload, headers))
        if refused and srv.said_partly_refused(self.route):
            log.info(
                "%s", partly_refused_line(self.route, len(readings), [r.problem for r in refused])
            )
        # A refused reading's dead letter keeps the request's trace context and content
        # type (never its Authorization); accepted readings travel packed, many requests'
        # to a message, so no request's headers are theirs (docs/ingest.md).
        sent = carried_headers(
            (name.lower(), header_bytes(value))
            for name, value in self.headers.items()
            if name.lower() in CARRIED_REQUEST_HEADERS
        )
        if (readings or dead_letters) and not srv.publish(readings, dead_letters, sent):
            self.answer(
                503,
                {"error": f"Kafka has not acknowledged in {srv.ack_timeout:g}s; retry"},
                {"Retry-After": "5"},
            )
            return
        answer: dict[str, Any] = {"accepted": len(readings)}
        if refused:
            problems = [r.problem for r in refused]
            answer.update(
                refused=len(refused),
                error=f"{len(readings)} accepted, {len(refused)} refused (dead-lettered): "
                + refusal_text(problems),
                **answer_errors(problems),
            )
        self.answer(200, answer)


def _refusal(headers: Any, max_body: int) -> tuple[int, dict[str, Any]] | None:
    """Why a POST's headers refuse its body (status, answer naming the header), or None."""
    length_text = headers.get("Content-Length")
    chunked = headers.get("Transfer-Encoding")
    if chunked is not None and length_text is not None:
        return 400, {
            "error": "Content-Length and Transfer-Encoding together (RFC 9112 section 6.3)",
            "field": "Transfer-Encoding",
        }
    if chunked is not None:
        return 411, {
            "error": f"Transfer-Encoding {sent_text(chunked)} is not accepted: send the body "
            "with a Content-Length",
            "field": "Transfer-Encoding",
        }
    if length_text is None:
        return 411, {"error": "Content-Length is required", "field": "Content-Length"}
    lengths = {value.strip() for value in headers.get_all("Content-Length", [])}
    if len(lengths) > 1:  # which one frames the body? (RFC 9110 section 8.6)
        return 400, {
            "error": f"Content-Length given {len(lengths)} different ways: "
            f"[{', '.join(sent_text(v) for v in sorted(lengths)[:4])}]",
            "field": "Content-Length",
        }
    if not _LENGTH.fullmatch(length_text.strip()):
        return 400, {
            "error": f"Content-Length is {sent_text(length_text[:40])}, expected a number of bytes",
            "field": "Content-Length",
        }
    digits = length_text.strip().lstrip("0") or "0"
    if len(digits) > 18 or int(digits) > max_body:
        return 413, {
            "error": f"body is {digits[:40]} bytes, at most {max_body} are accepted",
            "field": "Content-Length",
        }
    codings = [
        c.strip().lower()
        for value in headers.get_all("Content-Encoding", [])
        for c in value.split(",")
        if c.strip()
    ]
    if any(c != "identity" for c in codings):
        # Read as JSON, a gzipped body was refused as "byte 0x00 (NUL) ... UTF-16?",
        # which hid the cause (RFC 9110 section 15.5.16: 415 for a coding not taken).
        coding = ", ".join(headers.get_all("Content-Encoding", []))
        return 415, {
            "error": f"Content-Encoding is {sent_text(coding[:80])}: the ingest takes "
            "uncompressed JSON only; send the body without compression (no Content-Encoding, "
            "or identity)",
            "field": "Content-Encoding",
        }
    kinds = headers.get_all("Content-Type", [])
    if len({k.strip().lower() for k in kinds}) > 1:
        # Which one frames the body is not defined (it is no list header, RFC 9110
        # section 5.3): the first was read, and a proxy in front may check the other
        # (t165: application/json then text/plain was read as JSON unsaid).
        return 400, {
            "error": f"Content-Type given {len(kinds)} different ways: "
            f"[{', '.join(sent_text(k[:80]) for k in kinds[:4])}]: send it once",
            "field": "Content-Type",
        }
    kind = headers.get("Content-Type")
    if kind is not None:
        media, _, params = kind.partition(";")
        media = media.strip().lower()
        # Every charset parameter: a second one ("charset=utf-8; charset=latin-1") was
        # passed over, the body read as the first said (t165).
        charsets = re.findall(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
        if not (media == "application/json" or media.endswith("+json")) or any(
            c.lower() not in ("utf-8", "utf8") for c in charsets
        ):
            return 415, {
                "error": f"Content-Type is {sent_text(kind[:80])}, expected application/json "
                "(UTF-8)",
                "field": "Content-Type",
            }
    return None
