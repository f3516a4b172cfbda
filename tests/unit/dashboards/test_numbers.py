"""The control room's numbers, computed by hand for made-up scenarios and checked on
Prometheus' own PromQL engine (promtool's offline rule tests, Debian's prometheus package):
each panel's and rule's expression, read from the committed JSON and rules file, after a
worker restart, with two workers, with no traffic yet, and each alert rule firing and not
firing with its ``for:`` duration (trial 28)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from citybrain.ingest.metrics import IngestMetrics
from dashboards.generate import BUILDERS, expressions
from dashboards.rules import SCRAPE_INTERVAL
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "dashboards" / "generated"
RULES = COMMITTED / "prometheus" / "citybrain-rules.yml"
# Grafana's least $__rate_interval: four of the datasource's scrape intervals.
RATE_INTERVAL = f"{4 * int(SCRAPE_INTERVAL.removesuffix('s'))}s"
# Debian's prometheus package, which the tests need anyway: missing, the test fails.
PROMTOOL = shutil.which("promtool") or "promtool"


def panel(uid: str, title: str) -> list[str]:
    """The PromQL of one panel of a committed dashboard, in refId order."""
    doc = json.loads((COMMITTED / "dashboards" / f"{uid}.json").read_text())
    found = [expr for where, expr in expressions(doc) if where == title]
    assert found, f"{uid} has no panel {title!r}"
    return found


def every_expression() -> list[tuple[str, str]]:
    found = []
    for uid in BUILDERS:
        doc = json.loads((COMMITTED / "dashboards" / f"{uid}.json").read_text())
        found += [(f"{uid}: {where}", expr) for where, expr in expressions(doc)]
    rules = re.findall(r"expr: (.*(?:\n {6}.*)*)", RULES.read_text())
    found += [("rules", " ".join(part.strip() for part in r.split("\n"))) for r in rules]
    return found


def promtool(tmp_path: Path, *tests: dict[str, Any], rules: bool = False) -> None:
    """Run promtool's unit tests ``tests`` (each: interval, input_series and
    promql_expr_test or alert_rule_test); fails with promtool's own diff."""
    doc = {"rule_files": [str(RULES)] if rules else [], "tests": list(tests)}
    path = tmp_path / "numbers-test.yml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def expect(expr: str, at: str, *samples: tuple[str, float]) -> dict[str, Any]:
    """A promql_expr_test: ``expr`` at ``at`` is exactly ``samples`` (none: no series)."""
    return {
        "expr": expr,
        "eval_time": at,
        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
    }


# -- histograms: quantiles from _bucket by le, and no NaN without observations ---------

QUANTILES = sorted(
    {(where, expr) for where, expr in every_expression() if "histogram_quantile" in expr}
)
QUANTILE = re.compile(
    r"histogram_quantile\(([0-9.]+), sum by \(le(?:, ([\w, ]+))?\) \(rate\((\w+)_bucket"
)
LABELS = {"playbook": "flood", "level": "community", "department": "water"}


def histogram(
    metric: str, instance: str, below: str, inside: str, above: str
) -> list[dict[str, str]]:
    """Buckets 60 and 120 (and +Inf) of ``metric`` on one worker: ``below`` the values of
    bucket 60, ``inside`` of bucket 120 and of +Inf and _count (nothing above 120 s)."""
    labels = ",".join(f'{k}="{v}"' for k, v in LABELS.items()) + f',instance="{instance}"'
    return [
        {"series": f'{metric}_bucket{{le="60",{labels}}}', "values": below},
        {"series": f'{metric}_bucket{{le="120",{labels}}}', "values": inside},
        {"series": f'{metric}_bucket{{le="+Inf",{labels}}}', "values": inside},
        {"series": f"{metric}_count{{{labels}}}", "values": inside},
        {"series": f"{metric}_sum{{{labels}}}", "values": "0+90x420"},
    ]


def test_every_quantile_expression_is_found() -> None:
    assert len(QUANTILES) >= 10
    for _, expr in QUANTILES:
        assert QUANTILE.search(expr), expr


@pytest.mark.parametrize(("where", "expr"), QUANTILES, ids=lambda v: str(v)[:70])
def test_a_quantile_is_no_data_without_observations_and_exact_with_them(
    tmp_path: Path, where: str, expr: str
) -> None:
    """No observation in the window (the last ones an hour before a 6 h window began, or
    none at all): no series, where every bucket's rate of 0 gave NaN, drawn as "NaN" and
    stored by the recording rules. Two workers each observing one value a minute in
    (60 s, 120 s]: the quantile q is 60 + 60 q, by the panel's labels, the workers summed."""
    match = QUANTILE.search(expr)
    assert match, expr
    q, by, metric = float(match.group(1)), match.group(2) or "", match.group(3)
    labels = "{" + ",".join(f'{k}="{LABELS[k]}"' for k in by.replace(" ", "").split(",") if k) + "}"
    # 7 h of samples a minute apart; the workers' last observations at minute 20.
    old = "0+1x20 20+0x400"
    promtool(
        tmp_path,
        {"interval": "1m", "input_series": [], "promql_expr_test": [expect(expr, "7h")]},
        {
            "interval": "1m",
            "input_series": histogram(metric, "a", "0+0x420", old, "")
            + histogram(metric, "b", "0+0x420", old, ""),
            "promql_expr_test": [expect(expr, "7h")],
        },
        {
            "interval": "1m",
            "input_series": histogram(metric, "a", "0+0x420", "0+1x420", "")
            + histogram(metric, "b", "0+0x420", "0+1x420", ""),
            "promql_expr_test": [expect(expr, "7h", (labels, 60 + 60 * q))],
        },
    )


