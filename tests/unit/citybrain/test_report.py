"""The what-if report's HTML: self-contained, escaped, one timeline per stretch of history."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from citybrain.report import (
    OTHER_DATA,
    Context,
    Replayed,
    TopicMessage,
    accepted_events,
    alert_record,
    build_report,
    event_period,
    incidents_frame,
    latest_resolved,
    limit_to_files,
    match_files,
    readings_frame,
    step_record,
)
from playbooks.grid import Cell, Grid, SensorRegistration
from streams.errors import EventError
from streams.events import IncidentReport, Reading


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
    assert page.count('class="episode ') == 1  # al-1's span on the sensor chart
    assert page.count('<svg class="timeline"') == 2  # 2016 and 2019: two stretches
    assert "median 90 s" in page and "median 65.0 min" in page  # ack 90 s, resolve 3900 s
    assert "(1 run)" in page and "(1 runs)" not in page
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
        "unit": ["ug/m3", "ug/m3"],
        "file": ["r.csv", "r.csv"],
    }


def _grid() -> Grid:
    cells = [
        Cell("bj", "city", "Beijing", "u", None),
        Cell("bj-d", "district", "Dongcheng", "u", "bj"),
        Cell("bj-s", "street", "Dongsi street", "u", "bj-d"),
        Cell("bj-c", "community", "Dongsi site", "u", "bj-s", lat=39.93, lon=116.42),
        Cell(
            "bj-c2",
            "community",
            "Other site",
            "u",
            "bj-s",
            geometry={
                "type": "Polygon",
                "coordinates": [[[116.3, 39.9], [116.35, 39.9], [116.35, 39.95], [116.3, 39.9]]],
            },
        ),
    ]
    sensors = [
        SensorRegistration("bj-a-pm25", "pm25", "ug/m3", "bj-c", lat=39.93, lon=116.42),
        SensorRegistration("bj-b-pm25", "pm25", "ug/m3", "bj-c", lat=39.95, lon=116.40),
        SensorRegistration("bj-x-pm10", "pm10", "ug/m3", "bj-c"),  # no position
    ]
    return Grid.build(cells, sensors)


def test_report_names_events_draws_a_map_and_counts_every_sensor() -> None:
    ts = pd.date_range("2016-02-07", periods=24, freq="h", tz="UTC")
    epoch = (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    readings = pd.concat(
        pd.DataFrame(
            {
                "ts": epoch,
                "sensor_id": sid,
                "kind": "pm25",
                "value": 20.0,
                "unit": "ug/m3",
                "file": "beijing.csv.gz",
            }
        )
        for sid in ("bj-a-pm25", "bj-b-pm25", "bj-x-pm10")
    )
    alerts = [
        {
            **alert("a1", "bj-a-pm25", "2016-02-07T10:00:00Z", None, "firing"),
            "severity": "critical",
        },
        {**alert("a2", "bj-x-pm10", "2016-02-07T11:00:00Z", None, "firing"), "grid_cell": "bj-c"},
        {
            **alert("b1", "", "2016-02-07T12:00:00Z", None, "firing"),
            "kind": "incident_burst",
            "grid_cell": "bj-c2",
            "severity": "minor",
            "labels": {"category": "Noise"},
            "reports": [{"report_id": f"n{i}", "channel": "app"} for i in range(6)],
        },
    ]
    alerts[0]["grid_cell"] = "bj-c"
    incidents = pd.DataFrame(
        {
            "ts": [epoch[3]] * 6,
            "category": ["Noise"] * 6,
            "grid_cell": ["bj-c2"] * 6,
            "file": "reports.csv.gz",
        }
    )
    context = Context(
        grid=_grid(),
        sensor_files={"bj-a-pm25": "beijing.csv.gz", "bj-x-pm10": "beijing.csv.gz"},
        incidents=incidents,
        known_events=[{"event": "Fireworks", "alerts": 1, "detected": True}],
        report_files={f"n{i}": "reports.csv.gz" for i in range(6)},
    )
    page = build_report(readings, alerts, [], "t", context)
    assert "A what-if replay feeds recorded history through the pipeline" in page
    assert "detected: Fireworks (1 alert)" in page
    # The timeline says which city and data sets it shows, each file with its own alerts.
    assert (
        "Beijing: beijing.csv.gz 2016-02-07 10:00 - 2016-02-07 11:00 UTC, 2 alerts; "
        "reports.csv.gz 2016-02-07 12:00 - 2016-02-07 12:00 UTC, 1 alert" in page
    )
    # The map: the critical sensor red, the quiet one grey, the burst's cell shape coloured;
    # the sensor without coordinates is named, not dropped silently.
    assert '<circle class="sensor critical" data-severity="critical"' in page
    assert '<circle class="sensor quiet" data-severity=""' in page
    assert '<path class="cell minor"' in page
    assert "without coordinates in the grid are not on the maps: bj-x-pm10" in page
    assert 'class="legend"' in page and page.count('class="key"') == 4
    # Every sensor with alerts is counted and listed; the chart cap is stated.
    assert "Sensors with alerts (2)" in page and "(at most 24)" in page
    assert "<td>bj-x-pm10</td>" in page and "20 ug/m3" in page
    assert (
        "6 citizen reports accepted by the worker between" in page
        and "1 burst raised an alert" in page
    )


def test_the_event_time_covers_each_data_set_the_report_shows() -> None:
    """Issue 15 item 1: readings from 2014-2019 and citizen reports from 2024 are two
    ranges; one range from the readings alone hid the reports."""
    day = 86400.0
    readings = pd.DataFrame({"ts": [1407715200.0, 1557791700.0]})  # 2014-08-11, 2019-05-13
    incidents = pd.DataFrame({"ts": [1716768000.0, 1716768000.0 + day / 4]})  # 2024-05-27
    assert event_period(readings, incidents) == (
        "readings 2014-08-11 00:00 - 2019-05-13 23:55 UTC; "
        "citizen reports 2024-05-27 00:00 - 2024-05-27 06:00 UTC"
    )
    assert event_period(readings.iloc[:0], incidents).startswith("citizen reports 2024-05-27")
    assert event_period(readings, None).startswith("readings 2014-08-11")
    assert event_period(readings.iloc[:0], None) == "none: no readings and no citizen reports"
    page = build_report(
        readings.assign(sensor_id="s", kind="pm25", value=1.0),
        [],
        [],
        "t",
        Context(incidents=incidents.assign(category="Noise", grid_cell="c", file="r.csv")),
    )
    assert "Event time: readings 2014-08-11 00:00 - 2019-05-13 23:55 UTC; citizen reports" in page


def test_a_reopen_after_the_resolve_undoes_it_in_the_report() -> None:
    def step(run: str, action: str, at: float) -> dict[str, object]:
        return {"run_id": run, "action": action, "at": at, "playbook": "p", "level": "community"}

    steps = [
        step("r1", "run_created", 100.0),
        step("r1", "resolved", 193.0),
        step("r1", "reopened", 300.0),
        step("r2", "run_created", 100.0),
        step("r2", "resolved", 160.0),
        step("r2", "reopened", 200.0),
        step("r2", "resolved", 400.0),
    ]
    created = {s["run_id"]: s for s in steps if s["action"] == "run_created"}
    assert latest_resolved(steps, created) == {"r2": 300.0}  # r1 is open again
    readings = pd.DataFrame({"ts": [0.0], "sensor_id": ["s"], "kind": ["pm25"], "value": [1.0]})
    page = build_report(readings, [], steps[:3], "reopened")
    assert "<b>0</b><span>resolved</span>" in page
    assert "Time to resolve: none yet" in page


def test_the_event_time_is_one_range_per_data_file() -> None:
    """Issue 15: the demo's two reading files (2016 and 2019) read as one span of years."""
    readings = pd.DataFrame(
        {
            "ts": [1557100800.0, 1557791700.0, 1453939200.0, 1455145200.0],
            "file": ["usgs.csv.gz", "usgs.csv.gz", "beijing.csv.gz", "beijing.csv.gz"],
        }
    )
    assert event_period(readings, None) == (
        "readings beijing.csv.gz 2016-01-28 00:00 - 2016-02-10 23:00 UTC, "
        "usgs.csv.gz 2019-05-06 00:00 - 2019-05-13 23:55 UTC"
    )


