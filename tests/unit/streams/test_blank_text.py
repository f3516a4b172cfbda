"""Text that must say something (a report's description, a resolve's or cancel's note, a
silence's reason and author) is blank when it shows nothing: only white space, invisible
format characters (a zero-width space, U+FEFF, a direction mark) or fillers that render
empty (t137). ``str.strip`` removed white space only, so a report whose text was one
zero-width space reached the classifier and the reporter's closure as a description, and
a silence whose reason was one was "not blank"."""

from __future__ import annotations

import time

import pytest

from playbooks.encodings import blank
from playbooks.errors import SilenceError
from playbooks.grid import Grid
from playbooks.routing import new_silence
from streams.errors import EventError
from streams.events import EventValidator, IncidentReport

SHOW_NOTHING = ["\u200b", "\ufeff", "\u200d\u200c", " \u2060 ", "\u200e\u200f", "\u3164", "\u2800"]


@pytest.mark.parametrize("text", ["", " ", "\n\t", "\u3000", *SHOW_NOTHING])
def test_text_that_shows_nothing_is_blank(text: str) -> None:
    assert blank(text)


@pytest.mark.parametrize("text", ["x", "\u200bx", "水", "👍", "\u00e9", "e\u0301", "-"])
def test_text_that_shows_something_is_not(text: str) -> None:
    assert not blank(text)


@pytest.mark.parametrize("text", SHOW_NOTHING)
def test_a_report_whose_text_shows_nothing_is_refused_naming_it(grid: Grid, text: str) -> None:
    now = time.time()
    cell = next(iter(grid.cells))
    raw = IncidentReport(now - 60, "r-1", "Noise", text, "app", cell).to_json()
    with pytest.raises(EventError) as refused:
        EventValidator(grid).incident(raw, now)
    assert (refused.value.code, refused.value.field) == ("bad_type", "text")
    assert "blank: expected a description of what was reported" in str(refused.value)


@pytest.mark.parametrize("text", SHOW_NOTHING)
def test_a_silence_whose_reason_or_author_shows_nothing_is_refused(text: str) -> None:
    with pytest.raises(SilenceError, match="a silence needs a reason"):
        new_silence("s", ['kind="pm25"'], 0.0, 1.0, "ana", text)
    with pytest.raises(SilenceError, match="a silence needs an author"):
        new_silence("s", ['kind="pm25"'], 0.0, 1.0, text, "works")