# -- counters across a worker restart, two workers ---------------------------------------


def test_readings_per_second_sum_two_workers_one_of_them_restarted(tmp_path: Path) -> None:
    """Scraped every 5 s (docker/prometheus.yml), read over Grafana's least
    ``$__rate_interval`` (20 s): worker a reads 10/s of water levels, restarts at 5 min (its
    counter back to 0) and reads on at 10/s; worker b reads 10/s of pm25. At 10 min the
    city reads 20/s, 10 of each kind, and the restart is not a negative rate nor a jump."""
    (total,) = panel("citybrain-city-overview", "Readings/s")
    (by_kind,) = panel("citybrain-city-overview", "Readings/s by kind")
    total, by_kind = (e.replace("$__rate_interval", RATE_INTERVAL) for e in (total, by_kind))
    promtool(
        tmp_path,
        {
            "interval": SCRAPE_INTERVAL,
            "input_series": [
                {
                    "series": 'citybrain_readings_total{kind="water_level",instance="a"}',
                    "values": "0+50x60 0+50x100",
                },
                {
                    "series": 'citybrain_readings_total{kind="pm25",instance="b"}',
                    "values": "0+50x160",
                },
            ],
            "promql_expr_test": [
                expect(total, "10m", ("{}", 20)),
                expect(by_kind, "10m", ('{kind="water_level"}', 10), ('{kind="pm25"}', 10)),
            ],
        },
    )


def test_dead_letters_in_the_hour_count_a_restarted_workers_letters_once(tmp_path: Path) -> None:
    """Worker a dead-letters one message every 15 s for 7.5 min (30), restarts (0) and
    dead-letters 29 more; worker b 2 every 15 s for 15 min (120); the HTTP ingest refuses
    nothing. The hour's stat: 30 + 29 + 120 = 179, each letter once."""
    (stat,) = panel("citybrain-pipeline-health", "Dead letters (1h)")
    dead = 'citybrain_dead_letters_total{stream="readings",reason="bad_json",instance="%s"}'
    promtool(
        tmp_path,
        {
            "interval": "15s",
            "input_series": [
                {"series": dead % "a", "values": "0+1x30 0+1x29"},
                {"series": dead % "b", "values": "0+2x60"},
                {
                    "series": 'citybrain_ingest_refused_total{stream="http",reason="bad_json",'
                    'instance="i"}',
                    "values": "0+0x60",
                },
            ],
            "promql_expr_test": [expect(stat, "15m", ("{}", 179))],
        },
    )


# -- gauges each worker exports for the same thing ---------------------------------------


def test_the_threshold_line_is_one_line_with_two_workers(tmp_path: Path) -> None:
    """Every worker exports the score threshold: the panel drew one "threshold" line per
    worker; it is one line, at the threshold."""
    _, threshold = panel("citybrain-sensor-detail", "Anomaly score and threshold")
    promtool(
        tmp_path,
        {
            "interval": "15s",
            "input_series": [
                {"series": f'citybrain_score_threshold{{instance="{w}"}}', "values": "0.24x8"}
                for w in ("a", "b")
            ],
            "promql_expr_test": [expect(threshold, "1m", ("{}", 0.24))],
        },
    )


# -- ratios: never NaN, never 2/1 for one run, never below 0 -----------------------------


def resolution_series(resolved: str, reopened: str, started: str) -> list[dict[str, str]]:
    playbook = 'playbook="flood",department="water",instance="a"'
    return [
        {"series": f"citybrain_playbook_runs_total{{{playbook}}}", "values": started},
        {"series": f"citybrain_playbook_runs_resolved_total{{{playbook}}}", "values": resolved},
        {
            "series": "citybrain_campaign_runs_reopened_total{"
            f'level="community",outcome="resolved",{playbook}}}',
            "values": reopened,
        },
        {
            "series": "citybrain_campaign_runs_reopened_total{"
            f'level="community",outcome="cancelled",{playbook}}}',
            "values": "0x70",
        },
    ]


