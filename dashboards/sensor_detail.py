"""Sensor detail: value, anomaly score against the threshold, alerts as annotations.

Only watched sensors and sensors in an open alert episode have series (bounded
cardinality, streams/metrics.py), so the sensor list is the interesting ones.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import annotation_layer, query, series, variable
from dashboards.rules import live
from streams import metrics as m

UID = "citybrain-sensor-detail"


def build() -> Dashboard:
    return (
        Dashboard("citybrain / Sensor detail")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_variable(
            variable("sensor", "Sensor", f"label_values({m.SENSOR_VALUE}, sensor_id)")
            .multi(False)
            .include_all(False)
        )
        .annotation(annotation_layer("Alerts of this sensor", ["citybrain", "alert", "$sensor"]))
        .with_panel(
            series(
                "Value",
                "short",
                query(live(f'{m.SENSOR_VALUE}{{sensor_id="$sensor"}}'), "{{kind}}"),
                width=24,
            )
        )
        .with_panel(
            series(
                "Anomaly score and threshold",
                "percentunit",
                query(live(f'{m.SENSOR_SCORE}{{sensor_id="$sensor"}}'), "score"),
                # Every worker exports the threshold: one line, not one per worker.
                query(f"max({m.SCORE_THRESHOLD})", "threshold", ref="B"),
                width=24,
            )
        )
    )
