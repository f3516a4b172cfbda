"""Broken sensor or real event? Neighbour corroboration for an alert (issue 13 item 5).

A real event (a flood, haze, fireworks) shows on more than one instrument; a broken
sensor shows on one. When a sensor alerts, its *neighbours* are asked whether they were
anomalous too within ``window`` seconds:

- the instruments at the same site (same community cell, any kind: a gauge's stage and
  discharge watch the same water), and
- sensors of the same kind in the smallest enclosing area that holds any: the street,
  else the district, else the city (Beijing's stations are one per district; a haze or
  the fireworks cover the city).

An alert with at least one anomalous neighbour is ``corroborated`` (with the count of
neighbours that agree); one that stands alone is ``isolated`` and is routed as a
suspected sensor fault unless its own score is decisive (``decisive``: with the tail
detector, 0.9 is a reading rarer than one in 10^7 for that sensor). A far glitch (a
sentinel such as 1e308 or DBL_MAX, no measurement: ``far``, the alert's ``reading``
label) scores 1 but is never decisive: alone, it is a suspected sensor fault. A neighbour counts
as anomalous at a lower bar than an alert (``agree``, default 0.2: rarer than about one
in 40 for it), and by its rarity (the tail detector's score before its novelty gate: a
station still high from its own first alert of the day is not news, but it is anomalous):
the alert itself is already established, the neighbour only has to lean the same way.

Only a *witness* counts (``witness``, t199): a neighbour whose readings are the alert's
own to the digit (one device under two ids, a failing gateway's sensors all at 0), one
stuck on one value, and one that is itself a suspected fault near the alert or again
and again lately are no witnesses.

Pure: no Kafka; the grid comes from ``playbooks.grid``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from playbooks.grid import Grid
from streams.context import embedded_alert
from streams.detection import FAR_GLITCH, READING_LABEL
from streams.errors import MISSING, EventError
from streams.events import (
    MIN_EVENT_TIME,
    alert_time,
    epoch_seconds_fault,
    lookalike_key,
    lookalike_key_error,
    refuse_alert_ahead,
)

AREA_LEVELS = ("street", "district", "city")


@dataclass(frozen=True, slots=True)
class Corroboration:
    """``label`` is ``corroborated`` or ``isolated``; ``count`` the neighbours that
    agree; ``route`` is ``event`` or ``suspected_sensor_fault``."""

    label: str
    count: int
    route: str


def neighbours(grid: Grid, sensor_id: str) -> set[str]:
    """The sensors whose anomalies corroborate ``sensor_id``'s (module docstring);
    raises GridError for a sensor or cell not in the grid."""
    me = grid.sensors[sensor_id]
    out = {s.id for s in grid.sensors.values() if s.cell == me.cell and s.id != sensor_id}
    same_kind = [s for s in grid.sensors.values() if s.kind == me.kind and s.id != sensor_id]
    path = grid.path(me.cell)
    for level in AREA_LEVELS:
        if level not in path:
            continue
        area = [s.id for s in same_kind if grid.path(s.cell).get(level) == path[level]]
        if area:
            return out | set(area)
    return out


def corroborate(
    sensor_id: str,
    at: float,
    score: float,
    anomalous: Mapping[str, Sequence[float]],
    grid: Grid,
    window: float = 3600.0,
    decisive: float = 0.9,
    far: bool = False,
) -> Corroboration:
    """Label an alert of ``sensor_id`` at ``at`` (seconds) scoring ``score``, given each
    sensor's sorted times of anomalous readings (``anomalous``); ``far``: the alert
    opened on a far glitch, which no score makes decisive (``is_decisive``)."""
    count = 0
    for other in sorted(neighbours(grid, sensor_id)):
        times = anomalous.get(other, ())
        i = bisect.bisect_left(times, at - window)
        if i < len(times) and times[i] <= at + window:
            count += 1
    if count:
        return Corroboration("corroborated", count, "event")
    route = "event" if is_decisive(score, far, decisive) else "suspected_sensor_fault"
    return Corroboration("isolated", 0, route)


def is_decisive(score: float, far: bool, decisive: float) -> bool:
    """Whether a lone alert scoring ``score`` routes as an event on its own: its score at
    the ``decisive`` bar, and not a far glitch (``far``: a reading further from its
    series than a million spreads and levels, ``detectors.base.far_glitch``). A glitch
    scores 1 under every detector (it is anomalous), but a 1e308 sentinel is no
    measurement: until t175 a lone one was decisive and went to the kind's playbook (a
    gauge's to ``flash-flood``) at once, where a control room needs ``sensor-check``."""
    return score >= decisive and not far


