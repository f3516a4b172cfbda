"""The webhook executor against a real local HTTP server: signatures, retries with
backoff, no retry on a client error, and a bound on calls in flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from playbooks.executors.webhook import WebhookExecutor, WebhookOutcome, verify

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


def deliver(url: str, **kw: float) -> tuple[list[WebhookOutcome], list[str]]:
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
