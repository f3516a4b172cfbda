"""Closing the loop with the reporter on the real Kafka: citizen reports -> burst alert ->
run -> resolve -> closure replies on <prefix>.replies -> "not satisfied" through the
operator API -> the run reopened at its level, then escalated on a second reopening; the
audit chain of the run and of each report."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from citybrain.cli import main
from citybrain.stack import PrometheusServer
from playbooks.executors.webhook import verify
from streams.events import IncidentReport, format_ts
from streams.metrics import GROUPS
from tests.integration.test_burst_bounds import wait_for
from tests.integration.test_pipeline import START, docs, firing, steps_of
from tests.integration.test_poison_pills import assert_committed_to_end
from tests.services import OPERATOR_TOKEN, WEBHOOK_SECRET, Pipeline, Worker, prometheus_query

pytestmark = pytest.mark.integration
CHANNELS = ("hotline", "app", "inspector")


def send_reports(
    pipeline: Pipeline, n: int, t: float = START + 7200, tag: str = "r", gap: float = 30.0
) -> None:
    for i in range(n):
        report = IncidentReport(
            t + gap * i,
            f"{tag}-{i}",
            "Noise - Residential",
            "Noise - Residential: Loud Music/Party",
            CHANNELS[i % 3],
            "c-top",
        )
        pipeline.send("incidents", b"c-top", report.to_json())
    pipeline.flush()


def burst_then_killed(p: Pipeline, tag: str) -> tuple[Worker, dict[str, Any], float]:
    """A worker that never sweeps (an hour's interval) opens a burst at ``START + 7200``
    (reports ``tag``-0…7 in c-top), reads a report two hours on in another cell (the
    city's clock past the burst), commits it, and is SIGKILLed: (the killed worker, the
    burst's firing alert, the burst's time)."""
    worker = p.worker().start()
    try:
        t = START + 7200
        send_reports(p, 8, t=t, tag=tag)
        [opened] = [
            d for d in firing(p.read("alerts", lambda m: len(firing(m)) >= 1)) if not d["follow_up"]
        ]
        clock = IncidentReport(t + 7200, f"elsewhere-{tag}", "Graffiti", "Tag", "app", "c-bridge")
        p.send("incidents", b"c-bridge", clock.to_json())
        p.flush()
        # Read and committed: a committed offset's state (its window) is on the changelog
        # (streams.tables.coalesce_changelog writes it before each commit). A fixed 8 s
        # here waited out two commit intervals (2.8 s each) whether or not they had come.
        assert_committed_to_end(p, "incidents")
    except BaseException:
        worker.stop()  # not left holding its port for the next test
        p.close()
        raise
    worker.kill()
    return worker, opened, t


class ReplyDesk(BaseHTTPRequestHandler):
    """The citizen channels' webhook: keeps every signed closure it receives."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signed = verify(
            WEBHOOK_SECRET.encode(),
            self.headers["X-Citybrain-Timestamp"],
            body,
            self.headers["X-Citybrain-Signature"],
        )
        ReplyDesk.seen.append({**json.loads(body), "signed": signed})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve_reply_desk() -> Iterator[str]:
    """A ReplyDesk on a free port, emptied first: yields its URL (a fixture's body, shared
    with test_report_storm)."""
    ReplyDesk.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ReplyDesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/replies"
    server.shutdown()


@pytest.fixture
def reply_desk() -> Iterator[str]:
    yield from serve_reply_desk()


@pytest.fixture
def pipeline(stack: PrometheusServer, run_dir: Path, reply_desk: str) -> Iterator[Pipeline]:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "3",
            "CITYBRAIN_REPLIES_WEBHOOK_URL": reply_desk,
        },
    )
    yield p
    p.close()


