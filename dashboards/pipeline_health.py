"""Pipeline health: throughput, consumer lag, latency, dead letters, restarts."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import RATE_WINDOW, quantiles, query, series, single
from dashboards.rules import FEED_SILENCE, FEED_SILENCE_LIMIT, live
from streams import metrics as m

UID = "citybrain-pipeline-health"
WORKERS = 'job="citybrain-worker"'


# The worker exports lag for its source topics only (streams/response.py source_topics):
# the tables' changelogs and faust's __assignor-__leader read 176 at rest (trial 9).
LAG_TOPICS = (
    "Messages not yet fetched by the workers on the topics their agents consume "
    "(readings, incidents, alerts, routed, commands, ...; high watermark minus fetch "
    "position: messages fetched and still in a worker's buffers count as fetched), not "
    "the tables' changelogs nor faust's internal topics; 0 at rest"
)


def build() -> Dashboard:
    return (
        Dashboard("citybrain / Pipeline health")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_panel(single("Workers up", "short", query(f"sum(up{{{WORKERS}}})")))
        .with_panel(
            single(
                "Config reloads failed",
                "short",
                query(f"count({m.CONFIG_RELOAD_SUCCESSFUL}{{{WORKERS}}} == 0) or vector(0)"),
                description=(
                    "Workers whose last reload (kill -HUP) refused the playbooks or the "
                    "routing file: each runs its previous ones, and its log names the error "
                    "(docs/operations.md); 0 when every reload took"
                ),
            )
        )
        .with_panel(
            # Alerts resolved because their sensor went silent mid-episode: a sensor to check.
            single(
                "Alerts resolved for no data (1h)",
                "short",
                query(f"sum(increase({m.ALERTS_NO_DATA}[1h]))"),
            )
        )
        .with_panel(
            single(
                "Consumer lag",
                "short",
                query(f"sum({live(m.CONSUMER_LAG)})"),
                description=LAG_TOPICS,
            )
        )
        .with_panel(
            single(
                "Dead letters (1h)",
                "short",
                # As the panel and the alert: the HTTP ingest's refusals are its dead
                # letters. `+`, not `or` (which would drop the refusals whenever there are
                # dead letters too); `or vector(0)` so that one side without series yet
                # does not empty the sum.
                query(
                    f"(sum(increase({m.DEAD_LETTERS}[1h])) or vector(0)) + "
                    f"(sum(increase({m.INGEST_REFUSED}[1h])) or vector(0))"
                ),
                description="Dead letters of the workers and the MQTT ingest, and readings "
                "and requests the HTTP ingest refused (docs/ingest.md)",
            )
        )
        .with_panel(
            single(
                "Worker restarts (1h)",
                "short",
                query(f"sum(changes({m.PROCESS_START}{{{WORKERS}}}[1h]))"),
            )
        )
        .with_panel(
            series(
                "Messages/s by topic",
                "ops",
                query(
                    "sum by (topic) "
                    f"(rate(faust_messages_received_per_topic_total[{RATE_WINDOW}]))",
                    "{{topic}}",
                ),
            )
        )
        .with_panel(
            series(
                "Consumer lag by topic",
                "short",
                query(f"sum by (topic) ({live(m.CONSUMER_LAG)})", "{{topic}}"),
                description=LAG_TOPICS,
            )
        )
        .with_panel(
            series(
                "Seconds since each feed's last reading",
                "s",
                # The measurement of CitybrainFeedSilent, beside its threshold per kind.
                query(FEED_SILENCE, "{{kind}}"),
                query(FEED_SILENCE_LIMIT, "{{kind}} alerts past"),
                description="Wall clock since a worker last counted a reading of each kind, "
                "and the silence at which CitybrainFeedSilent fires: three of the kind's usual "
                "gaps, at least 10 min (docs/control-room.md)",
            )
        )
        .with_panel(
            series(
                "Event-to-alert latency",
                "s",
                *quantiles(m.EVENT_TO_ALERT, "5m", qs=(0.5, 0.99, 0.999)),
                description="From a reading's arrival in Kafka to its alert",
            )
        )
        .with_panel(
            series(
                "Dead letters by reason",
                "short",
                # The workers' and the MQTT ingest's dead letters, and the HTTP ingest's
                # refused readings (streams http, ngsi), which never reach the topic.
                query(
                    f"sum by (stream, reason) (increase({m.DEAD_LETTERS}[5m])) or "
                    f"sum by (stream, reason) (increase({m.INGEST_REFUSED}[5m]))",
                    "{{stream}}: {{reason}}",
                ),
                description="Workers and the MQTT ingest: dead letters; the HTTP ingest "
                "(http, ngsi): readings refused with 400 (docs/ingest.md)",
            )
        )
        .with_panel(
            series(
                "HTTP connections refused by reason",
                "short",
                # The workers' web servers (operator API, /metrics) and the MQTT ingests'
                # /metrics servers (job citybrain-ingest); the HTTP ingest counts its own
                # in the dead-letter panel's family.
                query(
                    f"sum by (job, reason) (increase({m.API_REFUSED}[5m]))",
                    "{{job}}: {{reason}}",
                ),
                description="Connections and requests an HTTP server refused before any view: "
                "busy (past CITYBRAIN_HTTP_MAX_CONNECTIONS, answered 503), timeout (a request "
                "not sent, or an answer not read, within CITYBRAIN_HTTP_TIMEOUT), too_long (a "
                "request line or header past the server's limits), bad_request (not HTTP); "
                "docs/operations.md",
            )
        )
        .with_panel(
            series(
                "Worker start times",
                "dateTimeAsIso",
                query(f"{m.PROCESS_START}{{{WORKERS}}} * 1000", "{{instance}}"),
                description="A step is a restart",
            )
        )
        .with_panel(
            series("Readings per batch", "short", *quantiles(m.BATCH_SIZE, "5m", qs=(0.5,)))
        )
    )
