"""The faust app: topics, tables, agents and the deadline timer, wired to pure handlers.

Agents decode, call a pure handler (``streams.detection``, ``playbooks.engine``) and
send; no maths here. Built by ``create_app(settings)`` so tests get a fresh app each.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any, cast

import faust
import orjson
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import EventT
from prometheus_client import CollectorRegistry

from detectors import RobustZScore, ScoreThreshold
from playbooks.engine import Command, PlaybookEngine, Run, is_terminal
from playbooks.errors import PlaybookError
from playbooks.grid import Grid
from playbooks.loader import load_grid, load_playbook
from streams.detection import Incoming, SensorDetection
from streams.errors import EventError
from streams.events import EventValidator
from streams.metrics import Metrics
from streams.settings import Settings
from streams.tables import key_partitioned_table

log = logging.getLogger(__name__)


class Pipeline:
    """Holds what the agents share: topics, tables, handlers and metrics."""

    def __init__(self, app: faust.App, settings: Settings, grid: Grid, metrics: Metrics):
        self.app = app
        self.settings = settings
        self.grid = grid
        self.metrics = metrics
        self.validator = EventValidator(grid, max_future_skew=settings.max_future_skew)
        self.detection = SensorDetection(
            RobustZScore(
                window=settings.detector_window, min_samples=settings.detector_min_samples
            ),
            ScoreThreshold(settings.score_threshold),
            quiet_readings=settings.quiet_readings,
        )
        playbook = load_playbook(settings.playbook_file)
        self.engine = PlaybookEngine(playbook, grid, settings.ack_deadline_seconds)
        names = settings.topics

        def topic(role: str) -> faust.TopicT:
            return app.topic(
                names[role],
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
            )

        self.readings = topic("readings")
        self.incidents = topic("incidents")
        self.deadletter = topic("deadletter")
        self.alerts = topic("alerts")
        self.steps = topic("steps")
        self.acks = topic("acks")
        # Keys are the raw bytes of the Kafka message keys (sensor id, alert id), values
        # JSON; each key's changelog partition is the partition of its source messages.
        self.sensor_state = key_partitioned_table(app, "sensor-state", settings.partitions)
        self.runs = key_partitioned_table(app, "runs", settings.partitions)

    # -- readings --------------------------------------------------------------------
    async def on_readings(self, events: Sequence[EventT[bytes]]) -> None:
        now = time.time()
        incoming: list[Incoming] = []
        for event in events:
            raw = event.value
            try:
                reading = self.validator.reading(raw, now)
            except EventError as exc:
                await self.dead_letter("readings", event, exc.code, str(exc))
                continue
            msg = event.message
            incoming.append(Incoming(reading, msg.timestamp, msg.offset, raw))
        sensors = {i.reading.sensor_id for i in incoming}
        states = {sid: self.sensor_state.get(sid.encode()) for sid in sensors}
        result = self.detection.process(incoming, states)
        for item, code, message in result.rejected:
            await self._send_dead_letter(
                "readings", item.raw, item.reading.sensor_id.encode(), code, message, None
            )
        # Alerts must be on Kafka before the state that says they were sent.
        pending = []
        for alert in result.alerts:
            pending.append(
                await self.alerts.send(
                    key=alert.alert_id.encode(), value=orjson.dumps(alert.to_dict())
                )
            )
        for fut in pending:
            await fut
        sent_at = time.time()
        for sid, state in result.states.items():
            self.sensor_state[sid.encode()] = state
        # Flush so table writes are acknowledged before these offsets can be committed.
        await self.app.producer.flush()

        m = self.metrics
        m.batch_size.observe(len(events))
        for kind, n in result.scored_by_kind.items():
            m.readings.labels(kind).inc(n)
        for kind, n in result.anomalies_by_kind.items():
            m.anomalies.labels(kind).inc(n)
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        if result.redelivered:
            m.redelivered.inc(result.redelivered)
        for alert in result.alerts:
            if alert.status == "firing":
                level = self.grid.cells[alert.grid_cell].level
                m.alerts.labels(alert.kind, level, alert.severity).inc()
                m.event_to_alert.observe(max(0.0, sent_at - alert.received_at))
            else:
                m.alerts_resolved.labels(alert.kind).inc()

    async def on_incidents(self, events: Sequence[EventT[bytes]]) -> None:
        now = time.time()
        sources: Tally[str] = Tally()
        for event in events:
            try:
                report = self.validator.incident(event.value, now)
            except EventError as exc:
                await self.dead_letter("incidents", event, exc.code, str(exc))
                continue
            sources[report.source] += 1
        for source, n in sources.items():
            self.metrics.incidents.labels(source).inc(n)

    # -- dead letters ----------------------------------------------------------------
    async def dead_letter(self, stream: str, event: EventT[bytes], code: str, message: str) -> None:
        msg = event.message
        origin = f"{msg.topic}/{msg.partition}/{msg.offset}"
        log.warning("dead-letter %s: %s (%s)", origin, message, code)
        await self._send_dead_letter(stream, event.value, event.key, code, message, origin)

    async def _send_dead_letter(
        self, stream: str, raw: Any, key: Any, code: str, message: str, origin: str | None
    ) -> None:
        # Kafka Connect's convention: the value is the original bytes, the why in headers.
        headers = [
            ("citybrain.error.stream", stream.encode()),
            ("citybrain.error.reason", code.encode()),
            ("citybrain.error.message", message.encode()),
        ]
        if origin:
            headers.append(("citybrain.error.origin", origin.encode()))
        value = raw if isinstance(raw, bytes) else str(raw).encode()
        await self.deadletter.send(key=key, value=value, headers=headers)
        self.metrics.dead_letters.labels(stream, code).inc()

    # -- playbook runs ---------------------------------------------------------------
    async def on_alert(self, event: EventT[bytes]) -> None:
        try:
            alert = orjson.loads(event.value)
            alert_id = alert["alert_id"]
            status = alert["status"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await self.dead_letter("alerts", event, "bad_alert", f"alert not readable: {exc!r}")
            return
        key = alert_id.encode()
        if status != "firing" or key in self.runs:
            return  # runs are idempotent per alert: a redelivered alert starts nothing
        now = time.time()
        try:
            run = Run.for_alert(
                alert_id, self.engine.playbook.playbook, alert["grid_cell"], alert["kind"], now
            )
            run, commands = self.engine.start(run, now)
        except PlaybookError as exc:
            await self.dead_letter("alerts", event, "playbook_error", str(exc))
            return
        await self.emit(commands)
        self.runs[key] = run.to_dict()
        self.metrics.runs.labels(run.playbook).inc()

    async def on_ack(self, event: EventT[bytes]) -> None:
        try:
            ack = orjson.loads(event.value)
            alert_id, by = str(ack["alert_id"]), str(ack.get("by", "unknown"))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await self.dead_letter("acks", event, "bad_ack", f"ack not readable: {exc!r}")
            return
        key = alert_id.encode()
        stored = self.runs.get(key)
        if stored is None:
            await self.dead_letter("acks", event, "unknown_alert", f"no run for alert {alert_id}")
            return
        run = Run.from_dict(stored)
        if run.acknowledged_at is not None or is_terminal(run):
            return  # idempotent: a second acknowledgement changes nothing
        level = run.level
        run, commands = self.engine.acknowledge(run, by, time.time())
        await self.emit(commands)
        self.runs[key] = run.to_dict()
        self.metrics.acks.labels(run.playbook, level).inc()

    async def check_deadlines(self) -> None:
        # A half-recovered table could show a deadline whose escalation is already on
        # the changelog; acting then would escalate twice.
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        if self.app.rebalancing or not recovery.completed.is_set():
            return
        now = time.time()
        open_by_status: Tally[str] = Tally()
        for key, stored in list(self.runs.items()):
            run = Run.from_dict(stored)
            if self.engine.is_due(run, now):
                run, commands = self.engine.timeout(run, now)
                await self.emit(commands)
                self.runs[key] = run.to_dict()
            if not is_terminal(run):
                open_by_status[run.status] += 1
        for status in ("waiting_ack", "acknowledged", "unacknowledged"):
            self.metrics.runs_open.labels(status).set(open_by_status[status])
        self.metrics.sensors_tracked.set(len(self.sensor_state))

    async def emit(self, commands: list[Command]) -> None:
        """Publish each command as a step event and wait until Kafka has them."""
        pending = []
        for cmd in commands:
            body = {"schema": "step/1", "playbook": self.engine.playbook.playbook, **cmd.to_dict()}
            pending.append(
                await self.steps.send(key=cmd.alert_id.encode(), value=orjson.dumps(body))
            )
            if cmd.action == "escalate":
                self.metrics.escalations.labels(
                    self.engine.playbook.playbook, cmd.level or ""
                ).inc()
        for fut in pending:
            await fut


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> faust.App:
    """A fresh faust app with its agents, tables, timer and /metrics."""
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    grid = load_grid(settings.grid_file)
    datadir = settings.run_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(datadir),
        web_bind=settings.worker_bind,
        web_host=settings.worker_bind,
        web_port=settings.worker_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        # No standbys: a restarted or new owner rebuilds from the changelog, and the
        # deadline timer never sees another worker's runs.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
    )
    metrics = Metrics.create(registry)
    setup_prometheus_sensors(app, registry=registry, name_prefix="faust")
    pipeline = Pipeline(app, settings, grid, metrics)
    app.citybrain = pipeline  # type: ignore[attr-defined]

    @app.agent(pipeline.readings)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream only (not yet on StreamT).
        async for events in cast(faust.Stream[bytes], stream).take_events(
            settings.batch_size, within=settings.batch_within
        ):
            await pipeline.on_readings(events)

    @app.agent(pipeline.incidents)
    async def incidents(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream[bytes], stream).take_events(
            settings.batch_size, within=settings.batch_within
        ):
            await pipeline.on_incidents(events)

    @app.agent(pipeline.alerts)
    async def respond(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await pipeline.on_alert(event)

    @app.agent(pipeline.acks)
    async def acknowledge(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await pipeline.on_ack(event)

    @app.timer(interval=settings.deadline_check_interval)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        await pipeline.check_deadlines()

    return app
