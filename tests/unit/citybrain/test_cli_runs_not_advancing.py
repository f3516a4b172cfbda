"""What `runs list` and `runs show` say of a run the deadline check leaves as it is (its
playbook gone from the library, its state unreadable, its check failing): before, it
read ``waiting_ack`` with its step overdue and nothing said why nobody was escalated."""

from __future__ import annotations

from citybrain.cli.runs import not_advancing_hint, run_details, runs_table
from streams.api import shown_run
from tests.unit.citybrain.test_cli_runs import NAMES, NOW, RUN

WHY = (
    "its playbook 'flash-flood' is not in the library: restore it and reload the worker "
    "(kill -HUP) or restart it, or resolve or cancel the run"
)
HELD = {"reason": WHY, "since": NOW - 120}


def test_the_api_marks_the_groups_current_run_only() -> None:
    group = {"run": {**RUN, "run_id": "g.2"}}
    shown = shown_run(group, group["run"], listed=True, held=HELD)
    assert shown["not_advancing"] == HELD
    # A superseded run of the group (shown by `runs show g.1`) is not the one held.
    assert "not_advancing" not in shown_run(group, {**RUN, "run_id": "g.1"}, held=HELD)
    assert shown_run(group, group["run"]) is group["run"]  # nothing held: as stored


def test_runs_list_marks_the_run_and_says_how_to_see_why() -> None:
    held = {**RUN, "not_advancing": HELD}
    table = runs_table([held, {**RUN, "run_id": "r-2"}], NAMES, NOW).splitlines()
    assert "NOT ADVANCING" in table[1] and "NOT ADVANCING" not in table[2]
    hint = not_advancing_hint([held, {**RUN, "run_id": "r-2"}])
    assert hint is not None
    assert hint.startswith("1 run NOT ADVANCING (the deadline check leaves it as it is")
    assert f"runs show {RUN['run_id']}" in hint
    two = not_advancing_hint([held, {**held, "run_id": "r-2"}])
    assert two is not None and two.startswith("2 runs NOT ADVANCING") and "as they are" in two
    assert not_advancing_hint([RUN]) is None


def test_runs_show_says_since_when_and_why() -> None:
    lines = run_details({**RUN, "not_advancing": HELD}, NAMES, NOW).splitlines()
    [line] = [ln for ln in lines if ln.startswith("not advancing")]
    assert "(2 min ago)" in line and line.endswith(WHY)
    assert not any(
        ln.startswith("not advancing") for ln in run_details(RUN, NAMES, NOW).splitlines()
    )
    # A reason is whatever an exception said: shown as one line, never driving the terminal.
    odd = {**RUN, "not_advancing": {"reason": "bad\nline\x1b[2J", "since": "x"}}
    [line] = [ln for ln in run_details(odd, NAMES, NOW).splitlines() if "not advancing" in ln]
    assert "\x1b" not in line and line.endswith("bad\\nline\\x1b[2J")
