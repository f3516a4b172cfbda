"""Failed webhook calls reach the worker's log: one WARNING per URL a minute at most,
naming the URL and the reason, the held-back ones counted on the next line (trial 5: a
closure webhook at a closed port failed five times with nothing in the log)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from streams.logs import SayEvery
from streams.response import log


def test_one_warning_per_url_a_minute_and_the_held_ones_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    warn = SayEvery(log, seconds=60.0, clock=lambda: now[0], prefix="citybrain: ")
    with caplog.at_level(logging.WARNING, logger="streams.response"):
        assert warn("http://a", "call to http://a failed: connection refused")
        now[0] = 10.0
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert not warn("http://a", "call to http://a failed: connection refused")
        assert warn("http://b", "call to http://b failed: HTTP 500")  # its own URL
        now[0] = 61.0
        assert warn("http://a", "call to http://a failed: timed out")
    assert [r.getMessage() for r in caplog.records] == [
        "citybrain: call to http://a failed: connection refused",
        "citybrain: call to http://b failed: HTTP 500",
        "citybrain: call to http://a failed: timed out (2 more warnings since the "
        "last such line, not logged)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    "at", [float("nan"), float("inf"), -1, 0, True, "1790000000", None, 1, 1e-9, 631_151_999]
)
def test_a_commands_odd_time_falls_back_to_the_messages_time(at: object) -> None:
    from types import SimpleNamespace

    from streams.response import message_time

    event = SimpleNamespace(message=SimpleNamespace(timestamp=1_700_000_000.0))
    assert message_time(at, event, 1_800_000_000.0) == 1_700_000_000.0


@pytest.mark.parametrize("timestamp", [0.0, 0.001, -1.0, 631_151_999.0])
def test_a_kafka_timestamp_before_1990_is_no_clock_s_and_now_is_taken(timestamp: float) -> None:
    # A producer's CreateTime of 0 or 1 ms stamped an acknowledgement 1970-01-01: every
    # deadline of the run after it was long past, and it climbed its ladder at once.
    from types import SimpleNamespace

    from streams.response import message_time

    event = SimpleNamespace(message=SimpleNamespace(timestamp=timestamp))
    assert message_time(None, event, 1_800_000_000.0) == 1_800_000_000.0


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
        # An escalate from a level no run escalates from (t110's from_level).
        *(
            (
                {"id": "c", "run_id": "g.1", "action": "escalate", "from_level": level},
                f'field "from_level" is {shown}: expected one of community, street, district',
            )
            for level, shown in (("city", "'city'"), (["street"], '["street"]'), (2, "2"))
        ),
        # Read silently before: 1 (or 1e-9) as 1970-01-01, a string or NaN as the
        # message's time, whatever the operator API had stamped.
        *(
            ({"id": "c", "run_id": "g.1", "action": "ack", "at": at}, f'field "at" is {shown}')
            for at, shown in (
                (1, "1: expected epoch seconds from 1990 on"),
                (1e-9, "1e-09"),
                (-1_790_000_000, "-1790000000"),
                (float("nan"), "nan"),
                ("1790000000", "'1790000000'"),
                (True, "true"),
                ([1_790_000_000], "[1790000000]"),
            )
        ),
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


@pytest.mark.parametrize("at", [None, 1_790_000_000, 1_790_000_000.5, 1.79e12, int("9" * 400)])
def test_a_commands_time_from_1990_on_or_null_is_taken(at: object) -> None:
    # Milliseconds (1.79e12) or a time past now are read as now by ``message_time``.
    from streams.response import command_fields

    cmd = {"id": "c", "run_id": "g.1", "action": "ack", "at": at}
    assert command_fields(cmd) is cmd


def test_a_command_stamped_before_its_run_was_created_is_taken_at_the_creation() -> None:
    # t114: a run created on a worker whose clock was ahead (or before this one's clock
    # stepped back) got an ack stamped before its creation: acknowledged_at before
    # created_at, a negative time to acknowledge in the campaign report.
    from streams.response import message_time

    created = 1_800_000_100.0
    assert message_time(1_800_000_000, None, 1_800_000_050.0, floor=created) == created
    assert message_time(1_800_000_200, None, 1_800_000_300.0, floor=created) == 1_800_000_200
    assert message_time(None, None, 1_800_000_000.0, floor=created) == created


def test_a_closure_given_up_is_logged_under_its_failed_attempts_to_the_same_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Helper t119, on a real stack: a replies webhook answering 500 (then timing out)
    failed 15 attempts and gave up 10 closures within a minute, and the worker's log said
    only `failed (attempt 1, …)`: the give-ups, which an operator must act on
    (`runs resend`), shared the attempts' one line per URL a minute and were held back.
    That line also named `citybrain_webhook_calls_total{outcome="failed"}`, which counts
    calls given up, not attempts. Now a give-up has its own line, and the attempt's names
    `citybrain_webhook_failed_attempts_total`."""
    from tests.unit.streams.test_covered_once import sending_response

    response, _ = sending_response(tmp_path)
    url = "http://127.0.0.1:9/replies"
    response.settings.replies_webhook_url = url  # type: ignore[assignment]

    async def scenario() -> None:
        for attempt in (1, 2, 3):
            await response.on_webhook_attempt("g.1:4", url, attempt, "HTTP 500")
        for report in ("r-1", "r-2"):
            cmd = {"command_id": f"g.1:{report}", "detail": "HTTP 500 after 3 attempt(s)"}
            response._given_up("g.1", {**cmd, "id": f"g.1:{report}:result"}, {"report_id": report})

    with caplog.at_level(logging.WARNING, logger="streams.response"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "streams.response"]
    lines = [line for line in lines if "CITYBRAIN_WEBHOOK_SECRET" not in line]
    assert lines == [
        f"citybrain: closure (reply) webhook call to {url} failed (attempt 1, run g.1): "
        "HTTP 500; audited as webhook_attempt_failed, counted in "
        "citybrain_webhook_failed_attempts_total",
        f"citybrain: closure (reply) webhook to {url} for report r-1 given up: HTTP 500 "
        "after 3 attempt(s) (the replies topic has it); audited as reply_webhook_failed",
    ]


