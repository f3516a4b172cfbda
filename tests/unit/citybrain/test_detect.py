"""``citybrain detect``: one output row per input row, same order; bad files name file,
line and reason; a daylight-saving step back is not an error."""

from __future__ import annotations

import csv
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citybrain.cli import main
from citybrain.cli.detect import detect_summary
from citybrain.detect import (
    ALTERNATIVE,
    CLOCK_JUMP,
    EXTREME_SPREADS,
    DetectInputError,
    Scored,
    TimeOrder,
    read_series,
    rows_to_reach,
    warmup_rows,
)
from detectors import (
    DEFAULT_DETECTOR,
    DEFAULT_THRESHOLD,
    DETECTORS,
    OWN_THRESHOLDS,
    TailDetector,
    default_threshold,
)
from detectors.robust_zscore import RobustZScore
from detectors.tail import far_glitch_rows
from streams import detection
from streams.csvfile import read_records


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_detect_writes_one_scored_row_per_input_row(tmp_path: Path) -> None:
    values = [1.0 + 0.1 * math.sin(m) + 9.0 * (m == 150) for m in range(200)]
    rows = ["timestamp,value"] + [
        f"2019-05-01 {m // 60:02d}:{m % 60:02d}:00,{v!r}" for m, v in enumerate(values)
    ]
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "out.csv")]) == 0
    out = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["timestamp"] for r in out] == [r.split(",")[0] for r in rows[1:]]
    scores = [float(r["anomaly_score"]) for r in out]
    assert max(scores) == scores[150] and all(0 <= s <= 1 for s in scores)
    # The default detector, fed the rows' times in seconds.
    times = [1556668800.0 + 60 * m for m in range(200)]
    expected = DETECTORS[DEFAULT_DETECTOR]().score_many(values, times)
    assert scores == pytest.approx(expected.tolist(), abs=1e-6)


def test_directory_mode_mirrors_subfolders(tmp_path: Path) -> None:
    (tmp_path / "in" / "cat").mkdir(parents=True)
    write(tmp_path / "in" / "cat" / "a.csv", "timestamp,value\n2020-01-01 00:00:00,1\n")
    assert (
        main(["detect", "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")])
        == 0
    )
    assert (tmp_path / "out" / "cat" / "a.csv").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n2020-01-01 00:00:00,1\n", ":1: header is 'time,value'"),
        # t174: what to rename, not only the header expected (fail on the old code)
        (
            "time,value\n2020-01-01 00:00:00,1\n",
            "expected timestamp,value (rename 'time' to timestamp)",
        ),
        (
            "timestamp,pm25,station\n2020-01-01 00:00:00,1,x\n",
            "(rename 'pm25' to value, the column scored; the columns after them are kept beside "
            "the scores)",
        ),
        (
            "value,timestamp\n1,2020-01-01 00:00:00\n",
            "(the same columns in another order: timestamp first, then value)",
        ),
        ("timestamp,value\n2020-01-01 00:00:00\n", ":2: row has 1 field(s)"),
        (
            "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,abc\n",
            ":3: field \"value\" is 'abc', expected a number",
        ),
        ("timestamp,value\nlater,1\n", ":2: field \"timestamp\" is 'later'"),
        (
            "timestamp,value\n2020-01-01 05:00:00,1\n2020-01-01 02:00:00,2\n",
            ":3: timestamp '2020-01-01 02:00:00' is before the latest time so far, '2020-01-01 05:00:00'",
        ),
        ("timestamp,value\n2020-01-01 00:00:00,nan\n", "expected a finite number"),
        # siblings: numbers float() reads and a CSV of numbers should not hold
        ("timestamp,value\n2020-01-01 00:00:00,1_000\n", ":2: field \"value\" is '1_000'"),
        ("timestamp,value\n2020-01-01 00:00:00,\uff11\n", "decimal notation"),
        ("timestamp,value\n2020-01-01 00:00:00,1e400\n", "expected a finite number"),
        # t183: read as 0.0, a value nobody wrote
        ("timestamp,value\n2020-01-01 00:00:00,1e-400\n", "'1e-400', not zero as written"),
        # a decimal comma: the row's "5" was dropped and 1,5 read as 1
        (
            "timestamp,value\n2020-01-01 00:00:00,1,5\n",
            ":2: row has 3 fields, expected 2 (a decimal",
        ),
        # siblings: times Python's fromisoformat reads and the worker's ISO form does not
        ("timestamp,value\n2026-11-01X10:00:00,1\n", ':2: field "timestamp" is \'2026-11-01X'),
        ("timestamp,value\n20261101T100000,1\n", ":2: field \"timestamp\" is '20261101T100000'"),
        ("timestamp,value\n2026-W44-1,1\n", ":2: field \"timestamp\" is '2026-W44-1'"),
        ("timestamp,value\n2026-11-01T10,1\n", ":2: field \"timestamp\" is '2026-11-01T10'"),
    ],
)
def test_bad_files_name_file_line_and_reason(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write(tmp_path / "bad.csv", text)
    with pytest.raises(DetectInputError) as info:
        read_series(src)
    assert str(info.value).startswith(str(src)) and message in str(info.value)
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-01", "2026-11-01T10:00", "2026-11-01 10:00:00.5", "2026-11-01T10:00:00+02:00"],
)
def test_iso_dates_and_times_are_read(tmp_path: Path, stamp: str) -> None:
    src = write(tmp_path / "ok.csv", f"timestamp,value\n{stamp},1\n")
    stamps, _, _ = read_series(src)
    assert stamps == [stamp]


def test_a_daylight_saving_step_back_is_accepted(tmp_path: Path) -> None:
    src = write(
        tmp_path / "dst.csv",
        "timestamp,value\n2014-11-02 01:55:00,1\n2014-11-02 01:00:00,2\n2014-11-02 01:05:00,3\n",
    )
    stamps, _, values = read_series(src)
    assert len(stamps) == 3 and values.tolist() == [1.0, 2.0, 3.0]


def test_a_row_in_the_first_hour_of_the_year_1_costs_no_later_row(tmp_path: Path) -> None:
    """t171: the step-back check took an hour off the latest time, which for 0001-01-01
    00:00 raised OverflowError, said as this row's time being "outside the years
    0001-9999": every later row was refused, 1970 and 2019 alike; a step back of more
    than an hour from there is still refused as one."""
    src = write(
        tmp_path / "years.csv",
        "timestamp,value\n0001-01-01T00:00:00Z,1\n1970-01-01T00:00:00Z,2\n"
        "2019-01-01T00:00:00Z,3\n9999-12-31T23:59:59Z,4\n",
    )
    stamps, _, values = read_series(src)
    assert len(stamps) == 4 and values.tolist() == [1.0, 2.0, 3.0, 4.0]
    # (The jump to 9999 confirmed by the row after it: t185 takes a row going back
    # between a jump's two times, the jump's own time then being the odd one.)
    back = write(
        tmp_path / "back.csv",
        "timestamp,value\n0001-01-01T00:30:00Z,1\n0001-01-01T00:10:00Z,2\n"
        "9999-12-31T23:00:00Z,3\n9999-12-31T23:59:59Z,3\n9999-12-31T22:00:00Z,4\n",
    )
    with pytest.raises(DetectInputError, match=r"back\.csv:6: timestamp '9999-12-31T22:00:00Z'"):
        read_series(back)


