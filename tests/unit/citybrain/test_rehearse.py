"""The rehearsal's simulated units on tiny hand-made cases: sampling, capacity (a busy
unit takes no second incident), no answer -> escalation, shifts, the ack-deadline
comparison, profile errors; and the committed profiles and CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from citybrain.campaign import campaign_report
from citybrain.cli import main
from citybrain.rehearse import (
    DepartmentUnits,
    Distribution,
    Incident,
    RehearsalError,
    SatisfactionModel,
    nearest,
    profile_distributions,
    read_incidents,
    rehearse,
    satisfaction_model,
    units_profile,
)
from playbooks.grid import Grid
from playbooks.loader import load_playbook
from streams.settings import REPO_ROOT

PLAYBOOK = load_playbook(REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml")
PROFILES = REPO_ROOT / "datasets" / "service_times"
FIXED_60 = Distribution((0.0, 1.0), (60.0, 60.0))
FIXED_600 = Distribution((0.0, 1.0), (600.0, 600.0))
DAY = 1716768000.0  # 2024-05-27 00:00 UTC


def units(**kw: Any) -> dict[str, DepartmentUnits]:
    spec = {
        "units": 1,
        "capacity": 1,
        "no_answer": 0.0,
        "shifts": ((0.0, 24.0),),
        "response": FIXED_60,
        "resolve": FIXED_600,
    }
    spec.update(kw)
    return {"default": DepartmentUnits(**spec)}


def report(i: int, at: float) -> Incident:
    return Incident(DAY + at, f"r{i}", "app", "Noise", "c-top", "police")


def actions(records: list[dict[str, Any]], run: str) -> list[tuple[float, str, str]]:
    return [
        (r["at"] - DAY, r["action"], r["level"])
        for r in records
        if r["run_id"] == run and r["action"] in ("acknowledged", "escalate", "resolved")
    ]


def test_sampling_interpolates_between_quantiles() -> None:
    d = Distribution((0.0, 0.5, 1.0), (0.0, 100.0, 300.0))
    assert [d.sample(u) for u in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.0, 50.0, 100.0, 200.0, 300.0]


def test_one_unit_takes_one_incident_at_a_time(grid: Grid) -> None:
    out = rehearse([report(1, 0), report(2, 10)], PLAYBOOK, grid, units(), ack_deadline=900)
    # r1: acked after 60 s, resolved at 600. r2 waits for the unit: asked at 600, acked
    # at 660, resolved at max(10 + 600, 660 + 60) = 720.
    assert actions(out.records, "rh-r1") == [
        (60.0, "acknowledged", "community"),
        (600.0, "resolved", "community"),
    ]
    assert actions(out.records, "rh-r2") == [
        (660.0, "acknowledged", "community"),
        (720.0, "resolved", "community"),
    ]
    assert out.queued == 1 and out.queued_by == {"default": 1}
    # With a 5-minute deadline r2 waits too long at the community and escalates.
    short = rehearse([report(1, 0), report(2, 10)], PLAYBOOK, grid, units(), ack_deadline=300)
    assert actions(short.records, "rh-r2") == [
        (310.0, "escalate", "street"),
        (610.0, "escalate", "district"),
        (660.0, "acknowledged", "district"),
        (720.0, "resolved", "district"),
    ]


def test_a_unit_busy_for_a_set_time_takes_the_next_incident_before_the_first_closes(
    grid: Grid,
) -> None:
    # busy 100 s: the unit acks r1 at 60 and is free at 160, while r1 stays open until 600.
    # r2 (at 10) is asked at 160, acked at 220, resolved at max(10 + 600, 220 + 60) = 610.
    out = rehearse([report(1, 0), report(2, 10)], PLAYBOOK, grid, units(busy=100.0), 900)
    assert actions(out.records, "rh-r1") == [
        (60.0, "acknowledged", "community"),
        (600.0, "resolved", "community"),
    ]
    assert actions(out.records, "rh-r2") == [
        (220.0, "acknowledged", "community"),
        (610.0, "resolved", "community"),
    ]
    assert out.queued_by == {"default": 1}


def test_a_unit_that_does_not_answer_sends_the_run_up_the_ladder(grid: Grid) -> None:
    out = rehearse([report(1, 0)], PLAYBOOK, grid, units(no_answer=0.999999), ack_deadline=300)
    # Nobody answers at any level: escalated twice, then left open, unresolved.
    assert actions(out.records, "rh-r1") == [
        (300.0, "escalate", "street"),
        (600.0, "escalate", "district"),
    ]
    assert out.unanswered == 3
    figures = campaign_report(out.records, {"c-top": grid.path("c-top")}, DAY, DAY + 1, until=1e12)
    city = next(r for r in figures["rows"] if r["scope"] == "city")["figures"]
    assert (city["found"], city["resolved"], city["escalated_district"]) == (1, 0, 1)


def test_off_shift_units_start_at_their_shift(grid: Grid) -> None:
    # On duty 08:00-20:00 UTC; a report at 02:00 waits until 08:00, and escalates meanwhile.
    out = rehearse([report(1, 2 * 3600)], PLAYBOOK, grid, units(shifts=((8.0, 20.0),)), 900)
    acked = [a for a in actions(out.records, "rh-r1") if a[1] == "acknowledged"]
    assert acked == [(8 * 3600 + 60.0, "acknowledged", "district")]


def test_the_same_seed_gives_the_same_rehearsal(grid: Grid) -> None:
    many = [report(i, 30.0 * i) for i in range(20)]
    spread = units(units=3, no_answer=0.2, response=Distribution((0.0, 1.0), (10.0, 800.0)))
    a = rehearse(many, PLAYBOOK, grid, spread, 300, seed=7)
    b = rehearse(many, PLAYBOOK, grid, spread, 300, seed=7)
    assert a.records == b.records and a.unanswered > 0


def answers(**kw: Any) -> SatisfactionModel:
    spec: dict[str, Any] = {
        "answer_rate": 1.0,
        "answer_after": 100.0,
        "unsatisfied_base": 1.0,
        "unsatisfied_per_hour": 0.0,
        "unsatisfied_max": 1.0,
        "max_answers": 2,
    }
    spec.update(kw)
    return SatisfactionModel(**spec)


def test_unsatisfied_share_rises_with_the_wait_up_to_its_ceiling() -> None:
    model = answers(unsatisfied_base=0.05, unsatisfied_per_hour=0.05, unsatisfied_max=0.5)
    # 5 % at once, 5 points more per hour, at most 50 %.
    assert model.unsatisfied(0) == 0.05
    assert model.unsatisfied(3600) == pytest.approx(0.10)
    assert model.unsatisfied(1800) == pytest.approx(0.075)
    assert model.unsatisfied(36000) == 0.5


def test_unsatisfied_reporters_reopen_then_escalate_the_run(grid: Grid) -> None:
    # Unit: ack 60 s after being asked, resolve 600 s after the work began. Every
    # closure is answered 100 s later, never satisfied, at most twice:
    #   0 report; 60 ack; 600 resolved + closure; 700 "not satisfied" -> reopened at the
    #   community, asked again; 760 ack; 1300 resolved (700 + 600) + closure; 1400 "not
    #   satisfied" -> reopened and escalated to the street; 1460 ack; 2000 resolved
    #   + closure, which the reporter (two answers given) does not answer.
    out = rehearse([report(1, 0)], PLAYBOOK, grid, units(), 900, satisfaction=answers())
    assert actions(out.records, "rh-r1") == [
        (60.0, "acknowledged", "community"),
        (600.0, "resolved", "community"),
        (760.0, "acknowledged", "community"),
        (1300.0, "resolved", "community"),
        (1400.0, "escalate", "street"),
        (1460.0, "acknowledged", "street"),
        (2000.0, "resolved", "street"),
    ]
    steps = [
        (r["at"] - DAY, r["action"]) for r in out.records if r["action"] in ("answer", "reopened")
    ]
    assert steps == [
        (700.0, "answer"),
        (700.0, "reopened"),
        (1400.0, "answer"),
        (1400.0, "reopened"),
    ]
    assert (out.answers, out.reopened) == (2, 2)
    figures = campaign_report(out.records, {"c-top": grid.path("c-top")}, DAY, DAY + 1, until=1e12)
    city = next(r for r in figures["rows"] if r["scope"] == "city")["figures"]
    # One run, reopened, resolved at 2000 s; its one report answered, last answer unsatisfied.
    assert (city["reopened"], city["answers"], city["satisfaction_rate"]) == (1, 1, 0.0)
    assert city["ttr_median"] == 2000.0


def test_satisfied_and_silent_reporters_leave_the_run_closed(grid: Grid) -> None:
    happy = rehearse(
        [report(1, 0)], PLAYBOOK, grid, units(), 900, satisfaction=answers(unsatisfied_base=0.0)
    )
    assert (happy.answers, happy.reopened) == (1, 0)
    figures = campaign_report(
        happy.records, {"c-top": grid.path("c-top")}, DAY, DAY + 1, until=1e12
    )
    city = next(r for r in figures["rows"] if r["scope"] == "city")["figures"]
    assert (city["answers"], city["satisfaction_rate"], city["ttr_median"]) == (1, 1.0, 600.0)
    silent = rehearse(
        [report(1, 0)], PLAYBOOK, grid, units(), 900, satisfaction=answers(answer_rate=0.0)
    )
    assert (silent.answers, silent.reopened) == (0, 0)
    # Without a model, no answers at all, and the same run as before.
    plain = rehearse([report(1, 0)], PLAYBOOK, grid, units(), 900)
    assert [r for r in plain.records if r["action"] == "answer"] == []
    assert actions(plain.records, "rh-r1") == actions(silent.records, "rh-r1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"answer_rate": 1.5}, r"satisfaction.answer_rate is 1.5, expected a probability"),
        (
            {"max_answers": 0},
            r"satisfaction.max_answers is 0, expected a whole number from 1 to 20",
        ),
        # t177: taken, and reporters never satisfied of units that always answer went
        # round reopen -> resolve -> closure -> answer for good.
        (
            {"max_answers": 1_000_000_000},
            r"satisfaction.max_answers is 1000000000, expected a whole number from 1 to 20",
        ),
        ({"answer_after": -1}, r"satisfaction.answer_after is -1, expected seconds >= 0"),
        # 1.0e+300 was taken: the rehearsal then refused one of its own records ("record
        # 15891 … field \"at\" is 1e+300"), not the profile.
        (
            {"answer_after": 1e300},
            r"satisfaction.answer_after is 1e\+300, expected seconds >= 0, at most "
            r"31,536,000 \(a year\)",
        ),
        ({"mood": 1}, r"satisfaction: unknown field\(s\) \['mood'\]"),
        ([1], r"satisfaction is \[1\], expected a mapping"),
    ],
)
def test_satisfaction_errors_name_the_field(spec: Any, message: str) -> None:
    with pytest.raises(RehearsalError, match=message):
        satisfaction_model({"satisfaction": spec})


def test_satisfaction_defaults_fill_missing_fields() -> None:
    assert satisfaction_model({}) is None
    model = satisfaction_model({"satisfaction": {"answer_rate": 0.5}})
    assert model is not None and model.answer_rate == 0.5 and model.max_answers == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"units": 0}, r"departments.default.units is 0, expected a whole number >= 1"),
        ({"no_answer": 1.5}, r"departments.default.no_answer is 1.5, expected 0 <= p < 1"),
        ({"shifts": [[20, 8]]}, r"departments.default.shifts is \[\[20, 8\]\]"),
        ({"resolve": "fire"}, r"departments.default.resolve is 'fire', expected one of all$"),
        ({"response": "Al"}, r"response is 'Al', expected one of all \(did you mean 'all'\?\)$"),
        ({"speed": 3}, r"departments.default: unknown field\(s\) \['speed'\]"),
        # Trial 5: no did-you-mean, and no hint for a night shift.
        ({"capcity": 3}, r"\['capcity'\] \(did you mean 'capacity' for 'capcity'\?\); expected"),
        ({"shifts": [[22, 6]]}, r"a shift past midnight is two: \[\[22, 24\], \[0, 6\]\]"),
        ({"busy": 0}, r"departments.default.busy is 0, expected seconds > 0"),
    ],
)
def test_units_profile_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    table = {"all": FIXED_60}
    with pytest.raises(RehearsalError, match=message):
        units_profile({"departments": {"default": {"units": 1, **change}}}, table, table)


def test_committed_profiles_load_and_are_attributed() -> None:
    for name in ("nyc311_resolve.json", "sf_fire_response.json"):
        doc = json.loads((PROFILES / name).read_text())
        assert doc["licence"] and doc["source"]
        assert "all" in profile_distributions(doc, name)
    readme = (PROFILES / "README.md").read_text()
    assert "PDDL" in readme and "Local Law 11" in readme


def test_cli_compares_two_deadlines_on_a_small_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["timestamp,report_id,category,text,source,grid_cell,department"]
    rows += [f"2024-05-27T00:{i:02d}:00Z,r{i},Noise,loud,app,c-top,police" for i in range(10)]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    args = ["rehearse", "--incidents", str(tmp_path / "in.csv"), "--grid", str(grid)]
    args += ["--units", str(PROFILES / "units-nyc.yaml"), "--out", str(tmp_path / "o.json")]
    assert main([*args, "--ack-deadline", "300", "--ack-deadline", "900"]) == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert [v["ack_deadline"] for v in out["versions"]] == [300.0, 900.0]
    # The committed profile simulates answers: each version says how many it had.
    assert all({"answers", "reopened"} <= set(v) for v in out["versions"])
    assert "escalated_district" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text(rows[0] + "\nyesterday,r1,Noise,loud,app,c-top,police\n")
    bad = [*args[:2], str(tmp_path / "bad.csv"), *args[3:]]
    assert main(bad) == 2
    # file:line, as replay says it (was "row 1").
    assert "bad.csv:2: field \"timestamp\" is 'yesterday'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("units", "profile", "message"),
    [
        # Each was "unexpected UnicodeDecodeError/RecursionError … a bug" (exit 70), or
        # "'list' object has no attribute 'get'".
        (b"response_profile: r.json\n# caf\xe9\n", None, "units.yaml:2: byte 0xe9 is not UTF-8"),
        (b"- 1\n", None, "units.yaml: is a list, expected a mapping"),
        # Trial 20: Python's type names, "is a NoneType", "is a int".
        (b"", None, "units.yaml: the file is empty, expected a mapping"),
        (b"42\n", None, "units.yaml: is 42, expected a mapping"),
        (None, b"{\xff}", "r.json:1: byte 0xff is not UTF-8"),
        # t121: a UTF-16 byte order mark was "byte 0xff is not UTF-8"
        (
            None,
            b"\xff\xfe{}",
            "r.json: the file is UTF-16 (it starts with a UTF-16 byte order mark)",
        ),
        (None, b"[" * 100_000, "r.json: nested too deeply"),
        (None, b'{"entries": ', "r.json:1: Expecting value"),
        (None, b"[1]", 'r.json: expected "entries" with an "all" entry'),
        # t66: past the 4,300 digits int() converts, "unexpected ValueError" (exit 70).
        (None, b'{"entries": {"all": ' + b"9" * 5000 + b"}}", "r.json: "),
        # json.loads kept the last entry given twice, unsaid (t54).
        (
            None,
            b'{"entries": {"all": 1, "all": 2}}',
            "r.json: key 'all' is given twice (in entries): which is meant?",
        ),
    ],
)
def test_a_units_profile_that_cannot_be_read_is_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    units: bytes | None,
    profile: bytes | None,
    message: str,
) -> None:
    good = (PROFILES / "units-nyc.yaml").read_text(encoding="utf-8")
    for name in ("sf_fire_response.json", "nyc311_resolve.json"):
        (tmp_path / name).write_bytes((PROFILES / name).read_bytes())
    if profile is not None:
        (tmp_path / "r.json").write_bytes(profile)
        good = good.replace("resolve_profile: nyc311_resolve.json", "resolve_profile: r.json")
    (tmp_path / "units.yaml").write_bytes(units if units is not None else good.encode())
    (tmp_path / "in.csv").write_text(
        "timestamp,report_id,category,text,source,grid_cell,department\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police\n"
    )
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    args = ["rehearse", "--incidents", str(tmp_path / "in.csv"), "--grid", str(grid)]
    assert main([*args, "--units", str(tmp_path / "units.yaml")]) == 2
    assert message in capsys.readouterr().err


def _rehearse_cli(tmp_path: Path, rows: list[str], *extra: str) -> int:
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    args = ["rehearse", "--incidents", str(tmp_path / "in.csv"), "--grid", str(grid)]
    args += ["--units", str(PROFILES / "units-nyc.yaml"), "--out", str(tmp_path / "o.json")]
    return main([*args, *extra])


def test_rehearse_says_what_it_leaves_out_and_which_departments_it_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5: a repeated report_id vanished (16 rows, 15 found), an empty department
    became "?" and "firefighters" was taken silently."""
    rows = ["timestamp,report_id,category,text,source,grid_cell,department"]
    rows += [f"2024-05-27T00:{i:02d}:00Z,r{i},Noise,loud,app,c-top,police" for i in range(4)]
    rows += ["2024-05-27T00:09:00Z,r1,Noise,loud again,app,c-top,police"]  # line 6
    rows += ["2024-05-27T00:10:00Z,r10,Noise - Residential,Loud Music/Party,app,c-top,"]
    rows += ["2024-05-27T00:11:00Z,r11,Fire,smoke,app,c-top,firefighters"]  # line 8
    assert _rehearse_cli(tmp_path, rows) == 0
    err = capsys.readouterr().err
    assert (
        "in.csv:6: report_id 'r1' again in cell 'c-top', category 'Noise' (first at line 3): "
        "left out, as the worker drops a re-sent report"
    ) in err
    assert "department 'firefighters' (line(s) 8) is none the units profile" in err
    assert "(did you mean 'fire'?)" in err
    assert "rehearsed with the units profile's default pool" in err
    assert "6 reports rehearsed, 0 bad rows skipped, 1 duplicate report id left out" in err
    [version] = json.loads((tmp_path / "o.json").read_text())["versions"]
    rows_by = {(r["scope"], r["name"]) for r in version["report"]["rows"]}
    departments = {name for scope, name in rows_by if scope == "department"}
    # The empty department is the classifier's (noise: police), not "?".
    assert departments == {"police", "firefighters"}