def test_a_run_resolved_reopened_and_resolved_again_is_one_resolution(tmp_path: Path) -> None:
    """In the hour one run started (minute 10), was resolved (20), reopened by an
    unsatisfied reporter (30) and resolved again (40): the resolution rate is 100 %, not
    200 % (each resolution counted, as trial 22 found for the campaign dashboard), on the
    city overview's panel and in the recording rule per playbook. An idle city reads 0."""
    (rate,) = panel("citybrain-city-overview", "Resolution rate (1h)")
    rule = 'citybrain:resolution_ratio:1h{playbook="flood"}'
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": resolution_series(
                resolved="0x20 1x20 2x30", reopened="0x30 1x40", started="0x10 1x60"
            ),
            "promql_expr_test": [
                expect(rate, "65m", ("{}", 1)),
                expect(
                    rule, "65m", ('{__name__="citybrain:resolution_ratio:1h",playbook="flood"}', 1)
                ),
            ],
        },
        {
            "interval": "1m",
            "input_series": resolution_series(resolved="0x70", reopened="0x70", started="0x70"),
            "promql_expr_test": [
                expect(rate, "65m", ("{}", 0)),
                expect(
                    rule, "65m", ('{__name__="citybrain:resolution_ratio:1h",playbook="flood"}', 0)
                ),
            ],
        },
        rules=True,
    )


def test_a_reopening_of_an_older_resolution_is_not_a_negative_rate(tmp_path: Path) -> None:
    """A run resolved 25 h ago is reopened 6 h ago; nothing else happened in the day. The
    campaign's resolution rate (24 h) and share solved at the first line read 0, not
    -100 % (the resolution is outside the window, its undoing inside)."""
    (rate,) = panel("citybrain-campaign", "Resolution rate (24h)")
    (first,) = panel("citybrain-campaign", "Solved at the first line (24h)")
    where = 'level="community",department="water",instance="a"'
    promtool(
        tmp_path,
        {
            "interval": "30m",
            "input_series": [
                {
                    "series": f'citybrain_campaign_runs_closed_total{{outcome="resolved",{where}}}',
                    "values": "0 1x60",
                },
                {
                    "series": "citybrain_campaign_runs_reopened_total{"
                    f'outcome="resolved",playbook="flood",{where}}}',
                    "values": "0x40 1x20",
                },
                {
                    "series": f'citybrain_playbook_runs_total{{playbook="flood",{where}}}',
                    "values": "1x60",
                },
            ],
            "promql_expr_test": [expect(rate, "26h", ("{}", 0)), expect(first, "26h", ("{}", 0))],
        },
    )


# -- the pipeline's alert rules: firing and not firing, after their for: -----------------


def alert(name: str, at: str, *firing: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": {"summary": summary}}
            for labels, summary in firing
        ],
    }


def test_worker_down_fires_after_a_minute_for_a_worker_that_was_up(tmp_path: Path) -> None:
    """w1 is up for 10 min then down; w2 was never up (a port nobody ran). At 11 min w1's
    alert is pending (for: 1m), at 12 min it fires; w2 never does."""
    worker = 'up{job="citybrain-worker",instance="%s"}'
    w1 = {"severity": "critical", "job": "citybrain-worker", "instance": "w1"}
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": worker % "w1", "values": "1x10 0x10"},
                {"series": worker % "w2", "values": "0x20"},
            ],
            "alert_rule_test": [
                alert("CitybrainWorkerDown", "10m"),
                alert("CitybrainWorkerDown", "11m"),
                alert("CitybrainWorkerDown", "12m", (w1, "citybrain worker w1 is down")),
            ],
        },
        rules=True,
    )


def test_ingest_down_fires_after_a_minute_for_an_ingest_that_was_up(tmp_path: Path) -> None:
    """The MQTT ingest is up for 10 min then down; the HTTP ingest's port was never up (not
    run here), and a worker going down is CitybrainWorkerDown's, not this rule's."""
    ingest = 'up{job="citybrain-ingest",instance="%s"}'
    mqtt = {"severity": "critical", "job": "citybrain-ingest", "instance": "mqtt:16081"}
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": ingest % "mqtt:16081", "values": "1x10 0x10"},
                {"series": ingest % "http:16080", "values": "0x20"},
                {"series": 'up{job="citybrain-worker",instance="w1"}', "values": "1x10 0x10"},
            ],
            "alert_rule_test": [
                alert("CitybrainIngestDown", "11m"),
                alert("CitybrainIngestDown", "12m", (mqtt, "citybrain ingest mqtt:16081 is down")),
            ],
        },
        rules=True,
    )


