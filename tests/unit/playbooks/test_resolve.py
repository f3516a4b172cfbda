"""t90: a name resolution that never ends holds a thread for as long as the C library's
resolver waits, whatever bound its await had; on asyncio's default executor (6 threads
on 2 cores) enough of them starved every other resolution of the worker (aiokafka's,
aiohttp's). ``BoundedResolution`` resolves on threads of its own, within a bound."""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from playbooks.executors.resolve import BoundedResolution, ResolveTimeoutError
from tests.stalls import NeverAnswers


def test_a_resolver_that_never_answers_is_said_past_the_bound_naming_the_host() -> None:
    hangs = NeverAnswers()

    resolution = BoundedResolution(hangs, timeout=0.2, threads=1)

    async def main() -> None:
        with pytest.raises(ResolveTimeoutError) as caught:
            await resolution.getaddrinfo("grafana.example", 3000)
        assert str(caught.value) == (
            "resolving the host name 'grafana.example' took longer than 0.2 s "
            "(the DNS resolver does not answer)"
        )

    try:
        asyncio.run(main())
    finally:
        hangs.release()
        resolution.shutdown()


def test_stalled_resolutions_leave_the_loops_default_executor_free() -> None:
    never = threading.Event()
    stalled: list[str] = []

    def hangs(host: str, *args: Any) -> list[Any]:
        stalled.append(host)
        never.wait()
        return []

    resolution = BoundedResolution(hangs, timeout=0.2, threads=2)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        # A default executor as small as can be: one stalled resolution on it would
        # hold it, and the loop's own getaddrinfo below would never finish.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        outcomes = await asyncio.gather(
            *(resolution.getaddrinfo(f"h{i}.example", 80) for i in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(o, ResolveTimeoutError) for o in outcomes)
        return await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)

    try:
        answer = asyncio.run(main())
    finally:
        never.set()
        resolution.shutdown()
    assert answer[0][4][:2] == ("127.0.0.1", 80)
    # Only its own two threads ever started a resolution: the other 18 were cancelled
    # while queued, at the bound.
    assert len(stalled) == 2


def test_a_name_that_hangs_holds_one_thread_and_the_other_names_still_resolve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # t191: each call resolving a name that hangs took a thread of its own, so the
    # first two calls to a webhook receiver whose DNS name hung took both threads, and
    # every other receiver's name waited behind them past its bound ("the DNS resolver
    # does not answer", of a name that resolves).
    never = threading.Event()
    asked: list[str] = []

    def resolves(host: str, port: int, *args: Any) -> list[Any]:
        asked.append(host)
        if host == "hangs.example":
            never.wait()
            return []
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    resolution = BoundedResolution(resolves, timeout=0.3, threads=2, name="webhook-dns")

    async def main() -> list[Any]:
        stalled = [
            asyncio.ensure_future(resolution.getaddrinfo("hangs.example", 80)) for _ in range(10)
        ]
        await asyncio.sleep(0.05)  # the stalled calls asked first
        answers = [await resolution.getaddrinfo(f"ok{i}.example", 80) for i in range(5)]
        outcomes = await asyncio.gather(*stalled, return_exceptions=True)
        assert all(isinstance(o, ResolveTimeoutError) for o in outcomes), outcomes
        assert resolution.resolving == 1  # the hung name, still held by its thread
        # Asked again after the bound: it waits for the same resolution.
        with pytest.raises(ResolveTimeoutError):
            await resolution.getaddrinfo("hangs.example", 80)
        return answers

    try:
        with caplog.at_level("WARNING", logger="playbooks.executors.resolve"):
            answers = asyncio.run(main())
    finally:
        never.set()
        resolution.shutdown()
    assert [a[0][4] for a in answers] == [("127.0.0.1", 80)] * 5
    # The hung name was asked of the resolver once, however many calls wanted it.
    assert asked.count("hangs.example") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "citybrain: webhook-dns: resolving the host name 'hangs.example' took longer than "
        "0.3 s (the DNS resolver does not answer); its thread is held until the resolver "
        "gives up, and other calls for that name wait for it (other names resolve on the "
        "other threads)"
    ]


def test_calls_for_one_name_share_its_resolution_and_each_has_the_answer() -> None:
    started = threading.Event()
    go = threading.Event()
    asked: list[str] = []

    def resolves(host: str, port: int, *args: Any) -> list[Any]:
        asked.append(host)
        started.set()
        go.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    resolution = BoundedResolution(resolves, timeout=5, threads=2)

    async def main() -> list[Any]:
        calls = [
            asyncio.ensure_future(resolution.getaddrinfo("hook.example", 80)) for _ in range(3)
        ]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        go.set()
        return await asyncio.gather(*calls)

    answers = asyncio.run(main())
    resolution.shutdown()
    assert asked == ["hook.example"]
    assert [a[0][4] for a in answers] == [("127.0.0.1", 80)] * 3
    assert resolution.resolving == 0


def test_an_answer_and_an_unknown_name_pass_through() -> None:
    def resolves(host: str, port: int, *args: Any) -> list[Any]:
        if host == "nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    resolution = BoundedResolution(resolves, timeout=5)

    async def main() -> None:
        [info] = await resolution.getaddrinfo("grafana.example", 3000)
        assert info[4] == ("127.0.0.1", 3000)
        with pytest.raises(socket.gaierror):
            await resolution.getaddrinfo("nowhere.invalid", 3000)

    asyncio.run(main())
    resolution.shutdown()


def test_niquests_system_resolver_is_what_the_grafana_annotator_replaces() -> None:
    # grafana.BoundedSystemResolver overrides urllib3-future's private-module resolver:
    # an upgrade that moves it or its getaddrinfo fails here first.
    import inspect
    from importlib.metadata import version

    from niquests.packages.urllib3.contrib.resolver._async.system import SystemResolver

    from playbooks.executors.grafana import BoundedSystemResolver

    assert version("niquests").startswith("3.21.")
    assert version("urllib3-future").startswith("2.25.")
    theirs = inspect.signature(SystemResolver.getaddrinfo).parameters
    ours = inspect.signature(BoundedSystemResolver.getaddrinfo).parameters
    assert list(theirs) == list(ours)
    resolver = BoundedSystemResolver(BoundedResolution())
    assert resolver.support("grafana.example") is not False  # None: no patterns, any host
    assert resolver.recycle() is resolver
    resolver.resolution.shutdown()


def test_httpx_transports_pool_takes_the_backend_the_webhook_executor_sets() -> None:
    # webhook.WebhookExecutor sets httpx.AsyncHTTPTransport()._pool._network_backend
    # (httpx 0.29 takes no backend): an upgrade that moves it fails here first.
    from importlib.metadata import version

    import httpcore
    import httpx

    assert version("httpx").startswith("0.29.") and version("httpcore").startswith("1.0.")
    transport = httpx.AsyncHTTPTransport()
    assert isinstance(transport._pool, httpcore.AsyncConnectionPool)
    assert isinstance(transport._pool._network_backend, httpcore.AsyncNetworkBackend)


def test_the_backend_connects_to_an_ip_address_without_resolving() -> None:
    from playbooks.executors.resolve import BoundedBackend

    def never_called(*args: Any) -> list[Any]:
        raise AssertionError("resolved an IP address")

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        backend = BoundedBackend(BoundedResolution(never_called))
        stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
        await stream.aclose()
        server.close()
        backend.resolution.shutdown()

    asyncio.run(main())