def test_rehearse_bad_rows_are_file_line_and_on_error_skip_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["timestamp,report_id,category,text,source,grid_cell,department"]
    rows += ["2024-05-27T00:00:00Z,r0,Noise,loud,app,c-top,police"]
    rows += ["2024-05-27T00:01:00Z,r1,Noise,loud,app,no-such-cell,police"]  # line 3
    rows += ["2024-05-27T00:02:00Z,,Noise,loud,app,c-top,police"]  # line 4
    assert _rehearse_cli(tmp_path, rows) == 2
    err = capsys.readouterr().err
    # Every bad row is listed before it stops (trial 6: only the first was).
    assert (
        "bad row " in err and "in.csv:3: field \"grid_cell\" is 'no-such-cell': not a cell" in err
    )
    assert 'in.csv:4: field "report_id" is empty' in err
    assert "in.csv: 2 bad rows (listed above; nothing was rehearsed)" in err
    assert err.rstrip().endswith("fix the file, or give --on-error skip")
    assert _rehearse_cli(tmp_path, rows, "--on-error", "skip") == 0
    err = capsys.readouterr().err
    assert "skipped " in err and 'in.csv:4: field "report_id" is empty' in err
    assert "1 report rehearsed, 2 bad rows skipped" in err


def test_a_units_profile_path_is_said_to_resolve_next_to_the_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5: a copied units YAML said "[Errno 2] No such file or directory:
    'sf_fire_response.json'", naming neither the field nor where it looked."""
    (tmp_path / "u.yaml").write_text((PROFILES / "units-nyc.yaml").read_text())
    (tmp_path / "in.csv").write_text(
        "timestamp,report_id,category,text,source,grid_cell,department\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police\n"
    )
    grid = REPO_ROOT / "tests" / "fixtures" / "grid.yaml"
    args = ["rehearse", "--incidents", str(tmp_path / "in.csv"), "--grid", str(grid)]
    assert main([*args, "--units", str(tmp_path / "u.yaml")]) == 2
    err = capsys.readouterr().err
    assert "response_profile is 'sf_fire_response.json': no file " in err
    assert "profile paths resolve next to the units YAML" in err


