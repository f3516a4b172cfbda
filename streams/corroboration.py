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
detector, 0.9 is a reading rarer than one in 10^7 for that sensor). A neighbour counts
as anomalous at a lower bar than an alert (``agree``, default 0.2: rarer than about one
in 40 for it): the alert itself is already established, the neighbour only has to lean
the same way.

Pure: no Kafka; the grid comes from ``playbooks.grid``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from playbooks.grid import Grid

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
) -> Corroboration:
    """Label an alert of ``sensor_id`` at ``at`` (seconds) scoring ``score``, given each
    sensor's sorted times of anomalous readings (``anomalous``)."""
    count = 0
    for other in sorted(neighbours(grid, sensor_id)):
        times = anomalous.get(other, ())
        i = bisect.bisect_left(times, at - window)
        if i < len(times) and times[i] <= at + window:
            count += 1
    if count:
        return Corroboration("corroborated", count, "event")
    return Corroboration("isolated", 0, "event" if score >= decisive else "suspected_sensor_fault")
