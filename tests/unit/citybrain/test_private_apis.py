"""The private parts of mode-streaming and kafka-python that citybrain's stop paths use
(cmd_worker's signal handlers, citybrain.ingest.publisher.abandon_sends): an upgrade
that moves them fails here first, not in a stuck shutdown."""

from __future__ import annotations

from importlib.metadata import version

import mode
from kafka.producer.kafka import KafkaProducer
from kafka.producer.sender import Sender


def test_mode_worker_signal_handlers_are_where_cmd_worker_overrides_them() -> None:
    assert version("mode-streaming") == "0.7.1"
    for name in ("_on_sigint", "_on_sigterm", "_schedule_shutdown"):
        assert callable(getattr(mode.Worker, name))


def test_kafka_python_sender_can_be_force_closed() -> None:
    assert version("kafka-python") == "3.0.12"
    assert callable(Sender.force_close)
    assert "_sender" in KafkaProducer.__init__.__code__.co_names
