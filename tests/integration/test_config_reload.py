"""SIGHUP on a real worker with runs open (t122; docs/operations.md, "Configuration
reload"). Before, the worker had no SIGHUP handler and the signal's default ended it at
once. Now a routing file with an error is not taken: the worker goes on with the
running routing, says why in one line and sets citybrain_config_last_reload_successful
to 0; a good one is taken between two messages, and the run already open is neither lost
nor opened again."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from tests.integration.test_pipeline import real_levels, send_readings, steps_of
from tests.services import COORDINATOR_TOKEN, ROOT, Pipeline, Worker, scrape_sum

pytestmark = pytest.mark.integration

LIBRARY = ROOT / "playbooks" / "library"
OK = "citybrain_config_last_reload_successful"


def hup_and_wait(worker: Worker, said: str, timeout: float = 20.0) -> str:
    """SIGHUP ``worker``; the first log line holding ``said`` after it."""
    assert worker.proc is not None
    before = len(worker.log())
    worker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in worker.log()[before:].splitlines():
            if said in line:
                return line
        assert worker.alive(), worker.log()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no {said!r} in the worker's log:\n{worker.log()[-3000:]}")


def own_library(run_dir: Path, tmp_path: Path, routing_text: str) -> tuple[Pipeline, Path]:
    """A pipeline whose worker reads a copy of the library's playbooks and
    ``routing_text`` as its routing file (both under ``tmp_path``, to be edited and
    signalled), with acknowledgements due in 600 s; and that routing file."""
    playbooks, routing = tmp_path / "playbooks", tmp_path / "routing.yaml"
    shutil.copytree(LIBRARY / "playbooks", playbooks)
    routing.write_text(routing_text)
    pipeline = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
            "CITYBRAIN_PLAYBOOK_DIR": str(playbooks),
            "CITYBRAIN_ROUTING_FILE": str(routing),
        },
    )
    return pipeline, routing


def test_sighup_keeps_a_bad_routing_file_out_and_takes_a_good_one_with_runs_open(
    run_dir: Path, stack: PrometheusServer, tmp_path: Path
) -> None:
    text = (LIBRARY / "routing.yaml").read_text()
    p, routing = own_library(run_dir, tmp_path, text)
    worker = p.worker().start()
    try:
        port = p.settings.worker_port
        assert scrape_sum(port, OK) == 1
        base = real_levels(40)
        send_readings(p, [*base, base[-1] * 8], sensor="gauge-1")
        steps = p.read("steps", lambda m: bool(steps_of(m, "wait_ack")), settle=1)
        [first] = steps_of(steps, "run_created")
        assert first["playbook"] == "flash-flood"

        # A typo in the routing file: refused, the worker goes on with the running one.
        routing.write_text(text.replace("playbook: flash-flood", "playbook: flash-flod"))
        line = hup_and_wait(worker, "configuration reload failed")
        assert (
            f"the running playbooks, routing, grid and tokens are kept: {routing}:19: route.routes.2.playbook: "
            "playbook 'flash-flod' does not exist" in line
        ), line
        assert scrape_sum(port, OK) == 0
        assert worker.alive() and "Traceback" not in worker.log()

        # Fixed, with flood alerts now sent to sensor-anomaly grouped by sensor: taken;
        # gauge-2's alert opens a sensor-anomaly run, the flash-flood run stays as it was.
        # (Grouped by street still, it would join the open run of its group, as it does.)
        good = "playbook: sensor-anomaly\n      group_by: [sensor_id]"
        routing.write_text(text.replace("playbook: flash-flood\n      group_by: [street]", good))
        assert good in routing.read_text()
        hup_and_wait(worker, "configuration reloaded")
        assert scrape_sum(port, OK) == 1
        send_readings(p, [*base, base[-1] * 8], sensor="gauge-2")
        steps = p.read(
            "steps",
            lambda m: any(d["playbook"] == "sensor-anomaly" for d in steps_of(m, "run_created")),
            settle=2,
        )
        created = steps_of(steps, "run_created")
        assert sorted(d["playbook"] for d in created) == ["flash-flood", "sensor-anomaly"]
        status, body = p.api("GET", "/runs", COORDINATOR_TOKEN)
        assert status == 200
        runs = {r["run_id"]: r for r in body["runs"]}
        assert len(runs) == 2, runs
        assert runs[first["run_id"]]["status"] == "waiting_ack"
        # The open run still takes its playbook's steps (flash-flood is in the library).
        status, _ = p.api("POST", f"/runs/{first['run_id']}/ack", COORDINATOR_TOKEN, {})
        assert status == 202
        p.api_until(
            f"/runs/{first['run_id']}",
            COORDINATOR_TOKEN,
            lambda s, b: b.get("run", {}).get("acknowledged_at") is not None,
        )
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
        p.close()


def sighup_handled(pid: int) -> bool:
    """Whether ``pid`` catches or ignores SIGHUP (its default would end it)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return bool((int(masks["SigCgt"], 16) | int(masks["SigIgn"], 16)) & 1 << (signal.SIGHUP - 1))


