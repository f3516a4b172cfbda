"""Every PromQL expression of every dashboard panel, template variable and Prometheus rule,
evaluated against the real Prometheus while it scrapes a worker that processed real
readings, alerts, a run and a dead letter: each must return at least one series."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from citybrain.campaign import campaign_report
from citybrain.stack import PrometheusServer
from citybrain.stack.prometheus import RULES
from dashboards.generate import BUILDERS, expressions, load
from dashboards.rules import ALERTS, RECORDINGS, SCRAPE_INTERVAL
from streams.events import IncidentReport
from tests.integration.test_pipeline import START, docs, real_levels, send_readings, steps_of
from tests.services import OPERATOR_TOKEN, ROOT, Pipeline, prometheus_query

pytestmark = pytest.mark.integration
GENERATED = ROOT / "dashboards" / "generated"
VARIABLES = {
    "$district": ".*",
    "$street": ".*",
    "$community": ".*",
    "$sensor": "gauge-1",
    # Grafana's least $__rate_interval: four of the datasource's scrape intervals.
    "$__rate_interval": f"{4 * int(SCRAPE_INTERVAL.removesuffix('s'))}s",
}
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


def all_expressions() -> list[tuple[str, str]]:
    found = []
    for uid in BUILDERS:
        doc = load(GENERATED / "dashboards" / f"{uid}.json")
        found += [(f"{uid}: {where}", expr) for where, expr in expressions(doc)]
    return found


def promql(expr: str) -> tuple[str, str | None]:
    """The PromQL to run, and for a Grafana label_values() variable the label it needs."""
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    match = LABEL_VALUES.match(expr)
    if match:
        return match.group(1), match.group(2)
    return expr, None


@pytest.fixture(scope="module")
def busy_worker(stack: PrometheusServer, run_dir: Path) -> Pipeline:
    """A worker that has seen everything the dashboards show."""
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "3",
            "CITYBRAIN_WATCH_SENSORS": "gauge-1",
            # The spikes below are sized for robust_zscore over a 48-reading window (Pipeline's
            # defaults); the tail detector, the default since issue 13, needs a longer history.
            "CITYBRAIN_DETECTOR": "robust_zscore",
            "CITYBRAIN_SCORE_THRESHOLD": "0.6",
        },
    )
    worker = p.worker().start()
    try:
        # The zero-valued series the worker creates at start (metrics.initialise) must be
        # scraped before the first event: increase() counts from the first sample it has,
        # so a run created and acknowledged before the first scrape left the time-to-ack
        # histograms and the campaign counters with nothing to show (a loaded CI, 13
        # queries with no series).
        first_scrape(stack)
        base = real_levels(60)
        send_readings(p, [*base[:40], base[39] * 8, *base[40:]], sensor="gauge-1")
        send_readings(p, [*base[:40], base[39] * 8], sensor="gauge-2", start=0)
        send_readings(p, [*base[:30], base[29] * 9], sensor="air-1", start=0)
        p.send("readings", b"gauge-1", b"not json")
        for i in range(8):
            p.send(
                "incidents",
                b"c-top",
                IncidentReport(
                    START + 7200 + i,
                    f"r{i}",
                    "Noise - Residential",
                    "Loud Music/Party",
                    "app",
                    "c-top",
                ).to_json(),
            )
        p.flush()
        steps = p.read("steps", lambda m: len(steps_of(m, "run_created")) >= 3)
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        assert p.api("POST", f"/runs/{run_id}/ack", OPERATOR_TOKEN)[0] == 202
        p.read("steps", lambda m: bool(steps_of(m, "acknowledged")))
        assert (
            p.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "checked"})[0] == 202
        )
        p.read("steps", lambda m: bool(steps_of(m, "resolved")))
        # The citizen side of the campaign dashboard: closures, an answer, a reopening.
        steps = p.read("steps", lambda m: len(steps_of(m, "report_covered")) >= 8)
        burst = next(
            d["run_id"]
            for d in steps_of(steps, "run_created")
            if d["playbook"] == "citizen-report-burst"
        )
        if burst != run_id:
            assert p.api("POST", f"/runs/{burst}/resolve", OPERATOR_TOKEN, {"note": "quiet"})[0]
        p.read("replies", lambda m: len(m) >= 8)
        answer = {"report_id": "r0", "satisfied": False, "comment": "still loud"}
        assert p.api("POST", f"/runs/{burst}/answer", OPERATOR_TOKEN, answer)[0] == 202
        p.read("steps", lambda m: bool(steps_of(m, "reopened")))
        # Long enough for several scrapes, so rate() and increase() have two samples.
        time.sleep(8)
        yield p  # type: ignore[misc]
    finally:
        worker.stop()
        p.close()


def first_scrape(stack: PrometheusServer, timeout: float = 60.0) -> None:
    """Wait until Prometheus holds a sample of the worker's zero-valued series."""
    deadline = time.monotonic() + timeout
    query = 'citybrain_playbook_time_to_ack_seconds_count{job="citybrain-worker"}'
    while not prometheus_query(stack.url, query):
        assert time.monotonic() < deadline, f"Prometheus scraped no worker in {timeout:.0f} s"
        time.sleep(0.5)


