"""A worker SIGKILLed while a run waits for an acknowledgement, restarted with a playbook
library edited in between (t49): the run read back from the changelog names a step, or
a playbook, the library no longer has. Before, each was a KeyError at every deadline
check and every command (a traceback and a dead letter, resolve included): the run was
stuck for good, never audited nor counted. Now the run at a gone step fails at once,
saying why; the run of a gone playbook is held, audited and counted, and only what
needs none of its steps applies to it (docs/playbooks.md, "Runs of an edited library").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from tests.integration.test_pipeline import docs, real_levels, send_readings, steps_of
from tests.services import COORDINATOR_TOKEN, ROOT, Pipeline, scrape_sum

pytestmark = pytest.mark.integration

LIBRARY = ROOT / "playbooks" / "library"
STALE = "citybrain_playbook_runs_stale_total"


def open_waiting_run(p: Pipeline) -> str:
    """A flash-flood run waiting at ``wait-community``, its worker SIGKILLed; its id."""
    worker = p.worker().start()
    try:
        base = real_levels(40)
        send_readings(p, [*base, base[-1] * 8])
        steps = p.read("steps", lambda m: bool(steps_of(m, "wait_ack")), settle=1)
    finally:
        worker.kill()  # mid-wait, as a crash would leave it
    [created] = steps_of(steps, "run_created")
    assert created["playbook"] == "flash-flood"
    return str(created["run_id"])


def stale(p: Pipeline, reason: str) -> float:
    return scrape_sum(p.settings.worker_port, f'{STALE}{{reason="{reason}"}}')


def dead_letters(p: Pipeline) -> list[Any]:
    """Every dead letter so far (none is expected: a short read that finds none)."""
    return p.read("deadletter", lambda m: True, timeout=5, settle=2)


def test_a_run_at_a_step_the_edited_playbook_lacks_fails_once_and_is_resolved(
    run_dir: Path, stack: PrometheusServer, tmp_path: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    try:
        run_id = open_waiting_run(p)
        edited = tmp_path / "playbooks"
        shutil.copytree(LIBRARY / "playbooks", edited)
        flood = edited / "flash-flood.yaml"
        flood.write_text(flood.read_text().replace("wait-community", "wait-first-line"))
        p.env["CITYBRAIN_PLAYBOOK_DIR"] = str(edited)
        worker = p.worker().start()
        try:
            steps = p.read("steps", lambda m: bool(steps_of(m, "failed")), timeout=40, settle=3)
            [failed] = steps_of(steps, "failed")
            assert failed["detail"] == (
                "step 'wait-community' is no longer in playbook 'flash-flood' (edited since "
                "the run reached it): the run cannot go on; resolve or cancel it"
            )
            audit = p.read(
                "audit",
                lambda m: any((d.get("data") or {}).get("to") == "failed" for d in docs(m)),
            )
            moves = [d["data"] for d in docs(audit) if d.get("action") == "transition"]
            assert {"from": "waiting_ack", "to": "failed", "event": "fail"} in moves
            assert stale(p, "step_gone") == 1
            status, _ = p.api(
                "POST", f"/runs/{run_id}/resolve", COORDINATOR_TOKEN, {"note": "pumped out"}
            )
            assert status == 202
            steps = p.read("steps", lambda m: bool(steps_of(m, "resolved")), settle=2)
            assert [d["detail"] for d in steps_of(steps, "resolved")] == ["pumped out"]
            assert len(steps_of(steps, "failed")) == 1  # failed once, not at every tick
            assert dead_letters(p) == []
        finally:
            worker.stop()
    finally:
        p.close()


def test_a_run_of_a_playbook_gone_from_the_library_is_held_audited_and_resolvable(
    run_dir: Path, stack: PrometheusServer, tmp_path: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    try:
        run_id = open_waiting_run(p)
        edited = tmp_path / "playbooks"
        shutil.copytree(LIBRARY / "playbooks", edited)
        (edited / "flash-flood.yaml").unlink()
        routing = tmp_path / "routing.yaml"
        text = (LIBRARY / "routing.yaml").read_text()
        routing.write_text(text.replace("playbook: flash-flood", "playbook: sensor-anomaly"))
        p.env["CITYBRAIN_PLAYBOOK_DIR"] = str(edited)
        p.env["CITYBRAIN_ROUTING_FILE"] = str(routing)
        worker = p.worker().start()
        try:
            audit = p.read(
                "audit",
                lambda m: any(d.get("action") == "run_playbook_gone" for d in docs(m)),
                timeout=40,
            )
            [gone] = [d for d in docs(audit) if d.get("action") == "run_playbook_gone"]
            assert gone["run_id"] == run_id
            assert "no playbook 'flash-flood' in the library" in gone["detail"]
            assert stale(p, "playbook_gone") == 1
            # Shown as not advancing, with why, by `runs show` and `runs list`: it read
            # waiting_ack, its step overdue, with no word of why nobody was escalated.
            status, body = p.api_until(
                f"/runs/{run_id}",
                COORDINATOR_TOKEN,
                lambda s, b: "not_advancing" in b.get("run", {}),
            )
            assert status == 200, body
            held = body["run"]["not_advancing"]
            assert held["reason"] == (
                "its playbook 'flash-flood' is not in the library: restore it and reload "
                "the worker (kill -HUP) or restart it, or resolve or cancel the run"
            )
            status, body = p.api("GET", "/runs", COORDINATOR_TOKEN)
            [listed] = [r for r in body["runs"] if r["run_id"] == run_id]
            assert listed["not_advancing"]["since"] == held["since"]
            status, body = p.api("POST", f"/runs/{run_id}/ack", COORDINATOR_TOKEN, {})
            assert (status, body["error"]) == (
                409,
                f"run {run_id}'s playbook 'flash-flood' is no longer in the library: ack "
                "cannot be applied (only answer, cancel, escalate, resolve; or restore the "
                "playbook and reload the worker, kill -HUP, or restart it)",
            )
            status, _ = p.api(
                "POST", f"/runs/{run_id}/resolve", COORDINATOR_TOKEN, {"note": "by hand"}
            )
            assert status == 202
            steps = p.read("steps", lambda m: bool(steps_of(m, "resolved")), settle=3)
            assert [d["detail"] for d in steps_of(steps, "resolved")] == ["by hand"]
            # Resolved, it is no longer held (the next deadline check sees it ended).
            status, body = p.api_until(
                f"/runs/{run_id}",
                COORDINATOR_TOKEN,
                lambda s, b: (
                    b.get("run", {}).get("status") == "resolved" and "not_advancing" not in b["run"]
                ),
            )
            assert body["run"]["status"] == "resolved" and "not_advancing" not in body["run"]
            assert dead_letters(p) == []
            # Said once per worker start, not at every tick.
            audit = p.read("audit", lambda m: True, settle=1)
            said = [d for d in docs(audit) if d.get("action") == "run_playbook_gone"]
            assert len(said) == 1, json.dumps(said)
        finally:
            worker.stop()
    finally:
        p.close()