def test_loop_items_failing_fires_after_ten_minutes_of_an_item_left_at_every_pass(
    tmp_path: Path,
) -> None:
    """w1's deadline check leaves one run at every pass from minute 0 (pending until 10,
    firing at 11); its mute check left one for 3 min only (it went through)."""
    series = 'citybrain_loop_items_failing{instance="w1",loop="%s"}'
    deadlines = {"severity": "warning", "instance": "w1", "loop": "deadlines"}
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": series % "deadlines", "values": "1x20"},
                {"series": series % "mute_check", "values": "1x3 0x17"},
            ],
            "alert_rule_test": [
                alert("CitybrainLoopItemsFailing", "9m"),
                alert(
                    "CitybrainLoopItemsFailing",
                    "11m",
                    (
                        deadlines,
                        "1 item(s) left at every pass of the deadlines loop on w1 (the worker "
                        "log names them)",
                    ),
                ),
            ],
        },
        rules=True,
    )


def test_timer_failing_fires_after_five_minutes_of_failed_passes(tmp_path: Path) -> None:
    """w1's deadline timer fails every minute from minute 0; its burst sweep failed once."""
    series = 'citybrain_timer_failures_total{instance="w1",timer="%s"}'
    labels = {"severity": "critical", "instance": "w1", "timer": "deadlines"}
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": series % "deadlines", "values": "0+1x20"},
                {"series": series % "burst sweep", "values": "0 1x19"},
            ],
            "alert_rule_test": [
                alert(
                    "CitybrainTimerFailing",
                    "12m",
                    (labels, "the deadlines timer on w1 fails at every pass"),
                ),
            ],
        },
        rules=True,
    )


def test_task_messages_held_fires_once_the_oldest_is_five_minutes_old(tmp_path: Path) -> None:
    """t178: w1's flash-flood task message to tasks.drainage is held from minute 0 (its age
    grows a minute a minute): over 300 s from minute 6, pending, firing a minute later with
    the playbook, topic and age; w2's was held three minutes, then sent (0): quiet. w3
    is a worker SIGKILLed while Prometheus was down, whose last sample (held 400 s) a
    Prometheus started again shows for 5 min, unchanged, while its ``up`` is 0: quiet
    (t210: it fired for a worker that was gone, its messages held by another)."""
    series = 'citybrain_task_messages_held_oldest_seconds{instance="%s",playbook="flash-flood",topic="tasks.drainage"}'
    labels = {
        "severity": "warning",
        "instance": "w1",
        "playbook": "flash-flood",
        "topic": "tasks.drainage",
    }
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": series % "w1", "values": "0+60x20"},
                {"series": series % "w2", "values": "0+60x3 0x16"},
                {"series": series % "w3", "values": "400x4"},
                {"series": 'up{instance="w1"}', "values": "1x20"},
                {"series": 'up{instance="w2"}', "values": "1x20"},
                {"series": 'up{instance="w3"}', "values": "0x20"},
            ],
            "alert_rule_test": [
                alert("CitybrainTaskMessagesHeld", "2m"),  # w3's 400 s: quiet
                alert("CitybrainTaskMessagesHeld", "5m"),
                alert("CitybrainTaskMessagesHeld", "6m"),
                alert(
                    "CitybrainTaskMessagesHeld",
                    "7m",
                    (
                        labels,
                        "flash-flood's task messages to tasks.drainage held for 7m 0s on w1: "
                        "Kafka does not take that task topic (create it; the worker log names "
                        "it)",
                    ),
                ),
            ],
        },
        rules=True,
    )


def test_consumer_lag_growing_fires_after_five_minutes_over_a_thousand(tmp_path: Path) -> None:
    """w1's readings lag grows by 100 a minute (over 1,000 from minute 11): pending until
    minute 16, then firing with the lag; w2's lag stays at 5,000 (high, not growing)."""
    lag = 'citybrain_consumer_lag{topic="readings",instance="%s"}'
    w1 = {"severity": "warning", "topic": "readings", "instance": "w1"}
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": lag % "w1", "values": "0+100x30"},
                {"series": lag % "w2", "values": "5000x30"},
            ],
            "alert_rule_test": [
                alert("CitybrainConsumerLagGrowing", "15m"),
                alert(
                    "CitybrainConsumerLagGrowing",
                    "16m",
                    (w1, "readings lag is 1600 and growing"),
                ),
            ],
        },
        rules=True,
    )