@pytest.mark.parametrize(("where", "expr"), all_expressions(), ids=lambda v: str(v)[:60])
def test_dashboard_query_returns_series(
    stack: PrometheusServer, busy_worker: Pipeline, where: str, expr: str
) -> None:
    query, label = promql(expr)
    result = prometheus_query(stack.url, query)
    assert result, f"{where}: {query} returned no series"
    if label is not None:
        assert any(label in r["metric"] for r in result), f"{where}: no {label} label"


@pytest.mark.parametrize("expr", [r.expr for r in RECORDINGS] + [a.base for a in ALERTS])
def test_rule_expression_returns_series(
    stack: PrometheusServer, busy_worker: Pipeline, expr: str
) -> None:
    assert prometheus_query(stack.url, expr), f"{expr} returned no series"


def test_alert_conditions_are_valid_promql_and_the_running_worker_is_not_down(
    stack: PrometheusServer, busy_worker: Pipeline
) -> None:
    results = {alert.name: prometheus_query(stack.url, alert.expr) for alert in ALERTS}
    # Whether lag, dead letters or latency alert depends on what else this Prometheus saw
    # in the session (a catch-up replay is slow by design); the worker serving now is up.
    instance = f"127.0.0.1:{busy_worker.settings.worker_port}"
    assert all(r["metric"].get("instance") != instance for r in results["CitybrainWorkerDown"])


