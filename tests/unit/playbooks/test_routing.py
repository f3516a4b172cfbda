"""Routing, grouping, inhibition and silences on tables of cases, and the exact errors
for bad routing files."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from playbooks.errors import PlaybookError, RoutingConfigError
from playbooks.loader import PLAYBOOK_DIR, default_routing_path, load_playbooks, load_routing
from playbooks.routing import Matcher, Route, Router, new_silence, regrouped_routes
from playbooks.schema import parse_duration

PLAYBOOKS = load_playbooks(PLAYBOOK_DIR)
ROUTER = load_routing(default_routing_path(), PLAYBOOKS)


def sensor(kind: str, **labels: str) -> dict[str, str]:
    return {
        "source": "sensor",
        "kind": kind,
        "severity": "minor",
        "community": "c1",
        "street": "s1",
        "district": "d1",
        "city": "x",
        **labels,
    }


def citizen(category: str, **labels: str) -> dict[str, str]:
    return {
        "source": "citizen",
        "category": category,
        "community": "c1",
        "street": "s1",
        "district": "d1",
        **labels,
    }


@pytest.mark.parametrize(
    ("labels", "playbooks"),
    [
        (sensor("water_level"), ["flash-flood"]),
        (sensor("discharge", severity="critical"), ["flash-flood"]),
        (sensor("traffic_speed"), ["traffic-incident"]),
        (sensor("pm25", severity="major"), ["air-pollution"]),
        (sensor("pm25", severity="minor"), ["sensor-anomaly"]),
        (sensor("turbidity"), ["sensor-anomaly"]),
        (sensor("water_level", category="sensor_failure"), ["sensor-failure"]),
        (citizen("Gas Leak"), ["gas-leak"]),
        (citizen("GAS SMELL"), ["gas-leak"]),
        (citizen("Crowd surge at station"), ["crowd-surge"]),
        (citizen("Noise - Residential"), ["citizen-report-burst"]),
    ],
)
def test_library_routes(labels: dict[str, str], playbooks: list[str]) -> None:
    assert [r.playbook for r in ROUTER.root.match(labels)] == playbooks


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


CONTINUE = """\
version: 1
route:
  playbook: sensor-anomaly
  group_by: [kind]
  group_wait: 30s
  routes:
    - matchers: ['kind="water_level"']
      playbook: flash-flood
      continue: true
    - matchers: ['district="d1"']
      playbook: traffic-incident
      group_by: [district]
      repeat_interval: 10m
    - matchers: ['kind="water_level"']
      playbook: gas-leak
"""


def test_continue_and_inherited_group_settings(tmp_path: Path) -> None:
    router = load_routing(write(tmp_path, CONTINUE), PLAYBOOKS)
    hits = router.root.match(sensor("water_level"))
    # continue: the first match does not stop the search; the second (no continue) does.
    assert [r.playbook for r in hits] == ["flash-flood", "traffic-incident"]
    flood, district = hits
    assert (flood.group_by, flood.group_wait, flood.repeat_interval) == (("kind",), 30.0, 14400.0)
    assert (district.group_by, district.repeat_interval) == (("district",), 600.0)
    assert [r.playbook for r in router.root.match(sensor("pm25", district="d9"))] == [
        "sensor-anomaly"
    ]


def test_group_keys_follow_group_by() -> None:
    [route] = ROUTER.root.match(sensor("water_level"))  # flash-flood groups by street
    a = route.group_key(sensor("water_level", community="c1"))
    b = route.group_key(sensor("discharge", community="c2"))
    c = route.group_key(sensor("water_level", street="s2"))
    assert a == b != c and a.startswith("grp-")
    [default] = ROUTER.root.match(sensor("turbidity"))
    assert default.group_key(sensor("turbidity")) != default.group_key(sensor("conductance"))


def _route(group_by: tuple[str, ...], route_id: str = "root.0") -> Route:
    return Route(route_id, (), "p", False, group_by, 30.0, 300.0, 14400.0, path="{}/{}")


def test_group_keys_differ_when_group_labels_differ_whatever_the_values_hold() -> None:
    # t44: the labels were joined with "|" and "=", so these pairs made one text, one run,
    # where Alertmanager puts each alert in a group of its own.
    pairs = [
        (("district", "severity"), {"district": "a|severity=b"}, {"district": "a", "severity": "b|severity="}),
        (("district", "severity"), {"district": "a|severity=b", "severity": "c"}, {"district": "a", "severity": "b|severity=c"}),
        (("...",), {"alert_id": "x", "kind": "a|kind=b"}, {"alert_id": "x|kind=a", "kind": "b"}),
        (("street",), {"street": "s|"}, {"street": "s\\|"}),
    ]  # fmt: skip
    for group_by, a, b in pairs:
        route = _route(group_by)
        assert route.group_key(a) != route.group_key(b), (group_by, a, b)
    # Equal values, one key: a label missing and one empty are alike, as in Alertmanager.
    route = _route(("district", "street"))
    assert route.group_key({"district": "a|b"}) == route.group_key(
        {"district": "a|b", "street": "", "kind": "x"}
    )


def test_group_by_all_labels_takes_an_empty_label_for_none() -> None:
    # t127: Alertmanager's API drops a label whose value is empty, so under group_by
    # [...] these are one alert (one fingerprint) in one group; citybrain keyed the
    # empty label too, and the same alert re-sent with it opened a second run.
    route = _route(("...",), "root")
    bare = {"alert_id": "al-1", "kind": "pm25"}
    for empty in ({"district": ""}, {"district": "", "category": ""}, {"street": ""}):
        assert route.group_key({**bare, **empty}) == route.group_key(bare), empty
    # A value that is not empty is still a label of the group.
    assert route.group_key({**bare, "district": " "}) != route.group_key(bare)
    # The key runs were stored under before t126 is unchanged for alerts without empty
    # labels (the group key migration finds them by it).
    assert route.legacy_group_key(bare) == "grp-6ec6923b9f52df34"


def test_legacy_group_keys_are_those_runs_were_stored_under() -> None:
    # Keys from before t126 (position-based; plain values as before t44): the response
    # stage finds runs opened then under them (the group key migration).
    assert (
        _route(("kind", "community")).legacy_group_key({"kind": "water_level", "community": "c1"})
        == "grp-7809b0315dc44008"
    )
    assert _route(("...",), "root").legacy_group_key({"alert_id": "al-1", "kind": "pm25"}) == (
        "grp-6ec6923b9f52df34"
    )
    assert _route((), "root").legacy_group_key({"kind": "x"}) == "grp-c58e3f5cf20b14b5"
    # ...and never the keys made now.
    route = _route(("kind",))
    assert route.group_key({"kind": "x"}) != route.legacy_group_key({"kind": "x"})


def _tree(routes: str) -> Router:
    """A router from a routing file whose root's children are ``routes`` (YAML lines)."""
    text = "version: 1\nroute:\n  playbook: sensor-check\n  group_by: [street]\n  routes:\n"
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "routing.yaml"
        path.write_text(text + routes, "utf-8")
        return load_routing(path, PLAYBOOKS)


