"""YAML numbers PyYAML reads otherwise than a person, or cannot show, through the commands
that read them (t190; the loader's rule in tests/unit/playbooks/test_yaml_numbers.py):
a units profile's ``busy`` of 400 digits was an OverflowError (exit 70), ``units: 010``
eight units and ``busy: 1:30`` 90 seconds, both rehearsed without a word; a playbook's
``version: 0xfff…`` of 5,000 digits an unexpected ValueError (exit 70) from ``playbooks
check``. Each now a usage error (exit 2) or a failed check (exit 1) at the file's line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE
from citybrain.cli.base import EXIT_FAILED
from playbooks.loader import LIBRARY, PLAYBOOK_DIR
from tests.unit.citybrain.test_cli_errors import run_in_process

REPO = Path(__file__).resolve().parents[3]
SERVICE_TIMES = REPO / "datasets" / "service_times"
INCIDENTS = str(REPO / "datasets" / "nyc311_2024-05-26.csv.gz")
HOUSING = "housing: {units: 20, capacity: 1, no_answer: 0.1, shifts: [[0, 24]], response: TRUCK, "


@pytest.mark.parametrize(
    ("written", "says"),
    [
        (
            HOUSING + "resolve: others, busy: " + "9" * 400 + "}",
            ":11: the number '999",
        ),
        (
            HOUSING.replace("units: 20", "units: 010") + "resolve: others}",
            ":11: '010' is the number 8",
        ),
        (HOUSING + "resolve: others, busy: 1:30}", ":11: '1:30' is the number 90"),
    ],
    ids=["busy of 400 digits", "units 010", "busy 1:30"],
)
def test_a_units_profile_number_yaml_reads_otherwise_is_a_usage_error(
    tmp_path: Path, written: str, says: str
) -> None:
    for profile in SERVICE_TIMES.iterdir():
        shutil.copy(profile, tmp_path / profile.name)
    units = tmp_path / "units-nyc.yaml"
    lines = units.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[10].startswith("  housing: ")
    lines[10] = f"  {written}\n"
    units.write_text("".join(lines), encoding="utf-8")
    argv = ["rehearse", "--incidents", INCIDENTS, "--units", str(units)]
    argv += ["--out", str(tmp_path / "out.html")]
    proc = run_in_process(argv, {})
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert f"--units {units}{says}" in proc.stderr, proc.stderr
    assert not (tmp_path / "out.html").exists()


def test_playbooks_check_says_a_huge_hexadecimal_version_at_its_line(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOK_DIR, playbooks)
    gas = playbooks / "gas-leak.yaml"
    text = gas.read_text(encoding="utf-8")
    gas.write_text(text.replace("version: 1", "version: 0x" + "f" * 5000, 1), encoding="utf-8")
    argv = ["playbooks", "check", str(playbooks), "--routing", str(LIBRARY / "routing.yaml")]
    proc = run_in_process(argv, {})
    assert proc.returncode == EXIT_FAILED, proc.stderr
    assert f"{gas}:4: the number '0xfff" in proc.stderr, proc.stderr
    assert "(5,002 characters) is too large" in proc.stderr
    assert "unexpected" not in proc.stderr


def test_an_expected_event_s_sensor_prefix_written_in_octal_is_refused(tmp_path: Path) -> None:
    # `sensor_prefix: 01646` (a USGS site's first digits) was the prefix "934": the demo
    # counted the real event missed, whatever fired at site 01646….
    from citybrain.demo import load_expected

    expect = tmp_path / "expect.yaml"
    expect.write_text(
        "- {name: flood, sensor_prefix: 01646, start: '2019-05-10T00:00:00Z', "
        "end: '2019-05-11T00:00:00Z'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"expect\.yaml:1: '01646' is the number 934 "):
        load_expected(expect)
