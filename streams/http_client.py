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

Its connections are bounded per worker asked (``FORWARD_CONNECTIONS_PER_PEER``), not
only in all: aiohttp's default pool, 100 connections shared by every worker, let one
worker that takes connections and answers nothing (SIGSTOPped, wedged) hold them all
with 100 requests passed on to it, and a request about a run of a healthy worker waited
for a connection until its own bound, a 503 naming the healthy one (t191).
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


# Connections open at once to one worker a request is passed on to, and in all (the
# API serves at most CITYBRAIN_HTTP_MAX_CONNECTIONS requests, 256 by default, each
# passed on to one worker or, listing runs, to each of the others in turn).
FORWARD_CONNECTIONS_PER_PEER = 100
FORWARD_CONNECTIONS = 1000


def http_client(**kwargs: Any) -> aiohttp.ClientSession:
    """faust's ``HttpClient`` setting: an ``aiohttp.ClientSession`` (made in the running
    loop, on first use; faust closes it when the app stops) whose connector resolves
    with ``BoundedResolver`` and opens at most ``FORWARD_CONNECTIONS_PER_PEER``
    connections to one worker (host and port), ``FORWARD_CONNECTIONS`` in all."""
    kwargs.setdefault(
        "connector",
        aiohttp.TCPConnector(
            resolver=BoundedResolver(),
            limit=FORWARD_CONNECTIONS,
            limit_per_host=FORWARD_CONNECTIONS_PER_PEER,
        ),
    )
    return aiohttp.ClientSession(**kwargs)
