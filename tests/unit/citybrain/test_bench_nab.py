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
    assert "--labels" in err and "combined_windows.json' does not exist" in err
