"""All runtime settings, read from ``CITYBRAIN_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from detectors.registry import DEFAULT_THRESHOLD
from playbooks.errors import did_you_mean
from playbooks.executors import MAX_BACKOFF as MAX_WEBHOOK_BACKOFF
from playbooks.schema import KAFKA_TOPIC_NAME_MAX, MIN_DEADLINE_SECONDS, PIPELINE_TOPICS
from streams.bursts import MIN_BUCKET_SECONDS
from streams.csvfile import MAX_LINE_BYTES, MIN_LINE_BYTES
from streams.errors import closest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The Kafka whose jars the local stack downloads into CITYBRAIN_HOME/kafka-<version>/libs
# (citybrain.stack.kafka), here so a message of the worker can name its tools (t209).
KAFKA_VERSION = "4.0.2"
# The settings that name a file or directory (typed Path; a test keeps the list whole).
PATH_FIELDS = (
    "home",
    "grid_file",
    "playbook_dir",
    "routing_file",
    "api_tokens_file",
    "kafka_ssl_cafile",
    "run_dir_override",
)


def _whole_port(value: Any) -> Any:
    # pydantic's lax int takes "19692.0" (and 19692.0); a port written with a decimal
    # point is a slip, refused like any other non-port.
    if isinstance(value, float) or (isinstance(value, str) and not value.strip().isdigit()):
        raise ValueError("expected a port number, 1..65535")
    return value


# A TCP port a service listens on or is reached at.
Port = Annotated[int, BeforeValidator(_whole_port), Field(ge=1, le=65535)]


def _whole_bytes(value: Any) -> Any:
    # ASCII digits only: pydantic's lax int takes "65536.0", and Python's int "６５５３６"
    # (full-width) and "1_000"; a size of bytes is written as plain digits. Empty is
    # the default, as when this was read by streams/csvfile.py alone.
    if isinstance(value, str) and not value.strip():
        return MAX_LINE_BYTES
    if isinstance(value, float) or (
        isinstance(value, str) and not (value.strip().isascii() and value.strip().isdigit())
    ):
        raise ValueError("expected a whole number of bytes")
    return value


# The longest line a CSV file may have, in bytes (streams/csvfile.py).
LineBytes = Annotated[int, BeforeValidator(_whole_bytes), Field(ge=MIN_LINE_BYTES, le=1 << 30)]

# The ports one process or the local stack binds, which must differ pairwise: Kafka's
# two are the stack's broker, the MQTT port its Mosquitto. A Kafka or MQTT host that is
# not this machine's loopback is someone else's server, whose port may be anything.
LISTEN_PORTS = (
    "kafka_port",
    "kafka_controller_port",
    "prometheus_port",
    "mqtt_port",
    "worker_port",
    "ingest_http_port",
    "ingest_metrics_port",
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# faust's broker_request_timeout, seconds: a Kafka session may not outlast it.
MAX_SESSION_TIMEOUT = 90.0
# Upper bounds of the settings below (each says why): a value past its bound is a slip
# that would have passed and made the worker never act, or crash where it is used.
HOUR, DAY, WEEK = 3600.0, 86400.0, 604800.0
# The shortest duration a seconds setting takes: a millisecond, Kafka's unit. Above 0
# was the bound before t171, and 5e-324 passed: a timer of it (the deadline check, the
# burst sweep, the mute check) ticked 50,000 times a second, each tick logging that it
# overlapped the last; a heartbeat of it was 0 ms to aiokafka.
MIN_SECONDS = 0.001
MAX_PARTITIONS = 1000
# The least heap the local Kafka (``stack up``, Kafka 4.0) starts with: at 128m and at
# 64m its broker stopped at start with java.lang.OutOfMemoryError (t190, measured).
MIN_KAFKA_HEAP = 256 * 2**20
_HEAP_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def _physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say: the
    local Kafka's JVM commits its whole heap at start (-Xms is -Xmx)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


# Kafka refuses a topic name longer than this (its Topic.MAX_NAME_LENGTH).
TOPIC_NAME_MAX = KAFKA_TOPIC_NAME_MAX
# What follows each setting in the longest topic name it starts: the prefix's topics
# (``Settings.topics``: ``<prefix>.corroboration``), the app id's faust changelogs
# (``<app id>-<table>-changelog``, the longest tables ``corroboration`` and
# ``burst-windows``; tests/unit/streams/test_settings_errors.py checks every topic of a
# worker's app against it).
LONGEST_TOPIC_TAIL = {"topic_prefix": ".corroboration", "app_id": "-corroboration-changelog"}


# The settings that are whole numbers (ports and CITYBRAIN_CSV_MAX_LINE_BYTES check
# theirs in their own types), and how one is written.
WHOLE_NUMBER_FIELDS = (
    "partitions",
    "http_max_connections",
    "webhook_retries",
    "burst_min_reports",
    "commit_every",
    "fetch_max_bytes",
    "changelog_segment_bytes",
    "batch_size",
    "detector_window",
    "detector_min_samples",
    "quiet_readings",
)
_WHOLE = re.compile(r"[+-]?[0-9]+")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITYBRAIN_", extra="ignore", populate_by_name=True, allow_inf_nan=False
    )

    # Where the local stack keeps jars, binaries, data, logs and pids (outside the repo).
    home: Path = Field(default=Path.home() / ".cache" / "citybrain")

    # Loopback by default; a container deployment points these at its services.
    kafka_host: str = "127.0.0.1"
    worker_bind: str = "127.0.0.1"
    # Ports avoid the usual 9092/9090/6066 so a developer's own services keep working.
    kafka_port: Port = 19092
    kafka_controller_port: Port = 19093
    prometheus_port: Port = 19090
    worker_port: Port = 16066
    # The ingest edge (citybrain/ingest): the local MQTT broker and the HTTP ingest server.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Port = 11883
    ingest_http_port: Port = 16080
    # `citybrain ingest mqtt` serves its Prometheus metrics here (the HTTP ingest serves
    # them on its own port); a second MQTT ingest on one machine takes the next port.
    ingest_metrics_port: Port = 16081
    kafka_heap: str = "512m"

    app_id: str = "citybrain"
    topic_prefix: str = "citybrain"
    # A consumer group uses at most one worker per partition, and every topic and table
    # gets this many: 10**20 passed here and reached Kafka's topic creation.
    partitions: int = Field(default=2, ge=1, le=MAX_PARTITIONS)

    grid_file: Path = REPO_ROOT / "datasets" / "grid.yaml"
    playbook_dir: Path = REPO_ROOT / "playbooks" / "library" / "playbooks"
    routing_file: Path = REPO_ROOT / "playbooks" / "library" / "routing.yaml"
    # Shortens every wait for a person (acks, approvals) and group_wait (rehearsals,
    # demos); unset in production. At least a playbook's shortest deadline (a second):
    # 0.001 passed, and a wait_ack looping back on its timeout notified at every deadline
    # check, as `deadline: 0s` did before the loader refused it (t177).
    ack_deadline_seconds: float | None = Field(default=None, ge=MIN_DEADLINE_SECONDS, le=DAY)

    # The worker's web server (operator API, /metrics) and the ingests' HTTP servers
    # (streams/bounds.py): seconds a client may take to send a request's line and headers
    # (and the API's or the HTTP ingest's body), stay idle on a keep-alive connection or
    # leave its answer unread; and the connections each serves at once, one more answered
    # 503. aiohttp held a slow or idle connection for an hour and took any number.
    http_timeout: float = Field(default=30.0, ge=MIN_SECONDS, le=3600)
    http_max_connections: int = Field(default=256, ge=1, le=65536)

    # Operator API: hashed tokens with roles (streams/auth.py); no file, no access.
    api_tokens_file: Path | None = None
    # Shared secret for webhook signatures; unset: a random one per worker start.
    webhook_secret: SecretStr | None = None
    # A retry's wait is backoff × 2^attempt, capped at MAX_WEBHOOK_BACKOFF (30) seconds
    # (playbooks/executors/webhook.py): from attempt 1,024 that product overflowed a
    # float and the step never got its result; a larger backoff is the cap anyway. At
    # least a millisecond: 0 doubled is 0, and every retry of a failing receiver (up to
    # 100) followed the last at once, a burst of 101 calls for each step (t177).
    webhook_timeout: float = Field(default=5.0, ge=MIN_SECONDS, le=600)
    webhook_retries: int = Field(default=4, ge=0, le=100)
    webhook_backoff: float = Field(default=0.5, ge=MIN_SECONDS, le=MAX_WEBHOOK_BACKOFF)
    # Where closure messages to reporters also go (besides <prefix>.replies); unset: topic only.
    replies_webhook_url: str | None = None

    # Grafana for annotate steps (the control room's timeline); unset: steps topic only.
    grafana_url: str | None = None
    grafana_token: SecretStr | None = None

    # Sensors whose value and score are always exported (comma-separated ids); sensors in
    # an open alert episode are exported anyway.
    watch_sensors: str = ""

    # Citizen-report bursts (streams/bursts.py). At least a second: below it a window's
    # slot number divided by zero or passed 64 bits, every report failing (t171).
    burst_bucket_seconds: float = Field(default=1800.0, ge=MIN_BUCKET_SECONDS, le=WEEK)
    burst_min_reports: int = Field(default=5, ge=2, le=100_000)

    # A crashed worker's partitions move once the group misses it this long (Kafka's
    # group.min.session.timeout.ms is 6 s); faust's 60 s default stalls failover.
    # At most faust's broker_request_timeout (90 s), which a session may not outlast:
    # 3600 passed here and the worker crashed at start with faust's ImproperlyConfigured
    # traceback.
    session_timeout: float = Field(default=10.0, ge=6.0, le=MAX_SESSION_TIMEOUT)
    # Kafka static group membership (group.instance.id, KIP-345): a worker restarted
    # after a crash (SIGKILL) takes its place in the group at once, not after the group
    # has expelled its dead member (the session timeout). Its id names the app, host,
    # bind and port (``streams.app.group_instance_id``), unique per worker; a stop on
    # purpose still leaves the group at once (streams/faust_patches.py, change 16).
    static_membership: bool = True
    heartbeat_interval: float = Field(default=2.0, ge=MIN_SECONDS, le=MAX_SESSION_TIMEOUT)
    # Seconds between offset commits (faust's broker_commit_interval). Each commit first
    # writes every sensor state changed since the last one to the changelog (about 8 %
    # of a catching-up worker's time at 20,000 sensors with JSON entries, less with the
    # binary ones; docs/benchmarks.md), so a longer interval trades a longer replay after
    # a crash (deterministic: no alert lost or repeated, docs/operations.md) for
    # throughput.
    commit_interval: float = Field(default=2.8, ge=MIN_SECONDS, le=600)
    # ... and after this many processed messages, whichever comes first (faust's
    # broker_commit_every). faust's 10,000 made a catching-up worker commit every
    # fraction of a second, rewriting each sensor's state (12.7 kB) for nearly every
    # reading it read: 22,060 readings/s over 20,000 sensors against 71,452/s with
    # commits on the interval alone (docs/benchmarks.md). The acked offsets a commit
    # waits for stay bounded by the interval's worth of messages.
    commit_every: int = Field(default=1_000_000, ge=1, le=10**9)

    # Bytes per partition per fetch. faust's 1 MiB default starved a catching-up worker:
    # it sat idle half the time waiting for fetches (docs/benchmarks.md).
    # Kafka's protocol carries it as a 32-bit integer: a larger one crashed the worker at
    # start (aiokafka's "argument out of range" traceback).
    fetch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024, le=2**31 - 1)
    # Seconds the broker may hold a fetch that finds no new data (aiokafka's
    # fetch_max_wait_ms, which faust 0.15.3 fixes at 1.5 s). aiokafka keeps one fetch in
    # flight per broker: a fetch for the quiet topics (incidents, commands, ...) sent
    # while the readings partitions still had records buffered held the next readings
    # fetch for up to 1.5 s, and a catching-up worker sat idle a third of the time
    # (61,136 -> 83,184 readings/s over 20,000 sensors with 0.1 s; docs/benchmarks.md).
    # An idle worker then asks the broker about ten times a second.
    fetch_max_wait: float = Field(default=0.1, ge=MIN_SECONDS, le=30)
    # Most messages one fetch hands over (faust's broker_max_poll_records); the readings
    # agent takes each partition's share of a fetch as one batch, with no added wait.
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    # How fetched messages reach the agents (streams/faust_patches.py): "batch" (one batch
    # per partition and fetch for readings and incidents, the default), or, to measure
    # each lever alone (docs/benchmarks.md), "per_message" (faust's event path with the
    # stale-generation fix) and "stock" (faust 0.15.3 untouched, commit stall included).
    faust_drain: Literal["batch", "per_message", "stock"] = "batch"
    # A name from detectors.DETECTORS; window and min_samples tune robust_zscore. The
    # default is the tail detector at its documented threshold (issue 13: the detector
    # and threshold of `citybrain detect` and of the NAB numbers).
    detector: str = "tail"
    # State per sensor grows with the window (8 bytes a reading).
    detector_window: int = Field(default=288, ge=3, le=100_000)
    detector_min_samples: int = Field(default=24, ge=3, le=100_000)
    # Unset, the detector's own threshold (detectors.default_threshold: 0.22 for tail,
    # 0.6 for robust_zscore), as `citybrain detect` counts it.
    # Above 0: every score is at least 0 (warm-up rows score 0), so a threshold of 0 or
    # less would flag every reading.
    # At most 1, the highest score: above it no reading would ever alert.
    score_threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0, le=1)
    quiet_readings: int = Field(default=6, ge=1, le=100_000)
    # Broken sensor or real event (streams/corroborating.py, docs/detectors.md): a
    # neighbour agrees with a score >= agree within window seconds (event time); a score
    # >= decisive routes as an event alone; a lone alert waits grace wall-clock seconds
    # for a neighbour's mark. The defaults are the tail detector's scale.
    corroboration: bool = True
    corroboration_window: float = Field(default=3600.0, ge=MIN_SECONDS, le=WEEK)
    corroboration_agree: float = Field(default=0.2, ge=0, le=1)
    corroboration_decisive: float = Field(default=0.9, ge=0, le=1)
    corroboration_grace: float = Field(default=30.0, ge=0, le=HOUR)
    max_future_skew: float = Field(default=300.0, ge=0, le=DAY)
    # A log line per dead letter (an audit trail in the log; the dead-letter topic has
    # them all anyway). Off: one line per stream and reason a minute, with a count, so
    # a gateway sending thousands of bad messages a second does not flood the log.
    log_each_dead_letter: bool = False
    # The intervals below are checks the worker owes someone: asyncio sleeps 1e300
    # seconds without complaint, and no deadline or silence's end was ever acted on.
    deadline_check_interval: float = Field(default=1.0, ge=MIN_SECONDS, le=300)
    # Seconds between sweeps of the burst windows by event time (streams/ingest.py).
    burst_sweep_interval: float = Field(default=30.0, ge=MIN_SECONDS, le=HOUR)
    # Seconds of event time a sensor in an open episode may send nothing while the
    # worker's other sensors of its kind on its partition report, before its alert is
    # resolved as ``no_data`` (a sensor that died mid-episode never sends the readings
    # that would end it; Alertmanager's resolve_timeout). 0: never (streams/ingest.py,
    # docs/operations.md).
    no_data_timeout: float = Field(default=HOUR, ge=0, le=WEEK)
    # Wall-clock seconds a group whose run has finished and whose alerts have all resolved
    # is kept (readable by `runs show`, its superseded runs' reports recognised) before
    # the deadline check forgets it with a tombstone (docs/playbooks.md, groups that end).
    group_retention: float = Field(default=2 * DAY, ge=0, le=52 * WEEK)
    # The tables' changelog topics, as they are created (and set again on existing ones
    # at a worker's start): Kafka compacts only closed segments, and its defaults (1 GiB,
    # 7 days) left a groups changelog holding about a million superseded records before
    # any compaction, every one read back at a restart (t155, docs/operations.md,
    # "Restart time and changelog length"). A segment closes after this many seconds
    # (segment.ms) or bytes (segment.bytes, Kafka's least 1 MiB), whichever comes first.
    changelog_segment_seconds: float = Field(default=HOUR, ge=60, le=WEEK)
    changelog_segment_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024, le=2**30)
    # How long a tombstone (a forgotten group, an expired silence) stays after compaction
    # reached it (delete.retention.ms): a worker reading the changelog must reach it
    # before it goes, or it keeps the key's older entry. A recovery reads a changelog in
    # minutes, a live worker within seconds: a day covers a worker frozen for hours.
    changelog_tombstone_seconds: float = Field(default=DAY, ge=HOUR, le=52 * WEEK)
    # Wall-clock seconds between re-checks of firing alerts kept from their receivers by a
    # silence or inhibition (streams/alerting.py): one no longer muted is routed then.
    mute_check_interval: float = Field(default=2.0, ge=MIN_SECONDS, le=300)

    # The longest line a CSV file (replay, detect, rehearse, the adapters) may have, in
    # bytes: a line with no line end was gathered whole before csv saw it (trial 21: a
    # 2 GB line grew memory by 2 GB); a longer one is a bad row, read past, never held.
    csv_max_line_bytes: LineBytes = MAX_LINE_BYTES

    # Kafka security (docs/operations.md). Secrets are SecretStr: never logged or echoed.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-256"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    @field_validator(*PATH_FIELDS, mode="before")
    @classmethod
    def _home_of(cls, value: object) -> object:
        """A leading ``~`` as the shell would have expanded it: quoted (``export
        CITYBRAIN_RUN_DIR="~/run"``) it reached here as is, and the run directory was a
        folder named ``~`` under the current one, while every printed command named
        ``$HOME/run`` (commands.absolute_setting expands it), so a printed ``stack down``
        acted on another run directory than the stack's (t98)."""
        if isinstance(value, str) and value.strip().startswith("~"):
            return str(Path(value.strip()).expanduser())
        if isinstance(value, str):
            # Blanks around a path are the shell's slip, as commands._run_dir reads them.
            return value.strip()
        return value

    @field_validator(*PATH_FIELDS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty file or directory setting (``export CITYBRAIN_RUN_DIR=$UNSET``) is
        unset, as the printed commands take CITYBRAIN_HOME and CITYBRAIN_RUN_DIR
        (``commands._run_dir``). Taken as "" it was the current directory: `stack up`
        wrote Kafka's data and pid files there while every printed `stack down` named
        ~/.cache/citybrain/run, and an empty CITYBRAIN_GRID_FILE was refused as "is '.':
        a directory" (t111)."""
        if isinstance(value, str) and not value.strip():
            assert info.field_name is not None
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @field_validator(*PATH_FIELDS)
    @classmethod
    def _name_fits(cls, value: Path | None) -> Path | None:
        """A path the file system cannot look up for its length is named as the
        setting's fault: CITYBRAIN_RUN_DIR with a 300-byte folder name was "cannot use
        …/demo/worker.pid: File name too long", naming no setting (t158)."""
        from streams.inputs import as_reason, name_too_long

        if value is not None and (too_long := name_too_long(value)):
            raise ValueError(as_reason(too_long))
        return value

    @field_validator("replies_webhook_url", "grafana_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        from playbooks.schema import http_url_problem

        if value is None:
            return None
        problem = http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("grafana_token")
    @classmethod
    def _header_token(cls, value: SecretStr | None) -> SecretStr | None:
        from streams.auth import BEARER_TOKEN

        # Sent as `Authorization: Bearer <token>`: a newline in it was httpx's "Illegal
        # header value b'Bearer …'", the token itself in every annotation_failed audit
        # record (trial 29).
        if value is not None and not BEARER_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError(
                "expected a bearer token: ASCII letters, digits and - . _ ~ + / (then = "
                "padding), RFC 6750"
            )
        return value

    @field_validator(*WHOLE_NUMBER_FIELDS, mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        """ASCII digits (a sign allowed, for the bound to refuse): pydantic's lax int took
        ``CITYBRAIN_PARTITIONS=2.0`` as 2 and refused ``2.5``, and the ports, which take
        whole numbers only, refused ``19692.0`` (t151)."""
        if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):
            raise ValueError("expected a whole number")
        return value

    @field_validator("topic_prefix", "app_id")
    @classmethod
    def _kafka_name(cls, value: str, info: ValidationInfo) -> str:
        # Kafka's legal topic characters; the prefix and the app id start topic names.
        if not value or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
            raise ValueError("expected letters, digits, '.', '_' or '-' (Kafka topic names)")
        # And Kafka's longest name: a longer one was "unexpected InvalidTopicError … a
        # bug" from `stack up` once Kafka had started (t66).
        longest = TOPIC_NAME_MAX - len(LONGEST_TOPIC_TAIL[info.field_name or ""])
        if len(value) > longest:
            raise ValueError(
                f"{len(value):,} characters, at most {longest}: Kafka's topic names are at "
                f"most {TOPIC_NAME_MAX} characters, and this one is followed by "
                f"{LONGEST_TOPIC_TAIL[info.field_name or '']!r}"
            )
        return value

    @field_validator("kafka_heap")
    @classmethod
    def _heap(cls, value: str) -> str:
        """A JVM heap size (``512m``, ``2g``) from ``MIN_KAFKA_HEAP`` to this machine's
        memory. ASCII digits: "²m" passed isdigit(), and the JVM refused the heap (helper
        t52). Before t190 any size passed, and Kafka exited at ``stack up``: ``0m`` and
        ``99999999999999999999999g`` the JVM refuses ("Invalid maximum heap size"), ``512``
        (bytes to the JVM, where ``512m`` was meant) and ``1k`` too small for it, ``64m``
        and ``128m`` an OutOfMemoryError in the broker's start, and a heap past the
        machine's memory cannot be committed (``-Xms``: "Not enough space")."""
        unit = value[-1:].lower() if value[-1:].lower() in _HEAP_UNITS else ""
        digits = value[: len(value) - len(unit)]
        if not (digits.isascii() and digits.isdigit()):
            raise ValueError("expected a JVM heap size such as 512m or 2g")
        memory = _physical_memory()
        most = f" to {memory // 2**30}g (this machine's memory)" if memory else ""
        significant = digits.lstrip("0")
        size = int(significant or "0") * _HEAP_UNITS[unit] if len(significant) <= 19 else None
        if size is None or size < MIN_KAFKA_HEAP or (memory and size > memory):
            bytes_hint = (
                f" ({value} without k, m or g is bytes to the JVM: write {value}m for MiB)"
                if not unit
                else ""
            )
            raise ValueError(
                f"expected a JVM heap size from {MIN_KAFKA_HEAP // 2**20}m{most}, such as "
                f"512m or 2g{bytes_hint}; the local Kafka runs out of heap at its start "
                "below 256m"
            )
        return value

    @field_validator("kafka_host", "mqtt_host", "worker_bind")
    @classmethod
    def _host(cls, value: str) -> str:
        # A common slip is a URL (http://host:port); a bind address that is a name this
        # machine cannot resolve is caught where it is bound (citybrain/ports.py).
        if not value or "/" in value or any(c.isspace() for c in value):
            raise ValueError("expected a host name or IP address, without scheme or path")
        from playbooks.schema import host_problem

        # t158: `a..b`, a part over 63 characters or `[::1` passed here and every client
        # raised the IDNA codec's UnicodeError: "unexpected … a bug", exit 70.
        if problem := host_problem(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _files_exist(self) -> Settings:
        """The files and directories a command reads, named by their setting when absent
        (rather than a later 'cannot read' or an empty playbook library)."""
        from streams.inputs import as_reason, unreadable

        for name, path, roles in (
            ("grid_file", self.grid_file, ("grid",)),
            ("routing_file", self.routing_file, ("routing",)),
            ("api_tokens_file", self.api_tokens_file, ("tokens",)),
        ):
            if path is None:
                continue
            # In the command line's words for an option's file (streams.inputs), in the
            # settings' shape: CITYBRAIN_GRID_FILE is '/x': no such file.
            if why := unreadable(path, "YAML", expects=roles):
                raise ValueError(
                    f"{variable(name)} is {str(path)!r}: {as_reason(why)}"
                    + ("" if name == "api_tokens_file" else "; unset it for the built-in one")
                )
        if problem := playbook_dir_problem(self.playbook_dir, at_start=True):
            raise ValueError(problem)
        if self.detector_min_samples > self.detector_window:
            raise ValueError(
                f"CITYBRAIN_DETECTOR_MIN_SAMPLES is {self.detector_min_samples}: expected at "
                f"most CITYBRAIN_DETECTOR_WINDOW ({self.detector_window})"
            )
        return self

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        """Two services on one port: the second fails late and obscurely (Kafka's
        storage format prints a Java exception), so the pair is refused here."""
        remote = {
            "kafka_port": self.kafka_host not in _LOOPBACK,
            "mqtt_port": self.mqtt_host not in _LOOPBACK,
        }
        seen: dict[int, str] = {}
        for name in LISTEN_PORTS:
            if remote.get(name):
                continue
            port = getattr(self, name)
            if port in seen:
                first = f"CITYBRAIN_{seen[port].upper()}"
                raise ValueError(
                    f"CITYBRAIN_{name.upper()} is {port}, the same as {first}: the two "
                    "must differ (each is a server's own port); give one another port"
                )
            seen[port] = name
        return self

    @model_validator(mode="after")
    def _intervals_and_thresholds(self) -> Settings:
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"CITYBRAIN_HEARTBEAT_INTERVAL is {self.heartbeat_interval:g}: expected "
                f"less than CITYBRAIN_SESSION_TIMEOUT ({self.session_timeout:g} s), or the "
                "group drops a live worker"
            )
        if self.corroboration_agree >= self.corroboration_decisive:
            raise ValueError(
                f"CITYBRAIN_CORROBORATION_AGREE is {self.corroboration_agree:g}: expected "
                f"less than CITYBRAIN_CORROBORATION_DECISIVE ({self.corroboration_decisive:g})"
            )
        return self

    @model_validator(mode="after")
    def _known_detector(self) -> Settings:
        from detectors.registry import DETECTORS, default_threshold

        if self.detector not in DETECTORS:
            raise ValueError(
                f"CITYBRAIN_DETECTOR is {self.detector!r}: expected one of "
                f"{', '.join(sorted(DETECTORS))}{did_you_mean(self.detector, DETECTORS)}"
            )
        if not self.threshold_is_set:
            # Stored without marking the field as given: a copy for another detector
            # (alert_threshold) still sees that no threshold was set.
            self.__dict__["score_threshold"] = default_threshold(self.detector)
        return self

    @property
    def threshold_is_set(self) -> bool:
        """Whether the score threshold was given (CITYBRAIN_SCORE_THRESHOLD or an
        argument), not taken from the detector's default."""
        return "score_threshold" in self.model_fields_set

    def alert_threshold(self, detector: str) -> float:
        """The threshold the stream would alert at running ``detector``: the one given,
        else that detector's own (detectors.default_threshold)."""
        from detectors.registry import default_threshold

        return self.score_threshold if self.threshold_is_set else default_threshold(detector)

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and not self.kafka_username:
            raise ValueError(
                f"CITYBRAIN_KAFKA_USERNAME is required when "
                f"CITYBRAIN_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}"
            )
        if sasl and self.kafka_password is None:
            raise ValueError(
                f"CITYBRAIN_KAFKA_PASSWORD is required when "
                f"CITYBRAIN_KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}"
            )
        if self.kafka_ssl_cafile is not None:
            from streams.inputs import as_reason, unreadable

            why = unreadable(self.kafka_ssl_cafile, for_a_directory="give the CA file (PEM)")
            if why:
                raise ValueError(
                    f"CITYBRAIN_KAFKA_SSL_CAFILE is {str(self.kafka_ssl_cafile)!r}: "
                    + as_reason(why)
                )
        return self

    def kafka_python_options(self) -> dict[str, Any]:
        """Connection options for kafka-python clients (replay, admin, readers)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            assert self.kafka_password is not None
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_username,
                sasl_plain_password=self.kafka_password.get_secret_value(),
            )
        if self.kafka_ssl_cafile is not None:
            options["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return options

    def kafka_reader_options(self) -> dict[str, Any]:
        """``kafka_python_options`` for a consumer reading citybrain's topics (the CLI's
        and the demo's readers): committed records only, as the worker reads them
        (streams/faust_patches.py, change 11). kafka-python reads uncommitted by default:
        a field producer's aborted transaction on the readings or incidents topic was
        counted by ``report`` and the demo's summary as events the worker never took."""
        return {**self.kafka_python_options(), "isolation_level": "read_committed"}

    def faust_credentials(self) -> Any:
        """faust's broker credentials, or None for PLAINTEXT."""
        import ssl

        import faust

        context = None
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
        if self.kafka_security_protocol.startswith("SASL"):
            assert self.kafka_password is not None
            return faust.SASLCredentials(
                username=self.kafka_username,
                password=self.kafka_password.get_secret_value(),
                mechanism=self.kafka_sasl_mechanism,
                ssl_context=context,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    # pids, logs and service data; defaults to <home>/run (tests use their own).
    run_dir_override: Path | None = Field(default=None, alias="CITYBRAIN_RUN_DIR")

    @property
    def run_dir(self) -> Path:
        """CITYBRAIN_RUN_DIR, else CITYBRAIN_HOME/run, absolute: a relative one is taken
        from this process's directory, so the token files and logs a command names are
        found from any directory (t51: `$(cat run/demo/operator-token)`)."""
        return (self.run_dir_override or self.home / "run").absolute()

    def kafka_tool(self, script: str, cls: str) -> str:
        """How to run Kafka's command-line tool ``script`` (``kafka-configs.sh``) against
        this Kafka as typed in a shell here: on the local stack, whose download holds
        Kafka's jars and not its ``bin/`` scripts, its class ``cls``
        (``kafka.admin.ConfigCommand``) run with those jars, ``java -cp '…/libs/*'
        CLASS`` (docs/operations.md); elsewhere (a city's Kafka, whose installation has
        the scripts, or nothing downloaded here) the script's name. t209: messages told a
        newcomer on the local stack to run scripts it does not have."""
        import shlex

        libs = self.home / f"kafka-{KAFKA_VERSION}" / "libs"
        if self.kafka_host in _LOOPBACK and libs.is_dir():
            return f"java -cp {shlex.quote(str(libs) + '/*')} {cls}"
        return script

    @property
    def grid_cache_dir(self) -> Path:
        """CITYBRAIN_HOME/grids: parsed grids, one per grid file's content and code
        version, read back at a start instead of parsed (``playbooks.loader.load_grid``)."""
        return self.home / "grids"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    @property
    def topics(self) -> dict[str, str]:
        """Every topic citybrain reads or writes, by role."""
        return {role: self.topic(role) for role in PIPELINE_TOPICS}


# Settings whose values are never echoed in an error (SecretStr fields).
SECRET_SETTINGS = frozenset({"webhook_secret", "grafana_token", "kafka_password"})


# The share of a changelog's bytes that may be superseded records before Kafka's cleaner
# compacts it (min.cleanable.dirty.ratio, Kafka's default, written out so that the bound
# docs/operations.md gives holds whatever the broker's default is).
CHANGELOG_DIRTY_RATIO = "0.5"


def changelog_topic_configs(settings: Settings) -> dict[str, str]:
    """The topic configs of every table's changelog (Kafka's names, values as text):
    compacted, with segments that close within ``changelog_segment_seconds`` or
    ``changelog_segment_bytes`` so the cleaner reaches superseded records within hours,
    and tombstones kept ``changelog_tombstone_seconds`` after it did."""
    return {
        "cleanup.policy": "compact",
        "segment.ms": str(round(settings.changelog_segment_seconds * 1000)),
        "segment.bytes": str(settings.changelog_segment_bytes),
        "min.cleanable.dirty.ratio": CHANGELOG_DIRTY_RATIO,
        "delete.retention.ms": str(round(settings.changelog_tombstone_seconds * 1000)),
    }


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment. Raises ``SettingsError``, one line naming each bad
    setting, its value (never a secret's) and what was expected:
    ``CITYBRAIN_KAFKA_PORT is 'abc': expected a whole number``."""
    from pydantic import ValidationError

    from streams.errors import SettingsError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        reasons = [setting_error(err) for err in exc.errors(include_url=False)]
        raise SettingsError("; ".join(reasons)) from None


def one_setting(name: str) -> Any:
    """One setting (a ``Settings`` field name, e.g. ``csv_max_line_bytes``) read from the
    environment as ``Settings`` reads and validates it (its ``CITYBRAIN_*`` variable, its
    default when unset), without reading or checking the others: for code that needs only
    it (reading a CSV file). Raises ``SettingsError`` worded as ``load_settings``'
    (``CITYBRAIN_CSV_MAX_LINE_BYTES is '64k': expected a whole number of bytes``)."""
    from pydantic import ValidationError, create_model

    from streams.errors import SettingsError

    field = Settings.model_fields[name]
    declared: Any = (field.annotation, field)  # the field as Settings declares it
    only = create_model(f"Only_{name}", __base__=_OneSetting, **{name: declared})
    try:
        return getattr(only(), name)
    except ValidationError as exc:
        reasons = [setting_error(err) for err in exc.errors(include_url=False)]
        raise SettingsError("; ".join(reasons)) from None


class _OneSetting(BaseSettings):
    """The base of ``one_setting``'s one-field models: ``Settings``' own reading rules."""

    model_config = Settings.model_config


def setting_error(err: Any) -> str:
    """One pydantic error (``ValidationError.errors()`` entry) in the project's words."""
    loc = [str(p) for p in err["loc"]]
    field = loc[0] if loc else ""
    # pydantic names a field that has an alias by the alias (CITYBRAIN_RUN_DIR), which
    # was named with the prefix twice (t158): back to the field.
    field = next((f for f, i in Settings.model_fields.items() if i.alias == field), field)
    message = str(err["msg"]).removeprefix("Value error, ")
    if not field:  # a model validator: its message names the settings already
        return message
    name = variable(field)
    expected = _EXPECTED.get(err["type"])
    reason = expected(err.get("ctx") or {}) if expected else message
    if field.endswith("_port") and field in Settings.model_fields:
        reason = "expected a port number, 1..65535"
    if err["type"] == "literal_error" and field in Settings.model_fields:
        near = closest(err.get("input"), get_args(Settings.model_fields[field].annotation))
        if near is not None:  # a misspelt choice (`batc`), as the command line answers it
            reason += f" (did you mean {near!r}?)"
    if field in SECRET_SETTINGS:
        return f"{name}: {reason} (the value is a secret and not shown)"
    value = err.get("input")
    not_a_number = err["type"] in ("float_parsing", "int_parsing") or reason in (
        "expected a whole number",
        "expected a whole number of bytes",
    )
    if not_a_number and isinstance(value, str):
        hint = _unit_hint(field, value)
        if hint:  # `1MB`: of bytes, without a unit: write 1000000 (said once)
            reason = reason.removesuffix(" of bytes") + hint
    if isinstance(value, str) and field.endswith("_url"):
        from playbooks.schema import shown_url

        value = shown_url(value)  # a URL's password is a secret too (trial 29)
    shown = repr(value) if isinstance(value, str) else repr(str(value))
    return f"{name} is {shown}: {reason}"


# A number with a unit written after it (``5s``, ``1 m``, ``8MiB``): settings take none.
_WITH_UNIT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*")
_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}
# The settings in seconds (t151: CITYBRAIN_GROUP_RETENTION=2d, named by no suffix here,
# was only "expected a number"); test_settings_errors checks every float setting is here
# or a ratio.
SECONDS_FIELDS = frozenset(
    {
        "ack_deadline_seconds",
        "http_timeout",
        "webhook_timeout",
        "webhook_backoff",
        "burst_bucket_seconds",
        "session_timeout",
        "heartbeat_interval",
        "commit_interval",
        "fetch_max_wait",
        "corroboration_window",
        "corroboration_grace",
        "max_future_skew",
        "deadline_check_interval",
        "burst_sweep_interval",
        "no_data_timeout",
        "group_retention",
        "mute_check_interval",
        "changelog_segment_seconds",
        "changelog_tombstone_seconds",
    }
)
_BYTES: dict[str, float] = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
}


def without_unit(value: str, unit: str) -> str | None:
    """``value``, a number with a unit written after it (``5m``, ``8MiB``, ``1 h``), as
    the plain number of ``unit`` (``seconds`` or ``bytes``) it stands for (``300``,
    ``8388608``), or None when it is no such number or its unit is not one of these. For
    a refusal's "write 300": the settings' and the command line's (t151: `rehearse
    --ack-deadline 5m` was told "give the number alone", which read 5 seconds)."""
    written = _WITH_UNIT.fullmatch(value)
    factors = {"seconds": _SECONDS, "bytes": _BYTES}.get(unit)
    if written is None or factors is None:
        return None
    factor = factors.get(written.group(2).lower())
    if factor is None:
        return None
    plain = float(written.group(1)) * factor
    return f"{int(plain)}" if plain.is_integer() else f"{plain:g}"


def _unit_hint(field: str, value: str) -> str:
    """`` of seconds, without a unit: write 60`` for ``1m`` given to a setting in
    seconds (and bytes alike); empty when ``value`` is not a number with a unit or the
    setting's unit is not known. Before, ``5s`` was only "expected a number"."""
    if _WITH_UNIT.fullmatch(value) is None:
        return ""
    if field.endswith("_bytes"):
        what = "bytes"
    elif field in SECONDS_FIELDS:
        what = "seconds"
    else:
        return ""
    plain = without_unit(value, what)
    return f" of {what}, without a unit" + (f": write {plain}" if plain is not None else "")


def _bound(limit: float) -> str:
    """A setting's bound as people read it: ``90``, ``0.5``, ``2,147,483,647`` (``:g``
    wrote the last as ``2.14748e+09``)."""
    if float(limit).is_integer() and abs(limit) >= 1e6:
        return f"{int(limit):,}"
    return f"{limit:g}"


_EXPECTED: dict[str, Any] = {
    "int_parsing": lambda c: "expected a whole number",
    "int_type": lambda c: "expected a whole number",
    "int_from_float": lambda c: "expected a whole number",
    "float_parsing": lambda c: "expected a number",
    "float_type": lambda c: "expected a number",
    "finite_number": lambda c: "expected a finite number",
    "bool_parsing": lambda c: "expected true or false (or 1/0, yes/no, on/off)",
    "bool_type": lambda c: "expected true or false (or 1/0, yes/no, on/off)",
    "greater_than": lambda c: f"expected more than {_bound(c['gt'])}",
    "greater_than_equal": lambda c: f"expected at least {_bound(c['ge'])}",
    "less_than": lambda c: f"expected less than {_bound(c['lt'])}",
    "less_than_equal": lambda c: f"expected at most {_bound(c['le'])}",
    "literal_error": lambda c: f"expected {c['expected']}",
    "path_type": lambda c: "expected a path",
    "string_type": lambda c: "expected text",
}


# CITYBRAIN_* variables that are not settings but are read by name elsewhere: the CLI's
# token and debug switch, the dashboards' data source; and the test suite's, by prefix.
NOT_SETTINGS = frozenset({"CITYBRAIN_API_TOKEN", "CITYBRAIN_DEBUG", "CITYBRAIN_PROMETHEUS_URL"})
NOT_SETTINGS_PREFIXES = ("CITYBRAIN_TEST_", "CITYBRAIN_STORM_")


def variable(field: str) -> str:
    """The environment variable of the setting ``field``: its alias, or ``CITYBRAIN_`` and
    the field in capitals (``kafka_port`` -> ``CITYBRAIN_KAFKA_PORT``)."""
    info = Settings.model_fields.get(field)
    return (info.alias if info is not None else None) or f"CITYBRAIN_{field.upper()}"


def setting_names() -> list[str]:
    """Every setting's environment variable, ``CITYBRAIN_KAFKA_PORT`` … (sorted)."""
    return sorted(map(variable, Settings.model_fields))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning line for each ``CITYBRAIN_*`` variable of ``environ`` that is neither a
    setting nor in ``NOT_SETTINGS`` (or under ``NOT_SETTINGS_PREFIXES``), with the setting
    it most resembles: a misspelt one (``KAFKA_PRT`` for ``KAFKA_PORT``) was ignored
    without a word and its default used."""
    import difflib

    names = setting_names()
    known = set(names) | NOT_SETTINGS
    lines = []
    for variable in sorted(environ):
        if (
            not variable.startswith("CITYBRAIN_")
            or variable in known
            or variable.startswith(NOT_SETTINGS_PREFIXES)
        ):
            continue
        # Compared without the shared prefix, which made every name look alike.
        tails = {name.removeprefix("CITYBRAIN_"): name for name in names}
        close = difflib.get_close_matches(variable.removeprefix("CITYBRAIN_"), tails, 1, 0.75)
        hint = (
            f"; did you mean {tails[close[0]]}?"
            if close
            else " (the README's Configuration lists the settings)"
        )
        lines.append(f"{variable} is not a citybrain setting and is ignored{hint}")
    return lines


def playbook_dir_problem(path: Path, at_start: bool = False) -> str | None:
    """Why ``path`` cannot be CITYBRAIN_PLAYBOOK_DIR (one line naming the variable and
    the path: not a directory, a playbook library rather than its playbook directory,
    no ``*.yaml`` in it), or None. Asked at start (``at_start``: the line also says to
    unset the variable for the built-in playbooks) and at each reload (SIGHUP): a
    directory renamed away for a moment was read at a reload as an empty library, and
    the error blamed every route's playbook (t125)."""
    from playbooks.loader import library_parts
    from streams.inputs import as_reason, not_a_directory

    if why := not_a_directory(path):
        unset = "; unset it for the built-in one" if at_start else ""
        return f"CITYBRAIN_PLAYBOOK_DIR is {str(path)!r}: {as_reason(why)}{unset}"
    if parts := library_parts(path):
        inner, routing = parts
        also = f" and CITYBRAIN_ROUTING_FILE to {routing}" if routing else ""
        return (
            f"CITYBRAIN_PLAYBOOK_DIR is {str(path)!r}: a playbook library, not its playbook "
            f"directory: set it to {inner}{also}, or unset it for the built-in ones"
        )
    if not any(path.glob("*.yaml")):
        unset = "; unset it for the built-in ones" if at_start else ""
        return f"CITYBRAIN_PLAYBOOK_DIR is {str(path)!r}: no playbooks (*.yaml) in it{unset}"
    return None
