"""t194: the runs list across workers of mixed versions, slow or huge. A rolling upgrade
puts workers of two versions in one group; the list of runs answered 503 when a peer
answered in an older shape (a worker before t186 refuses ``limit`` and ``cursor`` with a
400), when one peer was slow or down, or when a partition had no worker for a moment, and
a peer's answer was read whole into memory however large (an endless one until the wait
ran out), one peer after another. Now the list answers with what it has, ``unlisted`` and
``warnings`` naming each partition and peer it could not read; an older peer is asked
again without paging; each peer's answer is bounded (``API_PEER_MAX_BYTES``) and every
peer is asked at once within one wait."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

import streams.api
from playbooks.loader import load_grid
from streams.api import FORWARDED_HEADER, register_api
from streams.context import Context
from streams.metrics import Metrics
from streams.partitioning import key_partition
from streams.settings import Settings
from tests.services import OPERATOR_TOKEN, write_tokens
from tests.unit.streams.test_api_delivery import FIXTURES, RUN_ID
from tests.unit.streams.test_api_owners import assign
from tests.unit.streams.test_api_reading_back import held_run

PARTITIONS = 5
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def context(tmp_path: Path) -> Context:
    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
        partitions=PARTITIONS,
    )
    app = faust.App(f"api-{tmp_path.name}", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    app.tables.recovery.completed.set()
    return ctx


def a_run(run_id: str, created_at: float, **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "created_at": created_at, "playbook": "flash-flood", **fields}


def group_key_on(partition: int) -> str:
    """A group key (``grp-…``) whose partition is ``partition``."""
    n = 0
    while key_partition(f"grp-p{n}".encode(), PARTITIONS) != partition:
        n += 1
    return f"grp-p{n}"


async def new_peer(request: web.Request) -> web.Response:
    """A worker of this version: its own page, with ``next``."""
    assert request.headers[FORWARDED_HEADER]
    assert request.query.get("limit") == "10"
    return web.json_response({"runs": [a_run("grp-new.1", 20.0, status="open")], "next": None})


async def old_peer(request: web.Request) -> web.Response:
    """A worker before t186: no paging (its 400 for an unknown parameter), and runs of
    an older shape (no ``status`` on one, a ``reopened`` that is text, an item that is no
    run at all)."""
    for name in request.query:
        if name != "status":
            return web.json_response(
                {"error": f"query parameter {name!r}: /api/v1/runs takes no such parameter"},
                status=400,
            )
    runs = [a_run("grp-old.1", 10.0, status="open", reopened="1"), a_run("grp-old.2", 30.0), 7]
    return web.json_response({"runs": runs})


async def endless_peer(request: web.Request) -> web.StreamResponse:
    """A worker whose answer never ends (a fault, or not a worker at all)."""
    answer = web.StreamResponse()
    await answer.prepare(request)
    try:
        while True:
            await answer.write(b"[" * 65536)
    except (ConnectionResetError, RuntimeError):
        pass
    return answer


async def slow_peer(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({"runs": []})


async def serve(handler: Any) -> TestServer:
    app = web.Application()
    app.router.add_route("GET", "/{path:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    return server


def test_the_runs_list_answers_with_what_it_has_and_names_the_peers_it_could_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams.api, "API_FORWARD_WAIT", 2.0)
    monkeypatch.setattr(streams.api, "API_PEER_MAX_BYTES", 200_000)
    asker = context(tmp_path)
    held_run(asker)  # grp-flood.1, this worker's own

    async def scenario() -> tuple[list[tuple[int, Any]], float, dict[str, str]]:
        peers = [await serve(h) for h in (new_peer, old_peer, endless_peer, slow_peer)]
        urls = [str(p.make_url("")).rstrip("/") for p in peers]
        # Partitions 0-3 each a peer's; partition 4 has no worker for now.
        assign(asker, {url: [n] for n, url in enumerate(urls)})
        out: list[tuple[int, Any]] = []
        try:
            register_api(asker.app, asker)
            async with TestClient(TestServer(asker.app.web.web_app)) as client:  # type: ignore[attr-defined]
                start = time.monotonic()
                resp = await client.get("/api/v1/runs?limit=10", headers=AUTH)
                out.append((resp.status, await resp.json()))
                took = time.monotonic() - start
                # A run on the endless peer's partition, passed on: refused, named.
                run = f"{group_key_on(2)}.1"
                resp = await client.get(f"/api/v1/runs/{run}", headers=AUTH)
                out.append((resp.status, await resp.json()))
        finally:
            for peer in peers:
                await peer.close()
            await asker.app.http_client.close()
        return out, took, dict(enumerate(urls))

    (listed, shown), took, urls = asyncio.run(scenario())
    status, doc = listed
    assert status == 200, doc
    # Its own, the new peer's and the old peer's (asked again without paging, paged here).
    assert [r["run_id"] for r in doc["runs"]] == ["grp-old.1", "grp-new.1", "grp-old.2", RUN_ID]
    unlisted = {(u["worker"], tuple(u["partitions"])): u["reason"] for u in doc["unlisted"]}
    assert set(unlisted) == {(urls[2], (2,)), (urls[3], (3,)), (None, (4,))}
    assert "too large" in unlisted[(urls[2], (2,))] and "200,000" in unlisted[(urls[2], (2,))]
    assert "did not answer within 2 s" in unlisted[(urls[3], (3,))]
    assert len(doc["warnings"]) == 3 and any(urls[2] in w for w in doc["warnings"])
    # Every peer asked at once: the slow one's wait, not the sum of all.
    assert took < 6, took
    assert shown[0] == 503 and urls[2] in shown[1]["error"] and "too large" in shown[1]["error"]


def test_a_runs_list_every_peer_answers_says_nothing_more(tmp_path: Path) -> None:
    asker = context(tmp_path)

    async def scenario() -> tuple[int, Any]:
        peer = await serve(new_peer)
        assign(asker, {str(peer.make_url("")): list(range(PARTITIONS))})
        try:
            register_api(asker.app, asker)
            async with TestClient(TestServer(asker.app.web.web_app)) as client:  # type: ignore[attr-defined]
                resp = await client.get("/api/v1/runs?limit=10", headers=AUTH)
                return resp.status, await resp.json()
        finally:
            await peer.close()
            await asker.app.http_client.close()

    status, doc = asyncio.run(scenario())
    assert status == 200 and doc == {
        "runs": [a_run("grp-new.1", 20.0, status="open")],
        "next": None,
    }
