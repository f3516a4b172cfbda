"""A flood of citizen reports offered to one open run, measured on the real worker and
broker (t208): a run open (one alert into its group), then REPORTS reports in no alert
offered to it at once (routed ``report`` messages, as the incidents stage offers a
follow-up), then a probe: another group's alert on the flood's routed partition.

What holds (orders and bounds, not a benchmark): every report covered once, in the
order offered (one ``report_covered`` step id each), and the offers read in one batch
are one change of the run (the routed agent's batch, t187's joins; since t208 its
offers too): bounded by the number of changelog writes of the group, before t208 two
per offer (docs/playbooks.md, "A flood of reports"). The times are printed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from streams.partitioning import key_partition
from tests.integration.test_command_flood import writes_of
from tests.integration.test_group_storm import routed
from tests.integration.test_pipeline import steps_of
from tests.services import Pipeline

pytestmark = pytest.mark.integration

# Below the 500 reports a run covers (playbooks.engine.MAX_REPORTS; those past it are said
# reports_not_covered, one step for the rest).
REPORTS = 400
KEY = b"grp-report-flood"
# Changelog writes of the flooded group at most: one per four offers. Each batch's offers
# are one change (two writes); before t208 two per offer: 800.
MAX_WRITES = REPORTS // 4


def offer(report_id: str) -> bytes:
    """A report in no alert, as the incidents stage offers it (streams.ingest._offer)."""
    report = {
        "report_id": report_id,
        "channel": "app",
        "grid_cell": "c-bridge",
        "category": "Flooding",
        "ts": time.time(),
        "late": False,
    }
    return json.dumps(
        {"report": report, "route": {"id": "root.2", "playbook": "flash-flood"}}
    ).encode()


def test_a_flood_of_reports_into_one_open_run_is_a_few_changes_of_it(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir)
    worker = p.worker().start()
    home = key_partition(KEY, p.settings.partitions)
    probe = next(
        k
        for n in range(1000)
        if key_partition(k := f"grp-after-{n}".encode(), p.settings.partitions) == home
    )
    try:
        p.send("routed", KEY, routed("al-reports", 0))
        p.flush()
        p.read(
            "steps",
            lambda m: any(d["run_id"] == f"{KEY.decode()}.1" for d in steps_of(m, "notify")),
        )
        before = writes_of(p, {KEY})
        sent_at = time.time()
        ids = [f"r-{n}" for n in range(REPORTS)]
        for rid in ids:
            p.send("routed", KEY, offer(rid))
        p.send("routed", probe, routed("al-after", 0))
        p.flush()

        def done(m: list[Any]) -> bool:
            return len({d["detail"] for d in steps_of(m, "report_covered")}) >= REPORTS and any(
                d["run_id"] == f"{probe.decode()}.1" for d in steps_of(m, "notify")
            )

        steps = p.read("steps", done, timeout=180)
        covered = steps_of(steps, "report_covered")
        by_report: dict[str, set[str]] = {}
        for d in covered:
            by_report.setdefault(d["detail"], set()).add(d["id"])
        assert by_report == {rid: by_report[rid] for rid in ids}
        assert all(len(step_ids) == 1 for step_ids in by_report.values())  # once each
        assert list(dict.fromkeys(d["detail"] for d in covered)) == ids  # in order
        last = max(m.timestamp / 1000 for m in steps if b'"report_covered"' in m.value)
        opened = min(
            m.timestamp / 1000
            for m in steps
            if (d := json.loads(m.value))["action"] == "notify"
            and d["run_id"] == f"{probe.decode()}.1"
        )
        writes = writes_of(p, {KEY}) - before
        print(
            f"reports {REPORTS}: last covered +{last - sent_at:.2f} s, probe notified "
            f"+{opened - sent_at:.2f} s, {writes} writes of the group"
        )
        assert writes <= MAX_WRITES
    finally:
        worker.stop()
        p.close()
