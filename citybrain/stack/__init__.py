"""The local stack, started by the project itself: Kafka (KRaft), Prometheus and Mosquitto
(MQTT) on loopback."""

from citybrain.stack.kafka import KafkaBroker
from citybrain.stack.mosquitto import MosquittoBroker
from citybrain.stack.prometheus import PrometheusServer

__all__ = ["KafkaBroker", "MosquittoBroker", "PrometheusServer"]
