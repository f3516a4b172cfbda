"""streams.logs.RepeatFilter: aiokafka's retry lines while Kafka is down (trial 10: about
4,400 lines in 40 s) become one line per kind a minute, with a count."""

from __future__ import annotations

import logging

from streams.logs import RepeatFilter


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_kafka_line_passes_once_a_minute_with_the_count_held() -> None:
    now = [0.0]
    f = RepeatFilter(seconds=60.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = []
    for second in range(0, 150):
        now[0] = float(second)
        record = _record("aiokafka.conn", template, 1, "Connect call failed")
        if f.filter(record):
            passed.append((second, record.getMessage()))
    assert [s for s, _ in passed] == [0, 60, 120]
    assert passed[0][1] == "Unable connect to node with id 1: Connect call failed"
    assert passed[1][1].endswith("(59 more like it in the last 60 s, not logged)")
    assert passed[2][1].endswith("(59 more like it in the last 60 s, not logged)")


def test_each_kind_of_line_is_counted_apart_and_other_loggers_pass() -> None:
    f = RepeatFilter(seconds=60.0, clock=lambda: 0.0)
    assert f.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 1))
    assert f.filter(_record("aiokafka.cluster", "Unable to update metadata from %s", [1]))
    assert f.filter(_record("aiokafka", "Failed fetch messages from %s", 1))
    assert not f.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 2))
    assert not f.filter(_record("aiokafka", "Failed fetch messages from %s", 1))
    # citybrain's own lines and other libraries' are never held back.
    for _ in range(3):
        assert f.filter(_record("streams.ingest", "citybrain: warning: %s", "x"))
        assert f.filter(_record("aiokafkaish", "not a child of aiokafka"))
