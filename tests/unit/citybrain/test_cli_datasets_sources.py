"""`datasets build --shared DIR` checks that DIR holds every source before it reads
one (t158's newcomer walk: a folder without Beijing's files was "unexpected ValueError:
No objects to concatenate … a bug", exit 70; one without the USGS file named the file
alone, "cannot read: No such file or directory", after reading the others)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import main

SOURCES = (
    "usgs_urban_streams/usgs_iv_2019-05.csv.gz",
    "beijing_air_quality/PRSA_Data_Dongsi_20130301-20170228.csv.gz",
    "aarhus_traffic/traffic_segments.csv",
    "aarhus_traffic/aarhus_traffic_2014-08_2014-09.csv.gz",
    "nyc_311/nyc311_2024-05-26.csv.gz",
    "sf_fire_calls/sf_fire_calls_sample.csv",
)


def _shared(root: Path, leave_out: str) -> Path:
    for source in SOURCES:
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        if not source.startswith(leave_out):
            (root / source).write_text("")
    return root


@pytest.mark.parametrize(
    ("leave_out", "named"),
    [
        ("beijing_air_quality/", "beijing_air_quality/PRSA_Data_*.csv.gz"),
        ("usgs_urban_streams/", "usgs_urban_streams/usgs_iv_2019-05.csv.gz"),
        ("sf_fire_calls/", "sf_fire_calls/sf_fire_calls_sample.csv"),
    ],
)
def test_a_shared_folder_without_a_source_is_named_before_any_is_read(
    leave_out: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _shared(tmp_path / "shared", leave_out)
    out = tmp_path / "out"
    assert main(["datasets", "build", "--shared", str(shared), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"citybrain: --shared {str(shared)!r} lacks 1 of the 6 sources the slices are built "
        f"from: {named} (nothing was read or written; "
    ), err
    assert "datasets/README.md lists each source file" in err
    assert not out.exists()


def test_a_folder_of_none_of_them_names_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "build", "--shared", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "lacks 6 of the 6 sources" in err and err.count("\n") == 1
