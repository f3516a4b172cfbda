"""CSV files as real tools and open-data portals write them (t188): each row is read
right, or is a ``file:line: reason`` naming the field and value and what to change;
never a row silently merged, split, shifted or lost. Every CSV reader of citybrain
(replay, detect, rehearse) is held to it.
"""

from __future__ import annotations

from pathlib import Path

from citybrain.detect import Extras, read_series
from citybrain.rehearse import read_incidents
from streams.csvfile import BadRow
from streams.events import IncidentReport, Reading
from streams.feeds import load_events

READINGS = "timestamp,sensor_id,kind,value,unit,grid_cell\n"
INCIDENTS = "timestamp,report_id,category,text,source,grid_cell\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read_skip(path: Path) -> tuple[list[Reading | IncidentReport], list[BadRow]]:
    bad: list[BadRow] = []
    return load_events([path], on_error="skip", bad_rows=bad), bad


# -- a header row again, unlike the file's ---------------------------------------------


def test_rows_under_a_header_in_another_order_are_not_read_by_the_first_one(
    tmp_path: Path,
) -> None:
    """Two exports joined with `cat`, the second with its columns in another order: its
    header was a bad row ('field "timestamp" is 'timestamp''), and the rows under it were
    read by the first header, each reading sent with its sensor_id and grid_cell swapped,
    unsaid. Now the second header and its rows are bad rows saying why, and a header like
    the file's (any case, spaces around) ends them."""
    data = (
        READINGS
        + "2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3,c1\n"
        + "timestamp,grid_cell,kind,value,unit,sensor_id\n"
        + "2024-05-27T03:11:10Z,c1,pm25,1.6,ug/m3,s1\n"
        + "2024-05-27T03:12:10Z,c1,pm25,1.7,ug/m3,s1\n"
        + " Timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "2024-05-27T03:13:10Z,s1,pm25,1.8,ug/m3,c1\n"
    )
    events, bad = read_skip(write(tmp_path, "joined.csv", data))
    assert [(e.sensor_id, e.grid_cell, e.value) for e in events if isinstance(e, Reading)] == [
        ("s1", "c1", 1.5),
        ("s1", "c1", 1.8),
    ]
    assert [b.line for b in bad] == [3, 4, 5, 6]
    assert bad[0].reason.startswith(
        "a header row again, unlike line 1's: the same columns in another order (files "
        "joined together?): the rows under it are not read"
    )
    assert bad[1].reason.startswith("a row under the header row at line 3, unlike line 1's")
    assert bad[3].reason == "the header row again (files joined together?)"


def test_a_header_row_of_other_columns_is_said_with_them(tmp_path: Path) -> None:
    data = INCIDENTS + "Timestamp,report_id,complaint_type,text,source,grid_cell\n"
    _, bad = read_skip(write(tmp_path, "joined.csv", data))
    assert [b.reason.split(" (files")[0] for b in bad] == [
        "a header row again, unlike line 1's: other columns ('complaint_type' for 'category')"
    ]


def test_detect_reads_no_row_under_a_header_in_another_order(tmp_path: Path) -> None:
    """detect's extra columns were written under each other's names: a second export's
    rows, under `timestamp,value,sensor,station`, were kept as station,sensor."""
    path = write(
        tmp_path,
        "s.csv",
        "timestamp,value,station,sensor\n2020-01-01 00:00:00,1,st,se\n"
        "timestamp,value,sensor,station\n2020-01-01 00:01:00,2,se,st\n",
    )
    bad: list[str] = []
    extras = Extras()
    stamps, _, _ = read_series(path, bad.append, extras=extras)
    assert stamps == ["2020-01-01 00:00:00"] and extras.rows == [["st", "se"]]
    assert [b.split(": ", 1)[0] for b in bad] == [f"{path}:3", f"{path}:4"]
    assert "unlike line 1's: the same columns in another order" in bad[0]


def test_rehearse_reads_no_row_under_a_header_in_another_order(tmp_path: Path) -> None:
    """rehearse read the reports under a second header by the first: category for text."""
    path = write(
        tmp_path,
        "in.csv",
        INCIDENTS
        + "2024-05-27T00:00:00Z,r1,Noise,loud music,app,c-top\n"
        + "timestamp,report_id,text,category,source,grid_cell\n"
        + "2024-05-27T00:01:00Z,r2,loud music,Noise,app,c-top\n",
    )
    bad: list[BadRow] = []
    found = read_incidents(
        path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts), on_bad_row=bad.append
    )
    assert [(i.report_id, i.category) for i in found.incidents] == [("r1", "Noise")]
    assert [b.line for b in bad] == [3, 4]