def far_glitch_alert(alert: Mapping[str, Any]) -> bool:
    """Whether ``alert`` (``alert/1``) opened on a far glitch: its ``reading`` label
    (``streams.detection.READING_LABEL``) is ``far_glitch``."""
    labels = alert.get("labels")
    return isinstance(labels, Mapping) and labels.get(READING_LABEL) == FAR_GLITCH


# -- the live stage's pure parts (wired by streams/corroborating.py) --------------------

LABEL = "corroboration"  # alert label: corroborated | isolated
COUNT_LABEL = "neighbours_agreeing"  # alert label: the count, as a string
ASSESSMENT_LABEL = "assessment"  # alert label: event | suspected_sensor_fault


class Areas:
    """Where each sensor's corroboration happens: one Kafka key per *area*, so an alert
    and the anomaly marks of all its neighbours meet on one partition.

    A sensor's area is the area ``neighbours`` takes its same-kind neighbours from (the
    street, district or city holding another sensor of its kind), else its own cell
    (only its site-mates can agree). Its marks go to every area that holds a sensor
    counting it as a neighbour (``mark_areas``): its own, its site-mates', and each
    enclosing area some sensor of its kind corroborates in. Built once from the grid in
    O(sensors x levels); ``is_neighbour`` is O(1) and agrees with ``neighbours``.
    """

    def __init__(self, grid: Grid):
        paths = {cell: grid.path(cell) for cell in {s.cell for s in grid.sensors.values()}}
        same_kind: dict[tuple[str, str, str], int] = {}
        for s in grid.sensors.values():
            for level in AREA_LEVELS:
                area = paths[s.cell].get(level)
                if area is not None:
                    key = (s.kind, level, area)
                    same_kind[key] = same_kind.get(key, 0) + 1
        self._kind: dict[str, str] = {}
        self._cell: dict[str, str] = {}
        self._level: dict[str, str | None] = {}  # the level of a sensor's same-kind area
        self._area: dict[str, str] = {}
        self._paths = paths
        used: set[tuple[str, str, str]] = set()  # (kind, level, area) some sensor uses
        site: dict[str, list[str]] = {}
        for s in grid.sensors.values():
            self._kind[s.id], self._cell[s.id] = s.kind, s.cell
            site.setdefault(s.cell, []).append(s.id)
            path = paths[s.cell]
            chosen = next(
                (lv for lv in AREA_LEVELS if lv in path and same_kind[(s.kind, lv, path[lv])] >= 2),
                None,
            )
            self._level[s.id] = chosen
            self._area[s.id] = s.cell if chosen is None else path[chosen]
            if chosen is not None:
                used.add((s.kind, chosen, path[chosen]))
        # The areas of each site's sensors once per site: per sensor it was quadratic in
        # a site's size (20,000 sensors at one site: 400 million lookups at start-up).
        site_areas = {cell: {self._area[m] for m in ids} for cell, ids in site.items()}
        self._marks_to: dict[str, tuple[str, ...]] = {}
        for s in grid.sensors.values():
            path = paths[s.cell]
            to = {self._area[s.id], *site_areas[s.cell]}
            to.update(path[lv] for lv in AREA_LEVELS if (s.kind, lv, path.get(lv, "")) in used)
            self._marks_to[s.id] = tuple(sorted(to))

    def area(self, sensor_id: str) -> str:
        """The area (a cell id) where ``sensor_id``'s alerts are corroborated; KeyError
        for a sensor not in the grid."""
        return self._area[sensor_id]

    def mark_areas(self, sensor_id: str) -> tuple[str, ...]:
        """Every area that needs ``sensor_id``'s anomaly marks; KeyError if unknown."""
        return self._marks_to[sensor_id]

    def is_neighbour(self, sensor_id: str, other: str) -> bool:
        """Whether ``other``'s anomalies corroborate ``sensor_id``'s (``neighbours``);
        False for an unknown sensor."""
        if other == sensor_id or other not in self._cell or sensor_id not in self._cell:
            return False
        if self._cell[other] == self._cell[sensor_id]:
            return True
        level = self._level[sensor_id]
        return (
            level is not None
            and self._kind[other] == self._kind[sensor_id]
            and self._paths[self._cell[other]].get(level) == self._area[sensor_id]
        )