FLOOD = (
    "    - matchers: ['kind=\"water_level\"', 'source=\"sensor\"']\n      playbook: flash-flood\n"
)
GAS = "    - matchers: ['kind=\"gas_ppm\"']\n      playbook: gas-leak\n"
DRILL = "    - matchers: ['category=\"drill\"']\n      playbook: sensor-check\n"
WATER = {"source": "sensor", "kind": "water_level", "street": "Elm"}
GASSY = {"source": "sensor", "kind": "gas_ppm", "street": "Elm"}


def _keys(router: Router, labels: dict[str, str]) -> list[str]:
    return [r.group_key(labels) for r in router.root.match(labels)]


def test_group_keys_do_not_depend_on_a_routes_position() -> None:
    # t126: the key hashed the route's position (root.1), so a route added above another
    # split every open group below it (a second run, a second dispatch, for one incident).
    before = _tree(FLOOD + GAS)
    for after in (
        _tree(DRILL + FLOOD + GAS),  # one added above
        _tree(GAS + FLOOD),  # siblings with other matchers reordered
        _tree(FLOOD + DRILL + GAS),
    ):
        for labels in (WATER, GASSY):
            assert _keys(after, labels) == _keys(before, labels), labels
            assert [r.id for r in after.root.match(labels)] != [] and labels
    # The matchers' written order, and match: beside matchers:, change nothing either
    # (Alertmanager sorts a route's matchers: its Route.Key()).
    swapped = "    - matchers: ['source=\"sensor\"', 'kind=\"water_level\"']\n      playbook: flash-flood\n"
    as_map = "    - match: {source: sensor, kind: water_level}\n      playbook: flash-flood\n"
    for other in (swapped, as_map):
        assert _keys(_tree(other + GAS), WATER) == _keys(before, WATER)


def test_group_keys_change_with_a_routes_matchers_or_a_parents() -> None:
    before = _tree(FLOOD + GAS)
    edited = FLOOD.replace('kind="water_level"', 'kind=~"water_level"')
    assert _keys(_tree(edited + GAS), WATER) != _keys(before, WATER)
    nested = "    - matchers: ['source=\"sensor\"']\n      playbook: sensor-check\n      routes:\n"
    inside = "".join("    " + line + "\n" for line in FLOOD.splitlines())
    assert _keys(_tree(nested + inside + GAS), WATER) != _keys(before, WATER)
    # group_by is a set, as Alertmanager's: its order changes no key.
    by_two = "    - matchers: ['kind=\"gas_ppm\"']\n      playbook: gas-leak\n      group_by: [street, district]\n"
    swapped = by_two.replace("[street, district]", "[district, street]")
    gas = {**GASSY, "district": "d1"}
    assert _keys(_tree(FLOOD + by_two), gas) == _keys(_tree(FLOOD + swapped), gas)
    assert regrouped_routes(_tree(FLOOD + by_two), _tree(FLOOD + swapped)) == []
    # The group labels still tell groups of one route apart.
    assert _keys(before, WATER) != _keys(before, {**WATER, "street": "Oak"})