def test_closure_reply_then_unsatisfied_answer_reopens_then_escalates(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 8)  # five make the burst, three follow it
        # The ladder runs out unacknowledged (3 s test deadlines): open at street level.
        steps = pipeline.read(
            "steps",
            lambda m: bool(steps_of(m, "annotate")) and len(steps_of(m, "report_covered")) == 8,
            timeout=60,
        )
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        covered = {d["detail"]: d["data"]["channel"] for d in steps_of(steps, "report_covered")}
        assert covered == {f"r-{i}": CHANNELS[i % 3] for i in range(8)}
        # No closure before there is something to close: an early answer is refused.
        status, body = pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-0", "satisfied": True},
        )
        assert (status, body["error"]) == (409, "report r-0 is open: no closure to answer")

        status, accepted = pipeline.api(
            "POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "party ended, warned"}
        )
        assert status == 202
        # Which part of its reports the run is: one run covers them all here.
        part = accepted["part"]
        assert (part["run_id"], part["reports_with_other_parts"]) == (run_id, {})
        replies = pipeline.read("replies", lambda m: len(m) >= 8)
        by_report = {m.key.decode(): m for m in replies}
        assert set(by_report) == {f"r-{i}" for i in range(8)}
        first = docs([by_report["r-0"]])[0]
        assert {k: first[k] for k in ("schema", "channel", "run_id", "outcome", "what")} == {
            "schema": "reply/1",
            "channel": "hotline",
            "run_id": run_id,
            "outcome": "resolved",
            "what": "party ended, warned",
        }
        assert (first["unit"], first["level"], first["by"]) == (
            "hill street office",
            "street",
            "duty-operator",
        )
        # The department that closed it, and no other part (one run covers the report).
        assert first["department"] == part["department"] != ""
        assert first["also"] == [] and f"of {part['department']} (street level)" in first["text"]
        # The same closures reached the configured webhook, signed.
        deadline = time.monotonic() + 15
        while len(ReplyDesk.seen) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(d["report_id"] for d in ReplyDesk.seen) == sorted(by_report)
        assert all(d["signed"] and d["run_id"] == run_id for d in ReplyDesk.seen)

        # Bad answers name the field; an unknown report is a 404.
        status, body = pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-0", "satisfied": "no"},
        )
        assert (status, body["error"]) == (
            400,
            "field \"satisfied\" is 'no', expected true or false",
        )
        status, _ = pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-99", "satisfied": False},
        )
        assert status == 404
        assert pipeline.api("POST", f"/runs/{run_id}/answer", None, {})[0] == 401

        # Not satisfied: the run reopens at the same (street) level.
        status, _ = pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-0", "satisfied": False, "comment": "music again at 2am"},
        )
        assert status == 202
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "reopened")))
        [reopened] = steps_of(steps, "reopened")
        assert (reopened["level"], reopened["detail"]) == (
            "street",
            "report r-0: not satisfied: music again at 2am",
        )
        notify = [d for d in steps_of(steps, "notify") if d["at"] >= reopened["at"]]
        assert [d["unit"] for d in notify] == ["hill street office"]
        status, body = pipeline.api_until(
            f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: b.get("run", {}).get("reopened") == 1
        )
        assert (body["run"]["status"], body["run"]["level"], body["run"]["reopened"]) == (
            "open",
            "street",
            1,
        )
        # A satisfied reporter of the same closure is recorded and heard no more (relayed
        # with the CLI this time).
        url = f"http://127.0.0.1:{pipeline.settings.worker_port}"
        relay = ["runs", "answer", run_id, "--report", "r-1", "--satisfied"]
        assert main([*relay, "--url", url, "--token", OPERATOR_TOKEN]) == 0
        pipeline.read("steps", lambda m: len(steps_of(m, "answer")) == 2)
        # Another reporter of the same closure says no: recorded only, and the API says
        # so (trial 5: the CLI still said "an unsatisfied answer reopens the run"); the
        # answers and the reopening are on the run, which lists as reopened.
        status, body = pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-2", "satisfied": False},
        )
        assert (status, body["reopens"]) == (202, False)
        status, body = pipeline.api_until(
            f"/runs/{run_id}",
            OPERATOR_TOKEN,
            lambda s, b: "r-2" in str(b.get("run", {}).get("actions", [])[-1:]),
        )
        assert [a["action"] for a in body["run"]["actions"][-4:]] == [
            "answer",
            "reopen",
            "answer",
            "answer",
        ]
        assert body["run"]["actions"][-1]["note"].endswith("(recorded only: the run is open)")
        status, body = pipeline.api("GET", "/runs?status=reopened", OPERATOR_TOKEN)
        assert (status, [r["run_id"] for r in body["runs"]]) == (200, [run_id])
        assert pipeline.api("GET", "/runs?status=reopend", OPERATOR_TOKEN)[0] == 400

        # Resolved again, and again not satisfied: reopened one level up, at the district.
        pipeline.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "fined"})
        replies = pipeline.read("replies", lambda m: len(m) >= 8 + 7)
        assert "r-1" not in {m.key.decode() for m in replies[8:]}
        pipeline.api(
            "POST",
            f"/runs/{run_id}/answer",
            OPERATOR_TOKEN,
            {"report_id": "r-0", "satisfied": False},
        )
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "reopened")) == 2)
        escalate = [d for d in steps_of(steps, "escalate") if d["detail"] == "reopened again"]
        assert [(d["level"], d["unit"]) for d in escalate] == [("district", "east district office")]

        # The audit chain: the run's moves and each report's, with who made them.
        audit = pipeline.read(
            "audit",
            lambda m: sum(1 for d in docs(m) if d.get("data", {}).get("event") == "reopen") == 2,
        )
        moves = [
            (d["data"]["from"], d["data"]["to"], d["data"]["event"], d["actor"])
            for d in docs(audit)
            if d.get("action") == "transition"
        ]
        assert moves[-4:] == [
            ("open", "resolved", "resolve", "duty-operator"),
            ("resolved", "open", "reopen", "duty-operator"),
            ("open", "resolved", "resolve", "duty-operator"),
            ("resolved", "open", "reopen", "duty-operator"),
        ]
        r0 = [
            (d["data"]["from"], d["data"]["to"])
            for d in docs(audit)
            if d.get("action") == "report_transition" and d["data"]["report_id"] == "r-0"
        ]
        assert r0 == [
            ("open", "replied"),
            ("replied", "reopened"),
            ("reopened", "replied"),
            ("replied", "reopened"),
        ]
        r1 = [
            d["data"]["to"]
            for d in docs(audit)
            if d.get("action") == "report_transition" and d["data"]["report_id"] == "r-1"
        ]
        assert r1 == ["replied", "satisfied"]

        # The campaign report, read from the real steps and audit topics.
        for name, value in pipeline.env.items():
            if name.startswith("CITYBRAIN_"):
                monkeypatch.setenv(name, value)
        today = datetime.now(UTC).date()
        out = tmp_path / "campaign.json"
        # Three days around today, so a test that runs across midnight still fits.
        period = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=2))]
        assert main(["campaign", "report", *period, "--out", str(out)]) == 0
        rows = json.loads(out.read_text())["rows"]
        city = next(r for r in rows if r["scope"] == "city")["figures"]
        # Reopened a second time and not resolved since: found, not resolved; r-0's last
        # answer is "no", r-1's "yes", r-2's "no".
        assert {k: city[k] for k in ("found", "reports", "resolved", "reopened")} == {
            "found": 1,
            "reports": 8,
            "resolved": 0,
            "reopened": 1,
        }
        assert (city["answers"], city["satisfaction_rate"], city["escalated_district"]) == (
            3,
            pytest.approx(1 / 3),
            1,
        )
        assert {r["name"] for r in rows if r["scope"] == "department"} == {"police"}
    finally:
        worker.stop()