def test_a_webhook_calls_audit_records_name_its_run_alert_receiver_and_attempt(
    tmp_path: Path,
) -> None:
    """t173 (fails on the old code): ``webhook_attempt_failed`` and
    ``webhook_called_again`` carried the run's id alone, so an operator could not follow
    one notification: which delivery, for which alert, to which receiver, which attempt."""
    from playbooks.engine import Run
    from tests.unit.streams.test_covered_once import sending_response

    response, _ = sending_response(tmp_path)
    audited: list[dict[str, object]] = []

    async def audit(record: dict[str, object]) -> None:
        audited.append(record)

    response.ctx.audit = audit  # type: ignore[method-assign]
    response.webhooks.submit = lambda *args: True  # type: ignore[method-assign]
    url = "http://Receiver.example:8080/hook?x=1"
    run = Run("grp-1.1", "al-7", "flash-flood", "c1", "flood", "water")

    async def scenario() -> None:
        await response._call_again(run, "grp-1.1:3", url)
        await response.on_webhook_attempt("grp-1.1:3", url, 2, "HTTP 500")
        closure = {"reply_id": "grp-1.1:4", "report_id": "r-9", "alert_id": "al-7"}
        await response._reply_again("grp-1.1", closure)

    response.settings.replies_webhook_url = url  # type: ignore[assignment]
    asyncio.run(scenario())
    ids = {
        "run_id": "grp-1.1",
        "alert_id": "al-7",
        "receiver": "http://receiver.example:8080",
    }
    called, attempt, reply = audited
    assert called["action"] == "webhook_called_again"
    assert called.items() >= {**ids, "command_id": "grp-1.1:3"}.items(), called
    assert attempt["action"] == "webhook_attempt_failed"
    assert attempt.items() >= {**ids, "command_id": "grp-1.1:3", "attempt": 2}.items()
    assert reply["action"] == "webhook_called_again"
    assert reply.items() >= {**ids, "command_id": "grp-1.1:4", "report_id": "r-9"}.items()


def test_a_closure_given_up_names_its_call_as_its_attempts_do(tmp_path: Path) -> None:
    """t173, a sibling (fails on the old code): ``reply_webhook_failed`` named its call
    only inside ``detail``."""
    from tests.unit.streams.test_covered_once import sending_response

    response, _ = sending_response(tmp_path)
    url = "https://replies.example/in"
    response.settings.replies_webhook_url = url  # type: ignore[assignment]
    cmd = {"id": "g.1:5:result", "command_id": "g.1:5", "detail": "HTTP 500"}
    record = response._given_up("g.1", cmd, {"report_id": "r-1", "alert_id": "al-1"})
    assert (
        record.items()
        >= {
            "command_id": "g.1:5",
            "run_id": "g.1",
            "alert_id": "al-1",
            "report_id": "r-1",
            "receiver": "https://replies.example:443",
        }.items()
    )


def test_a_failed_annotation_names_its_annotation_and_grafana(tmp_path: Path) -> None:
    """t173, a sibling (fails on the old code): ``annotation_failed`` named the run alone."""
    from tests.unit.streams.test_covered_once import sending_response

    response, _ = sending_response(tmp_path)
    ctx = response.ctx
    audited: list[dict[str, object]] = []

    async def audit(record: dict[str, object]) -> None:
        audited.append(record)

    ctx.audit = audit  # type: ignore[method-assign]
    ctx.settings.grafana_url = "http://grafana.example:3000/"  # type: ignore[assignment]
    asyncio.run(ctx.on_annotation_error("grp-1.1:5", "HTTP 500"))
    [record] = audited
    assert (
        record.items()
        >= {
            "action": "annotation_failed",
            "run_id": "grp-1.1",
            "annotation_id": "grp-1.1:5",
            "receiver": "http://grafana.example:3000",
        }.items()
    )
