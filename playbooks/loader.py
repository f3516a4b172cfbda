"""The only module that opens files: grid files and playbook YAML."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from playbooks.errors import GridError, PlaybookConfigError, RoutingConfigError
from playbooks.grid import Cell, Grid, SensorKind, SensorRegistration
from playbooks.routing import (
    ALL_LABELS,
    LABELS,
    InhibitRule,
    Matcher,
    Route,
    Router,
    parse_matchers,
)
from playbooks.schema import Playbook, RouteConfig, RoutingConfig, parse_duration

# Alertmanager's defaults (dispatch/route.go, DefaultRouteOpts). Its default group_by, [],
# would put every alert of a route in one run; citybrain refuses a root route without
# group_by instead of choosing for the operator (docs/playbooks.md).
ROUTE_DEFAULTS = {
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
}

GRID_KEYS = {"version", "kinds", "cells", "sensors"}
KIND_KEYS = {"id", "unit", "min", "max"}
CELL_KEYS = {"id", "level", "name", "unit", "parent", "lat", "lon", "geometry"}
SENSOR_KEYS = {"id", "kind", "unit", "cell", "lat", "lon"}
OPTIONAL_KEYS = {"parent", "lat", "lon", "geometry"}


# libyaml's loader when PyYAML has it (its wheels do): a grid of 20,000 sensors loads in
# about a second instead of eight.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    return _compose(path, nodes=False)[0]


def _entries(doc: dict[str, Any], key: str, allowed: set[str]) -> list[dict[str, Any]]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise GridError(f"{key!r} is a {type(entries).__name__}, expected a list", (key,))
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise GridError(f"{key} entry {i} is not a mapping", (key, i))
        unknown = set(entry) - allowed
        if unknown:
            raise GridError(f"{key} entry {i}: unknown keys {sorted(unknown)}", (key, i))
        missing = (allowed - OPTIONAL_KEYS) - set(entry)
        if missing:
            raise GridError(f"{key} entry {i}: missing keys {sorted(missing)}", (key, i))
    return entries


def _bound(entry: dict[str, Any], i: int, key: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GridError(
            f"kinds entry {i}: {key} is {value!r}, expected a number", ("kinds", i, key)
        )
    try:
        return float(value)
    except OverflowError:
        raise GridError(
            f"kinds entry {i}: {key} is too large, expected a finite number", ("kinds", i, key)
        ) from None


def load_grid(path: str | Path) -> Grid:
    """Load a grid file (format in docs/events.md) and check every cross-reference.
    Errors are ``GridError``s as ``file:line: reason``."""
    path = Path(path)
    doc = _read_yaml(path)
    try:
        return _grid(doc)
    except GridError as exc:
        # Lines only on failure: composing the node tree doubles a large grid's load time.
        line = locate(_compose(path)[1], exc.loc) if exc.loc else 1
        raise GridError(f"{path}:{line}: {exc}", exc.loc) from exc


def _grid(doc: Any) -> Grid:
    if not isinstance(doc, dict):
        raise GridError("expected a mapping with 'cells' and 'sensors'")
    unknown = set(doc) - GRID_KEYS
    if unknown:
        raise GridError(f"unknown keys {sorted(unknown)}", (sorted(unknown)[0],))
    if doc.get("version") != 1:
        raise GridError(f"version is {doc.get('version')!r}, expected 1", ("version",))
    kinds = [
        SensorKind(
            id=str(e["id"]), unit=str(e["unit"]), min=_bound(e, i, "min"), max=_bound(e, i, "max")
        )
        for i, e in enumerate(_entries(doc, "kinds", KIND_KEYS))
    ]
    cells = [
        Cell(
            id=str(e["id"]),
            level=str(e["level"]),
            name=str(e["name"]),
            unit=str(e["unit"]),
            parent=None if e.get("parent") is None else str(e["parent"]),
            **_position(f"cell {e['id']!r}", e, ("cells", i)),
            geometry=_geometry(f"cell {e['id']!r}", e.get("geometry"), ("cells", i, "geometry")),
        )
        for i, e in enumerate(_entries(doc, "cells", CELL_KEYS))
    ]
    sensors = [
        SensorRegistration(
            id=str(e["id"]),
            kind=str(e["kind"]),
            unit=str(e["unit"]),
            cell=str(e["cell"]),
            **_position(f"sensor {e['id']!r}", e, ("sensors", i)),
        )
        for i, e in enumerate(_entries(doc, "sensors", SENSOR_KEYS))
    ]
    return Grid.build(cells, sensors, kinds)


def _position(
    what: str, entry: dict[str, Any], loc: tuple[str | int, ...]
) -> dict[str, float | None]:
    """``lat`` and ``lon`` of an entry (WGS84 degrees): both or neither, in range."""
    if "lat" not in entry and "lon" not in entry:
        return {"lat": None, "lon": None}
    if "lat" not in entry or "lon" not in entry:
        raise GridError(f"{what}: give both lat and lon, or neither", loc)
    out: dict[str, float | None] = {}
    for key, bound in (("lat", 90.0), ("lon", 180.0)):
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > bound:
            raise GridError(
                f"{what}: {key} is {value!r}, expected degrees in [-{bound:g}, {bound:g}]",
                (*loc, key),
            )
        out[key] = float(value)
    return out


def _geometry(what: str, value: Any, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    """A GeoJSON Polygon or MultiPolygon (RFC 7946: rings of [lon, lat] positions, each
    closed), or None."""
    if value is None:
        return None
    kinds = {"Polygon": 1, "MultiPolygon": 2}  # nesting above the rings
    if not isinstance(value, dict) or value.get("type") not in kinds:
        raise GridError(f"{what}: geometry must be a GeoJSON Polygon or MultiPolygon", loc)
    polygons = value.get("coordinates")
    if value["type"] == "Polygon":
        polygons = [polygons]
    for polygon in polygons if isinstance(polygons, list) else [None]:
        for ring in polygon if isinstance(polygon, list) else [None]:
            ok = (
                isinstance(ring, list)
                and len(ring) >= 4
                and all(
                    isinstance(p, list)
                    and len(p) >= 2
                    and all(isinstance(c, int | float) for c in p[:2])
                    and abs(p[0]) <= 180
                    and abs(p[1]) <= 90
                    for p in ring
                )
                and ring[0] == ring[-1]
            )
            if not ok:
                raise GridError(
                    f"{what}: geometry rings must be closed lists of at least four "
                    "[lon, lat] positions",
                    loc,
                )
    return dict(value)


def locate(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (pydantic's error location), or of the
    nearest ancestor that exists. Discriminator tags in ``loc`` are skipped."""
    node, line = root, 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                # A key pydantic reports that is not in the file: the key's own line
                # if present (unknown key), else stay on the mapping.
                key = next((k for k, _ in node.value if k.value == part), None)
                if key is not None:
                    line = key.start_mark.line + 1
                continue
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _compose(path: Path, nodes: bool = True) -> tuple[Any, yaml.Node | None]:
    """The document and, with ``nodes``, its node tree (for error lines)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlaybookConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PlaybookConfigError(
            f"{path}:{row}: byte 0x{data[exc.start]:02x} at column {column} is not UTF-8 "
            "(save the file as UTF-8)"
        ) from None
    try:
        doc = yaml.load(text, Loader=_LOADER)
        return doc, yaml.compose(text, Loader=_LOADER) if nodes else None
    except yaml.YAMLError as exc:
        raise PlaybookConfigError(yaml_error(path, exc)) from exc


def yaml_error(path: str | Path, exc: yaml.YAMLError) -> str:
    """A YAML syntax error on one line, ``file:line: not valid YAML: problem (column N;
    while parsing … from line M)``; PyYAML's own text runs to several lines with a
    snippet of the file."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    details = [f"column {mark.column + 1}"] if mark is not None else []
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        from_line = f" from line {context_mark.line + 1}" if context_mark is not None else ""
        details.append(f"{context}{from_line}")
    return f"{where}: not valid YAML: {problem}" + (f" ({'; '.join(details)})" if details else "")


