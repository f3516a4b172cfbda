"""``citybrain demo``: the whole loop on real data, end to end, on the local stack.

Starts Kafka and Prometheus (installing what is missing), a worker in its own process,
replays canonical CSVs as fast as possible, shows live readings/s, anomalies, alerts
and playbook runs, then writes a summary built from what is on the Kafka topics.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaAdminClient, KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from citybrain.commands import (
    API_SETTINGS,
    absolute_setting,
    command_line,
    make_command,
    own_settings,
    shell_word,
    written_path,
)
from citybrain.deadletters import DeadLetter
from citybrain.errors import utf8_text
from citybrain.files import write_output
from citybrain.kafka_read import SafePoller, bounded, partitions_of, topics_of
from citybrain.ports import check_listen
from citybrain.report import (
    Context,
    NotReplayedError,
    Replayed,
    TopicMessage,
    accepted_events,
    alert_record,
    build_report,
    incidents_frame,
    limit_to_files,
    match_files,
    readings_frame,
    step_record,
)
from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer
from citybrain.stack.dirs import require_writable
from citybrain.stack.process import (
    PID_MAX,
    StackError,
    StateFileError,
    alive,
    check_state_file,
    frozen,
    pid_in,
    read_pid,
    record_code,
    spawn,
    stack_lock,
    stop,
    tail,
    worker_argv,
)
from citybrain.stack.topics import create_topics
from citybrain.text import agreeing, cell, counted, display_width, draws_live, duration, pad, warn
from playbooks.errors import closest, name_fault, shown
from streams.auth import hash_token
from streams.errors import EventError, FeedError, text_lines
from streams.events import (
    MIN_EVENT_TIME,
    Reading,
    alert_time,
    alert_times_utc,
    iso_instant,
    text_fault,
)
from streams.feeds import Event, Replayer, load_events
from streams.settings import REPO_ROOT, Settings, load_settings, setting_names

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
    """A real event the demo expects to be alerted on: an alert whose sensor id (or, for
    a citizen-report burst, grid cell) starts with ``sensor_prefix`` and whose first
    event time lies in [start, end] (ISO 8601 UTC) detects it."""

    name: str
    sensor_prefix: str
    start: str
    end: str


EXPECT_KEYS = ("name", "sensor_prefix", "start", "end")


def load_expected(path: Path) -> tuple[KnownEvent, ...]:
    """``--expect FILE``: a YAML (or JSON) list of events with the keys name,
    sensor_prefix, start, end. Raises ``ValueError`` naming the file, entry and key."""
    text = utf8_text(path, "--expect")  # Python's codec message before (trial 20)
    from playbooks.loader import compose_yaml, load_yaml, locate, yaml_error

    try:
        doc = load_yaml(text)  # as every YAML file: a key twice, an alias bomb refused
    except yaml.YAMLError as exc:
        raise ValueError(f"--expect {yaml_error(path, exc, text)}") from None
    if not isinstance(doc, list):
        what = "the file is empty" if doc is None else f"the file holds {shown(doc)}"
        raise ValueError(
            f"--expect {path}: {what}, expected a list of events with keys {EXPECT_KEYS}"
        )

    # file:line and the entry counted from 1, as the tokens file's entries are said (t98:
    # "entry 0" for the first, and no line); the file composed again only for an error.
    def at(i: int, key: str | None = None) -> str:
        line = locate(compose_yaml(text), (i, *((key,) if key else ())))
        return f"--expect {path}:{line}: entry {i + 1}"

    def written(i: int, key: str) -> str:
        """A value as the file writes it (a YAML time was shown as Python's str of it:
        ``2019-05-10 19:00:00+00:00`` for ``2019-05-10T19:00:00Z``)."""
        node = compose_yaml(text)
        entry = node.value[i] if isinstance(node, yaml.SequenceNode) else None
        value = next((v for k, v in entry.value if k.value == key), None) if entry else None
        if isinstance(value, yaml.ScalarNode):
            quoted = value.tag.endswith((":str", ":timestamp"))  # a number as written: -1
            return repr(value.value) if quoted else str(value.value)
        return shown(doc[i][key])

    events = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise ValueError(
                f"{at(i)} is {shown(entry)}, expected a mapping with exactly the keys {EXPECT_KEYS}"
            )
        if set(entry) != set(EXPECT_KEYS):
            raise ValueError(f"{at(i)}: {_key_faults(entry)}")
        for key in ("name", "sensor_prefix"):
            value = entry[key]
            # `name: ~` was the event "None", `sensor_prefix: ''` matched every alert (the
            # event counted detected whatever fired), a list the prefix "['a']" (t54).
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            # The shared check of names (t186: a U+2028 or U+2029 passed, and cut the
            # summary's and the live view's lines naming the event in two).
            fault = name_fault(value) if isinstance(value, str) else None
            if not isinstance(value, str) or not value.strip() or fault is not None:
                holds = "" if fault is None else f", which holds {fault}"
                raise ValueError(
                    f"{at(i, key)}: {key} is {shown(value)}{holds}, expected non-empty "
                    "text without control or invisible format characters, line or "
                    "paragraph separators"
                )
        for key in ("start", "end"):
            try:
                _utc(str(entry[key]))
            except ValueError:
                raise ValueError(
                    f"{at(i, key)}: {key} is {written(i, key)}, expected ISO 8601"
                ) from None
        # A window that ends before it starts can hold no alert: the event was reported
        # "missed" whatever the pipeline did (trial 20).
        if _utc(str(entry["end"])) < _utc(str(entry["start"])):
            raise ValueError(
                f"{at(i, 'end')}: end {written(i, 'end')} is before start {written(i, 'start')}"
            )
        events.append(KnownEvent(*(str(entry[k]) for k in EXPECT_KEYS)))
    return tuple(events)


def _key_faults(entry: dict[Any, Any]) -> str:
    """What an ``--expect`` entry's keys lack and have too many, each unknown key with the
    closest expected one: ``unknown key 'sensor_prefx' (did you mean 'sensor_prefix'?);
    missing sensor_prefix; expected exactly the keys (…)`` (a newcomer's typo got the
    expected keys alone, without the one that was wrong)."""
    unknown = [key for key in entry if key not in EXPECT_KEYS]
    missing = [key for key in EXPECT_KEYS if key not in entry]
    parts = []
    for key in unknown:
        near = closest(key, missing or EXPECT_KEYS)
        parts.append(f"unknown key {shown(key)}" + (f" (did you mean {near!r}?)" if near else ""))
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    return "; ".join([*parts, f"expected exactly the keys {EXPECT_KEYS}"])


def local_time(utc: str, zone: str) -> str:
    """``utc`` (ISO 8601, Z) as ``YYYY-MM-DD HH:MM local, ZONE`` in the IANA ``zone``,
    the way every known event's name gives its time."""
    from zoneinfo import ZoneInfo

    at = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{at:%Y-%m-%d %H:%M} local, {at:%Z}"


