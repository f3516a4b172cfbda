"""The campaign report on a hand-computed case: five runs over two periods, every figure
of every scope checked against numbers worked out by hand (in the comments)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citybrain.campaign import (
    FIGURES,
    CampaignError,
    RunFacts,
    campaign_report,
    cut_labels,
    quantile,
    render_html,
    render_text,
    repeat_runs,
    runs_from_records,
)
from citybrain.cli import EXIT_USAGE, CliError, main
from citybrain.cli.campaign import _read_records
from playbooks.grid import Grid
from streams.settings import REPO_ROOT


def rec(
    run: str, seq: int, action: str, at: float, level: str = "community", **data: Any
) -> dict[str, Any]:
    detail = str(data.pop("detail", ""))
    return {
        "schema": "step/1",
        "id": f"{run}:{seq}",
        "run_id": run,
        "action": action,
        "at": at,
        "level": level,
        "detail": detail,
        "data": data,
    }


def created(run: str, at: float, cell: str, department: str, category: str) -> dict[str, Any]:
    return rec(run, 1, "run_created", at, grid_cell=cell, department=department, category=category)


# Period [1000, 2000); the previous period [0, 1000).
RECORDS = [
    # A: Top, police, noise. Acked after 60 s, resolved at 1600, r2 not satisfied ->
    # reopened at 1700, resolved again at 1900 (ttr 900); r2 then satisfied.
    created("A", 1000, "c-top", "police", "Noise"),
    rec("A", 2, "report_covered", 1000, detail="r1", channel="app"),
    rec("A", 3, "report_covered", 1000, detail="r2", channel="hotline"),
    rec("A", 4, "acknowledged", 1060),
    rec("A", 5, "resolved", 1600),
    rec("A", 6, "answer", 1650, report_id="r1", satisfied=True),
    rec("A", 7, "answer", 1690, report_id="r2", satisfied=False),
    rec("A", 8, "reopened", 1700),
    rec("A", 9, "resolved", 1900),
    rec("A", 10, "answer", 1950, report_id="r2", satisfied=True),
    # B: Bridge, water. Escalated to the street at 1300, acked at 1500 (tta 300),
    # resolved at the street at 1800 (ttr 600). A record after the period is ignored.
    created("B", 1200, "c-bridge", "water", "Flood"),
    rec("B", 2, "escalate", 1300, level="street"),
    rec("B", 3, "acknowledged", 1500, level="street"),
    rec("B", 4, "resolved", 1800, level="street"),
    rec("B", 5, "reopened", 2100, level="street"),
    # C: Top, police, noise again, after A was first resolved (1600 <= 1700): a repeat.
    # Never acknowledged, escalated to the district, cancelled there.
    created("C", 1700, "c-top", "police", "Noise"),
    rec("C", 2, "report_covered", 1700, detail="r3", channel="inspector"),
    rec("C", 3, "escalate", 1800, level="district"),
    rec("C", 4, "cancelled", 1950, level="district"),
    # Previous period. D: Mill, water: acked at 400 (tta 300), resolved 500 (ttr 400).
    created("D", 100, "c-mill", "water", "Flood"),
    rec("D", 2, "acknowledged", 400),
    rec("D", 3, "resolved", 500),
    # E: Top, police, noise, one report, acked at 700 (tta 200), never resolved.
    created("E", 500, "c-top", "police", "Noise"),
    rec("E", 2, "report_covered", 500, detail="r0", channel="app"),
    rec("E", 3, "acknowledged", 700),
    # Audit records that are about no run are skipped.
    {"schema": "audit/1", "action": "api_refused", "at": 50.0},
]
NONE = {
    "found": 0,
    "reports": 0,
    "resolved": 0,
    "resolution_rate": None,
    "tta_median": None,
    "tta_p90": None,
    "ttr_median": None,
    "ttr_p90": None,
    "first_line_share": None,
    "escalated_district": 0,
    "reopened": 0,
    "answers": 0,
    "satisfaction_rate": None,
    "repeat_reports": 0,
}
# Current: A, B, C. tta [60, 300]: median 180, p90 60 + 0.9 * 240 = 276.
# ttr [600, 900]: median 750, p90 600 + 0.9 * 300 = 870. A at community, B at street.
CITY_NOW = {
    "found": 3,
    "reports": 3,
    "resolved": 2,
    "resolution_rate": 2 / 3,
    "tta_median": 180.0,
    "tta_p90": 276.0,
    "ttr_median": 750.0,
    "ttr_p90": 870.0,
    "first_line_share": 1.0,
    "escalated_district": 1,
    "reopened": 1,
    "answers": 2,
    "satisfaction_rate": 1.0,
    "repeat_reports": 1,
}
# Previous: D, E. tta [200, 300]: median 250, p90 290. ttr [400].
CITY_BEFORE = {
    "found": 2,
    "reports": 1,
    "resolved": 1,
    "resolution_rate": 0.5,
    "tta_median": 250.0,
    "tta_p90": 290.0,
    "ttr_median": 400.0,
    "ttr_p90": 400.0,
    "first_line_share": 1.0,
    "escalated_district": 0,
    "reopened": 0,
    "answers": 0,
    "satisfaction_rate": None,
    "repeat_reports": 0,
}
TOP_NOW = {  # A and C
    "found": 2,
    "reports": 3,
    "resolved": 1,
    "resolution_rate": 0.5,
    "tta_median": 60.0,
    "tta_p90": 60.0,
    "ttr_median": 900.0,
    "ttr_p90": 900.0,
    "first_line_share": 1.0,
    "escalated_district": 1,
    "reopened": 1,
    "answers": 2,
    "satisfaction_rate": 1.0,
    "repeat_reports": 1,
}
TOP_BEFORE = {
    **NONE,
    "found": 1,
    "reports": 1,
    "resolution_rate": 0.0,
    "tta_median": 200.0,
    "tta_p90": 200.0,
}
BRIDGE_NOW = {
    **NONE,
    "found": 1,
    "resolved": 1,
    "resolution_rate": 1.0,
    "tta_median": 300.0,
    "tta_p90": 300.0,
    "ttr_median": 600.0,
    "ttr_p90": 600.0,
    "first_line_share": 1.0,
}
MILL_BEFORE = {**BRIDGE_NOW, "ttr_median": 400.0, "ttr_p90": 400.0}


@pytest.fixture
def report(grid: Grid) -> dict[str, Any]:
    paths = {cell: grid.path(cell) for cell in grid.cells}
    return campaign_report(RECORDS, paths, 1000.0, 2000.0)


def row(report: dict[str, Any], scope: str, name: str) -> dict[str, Any]:
    [found] = [r for r in report["rows"] if (r["scope"], r["name"]) == (scope, name)]
    return found


def change(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: None if now[k] is None or before[k] is None else now[k] - before[k] for k in FIGURES}


def test_every_figure_of_the_city_and_its_change(report: dict[str, Any]) -> None:
    city = row(report, "city", "testcity")
    assert city["figures"] == pytest.approx(CITY_NOW)
    assert city["previous"] == pytest.approx(CITY_BEFORE)
    assert city["change"] == pytest.approx(
        {
            "found": 1,
            "reports": 2,
            "resolved": 1,
            "resolution_rate": 2 / 3 - 0.5,
            "tta_median": -70.0,
            "tta_p90": -14.0,
            "ttr_median": 350.0,
            "ttr_p90": 470.0,
            "first_line_share": 0.0,
            "escalated_district": 1,
            "reopened": 1,
            "answers": 2,
            "satisfaction_rate": None,
            "repeat_reports": 1,
        }
    )
    assert report["previous_period"] == {"from": 0.0, "to": 1000.0}


def test_every_scope_row(report: dict[str, Any]) -> None:
    assert [(r["scope"], r["name"]) for r in report["rows"]] == [
        ("community", "c-bridge"),
        ("community", "c-mill"),
        ("community", "c-top"),
        ("street", "s-hill"),
        ("street", "s-river"),
        ("district", "d-east"),
        ("city", "testcity"),
        ("department", "police"),
        ("department", "water"),
    ]
    expected = {
        ("community", "c-top"): (TOP_NOW, TOP_BEFORE),
        ("street", "s-hill"): (TOP_NOW, TOP_BEFORE),
        ("department", "police"): (TOP_NOW, TOP_BEFORE),
        ("community", "c-bridge"): (BRIDGE_NOW, NONE),
        ("community", "c-mill"): (NONE, MILL_BEFORE),
        ("street", "s-river"): (BRIDGE_NOW, MILL_BEFORE),
        ("department", "water"): (BRIDGE_NOW, MILL_BEFORE),
        ("district", "d-east"): (CITY_NOW, CITY_BEFORE),
    }
    for (scope, name), (now, before) in expected.items():
        r = row(report, scope, name)
        assert r["figures"] == pytest.approx(now), (scope, name)
        assert r["previous"] == pytest.approx(before), (scope, name)
        assert r["change"] == pytest.approx(change(now, before)), (scope, name)


def test_a_run_is_reopened_then_resolved_again_and_its_last_answers_count() -> None:
    runs = runs_from_records(RECORDS, until=2000.0)
    a = runs["A"]
    assert (a.outcome, a.resolved_at, a.first_resolved_at, a.reopened) == (
        "resolved",
        1900.0,
        1600.0,
        1,
    )
    assert a.answers == {"r1": True, "r2": True}
    assert runs["B"].reopened == 0  # the reopening at 2100 is after the period
    # Cut at 1750: A is reopened and open, C not yet escalated.
    early = runs_from_records(RECORDS, until=1750.0)
    assert (early["A"].outcome, early["A"].answers["r2"]) == (None, False)
    assert early["C"].top_level == "community"


def test_a_step_re_emitted_after_a_crash_counts_once_at_its_first_time() -> None:
    """t49: the deadline timer's steps re-emitted after a crash between their delivery and
    the run's stored state repeat their ids with the restart's time (docs/operations.md);
    the report took the repeat's: a run resolved by its playbook's last step at 1300 read
    as resolved at 1360, and a reopening sent twice counted twice in ``reopened``."""
    first = [
        created("T", 1000, "c-top", "police", "Noise"),
        rec("T", 2, "escalate", 1240, level="street"),
        rec("T", 3, "resolved", 1300, level="street"),
    ]
    again = [  # the restart's repeat: the same ids, 60 s later
        rec("T", 2, "escalate", 1300, level="street"),
        rec("T", 3, "resolved", 1360, level="street"),
    ]
    reopened = rec("T", 4, "reopened", 1400, report_id="r1", outcome="resolved")
    runs = runs_from_records([*first, *again, reopened, dict(reopened)], until=2000.0)
    t = runs["T"]
    assert (t.top_level, t.first_resolved_at, t.reopened) == ("street", 1300.0, 1)
    before = runs_from_records([*first, *again, reopened], until=1390.0)["T"]
    assert (before.outcome, before.resolved_at) == ("resolved", 1300.0)


def test_quantiles_interpolate_like_numpy() -> None:
    assert quantile([], 0.5) is None
    assert quantile([5.0], 0.9) == 5.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5


def test_bad_records_and_periods_are_named() -> None:
    with pytest.raises(CampaignError, match="record 0 \\(A:1\\): field \"at\" is 'soon'"):
        campaign_report([{**created("A", 0, "c-top", "p", "x"), "at": "soon"}], {}, 0, 1)
    with pytest.raises(CampaignError, match="the period is empty"):
        campaign_report([], {}, 5.0, 5.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Each raised TypeError, AttributeError or OverflowError: "a bug", exit 70.
        (
            {"data": "grid_cell"},
            "record 0 (A:1): field \"data\" is 'grid_cell', expected an object",
        ),
        ({"data": [1]}, 'record 0 (A:1): field "data" is [1], expected an object'),
        ({"at": 10**400}, 'record 0 (A:1): field "at" is 1000000'),
        # Finite, and no date (helper t52): the report's "created from ... to ..." was
        # "unexpected OverflowError" or "year 33658 is out of range" (exit 70).
        ({"at": 1e308}, 'record 0 (A:1): field "at" is 1e+308, expected epoch seconds (years'),
        ({"at": -1e308}, 'record 0 (A:1): field "at" is -1e+308, expected epoch seconds'),
        (
            {"at": 1_789_999_990_000},
            'record 0 (A:1): field "at" is 1789999990000, expected epoch seconds (years '
            "0001-9999); 1789999990000 looks like epoch milliseconds: 2026-09-21T14:13:10Z in "
            "seconds; divide by 1,000",
        ),
        (
            {"at": 1_789_999_990_000_000_000},
            'record 0 (A:1): field "at" is 1789999990000000000, expected epoch seconds (years '
            "0001-9999); 1789999990000000000 looks like epoch nanoseconds: 2026-09-21T14:13:10Z "
            "in seconds; divide by 1,000,000,000",
        ),
    ],
)
def test_a_record_field_of_the_wrong_type_is_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignError) as info:
        campaign_report([{**created("A", 0, "c-top", "p", "x"), **change}], {}, 0, 1)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'[{"a": 1},',
            ":1: not a JSON record (Expecting value, at the end of the file): --input takes step",
        ),
        (b'{"a": 1}\n{"b": \xe9}\n', ":2: byte 0xe9 is not UTF-8"),
        (b'{"schema": "audit/1"}\n[1, 2]\n', ":2: the record is a list, expected an object"),
        (b'[{"schema": "step/1"}, 7]', ": record 1 of the list is 7, expected an object"),
        # Trial 20: Python's type names, "the record is a int", "a NoneType".
        (b'{"schema": "audit/1"}\n42\n', ":2: the record is 42, expected an object"),
        (b"null\n", ":1: the record is null, expected an object"),
        (b'"step/1"\n', ":1: the record is 'step/1', expected an object"),
        # Trial 5 item 15: an object that is no step or audit record was skipped silently.
        (b'{"schema": "step/1"}\n{"a": 1}\n', ':2: field "schema" is missing, expected one of'),
        (b'[{"schema": "step/2"}]', ": record 0 of the list: field \"schema\" is 'step/2',"),
        (b"[" * 100_000 + b"]" * 100_000, ":1: not a JSON record: nested too deeply"),
        # t66: past the 4,300 digits int() converts, "unexpected ValueError" (exit 70).
        (
            b'{"schema": "step/1", "id": "r:1", "run_id": "r", "action": "run_created", '
            b'"at": ' + b"9" * 5000 + b', "data": {"grid_cell": "c"}}\n',
            ':1: field "at" is 99999',
        ),
        # t169: JSON's \ud800 is no character; the tables and the HTML could not be
        # written with it (exit 70, "a bug").
        (
            b'{"schema": "step/1", "id": "r:1", "run_id": "r", "action": "run_created", '
            b'"at": 1, "data": {"grid_cell": "c", "department": "po\\ud800lice"}}\n',
            ":1: field \"data.department\" is 'po\\ud800lice': a lone surrogate \\ud800 is not",
        ),
        (
            b'[{"schema": "step/1", "detail": "\\udc80"}]',
            ": record 0 of the list: field \"detail\" is '\\udc80': a lone surrogate",
        ),
    ],
)
def test_an_export_that_cannot_be_read_is_named_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, message: str
) -> None:
    # Each was "unexpected JSONDecodeError/UnicodeDecodeError/RecursionError. This is a
    # bug" (exit 70), or a record skipped without a word.
    export = tmp_path / "records.jsonl"
    export.write_bytes(body)
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 2
    assert capsys.readouterr().err.startswith(f"citybrain: {export}{message}")


def test_unknown_cells_count_at_the_city_only_and_html_renders(report: dict[str, Any]) -> None:
    out = campaign_report([created("X", 10, "nowhere", "", "x")], {}, 0.0, 100.0)
    assert [(r["scope"], r["name"]) for r in out["rows"]] == [("city", "?"), ("department", "?")]
    page = render_html(report)
    assert "<h2>By community</h2>" in page and "66.7 %" in page and "(+16.7 pt)" in page


def test_cli_reads_an_export_and_writes_json_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    base = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    period = ["--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20+00:00"]
    assert main([*base, *period, "--out", str(tmp_path / "r.json")]) == 0
    written = json.loads((tmp_path / "r.json").read_text())
    city = next(r for r in written["rows"] if r["scope"] == "city")
    assert city["figures"] == pytest.approx(CITY_NOW)
    assert main([*base, *period, "--out", str(tmp_path / "r.html")]) == 0
    assert "<h2>By department</h2>" in (tmp_path / "r.html").read_text()
    assert main([*base, "--from", "2024-13-01", "--to", "2024-12-02"]) == 2
    assert "--from is '2024-13-01', expected a date like 2024-05-26" in capsys.readouterr().err
    assert main([*base, *period, "--out", str(tmp_path / "r.txt")]) == 2
    capsys.readouterr()
    # Without --out: tables a person reads; --json: the same report for machines.
    assert main([*base, *period, "--wide"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(
        "runs counted by the date they were created, 1970-01-01 00:16 UTC to 1970-01-01 00:33 UTC"
    )
    header = next(ln for ln in text.splitlines() if ln.startswith("CITY "))
    assert header.split() == ["CITY", *(k.upper() for k in FIGURES)]
    assert "{" not in text
    assert main([*base, *period, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == written["rows"]
    export.write_text('{"run_id": "A"\n')
    assert main([*base, *period]) == 2
    assert "records.jsonl:1: not a JSON record" in capsys.readouterr().err


def test_an_empty_period_says_so_and_which_range_the_input_covers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new-user trial of issue 15: a period with no run exited 0 with empty tables,
    and nothing said runs count by the date they were created."""
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    out = tmp_path / "r.json"
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("citybrain: no run was created from 2024-05-26")
    first = min(r["at"] for r in RECORDS if r["action"] == "run_created")
    last = max(r["at"] for r in RECORDS if r["action"] == "run_created")
    runs = len({r["run_id"] for r in RECORDS if r["action"] == "run_created"})
    assert f"the {runs} runs in {export} were created from" in err[0]
    assert f"1970-01-01 00:{int(first) // 60:02d}" in err[0]
    assert f"to 1970-01-01 00:{int(last) // 60:02d} UTC" in err[0]
    assert "--from 1970-01-01 --to 1970-01-02" in err[0] and "nothing was written" in err[0]
    assert not out.exists()
    # The suggested period holds them.
    assert main([*argv, "--from", "1970-01-01", "--to", "1970-01-02", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs_in_period"] == runs
    export.write_text("")
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 1
    assert f"no runs in {export} at all" in capsys.readouterr().err


def test_html_says_runs_count_by_creation_date(report: dict[str, Any]) -> None:
    assert "Runs are counted by the date they were created." in render_html(report)


@pytest.mark.parametrize("width", [80, 120])
def test_tables_fit_the_terminal_and_say_what_they_left_out(
    report: dict[str, Any],
    width: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15 item 6: every column was ~230 characters wide and wrapped."""
    wide = render_text(report).splitlines()
    assert max(len(ln) for ln in wide[1:]) > 120  # the case needs fitting at all
    lines = render_text(report, width).splitlines()
    assert max(len(ln) for ln in lines) <= width  # the prose above the tables too
    header = next(ln for ln in lines if ln.startswith("CITY ")).split()
    assert header[:4] == ["CITY", "FOUND", "RESOLVED", "RESOLUTION_RATE"]
    left = [k for k in FIGURES if k.upper() not in header]
    prose = " ".join(lines[: lines.index("")])
    assert left and f"{len(left)} of {len(FIGURES)} figures left out to fit {width}" in prose
    assert f"({', '.join(left)}): --wide shows every one" in prose
    # The same from the command, at the terminal's width (COLUMNS, as a terminal sets it).
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    monkeypatch.setenv("COLUMNS", str(width))
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    args = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*args, "--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_a_long_name_is_cut_to_fit(report: dict[str, Any]) -> None:
    long = {**report["rows"][0], "name": "a community with a very long name " * 3}
    text = render_text({**report, "rows": [long, *report["rows"][1:]]}, 80)
    assert max(len(ln) for ln in text.splitlines()) <= 80
    first = next(ln for ln in text.splitlines() if ln.startswith("a com…"))
    # The start and the end kept; trial 5 items 15 and 16: against a previous period
    # with no runs here, "(new)", not "(+1)" beside rates with no change.
    assert first.startswith("a com… name   1 (new)  1         100.0 %     ")


def test_cut_ids_stay_distinct() -> None:
    """Issue 15: at 80 columns two ids cut at the end both read "nyc-cb-10-queens-z…"."""
    ids = ["nyc-cb-10-queens-zone-north-01", "nyc-cb-10-queens-zone-north-02", "short"]
    cut = cut_labels(ids, 19)
    assert cut[2] == "short" and all(len(c) <= 19 for c in cut)
    assert cut[0] != cut[1] and cut[0].endswith("01") and cut[1].endswith("02")
    same_end = ["alpha-district-x-0001", "bravo-district-x-0001"]
    assert len(set(cut_labels(same_end, 12))) == 2  # the start tells them apart


def test_one_run_is_one_run_in_the_empty_period_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Third new-user trial, item 13: "the 1 run … were created"."""
    first = next(r for r in RECORDS if r["action"] == "run_created")
    export = tmp_path / "records.jsonl"
    export.write_text(
        "\n".join(json.dumps(r) for r in RECORDS if r.get("run_id") == first["run_id"]) + "\n"
    )
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 1
    err = capsys.readouterr().err
    assert f"the 1 run in {export} was created at 1970-01-01 00:" in err
    assert "were created from" not in err


@pytest.mark.parametrize(("n", "word"), [(0, "are"), (1, "is"), (2, "are"), (1_000, "are")])
def test_the_verb_agrees_with_the_count(n: int, word: str) -> None:
    from citybrain.text import agreeing

    assert agreeing(n, "is", "are") == word


def test_one_run_in_a_cell_the_grid_lacks_is_one_run_in_the_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t209: "the grid … lacks the cells of 1 run: …; they are counted only at the city
    level". Fails on the old code."""
    first = next(r for r in RECORDS if r["action"] == "run_created")
    export = tmp_path / "records.jsonl"
    export.write_text(
        "\n".join(json.dumps(r) for r in RECORDS if r.get("run_id") == first["run_id"]) + "\n"
    )
    grid = tmp_path / "other.yaml"
    grid.write_text(
        "version: 1\ncells:\n  - {id: bj, level: city, name: Beijing, unit: centre}\nsensors: []\n"
    )
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid), "--json"]
    assert main([*argv, "--from", "1970-01-01", "--to", "1970-01-02"]) == 0
    err = capsys.readouterr().err
    assert "lacks the cells of 1 run: " in err
    assert '(1 run); it is counted only at the city level, as city "?"' in err, err


def test_runs_in_cells_the_grid_lacks_are_named_in_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5 item 7: --grid of another city put every run under city "?" silently."""
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    grid = tmp_path / "other.yaml"
    grid.write_text(
        "version: 1\ncells:\n  - {id: bj, level: city, name: Beijing, unit: centre}\nsensors: []\n"
    )
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid), "--json"]
    assert main([*argv, "--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20"]) == 0
    out, err = capsys.readouterr()
    # Every run of both periods ([0, 1000) and [1000, 2000)), by its cell.
    cells: dict[str, int] = {}
    for r in RECORDS:
        if r["action"] == "run_created" and r["at"] < 2000:
            cells[r["data"]["grid_cell"]] = cells.get(r["data"]["grid_cell"], 0) + 1
    listed = ", ".join(f"{c} ({n} run{'s' if n > 1 else ''})" for c, n in sorted(cells.items()))
    assert (
        f"citybrain: warning: the grid {grid} lacks the cells of {sum(cells.values())} runs: "
        f'{listed}; they are counted only at the city level, as city "?"'
    ) in err
    assert json.loads(out)["unplaced_cells"] == dict(sorted(cells.items()))
    # With the grid the worker ran with: no warning.
    fixture = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv[argv.index(str(grid))] = str(fixture)
    assert main([*argv, "--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_an_input_without_runs_and_a_year_one_period_are_said_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5 item 15: an empty --input was told "give --prefix … or --input", and
    --from 0001-01-01 was printed "1-01-01"."""
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    export = tmp_path / "records.jsonl"
    export.write_text("")
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 1
    err = capsys.readouterr().err
    assert f"no runs in {export} at all (no records)" in err
    assert "or --input" not in err and "--export FILE" in err
    export.write_text(json.dumps({"schema": "audit/1", "action": "api_refused"}) + "\n")
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 1
    assert "(1 record, none a run_created step with a grid_cell)" in capsys.readouterr().err
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    assert main([*argv, "--from", "0001-01-01", "--to", "1970-01-01T00:33:20"]) == 0
    out = capsys.readouterr().out
    assert "created, 0001-01-01 00:00 UTC to 1970-01-01 00:33 UTC" in " ".join(out.split())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00+01:00", "1970-01-01T00:33:20"),  # year 0 in UTC
        ("1970-01-01", "9999-12-31T23:59:59-05:00"),  # year 10000 in UTC
    ],
)
def test_a_period_outside_the_utc_years_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    """Trial 22: "unexpected ValueError: year 0 is out of range … a bug" (exit 70)."""
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", start, "--to", end]) == 2
    err = capsys.readouterr().err
    flag, value = ("--from", start) if start.startswith("0001") else ("--to", end)
    assert f"citybrain: {flag} is {value!r}: outside the years 1 to 9999 in UTC" in err


