"""Every enumerated value of playbook, routing and grid YAML that is refused names the
closest allowed one, as an unknown key does (a newcomer's ``level: stret`` got the list
alone while ``deadlin`` got "did you mean 'deadline'?")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playbooks.errors import GridError, RoutingConfigError, closest, did_you_mean
from playbooks.grid import Grid
from playbooks.loader import playbook_errors
from playbooks.routing import Matcher

PLAYBOOK = """\
playbook: flood
version: 1
department: water-bureau
sla: 6h
steps:
  - {{id: tell, action: notify, level: {level}}}
  - id: ask
    action: approval
    role: {role}
    question: Close the road?
    deadline: 1h
  - {{id: done, action: resolve}}
"""


@pytest.mark.parametrize(
    ("level", "role", "says"),
    [
        (
            "stret",
            "operator",
            "level is 'stret', expected one of community, street, district, "
            "city (did you mean 'street'?)",
        ),
        (
            "street",
            "coordinater",
            "is 'coordinater', expected 'operator' or 'coordinator' (did you mean 'coordinator'?)",
        ),
    ],
)
def test_a_playbook_value_off_its_choices_names_the_closest(
    tmp_path: Path, level: str, role: str, says: str
) -> None:
    path = tmp_path / "flood.yaml"
    path.write_text(PLAYBOOK.format(level=level, role=role))
    _, errors = playbook_errors(path)
    assert len(errors) == 1 and errors[0].endswith(says), errors


def test_a_level_far_from_every_level_gets_the_list_alone(tmp_path: Path) -> None:
    path = tmp_path / "flood.yaml"
    path.write_text(PLAYBOOK.format(level="xyzzy", role="operator"))
    _, errors = playbook_errors(path)
    assert errors[0].endswith("expected one of community, street, district, city"), errors


def test_a_matcher_operator_off_its_choices_names_the_closest() -> None:
    with pytest.raises(RoutingConfigError) as err:
        Matcher.build("kind", "~=", "pm25")
    assert str(err.value).endswith("(did you mean '=~'?)"), err.value


def test_a_grid_level_off_its_choices_names_the_closest() -> None:
    with pytest.raises(GridError) as err:
        Grid(cells={}).ancestor("c-1", "distrct")
    assert str(err.value).endswith("(did you mean 'district'?)")


GRID = """\
version: 1
cells:
  - {id: testcity, level: city, name: T, unit: u}
  - {id: d-east, level: district, name: E, unit: u, parent: testcity}
  - {id: s-river, level: street, name: R, unit: u, parent: d-eats}
  - {id: c-bridge, level: community, name: B, unit: u, parent: s-river}
sensors:
  - {id: g1, kind: water_levl, unit: ft, cell: c-bridge}
  - {id: g2, kind: water_level, unit: ft, cell: c-brige}
