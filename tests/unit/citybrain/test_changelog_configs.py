"""Changelog topic configs (t155): every table's changelog is declared with segments that
close within hours and a tombstone retention, from the settings; an existing topic's
differing configs are found by name (the broker-level case:
tests/integration/test_worker_topics.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from citybrain.stack.topics import TopicSpec, config_changes, faust_topics
from streams.app import create_app
from streams.errors import SettingsError
from streams.settings import load_settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_every_table_s_changelog_is_declared_with_the_configs_of_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", str(FIXTURES / "grid.yaml"))
    monkeypatch.setenv("CITYBRAIN_CHANGELOG_SEGMENT_SECONDS", "1800")
    monkeypatch.setenv("CITYBRAIN_CHANGELOG_SEGMENT_BYTES", str(8 * 2**20))
    monkeypatch.setenv("CITYBRAIN_CHANGELOG_TOMBSTONE_SECONDS", "172800")
    settings = load_settings()
    app = create_app(settings, CollectorRegistry())
    want = {
        "cleanup.policy": "compact",
        "segment.ms": "1800000",
        "segment.bytes": "8388608",
        "min.cleanable.dirty.ratio": "0.5",
        "delete.retention.ms": "172800000",
    }
    tables = list(app.tables.values())
    assert len(tables) >= 8
    for table in tables:
        # What faust declares a missing changelog with, and what its clone (the changelog
        # channel recovery reads) carries.
        assert table.changelog_topic.config == want, table.name
        assert table.changelog_topic.clone().config == want, table.name
    specs = [s for s in faust_topics(app, settings.partitions) if s.name.endswith("-changelog")]
    assert len(specs) == len(tables) and all(s.configs == want for s in specs)


def test_the_defaults_close_a_segment_within_an_hour_and_keep_tombstones_a_day() -> None:
    from streams.settings import changelog_topic_configs

    got = changelog_topic_configs(load_settings())
    assert got["segment.ms"] == "3600000" and got["segment.bytes"] == str(16 * 2**20)
    assert got["delete.retention.ms"] == "86400000"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CITYBRAIN_CHANGELOG_SEGMENT_BYTES", "1000", "expected at least 1,048,576"),
        ("CITYBRAIN_CHANGELOG_SEGMENT_SECONDS", "10", "expected at least 60"),
        # A tombstone kept less than an hour could go before a recovering worker reads it.
        ("CITYBRAIN_CHANGELOG_TOMBSTONE_SECONDS", "60", "expected at least 3600"),
    ],
)
def test_a_setting_no_broker_or_reader_can_use_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert name in text and repr(value) in text and says in text, text


def test_only_the_configs_that_differ_on_existing_topics_are_changes() -> None:
    spec = {"cleanup.policy": "compact", "segment.ms": "3600000"}
    specs = [TopicSpec("a-groups-changelog", 2, spec), TopicSpec("a-muted-changelog", 2, spec)]
    described = {
        "a-groups-changelog": {
            "cleanup.policy": {"value": "compact"},
            "segment.ms": {"value": "604800000"},
        },
        "a-muted-changelog": {
            "cleanup.policy": {"value": "compact"},
            "segment.ms": {"value": "3600000"},
        },
        "other": {"segment.ms": {"value": "1"}},
    }
    assert config_changes(specs, described) == {
        "a-groups-changelog": {"segment.ms": ("604800000", "3600000")}
    }
    # A topic not made yet is not changed here (it is created with its configs).
    assert config_changes(specs, {}) == {}


def test_a_changelog_created_on_a_group_that_committed_is_said_naming_its_tables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """t167: changelogs an operator deleted were created again empty, unsaid."""
    from citybrain.stack.topics import emptied_tables_warning

    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", str(FIXTURES / "grid.yaml"))
    settings = load_settings()
    app = create_app(settings, CollectorRegistry())
    groups = f"{settings.app_id}-groups-changelog"
    silences = f"{settings.app_id}-silences-changelog"
    said = emptied_tables_warning(settings, app, [silences, groups, "other"], committed=4)
    assert said is not None
    assert "table(s) groups, silences was missing (deleted?) and is created empty" in said
    assert f"consumer group {settings.app_id!r} has committed offsets on 4 partition(s)" in said
    # A first start (the group never committed) and a start that created no changelog
    # (a task topic, say) held nothing to lose.
    assert emptied_tables_warning(settings, app, [groups], committed=0) is None
    assert emptied_tables_warning(settings, app, ["other"], committed=4) is None