class MarkThinner:
    """At most one anomaly mark per sensor per ``spacing`` seconds of event time, so the
    marks a stuck-high sensor sends stay bounded (``spacing`` well under the window,
    so a thinned mark still falls inside it). Per worker, in memory: a restart forgets
    it and sends a few marks again, which the area log takes idempotently."""

    def __init__(self, spacing: float):
        self.spacing = spacing
        self._last: dict[str, float] = {}

    def admit(self, sensor_id: str, ts: float) -> bool:
        last = self._last.get(sensor_id)
        if last is not None and last <= ts < last + self.spacing:
            return False
        self._last[sensor_id] = ts
        return True


@dataclass(frozen=True, slots=True)
class Policy:
    """``window``: seconds (event time) within which a neighbour's mark agrees;
    ``decisive``: a score that routes as an event on its own and is never held (a far
    glitch's never does, ``is_decisive``);
    ``grace``: wall-clock seconds a lone, non-decisive alert waits for a neighbour's
    mark before it goes on ``isolated`` (0: never held); ``keep_labels``: how many
    forwarded alerts an area remembers (their labels are reused for their ``resolved``);
    ``keep_marks``: how many of a sensor's marks an area keeps, its newest by event time
    (145: a day of a stuck-high sensor's marks, thinned to one per window/6);
    ``suspect_repeats``: how many alerts forwarded as suspected sensor faults within
    ``suspect_lately`` seconds (event time) before an alert make a sensor no witness for
    it (a flapping or failing sensor, ``witness``); ``keep_suspects``: how many of those
    alerts' start times an area keeps per sensor; ``flatline``: how many marks within the
    window, every one the same value, make a neighbour stuck, no witness."""

    window: float = 3600.0
    decisive: float = 0.9
    grace: float = 30.0
    keep_labels: int = 1000
    keep_marks: int = 145
    suspect_repeats: int = 3
    suspect_lately: float = 86_400.0
    keep_suspects: int = 16
    flatline: int = 3


# The fields of the corroboration topic's messages, a mark's and an alert's together.
_MESSAGE_KEYS = frozenset({"type", "sensor_id", "ts", "score", "value", "alert"})