def test_a_stray_quote_in_a_rehearsal_costs_only_its_own_row(tmp_path: Path) -> None:
    """rehearse's reader gave csvfile no rule for a row's start: one stray quote swallowed
    every report after it up to the next quote, counted as one bad row."""
    path = tmp_path / "in.csv"
    path.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        '2024-05-27T00:00:00Z,r1,Noise,"stray,app,c-top\n'
        "2024-05-27T00:01:00Z,r2,Noise,loud,app,c-top\n"
        '2024-05-27T00:02:00Z,r3,Noise,loud "music",app,c-top\n'
        '2024-05-27T00:03:00Z,r4,Noise,"loud\nmusic",app,c-top\n'
        # a second line as wide as the header, but no time first: the text goes on
        '2024-05-27T00:04:00Z,r5,Noise,"loud\nat 5th, park, pier, all night",app,c-top\n',
        encoding="utf-8",
    )
    bad: list[Any] = []
    found = read_incidents(
        path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts), on_bad_row=bad.append
    )
    assert [str(b) for b in bad] == [
        f"{path}:2: a quoted field opens here and is not closed before line 3, which reads "
        "as a row of its own (a stray quote?)"
    ]
    assert [i.report_id for i in found.incidents] == ["r2", "r3", "r4", "r5"]


