"""Trial 10, finding 1: a state-changing operator API call answers 2xx only once Kafka has
acknowledged what it wrote, and 503 (JSON, Retry-After) when Kafka has not within
API_KAFKA_WAIT seconds; a silence Kafka has not acknowledged is not put in the worker's
table (no half-applied silence). No broker here: ``Context.acknowledged`` is given
futures the test resolves or leaves pending; the real broker is in
tests/integration/test_api_durability.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from playbooks.engine import PlaybookEngine
from playbooks.loader import load_grid, load_playbooks
from streams.api import register_api
from streams.context import Context, run_key
from streams.metrics import Metrics
from streams.settings import Settings
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, write_tokens

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RUN_ID = "grp-flood.1"


def context(tmp_path: Path) -> Context:
    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
    )
    app = faust.App(f"api-{tmp_path.name}", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    app.tables.recovery.completed.set()  # as a worker whose tables are read back
    return ctx


def test_acknowledged_only_once_every_message_is_delivered(tmp_path: Path) -> None:
    ctx = context(tmp_path)

    async def scenario() -> list[bool]:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        delivered.set_result(None)
        failed: asyncio.Future[None] = loop.create_future()
        failed.set_exception(ConnectionError("broker gone"))
        never: asyncio.Future[None] = loop.create_future()  # Kafka never answers

        def sending(*futures: Awaitable[Any]) -> Any:
            async def send() -> list[Awaitable[Any]]:
                return list(futures)

            return send

        async def stuck() -> list[Awaitable[Any]]:  # queueing waits for metadata
            await asyncio.Event().wait()
            return []

        answers = [
            await ctx.acknowledged(sending(delivered, delivered), timeout=0.05),
            await ctx.acknowledged(sending(delivered, never), timeout=0.05),
            await ctx.acknowledged(sending(failed), timeout=0.05),
            await ctx.acknowledged(stuck, timeout=0.05),
        ]
        assert not never.cancelled()  # still the producer's to resolve
        return answers

    assert asyncio.run(scenario()) == [True, False, False, False]


def ask(
    ctx: Context, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], str]:
    register_api(ctx.app, ctx)

    async def go() -> tuple[int, dict[str, Any], str]:
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        async with TestClient(TestServer(web_app)) as client:
            resp = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            return resp.status, await resp.json(), resp.headers.get("Retry-After", "")

    return asyncio.run(go())


@pytest.fixture
def unacknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A context whose Kafka never acknowledges (what ``acknowledged`` says then)."""
    ctx = context(tmp_path)

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        return False

    monkeypatch.setattr(ctx, "acknowledged", acknowledged)
    return ctx


def test_a_silence_kafka_has_not_acknowledged_is_503_and_not_stored(
    unacknowledged: Context,
) -> None:
    status, doc, retry = ask(
        unacknowledged,
        "POST",
        "/api/v1/silences",
        OPERATOR_TOKEN,
        {"matchers": ['category="Noise - Vehicle"'], "duration": "1h", "reason": "works"},
    )
    assert (status, retry) == (503, "5")
    assert doc["error"].startswith("Kafka is unreachable: it has not acknowledged silence ")
    assert "in 5 s, so nothing is applied yet; retry" in doc["error"]
    assert dict(unacknowledged.silences.data.items()) == {}


def test_an_expiry_kafka_has_not_acknowledged_is_503_and_the_silence_stays(
    unacknowledged: Context,
) -> None:
    stored = {
        "id": "s-1",
        "matchers": ['category="x"'],
        "starts_at": 1.0e9,
        "ends_at": 4.0e9,
        "author": "duty-operator",
        "reason": "r",
    }
    unacknowledged.silences.data[b"s-1"] = stored
    status, doc, _ = ask(unacknowledged, "DELETE", "/api/v1/silences/s-1", COORDINATOR_TOKEN)
    assert status == 503 and "the expiry of silence s-1" in doc["error"]
    assert unacknowledged.silences.data[b"s-1"] == stored


