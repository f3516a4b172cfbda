"""The webhook executor against a real local HTTP server: signatures, retries with
backoff, no retry on a client error, and a bound on calls in flight."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from playbooks.executors.webhook import WebhookExecutor, WebhookOutcome, verify
from tests.stalls import NeverAnswers, loop_still_resolves

pytestmark = pytest.mark.integration
SECRET = b"s3cret"


class Target(BaseHTTPRequestHandler):
    script: ClassVar[list[int]] = []
    seen: ClassVar[list[tuple[str, bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Target.seen.append((self.path, body, dict(self.headers)))
        status = Target.script.pop(0) if Target.script else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    Target.script, Target.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def deliver(url: str, **kw: Any) -> tuple[list[WebhookOutcome], list[str]]:
    outcomes: list[WebhookOutcome] = []
    attempts: list[str] = []

    async def on_result(o: WebhookOutcome) -> None:
        outcomes.append(o)

    async def on_attempt(cid: str, u: str, n: int, detail: str) -> None:
        attempts.append(f"{n}:{detail}")

    async def main() -> None:
        ex = WebhookExecutor(SECRET, on_result, on_attempt, backoff=0.05, **kw)  # type: ignore[arg-type]
        assert ex.submit("run-1:7", url, {"run_id": "run-1", "alert_id": "al-1"})
        while ex.in_flight:
            await asyncio.sleep(0.01)
        await ex.close()

    asyncio.run(main())
    return outcomes, attempts


def test_retries_server_errors_then_succeeds_with_valid_signatures(target: str) -> None:
    Target.script = [503, 500]
    outcomes, attempts = deliver(target)
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(True, 3, "HTTP 200")]
    assert attempts == ["1:HTTP 503", "2:HTTP 500"]
    assert len(Target.seen) == 3
    for _, body, headers in Target.seen:
        assert headers["X-Citybrain-Delivery"] == "run-1:7"
        assert verify(
            SECRET, headers["X-Citybrain-Timestamp"], body, headers["X-Citybrain-Signature"]
        )
        assert not verify(
            b"other", headers["X-Citybrain-Timestamp"], body, headers["X-Citybrain-Signature"]
        )


def test_client_errors_are_not_retried(target: str) -> None:
    Target.script = [400]
    outcomes, attempts = deliver(target)
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(False, 1, "HTTP 400")]
    assert attempts == ["1:HTTP 400"]


def test_gives_up_after_the_retry_budget(target: str) -> None:
    Target.script = [503, 503, 503, 503]
    outcomes, attempts = deliver(target, retries=2)
    assert [(o.ok, o.attempts) for o in outcomes] == [(False, 3)]
    assert len(attempts) == 3


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    async def noop(*_: object) -> None:
        return None

    ex = WebhookExecutor(SECRET, noop, backoff=1.0, max_backoff=8.0)
    for attempt, cap in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [ex.delay(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap
        assert max(delays) > cap / 2  # jitter spreads over the whole range


def test_submit_refuses_beyond_the_in_flight_bound() -> None:
    async def noop(*_: object) -> None:
        return None

    async def main() -> list[bool]:
        ex = WebhookExecutor(SECRET, noop, max_in_flight=2, timeout=0.5, retries=0)
        accepted = [ex.submit(f"c{i}", "http://127.0.0.1:9/", {}) for i in range(3)]
        await ex.close()
        return accepted

    assert asyncio.run(main()) == [True, True, False]


class Misbehaving:
    """A raw TCP endpoint that answers a webhook call as a faulty receiver does: its
    answer, and then whatever ``then`` does (drips bytes, sends a huge body)."""

    def __init__(self, answer: bytes, drip: bytes = b"", huge: int = 0) -> None:
        self.answer, self.drip, self.huge = answer, drip, huge
        self.calls = 0
        self.sent = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.calls += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
            while self.drip:  # a byte a second: each read is within httpx's timeout
                await writer.drain()
                writer.write(self.drip)
                await asyncio.sleep(0.5)
            chunk = b"x" * (1 << 20)
            while self.sent < self.huge:
                writer.write(chunk)
                await writer.drain()
                self.sent += len(chunk)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def deliver_to(
    endpoint: Any, tls: ssl.SSLContext | None = None, backoff: float = 0.05, **kw: float
) -> tuple[list[WebhookOutcome], list[str]]:
    """``deliver``, to ``endpoint`` (an ``asyncio.start_server`` callback) served on a
    loopback port, over TLS with ``tls``; attempts as ``"n:detail"``; fails if the call
    does not end within 20 s (before, some never did)."""
    outcomes: list[WebhookOutcome] = []
    attempts: list[str] = []

    async def on_result(o: WebhookOutcome) -> None:
        outcomes.append(o)

    async def on_attempt(cid: str, u: str, n: int, detail: str) -> None:
        attempts.append(f"{n}:{detail}")

    async def main() -> None:
        server = await asyncio.start_server(endpoint, "127.0.0.1", 0, ssl=tls)
        scheme = "https" if tls else "http"
        url = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        ex = WebhookExecutor(SECRET, on_result, on_attempt, backoff=backoff, **kw)  # type: ignore[arg-type]
        assert ex.submit("run-1:7", url, {"run_id": "run-1"})
        try:
            async with asyncio.timeout(20):
                while ex.in_flight:
                    await asyncio.sleep(0.01)
        finally:
            await ex.close()
            server.close()

    asyncio.run(main())
    return outcomes, attempts


def test_an_answer_whose_body_cannot_be_decoded_still_gives_the_run_its_result() -> None:
    # Before: httpx's DecodingError escaped the delivery task (a traceback in the log),
    # and the run never had a result for its step. Only the status is read.
    lying = Misbehaving(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
    )
    outcomes, _ = deliver_to(lying)
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(True, 1, "HTTP 200")]


def test_an_endpoint_that_answers_a_byte_at_a_time_times_out_in_all() -> None:
    # Before: httpx's timeout bounds each read, so headers dripped a line every half
    # second held the call (and its in-flight slot) for good, with no result.
    slow = Misbehaving(b"HTTP/1.1 200 OK\r\n", drip=b"X-Slow: 1\r\n")
    outcomes, attempts = deliver_to(slow, timeout=1.0, retries=1)
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(False, 2, "timeout")]
    assert attempts == ["1:timeout", "2:timeout"] and slow.calls == 2
    assert outcomes[0].seconds < 5


def test_a_huge_answer_body_is_not_read() -> None:
    # Before: a 2 GB body was read whole into the worker's memory (4 GB resident).
    huge = Misbehaving(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n", huge=2_000_000_000)
    outcomes, _ = deliver_to(huge)
    assert [(o.ok, o.detail) for o in outcomes] == [(True, "HTTP 200")]
    assert huge.sent < 200_000_000  # the connection was closed, not drained


class Paced:
    """A receiver that answers its first call ``429 Too Many Requests`` with ``Retry-After:
    asked`` and every later one ``200``, noting when each call came (monotonic)."""

    def __init__(self, asked: str) -> None:
        self.asked = asked
        self.times: list[float] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.times.append(time.monotonic())
        await reader.readuntil(b"\r\n\r\n")
        if len(self.times) == 1:
            writer.write(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: "
                + self.asked.encode()
                + b"\r\nContent-Length: 0\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


def test_a_retry_after_within_the_bound_is_honoured() -> None:
    # Before: Retry-After was not read; the retry came after the backoff alone (here at
    # most 0.01 s), against the receiver's asking.
    paced = Paced("1")
    outcomes, attempts = deliver_to(paced, backoff=0.01)
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(True, 2, "HTTP 200")]
    assert attempts == ["1:HTTP 429"]
    assert paced.times[1] - paced.times[0] >= 0.95  # not before the second it asked for


def test_a_retry_after_beyond_the_bound_is_said_and_not_waited_for() -> None:
    # Before: retried on the backoff, each retry refused again, the step failing after
    # the retries as "HTTP 429" with the receiver's reason unsaid.
    paced = Paced("86400")
    outcomes, attempts = deliver_to(paced, backoff=0.01)
    detail = "HTTP 429, Retry-After 86400 s: longer than the 30 s the worker waits between attempts"
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(False, 1, detail)]
    assert attempts == [f"1:{detail}"] and len(paced.times) == 1


class Hung:
    """A receiver that accepts a call, reads it, and never answers (a stuck proxy, a
    receiver in a deadlock): each call holds its connection until the caller gives up."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.calls += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            await self.release.wait()
        except (ConnectionError, asyncio.CancelledError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
    finally:
        writer.close()


def beside_a_hung_receiver(
    calls_to_hung: int, **kw: int
) -> tuple[list[bool], str | None, list[WebhookOutcome], int, int]:
    """``calls_to_hung`` calls submitted to a receiver that never answers, then one to a
    healthy receiver: (whether each call to the hung one was taken, the refusal of one
    more to it, the outcomes that came back, calls the hung receiver got, calls to it
    still in flight when the healthy call's outcome came). The hung calls' timeout (60 s)
    outlasts the test: they are still in flight when it ends, and cancelled."""
    outcomes: list[WebhookOutcome] = []
    hung = Hung()
    still: list[int] = []

    async def main() -> tuple[list[bool], str | None]:
        hung_server = await asyncio.start_server(hung, "127.0.0.1", 0)
        ok_server = await asyncio.start_server(healthy, "127.0.0.1", 0)
        hung_url = f"http://127.0.0.1:{hung_server.sockets[0].getsockname()[1]}/hook"
        ok_url = f"http://127.0.0.1:{ok_server.sockets[0].getsockname()[1]}/hook"

        async def on_result(o: WebhookOutcome) -> None:
            outcomes.append(o)
            still.append(ex.in_flight_to(hung_url))

        ex = WebhookExecutor(SECRET, on_result, timeout=60, retries=0, **kw)
        taken = [ex.submit(f"hung-{i}:1", hung_url, {"i": i}) for i in range(calls_to_hung)]
        refused = ex.refusal(hung_url)
        try:
            async with asyncio.timeout(30):  # the hung calls' turns are all taken
                while hung.calls < min(sum(taken), kw.get("connections_per_receiver", 50)):
                    await asyncio.sleep(0.01)
            assert ex.submit("ok-1:1", ok_url, {"ok": True})
            async with asyncio.timeout(30):  # before: waited for a pooled connection
                while not outcomes:
                    await asyncio.sleep(0.01)
        finally:
            await ex.close()
            hung.release.set()
            hung_server.close()
            ok_server.close()
        return taken, refused

    taken, refused = asyncio.run(main())
    return taken, refused, outcomes, hung.calls, still[0] if still else -1


def test_a_hung_receiver_takes_no_more_than_its_share_of_the_calls_in_flight() -> None:
    # Before: one receiver that never answered took all 200 slots (a storm of runs with
    # a webhook step to it, or of closures to a stuck reply desk), and a call to any
    # other receiver was refused for as long, its run's step failed at once.
    taken, refused, outcomes, calls, still = beside_a_hung_receiver(250)
    assert taken == [True] * 200 + [False] * 50
    assert refused is not None and "to http://127.0.0.1:" in refused and "(200)" in refused
    assert calls == 50  # 50 attempts under way at once; the others wait their turn
    assert [(o.command_id, o.ok, o.detail) for o in outcomes] == [("ok-1:1", True, "HTTP 204")]
    assert still == 200  # answered while every hung call was still waiting


def test_a_hung_receiver_holding_many_connections_does_not_starve_another() -> None:
    # Before: the executor's one httpx client pooled 100 connections for all receivers:
    # with 100 calls hung at one, a call to a healthy one waited for a connection until
    # its own timeout, and failed.
    taken, _, outcomes, calls, still = beside_a_hung_receiver(150, connections_per_receiver=150)
    assert all(taken) and calls == 150
    assert [(o.command_id, o.ok, o.detail) for o in outcomes] == [("ok-1:1", True, "HTTP 204")]
    assert still == 150


def test_an_outcome_the_host_cannot_take_at_once_is_handed_back_again(target: str) -> None:
    # Before: the host's first failure to take the outcome (its send to Kafka while the
    # broker was away) ended the delivery task with an exception nobody retrieved, and
    # the run never had its result. The attempt's record failing ended it too: no retry.
    Target.script = [503]
    outcomes: list[WebhookOutcome] = []
    refused: list[str] = []
    recorded: list[str] = []

    async def on_result(o: WebhookOutcome) -> None:
        if len(refused) < 2:
            refused.append(o.detail)
            raise RuntimeError("Kafka is unreachable")
        outcomes.append(o)

    async def on_attempt(cid: str, u: str, n: int, detail: str) -> None:
        recorded.append(detail)
        raise RuntimeError("the audit record was not sent")

    async def main() -> None:
        ex = WebhookExecutor(SECRET, on_result, on_attempt, backoff=0.05)
        assert ex.submit("run-1:7", target, {"run_id": "run-1"})
        while ex.in_flight:
            await asyncio.sleep(0.01)
        await ex.close()

    asyncio.run(main())
    assert recorded == ["HTTP 503"] and len(Target.seen) == 2  # retried all the same
    assert refused == ["HTTP 200", "HTTP 200"]
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(True, 2, "HTTP 200")]


