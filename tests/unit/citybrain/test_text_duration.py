"""One formatter for a span of time (helper brief t47, fault 7: a 100-year silence
showed "in 36500.0 d"; the report said 100 days as "2400.0 h")."""

from __future__ import annotations

import pytest

from citybrain.cli.base import _duration
from citybrain.cli.silences import _ends
from citybrain.demo import _ago_text
from citybrain.report import _duration as report_duration
from citybrain.text import YEAR_SECONDS, duration

DAY = 86_400.0


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (-5, "0 s"),
        (45, "45 s"),
        (720, "12 min"),
        (5.5 * 3600, "5.5 h"),
        (3.25 * DAY, "3.2 days"),
        (700 * DAY, "700.0 days"),
        (2.5 * YEAR_SECONDS, "2.5 years"),
        (100 * YEAR_SECONDS, "100 years"),
        (12_345 * YEAR_SECONDS, "12,345 years"),
    ],
)
def test_a_span_is_said_in_its_unit(seconds: float, said: str) -> None:
    assert duration(seconds) == said


def test_a_hundred_year_silence_ends_in_years() -> None:
    now = 1_800_000_000.0
    line = _ends({"ends_at": now + 100 * YEAR_SECONDS}, now)
    assert line.endswith("(in 100 years)") and " d)" not in line
    # `--duration 100y` as parse_duration counts it, read a few seconds after it was
    # added (t48: "in 99.9 years", a year taken as 365.25 days).
    from playbooks.schema import parse_duration

    line = _ends({"ends_at": now + parse_duration("100y") - 5}, now)
    assert line.endswith("(in 100 years)"), line


def test_every_formatter_says_long_spans_the_one_way() -> None:
    for formatter in (_duration, report_duration, _ago_text):
        assert formatter(int(100 * DAY)) == "100.0 days"
        assert formatter(int(100 * YEAR_SECONDS)) == "100 years"
    # Shorter spans keep each formatter's precision.
    assert _duration(16 * 3600 + 300) == "16 h 5 min" and report_duration(276) == "4.6 min"