def test_prometheus_loaded_the_rules_and_promtool_accepts_them(stack: PrometheusServer) -> None:
    check = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = subprocess.run(
        ["promtool", "check", "config", str(stack.config)], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    import json
    import urllib.request

    with urllib.request.urlopen(f"{stack.url}/api/v1/rules", timeout=5) as resp:
        groups = json.load(resp)["data"]["groups"]
    names = {r.get("name") for g in groups for r in g["rules"]}
    expected = yaml.safe_load(RULES.read_text())["groups"]
    expected += yaml.safe_load(stack.locations.read_text())["groups"]
    assert names == {r.get("record") or r.get("alert") for g in expected for r in g["rules"]}
    # One position per placed community cell of the stack's grid (the test grid: three).
    located = prometheus_query(stack.url, "citybrain:cell_location")
    assert {r["metric"]["community"] for r in located} == {"c-bridge", "c-mill", "c-top"}
    assert all(r.get("health") != "err" for g in groups for r in g["rules"])


def test_the_map_places_the_workers_open_runs_at_their_community(
    stack: PrometheusServer, busy_worker: Pipeline
) -> None:
    """The Geomap's runs layer (issue 15, item 12): open runs by the community of their
    alert, joined to the cell positions; every open run counted at its cell exactly once."""
    doc = load(GENERATED / "dashboards" / "citybrain-city-overview.json")
    (panel,) = [p for p in doc["panels"] if p.get("type") == "geomap"]
    (runs_layer,) = [t["expr"] for t in panel["targets"] if "cell_runs_open" in t["expr"]]
    placed = prometheus_query(stack.url, runs_layer)
    assert placed, f"{runs_layer} returned no series"
    for row in placed:
        assert row["metric"]["community"] in {"c-bridge", "c-mill", "c-top"}, row
        assert {"name", "lat", "lon"} <= row["metric"].keys(), row
        assert float(row["value"][1]) >= 1, row
    instance = f'instance="127.0.0.1:{busy_worker.settings.worker_port}"'
    # One series per cell of the test grid (seven), there before any run opened there.
    (count,) = prometheus_query(stack.url, f"count(citybrain_cell_runs_open{{{instance}}})")
    assert count["value"][1] == "7"
    # Both gauges come from the same pass over the runs, so one evaluation (one scrape of
    # the worker) agrees exactly.
    (diff,) = prometheus_query(
        stack.url,
        f"sum(citybrain_cell_runs_open{{{instance}}}) "
        f"- sum(citybrain_playbook_runs_open{{{instance}}})",
    )
    assert diff["value"][1] == "0"
    (by_status,) = prometheus_query(stack.url, f"sum(citybrain_playbook_runs_open{{{instance}}})")
    assert float(by_status["value"][1]) >= 1


def test_the_consumer_lag_panels_show_the_workers_source_topics_only(
    stack: PrometheusServer, busy_worker: Pipeline
) -> None:
    """Trial 9: "Consumer lag" read 176 at rest, from the tables' changelogs and faust's
    __assignor-__leader. The panels' own PromQL, on the real Prometheus scraping this
    worker: only topics the worker's agents consume, and at rest their lag drains to 0."""
    doc = load(GENERATED / "dashboards" / "citybrain-pipeline-health.json")
    (by_topic,) = [e for where, e in expressions(doc) if where == "Consumer lag by topic"]
    (total,) = [e for where, e in expressions(doc) if where == "Consumer lag"]
    instance = f'instance="127.0.0.1:{busy_worker.settings.worker_port}"'
    mine = by_topic.replace("citybrain_consumer_lag", f"citybrain_consumer_lag{{{instance}}}")
    topics = {r["metric"]["topic"] for r in prometheus_query(stack.url, mine)}
    settings = busy_worker.settings
    assert settings.topic("readings") in topics, topics
    for topic in topics:
        assert not topic.endswith("-changelog") and not topic.startswith("__"), topic
    # The worker has consumed everything sent (busy_worker waited for it): nothing lags.
    ours = total.replace("citybrain_consumer_lag", f"citybrain_consumer_lag{{{instance}}}")
    deadline = time.monotonic() + 60
    while float(prometheus_query(stack.url, ours)[0]["value"][1]) != 0:
        assert time.monotonic() < deadline, f"{ours} never drained to 0"
        time.sleep(0.2)  # Prometheus scrapes each second; polling as often overshot it


def test_the_sensor_variable_lists_a_watched_sensor_after_its_episode(
    stack: PrometheusServer, busy_worker: Pipeline
) -> None:
    """Trial 9: sensor_detail was empty after `make demo`: per-sensor series exist only
    while an episode is open at a scrape. A watched sensor (CITYBRAIN_WATCH_SENSORS, as
    the demo sets for its known events' sensors) is listed by the dashboard's own
    variable query on the real Prometheus all along."""
    doc = load(GENERATED / "dashboards" / "citybrain-sensor-detail.json")
    (variable,) = [e for where, e in expressions(doc) if where == "variable sensor"]
    query, label = promql(variable)
    assert label == "sensor_id"
    instance = f'instance="127.0.0.1:{busy_worker.settings.worker_port}"'
    mine = query.replace("citybrain_sensor_value", f"citybrain_sensor_value{{{instance}}}")
    listed = {r["metric"][label] for r in prometheus_query(stack.url, mine)}
    assert "gauge-1" in listed, listed


def test_the_campaign_series_agree_with_the_campaign_report(
    stack: PrometheusServer, busy_worker: Pipeline
) -> None:
    """Trial 22: the worker's campaign series, read from the live Prometheus, give the
    campaign report's figures for the same runs (every run of this worker: created,
    resolved and reopened in the period). The burst run was resolved, then reopened by an
    unsatisfied answer: counted at each closing it was a resolution the report does not
    count (the dashboard's resolution rate counted it); net of the reopening it is not."""
    records = docs(busy_worker.read("steps", lambda m: bool(steps_of(m, "reopened"))))
    report = campaign_report(records, {}, 0.0, time.time() + 3600)
    city = next(r for r in report["rows"] if r["scope"] == "city")["figures"]
    instance = f'instance="127.0.0.1:{busy_worker.settings.worker_port}"'

    def total(query: str) -> float:
        (row,) = prometheus_query(stack.url, query)
        return float(row["value"][1])

    closed = f'citybrain_campaign_runs_closed_total{{outcome="resolved",{instance}}}'
    undone = f'citybrain_campaign_runs_reopened_total{{outcome="resolved",{instance}}}'
    assert total(f"sum({closed}) - sum({undone})") == city["resolved"]
    assert total(f"sum(citybrain_campaign_runs_reopened_total{{{instance}}})") == city["reopened"]
    assert total(f"sum(citybrain_playbook_runs_total{{{instance}}})") == city["found"]
    assert total(f"sum(citybrain_campaign_reports_total{{{instance}}})") == city["reports"]
    assert city["reopened"] == 1 and city["reports"] >= 8


def grafana_value(var: dict[str, object], value: str) -> str:
    """One picked value as Grafana's Prometheus datasource puts it into a query
    (interpolateQueryExpr): for a multi-value or include-all variable, read with =~, its
    regex metacharacters backslashed, the backslash doubled for PromQL's string; else
    only backslashes and single quotes escaped."""
    if var.get("multi") or var.get("includeAll"):
        return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)
    return value.replace("\\", "\\\\").replace("'", "\\'")


