"""t90: the worker's HTTP client (faust's ``app.http_client``: the operator API passes a
request on to the worker owning its run with it) resolved host names with aiohttp's
default resolver, ``loop.getaddrinfo`` on the loop's default executor, where a DNS server
that never answers held a thread per request passed on and starved every other name
resolution of the worker. It resolves on threads of its own within a bound now."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from playbooks.executors.resolve import BoundedResolution
from streams.app import create_app
from streams.http_client import BoundedResolver, http_client
from streams.settings import Settings
from tests.stalls import NeverAnswers, loop_still_resolves


def _session(resolve: Any, timeout: float = 5.0) -> aiohttp.ClientSession:
    resolver = BoundedResolver(BoundedResolution(resolve, timeout=timeout))
    return http_client(connector=aiohttp.TCPConnector(resolver=resolver))


def test_the_apps_http_client_resolves_with_the_bounded_resolver(tmp_path: Path) -> None:
    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())

    async def main() -> None:
        session: Any = app.http_client
        assert isinstance(session, aiohttp.ClientSession)
        assert isinstance(session.connector._resolver, BoundedResolver)  # aiohttp 3.14
        await session.close()

    asyncio.run(main())


def test_a_host_name_is_resolved_by_it_and_the_owner_reached() -> None:
    def owner_example(host: str, port: int, *args: Any) -> list[Any]:
        assert host == "owner.example", host
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    async def main() -> str:
        server = web.Application()
        server.router.add_get("/api/v1/runs", lambda r: web.json_response({"runs": []}))
        runner = web.AppRunner(server)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            url = f"http://owner.example:{port}/api/v1/runs"
            async with _session(owner_example) as session, session.get(url) as answer:
                return await answer.text()
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == '{"runs": []}'


def test_a_resolver_that_never_answers_fails_the_request_and_leaves_the_executor_free() -> None:
    hangs = NeverAnswers()

    async def ask_five_times() -> None:
        async with _session(hangs, timeout=0.2) as session:
            for _ in range(5):
                with pytest.raises(aiohttp.ClientConnectorError) as caught:
                    await session.get("http://owner.example:16066/api/v1/runs")
                assert "resolving the host name 'owner.example' took longer than 0.2 s" in str(
                    caught.value
                )

    loop_still_resolves(ask_five_times, hangs)


def test_a_worker_that_never_answers_leaves_connections_for_the_others() -> None:
    # t191: the session's connector had aiohttp's default pool, 100 connections shared
    # by every worker a request is passed on to: 100 requests waiting on one frozen
    # worker (it takes the connection and answers nothing: SIGSTOPped, wedged) took
    # them all, and a request about a run of a healthy worker waited for a connection
    # until its own bound, a 503 naming the healthy worker.
    async def main() -> tuple[int, int]:
        held: list[asyncio.StreamWriter] = []

        async def frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # reads nothing, answers nothing

        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        tarpit = await asyncio.start_server(frozen, "127.0.0.1", 0)
        app = web.Application()
        app.router.add_get("/ok", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        healthy = f"http://127.0.0.1:{runner.addresses[0][1]}/ok"
        stuck = f"http://127.0.0.1:{tarpit.sockets[0].getsockname()[1]}/runs/x"
        session = http_client()
        try:
            waiting = [
                asyncio.ensure_future(session.get(stuck, timeout=aiohttp.ClientTimeout(total=30)))
                for _ in range(150)
            ]
            while len(held) < 100:  # the frozen worker holds a hundred connections
                await asyncio.sleep(0.01)
            answered = 0
            for _ in range(5):
                async with session.get(healthy, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    answered += resp.status == 200
            for future in waiting:
                future.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            return answered, len(held)
        finally:
            await session.close()
            for writer in held:
                writer.close()
            tarpit.close()
            await runner.cleanup()

    answered, held = asyncio.run(main())
    assert answered == 5
    assert held == 100  # one frozen worker is given at most FORWARD_CONNECTIONS_PER_PEER
