"""The rehearsal's simulated units on tiny hand-made cases: sampling, capacity (a busy
unit takes no second incident), no answer -> escalation, shifts, the ack-deadline
comparison, profile errors; and the committed profiles and CLI end to end."""

from __future__ import annotations

import json
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
    profile_distributions,
    rehearse,
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
    assert out.queued == 1
    # With a 5-minute deadline r2 waits too long at the community and escalates.
    short = rehearse([report(1, 0), report(2, 10)], PLAYBOOK, grid, units(), ack_deadline=300)
    assert actions(short.records, "rh-r2") == [
        (310.0, "escalate", "street"),
        (610.0, "escalate", "district"),
        (660.0, "acknowledged", "district"),
        (720.0, "resolved", "district"),
    ]


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"units": 0}, r"departments.default.units is 0, expected a whole number >= 1"),
        ({"no_answer": 1.5}, r"departments.default.no_answer is 1.5, expected 0 <= p < 1"),
        ({"shifts": [[20, 8]]}, r"departments.default.shifts is \[\[20, 8\]\]"),
        ({"resolve": "fire"}, r"departments.default.resolve is 'fire', expected one of \['all'\]"),
        ({"speed": 3}, r"departments.default: unknown field\(s\) \['speed'\]"),
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
    assert "escalated_district" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text(rows[0] + "\nyesterday,r1,Noise,loud,app,c-top,police\n")
    bad = [*args[:2], str(tmp_path / "bad.csv"), *args[3:]]
    assert main(bad) == 2
    assert "row 1: field \"timestamp\" is 'yesterday'" in capsys.readouterr().err