def test_read_incidents_takes_columns_in_any_order_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "department,grid_cell,source,text,category,report_id,timestamp\n"
        ',c-top,app,"loud\nmusic",Noise,r1,2024-05-27T00:00:00Z\n',
        encoding="utf-8",
    )
    found = read_incidents(path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts))
    [incident] = found.incidents  # text may span lines; the empty department is classified
    assert (incident.report_id, incident.department, incident.grid_cell) == (
        "r1",
        "police",
        "c-top",
    )
    path.write_text("timestamp,report_id,category,text,source\n", encoding="utf-8")
    with pytest.raises(RehearsalError, match=r"in.csv:1: header lacks grid_cell"):
        read_incidents(path, {"c-top"}, set(), lambda texts: [])


def test_rehearse_judges_rows_as_the_worker_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 6: a report id repeated in another cell and category was dropped (the worker
    counts it), a source the worker dead-letters was rehearsed, and POLICE got no
    did-you-mean while Police did."""
    rows = ["timestamp,report_id,category,text,source,grid_cell,department"]
    rows += ["2024-05-27T03:11:00Z,m-1,Noise,loud,app,c-top,police"]  # line 2
    rows += ["2024-05-27T03:12:00Z,m-1,Illegal Parking,blocked,app,c-top,police"]  # 3: new
    rows += ["2024-05-27T03:13:00Z,m-2,Noise,loud,carrierpigeon,c-top,police"]  # 4: bad
    rows += ["2024-05-27T03:14:00Z,m-3,Noise,loud,app,c-top,POLICE"]  # 5
    rows += ["2024-05-27T03:15:00Z,m-1,Noise,loud,app,c-top,police"]  # 6: re-sent
    assert _rehearse_cli(tmp_path, rows) == 2
    err = capsys.readouterr().err
    assert (
        "in.csv:4: field \"source\" is 'carrierpigeon': expected one of app, emergency, "
        "hotline, inspector (the worker would dead-letter it: unknown_source)"
    ) in err
    assert _rehearse_cli(tmp_path, rows, "--on-error", "skip") == 0
    captured = capsys.readouterr()
    assert "department 'POLICE' (line(s) 5) is none" in captured.err
    assert "(did you mean 'police'?)" in captured.err
    assert "in.csv:6: report_id 'm-1' again in cell 'c-top', category 'Noise'" in captured.err
    assert "3 reports rehearsed, 1 bad row skipped, 1 duplicate report id left out" in captured.err
    [version] = json.loads((tmp_path / "o.json").read_text())["versions"]
    [city] = [r for r in version["report"]["rows"] if r["scope"] == "city"]
    assert city["figures"]["found"] == 3  # both m-1 reports are runs, as in the worker
    # The pools say where the times to resolve come from (the 'default' pool for POLICE).
    # One pool a line (t60: the NYC rehearsal's pools made one line of 539 characters).
    assert "units pools:\n  police 2 reports (resolve median 43.0 min)\n  default 1 report of " in (
        captured.out
    )
    assert "'POLICE' (resolve median 9.6 days)\neach pool resolves on its own profile" in (
        captured.out
    )
    assert max(len(line) for line in captured.out.splitlines()) < 300


def test_a_row_ahead_of_the_clock_is_a_bad_row_as_the_worker_dead_letters_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grid: Grid
) -> None:
    """Trial 7: a row dated 2099 was rehearsed (with --on-error skip, a period to 2099),
    though the worker dead-letters it as in_future. The worker's own allowance
    (CITYBRAIN_MAX_FUTURE_SKEW, 300 s) against the wall clock."""
    rows = ["timestamp,report_id,category,text,source,grid_cell"]
    rows += ["2024-05-27T03:11:00Z,o-10,Noise,loud,app,c-top"]  # line 2
    rows += ["2099-06-02T00:10:00Z,o-11,Noise,loud,app,c-top"]  # line 3: in_future
    assert _rehearse_cli(tmp_path, rows) == 2
    err = capsys.readouterr().err
    assert "bad row " in err and "in.csv:3: " in err and "in_future)" in err
    assert "in.csv:2" not in err
    assert _rehearse_cli(tmp_path, rows, "--on-error", "skip") == 0
    assert "1 report rehearsed, 1 bad row skipped" in capsys.readouterr().err
    # The allowance is the worker's: 200 s ahead of ``now`` passes, 400 s does not.
    path = tmp_path / "near.csv"
    path.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2024-05-27T00:03:20Z,a,Noise,loud,app,c-top\n"
        "2024-05-27T00:06:40Z,b,Noise,loud,app,c-top\n",
        encoding="utf-8",
    )
    bad: list[object] = []
    found = read_incidents(
        path,
        grid.cells,
        {"police"},
        lambda t: ["police"] * len(t),
        bad.append,
        grid,
        max_future_skew=300.0,
        now=DAY,
    )
    assert [i.report_id for i in found.incidents] == ["a"]
    assert len(bad) == 1 and "near.csv:3:" in str(bad[0]) and "in_future" in str(bad[0])


def test_nearest_is_case_blind() -> None:
    known = {"police", "fire"}
    assert nearest("POLICE", known) == nearest("Police", known) == nearest("polce", known)
    assert nearest("POLICE", known) == "police"
    assert nearest("zzz", known) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # Each was "unexpected TypeError/IndexError/ValueError … a bug" (exit 70), or a
        # rehearsal with an acknowledgement before its report, or records dated inf/nan.
        ({"quantiles": [1, 2]}, r'"quantiles"\[0\] is 1, expected \[q, seconds\]'),
        ({"quantiles": [[0], [1, 5]]}, r'"quantiles"\[0\] is \[0\], expected \[q, seconds\]'),
        ({"quantiles": [[0, "x"], [1, 5]]}, r"\"quantiles\"\[0\] is \[0, 'x'\], expected"),
        ({"quantiles": [[0, True], [1, 5]]}, r'"quantiles"\[0\] is \[0, True\], expected'),
        ({"quantiles": [[0, -50], [1, 5]]}, r'"quantiles"\[0\] is \[0, -50\], expected 0 <= q'),
        ({"quantiles": [[0, 1], [1, math.inf]]}, r'"quantiles"\[1\] is \[1, inf\], expected'),
        ({"quantiles": [[0, math.nan], [1, 5]]}, r'"quantiles"\[0\] is \[0, nan\], expected'),
        ({"quantiles": [[0, 1], [1.5, 5]]}, r'"quantiles"\[1\] is \[1.5, 5\], expected 0 <= q'),
        (
            {"quantiles": [[0, 1], [1, 1e300]]},
            r'"quantiles"\[1\] is \[1, 1e\+300\], expected 0 <= q <= 1 and seconds '
            r"0..31,536,000 \(a year\)",
        ),
        ([1], r"entry 'police' is \[1\], expected \{\"quantiles\""),
    ],
)
def test_service_time_profile_errors_name_the_entry_and_pair(entry: Any, message: str) -> None:
    doc = {"entries": {"all": {"quantiles": [[0, 10], [1, 100]]}, "police": entry}}
    with pytest.raises(RehearsalError, match=message):
        profile_distributions(doc, "r.json")


def test_a_profile_of_one_duration_always_gives_it() -> None:
    one = profile_distributions({"entries": {"all": {"quantiles": [[0, 42], [1, 42]]}}}, "r")
    assert {one["all"].sample(u) for u in (0.0, 0.3, 0.999, 1.0)} == {42.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # ``true`` was taken as one unit or a capacity of one; NaN and infinity as a
        # time a unit is busy.
        ({"units": True}, r"departments.default.units is True, expected a whole number"),
        ({"capacity": True}, r"departments.default.capacity is True, expected a whole number"),
        ({"capacity": 0}, r"departments.default.capacity is 0, expected a whole number >= 1"),
        ({"busy": math.nan}, r"departments.default.busy is nan, expected seconds > 0, at most"),
        ({"busy": math.inf}, r"departments.default.busy is inf, expected seconds > 0, at most"),
        ({"busy": 1e300}, r"departments.default.busy is 1e\+300, expected seconds > 0, at most"),
        ({"no_answer": True}, r"departments.default.no_answer is True, expected 0 <= p < 1"),
    ],
)
def test_units_profile_refuses_booleans_and_non_finite_values(
    change: dict[str, Any], message: str
) -> None:
    table = {"all": FIXED_60}
    with pytest.raises(RehearsalError, match=message):
        units_profile({"departments": {"default": {"units": 1, **change}}}, table, table)


def test_an_infinite_answer_delay_is_refused() -> None:
    with pytest.raises(
        RehearsalError, match=r"answer_after is inf, expected seconds >= 0, at most"
    ):
        satisfaction_model({"satisfaction": {"answer_after": math.inf}})


def test_a_run_that_waits_twice_is_counted_once_as_queued(grid: Grid) -> None:
    """Trial 22: three reports at noon for one unit on duty 00:00-01:00 wait for the next
    shift; at its start the first takes the unit and the others queue again. Counted at
    each wait, "runs that waited for a free unit" was 9 for these 3 runs."""
    three = [report(i, 12 * 3600 + i) for i in range(3)]
    out = rehearse(three, PLAYBOOK, grid, units(shifts=((0.0, 1.0),)), 900)
    assert (out.queued, out.queued_by) == (3, {"default": 3})
    acked = [actions(out.records, f"rh-r{i}")[-2][0] for i in range(3)]
    # Next day 00:00 + 60 s response; each holds the unit 60 s after acknowledging
    # (its resolve draw is already past): first come, first served.
    assert acked == [86460.0, 86580.0, 86700.0]


def test_a_unit_freed_after_its_shift_keeps_the_queue_in_its_order(grid: Grid) -> None:
    """Trial 22: a unit freed after its shift ended asked the head of the queue, which,
    off duty, went to the back: a report of 12:05 was served the next day before one of
    11:59 that had waited since."""
    reports = [report(1, 11 * 3600 + 59 * 60), report(2, 11 * 3600 + 59 * 60 + 30)]
    reports.append(report(3, 12 * 3600 + 5 * 60))
    out = rehearse(reports, PLAYBOOK, grid, units(shifts=((0.0, 12.0),)), 900)
    acked = {
        i: [a[0] for a in actions(out.records, f"rh-r{i}") if a[1] == "acknowledged"]
        for i in (1, 2, 3)
    }
    assert acked == {1: [43200.0], 2: [86460.0], 3: [86580.0]}


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf"])
def test_an_infinite_deadline_is_refused_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Trial 22: `--ack-deadline inf` rehearsed until "unexpected StopIteration … a bug"
    (exit 70). Every positive-number option refuses infinity the same way."""
    rows = [
        "timestamp,report_id,category,text,source,grid_cell,department",
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police",
    ]
    assert _rehearse_cli(tmp_path, rows, f"--ack-deadline={value}") == 2
    err = capsys.readouterr().err
    assert f"argument --ack-deadline: {value!r}: expected " in err


