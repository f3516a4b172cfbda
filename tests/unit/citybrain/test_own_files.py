"""Helper brief t72, fault 2: `citybrain replay datasets/grid.yaml` said only that the
grid's first line was no CSV header; a checkout file given to the wrong command or
setting is now named for what it is, with what takes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, main
from streams.inputs import CHECKOUT, own_file_role


def _own_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "datasets", "playbooks/library", "dashboards"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if "/provisioning/" not in name]


@pytest.mark.parametrize("name", _own_files())
def test_every_shipped_file_is_known_for_what_it_is(name: str) -> None:
    assert own_file_role(CHECKOUT / name) is not None, name


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["replay", "datasets/grid.yaml"], "is the grid definition"),
        (["replay", "playbooks/library/routing.yaml"], "is the routing tree"),
        (["demo", "--data", "playbooks/library/playbooks/flash-flood.yaml"], "is a playbook"),
        (["demo", "--grid", "datasets/service_times/units-nyc.yaml"], "is a units profile"),
        (
            ["playbooks", "check", "--grid", "datasets/usgs_flood_2019-05.csv.gz"],
            "is a replay feed",
        ),
        (
            [
                "detect",
                "--input",
                "dashboards/generated/dashboards/citybrain-response.json",
                "--output",
                "/nonexistent/x.csv",
            ],
            "is a generated Grafana dashboard",
        ),
    ],
)
def test_a_checkout_file_given_to_the_wrong_command_is_named(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CHECKOUT)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "it is for `" in err, err


def test_the_grid_as_replay_file_names_the_option_that_takes_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CHECKOUT)
    assert main(["replay", "datasets/grid.yaml"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "not a reading or incident CSV" in err
    assert "`--grid` of demo" in err and "CITYBRAIN_GRID_FILE" in err


def test_a_setting_naming_the_wrong_checkout_file_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(CHECKOUT)
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", "datasets/usgs_flood_2019-05.csv.gz")
    assert main(["playbooks", "check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "CITYBRAIN_GRID_FILE is 'datasets/usgs_flood_2019-05.csv.gz': a replay feed" in err


def test_the_right_file_passes() -> None:
    assert main(["playbooks", "check", "--grid", str(CHECKOUT / "datasets/grid.yaml")]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["playbooks", "check", "datasets/grid.yaml"],
        [
            "dashboards",
            "push",
            "--url",
            "http://x",
            "--token",
            "t",
            "--generated",
            "datasets/grid.yaml",
        ],
    ],
)
def test_a_checkout_file_given_for_a_directory_is_named(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CHECKOUT)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "is a file, expected a directory: it is the grid definition" in err, err
    assert "CITYBRAIN_GRID_FILE" in err


@pytest.mark.parametrize("name", _own_files())
def test_what_takes_a_checkout_file_reads_as_a_sentence(name: str) -> None:
    """t76: `detect --input datasets/README.md` said "it is for no command reads it",
    and the classifier's data "it is for `citybrain datasets build` writes it"."""
    from streams.inputs import mistaken

    said = mistaken(CHECKOUT / name, ["expect"])  # no shipped file is an expect list
    assert said.startswith(" is "), (name, said)
    assert "it is for no command" not in said and " writes it;" not in said, (name, said)


def test_the_readme_and_the_classifier_data_given_to_detect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, said in (
        ("datasets/README.md", "is documentation, not a timestamp,value CSV: no command reads it"),
        (
            "datasets/incident_departments.csv.gz",
            "is the department classifier's training data, not a timestamp,value CSV: it is "
            "for the worker's department classifier, which reads it itself (`citybrain "
            "datasets build` writes it); no command takes it as input",
        ),
    ):
        assert main(["detect", "--input", name, "--output", "/tmp/never.csv"]) == EXIT_USAGE
        assert capsys.readouterr().err == f"citybrain: --input {name!r} {said}\n"


def test_detect_input_dir_names_the_classifier_data_it_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t76: `detect --input-dir datasets --on-error skip` skipped the classifier's
    training data saying only its header, not what the file is."""
    out = tmp_path / "out"
    argv = ["detect", "--input-dir", str(CHECKOUT / "datasets"), "--output-dir", str(out)]
    assert main([*argv, "--on-error", "skip"]) == EXIT_USAGE
    assert (
        "incident_departments.csv.gz:1: header is 'text,department,source', expected "
        "timestamp,value: this is the department classifier's training data, no series to "
        "score\n"
    ) in capsys.readouterr().err
