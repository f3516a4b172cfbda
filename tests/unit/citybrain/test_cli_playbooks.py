"""`citybrain playbooks check|route-test` and the worker on bad routing files (issue 12:
zero-repeat-interval), run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.cli import main

ZERO = Path(__file__).resolve().parents[2] / "fixtures" / "field-cases" / "zero-repeat-interval"
EXPECTED = [
    f"{ZERO / 'routing.yaml'}:5: route.group_interval: group_interval cannot be zero (it is '0s')",
    f"{ZERO / 'routing.yaml'}:6: route.repeat_interval: repeat_interval cannot be zero (it is '0s')",
]


def test_check_refuses_zero_intervals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "check", "--routing", str(ZERO / "routing.yaml")]) == 1
    assert capsys.readouterr().err.splitlines() == EXPECTED


def test_the_worker_refuses_to_start_with_them(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CITYBRAIN_ROUTING_FILE": str(ZERO / "routing.yaml"),
        "CITYBRAIN_RUN_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "citybrain: " + EXPECTED[0],
        "  | " + EXPECTED[1],  # the CLI indents a reason's further lines
    ]


@pytest.mark.parametrize(
    ("labels", "playbook"),
    [
        (["kind=water_level", "source=sensor"], "flash-flood"),
        (['kind="water_level"', 'source="sensor"'], "flash-flood"),
        (['source="citizen"', 'category="Gas \\"smell\\""'], "gas-leak"),
        (["kind=pm25"], "sensor-anomaly"),
    ],
)
def test_route_test_takes_labels_as_amtool(
    capsys: pytest.CaptureFixture[str], labels: list[str], playbook: str
) -> None:
    assert main(["playbooks", "route-test", *labels]) == 0
    assert f"playbook {playbook}," in capsys.readouterr().out


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ('kind=~"water.*"', "=~ is a matcher operator, not a label"),
        ("kind!=x", "!= is a matcher operator, not a label"),
        ("kind", "has no '=': expected name=value"),
        ("kind:water_level", "has no '=': expected name=value"),
        ("=water_level", 'expected name=value or name="quoted value"'),
        ('kind="a"b"', "unescaped double quote"),
        ("colour=red", "unknown label 'colour'"),
    ],
)
def test_route_test_refuses_what_amtool_refuses(
    capsys: pytest.CaptureFixture[str], label: str, message: str
) -> None:
    assert main(["playbooks", "route-test", label]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: label {label!r}") and message in err


@pytest.mark.parametrize(
    "label", ["kind", "kind:x", "=x", 'kind=~"x"', "kind!~x", "kind!=x", "k d=x", 'kind="x']
)
def test_a_refused_label_is_only_shown_forms_route_test_accepts(
    capsys: pytest.CaptureFixture[str], label: str
) -> None:
    """The new-user trial: a bare `kind` was told to write name=~"regex" or name!="value",
    which route-test then refuses. What the message suggests must be a label."""
    assert main(["playbooks", "route-test", label]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    suggestion = err.split("expected", 1)[1] if "expected" in err else ""
    for operator in ("=~", "!=", "!~"):
        assert operator not in suggestion, err
