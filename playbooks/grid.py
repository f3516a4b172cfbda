"""The four-level grid of responsibility (city > district > street > community) as data.

Every cell names its parent and the unit responsible for it; sensors are registered to
community cells with a kind. Kinds are data too: each has a unit and a plausible range
(``DEFAULT_KINDS`` ship built in; a grid file may declare more, docs/events.md).
Escalation walks up this tree.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from playbooks.errors import GridError, closest, did_you_mean

# Lowest first: escalation moves to the next entry.
LEVELS: tuple[str, ...] = ("community", "street", "district", "city")
PARENT_LEVEL: dict[str, str] = {LEVELS[i]: LEVELS[i + 1] for i in range(len(LEVELS) - 1)}


# Kind ids are metric label values and matcher values: keep them plain.
KIND_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Alerts from bursts of citizen reports carry this kind; no sensor may use it.
RESERVED_KINDS = frozenset({"incident_burst"})


# The same unit spelled with the micro sign (U+00B5), Greek mu (U+03BC) or superscript
# digits, as sensor firmware and data sheets write it: "µg/m³" is ug/m3. A grid writes
# units plain (the loader refuses these); the ingest service reads a reading's unit so.
UNIT_SPELLING = str.maketrans({"\u00b5": "u", "\u03bc": "u", "\u00b3": "3", "\u00b2": "2"})


@dataclass(frozen=True, slots=True)
class SensorKind:
    """A kind of sensor: its canonical unit and the range of values it can plausibly
    report (inclusive; a reading outside it is dead-lettered as ``out_of_range``)."""

    id: str
    unit: str
    min: float
    max: float

    def plausible(self, value: float) -> bool:
        return self.min <= value <= self.max


# Ids (of incidents' reports and categories, and of the grid's sensors, cells and kinds)
# travel in every alert, step, audit record, log line and Kafka key about them: bounded, so
# no message built from them can outgrow the largest Kafka message (trial 8: twelve
# 120,000-character report ids made a 1.2 MB burst alert; t198: a grid took a sensor id of
# 1.1 MB, and every reading of it was too large to send).
MAX_ID_CHARS = 256

# The built-in kinds (every grid has them). Ranges are physical limits with a wide margin,
# not alert thresholds: they catch broken sensors and unit mix-ups (1e308, -5 km/h), and
# never real extremes (Beijing's 2016 fireworks reached 999 ug/m3 PM2.5; the largest
# river floods ~10^7 ft3/s; tidal gauges report negative discharge and water level).
DEFAULT_KINDS: dict[str, SensorKind] = {
    k.id: k
    for k in (
        SensorKind("traffic_speed", "km/h", 0.0, 400.0),
        SensorKind("traffic_flow", "vehicles/5min", 0.0, 10_000.0),
        SensorKind("travel_time", "s", 0.0, 86_400.0),
        SensorKind("pm25", "ug/m3", 0.0, 5_000.0),
        SensorKind("pm10", "ug/m3", 0.0, 10_000.0),
        SensorKind("no2", "ug/m3", 0.0, 5_000.0),
        SensorKind("o3", "ug/m3", 0.0, 5_000.0),
        SensorKind("water_level", "ft", -1_000.0, 1_000.0),
        SensorKind("discharge", "ft3/s", -10_000_000.0, 10_000_000.0),
        SensorKind("turbidity", "FNU", 0.0, 100_000.0),
        SensorKind("conductance", "uS/cm", 0.0, 1_000_000.0),
        SensorKind("power_load", "MW", -1_000_000.0, 1_000_000.0),
        SensorKind("parking_occupancy", "vehicles", 0.0, 1_000_000.0),
    )
}


@dataclass(frozen=True, slots=True)
class Cell:
    """A cell of the grid. ``lat``/``lon`` (WGS84 degrees) mark a point for it on a map;
    ``geometry`` is its boundary as a GeoJSON Polygon or MultiPolygon (lon, lat pairs).
    Both optional."""

    id: str
    level: str
    name: str
    unit: str
    parent: str | None
    lat: float | None = None
    lon: float | None = None
    geometry: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SensorRegistration:
    """A sensor registered to a community cell; ``lat``/``lon`` (WGS84 degrees) where
    it stands, when its source says."""

    id: str
    kind: str
    unit: str
    cell: str
    lat: float | None = None
    lon: float | None = None


@dataclass(slots=True)
class Grid:
    """Cells, sensors and sensor kinds by id; build with ``Grid.build`` to get every check."""

    cells: dict[str, Cell]
    sensors: dict[str, SensorRegistration] = field(default_factory=dict)
    kinds: dict[str, SensorKind] = field(default_factory=lambda: dict(DEFAULT_KINDS))
    # Built at the first unknown id of each (near_sensor, near_cell, near_kind): known
    # ones never pay for it.
    _near: dict[str, NearIds] = field(default_factory=dict, init=False, repr=False, compare=False)

    def near_sensor(self, given: str) -> str:
        """`` (did you mean 'usgs-01589330-water_level'?)`` for an unregistered sensor id
        near a registered one, else "" (also when this minute's lookups are spent:
        ``NearIds``). The tail of every ``unknown_sensor`` reason."""
        return self._hint("sensors", self.sensors, given)

    def near_cell(self, given: str) -> str:
        """`` (did you mean 'c-bridge'?)`` for a cell id near one of the grid's, else ""
        (``near_sensor``'s bounds): the tail of every ``unknown_cell`` reason."""
        return self._hint("cells", self.cells, given)

    def near_kind(self, given: str) -> str:
        """`` (did you mean 'water_level'?)`` for a kind near a declared one, else ""
        (``near_sensor``'s bounds): the tail of every ``unknown_kind`` reason."""
        return self._hint("kinds", self.kinds, given)

    def _hint(self, what: str, known: dict[str, Any], given: str) -> str:
        if what not in self._near:
            self._near[what] = NearIds(known)
        near = self._near[what].closest(given)
        return f" (did you mean {near!r}?)" if near is not None else ""

    @classmethod
    def build(
        cls,
        cells: list[Cell],
        sensors: list[SensorRegistration],
        kinds: list[SensorKind] | None = None,
        unchecked: frozenset[str] = frozenset(),
        indices: dict[str, list[int]] | None = None,
    ) -> Grid:
        """Check every cross-reference. ``kinds`` are declared on top of ``DEFAULT_KINDS``
        (a declared kind with a built-in id replaces it). Raises one ``GridError`` with
        every fault (``problems``: message and ``loc`` in the grid document each).
        ``unchecked``: ids of cells and kinds whose own entries were already refused; a
        reference to one of them is not reported again. ``indices``: for ``kinds``,
        ``cells`` and ``sensors``, each item's index in the document's list when the lists
        given leave some entries out (the ``loc`` of a fault then names the entry's own)."""
        problems: list[tuple[str, tuple[str | int, ...]]] = []

        def fail(message: str, loc: tuple[str | int, ...]) -> None:
            if indices and len(loc) >= 2 and isinstance(loc[1], int) and loc[0] in indices:
                loc = (loc[0], indices[str(loc[0])][loc[1]], *loc[2:])
            problems.append((message, loc))

        known = dict(DEFAULT_KINDS)
        declared: set[str] = set()
        for i, declared_kind in enumerate(kinds or []):
            try:
                _check_kind(declared_kind, i, declared)
            except GridError as exc:
                fail(str(exc), exc.loc)
                unchecked |= {declared_kind.id}
                continue
            declared.add(declared_kind.id)
            known[declared_kind.id] = declared_kind
        by_id: dict[str, Cell] = {}
        index: dict[str, int] = {}
        for i, cell in enumerate(cells):
            if cell.id in by_id:
                fail(f"cell {cell.id!r} is listed twice", ("cells", i, "id"))
                continue
            if cell.level not in LEVELS:
                fail(
                    f"cell {cell.id!r}: level is {cell.level!r}, expected one of "
                    f"{', '.join(LEVELS)}{did_you_mean(cell.level, LEVELS)}",
                    ("cells", i, "level"),
                )
            by_id[cell.id] = cell
            index[cell.id] = i
        # A grid of many thousand cells: each misspelt reference among its neighbours,
        # indexed at the first one (a valid grid never pays for it).
        near_cells: list[NearIds] = []

        def cell_hint(given: object) -> str:
            if not isinstance(given, str) or not given:
                return ""
            if not near_cells:
                near_cells.append(NearIds(by_id, per_minute=len(cells) + len(sensors)))
            near = near_cells[0].closest(given)
            return f" (did you mean {near!r}?)" if near is not None else ""

        for cell in by_id.values():
            i = index[cell.id]
            if cell.level not in LEVELS:
                continue  # reported above; its parent's level cannot be judged
            if cell.level == "city":
                if cell.parent is not None:
                    fail(f"cell {cell.id!r}: a city cell has no parent", ("cells", i, "parent"))
                continue
            if cell.parent in unchecked:
                continue
            if cell.parent is None or cell.parent not in by_id:
                fail(
                    f"cell {cell.id!r}: parent {cell.parent!r} is not a cell"
                    f"{cell_hint(cell.parent)}",
                    ("cells", i, "parent"),
                )
                continue
            parent_level = by_id[cell.parent].level
            if parent_level in LEVELS and parent_level != PARENT_LEVEL[cell.level]:
                fail(
                    f"cell {cell.id!r}: parent {cell.parent!r} is a {parent_level}, "
                    f"expected a {PARENT_LEVEL[cell.level]}",
                    ("cells", i, "parent"),
                )
        registered: dict[str, SensorRegistration] = {}
        for i, sensor in enumerate(sensors):
            if sensor.id in registered:
                first = registered[sensor.id]
                # Which registration a reading is judged by is not a guess to make.
                fail(
                    f"sensor {sensor.id!r} is registered twice: first as {first.kind} in "
                    f"cell {first.cell!r}, again as {sensor.kind} in cell {sensor.cell!r}",
                    ("sensors", i, "id"),
                )
                continue
            registered[sensor.id] = sensor
            if sensor.cell in unchecked:
                pass
            elif sensor.cell not in by_id:
                fail(
                    f"sensor {sensor.id!r}: cell {sensor.cell!r} is not a cell"
                    f"{cell_hint(sensor.cell)}",
                    ("sensors", i, "cell"),
                )
            elif by_id[sensor.cell].level in LEVELS and by_id[sensor.cell].level != "community":
                # (A cell with an unknown level is reported as such, once.)
                fail(
                    f"sensor {sensor.id!r}: cell {sensor.cell!r} is a "
                    f"{by_id[sensor.cell].level}, sensors register to community cells",
                    ("sensors", i, "cell"),
                )
            kind = known.get(sensor.kind)
            if sensor.kind in unchecked:
                continue
            if kind is None:
                fail(
                    f"sensor {sensor.id!r}: kind {sensor.kind!r} is not declared"
                    f"{did_you_mean(sensor.kind, known)} "
                    "(declare it under 'kinds' with its unit and plausible range)",
                    ("sensors", i, "kind"),
                )
            elif sensor.unit != kind.unit:
                fail(
                    f"sensor {sensor.id!r}: unit is {sensor.unit!r}, kind {kind.id} is "
                    f"measured in {kind.unit!r}",
                    ("sensors", i, "unit"),
                )
        if problems:
            raise GridError(problems[0][0], problems[0][1], problems)
        return cls(cells=by_id, sensors=registered, kinds=known)

    def cell(self, cell_id: str) -> Cell:
        try:
            return self.cells[cell_id]
        except KeyError:
            raise GridError(f"grid cell {cell_id!r} is not in the grid") from None

    def ancestor(self, cell_id: str, level: str) -> Cell:
        """The cell at ``level`` that contains ``cell_id`` (the cell itself at its own level)."""
        if level not in LEVELS:
            raise GridError(
                f"level is {level!r}, expected one of {', '.join(LEVELS)}"
                f"{did_you_mean(level, LEVELS)}"
            )
        cell = self.cell(cell_id)
        while cell.level != level:
            if cell.parent is None:
                raise GridError(f"grid cell {cell_id!r} has no ancestor at level {level!r}")
            cell = self.cells[cell.parent]
        return cell

    def responsible_unit(self, cell_id: str, level: str) -> str:
        return self.ancestor(cell_id, level).unit

    def cell_labels(self, cell_id: str) -> dict[str, str]:
        """The labels a worker puts on every alert at ``cell_id``: ``grid_cell`` and the
        ids of the cell and its ancestors by level (community, street, district, city).
        Raises GridError for a cell that is not in the grid."""
        return {"grid_cell": cell_id, **self.path(cell_id)}

    def path(self, cell_id: str) -> dict[str, str]:
        """Ids of the cell and its ancestors by level, e.g. ``{"community": .., "city": ..}``."""
        out: dict[str, str] = {}
        cell: Cell | None = self.cell(cell_id)
        while cell is not None:
            out[cell.level] = cell.id
            cell = self.cells[cell.parent] if cell.parent else None
        return out


# An unknown id (a sensor's, a cell's) is compared with this many known ids on each side of it in
# two orders (the ids sorted, and sorted by their reversed text), so a typo near either
# end finds its id among a city's 100,000 in about a millisecond, not a whole scan (80 ms
# per 10,000 ids with difflib).
NEAR_ID_NEIGHBOURS = 48
# Fresh lookups per minute and answers kept: a flood of unknown ids (a fleet on the wrong
# grid) costs at most this many lookups a minute; past it a reason has no suggestion.
NEAR_ID_PER_MINUTE = 64
NEAR_ID_CACHE = 1024
# An unknown id is looked up by its first (this many times the longest known id's length)
# characters only: difflib's ratio (cutoff 0.6) needs the two lengths within 2.33 times
# of each other, so no known id is close to a longer text, and the known ids it starts
# with (the prefix rule) are still its neighbours in the sorted ids. A megabyte-long id
# cost a third of a second a lookup, and the cache kept each one whole (t80).
NEAR_ID_LENGTH_FACTOR = 3


class NearIds:
    """The known id (a registered sensor's, a cell's) an unknown one most likely
    misspells, at bounded cost.

    ``closest(given)`` compares ``given`` (case ignored) with the ``NEAR_ID_NEIGHBOURS``
    ids on each side of it in the sorted ids and in the ids sorted by their reversed
    text, with ``playbooks.errors.closest``. Answers (None too) are cached, the last
    ``NEAR_ID_CACHE``; at most ``per_minute`` fresh lookups run per minute of
    ``clock`` (seconds), after which ``closest`` answers None until the minute is over.
    Only the first ``NEAR_ID_LENGTH_FACTOR`` times the longest known id's length of
    ``given`` is read (and kept): the cost and the cache are bounded whatever
    ``given``'s length."""

    def __init__(
        self,
        known: Iterable[str],
        per_minute: int = NEAR_ID_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ids = sorted(set(known), key=str.casefold)
        self._ids = ids
        self._keys = [i.casefold() for i in ids]
        tails = sorted((i.casefold()[::-1], i) for i in ids)
        self._tail_keys = [t for t, _ in tails]
        self._tail_ids = [i for _, i in tails]
        self._per_minute = per_minute
        self._clock = clock
        self._minute = -1.0
        self._spent = 0
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self._longest = NEAR_ID_LENGTH_FACTOR * max(map(len, self._keys), default=0) + 1

    def closest(self, given: str) -> str | None:
        """The known id ``given`` most likely misspells, None when none is close or this
        minute's lookups are spent."""
        given = given[: self._longest]  # NEAR_ID_LENGTH_FACTOR: cost and cache bounded
        if given in self._cache:
            self._cache.move_to_end(given)
            return self._cache[given]
        now = self._clock()
        if now - self._minute >= 60.0:
            self._minute, self._spent = now, 0
        if self._spent >= self._per_minute:
            return None
        self._spent += 1
        text = given.casefold()
        n = NEAR_ID_NEIGHBOURS
        at = bisect.bisect_left(self._keys, text)
        candidates = self._ids[max(0, at - n) : at + n]
        at = bisect.bisect_left(self._tail_keys, text[::-1])
        candidates += self._tail_ids[max(0, at - n) : at + n]
        near = closest(given, candidates)
        self._cache[given] = near if isinstance(near, str) else None
        if len(self._cache) > NEAR_ID_CACHE:
            self._cache.popitem(last=False)
        return self._cache[given]


def _check_kind(kind: SensorKind, i: int, declared: set[str]) -> None:
    if not KIND_ID.match(kind.id):
        raise GridError(
            f"kind {kind.id!r}: expected lower-case letters, digits and _ (at most 64)",
            ("kinds", i, "id"),
        )
    if kind.id in RESERVED_KINDS:
        raise GridError(f"kind {kind.id!r} is reserved for alerts", ("kinds", i, "id"))
    if kind.id in declared:
        raise GridError(f"kind {kind.id!r} is declared twice", ("kinds", i, "id"))
    if not kind.unit:
        raise GridError(f"kind {kind.id!r}: unit is empty", ("kinds", i, "unit"))
    for bound in ("min", "max"):
        if not math.isfinite(getattr(kind, bound)):
            raise GridError(
                f"kind {kind.id!r}: {bound} is {getattr(kind, bound)!r}, expected a finite number",
                ("kinds", i, bound),
            )
    if kind.min > kind.max:
        raise GridError(
            f"kind {kind.id!r}: min {kind.min:g} is above max {kind.max:g}", ("kinds", i, "min")
        )
    if kind.min == kind.max:
        # One value only: every reading that varies at all would be out_of_range.
        raise GridError(
            f"kind {kind.id!r}: min and max are both {kind.min:g}, expected min below max",
            ("kinds", i, "max"),
        )


def grid_summary(old: Grid, new: Grid) -> tuple[str, frozenset[str]]:
    """What ``new`` adds and drops against ``old``, as a reload says it (``grid: cells 0
    added, 1 removed, sensors 2 added, 0 removed, kinds 0 added, 0 removed``), and the
    cell ids it drops. Pure; any thread."""
    parts = [
        f"{what} {len(b.keys() - a.keys())} added, {len(a.keys() - b.keys())} removed"
        for what, a, b in (
            ("cells", old.cells, new.cells),
            ("sensors", old.sensors, new.sensors),
            ("kinds", old.kinds, new.kinds),
        )
    ]
    return f"grid: {', '.join(parts)}", frozenset(old.cells.keys() - new.cells.keys())
