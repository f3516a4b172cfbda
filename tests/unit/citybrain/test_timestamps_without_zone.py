"""A timestamp without a zone says what to send, at every door (t174).

A newcomer's own CSV, reshaped with pandas or a spreadsheet, writes local times without a
zone (``2016-03-01 00:00:00``) in every row. Every other fault of a timestamp ends with
the form that is taken; this one said only "timestamp has no time zone", at the replay
(then "fix that row, or give --on-error skip", which would have sent none of the rows),
in an HTTP ingest's 400 and in the MQTT ingest's dead letter alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citybrain.cli import main
from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator, parse_ts
from tests.unit.citybrain.test_cli_stumbles import listening, stopped
from tests.unit.streams.test_events import NOW, reading

__all__ = ["listening", "stopped"]  # fixtures, used by name

HEADER = "timestamp,sensor_id,kind,value,unit,grid_cell\n"


@pytest.mark.parametrize(
    "sent",
    ["2016-03-01 00:00:00", "2016-03-01T00:00", "2016-03-01t00:00:00.25"],
)
def test_a_time_without_a_zone_is_told_the_two_ways_to_write_it(sent: str) -> None:
    """Fails on the old code: the refusal ended at "timestamp has no time zone"."""
    with pytest.raises(EventError) as info:
        parse_ts(sent, "timestamp")
    message = str(info.value)
    assert info.value.code == "bad_timestamp"
    assert f"'{sent}Z' if that was UTC" in message
    assert f"'{sent}+08:00' for UTC+8" in message
    # Each suggestion is a time the same function takes.
    assert parse_ts(f"{sent}Z") == parse_ts(f"{sent}+08:00") + 8 * 3600


def test_a_long_fraction_is_cut_in_the_suggestion_not_repeated_whole() -> None:
    sent = "2016-03-01T00:00:00." + "1" * 5000
    with pytest.raises(EventError) as info:
        parse_ts(sent)
    message = str(info.value)
    assert "'2016-03-01T00:00:00.111111111Z' if that was UTC" in message
    assert len(message) < 400


def test_an_ingested_reading_without_a_zone_names_the_fix(grid: Grid) -> None:
    """The HTTP ingest's 400 and the MQTT ingest's dead letter carry this reason."""
    raw = json.dumps(reading(ts="2026-11-01 10:00:00")).encode()
    with pytest.raises(EventError) as info:
        EventValidator(grid).reading(raw, NOW)
    assert "'2026-11-01 10:00:00Z' if that was UTC" in str(info.value)


def test_a_replayed_file_without_zones_is_told_to_fix_its_timestamps(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fails on the old code: "fix that row, or give --on-error skip to send the good rows",
    where no row was good."""
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    path = tmp_path / "dongsi.csv"
    path.write_text(
        HEADER
        + "".join(
            f"2016-03-01 0{h}:00:00,bj-dongsi-pm25,pm25,{60 + h},ug/m3,bj-site-dongsi\n"
            for h in range(5)
        )
    )
    assert main(["replay", str(path), "--max"]) == 2
    err = capsys.readouterr().err
    assert "'2016-03-01 00:00:00Z' if that was UTC" in err
    assert "fix the file's timestamps" in err
    assert "--on-error skip" not in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_another_bad_row_still_points_to_on_error_skip(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "2016-03-01T00:00:00Z,bj-dongsi-pm25,pm25,x,ug/m3,bj-site-dongsi\n")
    assert main(["replay", str(path), "--max"]) == 2
    assert "give --on-error skip to send the good rows" in capsys.readouterr().err
