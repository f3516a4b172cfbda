"""A message about what was given says what was expected, and where it comes from
(t40): a CSV given to `campaign report --input`, replay's multi-sensor file given to
`detect`, `runs list` with no token while a demo ran, `report` with no --prefix."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, EXIT_USAGE, main
from citybrain.demo import DemoFiles
from streams.settings import REPO_ROOT, Settings
from tests.services import free_port

READINGS = "timestamp,sensor_id,kind,value,unit,grid_cell\n"


def test_a_csv_given_as_campaign_records_says_what_the_file_should_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "small.csv"
    small.write_text(READINGS + "2019-05-10T00:00:00Z,s1,water_level,1.0,ft,c1\n")
    argv = ["campaign", "report", "--input", str(small), "--from", "2024-05-26"]
    assert main([*argv, "--to", "2024-05-27"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{small}:1: not a JSON record (Expecting value): --input takes step and audit " in err
    assert "JSON lines" in err and "campaign report --prefix P --export FILE` writes them" in err


def test_replays_readings_file_given_to_detect_says_to_replay_it_or_cut_one_sensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = REPO_ROOT / "datasets" / "usgs_flood_2019-05.csv.gz"
    out = tmp_path / "scores.csv"
    assert main(["detect", "--input", str(source), "--output", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "expected timestamp,value: this is replay's multi-sensor readings format" in err
    assert f"citybrain replay {source}` sends it to the stream worker" in err
    # The command printed to cut one sensor's series out works as typed and detect
    # scores what it writes.
    cut = err.split("cutting its series out: `")[1].split("`")[0]
    subprocess.run(["sh", "-c", cut], cwd=tmp_path, check=True)
    one = next(tmp_path.glob("usgs-*.csv"))
    assert one.read_text().startswith("timestamp,value\n2019-05-06T00:00:00Z,")
    assert main(["detect", "--input", str(one), "--output", str(out)]) == 0


def test_an_incident_file_given_to_detect_says_to_replay_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports.csv"
    reports.write_text("timestamp,report_id,category,text,source,grid_cell\n")
    assert main(["detect", "--input", str(reports), "--output", str(tmp_path / "o.csv")]) == 2
    assert "this is replay's incident-report format" in capsys.readouterr().err


@pytest.fixture
def demo_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DemoFiles:
    """A run directory whose demo worker runs (this process stands in) under demo-1,
    its Kafka answering nothing, no token in the shell."""
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(free_port()))
    monkeypatch.delenv("CITYBRAIN_API_TOKEN", raising=False)
    monkeypatch.delenv("CITYBRAIN_TOPIC_PREFIX", raising=False)
    files = DemoFiles.of(Settings(run_dir_override=tmp_path))
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    files.token.write_text("operator-token-text")
    return files


def test_no_token_names_the_demos_token_file(
    demo_running: DemoFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list"]) != 0
    err = capsys.readouterr().err
    assert f"the demo's operator token is in {demo_running.token}" in err
    export = err.split("`")[1]
    assert export == f'export CITYBRAIN_API_TOKEN="$(cat {shlex.quote(str(demo_running.token))})"'


def test_report_reads_the_running_demos_prefix_by_default_and_says_so(
    demo_running: DemoFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "a.csv"
    data.write_text(READINGS)
    assert main(["report", "--data", str(data), "--out", str(tmp_path / "r.html")]) == (
        EXIT_SERVICE  # no Kafka here: the prefix was chosen and said first
    )
    err = capsys.readouterr().err
    assert err.startswith("(the running demo's prefix demo-1; --prefix reads another)\n")
