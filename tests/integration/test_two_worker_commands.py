"""Operator commands with two workers in one consumer group, on the real broker: each
worker holds the runs of its own partitions, yet any worker's operator API (and the CLI
pointed at it) lists, shows and acts on every run, each command applied once, also when
sent twice through both workers, when sent straight to the topic keyed by run id (another
partition than its run's), and when one worker is SIGKILLed and its partitions move
while commands are sent (helper t61: a run on the other worker's partition was a 404,
and each worker listed only its own runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from streams.api import FORWARDED_HEADER
from streams.context import run_key
from streams.partitioning import key_partition
from tests.integration.test_pipeline import steps_of
from tests.integration.test_scale_out import SENSORS, run_per_sensor, warm_then_spike_all
from tests.services import OPERATOR_TOKEN, Pipeline, Worker, shifted_port

pytestmark = pytest.mark.integration


def own_runs(p: Pipeline, port: int, busy: set[str] | None = None) -> set[str]:
    """The runs the worker on ``port`` holds itself (a request marked as passed on is
    answered from its own state only); ``busy`` when given is the answer to a 503 (a
    worker taking over partitions after a rebalance answers so meanwhile: a wait that
    polls across a rebalance raised HTTPError, t205's test once a worker joined)."""
    url = f"http://127.0.0.1:{port}/api/v1/runs"
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}", FORWARDED_HEADER: "test"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return {r["run_id"] for r in json.load(resp)["runs"]}
    except urllib.error.HTTPError as err:
        if err.code != 503 or busy is None:
            raise
        return busy


def act_until_taken(
    p: Pipeline, port: int, run_id: str, key: str, timeout: float = 90.0
) -> tuple[int, dict[str, object]]:
    """POST an ack with Idempotency-Key ``key`` until the API takes it (202, or 200 when
    already applied): a worker taking over partitions answers 503 meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/runs/{run_id}/ack",
            data=json.dumps({"note": "on my way"}).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {OPERATOR_TOKEN}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, json.loads(exc.read() or b"{}")
        except OSError as exc:  # the killed worker's port, while it is down
            status, body = 0, {"error": repr(exc)}
        assert status in (0, 503), (status, body)
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.5)


@pytest.mark.parametrize("partitions", [2, 4])
def test_any_worker_lists_shows_and_acts_on_every_run_each_command_applied_once(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path, partitions: int
) -> None:
    p = run_per_sensor(run_dir, tmp_path, 600, partitions)
    pa, pb = p.settings.worker_port, shifted_port(26067)
    a = p.worker().start()
    b = Worker({**p.env, "CITYBRAIN_WORKER_PORT": str(pb)}, p.run_dir / f"{p.name}-b.log")
    b.start()
    try:
        warm_then_spike_all(p)
        steps = p.read("steps", lambda m: len(steps_of(m, "run_created")) >= len(SENSORS))
        runs = sorted({d["run_id"] for d in steps_of(steps, "run_created")})
        homes = {key_partition(r.rsplit(".", 1)[0].encode(), partitions) for r in runs}
        assert homes == set(range(partitions)), homes
        for port in (pa, pb):  # the whole list, whichever worker is asked
            status, listed = p.api_until(
                "/runs", OPERATOR_TOKEN, lambda s, b: len(b.get("runs", [])) == 24, port=port
            )
            assert status == 200 and sorted(r["run_id"] for r in listed["runs"]) == runs
            # t186: a page at a time, each worker answering its own page for the merge:
            # 5 pages of at most 5, oldest first, every run once, whichever worker asked.
            pages, path = [], "/runs?limit=5"
            while path:
                status, page = p.api("GET", path, OPERATOR_TOKEN, port=port)
                assert status == 200 and len(page["runs"]) <= 5, (status, page)
                pages.append(page["runs"])
                path = (page["next"] or "").removeprefix("/api/v1")
            paged = [r["run_id"] for page in pages for r in page]
            assert len(pages) == 5 and sorted(paged) == runs, pages
            created = [(r["created_at"], r["run_id"]) for page in pages for r in page]
            assert created == sorted(created)
        held = {pa: own_runs(p, pa), pb: own_runs(p, pb)}
        assert held[pa] and held[pb] and held[pa] | held[pb] == set(runs)
        assert not held[pa] & held[pb]
        other = {r: (pb if r in held[pa] else pa) for r in runs}
        for r in runs:  # shown by the worker that does not hold it
            status, shown = p.api("GET", f"/runs/{r}", OPERATOR_TOKEN, port=other[r])
            assert status == 200 and shown["run"]["run_id"] == r, (status, shown)

        # Half the runs acked through the worker that does not hold them, and the same
        # command (its Idempotency-Key) sent again through the one that does.
        first = runs[::2]
        for r in first:
            status, taken = act_until_taken(p, other[r], r, f"k-{r}")
            assert status == 202, taken
            owner = pa if other[r] == pb else pb
            again = act_until_taken(p, owner, r, f"k-{r}")
            assert again[0] in (200, 202), again
        # One through the CLI, pointed at the worker that does not hold the run.
        cli_run = runs[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "citybrain.cli",
                "runs",
                "ack",
                cli_run,
                "--note",
                "cli",
                "--url",
                f"http://127.0.0.1:{other[cli_run]}",
                "--token",
                OPERATOR_TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=p.env,
        )
        assert done.returncode == 0, done.stderr
        # Two straight onto the commands topic, keyed by run id (not the group key): on
        # another partition than their runs', passed on there, applied once.
        rest = [r for r in runs if r not in first and r != cli_run]
        astray = [
            r
            for r in rest
            if key_partition(r.encode(), partitions) != key_partition(run_key(r), partitions)
        ][:2]
        assert astray, "no run id keyed onto another partition than its group's"
        for r in astray:
            ack = {"id": f"astray-{r}", "run_id": r, "action": "ack", "by": "duty-operator"}
            p.send("commands", r.encode(), json.dumps({**ack, "at": time.time()}).encode())
        p.flush()
        # Then one worker is SIGKILLed: the rest are sent through the survivor while its
        # partitions move to it (503 until it has read them back, then taken).
        a.kill()
        rest = [r for r in rest if r not in astray]
        for r in rest:
            status, taken = act_until_taken(p, pb, r, f"k-{r}")
            assert status in (200, 202), taken
        steps = p.read(
            "steps",
            lambda m: {d["run_id"] for d in steps_of(m, "acknowledged")} >= set(runs),
            timeout=90,
            settle=3,
        )
        acked = Counter(d["run_id"] for d in steps_of(steps, "acknowledged"))
        assert acked == Counter(runs), acked  # every run acknowledged, each once
        dead = p.read("deadletter", lambda m: True, timeout=5, settle=1)
        assert [m.value[:200] for m in dead] == []  # no unknown_run, nothing refused
        status, listed = p.api_until(
            "/runs",
            OPERATOR_TOKEN,
            lambda s, b: s == 200 and all(r["acknowledged_at"] for r in b["runs"]),
            port=pb,
        )
        assert status == 200 and sorted(r["run_id"] for r in listed["runs"]) == runs
        assert all(r["acknowledged_by"] == "duty-operator" for r in listed["runs"])
    finally:
        a.stop()
        b.stop()
        p.close()