def test_every_report_is_one_run_whatever_its_id(grid: Grid) -> None:
    """Trial 26: a report id given again became ``rh-<id>~<n>``, n counted from the ids
    already taken, without checking that one was free: "A~3", then "A" twice, made the
    second "A" ``rh-A~3`` again, and the first report's case was replaced (one run
    created twice, one report never rehearsed)."""
    ids = ["A~3", "A", "A", "A~3", "A"]
    incidents = [
        Incident(DAY + i, rid, "app", f"Noise {i}", "c-top", "police") for i, rid in enumerate(ids)
    ]
    out = rehearse(incidents, PLAYBOOK, grid, units(), ack_deadline=900)
    created = [r for r in out.records if r["action"] == "run_created"]
    assert len(created) == len(incidents)
    assert len({r["run_id"] for r in created}) == len(incidents)
    covered = sorted(r["detail"] for r in out.records if r["action"] == "report_covered")
    assert covered == sorted(ids)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "timestamp,report_id,category,text,source,grid_cell,Department",
            "in.csv:1: header has unknown column(s) ['Department'] (did you mean 'department' "
            "for 'Department'?); expected category, department, grid_cell, report_id, source, "
            "text, timestamp (department is optional)",
        ),
        (
            "timestamp,report_id,category,text,source,grid_cell,department,department",
            "in.csv:1: header names 'department' (columns 7, 8) more than once: which one is "
            "meant cannot be known",
        ),
        (
            "timestamp,report_id,report_id,category,text,source,grid_cell",
            "in.csv:1: header names 'report_id' (columns 2, 3) more than once: which one is "
            "meant cannot be known",
        ),
    ],
)
def test_a_header_column_not_read_or_named_twice_is_refused(
    tmp_path: Path, header: str, message: str
) -> None:
    """Trial 26: a column not read (``Department``) was ignored and one named twice read
    first-wins, both silently: a file's own departments were rehearsed as the
    classifier's guesses, or a second report id column was dropped."""
    path = tmp_path / "in.csv"
    fields = header.split(",")
    row = {
        "timestamp": "2024-05-27T00:00:00Z",
        "report_id": "r1",
        "category": "Noise",
        "text": "loud",
        "source": "app",
        "grid_cell": "c-top",
    }
    path.write_text(f"{header}\n{','.join(row.get(f, 'fire') for f in fields)}\n")
    with pytest.raises(RehearsalError) as err:
        read_incidents(path, {"c-top"}, {"police", "fire"}, lambda t: ["police"] * len(t))
    assert str(err.value) == f"{path.parent}/{message}"