@pytest.mark.parametrize(
    ("start", "end"), [("0001-01-01", "9999-12-31"), ("0001-01-01", "2024-05-27")]
)
def test_a_previous_period_before_the_year_1_is_said_on_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    """t171: the previous period is the period's length before --from, so --from
    0001-01-01 starts it before the year 1; the HTML page, which names it, ended in
    "unexpected ValueError: year -9998 is out of range" (exit 70) while the text tables
    and --out x.json were written."""
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    page = tmp_path / "report.html"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", start, "--to", end, "--out", str(page)]) == 0
    text = " ".join(page.read_text().split())
    assert f"Period: {start} 00:00 UTC to {end} 00:00 UTC" in text
    assert f"the previous period: before 0001-01-01 00:00 UTC to {start} 00:00 UTC" in text
    assert "Traceback" not in capsys.readouterr().err


def test_runs_on_the_last_day_a_date_can_show_are_found_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Helper t52: a run created on 9999-12-31 made the empty period's advice (its next
    day) an OverflowError, and a --to of 23:59:59.999999, which rounds to the year
    10000 as epoch seconds, a ValueError when the report printed it (exit 70 each)."""
    last = 253_402_300_799  # 9999-12-31T23:59:59Z
    export = tmp_path / "records.jsonl"
    export.write_text(json.dumps(created("Z", last, "c-top", "police", "Noise")) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    assert main([*argv, "--from", "2024-05-26", "--to", "2024-05-27"]) == 1
    advice = "e.g. --from 9999-12-31 --to 9999-12-31T23:59:59.9999Z; nothing was written"
    assert advice in capsys.readouterr().err
    assert main([*argv, "--from", "9999-12-31", "--to", "9999-12-31T23:59:59.9999Z"]) == 0
    assert "police" in capsys.readouterr().out
    end = "9999-12-31T23:59:59.999999Z"
    assert main([*argv, "--from", "9999-12-31", "--to", end]) == EXIT_USAGE
    assert f"--to is {end!r}: outside the years 1 to 9999 in UTC" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("2024-05-26T10:00:00z", 1716717600.0),  # the worker's lowercase z: was refused
        ("2024-05-26t10:00Z", 1716717600.0),
        ("2024-05-26 10:00:00.123456789+0000", 1716717600.123456),
        ("2024-05-26T10:00", 1716717600.0),  # no zone: UTC
        (" 2024-05-26 ", 1716681600.0),
        # Taken by fromisoformat as dates, where the worker refuses them (helper t52).
        ("2024-05-26X10:00", None),
        ("2024-W21-7", None),
        ("20240526", None),
        ("２０２４-05-26", None),
        ("2024-05-26T23:59:60Z", None),
        ("2024-05-26T24:00:00Z", None),
    ],
)
def test_a_period_s_times_are_read_as_the_worker_reads_times(text: str, at: float | None) -> None:
    from citybrain.cli import CliError
    from citybrain.cli.campaign import _instant

    if at is not None:
        assert _instant(text, "--from") == at
        return
    with pytest.raises(CliError, match=f"--from is {re.escape(repr(text))}, expected a date like"):
        _instant(text, "--from")


def test_a_zone_and_a_dst_change_in_the_period_are_instants() -> None:
    """--from/--to with zones are instants: New York's spring-forward day is 23 hours,
    and the previous period is the 23 hours before it."""
    from citybrain.cli.campaign import _instant

    start = _instant("2024-03-10T00:00-05:00", "--from")
    end = _instant("2024-03-11T00:00-04:00", "--to")
    assert (start, end - start) == (1710046800.0, 23 * 3600.0)
    assert _instant("2024-03-10T05:00", "--from") == start  # no zone: UTC


def test_the_previous_period_is_read_by_its_own_end() -> None:
    """Trial 22: a run of the previous period that was acknowledged, resolved, reopened
    or answered only during this period counted so in the previous figures, which then
    differed from a report of the previous period itself."""
    late = [
        created("P", 100, "c-top", "police", "Noise"),
        rec("P", 2, "report_covered", 100, detail="p1", channel="app"),
        rec("P", 3, "acknowledged", 1100),  # after the previous period
        rec("P", 4, "resolved", 1200),
        rec("P", 5, "answer", 1300, report_id="p1", satisfied=False),
        rec("P", 6, "reopened", 1300),
        created("Q", 200, "c-top", "police", "Noise"),
        rec("Q", 2, "acknowledged", 260),
        rec("Q", 3, "resolved", 1000),  # exactly at the previous period's end: by it
        created("N", 1500, "c-top", "police", "Noise"),  # a repeat of Q (resolved 1000)
        rec("N", 2, "report_covered", 1500, detail="n1", channel="app"),
    ]
    paths = {"c-top": {"community": "c-top", "street": "s-hill"}}
    both = campaign_report(late, paths, 1000.0, 2000.0)
    alone = campaign_report(late, paths, 0.0, 1000.0)
    city = row(both, "street", "s-hill")
    assert city["previous"] == row(alone, "street", "s-hill")["figures"]
    # By hand: P open, never acknowledged by 1000; Q acknowledged after 60 s, resolved
    # after 800 s.
    assert city["previous"] == {
        **NONE,
        "found": 2,
        "reports": 1,
        "resolved": 1,
        "resolution_rate": 0.5,
        "tta_median": 60.0,
        "tta_p90": 60.0,
        "ttr_median": 800.0,
        "ttr_p90": 800.0,
        "first_line_share": 1.0,
    }
    assert city["figures"] == {
        **NONE,
        "found": 1,
        "reports": 1,
        "resolution_rate": 0.0,
        "repeat_reports": 1,
    }
    # A rehearsal's reading to the end reads both periods to the end.
    ended = campaign_report(late, paths, 1000.0, 2000.0, until=float("inf"))
    assert row(ended, "street", "s-hill")["previous"]["reopened"] == 1


def test_a_control_character_in_a_name_is_shown_as_its_escape() -> None:
    """Trial 22: a department from a record or an incident file went to the terminal as
    it was (an escape sequence, a newline splitting the table's row)."""
    out = campaign_report([created("X", 10, "c-top", "po\x1b[2Jlice\nx", "x")], {}, 0.0, 100.0)
    text = render_text(out)
    assert "\x1b" not in text
    assert any(line.startswith("po\\x1b[2Jlice\\nx  1 (new)") for line in text.splitlines())


def test_a_notify_step_to_the_district_is_no_escalation() -> None:
    """Trial 22: air-pollution notifies the district at once while the run stays at the
    community; the run was counted "escalated to the district" and "solved at the first
    line" at once. The run's own level decides; an escalation still counts."""
    told = [
        created("P", 10, "c-top", "environment", "pm25"),
        rec("P", 2, "notify", 10, level="district"),
        rec("P", 3, "resolved", 50, level="community"),
        created("Q", 20, "c-top", "environment", "pm25"),
        rec("Q", 2, "escalate", 30, level="district"),
        rec("Q", 3, "notify", 30, level="district"),
        rec("Q", 4, "resolved", 60, level="district"),
    ]
    out = campaign_report(told, {}, 0.0, 100.0)
    city = next(r for r in out["rows"] if r["scope"] == "city")["figures"]
    assert (city["escalated_district"], city["first_line_share"]) == (1, 0.5)


def test_the_html_page_gives_the_periods_and_the_cells_the_grid_lacks() -> None:
    """Trial 22: the page named neither period (only the title's --from/--to as typed,
    and a rehearsal's page nothing), nor the runs counted as city "?"."""
    out = campaign_report([created("X", 1000, "nowhere", "", "x")], {}, 1000.0, 4600.0)
    page = render_html(out)
    assert (
        "<p>Period: 1970-01-01 00:16 UTC to 1970-01-01 01:16 UTC; the previous period: "
        "1969-12-31 23:16 UTC to 1970-01-01 00:16 UTC.</p>" in page
    )
    assert "as city &ldquo;?&rdquo; (cell, runs): nowhere (1).</p>" in page
    assert page.count("<!doctype") == 1
    part = render_html(out, "second", page=False)
    assert "<!doctype" not in part and "<title>" not in part and "<h1>second</h1>" in part


def test_a_wide_name_is_cut_by_terminal_columns(report: dict[str, Any]) -> None:
    """Trial 20: a CJK community name, cut by characters, took twice its column and
    pushed the table to 91 columns at 80."""
    from citybrain.text import display_width

    name = "東京都千代田区丸の内一丁目町内会北口" * 2
    long = {**report["rows"][0], "name": name}
    text = render_text({**report, "rows": [long, *report["rows"][1:]]}, 80)
    assert max(display_width(ln) for ln in text.splitlines()) <= 80
    assert any(ln.startswith("東京…会北口  1 (new)") for ln in text.splitlines())
    cut = cut_labels([name + "01", name + "02", "short"], 19)
    assert cut[2] == "short" and all(display_width(c) <= 19 for c in cut)
    assert cut[0] != cut[1] and cut[0].endswith("01") and cut[1].endswith("02")


def _repeats_by_definition(runs: list[RunFacts]) -> dict[str, bool]:
    """The module doc's rule, pair by pair: an earlier run of the same cell and category
    was first resolved at or before this one's creation."""
    return {
        run.run_id: any(
            other is not run
            and (other.grid_cell, other.category) == (run.grid_cell, run.category)
            and other.created_at < run.created_at
            and other.first_resolved_at is not None
            and other.first_resolved_at <= run.created_at
            for other in runs
        )
        for run in runs
    }


_SMALL_TIMES = st.integers(min_value=0, max_value=6).map(float)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c-top", "c-dock"]),
            st.sampled_from(["noise", "flood"]),
            _SMALL_TIMES,
            st.one_of(st.none(), st.integers(min_value=0, max_value=4).map(float)),
        ),
        max_size=12,
    )
)
def test_repeat_runs_follows_its_definition(
    given_runs: list[tuple[str, str, float, float | None]],
) -> None:
    """Trial 26: repeat_runs compared every pair of a place's runs (5 s for 8,000 runs in
    one cell and category, growing with the square); its sort-and-sweep must give the
    pairwise rule's answer, ties in creation time and resolutions at the creation
    instant included."""
    runs = [
        RunFacts(
            f"r{i}",
            cell,
            "police",
            category,
            created,
            first_resolved_at=None if after is None else created + after,
        )
        for i, (cell, category, created, after) in enumerate(given_runs)
    ]
    assert repeat_runs(runs) == _repeats_by_definition(runs)


