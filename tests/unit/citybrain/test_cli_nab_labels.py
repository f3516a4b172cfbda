"""A fault of `bench nab`'s labels file is led by --labels, as every command's named
file is (`--expect x.yaml:1: …`, `--units …`); t158: a labels file that is not UTF-8 was
`l.json:1: byte 0xff is not UTF-8`, its other faults `l.json: …`."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import main


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"a\xff": 1}', ":1: byte 0xff is not UTF-8"),
        (b'{"x/a.csv": [["2024-01-01 00:00:00"]]}', ": 'x/a.csv' window 0 is"),
        (b'{"x/a.csv": [], "x/a.csv": []}', ": key 'x/a.csv' is given twice"),
    ],
)
def test_a_labels_fault_is_led_by_its_option(
    content: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "x").mkdir(parents=True)
    (tmp_path / "data" / "x" / "a.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    labels = tmp_path / "l.json"
    labels.write_bytes(content)
    assert main(["bench", "nab", "--data", str(tmp_path), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: --labels {labels}{says}"), err


def test_a_data_files_fault_is_led_by_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "x").mkdir(parents=True)
    csv = tmp_path / "data" / "x" / "a.csv"
    csv.write_text("timestamp,value\n2024-01-01 00:00:00,abc\n")
    labels = tmp_path / "l.json"
    labels.write_text('{"x/a.csv": []}')
    assert main(["bench", "nab", "--data", str(tmp_path), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: --data {csv}:2: field \"value\" is 'abc'"), err