def test_sibling_routes_with_the_same_matchers_keep_separate_groups() -> None:
    # Alertmanager keeps an aggregation group per route object (dispatch.go: its groups
    # by route.Idx), though both have one Route.Key(): two runs here too, told apart by
    # their order among the siblings with those matchers only.
    twin = FLOOD.replace("\n      playbook", "\n      continue: true\n      playbook", 1)
    router = _tree(twin + FLOOD + GAS)
    first, second = router.root.match(WATER)
    assert first.path + "#2" == second.path
    assert first.group_key(WATER) != second.group_key(WATER)
    # A sibling with other matchers between or above them changes neither key.
    moved = _tree(DRILL + twin + GAS + FLOOD)
    assert _keys(moved, WATER) == _keys(router, WATER)


def test_a_reload_names_only_the_routes_whose_keys_change() -> None:
    before = _tree(FLOOD + GAS)
    assert regrouped_routes(before, _tree(DRILL + GAS + FLOOD)) == []
    edited = GAS.replace("gas_ppm", "gas_ppm_x").replace("kind=", "kind=~")
    [said] = regrouped_routes(before, _tree(FLOOD + edited))
    assert said.startswith('route root.1 (kind="gas_ppm", gas-leak) is gone'), said


OUTAGE = {"alert_id": "al-power", "kind": "power_load", "severity": "critical", "district": "d1"}


@pytest.mark.parametrize(
    ("target", "firing", "inhibited"),
    [
        (sensor("traffic_speed", alert_id="a1"), [OUTAGE], True),
        (sensor("traffic_flow", alert_id="a1"), [OUTAGE], True),
        (sensor("traffic_speed", alert_id="a1", district="d2"), [OUTAGE], False),  # equal
        (sensor("traffic_speed", alert_id="a1"), [{**OUTAGE, "severity": "major"}], False),
        (sensor("water_level", alert_id="a1"), [OUTAGE], False),
        (sensor("traffic_speed", alert_id="a1"), [], False),
    ],
)
def test_inhibition(target: dict[str, str], firing: list[dict[str, str]], inhibited: bool) -> None:
    decision = ROUTER.decide(target, firing, [], now=0.0)
    assert (decision.inhibited_by is not None) is inhibited
    assert decision.routes  # the route is still known, for the audit trail


def test_an_alert_never_inhibits_itself() -> None:
    router = Router(ROUTER.root, ROUTER.inhibit_rules)
    both = {"alert_id": "x", "kind": "traffic_speed", "severity": "critical", "district": "d1"}
    assert router.decide(both, [both], [], now=0.0).inhibited_by is None


def test_label_sets_without_an_alert_id_are_told_apart_by_their_labels() -> None:
    # t127: two label sets both without alert_id were taken for one alert (None == None),
    # so the source never inhibited the target; Alertmanager tells alerts apart by their
    # labels (fingerprint), and inhibits. The walk, the index and the re-check alike.
    from playbooks.routing import IndexedFiring, SourceIndex

    router = Router(ROUTER.root, ROUTER.inhibit_rules)
    source = {k: v for k, v in OUTAGE.items() if k != "alert_id"}
    for target in (
        {"kind": "traffic_speed", "severity": "minor", "district": "d1"},
        {"kind": "traffic_speed", "severity": "minor", "district": "d1", "alert_id": ""},
    ):
        assert router.decide(target, [source], [], now=0.0).inhibited_by is not None, target
        index = SourceIndex(router.inhibit_rules)
        index.put("src", source)
        indexed = router.decide(target, IndexedFiring(index, "tgt", lambda: [source]), [], 0.0)
        assert indexed.inhibited_by is not None, target
        again = router.recheck(target, "inhibited", "", source, [source], [], now=0.0)
        assert again.inhibited_by is not None, target
    # An alert_id both carry still makes them one alert.
    same = {**source, "alert_id": "x"}
    target = {"kind": "traffic_speed", "severity": "minor", "district": "d1", "alert_id": "x"}
    assert router.decide(target, [same], [], now=0.0).inhibited_by is None


@pytest.mark.parametrize(
    ("matchers", "now", "silenced"),
    [
        (['kind="water_level"'], 150.0, True),
        (['kind="water_level"'], 99.0, False),  # not started
        (['kind="water_level"'], 200.0, False),  # ended (end is exclusive)
        (['kind="water_level"', 'district="d2"'], 150.0, False),
        (['kind=~"water_.*"', 'severity!="critical"'], 150.0, True),
        (['kind!~"water_.*"', 'severity="minor"'], 150.0, False),
    ],
)
def test_silences(matchers: list[str], now: float, silenced: bool) -> None:
    silence = new_silence("s1", matchers, 100.0, 200.0, "duty operator", "planned works")
    decision = ROUTER.decide(sensor("water_level"), [], [silence], now)
    assert (decision.silenced_by is not None) is silenced


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], 0.0, 1.0, "a", "r"), "a silence needs at least one matcher"),
        (
            (['kind="x"'], 5.0, 5.0, "a", "r"),
            "silence ends_at (1970-01-01T00:00:05Z) is not after starts_at (1970-01-01T00:00:05Z): give a duration above 0",
        ),
        ((['kind="x"'], 0.0, 1.0, " ", "r"), "a silence needs an author"),
        ((['kind="x"'], 0.0, 1.0, "a", ""), "a silence needs a reason"),
        ((["kind"], 0.0, 1.0, "a", "r"), "matcher 'kind' is not name=\"value\""),
        (
            (['kind="a"b"'], 0.0, 1.0, "a", "r"),
            'matcher \'kind="a"b"\': the value has an unescaped',
        ),
        ((['kind=~"("'], 0.0, 1.0, "a", "r"), "matcher 'kind=~\"(\"': bad regex (RE2 syntax)"),
    ],
)
def test_bad_silences(args: tuple[list[str], float, float, str, str], message: str) -> None:
    with pytest.raises(RoutingConfigError) as info:
        new_silence("s", *args)
    assert str(info.value).startswith(message)


