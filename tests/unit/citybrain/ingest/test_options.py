"""Bad ingest options are usage errors naming the option, before any connection."""

from __future__ import annotations

import io
import logging

import pytest

from citybrain.cli import main
from streams.logs import LostLines


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        # Before: "unexpected TopicPatternError ... This is a bug" (exit 70).
        (["mqtt", "--topic", "city/+/{sensor_id}"], "--topic: topic pattern 'city/+/{sensor_id}'"),
        (["mqtt", "--topic", "city/#"], "level 2 is '#'"),
        (["mqtt", "--topic", "city//{sensor_id}/{kind}"], "level 2 is ''"),
        # Before: a ValueError after connecting to Kafka.
        (["mqtt", "--inflight", "0"], "--inflight: '0': expected 1..65535"),
        (["mqtt", "--inflight", "70000"], "--inflight: '70000': expected 1..65535"),
        (["mqtt", "--pack-size", "0"], "--pack-size: '0': expected 1..10000"),
        (["mqtt", "--pack-size", "20000"], "--pack-size: '20000': expected 1..10000"),
        (["mqtt", "--pack-size", "100", "--max-pending", "10"], "--max-pending is 10"),
        (["http", "--sensor-id-template", "{id}"], "a template with {kind}"),
        (["http", "--sensor-id-template", "{id-{kind}"], "--sensor-id-template"),
        # Helper t52: each passed, and then every reading was an internal dead letter
        # (AttributeError, IndexError) or built a 100 MB sensor id.
        (["http", "--sensor-id-template", "{id.real}-{kind}"], "index: not '{id.real}'"),
        (["http", "--sensor-id-template", "{id[0]}-{kind}"], "index: not '{id[0]}'"),
        (["http", "--sensor-id-template", "{id:>100000000}-{kind}"], "not '{id:>100000000}'"),
        (["http", "--sensor-id-template", "{id!r}-{kind}"], "not '{id!r}'"),
        (["http", "--sensor-id-template", "{0}-{kind}"], "not '{0}'"),
        (["http", "--sensor-id-template", "{}-{kind}"], "not '{}'"),
        # inf killed the publisher thread (OverflowError in its wait) after start-up.
        (["mqtt", "--pack-ms", "inf"], "--pack-ms: 'inf': expected more than 0 and at most 60,000"),
        (["http", "--pack-ms", "1e20"], "--pack-ms: '1e20': expected more than 0 and at most"),
        (["mqtt", "--max-payload", "0"], "--max-payload: '0': expected more than 0"),
        (["http", "--max-body", "-5"], "--max-body: '-5': expected more than 0"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and "This is a bug" not in err


def test_the_ingest_log_says_the_lines_a_full_disk_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t184: the ingest's log handlers count what they could not write and say it once
    they can (streams.logs.LostLines), as the worker's do."""
    handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    assert main(["ingest", "mqtt", "--pack-size", "100", "--max-pending", "10"]) == 2
    assert isinstance(handler.emit.__self__, LostLines)  # type: ignore[attr-defined]
