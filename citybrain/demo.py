"""``citybrain demo``: the whole loop on real data, end to end, on the local stack.

Starts Kafka and Prometheus (installing what is missing), a worker in its own process,
replays canonical CSVs as fast as possible, shows live readings/s, anomalies, alerts
and playbook runs, then writes a summary built from what is on the Kafka topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from citybrain.report import build_report, readings_frame
from citybrain.stack import KafkaBroker, PrometheusServer
from citybrain.stack.process import StackError, tail
from citybrain.stack.topics import create_topics
from streams.events import Reading
from streams.feeds import Replayer, load_events
from streams.settings import REPO_ROOT, Settings

# The committed real slices the demo replays (datasets/README.md).
DEMO_DATA = tuple(
    REPO_ROOT / "datasets" / name
    for name in (
        "usgs_flood_2019-05.csv.gz",
        "beijing_air_2016-02.csv.gz",
        "aarhus_traffic_2014-08.csv.gz",
        "nyc311_2024-05-26.csv.gz",
    )
)


@dataclass(frozen=True)
class KnownEvent:
    """A real event in a committed slice that the demo expects to be alerted on."""

    name: str
    sensor_prefix: str
    start: str
    end: str


KNOWN_EVENTS = (
    KnownEvent(
        "Dead Run flash flood (Baltimore, 2019-05-11)",
        "usgs-01589330-",
        "2019-05-10T18:00:00Z",
        "2019-05-11T06:00:00Z",
    ),
    KnownEvent(
        "Spring Festival fireworks (Beijing, 2016-02-08 local)",
        "bj-",
        "2016-02-07T12:00:00Z",
        "2016-02-07T20:00:00Z",
    ),
)


def scrape(url: str) -> dict[str, float]:
    """A worker's /metrics summed by bare name and by ``name{label="value"}``."""
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
            # Also summed per single label, e.g. runs_open{status="waiting_ack"}.
            for k, v in sample.labels.items():
                one = f'{sample.name}{{{k}="{v}"}}'
                out[one] = out.get(one, 0.0) + sample.value
    return out


