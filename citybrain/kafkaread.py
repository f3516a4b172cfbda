"""Reading a topic to its end with kafka-python without waiting for ever on a broker
that went away part-way.

kafka-python's ``poll`` answers "no message" alike when a partition holds nothing more
to read and when the broker stopped or froze (a SIGSTOPped broker still takes TCP
connections and answers nothing): a reader counting on the end offsets it asked for
first waited for ever (``citybrain deadletters``, helper t85), and one giving up after
a quiet spell returned part of a topic as if it were all (``report``, ``campaign
report``, the demo's summary). So a quiet spell is settled by asking Kafka anew, on a
fresh connection, with a bounded wait.
"""

from __future__ import annotations

from streams.settings import Settings

# Seconds without a message, while partitions are left to read, before Kafka is asked
# whether it still answers (a live broker hands over what is left well within this).
IDLE_SECONDS = 3.0
# How long that question may take: a frozen broker accepts the connection, never answers.
PROBE_SECONDS = 5.0


def kafka_answers(settings: Settings, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a broker of ``settings.kafka_bootstrap`` answers a metadata request on a
    new connection within ``timeout`` seconds (False when stopped, frozen or refusing)."""
    from kafka import KafkaConsumer

    millis = max(1, int(timeout * 1000))
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=millis,
            request_timeout_ms=millis,
            **settings.kafka_python_options(),
        )
    except Exception:  # any failure to bootstrap is "does not answer"
        return False
    # Its bootstrap, bounded by the timeout, fetched the cluster's metadata: it answered.
    consumer.close()
    return True


def stopped_message(settings: Settings, what: str, left: int) -> str:
    """The one line for a read that Kafka stopped answering part-way."""
    return (
        f"Kafka at {settings.kafka_bootstrap} stopped answering while {what} "
        f"({left} partition{'s' if left != 1 else ''} not read to the end); "
        "nothing of it was shown or written: start Kafka again (`citybrain stack status` "
        "says whether it runs) and retry"
    )