def test_dead_letters_up_fires_for_a_worker_and_an_http_ingest_not_after_a_restart(
    tmp_path: Path,
) -> None:
    """Over 1/s for 5 min on one instance: w1 dead-letters 2/s, the HTTP ingest refuses
    1.5/s (its dead letters), w2 0.5/s; w3 2/s until a restart at minute 10 and 0.5/s
    after. A 5 min rate of a counter born at 0 passes 1/s at minute 3 (w1) and 4 (the
    ingest): at minute 4 nothing has lasted 5 min; at 9, w1, the ingest and w3 fire; at
    20, after w3's restart, w3 is quiet (0.5/s, the reset no negative or doubled rate)."""
    dead = 'citybrain_dead_letters_total{stream="readings",reason="bad_json",instance="%s"}'
    refused = 'citybrain_ingest_refused_total{stream="http",reason="missing_field",instance="i"}'
    w1 = ({"severity": "warning", "instance": "w1"}, "2 dead letters/s on w1")
    ingest = ({"severity": "warning", "instance": "i"}, "1.5 dead letters/s on i")
    w3 = ({"severity": "warning", "instance": "w3"}, "2 dead letters/s on w3")
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": dead % "w1", "values": "0+120x30"},
                {"series": dead % "w2", "values": "0+30x30"},
                {"series": dead % "w3", "values": "0+120x9 0+30x20"},
                {"series": refused, "values": "0+90x30"},
            ],
            "alert_rule_test": [
                alert("CitybrainDeadLettersUp", "4m"),
                alert("CitybrainDeadLettersUp", "9m", w1, ingest, w3),
                alert("CitybrainDeadLettersUp", "20m", w1, ingest),
            ],
        },
        rules=True,
    )


def test_event_to_alert_slow_fires_after_ten_minutes_and_not_without_alerts(
    tmp_path: Path,
) -> None:
    """Every alert 0.25-0.5 s after its reading: p99 0.4975 s > 0.25 s from the first
    rate (minute 1), pending until minute 10, firing at 11. Every alert under 0.25 s: quiet. No alert at all: quiet (no
    NaN series to compare)."""
    bucket = 'citybrain_event_to_alert_seconds_bucket{le="%s",instance="w1"}'
    count = 'citybrain_event_to_alert_seconds_count{instance="w1"}'

    def latencies(fast: str, slow: str) -> list[dict[str, str]]:
        return [
            {"series": bucket % "0.25", "values": fast},
            {"series": bucket % "0.5", "values": slow},
            {"series": bucket % "+Inf", "values": slow},
            {"series": count, "values": slow},
        ]

    slow = ({"severity": "warning"}, "event-to-alert p99 is 0.4975s")
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": latencies("0x30", "0+10x30"),
            "alert_rule_test": [
                alert("CitybrainEventToAlertSlow", "10m"),
                alert("CitybrainEventToAlertSlow", "11m", slow),
            ],
        },
        {
            "interval": "1m",
            "input_series": latencies("0+10x30", "0+10x30"),
            "alert_rule_test": [alert("CitybrainEventToAlertSlow", "20m")],
        },
        {
            "interval": "1m",
            "input_series": latencies("0x30", "0x30"),
            "alert_rule_test": [alert("CitybrainEventToAlertSlow", "20m")],
        },
        rules=True,
    )


def test_feed_silent_fires_after_three_usual_gaps_and_ten_minutes_at_least(
    tmp_path: Path,
) -> None:
    """Three feeds on a 1-minute scrape. traffic_flow reports every minute (usual gap 60 s:
    the 10 min floor) until minute 30: pending at 41 (660 s), firing at 42 (720 s).
    pm25 reports in hourly bursts (usual gap 3,600 s) at 0, 60, ..., 180 min, then stops:
    quiet between bursts and at 360 min (3 h of silence, not past three gaps), firing from
    362. water_level's worker restarts at minute 20 and the new one never counts a reading
    of it (no series): the day's samples still hold its last reading, so it fires at 32."""
    last = 'citybrain_feed_last_reading_timestamp_seconds{kind="%s",instance="%s"}'
    gap = 'citybrain_feed_usual_gap_seconds{kind="%s",instance="%s"}'
    bursts = " ".join(f"{h * 3600}x59" for h in range(3)) + " 10800x300"

    def firing(kind: str, silent: str) -> tuple[dict[str, str], str]:
        return ({"severity": "warning", "kind": kind}, f"no {kind} reading for {silent}")

    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": last % ("traffic_flow", "w1"), "values": "0+60x30 1800x400"},
                {"series": gap % ("traffic_flow", "w1"), "values": "60x430"},
                {"series": last % ("pm25", "w1"), "values": bursts},
                {"series": gap % ("pm25", "w1"), "values": "0 3600x480"},
                {"series": last % ("water_level", "w2"), "values": "0+60x20"},
                {"series": gap % ("water_level", "w2"), "values": "30x20"},
            ],
            "alert_rule_test": [
                alert("CitybrainFeedSilent", "20m"),
                alert("CitybrainFeedSilent", "31m"),
                alert("CitybrainFeedSilent", "32m", firing("water_level", "12m 0s")),
                alert(
                    "CitybrainFeedSilent",
                    "42m",
                    firing("traffic_flow", "12m 0s"),
                    firing("water_level", "22m 0s"),
                ),
                alert(
                    "CitybrainFeedSilent",
                    "360m",
                    firing("traffic_flow", "5h 30m 0s"),
                    firing("water_level", "5h 40m 0s"),
                ),
                alert(
                    "CitybrainFeedSilent",
                    "362m",
                    firing("pm25", "3h 2m 0s"),
                    firing("traffic_flow", "5h 32m 0s"),
                    firing("water_level", "5h 42m 0s"),
                ),
            ],
        },
        rules=True,
    )


