"""A file cut short (copied, downloaded or read while it was written) ends part-way
through a row with no line end: the bad row that makes says so, at every CSV reader of a
row file (t204: ``row has 3 fields, expected 6`` alone). A last line without a line end
that reads as a row is taken, as many tools write one."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.detect import DetectInputError, read_series
from citybrain.rehearse import RehearsalError, read_incidents
from streams.errors import FeedError
from streams.feeds import BadRow, load_events

CUT = "(the file's last line, with no line end: cut short?"
READINGS = (
    "timestamp,sensor_id,kind,value,unit,grid_cell\n"
    "2019-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330\n"
)
LAST = "2019-05-06T00:15:00Z,usgs-01589330-discharge,discharge,106.0,ft3/s,md-gauge-01589330"


@pytest.mark.parametrize("end", ["", "\r"])
def test_a_replay_files_row_cut_short_at_its_end_says_so(tmp_path: Path, end: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(READINGS + LAST[:50], newline="")
    with pytest.raises(FeedError) as stopped:
        load_events([path])
    assert str(stopped.value).startswith(f"{path}:3: row has 3 fields, expected 6: read as ")
    assert str(stopped.value).endswith(
        f"none for value, unit, grid_cell {CUT} a file copied, "
        "downloaded or read while it was written ends so; get it whole)"
    )
    bad: list[BadRow] = []
    assert len(load_events([path], "skip", bad)) == 1  # the whole row before it is sent
    assert [(row.line, CUT in row.reason) for row in bad] == [(3, True)]
    # With its line end it is a bad row like any other, and one cut in its last field
    # that still reads as a row is taken (a last line without a line end is common).
    path.write_text(READINGS + LAST[:50] + "\n" + end, newline="")
    with pytest.raises(FeedError) as stopped:
        load_events([path])
    assert str(stopped.value).endswith("and none for value, unit, grid_cell")
    path.write_text(READINGS + LAST, newline="")
    assert [e.grid_cell for e in load_events([path])] == ["md-gauge-01589330"] * 2


def test_a_replay_files_bad_row_in_the_middle_is_no_cut(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(READINGS + LAST[:50] + "\n" + LAST, newline="")
    bad: list[BadRow] = []
    assert len(load_events([path], "skip", bad)) == 2
    assert [(row.line, CUT in row.reason) for row in bad] == [(3, False)]


def test_detects_series_cut_short_at_its_end_says_so(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2026-11-01T10:00:00Z,1\n2026-11-01T10:0", newline="")
    with pytest.raises(DetectInputError) as stopped:
        read_series(path)
    assert str(stopped.value).startswith(f"{path}:3: ") and CUT in str(stopped.value)


def test_rehearsals_incidents_cut_short_at_their_end_say_so(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud music,app,c-top\n"
        "2024-05-27T00:01:00Z,r2,Noi",
        newline="",
    )
    with pytest.raises(RehearsalError) as stopped:
        read_incidents(path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts))
    assert str(stopped.value).startswith(f"{path}:3: row has 3 fields, expected 6 {CUT}")
