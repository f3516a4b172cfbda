"""playbooks/time_intervals.py: parsing (errors naming the field and the value) and
``contains``; tests/integration/test_time_intervals_differential.py compares both with
Alertmanager's own package."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from playbooks.errors import RoutingConfigError, shown
from playbooks.loader import _CollectingLoader, load_routing
from playbooks.time_intervals import (
    TimeInterval,
    TimeIntervalError,
    TimeRange,
    check_references,
    contains_any,
    parse_named_intervals,
    parse_time_interval,
)


def _parse(text: str) -> TimeInterval:
    return parse_time_interval(yaml.load(text, Loader=_CollectingLoader), ("ti",))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weekdays: [funday]", "ti.weekdays.0: weekday 'funday' is not a day's name"),
        ("weekdays: ['friday:monday']", "ti.weekdays.0: weekdays 'friday:monday': the end day"),
        ("weekdays: ['saturday:sunday']", "a weekend is two entries, saturday and sunday"),
        ("days_of_month: [0]", "ti.days_of_month.0: day of the month 0 is out of range"),
        ("days_of_month: ['-1:5']", "the end day must be negative if the start is"),
        ("days_of_month: ['-1:-3']", "the end day -3 is always before the start -1"),
        ("days_of_month: ['1_0']", "day of the month '1_0' is not a whole number"),
        ("months: [smarch]", "ti.months.0: month 'smarch' is not a month's name"),
        ("years: ['2030:2026']", "ti.years.0: years '2030:2026': the end year is before"),
        ("years: ['1:2:3']", "ti.years.0: year '1:2:3' is not a range"),
        (
            "times: [{start_time: '9:00', end_time: '17:00'}]",
            "ti.times.0.start_time: start_time '9:00'",
        ),
        ("times: [{start_time: '22:00', end_time: '06:00'}]", "a range over midnight is two"),
        ("times: [{start_time: '22:00'}]", "ti.times.0: a time range needs both"),
        (
            "times: [{start_time: '22:00', end_time: '24:00', end: 1}]",
            "ti.times.0.end: unknown key",
        ),
        ("location: Nowhere/City", "ti.location: location 'Nowhere/City' is not a time zone"),
        ("location: ../etc/passwd", "location '../etc/passwd' is not a time zone name"),
        ("wekdays: [monday]", "ti.wekdays: unknown key 'wekdays'"),
        ("weekdays: monday", "ti.weekdays: is 'monday', expected a list"),
        ("weekdays: [~]", "ti.weekdays.0: is null, expected a value"),
        ("weekdays: [true]", "ti.weekdays.0: weekday is true, expected text"),
        ("[monday]", "ti: a time interval is a list, expected a mapping"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field_and_the_value(text: str, message: str) -> None:
    with pytest.raises(TimeIntervalError) as caught:
        _parse(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(".".join(map(str, caught.value.loc)) + ": ")


def test_values_are_read_as_written_not_as_yaml_1_1_numbers() -> None:
    # PyYAML reads 17:00 as 1020 and 010 as 8; Alertmanager's decoder keeps the text.
    interval = _parse("times: [{start_time: 09:00, end_time: 17:00}]\ndays_of_month: [010]")
    assert interval.times == (TimeRange(540, 1020),)
    assert interval.days_of_month == ((10, 10),)


def test_names_are_case_blind_and_ranges_inclusive() -> None:
    interval = _parse("weekdays: ['Monday:FRIDAY']\nmonths: ['may:8', december]")
    assert interval.weekdays == ((1, 5),)
    assert interval.months == ((5, 8), (12, 12))


@pytest.mark.parametrize(
    ("text", "instant", "expected"),
    [
        # times: start included, end excluded, in minutes
        ("times: [{start_time: '17:00', end_time: '24:00'}]", "2026-12-05T17:00:00+00:00", True),
        ("times: [{start_time: '17:00', end_time: '24:00'}]", "2026-12-05T16:59:59+00:00", False),
        ("times: [{start_time: '06:00', end_time: '07:00'}]", "2026-12-05T07:00:00+00:00", False),
        # read in the location, whatever the instant's own zone
        (
            "times: [{start_time: '22:00', end_time: '24:00'}]\nlocation: Asia/Shanghai",
            "2026-12-05T14:30:00+00:00",
            True,
        ),
        ("weekdays: [sunday]", "2026-12-06T01:00:00+09:00", False),  # Saturday 16:00 in UTC
        # negative days from the month's end, leap years; ranges clamped to the month
        ("days_of_month: ['-1']", "2028-02-29T00:00:00+00:00", True),
        ("days_of_month: ['-1']", "2027-02-28T00:00:00+00:00", True),
        ("days_of_month: ['-2:-1']", "2026-04-28T23:59:00+00:00", False),
        ("days_of_month: ['-31:-1']", "2027-02-01T00:00:00+00:00", True),
        ("days_of_month: ['29:31']", "2027-02-28T00:00:00+00:00", False),
        ("days_of_month: ['25:31']", "2027-02-28T00:00:00+00:00", True),
        # the calendar's month length, also in a spring-forward month (not 0.25's 30)
        ("days_of_month: ['-1']\nlocation: America/New_York", "2026-03-31T16:00:00+00:00", True),
        ("days_of_month: ['-1']\nlocation: America/New_York", "2026-03-30T16:00:00+00:00", False),
        # every given field must match
        ("weekdays: [saturday]\nmonths: [november]", "2026-12-05T12:00:00+00:00", False),
        ("weekdays: [saturday]\nmonths: ['11:12']", "2026-12-05T12:00:00+00:00", True),
        ("years: ['2027:2030']", "2026-12-31T23:59:00+00:00", False),
        # a field with no value is left out; an empty list matches nothing, as in Alertmanager
        ("weekdays:", "2026-12-05T12:00:00+00:00", True),
        ("weekdays: []", "2026-12-05T12:00:00+00:00", False),
        ("{}", "2026-12-05T12:00:00+00:00", True),
    ],
)
def test_contains(text: str, instant: str, expected: bool) -> None:
    assert _parse(text).contains(_at(instant)) is expected


def test_daylight_saving_change_in_berlin() -> None:
    # 02:00-03:00 does not exist on 29 March 2026 in Berlin: 00:59 UTC is 01:59 CET and
    # 01:00 UTC is 03:00 CEST.
    interval = _parse("times: [{start_time: '02:00', end_time: '03:00'}]\nlocation: Europe/Berlin")
    t = _at("2026-03-29T00:00:00+00:00")
    assert not any(interval.contains(t + timedelta(minutes=m)) for m in range(0, 180))


@pytest.mark.parametrize(
    ("location", "zone"),
    [
        ("Europe//Berlin", "Europe/Berlin"),
        ("./America/New_York", "America/New_York"),
        ("Australia/./Sydney", "Australia/Sydney"),
        (".//UTC", "UTC"),
    ],
)
def test_a_location_go_finds_as_a_path_is_that_zone(location: str, zone: str) -> None:
    """t182: Go's time.LoadLocation opens the zoneinfo directory + '/' + the name, so
    Alertmanager 0.25 (amtool check-config) takes these as the zone they name; zoneinfo
    refused them as keys not in normal form, and the routing file with them."""
    interval = _parse(f"times: [{{start_time: '02:00', end_time: '03:00'}}]\nlocation: {location}")
    assert interval.location == location  # kept as written, as there
    same = _parse(f"times: [{{start_time: '02:00', end_time: '03:00'}}]\nlocation: {zone}")
    t = _at("2026-03-29T00:00:00+00:00")
    for minutes in range(0, 24 * 60, 15):
        at = t + timedelta(minutes=minutes)
        assert interval.contains(at) is same.contains(at), at


@pytest.mark.parametrize("location", ["Europe/Berlin/", "Europe/Berlin/.", ".", "./", "//UTC"])
def test_a_location_go_cannot_open_as_a_zone_stays_refused(location: str) -> None:
    # amtool: 'not a directory', 'is a directory', 'invalid location name'.
    with pytest.raises(TimeIntervalError, match="is not a time zone"):
        _parse(f"location: '{location}'")


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        TimeInterval().contains(datetime(2026, 12, 5, 12))


def test_named_intervals_with_the_deprecated_alias() -> None:
    doc = yaml.load(
        "mute_time_intervals:\n"
        "  - name: weekend\n"
        "    time_intervals: [{weekdays: [saturday, sunday]}]\n"
        "time_intervals:\n"
        "  - name: night\n"
        "    time_intervals:\n"
        "      - {times: [{start_time: '22:00', end_time: '24:00'}]}\n"
        "      - {times: [{start_time: '00:00', end_time: '06:00'}]}\n"
        "  - name: never\n",
        Loader=_CollectingLoader,
    )
    named = parse_named_intervals(doc)
    assert set(named) == {"weekend", "night", "never"}
    sat_noon = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert contains_any(named["weekend"], sat_noon)
    assert not contains_any(named["night"], sat_noon)
    assert contains_any(named["night"], sat_noon.replace(hour=3))
    assert not contains_any(named["never"], sat_noon)  # no intervals: never


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"time_intervals": [{"time_intervals": []}]}, "time_intervals.0: missing name"),
        (
            {"time_intervals": [{"name": "a"}], "mute_time_intervals": [{"name": "a"}]},
            "time_intervals.0.name: time interval 'a' is defined twice",
        ),
        ({"time_intervals": [{"name": "a", "times": []}]}, "time_intervals.0.times: unknown key"),
        ({"time_intervals": {"name": "a"}}, "time_intervals: is a mapping, expected a list"),
        (
            {"time_intervals": [{"name": "a", "time_intervals": [{"weekdays": ["x"]}]}]},
            "time_intervals.0.time_intervals.0.weekdays.0: weekday 'x'",
        ),
    ],
)
def test_bad_named_intervals(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TimeIntervalError, match=message):
        parse_named_intervals(doc)


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("night\u2028x", "a line separator (U+2028) at character 6"),
        ("a\x1b[2Jb", "a control character (U+001B) at character 2"),
        ("zw\u200bsp", "an invisible format character (U+200B, ZERO WIDTH SPACE) at character 3"),
        (
            "\u202enight",
            "an invisible format character (U+202E, RIGHT-TO-LEFT OVERRIDE, a bidirectional "
            "control) at character 1",
        ),
    ],
)
def test_a_name_holding_what_no_name_may_is_refused_naming_the_character(
    name: str, fault: str
) -> None:
    """t197: time interval names did not go through errors.name_fault, the one check of
    names an operator writes; each was taken (as Alertmanager takes it), and said in the
    worker's log and route-test's answer, where an ESC played and a U+2028 cut the line.
    Now refused naming field, value, the character and its place; a route naming it is
    not also told the name is undefined. Fails on the old code (taken)."""
    doc = {"time_intervals": [{"name": name, "time_intervals": [{"weekdays": ["monday"]}]}]}
    problems: list[TimeIntervalError] = []
    named = parse_named_intervals(doc, problems)
    [problem] = problems
    assert problem.loc == ("time_intervals", 0, "name")
    assert problem.reason == (f"time interval name {name!r} holds {fault}, expected printable text")
    check_references([name], named, ("route", "routes", 0, "mute_time_intervals"))


def test_an_undefined_name_is_refused() -> None:
    check_references(["night"], {"night": ()}, ("route", "mute_time_intervals"))
    with pytest.raises(
        TimeIntervalError,
        match=r"route.routes.0.mute_time_intervals.1: undefined time interval 'nite' "
        r"\(defined: night\)",
    ):
        check_references(
            ["night", "nite"], {"night": ()}, ("route", "routes", 0, "mute_time_intervals")
        )


CHENGDU = """version: 1
route:
  playbook: sensor-anomaly
  group_by: [kind]
  routes:
    - matchers: ['kind="noise"']
      active_time_intervals: [night]
    - matchers: ['severity="minor"']
      mute_time_intervals: [off_hours]
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: 22:00, end_time: 24:00}, {start_time: 00:00, end_time: 06:00}]
        location: Asia/Shanghai
  - name: off_hours
    time_intervals:
      - weekdays: [saturday, sunday]
        location: Asia/Shanghai
      - times: [{start_time: 00:00, end_time: 08:30}, {start_time: 18:00, end_time: 24:00}]
        location: Asia/Shanghai