def _messages(topic: str, values: list[bytes]) -> list[TopicMessage]:
    return [TopicMessage(topic, 0, offset, value) for offset, value in enumerate(values)]


def test_the_report_counts_what_the_worker_accepted_not_the_files_rows(tmp_path: Path) -> None:
    """Trial 5 item 1: the report counted a --data file's rows whether or not they were
    replayed (a Beijing file never sent claimed 5,345 readings and a missed event), and
    counted reports the worker dead-lettered while leaving out re-sent ones. Now: the
    topics' events less the dead letters, each matched to its file."""
    t0 = 1_454_889_600.0  # 2016-02-08 00:00 UTC
    sent = [Reading(t0 + 60 * i, "bj-a-pm25", "pm25", 20.0 + i, "ug/m3", "bj-c") for i in range(4)]
    pack = (
        b'{"schema": "readings/1", "readings": [' + b",".join(r.to_json() for r in sent[2:]) + b"]}"
    )
    readings = _messages("p.readings", [sent[0].to_json(), sent[1].to_json(), pack])
    reports = [
        IncidentReport(t0, "r1", "Noise", "loud", "app", "bj-c"),
        IncidentReport(t0 + 1, "r2", "Noise", "loud", "app", "bj-c"),
        IncidentReport(t0 + 2, "r3", "Noise", "loud", "fax", "bj-c"),  # unknown source
        IncidentReport(t0 + 3, "r4", "Noise", "loud", "app", "bj-c"),  # dead-lettered
        IncidentReport(t0 + 4, "r1", "Noise", "loud again", "app", "bj-c"),  # re-sent
    ]
    incidents = _messages("p.incidents", [r.to_json() for r in reports])
    # The worker dead-lettered reading 1 (out_of_order), the pack's second reading and r4.
    dead = {"p.readings/0/1", "p.readings/0/2#1", "p.incidents/0/3"}
    topic_readings, topic_incidents = accepted_events(readings, incidents, dead, _grid())
    assert topic_readings["ts"].tolist() == [t0, t0 + 120]
    assert topic_incidents["report_id"].tolist() == ["r1", "r2", "r1"]

    header = "timestamp,sensor_id,kind,value,unit,grid_cell\n"
    mine = tmp_path / "mine.csv"
    mine.write_text(
        header
        + "".join(
            f"2016-02-08T00:0{2 * i}:00Z,bj-a-pm25,pm25,{20.0 + 2 * i},ug/m3,bj-c\n"
            for i in range(2)
        )
    )
    other = tmp_path / "beijing.csv"  # given but never replayed
    other.write_text(header + "2016-01-01T00:00:00Z,bj-b-pm25,pm25,5,ug/m3,bj-c\n")
    calls = tmp_path / "calls.csv"
    calls.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2016-02-08T00:00:00Z,r1,Noise,loud,app,bj-c\n"
        "2016-02-08T00:00:03Z,r4,Noise,loud,app,bj-c\n"  # sent, dead-lettered
        "2016-02-08T00:00:04Z,r1,Noise,loud again,app,bj-c\n"  # the file re-sends r1
    )
    files = [mine, other, calls]
    replayed = match_files(
        topic_readings, topic_incidents, readings_frame(files), incidents_frame(files)
    )
    assert replayed.coverage == {"mine.csv": (2, 2), "beijing.csv": (1, 0), "calls.csv": (3, 2)}
    assert replayed.unreplayed() == [("beijing.csv", 1)]
    assert replayed.partly() == [("calls.csv", 3, 2)]
    assert replayed.readings["file"].tolist() == ["mine.csv", "mine.csv"]
    # r2 was sent from elsewhere; r1 again in its cell and category within a day: the
    # worker drops the second (trial 6: the report counted 19 where the worker had 14).
    assert replayed.incidents["file"].tolist() == ["calls.csv", OTHER_DATA]
    assert replayed.repeated_reports == 1
    ours = limit_to_files(replayed, [], [])
    assert (ours.other_incidents, ours.other_readings) == (1, 0)
    context = Context(
        grid=_grid(),
        incidents=ours.incidents,
        repeated_reports=ours.repeated_reports,
        scope=ours.note(["mine.csv", "calls.csv"], "p"),
    )
    page = build_report(ours.readings, [], [], "t", context)
    assert '<div class="card"><b>2</b><span>readings</span>' in page
    assert '<div class="card"><b>1</b><span>incidents</span>' in page
    assert "1 re-sent report left out, as the worker drops a duplicate" in page
    assert "Every figure is limited to the events of the --data files (mine.csv, calls.csv)" in page
    assert "Left out: 1 citizen report under prefix p that come from other data." in page
    assert "1 re-sent report of the files was left out as the worker leaves them out" in page
    assert "beijing.csv" not in page  # its event time is not shown: it was not replayed


