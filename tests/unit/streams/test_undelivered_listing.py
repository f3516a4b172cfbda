"""t89's open finding: `runs list` shows a group's latest run only, so the undelivered
closures of its earlier (superseded) runs were neither counted nor named there (the
gauge and `runs show OLD` had them). The list now carries them per group
(``closures_undelivered_earlier``) and its hint names those runs."""

from __future__ import annotations

from typing import Any

from citybrain.cli.runs import undelivered_hint
from streams.api import shown_run
from streams.replies import with_undelivered


def group_with(*run_ids: str) -> dict[str, Any]:
    group: dict[str, Any] = {"run": {"run_id": "g.3", "status": "open"}}
    for i, run_id in enumerate(run_ids):
        reply = {"reply_id": f"r{i}", "report_id": f"rep-{i}", "channel": "app", "run_id": run_id}
        group = with_undelivered(group, reply, "HTTP 503", 1_800_000_000.0 + i)
    return group


def test_the_list_carries_the_earlier_runs_undelivered_closures() -> None:
    group = group_with("g.1", "g.1", "g.3")
    listed = shown_run(group, group["run"], listed=True)
    assert [c["report_id"] for c in listed["closures_undelivered"]] == ["rep-2"]
    assert listed["closures_undelivered_earlier"] == {"g.1": 2}
    # `runs show` of one run is about that run only.
    assert "closures_undelivered_earlier" not in shown_run(group, group["run"])


def test_a_run_with_nothing_undelivered_is_shown_as_stored() -> None:
    group = group_with()
    assert shown_run(group, group["run"], listed=True) is group["run"]


def test_the_hint_counts_and_names_the_superseded_runs_too() -> None:
    group = group_with("g.1", "g.1")  # only the superseded run g.1's
    listed = shown_run(group, group["run"], listed=True)
    hint = undelivered_hint([listed])
    assert hint is not None
    assert hint.startswith("2 closures to citizens not delivered"), hint
    assert "of run g.1 (superseded): re-send with `" in hint and "runs resend RUN_ID`" in hint
