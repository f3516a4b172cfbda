"""City overview: what the control room looks at first."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards.panels import query, series, single
from streams import metrics as m

UID = "citybrain-city-overview"


def build() -> Dashboard:
    return (
        Dashboard("citybrain / City overview")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_row(Row("Now"))
        .with_panel(single("Readings/s", "ops", query(f"sum(rate({m.READINGS}[1m]))")))
        .with_panel(single("Alerts opened (1h)", "short", query(f"sum(increase({m.ALERTS}[1h]))")))
        .with_panel(
            single(
                "Runs open",
                "short",
                query(f"sum({m.RUNS_OPEN})"),
                description="Playbook runs not yet resolved",
            )
        )
        .with_panel(
            single("Dead letters (1h)", "short", query(f"sum(increase({m.DEAD_LETTERS}[1h]))"))
        )
        .with_row(Row("Sensors"))
        .with_panel(
            series(
                "Readings/s by kind",
                "ops",
                query(f"sum by (kind) (rate({m.READINGS}[1m]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Anomalous readings/s by kind",
                "ops",
                query(f"sum by (kind) (rate({m.ANOMALIES}[1m]))", "{{kind}}"),
            )
        )
        .with_row(Row("Alerts and response"))
        .with_panel(
            series(
                "Alerts opened by kind and grid level",
                "short",
                query(f"sum by (kind, level) (increase({m.ALERTS}[5m]))", "{{kind}} @ {{level}}"),
            )
        )
        .with_panel(
            series(
                "Alerts opened by severity",
                "short",
                query(f"sum by (severity) (increase({m.ALERTS}[5m]))", "{{severity}}"),
            )
        )
        .with_panel(
            series(
                "Playbook runs by status",
                "short",
                query(f"sum by (status) ({m.RUNS_OPEN})", "{{status}}"),
            )
        )
        .with_panel(
            series(
                "Escalations by grid level",
                "short",
                query(f"sum by (level) (increase({m.ESCALATIONS}[5m]))", "to {{level}}"),
            )
        )
        .with_row(Row("Pipeline"))
        .with_panel(
            series(
                "Event-to-alert latency",
                "s",
                query(
                    f"histogram_quantile(0.5, sum by (le) (rate({m.EVENT_TO_ALERT}_bucket[5m])))",
                    "p50",
                ),
                query(
                    f"histogram_quantile(0.99, sum by (le) (rate({m.EVENT_TO_ALERT}_bucket[5m])))",
                    "p99",
                    ref="B",
                ),
                description="From a reading's arrival in Kafka to its alert being sent",
            )
        )
        .with_panel(
            series(
                "Dead letters by reason",
                "short",
                query(
                    f"sum by (stream, reason) (increase({m.DEAD_LETTERS}[5m]))",
                    "{{stream}}: {{reason}}",
                ),
            )
        )
    )
