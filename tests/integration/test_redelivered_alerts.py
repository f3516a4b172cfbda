"""Helper brief t75 on the real broker: an alert's resolution that reaches the respond
stage again (the ``alerts`` message a worker killed between sending it and writing its
sensor's state sends again, or a ``routed`` message read again after a SIGKILL before
its offset commit) changes nothing. Each repeat added an ``alert_resolved`` step under
a new id (``<run id>:<seq+1>``), so a consumer deduping steps by id kept both."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from citybrain.stack import PrometheusServer
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


def test_a_command_read_again_after_a_sigkill_once_its_run_was_superseded_is_no_dead_letter(
    run_dir: Path, stack: PrometheusServer
) -> None:
    """t120 on the real broker: a run cancelled by a command, the group's next run opened
    by a new alert, and the worker SIGKILLed before its commands offset was committed
    (a commit interval of 60 s makes that the kill point every time). The restarted
    worker reads the cancel again for a run superseded by then: it was dead-lettered
    ``unknown_run`` ("no run …") though it had been applied. Now it is a repeat: no dead
    letter, nothing changes, the new run goes on."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_COMMIT_INTERVAL": "60"})
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-first", alert("al-first"))
        p.flush()
        [created] = steps_of(
            p.read("steps", lambda m: bool(steps_of(m, "run_created"))), "run_created"
        )
        first = created["run_id"]
        cancel_id = f"cancel-{uuid.uuid4().hex[:8]}"
        cancel = {
            "id": cancel_id,
            "run_id": first,
            "action": "cancel",
            "by": "op",
            "at": time.time(),
        }
        p.send("commands", first.rsplit(".", 1)[0].encode(), orjson.dumps(cancel))
        p.flush()
        p.read("steps", lambda m: bool(steps_of(m, "cancelled")))
        p.send("alerts", b"al-next", alert("al-next"))  # same group: its next run
        p.flush()
        steps = p.read("steps", lambda m: len(steps_of(m, "run_created")) == 2)
        [second] = [d["run_id"] for d in steps_of(steps, "run_created") if d["run_id"] != first]
        worker.kill()
        worker.start()
        # Settled past the restart's re-reading and a few deadline ticks.
        time.sleep(8)
        letters = p.read("deadletter", lambda m: True, timeout=10, settle=2)
        assert not [m.value[:200] for m in letters if cancel_id.encode() in m.value]
        steps = p.read("steps", lambda m: True, settle=2)
        assert [d["run_id"] for d in steps_of(steps, "cancelled")] == [first]
        ids = Counter(orjson.loads(m.value)["id"] for m in steps)
        assert second != first and not [i for i, n in ids.items() if n > 1]
    finally:
        worker.stop()
        p.close()
