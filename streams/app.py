"""The faust app: topics, tables, agents and timers, wired to pure handlers.

Agents decode, call a pure handler (``streams.detection``, ``streams.bursts``,
``playbooks.routing``, ``playbooks.engine``) and send; no maths here. Built by
``create_app(settings)`` so tests get a fresh app each.

Flow: readings -> detect -> alerts (keyed by alert id) -> route (silences, inhibition,
routing tree) -> routed (keyed by group key) -> respond (one run per group, in the
``groups`` table) -> steps / audit / task topics and webhooks. Operator commands and
webhook outcomes arrive on ``commands``, keyed by group key like the runs they change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

import faust
import orjson
from faust.types import TP, EventT, Message
from prometheus_client import CollectorRegistry

from playbooks.engine import Answer, Command, PlaybookEngine, ReportsCovered, Run, is_terminal
from playbooks.errors import BadEventError, PlaybookError, RoutingConfigError
from playbooks.executors.grafana import GrafanaAnnotator
from playbooks.executors.webhook import WebhookExecutor, WebhookOutcome
from playbooks.grid import LEVELS, Grid
from playbooks.loader import load_grid, load_playbooks, load_routing
from playbooks.routing import SILENCE_PROBLEMS, Route, Silence, SilenceBook, label_set
from streams.bursts import BurstTracker
from streams.departments import DepartmentClassifier
from streams.detection import (
    AlertEvent,
    BatchResult,
    Incoming,
    SensorDetection,
    admit,
    state_document,
)
from streams.errors import EventError, unreadable
from streams.events import EventValidator, fit_dead_letter, format_ts
from streams.faust_metrics import setup_faust_metrics
from streams.faust_patches import BatchDrain
from streams.faust_patches import install as install_faust_patches
from streams.metrics import Metrics, initialise
from streams.partitioning import sensor_partition
from streams.replies import AUDITED, count_campaign, reply_document
from streams.settings import Settings, load_settings
from streams.tables import (
    KeyPartitionedTable,
    coalesce_changelog,
    key_partitioned_table,
)

log = logging.getLogger(__name__)


def run_key(run_id: str) -> bytes:
    """Runs live in the ``groups`` table under their group key: ``<group key>.<n>``."""
    return run_id.rsplit(".", 1)[0].encode()


class Pipeline:
    """Holds what the agents share: topics, tables, handlers and metrics."""

    def __init__(self, app: faust.App, settings: Settings, grid: Grid, metrics: Metrics):
        self.app = app
        self.settings = settings
        self.grid = grid
        self.metrics = metrics
        self.validator = EventValidator(grid, max_future_skew=settings.max_future_skew)
        self.detection = SensorDetection.from_settings(settings)
        self.playbooks = load_playbooks(settings.playbook_dir)
        self.router = load_routing(settings.routing_file, self.playbooks)
        self.engines = {
            name: PlaybookEngine(pb, grid, settings.ack_deadline_seconds)
            for name, pb in self.playbooks.items()
        }
        self.departments = DepartmentClassifier.from_training_file()
        self.bursts = BurstTracker(
            bucket_seconds=settings.burst_bucket_seconds, min_reports=settings.burst_min_reports
        )
        secret = (
            settings.webhook_secret.get_secret_value().encode()
            if settings.webhook_secret
            else secrets.token_bytes(32)
        )
        if settings.webhook_secret is None:
            log.warning(
                "CITYBRAIN_WEBHOOK_SECRET is not set: webhooks are signed with a "
                "random per-start key that receivers cannot verify"
            )
        self.webhooks = WebhookExecutor(
            secret,
            self.on_webhook_outcome,
            self.on_webhook_attempt,
            timeout=settings.webhook_timeout,
            retries=settings.webhook_retries,
            backoff=settings.webhook_backoff,
        )
        self.annotator = None
        if settings.grafana_url:
            token = settings.grafana_token.get_secret_value() if settings.grafana_token else ""
            self.annotator = GrafanaAnnotator(settings.grafana_url, token, self.on_annotation_error)
        self._silences = SilenceBook()
        self._watch = {s.strip() for s in settings.watch_sensors.split(",") if s.strip()}
        self._exported: dict[str, str] = {}  # sensor id -> kind, with per-sensor series
        self._cell_labels_cache: dict[str, tuple[str, str, str]] = {}
        self._home_partition = partial(sensor_partition, partitions=settings.partitions)
        initialise(
            metrics,
            {n: pb.department for n, pb in self.playbooks.items()},
            LEVELS,
            (*grid.kinds, "incident_burst"),
            settings.score_threshold,
            [self._cell_path(cell) for cell in grid.cells],
        )
        for problem in SILENCE_PROBLEMS:
            metrics.silences_invalid.labels(problem)

        def topic(role: str) -> faust.TopicT:
            return app.topic(
                settings.topic(role),
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
            )

        self.readings, self.incidents = topic("readings"), topic("incidents")
        self.deadletter, self.alerts = topic("deadletter"), topic("alerts")
        self.routed, self.steps = topic("routed"), topic("steps")
        self.audit, self.commands = topic("audit"), topic("commands")
        self.replies = topic("replies")
        n = settings.partitions
        # Keys are raw bytes (sensor id, grid cell, group key, alert or silence id),
        # values JSON; each key's changelog partition is that of its source messages.
        self.sensor_state = cast(
            KeyPartitionedTable,
            key_partitioned_table(app, "sensor-state", n, encode=state_document),
        )
        # Held while a batch updates live sensor states, so a commit's changelog flush
        # never serialises a state halfway through a batch (tables.coalesce_changelog).
        self.states_settled = asyncio.Lock()
        self.burst_state = key_partitioned_table(app, "burst-state", n)
        self.groups = cast(KeyPartitionedTable, key_partitioned_table(app, "groups", n))
        self.firing = key_partitioned_table(app, "firing", n, is_global=True)
        self.silences = key_partitioned_table(app, "silences", n, is_global=True)

    # -- readings --------------------------------------------------------------------
    async def on_readings(self, messages: Sequence[Message]) -> None:
        """One batch of ``readings`` messages (one partition's, in offset order): decode
        and validate each (``admit`` never raises: a bad message or reading is
        dead-lettered alone), then detect over the batch."""
        now = time.time()
        incoming: list[Incoming] = []
        for msg in messages:
            admitted, refused = admit(
                self.validator,
                msg.value or b"",  # a tombstone (no value) is refused as bad JSON
                now,
                msg.partition,
                self._home_partition,
                msg.offset,
                msg.timestamp,
            )
            incoming.extend(admitted)
            for r in refused:
                await self.dead_letter("readings", msg, r.error.code, str(r.error), r.index, r.raw)
        async with self.states_settled:
            await self._detect(messages, incoming)

    async def _detect(self, events: Sequence[Message], incoming: list[Incoming]) -> None:
        stored = self.sensor_state.get_many({i.reading.sensor_id.encode() for i in incoming})
        states = {key.decode(): state for key, state in stored.items()}
        # Updates the live detectors in the table's states in place.
        result = self.detection.process(incoming, states)
        for item, code, message in result.rejected:
            await self._send_dead_letter(
                "readings",
                item.raw or item.reading.to_json(),
                item.reading.sensor_id.encode(),
                code,
                message,
                None,
            )
        # Alerts must be on Kafka before the state that says they were sent.
        await self._send_all(self.alerts, [(a.alert_id, self._alert_doc(a)) for a in result.alerts])
        sent_at = time.time()
        # Counted before the next await, so a batch interrupted by a rebalance cannot be
        # processed yet uncounted (its redelivery is skipped by the offset rule).
        self._count_readings(events, result, sent_at)
        # Most states are staged: each reaches the changelog once per offset commit,
        # before the offsets of its events (tables.coalesce_changelog); a worker that
        # dies first is replaced by one that replays those readings to the same result.
        # A state that opened or closed an episode is written through at once, so a
        # replay cannot send its alert a second time.
        alerted = {a.sensor_id for a in result.alerts}
        staged = {sid.encode(): s for sid, s in result.states.items() if sid not in alerted}
        self.sensor_state.stage_many(staged)
        if alerted:
            await self.sensor_state.set_many({sid.encode(): result.states[sid] for sid in alerted})

    def _count_readings(
        self, events: Sequence[Message], result: BatchResult, sent_at: float
    ) -> None:
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
                m.cell_alerts.labels(*self._cell_path(alert.grid_cell), alert.kind).inc()
                m.event_to_alert.observe(max(0.0, sent_at - alert.received_at))
            else:
                m.alerts_resolved.labels(alert.kind).inc()
        per_cell: Tally[str] = Tally()
        for sid, (kind, cell, n, value, score, in_episode) in result.last.items():
            per_cell[cell] += n
            if in_episode or sid in self._watch:
                m.sensor_value.labels(sid, kind).set(value)
                m.sensor_score.labels(sid, kind).set(score)
                self._exported[sid] = kind
            elif sid in self._exported:
                # The episode ended: drop the sensor's series to keep cardinality bounded.
                m.sensor_value.remove(sid, kind)
                m.sensor_score.remove(sid, kind)
                del self._exported[sid]
        for cell, n in per_cell.items():
            m.cell_readings.labels(*self._cell_path(cell)).inc(n)

    def _cell_path(self, cell: str) -> tuple[str, str, str]:
        """(district, street, community) of a cell, cached: labels on hot-path metrics."""
        found = self._cell_labels_cache.get(cell)
        if found is None:
            path = self.grid.path(cell)
            found = (path.get("district", ""), path.get("street", ""), path.get("community", ""))
            self._cell_labels_cache[cell] = found
        return found

    def _alert_doc(self, alert: AlertEvent) -> dict[str, Any]:
        doc = alert.to_dict()
        doc["labels"] = {
            **self._cell_labels(alert.grid_cell),
            "alert_id": alert.alert_id,
            "kind": alert.kind,
            "severity": alert.severity,
            "sensor_id": alert.sensor_id,
            "source": "sensor",
        }
        return doc

    def _cell_labels(self, cell: str) -> dict[str, str]:
        return {"grid_cell": cell, **self.grid.path(cell)}

    # -- incident reports ------------------------------------------------------------
    async def on_incidents(self, events: Sequence[Message]) -> None:
        now = time.time()
        reports = []
        for event in events:
            try:
                reports.append(self.validator.incident(event.value or b"", now))
            except EventError as exc:
                await self.dead_letter("incidents", event, exc.code, str(exc))
            except Exception as exc:  # a poison message costs only itself
                error = unreadable(exc)
                await self.dead_letter("incidents", event, error.code, str(error))
        if not reports:
            return
        departments = self.departments.predict([f"{r.category}: {r.text}" for r in reports])
        tally: Tally[tuple[str, str]] = Tally()
        alerts = []
        states: dict[bytes, dict[str, Any]] = {}
        for report, department in zip(reports, departments, strict=True):
            tally[(report.source, department)] += 1
            key = report.grid_cell.encode()
            cell_state = states.setdefault(key, dict(self.burst_state.get(key) or {}))
            cell_state[report.category], burst = self.bursts.observe(
                cell_state.get(report.category), report, department
            )
            if burst is not None:
                alerts.append(
                    (
                        burst.alert_id,
                        {
                            "schema": "alert/1",
                            "alert_id": burst.alert_id,
                            "status": "firing",
                            "sensor_id": "",
                            "kind": "incident_burst",
                            "grid_cell": burst.grid_cell,
                            "severity": burst.severity,
                            "score": 0.0,
                            "value": burst.count,
                            "started_at": format_ts(burst.bucket_start),
                            "ended_at": None,
                            "reports": burst.reports_doc(),
                            "follow_up": not burst.first,
                            "labels": {
                                **self._cell_labels(burst.grid_cell),
                                "alert_id": burst.alert_id,
                                "kind": "incident_burst",
                                "severity": burst.severity,
                                "source": "citizen",
                                "category": burst.category,
                                "department": burst.department,
                            },
                        },
                    )
                )
                if burst.first:  # not the follow-up reports of an alerted bucket
                    level = self.grid.cells[burst.grid_cell].level
                    self.metrics.alerts.labels("incident_burst", level, burst.severity).inc()
                    self.metrics.incident_bursts.labels(burst.department).inc()
        await self._send_all(self.alerts, alerts)
        for key, cell_state in states.items():
            self.burst_state[key] = cell_state
        await self.app.producer.flush()
        for (source, department), n in tally.items():
            self.metrics.incidents.labels(source, department).inc(n)

    # -- routing ---------------------------------------------------------------------
    async def on_alert(self, event: EventT[bytes]) -> None:
        try:
            alert = orjson.loads(event.value)
            alert_id, status = alert["alert_id"], alert["status"]
            labels = label_set(alert["labels"])
        except (orjson.JSONDecodeError, KeyError, TypeError, RoutingConfigError) as exc:
            await self.dead_letter("alerts", event, "bad_alert", f"alert not readable: {exc!r}")
            return
        now = time.time()
        key = alert_id.encode()
        if self.annotator is not None:
            tags = [
                "citybrain",
                "alert",
                alert["kind"],
                alert.get("sensor_id") or alert_id,
                alert["severity"],
            ]
            text = f"{alert['kind']} alert at {alert['grid_cell']} ({alert['severity']})"
            now_ms = int(now * 1000)
            if status == "firing":
                self.annotator.open_region(alert_id, text, tags, now_ms)
            else:
                self.annotator.close_region(alert_id, text + ", ended", tags, now_ms, now_ms)
        if status == "firing":
            self.firing[key] = labels
            # A generator: the firing table is walked only if a silence does not apply first.
            firing = (v for k, v in self.firing.items() if k != key)
            decision = self.router.decide(labels, firing, await self._active_silences(now), now)
            why = (
                "silenced"
                if decision.silenced_by
                else "inhibited"
                if decision.inhibited_by
                else None
            )
            if why is not None:
                detail = (
                    f"silence {decision.silenced_by.id}"
                    if decision.silenced_by
                    else "inhibited by a firing source alert"
                )
                await self._audit(
                    {
                        "action": f"alert_{why}",
                        "alert_id": alert_id,
                        "at": now,
                        "actor": "citybrain",
                        "detail": detail,
                    }
                )
                self.metrics.alerts_suppressed.labels(alert["kind"], why).inc()
                return
        else:
            self.firing.pop(key, None)
            decision = self.router.decide(labels, [], [], now)
        routed = [
            (route.group_key(labels), {"alert": alert, "route": _route_doc(route)})
            for route in decision.routes
        ]
        await self._send_all(self.routed, routed)

    async def _active_silences(self, now: float) -> list[Silence]:
        # Each stored version is read once; one that cannot be read is skipped, audited
        # and counted once, never fatal to the route agent (playbooks.routing.SilenceBook).
        silences, bad = self._silences.read(
            ((k.decode(errors="replace"), v) for k, v in self.silences.items()), now
        )
        for silence in bad:
            log.warning("skipping stored silence %s: %s", silence.key, silence.message)
            self.metrics.silences_invalid.labels(silence.problem).inc()
            await self._audit(
                {
                    "action": "silence_unreadable",
                    "silence_id": silence.key,
                    "at": now,
                    "actor": "citybrain",
                    "detail": f"{silence.problem}: {silence.message}",
                }
            )
        return silences

    # -- runs ------------------------------------------------------------------------
    async def on_routed(self, event: EventT[bytes]) -> None:
        doc = orjson.loads(event.value)
        alert, route = doc["alert"], doc["route"]
        key = event.key if isinstance(event.key, bytes) else str(event.key).encode()
        group = dict(
            self.groups.get(key)
            or {"generation": 0, "run": None, "seen": [], "commands": [], "route": route}
        )
        alert_id, now = alert["alert_id"], time.time()
        engine = self.engines[route["playbook"]]
        run = Run.from_dict(group["run"]) if group["run"] else None
        cmds: list[Command] = []
        if alert["status"] == "resolved":
            if run is None or alert_id not in run.alerts:
                return
            run, cmds = engine.note(run, "alert_resolved", alert_id, now)
        elif alert_id in group["seen"]:
            if run is None or not alert.get("reports"):
                return  # runs are idempotent per alert: a redelivered alert changes nothing
        elif run is not None and not is_terminal(run):
            run, cmds = engine.join(run, alert_id, now)
            if (
                run.last_notified_at is not None
                and now - run.last_notified_at >= route["group_interval"]
            ):
                run, more = engine.renotify(run, f"new alert {alert_id} in the group", now)
                cmds += more
        else:
            group["generation"] += 1
            wait = route["group_wait"]
            if self.settings.ack_deadline_seconds is not None:
                wait = min(wait, self.settings.ack_deadline_seconds)
            run, cmds = engine.new_run(
                f"{key.decode()}.{group['generation']}", alert, now, group_wait=wait
            )
            self.metrics.runs.labels(run.playbook, run.department).inc()
        if alert.get("reports"):  # citizen reports the run now covers (repeats ignored)
            try:
                run, more = engine.step(run, ReportsCovered.from_alert(alert, now))
            except BadEventError as exc:
                await self.dead_letter("routed", event, "bad_reports", str(exc))
                return
            cmds += more
        group["seen"] = [*group["seen"], alert_id][-500:]
        group["run"], group["route"] = run.to_dict(), route
        await self.advance(key, group, run, cmds)

    async def on_command(self, event: EventT[bytes]) -> None:
        try:
            cmd = orjson.loads(event.value)
            command_id, run_id, action = cmd["id"], cmd["run_id"], cmd["action"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            await self.dead_letter("commands", event, "bad_command", f"not readable: {exc!r}")
            return
        key = run_key(run_id)
        group = self.groups.get(key)
        if group is None or group["run"] is None or group["run"]["run_id"] != run_id:
            await self.dead_letter("commands", event, "unknown_run", f"no run {run_id}")
            return
        group = dict(group)
        if command_id in group["commands"]:
            return  # idempotent: the same command twice changes nothing
        run = Run.from_dict(group["run"])
        engine = self.engines[run.playbook]
        by, now = str(cmd.get("by", "unknown")), time.time()
        try:
            if action == "ack":
                run, cmds = engine.acknowledge(run, by, now)
            elif action == "resolve":
                run, cmds = engine.resolve(run, by, str(cmd.get("note", "")), now)
            elif action == "escalate":
                run, cmds = engine.escalate(run, by, now)
            elif action == "cancel":
                run, cmds = engine.cancel(run, by, str(cmd.get("note", "")), now)
            elif action in ("approve", "reject"):
                run, cmds = engine.approve(
                    run, by, str(cmd.get("role", "")), now, approved=action == "approve"
                )
            elif action == "answer":
                run, cmds = engine.step(run, Answer.from_command({**cmd, "by": by}, now))
            elif action == "action_result":
                run, cmds = engine.action_result(
                    run, str(cmd["command_id"]), bool(cmd["ok"]), str(cmd.get("detail", "")), now
                )
            else:
                raise PlaybookError(f"unknown command action {action!r}")
        except PlaybookError as exc:
            await self._audit(
                {
                    "action": "command_refused",
                    "run_id": run_id,
                    "at": now,
                    "actor": by,
                    "detail": str(exc),
                    "command": action,
                }
            )
            return
        group["commands"] = [*group["commands"], command_id][-200:]
        group["run"] = run.to_dict()
        await self.advance(key, group, run, cmds)

    async def check_deadlines(self) -> None:
        # A half-recovered table could show a deadline whose escalation is already on
        # the changelog; acting then would escalate twice.
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        if self.app.rebalancing or not recovery.completed.is_set():
            return
        now = time.time()
        open_runs: Tally[tuple[str, str]] = Tally()
        by_cell: Tally[tuple[str, str, str]] = Tally()
        approvals: Tally[str] = Tally()
        for key, group in list(self.groups.items()):
            if not group["run"]:
                continue
            run = Run.from_dict(group["run"])
            if is_terminal(run):
                continue
            engine = self.engines[run.playbook]
            cmds: list[Command] = []
            if engine.is_due(run, now):
                run, cmds = engine.timeout(run, now)
            run, more = engine.check_sla(run, now)
            cmds += more
            repeat = group["route"]["repeat_interval"]
            if (
                run.acknowledged_at is None
                and run.last_notified_at is not None
                and now - run.last_notified_at >= repeat
            ):
                run, more = engine.renotify(run, "repeat: still unacknowledged", now)
                cmds += more
            if cmds:
                await self.advance(key, {**group, "run": run.to_dict()}, run, cmds)
            if not is_terminal(run):
                open_runs[(run.playbook, run.status)] += 1
                if run.grid_cell in self.grid.cells:  # a cell dropped from the grid file
                    by_cell[self._cell_path(run.grid_cell)] += 1
                role = engine.approval_role(run)
                if role is not None:
                    approvals[role] += 1
        for name in self.playbooks:
            for status in ("pending", "waiting_ack", "waiting_approval", "waiting_action", "open"):
                self.metrics.runs_open.labels(name, status).set(open_runs[(name, status)])
        # Every cell of the grid, so a cell whose last run closed drops back to 0.
        for cell_id in self.grid.cells:
            path = self._cell_path(cell_id)
            self.metrics.cell_runs_open.labels(*path).set(by_cell[path])
        for role in ("operator", "coordinator"):
            self.metrics.approvals_waiting.labels(role).set(approvals[role])
        self.metrics.sensors_tracked.set(len(self.sensor_state))
        firing: Tally[tuple[str, str]] = Tally()
        for _, labels in self.firing.items():
            cell = self.grid.cells.get(labels.get("grid_cell", ""))
            firing[(labels.get("severity", ""), cell.level if cell else "")] += 1
        for severity in ("minor", "major", "critical"):
            for level in LEVELS:
                self.metrics.alerts_open.labels(severity, level).set(firing[(severity, level)])
        await self._update_lag()

    async def _update_lag(self) -> None:
        """Consumer lag per topic: high watermark minus position, over this worker's
        partitions (faust's own end-offset gauges stay empty with aiokafka)."""
        consumer = self.app.consumer
        lag: Tally[str] = Tally()
        for tp in consumer.assignment():
            try:
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
            except Exception:  # not yet known right after a rebalance
                continue
            if position is not None and highwater is not None:
                lag[tp.topic] += max(0, highwater - position)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic).set(value)

    async def advance(
        self, key: bytes, group: dict[str, Any], run: Run, commands: list[Command]
    ) -> None:
        """Carry out ``commands``, then store the run's new ``group`` state.

        Outputs are delivered before the state that says they were sent, so a crash in
        between replays them (same step ids) rather than losing them; the state then goes
        straight to the producer, not through faust's background buffer, which kept that
        window open for several round trips (a SIGKILL there emitted a run twice).
        """
        await self.emit(run, commands)
        await self.groups.set_many({key: group})

    async def emit(self, run: Run, commands: list[Command]) -> None:
        """Carry out the engine's commands: step, audit and task messages (queued
        together, delivery awaited), webhooks (in the background), KPIs."""
        steps: list[tuple[str, Any]] = []
        audit: list[tuple[str, Any]] = []
        tasks: list[tuple[str, str, Any]] = []
        replies: list[dict[str, Any]] = []
        for cmd in commands:
            body = {"schema": "step/1", "playbook": run.playbook, **cmd.to_dict()}
            (audit if cmd.action in AUDITED else steps).append((run.alert_id, body))
            if cmd.action == "reply":
                replies.append(reply_document(run, cmd))
            if cmd.action == "kafka":
                tasks.append(
                    (self.settings.topic(cmd.data["topic"]), run.run_id, cmd.data["message"])
                )
            self._kpis(run, cmd)
        futures = [
            *await self._queue(self.steps, steps),
            *await self._queue(self.audit, audit),
        ]
        futures += await self._queue(self.replies, [(r["report_id"], r) for r in replies])
        for reply in replies if self.settings.replies_webhook_url else []:
            url = str(self.settings.replies_webhook_url)
            if not self.webhooks.submit(reply["reply_id"], url, reply):
                # The topic has the closure; the webhook copy is lost, and said so.
                await self._audit(
                    {
                        "action": "reply_webhook_dropped",
                        "run_id": run.run_id,
                        "at": time.time(),
                        "actor": "citybrain",
                        "detail": f"{reply['report_id']}: too many webhook calls in flight",
                    }
                )
        for topic, key, message in tasks:
            task_topic = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
            futures.append(await task_topic.send(key=key.encode(), value=orjson.dumps(message)))
        for fut in futures:
            await fut
        for cmd in commands:
            if self.annotator is not None and cmd.action in (
                "run_created",
                "resolved",
                "cancelled",
                "failed",
            ):
                tags = ["citybrain", "run", run.playbook, run.kind]
                text = f"{run.playbook} run at {run.grid_cell}: {cmd.action}"
                if cmd.action == "run_created":
                    self.annotator.open_region(run.run_id, text, tags, int(cmd.at * 1000))
                else:
                    self.annotator.close_region(
                        run.run_id, text, tags, int(run.created_at * 1000), int(cmd.at * 1000)
                    )
            if cmd.action == "annotate" and self.annotator is not None:
                tags = ["citybrain", run.playbook, run.kind, run.run_id]
                text = f"{run.playbook}: {cmd.detail}"
                accepted = self.annotator.submit(cmd.id, text, tags, int(cmd.at * 1000))
                self.metrics.annotations.labels("sent" if accepted else "dropped").inc()
            if cmd.action == "webhook":
                payload = {
                    "run_id": run.run_id,
                    "alert_id": run.alert_id,
                    "kind": run.kind,
                    "grid_cell": run.grid_cell,
                    "playbook": run.playbook,
                    "labels": run.labels,
                    "delivery": cmd.id,
                }
                if not self.webhooks.submit(cmd.id, cmd.data["url"], payload):
                    await self.on_webhook_outcome(
                        WebhookOutcome(
                            cmd.id,
                            cmd.data["url"],
                            False,
                            0,
                            "too many webhook calls in flight",
                            0.0,
                        )
                    )

    def _kpis(self, run: Run, cmd: Command) -> None:
        m = self.metrics
        count_campaign(m, run, cmd)
        if cmd.action == "escalate":
            m.escalations.labels(run.playbook, cmd.level or "").inc()
        elif cmd.action == "acknowledged":
            m.acks.labels(run.playbook, run.level).inc()
            m.time_to_ack.labels(run.playbook, run.level, run.department).observe(
                max(0.0, cmd.at - run.created_at)
            )
        elif cmd.action == "resolved":
            m.runs_resolved.labels(run.playbook, run.department).inc()
            m.time_to_resolve.labels(run.playbook, run.department).observe(
                max(0.0, cmd.at - run.created_at)
            )
        elif cmd.action == "sla_breach":
            m.sla_breaches.labels(run.playbook, run.department).inc()

    # -- webhooks (called by the executor, off the stream) ---------------------------
    async def on_webhook_outcome(self, outcome: WebhookOutcome) -> None:
        run_id = outcome.command_id.rsplit(":", 1)[0]
        self.metrics.webhook_calls.labels("ok" if outcome.ok else "failed").inc()
        self.metrics.webhook_seconds.observe(outcome.seconds)
        body = {
            "id": f"{outcome.command_id}:result",
            "run_id": run_id,
            "action": "action_result",
            "command_id": outcome.command_id,
            "ok": outcome.ok,
            "detail": f"{outcome.detail} after {outcome.attempts} attempt(s)",
            "by": "citybrain",
        }
        await self.commands.send(key=run_key(run_id), value=orjson.dumps(body))

    async def on_webhook_attempt(
        self, command_id: str, url: str, attempt: int, detail: str
    ) -> None:
        self.metrics.webhook_failed_attempts.inc()
        await self._audit(
            {
                "action": "webhook_attempt_failed",
                "run_id": command_id.rsplit(":", 1)[0],
                "at": time.time(),
                "actor": "citybrain",
                "detail": f"{url}: attempt {attempt}: {detail}",
            }
        )

    async def on_annotation_error(self, annotation_id: str, detail: str) -> None:
        self.metrics.annotations.labels("failed").inc()
        await self._audit(
            {
                "action": "annotation_failed",
                "run_id": annotation_id.rsplit(":", 1)[0],
                "at": time.time(),
                "actor": "citybrain",
                "detail": detail,
            }
        )

    # -- plumbing --------------------------------------------------------------------
    async def _queue(
        self, topic: faust.TopicT, items: list[tuple[str, Any]]
    ) -> list[Awaitable[Any]]:
        """Queue every message on the producer; the futures resolve on delivery."""
        return [
            await topic.send(key=key.encode(), value=orjson.dumps(value)) for key, value in items
        ]

    async def _send_all(self, topic: faust.TopicT, items: list[tuple[str, Any]]) -> None:
        """Send and wait until Kafka has every message (the caller's state comes after)."""
        for fut in await self._queue(topic, items):
            await fut

    async def _audit(self, record: dict[str, Any]) -> None:
        key = str(record.get("run_id") or record.get("alert_id") or "api").encode()
        await self.audit.send(key=key, value=orjson.dumps({"schema": "audit/1", **record}))

    async def dead_letter(
        self,
        stream: str,
        event: EventT[bytes] | Message,
        code: str,
        message: str,
        index: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Dead-letter a message (an event or a batch's message), or with ``index`` and
        ``raw`` one reading of a pack (its origin then reads
        ``topic/partition/offset#index``)."""
        msg = event if isinstance(event, Message) else event.message
        origin = f"{msg.topic}/{msg.partition}/{msg.offset}"
        if index is not None:
            origin += f"#{index}"
        log.warning("dead-letter %s: %s (%s)", origin, message, code)
        value = msg.value if raw is None else raw
        await self._send_dead_letter(stream, value, msg.key, code, message, origin)

    async def guarded(
        self,
        stream: str,
        handler: Callable[[EventT[bytes]], Awaitable[None]],
        event: EventT[bytes],
    ) -> None:
        """The one error policy for a message-at-a-time agent (the shape of Quix Streams'
        ``on_processing_error`` callback): any exception while handling one message is
        logged with its topic/partition/offset and the message goes to the dead-letter
        topic with the reason (``EventError``'s code, else ``processing_error``); the
        agent carries on. Only a failure to dead-letter propagates (the caller then
        leaves the message unacked, so no commit passes it)."""
        try:
            await handler(event)
        except Exception as exc:
            msg = event.message
            log.exception(
                "%s: processing %s/%s/%s failed", stream, msg.topic, msg.partition, msg.offset
            )
            code = exc.code if isinstance(exc, EventError) else "processing_error"
            text = f"{type(exc).__name__}: {exc}"
            await self.dead_letter(stream, event, code, text[:500])

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
        value, headers = fit_dead_letter(value, key if isinstance(key, bytes) else None, headers)
        await self.deadletter.send(key=key, value=value, headers=headers)
        self.metrics.dead_letters.labels(stream, code).inc()


def _route_doc(route: Route) -> dict[str, Any]:
    return {
        "id": route.id,
        "playbook": route.playbook,
        "group_wait": route.group_wait,
        "group_interval": route.group_interval,
        "repeat_interval": route.repeat_interval,
    }


def settle_garbage_collector() -> None:
    """Called once the app is built. The start-up objects (grid, playbooks, classifier,
    modules) never die: moved out of the collector's reach, with fewer full collections,
    so a collection does not stall the event loop for a tenth of a second under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> faust.App:
    """A fresh faust app with its agents, tables, timer, operator API and /metrics."""
    from streams.api import register_api

    settings = settings or load_settings()
    registry = registry or CollectorRegistry()
    grid = load_grid(settings.grid_file)
    datadir = settings.run_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=settings.faust_credentials(),
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
        # A commit writes thousands of ~6 kB sensor states; aiokafka keeps one open batch
        # per partition and waits a broker round trip whenever it is full, so faust's
        # 16 kB default stalls the event loop (~400 ms per commit at 2,000 sensors).
        # Stays under the broker's default message.max.bytes (1 MiB).
        producer_max_batch_size=1_000_000,
        consumer_max_fetch_size=settings.fetch_max_bytes,
        broker_max_poll_records=settings.batch_size,
    )
    metrics = Metrics.create(registry)
    setup_faust_metrics(app, registry)
    pipeline = Pipeline(app, settings, grid, metrics)
    coalesce_changelog(app, [pipeline.sensor_state], pipeline.states_settled)
    register_api(app, pipeline)

    # The high-rate topics reach their agents as one batch per partition and fetch,
    # acked together once processed (streams/faust_patches.py); the stream faust hands
    # these agents stays empty.
    if settings.faust_drain != "stock":
        install_faust_patches()
    drain = BatchDrain(app) if settings.faust_drain == "batch" else None
    for role in ("readings", "incidents"):
        if drain is not None:
            drain.register(settings.topic(role))

    async def batches(
        role: str,
        stream: faust.StreamT[bytes],
        handler: Callable[[Sequence[Message]], Awaitable[None]],
    ) -> None:
        if drain is None:  # faust's own event path (a benchmark lever)
            async for events in cast(faust.Stream[bytes], stream).take_events(
                settings.batch_size, within=0.01
            ):
                await handler([e.message for e in events])
            return
        async for batch in drain.batches(settings.topic(role)):
            try:
                async with batch:
                    await handler(batch.messages)
            except Exception as exc:
                # Per-message faults are dead-lettered inside the handler; this is a
                # batch-wide one (e.g. Kafka refusing the dead letter itself). The batch
                # stays unacked, so no commit passes it, and the worker stops: a
                # restart reads it again (at-least-once, docs/operations.md).
                await stop_on_fault(role, exc)
                raise

    async def stop_on_fault(role: str, exc: BaseException) -> None:
        log.critical("%s: a batch failed as a whole, stopping the worker: %r", role, exc)
        await app.crash(exc)

    async def one_by_one(
        role: str,
        stream: faust.StreamT[bytes],
        handler: Callable[[EventT[bytes]], Awaitable[None]],
    ) -> None:
        manual = cast(
            faust.Stream[bytes], stream
        ).noack()  # acked below, once handled or dead-lettered
        async for event in manual.events():
            try:
                await pipeline.guarded(role, handler, event)
            except Exception as exc:
                await stop_on_fault(role, exc)
                raise
            await manual.ack(event)

    @app.agent(pipeline.readings)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        await batches("readings", stream, pipeline.on_readings)

    @app.agent(pipeline.incidents)
    async def incidents(stream: faust.StreamT[bytes]) -> None:
        await batches("incidents", stream, pipeline.on_incidents)

    @app.agent(pipeline.alerts)
    async def route(stream: faust.StreamT[bytes]) -> None:
        await one_by_one("alerts", stream, pipeline.on_alert)

    @app.agent(pipeline.routed)
    async def respond(stream: faust.StreamT[bytes]) -> None:
        await one_by_one("routed", stream, pipeline.on_routed)

    @app.agent(pipeline.commands)
    async def command(stream: faust.StreamT[bytes]) -> None:
        await one_by_one("commands", stream, pipeline.on_command)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_moved_sensors(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        # The sensors of partitions this worker no longer owns may now belong to another
        # (their states reached the changelog when faust flushed at the revocation). Only
        # those: a rebalance revokes every partition first, and faust does not re-read
        # the changelog of a partition it keeps, so forgetting a kept partition's
        # sensors (as the revocation signal did) lost their detector state.
        topic = settings.topic("readings")
        kept = {tp.partition for tp in assigned if tp.topic == topic}
        pipeline.sensor_state.forget_partitions(set(range(settings.partitions)) - kept)

    @app.timer(interval=settings.deadline_check_interval)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        await pipeline.check_deadlines()

    return app