def checked_message(message: Any, now: float, ahead: float) -> dict[str, Any]:
    """A message of the corroboration topic, checked before it touches an area's state:
    a mark ``{"type": "mark", "sensor_id", "ts", "score", "value"}`` (``sensor_id``
    non-empty text, ``ts`` epoch seconds from 1990 to ``ahead`` seconds past ``now``, the
    bounds of a reading's event time; ``score`` a number in [0, 1]; ``value`` the
    reading's value, a finite number, absent or null from a worker before t199), a
    suspect note ``{"type": "suspect", "sensor_id", "ts"}`` (its alert's start, checked as
    a mark's; ``suspect_notes``) or
    ``{"type": "alert", "alert": …}`` (an alert as the alerts agent reads one,
    ``alert_fields``, with its labels text, a ``sensor_id``, a ``started_at`` and a
    ``score`` in [0, 1]). Raises ``EventError``
    naming the field and value: ``processing_error`` for a message of another type,
    ``bad_mark``, ``bad_alert`` (also for a key that looks like a field without being
    it, ``lookalike_key``). Checked here because the area's state keeps what it is
    given (helper t52): a mark at 1e308, or in the year 9999, pruned every real mark of
    its sensor for good (its marks are kept by their newest); a score of NaN (or 1e400,
    read as infinity) was stored as null, and the area's state, with every alert it
    held, was then unreadable; labels of another shape failed every release of the
    area's held alerts."""
    kind = message.get("type", MISSING) if isinstance(message, dict) else MISSING
    if isinstance(message, dict):
        # A key that looks like a field without being it ("Score", "t\u200bs") was
        # ignored: the field said missing with nothing naming the key sent (t99).
        odd = lookalike_key(message, _MESSAGE_KEYS)
        if odd is not None:
            code = {"mark": "bad_mark", "suspect": "bad_mark", "alert": "bad_alert"}.get(
                str(kind), "processing_error"
            )
            raise lookalike_key_error(message, *odd, code=code)
    if kind not in ("mark", "suspect", "alert"):
        # Not the worker's own: said without a traceback, as any bad input is.
        raise EventError(
            "processing_error",
            "type",
            kind,
            "expected an object whose type is mark, suspect or alert",
        )
    if kind in ("mark", "suspect"):
        sensor = message.get("sensor_id", MISSING)
        if not isinstance(sensor, str) or not sensor:
            raise EventError("bad_mark", "sensor_id", sensor, "expected a non-empty string")
        ts = message.get("ts", MISSING)
        fault = epoch_seconds_fault(ts)
        if fault is None and not MIN_EVENT_TIME <= ts <= now + ahead:
            fault = f"expected a reading's event time, from 1990 to {ahead:g} s past the clock"
        if fault is not None:
            raise EventError("bad_mark", "ts", ts, fault)
        if kind == "suspect":
            return cast(dict[str, Any], message)
        _check_score("bad_mark", "score", message.get("score", MISSING))
        value = message.get("value")
        if value is not None and not _finite(value):
            raise EventError("bad_mark", "value", value, "expected the reading's value, a number")
        return cast(dict[str, Any], message)
    # Its times as the alerts door writes them on (``alert_times_utc``): the area holds
    # it, then forwards it to the alerts topic.
    # Earlier workers' spellings taken (t146); one ending before it starts still refused
    # here, since the alerts door it is forwarded to refuses it (t139).
    alert = embedded_alert(message.get("alert", MISSING), "bad_alert", ordered=True)
    if alert is not message.get("alert"):
        message = {**message, "alert": alert}
    refuse_alert_ahead(alert, now, ahead, "bad_alert", at="alert.")
    sensor = alert.get("sensor_id")
    if not isinstance(sensor, str) or not sensor:
        raise EventError("bad_alert", "alert.sensor_id", sensor, "expected a sensor's id")
    if alert.get("started_at") is None:
        value = alert.get("started_at", MISSING)
        raise EventError("bad_alert", "alert.started_at", value, "expected when it started")
    _check_score("bad_alert", "alert.score", alert.get("score", MISSING))
    return cast(dict[str, Any], message)


def _finite(value: Any) -> bool:
    """A number a reading's value can be: not a bool, NaN or infinite, nor a JSON integer
    past a double (10**400, which ``float`` cannot take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _reading(alert: Mapping[str, Any]) -> float | None:
    """An alert's reading (its ``value``) as a number, None when it has none."""
    value: Any = alert.get("value")
    return float(value) if _finite(value) else None


def _check_score(code: str, field: str, score: Any) -> None:
    # A JSON integer past a double (10**400) is compared as given, never made a float.
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise EventError(code, field, score, "expected a score from 0 to 1")


def new_area_state() -> dict[str, Any]:
    """An area's stored state (JSON): recent marks by sensor (sorted event times), alerts
    held for the grace period (``{alert_id: {"alert": doc, "held_at": wall seconds}}``,
    plus ``"resolved": doc`` once the episode closed),
    the labels given to forwarded, unresolved alerts, and the newest mark time; since
    t199 also each mark's reading value (``values``: by sensor, aligned with its
    ``marks``, null where unknown) and the start times of each sensor's alerts forwarded
    as suspected sensor faults (``suspects``: by sensor, sorted, its newest
    ``Policy.keep_suspects``). A state stored before t199 has neither: its values are
    unknown and its sensors no suspects."""
    return {"marks": {}, "held": {}, "labelled": {}, "newest": None, "values": {}, "suspects": {}}


