"""Timestamps in the forms other tools write are told what to send (t174).

A newcomer's own CSV (pandas, a spreadsheet, a Java or e-mail library) or a gateway's
payload was told "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)" for each of
these, and left to find the difference by eye."""

from __future__ import annotations

import pytest

from streams.errors import EventError
from streams.events import parse_ts


@pytest.mark.parametrize(
    ("sent", "told"),
    [
        ("2016-03-01 00:00:00 UTC", "send it as '2016-03-01 00:00:00Z'"),
        ("2016-03-01T00:00:00 GMT", "send it as '2016-03-01T00:00:00Z'"),
        ("2016-03-01 00:00:00 +0800", "send it as '2016-03-01 00:00:00+0800'"),
        ("2016-03-01T00:00:00+08:00[Asia/Shanghai]", "send it as '2016-03-01T00:00:00+08:00'"),
        (
            "Tue, 01 Mar 2016 00:00:00 GMT",
            "an e-mail or HTTP date (RFC 2822) is not taken: send it as ISO 8601, "
            "2016-03-01T00:00:00Z",
        ),
        ("2016/03/01 00:00", "write the date with '-', year first: YYYY-MM-DD"),
        ("13.03.2016 10:00", "a date written day first: write it year first, 2016-03-13"),
        ("3/21/2016 0:00", "a date written month first: write it year first, 2016-03-21"),
        ("01/03/2016 00:00", "(D/M/Y or M/D/Y: which is the month, only the file's writer"),
    ],
)
def test_a_timestamp_in_another_tools_form_is_told_what_to_send(sent: str, told: str) -> None:
    """Fails on the old code: "expected an ISO 8601 timestamp (…)" for each."""
    with pytest.raises(EventError) as info:
        parse_ts(sent)
    assert told in str(info.value)
    suggested = str(info.value).split("send it as ", 1)
    if len(suggested) == 2 and "'" in suggested[1][:1]:
        parse_ts(suggested[1].split("'")[1])  # what it says to send is taken


def test_long_text_is_not_searched_for_forms() -> None:
    """The forms' patterns are for short text: a 100,000-character field is refused at
    once, as before."""
    with pytest.raises(EventError) as info:
        parse_ts("1" * 100_000 + "[Asia/Shanghai]")
    assert "send it as" not in str(info.value)