def playbook_errors(path: str | Path) -> tuple[Playbook | None, list[str]]:
    """The playbook (if valid) and every error as ``file:line: location: reason``."""
    path = Path(path)
    doc, root = _compose(path)
    try:
        playbook = Playbook.model_validate(doc)
    except ValidationError as exc:
        return None, [
            f"{path}:{locate(root, tuple(e['loc']))}: {_where(e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
    errors = [
        f"{path}:{locate(root, loc)}: {_where(loc)}: {msg}"
        for loc, msg in playbook.cross_reference_errors()
    ]
    return (None if errors else playbook), errors


def load_playbook(path: str | Path) -> Playbook:
    """Load and validate one playbook; errors name the file, the line and the reason."""
    playbook, errors = playbook_errors(path)
    if playbook is None:
        raise PlaybookConfigError("\n".join(errors))
    return playbook


def load_playbooks(directory: str | Path) -> dict[str, Playbook]:
    """Every ``*.yaml`` playbook in ``directory`` by name; all errors reported at once."""
    found: dict[str, Playbook] = {}
    errors: list[str] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        playbook, errs = playbook_errors(path)
        errors.extend(errs)
        if playbook is not None:
            if playbook.playbook in found:
                errors.append(f"{path}:1: playbook: name {playbook.playbook!r} is used twice")
            found[playbook.playbook] = playbook
    if errors:
        raise PlaybookConfigError("\n".join(errors))
    return found


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "<top>"


LIBRARY = Path(__file__).parent / "library"
PLAYBOOK_DIR = LIBRARY / "playbooks"


def default_playbook_path() -> Path:
    return PLAYBOOK_DIR / "sensor-anomaly.yaml"


def load_routing(path: str | Path, playbooks: Mapping[str, Playbook]) -> Router:
    """Load routing.yaml; unknown keys, bad matchers, unknown labels and playbooks that
    do not exist are all reported, each as ``file:line: location: reason``."""
    path = Path(path)
    doc, root = _compose(path)
    try:
        config = RoutingConfig.model_validate(doc)
    except ValidationError as exc:
        raise RoutingConfigError(
            "\n".join(
                f"{path}:{locate(root, tuple(e['loc']))}: {_where(e['loc'])}: {e['msg']}"
                for e in exc.errors()
            )
        ) from None
    errors: list[str] = []

    def fail(loc: tuple[str | int, ...], message: str) -> None:
        errors.append(f"{path}:{locate(root, loc)}: {_where(loc)}: {message}")

    def matchers(texts: list[str], loc: tuple[str | int, ...]) -> tuple[Matcher, ...]:
        # Each entry may hold several comma-separated matchers, as in Alertmanager.
        out: list[Matcher] = []
        for i, text in enumerate(texts):
            try:
                out.extend(parse_matchers(text))
            except RoutingConfigError as exc:
                fail((*loc, i), str(exc))
        return tuple(out)

    def check_group_by(node: RouteConfig, loc: tuple[str | int, ...], root: bool) -> None:
        # Alertmanager's Route.UnmarshalYAML, plus two refusals where it would silently
        # differ from what the file seems to say (docs/playbooks.md).
        if node.group_by is None:
            if root:
                fail(
                    loc,
                    "the root route needs group_by: [...] for one run per alert, or the "
                    "labels whose equal values share a run (Alertmanager's default, [], "
                    "would put every alert in one run)",
                )
            return
        if not node.group_by and not root:
            fail(
                (*loc, "group_by"),
                "group_by: [] on a child route; Alertmanager reads it as unset (the "
                "parent's group_by); omit it to inherit, or name the labels",
            )
        seen: set[str] = set()
        mixed = ALL_LABELS in node.group_by and any(n != ALL_LABELS for n in node.group_by)
        for i, name in enumerate(node.group_by):
            if name == ALL_LABELS:
                if mixed:
                    fail(
                        (*loc, "group_by", i),
                        "cannot have wildcard group_by (`...`) and other labels at the same time",
                    )
                elif name in seen:
                    fail((*loc, "group_by", i), "group_by lists `...` more than once")
            elif name not in LABELS:
                fail((*loc, "group_by", i), f"unknown label {name!r}")
            elif name in seen:
                fail((*loc, "group_by", i), f"duplicated label {name!r} in group_by")
            seen.add(name)

    def check_intervals(node: RouteConfig, loc: tuple[str | int, ...]) -> None:
        for key in ("group_interval", "repeat_interval"):
            value = getattr(node, key)
            if value is not None and parse_duration(value) <= 0:
                fail((*loc, key), f"{key} cannot be zero (it is {value!r})")

    def build(
        node: RouteConfig, parent: Mapping[str, Any], route_id: str, loc: tuple[str | int, ...]
    ) -> Route:
        check_group_by(node, loc, root=route_id == "root")
        check_intervals(node, loc)
        settings = dict(parent)
        for key in ("playbook", "group_by", "group_wait", "group_interval", "repeat_interval"):
            if getattr(node, key) is not None:
                settings[key] = getattr(node, key)
        if settings.get("playbook") is None:
            fail(loc, "the root route needs a playbook")
        elif settings["playbook"] not in playbooks:
            fail(
                (*loc, "playbook"),
                f"playbook {settings['playbook']!r} does not exist (known: {sorted(playbooks)})",
            )
        children = tuple(
            build(child, settings, f"{route_id}.{i}", (*loc, "routes", i))
            for i, child in enumerate(node.routes)
        )
        return Route(
            id=route_id,
            matchers=matchers(node.matchers, (*loc, "matchers")),
            playbook=str(settings.get("playbook")),
            continue_=node.continue_,
            group_by=tuple(settings.get("group_by") or ()),
            group_wait=parse_duration(settings["group_wait"]),
            group_interval=parse_duration(settings["group_interval"]),
            repeat_interval=parse_duration(settings["repeat_interval"]),
            routes=children,
        )

    if config.route.matchers:
        fail(("route", "matchers"), "the root route matches every alert: it takes no matchers")
    if config.route.continue_:
        fail(("route", "continue"), "the root route cannot continue")
    tree = build(config.route, ROUTE_DEFAULTS, "root", ("route",))
    rules = []
    for i, rule in enumerate(config.inhibit_rules):
        loc: tuple[str | int, ...] = ("inhibit_rules", i)
        for j, name in enumerate(rule.equal):
            if name not in LABELS:
                fail((*loc, "equal", j), f"unknown label {name!r}")
        rules.append(
            InhibitRule(
                matchers(rule.source_matchers, (*loc, "source_matchers")),
                matchers(rule.target_matchers, (*loc, "target_matchers")),
                tuple(rule.equal),
            )
        )
    if errors:
        raise RoutingConfigError("\n".join(errors))
    return Router(tree, tuple(rules))


def default_routing_path() -> Path:
    return LIBRARY / "routing.yaml"