def assess(
    sensor_id: str,
    at: float,
    score: float,
    marks: Mapping[str, Sequence[float]],
    areas: Areas,
    policy: Policy,
    far: bool = False,
    value: float | None = None,
    state: Mapping[str, Any] | None = None,
) -> Corroboration:
    """``corroborate`` over an area's marks with the O(1) neighbour test of ``areas``,
    counting only the neighbours that are witnesses (``witness``): ``value`` is the
    alert's reading (None: unknown), ``state`` the area's state, whose mark values and
    suspects it reads (None: no values, no suspects, as before t199)."""
    count = 0
    # The alert's sensor's known readings, made once for all its neighbours.
    known = None if state is None else _known_readings(sensor_id, at, value, state, policy)
    for other, times in marks.items():
        if areas.is_neighbour(sensor_id, other) and witness(
            sensor_id, at, value, other, times, state, policy, known
        ):
            count += 1
    if count:
        return Corroboration("corroborated", count, "event")
    route = "event" if is_decisive(score, far, policy.decisive) else "suspected_sensor_fault"
    return Corroboration("isolated", 0, route)


def witness(
    sensor_id: str,
    at: float,
    value: float | None,
    other: str,
    times: Sequence[float],
    state: Mapping[str, Any] | None,
    policy: Policy,
    known: dict[float, float] | None = None,
) -> bool:
    """Whether neighbour ``other``, marked at ``times`` (sorted event times), is a witness
    for ``sensor_id``'s alert at ``at`` whose reading was ``value``. Work: O(log marks +
    marks within the window) of the two sensors; ``known``, ``sensor_id``'s readings
    the area knows within the window (``_known_readings``), made here when not given: a
    caller asking about many neighbours of one alert makes it once (``assess``; t208:
    made per neighbour, an alert among 2,000 neighbours read its own marks 2,000
    times). Not a witness (t199):

    - no mark within ``policy.window`` of ``at``;
    - **a copy**: every mark of ``other`` at a time ``sensor_id``'s reading is known (its
      marks, the alert's own reading) carries the same value, and there is one; or, at
      ``COPY_POINTS`` or more such times, the same values at one scale, each rounded as
      written (``scaled_copy``: one device sent in two units or precisions). Identical
      readings from two ids are one witness, not two: one device registered under two
      ids, or two sensors of one failing gateway both dropping to exactly 0 at once,
      labelled each other ``corroborated`` and paged a street unit for a real event.
      Two real instruments agree on the trend, not to the last digit at every shared
      time (Beijing's stations, reading whole µg/m³, never did within an hour);
    - **stuck**: ``policy.flatline`` or more marks within the window, every one the same
      value (a sensor stuck on one anomalous value leans no way);
    - **a suspected fault**: an alert of ``other`` forwarded as a suspected sensor fault
      started within the window of ``at``, or ``policy.suspect_repeats`` of them within
      ``policy.suspect_lately`` before ``at`` (a sensor isolated again and again).

    A mark whose value is unknown (from a worker before t199) is taken as before: it
    is no copy and no flatline."""
    lo = bisect.bisect_left(times, at - policy.window)
    hi = bisect.bisect_right(times, at + policy.window)
    if lo >= hi:
        return False
    if state is None:
        return True
    suspect = state.get("suspects", {}).get(other)
    if suspect:
        near = bisect.bisect_left(suspect, at - policy.window)
        if near < len(suspect) and suspect[near] <= at + policy.window:
            return False
        lately = bisect.bisect_right(suspect, at) - bisect.bisect_left(
            suspect, at - policy.suspect_lately
        )
        if lately >= policy.suspect_repeats:
            return False
    theirs = state.get("values", {}).get(other)
    if theirs is None or len(theirs) != len(times):
        return True
    seen = theirs[lo:hi]
    if any(v is None for v in seen):
        return True
    if hi - lo >= policy.flatline and len(set(seen)) == 1:
        return False
    mine = _known_readings(sensor_id, at, value, state, policy) if known is None else known
    shared = [(v, mine[t]) for t, v in zip(times[lo:hi], seen, strict=True) if t in mine]
    if not shared:
        return True
    if all(v == m for v, m in shared):
        return False
    return not scaled_copy(shared)


# Shared times a scaled or rounded copy needs (``scaled_copy``), and how many distinct
# readings of the alerting sensor among them: one pair fits some scale whatever the two
# readings are, two pairs of one reading likewise; three with two readings pin it.
COPY_POINTS = 3
# A scale fitted to a product is off by an ulp or two of it (``scaled_copy``).
_SCALE_SLACK = 1e-12


