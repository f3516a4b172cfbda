"""Domain metrics, built from an injected registry; names are the contract with dashboards.

Labels are bounded (kind, grid level, severity, reason, source, playbook, department);
never a sensor, alert or run id. The hot path updates them once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

from streams.bounds import REFUSAL_REASONS
from streams.events import INCIDENT_SOURCES
from streams.unknown import UnknownFieldsCollector

READINGS = "citybrain_readings_total"
DUPLICATES = "citybrain_readings_duplicate_total"
REDELIVERED = "citybrain_readings_redelivered_total"
ANOMALIES = "citybrain_anomalies_total"
ALERTS = "citybrain_alerts_total"
ALERTS_RESOLVED = "citybrain_alerts_resolved_total"
ALERTS_NO_DATA = "citybrain_alerts_resolved_no_data_total"
ALERTS_SUPPRESSED = "citybrain_alerts_suppressed_total"
ALERTS_UNMUTED = "citybrain_alerts_unmuted_total"
ALERTS_CORROBORATION = "citybrain_alerts_corroboration_total"
CORROBORATION_MARKS = "citybrain_corroboration_marks_total"
CORROBORATION_HELD = "citybrain_corroboration_held"
SILENCES_INVALID = "citybrain_silences_invalid_total"
STATE_UNREADABLE = "citybrain_state_unreadable_total"
DEAD_LETTERS = "citybrain_dead_letters_total"
# The ingest edge's own (citybrain/ingest/metrics.py); dead letters use DEAD_LETTERS.
INGEST_READINGS = "citybrain_ingest_readings_total"
INGEST_REFUSED = "citybrain_ingest_refused_total"
INGEST_SKIPPED = "citybrain_ingest_skipped_total"
INCIDENTS = "citybrain_incidents_total"
INCIDENTS_DUPLICATE = "citybrain_incidents_duplicate_total"
INCIDENTS_REDELIVERED = "citybrain_incidents_redelivered_total"
INCIDENTS_LATE = "citybrain_incidents_late_total"
INCIDENTS_CROWDED = "citybrain_incidents_crowded_total"
BURST_WINDOWS_FORGOTTEN = "citybrain_burst_windows_forgotten_total"
BURST_WINDOWS = "citybrain_burst_windows"
GROUPS = "citybrain_groups"
CONFIG_RELOAD_SUCCESSFUL = "citybrain_config_last_reload_successful"
CONFIG_RELOAD_SUCCESS_TIME = "citybrain_config_last_reload_success_timestamp_seconds"
CONFIG_HASH = "citybrain_config_hash"
GROUPS_FORGOTTEN = "citybrain_groups_forgotten_total"
CLOSURES_UNDELIVERED = "citybrain_closures_undelivered"
CLOSURES_GIVEN_UP = "citybrain_closures_given_up_total"
SILENCES_FORGOTTEN = "citybrain_silences_forgotten_total"
INCIDENTS_UNALERTED = "citybrain_incidents_unalerted_total"
INCIDENT_BURSTS = "citybrain_incident_bursts_total"
EVENT_TO_ALERT = "citybrain_event_to_alert_seconds"
BATCH_SIZE = "citybrain_batch_readings"
RUNS = "citybrain_playbook_runs_total"
RUNS_RESOLVED = "citybrain_playbook_runs_resolved_total"
ESCALATIONS = "citybrain_playbook_escalations_total"
ACKS = "citybrain_playbook_acks_total"
TIME_TO_ACK = "citybrain_playbook_time_to_ack_seconds"
TIME_TO_RESOLVE = "citybrain_playbook_time_to_resolve_seconds"
SLA_BREACHES = "citybrain_playbook_sla_breaches_total"
# Runs read back whose playbook or current step the library no longer has (docs/playbooks.md).
RUNS_STALE = "citybrain_playbook_runs_stale_total"
STALE_REASONS = ("playbook_gone", "step_gone", "cell_gone")
RUNS_OPEN = "citybrain_playbook_runs_open"
# The shared loops' items left as they were for a fault of their own while the loop went on
# with the others (docs/operations.md, "One bad item never stops a loop"), and the passes
# of a timer that failed as a whole. Before, each was only a log line (a minute apart, or,
# for a burst window, every sweep): nothing an operator's dashboard or rule could see.
LOOP_ITEMS_SKIPPED = "citybrain_loop_items_skipped_total"
LOOP_ITEMS_FAILING = "citybrain_loop_items_failing"
TIMER_FAILURES = "citybrain_timer_failures_total"
# The loops that skip one item and go on: runs (deadline check), muted alerts (mute check),
# areas (corroboration release), burst windows (burst sweep), sensor states (no-data sweep).
LOOPS = ("deadlines", "mute_check", "corroboration_release", "burst_sweep", "no_data_sweep")
# Every timer's name as said in its log line (streams/app.py, streams/corroborating.py).
TIMERS = (
    "deadlines",
    "burst sweep",
    "no-data sweep",
    "mute check",
    "silence retention",
    "unreadable state audit",
    "corroboration release",
)
APPROVALS_WAITING = "citybrain_playbook_approvals_waiting"
# Task messages of ``kafka`` steps held in their runs' outboxes because Kafka does not
# take their task topic (t172: held alone, said in a warning once a minute per topic),
# and the age of the oldest, by playbook and task topic (as the playbook names it,
# without the topic prefix): before, only the warning showed them (t178).
TASKS_HELD = "citybrain_task_messages_held"
TASKS_HELD_OLDEST = "citybrain_task_messages_held_oldest_seconds"
# Citizen report offers held in their groups for a run not yet open (``held_offers``,
# streams.response ``_hold_offer``: up to 5 min each, 10,000 a worker), and the age of the
# oldest: before t193 nothing showed an operator how many waited, or for how long.
OFFERS_HELD = "citybrain_report_offers_held"
OFFERS_HELD_OLDEST = "citybrain_report_offers_held_oldest_seconds"
WEBHOOK_CALLS = "citybrain_webhook_calls_total"
WEBHOOK_FAILED_ATTEMPTS = "citybrain_webhook_failed_attempts_total"
WEBHOOK_SECONDS = "citybrain_webhook_seconds"
API_REQUESTS = "citybrain_api_requests_total"
# Connections and requests an HTTP server refused before any view (streams/bounds.py):
# the worker's web server and the MQTT ingest's /metrics server.
API_REFUSED = "citybrain_api_refused_total"
ANNOTATIONS = "citybrain_grafana_annotations_total"
CONSUMER_LAG = "citybrain_consumer_lag"
# A feed's (kind's) last counted reading and usual gap, wall clock (streams.ingest.FeedClock).
FEED_LAST_READING = "citybrain_feed_last_reading_timestamp_seconds"
FEED_USUAL_GAP = "citybrain_feed_usual_gap_seconds"
CELL_READINGS = "citybrain_cell_readings_total"
CELL_ALERTS = "citybrain_cell_alerts_total"
CELL_RUNS_OPEN = "citybrain_cell_runs_open"
SENSOR_VALUE = "citybrain_sensor_value"
SENSOR_SCORE = "citybrain_sensor_score"
SCORE_THRESHOLD = "citybrain_score_threshold"
ALERTS_OPEN = "citybrain_alerts_open"
PROCESS_START = "process_start_time_seconds"
SENSORS_TRACKED = "citybrain_sensors_tracked"
# 1 while this worker's gauges of keyed state (open alerts, open runs by status and cell,
# approvals, held offers and task messages, closures undelivered) count the partitions it
# owns now; 0 from its start, and from a rebalance, until its first whole deadline pass
# after reading its state back (streams.response.check_deadlines). Dashboards show no
# data while any worker reads 0 (dashboards.rules.counted), not a share counted 0 (t210).
STATE_COUNTED = "citybrain_state_counted"
# The campaign report's figures (citybrain.campaign), by grid level and department.
CAMPAIGN_RUNS_CLOSED = "citybrain_campaign_runs_closed_total"
CAMPAIGN_REPORTS = "citybrain_campaign_reports_total"
CAMPAIGN_REPLIES = "citybrain_campaign_replies_total"
CAMPAIGN_ANSWERS = "citybrain_campaign_answers_total"
CAMPAIGN_REOPENED = "citybrain_campaign_runs_reopened_total"

# The reasons a reading or report fails validation (docs/events.md, "Reason codes"), at
# the worker and at the ingest edge alike.
VALIDATION_REASONS = (
    "bad_json",
    "bad_schema",
    "missing_field",
    "bad_type",
    "not_finite",
    "bad_timestamp",
    "too_old",
    "in_future",
    "unknown_kind",
    "out_of_range",
    "bad_unit",
    "unknown_cell",
    "unknown_sensor",
    "registration_mismatch",
    "unknown_source",
    "too_long",
    "unreadable",
)
# Each worker stream's dead-letter reasons: their series exist at 0 from the start, since
# ``increase()`` never counts a series' first sample, and a reason's first dead letter
# was its series' birth: one bad_unit reading read 0 on "Dead letters (1h)" (trial 28).
# ``unreadable_batch``: a corrupted record batch's range, on whichever stream it lies
# (streams/faust_patches.py, change 13).
DEAD_LETTER_REASONS = {
    "readings": (
        *VALIDATION_REASONS,
        "wrong_partition",
        "pack_too_large",
        "out_of_order",
        "conflicting_reading",
        "detector_error",
        "unreadable_batch",
    ),
    "incidents": (
        *VALIDATION_REASONS,
        "wrong_partition",
        "reused_report_id",
        "processing_error",
        "unreadable_batch",
    ),
    "alerts": ("bad_json", "bad_alert", "unreadable", "processing_error", "unreadable_batch"),
    "routed": (
        "bad_json",
        "bad_routed",
        "bad_reports",
        "unreadable",
        "processing_error",
        "unreadable_batch",
    ),
    "commands": (
        "bad_json",
        "bad_command",
        "unknown_run",
        "unknown_alert",
        "unreadable",
        "processing_error",
        "unreadable_batch",
    ),
    # A mark or alert of the corroboration topic (streams.corroboration.checked_message).
    "corroboration": ("bad_json", "bad_mark", "bad_alert", "processing_error", "unreadable_batch"),
}

# What a label drawn from a message's text (an alert's kind, a run's department) is
# exported as when the grid, the playbooks and the classifier do not know it: the alerts
# topic takes any text there, and a series per value was a series per message (t80: 2,000
# alerts with a new department each made 2,000 citybrain_playbook_runs_total series).
OTHER_LABEL = "other"


def bounded_label(value: str, known: AbstractSet[str]) -> str:
    """``value`` as a label value: itself when in ``known`` (a bounded set: the grid's
    kinds, the departments), else ``OTHER_LABEL``, so a series count never follows the
    input's."""
    return value if value in known else OTHER_LABEL


