"""t146 on the real broker: routed messages a worker before t140 wrote, in flight when
the worker is upgraded. That worker read an alert's times by its own rule (``parse_ts``)
and routed them as sent: a lower-case ``t`` or ``z``, a space before a zone, ``+0100``,
``+01``, which Alertmanager's API (and so the alerts topic since t140) refuses. The
routed topic is citybrain's own: the upgraded worker reads what an earlier one wrote
there, and the incident's run opens (before t146 each was dead-lettered as
``bad_routed``, and no run opened)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from citybrain.stack import PrometheusServer
from playbooks.loader import default_routing_path, load_playbooks, load_routing
from streams.alerting import _route_doc, checked_alert
from tests.integration.test_group_key_migration import ENV, flood
from tests.integration.test_pipeline import steps_of
from tests.services import ROOT, Pipeline

pytestmark = pytest.mark.integration

# The field case's start (2026-11-30T21:11:08Z) as a worker before t140 took and wrote it.
OLDER_SPELLINGS = [
    "2026-11-30t21:11:08z",
    "2026-11-30 21:11:08Z",
    "2026-11-30T22:11:08+0100",
    "2026-11-30T22:11:08+01",
]


def test_routed_alerts_an_earlier_worker_wrote_open_their_runs(
    run_dir: Path, stack: PrometheusServer
) -> None:
    router = load_routing(
        default_routing_path(), load_playbooks(ROOT / "playbooks" / "library" / "playbooks")
    )
    p = Pipeline(run_dir, extra_env=ENV)
    worker = p.worker()
    groups = {}
    try:
        for i, text in enumerate(OLDER_SPELLINGS):
            # One group each (the flash-flood route groups by street).
            alert, labels = checked_alert(flood(f"al-older-{i}", f"md-sligo-creek-t146-{i}"))
            [route] = router.root.match(labels)
            key = route.group_key(labels)
            groups[key] = text
            # What that worker sent: its alert as taken, the time as it came.
            doc = {
                "alert": {**alert, "started_at": text},
                "route": _route_doc(route),
                "legacy_key": route.legacy_group_key(labels),
            }
            p.send("routed", key.encode(), orjson.dumps(doc))
        p.flush()
        worker.start()
        steps = p.read(
            "steps", lambda m: len(steps_of(m, "run_created")) >= len(OLDER_SPELLINGS), settle=2
        )
        opened = {d["run_id"].rsplit(".", 1)[0] for d in steps_of(steps, "run_created")}
        assert opened == set(groups), (opened, groups)
        # None dead-lettered, none a traceback.
        log = worker.log()
        assert "bad_routed" not in log and "Traceback" not in log, log[-2000:]
        for message in p.read("deadletter", lambda m: True, settle=1):
            assert b"al-older-" not in (message.value or b""), json.loads(message.value)
    finally:
        worker.stop()
        p.close()
