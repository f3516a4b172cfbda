"""A demo that raised no alert because its worker refused the events says so, with the
reasons (t158's newcomer walk: `demo --data mine.csv` of sensors the grid lacks said
"the detectors found nothing anomalous enough", exit 1, and the summary's "dead letters
1" was the only clue)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from citybrain.demo import _print_summary, refused_said


def _summary(**counts: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "readings": 0,
        "incidents": 0,
        "dead_letters": 0,
        "dead_letter_reasons": {},
        "anomalies": 0,
        "alerts": 0,
        "runs": 0,
        "escalations": 0,
        "prometheus_readings_total": 0,
        "alert_list": [],
        "known_events": [],
    }
    summary.update(counts)
    return summary


def _printed(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    _print_summary(Console(file=out, width=200, color_system=None), summary)
    return " ".join(out.getvalue().split())


def test_a_demo_whose_every_event_was_refused_says_so_with_the_reasons() -> None:
    summary = _summary(dead_letters=3, dead_letter_reasons={"unknown_sensor": 2, "bad_unit": 1})
    said = refused_said(summary)
    assert (
        said
        == "the worker refused every event it was sent (dead letters: bad_unit 1, unknown_sensor 2)"
    )
    printed = _printed(summary)
    assert f"no alert was raised: {said}; the `deadletters` command below says why" in printed
    assert "the detectors found nothing" not in printed


def test_a_demo_of_some_refused_events_says_both() -> None:
    summary = _summary(readings=10, dead_letters=2, dead_letter_reasons={"out_of_range": 2})
    assert (
        refused_said(summary) == "the worker refused 2 of its events (dead letters: out_of_range 2)"
    )
    printed = _printed(summary)
    assert "the detectors found nothing anomalous enough" in printed
    assert "; the worker refused 2 of its events (dead letters: out_of_range 2)" in printed


def test_a_demo_with_no_dead_letter_is_said_as_before() -> None:
    summary = _summary(readings=10)
    assert refused_said(summary) == ""
    assert _printed(summary).endswith(
        "no alert was raised: the detectors found nothing anomalous enough in these files "
        "(or the worker processed none of them; see its log)"
    )
