"""What one alert's labels can be together, by the grid: a registered sensor's kind and
cell, a sensor alert's community cell, a cell's ancestors, and the labels the worker adds
to an alert (streams/ingest.py). Pure: ``route-test`` refuses a label set no alert has and
shows what the worker fills in; ``silences add`` warns of matchers no one alert meets."""

from __future__ import annotations

from collections.abc import Sequence

from playbooks.errors import did_you_mean
from playbooks.grid import LEVELS, RESERVED_KINDS, Grid
from playbooks.routing import Matcher, escape


def inconsistent_labels(labels: dict[str, str], grid: Grid) -> str:
    """Why ``labels``, each a value some alert may carry (unknown_label_value), cannot all
    be one alert's, or "": a registered sensor's alert has its ``kind`` and ``grid_cell``
    (the worker dead-letters a reading with others as registration_mismatch); a sensor
    alert (a ``sensor_id``, ``source=sensor`` or a sensor kind) is at a community cell,
    where sensors register, and a report burst (``source=citizen``, ``incident_burst``)
    has neither a sensor nor a sensor kind; ``community``, ``street``, ``district`` and
    ``city`` are the ids of ``grid_cell`` and its ancestors; ``neighbours_agreeing`` is
    a count (0, 1, 2, ...). Trial 8: route-test answered for such label sets."""
    count = labels.get("neighbours_agreeing")
    if count is not None and not (count.isascii() and count.isdigit()):
        return f"label neighbours_agreeing={count!r}: expected a count (0, 1, 2, ...)"
    sensor_id, kind = labels.get("sensor_id"), labels.get("kind")
    sensor = grid.sensors.get(sensor_id or "")
    if sensor is not None:
        for name, registered in (("kind", sensor.kind), ("grid_cell", sensor.cell)):
            if labels.get(name, registered) != registered:
                return (
                    f"label {name}={labels[name]!r}: sensor {sensor_id} is registered as "
                    f"{sensor.kind} in {sensor.cell}, and the worker dead-letters its "
                    f"readings with another {name} (registration_mismatch); give "
                    f"{name}={registered} or leave {name} out"
                )
    citizen = labels.get("source") == "citizen" or kind in RESERVED_KINDS
    sensor_alert = sensor_id is not None or labels.get("source") == "sensor" or kind in grid.kinds
    if citizen and sensor_alert:
        said = ", ".join(f"{n}={labels[n]}" for n in ("source", "kind", "sensor_id") if n in labels)
        return (
            f"labels {said}: a report burst (source=citizen, kind=incident_burst) has no "
            "sensor and no sensor kind, a sensor alert (source=sensor) no burst's"
        )
    cell_id = labels.get("grid_cell")
    cell = grid.cells.get(cell_id or "")
    if cell is not None and sensor_alert and cell.level != "community":
        return (
            f"label grid_cell={cell_id!r}: a {cell.level} cell, but a sensor alert is at its "
            "sensor's cell, and sensors register to community cells"
        )
    if cell is not None:
        path = grid.path(cell.id)
        for level in LEVELS:
            given = labels.get(level)
            if given is not None and path.get(level) != given:
                has = f"is in {level} {path[level]}" if level in path else f"has no {level}"
                return (
                    f"label {level}={given!r}: grid_cell {cell_id} {has} (an alert's {level} "
                    "is its cell's); leave it out to have it filled in"
                )
    return ""


