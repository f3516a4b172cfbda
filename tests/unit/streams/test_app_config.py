"""The faust app is configured from settings (no broker needed: nothing connects)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from detectors import DEFAULT_THRESHOLD
from streams.app import create_app
from streams.settings import Settings


def test_fetch_size_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, fetch_max_bytes=3 * 1024 * 1024)
    app = create_app(settings, CollectorRegistry())
    assert app.conf.consumer_max_fetch_size == 3 * 1024 * 1024
    # A commit's changelog batch must still fit the broker's default message.max.bytes.
    assert app.conf.producer_max_batch_size <= 1024 * 1024


def test_default_fetch_is_not_fausts_one_mebibyte(tmp_path: Path) -> None:
    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())
    assert app.conf.consumer_max_fetch_size == 8 * 1024 * 1024


def test_a_fetch_below_a_kafka_message_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="fetch_max_bytes"):
        Settings(fetch_max_bytes=1000)


def test_the_stream_alerts_at_the_default_detectors_documented_threshold() -> None:
    # One threshold for `citybrain detect`, the NAB report and the stream (issue 13).
    assert Settings(_env_file=None).score_threshold == DEFAULT_THRESHOLD


def test_the_commit_interval_comes_from_settings(tmp_path: Path) -> None:
    """CITYBRAIN_COMMIT_INTERVAL is faust's commit interval: the lever between the
    per-commit changelog write and the replay after a crash (docs/benchmarks.md)."""
    app = create_app(Settings(run_dir_override=tmp_path, commit_interval=10), CollectorRegistry())
    assert app.conf.broker_commit_interval == 10
    default = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())
    assert default.conf.broker_commit_interval == 2.8
    with pytest.raises(ValidationError, match="commit_interval"):
        Settings(commit_interval=0)


def test_commits_do_not_follow_fausts_every_ten_thousand_messages(tmp_path: Path) -> None:
    """faust's broker_commit_every of 10,000 made a catch-up commit (and rewrite every
    touched sensor state) many times a second: 22,060 against 71,452 readings/s over
    20,000 sensors (docs/benchmarks.md)."""
    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())
    assert app.conf.broker_commit_every == 1_000_000
    tuned = create_app(Settings(run_dir_override=tmp_path, commit_every=500), CollectorRegistry())
    assert tuned.conf.broker_commit_every == 500


def test_consumer_lag_counts_the_topics_the_agents_consume_only(tmp_path: Path) -> None:
    """Trial 9: the "Consumer lag" stat read 176 at rest, from the tables' changelogs
    and faust's __assignor-__leader, assigned to the consumer but never read past
    recovery. The lag gauge covers the agents' source topics only."""
    from streams.response import source_topics

    settings = Settings(run_dir_override=tmp_path)
    app = create_app(settings, CollectorRegistry())
    sources = source_topics(app)
    for role in ("readings", "incidents", "alerts", "routed", "commands"):
        assert settings.topic(role) in sources, role
    assert not any(t.endswith("-changelog") or t.startswith("__") for t in sources), sources
    changelogs = {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    assert changelogs and not (changelogs & sources)