def test_matcher_round_trip_and_anchoring() -> None:
    m = Matcher.parse('kind=~"pm.*"')
    assert str(m) == 'kind=~"pm.*"'
    assert m.matches({"kind": "pm25"}) and not m.matches({"kind": "xpm25"})


BAD_ROUTING = [
    (
        "version: 1\nroute:\n  playbook: nope\n",
        ":3: route.playbook: playbook 'nope' does not exist",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  colour: red\n",
        ":4: route.colour: unknown key 'colour': expected one of",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  routes:\n    - matchers: ['knd=\"x\"']\n",
        ":5: route.routes.0.matchers.0: matcher 'knd=\"x\"': unknown label 'knd'",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  routes:\n    - matchers: ['kind=~\"(\"']\n",
        ":5: route.routes.0.matchers.0: matcher 'kind=~\"(\"': bad regex",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [colour]\n",
        ":4: route.group_by.0: unknown label 'colour'",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_wait: soon\n",
        ":4: route.group_wait: duration is 'soon'",
    ),
    (
        "version: 1\nroute:\n  matchers: ['kind=\"x\"']\n  playbook: sensor-anomaly\n",
        ":3: route.matchers: the root route matches every alert: it takes no matchers",
    ),
    ("version: 1\nroute: {}\n", ":2: route: the root route needs a playbook"),
    # t50: a deliberate refusal (docs/playbooks.md) that said only "playbook '' does not
    # exist": Alertmanager reads an empty receiver as unset, the parent's.
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
        "    - {matchers: ['kind=\"pm25\"'], playbook: ''}\n",
        ":6: route.routes.0.playbook: playbook is empty; Alertmanager reads an empty receiver "
        "as unset (the parent's): leave the key out to inherit, or name a playbook",
    ),
    (
        "version: 1\nroute: {playbook: '', group_by: [kind]}\n",
        ":2: route.playbook: playbook is empty: the root route needs a playbook",
    ),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\ninhibit_rules:\n"
        "  - {source_matchers: [], target_matchers: [], equal: [zone]}\n",
        ":5: inhibit_rules.0.equal.0: unknown label 'zone'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_ROUTING)
def test_bad_routing_files_name_file_line_and_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RoutingConfigError) as info:
        load_routing(path, PLAYBOOKS)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{path}{expected}") for line in lines), lines


# -- issue 12: intervals, group_by and defaults as Alertmanager (config/config.go) -------
FIELD_CASES = Path(__file__).resolve().parents[2] / "fixtures" / "field-cases"


def test_field_case_zero_intervals_are_file_line_errors() -> None:
    path = FIELD_CASES / "zero-repeat-interval" / "routing.yaml"
    with pytest.raises(RoutingConfigError) as info:
        load_routing(path, PLAYBOOKS)
    assert str(info.value).splitlines() == [
        f"{path}:5: route.group_interval: group_interval cannot be zero (it is '0s')",
        f"{path}:6: route.repeat_interval: repeat_interval cannot be zero (it is '0s')",
    ]


ROOT = "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"
CHILD = ROOT + "  routes:\n    - matchers: ['kind=\"x\"']\n"

