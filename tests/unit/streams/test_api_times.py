"""Trial 10, findings 4 and 8: a time an API request gives is finite epoch seconds (or ISO
8601) from 2000-01-01 to 100 years ahead, epoch milliseconds are named as such, and a
silence given both ends_at and duration is refused; each a 400 naming the field and value."""

from __future__ import annotations

from typing import Any

import pytest

from streams.api import ApiError, request_time, silence_times

NOW = 1_796_166_193.0  # 2026-12-01
MS = int(NOW * 1000)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            MS,
            f'field "starts_at" is {MS}: that looks like epoch milliseconds; expected epoch '
            "seconds or ISO 8601 (2026-12-01T10:00:00Z)",
        ),
        (1e300, 'field "starts_at" is 1e+300: more than 100 years from now'),
        (10**400, 'field "starts_at" is 1000'),  # an integer beyond a float
        (-1e12, 'field "starts_at" is -1000000000000.0: before 2000-01-01'),
        (0, 'field "starts_at" is 0: before 2000-01-01'),
        # Text as Alertmanager's silences API reads it (t146): what it refuses, said so.
        ("now", "field \"starts_at\" is 'now': expected a time as Alertmanager takes it"),
        ("2026-12-03", "field \"starts_at\" is '2026-12-03': expected a time as Alertmanager"),
        ("2026-12-01t10:00:00Z", "field \"starts_at\" is '2026-12-01t10:00:00Z': a lower-case"),
        ("", "field \"starts_at\" is '': before 2000-01-01"),  # strfmt's 1970-01-01
        # The form, a field out of range: which one (was "expected ... ISO 8601").
        ("2026-02-30T10:00:00Z", "field \"starts_at\" is '2026-02-30T10:00:00Z': day 30 is out"),
        (True, 'field "starts_at" is true: expected epoch seconds'),
        ([1], 'field "starts_at" is [1]: expected epoch seconds'),
    ],
)
def test_a_bad_time_is_a_400_naming_the_field_and_value(value: Any, says: str) -> None:
    with pytest.raises(ApiError) as caught:
        request_time("starts_at", value, NOW)
    assert caught.value.status == 400
    assert caught.value.message.startswith(says), caught.value.message


def test_an_infinite_time_is_refused_as_not_finite() -> None:
    with pytest.raises(ApiError, match=r'field "ends_at" is .*not finite'):
        request_time("ends_at", float("inf"), NOW)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (NOW + 3600, NOW + 3600),
        (int(NOW), NOW),
        ("2026-12-01T10:00:00Z", 1_796_119_200.0),
        ("2026-12-01T11:00:00+01:00", 1_796_119_200.0),
        # As Alertmanager's silences API reads them (t146): no zone is UTC, any offset
        # under 100 hours, its minutes as Go reads them (+00:60 is +01:00).
        ("2026-12-01T10:00:00", 1_796_119_200.0),
        ("2026-12-01 10:00:00", 1_796_119_200.0),
        ("2026-12-01T10:00", 1_796_119_200.0),
        ("2026-12-01T11:00:00+00:60", 1_796_119_200.0),
        ("2026-12-03T09:59:00+47:59", 1_796_119_200.0),
    ],
)
def test_epoch_seconds_and_iso_8601_are_read(value: Any, seconds: float) -> None:
    assert request_time("ends_at", value, NOW) == seconds


def test_ends_at_with_duration_is_refused_not_duration_ignored() -> None:
    with pytest.raises(ApiError) as caught:
        silence_times({"ends_at": NOW + 60, "duration": "2h"}, NOW)
    assert caught.value.status == 400
    assert caught.value.message.startswith("give ends_at or duration, not both")


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"duration": "0s"}, "\"duration\" is '0s', expected more than 0"),
        ({"duration": "200y"}, "\"duration\" is '200y': more than 100 years"),
        ({"duration": 30}, 'field "duration" is 30, expected text'),
        ({"ends_at": MS + 3_600_000}, "that looks like epoch milliseconds"),
        ({"starts_at": MS, "duration": "1h"}, "that looks like epoch milliseconds"),
        # t109: micro- and nanoseconds were "more than 100 years from now"
        ({"ends_at": MS * 1000}, "that looks like epoch microseconds"),
        ({"ends_at": MS * 1_000_000}, "that looks like epoch nanoseconds"),
    ],
)
def test_a_bad_silence_window_is_a_400(doc: dict[str, Any], says: str) -> None:
    with pytest.raises(ApiError) as caught:
        silence_times(doc, NOW)
    assert caught.value.status == 400 and says in caught.value.message, caught.value.message


def test_a_good_silence_window_is_read() -> None:
    assert silence_times({"duration": "1h30m"}, NOW) == (None, None, 5400.0)
    assert silence_times({"starts_at": NOW, "ends_at": "2026-12-02T00:00:00Z"}, NOW) == (
        NOW,
        1_796_169_600.0,
        None,
    )