class _CountedRun(RunFacts):
    """A run that counts how often its creation time is read (by every instance)."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "created_at":
            type(self).reads += 1
        return super().__getattribute__(name)


def test_repeat_runs_reads_each_run_a_bounded_number_of_times() -> None:
    """Trial 26: 2,000 runs of one cell and category were compared pair by pair, about
    4,000,000 reads of a creation time (5 s at 8,000 runs, growing with the square). Now
    a sort and a sweep: a few reads per run. Counted, not timed."""
    # Open runs (none resolved), and one resolved last: each run had every other read.
    runs = [_CountedRun(f"r{i}", "c-top", "police", "noise", float(i)) for i in range(2000)]
    runs[0].first_resolved_at = 1999.0
    _CountedRun.reads = 0
    found = repeat_runs(runs)
    assert _CountedRun.reads <= 10 * len(runs)
    assert [r for r, again in found.items() if again] == ["r1999"]


def _city_figures(export: Path, tmp_path: Path) -> Any:
    """The city row's figures of `campaign report --input export` over the records'
    period, written as JSON under ``tmp_path``."""
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    period = ["--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20+00:00"]
    assert main([*argv, *period, "--out", str(tmp_path / "r.json")]) == 0
    written = json.loads((tmp_path / "r.json").read_text())
    return next(r for r in written["rows"] if r["scope"] == "city")["figures"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_an_export_with_unicode_line_breaks_inside_a_string_is_read(
    tmp_path: Path, separator: str
) -> None:
    """Trial 26: the worker writes its records with orjson, which leaves U+2028, U+2029
    and U+0085 in a note unescaped, as JSON allows; an export of the topics one message
    a line (kcat, jq -c) holds them raw. str.splitlines() broke such a record in two at
    them: "records.jsonl:5: not a JSON record: Unterminated string" for a valid file.
    JSON lines end in \\n (or \\r\\n) only."""
    noted = [dict(r) for r in RECORDS]
    noted[4] = {**noted[4], "detail": f"pump 1{separator}pump 2"}  # A's resolution
    export = tmp_path / "records.jsonl"
    export.write_bytes(b"\r\n".join(orjson.dumps(r) for r in noted) + b"\n")
    assert _city_figures(export, tmp_path) == pytest.approx(CITY_NOW)


@pytest.mark.parametrize("newline", [b"\r", b"\r\n", b"\n"], ids=["CR", "CRLF", "LF"])
def test_an_export_with_any_line_ending_is_read(tmp_path: Path, newline: bytes) -> None:
    """t57: an export saved with CR-only line endings (an old Mac editor's) was one line,
    "records.jsonl:1: not a JSON record (Extra data)". JSON holds no raw CR inside a
    string, so a lone CR ends a line as LF and CRLF do."""
    export = tmp_path / "records.jsonl"
    export.write_bytes(newline.join(orjson.dumps(r) for r in RECORDS) + newline)
    assert _city_figures(export, tmp_path) == pytest.approx(CITY_NOW)


def test_exports_joined_with_cat_each_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    """t180: two exports joined with `cat`, each starting with a UTF-8 byte order mark
    (an editor's), were "records.jsonl:N: not a JSON record (Unexpected UTF-8 BOM
    (decode using utf-8-sig))" at the second's first line."""
    half = len(RECORDS) // 2
    export = tmp_path / "records.jsonl"
    export.write_bytes(
        b"".join(
            b"\xef\xbb\xbf" + b"".join(orjson.dumps(r) + b"\n" for r in part)
            for part in (RECORDS[:half], RECORDS[half:])
        )
    )
    assert _city_figures(export, tmp_path) == pytest.approx(CITY_NOW)


def test_an_export_a_crash_padded_with_nuls_names_the_line_of_the_block(tmp_path: Path) -> None:
    """t180: an export whose last block a crash left unwritten (NULs) was "not a JSON
    record (Expecting value)" at that line; a NUL alone is named too."""
    export = tmp_path / "records.jsonl"
    export.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in RECORDS[:3]) + b"\0" * 4096)
    with pytest.raises(CliError) as refused:
        _read_records(export)
    assert str(refused.value) == (
        f"{export}:4: 4,096 NULs in a row, a block of the file left unwritten (by a crash "
        "while it was written?) from column 1, not text"
    )
    export.write_bytes(orjson.dumps(RECORDS[0]) + b'\n{"schema":\0}\n')
    with pytest.raises(CliError, match=rf"{export.name}:2: byte 0x00 \(NUL\) at column 11"):
        _read_records(export)