ROUTING_SIBLINGS = [
    (ROOT + "  repeat_interval: 0\n", ":5: route.repeat_interval: repeat_interval cannot be zero"),
    (
        CHILD + "      group_interval: 0ms\n",
        ":7: route.routes.0.group_interval: group_interval cannot be zero",
    ),
    (
        CHILD + "      repeat_interval: -1m\n",
        ":7: route.routes.0.repeat_interval: duration is '-1m'",
    ),
    (
        CHILD + "      group_wait: 5x\n",
        ":7: route.routes.0.group_wait: duration '5x' has the unknown unit 'x'",
    ),
    (
        CHILD + "      group_wait: 1.5h\n",
        ":7: route.routes.0.group_wait: duration is '1.5h'",
    ),
    (
        CHILD + "      group_wait: 1m1h\n",
        ":7: route.routes.0.group_wait: duration is '1m1h'",
    ),
    (
        CHILD + "      group_by: [kind, kind]\n",
        ":7: route.routes.0.group_by.1: duplicated label 'kind' in group_by",
    ),
    (
        CHILD + "      group_by: ['...', kind]\n",
        ":7: route.routes.0.group_by.0: cannot have wildcard group_by (`...`) and other labels",
    ),
    (
        CHILD + "      group_by: ['...', '...']\n",
        ":7: route.routes.0.group_by.1: group_by lists `...` more than once",
    ),
    (CHILD + "      group_by: []\n", ":7: route.routes.0.group_by: group_by: [] on a child route"),
    (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n",
        ":3: route: the root route needs group_by",
    ),
    (
        ROOT + '  routes:\n    - matchers: [\'kind="a"b"\']\n',
        ':6: route.routes.0.matchers.0: matcher \'kind="a"b"\': the value has an unescaped',
    ),
    # A key given twice: PyYAML kept the last silently (the route took kind="pm25"
    # only); Alertmanager refuses it ("field matchers already set").
    (
        CHILD + "      matchers: ['kind=\"pm25\"']\n",
        ":7: not valid YAML: key 'matchers' is given twice in one mapping (first on line 6)",
    ),
    (
        ROOT + "  group_by: [district]\n",
        ":5: not valid YAML: key 'group_by' is given twice in one mapping (first on line 4)",
    ),
    (
        CHILD + "      playbook: flash-flood\n      playbook: gas-leak\n",
        ":8: not valid YAML: key 'playbook' is given twice in one mapping (first on line 7)",
    ),
    (
        "version: 1\nroute: {playbook: sensor-anomaly, group_by: [kind], continue: false,"
        " continue: true}\n",
        ":2: not valid YAML: key 'continue' is given twice in one mapping (first on line 2)",
    ),
    # Alertmanager's deprecated label maps are read as it reads them; their mistakes
    # are named by label.
    (
        CHILD + "      match: {kidn: water_level}\n",
        ":7: route.routes.0.match.kidn: unknown label 'kidn', expected one of",
    ),
    (CHILD + "      match: {kind: 5}\n", ":7: route.routes.0.match.kind: is 5, expected text"),
    (
        CHILD + "      match_re: {kind: 'water_(.*'}\n",
        ":7: route.routes.0.match_re.kind: bad regex (RE2 syntax): missing ): water_(.*",
    ),
    # Trial 7: the regex as written, not its anchored form ^(?:()$, in a matcher too.
    (
        CHILD + "      match_re: {kind: '('}\n",
        ":7: route.routes.0.match_re.kind: bad regex (RE2 syntax): missing ): (",
    ),
    (
        ROOT + "  routes:\n    - matchers: ['kind=~\"(\"']\n",
        ":6: route.routes.0.matchers.0: matcher 'kind=~\"(\"': "
        "bad regex (RE2 syntax): missing ): (",
    ),
    (
        CHILD + "      match: {bad-label: x}\n",
        ":7: route.routes.0.match.bad-label: unknown label 'bad-label', expected one of",
    ),
    (ROOT + "  match: {kind: pm25}\n", ":5: route.match: the root route matches every alert"),
    (
        ROOT + "inhibit_rules:\n  - {source_match: {severity: critical}}\n",
        ":6: inhibit_rules.0.target_matchers: missing: target_matchers is required (or "
        "Alertmanager's target_match or target_match_re)",
    ),
    # Time intervals: a name must be defined, the root takes none, contents are checked
    # (line, path, value) as Alertmanager checks them (t97).
    (
        CHILD + "      mute_time_intervals: [night]\n",
        ":7: route.routes.0.mute_time_intervals.0: undefined time interval 'night' "
        "(defined: none is defined)",
    ),
    (
        CHILD
        + "      active_time_intervals: [day, nite]\n"
        + "time_intervals: [{name: day}, {name: night}]\n",
        ":7: route.routes.0.active_time_intervals.1: undefined time interval 'nite' "
        "(defined: day, night)",
    ),
    (
        ROOT + "  mute_time_intervals: [night]\nmute_time_intervals: [{name: night}]\n",
        ":5: route.mute_time_intervals: the root route cannot have mute_time_intervals",
    ),
    (
        ROOT + "time_intervals:\n  - name: night\n    time_intervals:\n"
        "      - times: [{start_time: '22:00', end_time: '6:00'}]\n",
        ":8: time_intervals.0.time_intervals.0.times.0.end_time: end_time '6:00' is not a "
        "time of day HH:MM",
    ),
    (
        ROOT + "time_intervals: [{name: a}]\nmute_time_intervals: [{name: a}]\n",
        ":5: time_intervals.0.name: time interval 'a' is defined twice",
    ),
    (ROOT + "time_intervals: [{time_intervals: []}]\n", ":5: time_intervals.0: missing name"),
    (
        ROOT + "time_intervals: night\n",
        ":5: time_intervals: is 'night', expected a list",
    ),
    (
        CHILD + "      receiver: flash-flood\n",
        ":7: route.routes.0.receiver: unknown key 'receiver': citybrain routes to a playbook",
    ),
    (ROOT + "receivers: []\n", ":5: receivers: unknown key 'receivers': citybrain's receivers"),
    # A duration is its text as written, as Alertmanager's YAML decoder gives it: PyYAML
    # read 0x0, 00, +0 and 0b0 as the number 0 (trial 12).
    *(
        (
            CHILD + f"      group_wait: {text}\n",
            ":7: route.routes.0.group_wait: duration ",
        )
        for text in ("0x0", "00", "+0", "-0", "0_0", "0b0", "0o0")
    ),
    # An inhibit rule side with no matchers key: Alertmanager reads it as matching every
    # alert; citybrain asks for one (a documented refusal).
    (
        ROOT + "inhibit_rules:\n  - {target_matchers: ['kind=\"pm25\"'], equal: [district]}\n",
        ":6: inhibit_rules.0.source_matchers: missing: source_matchers is required",
    ),
    # `continue` is true or false, as in Alertmanager: 1 and "true" were read as true.
    (CHILD + "      continue: 1\n", ":7: route.routes.0.continue: is 1, expected true or false"),
    (
        CHILD + "      continue: 'true'\n",
        ":7: route.routes.0.continue: is 'true', expected true or false",
    ),
]


