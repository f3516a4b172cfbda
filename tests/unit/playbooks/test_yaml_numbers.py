"""Numbers in the YAML files citybrain reads that PyYAML (YAML 1.1) reads otherwise than a
person, YAML 1.2 or JSON, or cannot read at all (t190): each refused at its line naming
the value, never taken as another number or a traceback.

- an integer past the largest float (about 1.8e308): a decimal of 5,000 digits was
  "cannot be read as its tag !!int says" with no tag written and every digit echoed; a
  hexadecimal or binary one was read, then any message showing it raised Python's
  "Exceeds the limit (4300 digits)" ValueError (exit 70 from ``playbooks check``), or
  showed ``<WrittenInt instance at 0x…>``;
- a leading 0 (``010``: octal 8 to YAML 1.1, 10 to YAML 1.2 and JSON): a grid's
  ``max: 010`` was 8, a sensor ``id: 01646500`` (a USGS site number) the sensor
  "478528";
- base 60 (``1:30``: 90 to YAML 1.1, text to YAML 1.2): a kind's ``max: 1:30`` was 90.

What means one thing both ways is taken: ``07``, ``00``, ``1_000``, ``0x10``."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import PlaybookError
from playbooks.loader import (
    PLAYBOOK_DIR,
    check_playbooks,
    load_grid,
    load_playbooks,
    load_routing,
    load_yaml,
)

HUGE = {
    "decimal": "9" * 5000,
    "hexadecimal": "0x" + "f" * 5000,
    "binary": "0b" + "1" * 20000,
    "octal": "0" + "7" * 400,
    "base 60": "1" + ":0" * 400,
    "just past a float": "2" + "0" * 308,
}

GRID = """version: 1
kinds:
  - {id: depth, unit: m, min: 0, max: MAX}
cells:
  - {id: c, level: city, name: C, unit: u}
  - {id: d, level: district, parent: c, name: D, unit: u}
  - {id: s, level: street, parent: d, name: S, unit: u}
  - {id: k, level: community, parent: s, name: K, unit: u}
sensors:
  - {id: SENSOR, kind: depth, unit: m, cell: k}
"""


def _grid(tmp_path: Path, max_: str = "5", sensor: str = "g1") -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.replace("MAX", max_).replace("SENSOR", sensor), encoding="utf-8")
    return path


@pytest.mark.parametrize("number", list(HUGE.values()), ids=list(HUGE))
def test_an_integer_past_the_largest_float_is_refused_at_its_line(
    tmp_path: Path, number: str
) -> None:
    # In a playbook (a text field and version), the routing file and the grid.
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    source = (PLAYBOOK_DIR / "gas-leak.yaml").read_text(encoding="utf-8")
    (playbooks / "gas-leak.yaml").write_text(
        source.replace("department: gas-utility", f"department: {number}"), encoding="utf-8"
    )
    errors = check_playbooks(playbooks)[2]
    assert any(
        e.startswith(f"{playbooks / 'gas-leak.yaml'}:6: the number ") and "is too large" in e
        for e in errors
    ), errors
    assert all(len(e) < 400 for e in errors), errors  # the value shown cut, not echoed

    routing = tmp_path / "routing.yaml"
    routing.write_text(
        f"version: 1\nroute:\n  playbook: sensor-anomaly\n  group_wait: {number}\n",
        encoding="utf-8",
    )
    with pytest.raises(PlaybookError) as info:
        load_routing(routing, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value).startswith(f"{routing}:4: the number "), str(info.value)
    assert "is too large" in str(info.value)

    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, max_=number))
    assert str(info.value).startswith(f"{tmp_path / 'grid.yaml'}:3: the number "), str(info.value)
    assert "is too large: citybrain reads no number beyond the largest float" in str(info.value)


def test_the_largest_integers_a_float_holds_are_read() -> None:
    largest = int(1.7976931348623157e308)
    assert load_yaml(f"a: {largest}") == {"a": largest}
    assert load_yaml(f"a: {hex(largest)}") == {"a": largest}
    assert load_yaml(f"a: -{largest}") == {"a": -largest}


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("010", "'010' is the number 8 to this file's YAML (1.1: a leading 0 is octal) and 10"),
        ("-0_10", "'-0_10' is the number -8"),
        ("1:30", "'1:30' is the number 90 to this file's YAML (1.1: ':' counts in base 60"),
        ("1:30.5", "'1:30.5' is the number 90.5"),
        ("!!int 010", "'010' is the number 8"),
    ],
)
def test_a_number_yaml_1_1_reads_otherwise_is_refused_at_its_line(
    tmp_path: Path, written: str, said: str
) -> None:
    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, max_=written))
    assert str(info.value).startswith(f"{tmp_path / 'grid.yaml'}:3: {said}"), str(info.value)


def test_a_sensor_id_written_as_an_octal_number_is_refused_not_renamed(tmp_path: Path) -> None:
    # USGS site numbers start with 0: 01646500 (the Potomac at Little Falls) was the
    # sensor "478528", and every reading of 01646500 was dead-lettered unknown_sensor.
    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, sensor="01646500"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'grid.yaml'}:10: '01646500' is the number 478528")
    assert "quote it if it is text such as an id" in message
    assert list(load_grid(_grid(tmp_path, sensor="'01646500'")).sensors) == ["01646500"]


@pytest.mark.parametrize(("written", "sensor"), [("0x1F", "0x1F"), ("1_000", "1_000"), ("7", "7")])
def test_a_sensor_id_written_as_a_number_is_the_text_written(
    tmp_path: Path, written: str, sensor: str
) -> None:
    # 0x1F was the sensor "31", 1_000 the sensor "1000": no reading of them says so.
    assert list(load_grid(_grid(tmp_path, sensor=written)).sensors) == [sensor]


@pytest.mark.parametrize(
    ("written", "value"), [("07", 7), ("00", 0), ("1_000", 1000), ("0x10", 16), ("'010'", "010")]
)
def test_a_number_both_readings_agree_on_is_taken(written: str, value: object) -> None:
    assert load_yaml(f"a: {written}") == {"a": value}


def test_a_grid_bound_both_readings_agree_on_is_taken(tmp_path: Path) -> None:
    assert load_grid(_grid(tmp_path, max_="1_000")).kinds["depth"].max == 1000.0


def test_the_routing_file_keeps_octal_and_base_60_as_written() -> None:
    # There Alertmanager's go-yaml v2 is the reference: a duration or time is text, and
    # 010 or 1:30 is refused as a duration (or read as a time) by its own rule.
    from playbooks.loader import _CollectingLoader

    loader = _CollectingLoader("a: 010\nb: 1:30\n")
    try:
        doc = loader.get_single_data()
    finally:
        loader.dispose()
    assert (doc["a"].written, doc["b"].written) == ("010", "1:30")


# Quoted digits, text to YAML, that a duration or a time interval reads as a number:
# Python refuses int() of a decimal over 4,300 digits ("Exceeds the limit (4300 digits)
# for integer string conversion … use sys.set_int_max_str_digits()"), which was a
# duration's message, and a time interval's ValueError out of the routing file's check
# (exit 70 from `playbooks check`). Go's ParseInt reads any run of leading zeros.

TIME_INTERVAL = """version: 1
route:
  playbook: sensor-anomaly
  group_by: [kind]
  routes:
    - matchers: ['kind="pm25"']
      mute_time_intervals: [x]