def prometheus_value(prom_url: str, query: str) -> float | None:
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            result = json.load(resp)["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def drop_old_demo_topics(settings: Settings) -> None:
    """Earlier demos' topics are deleted so the broker does not grow run after run."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_python_options()
    )
    try:
        old = [t for t in admin.list_topics() if t.startswith("demo-")]
        if old:
            admin.delete_topics(old)
    finally:
        admin.close()


def read_topic(settings: Settings, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        group_id=None,
        **settings.kafka_python_options(),
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def summarise(
    settings: Settings,
    metrics: dict[str, float],
    prom: float | None,
    sensors: set[str],
    sensor_days: float = 0.0,
) -> dict[str, Any]:
    """The demo's summary; ``sensor_days`` (the replayed sensors' spans, summed) turns the
    alerts outside every known event into false alarms per 1,000 sensor-days."""
    alerts: dict[str, dict[str, Any]] = {}
    for msg in read_topic(settings, settings.topic("alerts")):
        doc = json.loads(msg.value)
        entry = alerts.setdefault(
            doc["alert_id"],
            {
                "id": doc["alert_id"],
                "sensor_id": doc["sensor_id"],
                "kind": doc["kind"],
                "grid_cell": doc["grid_cell"],
                "severity": doc["severity"],
                "first_event_time": doc["started_at"],
                "last_event_time": None,
            },
        )
        if doc["status"] == "resolved":
            entry["last_event_time"] = doc["ended_at"]
            entry["severity"] = doc["severity"]
    steps = [json.loads(m.value) for m in read_topic(settings, settings.topic("steps"))]
    runs = {s["run_id"] for s in steps if s["action"] == "run_created"}
    escalations = {s["id"] for s in steps if s["action"] == "escalate"}
    dead = read_topic(settings, settings.topic("deadletter"))
    reasons: dict[str, int] = {}
    for msg in dead:
        reason = dict(msg.headers).get("citybrain.error.reason", b"?").decode()
        reasons[reason] = reasons.get(reason, 0) + 1
    alert_list = sorted(alerts.values(), key=lambda a: (a["first_event_time"], a["id"]))
    known = []
    for event in KNOWN_EVENTS:
        hits = [
            a
            for a in alert_list
            if a["sensor_id"].startswith(event.sensor_prefix)
            and event.start <= a["first_event_time"] <= event.end
        ]
        # Only events whose sensors were replayed; a replayed one with no alert is "missed".
        if any(s.startswith(event.sensor_prefix) for s in sensors):
            known.append({"event": event.name, "alerts": len(hits), "detected": bool(hits)})
    outside = [
        a
        for a in alert_list
        if not any(
            a["sensor_id"].startswith(e.sensor_prefix) and e.start <= a["first_event_time"] <= e.end
            for e in KNOWN_EVENTS
        )
    ]
    return {
        "readings": int(metrics.get("citybrain_readings_total", 0)),
        "incidents": int(metrics.get("citybrain_incidents_total", 0)),
        "dead_letters": len(dead),
        "dead_letter_reasons": reasons,
        "anomalies": int(metrics.get("citybrain_anomalies_total", 0)),
        "alerts": len(alert_list),
        "runs": len(runs),
        "escalations": len(escalations),
        "prometheus_readings_total": prom,
        "known_events": known,
        # Every alert outside the dated events counts: an upper bound on false alarms.
        "alerts_outside_known_events": len(outside),
        "false_alarms_per_1000_sensor_days": round(1000 * len(outside) / sensor_days, 1)
        if sensor_days > 0
        else None,
        "alert_list": alert_list,
    }


def _table(m: dict[str, float], rate: float, sent: int, total: int) -> Table:
    table = Table(title="citybrain - live", show_header=False, min_width=48)
    table.add_row("replayed", f"{sent:,} / {total:,}")
    table.add_row("readings/s (processed)", f"{rate:,.0f}")
    rows = [
        ("readings", "citybrain_readings_total"),
        ("incidents", "citybrain_incidents_total"),
        ("dead letters", "citybrain_dead_letters_total"),
        ("anomalies", "citybrain_anomalies_total"),
        ("alerts", "citybrain_alerts_total"),
        ("playbook runs", "citybrain_playbook_runs_total"),
        ("escalations", "citybrain_playbook_escalations_total"),
        ("runs open", "citybrain_playbook_runs_open"),
    ]
    for label, name in rows:
        table.add_row(label, f"{int(m.get(name, 0)):,}")
    return table


def write_report(settings: Settings, data: list[Path], path: Path, title: str) -> None:
    """The what-if report of a finished replay: its data files and its topics."""
    alerts = [json.loads(m.value) for m in read_topic(settings, settings.topic("alerts"))]
    steps = [json.loads(m.value) for m in read_topic(settings, settings.topic("steps"))]
    path.write_text(build_report(readings_frame(data), alerts, steps, title), encoding="utf-8")


def run_demo(
    data: list[Path],
    ack_deadline: float = 5.0,
    summary_path: Path | None = None,
    report_path: Path | None = None,
) -> dict[str, Any]:
    console = Console()
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    base = Settings()
    kafka, prom = KafkaBroker(base), PrometheusServer(base)
    console.print("[bold]citybrain demo[/]: starting the local stack (first run downloads Kafka)")
    kafka.start()
    prom.start()
    drop_old_demo_topics(base)
    # Fresh topics and consumer group per demo: a summary never mixes two runs.
    env = {
        **os.environ,
        "CITYBRAIN_TOPIC_PREFIX": f"demo-{run_id}",
        "CITYBRAIN_APP_ID": f"demo-{run_id}",
        "CITYBRAIN_ACK_DEADLINE_SECONDS": str(ack_deadline),
    }
    settings = Settings(
        topic_prefix=f"demo-{run_id}", app_id=f"demo-{run_id}", ack_deadline_seconds=ack_deadline
    )
    create_topics(settings)
    events = load_events(data)
    console.print(
        f"kafka {settings.kafka_bootstrap} | prometheus {prom.url} | "
        f"{len(events):,} events from {len(data)} files"
    )

    log_file = settings.run_dir / f"demo-worker-{run_id}.log"
    metrics_url = f"http://127.0.0.1:{settings.worker_port}/metrics"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_worker(worker, metrics_url, log_file)
        replayer = Replayer(
            settings.kafka_bootstrap,
            settings.topic("readings"),
            settings.topic("incidents"),
            settings.kafka_python_options(),
        )
        sent = [0]
        thread = threading.Thread(
            target=lambda: replayer.replay(
                events, None, lambda n: sent.__setitem__(0, sent[0] + n)
            ),
            daemon=True,
        )
        thread.start()
        metrics = _watch(console, worker, metrics_url, thread, sent, len(events), ack_deadline)
        replayer.close()
        time.sleep(2 * float(prom.scrape_interval.rstrip("s")))
        summary = summarise(
            settings,
            metrics,
            prometheus_value(prom.url, "sum(citybrain_readings_total)"),
            {e.sensor_id for e in events if isinstance(e, Reading)},
            _sensor_days(events),
        )
        summary["topic_prefix"] = settings.topic_prefix
        if report_path is not None:
            write_report(
                settings,
                data,
                report_path,
                f"citybrain what-if report: {', '.join(p.name for p in data)}",
            )
            console.print(f"report written to {report_path}")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    _print_summary(console, summary)
    if summary_path is not None:
        summary_path.write_text(json.dumps(summary, indent=2))
        console.print(f"summary written to {summary_path}")
    console.print("The stack is still running: [bold]citybrain stack down[/] stops it.")
    return summary


def _sensor_days(events: list[Any]) -> float:
    """The replayed readings' per-sensor spans (first to last reading), in days, summed."""
    spans: dict[str, tuple[float, float]] = {}
    for e in events:
        if isinstance(e, Reading):
            lo, hi = spans.get(e.sensor_id, (e.ts, e.ts))
            spans[e.sensor_id] = (min(lo, e.ts), max(hi, e.ts))
    return sum(hi - lo for lo, hi in spans.values()) / 86_400


