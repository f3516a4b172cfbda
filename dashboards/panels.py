"""Small builders shared by every dashboard: the datasource, panel shapes, variables."""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common, geomap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    AnnotationTarget,
    QueryVariable,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.common import FrameGeometrySourceMode
from grafana_foundation_sdk.models.common import MapLayerOptions as MapLayerOptionsModel
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards.rules import quantile

DATASOURCE_UID = "citybrain-prometheus"
# The window of a per-second panel: Grafana's own, never shorter than four scrapes, where a
# fixed [1m] is empty on a Prometheus that scrapes once a minute (its default).
RATE_WINDOW = "$__rate_interval"
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
    """histogram_quantile queries for ``metric`` (a histogram's base name); no data, not
    NaN, for a group with nothing observed in ``window`` (``rules.quantile``)."""
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        query(
            quantile(q, metric, window, by),
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


@dataclass(frozen=True)
class MapLayer:
    """One markers layer of a ``location_map``: its name, its instant query (rows carry
    ``lat`` and ``lon`` labels), a colour ("" to colour by value) and a marker symbol."""

    name: str
    q: prometheus.Dataquery
    color: str = ""
    symbol: str = "circle"


def location_map(title: str, description: str, *layers: MapLayer) -> geomap.Panel:
    """A Geomap of instant table queries whose rows carry ``lat`` and ``lon`` labels
    (from the ``citybrain:cell_location`` rules): one markers layer per query (refIds A,
    B, ...), one marker per row, sized by its value. Labels arrive as strings, so a
    transformation makes them numbers. With several queries Grafana names each value
    column ``Value #<refId>`` (its Prometheus ``transformDFToTable``), so each layer
    keeps its own frame (``filterData`` by refId) and sizes by its own column."""
    panel = geomap.Panel()
    built: list[Builder[MapLayerOptionsModel]] = []
    for i, layer in enumerate(layers):
        ref = chr(ord("A") + i)
        value = f"Value #{ref}" if len(layers) > 1 else "Value"
        color = {"fixed": layer.color} if layer.color else {"field": value}
        built.append(
            common.MapLayerOptions()
            .type("markers")
            .name(layer.name)
            .location(
                common.FrameGeometrySource()
                .mode(FrameGeometrySourceMode.COORDS)
                .latitude("lat")
                .longitude("lon")
            )
            .filter_data({"id": "byRefId", "options": ref})
            .config(
                {
                    "showLegend": True,
                    "style": {
                        "size": {"field": value, "min": 4, "max": 18, "fixed": 6},
                        "color": color,
                        "symbol": {
                            "mode": "fixed",
                            "fixed": f"img/icons/marker/{layer.symbol}.svg",
                        },
                    },
                }
            )
            .tooltip(True)
        )
        panel = panel.with_target(layer.q.ref_id(ref).instant().format(PromQueryFormat.TABLE))
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
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(10)
        .span(24)
        .view(geomap.MapViewConfig().id("fit"))
        .layers(built)
        .with_transformation(numbers)
    )