time_intervals:
  - name: x
    time_intervals:
      - FIELD: [VALUE]
"""


def test_a_duration_of_5000_digits_is_out_of_range_said_short() -> None:
    from playbooks.schema import parse_duration

    for text in ("9" * 5000 + "s", "1" + "0" * 4999 + "ms"):
        with pytest.raises(ValueError, match="is out of range") as info:
            parse_duration(text)
        assert len(str(info.value)) < 200, str(info.value)
    with pytest.raises(ValueError, match=r"a number needs its unit$"):
        parse_duration("9" * 5000)
    assert parse_duration("0" * 5000 + "5m") == 300.0  # as Go reads it


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("years", "'" + "9" * 5000 + "'", "year '9999"),
        ("years", "'2020:" + "9" * 5000 + "'", "year '9999"),
        ("days_of_month", "'" + "9" * 5000 + "'", "day of the month '9999"),
        ("months", "'" + "9" * 5000 + "'", "month '9999"),
    ],
)
def test_a_time_interval_number_of_5000_digits_is_a_file_line_error(
    tmp_path: Path, field: str, value: str, said: str
) -> None:
    from playbooks.loader import routing_errors

    path = tmp_path / "routing.yaml"
    path.write_text(TIME_INTERVAL.replace("FIELD", field).replace("VALUE", value))
    router, errors = routing_errors(path, load_playbooks(PLAYBOOK_DIR))
    assert router is None
    assert any(e.startswith(f"{path}:11: ") and said in e for e in errors), errors
    assert all(len(e) < 400 for e in errors), errors


@pytest.mark.parametrize(
    ("field", "value"),
    [("years", "'" + "0" * 5000 + "2020'"), ("days_of_month", "'-" + "0" * 5000 + "1'")],
)
def test_a_time_interval_number_with_5000_leading_zeros_is_read_as_go_reads_it(
    tmp_path: Path, field: str, value: str
) -> None:
    from playbooks.loader import routing_errors

    path = tmp_path / "routing.yaml"
    path.write_text(TIME_INTERVAL.replace("FIELD", field).replace("VALUE", value))
    router, errors = routing_errors(path, load_playbooks(PLAYBOOK_DIR))
    assert router is not None, errors
