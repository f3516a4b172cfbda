"""`citybrain deadletters` reads a prefix's dead-letter topic on the real broker: the
latest --limit across partitions as a table or JSON lines, with the citybrain.error.*
headers; a prefix without the topic is one line naming the prefixes that have one
(trial 8: no documented way to read the topic)."""

from __future__ import annotations

import json
import time

import pytest

from citybrain.cli import EXIT_OK, EXIT_USAGE, main
from citybrain.deadletters import Reader
from tests.services import TEST_PORTS, Pipeline

pytestmark = pytest.mark.integration


def _headers(reason: str, message: str, origin: str) -> list[tuple[str, bytes]]:
    return [
        ("citybrain.error.stream", b"readings"),
        ("citybrain.error.reason", reason.encode()),
        ("citybrain.error.message", message.encode()),
        ("citybrain.error.origin", origin.encode()),
    ]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)


def test_the_latest_dead_letters_are_shown_with_their_headers(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = pipeline.topic("deadletter")
    base_ms = int(time.time() * 1000) - 60_000
    for i, (key, reason) in enumerate(
        [(b"gauge-1", "bad_type"), (b"gauge-2", "out_of_order"), (b"\xff-3", "bad_json")]
    ):
        pipeline.producer.send(
            topic,
            key=key,
            value=b'{"v": 1}' if i < 2 else b"\xff\xfe",
            headers=_headers(
                reason, f'field "value" is {{"v": {i}}}: expected a number', f"x/0/{i}"
            ),
            partition=i % 2,
            # Their own times, a second apart: the order across partitions is by time.
            timestamp_ms=base_ms + 1000 * i,
        )
    pipeline.producer.flush()

    assert main(["deadletters", "--prefix", pipeline.name, "--limit", "2"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{topic}: 2 dead letters (the latest, --limit); ")
    assert lines[1].split() == ["TIME", "STREAM", "REASON", "KEY", "ORIGIN", "MESSAGE"]
    assert [line.split()[3] for line in lines[2:]] == ["out_of_order", "bad_json"]
    assert "\\xff-3" in lines[3]  # a key byte that is not UTF-8, escaped

    assert main(["deadletters", "--prefix", pipeline.name, "--json"]) == EXIT_OK
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["headers"]["reason"] for d in docs] == ["bad_type", "out_of_order", "bad_json"]
    assert docs[0]["key"] == "gauge-1" and docs[0]["value"] == '{"v": 1}'
    assert docs[2]["value_base64"] == "//4=" and "value" not in docs[2]

    # What --follow shows after them: each new one, as it comes.
    with Reader(pipeline.settings, topic) as reader:
        assert len(reader.latest(10)) == 3
        pipeline.producer.send(
            topic, key=b"gauge-9", value=b"{}", headers=_headers("too_old", "m", "x/1/9")
        )
        pipeline.producer.flush()
        # (A bound so a broken follow fails rather than hangs; not a timing assertion.)
        give_up = time.monotonic() + 60
        new = next(reader.new(lambda: time.monotonic() > give_up), None)
    assert new is not None
    assert (new.key, new.headers["reason"]) == (b"gauge-9", "too_old")


def test_a_prefix_without_a_dead_letter_topic_is_named(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deadletters", "--prefix", "no-such-prefix"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "has no topic no-such-prefix.deadletter (a worker creates it as it starts)" in err
    assert pipeline.name in err or "the latest 8" in err
    assert err.startswith("citybrain: --prefix 'no-such-prefix': Kafka at ")


def test_a_prefix_from_the_setting_is_named_as_the_setting(
    pipeline: Pipeline,
    env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trial 17: with no --prefix typed, the error said "--prefix 'citybrain'"."""
    monkeypatch.setenv("CITYBRAIN_TOPIC_PREFIX", "no-such-setting")
    assert main(["deadletters"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: CITYBRAIN_TOPIC_PREFIX=no-such-setting: Kafka at ")
    assert "has no topic no-such-setting.deadletter" in err


def test_a_misspelt_sensor_is_dead_lettered_and_shown_with_the_registered_one(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer's typo in a sensor id: `deadletters` said "sensor is not registered"
    with no "did you mean"."""
    from streams.events import Reading

    worker = pipeline.worker().start()
    try:
        typo = Reading(time.time() - 60, "guage-1", "water_level", 1.0, "ft", "c-bridge")
        pipeline.send("readings", b"guage-1", typo.to_json())
        pipeline.flush()
        [dead] = pipeline.read("deadletter", lambda m: len(m) >= 1, settle=1)
    finally:
        worker.stop()
    message = dict(dead.headers)["citybrain.error.message"].decode()
    assert message.endswith("sensor is not registered (did you mean 'gauge-1'?)"), message
    assert main(["deadletters", "--prefix", pipeline.name]) == EXIT_OK
    assert "(did you mean 'gauge-1'?)" in capsys.readouterr().out


def test_a_prefix_near_one_with_a_dead_letter_topic_is_answered_with_it(
    pipeline: Pipeline, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.producer.send(
        pipeline.topic("deadletter"), key=b"k", value=b"{}", headers=_headers("x", "m", "o")
    )
    pipeline.producer.flush()
    assert main(["deadletters", "--prefix", pipeline.name[:-1]]) == EXIT_USAGE
    assert f"(did you mean {pipeline.name!r}?)" in capsys.readouterr().err