def test_one_row_a_year_ahead_costs_no_later_row(tmp_path: Path) -> None:
    """t185: one row dated a year ahead among rows five minutes apart made every later
    row 'before the latest time so far': refused (the run ended at the next row, naming
    it and not the odd one), or all skipped with --on-error skip. As the worker takes a
    clock jump (``streams.detection.CLOCK_JUMP``), a row between the time jumped from and
    the jump takes the clock back; one before the time jumped from is still refused."""
    rows = [
        f"2019-05-01T{h:02d}:{m:02d}:00Z,{10 + m / 100}" for h in range(2) for m in range(0, 60, 5)
    ]
    rows.insert(12, "2020-05-01T00:00:00Z,10.2")
    src = write(tmp_path / "jump.csv", "timestamp,value\n" + "\n".join(rows) + "\n")
    order = TimeOrder()
    stamps, _, _ = read_series(src, order=order)
    assert len(stamps) == 25 and order.jumps_back == 1 and order.earlier == 0
    older = [*rows[:13], "2019-04-30T23:00:00Z,10", *rows[13:]]
    src = write(tmp_path / "older.csv", "timestamp,value\n" + "\n".join(older) + "\n")
    with pytest.raises(DetectInputError, match=r"older\.csv:15: timestamp '2019-04-30T23:00:00Z'"):
        read_series(src)
    assert CLOCK_JUMP.total_seconds() == detection.CLOCK_JUMP


def test_a_first_row_a_year_ahead_costs_no_later_row(tmp_path: Path) -> None:
    """t206 (fails on the old code): a file whose FIRST row is dated a year ahead (a
    gateway's clock) stopped at its second row, naming that one, not the odd one; with
    --on-error skip every later row was skipped (1 of 25 scored). Nothing before the
    first row vouches for its time, as the stream takes a kind's first reading
    (``streams.detection.NO_CLOCK``): a next row more than a day back takes the clock back,
    counted as a jump; once a later row confirms the first, the rules stand."""
    rows = [
        f"2019-05-01T{h:02d}:{m:02d}:00Z,{10 + m / 100}" for h in range(2) for m in range(0, 60, 5)
    ]
    src = write(tmp_path / "first.csv", "timestamp,value\n2020-05-01T00:00:00Z,10.2\n")
    with src.open("a") as file:
        file.write("\n".join(rows) + "\n")
    order = TimeOrder()
    stamps, _, _ = read_series(src, order=order)
    assert len(stamps) == 25 and order.jumps_back == 1 and order.earlier == 0
    # Confirmed by the row after it, the first row is the clock: going back is refused.
    sane = [*rows[:2], "2019-04-30T22:00:00Z,10", *rows[2:]]
    src = write(tmp_path / "sane.csv", "timestamp,value\n" + "\n".join(sane) + "\n")
    with pytest.raises(DetectInputError, match=r"sane\.csv:4: timestamp '2019-04-30T22:00:00Z'"):
        read_series(src)


# Files from the field (issue 12 item 9): the same faults as replay files.
LATIN1_SERIES = b"timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,2\xf1\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (LATIN1_SERIES, ":3: byte 0xf1 at column 22 is not UTF-8"),
        (b"timestamp,value\n2020-01-01 00:00:00,\x001\n", ":2: byte 0x00 (NUL) at column 21"),
        (
            b'timestamp,value\n2020-01-01 00:00:00,"1\n2020-01-01 00:01:00,2\n',
            ":2: a quoted field opens here and is not closed before line 3",
        ),
        (b'timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,"2', ":3: a quoted"),
        (b"", ":1: the file is empty"),
        ("timestamp,value\n2020-01-01 00:00:00,1\n".encode("utf-16"), ":1: the file is UTF-16"),
        (
            # The worker's form (trial 5 item 6): no other separator, no zone name.
            b"timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01x00:01:00UTC,2\n",
            ":3: field \"timestamp\" is '2020-01-01x00:01:00UTC', expected ISO 8601 as a "
            "reading's ts, 2026-11-01T10:00:00Z or 2026-11-01 10:00:00+08:00 (T, t or a space "
            "before the time; a zone: Z, z, ±HH:MM, ±HHMM or ±HH; none is UTC), or a date alone",
        ),
        # Epoch times and week dates said as what they are, as replay says them (t162:
        # only the expected form).
        (
            b"timestamp,value\n1557525600,1\n",
            ":2: field \"timestamp\" is '1557525600': 1557525600 looks like epoch seconds: "
            "send it as ISO 8601 (2019-05-10T22:00:00Z)",
        ),
        (
            b"timestamp,value\n1557525600000,1\n",
            ":2: field \"timestamp\" is '1557525600000': 1557525600000 looks like epoch "
            "milliseconds: send it as ISO 8601 (2019-05-10T22:00:00Z)",
        ),
        (b"timestamp,value\n2019-W19-5,1\n", ":2: field \"timestamp\" is '2019-W19-5': an ISO"),
        # files joined with cat (t162: "field "timestamp" is 'timestamp'")
        (
            b"timestamp,value\n2020-01-01 00:00:00,1\ntimestamp,value\n",
            ":3: the header row again (files joined together?)",
        ),
        (b"timestamp,value\n2020-01-01 00:00:00,1e999\n", ":2: field \"value\" is '1e999'"),
        # A long field is shown in its first 80 characters (it was shown whole).
        (b"timestamp,value\n" + b"2" * 100_000 + b",1\n", ':2: field "timestamp" is \'222'),
    ],
)
def test_bad_bytes_and_quotes_name_file_line_and_byte(
    tmp_path: Path, data: bytes, message: str
) -> None:
    src = tmp_path / "s.csv"
    src.write_bytes(data)
    with pytest.raises(DetectInputError) as info:
        read_series(src)
    assert str(info.value).startswith(f"{src}{message}"), str(info.value)
    assert len(str(info.value)) < len(str(src)) + 400


def test_the_cli_reports_a_latin1_series_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "latin1.csv"
    src.write_bytes(LATIN1_SERIES)
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"citybrain: {src}:3: byte 0xf1 at column 22 is not UTF-8 (a Latin-1 or Windows-1252 file? save it as UTF-8); nothing was written to {tmp_path / 'o.csv'}: fix the file, or give --on-error skip\n"
    )


