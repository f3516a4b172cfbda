"""A ``firing`` alert whose ``ended_at`` has passed is its resolution, as Alertmanager
reads an alert whose ``endsAt`` is not after its clock (``types.Alert.Resolved``: it
neither notifies nor inhibits; Prometheus resolves an alert by sending it so). t213:
the alerts stage went by ``status`` alone, so such an alert opened a run, and, as an
inhibit rule's source, muted its targets until a ``resolved`` message came. No broker:
the stage of ``test_muted_alerts`` (its sends and table writes recorded)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from streams.events import alert_has_ended, format_ts
from tests.unit.streams.test_muted_alerts import Stage, burst, far_future


def ended(doc: dict[str, Any], ago: float) -> dict[str, Any]:
    """``doc`` still said ``firing``, its ``ended_at`` ``ago`` seconds before now."""
    at = time.time() - ago
    return {**doc, "started_at": format_ts(at - 600), "ended_at": format_ts(at)}


def test_a_firing_alert_that_ended_is_routed_as_its_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: routed ``firing`` (a run for an alert that said it had ended)."""
    s = Stage(tmp_path, monkeypatch)
    s.alert(burst("al-1", "Noise - Vehicle"))
    s.alert(ended(burst("al-1", "Noise - Vehicle"), 30))
    assert [doc["alert"]["status"] for _, doc in s.routed] == ["firing", "resolved"]
    assert b"al-1" not in s.firing
    # One never seen firing is a resolution too, which its group ignores.
    s.alert(ended(burst("al-2", "Illegal Parking"), 1))
    assert s.routed[-1][1]["alert"]["status"] == "resolved" and b"al-2" not in s.firing


def test_an_inhibiting_alert_that_ended_frees_its_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the source stayed in the firing alerts, its target inhibited until a
    ``resolved`` message came (Alertmanager frees it at once)."""
    s = Stage(tmp_path, monkeypatch)
    s.alert(burst("al-park", "Illegal Parking"))
    s.alert(burst("al-noise", "Noise - Vehicle"))
    assert s.run_ids() == ["al-park"]
    s.alert(ended(burst("al-park", "Illegal Parking"), 5))
    assert s.recheck() == 1
    assert s.run_ids() == ["al-park", "al-park", "al-noise"]
    # And one arriving ended inhibits nothing.
    s.alert(ended(burst("al-park-2", "Illegal Parking", community="c2"), 5))
    s.alert(burst("al-noise-2", "Noise - Vehicle", community="c2"))
    assert s.run_ids()[-2:] == ["al-park-2", "al-noise-2"]
    assert [a["action"] for a in s.audits].count("alert_inhibited") == 1


def test_a_muted_alert_whose_end_passed_is_dropped_not_routed_firing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its end came while it was muted: Alertmanager never notifies it once its mute
    ends. Before: the re-check routed it firing then, and a run opened."""
    s = Stage(tmp_path, monkeypatch)
    s.silence("s1", ['category="Noise - Vehicle"'], 0.0, far_future())
    s.alert({**burst("al-1", "Noise - Vehicle"), "ended_at": format_ts(time.time() + 1)})
    assert s.routed == [] and b"al-1" in s.stage.muted.data
    entry = s.stage.muted.data[b"al-1"]
    past = {**entry["alert"], "ended_at": format_ts(time.time() - 1)}
    s.stage.muted.data[b"al-1"] = {**entry, "alert": past}  # as if a second went by
    s.silences[b"s1"]["ends_at"] = 1.0
    assert s.recheck() == 0
    assert [doc["alert"]["status"] for _, doc in s.routed] == ["resolved"]
    assert b"al-1" not in s.firing and not s.stage.muted.data


def test_a_firing_alert_ending_later_still_fires() -> None:
    now = 1_790_000_000.0
    alert = {"status": "firing", "ended_at": format_ts(now + 1), "started_at": None}
    assert not alert_has_ended(alert, now)
    assert alert_has_ended({**alert, "ended_at": format_ts(now)}, now)  # not after: ended
    assert not alert_has_ended({**alert, "ended_at": None}, now)
    assert not alert_has_ended({**alert, "status": "resolved"}, now)
