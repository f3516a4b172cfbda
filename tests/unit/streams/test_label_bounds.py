"""Label values drawn from a message's text are bounded (t80): an alert's kind and a run's
department are any text on the alerts topic, and a series per value was a series per
message. The real wiring is tested in tests/integration/test_label_bounds.py."""

from __future__ import annotations

from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context
from streams.departments import DepartmentClassifier
from streams.metrics import OTHER_LABEL, Metrics, bounded_label
from streams.settings import REPO_ROOT, Settings


def test_a_value_outside_the_known_set_is_other() -> None:
    assert bounded_label("pm25", {"pm25"}) == "pm25"
    assert bounded_label("x" * 1_000_000, {"pm25"}) == OTHER_LABEL
    assert bounded_label("", {"pm25"}) == OTHER_LABEL


def test_the_context_knows_the_grid_s_kinds_and_every_department(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path)
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    app = faust.App("t-label-bounds", broker="kafka://127.0.0.1:1", store="memory://")
    ctx = Context(app, settings, grid, Metrics.create(CollectorRegistry()))
    for kind in (*grid.kinds, "incident_burst"):
        assert ctx.label_kind(kind) == kind
    for department in DepartmentClassifier.departments():
        assert ctx.label_department(department) == department
    for playbook in ctx.playbooks.values():
        assert ctx.label_department(playbook.department) == playbook.department
    assert ctx.label_kind("made-up-kind-1") == OTHER_LABEL
    assert ctx.label_department("made-up-department-" + "x" * 100_000) == OTHER_LABEL