def test_a_bad_record_after_cr_line_endings_is_named_by_its_line(tmp_path: Path) -> None:
    export = tmp_path / "records.jsonl"
    export.write_bytes(b"\r".join([*(orjson.dumps(r) for r in RECORDS[:3]), b"{oops"]))
    with pytest.raises(CliError, match=rf"{export.name}:4: not a JSON record"):
        _read_records(export)


@pytest.mark.parametrize("satisfied", ["false", 0, None])
def test_an_answer_that_is_not_true_or_false_is_named(satisfied: object) -> None:
    """Trial 26: bool() of "false" is True: a hand-edited export's answer counted as
    satisfied (and a missing one as not satisfied)."""
    answer = rec("A", 2, "answer", 10, report_id="r1", satisfied=satisfied)
    if satisfied is None:
        answer["data"].pop("satisfied")
    with pytest.raises(CampaignError) as info:
        campaign_report([created("A", 0, "c-top", "p", "x"), answer], {}, 0, 100)
    assert str(info.value).startswith('record 1 (A:2): field "data.satisfied" is ')
    assert str(info.value).endswith(", expected true or false")


@pytest.mark.parametrize(
    ("word", "day"),
    [
        ("today", "2026-12-03"),
        ("TODAY", "2026-12-03"),
        ("Yesterday", "2026-12-02"),
        ("tomorrow", "2026-12-04"),
        (" TOMORROW ", "2026-12-04"),
    ],
)
def test_a_date_option_takes_the_days_by_name(word: str, day: str) -> None:
    # Helper brief t47, fault 5: the README's `--from TODAY --to TOMORROW`, typed as it
    # stands, was "--from is 'TODAY', expected a date like 2024-05-26". UTC days: 19:30
    # on the 2nd at UTC-5 is already the 3rd in UTC.
    from datetime import datetime, timedelta, timezone

    from citybrain.cli.campaign import _instant

    now = datetime(2026, 12, 2, 19, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert _instant(word, "--from", now) == _instant(day, "--from")


def test_a_campaign_report_of_today_runs_as_the_readme_types_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "none.jsonl"
    records.write_text("")
    argv = ["campaign", "report", "--input", str(records), "--from", "TODAY", "--to", "TOMORROW"]
    assert main(argv) == 1  # the command ran: no run in the period
    assert "expected a date" not in capsys.readouterr().err


def test_a_misspelt_day_name_and_an_empty_period_say_what_to_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # t48: `--from tody` listed the forms without the closest; `--from today --to today`
    # was refused without saying that the period ends before --to.
    records = tmp_path / "none.jsonl"
    records.write_text("")
    argv = ["campaign", "report", "--input", str(records)]
    assert main([*argv, "--from", "tody", "--to", "tomorrow"]) == EXIT_USAGE
    assert "--from is 'tody', expected a date like" in (err := capsys.readouterr().err)
    assert err.rstrip().endswith("(did you mean 'today'?)"), err
    assert main([*argv, "--from", "today", "--to", "today"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--to today is not after --from today: the period ends before --to" in err
    assert "e.g. --from today --to tomorrow" in err


@pytest.mark.parametrize("name", ["r.json", "r.html"])
def test_a_report_the_disk_refuses_leaves_the_file_as_it_was_and_names_the_option(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t164: `campaign report --out` on a full disk left an empty file and said
    "unexpected OSError … This is a bug" (exit 70; fails on the old code)."""
    import errno

    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    out = tmp_path / name
    out.write_text("last week's report\n")
    real = Path.write_text

    def full_disk(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        real(self, data[:10])  # what the disk took before it filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    argv = ["campaign", "report", "--input", str(export), "--grid", str(grid)]
    period = ["--from", "1970-01-01T00:16:40", "--to", "1970-01-01T00:33:20+00:00"]
    assert main([*argv, *period, "--out", str(out)]) == 2
    monkeypatch.undo()
    assert capsys.readouterr().err == (
        f"citybrain: --out '{out}' could not be written (No space left on device); it is as "
        "it was before: free space on its disk, or give a path on another one\n"
    )
    assert out.read_text() == "last week's report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([export.name, name])