# -- every label a query names is one its metric is exported with ------------------------


def exported_labels() -> dict[str, set[str]]:
    """Each exported series name (``_total``, ``_bucket``... included) and its labels."""
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    ingest = IngestMetrics.create("http", lambda: 0, CollectorRegistry())
    found: dict[str, set[str]] = {}
    for family in [*vars(metrics).values(), ingest.dead_letters, ingest.refused]:
        names = set(getattr(family, "_labelnames", ()))
        base = family._name  # prometheus_client keeps the base name here
        kind = family._type
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for suffix in suffixes.get(kind, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            found.setdefault(base + suffix, set()).update(names | extra)
    found["citybrain_ingest_readings_total"] = {"stream"}
    found["citybrain:cell_location"] = {"community", "name", "lat", "lon"}
    # faust's own sensor (streams/faust_metrics.py), the process collector, Prometheus.
    found["faust_messages_received_per_topic_total"] = {"topic"}
    found["process_start_time_seconds"] = set()
    found["up"] = set()
    return found


METRIC = r"\b(citybrain[_:][a-z0-9_:]+|faust_[a-z_]+|process_[a-z_]+|up)\b(?!\s*\()"
SCRAPED = {"instance", "job"}  # added by Prometheus to every scraped series


def test_every_label_a_query_names_is_exported_with_its_metric() -> None:
    """A selector's matchers name labels of its own metric; a ``by``, ``on`` or
    ``group_left`` names a label of a metric in the expression (a label no series has is
    a panel that sums everything into one line, or matches nothing, in silence)."""
    labels = exported_labels()
    for where, expr in every_expression():
        used = set(re.findall(METRIC, expr))
        assert used <= labels.keys(), f"{where}: {expr} uses {used - labels.keys()}"
        for name, matchers in re.findall(METRIC + r"\{([^}]*)\}", expr):
            named = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert named <= labels[name] | SCRAPED, f"{where}: {name} has no {named - labels[name]}"
        everything = set().union(*(labels[n] for n in used)) | SCRAPED
        for clause in re.findall(r"\b(?:by|on|without|group_left|ignoring)\s*\(([^)]*)\)", expr):
            named = {label.strip() for label in clause.split(",") if label.strip()}
            assert named <= everything, f"{where}: {expr} groups by {named - everything}"


# -- label values with quotes, backslashes, regex metacharacters and non-ASCII ------------

# Cell ids may hold regex metacharacters and any letters (quotes and backslashes are
# refused by the grid loader, playbooks/loader.py); names may hold any text.
CELLS = [
    ("c.1", 'The "Old" Mill \\ yard', 52.5, 13.4),
    ("cx1", "[x]+(y)? $^{}|*", 52.6, 13.5),
    ("Grünau (Süd)", "Zürich – Höngg, 北京", 47.4, 8.5),
]


def grafana_regex(value: str) -> str:
    """A multi-value variable's value as Grafana's Prometheus datasource writes it into
    ``=~"$var"`` (``prometheusSpecialRegexEscape``: each regex metacharacter gets a
    backslash, itself escaped for the PromQL string)."""
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def test_the_map_and_the_drill_down_carry_any_cell_name_and_id(tmp_path: Path) -> None:
    """Location rules for cells named with quotes, a backslash, regex metacharacters and
    non-ASCII, written as the stack and `dashboards generate` write them and loaded by
    Prometheus: the map's alerts layer names each cell exactly at its position, and the
    drill-down, with one community chosen, shows that community only (``c.1``'s dot does
    not match ``cx1``; the parentheses of ``Grünau (Süd)`` are literal)."""
    import yaml

    from dashboards.rules import location_rules

    grid = {
        "cells": [
            {"id": cell, "level": "community", "name": name, "lat": lat, "lon": lon}
            for cell, name, lat, lon in CELLS
        ]
    }
    locations = tmp_path / "locations.yml"
    locations.write_text(yaml.safe_dump(location_rules(grid), sort_keys=False, allow_unicode=True))
    (alerts_layer, _) = panel(
        "citybrain-city-overview", "Alerts opened in the last hour and open runs, by community cell"
    )
    (by_community,) = panel("citybrain-grid-drilldown", "Readings/s by community")
    alerts, readings = [], []
    for i, (cell, _, _, _) in enumerate(CELLS):
        where = f'district="d",street="s",community="{quoted(cell)}",instance="w"'
        alerts.append(
            {
                "series": f'citybrain_cell_alerts_total{{{where},kind="water_level"}}',
                "values": f"0+{i + 1}x70",
            }
        )
        # (i + 1) readings a second, scraped every 5 s for 10 minutes.
        readings.append(
            {
                "series": f"citybrain_cell_readings_total{{{where}}}",
                "values": f"0+{5 * (i + 1)}x120",
            }
        )
    located = [
        (
            f'{{community="{quoted(cell)}",name="{quoted(name)}",lat="{lat:.6f}",lon="{lon:.6f}"}}',
            60.0 * (i + 1),
        )
        for i, (cell, name, lat, lon) in enumerate(CELLS)
    ]
    cases = []
    for i, (cell, _, _, _) in enumerate(CELLS):
        chosen = (
            by_community.replace("$district", ".*")
            .replace("$street", ".*")
            .replace("$community", grafana_regex(cell))
            .replace("$__rate_interval", RATE_INTERVAL)
        )
        cases.append(expect(chosen, "10m", (f'{{community="{quoted(cell)}"}}', i + 1.0)))
    doc = {
        "rule_files": [str(locations)],
        "tests": [
            {
                "interval": "1m",
                "input_series": alerts,
                "promql_expr_test": [expect(alerts_layer, "70m", *located)],
            },
            {"interval": SCRAPE_INTERVAL, "input_series": readings, "promql_expr_test": cases},
        ],
    }
    path = tmp_path / "labels-test.yml"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- windows: never shorter than the scrapes they need -----------------------------------


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = re.fullmatch(r"([0-9.]+)(ms|s|m|h|d)", duration).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def test_every_window_holds_four_scrapes_and_grafana_knows_the_scrape_interval() -> None:
    """A range shorter than the scrape interval is empty: ``rate(x[1m])`` on a Prometheus
    that scrapes every minute (its default) drew nothing. Per-second panels use Grafana's
    ``$__rate_interval``, four of the datasource's ``timeInterval`` at least, and that is
    the compose Prometheus's scrape interval (the stack's scrapes more often); every fixed
    window of a panel or rule holds at least four scrapes of either."""
    import yaml

    from citybrain.stack import PrometheusServer
    from dashboards.provisioning import datasources

    compose = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    scrape = seconds(compose["global"]["scrape_interval"])
    assert seconds(SCRAPE_INTERVAL) == scrape
    assert datasources()["datasources"][0]["jsonData"]["timeInterval"] == SCRAPE_INTERVAL
    import inspect

    stack = inspect.signature(PrometheusServer.__init__).parameters["scrape_interval"].default
    assert seconds(stack) <= scrape
    for where, expr in every_expression():
        for window in re.findall(r"\[([^\]]+)\]", expr):
            if window == "$__rate_interval":
                continue
            assert seconds(window) >= 4 * scrape, f"{where}: [{window}] in {expr}"
        if "rate(" in expr and where != "rules" and "histogram_quantile" not in expr:
            assert "$__rate_interval" in expr, f"{where}: {expr} has a fixed rate window"


# -- a reason's first dead letter: counted only if its series was there before ----------


def test_the_first_dead_letter_of_a_reason_is_counted_because_its_series_exists_at_0(
    tmp_path: Path,
) -> None:
    """``increase()`` never counts a series' first sample: a reason's series born at its
    first dead letter (value 1) read 0 on "Dead letters (1h)". Every reason a worker
    stream or an ingest can give exists at 0 from the start (streams/metrics.py
    ``DEAD_LETTER_REASONS``), so the same dead letter reads 1."""
    (stat,) = panel("citybrain-pipeline-health", "Dead letters (1h)")
    dead = 'citybrain_dead_letters_total{stream="readings",reason="bad_unit",instance="w"}'
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [{"series": dead, "values": "_x10 1x20"}],
            "promql_expr_test": [expect(stat, "30m", ("{}", 0))],  # born at 1: unseen
        },
        {
            "interval": "1m",
            "input_series": [{"series": dead, "values": "0x10 1x20"}],
            "promql_expr_test": [expect(stat, "30m", ("{}", 1))],
        },
    )