# YAML merge keys: Alertmanager's go-yaml merges differently from PyYAML (a key merged in
# after one written out replaces it; merged matchers add to the route's own), so
# `<<: *flood` with its own matchers routed pm25 to gas-leak here and nowhere there
# (trial 12). Refused wherever they appear; aliases of whole values still work.
MERGES = [
    (
        "    - &flood {matchers: ['kind=\"water_level\"'], playbook: flash-flood}\n"
        "    - <<: *flood\n      playbook: gas-leak\n      matchers: ['kind=\"pm25\"']\n",
        ":7: route.routes.1.<<: YAML merge keys (<<) are not supported",
    ),
    (
        "    - playbook: gas-leak\n      <<: {matchers: ['kind=\"pm25\"']}\n",
        ":7: route.routes.0.<<: YAML merge keys",
    ),
    (
        "    - playbook: gas-leak\n      match: {<<: {kind: pm25}, severity: major}\n",
        ":7: route.routes.0.match.<<: YAML merge keys",
    ),
    (
        "    - playbook: gas-leak\n      <<: [{matchers: ['kind=\"pm25\"']}, {continue: true}]\n",
        ":7: route.routes.0.<<: YAML merge keys",
    ),
]


@pytest.mark.parametrize(("routes", "expected"), MERGES)
def test_merge_keys_are_refused(tmp_path: Path, routes: str, expected: str) -> None:
    path = write(tmp_path, ROOT + "  routes:\n" + routes)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, PLAYBOOKS)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{path}{expected}") for line in lines), lines


def test_aliases_of_whole_values_are_read(tmp_path: Path) -> None:
    text = ROOT + (
        "  routes:\n    - &flood {matchers: ['kind=\"water_level\"'], playbook: flash-flood}\n"
        "    - {matchers: &pm ['kind=\"pm25\"'], playbook: gas-leak, continue: true}\n"
        "    - {matchers: *pm, playbook: air-pollution}\n    - *flood\n"
    )
    router = load_routing(write(tmp_path, text), PLAYBOOKS)
    assert [r.playbook for r in router.root.match(sensor("pm25"))] == ["gas-leak", "air-pollution"]
    assert [r.playbook for r in router.root.match(sensor("water_level"))] == ["flash-flood"]


@pytest.mark.parametrize(("text", "expected"), ROUTING_SIBLINGS)
def test_routing_siblings_are_file_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PlaybookError) as info:  # RoutingConfigError, or a YAML error
        load_routing(path, PLAYBOOKS)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{path}{expected}") for line in lines), lines


def test_defaults_and_inheritance_are_alertmanagers(tmp_path: Path) -> None:
    text = (
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: []\n  routes:\n"
        "    - matchers: ['kind=\"a\"']\n      group_by: ['...']\n      group_wait: 1m\n"
        "      routes:\n        - matchers: ['severity=\"critical\"']\n"
        "          repeat_interval: 1h30m\n"
        "    - matchers: ['kind=\"b\"']\n      group_by: [district]\n      repeat_interval: 1d\n"
        "      routes:\n        - {matchers: ['severity=\"critical\"'], group_by: ['...']}\n"
    )
    router = load_routing(write(tmp_path, text), PLAYBOOKS)
    root = router.root
    # Alertmanager's DefaultRouteOpts: group_wait 30s, group_interval 5m, repeat_interval 4h.
    assert (root.group_by, root.group_wait, root.group_interval, root.repeat_interval) == (
        (),
        30.0,
        300.0,
        14400.0,
    )
    a, b = root.routes
    (a_critical,) = a.routes
    assert (a.group_by, a.group_wait, a.repeat_interval) == (("...",), 60.0, 14400.0)
    assert (a_critical.group_by, a_critical.group_wait, a_critical.repeat_interval) == (
        ("...",),
        60.0,
        5400.0,
    )
    (b_critical,) = b.routes
    assert (b.group_by, b.repeat_interval) == (("district",), 86400.0)
    assert (b_critical.group_by, b_critical.repeat_interval) == (("...",), 86400.0)
    # group_by: [] at the root: one run per route, as Alertmanager's empty group_by.
    assert root.group_key({"kind": "x"}) == root.group_key({"kind": "y", "district": "d"})


