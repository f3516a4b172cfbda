"""Name resolution with a bound, on threads of its own.

asyncio resolves a host name with ``loop.getaddrinfo``, which runs the C library's
blocking ``getaddrinfo`` on a thread of the loop's default executor (``min(32, cores +
4)`` threads: 6 on our 2 cores). A resolver that never answers holds its thread for as
long as the C library waits (its ``timeout`` × ``attempts`` per name server, from
``/etc/resolv.conf``), whatever ``asyncio.wait_for`` the caller put around it: the await
ends, the thread does not. Enough of them (an annotation per alert to a Grafana whose
host name hangs) took every thread of that pool, and with it every other name
resolution of the worker (aiokafka's and aiohttp's connections use the same pool).

``BoundedResolution`` runs each resolution on its own small pool and waits at most
``timeout`` seconds: a hanging resolver then costs at most ``threads`` threads of that
pool, never the loop's, and its callers a clear ``ResolveTimeoutError``. The Grafana
annotator (niquests) and the webhook executor (httpx, through ``BoundedBackend``)
resolve through it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore

# Seconds one resolution may take: a working resolver answers within a few hundred ms.
RESOLVE_SECONDS = 5.0
# Threads that resolve for one user of this module at once (one per stalled resolution).
RESOLVE_THREADS = 2

Resolve = Callable[..., list[Any]]


class ResolveTimeoutError(OSError):
    """A host name's resolution did not finish within its bound; the message names the
    host and the bound. Its ``strerror`` is the message too (aiohttp shows only that)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ETIMEDOUT, message)

    def __str__(self) -> str:
        return str(self.strerror)


async def wait_resolved(
    resolution: Awaitable[list[Any]], timeout: float, host: bytes | str | None
) -> list[Any]:
    """``resolution``'s answer (a ``getaddrinfo`` list), awaited at most ``timeout``
    seconds; then ``ResolveTimeoutError`` naming ``host`` (the awaitable is cancelled, as
    ``asyncio.wait_for`` does: shield one others still wait for)."""
    try:
        return await asyncio.wait_for(resolution, timeout)
    except TimeoutError:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        raise ResolveTimeoutError(
            f"resolving the host name {name!r} took longer than {timeout:g} s "
            "(the DNS resolver does not answer)"
        ) from None


class BoundedResolution:
    """``getaddrinfo`` on ``threads`` threads of its own, each call bounded by
    ``timeout`` seconds. ``resolve`` is the blocking resolver (``socket.getaddrinfo``;
    tests give one that never returns). ``name`` names its threads (``grafana-dns``)."""

    def __init__(
        self,
        resolve: Resolve = socket.getaddrinfo,
        timeout: float = RESOLVE_SECONDS,
        threads: int = RESOLVE_THREADS,
        name: str = "dns",
    ) -> None:
        self.resolve = resolve
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        """``socket.getaddrinfo``'s answer for ``host``/``port``. Raises
        ``ResolveTimeoutError`` after ``timeout`` seconds (a resolution still queued
        behind stalled ones is cancelled then), and what ``resolve`` raises
        (``socket.gaierror`` for an unknown name)."""
        call = functools.partial(self.resolve, host, port, family, type, proto, flags)
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        return await wait_resolved(future, self.timeout, host)

    def shutdown(self) -> None:
        """Stops taking work; threads stuck in a resolution end when it returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class BoundedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio (``AnyIOBackend``) connecting to the addresses that
    ``resolution`` gives for a host name, in their order (the first that takes the
    connection), instead of letting anyio resolve it with ``loop.getaddrinfo`` on the
    loop's default executor. An IP address is connected to as it is. A resolution past
    its bound is ``httpcore.ConnectError`` naming the host (httpx's ``ConnectError``).
    TLS still checks the host name: httpcore gives it to ``start_tls`` apart."""

    def __init__(self, resolution: BoundedResolution) -> None:
        self.resolution = resolution
        self._backend: httpcore.AsyncNetworkBackend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = [ipaddress.ip_address(host).compressed]
        except ValueError:
            try:
                infos = await self.resolution.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:  # ResolveTimeoutError, gaierror: said as httpx says them
                raise httpcore.ConnectError(str(exc)) from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        failure: Exception = httpcore.ConnectError(f"no address for {host!r}")
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)
