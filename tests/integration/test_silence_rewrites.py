"""Silences that reach a real worker through its silences changelog (another worker's
write, an older citybrain's, a tool's) must not corrupt or slow the routing of other
alerts (t131): a silence written again under its id with other matchers is obeyed as
written now, not as first read; thousands of regex silences leave an unrelated alert
routed and the one they match silenced."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.integration.test_pipeline import docs
from tests.integration.test_silences import (
    audited,
    burst_alert,
    mute_pipeline,
    runs_by_alert,
    seed_silences,
    stored,
)
from tests.services import OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration

ENDS = 4e9  # 2096: the same ends_at in both writes of the silence


def listed_matchers(body: dict[str, Any], silence_id: str) -> list[str] | None:
    for silence in body.get("silences", ()):
        if silence.get("id") == silence_id:
            return list(silence.get("matchers", ()))
    return None


def test_a_silence_rewritten_under_its_id_is_obeyed_as_rewritten(pipeline: Pipeline) -> None:
    """Before, the route agent kept a silence's first reading while its ends_at stayed
    the same: rewritten from Noise - Vehicle to Graffiti, it went on silencing noise and
    let graffiti through, until a restart read it anew (so two workers disagreed)."""
    p = mute_pipeline(pipeline)
    # 300 regex silences (matched in RE2 sets), one of them for al-re-299-x.
    many = [stored(f"re-{i}", [f'alert_id=~"al-re-{i}(-.*)?"'], ENDS) for i in range(300)]
    seed_silences(p, [stored("s-up", ['category="Noise - Vehicle"'], ENDS), *many])
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-1", burst_alert("al-1", "Noise - Vehicle", "c-mill"))
        p.flush()
        p.read("audit", lambda m: audited(m, "alert_silenced") == ["al-1"])
        # Written again, as another worker or an older citybrain writes its changelog.
        rewritten = stored("s-up", ['category="Graffiti"'], ENDS)
        p.producer.send(
            f"{p.settings.app_id}-silences-changelog", key=b"s-up", value=orjson.dumps(rewritten)
        )
        p.flush()
        _, body = p.api_until(
            "/silences",
            OPERATOR_TOKEN,
            lambda s, b: listed_matchers(b, "s-up") == ['category="Graffiti"'],
        )
        assert listed_matchers(body, "s-up") == ['category="Graffiti"'], body
        p.send("alerts", b"al-2", burst_alert("al-2", "Graffiti", "c-bridge"))
        p.send("alerts", b"al-3", burst_alert("al-3", "Noise - Vehicle", "c-top"))
        p.send("alerts", b"al-re-299-x", burst_alert("al-re-299-x", "Sewer", "c-top"))
        p.flush()
        # al-re-299-x is sent last: once it is audited, the two before it were decided.
        audit = p.read("audit", lambda m: "al-re-299-x" in audited(m, "alert_silenced"))
        # al-1, noise the silence no longer covers, is freed by the mute check: a run.
        steps = p.read("steps", lambda m: "al-1" in runs_by_alert(m), settle=3)
        silenced = {
            d["alert_id"]: d["detail"] for d in docs(audit) if d.get("action") == "alert_silenced"
        }
        assert silenced.get("al-2") == "silence s-up", silenced  # before: routed, a run
        assert silenced["al-re-299-x"] == "silence re-299"
        # Before: al-2's run, and al-1 and al-3 silenced (the old matchers).
        assert sorted(runs_by_alert(steps)) == ["al-1", "al-3"]
        assert "Crashed" not in worker.log()
    finally:
        worker.stop()