def test_bom_and_crlf_series_read_as_plain_ones(tmp_path: Path) -> None:
    plain = b"timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,2\n"
    src = tmp_path / "a.csv"
    src.write_bytes(b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n"))
    stamps, _, values = read_series(src)
    assert stamps == ["2020-01-01 00:00:00", "2020-01-01 00:01:00"]
    assert values.tolist() == [1.0, 2.0]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(
                [
                    '"',
                    ",",
                    "\n",
                    "\r",
                    "\r\n",
                    "\x00",
                    "1",
                    "1e308",
                    "-1e999",
                    "nan",
                    "2020-01-01 00:00:00",
                    "2020-01-01T00:00:00Z",
                    "é",
                    "x" * 3000,
                ]
            ),
            max_size=40,
        ).map(lambda parts: "".join(parts).encode()),
    )
)
def test_fuzz_any_series_file_gives_values_or_a_file_line_error(
    tmp_path: Path, body: bytes
) -> None:
    src = tmp_path / "fuzz.csv"
    src.write_bytes(b"timestamp,value\n" + body)
    try:
        stamps, times, values = read_series(src)
    except DetectInputError as exc:
        assert str(exc).startswith(f"{src}:"), str(exc)
        assert str(exc)[len(str(src)) + 1 :].split(":", 1)[0].isdigit(), str(exc)
    else:
        assert len(stamps) == len(times) == len(values) > 0
        assert all(math.isfinite(v) for v in values.tolist())


def test_skip_mode_leaves_bad_rows_out_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "s.csv"
    rows = [f"2020-01-01 00:{m:02d}:00,{1 + m % 3}" for m in range(30)]
    rows[5] = "2020-01-01 00:05:00,2\xf1".encode("latin-1").decode("latin-1")
    rows[9] = '2020-01-01 00:09:00,"3'
    rows[20] = "2019-12-31 00:00:00,1"  # out of time order
    src.write_bytes(("timestamp,value\n" + "\n".join(rows) + "\n").encode("latin-1"))
    out = tmp_path / "o.csv"
    argv = ["detect", "--input", str(src), "--output", str(out)]
    assert main(argv) == 2
    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert "read 30 rows: scored 27 with" in captured.out
    assert [line.split(": ")[0] for line in captured.err.splitlines()[-3:]] == [
        f"skipped {src}:7",
        f"skipped {src}:11",
        f"skipped {src}:22",
    ]
    written = list(csv.DictReader(out.open()))
    assert len(written) == 27
    assert "2020-01-01 00:10:00" in [r["timestamp"] for r in written]


@pytest.mark.parametrize("detector", sorted(DETECTORS))
@pytest.mark.parametrize(
    ("baseline", "glitch"), [(10.0, 1.7976931348623157e308), (1e307, 1.7e308), (10.0, -1e308)]
)
def test_a_finite_extreme_reading_scores_without_a_traceback(
    tmp_path: Path, detector: str, baseline: float, glitch: float
) -> None:
    # shared/field-cases/extreme-value-detector: a float64 sentinel among ordinary readings.
    values = [baseline * (1 + 0.01 * (m % 5)) for m in range(600)]
    values[450] = glitch
    rows = ["timestamp,value"] + [
        f"2019-05-{1 + m // 288:02d} {m % 288 // 12:02d}:{m % 12 * 5:02d}:00,{v!r}"
        for m, v in enumerate(values)
    ]
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    assert (
        main(["detect", "--input", str(src), "--output", str(out_path), "--detector", detector])
        == 0
    )
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    assert len(scores) == 600 and all(0.0 <= s <= 1.0 for s in scores)
    if detector == "robust_zscore" and baseline == 10.0:
        assert scores[450] == 1.0


def five_minute_rows(values: list[float]) -> list[str]:
    """A ``timestamp,value`` CSV's lines (header first), one row every 5 minutes from
    2019-05-01 00:00 with no zone (UTC), each value written exactly (``repr``)."""
    return ["timestamp,value"] + [
        f"2019-05-01 {m // 12:02d}:{m % 12 * 5:02d}:00,{v!r}" for m, v in enumerate(values)
    ]


def test_detect_reports_its_warm_up_and_warns_on_a_short_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 13 item 6: a 60-row series with a 6x spike at row 45 is not silently all
    # zeros: the warm-up is reported and the spike is the row that scores highest.
    values = [10.0 + math.sin(m / 5) + 0.3 * math.cos(m * 7.1) for m in range(60)]
    values[45] *= 6
    rows = five_minute_rows(values)
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    assert main(["detect", "--input", str(src), "--output", str(out_path)]) == 0
    out = capsys.readouterr()
    warmup = DETECTORS[DEFAULT_DETECTOR]().warmup  # type: ignore[attr-defined]
    assert f"the first {warmup} rows are warm-up, scored 0 (a far glitch" in out.out
    # Trial 9: too short for tail to reach its threshold before row 45; the user hears so.
    need = rows_to_reach(DEFAULT_DETECTOR, default_threshold(DEFAULT_DETECTOR))
    assert need is not None and need > 45
    assert f"rows {warmup + 1}-{need} reach 0.22 only for a reading more than 100" in out.err
    assert "--detector robust_zscore can from row" in out.err
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    assert max(scores) > 0 and scores.index(max(scores)) == 45
    # Shorter than the warm-up: every row is 0, and the user is told why.
    short = write(tmp_path / "short.csv", "\n".join(rows[: warmup - 5]) + "\n")
    assert main(["detect", "--input", str(short), "--output", str(out_path)]) == 0
    err = capsys.readouterr().err
    assert f"no more than the detector's warm-up of {warmup}: every row scored 0" in err