"""


def test_a_grid_reference_off_its_ids_names_the_closest(tmp_path: Path) -> None:
    from playbooks.loader import load_grid

    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    with pytest.raises(GridError) as err:
        load_grid(path)
    said = str(err.value)
    assert "parent 'd-eats' is not a cell (did you mean 'd-east'?)" in said, said
    assert "kind 'water_levl' is not declared (did you mean 'water_level'?) (declare" in said
    assert "cell 'c-brige' is not a cell (did you mean 'c-bridge'?)" in said


def test_a_duration_unit_off_its_units_names_the_closest() -> None:
    from playbooks.schema import parse_duration

    with pytest.raises(ValueError, match=r"unknown unit 'hr', .*\(did you mean 'h'\?\)$"):
        parse_duration("1hr")


def test_a_transition_to_a_misspelt_step_names_the_closest() -> None:
    from playbooks.schema import step_reference_errors

    steps = [{"id": "tell", "on_failure": "anotate"}, {"id": "annotate"}]
    assert step_reference_errors(steps) == [
        (
            ("steps", 0, "on_failure"),
            "on_failure names step 'anotate', which does not exist (did you mean 'annotate'?)",
        )
    ]


@pytest.mark.parametrize(
    "value",
    [
        ["opne"],
        {"status": "opne"},
        [[[["opne"]]]],
        10**5000,  # str() refuses past 4,300 digits
    ],
    ids=["list", "mapping", "nested", "5000-digits"],
)
def test_only_text_and_small_numbers_can_misspell_a_choice(value: object) -> None:
    """t66: `closest` compared str(value), so a value from the wire nested 1,000 deep
    raised RecursionError while its refusal was written (the HTTP ingest's 500)."""
    assert closest(value, ["open", "closed"]) is None
    assert did_you_mean(value, ["open", "closed"]) == ""


def test_a_deeply_nested_value_misspells_nothing() -> None:
    deep: object = "opne"
    for _ in range(5000):  # deeper than the recursion limit
        deep = [deep]
    assert did_you_mean(deep, ["open"]) == ""
    assert did_you_mean("opne", ["open"]) == " (did you mean 'open'?)"
    assert did_you_mean(5, [5, 50]) == " (did you mean '5'?)"


@pytest.mark.parametrize(
    ("value", "choices", "said"),
    [
        # t147: a list was read as a misspelling of its last item ("did you mean
        # 'resolved'?"), in every door but the command line's (t143).
        (
            "open,resolved",
            ["open", "resolved"],
            " (one choice, not a list: give 'open' or 'resolved')",
        ),
        (
            "open, resolved",
            ["open", "resolved"],
            " (one choice, not a list: give 'open' or 'resolved')",
        ),
        ("ack|resolve", ["ack", "resolve"], " (one choice, not a list: give 'ack' or 'resolve')"),
        # A list with an item that is no choice is a misspelling as before, or nothing.
        ("opne", ["open", "resolved"], " (did you mean 'open'?)"),
        ("open,", ["open", "resolved"], " (did you mean 'open'?)"),
    ],
)
def test_a_list_of_choices_for_one_is_said_as_a_list(
    value: str, choices: list[str], said: str
) -> None:
    assert did_you_mean(value, choices) == said


def test_a_list_of_one_labels_values_in_a_matcher_is_said_as_a_regex() -> None:
    """t147: `silences add --matcher kind=pm25,pm10` said only "matcher 'pm10' is not
    name=…" (Alertmanager reads the comma as between two matchers); `kind="pm25,pm10"`
    was "did you mean 'pm25'?"; route-test's `kind=pm25,pm10` too."""
    from playbooks.routing import expected_values, impossible_value, parse_matchers

    with pytest.raises(RoutingConfigError) as info:
        parse_matchers("kind=pm25,pm10,no2")
    assert str(info.value).endswith(
        ' (a list of kind\'s values? kind=~"pm25|pm10|no2" matches any of them)'
    )
    # Another matcher's slip is not read as a list.
    with pytest.raises(RoutingConfigError) as info:
        parse_matchers("kind!=pm25,pm10")
    assert "a list" not in str(info.value)
    known = {"kind": ("pm25", "pm10", "no2")}
    assert impossible_value(Matcher.parse('kind="pm25,pm10"'), known).endswith(
        ': one value, not a list: kind=~"pm25|pm10" tests for any of them'
    )
    assert expected_values("kind", known["kind"], "pm25,pm10").endswith(
        " (one choice, not a list: give 'pm25' or 'pm10')"
    )


@pytest.mark.parametrize(
    ("typed", "meant", "near"),
    [
        (
            'category="Noise",Graffiti (Commercial)',
            ["Noise", "Graffiti (Commercial)"],
            ["Graffiti Commercial", "Graffiti (Commercial"],
        ),
        ("category=a.b,c+d", ["a.b", "c+d"], ["axb", "ccd", "cd"]),
        ("category=x\\\\y,z", ["x\\y", "z"], ["xy", "x\\\\y"]),
        ('category="a\\"q",b[1],^c$', ['a"q', "b[1]", "^c$"], ["b1", "c", 'a\\"q']),
        ("kind=pm25,pm10,no2", ["pm25", "pm10", "no2"], ["pm2", "no"]),
    ],
)
def test_the_regex_said_for_a_list_of_values_matches_exactly_those_values(
    typed: str, meant: list[str], near: list[str]
) -> None:
    """t214: the hint for one label's values written as a list joined them unquoted:
    ``category=~"Noise|Graffiti (Commercial)"`` matches "Graffiti Commercial" and not the
    value meant, ``c+d`` matched "ccd", ``x\\\\y`` was a regex Alertmanager refuses. Now
    each value is quoted as Go's regexp.QuoteMeta quotes it and the whole escaped as a
    quoted matcher value; the hint is a matcher that reads back to exactly those values.
    The first four fail on the old code."""
    from playbooks.routing import impossible_value, parse_matchers

    with pytest.raises(RoutingConfigError) as info:
        parse_matchers(typed)
    hint = re.search(r"values\? (.+) matches (?:either|any of them)\)$", str(info.value))
    assert hint is not None, str(info.value)
    matcher = Matcher.parse(hint.group(1))
    assert all(matcher.matches({matcher.name: v}) for v in meant), hint.group(1)
    assert not any(matcher.matches({matcher.name: v}) for v in near), hint.group(1)
    # The same for a route's one value holding a list of known values.
    known = {"category": tuple(meant)}
    said = impossible_value(Matcher.build("category", "!=", ",".join(meant)), known)
    if all("," not in v for v in meant):
        regex = re.search(r"not a list: (.+) tests for any of them$", said)
        assert regex is not None, said
        negated = Matcher.parse(regex.group(1))
        assert negated.op == "!~" and not any(negated.matches({"category": v}) for v in meant)
        assert all(negated.matches({"category": v}) for v in near)
