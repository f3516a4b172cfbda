"""Each feed's usual gap (``streams.ingest.FeedClock``), from which ``CitybrainFeedSilent``
tells a feed gone quiet from one between its reports: the length-biased mean gap, so a
feed reporting in hourly bursts waits for about an hour, a steady one for its interval,
and an outage counts for the day after it, not for ever."""

from __future__ import annotations

import pytest

from streams.ingest import FEED_GAP_HALF_LIFE, FeedClock

T = 1_800_000_000.0


def test_nothing_is_known_before_a_second_batch() -> None:
    clock = FeedClock()
    assert clock.usual_gap("pm25") == 0.0
    clock.saw(["pm25"], T)
    assert clock.last == {"pm25": T}
    assert clock.usual_gap("pm25") == 0.0


def test_a_steady_feed_waits_for_its_own_interval() -> None:
    clock = FeedClock()
    for i in range(1000):
        clock.saw(["traffic_flow"], T + 5.0 * i)
    assert clock.usual_gap("traffic_flow") == pytest.approx(5.0)
    assert clock.last["traffic_flow"] == T + 5.0 * 999


def test_hourly_bursts_wait_for_an_hour_whatever_the_gaps_inside_a_burst() -> None:
    """Twelve stations' readings arrive 0.1 s apart each hour: 11 gaps of 0.1 s for one
    of 3,598.9 s, the count-weighted mean 300 s (a false alarm every hour), the
    length-biased mean 3,598.9**2 / 3,600 s, within 3 s of the hour."""
    clock = FeedClock()
    for hour in range(48):
        for station in range(12):
            clock.saw(["pm25"], T + 3600.0 * hour + 0.1 * station)
    assert clock.usual_gap("pm25") == pytest.approx(3598.9**2 / 3600, rel=1e-4)


def test_an_outage_raises_the_gap_for_about_a_day_then_it_fades() -> None:
    clock = FeedClock()
    now = T
    for _ in range(17_280):  # a day, every 5 s
        now += 5.0
        clock.saw(["traffic_flow"], now)
    now += 7200.0  # two hours without a reading
    clock.saw(["traffic_flow"], now)
    after = clock.usual_gap("traffic_flow")
    # 7,200**2 over a day and two hours of gaps: over 500 s, so the rule waits longer
    # than its 10 min floor for a while after an outage...
    assert 500.0 < after < 7200.0
    for _ in range(int(3 * FEED_GAP_HALF_LIFE / 5.0)):  # ...and three half-lives later
        now += 5.0
        clock.saw(["traffic_flow"], now)
    assert clock.usual_gap("traffic_flow") < after / 6


def test_kinds_keep_their_own_clocks_and_a_clock_stepped_back_is_no_gap() -> None:
    clock = FeedClock()
    clock.saw(["pm25", "water_level"], T)
    clock.saw(["water_level"], T + 600.0)
    clock.saw(["water_level"], T + 300.0)  # NTP stepped the clock back
    assert clock.usual_gap("water_level") == pytest.approx(600.0)
    assert clock.usual_gap("pm25") == 0.0
    assert clock.last == {"pm25": T, "water_level": T + 300.0}