@pytest.mark.parametrize("action", ["ack", "resolve", "escalate"])
def test_a_run_action_kafka_has_not_acknowledged_is_503(
    unacknowledged: Context, action: str
) -> None:
    ctx = unacknowledged
    engine = PlaybookEngine(load_playbooks(ctx.settings.playbook_dir)["flash-flood"], ctx.grid)
    alert = {"alert_id": "a-1", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}
    run, _ = engine.new_run(RUN_ID, alert, 100.0)
    ctx.groups.data[run_key(RUN_ID)] = {"generation": 1, "run": run.to_dict(), "commands": []}
    status, doc, retry = ask(
        ctx, "POST", f"/api/v1/runs/{RUN_ID}/{action}", COORDINATOR_TOKEN, {"note": "n"}
    )
    assert (status, retry) == (503, "5")
    assert doc["error"].startswith(f"Kafka is unreachable: it has not acknowledged the {action}")
    assert "same Idempotency-Key" in doc["error"]


def test_a_silence_retried_with_its_key_is_the_stored_one_and_a_reused_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trial 11: the same Idempotency-Key with another body rewrote the silence, and a
    # retry after an expiry brought it back in force with its times moved on.
    ctx = context(tmp_path)

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        return True  # Kafka has it (no broker in a unit test: the sends are not made)

    monkeypatch.setattr(ctx, "acknowledged", acknowledged)
    register_api(ctx.app, ctx)
    first = {"matchers": ['category="idem"'], "duration": "1h", "reason": "idem"}
    other = {"matchers": ['category="OTHER"'], "duration": "5h", "reason": "idem"}

    async def go() -> list[tuple[int, dict[str, Any]]]:
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        out = []
        async with TestClient(TestServer(web_app)) as client:

            async def call(method: str, path: str, token: str, body: Any = None) -> None:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k1"}
                resp = await client.request(method, path, json=body, headers=headers)
                out.append((resp.status, await resp.json()))

            await call("POST", "/api/v1/silences", OPERATOR_TOKEN, first)
            silence_id = out[0][1]["silence"]["id"]
            await call("POST", "/api/v1/silences", OPERATOR_TOKEN, other)
            await call("DELETE", f"/api/v1/silences/{silence_id}", COORDINATOR_TOKEN)
            await asyncio.sleep(0.01)
            await call("POST", "/api/v1/silences", OPERATOR_TOKEN, first)
        return out

    created, reused, expired, retried = asyncio.run(go())
    assert created[0] == 201
    assert reused[0] == 422 and "Idempotency-Key 'k1' was used for silence" in reused[1]["error"]
    assert expired[0] == 200
    assert retried[0] == 201 and retried[1]["already"] == "created"
    assert retried[1]["silence"] == expired[1]["silence"]  # still expired, times unmoved
    stored = ctx.silences.get(created[1]["silence"]["id"].encode())
    assert stored == expired[1]["silence"] and stored["matchers"] == ['category="idem"']


def test_starts_at_plus_duration_past_100_years_is_a_400(tmp_path: Path) -> None:
    # Trial 11: each within range alone, together they ended a silence in 2225.
    import time

    from streams.api import REQUEST_TIME_AHEAD

    body = {
        "matchers": ['category="x1"'],
        "starts_at": time.time() + REQUEST_TIME_AHEAD - 60,
        "duration": "36000d",
        "reason": "r",
    }
    status, doc, _ = ask(context(tmp_path), "POST", "/api/v1/silences", OPERATOR_TOKEN, body)
    assert status == 400 and "more than 100 years from now" in doc["error"], doc


