"""Closure messages to citizens: the wire shape of a ``reply`` command, and the audit
records the reply loop adds. Pure; the worker sends what these build.

A closure goes to ``<prefix>.replies`` keyed by the report id (so a channel's consumer
sees one report's messages in order), and to ``CITYBRAIN_REPLIES_WEBHOOK_URL`` when set.
Shape (``reply/1``, docs/events.md)::

    {"schema": "reply/1", "report_id": "r-7", "channel": "hotline", "run_id": "...",
     "outcome": "resolved", "what": "music stopped", "unit": "top community station",
     "level": "community", "department": "police", "also": [{"group": "grp-...",
     "playbook": "gas-leak", "department": "gas-utility"}], "text": "Your report r-7 ...",
     "at": "2024-05-26T01:00:00Z", "reply_id": "<run id>:<seq>"}

``also`` is empty unless the report is covered by runs of several groups (its alert
routed to several routes, or offered to several groups): each run sends its own closure.
"""

from __future__ import annotations

from typing import Any

from playbooks.engine import Command, Run
from streams.events import format_ts
from streams.metrics import Metrics

REPLY_SCHEMA = "reply/1"
# Commands that go to the audit topic rather than the steps topic: status moves of a run
# and of a report.
AUDITED = frozenset({"transition", "report_transition"})
# A group's field: closures whose webhook call failed after its retries (or was dropped),
# reply id -> {"reply": the reply/1 document, "failed_at": epoch s, "detail": why}. Kept
# (the group is not forgotten) until an operator re-sends them (``RESEND``): before, a
# given-up closure was one audit line and the citizen never heard.
UNDELIVERED = "closures_undelivered"
# The command the operator API sends for `citybrain runs resend RUN_ID`.
RESEND = "resend_closures"
# A group's field: how many times each closure was re-sent (reply id -> count), so the
# outcome of each call of a closure has its own command id (``result_id``).
RESENDS = "reply_resends"


def result_id(call_id: str, resent: int = 0) -> str:
    """The command id of the ``action_result`` a webhook call's outcome is sent as: the
    first call of ``call_id`` (a step's command id, a closure's reply id) gives
    ``<call_id>:result``, that call made again after a stop the same (a second outcome is
    a repeat), the ``resent``-th re-send of a closure by ``citybrain runs resend``
    ``<call_id>:result:<resent>``. Before t148 a re-send's outcome took its first call's
    id: read again after a crash, the first call's failure was taken for the re-send's
    outcome and the re-send's own outcome dropped as a repeat (the closure shown
    undelivered though delivered, given up twice in the audit)."""
    return f"{call_id}:result" if resent <= 0 else f"{call_id}:result:{resent}"


def with_undelivered(group: dict[str, Any], reply: Any, detail: str, at: float) -> dict[str, Any]:
    """``group`` with ``reply`` (a ``reply/1`` document whose webhook call was given up)
    among its undelivered closures, by its reply id, saying why (``detail``) and when
    (``at``, epoch s)."""
    doc = reply if isinstance(reply, dict) else {}
    undelivered = dict(group.get(UNDELIVERED) or {})
    undelivered[str(doc.get("reply_id"))] = {"reply": doc, "failed_at": at, "detail": detail}
    return {**group, UNDELIVERED: undelivered}


def undelivered_of_group(group: Any) -> dict[str, dict[str, Any]]:
    """Every undelivered closure of ``group`` (as stored), of any of its runs, by reply id
    (``with_undelivered``'s entries; anything else stored there is left out)."""
    entries = (group.get(UNDELIVERED) or {}) if isinstance(group, dict) else {}
    return {rid: e for rid, e in entries.items() if isinstance(e, dict)}


def undelivered_of(group: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """The undelivered closures of ``group`` (as stored) sent by run ``run_id``, by reply
    id (``with_undelivered``'s entries)."""
    return {
        rid: e
        for rid, e in undelivered_of_group(group).items()
        if (e.get("reply") or {}).get("run_id") == run_id
    }


def reply_document(run: Run, cmd: Command) -> dict[str, Any]:
    """The closure message of one ``reply`` command (see the module docstring)."""
    return {
        "schema": REPLY_SCHEMA,
        "reply_id": cmd.id,
        "report_id": cmd.data["report_id"],
        "channel": cmd.data["channel"],
        "run_id": run.run_id,
        "alert_id": run.alert_id,
        "category": cmd.data.get("category", run.kind),
        "grid_cell": run.grid_cell,
        "outcome": cmd.data["outcome"],
        "what": cmd.data["what"],
        "by": cmd.data.get("by", ""),
        "unit": cmd.unit,
        "level": cmd.level,
        "reopened": cmd.data.get("reopened", 0),
        # The department whose run closed this part of the report, and the report's
        # other parts (runs of other groups covering it, each closing with its own).
        "department": cmd.data.get("department", run.department),
        "also": cmd.data.get("also", []),
        "text": cmd.detail,
        "at": format_ts(cmd.at),
    }


def count_campaign(metrics: Metrics, run: Run, cmd: Command, department: str | None = None) -> None:
    """The campaign figures of one command as Prometheus counters (level, department);
    ``department``: the run's as a bounded label (``Context.label_department``), else
    the run's own."""
    level = cmd.level or run.level
    department = run.department if department is None else department
    if cmd.action in ("resolved", "cancelled"):
        metrics.campaign_runs_closed.labels(level, department, cmd.action).inc()
    elif cmd.action == "report_covered":
        metrics.campaign_reports.labels(level, department).inc()
    elif cmd.action == "reply":
        metrics.campaign_replies.labels(level, department, cmd.data["outcome"]).inc()
    elif cmd.action == "answer":
        satisfied = "true" if cmd.data.get("satisfied") else "false"
        metrics.campaign_answers.labels(level, department, satisfied).inc()
    elif cmd.action == "reopened":
        # The closing it undoes: net of these, closings count each run once by its
        # last outcome, as the campaign report does; by playbook too, so the resolution
        # ratio per playbook can be net of them (a run resolved twice was 2/1, trial 28).
        undone = str(cmd.data.get("outcome", "resolved"))
        metrics.campaign_reopened.labels(level, department, undone, run.playbook).inc()
