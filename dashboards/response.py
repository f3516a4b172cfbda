"""Response: playbook runs by state, escalations by grid level, decisions waiting."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import annotation_layer, quantiles, query, series, single
from dashboards.rules import counted, live
from streams import metrics as m

UID = "citybrain-response"
WAITING_ACK = f'{m.RUNS_OPEN}{{status="waiting_ack"}}'


def build() -> Dashboard:
    return (
        Dashboard("citybrain / Response")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("10s")
        .time("now-6h", "now")
        .annotation(annotation_layer("Runs", ["citybrain", "run"]))
        .with_panel(
            single(
                "Approvals waiting", "short", query(counted(f"sum({live(m.APPROVALS_WAITING)})"))
            )
        )
        .with_panel(
            single(
                "Runs waiting for an acknowledgement",
                "short",
                query(counted(f"sum({live(WAITING_ACK)})")),
            )
        )
        .with_panel(
            single("Escalations (1h)", "short", query(f"sum(increase({m.ESCALATIONS}[1h]))"))
        )
        .with_panel(
            single(
                "Webhook failures (1h)",
                "short",
                query(f'sum(increase({m.WEBHOOK_CALLS}{{outcome="failed"}}[1h]))'),
            )
        )
        .with_panel(
            # Closures to citizens given up and not re-sent: `citybrain runs resend RUN_ID`.
            single(
                "Closures not delivered",
                "short",
                query(counted(f"sum({live(m.CLOSURES_UNDELIVERED)})")),
            )
        )
        .with_panel(
            # kafka steps waiting for a task topic Kafka does not take (t172, t178).
            single("Task messages held", "short", query(counted(f"sum({live(m.TASKS_HELD)})")))
        )
        .with_panel(
            # Citizen report offers waiting in their groups for a run to open (t193).
            single("Report offers held", "short", query(counted(f"sum({live(m.OFFERS_HELD)})")))
        )
        .with_panel(
            series(
                "Runs by status",
                "short",
                query(counted(f"sum by (status) ({live(m.RUNS_OPEN)})"), "{{status}}"),
            )
        )
        .with_panel(
            series(
                "Runs by playbook",
                "short",
                query(counted(f"sum by (playbook) ({live(m.RUNS_OPEN)})"), "{{playbook}}"),
            )
        )
        .with_panel(
            series(
                "Escalations by grid level",
                "short",
                query(f"sum by (level) (increase({m.ESCALATIONS}[1h]))", "to {{level}}"),
            )
        )
        .with_panel(
            series(
                "Acknowledgements by grid level",
                "short",
                query(f"sum by (level) (increase({m.ACKS}[1h]))", "{{level}}"),
            )
        )
        .with_panel(
            series(
                "Oldest held task message by task topic",
                "s",
                query(counted(f"max by (topic) ({live(m.TASKS_HELD_OLDEST)})"), "{{topic}}"),
            )
        )
        .with_panel(
            series(
                "Oldest held report offer",
                "s",
                query(counted(f"max({live(m.OFFERS_HELD_OLDEST)})"), "oldest"),
            )
        )
        .with_panel(
            series(
                "Approvals waiting by role",
                "short",
                query(counted(f"sum by (role) ({live(m.APPROVALS_WAITING)})"), "{{role}}"),
            )
        )
        .with_panel(
            series(
                "Time to acknowledge by level (p90)",
                "s",
                *quantiles(m.TIME_TO_ACK, "6h", by="level", qs=(0.9,)),
            )
        )
    )