def test_figures_are_limited_to_the_files_alerts_and_runs() -> None:
    """Trial 6 item 2: with --data mine4.csv (9 reports, none alerted) the page said
    "36 incidents 1 alerts 1 runs 1 escalations" and described 2 HTTP-ingest readings not
    in the file. Alerts, runs and their steps count only when they come from the files."""
    t0 = 1_716_779_460.0  # 2024-05-27T03:11:00Z
    readings = pd.DataFrame(
        {
            "ts": [t0, t0 + 60, t0 + 120, t0],
            "sensor_id": ["s1", "s1", "s1", "http-1"],
            "kind": "pm25",
            "value": 1.0,
            "unit": "ug/m3",
            "file": ["mine.csv", "mine.csv", "mine.csv", OTHER_DATA],
        }
    )
    incidents = pd.DataFrame(
        {
            "ts": [t0 + i for i in range(4)],
            "report_id": ["m-1", "m-2", "n-1", "n-2"],
            "category": "Noise",
            "grid_cell": "bj-c",
            "file": ["other.csv", "other.csv", "mine4.csv", "mine4.csv"],
        }
    )
    incidents.loc[[0, 1], "file"] = OTHER_DATA
    replayed = Replayed(readings, incidents, 0, {"mine.csv": (3, 3), "mine4.csv": (2, 2)})

    def doc(aid: str, sensor: str, start: float, **more: object) -> dict[str, object]:
        iso = pd.Timestamp(start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
        return {**alert(aid, sensor, iso, None, "firing"), "grid_cell": "bj-c", **more}

    alerts = [
        doc("a-s1", "s1", t0 + 60),  # within s1's readings from mine.csv: ours
        doc("a-s1-late", "s1", t0 + 7200),  # s1 after mine.csv's readings: not ours
        doc("a-http", "http-1", t0),  # a sensor no file holds
        doc("b-m", "", t0, reports=[{"report_id": "m-1"}, {"report_id": "m-2"}]),
        # n-1 followed the other data's burst: the alert is still the other data's
        doc("b-m", "", t0, reports=[{"report_id": "n-1"}], follow_up=True),
        doc("b-n", "", t0 + 3, reports=[{"report_id": "n-2"}]),
    ]

    def step(run: str, action: str, alert_id: str, **more: object) -> dict[str, object]:
        return {"run_id": run, "action": action, "alert_id": alert_id, "at": 1.0, **more}

    steps = [
        step("r-m", "run_created", "b-m", playbook="noise", level="community"),
        step("r-m", "escalate", "b-m", playbook="noise", level="street"),
        step("r-n", "run_created", "b-http-first", playbook="noise", level="community"),
        step("r-n", "alert_joined", "b-http-first", detail="b-n"),
        step("r-x", "run_created", "a-http", playbook="air", level="community"),
    ]
    ours = limit_to_files(replayed, alerts, steps)
    assert ours.readings["sensor_id"].tolist() == ["s1"] * 3
    assert ours.incidents["report_id"].tolist() == ["n-1", "n-2"]
    assert sorted({a["alert_id"] for a in ours.alerts}) == ["a-s1", "b-n"]
    assert {s["run_id"] for s in ours.steps} == {"r-n"}  # joined by a file's alert
    assert (ours.other_readings, ours.other_incidents, ours.other_alerts, ours.other_runs) == (
        1,
        2,
        3,
        2,
    )
    page = build_report(
        ours.readings,
        ours.alerts,
        ours.steps,
        "t",
        Context(incidents=ours.incidents, scope=ours.note(["mine.csv", "mine4.csv"], "t6")),
    )
    cards = {k: int(v) for v, k in re.findall(r"<b>([\d,]+)</b><span>([a-z ]+)</span>", page)}
    assert cards["incidents"] == 2 and cards["alerts"] == 2 and cards["runs"] == 1
    assert cards["readings"] == 3 and cards["escalations"] == 0
    assert (
        "Left out: 2 citizen reports, 1 reading, 3 alerts, 2 runs under prefix t6 that come "
        "from other data." in page
    )


def test_a_file_is_given_an_alert_and_run_steps_by_the_event_itself() -> None:
    """Trial 7 item 1: C.csv re-sent a-1 two days after A.csv's a-1 (in no alert) and its
    report read A's alert, run and 2 escalations; D.csv, a burst whose alert joined A's
    open run after its ack and escalations, read those too. A report is its id, cell,
    category and time; a joined run's steps count from the join."""
    t0 = 1_717_286_400.0  # 2024-06-02T00:00:00Z
    day = 86_400.0

    def reports(ids: list[str], start: float, file: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ts": [start + 60 * i for i in range(len(ids))],
                "report_id": ids,
                "category": "Noise",
                "grid_cell": "bj-c",
                "file": file,
            }
        )

    a_ids = [f"a-{i}" for i in range(1, 6)]
    d_ids = [f"d-{i}" for i in range(1, 6)]
    frames = {
        "A.csv": reports(a_ids, t0, "A.csv"),
        "C.csv": reports(["a-1"], t0 + 2 * day, "C.csv"),
        "D.csv": reports(d_ids, t0 + 3600, "D.csv"),
    }

    def burst(aid: str, start: float, ids: list[str]) -> dict[str, object]:
        iso = pd.Timestamp(start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
        return {
            **alert(aid, "", iso, None, "firing"),
            "kind": "incident_burst",
            "grid_cell": "bj-c",
            "labels": {"category": "Noise"},
            "reports": [{"report_id": r, "channel": "app"} for r in ids],
        }

    alerts = [burst("al-a", t0, a_ids), burst("al-d", t0 + 3600, d_ids)]

    def step(action: str, at: float, **more: object) -> dict[str, object]:
        return {"run_id": "grp.1", "action": action, "at": at, "playbook": "noise", **more}

    steps = [
        step("run_created", t0, alert_id="al-a", level="community"),
        step("escalate", t0 + 600, level="borough"),
        step("escalate", t0 + 1200, level="city"),
        step("acknowledged", t0 + 1800),
        step("alert_joined", t0 + 3700, detail="al-d"),
        step("escalate", t0 + 4000, level="city"),
        step("resolved", t0 + 5000),
    ]

    def cards(*names: str) -> dict[str, int]:
        mine = pd.concat([frames[n] for n in names], ignore_index=True)
        replayed = Replayed(mine.iloc[0:0], mine, 0, {n: (1, 1) for n in names})
        replayed.readings = pd.DataFrame(columns=["ts", "sensor_id", "kind", "value", "file"])
        ours = limit_to_files(replayed, alerts, steps)
        page = build_report(ours.readings, ours.alerts, ours.steps, "t", Context(incidents=mine))
        found = re.findall(r"<b>([\d,]+)</b><span>([a-z ]+)</span>", page)
        return {k: int(v) for v, k in found}

    c = cards("C.csv")
    assert (c["incidents"], c["alerts"], c["runs"], c["escalations"]) == (1, 0, 0, 0)
    assert (c["acknowledged"], c["resolved"]) == (0, 0)
    d = cards("D.csv")  # joined the open run: only what came after the join
    assert (d["alerts"], d["runs"], d["escalations"], d["acknowledged"], d["resolved"]) == (
        1,
        1,
        1,
        0,
        1,
    )
    a = cards("A.csv")  # opened the run: all of it
    assert (a["alerts"], a["runs"], a["escalations"], a["acknowledged"]) == (1, 1, 3, 1)
    assert cards("A.csv", "C.csv")["alerts"] == 1


def test_a_timeline_caption_gives_each_file_only_its_own_alerts() -> None:
    """Trial 5 item 1: with mine.csv given, a burst from mine2.csv's reports in the same
    cell was captioned as mine.csv's. A burst is its reports' file; without one it is
    data not among --data."""
    alerts = [
        {
            **alert(f"b{i}", "", start, None, "firing"),
            "kind": "incident_burst",
            "grid_cell": "bj-c",
            "reports": [{"report_id": rid, "channel": "app"}],
        }
        for i, (start, rid) in enumerate(
            [("2024-05-27T03:10:00Z", "m1"), ("2024-05-27T04:10:00Z", "x1")]
        )
    ]
    context = Context(grid=_grid(), report_files={"m1": "mine.csv"})
    page = build_report(
        pd.DataFrame(columns=["ts", "sensor_id", "kind", "value"]), alerts, [], "t", context
    )
    assert (
        "Beijing: mine.csv 2024-05-27 03:10 - 2024-05-27 03:10 UTC, 1 alert; "
        f"{OTHER_DATA} 2024-05-27 04:10 - 2024-05-27 04:10 UTC, 1 alert" in page
    )


def test_the_what_if_and_campaign_reports_give_the_same_quantiles() -> None:
    """Trial 5 item 3: for two resolved runs (74.3 s and 275.6 s) the what-if report said
    p90 4.6 min (the larger one) and campaign report 4.3 min (numpy's linear quantile);
    with three, 8.5 against 8.3 min. One definition now: campaign.quantile."""
    from citybrain.campaign import campaign_report
    from citybrain.report import _duration

    def step(run: str, seq: int, action: str, at: float, **data: object) -> dict[str, object]:
        return {
            "schema": "step/1",
            "id": f"{run}:{seq}",
            "run_id": run,
            "action": action,
            "at": at,
            "level": "community",
            "playbook": "noise",
            "detail": "",
            "data": data,
        }

    for times in ([74.3, 275.6], [74.3, 275.6, 520.0], [30.0, 40.0, 50.0, 600.0, 610.0]):
        steps = []
        for i, ttr in enumerate(times):
            run, t0 = f"r{i}", 1000.0 + i
            steps += [
                step(run, 1, "run_created", t0, grid_cell="bj-c", department="police"),
                # Two acknowledgements: the first counts in both reports.
                step(run, 2, "acknowledged", t0 + ttr / 3),
                step(run, 3, "acknowledged", t0 + ttr / 2),
                step(run, 4, "resolved", t0 + ttr),
            ]
        campaign = campaign_report(steps, {"bj-c": {"city": "bj"}}, 0.0, 5000.0)
        city = next(r for r in campaign["rows"] if r["scope"] == "city")["figures"]
        page = build_report(
            pd.DataFrame(columns=["ts", "sensor_id", "kind", "value"]), [], steps, "t"
        )
        n = f"({len(times)} runs)"
        assert (
            f"Time to acknowledge: median {_duration(city['tta_median'])}, "
            f"p90 {_duration(city['tta_p90'])} {n}" in page
        )
        assert (
            f"Time to resolve: median {_duration(city['ttr_median'])}, "
            f"p90 {_duration(city['ttr_p90'])} {n}" in page
        )
        if len(times) == 2:  # the trial's runs: 74.3 + 0.9 * (275.6 - 74.3) = 255.5 s
            assert "Time to resolve: median 2.9 min, p90 4.3 min" in page


def test_only_events_whose_data_were_replayed_can_be_missed() -> None:
    """Trial 5 item 1: a Beijing file never replayed gave "missed: Spring Festival
    fireworks". An event counts only when the topics hold its sensors' readings (or its
    cells' reports) inside its window."""
    from citybrain.demo import KnownEvent, with_data

    fireworks = KnownEvent("fireworks", "bj-", "2016-02-07T16:00:00Z", "2016-02-08T04:00:00Z")
    flood = KnownEvent("flood", "usgs-", "2019-05-10T20:00:00Z", "2019-05-11T06:00:00Z")
    noise = KnownEvent("noise", "nyc-cb-", "2024-05-27T00:00:00Z", "2024-05-27T06:00:00Z")
    t = pd.Timestamp("2016-02-07T20:00:00Z").timestamp()
    readings = pd.DataFrame(
        {"ts": [t, t + 86_400 * 30], "sensor_id": ["bj-a-pm25", "usgs-1-flow"]}
    )  # the flood's gauge only outside its window (a replay resumed past it)
    incidents = pd.DataFrame(
        {"ts": [pd.Timestamp("2024-05-27T01:00:00Z").timestamp()], "grid_cell": ["nyc-cb-1"]}
    )
    assert with_data((fireworks, flood, noise), readings, incidents) == (fireworks, noise)
    empty = pd.DataFrame({"ts": [], "sensor_id": [], "grid_cell": []})
    assert with_data((fireworks, flood, noise), empty, empty) == ()


def test_a_map_section_with_no_alerts_says_there_is_nothing_to_map() -> None:
    """Trial 7 item 5: files that raised no alerts read "No coordinates in the grid: no
    map." though the same grid draws maps when there are alerts."""
    from citybrain.report import maps

    assert maps([], _grid()) == "<p>No alerts to map.</p>"
    one = {**alert("a", "bj-a-pm25", "2016-02-08T00:00:00Z", None, "firing"), "grid_cell": "bj-c"}
    drawn = maps([one], _grid())
    assert '<figure class="map" data-city="Beijing">' in drawn
    assert "No coordinates" not in drawn


def test_a_city_across_the_antimeridian_is_drawn_in_one_piece() -> None:
    """Trial 20: two gauges 2 km apart on either side of longitude 180 (Taveuni, Fiji)
    were drawn at the two ends of a map 360 degrees wide."""
    import re

    from citybrain.report import maps

    cells = [
        Cell("fj", "city", "Taveuni", "u", None),
        Cell("fj-d", "district", "Cakaudrove", "u", "fj"),
        Cell("fj-s", "street", "Coast road", "u", "fj-d"),
        Cell("fj-c", "community", "Waiyevo", "u", "fj-s", lat=-16.79, lon=179.99),
    ]
    sensors = [
        SensorRegistration("fj-east", "water_level", "ft", "fj-c", lat=-16.79, lon=-179.99),
        SensorRegistration("fj-west", "water_level", "ft", "fj-c", lat=-16.79, lon=179.99),
    ]
    one = {**alert("a", "fj-east", "2026-01-01T00:00:00Z", None, "firing"), "grid_cell": "fj-c"}
    drawn = maps([one], Grid.build(cells, sensors))
    x = {
        sensor: float(cx)
        for cx, sensor in re.findall(r'<circle [^>]*cx="([-0-9.]+)"[^>]*><title>([a-z-]+)', drawn)
    }
    box = re.search(r'viewBox="0 0 ([0-9.]+) ([0-9.]+)"', drawn)
    assert box is not None
    # Side by side, the west one (179.99) to the left, on a map as tall as it is wide
    # (2.2 km each way), not a strip 360 degrees wide and 40 pixels high.
    assert x["fj-west"] < x["fj-east"]
    assert float(box.group(2)) > 0.9 * float(box.group(1))
    assert "(2.2 km north to south)" in drawn


def test_markup_in_any_text_of_the_topics_is_escaped_in_the_page() -> None:
    """Trial 29: an alert message's severity reached the timeline raw, in a class
    attribute and a title ('"><script>' ended the attribute and ran). Every text field
    of the alert and step messages, and of the readings, carries markup here."""
    mark = "\"><script>alert(1)</script><b x='"
    ts = pd.date_range("2016-02-07", periods=48, freq="h", tz="UTC")
    readings = pd.DataFrame(
        {
            "ts": (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1),
            "sensor_id": "s" + mark,
            "kind": "pm25" + mark,
            "value": [20.0] * 40 + [600.0] * 8,
            "unit": "u" + mark,
        }
    )
    alerts = []
    for status, end in (("firing", None), ("resolved", "2016-02-08T23:00:00Z")):
        doc = alert("a" + mark, "s" + mark, "2016-02-08T16:00:00Z", end, status)
        doc.update(kind="pm25" + mark, grid_cell="c" + mark, severity="major" + mark)
        doc.update(labels={"category": mark}, reports=[{"report_id": mark}])
        alerts.append(doc)
    steps = [
        {
            "run_id": "r" + mark,
            "action": action,
            "at": at,
            "playbook": "p" + mark,
            "level": "l" + mark,
        }
        for action, at in (("run_created", 100.0), ("escalate", 160.0), ("acknowledged", 190.0))
    ]
    page = build_report(readings, alerts, steps, "T" + mark)
    assert "<script>alert" not in page and "<b x=" not in page
    assert "major&quot;&gt;&lt;script&gt;" in page  # the severity, shown as text


def test_every_time_form_the_worker_reads_is_read_by_the_report() -> None:
    """Helper t52: the worker takes an alert's ``started_at`` in every form it reads
    (since t140 Alertmanager's: no zone, a space with no zone, ``+0545`` after 3 or 6
    fraction digits, nine fraction digits, ``+01:60``); the report read them with
    ``fromisoformat`` alone, and a lowercase ``z`` (taken then) ended ``citybrain
    report`` in "unexpected ValueError" (exit 70)."""
    ts = pd.date_range("2016-02-07", periods=24, freq="h", tz="UTC")
    readings = pd.DataFrame(
        {
            "ts": (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1),
            "sensor_id": "s1",
            "kind": "pm25",
            "value": [20.0] * 23 + [600.0],
            "unit": "ug/m3",
        }
    )
    forms = [
        ("2016-02-07T23:00:00", "2016-02-07 23:30:00.123456789"),
        ("2016-02-08T04:45:00.000+0545", "2016-02-07T23:30:00,5-00:00"),
        ("2016-02-07T11:00:00-12:00", "2016-02-07T23:30Z"),
        ("2016-02-07T23:00:00.000000Z", "2016-02-08T01:30:00+01:60"),
    ]
    for i, (start, end) in enumerate(forms):
        doc = alert(f"a{i}", "s1", start, end, "resolved")
        alert_record(doc)  # the worker's check passes it
        page = build_report(readings, [doc], [], "t")
        assert "2016-02-07 23:00 - 2016-02-07 23:30" in page, start
    # The last float before the year 10000 is the last time: 23:59:59.9999999 rounds to
    # the year 10000, which no page can print.
    late = alert("a9", "s1", "2016-02-07T23:00:00Z", "9999-12-31T23:59:59.9999999Z", "resolved")
    with pytest.raises(EventError, match=r'"ended_at" is .*outside the years 0001-9999'):
        alert_record(late)


def test_a_step_time_no_date_can_show_is_named() -> None:
    """Helper t52: ``at`` was only checked finite; a step at 1e308 after one at -1e308
    made an infinite time to acknowledge ("inf years" in the page)."""
    step = {"run_id": "r", "action": "acknowledged"}
    step_record({**step, "at": 1.8e9})
    for at, said in (
        (1e308, "expected epoch seconds (years 0001-9999)"),
        (-1e308, "expected epoch seconds (years 0001-9999)"),
        (1.8e12, "looks like epoch milliseconds: 2027-01-15T08:00:00Z in seconds"),
    ):
        with pytest.raises(EventError, match=f'"at" is .*{re.escape(said)}'):
            step_record({**step, "at": at})


def test_a_chart_of_the_widest_finite_values_is_drawn() -> None:
    """Helper t52: a kind may range over every finite number (the grid checks only that
    its bounds are finite); a sensor's 1e308 and -1e308 made the value span inf and
    every point of its line "nan", a blank chart."""
    from citybrain.report import sensor_chart

    for values in ([1e308, -1e308, 0.0], [5e-324, -5e-324, -0.0], [1.0, 1.0, 1.0]):
        frame = pd.DataFrame({"ts": [1.8e9, 1.8e9 + 60, 1.8e9 + 120], "value": values})
        svg = sensor_chart("s1", "k", frame, [(1.8e9, 1.8e9 + 60, "major")], "u")
        points = re.search(r'points="([^"]*)"', svg)
        assert points is not None
        coords = [float(c) for p in points.group(1).split() for c in p.split(",")]
        assert len(coords) == 6 and all(0 <= c <= 640 for c in coords), (values, coords)
