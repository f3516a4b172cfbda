"""City overview: what the control room looks at first."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards.panels import (
    RATE_WINDOW,
    MapLayer,
    annotation_layer,
    location_map,
    quantiles,
    query,
    series,
    single,
)
from dashboards.rules import CELL_LOCATION_NOW, counted, live, resolution_ratio
from streams import metrics as m

UID = "citybrain-city-overview"


def build() -> Dashboard:
    return (
        Dashboard("citybrain / City overview")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("10s")
        .time("now-1h", "now")
        .annotation(annotation_layer("Runs", ["citybrain", "run"]))
        .with_row(Row("Now"))
        .with_panel(single("Readings/s", "ops", query(f"sum(rate({m.READINGS}[{RATE_WINDOW}]))")))
        .with_panel(single("Open alerts", "short", query(counted(f"sum({live(m.ALERTS_OPEN)})"))))
        .with_panel(
            single(
                "Open runs",
                "short",
                query(counted(f"sum({live(m.RUNS_OPEN)})")),
                description="Playbook runs not yet resolved",
            )
        )
        .with_panel(
            single("SLA breaches (24h)", "short", query(f"sum(increase({m.SLA_BREACHES}[24h]))"))
        )
        .with_row(Row("Map"))
        .with_panel(
            location_map(
                "Alerts opened in the last hour and open runs, by community cell",
                "Each marker is a community cell with a position in the grid file "
                "(docs/events.md). Circles: alerts opened there in the last hour (size and "
                "colour by count); blue squares: playbook runs open there now (size by "
                "count; cells with none have no square). Cells without lat/lon, and runs "
                "of street or district alerts, are not shown.",
                MapLayer(
                    "Alerts opened (1h)",
                    query(
                        f"sum by (community) (increase({m.CELL_ALERTS}[1h])) "
                        f"* on (community) group_left (name, lat, lon) {CELL_LOCATION_NOW}",
                        "{{name}}",
                    ),
                ),
                MapLayer(
                    "Open runs",
                    query(
                        counted(
                            f"(sum by (community) ({live(m.CELL_RUNS_OPEN)}) > 0) "
                            f"* on (community) group_left (name, lat, lon) {CELL_LOCATION_NOW}"
                        ),
                        "{{name}}",
                    ),
                    color="blue",
                    symbol="square",
                ),
            )
        )
        .with_row(Row("Sensors and alerts"))
        .with_panel(
            series(
                "Readings/s by kind",
                "ops",
                query(f"sum by (kind) (rate({m.READINGS}[{RATE_WINDOW}]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Open alerts by severity and grid level",
                "short",
                query(
                    counted(f"sum by (severity, level) ({live(m.ALERTS_OPEN)})"),
                    "{{severity}} @ {{level}}",
                ),
            )
        )
        .with_panel(
            series(
                "Alerts opened by kind and grid level",
                "short",
                query(f"sum by (kind, level) (increase({m.ALERTS}[5m]))", "{{kind}} @ {{level}}"),
            )
        )
        .with_panel(
            series(
                "Anomalous readings/s by kind",
                "ops",
                query(f"sum by (kind) (rate({m.ANOMALIES}[{RATE_WINDOW}]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Sensor alerts: real event or suspected sensor fault (1h)",
                "short",
                query(
                    f"sum by (label, assessment) (increase({m.ALERTS_CORROBORATION}[1h]))",
                    "{{label}} / {{assessment}}",
                ),
                description="Firing sensor alerts by neighbour corroboration: corroborated "
                "by a neighbour, isolated but decisive (an event), or isolated and routed "
                "to sensor-check as a suspected sensor fault (docs/detectors.md)",
            )
        )
        .with_row(Row("Response"))
        .with_panel(series("Time to acknowledge", "s", *quantiles(m.TIME_TO_ACK, "1h")))
        .with_panel(series("Time to resolve", "s", *quantiles(m.TIME_TO_RESOLVE, "1h")))
        .with_panel(
            series(
                "Resolution rate (1h)",
                "percentunit",
                query(resolution_ratio("1h"), "resolved / started"),
                description="Runs resolved in the last hour (net of the reopenings that "
                "undid a resolution: a run counts once) over runs started in it; 0 with "
                "none started; above 100 % when the hour closes runs started before it",
            )
        )
        .with_panel(
            series(
                "SLA breaches by playbook",
                "short",
                query(f"sum by (playbook) (increase({m.SLA_BREACHES}[1h]))", "{{playbook}}"),
            )
        )
    )
