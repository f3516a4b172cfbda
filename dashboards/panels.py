"""Small builders shared by every dashboard: the datasource, panel shapes, variables."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, geomap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    AnnotationTarget,
    QueryVariable,
)
from grafana_foundation_sdk.models.common import FrameGeometrySourceMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE_UID = "citybrain-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
# Grafana's built-in annotation store, where citybrain writes alert and run regions.
GRAFANA_ANNOTATIONS = DataSourceRef(type_val="datasource", uid="grafana")


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


def quantiles(
    metric: str,
    window: str,
    by: str = "",
    qs: tuple[float, ...] = (0.5, 0.9),
) -> list[prometheus.Dataquery]:
    """histogram_quantile queries for ``metric`` (a histogram's base name)."""
    group = f"le, {by}" if by else "le"
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{window}])))",
            f"p{q * 100:g}{legend_by}",
            ref=chr(ord("A") + i),
        )
        for i, q in enumerate(qs)
    ]


def variable(name: str, label: str, expr: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(expr)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .multi(True)
        .all_value(".*")
    )


def annotation_layer(name: str, tags: list[str]) -> AnnotationQuery:
    return (
        AnnotationQuery()
        .name(name)
        .datasource(GRAFANA_ANNOTATIONS)
        .enable(True)
        .icon_color("red")
        .target(AnnotationTarget().type("tags").tags(tags).match_any(False).limit(500))
    )


def location_map(title: str, q: prometheus.Dataquery, description: str) -> geomap.Panel:
    """A Geomap of one instant table query whose rows carry ``lat`` and ``lon`` labels
    (from the ``citybrain:cell_location`` rules): one marker per row, sized and coloured
    by its value. Labels arrive as strings, so a transformation makes them numbers."""
    markers = (
        common.MapLayerOptions()
        .type("markers")
        .name(title)
        .location(
            common.FrameGeometrySource()
            .mode(FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "size": {"field": "Value", "min": 4, "max": 18, "fixed": 6},
                    "color": {"field": "Value"},
                },
            }
        )
        .tooltip(True)
    )
    numbers = DataTransformerConfig(
        id_val="convertFieldType",
        options={
            "conversions": [
                {"targetField": "lat", "destinationType": "number"},
                {"targetField": "lon", "destinationType": "number"},
            ]
        },
    )
    return (
        geomap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(10)
        .span(24)
        .with_target(q.instant().format(PromQueryFormat.TABLE))
        .view(geomap.MapViewConfig().id("fit"))
        .layers([markers])
        .with_transformation(numbers)
    )
