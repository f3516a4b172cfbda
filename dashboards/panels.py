"""Small builders shared by every dashboard: the datasource and common panel shapes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_UID = "citybrain-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return q.legend_format(legend) if legend else q


def series(
    title: str, unit: str, *queries: prometheus.Dataquery, description: str = "", width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        .description(description)
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(
    title: str, unit: str, q: prometheus.Dataquery, description: str = "", width: int = 6
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(4)
        .span(width)
        .description(description)
        .with_target(q)
    )