def test_a_sighup_while_the_worker_starts_reloads_after_the_start(
    run_dir: Path, stack: PrometheusServer, tmp_path: Path
) -> None:
    """t125: the start ignored a SIGHUP until the loop's handler was in, so a routing file
    edited and signalled after the start had read it stayed out, unsaid. A routing file of
    20,000 extra routes keeps the start reading it ~5 s: the signal comes during that read,
    with the file replaced by one sending flood alerts to sensor-anomaly."""
    import os
    import threading

    extra = "".join(
        f"    - matchers: ['source=\"sensor\"', 'sensor_id=\"big-{i}\"']\n"
        "      playbook: sensor-check\n"
        for i in range(20_000)
    )
    text = (LIBRARY / "routing.yaml").read_text().replace("  routes:\n", "  routes:\n" + extra, 1)
    p, routing = own_library(run_dir, tmp_path, text)
    worker = p.worker()
    started: list[BaseException] = []

    def start() -> None:
        try:
            # A deadline for the start, not a speed: the 20,000 routes are read twice
            # (the start and the reload), which took over 120 s at load average 10.
            worker.start(timeout=300)
        except BaseException as exc:  # said by the main thread
            started.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    try:
        deadline = time.monotonic() + 30
        while worker.proc is None or not sighup_handled(worker.proc.pid):
            assert time.monotonic() < deadline, "the worker never set its SIGHUP handling"
            time.sleep(0.01)
        time.sleep(1.0)  # into the start's read of the routing file (~5 s)
        good = "playbook: sensor-anomaly\n      group_by: [sensor_id]"
        edited = tmp_path / "routing.yaml.tmp"
        edited.write_text(text.replace("playbook: flash-flood\n      group_by: [street]", good))
        os.replace(edited, routing)  # as editors save: a new file renamed over the old
        worker.proc.send_signal(signal.SIGHUP)
        starter.join(320)
        assert not started, started
        assert worker.alive(), worker.log()[-3000:]
        deadline = time.monotonic() + 90
        while "configuration reloaded" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.3)
        base = real_levels(40)
        send_readings(p, [*base, base[-1] * 8], sensor="gauge-1")
        steps = p.read("steps", lambda m: bool(steps_of(m, "run_created")), settle=1)
        assert [d["playbook"] for d in steps_of(steps, "run_created")] == ["sensor-anomaly"]
        assert "Traceback" not in worker.log()
    finally:
        starter.join(320)
        worker.stop()
        p.close()