def _wait_for_worker(worker: subprocess.Popen[bytes], url: str, log_file: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise StackError(f"worker exited ({worker.returncode}):\n{tail(log_file)}")
        try:
            scrape(url)
            return
        except OSError:
            time.sleep(0.5)
    raise StackError(f"worker not serving {url} after 90s:\n{tail(log_file)}")


def _watch(
    console: Console,
    worker: subprocess.Popen[bytes],
    url: str,
    replay: threading.Thread,
    sent: list[int],
    total: int,
    ack_deadline: float,
) -> dict[str, float]:
    """Live view until every event is processed and no run still waits for an ack."""
    metrics: dict[str, float] = {}
    last, last_t = 0.0, time.monotonic()
    settled_since: float | None = None
    give_up: float | None = None
    with Live(_table(metrics, 0, 0, total), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(0.5)
            if worker.poll() is not None:
                raise StackError(f"worker exited ({worker.returncode}) during the demo")
            metrics = scrape(url)
            now = time.monotonic()
            readings = metrics.get("citybrain_readings_total", 0.0)
            rate = (readings - last) / (now - last_t)
            last, last_t = readings, now
            live.update(_table(metrics, rate, sent[0], total))
            processed = sum(metrics.get(name, 0.0) for name in PROCESSED)
            waiting = sum(
                metrics.get(f'citybrain_playbook_runs_open{{status="{s}"}}', 0.0)
                for s in ("pending", "waiting_ack", "waiting_approval", "waiting_action")
            )
            if replay.is_alive():
                continue
            give_up = give_up or now + 120 + 4 * ack_deadline
            if processed >= total and not waiting:
                settled_since = settled_since or now
                # Alerts and runs trail the readings by a moment; let them settle.
                if now - settled_since > 3:
                    return metrics
            else:
                settled_since = None
            if now > give_up:
                console.print(
                    f"[yellow]gave up waiting: {processed:.0f} of {total} events "
                    f"processed, {waiting:.0f} runs waiting[/]"
                )
                return metrics


PROCESSED = (
    "citybrain_readings_total",
    "citybrain_incidents_total",
    "citybrain_readings_duplicate_total",
    "citybrain_readings_redelivered_total",
    "citybrain_dead_letters_total",
)


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="citybrain demo - summary", show_header=False)
    for key in (
        "readings",
        "incidents",
        "dead_letters",
        "anomalies",
        "alerts",
        "runs",
        "escalations",
        "prometheus_readings_total",
    ):
        table.add_row(key.replace("_", " "), str(summary[key]))
    console.print(table)
    for event in summary["known_events"]:
        mark = "[green]detected[/]" if event["detected"] else "[red]missed[/]"
        console.print(f"  {mark} {event['event']}: {event['alerts']} alert(s)")
    if summary.get("false_alarms_per_1000_sensor_days") is not None:
        console.print(
            f"  {summary['alerts_outside_known_events']} alert(s) outside the known events: "
            f"{summary['false_alarms_per_1000_sensor_days']} per 1,000 sensor-days"
        )
