"""check_partition_counts: existing topics whose partition count is not CITYBRAIN_PARTITIONS
are refused by name (the broker-level case: tests/integration/test_partition_count.py)."""

from __future__ import annotations

import pytest

from citybrain.stack.topics import PartitionCountError, TopicSpec, check_partition_counts


def described(name: str, partitions: int) -> dict[str, object]:
    return {"name": name, "partitions": [{"partition": i} for i in range(partitions)]}


def test_matching_counts_and_unknown_topics_pass() -> None:
    specs = [TopicSpec("p.readings", 2), TopicSpec("app-__assignor-__leader", 1)]
    check_partition_counts(specs, [described("p.readings", 2), described("other", 7)])
    check_partition_counts(specs, [described("app-__assignor-__leader", 1)])


def test_a_wrong_count_names_the_topic_the_setting_and_how_many_more() -> None:
    specs = [TopicSpec("p.alerts", 4), TopicSpec("p.readings", 4), TopicSpec("p.steps", 4)]
    with pytest.raises(PartitionCountError) as err:
        check_partition_counts(
            specs, [described("p.readings", 2), described("p.alerts", 2), described("p.steps", 4)]
        )
    text = str(err.value)
    assert text.startswith("topic p.alerts has 2 partitions, but it should have 4")
    assert "CITYBRAIN_PARTITIONS is 4" in text and "(so do 1 other topic)" in text
    assert "set CITYBRAIN_PARTITIONS=2" in text
