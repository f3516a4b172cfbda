"""Routed messages and dead letters as the integration tests write and read them: one
valid alert of the demo grid (``ROUTED_ALERT``), the route it takes (``ROUTED_ROUTE``),
and the headers a dead letter is told apart by (``said``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ROUTED_ALERT: dict[str, Any] = {
    "schema": "alert/1",
    "alert_id": "al-ok",
    "status": "firing",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "major",
    "score": 0.9,
    "started_at": "2026-11-01T10:00:00Z",
    "labels": {"alert_id": "al-ok", "kind": "water_level", "source": "sensor"},
}
ROUTED_ROUTE: dict[str, Any] = {
    "id": "root.2",
    "playbook": "flash-flood",
    "group_wait": 0,
    "group_interval": 300,
    "repeat_interval": 3600,
}


def named_alert(
    alert_id: str, base: dict[str, Any] = ROUTED_ALERT, **fields: Any
) -> dict[str, Any]:
    """``base`` under another ``alert_id`` (its label too), with ``fields`` set."""
    labels = {**base["labels"], "alert_id": alert_id}
    return {**base, "alert_id": alert_id, "labels": labels, **fields}


def said(dead: Iterable[Any], cut: str) -> list[tuple[str, str, str]]:
    """Each dead letter's stream, reason and message up to ``cut`` (its explanation
    after that left out), sorted."""
    found = []
    for m in dead:
        headers = dict(m.headers)
        message = headers["citybrain.error.message"].decode().split(cut)[0]
        found.append(
            (
                headers["citybrain.error.stream"].decode(),
                headers["citybrain.error.reason"].decode(),
                message,
            )
        )
    return sorted(found)