def test_sighup_rotates_a_token_and_takes_a_grid_edit_on_a_real_worker(
    run_dir: Path, stack: PrometheusServer, tmp_path: Path
) -> None:
    """t130: the tokens file and the grid file were read at start only, so revoking a
    leaked token needed a restart of the control room. A SIGHUP now reads them with the
    playbooks and routing: the revoked token is a 401 from the reload on, the new one is
    taken, a tokens file with an error keeps the running tokens (and everything else),
    and a new cell's sensor alerts into a run; the audit record counts tokens, never
    shows one."""
    import json

    from streams.auth import hash_token
    from streams.events import Reading
    from tests.integration.test_pipeline import START
    from tests.services import FIXTURES

    leaked, fresh = "leaked-operator-token", "fresh-operator-token"

    def tokens(operator: str, role: str = "operator") -> str:
        return (
            "tokens:\n"
            f"  - {{name: desk, role: coordinator, sha256: '{hash_token(COORDINATOR_TOKEN)}'}}\n"
            f"  - {{name: night-desk, role: {role}, sha256: '{hash_token(operator)}'}}\n"
        )

    tokens_file, grid = tmp_path / "tokens.yaml", tmp_path / "grid.yaml"
    tokens_file.write_text(tokens(leaked))
    tokens_file.chmod(0o600)
    grid.write_text((FIXTURES / "grid.yaml").read_text())
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
            "CITYBRAIN_API_TOKENS_FILE": str(tokens_file),
            "CITYBRAIN_GRID_FILE": str(grid),
        },
    )
    worker = p.worker().start()
    try:
        port = p.settings.worker_port
        hashed = scrape_sum(port, "citybrain_config_hash")
        assert p.api("GET", "/runs", leaked)[0] == 200
        assert p.api("GET", "/runs", fresh)[0] == 401

        # The leaked token replaced, and a cell with a gauge added: one SIGHUP takes both.
        tokens_file.write_text(tokens(fresh))
        grid.write_text(
            (FIXTURES / "grid.yaml")
            .read_text()
            .replace(
                "sensors:\n",
                "  - {id: c-ford, level: community, parent: s-hill, name: Ford, "
                "unit: ford community station}\n"
                "sensors:\n  - {id: gauge-9, kind: water_level, unit: ft, cell: c-ford}\n",
            )
        )
        line = hup_and_wait(worker, "configuration reloaded")
        assert "(changed)" in line and "2 token(s) from" in line, line
        assert scrape_sum(port, OK) == 1
        assert scrape_sum(port, "citybrain_config_hash") != hashed
        status, body = p.api("GET", "/runs", leaked)
        assert status == 401, body
        assert "unknown bearer token" in body["error"], body
        assert p.api("GET", "/runs", fresh)[0] == 200

        # A tokens file with an error: nothing is taken, the running tokens stay.
        tokens_file.write_text(tokens(leaked, role="operater"))
        line = hup_and_wait(worker, "configuration reload failed")
        assert f"CITYBRAIN_API_TOKENS_FILE {tokens_file}:3: tokens entry 2: role is " in line
        assert scrape_sum(port, OK) == 0
        assert p.api("GET", "/runs", leaked)[0] == 401
        assert p.api("GET", "/runs", fresh)[0] == 200

        # The new cell's gauge: read, detected and run in its cell, by its unit.
        base = real_levels(40)
        for i, v in enumerate([*base, base[-1] * 8]):
            value = Reading(START + 300 * i, "gauge-9", "water_level", v, "ft", "c-ford")
            p.send("readings", b"gauge-9", value.to_json())
        p.flush()
        steps = p.read("steps", lambda m: bool(steps_of(m, "run_created")), settle=1)
        [created] = steps_of(steps, "run_created")
        assert created["playbook"] == "flash-flood", created
        status, body = p.api_until(
            f"/runs/{created['run_id']}",
            fresh,
            lambda s, b: s == 200 and b.get("run", {}).get("grid_cell") == "c-ford",
        )
        assert status == 200 and body["run"]["grid_cell"] == "c-ford", body
        audit = [
            json.loads(m.value)
            for m in p.read(
                "audit",
                lambda ms: sum(b'"config_reload' in m.value for m in ms) >= 2,
            )
        ]
        reloaded = [r for r in audit if r["action"] == "config_reloaded"]
        assert "tokens: 1 added, 1 revoked" in reloaded[0]["detail"], reloaded
        assert "grid: cells 1 added, 0 removed, sensors 1 added" in reloaded[0]["detail"]
        text = json.dumps(audit) + worker.log()
        for secret in (leaked, fresh):
            assert secret not in text and hash_token(secret) not in text
        assert worker.alive() and "Traceback" not in worker.log()
    finally:
        worker.stop()
        p.close()
