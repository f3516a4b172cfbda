"""Trial 15: a worker whose tables are still being read back from Kafka (starting, or
taking over partitions in a rebalance) answers the operator API's questions about them
503 with the reason and Retry-After, not "no run" for a live run, an empty list of runs
or silences, or a silence written again over its own expiry. A run it holds is still
served during a rebalance (its partition stayed here), and an absent run is a 404 once the
worker is settled. The storm on the real broker: tests/integration/test_report_storm.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from playbooks.engine import PlaybookEngine
from playbooks.loader import load_playbooks
from streams.api import register_api
from streams.context import Context, run_key
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN
from tests.unit.streams.test_api_delivery import RUN_ID, ask, context

SILENCE = {"matchers": ['category="x"'], "duration": "1h", "reason": "r"}


def held_run(ctx: Context) -> None:
    engine = PlaybookEngine(load_playbooks(ctx.settings.playbook_dir)["flash-flood"], ctx.grid)
    alert = {"alert_id": "a-1", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}
    run, _ = engine.new_run(RUN_ID, alert, 100.0)
    ctx.groups.data[run_key(RUN_ID)] = {"generation": 1, "run": run.to_dict(), "commands": []}


def ask_many(ctx: Context, *paths: str) -> list[tuple[int, dict[str, Any], str]]:
    """GET each of ``paths`` from one worker's API (registered once)."""
    register_api(ctx.app, ctx)

    async def go() -> list[tuple[int, dict[str, Any], str]]:
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        out = []
        async with TestClient(TestServer(web_app)) as client:
            for path in paths:
                resp = await client.get(path, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
                out.append((resp.status, await resp.json(), resp.headers.get("Retry-After", "")))
        return out

    return asyncio.run(go())


@pytest.fixture
def starting(tmp_path: Path) -> Context:
    ctx = context(tmp_path)
    ctx.app.tables.recovery.completed.clear()  # its first recovery has not ended
    return ctx


@pytest.mark.parametrize(
    ("method", "path", "token", "body", "what"),
    [
        ("GET", "/api/v1/runs", OPERATOR_TOKEN, None, "the list of runs"),
        ("GET", "/api/v1/runs/grp-absent.1", OPERATOR_TOKEN, None, "run 'grp-absent.1'"),
        ("POST", "/api/v1/runs/grp-absent.1/ack", OPERATOR_TOKEN, {}, "run 'grp-absent.1'"),
        ("GET", "/api/v1/silences", OPERATOR_TOKEN, None, "the list of silences"),
        ("POST", "/api/v1/silences", OPERATOR_TOKEN, SILENCE, "silence "),
        ("DELETE", "/api/v1/silences/s-1", COORDINATOR_TOKEN, None, "the expiry of silence"),
        ("GET", "/api/v1/alerts", OPERATOR_TOKEN, None, "the firing alerts"),
    ],
)
def test_a_starting_worker_answers_503_saying_it_is_reading_back(
    starting: Context,
    method: str,
    path: str,
    token: str,
    body: dict[str, object] | None,
    what: str,
) -> None:
    status, doc, retry = ask(starting, method, path, token, body)
    assert (status, retry) == (503, "2"), doc
    assert doc["error"].startswith(what)
    assert (
        " cannot be answered yet: this worker is starting and is still reading its state "
        "back from Kafka; retry in a few seconds (nothing was applied)"
    ) in doc["error"]
    assert dict(starting.silences.data.items()) == {}


def test_during_a_rebalance_a_held_run_is_served_and_an_absent_one_is_503(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    held_run(ctx)
    ctx.app.rebalancing = True
    held, absent, silences = ask_many(
        ctx, f"/api/v1/runs/{RUN_ID}", "/api/v1/runs/grp-absent.1", "/api/v1/silences"
    )
    assert (held[0], held[1]["run"]["run_id"]) == (200, RUN_ID)
    assert (absent[0], absent[2]) == (503, "2")
    assert absent[1]["error"] == (
        "run 'grp-absent.1' cannot be answered yet: a rebalance is moving partitions "
        "between workers (one joined or left) and this worker is reading the ones it takes "
        "over back from Kafka; retry in a few seconds (nothing was applied)"
    )
    # The global tables are whole through a rebalance: silences are answered.
    assert silences[:2] == (200, {"silences": [], "next": None})


def test_a_settled_worker_says_no_run_for_an_absent_one(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    status, doc, _ = ask(ctx, "GET", "/api/v1/runs/grp-absent.1", OPERATOR_TOKEN)
    assert status == 404 and doc["error"].startswith("no run 'grp-absent.1'"), doc
