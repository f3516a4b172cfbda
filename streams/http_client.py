"""The worker's HTTP client (faust's ``app.http_client``, which the operator API uses to
pass a request on to the worker owning its run), resolving host names on threads of its
own within a bound.

aiohttp's default resolver runs ``loop.getaddrinfo`` on the loop's default executor: a
worker whose advertised name (``app.worker_url``: the machine's host name for a
wildcard bind, as in the compose deployment) resolves through a DNS server that never
answers held one of that pool's threads per request passed on, for as
long as the C library waits (the request's 15 s bound ended the await, not the thread),
and starved every other name resolution of the worker (aiokafka's). The session faust
makes here resolves through ``playbooks.executors.resolve.BoundedResolution``; a
resolution past its bound fails the request as any unreachable owner does (503 naming
it).
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from playbooks.executors.resolve import BoundedResolution


class BoundedResolver(AbstractResolver):
    """aiohttp's resolver over ``BoundedResolution`` (``resolve.RESOLVE_SECONDS``, its
    own threads). Raises what the resolution raises (``ResolveTimeoutError``,
    ``socket.gaierror``: OSErrors, which aiohttp reports as ``ClientConnectorDNSError``)."""

    def __init__(self, resolution: BoundedResolution | None = None) -> None:
        self.resolution = resolution or BoundedResolution(name="api-dns")

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self.resolution.getaddrinfo(
            host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
        )
        found: list[ResolveResult] = []
        for af, _, proto, _, address in infos:
            if af == socket.AF_INET6 and (len(address) < 4 or address[3]):
                continue  # no IPv6 in this Python, or a link-local scope (not ours)
            found.append(
                ResolveResult(
                    hostname=host,
                    host=str(address[0]),
                    port=int(address[1]),
                    family=af,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not found:
            raise OSError(f"no usable address for the host name {host!r}")
        return found

    async def close(self) -> None:
        self.resolution.shutdown()


def http_client(**kwargs: Any) -> aiohttp.ClientSession:
    """faust's ``HttpClient`` setting: an ``aiohttp.ClientSession`` (made in the running
    loop, on first use; faust closes it when the app stops) whose connector resolves
    with ``BoundedResolver``."""
    kwargs.setdefault("connector", aiohttp.TCPConnector(resolver=BoundedResolver()))
    return aiohttp.ClientSession(**kwargs)