"""


def test_a_routing_file_with_time_intervals_loads(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(CHENGDU)
    router = load_routing(path, ["sensor-anomaly"])
    noise, minor = router.root.routes
    assert noise.active_time_intervals == ("night",) and noise.mute_time_intervals == ()
    assert minor.mute_time_intervals == ("off_hours",)
    assert set(router.time_intervals) == {"night", "off_hours"}
    # Monday 7 December 2026: 15:00 UTC is 23:00 in Chengdu, 03:00 UTC is 11:00.
    evening = datetime(2026, 12, 7, 15, tzinfo=UTC).timestamp()
    morning = datetime(2026, 12, 7, 3, tzinfo=UTC).timestamp()
    assert router.time_muted((), ("night",), evening) == ""
    assert router.time_muted((), ("night",), morning) == (
        "outside its active time intervals 'night'"
    )
    assert router.time_muted(("off_hours",), (), evening) == (
        "in its mute time interval 'off_hours'"
    )
    assert router.time_muted(("off_hours",), (), morning) == ""
    # A name the router does not define (routed before the file changed) mutes nothing.
    assert router.time_muted(("gone",), ("gone",), morning) == ""


def test_every_bad_interval_is_said_and_a_bad_ones_name_still_counts(tmp_path: Path) -> None:
    """As the rest of the loader: one mistake does not hide the next; a route naming an
    interval whose contents are refused is not a second error."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\n"
        "route:\n"
        "  playbook: sensor-anomaly\n"
        "  group_by: [kind]\n"
        "  routes:\n"
        "    - {matchers: ['kind=\"noise\"'], active_time_intervals: [night, nite]}\n"
        "time_intervals:\n"
        "  - name: night\n"
        "    time_intervals: [{weekdays: [funday]}]\n"
        "  - name: day\n"
        "    time_intervals: [{location: Mars/Olympus}]\n"
    )
    with pytest.raises(RoutingConfigError) as caught:
        load_routing(path, ["sensor-anomaly"])
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "route.routes.0.active_time_intervals.1",
        "time_intervals.0.time_intervals.0.weekdays.0",
        "time_intervals.1.time_intervals.0.location",
    ]
    assert lines[0].endswith("undefined time interval 'nite' (defined: day, night)")
    assert lines[0].startswith(f"{path}:6: ")
    assert lines[2].startswith(f"{path}:11: ")


