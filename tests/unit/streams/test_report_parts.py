"""A citizen report covered by two runs: its burst alert routed to two routes (``continue:
true``), so two groups' runs cover the same report. Each run's closure reaches the
reporter, one closure per run, each naming the department that closed its part and the
report's other parts (``department`` and ``also`` in reply/1); an answer to one closure
is applied to its own run only; the operator API's 202 says which part it was. No
broker: the routing stage's and the response stage's sends are captured."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from playbooks.engine import Part, PlaybookEngine, ReportsCovered
from streams.api import run_part
from streams.response import Response
from tests.unit.streams import test_muted_alerts
from tests.unit.streams.test_covered_once import sending_response
from tests.unit.streams.test_response_races import Event

ROUTING = """\
version: 1
route:
  playbook: sensor-anomaly
  group_by: [kind, community]
  group_wait: 0s
  routes:
    - matchers: ['source="citizen"', 'category=~"(?i:.*gas.*)"']
      playbook: gas-leak
      continue: true
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
      group_by: [category, community]
"""

ALERT = {
    "alert_id": "al-gas",
    "status": "firing",
    "kind": "incident_burst",
    "grid_cell": "c-top",
    "severity": "major",
    "labels": {
        "alert_id": "al-gas",
        "kind": "incident_burst",
        "grid_cell": "c-top",
        "severity": "major",
        "source": "citizen",
        "category": "Gas smell",
    },
    "reports": [{"report_id": "r-1", "channel": "hotline"}],
}


def routed_to_two_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The routed messages the routing stage sends for ``ALERT``."""
    monkeypatch.setattr(test_muted_alerts, "ROUTING", ROUTING)
    stage = test_muted_alerts.Stage(tmp_path / "routing", monkeypatch)
    stage.alert(ALERT)
    return stage.routed


@pytest.fixture
def respond(tmp_path: Path) -> tuple[Response, list[dict[str, Any]]]:
    return sending_response(tmp_path)


def test_each_run_of_a_report_closes_its_own_part_naming_the_others(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    respond: tuple[Response, list[dict[str, Any]]],
) -> None:
    (tmp_path / "routing").mkdir()
    routed = routed_to_two_routes(tmp_path, monkeypatch)
    response, sent = respond
    assert [doc["route"]["playbook"] for _, doc in routed] == ["gas-leak", "citizen-report-burst"]
    gas_key, burst_key = (key for key, _ in routed)
    # Each routed message names both parts: its group's and the other's.
    assert [doc["parts"] for _, doc in routed] == [
        [
            {"group": gas_key, "playbook": "gas-leak", "department": "gas-utility"},
            {
                "group": burst_key,
                "playbook": "citizen-report-burst",
                "department": "city-management",
            },
        ]
    ] * 2

    async def scenario() -> None:
        for key, doc in routed:
            await response.on_routed(Event(key.encode(), doc))  # type: ignore[arg-type]
        gas = response.ctx.groups.data[gas_key.encode()]["run"]
        burst = response.ctx.groups.data[burst_key.encode()]["run"]
        assert gas["reports"]["r-1"]["also"] == [routed[1][1]["parts"][1]]
        assert burst["reports"]["r-1"]["also"] == [routed[0][1]["parts"][0]]
        for run, by in ((gas, "gas desk"), (burst, "city desk")):
            done = {"id": f"cmd-{by}", "run_id": run["run_id"], "action": "resolve", "by": by}
            key = run["run_id"].rsplit(".", 1)[0].encode()
            await response.on_command(Event(key, {**done, "note": f"{by}: done"}))  # type: ignore[arg-type]
        replies = [d for d in sent if d.get("schema") == "reply/1"]
        # One closure per run, neither lost nor merged, each its department's part.
        assert [(r["report_id"], r["run_id"], r["department"]) for r in replies] == [
            ("r-1", gas["run_id"], "gas-utility"),
            ("r-1", burst["run_id"], "city-management"),
        ]
        assert len({r["reply_id"] for r in replies}) == 2
        first, second = replies
        assert first["also"] == [
            {
                "group": burst_key,
                "playbook": "citizen-report-burst",
                "department": "city-management",
            }
        ]
        assert second["also"] == [
            {"group": gas_key, "playbook": "gas-leak", "department": "gas-utility"}
        ]
        assert "of gas-utility" in first["text"] and "gas desk: done" in first["text"]
        assert "the gas-utility part of your report" in first["text"]
        assert "1 other part, by city-management (citizen-report-burst)" in first["text"]
        assert "the city-management part of your report" in second["text"]
        # The reporter answers the gas department's closure: applied to that run only.
        answer = {
            "id": "cmd-answer",
            "run_id": gas["run_id"],
            "action": "answer",
            "report_id": "r-1",
            "satisfied": True,
            "by": "hotline desk",
        }
        await response.on_command(Event(gas_key.encode(), answer))  # type: ignore[arg-type]
        gas = response.ctx.groups.data[gas_key.encode()]["run"]
        burst = response.ctx.groups.data[burst_key.encode()]["run"]
        assert gas["reports"]["r-1"]["status"] == "satisfied"
        assert burst["reports"]["r-1"]["status"] == "replied"

    asyncio.run(scenario())


