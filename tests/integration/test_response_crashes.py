"""t216: the response stages across a crash, on the real broker with real workers, each
counted against what a run without the crash leaves (each step id once, with one
content; each alert one run; each record once):

- a worker stopped (SIGTERM) while a run's webhook call is in flight, after dispatch and
  before its outcome (the SIGKILL case: ``test_scale_out``): the worker that takes the
  run makes the call again under the same delivery id, and the run takes one outcome;
- an escalation due while the broker is down (the worker on, or SIGKILLed meanwhile);
- the alerts a silence held, released by the mute check just before a SIGKILL, and the
  mute check's ``alert_unmuted`` record refused by Kafka (the fault t216 found: the
  record was lost for good, the alert released without it)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import KafkaBroker, PrometheusServer
from tests.integration.test_pipeline import docs, real_levels, send_readings, steps_of
from tests.integration.test_silences import audited, burst_alert, mute_pipeline, runs_by_alert
from tests.integration.test_topic_limits import set_limit
from tests.services import (
    COORDINATOR_TOKEN,
    OPERATOR_TOKEN,
    ROOT,
    Pipeline,
    scrape_sum,
    stack_settings,
)

pytestmark = pytest.mark.integration

QUIET = ["al-quiet-mill", "al-quiet-top"]
LIBRARY = ROOT / "playbooks" / "library" / "playbooks"
ADVISORY = "127.0.0.1:18081"  # the air-pollution playbook's advisory webhook


@dataclass
class Receiver:
    """An advisory service that records each call's delivery id and holds the first
    call unanswered until ``release``."""

    deliveries: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with state.arrived:
                state.deliveries.append(self.headers["X-Citybrain-Delivery"])
                first = len(state.deliveries) == 1
                state.arrived.notify_all()
            if first:
                state.released.wait(120)
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:
                pass  # the caller is gone

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    playbooks = tmp_path / "playbooks"
    shutil.copytree(LIBRARY, playbooks)
    air = playbooks / "air-pollution.yaml"
    assert ADVISORY in air.read_text()
    air.write_text(air.read_text().replace(ADVISORY, f"127.0.0.1:{server.server_address[1]}"))
    yield state, playbooks
    state.released.set()
    server.shutdown()


def call_in_flight(p: Pipeline, rec: Receiver) -> tuple[Any, str]:
    """A worker whose air-pollution run's advisory webhook call is in flight (the
    receiver holds it); (the worker, the run id)."""
    worker = p.worker().start()
    base = real_levels(40)
    send_readings(p, [*base, base[-1] * 8], sensor="air-1")
    steps = p.read("steps", lambda m: bool(steps_of(m, "run_created")))
    [run_id] = {d["run_id"] for d in steps_of(steps, "run_created")}
    p.api_until("/runs", OPERATOR_TOKEN, lambda s, b: len(b.get("runs", [])) == 1)
    assert p.api("POST", f"/runs/{run_id}/ack", OPERATOR_TOKEN)[0] == 202
    p.read("steps", lambda m: bool(steps_of(m, "approval_request")))
    assert p.api("POST", f"/runs/{run_id}/approve", COORDINATOR_TOKEN)[0] == 202
    assert rec.wait_for(1, 60), "the webhook call never came"
    return worker, run_id


def settled(p: Pipeline, run_id: str) -> list[dict[str, Any]]:
    steps = p.read(
        "steps",
        lambda m: any(d["run_id"] == run_id and d["action"] == "annotate" for d in docs(m)),
        timeout=90,
        settle=4,
    )
    return [d for d in docs(steps) if d["run_id"] == run_id]


def once_each(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Each action's number of distinct step ids."""
    by: dict[str, set[str]] = {}
    for d in steps:
        by.setdefault(d["action"], set()).add(d["id"])
    return {a: len(ids) for a, ids in by.items()}


def test_a_webhook_call_in_flight_at_a_graceful_stop_is_made_again_once(
    run_dir: Path, stack: PrometheusServer, receiver: tuple[Receiver, Path]
) -> None:
    rec, playbooks = receiver
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_PLAYBOOK_DIR": str(playbooks),
            "CITYBRAIN_WEBHOOK_TIMEOUT": "30",
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
        },
    )
    try:
        worker, run_id = call_in_flight(p, rec)
        worker.stop()  # SIGTERM: the call's task is cancelled, its outcome never comes
        rec.released.set()
        worker = p.worker().start()
        try:
            steps = settled(p, run_id)
            counts = once_each(steps)
            assert len(set(rec.deliveries)) == 1, rec.deliveries
            assert counts.get("webhook") == 1
            assert counts.get("action_ok") == 1, counts
            assert "action_failed" not in counts, counts
            assert counts.get("annotate") == 1
        finally:
            worker.stop()
    finally:
        p.close()


def one_content_per_id(steps: list[dict[str, Any]]) -> None:
    by: dict[str, set[str]] = {}
    for d in steps:
        by.setdefault(d["id"], set()).add(json.dumps(d, sort_keys=True))
    doubled = {i: sorted(c) for i, c in by.items() if len(c) > 1}
    assert not doubled, json.dumps(doubled, indent=1)


