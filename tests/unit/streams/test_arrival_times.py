"""Kafka record timestamps as arrival times (``citybrain_event_to_alert_seconds``)."""

from __future__ import annotations

from streams.events import MIN_EVENT_TIME
from streams.ingest import arrival_times

NOW = 1_796_000_000.0


def test_plausible_record_timestamps_are_kept_as_they_are() -> None:
    times = [NOW - 5.0, NOW - 0.25, NOW, MIN_EVENT_TIME]
    assert arrival_times(times, NOW) is times
    assert arrival_times([], NOW) == []


def test_a_timestamp_no_producer_clock_gave_is_the_batchs_admission_time() -> None:
    # A field producer's CreateTime of 0 (no clock) observed 1.7e9 s from event to alert.
    got = arrival_times([NOW - 1.0, 0.0, -0.001, None, MIN_EVENT_TIME - 1, NOW + 3600], NOW)
    assert got == [NOW - 1.0, NOW, NOW, NOW, NOW, NOW]
