"""Table cells measured in terminal columns, not characters (trial 8: CJK and emoji
matchers misaligned `silences list`)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from citybrain.cli.base import _local, _zone
from citybrain.cli.runs import runs_table
from citybrain.cli.silences import silences_table
from citybrain.text import cell, display_width, pad, zone


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("abc", 3),
        ("東京", 4),
        ("🔥", 2),
        ("e\u0301", 1),  # e and a combining acute accent
        ("👩\u200d🚒", 4),  # two emoji joined: each counted, the joiner not
        ("ＡＢ", 4),  # fullwidth
    ],
)
def test_display_width_counts_terminal_columns(text: str, columns: int) -> None:
    assert display_width(text) == columns
    assert display_width(pad(text, 10)) == 10


def test_a_control_character_in_a_cell_is_shown_escaped() -> None:
    assert cell("line one\nline\ttwo") == "line one\\nline\\ttwo"
    assert cell("東京") == "東京"


def test_escape_sequences_and_bidirectional_controls_in_a_cell_are_shown_escaped() -> None:
    """Trial 29: a note "\u202egnirts" was shown reversed (Trojan Source), and U+2028
    broke a table row on some terminals; ESC and C1 controls were already escaped."""
    assert cell("ack \x1b[2J\x9b") == "ack \\x1b[2J\\x9b"
    assert cell("ok \u202edeniped\u202c") == "ok \\u202edeniped\\u202c"
    assert cell("a\u2066b\u2069\u2028c\u200f") == "a\\u2066b\\u2069\\u2028c\\u200f"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joiners kept: one emoji
    assert cell(family) == family


def test_a_lone_surrogate_in_a_cell_is_shown_escaped() -> None:
    """t169: JSON's "\\ud800" read into a record is no character; printed raw it stopped
    the command with UnicodeEncodeError (exit 70, "a bug"). Fails on the old code."""
    assert cell("po\ud800lice \udcff") == "po\\ud800lice \\udcff"
    cell("po\ud800lice").encode("utf-8")


def _columns(line: str, header: str, name: str) -> int:
    """The display column at which the column ``name`` starts in ``line`` (found in the
    header line, whose characters are all one column wide)."""
    start = header.index(name)
    taken, out = 0, 0
    for i, c in enumerate(line):
        if taken >= start:
            return i
        taken += display_width(c)
        out = i
    return out + 1


def test_silences_with_wide_matchers_keep_their_columns_aligned() -> None:
    now = time.time()
    silences = [
        {
            "id": "s1",
            "matchers": ['cell="東京-駅前"'],
            "starts_at": now - 60,
            "ends_at": now + 60,
            "author": "ana",
            "reason": "🔥 drill",
        },
        {
            "id": "s2",
            "matchers": ['cell="c-top"'],
            "starts_at": now - 60,
            "ends_at": now + 60,
            "author": "bo",
            "reason": "works\non two lines",
        },
    ]
    lines = silences_table(silences, now).splitlines()
    assert len(lines) == 3  # the newline in a reason did not break its row
    header = lines[0]
    for name in ("STARTS", "BY", "REASON"):
        at = [display_width(line[: _columns(line, header, name)]) for line in lines]
        assert at == [header.index(name)] * 3, name


def test_runs_with_wide_cell_names_keep_their_columns_aligned() -> None:
    now = time.time()
    run = {
        "run_id": "r.1",
        "playbook": "p",
        "grid_cell": "c-1",
        "level": "street",
        "status": "running",
        "created_at": now - 5,
    }
    runs = [run, {**run, "run_id": "r.2", "grid_cell": "c-2"}]
    lines = runs_table(runs, {"c-1": "東京駅", "c-2": "main"}, now).splitlines()
    header = lines[0]
    at = [display_width(line[: _columns(line, header, "LEVEL")]) for line in lines]
    assert at == [header.index("LEVEL")] * 3


def test_a_zone_named_utc_but_off_utc_is_shown_by_its_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Trial 20: TZ=UTC+5 (POSIX: a zone called "UTC", five hours behind) printed
    # "2026-12-02 08:08:08 UTC" beside a header saying UTC-0500.
    at = datetime(2026, 12, 2, 8, 8, tzinfo=timezone(timedelta(hours=-5), "UTC"))
    assert zone(at) == "UTC-0500"
    assert zone(at.replace(tzinfo=timezone(timedelta(hours=2), "GMT"))) == "UTC+0200"
    assert zone(at.replace(tzinfo=timezone(timedelta(0), "UTC"))) == "UTC"
    assert zone(at.replace(tzinfo=timezone(timedelta(hours=1), "CET"))) == "CET"
    monkeypatch.setenv("TZ", "UTC+5")
    time.tzset()
    try:
        assert _local(1_764_666_488) == "2025-12-02 04:08:08 UTC-0500"
        assert _zone() == "UTC-0500"
        monkeypatch.setenv("TZ", "Asia/Kolkata")
        time.tzset()
        assert _local(1_764_666_488) == "2025-12-02 14:38:08 IST"
        assert _zone() == "IST, UTC+0530"
        # A zone the C library cannot read is UTC, and was labelled with TZ's first
        # letters: "2025-12-02 09:08:08 Bogus".
        for unknown in ("Bogus/Zone", "Mars", "America/Nowhere"):
            monkeypatch.setenv("TZ", unknown)
            time.tzset()
            assert _local(1_764_666_488) == "2025-12-02 09:08:08 UTC", unknown
            assert _zone() == "UTC, UTC+0000", unknown  # as under TZ=UTC
        for known in ("Europe/London", "GMT0", "<+00>0", "UTC"):
            monkeypatch.setenv("TZ", known)
            time.tzset()
            assert (
                _local(1_764_666_488)
                == "2025-12-02 09:08:08 "
                + {"Europe/London": "GMT", "GMT0": "GMT", "<+00>0": "+00", "UTC": "UTC"}[known]
            ), known
    finally:
        monkeypatch.undo()
        time.tzset()