def half_unit(x: float) -> float:
    """Half the unit of ``x``'s last digit as the shortest text that reads back as it
    (``repr``): 12.3 -> 0.05, 300.0 (whole) -> 0.5, 1.5e-07 -> 5e-09; so its value lies
    within that of what its producer measured, whatever it rounded to."""
    text = repr(float(x)).lstrip("-")
    mantissa, _, exponent = text.partition("e")
    _, _, decimals = mantissa.partition(".")
    # (A whole number's unit is taken as one: 300 may be rounded to tens, but a
    # tighter unit only makes a copy less likely to be told, never a witness lost.)
    digits = len(decimals.rstrip("0"))
    return 0.5 * 10.0 ** (int(exponent or 0) - digits)


def scaled_copy(shared: Sequence[tuple[float, float]]) -> bool:
    """Whether a neighbour's readings (``shared``: (its value, the alerting sensor's) at
    the times both are known) are the alerting sensor's times one scale, each rounded
    as written (``half_unit``): one device under two ids whose gateways send it in two
    units (ft and m, degrees and tenths) or to two precisions (t206: only a copy to the
    digit was told, so a rounded or scaled copy counted as a second witness). At least
    ``COPY_POINTS`` shared times with two distinct readings of the alerting sensor; a
    zero pairs only with a zero (no scale makes a reading of it), opposite signs never.
    Two real instruments lean the same way, not in one ratio to within their last digit
    at every shared time. O(len(shared))."""
    if len(shared) < COPY_POINTS or len({m for _, m in shared}) < 2:
        return False
    low, high = 0.0, math.inf
    for v, m in shared:
        hv, hm = half_unit(v), half_unit(m)
        v_zero, m_zero = abs(v) <= hv, abs(m) <= hm
        if v_zero and m_zero:
            continue
        if v_zero or m_zero or (v > 0) != (m > 0):
            return False
        av, am = abs(v), abs(m)
        # The true readings t_v, t_m within a half unit of each; t_v = k * t_m.
        low = max(low, (av - hv) / (am + hm) * (1 - _SCALE_SLACK))
        high = min(high, (av + hv) / (am - hm) * (1 + _SCALE_SLACK))
        if low > high:
            return False
    return True


def _known_readings(
    sensor_id: str, at: float, value: float | None, state: Mapping[str, Any], policy: Policy
) -> dict[float, float]:
    """``sensor_id``'s readings the area knows within the window of ``at``: its marks'
    values and the alert's own reading (``value``), by event time."""
    out: dict[float, float] = {}
    times = state.get("marks", {}).get(sensor_id, ())
    values = state.get("values", {}).get(sensor_id)
    if values is not None and len(values) == len(times):
        lo = bisect.bisect_left(times, at - policy.window)
        hi = bisect.bisect_right(times, at + policy.window)
        pairs = zip(times[lo:hi], values[lo:hi], strict=True)
        out.update((t, v) for t, v in pairs if v is not None)
    if value is not None:
        out[at] = value
    return out


