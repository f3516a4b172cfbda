"""The stream's detection (``SensorDetection`` with the default settings, its vectorised
cross-sensor path) on the committed city slices: the dated events alert, and fewer
alerts fall outside them than with the previous default, ``robust_zscore``."""

from __future__ import annotations

from bench.city_alerts import run


def test_the_stream_default_alerts_on_the_flood_and_fireworks_with_fewer_false_alarms() -> None:
    tail, zscore = run("tail"), run("robust_zscore")
    assert all(tail["known_events_detected"].values()), tail["known_events_detected"]
    assert tail["per_1000_sensor_days"] < zscore["per_1000_sensor_days"]
