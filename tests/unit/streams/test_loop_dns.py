"""t92: aiokafka resolves a broker's host name with ``loop.getaddrinfo`` on the loop's
default executor. With a DNS server that never answers, each reconnection left one more
thread of that pool waiting (aiokafka bounds the await, not the thread), until no
resolution of the worker was answered, a working broker's name included. The worker's
loops resolve through ``streams.loop_dns`` now: one thread per hung name, each wait
bounded, and the default executor left free."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from playbooks.executors.resolve import ResolveTimeoutError
from streams.loop_dns import LoopResolution, install
from tests.stalls import NeverAnswers

HUNG = "broker.hung.invalid"


def _resolver(hangs: NeverAnswers) -> Any:
    """Hangs on ``HUNG``; any other name is the loopback address."""

    def resolve(host: Any, port: Any, *args: Any) -> list[Any]:
        if host == HUNG:
            return hangs()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port or 0)))]

    return resolve


def _run(body: Any, hangs: NeverAnswers) -> Any:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        return await body(loop)

    try:
        return asyncio.run(main())
    finally:
        hangs.release()


def test_a_hung_name_is_said_within_the_bound_and_holds_one_thread() -> None:
    hangs = NeverAnswers()

    async def body(loop: asyncio.AbstractEventLoop) -> list[Any]:
        resolution = install(loop, LoopResolution(_resolver(hangs), timeout=0.2, threads=2))
        said = []
        for _ in range(5):  # aiokafka's reconnections, one per backoff
            with pytest.raises(ResolveTimeoutError) as caught:
                await loop.create_connection(asyncio.Protocol, HUNG, 9092)
            said.append(str(caught.value))
        assert resolution.pending() == 1  # five tries, one thread waiting
        # Another name still resolves on the resolution's other thread, and the default
        # executor was never used for names: its one thread is free.
        answer = await loop.getaddrinfo("broker.good.invalid", 9092, type=socket.SOCK_STREAM)
        assert answer[0][4] == ("127.0.0.1", 9092)
        assert await loop.run_in_executor(None, lambda: 7) == 7
        resolution.shutdown()
        return said

    said = _run(body, hangs)
    assert (
        said
        == [
            f"resolving the host name '{HUNG}' took longer than 0.2 s (the DNS resolver does not "
            "answer)"
        ]
        * 5
    )


def test_aiokafka_reconnecting_to_a_hung_name_leaves_the_loop_free() -> None:
    # aiokafka's own connection path (create_connection in AIOKafkaConnection.connect):
    # its bootstrap fails naming the node, and the loop's default executor stays free.
    hangs = NeverAnswers()

    async def body(loop: asyncio.AbstractEventLoop) -> int:
        resolution = install(loop, LoopResolution(_resolver(hangs), timeout=0.2, threads=2))
        for _ in range(4):
            producer = AIOKafkaProducer(
                bootstrap_servers=f"{HUNG}:9092", request_timeout_ms=2000, retry_backoff_ms=10
            )
            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
                await producer.start()
            await producer.stop()
        assert await loop.run_in_executor(None, lambda: 7) == 7
        pending = resolution.pending()
        resolution.shutdown()
        return pending

    assert _run(body, hangs) == 1


def test_an_unknown_name_is_the_resolvers_own_error_at_once() -> None:
    def unknown(*args: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        resolution = install(loop, LoopResolution(unknown, timeout=5))
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("nowhere.invalid", 1)
        assert resolution.pending() == 0  # a failed resolution is asked afresh next time
        resolution.shutdown()

    asyncio.run(main())


def test_an_ip_address_never_reaches_the_resolver() -> None:
    hangs = NeverAnswers()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        install(loop, LoopResolution(hangs, timeout=0.2))
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.close()
        server.close()

    _run(body, hangs)
