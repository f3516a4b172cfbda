"""The lists that grow are paged (t186): GET /runs answered every run of every worker in
one body, and a city's closed runs grow without end. ``limit`` (default ``PAGE_DEFAULT``,
at most ``PAGE_MAX``) and an opaque ``cursor``, given back as the ``next`` link says;
pages stay whole while runs are added between them; a bad limit or cursor is a 400 naming
the parameter and its value."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from playbooks.engine import PlaybookEngine
from playbooks.loader import load_grid, load_playbooks
from streams.api import PAGE_DEFAULT, PAGE_MAX, cursor_text, paged, register_api
from streams.context import Context, run_key
from streams.metrics import Metrics
from streams.settings import Settings
from tests.services import OPERATOR_TOKEN, write_tokens

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def context(tmp_path: Path) -> Context:
    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
    )
    app = faust.App(f"api-{tmp_path.name}", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    app.tables.recovery.completed.set()  # as a worker whose tables are read back
    register_api(app, ctx)
    return ctx


def add_runs(ctx: Context, first: int, count: int) -> None:
    """Runs grp-<n>.1 for n in first..first+count-1, created at 1000 + n // 2 (two a
    second, so the id breaks ties)."""
    engine = PlaybookEngine(load_playbooks(ctx.settings.playbook_dir)["flash-flood"], ctx.grid)
    for n in range(first, first + count):
        run_id = f"grp-{n:04d}.1"
        alert = {"alert_id": f"a-{n}", "kind": "water_level", "grid_cell": "c-bridge"}
        run, _ = engine.new_run(run_id, {**alert, "labels": {}}, 1000.0 + n // 2)
        ctx.groups.data[run_key(run_id)] = {"generation": 1, "run": run.to_dict(), "commands": []}


def get(ctx: Context, paths: list[str], between: Any = None) -> list[tuple[int, dict[str, Any]]]:
    """GET each of ``paths`` in turn (a path "NEXT" is the last answer's next link);
    ``between(i)`` runs before the i-th request."""

    async def go() -> list[tuple[int, dict[str, Any]]]:
        answers: list[tuple[int, dict[str, Any]]] = []
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        async with TestClient(TestServer(web_app)) as client:
            for i, path in enumerate(paths):
                if between is not None:
                    between(i)
                if path == "NEXT":
                    path = answers[-1][1]["next"]
                resp = await client.get(path, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
                answers.append((resp.status, await resp.json()))
        return answers

    return asyncio.run(go())


def ids(doc: dict[str, Any]) -> list[str]:
    return [run["run_id"] for run in doc["runs"]]


def test_the_runs_list_is_paged_with_a_default_and_a_next_link(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    add_runs(ctx, 0, PAGE_DEFAULT + 3)
    (status, first), (again, second) = get(ctx, ["/api/v1/runs", "NEXT"])
    assert (status, again) == (200, 200)
    assert ids(first) == [f"grp-{n:04d}.1" for n in range(PAGE_DEFAULT)]  # oldest first
    assert first["next"].startswith("/api/v1/runs?cursor=c1.")
    assert ids(second) == [f"grp-{n:04d}.1" for n in range(PAGE_DEFAULT, PAGE_DEFAULT + 3)]
    assert second["next"] is None


def test_pages_stay_whole_while_runs_are_added_and_keep_the_status_filter(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    add_runs(ctx, 0, 10)

    def more(i: int) -> None:
        if i:  # new runs between the pages, newer than any listed
            add_runs(ctx, 100 * i, 2)

    answers = get(ctx, ["/api/v1/runs?status=waiting_ack&limit=4", "NEXT", "NEXT", "NEXT"], more)
    assert all(status == 200 for status, _ in answers), answers
    listed = [run_id for _, doc in answers for run_id in ids(doc)]
    assert len(listed) == len(set(listed))  # none twice
    assert listed[:10] == [f"grp-{n:04d}.1" for n in range(10)]  # none passed over
    assert "status=waiting_ack" in answers[0][1]["next"] and "limit=4" in answers[0][1]["next"]
    assert all(r["status"] == "waiting_ack" for _, doc in answers for r in doc["runs"])


@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "limit=0",
            f"query parameter \"limit\" is '0': expected a whole number from 1 to {PAGE_MAX:,}",
        ),
        ("limit=1001", "query parameter \"limit\" is '1001': expected a whole number from 1"),
        ("limit=ten", "query parameter \"limit\" is 'ten': expected a whole number"),
        ("limit=-5", "query parameter \"limit\" is '-5': expected a whole number"),
        ("cursor=abc", "query parameter \"cursor\" is 'abc': not a cursor this list gave"),
        ("cursor=c1.e30", "query parameter \"cursor\" is 'c1.e30': not a cursor this list gave"),
        ("cursor=c1.!!", "query parameter \"cursor\" is 'c1.!!': not a cursor this list gave"),
        # A silences cursor (an id alone) given to the runs list.
        (f"cursor={cursor_text(('s1',))}", 'query parameter "cursor" is'),
    ],
)
def test_a_bad_limit_or_cursor_is_a_400_naming_it(tmp_path: Path, query: str, said: str) -> None:
    ctx = context(tmp_path)
    add_runs(ctx, 0, 2)
    [(status, doc)] = get(ctx, [f"/api/v1/runs?{query}"])
    assert status == 400, doc
    assert doc["error"].startswith(said), doc


def test_a_page_merges_keys_from_many_lists_as_one() -> None:
    # Each worker answers its own first `limit` after the cursor; the first `limit` of
    # all of them are among those, so the merged page is the same as one list's.
    items = [{"k": (n % 7, f"r{n}")} for n in range(40)]
    whole, _ = paged(items, lambda i: i["k"], 5, None)
    parts = [paged(items[w::3], lambda i: i["k"], 5, None)[0] for w in range(3)]
    merged, cursor = paged([i for part in parts for i in part], lambda i: i["k"], 5, None)
    assert merged == whole and cursor is not None


def test_the_silences_list_is_paged_by_id_and_stable_while_silences_are_added(
    tmp_path: Path,
) -> None:
    """Up to 10,000 silences in force, and those ended within 120 h, each with up to
    64 KB of matchers, came in one body."""
    ctx = context(tmp_path)

    def store(name: str) -> None:
        doc = {
            "id": name,
            "matchers": [f'alert_id="{name}"'],
            "starts_at": 1.0,
            "ends_at": 9e9,
            "author": "op",
            "reason": "r",
        }
        ctx.silences.data[name.encode()] = doc

    for n in range(7):
        store(f"s{n}")

    def more(i: int) -> None:
        if i == 1:
            store("s00")  # sorts before the cursor: the next traversal lists it
            store("s9")

    answers = get(
        ctx, ["/api/v1/silences?limit=3", "NEXT", "NEXT", "/api/v1/silences?limit=x"], more
    )
    assert [status for status, _ in answers] == [200, 200, 200, 400]
    listed = [s["id"] for _, doc in answers[:3] for s in doc["silences"]]
    assert listed == ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s9"]
    assert answers[2][1]["next"] is None
    assert answers[3][1]["error"].startswith("query parameter \"limit\" is 'x': expected a whole")


def test_the_firing_alerts_are_paged_by_id(tmp_path: Path) -> None:
    """A flood fires an alert per sensor and cell: every one came in one body."""
    ctx = context(tmp_path)
    for n in range(5):
        alert = {"alert_id": f"al-{n}", "kind": "pm25", "grid_cell": "c-bridge"}
        ctx.firing.data[f"al-{n}".encode()] = alert
    answers = get(ctx, ["/api/v1/alerts?limit=2", "NEXT", "NEXT", "/api/v1/alerts?cursor=x"])
    assert [status for status, _ in answers] == [200, 200, 200, 400]
    listed = [a["alert_id"] for _, doc in answers[:3] for a in doc["firing"]]
    assert listed == [f"al-{n}" for n in range(5)]
    assert answers[2][1]["next"] is None
    assert answers[3][1]["error"].startswith("query parameter \"cursor\" is 'x': not a cursor")
