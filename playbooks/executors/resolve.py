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
annotator (niquests), the webhook executor (httpx, through ``BoundedBackend``) and the
operator API's forwarding (aiohttp, streams/http_client.py) resolve through it.

One host name whose resolution hangs holds one thread, however many calls ask for it
(t191): calls resolving the same name while a resolution of it runs wait for that
resolution (each within its own bound) instead of starting another. Before, the pool's
two threads were taken by the first two calls to a webhook receiver whose DNS name hung,
and every other receiver's name then waited behind them past its bound: all webhooks of
the worker failed "the DNS resolver does not answer" while only one name did not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import ipaddress
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore

log = logging.getLogger(__name__)

# Seconds one resolution may take: a working resolver answers within a few hundred ms.
RESOLVE_SECONDS = 5.0
# Threads that resolve for one user of this module at once: a name whose resolution
# hangs holds one of them until the C library gives up (however many calls ask for it),
# so RESOLVE_THREADS - 1 names may hang at once and the others still resolve.
RESOLVE_THREADS = 4

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


class _Flight:
    """One resolution running (or queued) on the pool and the calls waiting for it."""

    __slots__ = ("future", "said", "waiting")

    def __init__(self, future: concurrent.futures.Future[list[Any]]) -> None:
        self.future = future
        self.waiting = 0
        self.said = False  # its stall logged (once a flight)


class BoundedResolution:
    """``getaddrinfo`` on ``threads`` threads of its own, each call bounded by
    ``timeout`` seconds. ``resolve`` is the blocking resolver (``socket.getaddrinfo``;
    tests give one that never returns). ``name`` names its threads (``grafana-dns``).

    Calls with the same arguments while one of them is resolving share its resolution
    (one thread, however many calls): a name that hangs costs one thread, not the pool."""

    def __init__(
        self,
        resolve: Resolve = socket.getaddrinfo,
        timeout: float = RESOLVE_SECONDS,
        threads: int = RESOLVE_THREADS,
        name: str = "dns",
    ) -> None:
        self.resolve = resolve
        self.timeout = timeout
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        # The arguments of each resolution running or queued -> its flight. Removed by
        # the pool's thread when the resolution ends (hence the lock; reentrant, as a
        # resolution done already lands at once, under it, in ``_flight``).
        self._flights: dict[tuple[Any, ...], _Flight] = {}
        self._lock = threading.RLock()

    @property
    def resolving(self) -> int:
        """Resolutions running or queued now (a stalled name counts once)."""
        with self._lock:
            return len(self._flights)

    def _flight(self, key: tuple[Any, ...]) -> _Flight:
        """The flight resolving ``key`` (``getaddrinfo``'s arguments), started when none
        is running; its ``waiting`` counts the caller."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                call = functools.partial(self.resolve, *key)
                flight = _Flight(self._pool.submit(call))
                self._flights[key] = flight
                flight.future.add_done_callback(functools.partial(self._landed, key, flight))
            flight.waiting += 1
            return flight

    def _landed(
        self, key: tuple[Any, ...], flight: _Flight, _: concurrent.futures.Future[list[Any]]
    ) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

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
        ``ResolveTimeoutError`` after ``timeout`` seconds, and what ``resolve`` raises
        (``socket.gaierror`` for an unknown name). A resolution of the same arguments
        under way is awaited, not started again; one still queued behind stalled ones
        is cancelled when its last caller gives up. A resolution still running past
        its bound is logged once (WARNING, naming the host and this resolver)."""
        flight = self._flight((host, port, family, type, proto, flags))
        answer = asyncio.wrap_future(flight.future)
        try:
            # shielded: one caller's bound must not cancel the others' resolution
            return await wait_resolved(asyncio.shield(answer), self.timeout, host)
        except ResolveTimeoutError as exc:
            with self._lock:
                said, flight.said = flight.said, True
            if flight.future.running() and not said:
                log.warning(
                    "citybrain: %s: %s; its thread is held until the resolver gives up, "
                    "and other calls for that name wait for it (other names resolve on "
                    "the other threads)",
                    self.name,
                    exc,
                )
            raise
        finally:
            with self._lock:
                flight.waiting -= 1
                if flight.waiting == 0:
                    flight.future.cancel()  # only a queued one cancels; a running one stays

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
