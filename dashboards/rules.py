"""Prometheus recording rules for the KPIs and alerting rules for the pipeline itself,
as code. Each alert keeps its measured expression (``base``) apart from its condition so
tests can check the measurement returns series on a healthy pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams import metrics as m

WORKERS = 'job="citybrain-worker"'
INGESTS = 'job="citybrain-ingest"'
# The interval Prometheus scrapes citybrain at (docker/prometheus.yml), told to Grafana as
# the datasource's ``timeInterval``: ``$__rate_interval`` is then at least four scrapes.
SCRAPE_INTERVAL = "5s"


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    base: str
    condition: str  # appended to base: "> 1000", "== 0 and …"
    duration: str
    severity: str
    summary: str

    @property
    def expr(self) -> str:
        return f"{self.base} {self.condition}"


def quantile(q: float, metric: str, window: str, by: str = "") -> str:
    """``histogram_quantile`` of a histogram's (base name ``metric``) buckets over
    ``window``, summed by ``le`` and ``by`` (comma-separated labels, "" for the city's),
    for the groups that observed something in the window only: with none, every bucket's
    rate is 0 and ``histogram_quantile`` answers NaN, which Grafana drew as "NaN" and a
    recording rule stored (trial 28); such a group now has no series (no data)."""
    group = f"le, {by}" if by else "le"
    buckets = f"sum by ({group}) (rate({metric}_bucket[{window}]))"
    summed = f"sum by ({by}) " if by else "sum"
    observed = f"{summed}(increase({metric}_count[{window}])) > 0"
    return f"histogram_quantile({q}, {buckets} and on ({by}) ({observed}))"


def counted(expr: str) -> str:
    """``expr``, a query of the workers' gauges of keyed state (open alerts, open runs,
    approvals, held offers and task messages: each worker's share, summed), with no data
    while any worker up has not counted its share (``citybrain_state_counted`` 0: it is
    starting, reading its state back, or its partitions are moving). Such a worker's
    share is 0 or the partitions it held before, so the sum was not the city's: after a
    SIGKILL and restart "Open alerts" read 0 with 24 firing (t210). A worker that is
    down has no share at all (its series are stale from the first failed scrape) until
    another takes its partitions over; nor is one of its old samples that a Prometheus
    started again still shows (``live``)."""
    return f"({expr}) unless on () ({live(m.STATE_COUNTED)} == 0)"


def live(selector: str) -> str:
    """``selector``'s series of the targets Prometheus scrapes now (``up`` 1), for a gauge
    each worker exports its share of. A Prometheus that stopped marks none of its series
    stale, nor does its first failed scrape of a target gone meanwhile (it remembers no
    earlier scrape of it): a worker SIGKILLed while Prometheus was down, its partitions
    taken over by another, kept its last share visible for 5 min beside the survivor's
    whole count, and "Open alerts" read 36 with 24 firing (t210)."""
    return f"({selector} and on (job, instance) up == 1)"


def _q(q: float, metric: str, by: str, window: str) -> str:
    return quantile(q, metric, window, by)


def resolution_ratio(window: str, by: str = "") -> str:
    """Runs resolved in ``window`` net of the reopenings that undid a resolution, over runs
    started in ``window`` (at least 1, so an idle city reads 0, not NaN). Counted at each
    resolution, a run resolved, reopened and resolved again read 2/1 (trial 28, as trial 22
    found for the campaign dashboard). Above 1 when the window closes runs started before
    it; never below 0 (a reopening in the window of a resolution before it)."""
    grouped = f"sum by ({by}) " if by else "sum"
    resolved = f"{grouped}(increase({m.RUNS_RESOLVED}[{window}]))"
    undone = f'{grouped}(increase({m.CAMPAIGN_REOPENED}{{outcome="resolved"}}[{window}]))'
    started = f"{grouped}(increase({m.RUNS}[{window}]))"
    return f"clamp_min({resolved} - {undone}, 0) / clamp_min({started}, 1)"


RECORDINGS = [
    Recording("citybrain:readings:rate1m", f"sum by (kind) (rate({m.READINGS}[1m]))"),
    Recording(
        "citybrain:alerts_opened:increase1h", f"sum by (kind, level) (increase({m.ALERTS}[1h]))"
    ),
    Recording("citybrain:time_to_ack_seconds:p50_1h", _q(0.5, m.TIME_TO_ACK, "playbook", "1h")),
    Recording("citybrain:time_to_ack_seconds:p90_1h", _q(0.9, m.TIME_TO_ACK, "playbook", "1h")),
    Recording(
        "citybrain:time_to_resolve_seconds:p50_1h", _q(0.5, m.TIME_TO_RESOLVE, "playbook", "1h")
    ),
    Recording(
        "citybrain:time_to_resolve_seconds:p90_1h", _q(0.9, m.TIME_TO_RESOLVE, "playbook", "1h")
    ),
    Recording("citybrain:resolution_ratio:1h", resolution_ratio("1h", by="playbook")),
    Recording(
        "citybrain:sla_breaches:increase1d",
        f"sum by (playbook, department) (increase({m.SLA_BREACHES}[1d]))",
    ),
    Recording(
        "citybrain:escalations:increase1h",
        f"sum by (playbook, level) (increase({m.ESCALATIONS}[1h]))",
    ),
]

# Seconds since a worker last counted a reading of each kind, and the silence past which
# CitybrainFeedSilent fires (three usual gaps, at least 10 min); also a pipeline panel.
FEED_SILENCE = f"time() - max by (kind) (max_over_time({m.FEED_LAST_READING}[1d]))"
FEED_SILENCE_LIMIT = f"max by (kind) (clamp_min(3 * max_over_time({m.FEED_USUAL_GAP}[1d]), 600))"

ALERTS = [
    # A worker that was up in the last hour and is not now; ports nobody ever ran are quiet.
    Alert(
        "CitybrainWorkerDown",
        f"up{{{WORKERS}}}",
        f"== 0 and on (instance) max_over_time(up{{{WORKERS}}}[1h]) == 1",
        "1m",
        "critical",
        "citybrain worker {{ $labels.instance }} is down",
    ),
    # The same for an ingest (MQTT bridge, HTTP/NGSI door): the feeds behind a stopped
    # one fall silent too (CitybrainFeedSilent), this names the cause.
    Alert(
        "CitybrainIngestDown",
        f"up{{{INGESTS}}}",
        f"== 0 and on (instance) max_over_time(up{{{INGESTS}}}[1h]) == 1",
        "1m",
        "critical",
        "citybrain ingest {{ $labels.instance }} is down",
    ),
    Alert(
        "CitybrainConsumerLagGrowing",
        f"sum by (instance, topic) ({m.CONSUMER_LAG})",
        f"> 1000 and sum by (instance, topic) (deriv({m.CONSUMER_LAG}[5m])) > 0",
        "5m",
        "warning",
        "{{ $labels.topic }} lag is {{ $value }} and growing",
    ),
    Alert(
        "CitybrainDeadLettersUp",
        # The HTTP ingest's refused readings are its dead letters (it answers 400 instead).
        f"(sum by (instance) (rate({m.DEAD_LETTERS}[5m])) or "
        f"sum by (instance) (rate({m.INGEST_REFUSED}[5m])))",
        "> 1",
        "5m",
        "warning",
        "{{ $value }} dead letters/s on {{ $labels.instance }}",
    ),
    # A feed (kind) silent for more than three of its usual gaps and at least 10 min:
    # event time stands still when a whole feed stops, so only the wall clock sees it.
    # Over a day of samples, so a worker restarted meanwhile (no series until its first
    # reading of the kind) does not hide the silence; a feed silent for over a day is
    # quiet again (its readings panel shows it).
    Alert(
        "CitybrainFeedSilent",
        FEED_SILENCE,
        f"> {FEED_SILENCE_LIMIT}",
        "1m",
        "warning",
        "no {{ $labels.kind }} reading for {{ $value | humanizeDuration }}",
    ),
    # One run, muted alert, area, burst window or sensor state a shared loop leaves at
    # every pass (the others go on): said in the worker log once a minute, and here, by
    # loop, so an operator sees it without reading logs.
    Alert(
        "CitybrainLoopItemsFailing",
        f"max by (instance, loop) ({m.LOOP_ITEMS_FAILING})",
        "> 0",
        "10m",
        "warning",
        "{{ $value }} item(s) left at every pass of the {{ $labels.loop }} loop on "
        "{{ $labels.instance }} (the worker log names them)",
    ),
    # A timer whose whole pass fails (tried again next tick): nothing of it gets done.
    Alert(
        "CitybrainTimerFailing",
        f"sum by (instance, timer) (increase({m.TIMER_FAILURES}[5m]))",
        "> 0",
        "5m",
        "critical",
        "the {{ $labels.timer }} timer on {{ $labels.instance }} fails at every pass",
    ),
    # A reload (SIGHUP) refused the playbooks, routing, grid or tokens file: the worker goes
    # on with its previous ones, so nothing else shows it until the next restart reads the bad
    # file and stops (Alertmanager's own mixin alerts on its reload gauge the same way).
    Alert(
        "CitybrainConfigReloadFailed",
        f"min by (instance) ({m.CONFIG_RELOAD_SUCCESSFUL})",
        "== 0",
        "10m",
        "warning",
        "the configuration reload on {{ $labels.instance }} failed: it runs its previous "
        "playbooks, routing, grid and tokens (its log names the error)",
    ),
    # Each worker reloads on its own SIGHUP: while their configurations differ, an alert
    # routes by the files of whichever worker holds its partition (docs/operations.md).
    Alert(
        "CitybrainConfigDiffers",
        f'count(count_values("hash", {m.CONFIG_HASH}))',
        "> 1",
        "5m",
        "warning",
        "{{ $value }} different configurations (playbooks, routing, grid, tokens) run across the "
        "workers: send each worker its SIGHUP (or restart it) so they all use the same files",
    ),
    # A kafka step whose task topic Kafka does not take waits in its run's outbox, alone
    # (t172); the worker log says so once a minute. Five minutes is well past a topic being
    # created (citybrain stack up creates the playbooks' task topics).
    Alert(
        "CitybrainTaskMessagesHeld",
        # Of the workers up only: a Prometheus started again shows a worker gone while it
        # was down at its last age for 5 min, past this rule's minute (t210, ``live``).
        f"max by (instance, playbook, topic) ({live(m.TASKS_HELD_OLDEST)})",
        "> 300",
        "1m",
        "warning",
        "{{ $labels.playbook }}'s task messages to {{ $labels.topic }} held for "
        "{{ $value | humanizeDuration }} on {{ $labels.instance }}: Kafka does not take that "
        "task topic (create it; the worker log names it)",
    ),
    Alert(
        "CitybrainEventToAlertSlow",
        quantile(0.99, m.EVENT_TO_ALERT, "5m"),
        "> 0.25",
        "10m",
        "warning",
        "event-to-alert p99 is {{ $value }}s",
    ),
]


def rules_file() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "citybrain-kpis",
                "interval": "30s",
                "rules": [{"record": r.record, "expr": r.expr} for r in RECORDINGS],
            },
            {
                "name": "citybrain-pipeline",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.duration,
                        "labels": {"severity": a.severity},
                        "annotations": {"summary": a.summary},
                    }
                    for a in ALERTS
                ],
            },
        ]
    }


CELL_LOCATION = "citybrain:cell_location"
LOCATIONS_FILE = "citybrain-locations.yml"
# Each cell's newest location only, what a map joins to. A Prometheus that stops writes no
# stale marker for its rules' series, so once it starts again with a cell moved or renamed
# in the grid file, the cell's old series stays visible for 5 min beside its new one, and
# a ``group_left`` join on ``community`` failed ("many-to-many matching not allowed"): the
# whole map panel an error (t210). The old one's last sample is older than the new one's.
CELL_LOCATION_NOW = (
    f"({CELL_LOCATION} unless on (community, name, lat, lon) "
    f"(timestamp({CELL_LOCATION}) < on (community) group_left () "
    f"max by (community) (timestamp({CELL_LOCATION}))))"
)


def location_rules(grid: dict[str, Any]) -> dict[str, Any]:
    """One ``citybrain:cell_location`` series (value 1) per community cell of a grid file
    (docs/events.md) that has ``lat``/``lon``, labelled community, name, lat, lon: a
    Geomap joins alert counts by cell to it. Prometheus keeps the grid's positions, the
    worker's metrics stay free of them."""
    rules = [
        {
            "record": CELL_LOCATION,
            "expr": "vector(1)",
            "labels": {
                # An id written as a number is its text as written, as the worker reads
                # it (the grid reader's ``written``: ``0x1F``, not "31").
                "community": str(getattr(cell["id"], "written", cell["id"])),
                "name": str(cell["name"]),
                "lat": f"{float(cell['lat']):.6f}",
                "lon": f"{float(cell['lon']):.6f}",
            },
        }
        for cell in grid.get("cells") or []
        if cell.get("level") == "community" and "lat" in cell and "lon" in cell
    ]
    # The global evaluation interval: a longer one would leave the map empty for up to
    # that long after Prometheus starts (groups start at a random offset).
    return {"groups": [{"name": "citybrain-locations", "rules": rules}]}
