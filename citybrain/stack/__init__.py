"""The local stack, started by the project itself: Kafka (KRaft) and Prometheus on loopback."""

from citybrain.stack.kafka import KafkaBroker
from citybrain.stack.prometheus import PrometheusServer

__all__ = ["KafkaBroker", "PrometheusServer"]
