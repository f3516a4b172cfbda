"""Helper brief t75 on the real broker: an alert's resolution that reaches the respond
stage again (the ``alerts`` message a worker killed between sending it and writing its
sensor's state sends again, or a ``routed`` message read again after a SIGKILL before
its offset commit) changes nothing. Each repeat added an ``alert_resolved`` step under
a new id (``<run id>:<seq+1>``), so a consumer deduping steps by id kept both."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from tests.integration.test_pipeline import steps_of
from tests.integration.test_silences import alert
from tests.services import Pipeline

pytestmark = pytest.mark.integration


def resolved(alert_id: str) -> bytes:
    doc = orjson.loads(alert(alert_id))
    doc.update(status="resolved", ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return orjson.dumps(doc)


def test_a_resolution_sent_again_adds_no_step(pipeline: Pipeline) -> None:
    p = pipeline
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-again", alert("al-again"))
        p.flush()
        p.read("steps", lambda m: bool(steps_of(m, "run_created")))
        ended = resolved("al-again")
        p.send("alerts", b"al-again", ended)
        p.flush()
        p.read("steps", lambda m: bool(steps_of(m, "alert_resolved")))
        # The repeats a crash makes: the same resolution on alerts, then again later.
        p.send("alerts", b"al-again", ended)
        p.flush()
        time.sleep(1)
        p.send("alerts", b"al-again", ended)
        p.flush()
        # Settled past the repeats' routing (and a deadline tick or two).
        steps = p.read("steps", lambda m: True, settle=6)
        noted = steps_of(steps, "alert_resolved")
        assert [s["detail"] for s in noted] == ["al-again"], noted
        ids = Counter(orjson.loads(m.value)["id"] for m in steps)
        assert not [i for i, n in ids.items() if n > 1]
    finally:
        worker.stop()
