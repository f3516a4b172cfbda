"""Dashboards are code: the committed JSON is what the code generates, and every query
names a metric the worker or the ingest really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from prometheus_client import CollectorRegistry

from citybrain.ingest.metrics import IngestMetrics
from dashboards.generate import BUILDERS, expressions, generate
from dashboards.panels import DATASOURCE_UID
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "dashboards" / "generated"


def test_committed_files_match_a_fresh_generation(tmp_path: Path) -> None:
    written = generate(tmp_path)
    for path in written:
        committed = COMMITTED / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} missing: run `citybrain dashboards generate`"
        assert committed.read_text() == path.read_text(), (
            f"{committed} differs from the code: run `citybrain dashboards generate`"
        )
    on_disk = {p.relative_to(COMMITTED) for p in COMMITTED.rglob("*") if p.is_file()}
    assert on_disk == {p.relative_to(tmp_path) for p in written}


def exported_metric_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics.create(registry)
    ingest = CollectorRegistry()  # the ingest's own process; it shares dead_letters_total
    IngestMetrics.create("http", lambda: 0, ingest)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    # Labelled families have no samples until used, so derive the series names by type.
    families = [*registry.collect(), *ingest.collect()]
    return {family.name + suffix for family in families for suffix in suffixes[family.type]} | {
        f.name for f in families
    }


def test_every_query_uses_an_exported_metric() -> None:
    exported = exported_metric_names()
    for uid in BUILDERS:
        doc = json.loads((COMMITTED / "dashboards" / f"{uid}.json").read_text())
        exprs = list(expressions(doc))
        assert exprs
        for title, expr in exprs:
            used = set(re.findall(r"citybrain_[a-z0-9_]+", expr))
            # Also allowed: faust's own sensor, the process collector and Prometheus's up.
            others = set(re.findall(r"\b(faust_[a-z_]+|process_[a-z_]+|up)\b", expr))
            assert used or others, f"{title}: {expr} uses no metric"
            assert used <= exported, f"{title}: {expr} uses {used - exported}"


def test_dashboards_parse_as_sdk_models_and_use_the_provisioned_datasource() -> None:
    for uid in BUILDERS:
        doc = json.loads((COMMITTED / "dashboards" / f"{uid}.json").read_text())
        model = DashboardModel.from_json(doc)
        assert model.uid == uid and model.title
        sources = {p["datasource"]["uid"] for p in doc["panels"] if "datasource" in p}
        assert sources == {DATASOURCE_UID}


def test_provisioning_references_the_datasource_and_the_dashboard_folder() -> None:
    ds = yaml.safe_load((COMMITTED / "provisioning" / "datasources" / "citybrain.yaml").read_text())
    assert [d["uid"] for d in ds["datasources"]] == [DATASOURCE_UID]
    providers = yaml.safe_load(
        (COMMITTED / "provisioning" / "dashboards" / "citybrain.yaml").read_text()
    )
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/citybrain"


def test_panel_ids_are_unique_and_set() -> None:
    for uid in BUILDERS:
        doc = json.loads((COMMITTED / "dashboards" / f"{uid}.json").read_text())
        ids = [p["id"] for p in doc["panels"]]
        assert ids == list(range(1, len(ids) + 1))


def test_the_dead_letter_stat_counts_what_the_panel_and_the_alert_count() -> None:
    """Fourth new-user trial, item 11: the 1h stat left out the HTTP ingest's refusals,
    which the "Dead letters by reason" panel and CitybrainDeadLettersUp include."""
    doc = json.loads((COMMITTED / "dashboards" / "citybrain-pipeline-health.json").read_text())
    exprs = dict(expressions(doc))
    metrics = {
        title: set(re.findall(r"citybrain_[a-z0-9_]+", expr))
        for title, expr in exprs.items()
        if title.startswith("Dead letters")
    }
    assert metrics["Dead letters (1h)"] == metrics["Dead letters by reason"], metrics
    assert len(metrics["Dead letters (1h)"]) == 2


# Debian's prometheus package, which the tests need anyway (README; .ci/run installs it):
# a missing promtool fails the test rather than skipping it.
PROMTOOL = shutil.which("promtool") or "promtool"
DEAD = 'citybrain_dead_letters_total{stream="mqtt",reason="bad_json"}'
REFUSED = 'citybrain_ingest_refused_total{stream="http",reason="missing_field"}'


@pytest.mark.parametrize(
    ("series", "minus"),
    [
        ([DEAD, REFUSED], ["citybrain_dead_letters_total", "citybrain_ingest_refused_total"]),
        ([REFUSED], ["citybrain_ingest_refused_total"]),  # the old stat was empty here
        ([DEAD], ["citybrain_dead_letters_total"]),
        ([], []),  # nothing refused yet: 0, not "No data"
    ],
)
def test_the_dead_letter_stat_evaluates_to_both_sums(
    tmp_path: Path, series: list[str], minus: list[str]
) -> None:
    """The 1h stat, evaluated by promtool's offline rule tests on made-up series: it equals
    the sum of the increases of whichever of the two counters exist, and 0 with neither."""
    doc = json.loads((COMMITTED / "dashboards" / "citybrain-pipeline-health.json").read_text())
    stat = dict(expressions(doc))["Dead letters (1h)"]
    expr = f"({stat})" + "".join(f" - sum(increase({name}[1h]))" for name in minus)
    test = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": "0+3x70"} for s in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "65m",
                        "exp_samples": [{"labels": "{}", "value": 0}],
                    },
                    # The series did count (so the 0 above is not two empty sides).
                    *(
                        {
                            "expr": f"sum(increase({name}[1h])) > 0",
                            "eval_time": "65m",
                            "exp_samples": [{"labels": "{}", "value": 180}],
                        }
                        for name in minus
                    ),
                ],
            }
        ],
    }
    path = tmp_path / "stat-test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
