"""``citybrain replay`` refuses limits it cannot keep before it reads or connects."""

from __future__ import annotations

import pytest

from citybrain.cli import main
from tests.services import FIXTURES

CASES = FIXTURES / "field-cases"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pack", "20000"], "argument --pack: '20000': expected 1..10000"),
        (["--pack", "0"], "argument --pack: '0': expected 1..10000"),
        (["--skip", "-1"], "argument --skip: '-1': expected 0 or more"),
        (
            ["--max-message-bytes", "100"],
            "argument --max-message-bytes: '100': expected 1024..2147483647",
        ),
    ],
)
def test_replay_refuses_impossible_limits_up_front(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Said as argparse says a malformed value (a newcomer found `--pack 0` said without
    # the command's name or its --help, unlike `--speed 0`).
    assert main(["replay", str(CASES / "stray-quote-incidents.csv"), "--max", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: replay: {message}; see `"), err
    assert err.endswith(" replay --help`\n"), err


def test_the_replay_bar_counts_with_thousands_separators() -> None:
    """Issue 15: the bar said "15/11520 events" under "11,520 events"."""
    from rich.progress import Progress, TextColumn

    from citybrain.cli.feeds import PROGRESS_COUNT

    progress = Progress(disable=True)
    task = progress.add_task("replay", total=11520)
    progress.update(task, completed=1234)
    shown = TextColumn(PROGRESS_COUNT).render(progress.tasks[0])
    assert str(shown) == "1,234/11,520"


def test_an_unregistered_id_is_shown_in_its_first_80_characters() -> None:
    """Three 120,000-character sensor ids made a 360 KB warning line."""
    from citybrain.cli.feeds import unregistered_note
    from streams.events import Reading

    grid = FIXTURES / "grid-ingest.yaml"
    long_ids = [Reading(0.0, c * 120_000, "water_level", 1.0, "ft", "c-mill") for c in "abc"]
    said = unregistered_note(long_ids, grid, "p1")
    assert "'" + "a" * 76 + "..., 'bbb" in said and len(said) < 1000, len(said)


def test_a_replay_of_unregistered_sensors_warns_naming_the_closest_registered_ones() -> None:
    """A newcomer's typo (``water_levl``) was "sent 1 reading", exit 0: only
    ``deadletters`` later said ``unknown_sensor``, with no "did you mean". A cell the
    grid lacks likewise (t48), and the deadletters command printed is the replay's
    prefix's (t48: a bare one read the running demo's)."""
    from citybrain.cli.feeds import unregistered_note
    from streams.events import IncidentReport, Reading

    grid = FIXTURES / "grid-ingest.yaml"
    known = Reading(0.0, "gauge-1", "water_level", 1.0, "ft", "c-bridge")
    typo = Reading(0.0, "guage-2", "water_level", 1.0, "ft", "c-mill")
    assert unregistered_note([known], grid, "p1") == ""
    said = unregistered_note([known, typo, typo], grid, "p1")
    assert said.startswith(
        "2 rows named a sensor that grid-ingest.yaml (CITYBRAIN_GRID_FILE) does not have, "
        "dead-lettered as unknown_sensor: 'guage-2' (did you mean 'gauge-2'?) (by a worker "
        "reading prefix 'p1', which raises no alert on them: `CITYBRAIN_TOPIC_PREFIX=p1 "
    ) and said.endswith(" deadletters`)"), said
    others = [Reading(0.0, f"zz-{i}", "water_level", 1.0, "ft", "c-mill") for i in range(4)]
    said = unregistered_note([typo, *others], grid, "p1")
    assert said.startswith("5 rows named ") and (
        "'guage-2' (did you mean 'gauge-2'?), 'zz-0', 'zz-1' and 2 more (by a worker" in said
    )
    incident = IncidentReport(0.0, "r-1", "flooding", "water", "311", "c-mill")
    assert unregistered_note([incident], grid, "p1") == ""
    lost = IncidentReport(0.0, "r-2", "flooding", "water", "311", "c-mil")
    cell = Reading(0.0, "gauge-1", "water_level", 1.0, "ft", "c-bridg")
    said = unregistered_note([lost, cell, typo], grid, "p1")
    assert said.startswith(
        "1 row named a sensor that grid-ingest.yaml (CITYBRAIN_GRID_FILE) does not have, "
        "dead-lettered as unknown_sensor: 'guage-2' (did you mean 'gauge-2'?); 2 rows named "
        "a cell that grid-ingest.yaml (CITYBRAIN_GRID_FILE) does not have, dead-lettered as "
        "unknown_cell: 'c-mil' (did you mean 'c-mill'?), 'c-bridg' (did you mean 'c-bridge'?)"
    ), said
