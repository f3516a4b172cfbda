"""Helper t61: with several workers in one consumer group each holds the runs of its own
partitions, and any worker's operator API answers for every run: a request about a run
on another worker's partition is passed on, once, to the worker the group's assignment
gives it (faust's assignor carries each member's URL), and the list of runs is every
worker's. Before, such a run was a 404 ("ask that worker") and each worker listed only
its own runs. The end-to-end guarantee on the real broker, a SIGKILL included:
tests/integration/test_two_worker_commands.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.api import (
    FORWARDED_HEADER,
    owner_elsewhere,
    partition_owners,
    register_api,
    run_partition,
)
from streams.app import worker_url
from streams.context import Context, run_key
from streams.partitioning import key_partition
from streams.settings import Settings
from tests.services import OPERATOR_TOKEN
from tests.unit.streams.test_api_delivery import RUN_ID, context
from tests.unit.streams.test_api_reading_back import held_run

CHANGELOG = "citybrain-groups-changelog"


def test_partition_owners_reads_the_assignment_of_one_changelog() -> None:
    distribution = {
        "http://w1:16066": {CHANGELOG: [0, 2], "citybrain-firing-changelog": [0, 1, 2, 3]},
        "http://w2:16067": {CHANGELOG: [1, 3]},
        "http://w3:16068": {},  # a member given none of it
    }
    assert partition_owners(distribution, CHANGELOG) == {
        0: "http://w1:16066",
        2: "http://w1:16066",
        1: "http://w2:16067",
        3: "http://w2:16067",
    }


def test_a_run_is_passed_on_only_to_another_worker_that_owns_its_partition() -> None:
    owners = {0: "http://w1:16066/", 1: "http://w2:16067"}
    assert owner_elsewhere(1, {0}, owners, "http://w1:16066") == "http://w2:16067"
    assert owner_elsewhere(0, {0}, owners, "http://w1:16066") is None  # its own
    # Given to this worker, still being taken over: answered here (503 or the run).
    assert owner_elsewhere(0, set(), owners, "http://w1:16066") is None
    assert owner_elsewhere(2, {0}, owners, "http://w1:16066") is None  # no owner known


def test_a_runs_partition_is_its_group_keys_on_every_topic() -> None:
    for n in (1, 2, 4, 7):
        assert run_partition("grp-ab12.3", n) == key_partition(b"grp-ab12", n)
        assert run_partition("grp-ab12.3", n) == key_partition(run_key("grp-ab12.3"), n)


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:16066"),
        ("::1", "http://[::1]:16066"),
        ("0.0.0.0", f"http://{socket.gethostname()}:16066"),
    ],
)
def test_a_worker_is_reached_at_its_bind_address_or_host_name(bind: str, url: str) -> None:
    assert worker_url(Settings(worker_bind=bind)) == url


def assign(ctx: Context, owners: dict[str, list[int]]) -> None:
    """The group's last assignment as ``ctx``'s worker knows it: URL -> partitions."""
    topic = ctx.groups.changelog_topic.get_topic_name()
    ctx.app.assignor.changelog_distribution = {url: {topic: p} for url, p in owners.items()}  # type: ignore[attr-defined]


async def served(ctx: Context) -> TestServer:
    register_api(ctx.app, ctx)
    server = TestServer(ctx.app.web.web_app)  # type: ignore[attr-defined]
    await server.start_server()
    return server


def test_a_run_on_another_workers_partition_is_shown_listed_and_acted_on_there(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    asker, owner = context(tmp_path / "a"), context(tmp_path / "b")
    held_run(owner)
    sent: list[bytes] = []

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        sent.append(b"command")
        return True

    owner.acknowledged = acknowledged  # type: ignore[method-assign]
    home = run_partition(RUN_ID, asker.settings.partitions)

    async def scenario() -> list[tuple[int, Any]]:
        b = await served(owner)
        assign(asker, {"http://127.0.0.1:1": [1 - home], str(b.make_url("")): [home]})
        out: list[tuple[int, Any]] = []
        try:
            register_api(asker.app, asker)
            async with TestClient(TestServer(asker.app.web.web_app)) as client:  # type: ignore[attr-defined]
                auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Idempotency-Key": "k1"}
                for method, path, body in (
                    ("GET", f"/api/v1/runs/{RUN_ID}", None),
                    ("POST", f"/api/v1/runs/{RUN_ID}/ack", {"note": "on my way"}),
                    ("GET", "/api/v1/runs", None),
                ):
                    resp = await client.request(method, path, json=body, headers=auth)
                    out.append((resp.status, await resp.json()))
                # A request passed on already is answered from this worker's own state.
                marked = {**auth, FORWARDED_HEADER: "http://elsewhere"}
                resp = await client.get(f"/api/v1/runs/{RUN_ID}", headers=marked)
                out.append((resp.status, await resp.json()))
        finally:
            await b.close()
            await asker.app.http_client.close()
            await owner.app.http_client.close()
        return out

    shown, acked, listed, marked = asyncio.run(scenario())
    assert shown[0] == 200 and shown[1]["run"]["run_id"] == RUN_ID, shown
    assert acked[0] == 202 and acked[1]["command"]["note"] == "on my way", acked
    assert sent == [b"command"]  # sent by the owner, once
    # The other partition's worker (port 1) does not answer: the list answers with what
    # it has and names it (t194: a 503 for the whole list; test_api_peers).
    assert listed[0] == 200 and [r["run_id"] for r in listed[1]["runs"]] == [RUN_ID], listed
    [unlisted] = listed[1]["unlisted"]
    assert unlisted["worker"] == "http://127.0.0.1:1" and unlisted["partitions"] == [1 - home]
    assert marked[0] == 404 and "another worker owns" in marked[1]["error"], marked