def test_an_answer_to_a_superseded_run_says_which_run_replaced_it(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6)
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "report_covered")) == 6)
        old = steps_of(steps, "run_created")[0]["run_id"]
        status, _ = pipeline.api("POST", f"/runs/{old}/resolve", OPERATOR_TOKEN, {"note": "quiet"})
        assert status == 202
        pipeline.read("replies", lambda m: len(m) >= 6)
        # A day later, a new burst of the same category at the same place: the group
        # opens a new run and keeps only that one.
        send_reports(pipeline, 12, t=START + 7200 + 86400, tag="s")
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "run_created")) == 2)
        # Steps are keyed by alert id, so the two runs' steps may sit on different
        # partitions and be read in either order: the new run is the one that is not old.
        created = [d["run_id"] for d in steps_of(steps, "run_created")]
        [new] = [run_id for run_id in created if run_id != old]
        assert new.rsplit(".", 1)[0] == old.rsplit(".", 1)[0]
        # The worker publishes a run's steps before it stores the group: wait until the
        # API sees the new run.
        deadline = time.monotonic() + 30
        while pipeline.api("GET", f"/runs/{new}", OPERATOR_TOKEN)[0] != 200:
            assert time.monotonic() < deadline, f"the API never showed run {new}"
            time.sleep(0.2)
        # r-0 heard the old run's closure; its answer cannot reach that run any more,
        # and the refusal says why and what to do.
        status, body = pipeline.api(
            "POST", f"/runs/{old}/answer", OPERATOR_TOKEN, {"report_id": "r-0", "satisfied": False}
        )
        assert status == 409
        assert body["error"].startswith(f"run {old} was superseded by run {new} (a later alert")
        assert "relay the reporter's answer as a new report" in body["error"]
        # It can still be looked at (trial 5: `runs show` of it was the same 409), saying
        # where it went, with that advice; the CLI prints it whole.
        status, body = pipeline.api("GET", f"/runs/{old}", OPERATOR_TOKEN)
        assert (status, body["superseded_by"], body["run"]["run_id"]) == (200, new, old)
        assert (body["run"]["status"], body["run"]["resolution"]) == ("resolved", "quiet")
        assert body["note"].endswith(f"or answer run {new} if it covers the report")
        url = f"http://127.0.0.1:{pipeline.settings.worker_port}"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["runs", "show", old, "--url", url, "--token", OPERATOR_TOKEN]) == 0
        assert out.getvalue().startswith(f"SUPERSEDED by run {new} at ")
        assert f"or answer run {new} if it covers the report" in out.getvalue()
        # The new run does not cover r-0: a 404 naming the report.
        status, body = pipeline.api(
            "POST", f"/runs/{new}/answer", OPERATOR_TOKEN, {"report_id": "r-0", "satisfied": False}
        )
        assert (status, body["error"]) == (
            404,
            f"run {new} covers no report 'r-0' (did you mean 's-0'?)",
        )
    finally:
        worker.stop()