@pytest.mark.parametrize("kill", [False, True])
def test_an_escalation_due_while_kafka_is_down_is_sent_once(
    run_dir: Path, stack: PrometheusServer, kill: bool
) -> None:
    """The broker stopped (and with ``kill`` the worker SIGKILLed) once the run waits
    for its acknowledgement, started again past the deadline: each rung of the ladder
    once, each step id with one content."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "6"})
    kafka = KafkaBroker(stack_settings(run_dir))
    worker = p.worker().start()
    try:
        base = real_levels(40)
        send_readings(p, [*base, base[-1] * 8])
        steps = p.read("steps", lambda m: bool(steps_of(m, "wait_ack")), settle=0)
        [wait] = steps_of(steps, "wait_ack")
        due = wait["at"] + float(wait["detail"].rstrip("s"))
        assert kafka.stop()
        while time.time() < due + 8:  # the deadline passed while Kafka is down
            time.sleep(0.2)
        if kill:
            worker.kill()
        kafka.start()
        if kill:
            worker = p.worker().start()
        steps = p.read("steps", lambda m: bool(steps_of(m, "escalate")), timeout=60, settle=6)
        mine = docs(steps)
        one_content_per_id(mine)
        counts = once_each(mine)
        # The ladder goes on while the test reads (6 s a rung): each rung once.
        levels = [d["level"] for d in steps_of(steps, "escalate")]
        assert len(levels) == len(set(levels)) == counts["escalate"], levels
    finally:
        worker.stop()
        if not kafka.running():
            kafka.start()
        p.close()


def test_a_silenced_alert_released_just_before_a_sigkill_has_one_run_and_its_record(
    pipeline: Pipeline,
) -> None:
    """A worker SIGKILLed right after its mute check released the alerts a silence held:
    each gets one run and one ``alert_unmuted`` record (from the worker that released
    it, or from the restarted one, which finds it still muted)."""
    p = mute_pipeline(pipeline)
    worker = p.worker().start()
    try:
        ends_at = silence_two_alerts(p, "8s")
        assert ends_at
        p.read("audit", lambda m: bool(audited(m, "alert_unmuted")), timeout=60)
        worker.kill()
        worker = p.worker().start()
        steps = p.read("steps", lambda m: len(runs_by_alert(m)) == 2, timeout=60, settle=6)
        runs = runs_by_alert(steps)
        assert sorted(runs) == QUIET
        assert all(len({r["run_id"] for r in rs}) == 1 for rs in runs.values()), runs
        one_content_per_id(docs(steps))
        audit = p.read("audit", lambda m: sorted(set(audited(m, "alert_unmuted"))) == QUIET)
        unmuted = [d for d in docs(audit) if d.get("action") == "alert_unmuted"]
        assert len({d["id"] for d in unmuted}) == 2, unmuted
    finally:
        worker.stop()


def test_an_alert_unmuted_record_kafka_refused_keeps_the_alert_muted_until_it_is_taken(
    pipeline: Pipeline,
) -> None:
    """The mute check's ``alert_unmuted`` record is on Kafka before the alert's muted
    entry is dropped. Before t216 the record was only queued and the entry's tombstone
    queued after it: a SIGKILL once the tombstone was out (seen here: runs made, no
    record after the restart), or a record the audit topic refused (this test, which
    makes the window deterministic), left the alert routed with no record, for good."""
    p = mute_pipeline(pipeline)
    worker = p.worker().start()
    try:
        ends_at = silence_two_alerts(p, "4s")
        set_limit(p, "audit", 100)  # every audit record is larger: refused
        log_at = len(worker.log())
        refused = ("mute check: muted alert", "Kafka refused the audit record alert_unmuted")
        until = time.monotonic() + 90
        while not any(r in worker.log()[log_at:] for r in refused):
            assert time.monotonic() < until, worker.log()[log_at:][-3000:]
            time.sleep(0.2)
        assert time.time() >= ends_at
        set_limit(p, "audit", 1048588)
        audit = p.read(
            "audit", lambda m: sorted(set(audited(m, "alert_unmuted"))) == QUIET, timeout=60
        )
        unmuted = [d for d in docs(audit) if d.get("action") == "alert_unmuted"]
        assert len({d["id"] for d in unmuted}) == 2, unmuted
        steps = p.read("steps", lambda m: len(runs_by_alert(m)) == 2, timeout=60, settle=4)
        runs = runs_by_alert(steps)
        assert sorted(runs) == QUIET
        assert all(len({r["run_id"] for r in rs}) == 1 for rs in runs.values()), runs
        one_content_per_id(docs(steps))
        port = p.settings.worker_port
        assert scrape_sum(port, 'citybrain_alerts_unmuted_total{kind="incident_burst"') == 2
    finally:
        worker.stop()


def silence_two_alerts(p: Pipeline, duration: str) -> float:
    """A silence of ``duration`` over the two ``QUIET`` burst alerts, sent and audited
    ``alert_silenced``; when the silence ends (epoch s)."""
    status, made = p.api(
        "POST",
        "/silences",
        OPERATOR_TOKEN,
        {"matchers": ['category="Noise - Vehicle"'], "duration": duration, "reason": "t216"},
    )
    assert status == 201, made
    for alert_id, community in zip(QUIET, ("c-mill", "c-top"), strict=True):
        p.send("alerts", alert_id.encode(), burst_alert(alert_id, "Noise - Vehicle", community))
    p.flush()
    p.read("audit", lambda m: audited(m, "alert_silenced") == QUIET)
    return float(made["silence"]["ends_at"])
