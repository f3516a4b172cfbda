"""Grid drill-down: district -> street -> community, as template variables."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import RATE_WINDOW, query, series, variable
from streams import metrics as m

UID = "citybrain-grid-drilldown"
CELLS = 'district=~"$district", street=~"$street", community=~"$community"'


def build() -> Dashboard:
    return (
        Dashboard("citybrain / Grid drill-down")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(
            variable("district", "District", f"label_values({m.CELL_READINGS}, district)")
        )
        .with_variable(
            variable(
                "street",
                "Street",
                f'label_values({m.CELL_READINGS}{{district=~"$district"}}, street)',
            )
        )
        .with_variable(
            variable(
                "community",
                "Community",
                f'label_values({m.CELL_READINGS}{{district=~"$district", street=~"$street"}}, '
                f"community)",
            )
        )
        .with_panel(
            series(
                "Readings/s by community",
                "ops",
                query(
                    f"sum by (community) (rate({m.CELL_READINGS}{{{CELLS}}}[{RATE_WINDOW}]))",
                    "{{community}}",
                ),
            )
        )
        .with_panel(
            series(
                "Alerts opened by kind",
                "short",
                query(f"sum by (kind) (increase({m.CELL_ALERTS}{{{CELLS}}}[1h]))", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Alerts opened by street",
                "short",
                query(
                    f'sum by (street) (increase({m.CELL_ALERTS}{{district=~"$district"}}[1h]))',
                    "{{street}}",
                ),
                width=24,
            )
        )
    )
