"""A value checked against a known set is answered with the closest one (t40):
`playbooks route-test kind=water_levl` listed the 14 kinds and no answer; `silences add
--matcher 'kind="pm2.5"'` warned with every kind, not pm25 (still a warning, the silence
still added); `runs show grp-7e895a08be4d839e` (its `.1` left off) got only "check the id
with `runs list`". One function answers: streams.errors.closest."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import playbooks.errors
import streams.errors
from citybrain.cli import main
from playbooks.loader import load_grid
from playbooks.routing import expected_values
from streams.settings import Settings
from tests.unit.citybrain.json_api import json_api
from tests.unit.citybrain.test_cli_silences import GRID

RUN_ID = "grp-7e895a08be4d839e.1"


def test_there_is_one_closest() -> None:
    assert streams.errors.closest is playbooks.errors.closest


def test_route_test_names_the_closest_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "route-test", "kind=water_levl"]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith(
        "(the grid kinds and incident_burst) (did you mean 'water_level'?)"
    )


def test_a_long_list_names_the_closest_too() -> None:
    known = tuple(load_grid(GRID).sensors)
    text = expected_values("sensor_id", known, "usgs-01589330-water_levl")
    assert text.endswith("(did you mean 'usgs-01589330-water_level'?)")
    assert "did you mean" not in expected_values("kind", ("pm25", "no2"), "road_ice")


def _runs(method: str, path: str, body: Any) -> tuple[int, Any]:
    """The operator API's answers: the list of runs, and 404 for any one run."""
    if path == "/api/v1/runs":
        return 200, {"runs": [{"run_id": RUN_ID}, {"run_id": "grp-0000aaaa1111bbbb.2"}]}
    return 404, {"error": "no run"}


@pytest.fixture
def api() -> Iterator[str]:
    with json_api(_runs) as url:
        yield url


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "show", RUN_ID.removesuffix(".1")],
        ["runs", "ack", RUN_ID.removesuffix(".1"), "--note", "on my way"],
    ],
)
def test_an_unknown_run_id_is_answered_with_the_closest_known_one(
    api: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--url", api, "--token", "secret-t"]) == 1
    err = capsys.readouterr().err
    assert f"did you mean {RUN_ID!r}? (`" in err
    command = err.split(f"did you mean {RUN_ID!r}? (`")[1].split("`")[0]
    words = shlex.split(command)
    # The command as given, the id corrected, every option kept, the token never shown.
    assert words[1:] == [argv[0], argv[1], RUN_ID, *argv[3:], "--url", api]
    assert "secret-t" not in err and "with your --token)" in err


def test_an_id_close_to_none_gets_no_guess(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "zzz", "--url", api, "--token", "t"]) == 1
    assert "did you mean" not in capsys.readouterr().err


def test_a_routes_misspelt_playbook_is_answered_with_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routing = Settings().routing_file
    text = routing.read_text().replace("playbook: sensor-failure", "playbook: sensor-failur", 1)
    (tmp_path / "routing.yaml").write_text(text)
    assert main(["playbooks", "check", "--routing", str(tmp_path / "routing.yaml")]) == 1
    err = capsys.readouterr().err
    assert "playbook 'sensor-failur' does not exist" in err
    assert "(did you mean 'sensor-failure'?)" in err