def test_every_reason_the_code_and_docs_give_exists_at_0_from_the_start() -> None:
    from streams.metrics import DEAD_LETTER_REASONS, initialise

    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    initialise(metrics, {}, (), (), 0.5)
    zero = {
        (s.labels["stream"], s.labels["reason"])
        for family in registry.collect()
        if family.name == "citybrain_dead_letters"
        for s in family.samples
        if s.value == 0
    }
    for stream, reasons in DEAD_LETTER_REASONS.items():
        assert {(stream, r) for r in reasons} <= zero
    listed = (ROOT / "docs" / "events.md").read_text().split("Reason codes:", 1)[1]
    listed = listed.split("A JSON integer beyond", 1)[0]
    # The paragraph's backticked snake_case words, less the fields it names.
    fields = {"report_id", "alert_id", "run_id", "command_id", "grid_cell", "action_result"}
    fields |= {"sensor_id", "started_at", "ended_at"}  # the alert fields bad_alert names
    fields |= {"grouped_at"}  # the routed field bad_routed names
    fields |= {"resend_closures"}  # the command action unknown_run names (t211)
    documented = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", listed)) - fields
    given = set().union(*DEAD_LETTER_REASONS.values())
    # Every code the worker's source raises or dead-letters with, and every documented one.
    source = "\n".join(p.read_text() for p in (ROOT / "streams").glob("*.py"))
    raised = set(re.findall(r'EventError\(\s*"([a-z_]+)"', source))
    raised |= set(re.findall(r'dead_letter\(\s*"[a-z]+",\s*\w+,\s*"([a-z_]+)"', source))
    assert raised, "no reason found in the source"
    assert raised <= given, raised - given
    assert {"bad_unit", "out_of_order", "unknown_run", "detector_error"} <= documented
    assert documented <= given, documented - given


