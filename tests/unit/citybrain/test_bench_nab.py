"""``citybrain bench nab`` on a NAB-layout corpus: the root or its data/ directory, and a
clear error for a missing path."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from citybrain.cli import main
from streams.settings import REPO_ROOT


def nab_corpus(root: Path) -> Path:
    """One real series (a USGS water level, from datasets/) with one labelled window."""
    frame = pd.read_csv(REPO_ROOT / "datasets" / "usgs_flood_2019-05.csv.gz")
    series = frame[frame["sensor_id"] == "usgs-01650800-water_level"].head(600)
    stamps = pd.to_datetime(series["timestamp"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    (root / "data" / "water").mkdir(parents=True)
    pd.DataFrame({"timestamp": stamps, "value": series["value"]}).to_csv(
        root / "data" / "water" / "level.csv", index=False
    )
    (root / "labels").mkdir()
    window = [f"{stamps.iloc[400]}.000000", f"{stamps.iloc[450]}.000000"]
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({"water/level.csv": [window]})
    )
    return root


def test_the_root_and_its_data_directory_give_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = nab_corpus(tmp_path / "nab")
    reports = []
    for data in (root, root / "data"):
        assert main(["bench", "nab", "--data", str(data), "--detector", "robust_zscore"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1]
    assert reports[0]["detector"] == "robust_zscore"


def test_a_missing_labels_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = nab_corpus(tmp_path / "nab")
    (root / "labels" / "combined_windows.json").unlink()
    assert main(["bench", "nab", "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert (
        "--labels" in err and "combined_windows.json': no such file (expected NAB's layout" in err
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        # Each was "unexpected JSONDecodeError/AttributeError/TypeError/ValueError/
        # KeyError … a bug" (exit 70) in trial 20.
        (b"", ":1: not JSON: Expecting value"),
        (b"[1]", ': is a list, expected {"<category>/<file>.csv": [[start, end], ...]}'),
        (b'{"water/level.csv": 5}', ": 'water/level.csv' is 5, expected {"),
        (
            b'{"water/level.csv": [["x"]]}',
            ": 'water/level.csv' window 0 is [\"x\"], expected a pair of times [start, end]",
        ),
        (
            b'{"water/level.csv": [["2001-01-01 00:00:00.000000", "2001-01-02 00:00:00"]]}',
            ": 'water/level.csv' window 0: '2001-01-01 00:00:00.000000' is no timestamp of ",
        ),
        # t121: the line, not a byte offset
        (b'{"a": 1}\xff', ":1: byte 0xff is not UTF-8 (save the file as UTF-8)"),
        # t66: past the 4,300 digits int() converts, "unexpected ValueError" (exit 70).
        (b'{"water/level.csv": [[' + b"9" * 5000 + b", 1]]}", ": 'water/level.csv' window 0"),
        # json.loads kept the last: the file's first windows were lost unsaid (t54).
        (
            b'{"water/level.csv": [], "water/level.csv": []}',
            ": key 'water/level.csv' is given twice: which is meant?",
        ),
    ],
)
def test_a_labels_file_that_cannot_be_read_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: bytes, message: str
) -> None:
    root = nab_corpus(tmp_path / "nab")
    path = root / "labels" / "combined_windows.json"
    path.write_bytes(labels)
    assert main(["bench", "nab", "--data", str(root)]) == 2
    assert capsys.readouterr().err.startswith(f"citybrain: {path}{message}")


def test_a_file_as_data_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It was taken for a root and read as "--labels 'labels/combined_windows.json' does
    # not exist".
    root = nab_corpus(tmp_path / "nab")
    level = root / "data" / "water" / "level.csv"
    assert main(["bench", "nab", "--data", str(level)]) == 2
    assert capsys.readouterr().err.startswith(
        f"citybrain: --data {str(level)!r} is a file, expected a directory: give NAB's root"
    )
    assert main(["bench", "nab", "--data", str(root), "--labels", str(root / "labels")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: --labels {str(root / 'labels')!r} is a directory")


def test_every_detector_is_scored_at_the_threshold_the_stream_alerts_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trial 20: the help promised "the tail detector's documented" threshold as the
    # default, but only tail got a fixed-threshold score (robust_zscore: null).
    from detectors import default_threshold

    root = nab_corpus(tmp_path / "nab")
    assert main(["bench", "nab", "--data", str(root), "--detector", "robust_zscore"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threshold"] == default_threshold("robust_zscore") == 0.6
    assert result["standard"]["at_default_threshold"] is not None


def test_labels_of_files_not_in_the_corpus_are_said_and_an_empty_corpus_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: a labelled file missing from --data (misspelt, or left out) lost its windows
    unsaid, and a corpus without a CSV file was scored: exit 0, every score null."""
    root = nab_corpus(tmp_path / "nab")
    labels = root / "labels" / "combined_windows.json"
    windows = json.loads(labels.read_text())
    labels.write_text(json.dumps({**windows, "water/levl.csv": windows["water/level.csv"]}))
    assert main(["bench", "nab", "--data", str(root)]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["windows"] == 1
    assert said.err == (
        f"citybrain: warning: --labels {str(labels)!r} labels 1 file not under --data "
        f"{str(root / 'data')!r}, whose windows count nowhere: 'water/levl.csv' (did you "
        "mean 'water/level.csv'?)\n"
    )
    (root / "data" / "water" / "level.csv").unlink()
    assert main(["bench", "nab", "--data", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"citybrain: --data {str(root / 'data')!r}: no .csv files under it (NAB's layout: "
        "data/<category>/<file>.csv)\n"
    )