def test_a_command_answered_503_but_still_queued_holds_the_runs_next_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t110: Kafka froze while an operator acknowledged a run: 503, the command still
    queued (it reaches Kafka and is applied once the broker answers). A second
    terminal's ack meanwhile was checked against the run without it and queued too,
    applied later as a no-op after its own 503. Now the first stays held: the second is
    a 503 naming it and sends nothing, until the first's delivery fails."""
    ctx = context(tmp_path)
    engine = PlaybookEngine(load_playbooks(ctx.settings.playbook_dir)["flash-flood"], ctx.grid)
    alert = {"alert_id": "a-1", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}
    run, _ = engine.new_run(RUN_ID, alert, 100.0)
    ctx.groups.data[run_key(RUN_ID)] = {"generation": 1, "run": run.to_dict(), "commands": []}
    monkeypatch.setattr("streams.api.COMMAND_SETTLE_SECONDS", 0.1)
    acknowledged = ctx.acknowledged
    monkeypatch.setattr(ctx, "acknowledged", lambda sends: acknowledged(sends, timeout=0.05))
    register_api(ctx.app, ctx)
    sent: list[asyncio.Future[None]] = []

    async def send(**kwargs: Any) -> asyncio.Future[None]:
        sent.append(asyncio.get_running_loop().create_future())  # Kafka never answers
        return sent[-1]

    monkeypatch.setattr(ctx.commands, "send", send)

    async def go() -> list[tuple[int, str]]:
        answers = []
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        async with TestClient(TestServer(web_app)) as client:
            for token in (OPERATOR_TOKEN, COORDINATOR_TOKEN, COORDINATOR_TOKEN):
                resp = await client.post(
                    f"/api/v1/runs/{RUN_ID}/ack",
                    json={"note": "n"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answers.append((resp.status, (await resp.json())["error"]))
                if len(answers) == 2:
                    assert len(sent) == 1  # the second was not sent
                    sent[0].set_exception(ConnectionError("batch expired"))  # now lost
                    await asyncio.sleep(0)
        return answers

    first, second, third = asyncio.run(go())
    assert first[0] == 503 and first[1].startswith("Kafka is unreachable")
    assert second[0] == 503 and second[1].startswith(
        f"run {RUN_ID!r} has a ack command answered 503 "
    )
    assert "may yet be applied" in second[1] and "nothing of this request" in second[1]
    # Once the first is known lost, the next request is sent (and is its own 503).
    assert third[0] == 503 and third[1].startswith("Kafka is unreachable") and len(sent) == 2


def test_a_request_in_flight_when_a_reload_revokes_its_token_ends_as_let_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t159, a tokens reload at one of a run action's awaits (waiting for the run's
    earlier commands to settle): the request ends under the configuration it was let in
    by (docs/operations.md, Configuration reload): its token's and its run's playbook's,
    though the reload revoked the one and removed the other; answered 202 with its
    command sent, never a 500 or a half-checked answer. The token's next request is a
    401."""
    import dataclasses

    from streams.auth import TokenStore, hash_token

    ctx = context(tmp_path)
    engine = PlaybookEngine(load_playbooks(ctx.settings.playbook_dir)["flash-flood"], ctx.grid)
    alert = {"alert_id": "a-1", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}
    run, _ = engine.new_run(RUN_ID, alert, 100.0)
    ctx.groups.data[run_key(RUN_ID)] = {"generation": 1, "run": run.to_dict(), "commands": []}
    revoked = tmp_path / "revoked.yaml"
    revoked.write_text(
        "tokens:\n"
        f"  - {{name: duty-operator, role: operator, sha256: '{hash_token(OPERATOR_TOKEN)}'}}\n"
    )
    revoked.chmod(0o600)
    new = dataclasses.replace(
        ctx.config,
        tokens=TokenStore.load(revoked),
        playbooks={k: v for k, v in ctx.playbooks.items() if k != "flash-flood"},
    )
    settled = ctx.pending_commands.settled

    async def reload_at_the_await(run_id: str, timeout: float) -> Any:
        ctx.config = new  # the SIGHUP's swap lands while the request waits here
        return await settled(run_id, timeout)

    monkeypatch.setattr(ctx.pending_commands, "settled", reload_at_the_await)
    sent: list[bytes] = []

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        await sends()
        return True

    async def send(key: Any, value: bytes, **kwargs: Any) -> Any:
        sent.append(value)
        return None

    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(ctx, "acknowledged", acknowledged)
    monkeypatch.setattr(ctx.commands, "send", send)
    monkeypatch.setattr(ctx, "audit", audit)
    register_api(ctx.app, ctx)

    async def go() -> list[tuple[int, dict[str, Any]]]:
        out = []
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        async with TestClient(TestServer(web_app)) as client:
            for _ in range(2):
                resp = await client.post(
                    f"/api/v1/runs/{RUN_ID}/ack",
                    json={"note": "on my way"},
                    headers={"Authorization": f"Bearer {COORDINATOR_TOKEN}"},
                )
                out.append((resp.status, await resp.json()))
        return out

    (first, doc), (second, refused) = asyncio.run(go())
    assert ctx.config is new  # the reload was taken
    assert first == 202 and doc["command"]["by"] == "duty-coordinator", doc
    assert len(sent) == 1
    assert second == 401 and "unknown bearer token" in refused["error"], refused
    assert [r["action"] for r in audited] == ["api_refused"]
