"""Webhook calls for ``webhook`` steps: HMAC-signed POSTs with a timeout, retries with
exponential backoff and full jitter, bounded concurrency (in all and per receiver, so a
receiver that hangs cannot take the slots or connections of the others), and never
blocking the stream.

``submit`` returns at once; the outcome arrives later through ``on_result`` (the host
turns it into an ``action_result`` for the run). Every failed attempt is reported through
``on_attempt`` so the host can record it as an audit event and a metric.

Signature: ``X-Citybrain-Signature: sha256=<hex>`` is HMAC-SHA256 over
``<X-Citybrain-Timestamp>.<body>`` with the shared secret (Stripe's scheme: the timestamp
in the MAC stops replays).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hashlib
import hmac
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from playbooks.executors import MAX_BACKOFF
from playbooks.executors.resolve import (
    RESOLVE_SECONDS,
    BoundedBackend,
    BoundedResolution,
    Resolve,
)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    command_id: str
    url: str
    ok: bool
    attempts: int
    detail: str  # "HTTP 200", "HTTP 503", "timeout", "connection refused", ...
    seconds: float


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# How old a signed timestamp a receiver takes by default, seconds (Stripe's tolerance):
# a captured call replayed later is refused.
MAX_AGE = 300.0


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    max_age: float | None = MAX_AGE,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours over ``timestamp`` (epoch seconds, as sent) and the
    exact ``body`` bytes, compared in constant time, and the timestamp is within
    ``max_age`` seconds of ``now`` (epoch s; the clock when None) either way; None takes
    any age. A signature over a body re-serialised (other spacing, key order) fails: a
    receiver verifies the bytes it read, before parsing them."""
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return False
    if max_age is None:
        return True
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs((time.time() if now is None else now) - sent) <= max_age


log = logging.getLogger(__name__)

# Times the host is asked to take a call's outcome (``on_result``) before it is given up
# and logged: the host sends it to Kafka, which may be away for a moment.
RESULT_TRIES = 5

# Calls in flight at most: in all; to one receiver (scheme, host and port), the bound
# all receivers shared before; and attempts under way at once to one receiver (the others
# wait their turn, their timeout not yet started). Before, one bound of 200 and httpx's
# pool of 100 connections served every receiver: one that accepts calls and never
# answers took every slot and every connection, so calls to healthy receivers were
# refused or waited for a connection until their timeout.
MAX_IN_FLIGHT = 1000
MAX_PER_RECEIVER = 200
CONNECTIONS_PER_RECEIVER = 50


