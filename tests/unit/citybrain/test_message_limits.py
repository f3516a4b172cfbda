"""check_message_limits: topics citybrain writes that take smaller messages than it
writes are refused by name, with what they take, what they must take and the command
that raises them (the broker-level case: tests/integration/test_topic_limits.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.stack.topics import (
    KAFKA_DEFAULT_MESSAGE_BYTES,
    MessageLimitError,
    check_message_limits,
)
from streams.events import MAX_MESSAGE_BYTES, WRITTEN_MESSAGE_BYTES, fit_dead_letter


def test_topics_taking_what_citybrain_writes_pass() -> None:
    check_message_limits(
        {"p.alerts": KAFKA_DEFAULT_MESSAGE_BYTES, "p.audit": WRITTEN_MESSAGE_BYTES},
        "127.0.0.1:9092",
        "the worker",
    )
    check_message_limits({}, "127.0.0.1:9092", "the worker")


def test_a_topic_taking_less_is_named_with_its_limit_the_bound_and_the_command() -> None:
    with pytest.raises(MessageLimitError) as err:
        check_message_limits(
            {"p.deadletter": 200_000, "p.alerts": 2_000_000, "p.audit": 1_000_000},
            "127.0.0.1:9092",
            "the worker",
        )
    text = str(err.value)
    lines = text.splitlines()
    assert lines[0] == (
        "topic p.audit takes messages of at most 1,000,000 bytes (its max.message.bytes, "
        "or the broker's message.max.bytes)"
    )
    assert lines[1].startswith("topic p.deadletter takes messages of at most 200,000 bytes")
    assert "p.alerts" not in text
    assert "the worker writes messages of up to 1,004,096 bytes to them" in text
    assert (
        "kafka-configs.sh --bootstrap-server 127.0.0.1:9092 --alter --entity-type topics "
        "--entity-name p.audit --add-config max.message.bytes=1048588"
    ) in text


def test_the_bound_holds_the_largest_dead_letter_with_its_framing() -> None:
    # A dead letter is cut to MAX_MESSAGE_BYTES with its key and headers, leaving the
    # framing the bound adds: what a topic must take covers it.
    key, value, headers = fit_dead_letter(
        b"{" * 5_000_000, b"k" * 100_000, [("citybrain.error.reason", b"bad_json")]
    )
    size = len(key or b"") + len(value) + sum(len(k) + len(v or b"") for k, v in headers)
    assert size <= MAX_MESSAGE_BYTES < WRITTEN_MESSAGE_BYTES <= KAFKA_DEFAULT_MESSAGE_BYTES


def test_a_topic_not_made_yet_is_named_with_the_brokers_limit_and_its_command() -> None:
    """t204: a topic not made yet was left out; the broker makes it with its own
    message.max.bytes, which the command raises (a topic's config cannot be set on a
    topic that is not there)."""
    with pytest.raises(MessageLimitError) as err:
        check_message_limits(
            {"p.readings": 500_000}, "127.0.0.1:9092", "the ingest", unmade={"p.readings"}
        )
    text = str(err.value)
    assert text.splitlines()[0] == (
        "topic p.readings is not made yet, and the broker makes a topic to take messages of "
        "at most 500,000 bytes (its message.max.bytes)"
    )
    assert text.endswith(
        "kafka-configs.sh --bootstrap-server 127.0.0.1:9092 --alter --entity-type brokers "
        "--entity-default --add-config message.max.bytes=1048588"
    )


def test_the_command_for_the_local_stack_runs_its_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209: the refusal told a newcomer on the local stack to run `kafka-configs.sh`,
    which its download (Kafka's jars, not its bin/ scripts) does not have: not found, as
    typed. On the local stack it is now the class run with the stack's jars, as
    docs/operations.md runs it; a remote Kafka keeps the script's name. Fails on the old
    code (no ``Settings.kafka_tool``)."""
    import subprocess

    from citybrain.stack.kafka import KafkaBroker
    from streams.settings import Settings

    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path))
    settings = Settings()
    libs = KafkaBroker(settings).libs
    cls = "kafka.admin.ConfigCommand"
    # Nothing downloaded here: the script of a Kafka installation.
    assert settings.kafka_tool("kafka-configs.sh", cls) == "kafka-configs.sh"
    libs.mkdir(parents=True)
    tool = settings.kafka_tool("kafka-configs.sh", cls)
    assert tool == f"java -cp '{libs}/*' kafka.admin.ConfigCommand"
    with pytest.raises(MessageLimitError) as err:
        check_message_limits({"p.deadletter": 200_000}, "127.0.0.1:19092", "the worker", tool=tool)
    command = str(err.value).split("Kafka's default: ", 1)[1]
    # As typed in a shell: the class path is one word, not expanded by the shell.
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {command}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert words[:4] == ["java", "-cp", f"{libs}/*", "kafka.admin.ConfigCommand"]
    remote = Settings(kafka_host="kafka.city")
    assert remote.kafka_tool("kafka-configs.sh", cls) == "kafka-configs.sh"