def test_config_differs_fires_when_workers_run_different_files_for_five_minutes(
    tmp_path: Path,
) -> None:
    """w1 and w2 agree, w2 reloads at minute 2 (w1 not until minute 5: no alert), then w2
    reloads again at minute 8 and w1 never follows (alert from minute 13)."""
    series = 'citybrain_config_hash{instance="%s"}'
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": series % "w1", "values": "7 7 7 7 7 9x20"},
                {"series": series % "w2", "values": "7 7 9 9 9 9 9 9 11x20"},
            ],
            "alert_rule_test": [
                alert("CitybrainConfigDiffers", "6m"),
                alert("CitybrainConfigDiffers", "12m"),
                alert(
                    "CitybrainConfigDiffers",
                    "14m",
                    (
                        {"severity": "warning"},
                        "2 different configurations (playbooks, routing, grid, tokens) run "
                        "across the workers: send each worker its SIGHUP (or restart it) so they all "
                        "use the same files",
                    ),
                ),
            ],
        },
        rules=True,
    )


def test_config_reload_failed_fires_after_ten_minutes_of_a_refused_reload(
    tmp_path: Path,
) -> None:
    """w1's reload is refused at minute 2 and stays so; w2's refused one is followed by a
    good reload 5 min later (no alert); w3 never reloaded (1 from its start)."""
    series = 'citybrain_config_last_reload_successful{instance="%s"}'
    promtool(
        tmp_path,
        {
            "interval": "1m",
            "input_series": [
                {"series": series % "w1", "values": "1 1 0x20"},
                {"series": series % "w2", "values": "1 1 0 0 0 0 0 1x15"},
                {"series": series % "w3", "values": "1x22"},
            ],
            "alert_rule_test": [
                alert("CitybrainConfigReloadFailed", "8m"),
                alert(
                    "CitybrainConfigReloadFailed",
                    "13m",
                    (
                        {"severity": "warning", "instance": "w1"},
                        "the configuration reload on w1 failed: it runs its previous "
                        "playbooks, routing, grid and tokens (its log names the error)",
                    ),
                ),
            ],
        },
        rules=True,
    )


# A counter restarts at 0 with its worker (a kill, a restart, a new pod): Prometheus'
# rate() and increase() take a drop as a reset, a bare counter or a sum of counters
# drops by the dead worker's total and jumps back (t152: the control room reads every
# total as an increase over a window, docs/operations.md "Counters across a restart").
# (Grafana's label_values reads a series' labels for a template variable, no value.)
RESET_AWARE = frozenset({"rate", "irate", "increase", "resets", "label_values"})
COUNTER = re.compile(r"\b((?:citybrain|prometheus)_[a-z0-9_]*?(?:_total|_count|_sum|_bucket))\b")


def enclosing_call(expr: str, at: int) -> str:
    """The function whose parentheses hold position ``at`` of ``expr`` most closely
    ("" at the top level, or for an aggregation's grouping or a plain bracket)."""
    depth = 0
    for i in range(at - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth == 0:
                name = re.search(r"([a-z_]+)\s*$", expr[:i])
                return name.group(1) if name else ""
            depth -= 1
    return ""


def test_every_counter_a_panel_or_rule_reads_is_read_through_rate_or_increase() -> None:
    """t152: a stat panel summing a counter as it stands (``sum(citybrain_alerts_total)``)
    drops to 0 when a worker is killed and climbs again: a control room reading totals
    must read ``increase()`` over a window, which counts across the reset."""
    found: list[str] = []
    exprs = [
        (f"{path.stem}: {where}", expr)
        for path in sorted((COMMITTED / "dashboards").glob("*.json"))
        for where, expr in expressions(json.loads(path.read_text()))
    ]
    rules = RULES.read_text()
    exprs += [("rules", e) for e in re.findall(r"expr: (.+)", rules)]
    assert len(exprs) > 40
    for where, expr in exprs:
        for match in COUNTER.finditer(expr):
            call = enclosing_call(expr, match.start())
            if call not in RESET_AWARE:
                found.append(f"{where}: {match.group(1)} read by {call or 'nothing'}: {expr}")
    assert found == []
