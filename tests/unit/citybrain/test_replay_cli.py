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


# t143: every reading the worker refuses by the grid, one case each, and the one it takes.
GRID_CASES = [
    (("gauge-1", "water_level", 0.7, "m", "c-bridge"), "bad_unit", "'m' for water_level"),
    (("gauge-1", "water_levl", 1.0, "ft", "c-bridge"), "unknown_kind", "'water_levl'"),
    (("gauge-1", "water_level", 5000.0, "ft", "c-bridge"), "out_of_range", "5000 ft for"),
    (("gauge-1", "water_level", 1.0, "ft", "c-mill"), "registration_mismatch", "'gauge-1'"),
    (("guage-1", "water_level", 1.0, "ft", "c-bridge"), "unknown_sensor", "'guage-1'"),
    (("gauge-1", "water_level", 1.0, "ft", "c-bridg"), "unknown_cell", "'c-bridg'"),
    (("gauge-1", "water_level", 1.0, "ft", "c-bridge"), None, ""),
]


@pytest.mark.parametrize(("fields", "reason", "case"), GRID_CASES)
def test_a_replay_warns_of_every_reading_the_worker_refuses_by_the_grid(
    fields: tuple[str, str, float, str, str], reason: str | None, case: str
) -> None:
    """A row in metres for a gauge the grid measures in feet was "sent 1 reading", exit
    0, and no word after: the worker dead-lettered it (``bad_unit``), and likewise a kind
    the grid lacks, a value out of its range or a sensor sent as another kind or cell;
    only an unknown sensor or cell was warned of. The warning names the reason the
    worker's own validator gives the same reading."""
    import json

    from citybrain.cli.feeds import unregistered_note
    from playbooks.loader import load_grid
    from streams.events import EventError, EventValidator, Reading

    grid = FIXTURES / "grid-ingest.yaml"
    sensor_id, kind, value, unit, cell = fields
    reading = Reading(1_704_067_200.0, sensor_id, kind, value, unit, cell)
    doc = dict(zip(("sensor_id", "kind", "value", "unit", "grid_cell"), fields, strict=True))
    raw = json.dumps({"schema": "reading/1", "ts": "2024-01-01T00:00:00Z", **doc}).encode()
    try:
        EventValidator(load_grid(grid)).reading(raw, 1_704_067_200.0)
        worker = None
    except EventError as exc:
        worker = exc.code
    assert worker == reason
    said = unregistered_note([reading], grid, "p1")
    if reason is None:
        assert said == ""
    else:
        assert said.startswith("1 row ") and f", dead-lettered as {reason}: {case}" in said, said


def test_out_of_range_rows_of_one_kind_are_one_case_shown_once() -> None:
    """A file whose gauge reads in the wrong range throughout is one case, its first
    row shown: the case was the row's value, so every row kept (and wrote out, with a
    search of the grid for the nearest id) a line of its own until the note."""
    from citybrain.cli.feeds import Unregistered
    from streams.events import Reading

    tally = Unregistered(FIXTURES / "grid-ingest.yaml")
    for i in range(1_000):
        tally.add(
            Reading(1_704_067_200.0 + i, "gauge-1", "water_level", 5000.0 + i, "ft", "c-bridge")
        )
    assert len(tally.ids["out_of_range"]) == 1
    said = tally.note("p1")
    assert said.startswith("1,000 rows gave a value outside its kind's plausible range"), said
    assert ": 5000 ft for water_level (plausible in" in said and " more" not in said, said


@pytest.mark.parametrize("terminal", [False, True])
def test_the_replay_bar_is_drawn_at_a_terminal_only(terminal: bool) -> None:
    """t143: a replay into a pipe or a log printed the plain lines, then the bar's last
    frame (``replay ━━━━ 1,410/11,520 events 0:00:16 eta 0:02:02``) when it stopped."""
    import io

    from rich.console import Console

    from citybrain.cli.feeds import replay_bar

    out = io.StringIO()
    with replay_bar(Console(file=out, force_terminal=terminal, width=100)) as progress:
        task = progress.add_task("replay", total=11_520)
        progress.advance(task, 1_410)
    assert ("1,410/11,520" in out.getvalue()) is terminal, out.getvalue()


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("2.4 ft", " (a number with its unit? send 2.4 alone, the unit in its own field)"),
        ("35ug/m3", " (a number with its unit? send 35 alone, the unit in its own field)"),
        ("12 °C", " (a number with its unit? send 12 alone, the unit in its own field)"),
        ("1e5x", ""),  # an exponent's e is no unit
        ("abc", ""),
    ],
)
def test_a_value_written_with_its_unit_is_said_as_one(
    value: str,
    hint: str,
    tmp_path: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t143: a row whose value was `2.4 ft`, as a gauge's display shows it, got
    "expected a number in decimal notation" alone; the worker's check of a reading's
    JSON (MQTT, HTTP) says it the same way."""
    import json
    from pathlib import Path

    from playbooks.loader import load_grid
    from streams.events import EventError, EventValidator

    csv = Path(str(tmp_path)) / "r.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        f'2024-01-01T00:00:00Z,gauge-1,water_level,"{value}",ft,c-bridge\n',
        encoding="utf-8",
    )
    assert main(["replay", str(csv), "--max"]) == 2
    err = capsys.readouterr().err
    assert f'field "value" is {value!r}, expected a number in decimal notation' in err, err
    said = err.split("1e-3)", 1)[1]
    assert said.startswith(hint + ";") if hint else said.startswith(";"), err
    doc = {
        "schema": "reading/1",
        "ts": "2024-01-01T00:00:00Z",
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "value": value,
        "unit": "ft",
        "grid_cell": "c-bridge",
    }
    grid = load_grid(FIXTURES / "grid-ingest.yaml")
    with pytest.raises(EventError) as caught:
        EventValidator(grid).reading(json.dumps(doc).encode(), 1_704_067_200.0)
    assert caught.value.reason == f"expected a number{hint}"


def test_the_replay_bar_is_not_drawn_in_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """t164: under TERM=dumb rich draws a bar only once, when it stops: the replay said
    nothing until its end, then printed the bar's last frame. There the plain lines are
    printed instead, and no bar (fails on the old code: the last frame was printed)."""
    import io

    from rich.console import Console

    from citybrain.cli.feeds import replay_bar
    from citybrain.text import draws_live

    monkeypatch.setenv("TERM", "dumb")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    assert console.is_terminal and not draws_live(console)
    with replay_bar(console) as progress:
        task = progress.add_task("replay", total=11_520)
        progress.advance(task, 1_410)
    assert out.getvalue() == ""