@pytest.mark.parametrize("name", ["618", "11.11", "off", "yes", "2026-10-01", "0x1F", "22:00"])
def test_a_name_yaml_reads_as_no_text_is_its_text_as_written(tmp_path: Path, name: str) -> None:
    """Alertmanager's YAML reader gives a text field any scalar's text as written, so
    ``name: 2026-10-01`` (a national holiday) and ``mute_time_intervals: [2026-10-01]``
    are the interval '2026-10-01' there; they were refused here ("is
    datetime.date(2026, 10, 1), expected text") where amtool takes the file."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\n"
        "route:\n"
        "  playbook: sensor-anomaly\n"
        "  group_by: [kind]\n"
        "  routes:\n"
        f"    - matchers: ['kind=\"noise\"']\n"
        f"      mute_time_intervals: [{name}]\n"
        "      routes:\n"
        f"        - {{matchers: ['severity=\"minor\"'], active_time_intervals: [{name}]}}\n"
        "time_intervals:\n"
        f"  - name: {name}\n"
        "    time_intervals: [{months: [october], days_of_month: ['1:7']}]\n"
    )
    router = load_routing(path, ["sensor-anomaly"])
    (noise,) = router.root.routes
    assert noise.mute_time_intervals == (name,)
    assert noise.routes[0].active_time_intervals == (name,)
    assert set(router.time_intervals) == {name}
    national_day = datetime(2026, 10, 2, 3, tzinfo=UTC).timestamp()
    assert router.time_muted((name,), (), national_day) == f"in its mute time interval {name!r}"


def test_a_field_yaml_reads_as_no_text_is_refused_as_written(tmp_path: Path) -> None:
    """A date where a day of the month goes is refused as Alertmanager refuses the text
    it reads ('2026-10-01' is not a whole number), not as a Python value."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\n"
        "route:\n"
        "  playbook: sensor-anomaly\n"
        "  group_by: [kind]\n"
        "time_intervals:\n"
        "  - name: national_day\n"
        "    time_intervals: [{days_of_month: [2026-10-01]}]\n"
        "  - name: noon\n"
        "    time_intervals: [{times: [{start_time: 12.00, end_time: '13:00'}]}]\n"
    )
    with pytest.raises(RoutingConfigError) as caught:
        load_routing(path, ["sensor-anomaly"])
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}:7: time_intervals.0.time_intervals.0.days_of_month.0: day of the month "
        "'2026-10-01' is not a whole number",
        f"{path}:9: time_intervals.1.time_intervals.0.times.0.start_time: start_time '12.00' "
        "is not a time of day HH:MM (00:00 to 24:00)",
    ]


def test_a_date_where_text_goes_is_shown_as_written() -> None:
    """``playbook: 2026-10-01`` was said as "is datetime.date(2026, 10, 1)"."""
    assert shown(date(2026, 10, 1)) == "2026-10-01"
    assert shown(datetime(2026, 10, 1, 8, 30)) == "2026-10-01 08:30:00"