def receiver(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port its scheme's default when not given),
    the unit the per-receiver bound counts by."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # settings and playbooks refuse such a URL; counted as written
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _reason(exc: BaseException) -> str:
    """``": <the exception's text>"``, cut to 200 characters, or "" when it has none."""
    text = str(exc).strip()
    return f": {text[:200]}" if text else ""


def _certificate_error(exc: BaseException) -> str | None:
    """The verifier's reason when ``exc`` comes of a server certificate not trusted
    (``ssl.SSLCertVerificationError`` somewhere in its causes), else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (cause.verify_message or str(cause))[:200]
        cause = cause.__cause__ or cause.__context__
    return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110 10.2.3: delay-seconds, or an
    HTTP-date, read against ``now``, Unix seconds, default the clock): at least 0; None
    when absent or neither form."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text[:12]))  # a 12-digit cap: an absurd value is still "too long"
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a zoneless one is read as such
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookExecutor:
    def __init__(
        self,
        secret: bytes,
        on_result: Callable[[WebhookOutcome], Awaitable[None]],
        on_attempt: Callable[[str, str, int, str], Awaitable[None]] | None = None,
        timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = MAX_BACKOFF,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_per_receiver: int = MAX_PER_RECEIVER,
        connections_per_receiver: int = CONNECTIONS_PER_RECEIVER,
        resolve: Resolve | None = None,
    ) -> None:
        self.secret = secret
        self.on_result = on_result
        self.on_attempt = on_attempt
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_in_flight = max_in_flight
        self.max_per_receiver = max_per_receiver
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections_per_receiver = connections_per_receiver
        self.resolution = BoundedResolution(
            resolve or socket.getaddrinfo,
            timeout=min(RESOLVE_SECONDS, timeout / 2),
            name="webhook-dns",
        )
        self._per_receiver: dict[str, int] = {}  # receiver -> calls in flight to it
        # receiver -> its attempts under way; kept while it has calls in flight
        self._turns: dict[str, asyncio.Semaphore] = {}
        self._client: httpx.AsyncClient | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def in_flight_to(self, url: str) -> int:
        """Calls in flight (attempts and the waits between them) to ``url``'s receiver."""
        return self._per_receiver.get(receiver(url), 0)

    def refusal(self, url: str) -> str | None:
        """Why ``submit`` would refuse a call to ``url`` now (naming the bound), or None."""
        if len(self._tasks) >= self.max_in_flight:
            return f"too many webhook calls in flight ({self.max_in_flight})"
        where = receiver(url)
        if self._per_receiver.get(where, 0) >= self.max_per_receiver:
            return f"too many webhook calls in flight to {where} ({self.max_per_receiver})"
        return None

    def submit(self, command_id: str, url: str, payload: dict[str, Any]) -> bool:
        """Start delivering; False when too many calls are in flight, in all or to this
        receiver (``refusal`` says which; the host then reports the step failed at once
        rather than queueing without bound)."""
        if self.refusal(url) is not None:
            return False
        where = receiver(url)
        if where not in self._turns:
            self._turns[where] = asyncio.Semaphore(self.connections_per_receiver)
        turns = self._turns[where]
        task = asyncio.get_running_loop().create_task(
            self._deliver(command_id, url, payload, turns)
        )
        self._tasks.add(task)
        self._per_receiver[where] = self._per_receiver.get(where, 0) + 1

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            left = self._per_receiver.pop(where, 1) - 1
            if left:  # receivers with nothing in flight are not kept: no growth by URL
                self._per_receiver[where] = left
            else:
                self._turns.pop(where, None)

        task.add_done_callback(done)
        return True

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
        # The exponent is capped: 2**1024 overflows a float (a retry count the settings
        # now refuse, kept safe here for any caller).
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** min(attempt, 64)))

    async def _deliver(
        self, command_id: str, url: str, payload: dict[str, Any], turns: asyncio.Semaphore
    ) -> None:
        if self._client is None:
            # A redirect is not followed (httpx's default, said here on purpose): the
            # signed run would go to a host no playbook named (trial 29). A connection
            # for every call in flight (each receiver's turns bound them): httpx's pool
            # of 100, shared by all receivers, let one receiver that never answers hold
            # them all, and a call to another waited for a connection until it timed out.
            transport = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=self.max_in_flight)
            )
            # Host names resolved on threads of our own, within a bound (resolve.py):
            # anyio resolved them on the loop's default executor, where a resolver that
            # never answers held a thread per call (t90). httpx 0.29 takes no backend;
            # its pool's (httpcore 1.0) is set here, checked by test_resolve.
            transport._pool._network_backend = BoundedBackend(self.resolution)
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, transport=transport
            )
        body = json.dumps(payload, sort_keys=True).encode()
        start = time.monotonic()
        detail = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            attempts = attempt + 1
            retry = True
            wait: float | None = None  # the receiver's Retry-After, when it gave one
            try:
                async with turns:  # the receiver's turn first; then the timeout runs
                    # Signed once its turn came: the timestamp is when it is sent.
                    timestamp = str(int(time.time()))
                    headers = {
                        "Content-Type": "application/json",
                        "X-Citybrain-Delivery": command_id,
                        "X-Citybrain-Timestamp": timestamp,
                        "X-Citybrain-Signature": sign(self.secret, timestamp, body),
                    }
                    status, asked = await self._status(url, body, headers)
                detail = f"HTTP {status}"
                if 200 <= status < 300:
                    await self._hand_back(
                        WebhookOutcome(
                            command_id, url, True, attempts, detail, time.monotonic() - start
                        )
                    )
                    return
                # Client errors other than timeout/too-many-requests will not heal by retrying.
                retry = status >= 500 or status in (408, 429)
                if retry and asked is not None:
                    if asked > self.max_backoff:
                        # A receiver asking for an hour (or a day) of quiet: waiting would
                        # hold the call and its slot past any step's deadline. Said, not
                        # retried; the run escalates as for any failed step.
                        detail, retry = (
                            (
                                f"{detail}, Retry-After {asked:g} s: longer than the "
                                f"{self.max_backoff:g} s the worker waits between attempts"
                            ),
                            False,
                        )
                    else:
                        wait = asked  # honoured (RFC 9110 10.2.3), within the bound
            except (httpx.TimeoutException, TimeoutError):
                detail = "timeout"
            except httpx.TransportError as exc:
                untrusted = _certificate_error(exc)
                if untrusted is not None:
                    # Retrying will not make the certificate trusted; before, this was
                    # retried as "transport error: ConnectError", the reason unsaid.
                    detail, retry = f"TLS certificate not trusted: {untrusted}", False
                else:
                    detail = f"transport error: {type(exc).__name__}{_reason(exc)}"
            except httpx.HTTPError as exc:  # an answer httpx cannot read
                detail = f"bad answer: {type(exc).__name__}"
            except Exception as exc:  # the run must still have its result
                detail, retry = f"error: {type(exc).__name__}: {str(exc)[:200]}", False
            if self.on_attempt is not None:
                try:
                    await self.on_attempt(command_id, url, attempts, detail)
                except Exception as exc:
                    # Recording the attempt failed (its audit record's send): the call
                    # goes on. Before, it ended the delivery: no retry, and no outcome.
                    log.warning(
                        "citybrain: webhook %s to %s: failed attempt %d (%s) not recorded: %s: %s",
                        command_id,
                        url,
                        attempts,
                        detail,
                        type(exc).__name__,
                        exc,
                    )
            if not retry or attempt == self.retries:
                break
            await asyncio.sleep(max(self.delay(attempt), wait or 0.0))
        await self._hand_back(
            WebhookOutcome(command_id, url, False, attempts, detail, time.monotonic() - start)
        )

    async def _hand_back(self, outcome: WebhookOutcome) -> None:
        """Give ``outcome`` to the host, asking again with backoff up to RESULT_TRIES
        times when it fails (its send to Kafka); then logged as an ERROR naming the call
        and its outcome. Before, one failure lost the outcome (the run waited out its
        step's deadline) and left a task exception nobody retrieved."""
        for attempt in range(RESULT_TRIES):
            try:
                await self.on_result(outcome)
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
            if attempt < RESULT_TRIES - 1:
                await asyncio.sleep(self.delay(attempt))
        log.error(
            "citybrain: webhook %s to %s: its outcome (%s, %s after %d attempt(s)) could not "
            "be handed back in %d tries, the last: %s",
            outcome.command_id,
            outcome.url,
            "ok" if outcome.ok else "failed",
            outcome.detail,
            outcome.attempts,
            RESULT_TRIES,
            error,
        )

    async def _status(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None]:
        """One attempt's HTTP status and its ``Retry-After`` in seconds (``retry_after``;
        None when absent or unreadable), within ``timeout`` seconds in all (``TimeoutError``
        after; httpx's timeout bounds each read, so an endpoint sending a byte a second
        held the call, and its slot, for good). The answer's body is never read: only its
        status is used, and a 2 GB body took the worker's memory to 4 GB, one whose
        Content-Encoding lied raised DecodingError, and the run never had its result."""
        assert self._client is not None
        async with asyncio.timeout(self.timeout):
            request = self._client.build_request("POST", url, content=body, headers=headers)
            resp = await self._client.send(request, stream=True)
            await resp.aclose()  # unread: the connection is closed, not reused
            return resp.status_code, retry_after(resp.headers.get("Retry-After"))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
        self.resolution.shutdown()
