"""A webhook receiver's ``Retry-After`` read as RFC 9110 section 10.2.3 writes it:
delay-seconds or an HTTP-date (``playbooks.executors.webhook.retry_after``)."""

from __future__ import annotations

import pytest

from playbooks.executors.webhook import retry_after

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 10.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # a date gone by: at once
        ("Thursday, 01-Jan-26 00:01:00 GMT", 60.0),  # RFC 850, which recipients must read
        ("99999999999999999999", 999_999_999_999.0),  # cut, still far too long
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_forms(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=NOW) == seconds
