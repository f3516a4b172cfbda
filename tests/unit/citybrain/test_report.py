"""The what-if report's HTML: self-contained, escaped, one timeline per stretch of history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from citybrain.report import build_report, readings_frame


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


def test_the_report_reads_what_replay_sent_skipping_bad_rows(tmp_path: Path) -> None:
    """Issue 12 item 9: the report reads replay files with replay's reader, so a file
    with a stray quote or a Latin-1 byte is what ``replay --on-error skip`` sent."""
    path = tmp_path / "r.csv"
    path.write_bytes(
        b"timestamp,sensor_id,kind,value,unit,grid_cell\n"
        b"2024-05-27T03:10:00Z,s1,pm25,1.5,ug/m3,c1\n"
        b'2024-05-27T03:11:00Z,s\xf1,pm25,"2.5,ug/m3,c1\n'
        b"2024-05-27T03:12:00Z,s1,pm25,3.5,ug/m3,c1\n"
    )
    frame = readings_frame([path])
    assert frame.to_dict("list") == {
        "ts": [1716779400.0, 1716779520.0],
        "sensor_id": ["s1", "s1"],
        "kind": ["pm25", "pm25"],
        "value": [1.5, 3.5],
    }
