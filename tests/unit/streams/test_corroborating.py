"""The corroboration stage is wired from settings (no broker needed: nothing connects)."""

from __future__ import annotations

from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from streams.app import create_app
from streams.settings import Settings


def agent_topics(app: faust.App) -> set[str]:
    return {name for agent in app.agents.values() for name in agent.channel.topics}  # type: ignore[attr-defined]


def test_the_stage_has_its_topic_table_and_agent(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    registry = CollectorRegistry()
    app = create_app(settings, registry)
    assert "t.corroboration" in agent_topics(app)
    assert "corroboration" in app.tables
    assert "t.corroboration" in settings.topics.values()  # created with the others
    # Zero series for every kind, so dashboards show 0 rather than no data.
    value = registry.get_sample_value(
        "citybrain_alerts_corroboration_total",
        {"kind": "water_level", "label": "isolated", "assessment": "suspected_sensor_fault"},
    )
    assert value == 0.0


def test_switched_off_alerts_go_straight_to_the_alerts_topic(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t", corroboration=False)
    app = create_app(settings, CollectorRegistry())
    assert "t.corroboration" not in agent_topics(app)
    assert "t.alerts" in agent_topics(app)