LOOPING = """\
playbook: citizen-report
version: 1
department: city-management
steps:
  - {id: tell, action: notify, level: community, message: "{category} at {grid_cell}"}
  - {id: ask, action: wait_ack, deadline: 5m, on_timeout: climb}
  - {id: climb, action: escalate, on_success: tell}
"""


def _in_time(call: Any, seconds: float = 20.0) -> Any:
    """``call()``'s value, or a failure when it has not returned within ``seconds`` (the
    old rehearsal went on for good; its thread is left to the process's end)."""
    import threading

    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"still rehearsing after {seconds:g} s"
    return box[0]


def test_a_playbook_looping_on_its_timeout_is_rehearsed_one_round_a_level(
    tmp_path: Path, grid: Grid
) -> None:
    """Before (t177): a wait_ack looping back on its timeout (notify again until someone
    acknowledges, which the worker takes) went round for good in the simulated clock when
    nobody answered: the rehearsal never ended, its records growing. Now each level's
    wait is rehearsed one round; its ack, when the unit answers, is taken as before."""
    path = tmp_path / "looping.yaml"
    path.write_text(LOOPING)
    playbook = load_playbook(path)
    out = _in_time(lambda: rehearse([report(1, 0)], playbook, grid, units(no_answer=1.0)))
    waits = [r["level"] for r in out.records if r["action"] == "wait_ack"]
    # community, street, district, city (asked again at each), then the city's wait again.
    assert waits == ["community", "street", "district", "city", "city"]
    assert out.looped == 1 and out.unanswered == 4
    # A unit that answers after two deadlines: the loop climbs as before, and the
    # answer acknowledges the run then (resolved a minute after, MIN_WORK).
    slow = Distribution((0.0, 1.0), (700.0, 700.0))
    out = _in_time(lambda: rehearse([report(1, 0)], playbook, grid, units(response=slow)))
    assert actions(out.records, "rh-r1") == [
        (300.0, "escalate", "street"),
        (600.0, "escalate", "district"),
        (700.0, "acknowledged", "district"),
        (760.0, "resolved", "district"),
    ]
    assert out.looped == 0


def test_reporters_never_satisfied_reopen_a_run_at_most_max_answers_times(grid: Grid) -> None:
    """The reply -> reopen -> closure cycle ends at the largest max_answers a profile may
    give (t177: 1,000,000,000 was taken, and this went round for good)."""
    model = satisfaction_model(
        {
            "satisfaction": {
                "answer_rate": 1,
                "answer_after": 0,
                "unsatisfied_base": 1,
                "unsatisfied_max": 1,
                "max_answers": 20,
            }
        }
    )
    out = _in_time(
        lambda: rehearse([report(1, 0)], PLAYBOOK, grid, units(), 900, satisfaction=model)
    )
    assert (out.answers, out.reopened) == (20, 20)