def test_failed_closure_webhooks_are_warned_of_in_the_worker_log(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """Trial 5: closures to a webhook at a closed port failed, seen only in the audit
    topic and a metric. Now one WARNING a minute per URL, naming it and the reason."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/replies"
    pipeline = Pipeline(run_dir, extra_env={"CITYBRAIN_REPLIES_WEBHOOK_URL": closed})
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6)
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "report_covered")) == 6)
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        status, _ = pipeline.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "ok"})
        assert status == 202
        # Six closures, each tried three times (CITYBRAIN_WEBHOOK_RETRIES=2): all audited.
        pipeline.read(
            "audit",
            lambda m: sum(1 for d in docs(m) if d.get("action") == "webhook_attempt_failed") >= 18,
        )
        warned = [
            line
            for line in worker.log().splitlines()
            if "citybrain: closure (reply) webhook call to " + closed in line
        ]
        assert len(warned) == 1, warned  # at most one a minute for the URL
        assert f"run {run_id}" in warned[0] and "failed (attempt " in warned[0]
    finally:
        worker.stop()
        pipeline.close()


def test_a_later_burst_while_the_run_is_open_joins_it_and_episodes_resolve(
    pipeline: Pipeline,
) -> None:
    """Trial 6: a second burst an hour after the first, while the first one's run was
    still open, raised no alert and joined no run; the first alert stayed firing for
    ever, with a severity other than the one counted. Now the second burst is an alert
    that joins the open run (which covers its reports), reports too few for a burst
    join the open run as follow-ups, each episode resolves when its window thins out,
    and reports that reached no burst are audited."""
    worker = pipeline.worker().start()
    try:
        # The trial's timeline: one report a minute from :11, so each burst straddles a
        # 5-minute sub-bucket boundary (the one that let a burst raise its own threshold).
        t = START + 7200 + 660
        send_reports(pipeline, 8, t=t, tag="m", gap=60)
        steps = pipeline.read(
            "steps",
            lambda m: bool(steps_of(m, "annotate")) and len(steps_of(m, "report_covered")) == 8,
        )
        [run_id] = [d["run_id"] for d in steps_of(steps, "run_created")]
        send_reports(pipeline, 6, t=t + 3600, tag="n", gap=60)  # an hour later
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "report_covered")) == 14)
        assert [d["run_id"] for d in steps_of(steps, "run_created")] == [run_id]
        assert {d["run_id"] for d in steps_of(steps, "report_covered")} == {run_id}
        assert len(steps_of(steps, "alert_joined")) == 1
        status, body = pipeline.api_until(
            f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: len(b["run"]["reports"]) == 14
        )
        assert sorted(body["run"]["reports"]) == sorted(
            [f"m-{i}" for i in range(8)] + [f"n-{i}" for i in range(6)]
        )
        # Three reports two hours in, too few for a burst, while the run is still open:
        # follow-ups it covers (the first ends the second burst's episode). A lone
        # report an hour later, and one more after that, are covered too; each time
        # reports leave the window in no alert, that is audited.
        send_reports(pipeline, 3, t=t + 2 * 3600, tag="q", gap=60)
        send_reports(pipeline, 1, t=t + 3 * 3600, tag="lone")
        send_reports(pipeline, 1, t=t + 4 * 3600, tag="later")
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "report_covered")) == 19)
        assert {d["run_id"] for d in steps_of(steps, "report_covered")} == {run_id}
        assert len(steps_of(steps, "run_created")) == 1
        alerts = docs(
            pipeline.read(
                "alerts", lambda m: sum(1 for d in docs(m) if d["status"] == "resolved") == 2
            )
        )
        opened = [d for d in alerts if d["status"] == "firing" and not d["follow_up"]]
        resolved = [d for d in alerts if d["status"] == "resolved"]
        assert len(opened) == 2
        assert {d["alert_id"] for d in resolved} == {d["alert_id"] for d in opened}
        for a in opened:  # one severity per alert, follow-ups and resolution included
            assert {d["severity"] for d in alerts if d["alert_id"] == a["alert_id"]} == {
                a["severity"]
            }
        status, body = pipeline.api_until(
            "/alerts", OPERATOR_TOKEN, lambda s, b: s == 200 and not b["firing"]
        )
        assert (status, body["firing"]) == (200, [])
        audit = docs(
            pipeline.read(
                "audit",
                lambda m: sum(1 for d in docs(m) if d.get("action") == "reports_not_alerted") == 2,
            )
        )
        said = [d["data"] for d in audit if d.get("action") == "reports_not_alerted"]
        assert sorted(tuple(d["report_ids"]) for d in said) == [
            ("lone-0",),
            ("q-0", "q-1", "q-2"),
        ]
        assert {d["grid_cell"] for d in said} == {"c-top"}
        # Resolved: every one of the 19 reporters hears the closure.
        status, _ = pipeline.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "ok"})
        assert status == 202
        replies = pipeline.read("replies", lambda m: len(m) >= 19)
        assert len({m.key for m in replies}) == 19
    finally:
        worker.stop()


def test_event_time_ends_bursts_and_says_lone_reports_with_no_report_of_their_own(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """A burst's cell and category, or a lone report's, may never hear another report:
    the sweep ends them by event time (the newest report of any cell). Before it, the burst
    alert stayed firing and the lone report was never said to be in no alert until another
    report came to that same cell and category."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_BURST_SWEEP_INTERVAL": "1"})
    worker = p.worker().start()
    try:
        t = START + 7200
        send_reports(p, 8, t=t, tag="b")
        [opened] = [
            d for d in firing(p.read("alerts", lambda m: len(firing(m)) >= 1)) if not d["follow_up"]
        ]
        lone = IncidentReport(t + 600, "pothole-1", "Street Condition", "Pothole", "app", "c-mill")
        p.send("incidents", b"c-mill", lone.to_json())
        p.flush()
        time.sleep(3)  # swept with event time short of both windows: nothing ends
        assert not [d for d in docs(p.read("alerts", lambda m: True)) if d["status"] == "resolved"]
        # Two hours on, a report in another cell: the city's clock has passed both.
        clock = IncidentReport(t + 7200, "elsewhere-1", "Graffiti", "Tag", "app", "c-bridge")
        p.send("incidents", b"c-bridge", clock.to_json())
        p.flush()
        audit = docs(
            p.read(
                "audit", lambda m: any(d.get("action") == "reports_not_alerted" for d in docs(m))
            )
        )
        said = [d["data"] for d in audit if d.get("action") == "reports_not_alerted"]
        assert said == [
            {"grid_cell": "c-mill", "category": "Street Condition", "report_ids": ["pothole-1"]}
        ]
        alerts = docs(p.read("alerts", lambda m: any(docs_status(m, "resolved")), settle=3))
        [resolved] = [d for d in alerts if d["status"] == "resolved"]
        assert resolved["alert_id"] == opened["alert_id"]
        assert resolved["severity"] == opened["severity"]
        assert resolved["ended_at"] == format_ts(t + 7200)
        status, body = p.api_until(
            "/alerts", OPERATOR_TOKEN, lambda s, b: s == 200 and not b["firing"]
        )
        assert (status, body["firing"]) == (200, [])
        # The burst's own next report finds nothing left to end or to say.
        send_reports(p, 1, t=t + 3 * 3600, tag="after")
        time.sleep(3)
        alerts = docs(p.read("alerts", lambda m: True, settle=2))
        assert [d["alert_id"] for d in alerts if d["status"] == "resolved"] == [opened["alert_id"]]
        audit = docs(p.read("audit", lambda m: True, settle=1))
        # Said once each: the lone pothole, then (the clock now an hour past it) the
        # report that moved the clock, alone in its own cell and category.
        said = [d["data"]["report_ids"] for d in audit if d.get("action") == "reports_not_alerted"]
        assert said == [["pothole-1"], ["elsewhere-1"]]
    finally:
        worker.stop()
        p.close()


