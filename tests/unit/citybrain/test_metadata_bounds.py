"""t90: kafka-python's metadata calls (``KafkaConsumer.topics()``,
``partitions_for_topic()``, the admin client's ``list_topics()``) take no timeout: on a
broker frozen after the reader bootstrapped they waited two request timeouts (60 s at
kafka-python 3.0.12's defaults) and raised ``RequestTimedOutError``, which the CLI
called a bug (exit 70). ``kafka_read.bounded`` waits at most its timeout and says which
Kafka did not answer, what was asked and what to do."""

from __future__ import annotations

import threading

import aiokafka.errors
import kafka.errors
import pytest
from kafka.errors import KafkaConnectionError, RequestTimedOutError

from citybrain.cli import EXIT_SERVICE
from citybrain.cli.main import _describe
from citybrain.errors import KafkaStoppedError
from citybrain.kafka_read import bounded
from streams.settings import Settings

SETTINGS = Settings(kafka_port=29999)


def test_a_call_that_never_returns_ends_at_the_bound_naming_kafka_and_the_question() -> None:
    never = threading.Event()  # a resolver/broker that never answers: nothing sets it

    def hangs() -> set[str]:
        never.wait()
        return set()

    try:
        with pytest.raises(KafkaStoppedError) as caught:
            bounded(SETTINGS, "listing its topics", hangs, timeout=0.2)
    finally:
        never.set()  # let the helper thread end
    message = str(caught.value)
    assert message.startswith(
        "Kafka at 127.0.0.1:29999 took the connection but did not answer within 0.2 s "
        "while listing its topics"
    )
    assert "`citybrain stack status`" in message
    assert _describe(caught.value) == (EXIT_SERVICE, message)


def test_kafka_pythons_own_request_timeout_is_said_the_same_way() -> None:
    def times_out() -> None:
        raise RequestTimedOutError("Request timed out after 9999 ms")

    with pytest.raises(KafkaStoppedError, match="did not answer within 3 s while listing"):
        bounded(SETTINGS, "listing the partitions of t", times_out, timeout=3)


def test_a_result_and_any_other_error_pass_through() -> None:
    assert bounded(SETTINGS, "x", lambda: {"a"}) == {"a"}

    def refused() -> None:
        raise KafkaConnectionError("111 ECONNREFUSED")

    with pytest.raises(KafkaConnectionError):
        bounded(SETTINGS, "x", refused)


def test_the_boundary_says_a_bare_request_timeout_is_kafka_not_answering() -> None:
    # Any kafka-python call past its request timeout on a frozen broker (describe_topics,
    # create_topics, ...) ended as "unexpected RequestTimedOutError ... This is a bug".
    status, message = _describe(RequestTimedOutError("Request timed out after 30000 ms"))
    assert status == EXIT_SERVICE
    assert message.startswith("no Kafka broker answered at ")
    assert "bug" not in message


@pytest.mark.parametrize(
    "exc",
    [
        kafka.errors.MetadataEmptyBrokerList("ClusterMetadata(brokers: 0)"),
        kafka.errors.LeaderNotAvailableError(),
        kafka.errors.CoordinatorLoadInProgressError(),
        aiokafka.errors.MetadataEmptyBrokerList("ClusterMetadata(brokers: 0)"),
        aiokafka.errors.NotControllerError(),
    ],
    ids=lambda exc: f"{type(exc).__module__.split('.')[0]}-{type(exc).__name__}",
)
def test_an_error_either_client_calls_retriable_is_kafka_not_ready_never_a_bug(
    exc: Exception,
) -> None:
    """t215: `deadletters` right after a frozen broker thawed met kafka-python's
    MetadataEmptyBrokerList and said "unexpected MetadataEmptyBrokerList … This is a
    bug", exit 70: a broker not ready yet is a service's state, said in one line."""
    status, message = _describe(exc)
    assert status == EXIT_SERVICE
    assert message.startswith("Kafka at ") and "was not ready (" in message, message
    assert "bug" not in message and "\n" not in message