def test_matchers_entries_may_hold_several_matchers(tmp_path: Path) -> None:
    text = (
        ROOT
        + '  routes:\n    - matchers: [\'{kind="x", severity=~"major|critical"}\']\n      playbook: flash-flood\n'
    )
    router = load_routing(write(tmp_path, text), PLAYBOOKS)
    assert [str(m) for m in router.root.routes[0].matchers] == [
        'kind="x"',
        'severity=~"major|critical"',
    ]
    assert router.root.match({"kind": "x", "severity": "major"})[0].playbook == "flash-flood"
    assert router.root.match({"kind": "x", "severity": "minor"})[0].playbook == "sensor-anomaly"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("0s", 0.0), ("90s", 90.0), ("1h30m", 5400.0), ("1d", 86400.0), ("1w", 604800.0),
     ("1y", 31536000.0), ("500ms", 0.5), ("1d1ms", 86400.001), ("106751d", 9223286400.0)],
)  # fmt: skip
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "1.5h", "-1m", "+1m", "5x", "1m1h", "1h1h", "30", " 1h", "1H", "106752d"]
)
def test_durations_prometheus_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_alertmanagers_deprecated_label_maps_are_read_as_it_reads_them(tmp_path: Path) -> None:
    # match: is equality, match_re: an anchored regex, together with matchers: (all must
    # hold); the inhibit rules' source_match…/target_match… likewise. A match_re value is
    # the matcher Alertmanager builds from its compiled text, wrapped: ^(?:jin.*)$, as
    # `amtool config routes show` prints it and Route.Key() holds it (t149).
    legacy = write(
        tmp_path,
        ROOT + "  routes:\n    - match: {kind: water_level}\n      match_re: {district: 'jin.*'}\n"
        "      matchers: ['severity!=\"minor\"']\n      playbook: flash-flood\n"
        "inhibit_rules:\n  - source_match: {severity: critical}\n"
        "    target_match_re: {severity: 'major|minor'}\n    equal: [district]\n",
    )
    modern = tmp_path / "modern.yaml"
    modern.write_text(
        ROOT + "  routes:\n    - matchers: ['kind=\"water_level\"', 'district=~\"^(?:jin.*)$\"',"
        " 'severity!=\"minor\"']\n      playbook: flash-flood\n"
        "inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n"
        "    target_matchers: ['severity=~\"^(?:major|minor)$\"']\n    equal: [district]\n"
    )
    old, new = load_routing(legacy, PLAYBOOKS), load_routing(modern, PLAYBOOKS)
    assert set(old.root.routes[0].matchers) == set(new.root.routes[0].matchers)
    assert [(set(r.source), set(r.target), r.equal) for r in old.inhibit_rules] == [
        (set(r.source), set(r.target), r.equal) for r in new.inhibit_rules
    ]
    flood = {**sensor("water_level"), "district": "jinjiang", "severity": "major"}
    assert [r.playbook for r in old.root.match(flood)] == ["flash-flood"]
    # Anchored: "xjinjiang" is not matched by jin.*
    assert [r.playbook for r in old.root.match({**flood, "district": "xjinjiang"})] == [
        "sensor-anomaly"
    ]


def test_a_match_re_valid_only_once_wrapped_matches_as_alertmanagers_does(tmp_path: Path) -> None:
    # Alertmanager wraps a match_re value twice (its config, then the route's matcher):
    # "a)|(b" is then only "a" or "b", where the matcher kind=~"a)|(b" reads ^(?:a)|(b)$
    # (found by the differential test against amtool).
    path = write(
        tmp_path,
        ROOT + "  routes:\n    - match_re: {district: 'a)|(b'}\n      playbook: flash-flood\n",
    )
    router = load_routing(path, PLAYBOOKS)
    picked = {
        d: [r.playbook for r in router.root.match(sensor("pm25", district=d))]
        for d in ("a", "b", "ax", "xb")
    }
    assert picked == {
        "a": ["flash-flood"],
        "b": ["flash-flood"],
        "ax": ["sensor-anomaly"],
        "xb": ["sensor-anomaly"],
    }


def test_a_key_given_twice_does_not_hide_the_files_other_errors(tmp_path: Path) -> None:
    """Trial 7 item 7: a duplicate key stopped `playbooks check --routing` at that one
    error; the other nine showed only once it was removed."""
    text = (
        ROOT
        + "  routes:\n"
        + "    - matchers: ['kind=\"x\"']\n"
        + "      playbook: flash-flood\n"
        + "      playbook: gas-leak\n"
        + "    - match: {bad-label: x}\n"
        + "    - match_re: {kind: '('}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, PLAYBOOKS)
    lines = str(info.value).splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:8", "not valid YAML"],
        [f"{path}:9", "route.routes.1.match.bad-label"],
        [f"{path}:10", "route.routes.2.match_re.kind"],
    ]
    assert "key 'playbook' is given twice in one mapping (first on line 7)" in lines[0]


