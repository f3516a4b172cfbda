"""The what-if report's HTML: self-contained, escaped, one timeline per stretch of history."""

from __future__ import annotations

import pandas as pd

from citybrain.report import build_report


def alert(aid: str, sensor: str, start: str, end: str | None, status: str) -> dict[str, object]:
    return {
        "alert_id": aid,
        "sensor_id": sensor,
        "kind": "pm25",
        "grid_cell": "c1",
        "severity": "major",
        "status": status,
        "started_at": start,
        "ended_at": end,
    }


def test_report_marks_episodes_and_reports_response_times() -> None:
    ts = pd.date_range("2016-02-07", periods=48, freq="h", tz="UTC")
    readings = pd.DataFrame(
        {
            "ts": (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1),
            "sensor_id": "bj-<script>",
            "kind": "pm25",
            "value": [20.0] * 40 + [600.0] * 8,
        }
    )
    alerts = [
        alert("al-1", "bj-<script>", "2016-02-08T16:00:00Z", None, "firing"),
        alert("al-1", "bj-<script>", "2016-02-08T16:00:00Z", "2016-02-08T23:00:00Z", "resolved"),
        alert("al-2", "other", "2019-05-10T20:00:00Z", None, "firing"),
    ]
    steps = [
        {
            "run_id": "r1",
            "action": "run_created",
            "at": 100.0,
            "playbook": "air-pollution",
            "level": "community",
        },
        {
            "run_id": "r1",
            "action": "escalate",
            "at": 160.0,
            "playbook": "air-pollution",
            "level": "district",
        },
        {
            "run_id": "r1",
            "action": "acknowledged",
            "at": 190.0,
            "playbook": "air-pollution",
            "level": "district",
        },
        {
            "run_id": "r1",
            "action": "resolved",
            "at": 4000.0,
            "playbook": "air-pollution",
            "level": "district",
        },
    ]
    page = build_report(readings, alerts, steps, "Spring Festival <rehearsal>")
    assert (
        "bj-<script>" not in page
        and "bj-&lt;script&gt;" in page
        and "Spring Festival &lt;rehearsal&gt;" in page
    )
    assert page.count('class="episode"') == 1  # al-1's span on the sensor chart
    assert page.count('<svg class="timeline"') == 2  # 2016 and 2019: two stretches
    assert "median 90 s" in page and "median 65.0 min" in page  # ack 90 s, resolve 3900 s
    assert "http://" not in page and "https://" not in page
