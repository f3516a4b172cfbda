"""Decode and validate a batch of readings messages in a few calls, as columns.

Most city producers send one ``reading/1`` per Kafka message; edge gateways send
``readings/1`` packs. ``BatchAdmission.admit`` decodes every message with msgspec into a
typed row: a registered single reading (``WireReading`` whose sensor id, kind, grid cell,
unit and schema are ``Literal`` types of the grid's registrations, so msgspec hands back
the grid's own strings and allocates none but the timestamp), or a ``WirePack`` holding a
list of ``WirePacked``. A batch of single readings is then checked as arrays (one C pass
per field: the sensor's registration row, its (kind, cell, unit), the value against the
kind's plausible range, the home partition, and each distinct timestamp text of the batch
parsed once against ``MIN_EVENT_TIME`` and the clock's skew), and when every message
passes (the common case) the batch is handed to detection as ``Admitted`` columns with no
object per reading: an ``Incoming`` is built only for a reading detection takes off its
fast path. A batch's packs are checked the same way over all their readings: those that
pass are admitted as columns (merged in batch order with the single readings' when the
batch has both), the few that fail are refused one by one with the validator's verdict
(a pack that fails its own checks sends the batch pack by pack).

Only readings that pass every rule of ``EventValidator`` are admitted here. Every other
message (bad JSON, a missing or mistyped field, an unknown sensor, a value out of range,
a wrong partition, a pack msgspec cannot type, an empty or oversize pack, ...) goes
through ``streams.detection.admit`` on its own, and every other reading of a pack that
decodes goes through ``EventValidator.packed_reading`` and ``streams.detection.place``,
so its refusal, reason code, field-naming message (``readings[3].value``) and
dead-letter bytes are exactly the validator's, and a fault in one message or packed
reading never costs another (a batch whose decode raises anywhere is decoded message by
message; messages are never joined into one JSON text, where two bad ones could make
good JSON). msgspec and orjson agree on what is JSON (both refuse bare NaN, lone
surrogates, numbers beyond a double; both keep the last of duplicated keys) except in
what msgspec skips (a field no reading has): there it checks neither UTF-8 nor numbers,
so a message that is not UTF-8 is left to the validator before msgspec sees it, and
whatever msgspec refuses is left to the validator, whose lenient fallback still applies.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import chain, compress, repeat
from operator import attrgetter, eq, itemgetter
from typing import Any, Literal, cast

import msgspec
import numpy as np
import orjson

from streams.detection import Admitted, Incoming, Refused, admit, packed_as_sent, place
from streams.events import (
    MAX_PACK_READINGS,
    MIN_EVENT_TIME,
    PACK_SCHEMA,
    READING_SCHEMA,
    EventValidator,
    PackedError,
    Reading,
    _decode,
    _epoch,
    duplicate_keys,
    pack_too_large,
    reading_lookalike,
)
from streams.partitioning import sensor_partition


class _WireFields(msgspec.Struct, gc=False):
    """The fields of a reading as msgspec decodes them (unknown fields ignored, as the
    validator does; ``value`` accepts a JSON integer or float)."""

    ts: str
    sensor_id: str
    kind: str
    value: float
    unit: str
    grid_cell: str


class WireReading(_WireFields, gc=False):
    """A ``reading/1`` message: its ``schema`` is required."""

    schema: str


class WirePacked(_WireFields, gc=False):
    """A reading inside a ``readings/1`` pack: a ``reading/1`` that may leave out its
    ``schema`` (``UNSET`` then: the pack's strings are counted, ``_pack``)."""

    schema: str | msgspec.UnsetType = msgspec.UNSET


class WirePack(msgspec.Struct, gc=False):
    """A ``readings/1`` pack as msgspec decodes it (unknown fields ignored)."""

    schema: str
    readings: list[WirePacked]


# sensor id -> (kind, grid cell, unit, plausible min, plausible max, home partition,
# sensor id): the grid's own strings, which an admitted single reading carries (one
# object per sensor, kind and cell, their hashes computed once: detection's and the
# table's lookups compare them by identity; packed readings keep their own, whose
# release would otherwise fall in admission: 15 % slower there, measured)
Registration = tuple[str, str, str, float, float, int, str]


def _one_of(values: Iterable[str]) -> Any:
    """The type msgspec decodes as one of ``values`` (a ``Literal``: the decoded string is
    the very object given here, no new one per message), ``str`` if there are none."""
    values = tuple(dict.fromkeys(values))
    return Literal[values] if values else str  # (an empty grid: nothing is registered)


def _registered_wire(registrations: Iterable[Registration]) -> type[WireReading]:
    """A ``WireReading`` whose sensor id, kind, grid cell, unit and schema can only be
    registered ones (``Literal`` types): decoding it allocates no string but the
    timestamp, and a message it refuses is left to the validator as any other."""
    regs = list(registrations)
    fields: list[tuple[str, Any]] = [
        ("sensor_id", _one_of(r[6] for r in regs)),
        ("kind", _one_of(r[0] for r in regs)),
        ("grid_cell", _one_of(r[1] for r in regs)),
        ("unit", _one_of(r[2] for r in regs)),
        ("schema", Literal[READING_SCHEMA]),
    ]
    wire = msgspec.defstruct("RegisteredWireReading", fields, bases=(WireReading,), gc=False)
    return cast(type[WireReading], wire)


def _registered_pack(registrations: Iterable[Registration]) -> type[WirePack]:
    """A ``WirePack`` whose readings' kind, grid cell and unit can only be registered ones
    (``Literal`` types, a few distinct strings each: msgspec hands back the grid's own
    objects, allocating none, and the fast check's (kind, cell, unit) compare stops at
    identity). Measured over packs of 100 readings of 20,000 sensors (t218): the decode
    and the check together 1,388 -> 1,063 ns a reading. The sensor id stays ``str``:
    20,000 ``Literal`` values made the decode dearer than the lookups it saved (t106).
    A pack it refuses (a reading of a kind, cell or unit no sensor has) is decoded again
    as a plain ``WirePack``, as before."""
    regs = list(registrations)
    fields: list[tuple[str, Any]] = [
        ("kind", _one_of(r[0] for r in regs)),
        ("grid_cell", _one_of(r[1] for r in regs)),
        ("unit", _one_of(r[2] for r in regs)),
    ]
    packed = msgspec.defstruct("RegisteredWirePacked", fields, bases=(WirePacked,), gc=False)
    readings: Any = list[packed]  # type: ignore[valid-type]
    pack = msgspec.defstruct(
        "RegisteredWirePack", [("readings", readings)], bases=(WirePack,), gc=False
    )
    return cast(type[WirePack], pack)


# The double quotes of a reading's JSON when it holds its fields once each and nothing
# else: its keys (7 in a single ``reading/1``, 6 in a packed one without ``schema``) and
# its text values (6, or 5). Every other key, a key given twice included, and every quote
# escaped inside text adds to them: a message with exactly these many has every key once
# (``_once_each``), checked without a second parse.
_SINGLE_QUOTES = 2 * (7 + 6)
_PACKED_QUOTES = 2 * (6 + 5)  # and 4 more with its ``schema``
_PACK_QUOTES = 2 * 3  # the pack's own "schema": "readings/1", "readings"


def _quotes(raw: bytes) -> int:
    """The double quotes in ``raw`` (numpy: six times faster than ``bytes.count``)."""
    return int(np.count_nonzero(np.frombuffer(raw, np.uint8) == _QUOTE))


_QUOTE = ord('"')


def _once_each(raw: bytes, quotes: int) -> bool:
    """Whether the JSON object ``raw``, whose fields msgspec has read (each present),
    gives every key once: at once when it has ``quotes`` double quotes (nothing but its
    fields), else by ``duplicate_keys``, and no key that looks like a field without
    being it (``reading_lookalike``). False sends it to the validator, which names the
    key given twice (or whatever else it finds)."""
    if _quotes(raw) == quotes:
        return True
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    # msgspec ignores unknown keys: one that looks like a field ("v\u0430lue") is the
    # validator's to name, or it would pass here unsaid.
    return not duplicate_keys(raw, doc) and not reading_lookalike(doc)


# The registered single reading's fields the fast check reads, each column in one C pass.
_SENSOR = attrgetter("sensor_id")
_FILED = attrgetter("kind", "grid_cell", "unit")
_TS_TEXT = attrgetter("ts")
_SCHEMA = attrgetter("schema")
_READINGS = attrgetter("readings")
_VALUE = attrgetter("value")
_NAN = float("nan")
# A number below a double's range as its text shows it: an exponent of -100 or less
# (each pattern starts with its literal, which re finds fast: a pass over a message
# costs half a microsecond, against ten for the validator's hint) or a long run of zeros
# (0.000...1, 324 places or more).
_E_MINUS = re.compile(rb"e-[0-9]{3}").search
_CAPITAL_E_MINUS = re.compile(rb"E-[0-9]{3}").search
_ZEROS = b"0" * 16


def _tiny_text(raw: bytes) -> bool:
    """Whether ``raw`` may hold a number below a double's range (``_read_again``); the
    validator then reads it again and names it."""
    return _ZEROS in raw or _E_MINUS(raw) is not None or _CAPITAL_E_MINUS(raw) is not None


def _zero_in(row: WireReading | WirePack | None) -> bool:
    """Whether a decoded message holds a reading of value zero (``_read_again``)."""
    if isinstance(row, WirePack):
        return 0.0 in map(_VALUE, row.readings)
    return row is not None and row.value == 0.0


# A registration's strings, for the admitted readings' columns.
_KIND, _CELL, _UNIT, _SENSOR_ID = (itemgetter(k) for k in (0, 1, 2, 6))


def _registered_here(
    row: WireReading | WirePacked, reg: Registration | None, partition: int
) -> bool:
    """The fast check, one rule for single and packed readings: the sensor is registered
    with this kind, cell and unit, the value is plausible for the kind, and the reading
    is on its sensor's home partition. False sends it to the validator for its reason."""
    return (
        reg is not None
        and (row.schema == READING_SCHEMA or row.schema is msgspec.UNSET)
        and row.kind == reg[0]
        and row.grid_cell == reg[1]
        and row.unit == reg[2]
        and reg[3] <= row.value <= reg[4]
        and partition == reg[5]
    )


class BatchAdmission:
    """The readings agent's admission of a batch: ``EventValidator``'s rules and the
    home-partition rule of ``streams.detection.admit``, columnar for ``reading/1``.

    ``partitions`` is the readings topic's partition count. The registrations are taken
    from the validator's grid once, here (the worker loads its grid at start-up)."""

    def __init__(self, validator: EventValidator, partitions: int) -> None:
        self.validator = validator
        self._decode_pack = msgspec.json.Decoder(WirePack).decode
        self._home: Callable[[str], int] = partial(sensor_partition, partitions=partitions)
        grid = validator.grid
        self._registered: dict[str, Registration] = {}
        # One object per distinct kind, cell and unit string (a grid file's loader may
        # make one per sensor): the decoder's ``Literal`` hands back these very objects,
        # so the fast check's equality compares stop at identity. Interned, because
        # ``typing`` caches ``Literal[...]`` by equal values: a second grid's admission (a
        # reload, another test) was handed the first grid's equal strings, not its own.
        one: dict[str, str] = {}
        for sensor_id, sensor in grid.sensors.items():
            kind = grid.kinds.get(sensor.kind)
            if kind is not None and sensor.cell in grid.cells:
                self._registered[sensor_id] = (
                    one.setdefault(sensor.kind, sys.intern(sensor.kind)),
                    one.setdefault(sensor.cell, sys.intern(sensor.cell)),
                    one.setdefault(kind.unit, sys.intern(kind.unit)),
                    kind.min,
                    kind.max,
                    self._home(sensor_id),
                    sys.intern(sensor_id),
                )
        self._single: type[WireReading] = _registered_wire(self._registered.values())
        self._decode = msgspec.json.Decoder(self._single).decode
        self._registered_pack: type[WirePack] = _registered_pack(self._registered.values())
        self._decode_registered_pack = msgspec.json.Decoder(self._registered_pack).decode
        # The registrations as columns, by row: sensor id -> row; its (kind, cell, unit),
        # plausible range and home partition. The row past the last refuses everything
        # (None, an empty range, no partition): a reading of no registered sensor takes it.
        regs = list(self._registered.values())
        self._regs = regs
        self._row: dict[str, int] = {r[6]: at for at, r in enumerate(regs)}
        self._filed: list[tuple[str, str, str] | None] = [(r[0], r[1], r[2]) for r in regs]
        self._filed.append(None)
        self._low = np.array([r[3] for r in regs] + [np.inf], np.float64)
        self._high = np.array([r[4] for r in regs] + [-np.inf], np.float64)
        self._home_of = np.array([r[5] for r in regs] + [-1], np.int64)

    def _decoded(self, values: Sequence[bytes]) -> tuple[list[WireReading | WirePack | None], bool]:
        """Every message as a registered ``WireReading`` (``_single``) or a
        ``WirePack``, None where msgspec refuses both; True if every one is a single
        reading (the common case, one call's loop)."""
        decode = self._decode
        # msgspec checks the UTF-8 of the strings it decodes but not of what it skips
        # (an unknown field's value or key): a Latin-1 byte there passed the fast path
        # while the validator refuses the message as bad_json (trial 19). One C pass per
        # message, and a decode only for the few that are not ASCII.
        text = all(map(bytes.isascii, values)) or all(map(_utf8, values))
        if text:
            try:
                return list(map(decode, values)), True
            except Exception:
                pass
        # Whichever shape took the last message is tried first: a topic carries mostly
        # packs or mostly single readings, and a refused decode of a pack costs a parse.
        single_first = True
        rows: list[WireReading | WirePack | None] = []
        for value in values:
            if not text and not (value.isascii() or _utf8(value)):
                rows.append(None)  # the validator names the byte and its offset
                continue
            row: WireReading | WirePack | None = None
            if single_first:
                row = _or_none(decode, value)
            if row is None:
                # Counted before any pack decoder builds it (t101), whichever shape
                # came first: a pack after a pack was built whole before its count.
                if pack_too_large(value) is not None:
                    rows.append(None)  # the validator names it
                    continue
                row = _or_none(self._decode_registered_pack, value)
                if row is None:  # a reading of a kind, cell or unit no sensor has
                    row = _or_none(self._decode_pack, value)
                if row is not None:
                    single_first = False
                elif not single_first:
                    row = _or_none(decode, value)
                    single_first = row is not None
            rows.append(row)
        return rows, False

    def _read_again(
        self, rows: Sequence[WireReading | WirePack | None], raw: Sequence[bytes], all_single: bool
    ) -> set[int]:
        """The places of the messages whose readings msgspec may have read other than as
        written: a value of zero (what a number below a double's range reads as) in a
        message holding such a number's text (``_tiny_text``). One C pass over the
        values of a batch of single readings; a zero reading is common (a road at night),
        a message holding one is searched alone."""
        if all_single:
            values = np.fromiter(map(_VALUE, rows), np.float64, len(rows))
            zeros: Iterable[int] = np.flatnonzero(values == 0.0).tolist()
        else:
            zeros = [i for i, row in enumerate(rows) if _zero_in(row)]
        return {i for i in zeros if _tiny_text(raw[i])}

    def _checked(
        self,
        rows: Sequence[WireReading],
        raws: Sequence[bytes],
        partitions: Iterable[int],
        newest: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fast check over registered single readings as arrays: (passes, event
        times, values, registration rows), ``_rules`` and each message (``raws``)
        giving every key once."""
        m = len(rows)
        home = np.fromiter(partitions, np.int64, m)
        # Nothing but its fields: each of these messages has at least _SINGLE_QUOTES (its
        # required fields), so a batch with exactly m times as many has only those (one
        # count over the batch); else each is looked at (a field no reading has, an
        # escape, a key given twice).
        once = np.ones(m, np.bool_)
        if m and _quotes(b"".join(raws)) != m * _SINGLE_QUOTES:
            once = np.fromiter(map(_once_each, raws, repeat(_SINGLE_QUOTES)), np.bool_, m)
        passes, times, values, at = self._rules(rows, home, newest)
        return once & passes, times, values, at

    def _rules(
        self, rows: Sequence[WireReading | WirePacked], home: np.ndarray, newest: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``_registered_here`` and the timestamp's rules over decoded readings (their
        schemas checked by the caller) as arrays:
        (passes, event times, values, registration rows), each of length ``len(rows)``.
        A reading passes if its sensor is registered with its kind, cell and unit, its
        value is in the kind's plausible range, it arrived on its sensor's home
        partition (``home``: the partition each arrived on), and its timestamp has a zone
        and falls between ``MIN_EVENT_TIME`` and ``newest``; each distinct timestamp
        text is parsed once (a city's sensors report on the same clock ticks)."""
        m = len(rows)
        at = np.fromiter(map(self._row.get, map(_SENSOR, rows), repeat(-1)), np.int64, m)
        # (kind, cell, unit) as the sensor's registration has them (None: no sensor).
        registered = map(self._filed.__getitem__, at.tolist())
        same = np.fromiter(map(eq, map(_FILED, rows), registered), np.bool_, m)
        values = np.fromiter(map(_VALUE, rows), np.float64, m)
        texts = list(map(_TS_TEXT, rows))
        epochs = dict(zip(texts, repeat(_NAN)))  # NaN: the validator names it (no compare)
        for text in epochs:
            ts = _event_time(text)
            if ts is not None:
                epochs[text] = ts
        times = np.fromiter(map(epochs.__getitem__, texts), np.float64, m)
        passes = (
            same
            & (self._low[at] <= values)
            & (values <= self._high[at])
            & (self._home_of[at] == home)
            & (times >= MIN_EVENT_TIME)
            & (times <= newest)
        )
        return passes, times, values, at

    def admit(
        self,
        values: Sequence[bytes | None],
        partitions: Sequence[int],
        offsets: Sequence[int],
        received: Sequence[float],
        now: float,
    ) -> tuple[Admitted, list[tuple[int, Refused]]]:
        """A batch of readings messages (values, their partitions, offsets and Kafka
        timestamps in seconds, in offset order) -> the readings detection takes, in
        order (``Admitted``: columns, and the sequence of their ``Incoming``), and the
        refused ones as (message's place in the batch, ``Refused``). Never raises for a
        message's content; the same result as ``admit`` called on each message.

        A batch of nothing but admitted single readings (the common case) is admitted
        without Python per message: its columns are the decoded rows' (the sensor id
        string the grid's own), and a reading's ``Incoming`` is built only if detection
        asks for it (``Admitted``). So is a batch whose other messages are all refused
        (each validated alone), and a batch's packs whose failing readings are all
        refused (``_packed_columns``; merged with the single readings' columns in batch
        order, ``_merged``); one where the validator admits a reading the fast check
        did not, or a pack fails its own checks, is built reading by reading, in order."""
        # A tombstone (None) is refused as bad JSON.
        raw = [value or b"" for value in values] if None in values else cast(list[bytes], values)
        rows, all_single = self._decoded(raw)
        again = self._read_again(rows, raw, all_single)
        if again:
            # msgspec, as orjson, reads a number below a double's range (1e-400) as 0.0
            # unsaid (t183: scored as a reading of -0.0): such a message is the
            # validator's, which reads it again and names it (events.UnderflowFloat).
            rows = [None if i in again else row for i, row in enumerate(rows)]
            all_single = False
        newest = now + self.validator.max_future_skew
        # The packs of the batch as columns where they pass their own checks (a packs
        # topic: all of it; a topic that gateways and single-reading producers share:
        # merged with the single readings' columns below, in batch order).
        packed: tuple[Admitted, list[tuple[int, Refused]], np.ndarray] | None = None
        pack_places: list[int] = []
        if not all_single:
            packs = (WirePack, self._registered_pack)
            pack_places = [i for i, row in enumerate(rows) if type(row) in packs]
            if pack_places:
                packed = self._packed_columns(
                    [cast(WirePack, rows[i]) for i in pack_places],
                    [raw[i] for i in pack_places],
                    [partitions[i] for i in pack_places],
                    [offsets[i] for i in pack_places],
                    [received[i] for i in pack_places],
                    now,
                )
            if packed is not None:
                columns, pack_refusals, of_pack = packed
                at_place = np.asarray(pack_places, np.int64)
                placed = [(pack_places[i], r) for i, r in pack_refusals]
                if len(pack_places) == len(rows):  # the common case of a packs topic
                    return columns, placed
                packed = (columns, placed, at_place[of_pack])
        places: Sequence[int] = range(len(rows))
        if not all_single:
            single = self._single
            places = [i for i, row in enumerate(rows) if type(row) is single]
        singles: Any = rows if all_single else [rows[i] for i in places]
        passes, times, vals, at = self._checked(
            singles,
            raw if all_single else [raw[i] for i in places],
            partitions if all_single else map(partitions.__getitem__, places),
            newest,
        )
        if all_single and bool(passes.all()):  # the common case: no Python per message
            n = len(rows)
            make = partial(self._make, at, times, vals, received, offsets, raw)
            many = partial(self._make_many, at, times, vals, received, offsets, raw)
            offset_column = np.fromiter(offsets, np.int64, n)
            sensor_ids = list(map(_SENSOR, singles))
            in_pack = np.zeros(n, np.int64)
            return Admitted(sensor_ids, times, vals, offset_column, in_pack, make, many), []
        passed = list(compress(places, passes.tolist()))
        fast = [False] * len(rows)
        for i in passed:
            fast[i] = True
        # Every other message alone (a pack, or the validator's own path for its exact
        # reason and message), with what it admits at its place in the batch.
        others: list[tuple[int, list[Incoming]]] = []
        refused: list[tuple[int, Refused]] = []
        if packed is not None:
            for i in pack_places:
                fast[i] = True  # admitted and refused above, as columns
        for i, row in enumerate(rows):
            if fast[i]:
                continue
            admitted: list[Incoming] = []
            if not (
                isinstance(row, WirePack)
                and self._pack(
                    row, raw[i], partitions[i], offsets[i], received[i], now, i, admitted, refused
                )
            ):
                admitted, refusals = admit(
                    self.validator, raw[i], now, partitions[i], self._home, offsets[i], received[i]
                )
                refused.extend((i, r) for r in refusals)
            if admitted:
                others.append((i, admitted))
        chosen = np.flatnonzero(passes)
        if packed is not None:
            refused = sorted([*refused, *packed[1]], key=_PLACE)  # (stable: a pack's in order)
            if others:
                # The validator admitted a reading the fast check did not: each pack's
                # readings as objects, at its place among the others.
                by_place: dict[int, list[Incoming]] = {}
                for place_of, reading in zip(packed[2].tolist(), packed[0], strict=True):
                    by_place.setdefault(place_of, []).append(reading)
                others = sorted([*others, *by_place.items()], key=_PLACE)
        if not others:
            # The rest were refused (a few bad messages in a batch of good ones): the
            # good ones as columns all the same.
            n = len(passed)
            kept_at, kept_times, kept_vals = at[chosen], times[chosen], vals[chosen]
            kept_offsets = [offsets[i] for i in passed]
            kept = (
                kept_at,
                kept_times,
                kept_vals,
                [received[i] for i in passed],
                kept_offsets,
                [raw[i] for i in passed],
            )
            sensor_ids = list(map(_SENSOR, map(singles.__getitem__, chosen.tolist())))
            offset_column = np.fromiter(kept_offsets, np.int64, n)
            columns = Admitted(
                sensor_ids,
                kept_times,
                kept_vals,
                offset_column,
                np.zeros(n, np.int64),
                partial(self._make, *kept),
                partial(self._make_many, *kept),
            )
            if packed is not None:
                columns = _merged([(np.asarray(passed, np.int64), columns), (packed[2], packed[0])])
            return columns, refused
        made = iter(
            self._made(
                at[chosen],
                times[chosen],
                vals[chosen],
                map(received.__getitem__, passed),
                map(offsets.__getitem__, passed),
                map(raw.__getitem__, passed),
            )
        )
        incoming: list[Incoming] = []
        other = iter(others)
        next_other = next(other, None)
        for i in passed:
            while next_other is not None and next_other[0] < i:
                incoming.extend(next_other[1])
                next_other = next(other, None)
            incoming.append(next(made))
        while next_other is not None:
            incoming.extend(next_other[1])
            next_other = next(other, None)
        return Admitted.of(incoming), refused

    def _packed_columns(
        self,
        packs: list[WirePack],
        raw: Sequence[bytes],
        partitions: Sequence[int],
        offsets: Sequence[int],
        received: Sequence[float],
        now: float,
    ) -> tuple[Admitted, list[tuple[int, Refused]], np.ndarray] | None:
        """A batch's packs as ``Admitted`` columns, refusals (by place among ``packs``)
        and each admitted reading's pack (its place among ``packs``, int64), when every
        pack passes its own checks (schema, count, every key once): the readings that
        pass the fast check (``_pack``'s, as arrays: no Python per reading) as columns,
        the few that fail it refused with the validator's verdict (``_verdict``). None
        (each pack then admitted on its own, ``_pack``) if a pack fails its own checks
        or the validator admits a reading the fast check failed (its ``Incoming`` must
        then take its place among the others)."""
        counts = list(map(len, map(_READINGS, packs)))
        if not 0 < min(counts) <= max(counts) <= MAX_PACK_READINGS:
            return None  # the validator names the fault (an empty or oversize pack)
        if list(map(_SCHEMA, packs)).count(PACK_SCHEMA) != len(packs):
            return None
        flat: list[WirePacked] = list(chain.from_iterable(map(_READINGS, packs)))
        m = len(flat)
        given = list(map(_SCHEMA, flat))
        schemas = m - given.count(msgspec.UNSET)
        if given.count(READING_SCHEMA) != schemas:
            return None  # a packed reading's own schema that is not reading/1
        # Every pack has at least its fields' quotes: exactly as many over the batch is
        # every key once in every pack (``_once_each``), else each is looked at.
        quotes = _PACK_QUOTES * len(packs) + _PACKED_QUOTES * m + 4 * schemas
        if sum(map(_quotes, raw)) != quotes:  # (no join: a batch of packs is megabytes)
            for pack, value in zip(packs, raw, strict=True):
                own = len(pack.readings) - list(map(_SCHEMA, pack.readings)).count(msgspec.UNSET)
                want = _PACK_QUOTES + _PACKED_QUOTES * len(pack.readings) + 4 * own
                if not _once_each(value, want):
                    return None
        of_message = np.repeat(np.arange(len(packs)), counts)
        home = np.asarray(partitions, np.int64)[of_message]
        passes, times, vals, at = self._rules(flat, home, now + self.validator.max_future_skew)
        starts = np.cumsum(counts) - counts
        in_pack = np.arange(m, dtype=np.int64) - starts[of_message]
        refused: list[tuple[int, Refused]] = []
        if not bool(passes.all()):
            # A field's few bad readings (a stuck value, a sensor moved): refused with
            # the validator's verdict; the batch stays columns (pack by pack it ran at
            # about half the rate, and one bad reading per batch is common in the field).
            failing = np.flatnonzero(~passes)
            by_pack: dict[int, list[int]] = {}
            for i, k in zip(of_message[failing].tolist(), in_pack[failing].tolist(), strict=True):
                by_pack.setdefault(i, []).append(k)
            for i, indices in by_pack.items():
                refusals = self._refused_in_pack(
                    raw[i], counts[i], indices, partitions[i], offsets[i], received[i], now
                )
                if refusals is None:
                    return None
                refused.extend((i, r) for r in refusals)
            kept = np.flatnonzero(passes)
            at, times, vals = at[kept], times[kept], vals[kept]
            of_message, in_pack = of_message[kept], in_pack[kept]
            flat = list(map(flat.__getitem__, kept.tolist()))
        offset_column = np.asarray(offsets, np.int64)[of_message]
        columns = (at, times, vals, of_message, in_pack, received, offsets)
        many = partial(self._make_many_packed, *columns)
        make = partial(_built_alone, many)
        sensor_ids = list(map(_SENSOR, flat))
        columns_of = Admitted(sensor_ids, times, vals, offset_column, in_pack, make, many)
        return columns_of, refused, of_message

    def _refused_in_pack(
        self,
        raw: bytes,
        count: int,
        indices: list[int],
        partition: int,
        offset: int,
        received_at: float,
        now: float,
    ) -> list[Refused] | None:
        """The refusals of a pack's readings at ``indices`` (of ``count``; they failed the
        fast check), as ``_pack`` makes them; None if the pack as the validator reads it
        disagrees with msgspec's or the validator admits one of them."""
        items = self._validator_items(raw, count)
        if items is None:
            return None
        refusals: list[Refused] = []
        for index in indices:
            verdict = self._verdict(index, items[index], raw, partition, offset, received_at, now)
            if isinstance(verdict, Incoming):
                return None
            refusals.append(verdict)
        return packed_as_sent(raw, count, refusals)

    def _validator_items(self, raw: bytes, count: int) -> list[Any] | None:
        """A pack's readings as the validator reads them (orjson), None on any
        disagreement with msgspec's ``count`` (the pack then goes to the validator whole)."""
        try:
            items = _decode(raw, PACK_SCHEMA).get("readings")
        except Exception:
            return None
        return items if isinstance(items, list) and len(items) == count else None

    def _verdict(
        self,
        index: int,
        item: Any,
        raw: bytes,
        partition: int,
        offset: int,
        received_at: float,
        now: float,
    ) -> Incoming | Refused:
        """The validator's verdict on the pack's reading ``index`` (``item``, as the
        validator reads it): the reading placed, or its refusal."""
        checked = self.validator.packed_reading(index, item, now)
        if isinstance(checked, PackedError):
            return Refused(index, checked.raw(), checked.error)
        return place(checked, True, index, raw, partition, self._home, offset, received_at)

    def _make_many_packed(
        self,
        at: np.ndarray,
        times: np.ndarray,
        vals: np.ndarray,
        of_message: np.ndarray,
        in_pack: np.ndarray,
        received: Sequence[float],
        offsets: Sequence[int],
        places: list[int],
    ) -> list[Incoming]:
        """The readings at ``places`` of a batch of packs' columns, each as ``_pack``
        builds it, in one pass."""
        j = np.asarray(places, np.int64)
        regs = list(map(self._regs.__getitem__, at[j].tolist()))
        readings = map(
            Reading,
            times[j].tolist(),
            map(_SENSOR_ID, regs),
            map(_KIND, regs),
            vals[j].tolist(),
            map(_UNIT, regs),
            map(_CELL, regs),
        )
        message = of_message[j].tolist()
        return list(
            map(
                Incoming,
                readings,
                map(received.__getitem__, message),
                map(offsets.__getitem__, message),
                repeat(b""),
                in_pack[j].tolist(),
            )
        )

    def _make_many(
        self,
        at: np.ndarray,
        times: np.ndarray,
        vals: np.ndarray,
        received: Sequence[float],
        offsets: Sequence[int],
        raw: Sequence[bytes],
        places: list[int],
    ) -> list[Incoming]:
        """``_make`` of each of ``places``, in one pass (``_made``)."""
        j = np.asarray(places, np.int64)
        return self._made(
            at[j],
            times[j],
            vals[j],
            map(received.__getitem__, places),
            map(offsets.__getitem__, places),
            map(raw.__getitem__, places),
        )

    def _make(
        self,
        at: np.ndarray,
        times: np.ndarray,
        vals: np.ndarray,
        received: Sequence[float],
        offsets: Sequence[int],
        raw: Sequence[bytes],
        j: int,
    ) -> Incoming:
        """The ``j``-th admitted single reading of a batch's columns (``at``, ``times``,
        ``vals`` and the rest: the admitted ones'), as ``_made`` builds it."""
        reg = self._regs[at.item(j)]
        reading = Reading(times.item(j), reg[6], reg[0], vals.item(j), reg[2], reg[1])
        return Incoming(reading, received[j], offsets[j], raw[j], 0)

    def _made(
        self,
        at: np.ndarray,
        times: np.ndarray,
        vals: np.ndarray,
        received: Iterable[float],
        offsets: Iterable[int],
        raw: Iterable[bytes],
    ) -> list[Incoming]:
        """The admitted single readings, each with the registration's own strings
        (equal to the message's: detection's and the table's lookups then compare them
        by identity)."""
        regs = list(map(self._regs.__getitem__, at.tolist()))
        readings = map(
            Reading,
            times.tolist(),
            map(_SENSOR_ID, regs),
            map(_KIND, regs),
            vals.tolist(),
            map(_UNIT, regs),
            map(_CELL, regs),
        )
        return list(map(Incoming, readings, received, offsets, raw, repeat(0)))

    def _pack(
        self,
        row: WirePack,
        raw: bytes,
        partition: int,
        offset: int,
        received_at: float,
        now: float,
        place_in_batch: int,
        incoming: list[Incoming],
        refused: list[tuple[int, Refused]],
    ) -> bool:
        """Admit a decoded pack's readings into ``incoming`` and ``refused``; False (and
        nothing added) if the message must go to the validator whole. A packed reading
        that fails the fast check is validated on its own from the pack's JSON as the
        validator reads it."""
        readings = row.readings
        if row.schema != PACK_SCHEMA or not 0 < len(readings) <= MAX_PACK_READINGS:
            return False  # the validator names the fault (bad_schema, pack_too_large, ...)
        schemas = len(readings) - list(map(_SCHEMA, readings)).count(msgspec.UNSET)
        quotes = _PACK_QUOTES + _PACKED_QUOTES * len(readings) + 4 * schemas
        if not _once_each(raw, quotes):
            return False  # a key given twice: the validator names it, and where
        registered = self._registered
        newest = now + self.validator.max_future_skew
        admitted: list[Incoming] = []
        refusals: list[Refused] = []
        items: list[Any] | None = None
        # A pack's readings mostly share their clock tick: one parse per run of them.
        last_text, last_ts = "", None
        lookup, keep = registered.get, admitted.append
        for index, r in enumerate(readings):
            if _registered_here(r, lookup(r.sensor_id), partition):
                if r.ts != last_text:
                    last_text, last_ts = r.ts, _event_time(r.ts)
                ts = last_ts
                if ts is not None and MIN_EVENT_TIME <= ts <= newest:
                    reading = Reading(ts, r.sensor_id, r.kind, r.value, r.unit, r.grid_cell)
                    keep(Incoming(reading, received_at, offset, b"", index))
                    continue
            if items is None:
                # The pack as the validator reads it (orjson), for this reading's exact
                # refusal and dead-letter bytes; any disagreement sends it whole.
                items = self._validator_items(raw, len(readings))
                if items is None:
                    return False
            verdict = self._verdict(index, items[index], raw, partition, offset, received_at, now)
            if isinstance(verdict, Incoming):
                admitted.append(verdict)
            else:
                refusals.append(verdict)
        incoming.extend(admitted)
        if refusals:
            refusals = packed_as_sent(raw, len(readings), refusals)
        refused.extend((place_in_batch, r) for r in refusals)
        return True


def _merged(parts: list[tuple[np.ndarray, Admitted]]) -> Admitted:
    """The readings of several ``Admitted`` as one, ordered by their places in the batch
    (each part's ``np.ndarray``: a place per reading, ascending within the part; equal
    places, a pack's readings, stay in the part's order); an ``Incoming`` is built only
    when asked for, by its own part."""
    places = np.concatenate([place for place, _ in parts])
    order = np.argsort(places, kind="stable")
    sizes = [len(admitted) for _, admitted in parts]
    part_of = np.repeat(np.arange(len(parts)), sizes)[order]
    local = (np.arange(len(places)) - np.repeat(np.cumsum(sizes) - sizes, sizes))[order]
    ids = list(chain.from_iterable(admitted.sensor_ids for _, admitted in parts))

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(admitted, name) for _, admitted in parts])[order]

    def many(js: list[int]) -> list[Incoming]:
        j = np.asarray(js, np.int64)
        which, at = part_of[j].tolist(), local[j].tolist()
        out: list[Incoming | None] = [None] * len(js)
        for number, (_, admitted) in enumerate(parts):
            mine = [k for k, w in enumerate(which) if w == number]
            if mine:
                for k, item in zip(mine, admitted.many([at[k] for k in mine]), strict=True):
                    out[k] = item
        return cast(list[Incoming], out)

    return Admitted(
        list(map(ids.__getitem__, order.tolist())),
        column("ts"),
        column("values"),
        column("offsets"),
        column("in_pack"),
        partial(_built_alone, many),
        many,
    )


_PLACE = itemgetter(0)


def _built_alone(many: Callable[[list[int]], list[Incoming]], j: int) -> Incoming:
    """The ``j``-th reading by a builder of many (``Admitted``'s ``make`` from its
    ``make_many``)."""
    return many([j])[0]


def _or_none(decode: Callable[[bytes], Any], value: bytes) -> Any:
    """``decode(value)``, None if it raises (the other shape, or a fault the validator
    names)."""
    try:
        return decode(value)
    except Exception:
        return None


def _utf8(value: bytes) -> bool:
    """Whether ``value`` is UTF-8 text (as JSON must be, RFC 8259)."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _event_time(ts: str) -> float | None:
    """Epoch seconds of a wire timestamp, None where the validator must name the fault."""
    try:
        return _epoch(ts)
    except (ValueError, OverflowError):
        return None