# Scalars Alertmanager's YAML reader (go-yaml v2) refuses and PyYAML reads (trial 23):
# `\/` in a double-quoted scalar, `?` in an unquoted one inside [...] or {...}.
GO_YAML_REFUSES = [
    (
        '  routes:\n    - playbook: gas-leak\n      matchers: ["category=\\"a\\/b\\""]\n',
        ':7: "category=\\"a\\/b\\"": \\/ is not an escape to Alertmanager\'s YAML reader',
    ),
    (
        "  routes:\n    - playbook: gas-leak\n      matchers: [kind=~pm25?]\n",
        ":7: kind=~pm25?: a ? in an unquoted value inside [...] or {...} ends the value",
    ),
    (
        "  routes:\n    - playbook: gas-leak\n      match_re: {kind: pm25?}\n",
        ":7: pm25?: a ? in an unquoted value",
    ),
]
# Read alike by both: an even run of backslashes before /, ? outside [...] and {...}.
GO_YAML_READS = [
    ('      matchers: ["category=\\"a\\\\\\\\/b\\""]\n', 'category="a\\\\/b"'),
    ("      matchers:\n        - kind=~pm25?\n", 'kind=~"pm25?"'),
    ("      matchers: ['kind=~pm25?']\n", 'kind=~"pm25?"'),
]


@pytest.mark.parametrize(("routes", "expected"), GO_YAML_REFUSES)
def test_scalars_alertmanagers_yaml_refuses_are_refused(
    tmp_path: Path, routes: str, expected: str
) -> None:
    path = write(tmp_path, ROOT + routes)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, PLAYBOOKS)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{path}{expected}") for line in lines), lines


@pytest.mark.parametrize(("entry", "matcher"), GO_YAML_READS)
def test_scalars_both_yaml_readers_read_are_read(tmp_path: Path, entry: str, matcher: str) -> None:
    text = ROOT + "  routes:\n    - playbook: gas-leak\n" + entry
    router = load_routing(write(tmp_path, text), PLAYBOOKS)
    assert [str(m) for m in router.root.routes[0].matchers] == [matcher]


def nested_routes(levels: int) -> str:
    """A routing file whose routes nest ``levels`` deep, each matching severity!=minor."""
    lines, indent = [ROOT.rstrip("\n")], "  "
    for _ in range(levels):
        lines += [f"{indent}routes:", f"{indent}- matchers: ['severity!=\"minor\"']"]
        indent += "  "
    return "\n".join(lines) + "\n"


def test_routes_nested_as_deep_as_yaml_allows_are_read_and_routed(tmp_path: Path) -> None:
    # Trial 23: 499 levels and more (libyaml reads up to 1,000 block levels) ended in a
    # RecursionError, exit 70; Alertmanager reads and routes such a tree.
    router = load_routing(write(tmp_path, nested_routes(997)), PLAYBOOKS)
    deepest = router.root.match(sensor("pm25", severity="major"))
    assert [r.id.count(".") for r in deepest] == [997]
    assert [r.id for r in router.root.match(sensor("pm25", severity="minor"))] == ["root"]


def test_routes_nested_deeper_than_yaml_allows_are_a_file_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, nested_routes(998))
    with pytest.raises(PlaybookError, match=r":2000: not valid YAML: exceeded maximum nesting"):
        load_routing(path, PLAYBOOKS)


def test_matching_a_deep_tree_needs_no_recursion(tmp_path: Path) -> None:
    # The worker matches inside faust's own stack: a deep tree must not add to it.
    router = load_routing(write(tmp_path, nested_routes(997)), PLAYBOOKS)

    def nested(depth: int) -> list[str]:
        if depth:
            return nested(depth - 1)
        return [r.id for r in router.root.match(sensor("pm25", severity="major"))]

    limit = sys.getrecursionlimit()
    assert nested(limit - 100)[0].count(".") == 997


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_routing_file_is_refused_naming_utf16(tmp_path: Path, encoding: str) -> None:
    # t44: Alertmanager reads UTF-16 with a byte-order mark; citybrain said "byte 0xff at
    # column 1 is not UTF-8", true but not why.
    path = tmp_path / "routing.yaml"
    text = "version: 1\nroute: {playbook: sensor-anomaly, group_by: [kind]}\n"
    path.write_bytes(("\ufeff" + text).encode(encoding))
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value) == (
        f"{path}:1: the file is UTF-16 (it starts with a UTF-16 byte order mark); citybrain "
        "reads YAML files as UTF-8 only: save it as UTF-8"
    )


def test_a_routes_path_sorts_matchers_of_one_label_and_value_as_alertmanager_does() -> None:
    # t157: Alertmanager's Matchers.Less orders by name, value, then MatchType (=, !=,
    # =~, !~); citybrain ordered the last by the operator's text (!= before =), so the
    # path was not Route.Key()'s text (found by shapegen.py against tools/amroute).
    from playbooks.routing import matchers_text, parse_matchers

    written = 'street!~"a$", street=~"a$", kind!="", kind="", category!~"x", category="x"'
    assert matchers_text(parse_matchers(written)) == (
        '{category="x",category!~"x",kind="",kind!="",street=~"a$",street!~"a$"}'
    )
    # The order written changes nothing.
    assert matchers_text(parse_matchers(written)[::-1]) == matchers_text(parse_matchers(written))