@pytest.mark.parametrize("uid", ["citybrain-grid-drilldown", "citybrain-sensor-detail"])
def test_each_panel_answers_with_a_value_picked_in_each_variable(
    stack: PrometheusServer, busy_worker: Pipeline, uid: str
) -> None:
    """The parametrised test above reads every variable as "All" (`.*`); a control room
    picks one district, then a street of it, then a community, each list coming from its
    variable's own query with the choices before it in place (t123). With the first value
    of each list, as Grafana escapes it, every panel still answers, and only for the
    picked cells."""
    doc = load(GENERATED / "dashboards" / f"{uid}.json")
    variables = {var["name"]: var for var in doc["templating"]["list"]}
    picked: dict[str, str] = {}
    for var in variables.values():
        expr = var["query"]
        for name, value in sorted(picked.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(f"${name}", grafana_value(variables[name], value))
        match = LABEL_VALUES.match(expr)
        assert match, f"{uid}: variable {var['name']}: {expr} is not label_values()"
        query, label = match.group(1), match.group(2)
        # As Grafana's label_values(): the series without the label (a cell above the
        # level) give no option.
        rows = prometheus_query(stack.url, query)
        options = sorted({r["metric"][label] for r in rows if label in r["metric"]})
        assert options, f"{uid}: variable {var['name']} lists nothing ({query})"
        picked[var["name"]] = options[0]
    for where, expr in expressions(doc):
        if where.startswith("variable "):
            continue
        # The labels this panel narrows by a variable ("Alerts opened by street" shows
        # every street of the picked district).
        narrowed = {n for n in picked if re.search(rf'\b{n}(_id)?=~?"\${n}"', expr)}
        for name, value in sorted(picked.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(f"${name}", grafana_value(variables[name], value))
        query, _ = promql(expr)
        result = prometheus_query(stack.url, query)
        assert result, f"{uid}: {where}: {query} returned no series"
        for row in result:
            for name in narrowed:
                value = row["metric"].get(name, row["metric"].get(f"{name}_id"))
                assert value in (None, picked[name]), (where, row["metric"], picked)