def labelled(alert: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """The alert document with the corroboration labels added (id and all else kept)."""
    return {**alert, "labels": {**alert.get("labels", {}), **labels}}


def labels_for(c: Corroboration) -> dict[str, str]:
    return {LABEL: c.label, COUNT_LABEL: str(c.count), ASSESSMENT_LABEL: c.route}


def _assess_alert(
    alert: Mapping[str, Any], state: dict[str, Any], areas: Areas, policy: Policy
) -> Corroboration:
    at = alert_time(alert["started_at"], "started_at", stored=True)
    score = float(alert["score"])
    far = far_glitch_alert(alert)
    # A resolution's value is its episode's peak, not its reading at ``started_at``: only
    # a firing alert's is paired with its neighbours' readings at that time.
    value = _reading(alert) if alert.get("status") == "firing" else None
    return assess(alert["sensor_id"], at, score, state["marks"], areas, policy, far, value, state)


def on_mark(
    state: dict[str, Any],
    sensor_id: str,
    ts: float,
    now: float,
    areas: Areas,
    policy: Policy,
    value: float | None = None,
) -> list[dict[str, Any]]:
    """Record a mark (idempotent; ``value``: its reading's, None if unknown) and return the
    held alerts it corroborates, labelled and removed from the hold, in the order they
    were held.

    Work per mark: O(held alerts x the two sensors' marks in the window), and a full
    count (O(the area's sensors)) only for an alert it releases. Before t199 each held
    alert the mark's sensor neighbours was counted afresh over every sensor of the area:
    a city-wide area of 2,000 sensors holding 50 alerts cost 100,000 neighbour tests per
    mark (``bench/corroboration_marks.py``). Only this mark's sensor can have turned
    a held alert corroborated (the alert's own sensor's marks can turn a neighbour from
    a copy into a witness: the release at the grace's end counts it)."""
    record_mark(state, sensor_id, ts, policy, value)
    out = []
    for alert_id, held in list(state["held"].items()):
        alert = held["alert"]
        if not areas.is_neighbour(alert["sensor_id"], sensor_id):
            continue
        at = alert_time(alert["started_at"], "started_at", stored=True)
        if not at - policy.window <= ts <= at + policy.window:
            continue  # a mark outside the alert's window agrees with nothing of it
        mine = _reading(alert)
        times = state["marks"][sensor_id]
        if not witness(alert["sensor_id"], at, mine, sensor_id, times, state, policy):
            continue
        c = _assess_alert(alert, state, areas, policy)
        if c.label == "corroborated":
            out += _forward(state, alert_id, alert, c, policy)
    return out


def record_mark(
    state: dict[str, Any], sensor_id: str, ts: float, policy: Policy, value: float | None = None
) -> None:
    """Add a mark at ``ts`` (event time, s) to ``sensor_id``'s in an area's ``state``
    (idempotent), with its reading's ``value`` (None: unknown; ``values``, aligned with
    the marks), keeping its newest ``policy.keep_marks``; nothing else of the state
    changes, and nothing raises for a state of ``new_area_state``'s shape (one stored
    before t199 gains its ``values``, the earlier marks' unknown)."""
    times: list[float] = state["marks"].setdefault(sensor_id, [])
    all_values: dict[str, list[float | None]] = state.setdefault("values", {})
    values = all_values.get(sensor_id)
    if values is None or len(values) != len(times):
        values = all_values[sensor_id] = [None] * len(times)
    i = bisect.bisect_left(times, ts)
    if i == len(times) or times[i] != ts:
        times.insert(i, ts)
        values.insert(i, value)
    elif values[i] is None:
        values[i] = value
    # Bounded by count, not by event time: in a catch-up one partition runs days of event
    # time ahead of another within a second, and a horizon (the area's newest mark until
    # t75, then a day before the sensor's own) dropped a leading neighbour's marks before a
    # lagging alert reached the area, so its label hung on how far the partitions were
    # apart at that moment: the demo's Beijing alerts of 2016-02-07 came out isolated or
    # corroborated from run to run, and a frozen Kafka or worker shifted them (t108).
    drop = max(0, len(times) - policy.keep_marks)
    del times[:drop], values[:drop]
    state["newest"] = times[-1] if state["newest"] is None else max(state["newest"], times[-1])


def record_suspect(state: dict[str, Any], sensor_id: str, at: float, policy: Policy) -> None:
    """Record that ``sensor_id``'s alert starting at ``at`` (event time, s) went on as a
    suspected sensor fault (idempotent), keeping its newest ``policy.keep_suspects``."""
    mine: list[float] = state.setdefault("suspects", {}).setdefault(sensor_id, [])
    if at not in mine:
        bisect.insort(mine, at)
        del mine[: max(0, len(mine) - policy.keep_suspects)]


def suspect_notes(
    out: Sequence[Mapping[str, Any]], area: str, areas: Areas
) -> list[tuple[str, dict[str, Any]]]:
    """``(area, {"type": "suspect", "sensor_id", "ts"})`` for each firing alert of ``out``
    (forwarded from ``area``) labelled a suspected sensor fault, to every other area its
    sensor's marks reach (``Areas.mark_areas``): there it is no witness either. Without
    them a flaky turbidity probe, isolated again and again in its own area, still
    corroborated every alert of its site's water level, whose area is another (t199).
    None for a sensor the grid no longer holds (nobody's neighbour)."""
    notes = []
    for alert in out:
        labels = alert.get("labels", {})
        if alert["status"] != "firing" or labels.get(ASSESSMENT_LABEL) != "suspected_sensor_fault":
            continue
        try:
            to = areas.mark_areas(alert["sensor_id"])
        except KeyError:
            continue
        at = alert_time(alert["started_at"], "started_at", stored=True)
        note = {"type": "suspect", "sensor_id": alert["sensor_id"], "ts": at}
        notes += [(other, note) for other in to if other != area]
    return notes


def _forward(
    state: dict[str, Any],
    alert_id: str,
    alert: dict[str, Any],
    c: Corroboration,
    policy: Policy,
) -> list[dict[str, Any]]:
    """The firing alert labelled by ``c`` (and its resolution, if one was held with it);
    an unresolved alert's labels are kept for its resolution to come, the newest
    ``policy.keep_labels`` (the oldest go first: dicts keep order). Bounded here, where
    every forward adds them: before t154 only an alert forwarded on arrival trimmed
    them, and held alerts released by the timer or a mark grew an area's state without
    bound, towards the one Kafka message it must fit."""
    held = state["held"].pop(alert_id, None) or {}
    labels = labels_for(c)
    if c.route == "suspected_sensor_fault":
        # Kept so the sensor is no witness for its neighbours' alerts near it, nor once
        # it has been a suspect again and again (``witness``, t199); the other areas its
        # marks reach learn it from ``suspect_notes``.
        at = alert_time(alert["started_at"], "started_at", stored=True)
        record_suspect(state, alert["sensor_id"], at, policy)
    out = [labelled(alert, labels)]
    if held.get("resolved") is not None:
        out.append(labelled(held["resolved"], labels))
    else:
        known = state["labelled"]
        known[alert_id] = labels
        for old in list(known)[: max(0, len(known) - policy.keep_labels)]:
            del known[old]
    return out


def on_alert(
    state: dict[str, Any],
    alert: dict[str, Any],
    now: float,
    areas: Areas,
    policy: Policy,
) -> list[dict[str, Any]]:
    """A sensor alert reaching its area: the alert documents to forward now, labelled.

    A firing alert that is corroborated or decisive goes at once; a lone, non-decisive
    one is held for ``policy.grace`` (``on_mark`` or ``on_tick`` releases it). A
    redelivered firing alert already forwarded or held is dropped (its id is known). A
    resolved alert carries the labels its firing got, so both reach the same route and
    run; the resolution of a held alert is held with it."""
    alert_id = alert["alert_id"]
    known = state["labelled"]
    if alert["status"] == "firing":
        if alert_id in known or alert_id in state["held"]:
            return []
        c = _assess_alert(alert, state, areas, policy)
        if c.label == "isolated" and c.route == "suspected_sensor_fault" and policy.grace > 0:
            state["held"][alert_id] = {"alert": alert, "held_at": now}
            return []
        return _forward(state, alert_id, alert, c, policy)
    if alert_id in state["held"]:
        # An episode shorter than the grace period (a replay delivers a whole day at
        # once): its resolution waits with it, and both go on with one label.
        state["held"][alert_id]["resolved"] = alert
        return []
    labels = known.pop(alert_id, None)
    if labels is None:  # its firing's labels are gone (trimmed): label it afresh
        labels = labels_for(_assess_alert(alert, state, areas, policy))
    return [labelled(alert, labels)]


def on_tick(
    state: dict[str, Any], now: float, areas: Areas, policy: Policy
) -> list[dict[str, Any]]:
    """Release the held alerts whose grace period is over, labelled as they stand. One
    held more than the grace *after* ``now`` (wall seconds) is released too: a clock
    stepped back, or a damaged state, held it until the clock caught up, for ever if it
    never did (and the demo waits for held alerts)."""
    out = []
    for alert_id, held in list(state["held"].items()):
        if abs(now - held["held_at"]) >= policy.grace:
            alert = held["alert"]
            c = _assess_alert(alert, state, areas, policy)
            out += _forward(state, alert_id, alert, c, policy)
    return out
