"""`citybrain playbooks check|route-test` and the worker on bad routing files (issue 12:
zero-repeat-interval), run as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import main
from tests.unit.citybrain.test_cli_errors import worker_refusal

ZERO = Path(__file__).resolve().parents[2] / "fixtures" / "field-cases" / "zero-repeat-interval"
EXPECTED = [
    f"{ZERO / 'routing.yaml'}:5: route.group_interval: group_interval cannot be zero (it is '0s')",
    f"{ZERO / 'routing.yaml'}:6: route.repeat_interval: repeat_interval cannot be zero (it is '0s')",
]


def test_check_refuses_zero_intervals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "check", "--routing", str(ZERO / "routing.yaml")]) == 1
    assert capsys.readouterr().err.splitlines() == EXPECTED


def test_the_worker_refuses_to_start_with_them(tmp_path: Path) -> None:
    settings = {"CITYBRAIN_ROUTING_FILE": str(ZERO / "routing.yaml")}
    assert worker_refusal(tmp_path, settings) == [
        # Led by the setting that named the file; the CLI indents a reason's further lines.
        "citybrain: CITYBRAIN_ROUTING_FILE " + EXPECTED[0],
        "  | " + EXPECTED[1],
    ]


@pytest.mark.parametrize(
    ("labels", "playbook"),
    [
        (["kind=water_level", "source=sensor"], "flash-flood"),
        (['kind="water_level"', 'source="sensor"'], "flash-flood"),
        (['source="citizen"', 'category="Gas \\"smell\\""'], "gas-leak"),
        (["kind=pm25"], "sensor-anomaly"),
    ],
)
def test_route_test_takes_labels_as_amtool(
    capsys: pytest.CaptureFixture[str], labels: list[str], playbook: str
) -> None:
    assert main(["playbooks", "route-test", *labels]) == 0
    assert f"playbook {playbook}," in capsys.readouterr().out


def test_route_test_says_a_lone_far_glitch_is_a_suspected_fault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t175: a sentinel's alert (reading=far_glitch) scores 1, yet alone it is never
    decisive; route-test says so where it says what the worker sets."""
    assert main(["playbooks", "route-test", "kind=water_level", "reading=far_glitch"]) == 0
    out = capsys.readouterr().out
    assert "a far glitch alone is always assessment=suspected_sensor_fault" in out
    given = ["corroboration=isolated", "assessment=suspected_sensor_fault"]
    assert main(["playbooks", "route-test", "kind=water_level", "reading=far_glitch", *given]) == 0
    assert "playbook sensor-check," in capsys.readouterr().out


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ('kind=~"water.*"', "=~ is a matcher operator, not a label"),
        ("kind!=x", "!= is a matcher operator, not a label"),
        ("kind", "has no '=': expected name=value"),
        ("kind:water_level", "has no '=': expected name=value"),
        ("=water_level", 'expected name=value or name="quoted value"'),
        ('kind="a"b"', "unescaped double quote"),
        ("colour=red", "unknown label 'colour'"),
    ],
)
def test_route_test_refuses_what_amtool_refuses(
    capsys: pytest.CaptureFixture[str], label: str, message: str
) -> None:
    assert main(["playbooks", "route-test", label]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: label {label!r}") and message in err


@pytest.mark.parametrize(
    "label", ["kind", "kind:x", "=x", 'kind=~"x"', "kind!~x", "kind!=x", "k d=x", 'kind="x']
)
def test_a_refused_label_is_only_shown_forms_route_test_accepts(
    capsys: pytest.CaptureFixture[str], label: str
) -> None:
    """The new-user trial: a bare `kind` was told to write name=~"regex" or name!="value",
    which route-test then refuses. What the message suggests must be a label."""
    assert main(["playbooks", "route-test", label]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    suggestion = err.split("expected", 1)[1] if "expected" in err else ""
    for operator in ("=~", "!=", "!~"):
        assert operator not in suggestion, err


def test_route_test_fills_in_the_labels_the_worker_adds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The new-user trial of issue 15: route-test needed source=sensor and left street
    empty, so its group key differed from the worker's. It now adds what the worker adds
    (streams/ingest.py) from the grid and says so."""
    from playbooks.loader import load_grid
    from playbooks.routing import label_set
    from streams.settings import load_settings

    settings = load_settings()
    grid = load_grid(settings.grid_file)
    sensor = next(s for s in grid.sensors.values() if s.kind == "water_level")
    assert main(["playbooks", "route-test", f"sensor_id={sensor.id}"]) == 0
    out = capsys.readouterr().out
    # The labels of a real alert from that sensor, as the worker builds them.
    real = label_set(
        {**grid.cell_labels(sensor.cell), "kind": sensor.kind, "sensor_id": sensor.id}
        | {"source": "sensor"}
    )
    filled = next(ln for ln in out.splitlines() if ln.startswith("filled in as the worker does"))
    for name in ("grid_cell", "kind", "source", "community", "street", "district", "city"):
        assert f"{name}={real[name]}" in filled, filled
    from playbooks.loader import load_playbooks, load_routing

    router = load_routing(settings.routing_file, load_playbooks(settings.playbook_dir))
    route = router.root.match(real)[0]
    assert route.playbook == "flash-flood"
    assert f"group {route.group_key(real)} " in out
    assert f"street={real['street']}" in out.splitlines()[-1]


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        # Fourth new-user trial, item 7: these printed "not in the grid" and exited 0.
        (
            "grid_cell=no-such-cell",
            "label grid_cell='no-such-cell': expected one of 345 values (the ids under cells: "
            "in the grid file)",
        ),
        (
            "sensor_id=usgs-01589330-water_levl",
            "label sensor_id='usgs-01589330-water_levl': expected one of 45 values (the ids "
            "under sensors: in the grid file) (did you mean 'usgs-01589330-water_level'?)",
        ),
        # The kinds are few enough to list whole (the list was cut before water_level).
        (
            "kind=road_ice",
            "label kind='road_ice': expected one of conductance, discharge, incident_burst, "
            "no2, o3, parking_occupancy, pm10, pm25, power_load, traffic_flow, traffic_speed, "
            "travel_time, turbidity, water_level (the grid kinds and incident_burst)",
        ),
    ],
)
def test_route_test_refuses_a_value_not_in_the_grid(
    capsys: pytest.CaptureFixture[str], label: str, reason: str
) -> None:
    assert main(["playbooks", "route-test", label]) == 2
    assert capsys.readouterr().err == f"citybrain: {reason}\n"


@pytest.mark.parametrize(
    ("labels", "source"),
    [
        (["kind=pm25"], "sensor"),
        (["kind=incident_burst"], "citizen"),
        (["category=Noise"], "citizen"),
        (["category=Noise", "source=citizen"], None),  # given: never replaced
    ],
)
def test_route_test_derives_the_source_as_the_worker_sets_it(
    capsys: pytest.CaptureFixture[str], labels: list[str], source: str | None
) -> None:
    assert main(["playbooks", "route-test", *labels]) == 0
    out = capsys.readouterr().out
    if source is None:
        assert "source=" not in out.split("not given")[0]
    else:
        assert f"source={source}" in out


# -- third new-user trial, item 7: one run reports every error of every file ------------
BRIDGE_ICE = """\
playbook: bridge-ice
version: 1
departmnt: roads
steps:
  - id: tell
    action: notify
  - id: ask
    action: approval
    role: mayor
    question: close the bridge?
    deadline: 10m
    on_failure: nowhere
"""
BRIDGE_ICE_COPY = """\
playbook: bridge-ice
version: 1
department: roads
steps:
  - {id: tell, action: notfy}
"""
ROUTING = """\
version: 1
route:
  playbook: bridge-ice
  group_by: [kind]
  group_wait: 30 s
  routes:
    - matchers: ['kind="road_ice"']
    - matchers: ['knd="x"']
      playbook: nosuch
    - matchers: ['district=="x"']
    - matchers: ['severity=~"urgent|high"']
"""


def test_check_reports_every_error_of_every_file_in_file_and_line_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pb").mkdir()
    first, copy = tmp_path / "pb" / "bridge-ice.yaml", tmp_path / "pb" / "bridge-ice2.yaml"
    first.write_text(BRIDGE_ICE)
    copy.write_text(BRIDGE_ICE_COPY)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "version: 1\ncells: [{id: c, level: city, name: C, unit: u}]\nsensors: []\ncolour: red\n"
    )

    status = main(["playbooks", "check", str(tmp_path / "pb"), "--routing", str(routing)])
    assert status == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{first}:1: department: missing: this key is required",
        f"{first}:3: departmnt: unknown key 'departmnt': did you mean 'department'?",
        f"{first}:9: steps.1.approval.role: is 'mayor', expected 'operator' or 'coordinator'",
        f"{first}:12: steps.1.on_failure: on_failure names step 'nowhere', which does not exist",
        f"{copy}:1: playbook: name 'bridge-ice' is used twice: {first} has it too",
        f"{copy}:5: steps.0: action is 'notfy': did you mean 'notify'?",
        f"{routing}:5: route.group_wait: duration is '30 s', expected an integer with units "
        "y, w, d, h, m, s, ms, largest first (1h30m)",
        f"{routing}:7: route.routes.0.matchers.0: matcher 'kind=\"road_ice\"': kind is never "
        "'road_ice', so this matcher never matches: expected one of conductance, discharge, "
        "incident_burst, no2, o3, parking_occupancy, pm10, pm25, power_load, traffic_flow, "
        "traffic_speed, travel_time, turbidity, water_level",
        f"{routing}:8: route.routes.1.matchers.0: matcher 'knd=\"x\"': unknown label 'knd', "
        "expected one of alert_id, assessment, category, city, community, corroboration, "
        "department, district, grid_cell, kind, neighbours_agreeing, reading, sensor_id, "
        "severity, source, street: did you mean 'kind'?",
        f"{routing}:9: route.routes.1.playbook: playbook 'nosuch' does not exist "
        "(known: bridge-ice)",
        f"{routing}:10: route.routes.2.matchers.0: matcher 'district==\"x\"': operator '==' is "
        'not one, expected one of =, !=, =~, !~: write district="x"',
        f"{routing}:11: route.routes.3.matchers.0: matcher 'severity=~\"urgent|high\"': "
        "'urgent|high' matches no severity an alert can have, so this matcher never matches: "
        "expected one of critical, major, minor",
    ]

    # The grid is checked on its own too; its error does not hide the others'.
    status = main(
        ["playbooks", "check", str(tmp_path / "pb"), "--routing", str(routing), "--grid", str(grid)]
    )
    assert status == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"{grid}:4: unknown keys ['colour']"
    assert len(err) == 12  # the twelve above, less the kind check (no grid), plus the grid's
    assert not any("road_ice" in line for line in err)


@pytest.mark.parametrize(
    ("matcher", "reason"),
    [
        ('district="nowhere"', "district is never 'nowhere', so this matcher never matches"),
        ('severity!="urgent"', "severity is never 'urgent', so this matcher matches every alert"),
        ('kind=~"road_.*"', "'road_.*' matches no kind an alert can have"),
        ('grid_cell="no-such-cell"', "grid_cell is never 'no-such-cell', so this matcher never"),
        ('grid_cell=~"nope-.*"', "'nope-.*' matches no grid_cell an alert can have"),
        ('sensor_id="nosuch"', "sensor_id is never 'nosuch', so this matcher never matches"),
        ('street="nope"', "street is never 'nope', so this matcher never matches"),
    ],
)
def test_check_refuses_a_matcher_no_alert_can_meet_as_route_test_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], matcher: str, reason: str
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"
        f"  routes:\n    - matchers: ['{matcher}']\n"
    )
    assert main(["playbooks", "check", "--routing", str(routing)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"matcher '{matcher}': {reason}" in err[0], err


def test_check_help_names_the_settings_it_honours(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "check", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for setting in ("CITYBRAIN_PLAYBOOK_DIR", "CITYBRAIN_ROUTING_FILE", "CITYBRAIN_GRID_FILE"):
        assert setting in out


def test_check_names_the_setting_a_missing_directory_came_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_PLAYBOOK_DIR", "/nope")
    assert main(["playbooks", "check"]) == 2
    assert "CITYBRAIN_PLAYBOOK_DIR is '/nope': no such directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "<top>: the file is empty, expected a mapping (key: value lines)"),
        ("- a\n", "<top>: is a list, expected a mapping (key: value lines)"),
        ("version: 1\nroute:\n", "route: is null, expected a mapping (key: value lines)"),
        (
            "version: 2\nroute: {playbook: sensor-anomaly, group_by: [kind]}\n",
            "version: is 2, expected 1",
        ),
        (
            "version: 1\nroute: {playbook: sensor-anomaly, group_by: [kind], continue: maybe}\n",
            "route.continue: is 'maybe', expected true or false",
        ),
        (
            "version: 1\nroute: {playbook: sensor-anomaly, group_by: [kind], routes: 3}\n",
            "route.routes: is 3, expected a list",
        ),
    ],
)
def test_schema_errors_speak_yaml_and_show_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(text)
    assert main(["playbooks", "check", "--routing", str(routing)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.split(": ", 1)[1] == reason for line in err), err


# -- trial 8, finding 8: route-test refuses a label set no alert can have ----------------
GAUGE = "usgs-01589330-water_level"  # registered as water_level in md-gauge-01589330


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (
            ["kind=water_level", "kind=pm25"],
            "label kind given twice (kind='water_level' and kind='pm25'): an alert carries "
            "one value of each label",
        ),
        (
            [f"sensor_id={GAUGE}", "kind=pm25"],
            f"label kind='pm25': sensor {GAUGE} is registered as water_level in "
            "md-gauge-01589330, and the worker dead-letters its readings with another kind "
            "(registration_mismatch); give kind=water_level or leave kind out",
        ),
        (
            [f"sensor_id={GAUGE}", "grid_cell=md-dead-run"],
            f"label grid_cell='md-dead-run': sensor {GAUGE} is registered as water_level in "
            "md-gauge-01589330, and the worker dead-letters its readings with another "
            "grid_cell (registration_mismatch); give grid_cell=md-gauge-01589330 or leave "
            "grid_cell out",
        ),
        (
            ["source=sensor", "grid_cell=md-urban"],
            "label grid_cell='md-urban': a city cell, but a sensor alert is at its sensor's "
            "cell, and sensors register to community cells",
        ),
        (
            ["kind=water_level", "grid_cell=md-baltimore-county"],
            "label grid_cell='md-baltimore-county': a district cell, but a sensor alert is at "
            "its sensor's cell, and sensors register to community cells",
        ),
        (
            ["kind=water_level", "neighbours_agreeing=-5"],
            "label neighbours_agreeing='-5': expected a count (0, 1, 2, ...)",
        ),
        (
            ["kind=incident_burst", f"sensor_id={GAUGE}"],
            f"label kind='incident_burst': sensor {GAUGE} is registered as water_level in "
            "md-gauge-01589330, and the worker dead-letters its readings with another kind "
            "(registration_mismatch); give kind=water_level or leave kind out",
        ),
        (
            ["kind=pm25", "source=citizen"],
            "labels source=citizen, kind=pm25: a report burst (source=citizen, "
            "kind=incident_burst) has no sensor and no sensor kind, a sensor alert "
            "(source=sensor) no burst's",
        ),
        (
            ["grid_cell=md-gauge-01589330", "street=md-sligo-creek"],
            "label street='md-sligo-creek': grid_cell md-gauge-01589330 is in street md-dead-run "
            "(an alert's street is its cell's); leave it out to have it filled in",
        ),
        (
            ["kind=incident_burst", "grid_cell=md-urban", "street=md-dead-run"],
            "label street='md-dead-run': grid_cell md-urban has no street (an alert's "
            "street is its cell's); leave it out to have it filled in",
        ),
    ],
)
def test_route_test_refuses_labels_no_alert_can_have_together(
    capsys: pytest.CaptureFixture[str], labels: list[str], reason: str
) -> None:
    assert main(["playbooks", "route-test", *labels]) == 2
    assert capsys.readouterr().err == f"citybrain: {reason}\n"


@pytest.mark.parametrize(
    "labels",
    [
        [f"sensor_id={GAUGE}", "kind=water_level", "grid_cell=md-gauge-01589330"],
        ["kind=water_level", "neighbours_agreeing=0", "grid_cell=md-gauge-01589330"],
        ["kind=incident_burst", "grid_cell=md-urban", "city=md-urban"],
        ["source=citizen", "grid_cell=md-dead-run", "district=md-baltimore-county"],
    ],
)
def test_route_test_takes_labels_an_alert_can_have(
    capsys: pytest.CaptureFixture[str], labels: list[str]
) -> None:
    assert main(["playbooks", "route-test", *labels]) == 0
    assert "route " in capsys.readouterr().out


def test_a_routing_tree_as_deep_as_yaml_allows_is_checked_and_tested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 23: routes nested 499 levels and more (YAML reads up to about 1,000) ended
    `playbooks check` and `route-test` in a RecursionError, exit 70; Alertmanager reads
    and routes such a tree."""
    lines = ["version: 1", "route:", "  playbook: sensor-anomaly", "  group_by: [kind]"]
    for level in range(997):
        indent = "  " * (level + 1)
        lines += [f"{indent}routes:", f"{indent}- matchers: ['severity!=\"minor\"']"]
    path = tmp_path / "routing.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert main(["playbooks", "check", "--routing", str(path)]) == 0
    assert main(["playbooks", "route-test", "--routing", str(path), "severity=major"]) == 0
    assert "root" + ".0" * 997 + ": playbook sensor-anomaly" in capsys.readouterr().out


def test_route_test_says_whether_a_routes_time_intervals_hold_it_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t97: a route's time intervals are named, with what the worker would do now."""
    from streams.settings import load_settings

    library = load_settings().playbook_dir
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroute:\n  playbook: flash-flood\n  group_by: [kind]\n  routes:\n"
        "    - matchers: ['kind=\"water_level\"']\n      mute_time_intervals: [always]\n"
        "    - matchers: ['kind=\"pm25\"']\n      active_time_intervals: [always]\n"
        "time_intervals: [{name: always, time_intervals: [{}]}]\n"
    )
    args = ["playbooks", "route-test", "--routing", str(routing), "--dir", str(library)]
    assert main([*args, "kind=water_level", "source=sensor"]) == 0
    out = capsys.readouterr().out
    assert "  mute_time_intervals always: held now: in its mute time interval 'always'" in out
    assert main([*args, "kind=pm25", "source=sensor"]) == 0
    assert "  active_time_intervals always: notifies now" in capsys.readouterr().out


def test_route_test_shows_an_odd_interval_name_escaped_and_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name with an escape sequence and a right-to-left override reached the terminal
    raw (the rest of the line turned red and reversed), and one holding ", " read as two
    names; plain names stay bare. Since t197 the first is refused at load, naming the
    character, as every name an operator writes (errors.name_fault)."""
    from streams.settings import load_settings

    library = load_settings().playbook_dir
    routing = tmp_path / "routing.yaml"
    text = (
        "version: 1\nroute:\n  playbook: flash-flood\n  group_by: [kind]\n  routes:\n"
        "    - matchers: ['kind=\"water_level\"']\n"
        '      mute_time_intervals: ["night, day", 夜班]\n'
        "time_intervals:\n"
        '  - {name: "night, day", time_intervals: []}\n'
        "  - {name: 夜班, time_intervals: []}\n"
    )
    routing.write_text(text)
    args = ["playbooks", "route-test", "--routing", str(routing), "--dir", str(library)]
    assert main([*args, "kind=water_level", "source=sensor"]) == 0
    out = capsys.readouterr().out
    assert "  mute_time_intervals 'night, day', 夜班: notifies now" in out
    routing.write_text(text.replace("night, day", "night\\u202e\\x1b[31m, day"))
    assert main([*args, "kind=water_level", "source=sensor"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\u202e" not in err
    assert (
        ":9: time_intervals.0.name: time interval name 'night\\u202e\\x1b[31m, day' holds an "
        "invisible format character (U+202E, RIGHT-TO-LEFT OVERRIDE, a bidirectional "
        "control) at character 6, expected printable text"
    ) in err


def test_check_warns_of_an_entry_alertmanager_0_27_reads_otherwise_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t115: Alertmanager 0.25 accepts `category="a\\tb"` (a backslash and a t) and so
    does 0.27's default mode; its utf8-strict-mode reads a tab. A warning line with the
    file, line and both readings; the status stays 0 (t113 refused the file)."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"
        "  routes:\n    - playbook: gas-leak\n      matchers: ['category=\"a\\tb\"']\n"
    )
    assert main(["playbooks", "check", "--routing", str(routing)]) == 0
    out, err = capsys.readouterr()
    assert "are valid" in out
    # (The library's seven playbooks this file does not route to are warned of too, t122.)
    [line] = [e for e in err.splitlines() if "no route names playbook" not in e]
    assert line.startswith(
        f"citybrain: warning: {routing}:7: route.routes.0.matchers.0: matcher "
        '\'category="a\\\\tb"\' is read as category="a\\\\tb", as Alertmanager 0.25'
    ), line
    assert 'but as category="a\\tb" by Alertmanager 0.27\'s UTF-8 matchers' in line, line
    # route-test takes the file and the label alike, each warned of once, on stderr.
    argv = ["playbooks", "route-test", "--routing", str(routing), 'category="a\\tb"']
    assert main([*argv, "source=citizen"]) == 0
    out, err = capsys.readouterr()
    assert "playbook gas-leak," in out
    lines = err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("citybrain: warning: label 'category=\"a\\\\tb\"' is read as")
    assert lines[1].startswith(f"citybrain: warning: {routing}:7: route.routes.0.matchers.0:")


@pytest.mark.parametrize("empty", ["district=", 'district=""', "community=", 'category=""'])
def test_route_test_takes_an_empty_label_as_amtool_does(
    capsys: pytest.CaptureFixture[str], empty: str
) -> None:
    """t127: `amtool config routes test kind=water_level district=` routes an alert
    without district (Alertmanager drops a label with an empty value); route-test refused
    it as a district not in the grid (exit 2). Now the same route and group as without it,
    and it says why."""
    assert main(["playbooks", "route-test", "kind=water_level"]) == 0
    without = capsys.readouterr().out
    assert main(["playbooks", "route-test", "kind=water_level", empty]) == 0
    out = capsys.readouterr().out
    name = empty.split("=")[0]
    assert out.splitlines()[0] == (
        "given empty, so not a label (Alertmanager drops a label with an empty value): " + name
    )
    assert out.splitlines()[1:] == without.splitlines()


@pytest.mark.parametrize(
    ("labels", "said"),
    [
        (["kind", "=", "pm25"], "label 'kind = pm25' is split by spaces: write kind=pm25"),
        (["kind", "=pm25"], "label 'kind =pm25' is split by spaces: write kind=pm25"),
        (["kind=", "pm25", "severity=minor"], "label 'kind= pm25' is split by spaces"),
    ],
)
def test_route_test_names_a_label_split_by_spaces_as_one_word(
    labels: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t147: `route-test kind = pm25` said "label 'kind' has no '='" (t134 fixed it for
    --matcher alone)."""
    assert main(["playbooks", "route-test", *labels]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {said}") and err.count("\n") == 1, err