def test_an_outcome_never_taken_is_logged_naming_the_call(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_result(o: WebhookOutcome) -> None:
        raise RuntimeError("Kafka is unreachable")

    async def main() -> None:
        ex = WebhookExecutor(SECRET, on_result, backoff=0.01)
        assert ex.submit("run-1:7", target, {"run_id": "run-1"})
        while ex.in_flight:
            await asyncio.sleep(0.01)
        await ex.close()

    with caplog.at_level("ERROR", logger="playbooks.executors.webhook"):
        asyncio.run(main())
    [record] = caplog.records
    assert "webhook run-1:7 to http://127.0.0.1:" in record.getMessage()
    assert "(ok, HTTP 200 after 1 attempt(s)) could not be handed back in 5 tries" in (
        record.getMessage()
    )
    assert record.getMessage().endswith("RuntimeError: Kafka is unreachable")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a certificate nobody trusts (made with openssl)."""
    where = tmp_path_factory.mktemp("tls")
    key, cert = where / "key.pem", where / "cert.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_a_receiver_whose_certificate_is_not_trusted_is_said_so_and_not_retried(
    self_signed: ssl.SSLContext,
) -> None:
    # Before: "transport error: ConnectError", retried 4 times: the reason unsaid, and
    # no retry makes a certificate trusted.
    served = Hung()
    outcomes, attempts = deliver_to(served, tls=self_signed, backoff=0.01)
    detail = "TLS certificate not trusted: self-signed certificate"
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(False, 1, detail)]
    assert attempts == [f"1:{detail}"] and served.calls == 0  # the handshake failed first


def test_a_refused_connection_says_why() -> None:
    outcomes, _ = deliver("http://127.0.0.1:9/hook", retries=0)
    assert [(o.ok, o.attempts) for o in outcomes] == [(False, 1)]
    assert outcomes[0].detail.startswith("transport error: ConnectError: ")
    assert len(outcomes[0].detail) > len("transport error: ConnectError: ")


def test_more_calls_to_one_healthy_receiver_than_its_turns_all_arrive() -> None:
    # Past the 50 attempts under way at once, calls wait their turn, not refused (a
    # takeover makes every pending closure call again at once).
    outcomes: list[WebhookOutcome] = []

    async def on_result(o: WebhookOutcome) -> None:
        outcomes.append(o)

    async def main() -> list[bool]:
        server = await asyncio.start_server(healthy, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        ex = WebhookExecutor(SECRET, on_result, retries=0)
        taken = [ex.submit(f"c{i}:1", url, {"i": i}) for i in range(180)]
        try:
            async with asyncio.timeout(60):
                while ex.in_flight:
                    await asyncio.sleep(0.01)
        finally:
            await ex.close()
            server.close()
        return taken

    assert all(asyncio.run(main()))
    assert len(outcomes) == 180 and all(o.ok for o in outcomes)


def _hook_example(host: str, port: int, *args: Any) -> list[Any]:
    """A resolver knowing one name, ``hook.example``, as 127.0.0.1."""
    assert host == "hook.example", host
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def test_a_receivers_host_name_is_resolved_by_the_executors_own_resolver(target: str) -> None:
    # t90: anyio resolved it with loop.getaddrinfo on the loop's default executor.
    port = target.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    outcomes, _ = deliver(target.replace("127.0.0.1", "hook.example"), resolve=_hook_example)
    assert [(o.ok, o.detail) for o in outcomes] == [(True, "HTTP 200")]
    assert Target.seen and Target.seen[0][2]["Host"] == f"hook.example:{port}"


def test_a_resolver_that_never_answers_is_said_retried_and_leaves_the_executor_free() -> None:
    # t90: a receiver whose host name's resolution hangs held a thread of asyncio's
    # default executor per attempt (httpx's timeout ended the await, not the thread):
    # enough of them starved every other name resolution of the worker.
    hangs = NeverAnswers()

    outcomes: list[WebhookOutcome] = []
    attempts: list[str] = []

    async def on_result(o: WebhookOutcome) -> None:
        outcomes.append(o)

    async def on_attempt(cid: str, u: str, n: int, detail: str) -> None:
        attempts.append(f"{cid} {n}:{detail}")

    async def deliver_five() -> None:
        ex = WebhookExecutor(
            SECRET, on_result, on_attempt, timeout=1.0, retries=1, backoff=0.01, resolve=hangs
        )
        for i in range(5):
            assert ex.submit(f"run-{i}:1", "http://hook.example:8080/", {"run_id": f"run-{i}"})
        while ex.in_flight:
            await asyncio.sleep(0.02)
        await ex.close()

    loop_still_resolves(deliver_five, hangs)
    said = (
        "transport error: ConnectError: resolving the host name 'hook.example' took "
        "longer than 0.5 s (the DNS resolver does not answer)"
    )
    assert sorted(attempts) == sorted(f"run-{i}:1 {n}:{said}" for i in range(5) for n in (1, 2))
    assert sorted((o.ok, o.attempts, o.detail) for o in outcomes) == [(False, 2, said)] * 5


def test_a_receiver_whose_name_hangs_costs_no_other_receiver_its_calls(target: str) -> None:
    # t191: the executor's resolver gave each call a thread of its two: the first two
    # calls to a receiver whose DNS name hung took both, and every call to any other
    # named receiver then failed "resolving the host name 'hook.example' took longer
    # than 0.5 s (the DNS resolver does not answer)": one silent DNS name, no webhook.
    never = threading.Event()
    asked: list[str] = []

    def resolves(host: str, port: int, *args: Any) -> list[Any]:
        asked.append(host)
        if host == "hangs.example":
            never.wait()
            return []
        return _hook_example(host, port)

    outcomes: list[WebhookOutcome] = []

    async def on_result(o: WebhookOutcome) -> None:
        outcomes.append(o)

    async def main() -> None:
        ex = WebhookExecutor(
            SECRET, on_result, timeout=1.0, retries=1, backoff=0.01, resolve=resolves
        )
        port = target.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        for i in range(10):
            assert ex.submit(f"hung-{i}:1", f"http://hangs.example:{port}/hook", {"i": i})
        await asyncio.sleep(0.05)  # the hung name's calls are resolving first
        for i in range(5):
            assert ex.submit(f"ok-{i}:1", target.replace("127.0.0.1", "hook.example"), {"i": i})
        while ex.in_flight:
            await asyncio.sleep(0.02)
        await ex.close()

    try:
        asyncio.run(main())
    finally:
        never.set()
    by_receiver = sorted((o.command_id.split("-")[0], o.ok, o.detail) for o in outcomes)
    said = (
        "transport error: ConnectError: resolving the host name 'hangs.example' took "
        "longer than 0.5 s (the DNS resolver does not answer)"
    )
    assert by_receiver == [("hung", False, said)] * 10 + [("ok", True, "HTTP 200")] * 5
    assert len(Target.seen) == 5
    # Twenty attempts to the hung name (10 calls, a retry each) asked the resolver once.
    assert asked.count("hangs.example") == 1
