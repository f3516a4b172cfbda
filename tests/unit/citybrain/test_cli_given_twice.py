"""A file or value given twice to a command that takes several (t98's newcomer walk).

``replay x.csv x.csv`` sent every event twice, and ``rehearse --ack-deadline 300
--ack-deadline 300`` compared a version with itself, without a word; ``deadletters
--replay 0:0 --replay 0:0`` tried to send one dead letter back twice. Each is refused
before any work, naming the value (a file by its real path: ``x.csv`` and ``./x.csv``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.cli.parser import build_parser
from tests.unit.citybrain.test_cli_errors import leaf_commands

# Many-valued arguments where a repeat is no mistake, or is refused by the command itself.
REPEATS_ALLOWED = {
    # A label twice is refused by route-test itself ("label kind given twice").
    ("playbooks route-test", "labels"),
    # Alertmanager takes a matcher twice as one; nothing is counted or sent twice.
    ("silences add", "matcher"),
    # A filter: a matcher twice keeps the same runs (t200).
    ("runs list", "matcher"),
    # The broker keeps one subscription per pattern: a pattern twice is one subscription.
    ("ingest mqtt", "topic"),
}


def _citybrain(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it from ``cwd``, with no CITYBRAIN_* setting but a Kafka
    port where nothing listens (nothing may be sent: the refusal comes first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env["CITYBRAIN_KAFKA_PORT"] = "1"
    env["CITYBRAIN_RUN_DIR"] = str(cwd / "run")
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *argv],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def readings(tmp_path: Path) -> Path:
    csv = tmp_path / "readings.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-11T00:00:00Z,usgs-01589330-water_level,water_level,1.5,ft,md-gauge-01589330\n"
    )
    return csv


def test_replay_of_one_file_twice_is_refused_before_kafka(readings: Path) -> None:
    done = _citybrain(readings.parent, "replay", "readings.csv", "./readings.csv", "--max")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "citybrain: replay: argument FILE: 'readings.csv' is given twice (also as "
        "'./readings.csv'; each file is sent once; twice would send every event twice); see `"
    ), done.stderr
    assert done.stderr.count("\n") == 1
    assert "Kafka" not in done.stderr


def test_a_link_to_a_file_given_beside_it_is_the_same_file(readings: Path) -> None:
    (readings.parent / "link.csv").symlink_to(readings)
    done = _citybrain(readings.parent, "demo", "--data", "readings.csv", "link.csv")
    assert done.returncode == 2
    assert "argument --data: 'readings.csv' is given twice (also as 'link.csv'" in done.stderr


def test_two_files_are_two(readings: Path) -> None:
    """The refusal is of the same file only: two files get as far as Kafka."""
    other = readings.parent / "other.csv"
    other.write_text(readings.read_text())
    done = _citybrain(readings.parent, "replay", "readings.csv", "other.csv", "--max")
    assert "given twice" not in done.stderr
    assert done.returncode == 3, done.stderr  # no Kafka on port 1


def test_rehearse_refuses_one_deadline_twice(tmp_path: Path) -> None:
    done = _citybrain(
        tmp_path, "rehearse", "--incidents", "i.csv", "--units", "u.yaml",
        "--ack-deadline", "300", "--ack-deadline", "300.0",
    )  # fmt: skip
    assert done.returncode == 2
    assert "argument --ack-deadline: 300 is given twice" in done.stderr


def _many_valued() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    found = []
    for path, parser in leaf_commands(build_parser()):
        for action in parser._actions:
            if action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction):
                found.append((" ".join(path), parser, action))
    return found


MANY = _many_valued()


def test_the_sweep_finds_the_many_valued_arguments() -> None:
    named = {(path, action.dest) for path, _, action in MANY}
    assert {("replay", "files"), ("demo", "data"), ("report", "data")} <= named
    assert {("rehearse", "ack_deadline"), ("deadletters", "replay")} <= named
    assert named >= REPEATS_ALLOWED  # the list names arguments that exist


@pytest.mark.parametrize(
    ("path", "parser", "action"), MANY, ids=[f"{p} {a.dest}" for p, _, a in MANY]
)
def test_every_many_valued_argument_refuses_a_repeat_or_is_listed(
    path: str, parser: argparse.ArgumentParser, action: argparse.Action
) -> None:
    """Siblings: a new many-valued argument either refuses a value given twice or is
    named in REPEATS_ALLOWED with the reason a repeat does no harm."""
    distinct = {dest for dest, *_ in getattr(parser, "distincts", [])}
    assert (action.dest in distinct) != ((path, action.dest) in REPEATS_ALLOWED)