def test_a_series_shorter_than_the_warm_up_is_told_which_detector_can_score_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 30-row series with a 6x spike at row 28 came back all zeros with "give it a
    longer history" alone, while robust_zscore, which a longer series' warning names,
    scores it: the warning names it, and following it finds the spike."""
    values = [10.0 + math.sin(m / 5) + 0.3 * math.cos(m * 7.1) for m in range(30)]
    values[27] *= 6
    rows = five_minute_rows(values)
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    assert main(["detect", "--input", str(src), "--output", str(out_path)]) == 0
    err = capsys.readouterr().err
    other = rows_to_reach("robust_zscore", default_threshold("robust_zscore"))
    assert other is not None and other < 27
    assert (
        f"every row scored 0; give it a longer history, or --detector robust_zscore, which "
        f"scores from row {other + 1} at its threshold 0.6"
    ) in err
    assert (
        main(
            [
                "detect",
                "--input",
                str(src),
                "--output",
                str(out_path),
                "--detector",
                "robust_zscore",
            ]
        )
        == 0
    )
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    assert scores.index(max(scores)) == 27 and max(scores) >= 0.6


def test_the_short_series_warning_does_not_deny_an_alert_the_series_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t55: a 6x spike at row 46 on a level of 100 with a spread of 1 (500 spreads out)
    scored 0.28 and was counted at the threshold, while the warning and the summary said
    rows 33-56 "cannot reach 0.22"; they now say only a reading beyond 100 spreads can."""
    values = [100.0 + math.sin(m * 1.7) for m in range(60)]
    values[45] = 600.0
    rows = five_minute_rows(values)
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    assert main(["detect", "--input", str(src), "--output", str(out_path)]) == 0
    out = capsys.readouterr()
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    assert scores[45] >= default_threshold(DEFAULT_DETECTOR)
    assert "1 row scored at or above 0.22" in out.out
    assert "cannot reach" not in out.err + out.out
    assert "reach 0.22 only for a reading more than 100 standard deviations out" in out.err
    assert "only a reading more than 100 standard deviations out reaches 0.22" in out.out


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_every_detectors_summary_states_its_warm_up_and_rows_at_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: str
) -> None:
    """The new-user trial of issue 15: the ensemble on a 60-row series printed no warm-up
    at all, and no detector said how many rows reached the stream's alert threshold."""
    values = [10.0 + math.sin(m / 5) for m in range(60)]
    values[45] = 60.0
    rows = five_minute_rows(values)
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    argv = ["detect", "--input", str(src), "--output", str(out_path), "--detector", detector]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    threshold = default_threshold(detector)  # the stream's for this detector
    flagged = sum(s >= threshold for s in scores)
    word = "row" if flagged == 1 else "rows"
    own = detector in OWN_THRESHOLDS or detector == DEFAULT_DETECTOR
    # Trial 5 item 11: a detector on tail's threshold is not told it is its own.
    whose = f"({detector}'s threshold" if own else f"({DEFAULT_DETECTOR}'s calibrated threshold"
    assert f"; {flagged} {word} scored at or above {threshold:g} {whose}" in line, line
    if not own:
        assert f"{detector}'s scores have their own scale, so this is no alert rate" in line
    warmup = warmup_rows(DETECTORS[detector]())
    if warmup is not None:
        assert f"the first {warmup} rows are warm-up, scored 0 (a far glitch" in line
    else:
        first = next((i for i, s in enumerate(scores) if s), len(scores))
        assert f"declares no fixed warm-up; here the first {first} rows scored 0" in line, line