# Minutes to days: a community acknowledges in minutes, a maintenance ticket in a day.
RESPONSE_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200)


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
    alerts_no_data: Counter
    alerts_suppressed: Counter
    alerts_unmuted: Counter
    alerts_corroboration: Counter
    corroboration_marks: Counter
    corroboration_held: Gauge
    silences_invalid: Counter
    state_unreadable: Counter
    dead_letters: Counter
    incidents: Counter
    incidents_duplicate: Counter
    incidents_redelivered: Counter
    incidents_late: Counter
    incidents_crowded: Counter
    burst_windows_forgotten: Counter
    burst_windows: Gauge
    groups: Gauge
    groups_forgotten: Counter
    config_reload_successful: Gauge
    config_reload_success_time: Gauge
    config_hash: Gauge
    closures_undelivered: Gauge
    closures_given_up: Counter
    silences_forgotten: Counter
    incidents_unalerted: Counter
    incident_bursts: Counter
    event_to_alert: Histogram
    batch_size: Histogram
    runs: Counter
    runs_resolved: Counter
    escalations: Counter
    acks: Counter
    time_to_ack: Histogram
    time_to_resolve: Histogram
    sla_breaches: Counter
    runs_stale: Counter
    runs_open: Gauge
    loop_items_skipped: Counter
    loop_items_failing: Gauge
    timer_failures: Counter
    approvals_waiting: Gauge
    tasks_held: Gauge
    tasks_held_oldest: Gauge
    offers_held: Gauge
    offers_held_oldest: Gauge
    webhook_calls: Counter
    webhook_failed_attempts: Counter
    webhook_seconds: Histogram
    api_requests: Counter
    api_refused: Counter
    annotations: Counter
    consumer_lag: Gauge
    feed_last_reading: Gauge
    feed_usual_gap: Gauge
    cell_readings: Counter
    cell_alerts: Counter
    cell_runs_open: Gauge
    sensor_value: Gauge
    sensor_score: Gauge
    score_threshold: Gauge
    alerts_open: Gauge
    sensors_tracked: Gauge
    state_counted: Gauge
    campaign_runs_closed: Counter
    campaign_reports: Counter
    campaign_replies: Counter
    campaign_answers: Counter
    campaign_reopened: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        # *_created series double every counter's cardinality for no control-room use.
        disable_created_metrics()  # type: ignore[no-untyped-call]

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(_base(name), doc, list(labels), registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, list(labels), buckets=buckets, registry=registry)

        playbook = ("playbook", "department")
        # process_start_time_seconds and friends: worker restarts on the health dashboard.
        ProcessCollector(registry=registry)
        # Unknown keys of messages read (streams/unknown.py), counted wherever they are read.
        registry.register(UnknownFieldsCollector())
        return cls(
            readings=counter(READINGS, "Valid readings processed", ("kind",)),
            duplicates=counter(DUPLICATES, "Readings dropped as exact duplicates"),
            redelivered=counter(REDELIVERED, "Readings skipped as redeliveries after a restart"),
            anomalies=counter(ANOMALIES, "Readings scored anomalous", ("kind",)),
            alerts=counter(
                ALERTS,
                "Alerts opened (one per anomalous episode or burst)",
                ("kind", "level", "severity"),
            ),
            alerts_resolved=counter(ALERTS_RESOLVED, "Alert episodes that ended", ("kind",)),
            alerts_no_data=counter(
                ALERTS_NO_DATA,
                "Alert episodes resolved because their sensor sent nothing for "
                "CITYBRAIN_NO_DATA_TIMEOUT of event time (resolved_by no_data: a silent sensor)",
                ("kind",),
            ),
            alerts_suppressed=counter(
                ALERTS_SUPPRESSED, "Alerts silenced or inhibited", ("kind", "why")
            ),
            alerts_unmuted=counter(
                ALERTS_UNMUTED,
                "Firing alerts routed once no longer silenced or inhibited",
                ("kind", "why"),
            ),
            alerts_corroboration=counter(
                ALERTS_CORROBORATION,
                "Firing sensor alerts by neighbour corroboration label and assessment",
                ("kind", "label", "assessment"),
            ),
            corroboration_marks=counter(
                CORROBORATION_MARKS, "Anomaly marks sent to corroboration areas"
            ),
            corroboration_held=gauge(
                CORROBORATION_HELD, "Sensor alerts held for a neighbour's mark, this worker"
            ),
            silences_invalid=counter(
                SILENCES_INVALID,
                "Stored silences skipped because they cannot be read, by problem",
                ("problem",),
            ),
            state_unreadable=counter(
                STATE_UNREADABLE,
                "Table changelog entries dropped at read-back because they cannot be read, "
                "by table and reason (not_decodable, unknown_format, newer_format, bad_shape, "
                "too_large)",
                ("table", "reason"),
            ),
            dead_letters=counter(
                DEAD_LETTERS, "Events sent to the dead-letter topic", ("stream", "reason")
            ),
            incidents=counter(INCIDENTS, "Valid incident reports", ("source", "department")),
            incidents_duplicate=counter(
                INCIDENTS_DUPLICATE,
                "Incident reports dropped as re-sent: report id already seen in the cell and "
                "category (not in citybrain_incidents_total)",
                ("source",),
            ),
            incidents_redelivered=counter(
                INCIDENTS_REDELIVERED,
                "Incident reports skipped as read again after a worker restart (their Kafka "
                "message was counted when first read)",
                ("source",),
            ),
            incidents_late=counter(
                INCIDENTS_LATE,
                "Incident reports older than the burst window: in citybrain_incidents_total, "
                "counted towards no burst",
                ("source",),
            ),
            incidents_crowded=counter(
                INCIDENTS_CROWDED,
                "Incident reports of a new category in a cell that already holds burst "
                "windows for MAX_CATEGORIES_PER_CELL (1,000) categories: in "
                "citybrain_incidents_total, counted towards no burst",
                ("source",),
            ),
            burst_windows_forgotten=counter(
                BURST_WINDOWS_FORGOTTEN,
                "Burst windows (cell and category) dropped by the burst sweep after two "
                "days with no report, no open burst and no held report",
            ),
            burst_windows=gauge(
                BURST_WINDOWS,
                "Burst windows (one per grid cell and category) this worker holds: at most "
                "MAX_CATEGORIES_PER_CELL (1,000) per cell",
            ),
            groups=gauge(
                GROUPS,
                "Alert groups (one per group key: its run, or muted alerts or held report offers "
                "until a run opens) this worker holds: those "
                "alive, and those ended within CITYBRAIN_GROUP_RETENTION",
            ),
            config_reload_successful=gauge(
                CONFIG_RELOAD_SUCCESSFUL,
                "1 when the last reload of the playbooks, routing, grid and tokens files "
                "(SIGHUP) succeeded or none was asked since start, 0 when one had an error "
                "and the running configuration was kept whole",
            ),
            config_reload_success_time=gauge(
                CONFIG_RELOAD_SUCCESS_TIME,
                "Epoch seconds of the last successful configuration load (start or SIGHUP)",
            ),
            config_hash=gauge(
                CONFIG_HASH,
                "Hash of the playbooks, routing, grid and tokens files in force (the first "
                "48 bits of the SHA-256 of their SHA-256s, as Alertmanager's "
                "alertmanager_config_hash): workers of one group showing different values "
                "route and run by different files",
            ),
            groups_forgotten=counter(
                GROUPS_FORGOTTEN,
                "Alert groups forgotten (tombstoned) by the deadline check: their run "
                "finished, every alert resolved, no change for CITYBRAIN_GROUP_RETENTION",
            ),
            closures_undelivered=gauge(
                CLOSURES_UNDELIVERED,
                "Closures (reply/1) whose webhook call to CITYBRAIN_REPLIES_WEBHOOK_URL failed "
                "after its retries or was dropped, not delivered since: each waits for an "
                "operator's `citybrain runs resend RUN_ID` (the groups this worker holds)",
            ),
            closures_given_up=counter(
                CLOSURES_GIVEN_UP,
                "Closure webhook calls given up (failed after their retries, or dropped by a "
                "full executor): each is then an undelivered closure until re-sent",
            ),
            silences_forgotten=counter(
                SILENCES_FORGOTTEN,
                "Silences forgotten (tombstoned) SILENCE_RETENTION (120 h) after they ended, "
                "by the worker owning their key's alerts partition",
            ),
            incidents_unalerted=counter(
                INCIDENTS_UNALERTED,
                "Incident reports that left the burst window in no alert (the window stayed "
                "below the burst threshold): in citybrain_incidents_total, audited as "
                "reports_not_alerted; covered by a run only if their group's run was open "
                "when they came",
                ("source",),
            ),
            incident_bursts=counter(INCIDENT_BURSTS, "Bursts of citizen reports", ("department",)),
            event_to_alert=histogram(
                EVENT_TO_ALERT,
                "From a reading's arrival in Kafka to its alert being sent",
                (),
                (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            ),
            batch_size=histogram(
                BATCH_SIZE,
                "Readings per processed batch",
                (),
                (1, 10, 50, 100, 500, 1000, 2000, 5000),
            ),
            runs=counter(RUNS, "Playbook runs started", playbook),
            runs_resolved=counter(RUNS_RESOLVED, "Playbook runs resolved", playbook),
            escalations=counter(ESCALATIONS, "Escalations up the grid", ("playbook", "level")),
            acks=counter(ACKS, "Acknowledgements", ("playbook", "level")),
            time_to_ack=histogram(
                TIME_TO_ACK,
                "From run start to its acknowledgement",
                ("playbook", "level", "department"),
                RESPONSE_BUCKETS,
            ),
            time_to_resolve=histogram(
                TIME_TO_RESOLVE, "From run start to its resolution", playbook, RESPONSE_BUCKETS
            ),
            sla_breaches=counter(SLA_BREACHES, "Runs not resolved within their SLA", playbook),
            runs_stale=counter(
                RUNS_STALE,
                "Runs read back whose playbook (held), current step (failed) or grid cell "
                "(told to the city's unit) the library or grid no longer has",
                ("reason",),
            ),
            runs_open=gauge(RUNS_OPEN, "Runs not yet finished, by status", ("playbook", "status")),
            loop_items_skipped=counter(
                LOOP_ITEMS_SKIPPED,
                "Items a shared loop's pass left as they were for a fault of their own (a "
                "run, muted alert, area or burst window; tried again next pass), the others "
                "going on; once per item per pass",
                ("loop",),
            ),
            loop_items_failing=gauge(
                LOOP_ITEMS_FAILING,
                "Items the last completed pass of a shared loop left as they were for a fault",
                ("loop",),
            ),
            timer_failures=counter(
                TIMER_FAILURES,
                "Passes of a timer that failed as a whole (tried again next tick)",
                ("timer",),
            ),
            approvals_waiting=gauge(
                APPROVALS_WAITING, "Runs waiting for a human decision", ("role",)
            ),
            tasks_held=gauge(
                TASKS_HELD,
                "Task messages of kafka steps waiting in their runs' outboxes because Kafka "
                "does not take their task topic (as the playbook names it), this worker, at "
                "the last deadline pass",
                ("playbook", "topic"),
            ),
            tasks_held_oldest=gauge(
                TASKS_HELD_OLDEST,
                "Age in seconds of the oldest task message held (citybrain_task_messages_held; "
                "from its step's time), 0 when none, at the last deadline pass",
                ("playbook", "topic"),
            ),
            offers_held=gauge(
                OFFERS_HELD,
                "Citizen report offers held in their groups for a run not yet open (each up "
                "to 5 minutes), this worker, at the last deadline pass",
            ),
            offers_held_oldest=gauge(
                OFFERS_HELD_OLDEST,
                "Seconds the oldest held report offer (citybrain_report_offers_held) has "
                "waited, 0 when none, at the last deadline pass",
            ),
            webhook_calls=counter(WEBHOOK_CALLS, "Webhook deliveries by outcome", ("outcome",)),
            webhook_failed_attempts=counter(
                WEBHOOK_FAILED_ATTEMPTS, "Webhook attempts that failed (before retries)"
            ),
            webhook_seconds=histogram(
                WEBHOOK_SECONDS,
                "Webhook delivery time, retries included",
                (),
                (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            ),
            api_requests=counter(API_REQUESTS, "Operator API requests", ("action", "outcome")),
            api_refused=counter(
                API_REFUSED,
                "Connections and requests the web server refused before any view, by reason",
                ("reason",),
            ),
            annotations=counter(ANNOTATIONS, "Grafana annotations by outcome", ("outcome",)),
            consumer_lag=gauge(
                CONSUMER_LAG,
                "Messages not yet fetched (high watermark minus fetch position; those in "
                "the worker's buffers count as fetched), by topic",
                ("topic",),
            ),
            feed_last_reading=gauge(
                FEED_LAST_READING,
                "When this worker last counted a reading of the kind (unix time, wall clock)",
                ("kind",),
            ),
            feed_usual_gap=gauge(
                FEED_USUAL_GAP,
                "Length-biased mean wall-clock gap between batches holding the kind, "
                "one-day half-life (s)",
                ("kind",),
            ),
            # Grid cells are bounded (the grid file), so the drill-down may label by cell.
            cell_readings=counter(
                CELL_READINGS, "Valid readings by grid cell", ("district", "street", "community")
            ),
            cell_alerts=counter(
                CELL_ALERTS,
                "Alerts opened by grid cell",
                ("district", "street", "community", "kind"),
            ),
            cell_runs_open=gauge(
                CELL_RUNS_OPEN,
                "Playbook runs not yet finished, by the grid cell of their alert",
                ("district", "street", "community"),
            ),
            # Per-sensor series only for watched sensors and those in an open episode:
            # bounded by the watchlist and the open alerts, never by the sensor count.
            sensor_value=gauge(
                SENSOR_VALUE, "Last value of a watched or alerting sensor", ("sensor_id", "kind")
            ),
            sensor_score=gauge(
                SENSOR_SCORE,
                "Last anomaly score of a watched or alerting sensor",
                ("sensor_id", "kind"),
            ),
            score_threshold=gauge(SCORE_THRESHOLD, "Anomaly score at which a reading alerts"),
            alerts_open=gauge(
                ALERTS_OPEN, "Firing alerts by severity and grid level", ("severity", "level")
            ),
            sensors_tracked=gauge(SENSORS_TRACKED, "Sensors with detector state on this worker"),
            state_counted=gauge(
                STATE_COUNTED,
                "1 when this worker's gauges of keyed state (open alerts and runs, approvals, "
                "held offers and task messages) count the partitions it owns; 0 while it "
                "starts, reads its state back or its partitions move",
            ),
            campaign_runs_closed=counter(
                CAMPAIGN_RUNS_CLOSED,
                "Runs resolved or cancelled, by the grid level they were closed at",
                ("level", "department", "outcome"),
            ),
            campaign_reports=counter(
                CAMPAIGN_REPORTS, "Citizen reports covered by a run", ("level", "department")
            ),
            campaign_replies=counter(
                CAMPAIGN_REPLIES,
                "Closure messages sent to reporters",
                ("level", "department", "outcome"),
            ),
            campaign_answers=counter(
                CAMPAIGN_ANSWERS,
                "Reporters' answers to closure messages",
                ("level", "department", "satisfied"),
            ),
            campaign_reopened=counter(
                CAMPAIGN_REOPENED,
                "Runs reopened because a reporter was not satisfied (level it was closed at; "
                "outcome: the closing it undid; playbook: the run's)",
                ("level", "department", "outcome", "playbook"),
            ),
        )


def initialise_run_outcomes(
    metrics: Metrics, playbook: str, department: str, levels: tuple[str, ...]
) -> None:
    """Create at zero the series a run of ``playbook`` in ``department`` observes once,
    late in its life: the time-to-acknowledge histogram (at every level it may be
    escalated to by then), the time-to-resolve histogram and the campaign's reopened
    counter (by level and closing outcome). Made when the run is first known, so
    ``increase()`` counts its acknowledgement, resolution or reopening: a series born at
    its first observation starts there, which ``increase()`` never sees. Idempotent."""
    metrics.time_to_resolve.labels(playbook, department)
    for level in levels:
        metrics.time_to_ack.labels(playbook, level, department)
        for outcome in ("resolved", "cancelled"):
            metrics.campaign_reopened.labels(level, department, outcome, playbook)


def initialise(
    metrics: Metrics,
    playbooks: dict[str, str],
    levels: tuple[str, ...],
    kinds: tuple[str, ...],
    threshold: float,
    cells: Iterable[tuple[str, str, str]] = (),
    cell_kinds: Iterable[tuple[tuple[str, str, str], str]] = (),
    departments: Iterable[str] = (),
    report_playbooks: Iterable[str] = (),
    task_topics: Iterable[tuple[str, str]] = (),
) -> None:
    """Create the zero-valued series every dashboard and rule reads, so a quiet city shows
    zeros rather than "no data", and so ``increase()`` counts a counter's first events:
    a labelled series born at its first increment starts at that value, which
    ``increase()`` never sees (trial 9: after the demo the panels of alerts opened in the
    last hour showed 2 of 21). ``playbooks`` maps each playbook to its department;
    ``cells`` are the grid's (district, street, community) paths, "" above a cell's level;
    ``cell_kinds`` the (path, kind) pairs an alert can carry (each sensor's cell and kind,
    every cell with ``incident_burst``); ``departments`` those a report can be routed to;
    ``report_playbooks`` the playbooks citizen alerts may reach, whose runs take their
    reports' department (helper t102: their counters and the campaign's were made only
    for the playbook's own department, so after a worker start the first ``police`` run,
    closure or answer was never counted on the campaign dashboard). Bounded by the grid
    and the playbooks, as the series themselves are. The time-to histograms are left to
    the playbook's own department, and so is ``campaign_runs_reopened`` (per level,
    department, outcome and playbook): made for every report department they added
    about 90 kB (28 %) to the worker's /metrics page; their first sample after a start
    is missed unless a run of that playbook and department was known to the worker
    before it (``initialise_run_outcomes``, made by the response stage for every run it
    holds, at its creation and at the first deadline pass after a start or rebalance).
    ``task_topics``: the (playbook, task topic) pairs of the playbooks' ``kafka`` steps,
    whose held task messages are counted (``tasks_held``)."""
    for name, department in playbooks.items():
        metrics.runs.labels(name, department)
        metrics.runs_resolved.labels(name, department)
        metrics.sla_breaches.labels(name, department)
        initialise_run_outcomes(metrics, name, department, levels)
        for level in levels:
            metrics.escalations.labels(name, level)
            metrics.acks.labels(name, level)
            metrics.campaign_reports.labels(level, department)
            for outcome in ("resolved", "cancelled"):
                metrics.campaign_runs_closed.labels(level, department, outcome)
                metrics.campaign_replies.labels(level, department, outcome)
            for satisfied in ("true", "false"):
                metrics.campaign_answers.labels(level, department, satisfied)
    every = sorted({*departments, *playbooks.values()})
    for department in every:
        for level in levels:
            metrics.campaign_reports.labels(level, department)
            for outcome in ("resolved", "cancelled"):
                metrics.campaign_runs_closed.labels(level, department, outcome)
                metrics.campaign_replies.labels(level, department, outcome)
            for satisfied in ("true", "false"):
                metrics.campaign_answers.labels(level, department, satisfied)
    for name in sorted(set(report_playbooks) & set(playbooks)):
        for department in every:
            metrics.runs.labels(name, department)
            metrics.runs_resolved.labels(name, department)
            metrics.sla_breaches.labels(name, department)
    for kind in kinds:
        metrics.readings.labels(kind)
        metrics.anomalies.labels(kind)
        metrics.alerts_resolved.labels(kind)
        metrics.alerts_no_data.labels(kind)
        for level in levels:
            for severity in ("minor", "major", "critical"):
                metrics.alerts.labels(kind, level, severity)
    for path, kind in cell_kinds:
        metrics.cell_alerts.labels(*path, kind)
    for department in sorted({*departments, *playbooks.values()}):
        metrics.incident_bursts.labels(department)
        for source in sorted(INCIDENT_SOURCES):
            metrics.incidents.labels(source, department)
    for severity in ("minor", "major", "critical"):
        for level in levels:
            metrics.alerts_open.labels(severity, level)
    for stream, reasons in DEAD_LETTER_REASONS.items():
        for reason in reasons:
            metrics.dead_letters.labels(stream, reason)
    for source in sorted(INCIDENT_SOURCES):
        metrics.incidents_duplicate.labels(source)
        metrics.incidents_redelivered.labels(source)
        metrics.incidents_late.labels(source)
        metrics.incidents_crowded.labels(source)
        metrics.incidents_unalerted.labels(source)
    for outcome in ("ok", "failed"):
        metrics.webhook_calls.labels(outcome)
    for reason in STALE_REASONS:
        metrics.runs_stale.labels(reason)
    for loop in LOOPS:
        metrics.loop_items_skipped.labels(loop)
        metrics.loop_items_failing.labels(loop)
    for timer in TIMERS:
        metrics.timer_failures.labels(timer)
    for reason in REFUSAL_REASONS:
        metrics.api_refused.labels(reason)
    metrics.score_threshold.set(threshold)
    for playbook, topic in task_topics:
        metrics.tasks_held.labels(playbook, topic)
        metrics.tasks_held_oldest.labels(playbook, topic)
    for path in cells:
        metrics.cell_runs_open.labels(*path)
        metrics.cell_readings.labels(*path)