def test_a_report_covered_by_one_run_has_no_other_parts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    respond: tuple[Response, list[dict[str, Any]]],
) -> None:
    # One route: the routed message and the closure are as before, ``also`` empty.
    (tmp_path / "routing").mkdir()
    monkeypatch.setattr(test_muted_alerts, "ROUTING", ROUTING.replace("continue: true", ""))
    stage = test_muted_alerts.Stage(tmp_path / "routing", monkeypatch)
    stage.alert(ALERT)
    [(key, doc)] = stage.routed
    assert "parts" not in doc
    response, sent = respond

    async def scenario() -> None:
        await response.on_routed(Event(key.encode(), doc))  # type: ignore[arg-type]
        run = response.ctx.groups.data[key.encode()]["run"]
        assert "also" not in run["reports"]["r-1"]
        done = {"id": "c", "run_id": run["run_id"], "action": "cancel", "by": "x", "note": "n"}
        await response.on_command(Event(key.encode(), done))  # type: ignore[arg-type]
        [reply] = [d for d in sent if d.get("schema") == "reply/1"]
        assert (reply["department"], reply["also"]) == ("gas-utility", [])
        assert "part" not in reply["text"]

    asyncio.run(scenario())


def test_the_apis_answer_names_the_part(grid: Any) -> None:
    from playbooks.loader import PLAYBOOK_DIR, load_playbooks

    engine = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["gas-leak"], grid)
    run, _ = engine.new_run("grp-gas.1", ALERT, 0.0)
    other = Part("grp-burst", "citizen-report-burst", "city-management")
    run, _ = engine.step(run, ReportsCovered((("r-1", "hotline"), ("r-2", "app")), 0.0, ()))
    run, _ = engine.step(run, ReportsCovered((("r-1", "hotline"), ("r-3", "app")), 1.0, (other,)))
    assert run.reports["r-1"]["also"] == [other.to_dict()]  # learnt from a later alert
    assert "also" not in run.reports["r-2"]
    assert run_part(run, "r-1") == {
        "run_id": "grp-gas.1",
        "playbook": "gas-leak",
        "department": "gas-utility",
        "report_id": "r-1",
        "also": [other.to_dict()],
    }
    assert run_part(run, "r-2")["also"] == []
    closing = run_part(run)
    assert closing["department"] == "gas-utility"
    assert closing["reports_with_other_parts"] == {
        "r-1": [other.to_dict()],
        "r-3": [other.to_dict()],
    }
    assert orjson.loads(orjson.dumps(closing)) == closing