def test_a_series_scored_zero_throughout_by_a_detector_without_a_warm_up_is_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["timestamp,value"] + [f"2019-05-01 00:{m:02d}:00,{10 + m % 3}" for m in range(60)]
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    argv = ["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]
    assert main([*argv, "--detector", "ensemble"]) == 0
    assert "every one of its 60 rows scored 0" in capsys.readouterr().err


def test_counts_take_the_right_number() -> None:
    assert summary_line(1, 1, 0).startswith("read 1 row: scored 1 with tail, skipped 0 bad rows")
    assert "skipped 1 bad row;" in summary_line(2, 1, 1)
    assert "; 1 row scored at or above" in summary_line(3, 3, 0, flagged=1)


def summary_line(read: int, scored: int, skipped: int, flagged: int = 0) -> str:
    assert read == scored + skipped
    return detect_summary("tail", Scored(scored, flagged, 0, 1), skipped, 32)


def test_the_summary_writes_every_count_with_thousands_separators() -> None:
    """Issue 15: "read 2,304 rows: scored 2304 with tail" gave one count two ways."""
    scored = Scored(rows=2304, flagged=1200, leading_zeros=1500, series=1)
    line = detect_summary("tail", scored, 0, None)
    assert line.startswith("read 2,304 rows: scored 2,304 with tail, skipped 0 bad rows")
    assert "here the first 1,500 rows scored 0" in line and "; 1,200 rows scored" in line
    assert "the first 1,024 rows are warm-up" in detect_summary("tail", scored, 0, 1024)


def test_a_threshold_set_for_the_streams_other_detector_is_said_to_be_so() -> None:
    # Trial 4: with CITYBRAIN_DETECTOR=robust_zscore and CITYBRAIN_SCORE_THRESHOLD=0.5,
    # `detect --detector tail` called 0.5 "the stream's alert threshold" for tail.
    scored = Scored(100, 3, 0, 1)
    line = detect_summary("tail", scored, 0, 32, 0.5, True, "robust_zscore")
    assert line.endswith(
        "3 rows scored at or above 0.5 (CITYBRAIN_SCORE_THRESHOLD, which the stream applies "
        f"to its detector robust_zscore; tail's own threshold is {default_threshold('tail'):g})"
    )
    same = detect_summary("tail", scored, 0, 32, 0.5, True, "tail")
    assert same.endswith("(CITYBRAIN_SCORE_THRESHOLD, the stream's alert threshold)")


def test_windowed_gaussian_on_a_flat_series_is_not_told_the_threshold_is_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5 item 11: on 10.0/10.1/10.2 "11 rows scored at or above 0.22 (… the one
    the stream alerts at)", normal rows scoring 0.78-0.80: 0.22 is tail's threshold."""
    rows = ["timestamp,value"] + [f"2024-01-01T00:{m:02d}:00Z,{10 + m % 3 / 10}" for m in range(12)]
    src = write(tmp_path / "flat.csv", "\n".join(rows) + "\n")
    argv = ["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]
    assert main([*argv, "--detector", "windowed_gaussian"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "the one the stream alerts at" not in line
    assert "windowed_gaussian's scores have their own scale" in line
    assert line.endswith("the stream runs tail)")


def test_times_with_and_without_a_zone_mix_and_unordered_ones_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5 item 6: after a row without a zone, a valid 2024-01-01T00:02:00Z was
    refused with Python's "can't compare offset-naive and offset-aware datetimes"; rows
    at or before the previous time were scored without a word, while the stream drops
    or dead-letters them."""
    src = write(
        tmp_path / "mixed.csv",
        "timestamp,value\n"
        "2024-01-01 00:01,1\n"  # no zone, no seconds: UTC
        "2024-01-01T00:02:00Z,2\n"
        "2024-01-01 00:03:00+0000,3\n"
        "2024-01-01t00:04:00+00:00,4\n"
        "2024-01-01T00:04:00Z,4\n"  # the previous row's time
        "2024-01-01T01:03:00+01:00,5\n"  # 00:03 UTC: before it, by a minute
        "2023-12-31,6\n",  # a date alone: before, by more than an hour
    )
    out = tmp_path / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:8: timestamp '2023-12-31' is before the latest time so far" in err
    assert "offset-naive" not in err
    assert main(["detect", "--input", str(src), "--output", str(out), "--on-error", "skip"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        "scored though the stream would not: 1 row at the previous row's time (the stream "
        "drops these as duplicates); 1 row before it by up to an hour (the stream "
        "dead-letters these, out_of_order)"
    ) in line
    assert line.startswith("read 7 rows: scored 6 with tail, skipped 1 bad row")


def test_a_file_of_only_its_header_is_named_at_its_own_line(tmp_path: Path) -> None:
    """Trial 5 item 16: a one-line file was "empty.csv:2: no data rows"."""
    src = write(tmp_path / "empty.csv", "timestamp,value\n")
    with pytest.raises(DetectInputError, match=r"empty\.csv:1: no data rows: only the header"):
        read_series(src)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:04:00Z",
        "2024-01-01t00:04:00z",  # RFC 3339: either letter in either case (trial 6 item 7)
        "2024-01-01 00:04:00+0000",
        "2024-01-01T00:04:00+00",
        "2024-01-01T02:04:00,5+02:00",
        "2024-01-01T00:04Z",
        "2024-01-01T00:04:00",  # no zone: UTC in detect, refused by the worker
        "2024-01-01X00:04:00Z",
        "20240101T000400Z",
        "2024-W01-1T00:04:00Z",
        "2024-01-01T00Z",
        "2024-01-01T00:04:00 Z",
        "2024-01-01T00:04:00+1",
        "2024-01-01T00:04:00UTC",
        "２０24-01-01T00:04:00Z",
    ],
)
def test_detect_reads_a_timestamp_as_the_worker_does(text: str) -> None:
    """One rule (trial 6 item 7): detect takes a time exactly when the worker's
    ``parse_ts`` does, or the time lacks only its zone (UTC in detect, which the worker
    refuses saying so), and both read the same instant."""
    from citybrain.detect import _when
    from streams.errors import EventError
    from streams.events import parse_ts

    when = _when(text)
    try:
        worker: float | None = parse_ts(text)
    except EventError as exc:
        worker = None
        no_zone = "no time zone" in str(exc)
        assert (when is not None) == no_zone, text
        return
    assert when is not None and when.timestamp() == worker, text


@pytest.mark.parametrize("name", [DEFAULT_DETECTOR, ALTERNATIVE])
def test_rows_to_reach_is_where_an_extreme_reading_first_reaches_the_threshold(
    name: str,
) -> None:
    """Trial 9: tail scored a 6x spike at row 45 of 60 rows 0.197, under 0.22, while the
    summary spoke of a 32-row warm-up only. The history it needs is measured with the
    real detector: with one row fewer even a reading EXTREME_SPREADS standard deviations
    out stays under the threshold, and the alternative named needs less."""
    threshold = default_threshold(name)
    need = rows_to_reach(name, threshold)
    assert need is not None
    history = [10.0 + 0.5 * math.sin(m * 1.7) for m in range(need)]

    def last_score(n: int) -> float:
        level = sum(history[:n]) / n
        spread = (sum((h - level) ** 2 for h in history[:n]) / n) ** 0.5
        values = [*history[:n], level + EXTREME_SPREADS * spread]
        return float(DETECTORS[name]().score_many(values, [300.0 * m for m in range(n + 1)])[-1])

    assert last_score(need - 1) < threshold
    if name == DEFAULT_DETECTOR:
        warmup = warmup_rows(DETECTORS[name]())
        assert warmup is not None and need > warmup  # more than the declared warm-up
        other = rows_to_reach(ALTERNATIVE, default_threshold(ALTERNATIVE))
        assert other is not None and other < need


def test_a_folder_takes_gzip_files_and_skips_a_file_it_cannot_score_with_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 9: in --input-dir a header-only file stopped the whole batch even with
    --on-error skip, and .csv.gz files were passed over while --input x.csv.gz works."""
    import gzip

    src = tmp_path / "in"
    src.mkdir()
    rows = "timestamp,value\n" + "".join(
        f"2026-11-01T{m // 60:02d}:{m % 60:02d}:00Z,{10 + m % 3}\n" for m in range(50)
    )
    (src / "a.csv").write_text(rows)
    (src / "b.csv").write_text("timestamp,value\n")
    with gzip.open(src / "c.csv.gz", "wt") as fh:
        fh.write(rows)
    out = tmp_path / "out"
    argv = ["detect", "--input-dir", str(src), "--output-dir", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "b.csv:1: no data rows: only the header" in err and "--on-error skip" in err
    assert main([*argv, "--on-error", "skip"]) == 0
    said = capsys.readouterr()
    assert f"skipped the whole file: {src / 'b.csv'}:1: no data rows" in said.err
    assert "skipped 1 file that could not be scored at all" in said.out
    assert "read 100 rows" in said.out  # a.csv and the gzip c.csv.gz
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "c.csv"]
    assert (out / "a.csv").read_text() == (out / "c.csv").read_text()
    # A plain and a gzip file that would write one output are refused by name.
    (src / "c.csv").write_text(rows)
    assert main([*argv, "--on-error", "skip"]) == 2
    assert "would both be scored into c.csv" in capsys.readouterr().err


def test_a_folder_of_which_no_file_can_be_scored_is_refused_as_one_file_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t68's walk: `detect --input-dir datasets --output-dir o --on-error skip` (the
    shipped slices are replay's multi-sensor CSVs) skipped every file, wrote nothing and
    exited 0, where one file whose every row is bad is exit 2."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.csv").write_text("timestamp,sensor_id,kind,value,unit,grid_cell\n")
    (src / "b.csv").write_text("timestamp,value\n")
    out = tmp_path / "out"
    argv = ["detect", "--input-dir", str(src), "--output-dir", str(out), "--on-error", "skip"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"skipped the whole file: {src / 'a.csv'}:1: header is" in err
    assert f"skipped the whole file: {src / 'b.csv'}:1: no data rows" in err
    assert err.splitlines()[-1] == (
        f"citybrain: --input-dir {str(src)!r}: none of its 2 files could be scored (each "
        f"skipped whole, above); nothing was written to {out}: give files of "
        "timestamp,value rows"
    )
    assert not out.exists() or not any(out.iterdir())


def test_extra_columns_are_kept_after_the_score_and_times_are_named_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 9: `timestamp,value,extra` lost `extra` without a word, and the out-of-order
    error showed the time as `2026-11-01 02:30:00+00:00` where the file has `...Z`."""
    src = write(
        tmp_path / "in.csv",
        "timestamp,value,site,note\n2026-11-01T00:00:00Z,1,a,first\n2026-11-01T00:05:00Z,2,b\n",
    )
    out = tmp_path / "out.csv"
    assert main(["detect", "--input", str(src), "--output", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["timestamp", "value", "anomaly_score", "site", "note"]
    assert [r[3:] for r in rows[1:]] == [["a", "first"], ["b", ""]]
    clash = write(tmp_path / "clash.csv", "timestamp,value,anomaly_score\n2026-11-01,1,0.5\n")
    assert main(["detect", "--input", str(clash), "--output", str(out)]) == 2
    assert "a column 'anomaly_score' (column 3)" in capsys.readouterr().err
    late = write(
        tmp_path / "late.csv",
        "timestamp,value\n2026-11-01T02:30:00Z,1\n2026-11-01T02:00:00Z,2\n2026-11-01T00:30:00Z,3\n",
    )
    assert main(["detect", "--input", str(late), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "before the latest time so far, '2026-11-01T02:30:00Z'" in err and "+00:00" not in err


@pytest.mark.parametrize(
    "note", ["a\rb", "a\r\nb", "a\nb", "a\u2028b", "a\x85b", "a\x1cb", 'a"b', "a,b", 'a\rb,"c"']
)
def test_an_extra_columns_text_with_a_line_break_is_written_as_it_reads_back(
    tmp_path: Path, note: str
) -> None:
    """t169: a quoted extra field holding a lone CR was written bare (csv's writer under
    LF line ends quotes only an LF), so the output's row was cut in two at it: the output
    of detect no longer read as its rows, by detect nor by any CSV reader. Fails on the
    old code for the CR cases."""
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as fh:
        writer = csv.writer(fh)  # CRLF line ends: csv then quotes a lone CR
        writer.writerow(["timestamp", "value", "note"])
        for m in range(3):
            writer.writerow([f"2026-11-01T00:0{m}:00Z", m, note if m == 1 else "x"])
    out = tmp_path / "out.csv"
    assert main(["detect", "--input", str(src), "--output", str(out)]) == 0
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert [r[3] for r in rows[1:]] == ["x", note, "x"]
    assert [r[0] for r in rows[1:]] == [f"2026-11-01T00:0{m}:00Z" for m in range(3)]
    # And citybrain's own reader reads the output back as the same records.
    assert [r.fields for r in read_records(out)] == rows


@pytest.mark.parametrize("detector", ["tail", "robust_zscore", "ewma_cusum", "likelihood"])
def test_scoring_in_chunks_writes_what_scoring_the_whole_file_does(
    tmp_path: Path, detector: str
) -> None:
    """Trial 9: detect held the whole file (666 MB for a million rows); it now reads and
    scores a chunk at a time. Over a folder of several series (a level shift, a spike, a
    flat run, a bad row, repeated times, an extra column), chunks of 7 rows, of one row
    and the whole file at once give the same output files, byte for byte."""
    from citybrain.detect import detect_dir

    src = tmp_path / "in"
    src.mkdir()
    series = {
        "shift.csv": [10.0 + (m >= 120) * 5 + 0.1 * math.sin(m) for m in range(300)],
        "spike.csv": [1.0 + 0.2 * math.cos(m / 3) + 9 * (m == 200) for m in range(260)],
        "flat.csv": [4.0] * 90 + [4.5 + 0.01 * m for m in range(60)],
    }
    for name, values in series.items():
        rows = [
            f"2024-01-01T{m // 60:02d}:{m % 60:02d}:00Z,{v!r},x{m}" for m, v in enumerate(values)
        ]
        rows[50] = rows[49]  # a repeated time: scored and counted
        rows[70] = "2024-01-01T01:10:00Z,oops,x"  # a bad row, skipped
        (src / name).write_text("timestamp,value,tag\n" + "\n".join(rows) + "\n")
    outputs = {}
    for chunk in (1, 7, 10**9):
        out = tmp_path / f"out-{chunk}"
        skipped: list[str] = []
        scored = detect_dir(src, out, DETECTORS[detector](), skipped.append, chunk_rows=chunk)
        outputs[chunk] = (
            {p.name: p.read_bytes() for p in out.iterdir()},
            (scored.rows, scored.flagged, scored.leading_zeros, scored.order.repeated),
            skipped,
        )
    assert outputs[1] == outputs[7] == outputs[10**9]
    files, (rows, *_), skipped = outputs[7]
    assert rows == sum(len(v) for v in series.values()) - 3 and len(skipped) == 3
    assert all(f.startswith(b"timestamp,value,anomaly_score,tag\n") for f in files.values())


class _StopsAt(RobustZScore):
    """A real detector that is interrupted (as Ctrl-C would) at the ``at``-th chunk its
    clones score, counted over every clone (each file's scoring is one); the prototype
    itself (the warnings' probes) scores on."""

    def __init__(self, at: int = 1, chunks: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.at, self.chunks, self.armed = at, [0] if chunks is None else chunks, False

    def clone(self) -> _StopsAt:
        twin = _StopsAt(self.at, self.chunks)
        twin.armed = True
        return twin

    def _chunk(self) -> None:
        if self.armed:
            self.chunks[0] += 1
            if self.chunks[0] >= self.at:
                raise KeyboardInterrupt

    def score_many(self, xs: Any, ts: Any = None) -> Any:
        self._chunk()
        return super().score_many(xs, ts)

    def score_far_many(self, xs: Any, ts: Any = None) -> Any:
        # (What detect scores a chunk with since t179: the far rows beside the scores.)
        self._chunk()
        return super().score_far_many(xs, ts)


def _series(path: Path, rows: int) -> Path:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = [
        f"{(start + timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')},{m % 7}.5"
        for m in range(rows)
    ]
    return write(path, "timestamp,value\n" + "\n".join(lines) + "\n")


def test_an_interrupted_detect_leaves_each_output_whole_or_as_it_was(tmp_path: Path) -> None:
    """New-user walk (t17): Ctrl-C in `detect` left a truncated output (458,753 of
    1,500,001 lines) over the previous one, which read as a finished file. Each output
    is now written beside it and renamed when whole: a file interrupted mid-way keeps its
    old content, files finished before it are whole, and no partial file is left."""
    from citybrain.detect import detect_dir, detect_file

    src = _series(tmp_path / "in.csv", 100)
    out = write(tmp_path / "out.csv", "old scores\n")
    with pytest.raises(KeyboardInterrupt):
        detect_file(src, out, _StopsAt(at=3), chunk_rows=10)
    assert out.read_text() == "old scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]

    folder, scores = tmp_path / "many", tmp_path / "scores"
    folder.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        _series(folder / name, 30)
    scores.mkdir()
    write(scores / "b.csv", "old b\n")
    written: list[Path] = []
    with pytest.raises(KeyboardInterrupt):
        detect_dir(folder, scores, _StopsAt(at=5), written=written, chunk_rows=10)
    assert written == [scores / "a.csv"]  # a took chunks 1-3, b stopped at its second
    assert len((scores / "a.csv").read_text().splitlines()) == 31
    assert (scores / "b.csv").read_text() == "old b\n"
    assert sorted(p.name for p in scores.iterdir()) == ["a.csv", "b.csv"]


@pytest.mark.parametrize(
    ("argv", "written", "said"),
    [
        (
            ["--input", "in.csv", "--output", "o.csv"],
            [],
            "nothing was written to o.csv (it is as it was before)",
        ),
        (["--input-dir", "in", "--output-dir", "out"], [], "no file was scored into out"),
        (
            ["--input-dir", "in", "--output-dir", "out"],
            ["out/a.csv"],
            "1 file was scored into CWD/out (the last: a.csv)",  # absolute (t98)
        ),
        (
            ["--input", "in.csv", "--output", "-"],
            [],
            "written to stdout so far are only the first rows",
        ),
    ],
)
def test_an_interrupted_detect_says_what_it_left(
    argv: list[str], written: list[str], said: str
) -> None:
    from citybrain.cli import build_parser
    from citybrain.cli.detect import _detect_interrupted

    args = build_parser().parse_args(["detect", *argv])
    message = _detect_interrupted(args, [Path(p) for p in written])
    said = said.replace("CWD", str(Path.cwd()))
    assert message.startswith("interrupted: ") and said in message, message


def test_ctrl_c_in_detect_is_one_line_exit_130_and_the_output_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DETECTORS, "stops_t17", _StopsAt)
    src = _series(tmp_path / "in.csv", 300)
    out = write(tmp_path / "out.csv", "old scores\n")
    argv = ["detect", "--input", str(src), "--output", str(out), "--detector", "stops_t17"]
    assert main(argv) == 130
    out_text, err = capsys.readouterr()
    assert out_text == "" and err == (
        f"citybrain: interrupted: nothing was written to {out} (it is as it was before); "
        "run the command again to score the file\n"
    )
    assert out.read_text() == "old scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_a_bad_row_in_a_later_file_leaves_the_output_directory_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Helper brief t47, fault 1: the first file was scored into the output directory
    # before the second one's bad row stopped detect ("1 of 4 files was scored …").
    good = "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,2\n"
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.csv", good)
    bad = "timestamp,value\n2020-01-01 00:00:00,abc\n2020-01-01 00:01:00,2\n"
    write(tmp_path / "in" / "b.csv", bad)
    write(tmp_path / "in" / "c.csv", good)
    out = tmp_path / "out"
    argv = ["detect", "--input-dir", str(tmp_path / "in"), "--output-dir", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "b.csv:2: field \"value\" is 'abc'" in err
    assert "none of the 3 files was scored" in err
    assert not out.exists() or not any(out.rglob("*.csv"))
    # With --on-error skip the bad row is reported once and every file is scored.
    assert main([*argv, "--on-error", "skip"]) == 0
    assert capsys.readouterr().err.count("b.csv:2:") == 1
    assert sorted(p.name for p in out.rglob("*.csv")) == ["a.csv", "b.csv", "c.csv"]


def test_scores_end_their_lines_in_lf(tmp_path: Path) -> None:
    # Helper brief t47, fault 6: csv's default wrote anomaly_score\r\n for an LF input.
    src = write(tmp_path / "in.csv", "timestamp,value,note\n2020-01-01 00:00:00,1,x\n")
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 0
    data = (tmp_path / "o.csv").read_bytes()
    assert b"\r" not in data and data.startswith(b"timestamp,value,anomaly_score,note\n")
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "in.csv", "timestamp,value\r\n2020-01-01 00:00:00,1\r\n")
    argv = ["detect", "--input-dir", str(tmp_path / "d"), "--output-dir", str(tmp_path / "s")]
    assert main(argv) == 0
    assert b"\r" not in (tmp_path / "s" / "in.csv").read_bytes()


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("timestamp,value,value", "column 'value' twice (columns 2 and 3)"),
        ("timestamp,value,site, timestamp", "column 'timestamp' twice (columns 1 and 4)"),
    ],
)
def test_a_header_naming_a_column_twice_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, said: str
) -> None:
    """`timestamp,value,value`: the first value was scored and the second kept as an
    extra column, so the output had two columns `value` and which was scored was unsaid
    (the data-set adapters refuse such a header; detect now does, by the same rule)."""
    width = header.count(",") + 1
    src = write(tmp_path / "in.csv", f"{header}\n2026-11-01T00:00:00Z{',1' * (width - 1)}\n")
    out = tmp_path / "out.csv"
    for on_error in ("stop", "skip"):
        assert (
            main(["detect", "--input", str(src), "--output", str(out), "--on-error", on_error]) == 2
        )
        err = capsys.readouterr().err
        assert f"{src}:1: the header gives {said}: which is meant?" in err
        assert "Traceback" not in err and not out.exists()


def test_a_short_utf16_file_without_a_byte_order_mark_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes("timestamp,value\n2026-11-01T00:00:00Z,1\n".encode("utf-16-le"))
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    assert f"{src}:1: the file is UTF-16 without a byte order mark" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["ensemble", "seasonal", "discord"])
def test_a_far_glitch_first_does_not_end_the_warm_up_as_seen(
    detector: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # t78: every detector scores a 1e308 sentinel 1 in warm-up now; as the first row, it
    # made a detector that declares no warm-up "score 0 for the first 0 rows", and a
    # series it scored 0 throughout after the sentinel went without the warning.
    values = ["1e308"] + [f"{10 + m % 3}" for m in range(1, 60)]
    rows = ["timestamp,value"] + [f"2019-05-01 00:{m:02d}:00,{v}" for m, v in enumerate(values)]
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out = tmp_path / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out), "--detector", detector]) == 0
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out.open())]
    assert scores[0] == 1.0 and not any(scores[1:])
    captured = capsys.readouterr()
    assert "every one of its 60 rows but its 1 far glitch (scored 1) scored 0" in captured.err
    assert "here the first 60 rows but 1 far glitch (scored 1) scored 0" in captured.out


