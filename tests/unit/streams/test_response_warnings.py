"""Failed webhook calls reach the worker's log: one WARNING per URL a minute at most,
naming the URL and the reason, the held-back ones counted on the next line (trial 5: a
closure webhook at a closed port failed five times with nothing in the log)."""

from __future__ import annotations

import logging

import pytest

from streams.logs import SayEvery
from streams.response import log


def test_one_warning_per_url_a_minute_and_the_held_ones_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    warn = SayEvery(log, seconds=60.0, clock=lambda: now[0], prefix="citybrain: warning: ")
    with caplog.at_level(logging.WARNING, logger="streams.response"):
        assert warn("http://a", "call to http://a failed: connection refused")
        now[0] = 10.0
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert warn("http://b", "call to http://b failed: HTTP 500")  # its own URL
        now[0] = 61.0
        assert warn("http://a", "call to http://a failed: timed out")
    assert [r.getMessage() for r in caplog.records] == [
        "citybrain: warning: call to http://a failed: connection refused",
        "citybrain: warning: call to http://b failed: HTTP 500",
        "citybrain: warning: call to http://a failed: timed out (2 more warnings since the "
        "last such line, not logged)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
