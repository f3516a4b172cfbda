"""A crashed worker ends with the README's statuses, one line each (helper t85: mode
ended every crash with exit 1, "the answer is no"): 3 when Kafka did not answer, 70 for
anything else, a bug."""

from __future__ import annotations

import aiokafka.errors

from citybrain.cli.base import EXIT_BUG, EXIT_SERVICE
from citybrain.cli.stack import _crashed
from streams.settings import Settings

SETTINGS = Settings(kafka_port=1)


def test_kafka_not_answering_is_3_naming_the_broker() -> None:
    error = _crashed(aiokafka.errors.KafkaConnectionError("refused"), SETTINGS)
    assert error.status == EXIT_SERVICE
    assert error.message.startswith(
        "the worker stopped: Kafka at 127.0.0.1:1 did not answer (KafkaConnectionError: "
    )
    assert "\n" not in error.message


def test_anything_else_is_a_bug_70() -> None:
    error = _crashed(ValueError("boom"), SETTINGS)
    assert error.status == EXIT_BUG
    assert error.message.startswith(
        "the worker crashed: unexpected ValueError: boom. This is a bug"
    )
    assert "\n" not in error.message