def test_a_folder_reads_only_regular_files_named_like_csvs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: under --input-dir, a pipe named p.csv was opened and waited on for ever
    (no word; even --on-error skip hung), a folder named 2026.csv stopped the batch as
    "cannot read: Is a directory", and a link to nothing was "No such file or
    directory" of a file the command itself listed. A folder is walked into; a pipe or a
    dangling link is a file that cannot be scored, named for what it is."""
    import os
    import threading

    src = tmp_path / "in"
    (src / "2026.csv").mkdir(parents=True)
    rows = "timestamp,value\n" + "".join(
        f"2026-11-01T{m // 60:02d}:{m % 60:02d}:00Z,{10 + m % 3}\n" for m in range(50)
    )
    (src / "a.csv").write_text(rows)
    (src / "2026.csv" / "b.csv").write_text(rows)
    out = tmp_path / "out"
    argv = ["detect", "--input-dir", str(src), "--output-dir", str(out)]
    assert main(argv) == 0
    assert "read 100 rows" in capsys.readouterr().out
    assert (out / "2026.csv" / "b.csv").is_file()

    os.mkfifo(src / "p.csv")
    (src / "l.csv").symlink_to(tmp_path / "nowhere.csv")
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(main([*argv, "--on-error", "skip"])))
    run.start()
    run.join(30)
    if run.is_alive():  # the old code waits in open() for a writer: give it EOF
        os.close(os.open(src / "p.csv", os.O_WRONLY | os.O_NONBLOCK))
        run.join(30)
    assert codes == [0], "detect waited on the pipe"
    said = capsys.readouterr()
    assert f"skipped the whole file: {src / 'p.csv'} is a pipe" in said.err
    assert (
        f"skipped the whole file: {src / 'l.csv'}: a symbolic link to "
        f"'{tmp_path / 'nowhere.csv'}', which does not exist"
    ) in said.err
    assert "skipped 2 files that could not be scored at all" in said.out
    assert main(argv) == 2
    assert f"citybrain: {src / 'l.csv'}: a symbolic link to" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["tail", "robust_zscore"])
def test_a_series_of_absurd_values_is_said_to_be_far_glitches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: str
) -> None:
    """t121: a series at 1e300 (beyond any measurement: every row a far glitch, scored 1,
    warm-up too) was summed up as "the first 32 rows are warm-up, scored 0 ...; 100 rows
    scored at or above 0.22", which its own output belied, with no word of why. The
    summary counts the far glitches among the rows at the threshold; a lone sentinel in
    an ordinary series is one of them."""
    rows = five_minute_rows([1e300 * (1 + 0.01 * (m % 3)) for m in range(100)])
    src = write(tmp_path / "in.csv", "\n".join(rows) + "\n")
    out_path = tmp_path / "out.csv"
    argv = ["detect", "--input", str(src), "--output", str(out_path), "--detector", detector]
    assert main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    scores = [float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())]
    assert scores == [1.0] * 100
    assert "100 rows scored at or above" in summary
    assert ", 100 of them far glitches (scored 1: a reading further from its series' level" in (
        summary
    )
    assert "beyond 6.1e+100, which no measurement reaches: a sentinel or a unit mistake?)" in (
        summary
    )
    values = [10.0 * (1 + 0.01 * (m % 5)) for m in range(100)]
    values[80] = 1e308
    src.write_text("\n".join(five_minute_rows(values)) + "\n")
    assert main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.endswith(
        ", 1 of them far glitches (scored 1: a reading further from its "
        "series' level than a million times its spread and size, or beyond "
        "6.1e+100, which no measurement reaches: a sentinel or a unit mistake?)"
    )


def test_the_far_glitches_counted_are_the_detector_s_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t179: detect judged far glitches with a GlitchGuard of its own beside the
    detector, which can disagree with it: on a level that really moves a million-fold
    (1e13 after readings near 10) tail follows the new level after 16 readings, its
    17th to 19th score 1 as measurements, yet the summary counted all 19 rows at the
    threshold as far glitches (the guard follows after 32). It now counts the
    detector's own judgement (``score_far_many``), the one the stream labels
    ``reading="far_glitch"``: 16."""
    values = [10.0 + 0.3 * ((m * 7) % 5 - 2) for m in range(300)]
    values += [1e13 + 1e12 * math.sin(m / 5) for m in range(300)]
    start = datetime(2019, 5, 1, tzinfo=UTC)
    stamps = [start + timedelta(minutes=5 * m) for m in range(600)]
    lines = ["timestamp,value"] + [
        f"{t.isoformat()},{v!r}" for t, v in zip(stamps, values, strict=True)
    ]
    src = write(tmp_path / "in.csv", "\n".join(lines) + "\n")
    out_path = tmp_path / "out.csv"
    argv = ["detect", "--input", str(src), "--output", str(out_path), "--detector", "tail"]
    assert main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    scores = np.array([float(r["anomaly_score"]) for r in csv.DictReader(out_path.open())])
    # (tail's own judgement: score above rarity, far_glitch_rows; score_far_many's)
    tail_scores, rarity = TailDetector().score_rarity_many(
        np.array(values), np.array([t.timestamp() for t in stamps])
    )
    far = far_glitch_rows(tail_scores, rarity)
    flagged = int((scores >= DEFAULT_THRESHOLD).sum())
    counted = int((far & (scores >= DEFAULT_THRESHOLD)).sum())
    assert counted < flagged  # (the level's first followed readings: measurements)
    assert f"{flagged} rows scored at or above" in summary
    assert f", {counted} of them far glitches (scored 1" in summary