# Named by the event's local time, the one a resident remembers (datasets/README.md):
# the flood's peak gage height and the fireworks' midnight.
KNOWN_EVENTS = (
    KnownEvent(
        "Dead Run flash flood (Baltimore, "
        + local_time("2019-05-11T02:25:00Z", "America/New_York")
        + ")",
        "usgs-01589330-",
        "2019-05-10T18:00:00Z",
        "2019-05-11T06:00:00Z",
    ),
    KnownEvent(
        "Spring Festival fireworks (Beijing, "
        + local_time("2016-02-07T16:00:00Z", "Asia/Shanghai")
        + ")",
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


def drop_old_demo_topics(settings: Settings) -> list[str]:
    """Earlier demos' topics are deleted so the broker does not grow run after run; the
    prefixes whose topics went, sorted, for the demo to say (trial 20: it did so
    silently, and `report --prefix` of the previous demo then found no topics)."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_python_options()
    )
    try:
        listed = bounded(settings, "listing its topics", admin.list_topics)
        old = [t for t in listed if t.startswith("demo-")]
        if old:
            admin.delete_topics(old)
    finally:
        admin.close()
    return sorted({demo_of(t) for t in old})


def demo_of(topic: str) -> str:
    """The demo prefix (``demo-`` and the run's UTC time, 14 digits) of one of its topics:
    ``demo-20261203064618.readings``, and faust's ``demo-20261203064618-muted-changelog``
    (named from the app id with no dot: counting each as a demo said "10 earlier demos"
    for one). A ``demo-`` topic of another shape counts by its name before the first dot."""
    found = _DEMO_PREFIX.match(topic)
    return found.group(0) if found else topic.split(".", 1)[0]


_DEMO_PREFIX = re.compile(r"demo-[0-9]{14}(?![0-9])")
# Milliseconds a partition's position may take when a read begins (a question to Kafka
# after a seek to the beginning; a live broker answers in milliseconds).
POSITION_MS = 5000


def dropped_note(prefixes: list[str]) -> str:
    """The line that says which earlier demos' topics a demo deleted, or ""."""
    if not prefixes:
        return ""
    shown = ", ".join(prefixes[-3:]) + (
        f" and {len(prefixes) - 3:,} more" if len(prefixes) > 3 else ""
    )
    return (
        f"deleted the topics of {counted(len(prefixes), 'earlier demo')} ({shown}): "
        "their reports and dead letters can no longer be read"
    )


def topic_records(
    messages: list[Any], check: Callable[[dict[str, Any]], object] | None = None
) -> tuple[list[dict[str, object]], list[str]]:
    """The JSON records (objects) of ``messages`` (Kafka messages of a worker's topics)
    and where each is (``topic/partition/offset``). A message that is not a JSON object
    (a foreign producer's; the worker writes none), one holding a lone surrogate
    (``"\\ud800"``: no character, which no table or file can be written with), or one
    ``check`` refuses (raising
    ``EventError``: an object without the fields its readers use), is left out and said
    on stderr, where it is and why, not raised: trial 13's one such message made
    ``campaign report`` and ``report`` exit 70, "a bug", and no report could be made of
    those topics again."""
    records: list[dict[str, object]] = []
    places: list[str] = []
    bad: list[str] = []
    refused: list[str] = []
    for m in messages:
        where = f"{m.topic}/{m.partition}/{m.offset}"
        try:
            # A tombstone (a null value) is no record either (t150: a TypeError, exit 70).
            doc = json.loads(m.value) if m.value is not None else None
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            doc = None
        if not isinstance(doc, dict):
            bad.append(where)
            continue
        # JSON's "\ud800" is no character: a record holding one (another tool's) reached
        # the report's tables and HTML, which cannot write it (t169: exit 70, "a bug").
        fault = text_fault(doc)
        if fault is not None:
            refused.append(f"{where} ({fault})")
            continue
        if check is not None:
            try:
                check(doc)
            except EventError as exc:
                refused.append(f"{where} ({exc})")
                continue
        records.append(doc)
        places.append(where)
    for places_left, what in (
        (bad, "not a JSON record"),
        (refused, "not a record the worker writes"),
    ):
        if places_left:
            shown = ", ".join(places_left[:5]) + (
                f" and {len(places_left) - 5} more" if len(places_left) > 5 else ""
            )
            warn(
                f"left out {counted(len(places_left), 'message')} that "
                f"{'is' if len(places_left) == 1 else 'are'} {what}: {shown}",
            )
    return records, places


def read_records(
    settings: Settings, topic: str, check: Callable[[dict[str, Any]], object] | None = None
) -> list[dict[str, Any]]:
    """``topic_records`` of every message of ``topic`` ([] when there is none), each
    checked by ``check``."""
    return topic_records(read_topic(settings, topic), check)[0]


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every message of ``topic``, or [] when there is no such topic (subscribing to a
    topic that is not there could create it: a broker may auto-create topics). Records
    kafka-python cannot decode are skipped, each range warned of on stderr
    (``citybrain.kafka_read``)."""

    def make() -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=3000,
            group_id=None,
            **settings.kafka_reader_options(),
        )

    consumer = make()
    try:
        if topic not in topics_of(consumer, settings):
            return []
        return _read_to_end(SafePoller(consumer, make), topic, settings)
    finally:
        consumer.close()


def _read_to_end(
    poller: SafePoller,
    topic: str,
    settings: Settings,
    answers: Callable[[Settings], bool] | None = None,
) -> list[Any]:
    """Every message of ``topic`` up to the end each partition had when asked, read by
    assigning its partitions (t60's walk: subscribing and reading until 3 s passed with
    no message cost every topic those 3 s and a group join, and `report` of a demo sat
    31 s without a word). After 3 s with no message and partitions left, Kafka is asked
    anew: one that answers has nothing more (a partition whose last offsets are
    transaction markers never reaches its end offset), one that does not raises
    ``KafkaStoppedError`` (it returned part of the topic as if it were all: a report or
    summary of half the events, said nowhere; helper t85). ``answers`` asks Kafka
    (default ``kafka_read.kafka_answers``)."""
    from kafka import TopicPartition

    from citybrain.errors import KafkaStoppedError
    from citybrain.kafka_read import IDLE_SECONDS, kafka_answers, partitions_of, stopped_message

    consumer = poller.consumer
    partitions = sorted(partitions_of(consumer, settings, topic))
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return []
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)

    def behind(tp: TopicPartition) -> bool:
        # Bounded: the position after a seek to the beginning is a question to Kafka,
        # which kafka-python asks again until its request timeout and then answers None
        # (a frozen broker: '>' between int and None, exit 70 "a bug", t92). Unknown,
        # the partition is left to read, and the idle check below asks Kafka.
        position = consumer.position(tp, timeout_ms=POSITION_MS)
        return position is None or ends.get(tp, 0) > position

    left = {tp for tp in tps if behind(tp)}
    messages: list[Any] = []
    idle_until = time.monotonic() + IDLE_SECONDS
    while left:
        batch = poller.poll(timeout_ms=500)
        for records in batch.values():
            messages.extend(records)
            if records:
                idle_until = time.monotonic() + IDLE_SECONDS
        for tp in list(left):
            position = consumer.position(tp, timeout_ms=1000)
            if position is not None and position >= ends[tp]:
                left.discard(tp)
        if left and time.monotonic() > idle_until:
            if not (answers or kafka_answers)(settings):
                raise KafkaStoppedError(stopped_message(settings, f"reading {topic}", len(left)))
            break
    return messages


def summarise(
    settings: Settings,
    metrics: dict[str, float],
    prom: float | None,
    sensors: set[str],
    expected: tuple[KnownEvent, ...] = KNOWN_EVENTS,
    cell_names: dict[str, str] | None = None,
    sensor_days: float = 0.0,
) -> dict[str, Any]:
    """The demo's summary, read back from its topics: counts, each alert with the
    playbook and run it went to, and whether each expected event was alerted on;
    ``sensor_days`` (the replayed sensors' spans, summed) turns the sensor alerts outside
    every expected event into false alarms per 1,000 sensor-days."""
    alerts = read_records(settings, settings.topic("alerts"), alert_record)
    steps = read_records(settings, settings.topic("steps"), step_record)
    alert_list = alert_entries(alerts, steps, cell_names or {})
    runs = {s["run_id"] for s in steps if s["action"] == "run_created"}
    escalations = {s["id"] for s in steps if s["action"] == "escalate"}
    dead = read_topic(settings, settings.topic("deadletter"))
    reasons: dict[str, int] = {}
    for msg in dead:
        # Read as `deadletters` reads them: a foreign one's header need not be UTF-8 text
        # (nor be there at all).
        reason = DeadLetter.of(msg).headers.get("reason", "?")
        reasons[reason] = reasons.get(reason, 0) + 1
    known = known_events(alert_list, expected, sensors)
    outside = outside_events(alert_list, expected)
    bursts = sum(1 for a in alert_list if not a["sensor_id"])
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
        # Every sensor alert outside the dated events counts: an upper bound on false alarms.
        "alerts_outside_known_events": len(outside),
        # Citizen-report bursts are no sensor's false alarm: counted apart, not dropped.
        "incident_burst_alerts": bursts,
        "false_alarms_per_1000_sensor_days": round(1000 * len(outside) / sensor_days, 1)
        if sensor_days > 0
        else None,
        "alert_list": alert_list,
    }


def alert_entries(
    alert_docs: Iterable[dict[str, Any]],
    steps: Iterable[dict[str, Any]],
    names: dict[str, str],
) -> list[dict[str, Any]]:
    """The summary's ``alert_list``: one entry per alert id of ``alert_docs`` (the alerts
    topic's messages, each passed by ``alert_record``, in topic order) with the playbook
    and run it went to (``steps``: the steps topic's, ``step_record``'s), its cell's name
    from ``names`` (cell id -> name), ordered by first event time; ``first_event_time``
    and ``last_event_time`` written as RFC 3339 in UTC (``alert_times_utc``). Pure."""
    steps = list(steps)
    alerts: dict[str, dict[str, Any]] = {}
    for doc in alert_docs:
        # Its times as the worker's doors pass them on (RFC 3339 in UTC), whatever
        # spelling the alerts topic holds: listed under "event time (UTC)" and read by
        # people (t144: "2026-01-01T9:00:00+01:60" was shown as "2026-01-01 9:00:00+0").
        doc = alert_times_utc(doc)
        labels = doc.get("labels") or {}
        category = labels.get("category", "")
        entry = alerts.setdefault(
            doc["alert_id"],
            {
                "id": doc["alert_id"],
                # A citizen-report burst has no sensor: its cell and category say what.
                "subject": doc.get("sensor_id") or f"{doc['grid_cell']} {category}".strip(),
                "sensor_id": doc.get("sensor_id") or "",
                "category": category,
                "kind": doc["kind"],
                "grid_cell": doc["grid_cell"],
                "cell_name": names.get(doc["grid_cell"], ""),
                "severity": doc["severity"],
                "first_event_time": doc["started_at"],
                "last_event_time": None,
                "playbook": None,
                "run_id": None,
            },
        )
        if doc["status"] == "resolved":
            entry["last_event_time"] = doc.get("ended_at")
            entry["severity"] = doc["severity"]
    playbook_of = {s["run_id"]: s.get("playbook") for s in steps if s["action"] == "run_created"}
    for step in steps:
        # The first alert of a run is its alert_id; later ones join it (detail = alert id).
        alert_id = {"run_created": step.get("alert_id"), "alert_joined": step.get("detail")}.get(
            step["action"]
        )
        if alert_id in alerts and alerts[alert_id]["run_id"] is None:
            alerts[alert_id]["run_id"] = step["run_id"]
            alerts[alert_id]["playbook"] = playbook_of.get(step["run_id"])
    # By the instant, never the text: "…T08:30:00.5Z" sorts before "…T08:30:00Z" as text
    # (t144: as sent, a space before T sorted an alert at 09:00 before one at 07:00).
    return sorted(alerts.values(), key=lambda a: (_alert_utc(a["first_event_time"]), a["id"]))


def known_events(
    alerts: list[dict[str, Any]], expected: tuple[KnownEvent, ...], sensors: set[str]
) -> list[dict[str, Any]]:
    """Whether each expected event was alerted on: ``alerts`` need sensor_id, grid_cell
    and first_event_time. Only events whose sensors were replayed are reported, so a
    replayed one with no alert is "missed" and an absent one is not mentioned."""
    known = []
    for event in expected:
        hits = [
            a
            for a in alerts
            if (a["sensor_id"] or a["grid_cell"]).startswith(event.sensor_prefix)
            and _utc(event.start) <= _alert_utc(a["first_event_time"]) <= _utc(event.end)
        ]
        if any(s.startswith(event.sensor_prefix) for s in sensors):
            known.append({"event": event.name, "alerts": len(hits), "detected": bool(hits)})
    return known


def with_data(
    expected: tuple[KnownEvent, ...], readings: Any, incidents: Any
) -> tuple[KnownEvent, ...]:
    """The ``expected`` events whose data were replayed: ``readings`` (ts, sensor_id) of
    a sensor, or ``incidents`` (ts, grid_cell) in a cell, whose id starts with the
    event's prefix, inside its window. Only those can be detected or missed."""
    out = []
    for event in expected:
        lo, hi = _utc(event.start), _utc(event.end)
        held = any(
            frame[key][(frame["ts"] >= lo) & (frame["ts"] <= hi)]
            .astype(str)
            .str.startswith(event.sensor_prefix)
            .any()
            for frame, key in ((readings, "sensor_id"), (incidents, "grid_cell"))
        )
        if held:
            out.append(event)
    return tuple(out)


def outside_events(
    alerts: list[dict[str, Any]], expected: tuple[KnownEvent, ...]
) -> list[dict[str, Any]]:
    """The sensor alerts (``sensor_id``, ``first_event_time``) no expected event explains:
    the summary's false alarms. Sensor alerts only: a citizen-report burst is not a
    sensor's false alarm."""
    return [
        a
        for a in alerts
        if a["sensor_id"]
        and not any(
            a["sensor_id"].startswith(e.sensor_prefix)
            and _utc(e.start) <= _alert_utc(a["first_event_time"]) <= _utc(e.end)
            for e in expected
        )
    ]


def _utc(text: str) -> float:
    """An ISO 8601 time -> epoch seconds, read as the worker reads one
    (``streams.events.iso_instant``); one without a zone is UTC, as an event's time
    (docs/events.md), not this machine's local time. Times are compared so, never as
    text: "2019-05-10 23:00:00+00:00" (a space, an offset) sorted before "…T22:25:00Z"
    and an alert inside an --expect window counted as a false alarm (trial 20). Raises
    ValueError for any other text (``2019-05-10X23:00`` and week dates were taken)."""
    at = iso_instant(text)
    if at is None:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    return at.timestamp()


def _alert_utc(text: str) -> float:
    """An alert's ``started_at`` (its summary's ``first_event_time``) -> epoch seconds,
    read as the worker's alert doors read it (``streams.events.alert_time``:
    Alertmanager's spellings, and those an earlier worker took). ``_utc`` (a reading's
    rule) raised ValueError on an alert the worker had taken since t140, e.g.
    ``2019-05-10T9:30:00Z`` or ``+01:60``, and the summary failed."""
    return alert_time(text, "started_at", stored=True)


@dataclass
class Progress:
    """Where the demo is: what the pipeline is doing and how far it got."""

    phase: str
    sent: int
    processed: int
    total: int
    elapsed: float
    rate: float
    waiting: int
    average: bool = False  # ``rate`` is the average over the replay (RateMeter)

    @property
    def rate_text(self) -> str:
        """``12,345 readings/s``, or with ``average``: ``… readings/s on average``."""
        return f"{self.rate:,.0f} readings/s" + (" on average" if self.average else "")

    def line(self, m: dict[str, float]) -> str:
        """One plain line, for logs and pipes (every few seconds when not a terminal)."""
        share = 100 * self.processed / self.total if self.total else 100.0
        return (
            f"[{self.elapsed:5.0f} s] {self.phase}: {self.processed:,} of {self.total:,} "
            f"events processed ({share:.0f} %), {self.rate_text}; "
            # Each count with its noun in its number (t51: "1 runs").
            f"{counted(int(m.get('citybrain_anomalies_total', 0)), 'anomaly', 'anomalies')}, "
            f"{counted(int(m.get('citybrain_alerts_total', 0)), 'alert')}, "
            f"{counted(int(m.get('citybrain_playbook_runs_total', 0)), 'run')} "
            f"({self.waiting:,} waiting for a person), "
            f"{counted(int(m.get('citybrain_playbook_escalations_total', 0)), 'escalation')}"
        )


def _table(m: dict[str, float], p: Progress) -> Table:
    table = Table(title="citybrain - live", show_header=False, min_width=48)
    table.add_row("now", p.phase)
    table.add_row("elapsed", f"{p.elapsed:,.0f} s")
    table.add_row("replayed", f"{p.sent:,} / {p.total:,}")
    share = 100 * p.processed / p.total if p.total else 100.0
    table.add_row("processed", f"{p.processed:,} / {p.total:,} ({share:.0f} %)")
    table.add_row("readings/s (processed)", p.rate_text.removesuffix(" readings/s"))
    table.add_row("runs waiting for a person", f"{p.waiting:,}")
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


def write_report(
    settings: Settings,
    data: list[Path],
    path: Path,
    title: str,
    expected: tuple[KnownEvent, ...] | None = None,
    option: str = "--out",
) -> Replayed:
    """The what-if report of a finished replay: its data files, its topics and the grid.
    Everything it counts is what the prefix's topics hold, the worker accepted (its dead
    letters and the re-sent reports it drops left out) and comes from the files
    (``limit_to_files``: their readings and reports and the alerts, runs and escalations
    those raised; the page says so and how much else the prefix holds).
    ``expected`` defaults to the built-in events when ``data`` include built-in files,
    and an event is reported only when the topics hold readings of its sensors.
    Returns what was matched, for warnings (``Replayed.unreplayed``, ``partly``).
    Raises ``NotReplayedError``, writing nothing, when the topics hold none of the
    files' events; ``InputError`` naming ``option`` (the report's file's, ``--out``) when
    the file cannot be written, left as it was (``files.write_output``)."""
    from playbooks.loader import load_grid

    if expected is None:
        # The built-in events come with the built-in files, any of them (known_events
        # reports only the events whose sensors were replayed); never with a user's own.
        builtin = {p.resolve() for p in DEMO_DATA}
        expected = KNOWN_EVENTS if any(p.resolve() in builtin for p in data) else ()
    grid = load_grid(settings.grid_file)
    dead = {
        DeadLetter.of(m).headers.get("origin", "")
        for m in read_topic(settings, settings.topic("deadletter"))
    }

    def messages(role: str) -> list[TopicMessage]:
        return [
            TopicMessage(m.topic, m.partition, m.offset, m.value)
            for m in read_topic(settings, settings.topic(role))
        ]

    replayed = match_files(
        *accepted_events(messages("readings"), messages("incidents"), dead, grid),
        readings_frame(data),
        incidents_frame(data),
        settings.burst_bucket_seconds,
    )
    if replayed.coverage and all(held == 0 for _, held in replayed.coverage.values()):
        named = ", ".join(f"{name} ({n:,} events)" for name, (n, _) in replayed.coverage.items())
        again = command_line(
            "replay",
            *(str(Path(p).absolute()) for p in data),
            env={"CITYBRAIN_TOPIC_PREFIX": settings.topic_prefix},
        )
        raise NotReplayedError(
            f"the topics of prefix {settings.topic_prefix!r} hold none of the events of {named}:"
            f" they were not replayed under this prefix (replay them: `{again}`, or give the "
            "files that were)"
        )
    # (A prefix no worker has read yet has no alerts or steps topic: read_topic gives [].)
    alerts = read_records(settings, settings.topic("alerts"), alert_record)
    steps = read_records(settings, settings.topic("steps"), step_record)
    replayed.worker_ran = bool(alerts or steps)
    ours = limit_to_files(replayed, alerts, steps, settings.burst_bucket_seconds)
    readings = ours.readings
    firsts: dict[str, dict[str, Any]] = {}
    for doc in ours.alerts:
        firsts.setdefault(
            doc["alert_id"],
            {
                "sensor_id": doc.get("sensor_id", ""),
                "grid_cell": doc["grid_cell"],
                "first_event_time": doc["started_at"],
            },
        )
    context = Context(
        grid=grid,
        sensor_files=dict(zip(readings["sensor_id"], readings["file"], strict=True)),
        incidents=ours.incidents,
        # Only events whose data the topics hold: a file given but not replayed (or
        # replayed from past the event, --skip) never makes its event "missed".
        known_events=known_events(
            list(firsts.values()),
            with_data(expected, readings, ours.incidents),
            set(readings["sensor_id"]) | set(ours.incidents["grid_cell"]),
        ),
        report_files={
            str(rid): str(f)
            for rid, f in zip(ours.incidents["report_id"], ours.incidents["file"], strict=True)
        },
        repeated_reports=ours.repeated_reports,
        scope=ours.note(
            [name for name, (_, held) in replayed.coverage.items() if held],
            settings.topic_prefix,
        ),
    )
    write_output(path, build_report(readings, ours.alerts, ours.steps, title, context), option)
    # Alerts on sensors the files do not hold: the report was given other files than
    # the replay under this prefix had.
    replayed.elsewhere = len(
        {
            a["alert_id"]
            for a in alerts
            if a.get("sensor_id") and a["sensor_id"] not in context.sensor_files
        }
    )
    return replayed


def messages_in(settings: Settings, roles: tuple[str, ...]) -> int:
    """How many messages the topics of ``roles`` under ``settings``' prefix hold (their
    partitions' end offsets, summed; a topic that does not exist holds none)."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_reader_options()
    )
    try:
        parts = [
            TopicPartition(settings.topic(role), p)
            for role in roles
            for p in partitions_of(consumer, settings, settings.topic(role))
        ]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def topic_prefixes(settings: Settings) -> list[str]:
    """The prefixes that have citybrain topics on the broker (an ``<prefix>.alerts``
    topic), sorted; the demo's are ``demo-<time>``."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_python_options()
    )
    try:
        topics = bounded(settings, "listing its topics", admin.list_topics)
    finally:
        admin.close()
    return sorted(t.removesuffix(".alerts") for t in topics if t.endswith(".alerts"))


@dataclass(frozen=True)
class DemoFiles:
    """Where a demo keeps what outlives it, under the run directory: its worker's pid and
    log, the demo's operator, coordinator and gateway tokens (mode 0600) and the tokens
    file the worker and an HTTP ingest fed to it read."""

    dir: Path

    @classmethod
    def of(cls, settings: Settings) -> DemoFiles:
        return cls(settings.run_dir / "demo")

    @property
    def pid(self) -> Path:
        return self.dir / "worker.pid"

    @property
    def log(self) -> Path:
        return self.dir / "worker.log"

    @property
    def token(self) -> Path:
        return self.dir / "operator-token"

    @property
    def coordinator_token(self) -> Path:
        return self.dir / "coordinator-token"

    @property
    def gateway_token(self) -> Path:
        return self.dir / "gateway-token"

    @property
    def tokens(self) -> Path:
        return self.dir / "tokens.yaml"

    @property
    def state(self) -> Path:
        """The last demo's topic prefix, worker URL, Kafka and settings (JSON): commands
        run later (replay) read it to say how to reach that demo."""
        return self.dir / "demo.json"

    @property
    def code(self) -> Path:
        """The checkout's Python files' digests as the worker started (JSON,
        ``process.record_code``): ``stack status`` and ``reload`` name the files changed
        since, by contents."""
        return self.dir / "worker.code.json"

    @property
    def lock(self) -> Path:
        """Locked (``flock``) by a demo while it runs, naming it (``RunningDemo``, JSON):
        a second demo refuses instead of stopping its worker and deleting its topics."""
        return self.dir / "demo.lock"

    @property
    def stopped_by(self) -> Path:
        """What stopped a running demo from another shell (``stack down``), for the
        demo to say instead of a bare "interrupted" (JSON: ``by``, ``pid``, ``demo_pid``)."""
        return self.dir / "stopped-by.json"


@dataclass(frozen=True)
class RunningDemo:
    """A demo that runs now: its process id (None while it is still writing the lock),
    its topic prefix and when it started (ISO 8601 UTC, "" when not known)."""

    pid: int | None
    prefix: str
    started: str


class DemoInterruptedError(RuntimeError):
    """The demo was interrupted (Ctrl-C); the message says what it left and what to type
    next (``interrupted_message``)."""


class DemoRunningError(RuntimeError):
    """Another demo runs on this run directory; ``demo`` says which."""

    def __init__(self, demo: RunningDemo, message: str) -> None:
        super().__init__(message)
        self.demo = demo


@contextlib.contextmanager
def demo_lock(files: DemoFiles, prefix: str, started: datetime) -> Iterator[None]:
    """Hold ``files.lock`` while the demo runs (released when the process ends, however).
    Raises ``DemoRunningError`` (``running_message``) when another demo holds it: a
    second demo stopped the first one's worker and deleted its topics (t36)."""
    files.dir.mkdir(parents=True, exist_ok=True)
    # A lock path that is no file (a directory, a socket, a link: t194) is said with what
    # to do, not "cannot use …: Is a directory" or "Too many levels of symbolic links".
    check_state_file(files.lock, "the demo's lock file", write=True)
    try:
        fd = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise StateFileError(
            f"{files.lock}, the demo's lock file, is a symbolic link, which citybrain does "
            f"not follow for its lock: remove the link (`rm {files.lock}`)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _lock_holder(files)
            raise DemoRunningError(other, running_message(other, files)) from None
        doc = {"pid": os.getpid(), "prefix": prefix, "started": f"{started:%Y-%m-%dT%H:%M:%SZ}"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(doc) + "\n").encode(), 0)
        files.stopped_by.unlink(missing_ok=True)  # an earlier demo's, never this one's
        yield
    finally:
        os.close(fd)  # releases the lock


def running_demo(settings: Settings) -> RunningDemo | None:
    """The demo running now under ``settings``' run directory (one holds its lock), or
    None."""
    files = DemoFiles.of(settings)
    try:
        fd = os.open(files.lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_holder(files)
        return None
    finally:
        os.close(fd)


def _lock_holder(files: DemoFiles) -> RunningDemo:
    """The ``RunningDemo`` the lock file names (pid None when it is not written yet)."""
    try:
        doc = json.loads(files.lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    pid = doc.get("pid")
    return RunningDemo(
        # A pid no process has (0 or -1 name groups to kill) is none: t180.
        pid if isinstance(pid, int) and not isinstance(pid, bool) and 1 <= pid <= PID_MAX else None,
        str(doc.get("prefix") or ""),
        str(doc.get("started") or ""),
    )


def running_message(demo: RunningDemo, files: DemoFiles, now: datetime | None = None) -> str:
    """Why a second demo refuses to start while ``demo`` runs, and what to do: wait for
    it, or stop it (its terminal's Ctrl-C, ``kill PID``, ``stack down``)."""
    now = now or datetime.now(UTC)
    facts = [f"pid {demo.pid}" if demo.pid is not None else "still starting"]
    if demo.started:
        try:
            at = datetime.fromisoformat(demo.started.replace("Z", "+00:00"))
            ago = max(0, int((now - at).total_seconds()))
            facts.append(f"started {at:%H:%M:%S} UTC, {_ago_text(ago)} ago")
        except ValueError:
            pass
    if demo.prefix:
        facts.append(f"topic prefix {demo.prefix}")
    kill = f"`kill {demo.pid}`" if demo.pid is not None else "`kill` on its process"
    # The lock's path only while the pid is not known, the one way to find that process
    # (t60: with it always, the line ran to 370 characters).
    lock = f"; its lock: {files.lock}" if demo.pid is None else ""
    return (
        f"another demo is running on this stack ({', '.join(facts)}{lock}): a second would "
        f"stop its worker and delete its topics. Wait until it ends, or stop it and its "
        f"worker (Ctrl-C in its terminal, or {kill}), then run this again"
    )


def _ago_text(seconds: int) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``; past 2 days as ``text.duration`` says it."""
    if seconds >= 172_800:
        return duration(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def read_demo_state(settings: Settings) -> dict[str, Any] | None:
    """What the last demo under ``settings``' run directory recorded, if its worker still
    runs (``DemoFiles.state``); None otherwise or when the file is unreadable."""
    files = DemoFiles.of(settings)
    if read_pid(files.pid) is None:
        return None
    try:
        doc = json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def last_demo_prefix(settings: Settings) -> str | None:
    """The topic prefix the last demo under ``settings``' run directory recorded, whether
    or not its worker still runs; None when there is no readable record."""
    try:
        doc = json.loads(DemoFiles.of(settings).state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prefix = doc.get("topic_prefix") if isinstance(doc, dict) else None
    return prefix if isinstance(prefix, str) and prefix else None


# Settings the demo sets for its own worker, and secrets: never echoed for the user.
_NOT_ECHOED = (
    "CITYBRAIN_TOPIC_PREFIX",
    "CITYBRAIN_APP_ID",
    "CITYBRAIN_ACK_DEADLINE_SECONDS",
    "CITYBRAIN_API_TOKENS_FILE",
    "CITYBRAIN_API_TOKEN",
    "CITYBRAIN_DEBUG",
)


def shell_settings(environ: dict[str, str] | os._Environ[str] | None = None) -> dict[str, str]:
    """The ``CITYBRAIN_*`` settings of this shell a later command needs to reach the same
    stack (ports, run directory, hosts), without secrets (``*TOKEN*``, ``*SECRET*``) and
    without those the demo sets for its own worker."""
    env = os.environ if environ is None else environ
    # Settings only: a test's variable (the test port offset) is none (trial 9).
    names = set(setting_names())
    return {
        k: absolute_setting(k, v)
        for k, v in sorted(env.items())
        if k in names and k not in _NOT_ECHOED and "TOKEN" not in k and "SECRET" not in k
    }


def worker_settings(
    environ: Mapping[str, str] | os._Environ[str], own: Mapping[str, str], settings: Settings
) -> dict[str, str]:
    """The ``CITYBRAIN_*`` settings the demo's worker runs with: where it reaches Kafka,
    serves and keeps its files (from ``settings``, defaults included, so a restart from a
    shell with other exports still finds them), this shell's others (no secret) and the
    demo's ``own`` (its topic prefix, app id, ack deadline and tokens file), by name."""
    where = {
        "CITYBRAIN_KAFKA_HOST": settings.kafka_host,
        "CITYBRAIN_KAFKA_PORT": str(settings.kafka_port),
        "CITYBRAIN_WORKER_PORT": str(settings.worker_port),
        "CITYBRAIN_RUN_DIR": str(settings.run_dir.absolute()),
    }
    shell = {
        k: absolute_setting(k, v)
        for k, v in environ.items()
        if k.startswith("CITYBRAIN_")
        and "TOKEN" not in k
        and "SECRET" not in k
        and "PASSWORD" not in k
        and k != "CITYBRAIN_DEBUG"
    }
    return dict(sorted({**where, **shell, **own}.items()))


def demo_worker(settings: Settings) -> tuple[str, dict[str, Any] | None]:
    """The last demo's worker under ``settings``' run directory: ``running``; ``stopped``
    when its process is gone without a ``make stack-down`` (it crashed or was killed:
    its pid file is still there); ``none`` when no demo's worker should be running.
    With the demo's recorded state (``DemoFiles.state``) when it can be read."""
    files = DemoFiles.of(settings)
    try:
        doc = json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    doc = doc if isinstance(doc, dict) else None
    if read_pid(files.pid) is not None:
        return "running", doc
    return ("stopped" if files.pid.exists() else "none"), doc


def restart_env(settings: Settings, doc: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``CITYBRAIN_*`` settings the demo's worker ran with, to start it again as the
    demo started it (``worker_settings``; a demo.json from before they were recorded
    gives the shell's and the demo's prefix and app id, and the demo's tokens file)."""
    files = DemoFiles.of(settings)
    state: Mapping[str, Any] = doc or {}
    recorded = state.get("worker_settings")
    if isinstance(recorded, dict):
        return {str(k): str(v) for k, v in recorded.items()}
    shell = state.get("settings")
    env = {str(k): str(v) for k, v in shell.items()} if isinstance(shell, dict) else {}
    for key in ("topic_prefix", "app_id"):
        if isinstance(state.get(key), str):
            env[f"CITYBRAIN_{key.upper()}"] = state[key]
    env.setdefault("CITYBRAIN_API_TOKENS_FILE", str(files.tokens))
    return env


def run_dir_env(settings: Settings) -> dict[str, str]:
    """``{"CITYBRAIN_RUN_DIR": ...}`` when the run directory is not the default, else {}:
    what a printed stack command needs to find the demo's state."""
    return {"CITYBRAIN_RUN_DIR": str(settings.run_dir)} if settings.run_dir_override else {}


def restart_command(settings: Settings) -> str:
    """The command line that starts the demo's worker again as the demo started it,
    tracked by the stack (its pid file: `stack status` shows it, `stack down` stops it):
    ``citybrain stack restart-worker``, after the run directory when it is not the
    default (the settings it runs with are in demo.json). The worker command
    printed before started a worker neither status nor down knew of, on the port the next demo
    needed (t36)."""
    run_dir = run_dir_env(settings)
    # Every setting printed commands carry (the demo's recorded ones too, t40), not only
    # the run directory: the same line works as typed whatever restart-worker checks.
    return command_line("stack", "restart-worker", env=run_dir)


def restart_advice(settings: Settings) -> str:
    """``restart_command``, after the command that starts the stack when its Kafka is not
    running (restart-worker refuses then: t48 typed it after `stack down` as `stack
    status` and `runs` advised, and was told to start the stack first)."""
    restart = restart_command(settings)
    if KafkaBroker(settings).running():
        return restart
    run_dir = run_dir_env(settings)
    return f"{command_line('stack', 'up', env=run_dir)}, then {restart}"


def interrupted_message(
    settings: Settings, stack_up: bool = False, prefix: str | None = None, replayed: bool = True
) -> str:
    """What a demo (or with ``stack_up``, ``stack up``) stopped by Ctrl-C leaves, and what
    to type next (new-user walk, t17: both said only "interrupted", with Kafka left
    running or starting unannounced). The demo's worker is stopped by ``run_demo`` unless
    the interruption came after the summary. ``prefix``: the demo's topic prefix; when
    it had recorded its state (demo.json) and Kafka runs, `stack restart-worker` is
    offered, which brings its runs back (t46: nothing pointed to it), unless
    ``replayed`` is False: interrupted before its replay began, it sent nothing and made
    no run (t209: it offered "starts it again on the runs it made" all the same)."""
    by = "" if stack_up else stopped_by(DemoFiles.of(settings))
    if by:
        # Not "interrupted ... keeps running": the other command is stopping the rest.
        return (
            f"stopped: {by} in another shell stopped this demo and its worker, and is "
            f"stopping the stack; `{make_command('demo')}` in the checkout "
            "starts a new demo"
        )
    left = [
        name
        for name, component in (
            ("Kafka", KafkaBroker(settings)),
            ("Prometheus", PrometheusServer(settings)),
            ("Mosquitto", MosquittoBroker(settings)),  # `stack up`'s, which `down` stops too
        )
        if component.running()
    ]
    worker = read_pid(DemoFiles.of(settings).pid) is not None
    if worker:
        left.append("the demo's worker")
    if stack_up:
        head = "the stack did not finish starting"
        again = f"`{command_line('stack', 'up')}` starts the rest"
    else:
        said = "its worker keeps serving the runs it made" if worker else "its worker was stopped"
        if not replayed:
            said = (
                "its worker was stopped" if not worker else "its worker keeps running"
            ) + " before its replay began: nothing was sent, no run made"
        elif not worker and "Kafka" in left and prefix and _recorded_prefix(settings) == prefix:
            said += (
                f"; `{restart_command(settings)}` starts it again on the runs it made, "
                "which a new demo deletes"
            )
        head = f"the demo did not finish ({said})"
        again = f"`{make_command('demo')}` in the checkout starts a new demo"
    if not left:
        return f"interrupted: {head.split(' (')[0]} and left nothing running; {again}"
    running = " and ".join([", ".join(left[:-1]), left[-1]] if len(left) > 1 else left)
    return (
        f"interrupted: {head}; {running} {agreeing(len(left), 'keeps', 'keep')} running: "
        f"`{command_line('stack', 'down')}` stops "
        f"{agreeing(len(left), 'it', 'them')}, or {again}"
    )


def _recorded_prefix(settings: Settings) -> str | None:
    """The topic prefix of the demo recorded under ``settings``' run directory
    (``DemoFiles.state``), None when there is none or it cannot be read."""
    try:
        doc = json.loads(DemoFiles.of(settings).state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prefix = doc.get("topic_prefix") if isinstance(doc, dict) else None
    return prefix if isinstance(prefix, str) else None


def stop_running_demo(settings: Settings, by: str, timeout: float = 60.0) -> RunningDemo | None:
    """Stop the demo running now under ``settings``' run directory, if one runs: say
    ``by`` (the command, e.g. ``citybrain stack down``) in ``DemoFiles.stopped_by`` for
    it to print, SIGTERM it (it stops its worker, as on Ctrl-C) and wait until it ended
    (its lock released), at most ``timeout`` s. Returns the demo stopped, or None.
    Raises ``StackError`` when it is still running after ``timeout``."""
    demo = running_demo(settings)
    if demo is None:
        return None
    files = DemoFiles.of(settings)

    def signal_it(pid: int) -> None:
        write_private(
            files.stopped_by,
            json.dumps({"by": by, "pid": os.getpid(), "demo_pid": pid}) + "\n",
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            if frozen(pid):
                # t104: a frozen demo holds the SIGTERM until it runs again (as process.stop).
                os.kill(pid, signal.SIGCONT)

    if demo.pid is not None:
        signal_it(demo.pid)
    deadline = time.monotonic() + timeout
    while (now := running_demo(settings)) is not None:
        if demo.pid is None and now.pid is not None:
            # t112: a demo still writing its lock was never signalled, only waited for
            # (60 s, then "did not end"), and a demo that ended was said "stopped (pid None".
            demo = now
            signal_it(now.pid)
        if time.monotonic() > deadline:
            raise StackError(
                f"the running demo (pid {demo.pid}) did not end within {timeout:g} s of "
                "SIGTERM; stop it in its terminal (Ctrl-C), then run this again"
            )
        time.sleep(0.2)
    return demo


def stopped_by(files: DemoFiles, pid: int | None = None) -> str:
    """The command another shell stopped the demo of process ``pid`` (default: this one)
    with (``stop_running_demo``), e.g. "`citybrain stack down` (pid 4242)", or ""."""
    try:
        doc = json.loads(files.stopped_by.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(doc, dict) or doc.get("demo_pid") != (pid or os.getpid()):
        return ""
    return f"`{doc.get('by')}` (pid {doc.get('pid')})"


def stop_demo_worker(settings: Settings) -> bool:
    """Stop the worker an earlier demo left serving its runs; whether one was running."""
    return stop(DemoFiles.of(settings).pid)


def make_demo_token(files: DemoFiles) -> str:
    """Fresh demo tokens, an operator's (returned), a coordinator's (escalate, cancel,
    approve, expire silences: streams/auth.py PERMISSIONS) and a gateway's (the HTTP
    ingest's ``POST``s, README "Pointing a city's gateways"): the secrets in
    ``files.token``, ``files.coordinator_token`` and ``files.gateway_token`` (0600), their
    hashes in ``files.tokens`` for the demo's worker and an ingest fed to it. Without the
    gateway's, the README's HTTP example after a demo got only 401s (t66)."""
    files.dir.mkdir(parents=True, exist_ok=True)
    lines = ["tokens:"]
    secrets_by_role = {}
    for role, path in (
        ("operator", files.token),
        ("coordinator", files.coordinator_token),
        ("gateway", files.gateway_token),
    ):
        token = secrets.token_urlsafe(24)
        write_private(path, token + "\n")
        lines.append(f"  - {{name: demo-{role}, role: {role}, sha256: '{hash_token(token)}'}}")
        secrets_by_role[role] = token
    write_private(files.tokens, "\n".join(lines) + "\n")
    return secrets_by_role["operator"]


def demo_gateway_hint(settings: Settings) -> str:
    """For an HTTP ingest with no gateway token (CITYBRAIN_API_TOKENS_FILE unset): where
    the last demo's are, `` (the demo's: CITYBRAIN_API_TOKENS_FILE=…/tokens.yaml, its
    gateway token in …/gateway-token)``; "" when the setting is given or no demo wrote a
    gateway token. A newcomer typing the README's HTTP example after ``make demo`` was
    told only to set the variable."""
    files = DemoFiles.of(settings)
    if settings.api_tokens_file is not None or not files.gateway_token.is_file():
        return ""
    return (
        f" (the demo's: CITYBRAIN_API_TOKENS_FILE={_shown(files.tokens)}, its gateway token "
        f"in {_shown(files.gateway_token)}: export GATEWAY_TOKEN=$(cat "
        f"{_shown(files.gateway_token)}))"
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by its owner only (0600), also
    when it existed with a wider mode (``touch(mode=0o600)`` left an existing file's
    mode as it was, trial 29), and never through a symbolic link at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def starting_line() -> str:
    """What the demo starts, said before it starts it; Mosquitto is not among them."""
    return (
        "starting Kafka and Prometheus, then a stream worker (not Mosquitto: "
        f"`{make_command('stack-up')}` in the checkout starts it, "
        f"for `{command_line('ingest', 'mqtt')}`)"
    )


def check_worker_port(settings: Settings) -> None:
    """``ListenError`` (exit 3) naming CITYBRAIN_WORKER_PORT and a free port unless the
    demo's worker can listen there: a worker the stack did not start (one started by
    hand) held it, and the demo's worker exited with that one's log lines first (t36)."""
    check_listen(
        settings.worker_bind, settings.worker_port, "CITYBRAIN_WORKER_PORT", "demo's worker"
    )


def announce_installs(console: Console, kafka: KafkaBroker) -> None:
    """Say what the stack will download or install before it does (issue 15, item 7)."""
    notice = kafka.download_notice()
    if notice is not None:
        console.print(notice, markup=False)
    if shutil.which("prometheus") is None:
        console.print(
            "prometheus not found: installing Debian's prometheus package with "
            "`apt-get install --no-install-recommends prometheus` (needs root)"
        )


def watched_sensors(data: Sequence[Path], expected: Sequence[KnownEvent]) -> list[str]:
    """The sensor ids in the canonical CSVs ``data`` (plain or gzip) that an ``expected``
    event's ``sensor_prefix`` names (the Dead Run gauges, the Beijing stations), sorted:
    the demo's worker exports their value and score all along (CITYBRAIN_WATCH_SENSORS),
    so the sensor_detail dashboard has them after a fast replay, in which an alert
    episode opens and closes between two scrapes (trial 9: the dashboard was empty).
    Files that are not reading CSVs (no sensor_id column) are passed over."""
    from streams.events import Reading
    from streams.feeds import read_canonical

    prefixes = tuple(e.sensor_prefix for e in expected)
    found: set[str] = set()
    if not prefixes:
        return []
    for path in data:
        # Read as the replay reads them (``demo_events`` checked them): csv's DictReader
        # read a line of spaces, which the replay's reader passes over, as a row without
        # a sensor_id, and None.startswith raised (t162).
        for event in read_canonical(path, on_bad_row=_passed_over):
            if isinstance(event, Reading) and event.sensor_id.startswith(prefixes):
                found.add(event.sensor_id)
    return sorted(found)


def _passed_over(_: object) -> None:
    """A bad row ``demo_events`` has already refused the demo for."""


def demo_events(data: list[Path]) -> list[Event]:
    """The events of the ``--data`` files, in event-time order (``load_events``, a bad row
    raising ``FeedError``). Raises ``FeedError`` when they hold none (only headers): a
    demo of such a file started the stack and a worker, replayed nothing and ended in
    "no alert was raised: the detectors found nothing anomalous enough" (t121)."""
    headers_only: list[Path] = []
    events = load_events(data, headers_only=headers_only)
    if not events:
        names = ", ".join(repr(str(path)) for path in headers_only)
        raise FeedError(
            f"--data {names}: no rows after the header: nothing to replay; give files with "
            "reading or incident rows (docs/events.md)"
        )
    return events


def run_demo(
    data: list[Path],
    ack_deadline: float = 5.0,
    summary_path: Path | None = None,
    report_path: Path | None = None,
    expected: tuple[KnownEvent, ...] = KNOWN_EVENTS,
    console: Console | None = None,
) -> dict[str, Any]:
    """The whole loop; returns the summary. Leaves the stack and the demo's worker
    running so its runs stay reachable through the operator API; raises StackError when
    a service fails. ``expected``: the events the summary reports as detected or missed."""
    # soft_wrap: no line is broken at 80 columns when the output is a pipe or a log.
    console = console or Console(soft_wrap=True)
    started = datetime.now(UTC)
    base = load_settings()
    files = DemoFiles.of(base)
    # The data read (and refused, naming file and line) before anything starts or is
    # deleted: a bad --data file was found only after the stack had started and the
    # earlier demos' topics were gone, and the stack was left running unsaid.
    events = demo_events(data)
    # Its directories before the lock (written in the run directory) and the first line:
    # a read-only home was found after "first run: downloading Kafka" was printed (t111).
    require_writable(base, home=KafkaBroker(base).download_notice() is not None)
    prefix = f"demo-{started:%Y%m%d%H%M%S}"
    # One demo at a time per stack: a second one refuses (DemoRunningError) before it
    # stops anything or deletes any topic. Once it holds the lock, this demo replaces the
    # last one's stack, worker and topics: what it prints carries its own settings.
    reached: dict[str, bool] = {}  # "replay": once its replay began
    with demo_lock(files, prefix, started), own_settings():
        try:
            return _run_demo(
                console,
                base,
                files,
                events,
                started,
                data,
                ack_deadline,
                summary_path,
                report_path,
                expected,
                reached,
            )
        except KeyboardInterrupt:
            said = interrupted_message(base, prefix=prefix, replayed=reached.get("replay", False))
            raise DemoInterruptedError(said) from None


def _run_demo(
    console: Console,
    base: Settings,
    files: DemoFiles,
    events: list[Any],
    started: datetime,
    data: list[Path],
    ack_deadline: float,
    summary_path: Path | None,
    report_path: Path | None,
    expected: tuple[KnownEvent, ...],
    reached: dict[str, bool],
) -> dict[str, Any]:
    """``run_demo``'s work, under the demo's lock; sets ``reached["replay"]`` once its
    replay begins."""
    run_id = f"{started:%Y%m%d%H%M%S}"
    kafka, prom = KafkaBroker(base), PrometheusServer(base)
    console.print(f"[bold]citybrain demo[/]: {escape(starting_line())}")
    announce_installs(console, kafka)
    for component in (kafka, prom):  # every port before anything starts
        component.check_ports()
    if read_pid(files.pid) is None:  # else the previous demo's worker holds it, stopped below
        check_worker_port(base)
        # The last demo's record no longer says what runs here once this demo starts its
        # stack: later commands printed after an interruption carried its settings (t46).
        files.state.unlink(missing_ok=True)
    # One start or stop at a time per run directory (a `stack up` in another shell).
    with stack_lock(base.run_dir, "citybrain demo"):
        if not kafka.running():
            console.print(kafka.starting_line(), highlight=False, markup=False)
        kafka.start()
        prom.start()
    if stop_demo_worker(base):
        console.print("stopped the previous demo's worker")
        files.state.unlink(missing_ok=True)
        check_worker_port(base)
    note = dropped_note(drop_old_demo_topics(base))
    if note:
        console.print(note, highlight=False, markup=False)
    make_demo_token(files)
    # Fresh topics and consumer group per demo: a summary never mixes two runs.
    own = {
        "CITYBRAIN_TOPIC_PREFIX": f"demo-{run_id}",
        "CITYBRAIN_APP_ID": f"demo-{run_id}",
        "CITYBRAIN_ACK_DEADLINE_SECONDS": str(ack_deadline),
        "CITYBRAIN_API_TOKENS_FILE": str(files.tokens),
    }
    watch = [s.strip() for s in base.watch_sensors.split(",") if s.strip()]
    watch += [s for s in watched_sensors(data, expected) if s not in watch]
    if watch:
        own["CITYBRAIN_WATCH_SENSORS"] = ",".join(watch)
    env = {**os.environ, **own}
    settings = load_settings(
        topic_prefix=f"demo-{run_id}", app_id=f"demo-{run_id}", ack_deadline_seconds=ack_deadline
    )
    create_topics(settings)
    files.state.write_text(
        json.dumps(
            {
                "topic_prefix": settings.topic_prefix,
                "app_id": settings.app_id,
                "kafka": settings.kafka_bootstrap,
                "worker_url": f"http://127.0.0.1:{settings.worker_port}",
                "worker_log": str(files.log),
                "settings": shell_settings(),
                # Every setting the worker runs with (secrets left out: the shell that
                # restarts it has them), so it can be started again as it was (trial 8).
                "worker_settings": worker_settings(os.environ, own, settings),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    console.print(
        f"kafka {settings.kafka_bootstrap} | prometheus {prom.url} | "
        f"{counted(len(events), 'event')} from {counted(len(data), 'file')}",
        markup=False,
    )
    console.print(
        f"topic prefix {settings.topic_prefix} (this demo's own: "
        f"{settings.topic('readings')}, {settings.topic('alerts')}, …)",
        highlight=False,
        markup=False,
    )

    metrics_url = f"http://127.0.0.1:{settings.worker_port}/metrics"
    console.print(
        worker_starting_line(files.log, then="the replay starts once it serves"),
        highlight=False,
        markup=False,
    )
    # Its own session, so it outlives the demo and serves the runs afterwards.
    # A successful scrape after this can only be this worker's: the port was free.
    spawned_at = time.time()
    record_code(files.code)
    worker = spawn(worker_argv(), files.log, files.pid, env)
    try:
        wait_for_worker(files, metrics_url, worker)
        scrape_seconds = float(prom.scrape_interval.rstrip("s"))
        target = f"127.0.0.1:{settings.worker_port}"
        if not wait_for_first_scrape(prom.url, target, spawned_at, 3 * scrape_seconds + 5):
            console.print(
                f"Prometheus at {prom.url} has not scraped the worker ({target}) yet: "
                "the dashboards' rates and increases leave out what it counts before "
                "its first scrape (the summary's figures are the worker's own)",
                highlight=False,
                markup=False,
            )
        replayer = Replayer(
            settings.kafka_bootstrap,
            settings.topic("readings"),
            settings.topic("incidents"),
            settings.kafka_python_options(),
        )
        sent = [0]
        reached["replay"] = True
        thread = threading.Thread(
            target=lambda: replayer.replay(
                events, None, lambda n: sent.__setitem__(0, sent[0] + n)
            ),
            daemon=True,
        )
        thread.start()
        metrics = _watch(
            console,
            files,
            worker,
            metrics_url,
            thread,
            sent,
            len(events),
            ack_deadline,
            grace=settings.corroboration_grace,
            kafka_pid_file=kafka.pid_file,
        )
        replayer.close()
        time.sleep(2 * float(prom.scrape_interval.rstrip("s")))
        summary = summarise(
            settings,
            metrics,
            prometheus_value(prom.url, "sum(citybrain_readings_total)"),
            {e.sensor_id for e in events if isinstance(e, Reading)},
            expected,
            _cell_names(settings),
            _sensor_days(events, time.time(), settings.max_future_skew),
        )
        summary["topic_prefix"] = settings.topic_prefix
        summary["worker_url"] = f"http://127.0.0.1:{settings.worker_port}"
        if report_path is not None:
            write_report(
                settings,
                data,
                report_path,
                f"citybrain what-if report: {', '.join(p.name for p in data)}",
                expected,
                option="--report",
            )
            console.print(f"report written to {written_path(report_path)}", markup=False)
    except BaseException:
        stop(files.pid)  # a failed or interrupted demo leaves no half-fed worker behind
        raise
    _print_summary(console, summary)
    if summary_path is not None:
        write_output(summary_path, json.dumps(summary, indent=2), "--summary")
        console.print(f"summary written to {written_path(summary_path)}", markup=False)
    today = datetime.now(UTC).date()
    prefix = settings.topic_prefix
    # Every line through command_line: each carries the settings it needs (this shell's
    # and the demo's), so one copied alone into a new shell works (t40).
    api = API_SETTINGS
    paths = [str(p.absolute()) for p in data]
    # The report's file as the demo wrote it (--report), else demo-report.html, by
    # absolute path: typed in a new shell it lands beside the demo's (t51).
    out = (report_path or Path("demo-report.html")).absolute()
    report = command_line("report", "--prefix", prefix, "--data", *paths, "--out", str(out))
    dates = ("--from", f"{today:%Y-%m-%d}", "--to", f"{today + timedelta(days=1):%Y-%m-%d}")
    campaign = command_line("campaign", "report", "--prefix", prefix, *dates)
    # The HTTP ingest refuses every POST without a gateway token (t66).
    ingest_env = {
        "CITYBRAIN_TOPIC_PREFIX": prefix,
        "CITYBRAIN_API_TOKENS_FILE": str(files.tokens.absolute()),
    }
    # The paths and commands are text, not markup: a directory named [red] vanished from
    # the printed command, and one named [/x] ended the demo in a MarkupError (t52).
    console.print(
        escape(
            f"\nThe demo's worker keeps serving its {counted(summary['runs'], 'run')} on "
            f"{summary['worker_url']} (log: {files.log}); its topics have the prefix {prefix}.\n"
            "With the demo operator token:\n"
            f"  export CITYBRAIN_API_TOKEN=$(cat {_shown(files.token)})\n"
            f"  {command_line('runs', 'list', only=api)}\n"
            f"  {command_line('runs', 'show', 'RUN_ID', only=api)}\n"
            f"  {command_line('runs', 'ack', 'RUN_ID', '--note', 'on my way', only=api)}\n"
            f"  {command_line('silences', 'list', only=api)}\n"
            f"  {command_line('alerts', 'list', only=api)}"
            "   # the alerts firing now (those that ended: their runs)\n"
            "The operator token may list, acknowledge, resolve and add silences; escalate, "
            "cancel, approve and expiring a silence need the coordinator token: "
            f"--token $(cat {_shown(files.coordinator_token)}).\n"
            f"Reports of this demo read its topics with --prefix {prefix}:\n"
            f"  {report}\n"
            f"  {campaign}"
            "   # runs count by creation date (today)\n"
            "To feed more data to its worker (readings after each sensor's last: the "
            "demo's own files again are all refused, out_of_order): "
            f"{command_line('replay', 'FILE', env={'CITYBRAIN_TOPIC_PREFIX': prefix})}\n"
            "or live readings over HTTP (README, Pointing a city's gateways): "
            f"{command_line('ingest', 'http', env=ingest_env)}\n"
            f"  with the demo gateway token: export GATEWAY_TOKEN=$(cat "
            f"{_shown(files.gateway_token)})\n"
            f"What its worker refused, and why: {command_line('deadletters', '--prefix', prefix)}\n"
            "The stack and that worker are still running; this stops them (as typed, in any "
            "shell and directory):\n"
        )
        + f"  [bold]{escape(command_line('stack', 'down'))}[/]",
        highlight=False,
        soft_wrap=True,
    )
    return summary


def _shown(path: Path) -> str:
    """A path as the user can type it from any directory: absolute, shell-quoted."""
    return shell_word(str(path.absolute()))


def _cell_names(settings: Settings) -> dict[str, str]:
    from playbooks.loader import load_grid

    grid = load_grid(settings.grid_file)
    return {cell_id: cell.name for cell_id, cell in grid.cells.items()}


# The longest gap between a sensor's readings counted in its span, in days: the worker's
# clock jump (``streams.detection.CLOCK_JUMP``; not imported here, which loads numpy).
SPAN_GAP_DAYS = 1


def _sensor_days(events: list[Any], now: float, ahead: float) -> float:
    """The replayed readings' per-sensor spans (first to last reading), in days, summed:
    of the readings the worker takes by their time, from 1990 (``MIN_EVENT_TIME``) to
    ``ahead`` seconds (``CITYBRAIN_MAX_FUTURE_SKEW``) past ``now`` (epoch s), as its
    validator reads them. The worker dead-letters the others (``too_old``,
    ``in_future``), and counted here they stretched their sensor's span (t171: one
    reading of the year 9999 among a gauge's of 2019 made 2.9 million sensor-days, and
    the summary's false alarms per 1,000 sensor-days about nothing). A span is the gaps
    between a sensor's successive readings in time, each counted up to a day
    (``SPAN_GAP_DAYS``, the worker's clock jump ``streams.detection.CLOCK_JUMP``): one
    reading a year ahead of a gauge's hours of 2019, yet before the clock, made 365
    sensor-days (t185), as a sensor reporting once a year did 365 per reading; a
    silent sensor reports nothing to alarm on."""
    times: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e, Reading) and MIN_EVENT_TIME <= e.ts <= now + ahead:
            times.setdefault(e.sensor_id, []).append(e.ts)
    total = 0.0
    for its in times.values():
        its.sort()
        total += sum(min(b - a, SPAN_GAP_DAYS * 86_400) for a, b in pairwise(its))
    return total / 86_400


def worker_starting_line(log: Path, whose: str = "its", then: str = "") -> str:
    """What the demo (or `stack restart-worker`, ``whose`` "the demo's") does while its
    worker starts (t60's walk: 30 to 50 s of silence after the topic prefix line on a
    2-core machine, as if it hung, before the first progress line said "[    2 s]")."""
    return (
        f"starting {whose} stream worker (about 30 s on 2 cores, at most "
        f"{WORKER_START_SECONDS} s; log: {log})" + (f"; {then}" if then else "")
    )


# How long the demo waits for its worker to serve before it gives up.
WORKER_START_SECONDS = 90


def wait_for_worker(files: DemoFiles, url: str, pid: int) -> None:
    """Until the worker ``pid`` (the demo's, spawned with ``files``) serves ``url``;
    ``StackError`` saying what happened when it is gone (``worker_gone``) or not serving
    after 90 s."""
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        lost = worker_gone(files, pid)
        if lost:
            raise StackError(lost)
        try:
            scrape(url)
            return
        except OSError:
            time.sleep(0.5)
    raise StackError(
        f"the demo's worker is not serving {url} after {WORKER_START_SECONDS}s:\n{tail(files.log)}"
    )


def wait_for_first_scrape(prom_url: str, target: str, since: float, timeout: float) -> bool:
    """Until Prometheus at ``prom_url`` holds a successful scrape of the worker at
    ``target`` (``host:port``) made at or after ``since`` (Unix seconds): True, or False
    after ``timeout`` seconds.

    t123: the demo replayed as soon as its worker served, and Prometheus' first scrape
    came after it had counted 6,801 readings and 5 alerts; ``increase()`` never counts a
    series' first sample, so the map and the alert panels showed 38 of 43 alerts."""
    query = f'timestamp(up{{job="citybrain-worker", instance="{target}"}} == 1)'
    deadline = time.monotonic() + timeout
    while True:
        at = prometheus_value(prom_url, query)
        if at is not None and at >= since:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def worker_gone(files: DemoFiles, pid: int) -> str:
    """ "" while the demo's worker ``pid`` runs; else what became of it
    (``lost_worker_message``), with its log's last lines."""
    if alive(pid):
        return ""
    try:
        named: int | None = pid_in(files.pid.read_text(errors="replace"))
    except OSError:
        named = None
    else:
        named = -1 if named is None else named
    return lost_worker_message(pid, named, files, tail(files.log))


def lost_worker_message(pid: int, named: int | None, files: DemoFiles, log_tail: str) -> str:
    """Why the demo's worker ``pid`` is gone, from what its pid file names now
    (``named``: None when the file is gone, another pid when another worker took its
    place): another command stopped it, or it exited by itself. Never "start the local
    stack": a second demo stopping this one's worker once read so (t36)."""
    if named is None:
        what = (
            f"the demo's worker (pid {pid}) was stopped by another command: its pid file "
            f"{files.pid} is gone (`citybrain stack down` removes it, and stops the stack)"
        )
    elif named != pid:
        what = (
            f"the demo's worker (pid {pid}) is gone and its pid file {files.pid} now names "
            f"{'another process' if named < 0 else f'pid {named}'}: another command stopped "
            "it and started a worker in its place"
        )
    else:
        cause = exit_cause(log_tail)
        # t134: a worker refused by its own check (a bad setting, a grid with a tab) said
        # "it crashed, or was killed", the cause left to find in the log's tail.
        how = f": {cause}" if cause else " (it crashed, or was killed)"
        what = f"the demo's worker (pid {pid}) exited{how}"
    return f"{what}; its log {files.log} ends:\n{log_tail}"


def exit_cause(log_tail: str) -> str:
    """The error line a worker printed as it exited (the CLI boundary's ``citybrain:
    …`` line, not a warning), without its ``citybrain:``; "" when its log has none (a
    crash's traceback, a kill)."""
    for line in reversed(text_lines(log_tail)):
        said = line.strip().removeprefix("citybrain: ")
        if said != line.strip() and not said.startswith("warning:"):
            return said
    return ""


WAITING = ("pending", "waiting_ack", "waiting_approval", "waiting_action")


class RateMeter:
    """The readings/s the progress shows, from the worker's readings counter sampled
    every half second. While readings arrive: the rate over the last ``window`` seconds
    of samples (a progress line every 5 s then shows the last 5 s, not the last 0.5).
    Once they stopped arriving: the average over the replay, readings / seconds from
    ``started`` to the last sample that saw the count grow, so a replay that finished
    between two samples, or before the first line, never shows 0 readings/s with
    readings processed. ``update`` returns ``(rate, is_average)``; times in seconds."""

    def __init__(self, started: float, window: float = 5.0) -> None:
        self.started = started
        self.window = window
        self._samples: deque[tuple[float, float]] = deque([(started, 0.0)])
        self._grew_at: float | None = None  # the last sample at which the count grew

    def update(self, readings: float, now: float) -> tuple[float, bool]:
        if readings > self._samples[-1][1]:
            self._grew_at = now
        self._samples.append((now, readings))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        then, before = self._samples[0]
        recent = (readings - before) / (now - then) if now > then else 0.0
        if recent > 0 or self._grew_at is None:
            return recent, False
        return readings / max(self._grew_at - self.started, 1e-9), True


def watch_phase(
    replaying: bool,
    processed: int,
    total: int,
    waiting: int,
    ack_deadline: float,
    held: int = 0,
    grace_left: float | None = None,
    stuck: str = "",
) -> str:
    """What the demo is waiting for, in words: the replay, the worker catching up, runs
    waiting for a person (``waiting``, escalating every ``ack_deadline`` s), or sensor
    alerts held for the corroboration grace (``held`` of them, ``grace_left`` s at most
    until the last is released; None when not known); ``stuck`` (``frozen_note``) first,
    when a process everything waits on is frozen."""
    if stuck:
        return f"stalled: {stuck}"
    if replaying:
        return "replaying"
    if processed < total:
        return "replay sent; the worker is catching up"
    if waiting:
        return (
            f"replay done; {counted(waiting, 'run')} {agreeing(waiting, 'waits', 'wait')} "
            f"for a person and {agreeing(waiting, 'escalates', 'escalate')} every "
            f"{ack_deadline:g} s until {agreeing(waiting, 'its ladder ends', 'their ladders end')}"
        )
    if held:
        left = f", up to {grace_left:.0f} s left" if grace_left is not None else ""
        return (
            f"replay done; {counted(held, 'lone sensor alert')} held for the corroboration "
            f"grace (a neighbour may agree{left}); runs follow when it ends"
        )
    return "replay done; alerts and runs settling"


def frozen_note(kafka_pid_file: Path | None, worker: int | None) -> str:
    """ "" unless the stack's Kafka (its pid file) or the demo's worker (pid ``worker``) is
    frozen (``kill -STOP``, a debugger): then which, and the ``kill -CONT`` that resumes
    it. t104: with Kafka frozen the live view said "the worker is catching up" at 99 %
    for as long as it was frozen."""
    kafka = read_pid(kafka_pid_file) if kafka_pid_file is not None else None
    for name, pid in (("Kafka", kafka), ("the demo's worker", worker)):
        if frozen(pid):
            return (
                f"{name} (pid {pid}) is frozen (stopped by `kill -STOP` or a debugger); "
                f"nothing moves until `kill -CONT {pid}`"
            )
    return ""


def _watch(
    console: Console,
    files: DemoFiles,
    worker: int,
    url: str,
    replay: threading.Thread,
    sent: list[int],
    total: int,
    ack_deadline: float,
    line_every: float = 5.0,
    grace: float = 30.0,
    kafka_pid_file: Path | None = None,
) -> dict[str, float]:
    """Progress until every event is processed and no run still waits for a person: a
    live table on a terminal, a plain line every ``line_every`` seconds otherwise.
    ``worker``: the pid of the demo's worker, serving ``url``; ``StackError`` saying
    what became of it (``worker_gone``) when it is gone or stops answering.
    ``grace``: the worker's corroboration grace (s), shown counting down while lone
    sensors' alerts wait for a neighbour. ``kafka_pid_file``: the stack's Kafka, said
    when frozen (``frozen_note``), as the worker is."""
    metrics: dict[str, float] = {}
    held_before, held_until = 0.0, None
    started = time.monotonic()
    meter = RateMeter(started)
    settled_since: float | None = None
    give_up: float | None = None
    progress = Progress("starting", 0, 0, total, 0.0, 0.0, 0)
    show: Callable[[Progress], None]
    live: Live | None = None
    if draws_live(console):
        live = Live(_table(metrics, progress), console=console, refresh_per_second=4)
        live.start()

        def show(p: Progress) -> None:
            assert live is not None
            live.update(_table(metrics, p))

    else:
        next_line = [started]

        def show(p: Progress) -> None:
            if time.monotonic() >= next_line[0]:
                console.print(p.line(metrics), highlight=False, soft_wrap=True, markup=False)
                next_line[0] = time.monotonic() + line_every

    unanswered = 0
    try:
        while True:
            time.sleep(0.5)
            lost = worker_gone(files, worker)
            if lost:
                raise StackError(lost)
            try:
                metrics = scrape(url)
                unanswered = 0
            except OSError as exc:
                # A worker stopped between the check and the scrape is said as such, not
                # as "a service did not answer ... start the local stack" (t36).
                lost = worker_gone(files, worker)
                if lost:
                    raise StackError(lost) from None
                if frozen(worker):
                    # Said at once and waited on, as a frozen Kafka is (`kill -CONT` resumes
                    # it): the view printed nothing for 22 s, then gave up (t108).
                    unanswered = 0
                    now = time.monotonic()
                    if give_up is not None and now > give_up:
                        raise StackError(
                            f"{frozen_note(None, worker)}; its log: {files.log}"
                        ) from None
                    progress = replace(
                        progress,
                        phase=f"stalled: {frozen_note(None, worker)}",
                        elapsed=now - started,
                    )
                    show(progress)
                    continue
                unanswered += 1
                if unanswered < 20:  # 10 s: a busy worker may miss a scrape or two
                    continue
                raise StackError(
                    f"the demo's worker (pid {worker}) runs but has not answered on {url} for "
                    f"10 s ({getattr(exc, 'reason', None) or exc}); its log {files.log} "
                    f"ends:\n{tail(files.log)}"
                ) from None
            now = time.monotonic()
            readings = metrics.get("citybrain_readings_total", 0.0)
            rate, average = meter.update(readings, now)
            processed = processed_events(metrics)
            waiting = int(
                sum(
                    metrics.get(f'citybrain_playbook_runs_open{{status="{s}"}}', 0.0)
                    for s in WAITING
                )
            )
            # Sensor alerts a lone sensor raised wait (the grace) for a neighbour to agree.
            held = metrics.get("citybrain_corroboration_held", 0.0)
            if held > held_before or (held and held_until is None):
                held_until = now + grace  # the newest held alert waits a full grace
            held_before = held
            grace_left = max(0.0, held_until - now) if held and held_until else None
            phase = watch_phase(
                replay.is_alive(),
                processed,
                total,
                waiting,
                ack_deadline,
                int(held),
                grace_left,
                frozen_note(kafka_pid_file, worker),
            )
            progress = Progress(
                phase, sent[0], processed, total, now - started, rate, waiting, average
            )
            show(progress)
            if replay.is_alive():
                continue
            give_up = give_up or now + 120 + 4 * ack_deadline + grace
            if processed >= total and not waiting and not held:
                settled_since = settled_since or now
                # Alerts and runs trail the readings by a moment; let them settle.
                if now - settled_since > 3:
                    break
            else:
                settled_since = None
            if now > give_up:
                console.print(
                    f"[yellow]gave up waiting: {processed:,} of {total:,} events "
                    f"processed, {waiting:,} runs waiting[/]"
                )
                break
    finally:
        if live is not None:
            live.stop()
    if not draws_live(console):
        console.print(progress.line(metrics), highlight=False, soft_wrap=True, markup=False)
    return metrics


# Each replayed event ends in one of these once. Not the redelivered counters: a
# redelivered message was counted when first processed (t104: Kafka frozen 20 s mid-demo
# expired the worker's group session, ~27,000 readings came again, and the live view
# said "61,077 of 33,775 events processed (181 %)").
PROCESSED = (
    "citybrain_readings_total",
    "citybrain_incidents_total",
    "citybrain_readings_duplicate_total",
    "citybrain_incidents_duplicate_total",
    "citybrain_dead_letters_total",
)


def processed_events(metrics: dict[str, float]) -> int:
    """How many of the replayed events the demo's worker has processed, each once, from
    its scraped ``metrics`` (``PROCESSED``)."""
    return int(sum(metrics.get(name, 0.0) for name in PROCESSED))


MAX_LISTED_ALERTS = 40


def _number(value: Any) -> str:
    """Every count in the summary printed one way: thousands separated, no decimals."""
    if value is None:
        return "n/a"
    return f"{int(value):,}"


# The counts the summary table shows first, in order.
SUMMARY_COUNTS = (
    "readings",
    "incidents",
    "dead_letters",
    "anomalies",
    "alerts",
    "runs",
    "escalations",
    "prometheus_readings_total",
)


def refused_said(summary: Mapping[str, Any]) -> str:
    """What the demo's worker refused, for a demo that raised no alert, or "": ``the
    worker refused every event it was sent (dead letters: unknown_sensor 3)`` when it
    took none, ``… refused 2 of its events (…)`` when it took some. t158: a demo of
    readings whose sensors the grid lacks said only "the detectors found nothing
    anomalous enough", and a newcomer looked at the detectors."""
    dead = int(summary.get("dead_letters") or 0)
    if not dead:
        return ""
    reasons = summary.get("dead_letter_reasons") or {}
    by_reason = ", ".join(f"{reason} {n:,}" for reason, n in sorted(reasons.items()))
    taken = int(summary.get("readings") or 0) + int(summary.get("incidents") or 0)
    which = "every event it was sent" if not taken else f"{dead:,} of its events"
    return f"the worker refused {which} (dead letters: {by_reason or dead})"


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="citybrain demo - summary", show_header=False)
    for key in SUMMARY_COUNTS:
        table.add_row(key.replace("_", " "), _number(summary[key]))
    console.print(table)
    alerts = summary["alert_list"]
    refused = refused_said(summary)
    if not alerts and refused and not (summary.get("readings") or summary.get("incidents")):
        console.print(
            f"[yellow]no alert was raised[/]: {escape(refused)}; the `deadletters` command "
            "below says why each was (a sensor or cell the grid lacks: give a --grid that "
            "has it)"
        )
    elif not alerts:
        console.print(
            "[yellow]no alert was raised[/]: the detectors found nothing anomalous enough "
            "in these files (or the worker processed none of them; see its log)"
            + (f"; {escape(refused)}: the `deadletters` command below says why" if refused else "")
        )
    else:
        listed = alerts[:MAX_LISTED_ALERTS]
        console.print(
            f"alerts and where they went (first {len(listed)} of {len(alerts):,} by event "
            "time; all in the summary file):"
            if len(alerts) > len(listed)
            else "alerts and where they went:"
        )
        header = ("event time (UTC)", "severity", "kind", "what", "cell", "playbook", "run")
        rows = [
            (
                a["first_event_time"].replace("T", " ").removesuffix("Z")[:16],
                a["severity"],
                a["kind"],
                a["subject"],
                a["cell_name"] or a["grid_cell"],
                a["playbook"] or "-",
                a["run_id"] or "not routed",
            )
            for a in listed
        ]
        # Plain aligned lines, never wrapped: a log or a pipe keeps one alert per line.
        shown = [header, *(tuple(cell(c) for c in row) for row in rows)]
        widths = [max(display_width(r[i]) for r in shown) for i in range(len(header))]
        for row in shown:
            console.print(
                "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip(),
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    for event in summary["known_events"]:
        mark = "[green]detected[/]" if event["detected"] else "[red]missed[/]"
        # An --expect file's name is text: "[/x]" in it was a MarkupError (t52).
        console.print(f"  {mark} {escape(event['event'])}: {counted(event['alerts'], 'alert')}")
    if summary.get("false_alarms_per_1000_sensor_days") is not None:
        outside = summary["alerts_outside_known_events"]
        bursts = summary.get("incident_burst_alerts", 0)
        console.print(
            f"  {counted(outside, 'sensor alert')} outside the known events: "
            f"{summary['false_alarms_per_1000_sensor_days']} per 1,000 sensor-days"
            + (
                f" (the {counted(bursts, 'citizen-report burst alert')} above "
                f"{agreeing(bursts, 'is', 'are')} not counted here: a burst of reports is no "
                "sensor's false alarm)"
                if bursts
                else ""
            ),
            highlight=False,
        )
