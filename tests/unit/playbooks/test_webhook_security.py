"""Webhooks as an attacker would try them (trial 29): a URL that is no http(s) URL or
carries a password, a signature replayed later or over another body, a redirect to
another host."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from playbooks.errors import PlaybookError
from playbooks.executors.webhook import (
    MAX_AGE,
    MAX_BACKOFF,
    WebhookExecutor,
    WebhookOutcome,
    sign,
    verify,
)
from playbooks.loader import load_playbook
from playbooks.schema import http_url_problem, shown_url

SECRET = b"shared-secret"
PLAYBOOK = """\
name: advisory
steps:
  - id: publish
    action: webhook
    url: {url}
"""


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "expected an http:// or https:// URL with a host"),
        ("ftp://example.org/x", "expected an http:// or https:// URL with a host"),
        ("gopher://127.0.0.1:70/_", "expected an http:// or https:// URL with a host"),
        ("http:///advisories", "expected an http:// or https:// URL with a host"),
        ("http://127.0.0.1:99999/x", "expected an http:// or https:// URL with a host"),
        ("https://desk:hunter2@example.org/x", "expected no user or password in the URL"),
        ("https://desk@example.org/x", "expected no user or password in the URL"),
        ("https://example.org/a\x1b[2Jb", "expected no space or control character"),
    ],
)
def test_a_webhook_url_that_is_no_plain_http_url_is_refused(url: str, problem: str) -> None:
    assert http_url_problem(url).startswith(problem)


def test_http_and_https_urls_pass_in_any_scheme_casing() -> None:
    for url in ("http://127.0.0.1:18081/advisories", "https://example.org", "HTTPS://x.org/a?b=c"):
        assert http_url_problem(url) == "", url


def test_a_playbook_webhook_with_a_password_is_refused_at_load_without_showing_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "advisory.yaml"
    path.write_text(PLAYBOOK.format(url="https://desk:hunter2@example.org/x"))
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert "url is 'https://desk:***@example.org/x', expected no user or password" in str(
        info.value
    )
    assert "hunter2" not in str(info.value)
    path.write_text(PLAYBOOK.format(url="file:///etc/passwd"))
    with pytest.raises(PlaybookError, match="expected an http:// or https:// URL"):
        load_playbook(path)


def test_shown_url_hides_only_a_password() -> None:
    assert shown_url("http://a:b@h:1/p?q") == "http://a:***@h:1/p?q"
    assert shown_url("http://h/p") == "http://h/p"


def test_a_signature_is_over_the_exact_body_and_its_timestamp() -> None:
    body = b'{"a": 1}'
    ts = "1790000000"
    signature = sign(SECRET, ts, body)
    assert verify(SECRET, ts, body, signature, now=1_790_000_000)
    assert not verify(SECRET, ts, b'{"a":1}', signature, now=1_790_000_000)  # re-serialised
    assert not verify(SECRET, "1790000001", body, signature, now=1_790_000_000)
    assert not verify(b"other", ts, body, signature, now=1_790_000_000)


def test_a_signed_call_replayed_after_the_window_is_refused() -> None:
    """verify took any timestamp: a captured call could be replayed for ever."""
    body, ts = b"{}", "1790000000"
    signature = sign(SECRET, ts, body)
    assert verify(SECRET, ts, body, signature, now=1_790_000_000 + MAX_AGE)
    assert not verify(SECRET, ts, body, signature, now=1_790_000_000 + MAX_AGE + 1)
    assert not verify(SECRET, ts, body, signature, now=1_790_000_000 - MAX_AGE - 1)
    assert verify(SECRET, ts, body, signature, max_age=None, now=0)
    forged = sign(SECRET, "soon", body)
    assert not verify(SECRET, "soon", body, forged, now=1_790_000_000)


class Redirecting(BaseHTTPRequestHandler):
    location: ClassVar[str] = ""
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.hits.append(self.path)
        if self.path == "/start":
            self.send_response(307)
            self.send_header("Location", self.location)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    first = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    other = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for srv in (first, other):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    Redirecting.hits = []
    Redirecting.location = f"http://127.0.0.1:{other.server_address[1]}/elsewhere"
    yield first, other
    for srv in (first, other):
        srv.shutdown()
        srv.server_close()


def test_a_redirect_to_another_host_is_not_followed(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    first, _ = servers
    outcomes: list[WebhookOutcome] = []

    async def deliver() -> None:
        async def done(outcome: WebhookOutcome) -> None:
            outcomes.append(outcome)

        executor = WebhookExecutor(SECRET, done, retries=2, backoff=0.01)
        executor.submit("run-1:1", f"http://127.0.0.1:{first.server_address[1]}/start", {})
        while executor.in_flight:
            await asyncio.sleep(0.01)
        await executor.close()

    asyncio.run(deliver())
    assert [(o.ok, o.attempts, o.detail) for o in outcomes] == [(False, 1, "HTTP 307")]
    assert Redirecting.hits == ["/start"]  # the signed run never went elsewhere


def test_the_backoff_stays_capped_at_any_attempt() -> None:
    async def ignore(_outcome: WebhookOutcome) -> None:
        return None

    executor = WebhookExecutor(b"secret", ignore, retries=5000, backoff=0.5)
    # 0.5 * 2**1024 overflowed a float (OverflowError in the delivery task: the step
    # never got its result).
    delays = [executor.delay(attempt) for attempt in (0, 10, 1023, 1024, 4999)]
    assert all(0 <= delay <= MAX_BACKOFF for delay in delays), delays
