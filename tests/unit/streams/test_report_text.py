"""A citizen report's id, category and text as the field sends them (t109): blank, padded,
with control or invisible characters. Each was accepted by the worker and replayed by
``citybrain replay``: ``" r1 "`` and ``"r1"`` (or ``"r1"`` with a zero-width space) were two
reports that look one, a NUL or a terminal escape reached every log and reply, and a
blank description gave the classifier and the reply nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from playbooks.grid import Grid
from streams.csvfile import BadRow
from streams.errors import EventError
from streams.events import EventValidator
from streams.feeds import load_events
from tests.unit.streams.test_events import NOW, incident

BAD = [
    ({"report_id": "  "}, "report_id", "blank (white space only)"),
    ({"report_id": " r-1 "}, "report_id", "white space around it"),
    (
        {"report_id": "r\x00-1"},
        "report_id",
        "holds a control character (U+0000) at character 2: expected printable text",
    ),
    ({"report_id": "r-1\n"}, "report_id", "white space around it"),
    ({"report_id": "r\u200b-1"}, "report_id", "(U+200B, ZERO WIDTH SPACE) at character 2"),
    ({"category": "\t"}, "category", "blank (white space only)"),
    ({"category": "Noise\u2028"}, "category", "white space around it"),
    ({"category": "No\u00adise"}, "category", "(U+00AD, SOFT HYPHEN) at character 3"),
    ({"text": ""}, "text", "blank: expected a description"),
    ({"text": " \n\t "}, "text", "blank: expected a description"),
    ({"text": "water\x1b[2J"}, "text", "a control character (U+001B) at character 6"),
    ({"text": "water\x00"}, "text", "a control character (U+0000) at character 6"),
    ({"text": "water\x85"}, "text", "a control character (U+0085) at character 6"),
]


@pytest.mark.parametrize(("over", "field", "says"), BAD)
def test_the_worker_refuses_it_naming_the_field_and_value(
    grid: Grid, over: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(EventError) as info:
        EventValidator(grid).incident(json.dumps(incident(**over)).encode(), NOW)
    assert (info.value.code, info.value.field, info.value.value) == ("bad_type", field, over[field])
    assert says in info.value.reason and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "over",
    [
        {"text": "line one\nline two\r\n\tindented"},
        {"text": "مياه تحت الجسر \u200f"},  # a right-to-left mark in Arabic text is text
        {"text": "👩\u200d🚒 on site"},  # a zero-width joiner inside an emoji
        {"category": "Noise - Street/Sidewalk", "report_id": "nyc311-61272876"},
    ],
)
def test_text_as_people_write_it_still_reads(grid: Grid, over: dict[str, Any]) -> None:
    report = EventValidator(grid).incident(json.dumps(incident(**over)).encode(), NOW)
    assert report.text == over.get("text", report.text)


def test_replay_refuses_the_row_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2024-05-27T03:10:10Z,r1,Noise,loud music,app,c1\n"
        "2024-05-27T03:10:11Z, r2 ,Noise,loud music,app,c1\n"
        "2024-05-27T03:10:12Z,r3,Noise,   ,app,c1\n"
        '2024-05-27T03:10:13Z,r4,Noise,"a\x07b",app,c1\n'
        "2024-05-27T03:10:14Z,r5,Noise,fine,app,c1\n",
        encoding="utf-8",
    )
    bad: list[BadRow] = []
    events = load_events([path], on_error="skip", bad_rows=bad)
    assert [e.report_id for e in events] == ["r1", "r5"]  # type: ignore[union-attr]
    assert [b.line for b in bad] == [3, 4, 5]
    assert "report_id" in bad[0].reason and "' r2 '" in bad[0].reason
    assert "blank" in bad[1].reason and "U+0007" in bad[2].reason


def test_replay_refuses_a_source_the_worker_refuses_naming_it(tmp_path: Path) -> None:
    """t147: a row of source `web` (or `app|hotline`) was "sent 1 incident", exit 0, and
    the worker dead-lettered it (`unknown_source`): the replay checks it as the worker
    does, with the worker's words."""
    path = tmp_path / "reports.csv"
    path.write_text(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2024-05-27T03:10:10Z,r1,Noise,loud music,web,c1\n"
        "2024-05-27T03:10:11Z,r2,Noise,loud music,app|hotline,c1\n"
        "2024-05-27T03:10:12Z,r3,Noise,loud music,hotline,c1\n",
        encoding="utf-8",
    )
    bad: list[BadRow] = []
    events = load_events([path], on_error="skip", bad_rows=bad)
    assert [e.report_id for e in events] == ["r3"]  # type: ignore[union-attr]
    assert [b.line for b in bad] == [2, 3]
    assert bad[0].reason == (
        "field \"source\" is 'web': expected one of app, emergency, hotline, inspector"
    )
    assert bad[1].reason.endswith("(one choice, not a list: give 'app' or 'hotline')")