def test_a_restarted_worker_ends_the_bursts_its_windows_have_passed(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """t75: a worker SIGKILLed after the last report (a replay's end, a quiet night) and
    started again had lost its event time (kept only in memory) and swept nothing until
    another report came: its open bursts stayed firing for good. It now takes it back
    from the windows it recovers. The first worker never sweeps (an hour's interval), so
    only the restarted one can end the burst."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_BURST_SWEEP_INTERVAL": "3600"})
    worker, opened, t = burst_then_killed(p, "k")
    try:
        worker = Worker({**p.env, "CITYBRAIN_BURST_SWEEP_INTERVAL": "1"}, worker.log_file)
        worker.start()
        alerts = docs(p.read("alerts", lambda m: any(docs_status(m, "resolved")), settle=3))
        [resolved] = [d for d in alerts if d["status"] == "resolved"]
        assert resolved["alert_id"] == opened["alert_id"]
        assert resolved["ended_at"] == format_ts(t + 7200)
        assert "Traceback" not in worker.log()
    finally:
        worker.stop()
        p.close()


def docs_status(messages: list[Any], status: str) -> list[dict[str, Any]]:
    return [d for d in docs(messages) if d.get("status") == status]


def test_an_answer_arriving_twice_is_applied_once_and_a_second_one_is_not_told_accepted(
    pipeline: Pipeline,
) -> None:
    """Trial 13: a reporter's answer relayed twice in a row (an SMS desk's retry, two
    desks) got 202 "accepted" both times, before the worker had applied the first; the
    worker then refused the second (audited only), so a desk told "accepted" had its
    answer dropped. The second now waits for the first to be applied, then is the 409
    it gets afterwards (api.settled_run)."""
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6)
        steps = pipeline.read(
            "steps", lambda m: len(steps_of(m, "report_covered")) == 6, timeout=60
        )
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        status, _ = pipeline.api(
            "POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "party ended"}
        )
        assert status == 202
        pipeline.read("replies", lambda m: len(m) >= 6)
        pipeline.api_until(
            f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: b["run"]["status"] == "resolved"
        )
        path = f"/runs/{run_id}/answer"
        no = {"report_id": "r-0", "satisfied": False, "comment": "still loud"}
        first = pipeline.api("POST", path, OPERATOR_TOKEN, no)
        again = pipeline.api("POST", path, OPERATOR_TOKEN, no)  # before the worker applied it
        other = pipeline.api("POST", path, OPERATOR_TOKEN, {"report_id": "r-0", "satisfied": True})
        assert first[0] == 202
        # Whether the worker has applied the first yet or not: one answer per closure.
        # The same answer again is said as given already (t219: it was this 409 too).
        assert again[0] == 200, again
        assert again[1]["already"]["satisfied"] is False, again
        assert isinstance(again[1]["status"], str), again
        status, body = other
        assert status == 409, body
        assert body["error"].startswith("report r-0 has answered its closure already (")
        # Another reporter of the same closure is not held up by r-0's pending answer.
        yes = {"report_id": "r-1", "satisfied": True}
        assert pipeline.api("POST", path, OPERATOR_TOKEN, yes)[0] == 202
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "answer")) >= 2, settle=2)
        assert sorted(d["detail"] or "" for d in steps_of(steps, "answer")) == ["", "still loud"]
        audit = pipeline.read("audit", lambda m: True, timeout=5, settle=1)
        assert not [d for d in docs(audit) if d.get("action") == "command_refused"]
    finally:
        worker.stop()


class FlakyDesk(BaseHTTPRequestHandler):
    """A citizen channel's webhook that answers 503 while ``failing`` (away longer than
    the worker's retries), 200 after: keeps the delivery ids it answered 200."""

    failing: ClassVar[bool] = True
    delivered: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if FlakyDesk.failing:
            self.send_response(503)
        else:
            FlakyDesk.delivered.append((self.headers["X-Citybrain-Delivery"], body["report_id"]))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_closure_given_up_is_shown_counted_and_sent_again_once_by_an_operator(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """Before: a closure whose webhook call failed after its retries was audited
    ``reply_webhook_failed`` and nothing else: the citizen never heard, no operator was
    asked to act. Now the run shows it (API, `runs show`, `runs list`), the worker counts
    it (``citybrain_closures_undelivered``, kept across a restart), and `citybrain runs
    resend RUN_ID` calls it again under its reply id once the receiver is back; a
    second resend does nothing."""
    FlakyDesk.failing, FlakyDesk.delivered = True, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyDesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    desk = f"http://127.0.0.1:{server.server_address[1]}/replies"
    pipeline = Pipeline(run_dir, extra_env={"CITYBRAIN_REPLIES_WEBHOOK_URL": desk})
    url = f"http://127.0.0.1:{pipeline.settings.worker_port}"
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6)
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "report_covered")) == 6)
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        status, _ = pipeline.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "ok"})
        assert status == 202
        pipeline.read(
            "audit",
            lambda m: sum(1 for d in docs(m) if d.get("action") == "reply_webhook_failed") == 6,
        )
        # Kept with the run's group, so a restarted worker still shows and counts them.
        worker.stop()
        worker = pipeline.worker().start()
        status, shown = pipeline.api_until(
            f"/runs/{run_id}",
            OPERATOR_TOKEN,
            lambda s, b: len(b.get("run", {}).get("closures_undelivered", [])) == 6,
        )
        undelivered = shown["run"]["closures_undelivered"]
        assert {c["report_id"] for c in undelivered} == {f"r-{i}" for i in range(6)}
        assert all("HTTP 503" in c["detail"] for c in undelivered), undelivered
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["runs", "show", run_id, "--url", url, "--token", OPERATOR_TOKEN]) == 0
        assert "closures not delivered  6 (re-send them: `" in out.getvalue()
        assert f"runs resend {run_id}" in out.getvalue()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["runs", "list", "--url", url, "--token", OPERATOR_TOKEN]) == 0
        assert "6 closures to citizens not delivered" in out.getvalue()
        instance = f'job="citybrain-worker",instance="127.0.0.1:{pipeline.settings.worker_port}"'
        query = f"citybrain_closures_undelivered{{{instance}}} == 6"
        deadline = time.monotonic() + 60
        while not prometheus_query(stack.url, query):
            assert time.monotonic() < deadline, f"Prometheus never saw {query}"
            time.sleep(0.5)

        FlakyDesk.failing = False  # the channel is back: the operator re-sends
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            resend = ["runs", "resend", run_id, "--url", url, "--token", OPERATOR_TOKEN]
            assert main(resend) == 0
        assert out.getvalue().startswith(f"accepted: 6 closures of run {run_id} to be sent again")
        pipeline.read("audit", lambda m: any(d.get("action") == "closures_resent" for d in docs(m)))
        status, shown = pipeline.api_until(
            f"/runs/{run_id}",
            OPERATOR_TOKEN,
            lambda s, b: (
                "closures_undelivered" not in b.get("run", {}) and len(FlakyDesk.delivered) == 6
            ),
        )
        assert "closures_undelivered" not in shown["run"]
        # Under each closure's own reply id, the delivery id receivers dedupe by.
        assert sorted(FlakyDesk.delivered) == sorted(
            (c["reply_id"], c["report_id"]) for c in undelivered
        )
        # Idempotent: nothing left to re-send, nothing sent, and said so.
        status, again = pipeline.api("POST", f"/runs/{run_id}/resend", OPERATOR_TOKEN, {})
        assert (status, again["already"]) == (200, {"action": "resend"})
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(resend) == 0
        assert out.getvalue().startswith(f"unchanged: run {run_id} has no undelivered closure")
        while not prometheus_query(stack.url, f"citybrain_closures_undelivered{{{instance}}} == 0"):
            assert time.monotonic() < deadline + 60, "the gauge never came back to 0"
            time.sleep(0.5)
        assert len(FlakyDesk.delivered) == 6
    finally:
        worker.stop()
        pipeline.close()
        server.shutdown()


