"""Domain metrics, built from an injected registry; names are the contract with dashboards.

Labels are bounded (kind, grid level, severity, reason, source); never a sensor id. The
hot path updates them once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

READINGS = "citybrain_readings_total"
DUPLICATES = "citybrain_readings_duplicate_total"
REDELIVERED = "citybrain_readings_redelivered_total"
ANOMALIES = "citybrain_anomalies_total"
ALERTS = "citybrain_alerts_total"
ALERTS_RESOLVED = "citybrain_alerts_resolved_total"
DEAD_LETTERS = "citybrain_dead_letters_total"
INCIDENTS = "citybrain_incidents_total"
EVENT_TO_ALERT = "citybrain_event_to_alert_seconds"
BATCH_SIZE = "citybrain_batch_readings"
RUNS = "citybrain_playbook_runs_total"
ESCALATIONS = "citybrain_playbook_escalations_total"
ACKS = "citybrain_playbook_acks_total"
RUNS_OPEN = "citybrain_playbook_runs_open"
SENSORS_TRACKED = "citybrain_sensors_tracked"


def _base(name: str) -> str:
    # prometheus_client adds the _total suffix of a counter itself.
    return name.removesuffix("_total")


@dataclass(frozen=True)
class Metrics:
    readings: Counter
    duplicates: Counter
    redelivered: Counter
    anomalies: Counter
    alerts: Counter
    alerts_resolved: Counter
    dead_letters: Counter
    incidents: Counter
    event_to_alert: Histogram
    batch_size: Histogram
    runs: Counter
    escalations: Counter
    acks: Counter
    runs_open: Gauge
    sensors_tracked: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        # *_created series double every counter's cardinality for no control-room use.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        return cls(
            readings=Counter(
                _base(READINGS), "Valid readings processed", ["kind"], registry=registry
            ),
            duplicates=Counter(
                _base(DUPLICATES), "Readings dropped as exact duplicates", registry=registry
            ),
            redelivered=Counter(
                _base(REDELIVERED),
                "Readings skipped as redeliveries after a restart",
                registry=registry,
            ),
            anomalies=Counter(
                _base(ANOMALIES), "Readings scored anomalous", ["kind"], registry=registry
            ),
            alerts=Counter(
                _base(ALERTS),
                "Alerts opened (one per anomalous episode)",
                ["kind", "level", "severity"],
                registry=registry,
            ),
            alerts_resolved=Counter(
                _base(ALERTS_RESOLVED), "Alert episodes that ended", ["kind"], registry=registry
            ),
            dead_letters=Counter(
                _base(DEAD_LETTERS),
                "Events sent to the dead-letter topic",
                ["stream", "reason"],
                registry=registry,
            ),
            incidents=Counter(
                _base(INCIDENTS), "Valid incident reports", ["source"], registry=registry
            ),
            event_to_alert=Histogram(
                EVENT_TO_ALERT,
                "From a reading's arrival in Kafka to its alert being sent",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
            batch_size=Histogram(
                BATCH_SIZE,
                "Readings per processed batch",
                buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000),
                registry=registry,
            ),
            runs=Counter(_base(RUNS), "Playbook runs started", ["playbook"], registry=registry),
            escalations=Counter(
                _base(ESCALATIONS),
                "Escalations up the grid",
                ["playbook", "level"],
                registry=registry,
            ),
            acks=Counter(
                _base(ACKS), "Acknowledgements received", ["playbook", "level"], registry=registry
            ),
            runs_open=Gauge(
                RUNS_OPEN, "Runs not yet resolved, by status", ["status"], registry=registry
            ),
            sensors_tracked=Gauge(
                SENSORS_TRACKED, "Sensors with detector state on this worker", registry=registry
            ),
        )
