"""A newcomer's near misses are answered with what was meant: an ``--expect`` entry's
misspelt key, a prefix that is not there, a CSV separated by ``;`` or tabs."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.demo import load_expected

EXPECT = "- {name: flood, %s: usgs-, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}\n"


def test_an_expect_entry_names_its_unknown_key_and_the_one_meant(tmp_path: Path) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text(EXPECT % "sensor_prefx")
    with pytest.raises(ValueError) as err:
        load_expected(path)
    assert str(err.value) == (
        f"--expect {path}:1: entry 1: unknown key 'sensor_prefx' (did you mean "
        "'sensor_prefix'?); missing sensor_prefix; expected exactly the keys "
        "('name', 'sensor_prefix', 'start', 'end')"
    )


def test_an_expect_entry_names_a_missing_key_and_an_entry_that_is_no_mapping(
    tmp_path: Path,
) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text("- {name: flood, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}\n")
    with pytest.raises(
        ValueError, match=r"expect.yaml:1: entry 1: missing sensor_prefix; expected exactly"
    ):
        load_expected(path)
    path.write_text("- flood\n")
    with pytest.raises(
        ValueError, match=r"expect.yaml:1: entry 1 is 'flood', expected a mapping with exactly"
    ):
        load_expected(path)


def test_a_prefix_that_is_not_there_is_answered_with_the_closest_one() -> None:
    """`deadletters --prefix demo-2026120312124` (a digit left off) listed the prefixes
    and suggested none; `report` and `campaign report` say it with the same words."""
    from citybrain.cli.prefixes import prefixes_there

    found = ["citybrain", "demo-20261201093012", "demo-20261203121245"]
    said = prefixes_there("prefixes there", found, "demo-2026120312124")
    assert said == (
        "prefixes there: citybrain, demo-20261201093012, demo-20261203121245 "
        "(did you mean 'demo-20261203121245'?)"
    )
    many = [f"t{n}" for n in range(20)]
    assert prefixes_there("prefixes there", many, "zzz").endswith("t19 (the latest 8)")
    assert prefixes_there("prefixes with one", ["citybrain"], "xyz") == (
        "prefixes with one: citybrain"
    )


SEMICOLONS = "timestamp;value\n2026-01-01T00:00:00Z;1,5\n"
LOOKS = "(the file looks `;`-separated: save it with commas between fields and . as the decimal"


def test_detect_says_a_semicolon_separated_file_looks_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain.cli import main

    path = tmp_path / "series.csv"
    path.write_text(SEMICOLONS)
    assert main(["detect", "--input", str(path), "--output", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "header is 'timestamp;value', expected timestamp,value " + LOOKS in err, err


def test_replay_says_a_tab_separated_file_looks_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain.cli import main
    from streams.feeds import READING_COLUMNS

    path = tmp_path / "readings.csv"
    path.write_text("\t".join(READING_COLUMNS) + "\n")
    assert main(["replay", str(path), "--max"]) == 2
    err = capsys.readouterr().err
    assert "(the file looks tab-separated: save it with commas between fields" in err, err


def test_rehearse_and_the_adapters_say_a_semicolon_separated_file_looks_so(
    tmp_path: Path,
) -> None:
    from citybrain.adapters import AdapterError, read_table
    from citybrain.rehearse import INCIDENT_FIELDS, RehearsalError, read_incidents

    path = tmp_path / "reports.csv"
    path.write_text(";".join(INCIDENT_FIELDS) + "\n")
    with pytest.raises(RehearsalError) as rehearse_err:
        read_incidents(path, [], [], lambda texts: [])
    assert LOOKS in str(rehearse_err.value)
    with pytest.raises(AdapterError) as adapter_err:
        read_table(path, required=("report_id",))
    assert LOOKS in str(adapter_err.value)


def test_a_comma_separated_header_gets_no_separator_hint() -> None:
    from streams.csvfile import separator_hint

    assert separator_hint(["timestamp", "value"]) == ""
    assert separator_hint(["timestamp", "note; with a semicolon"]) == ""


def test_the_labels_a_worker_adds_name_the_closest_sensor_and_cell() -> None:
    from citybrain.cli.check import worker_labels
    from playbooks.loader import load_grid
    from tests.services import FIXTURES

    grid = load_grid(FIXTURES / "grid-ingest.yaml")
    _, notes = worker_labels({"sensor_id": "guage-1"}, grid)
    assert notes == [
        "sensor 'guage-1' is not registered in the grid (did you mean 'gauge-1'?): its cell "
        "is not known"
    ]
    _, notes = worker_labels({"grid_cell": "c-brige"}, grid)
    assert notes[0].startswith("grid cell 'c-brige' is not in the grid (did you mean 'c-bridge'?)")


@pytest.mark.parametrize(
    ("start", "taken"),
    [
        ("'2026-01-01T00:00:00z'", True),  # the worker's lowercase z
        ("'2026-01-01 00:00'", True),  # no zone: UTC
        ("'2026-01-01X00:00'", False),  # helper t52: fromisoformat took these
        ("'2026-W01-4'", False),
        ("'20260101'", False),
    ],
)
def test_an_expect_window_is_read_as_the_worker_reads_times(
    tmp_path: Path, start: str, taken: bool
) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text(
        f"- {{name: flood, sensor_prefix: usgs-, start: {start}, end: 2026-01-02T00:00:00Z}}\n"
    )
    if taken:
        assert load_expected(path)[0].name == "flood"
        return
    with pytest.raises(ValueError, match=r":1: entry 1: start is '.*', expected ISO 8601"):
        load_expected(path)


@pytest.mark.parametrize(
    ("written", "said"),
    [
        # `~` was the event "None"; an empty prefix matched every alert, so the event was
        # counted detected whatever fired; a list was the prefix "['a']" (t54).
        ("name: ~, sensor_prefix: usgs-", "name is null, expected non-empty text"),
        ("name: flood, sensor_prefix: ''", "sensor_prefix is '', expected non-empty text"),
        ("name: flood, sensor_prefix: [a]", "sensor_prefix is a list, expected non-empty"),
        (
            'name: "a\\x1b[2Jb", sensor_prefix: usgs-',
            r"name is 'a\x1b[2Jb', which holds a control character (U+001B) at character 2, expected",
        ),
        # t186: a line or paragraph separator passed, and is named with its code.
        (
            'name: "flo\\Lod", sensor_prefix: usgs-',
            r"name is 'flo\u2028od', which holds a line separator (U+2028) at character 4, expected",
        ),
        (
            'name: flood, sensor_prefix: "usgs\\u2029"',
            r"sensor_prefix is 'usgs\u2029', which holds a paragraph separator (U+2029)",
        ),
        ('name: flood, sensor_prefix: "usgs-\\u200b"', r"sensor_prefix is 'usgs-\u200b'"),
    ],
)
def test_an_expect_name_or_prefix_that_is_no_plain_text_is_named(
    tmp_path: Path, written: str, said: str
) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text(f"- {{{written}, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}}\n")
    with pytest.raises(ValueError) as err:
        load_expected(path)
    assert str(err.value).startswith(f"--expect {path}:1: entry 1: {said}"), err.value


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # t98: "entry 0: end '2019-05-10 19:00:00+00:00' is before start '2019-05-10
        # 20:00:00-04:00'": the first entry counted from 0, no line, and each time as
        # Python writes a datetime, not as the file does.
        (
            "# mine\n- {name: b, sensor_prefix: x, start: 2019-05-10, end: 2019-05-11}\n"
            "- name: a\n  sensor_prefix: usgs\n  start: 2019-05-10T20:00:00-04:00\n"
            "  end: 2019-05-10T19:00:00Z\n",
            ":6: entry 2: end '2019-05-10T19:00:00Z' is before start '2019-05-10T20:00:00-04:00'",
        ),
        # A number as written, not quoted as if it were text.
        ("- {name: a, sensor_prefix: s, start: -1, end: 5}\n", ":1: entry 1: start is -1,"),
        ("", ": the file is empty, expected a list of events"),
    ],
)
def test_an_expect_fault_is_named_by_line_and_entry_as_written(
    tmp_path: Path, body: str, said: str
) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text(body)
    with pytest.raises(ValueError) as err:
        load_expected(path)
    assert str(err.value).startswith(f"--expect {path}{said}"), err.value