def test_a_series_still_being_written_is_said_to_have_changed_while_it_was_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: detect reads its input twice (a check, then the scores); a series still being
    written lost, unsaid, the rows written after the first pass, and a last line caught
    half-written was scored as a row. It now says the file changed while it was read."""
    import threading
    import time

    src = tmp_path / "live.csv"
    rows = 20_000
    start = datetime(2026, 1, 1, tzinfo=UTC)
    src.write_text(
        "timestamp,value\n"
        + "".join(f"{(start + timedelta(minutes=m)).isoformat()},{m % 7}\n" for m in range(rows))
    )
    stop, appended = threading.Event(), threading.Event()

    def append() -> None:  # a logger adding a row every 2 ms, later than every other
        m = rows
        while not stop.is_set():
            with src.open("a") as fh:
                fh.write(f"{(start + timedelta(minutes=m)).isoformat()},1\n")
            appended.set()
            m += 1
            time.sleep(0.002)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        assert appended.wait(10)
        out_path = tmp_path / "out.csv"
        assert main(["detect", "--input", str(src), "--output", str(out_path)]) == 0
    finally:
        stop.set()
        writer.join()
    err = capsys.readouterr().err
    assert re.search(
        rf"citybrain: warning: {re.escape(str(src))} changed while it was read \([\d,]+ "
        r"bytes, then [\d,]+\): what was written to it after the first pass is not scored, "
        r"and its last row may have been cut short; score it again once it is complete",
        err,
    ), err
    assert sum(1 for _ in out_path.open()) > rows


def test_a_folder_of_csvs_named_in_capitals_is_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: --input-dir took ``*.csv`` and ``*.csv.gz`` only as written: a folder of
    ``A.CSV`` files had "no .csv or .csv.gz files under it", and ``--input B.CSV.GZ``
    was refused as "gzip-compressed; name it B.CSV.GZ.gz"."""
    import gzip

    src = tmp_path / "in"
    src.mkdir()
    rows = "timestamp,value\n" + "".join(
        f"2026-11-01T{m // 60:02d}:{m % 60:02d}:00Z,{10 + m % 3}\n" for m in range(50)
    )
    (src / "A.CSV").write_text(rows)
    (src / "B.Csv.Gz").write_bytes(gzip.compress(rows.encode()))
    out = tmp_path / "out"
    assert main(["detect", "--input-dir", str(src), "--output-dir", str(out)]) == 0
    assert "read 100 rows" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["A.CSV", "B.Csv"]
    one = tmp_path / "one.csv"
    assert main(["detect", "--input", str(src / "B.Csv.Gz"), "--output", str(one)]) == 0
    assert one.read_text() == (out / "B.Csv").read_text() == (out / "A.CSV").read_text()


def test_a_bad_row_of_a_series_changed_while_read_says_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t180: a series truncated or rotated under detect stopped at the row the cut made,
    with no word that the file changed; its size is looked up before and after, here
    made to differ."""
    from citybrain import detect as detect_module

    src = tmp_path / "s.csv"
    src.write_text("timestamp,value\n2026-11-01T10:00:00Z,1.5\n2026-11-01T10:01:00Z\n")
    looks = iter([(100, 1), (0, 2)])
    import streams.inputs

    for module in (detect_module, streams.inputs):  # the look before, and the one after
        monkeypatch.setattr(module, "file_version", lambda _path: next(looks))
    with pytest.raises(detect_module.DetectInputError) as stopped:
        detect_module.check_file(src)
    assert str(stopped.value).endswith(
        f"({src} changed while it was read (100 bytes, then 0): still being written, "
        "truncated or rotated? score it once it is complete)"
    )
    assert str(stopped.value).startswith(f"{src}:3: ")
