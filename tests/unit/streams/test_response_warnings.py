"""Failed webhook calls reach the worker's log: one WARNING per URL a minute at most,
naming the URL and the reason, the held-back ones counted on the next line (trial 5: a
closure webhook at a closed port failed five times with nothing in the log)."""

from __future__ import annotations

import logging

import pytest

from streams.logs import SayEvery
from streams.response import log


def test_one_warning_per_url_a_minute_and_the_held_ones_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    warn = SayEvery(log, seconds=60.0, clock=lambda: now[0], prefix="citybrain: warning: ")
    with caplog.at_level(logging.WARNING, logger="streams.response"):
        assert warn("http://a", "call to http://a failed: connection refused")
        now[0] = 10.0
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert warn("http://b", "call to http://b failed: HTTP 500")  # its own URL
        now[0] = 61.0
        assert warn("http://a", "call to http://a failed: timed out")
    assert [r.getMessage() for r in caplog.records] == [
        "citybrain: warning: call to http://a failed: connection refused",
        "citybrain: warning: call to http://b failed: HTTP 500",
        "citybrain: warning: call to http://a failed: timed out (2 more warnings since the "
        "last such line, not logged)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize("at", [float("nan"), float("inf"), -1, 0, True, "1790000000", None])
def test_a_commands_odd_time_falls_back_to_the_messages_time(at: object) -> None:
    from types import SimpleNamespace

    from streams.response import message_time

    event = SimpleNamespace(message=SimpleNamespace(timestamp=1_700_000_000.0))
    assert message_time(at, event, 1_800_000_000.0) == 1_700_000_000.0


def test_a_commands_time_is_never_later_than_now() -> None:
    from streams.response import message_time

    assert message_time(1_900_000_000, None, 1_800_000_000.0) == 1_800_000_000.0
    # Trial 19: math.isfinite() of an "at" of 400 digits raised OverflowError (a traceback
    # and processing_error for the command).
    assert message_time(int("9" * 400), None, 1_800_000_000.0) == 1_800_000_000.0
    assert message_time(1_700_000_000, None, 1_800_000_000.0) == 1_700_000_000.0


@pytest.mark.parametrize(
    ("cmd", "said"),
    [
        ([], "expected a JSON object"),
        ({"run_id": "g.1", "action": "ack"}, 'field "id" is missing'),
        ({"id": "c", "run_id": 5, "action": "ack"}, 'field "run_id" is 5: expected a non-empty'),
        (
            {"id": "c", "run_id": "g.1", "action": ""},
            "field \"action\" is '': expected a non-empty",
        ),
        ({"id": "c", "run_id": "g.1", "action": "x", "command_id": 1}, 'field "command_id" is 1'),
        # Trial 26: str() of these was kept (an actor "5", a note "['a']"), and bool() of
        # an ok "false" read a failed webhook call as a success.
        ({"id": "c", "run_id": "g.1", "action": "ack", "by": 5}, 'field "by" is 5'),
        ({"id": "c", "run_id": "g.1", "action": "ack", "note": ["a"]}, 'field "note" is'),
        ({"id": "c", "run_id": "g.1", "action": "approve", "role": {}}, 'field "role" is'),
        (
            {"id": "c", "run_id": "g.1", "action": "action_result", "ok": "false"},
            "field \"ok\" is 'false': expected true or false",
        ),
        ({"id": "c", "run_id": "g.1", "action": "action_result"}, 'field "ok" is missing'),
    ],
)
def test_a_command_whose_fields_are_not_text_is_refused_naming_the_field(
    cmd: object, said: str
) -> None:
    from streams.errors import EventError
    from streams.response import command_fields

    with pytest.raises(EventError) as caught:
        command_fields(cmd)
    assert caught.value.code == "bad_command" and said in str(caught.value)
