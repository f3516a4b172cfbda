"""Trial 22: the campaign's Prometheus series agree with the campaign report on a run
that a reporter reopened. Counted at each closing, a run resolved, reopened and resolved
again was two resolutions (the dashboard's resolution rate 2/1), and its second
acknowledgement, measured from the run's creation, went into the time-to-acknowledge
histogram beside the first. The report counts the run once, by its last outcome, and
its first acknowledgement. The dashboard's own PromQL is run against the live Prometheus
by tests/integration/test_control_room.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from citybrain.campaign import campaign_report
from playbooks.engine import Answer, Command, PlaybookEngine, ReportsCovered, Run
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbooks
from streams.metrics import CAMPAIGN_REOPENED, CAMPAIGN_RUNS_CLOSED, TIME_TO_ACK, Metrics
from streams.response import Response

BURST = {
    "alert_id": "al-b",
    "kind": "incident_burst",
    "grid_cell": "c-top",
    "labels": {"source": "citizen", "category": "Noise", "department": "police"},
    "reports": [{"report_id": "r-1", "channel": "app"}],
}


# The stage's context, as far as ``_kpis`` asks it: every department here is known.
KNOWS_DEPARTMENTS = SimpleNamespace(label_department=lambda department: department)


def stub_stage(metrics: Metrics) -> SimpleNamespace:
    """As much of a response stage as ``Response._kpis`` asks of it."""
    stage = SimpleNamespace(metrics=metrics, ctx=KNOWS_DEPARTMENTS, _outcome_series=set())
    stage._known_run = lambda run, department: Response._known_run(stage, run, department)  # type: ignore[arg-type]
    return stage


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def test_a_reopened_and_resolved_again_run_counts_once_as_in_the_report(grid: Grid) -> None:
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    stage = stub_stage(metrics)
    engine = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["citizen-report-burst"], grid)
    records: list[dict[str, Any]] = []

    def apply(run: Run, cmds: list[Command]) -> Run:
        for cmd in cmds:
            Response._kpis(stage, run, cmd)  # type: ignore[arg-type]
            records.append(cmd.to_dict())
        return run

    run, cmds = engine.new_run("g.1", BURST, 0.0)
    run = apply(run, cmds)
    run = apply(*engine.step(run, ReportsCovered.from_alert(BURST, 0.0)))
    run = apply(*engine.acknowledge(run, "ana", 60.0))  # tta 60
    run = apply(*engine.resolve(run, "ana", "done", 600.0))
    run = apply(*engine.step(run, Answer("r-1", False, "again", "desk", 700.0)))
    run = apply(*engine.acknowledge(run, "ana", 1000.0))  # not a first acknowledgement
    run = apply(*engine.resolve(run, "ana", "done again", 1500.0))

    report = campaign_report(records, {}, 0.0, 2000.0)
    city = next(r for r in report["rows"] if r["scope"] == "city")["figures"]
    assert (city["found"], city["resolved"], city["reopened"]) == (1, 1, 1)
    closed = value(registry, CAMPAIGN_RUNS_CLOSED, outcome="resolved")
    undone = value(registry, CAMPAIGN_REOPENED, outcome="resolved")
    assert (closed, undone) == (2, 1)
    assert closed - undone == city["resolved"]  # the dashboard's net resolutions
    # At the level it was closed at, so the first-line share nets out the same way.
    assert value(registry, CAMPAIGN_REOPENED, level="community") == 1
    # One observation, the first acknowledgement's 60 s: the report's tta.
    assert value(registry, f"{TIME_TO_ACK}_count") == 1
    assert value(registry, f"{TIME_TO_ACK}_sum") == city["tta_median"] == 60.0


def test_a_reopened_cancelled_run_is_counted_as_undoing_a_cancellation(grid: Grid) -> None:
    registry = CollectorRegistry()
    stage = stub_stage(Metrics.create(registry))
    engine = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["citizen-report-burst"], grid)
    run, _ = engine.new_run("g.1", BURST, 0.0)
    run, _ = engine.step(run, ReportsCovered.from_alert(BURST, 0.0))
    run, _ = engine.cancel(run, "ana", "duplicate", 10.0)
    run, cmds = engine.step(run, Answer("r-1", False, "", "desk", 20.0))
    for cmd in cmds:
        Response._kpis(stage, run, cmd)  # type: ignore[arg-type]
    [reopened] = [c for c in cmds if c.action == "reopened"]
    assert reopened.data["outcome"] == "cancelled"
    assert value(registry, CAMPAIGN_REOPENED, outcome="cancelled") == 1
    assert value(registry, CAMPAIGN_REOPENED, outcome="resolved") == 0