def offered(rid: str) -> bytes:
    """A report in no alert offered to group ``grp-held``'s run (streams.ingest._offer)."""
    report = {
        "report_id": rid,
        "channel": "hotline",
        "grid_cell": "c-bridge",
        "category": "flooding",
        "ts": time.time(),
        "late": False,
    }
    return json.dumps(
        {"report": report, "route": {"id": "root.2", "playbook": "flash-flood"}}
    ).encode()


def opening(alert_id: str, *reports: str) -> bytes:
    """A routed alert carrying ``reports`` that opens group ``grp-held``'s run."""
    alert = {
        "schema": "alert/1",
        "alert_id": alert_id,
        "status": "firing",
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "grid_cell": "c-bridge",
        "severity": "major",
        "score": 0.9,
        "started_at": format_ts(time.time()),
        "labels": {"alert_id": alert_id, "kind": "water_level", "source": "sensor"},
        "reports": [{"report_id": r, "channel": "app"} for r in reports],
    }
    route = {
        "id": "root.2",
        "playbook": "flash-flood",
        "group_wait": 0,
        "group_interval": 1,
        "repeat_interval": 3600,
    }
    return json.dumps({"alert": alert, "route": route}).encode()


def test_an_offer_held_for_its_run_survives_a_sigkill_before_the_run_opens(
    pipeline: Pipeline,
) -> None:
    """t124 on the real broker: a report in no alert (r-9) offered before its group's run
    opened was held in the worker's memory; SIGKILLed after the offer's offset was
    committed and before the run opened, the worker lost it: the run covered only r-1 and
    r-9's reporter never heard a closure. Now it is stored with its group: the restarted
    worker's run takes it, one ``report_covered`` step, one closure."""
    p = pipeline
    worker = p.worker().start()
    port = p.settings.worker_port
    try:
        p.send("routed", b"grp-held", offered("r-9"))
        p.flush()
        # Read (its group holds it; the old code stored nothing, and waited out the 30 s).
        wait_for(port, GROUPS, 1, timeout=30)
        # The offer's offset committed (not read again after the kill); a fixed 8 s here
        # waited out two commit intervals (2.8 s each) whether or not they had come.
        assert_committed_to_end(p, "routed")
        worker.kill()
        worker.start()
        p.send("routed", b"grp-held", opening("al-held", "r-1"))
        p.flush()
        steps = p.read("steps", lambda m: len(steps_of(m, "run_created")) >= 1, settle=4)
        [run_id] = {d["run_id"] for d in steps_of(steps, "run_created")}
        resolve = {"id": "resolve-held", "run_id": run_id, "action": "resolve", "by": "op"}
        p.send("commands", b"grp-held", json.dumps({**resolve, "at": time.time()}).encode())
        p.flush()
        deadline = time.monotonic() + 60
        while len(ReplyDesk.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        steps = p.read("steps", lambda m: bool(steps_of(m, "resolved")), settle=4)
        covered = [d["detail"] for d in steps_of(steps, "report_covered")]
        assert sorted(covered) == ["r-1", "r-9"], covered  # each once, as messages
        assert sorted(d["report_id"] for d in ReplyDesk.seen) == ["r-1", "r-9"]
        assert all(d["signed"] and d["run_id"] == run_id for d in ReplyDesk.seen)
    finally:
        worker.stop()