def worker_labels(labels: dict[str, str], grid: Grid) -> tuple[dict[str, str], list[str]]:
    """The labels a worker would add to an alert that has ``labels``, as it adds them
    (streams/ingest.py): from a registered ``sensor_id`` its ``grid_cell`` and ``kind``;
    ``source`` (``sensor`` for a sensor or a sensor kind, ``citizen`` for an
    ``incident_burst`` or a report category); from ``grid_cell`` the ids of the cell and
    its ancestors (community, street, district, city). Returns the labels added (a label
    given is never replaced) and notes on what could not be derived and why."""
    out: dict[str, str] = {}
    notes: list[str] = []

    def add(name: str, value: str) -> None:
        if name not in labels and value:
            out[name] = value

    sensor_id = labels.get("sensor_id", "")
    sensor = grid.sensors.get(sensor_id)
    if sensor is not None:
        add("grid_cell", sensor.cell)
        add("kind", sensor.kind)
    elif sensor_id:
        notes.append(
            f"sensor {sensor_id!r} is not registered in the grid{grid.near_sensor(sensor_id)}: "
            "its cell is not known"
        )
    kind = labels.get("kind") or out.get("kind", "")
    if sensor_id or kind in grid.kinds:
        add("source", "sensor")
    elif kind == "incident_burst" or labels.get("category") or labels.get("department"):
        add("source", "citizen")
    cell = labels.get("grid_cell") or out.get("grid_cell", "")
    if cell in grid.cells:
        for name, value in grid.cell_labels(cell).items():
            add(name, value)
    elif cell:
        notes.append(
            f"grid cell {cell!r} is not in the grid{did_you_mean(cell, grid.cells)}: community, "
            "street, district and city are not known"
        )
    return out, notes


def never_together(matchers: Sequence[Matcher], grid: Grid) -> str:
    """Why no one alert meets all of ``matchers`` (a silence's, ANDed), each of which some
    alert may meet (routing.impossible_value), or "" when some alert can: a label given
    two values (``kind="pm25"`` and ``kind="no2"``); ``=`` values no one alert carries
    together (inconsistent_labels: ``sensor_id`` of a water gauge with ``kind="pm25"``);
    or a matcher that the labels the ``=`` matchers fix, or the worker adds from them
    (worker_labels: a sensor's kind and cell, a cell's ancestors), fail
    (``sensor_id="usgs-…-water_level"`` with ``kind=~"pm.*"``). Alertmanager adds such a
    silence (it cannot know which labels will come); this says it for a typo (t151)."""
    equal: dict[str, str] = {}
    for matcher in matchers:
        if matcher.op != "=":
            continue
        if matcher.name in equal and equal[matcher.name] != matcher.value:
            return (
                f'{matcher.name}="{escape(equal[matcher.name])}" and {matcher} ask one label for '
                "two values"
            )
        equal[matcher.name] = matcher.value
    why = inconsistent_labels(equal, grid)
    if why:
        return why
    added, _ = worker_labels(equal, grid)
    labels = {**equal, **added}
    kind = labels.get("kind", "")
    places = {name: equal[name] for name in ("grid_cell", *LEVELS) if name in equal}
    if kind in grid.kinds and places and "sensor_id" not in labels:
        # A sensor alert is at its sensor's cell: some sensor of the kind must be there
        # (t151: grid_cell of a river gauge with kind="pm25" silenced nothing, unsaid).
        def there(cell: str) -> bool:
            path = {"grid_cell": cell, **grid.path(cell)}
            return all(path.get(name) == value for name, value in places.items())

        if not any(s.kind == kind and there(s.cell) for s in grid.sensors.values()):
            where = ", ".join(f'{name}="{escape(value)}"' for name, value in places.items())
            return f"no {kind} sensor is registered at {where}, so no alert there is kind={kind}"
    for matcher in matchers:
        if matcher.name in labels and not matcher.matches(labels):
            value = labels[matcher.name]
            if matcher.name in equal:
                return f'{matcher} fails where {matcher.name}="{escape(value)}"'
            # Each value as a matcher writes it (Matcher.__str__): a quote or backslash in
            # one was shown bare, 'category="a"b"', no matcher anyone could type (t169).
            given = ", ".join(f'{k}="{escape(v)}"' for k, v in equal.items())
            return (
                f"{matcher} fails where {given}: the worker gives such an alert "
                f'{matcher.name}="{escape(value)}"'
            )
    return ""
