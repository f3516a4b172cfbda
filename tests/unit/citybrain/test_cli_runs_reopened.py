"""What `runs show`, `runs list` and `runs answer` say of reopened and superseded runs
(trial 5, items 8 and 12)."""

from __future__ import annotations

import contextlib
import io
import json

from citybrain.cli import EXIT_SERVICE, EXIT_USAGE, main
from citybrain.cli.api import api_reason
from citybrain.cli.runs import accepted_message, run_details, runs_table, superseded_note
from tests.unit.citybrain.test_cli_runs import NAMES, NOW, RUN


def test_an_answer_to_a_run_already_reopened_says_it_is_only_recorded() -> None:
    """Trial 5: it still said "an unsatisfied answer reopens the run"."""
    doc = {"command": {"id": "c1", "by": "ana"}, "reopens": False}
    said = accepted_message("answer", "r1", doc, satisfied=False)
    assert "only recorded: it does not reopen the run again" in said
    assert "an unsatisfied answer reopens" not in said


def test_a_reopened_run_shows_it_its_answers_and_its_reopenings() -> None:
    """Trial 5: a reopened run read `open`, step `-`, with no count, answer or reopening."""
    note = "report r-7: not satisfied: music again"
    run = {
        **RUN,
        "status": "open",
        "step": None,
        "reopened": 1,
        "reports": {"r-7": {"channel": "app", "status": "reopened"}},
        "actions": [
            {"action": "resolve", "by": "duty-operator", "at": NOW - 90, "note": "warned"},
            {"action": "answer", "by": "desk", "at": NOW - 60, "note": note},
            {"action": "reopen", "by": "desk", "at": NOW - 60, "note": note},
        ],
    }
    lines = run_details(run, NAMES, NOW).splitlines()
    assert "status         open, reopened once" in lines
    assert "reopened       once" in lines
    assert any(ln.startswith("step           - (reopened: waiting to be resolved") for ln in lines)
    assert lines[-2].endswith(f"answer by desk: {note}")
    assert lines[-1].endswith(f"reopen by desk: {note}")
    assert "reopened       no" in run_details(RUN, NAMES, NOW).splitlines()
    assert "open, reopened once" in runs_table([run], NAMES, NOW).splitlines()[1]


def test_a_superseded_run_is_shown_with_where_it_went_and_the_advice_whole() -> None:
    advice = (
        "run g.1 was superseded by run g.2 (a later alert of the same group, noise at c-top, "
        "opened it after g.1 closed); a group keeps only its latest run, so g.1 can no "
        "longer be changed or reopened: relay the reporter's answer as a new report, or "
        "answer run g.2 if it covers the report"
    )
    doc = {"superseded_by": "g.2", "superseded_at": NOW - 30, "note": advice}
    text = superseded_note(doc, NOW)
    assert text.startswith("SUPERSEDED by run g.2 at ") and text.endswith(advice)
    # The 409's advice is shown whole (it was cut at 200 characters, "...").
    long = advice + " " + "x" * 300
    assert api_reason(json.dumps({"error": long}), 409) == long
    assert len(api_reason("<html>" + "y" * 400 + "</html>", 502)) == 200


def test_runs_list_takes_reopened_as_a_status() -> None:
    """Trial 5: `runs list --status reopened` was refused though the docs name it."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["runs", "list", "--status", "reopend"]) == EXIT_USAGE
        assert "reopened" in err.getvalue()
        # Taken: refused only for want of a worker at that address (exit 3).
        args = ["--status", "reopened", "--token", "t", "--url", "http://127.0.0.1:9"]
        assert main(["runs", "list", *args]) == EXIT_SERVICE
