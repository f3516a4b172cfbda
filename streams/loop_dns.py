"""The worker's event loop resolves host names on threads of its own, one per name at a
time, each wait bounded.

aiokafka connects with ``loop.create_connection(host, port)``, which resolves a host
name with ``loop.getaddrinfo``: the C library's blocking ``getaddrinfo`` on a thread of
the loop's default executor (6 threads on 2 cores). aiokafka bounds the await
(``request_timeout_ms``), not the thread: with a DNS server that never answers, every
reconnection to a broker whose name hangs (once per retry backoff) left one more thread
waiting for as long as the C library waits, until the pool had none left and every
other name resolution of the worker queued behind them, a working broker's name and
aiohttp's included. ``install`` replaces the loop's ``getaddrinfo``: a name being
resolved is resolved once, whoever else asks for it meanwhile waits for the same
answer (so a hung name holds one thread, not one per retry), on a pool of its own, and
each caller waits at most ``RESOLVE_SECONDS`` and is then told which name did not
resolve (``ResolveTimeoutError``, an ``OSError``: aiokafka logs it as a connection
failure naming the node and retries). The default executor is left to the rest.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from playbooks.executors.resolve import RESOLVE_SECONDS, Resolve, wait_resolved

# Distinct host names resolving at once before one more waits for a thread: a worker
# asks for its brokers' names (a cluster's few) and its own (aiohttp's).
LOOP_RESOLVE_THREADS = 8

_Key = tuple[Any, Any, int, int, int, int]


class LoopResolution:
    """``loop.getaddrinfo`` with one resolution per name at a time on ``threads``
    threads of its own, each caller waiting at most ``timeout`` seconds. ``resolve`` is
    the blocking resolver (``socket.getaddrinfo``; tests give one that never returns)."""

    def __init__(
        self,
        resolve: Resolve = socket.getaddrinfo,
        timeout: float = RESOLVE_SECONDS,
        threads: int = LOOP_RESOLVE_THREADS,
    ) -> None:
        self.resolve = resolve
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="loop-dns")
        self._pending: dict[_Key, asyncio.Future[list[Any]]] = {}

    def pending(self) -> int:
        """How many names are being resolved now (a hung one stays until it returns)."""
        return len(self._pending)

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        """``socket.getaddrinfo``'s answer, as ``loop.getaddrinfo`` gives it. Raises
        ``ResolveTimeoutError`` naming the host after ``timeout`` seconds, and what
        ``resolve`` raises (``socket.gaierror`` for an unknown name)."""
        key: _Key = (host, port, family, type, proto, flags)
        future = self._pending.get(key)
        if future is None:
            call = functools.partial(self.resolve, host, port, family, type, proto, flags)
            future = asyncio.get_running_loop().run_in_executor(self._pool, call)
            self._pending[key] = future
            future.add_done_callback(functools.partial(self._done, key))
        # Shielded: a caller that gives up leaves the resolution to the others.
        return await wait_resolved(asyncio.shield(future), self.timeout, host)

    def _done(self, key: _Key, future: asyncio.Future[list[Any]]) -> None:
        if self._pending.get(key) is future:
            del self._pending[key]
        if not future.cancelled():
            future.exception()  # retrieved: a late failure nobody waits for is no warning

    def shutdown(self) -> None:
        """Stops taking work; threads stuck in a resolution end when it returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def install(
    loop: asyncio.AbstractEventLoop, resolution: LoopResolution | None = None
) -> LoopResolution:
    """Make ``loop`` resolve host names through ``resolution`` (a new ``LoopResolution``
    if None): asyncio's ``create_connection`` and aiohttp's default resolver call
    ``loop.getaddrinfo``. An IP address never reaches it (asyncio takes it as it is).
    Returns the resolution."""
    resolution = resolution or LoopResolution()
    loop.getaddrinfo = resolution.getaddrinfo  # type: ignore[method-assign]
    return resolution
