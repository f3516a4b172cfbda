"""Ingest and detection: the ``readings`` and ``incidents`` agents' handlers.

Each gets one batch of messages (one partition's, in offset order), decodes and validates
them (a bad message or reading is dead-lettered alone), and calls the pure handlers:
``streams.detection`` for sensor readings (alerts on ``alerts``, keyed by alert id, and
the sensor states in the ``sensor-state`` table), the department classifier and
``streams.bursts`` for citizen reports (burst alerts and their resolution, the
``burst-state`` table; a report in no alert is offered to its group's run on ``routed``,
and one that leaves the window in no alert is counted and audited).
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from faust.types import Message

from streams.bursts import BurstTracker
from streams.columns import BatchAdmission
from streams.context import Context, message_origin
from streams.corroborating import CorroborationStage
from streams.departments import DepartmentClassifier
from streams.detection import AlertEvent, BatchResult, Incoming, SensorDetection
from streams.errors import EventError, unreadable
from streams.events import EventValidator, format_ts

log = logging.getLogger(__name__)
_READING = attrgetter("reading")
_SENSOR = attrgetter("sensor_id")

SAY_DROPPED_EVERY = 60.0  # seconds between INFO lines on duplicate or late reports
# Why a valid incident report counts towards no burst (streams.bursts ``dropped``).
DROPPED = {
    "duplicate": "not counted towards bursts (report_id already seen in its cell and "
    "category: a re-sent report)",
    "late": "not counted towards bursts (older than the burst window)",
    "unalerted": "in no alert (they left the burst window below the burst threshold; a run "
    "covers them only if their group's run was open when they came; audited as "
    "reports_not_alerted)",
}


def rejected_origin(events: Sequence[Message], item: Incoming) -> str:
    """The origin header of a reading detection refused (``out_of_order``,
    ``detector_error``): its message's ``topic/partition/offset``, ``#index`` when it came
    in a pack (a packed reading's ``raw`` is empty until it is dead-lettered). A batch is
    one partition's messages, so topic and partition are the batch's."""
    first = events[0]
    return message_origin(
        first.topic, first.partition, item.offset, None if item.raw else item.index
    )


class Ingest:
    """Readings to alerts and sensor states; incident reports to burst alerts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.grid, self.metrics = ctx.grid, ctx.metrics
        self.validator = EventValidator(ctx.grid, max_future_skew=settings.max_future_skew)
        self.admission = BatchAdmission(self.validator, settings.partitions)
        self.detection = SensorDetection.from_settings(settings)
        # Sensor alerts go through neighbour corroboration on their way to the alerts
        # topic (streams/corroborating.py; off: straight there).
        self.corroboration = CorroborationStage(ctx.app, ctx, self.detection)
        self.departments = DepartmentClassifier.from_training_file()
        self.bursts = BurstTracker(
            bucket_seconds=settings.burst_bucket_seconds, min_reports=settings.burst_min_reports
        )
        # To offer a report in no alert to the open run of its group (see on_incidents).
        self.router = ctx.router
        # reason -> (monotonic time of the last INFO line on dropped reports, held since)
        self._said_dropped: dict[str, tuple[float | None, int]] = {}
        self._watch = {s.strip() for s in settings.watch_sensors.split(",") if s.strip()}
        self._exported: dict[str, str] = {}  # sensor id -> kind, with per-sensor series
        # Detection reports the last reading of these sensors (and of any in an episode)
        # in ``BatchResult.last``: the watched ones and the ones with exported series.
        self.detection.follow.update(self._watch)

    # -- readings --------------------------------------------------------------------
    async def on_readings(self, messages: Sequence[Message]) -> None:
        """One batch of ``readings`` messages (one partition's, in offset order): decode
        and validate them together (``BatchAdmission`` never raises for a message's
        content: a bad message or reading is dead-lettered alone), then detect over the
        batch."""
        incoming, refused = self.admission.admit(
            [msg.value for msg in messages],
            [msg.partition for msg in messages],
            [msg.offset for msg in messages],
            [msg.timestamp for msg in messages],
            time.time(),
        )
        for i, r in refused:
            await self.ctx.dead_letter(
                "readings", messages[i], r.error.code, str(r.error), r.index, r.raw
            )
        async with self.ctx.states_settled:
            await self._detect(messages, incoming)

    async def _detect(self, events: Sequence[Message], incoming: list[Incoming]) -> None:
        # The batch's sensors once each, keyed by id; each table key encoded once.
        sensors = set(map(_SENSOR, map(_READING, incoming)))
        stored = self.ctx.sensor_state.get_many(map(str.encode, sensors))
        states = dict(zip(sensors, stored, strict=True))
        # Updates the live detectors in the table's states in place.
        result = self.detection.process(incoming, states)
        for item, code, message in result.rejected:
            await self.ctx.send_dead_letter(
                "readings",
                item.raw or item.reading.to_json(),
                item.reading.sensor_id.encode(),
                code,
                message,
                rejected_origin(events, item),
            )
        # Alerts must be on Kafka before the state that says they were sent.
        await self.corroboration.send(result, self._alert_doc)
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
        staged = dict(zip(map(str.encode, result.states), result.states.values(), strict=True))
        through = {sid.encode(): staged.pop(sid.encode()) for sid in alerted}
        self.ctx.sensor_state.stage_many(staged)
        if through:
            await self.ctx.sensor_state.set_many(through)

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
                m.cell_alerts.labels(*self.ctx.cell_path(alert.grid_cell), alert.kind).inc()
                m.event_to_alert.observe(max(0.0, sent_at - alert.received_at))
            else:
                m.alerts_resolved.labels(alert.kind).inc()
        follow = self.detection.follow
        for sid, (kind, _, _, value, score, in_episode) in result.last.items():
            if in_episode or sid in self._watch:
                m.sensor_value.labels(sid, kind).set(value)
                m.sensor_score.labels(sid, kind).set(score)
                self._exported[sid] = kind
                follow.add(sid)
            elif sid in self._exported:
                # The episode ended: drop the sensor's series to keep cardinality bounded.
                m.sensor_value.remove(sid, kind)
                m.sensor_score.remove(sid, kind)
                del self._exported[sid]
                follow.discard(sid)
        for cell, n in result.scored_by_cell.items():
            m.cell_readings.labels(*self.ctx.cell_path(cell)).inc(n)

    def _alert_doc(self, alert: AlertEvent) -> dict[str, Any]:
        doc = alert.to_dict()
        doc["labels"] = {
            **self.grid.cell_labels(alert.grid_cell),
            "alert_id": alert.alert_id,
            "kind": alert.kind,
            "severity": alert.severity,
            "sensor_id": alert.sensor_id,
            "source": "sensor",
        }
        return doc

    # -- incident reports ------------------------------------------------------------
    def _offer(self, report: Any, department: str, late: bool) -> list[tuple[str, Any]]:
        """``routed`` messages offering ``report`` (in no alert) to the run of each group
        its burst alert would be routed to: ``{"report": {..., "ts": event time in epoch
        s, "late": ``late``}, "route": {"id", "playbook"}}`` keyed by the group key. The
        response stage covers it if that run is open and the report is not more than a
        day older than the run's opening, and drops the offer otherwise (the report then
        waits in its window for a burst, or ends as ``reports_not_alerted``; a late one,
        never in the window, is counted and audited so by the response stage)."""
        labels = {
            **self.grid.cell_labels(report.grid_cell),
            "alert_id": "",
            "kind": "incident_burst",
            "severity": "minor",
            "source": "citizen",
            "category": report.category,
            "department": department,
        }
        offer = {
            "report_id": report.report_id,
            "channel": report.source,
            "grid_cell": report.grid_cell,
            "category": report.category,
            "ts": report.ts,
            "late": late,
        }
        return [
            (
                route.group_key(labels),
                {"report": offer, "route": {"id": route.id, "playbook": route.playbook}},
            )
            for route in self.router.root.match(labels)  # (no silences, nothing firing)
        ]

    async def on_incidents(self, events: Sequence[Message]) -> None:
        now = time.time()
        reports = []
        for event in events:
            try:
                reports.append(self.validator.incident(event.value or b"", now))
            except EventError as exc:
                await self.ctx.dead_letter("incidents", event, exc.code, str(exc))
            except Exception as exc:  # a poison message costs only itself
                error = unreadable(exc)
                await self.ctx.dead_letter("incidents", event, error.code, str(error))
        if not reports:
            return
        departments = self.departments.predict([f"{r.category}: {r.text}" for r in reports])
        tally: Tally[tuple[str, str]] = Tally()
        alerts = []
        states: dict[bytes, dict[str, Any]] = {}
        dropped: dict[str, list[str]] = {}
        not_alerted: list[tuple[Any, list[str]]] = []
        offered: list[tuple[str, Any]] = []
        for report, department in zip(reports, departments, strict=True):
            key = report.grid_cell.encode()
            cell_state = states.setdefault(key, dict(self.ctx.burst_state.get(key) or {}))
            reason = self.bursts.dropped(cell_state.get(report.category), report)
            if reason is not None:
                # Counted and said, never silent (trial 5: 12 re-sent reports vanished).
                duplicate = reason == "duplicate"
                counter = (
                    self.metrics.incidents_duplicate if duplicate else self.metrics.incidents_late
                )
                counter.labels(report.source).inc()
                dropped.setdefault(reason, []).append(report.report_id)
                if reason == "duplicate":
                    continue  # a re-sent report is not a new one: not in incidents_total
            tally[(report.source, department)] += 1
            cell_state[report.category], bursts, unalerted = self.bursts.observe_all(
                cell_state.get(report.category), report, department
            )
            if unalerted:
                # Below the threshold to the end: no alert, no run, no closure. Counted,
                # said and audited, so no valid report ends silently (trial 6).
                for _, source in unalerted:
                    self.metrics.incidents_unalerted.labels(source).inc()
                dropped.setdefault("unalerted", []).extend(rid for rid, _ in unalerted)
                not_alerted.append((report, [rid for rid, _ in unalerted]))
            if not any(b.status == "firing" for b in bursts):
                # In no alert (yet): offered to the run of the group its burst alert would
                # have, which covers it as a follow-up if that run is open (trial 6:
                # reports arriving while a run for their cell and category waited for
                # an acknowledgement reached no run).
                offered += self._offer(report, department, reason == "late")
            for burst in bursts:
                resolved = burst.status == "resolved"
                alerts.append(
                    (
                        burst.alert_id,
                        {
                            "schema": "alert/1",
                            "alert_id": burst.alert_id,
                            "status": burst.status,
                            "sensor_id": "",
                            "kind": "incident_burst",
                            "grid_cell": burst.grid_cell,
                            "severity": burst.severity,
                            "score": 0.0,
                            "value": burst.count,
                            "started_at": format_ts(burst.bucket_start),
                            # The episode ended when this report found its window thinned.
                            "ended_at": format_ts(report.ts) if resolved else None,
                            "reports": burst.reports_doc(),
                            "follow_up": not burst.first,
                            "labels": {
                                **self.grid.cell_labels(burst.grid_cell),
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
                if burst.first and not resolved:  # not follow-ups, nor the end
                    level = self.grid.cells[burst.grid_cell].level
                    self.metrics.alerts.labels("incident_burst", level, burst.severity).inc()
                    self.metrics.incident_bursts.labels(burst.department).inc()
        await self.ctx.send_all(self.ctx.alerts, alerts)
        await self.ctx.send_all(self.ctx.routed, offered)
        for report, ids in not_alerted:
            await self.ctx.audit(
                {
                    "action": "reports_not_alerted",
                    "at": time.time(),
                    "actor": "citybrain",
                    "detail": (
                        f"{len(ids)} report(s) of {report.category!r} at {report.grid_cell} "
                        "left the burst window below the burst threshold: in no alert (a run "
                        "of their group open when they came covers them: report_covered)"
                    ),
                    "data": {
                        "grid_cell": report.grid_cell,
                        "category": report.category,
                        "report_ids": ids,
                    },
                }
            )
        for key, cell_state in states.items():
            self.ctx.burst_state[key] = cell_state
        await self.ctx.app.producer.flush()
        for (source, department), n in tally.items():
            self.metrics.incidents.labels(source, department).inc(n)
        for reason, ids in dropped.items():
            # Said once a minute per reason (a gateway re-sending all day must not flood
            # the log); the ones in between are counted on the next line.
            now_s = time.monotonic()
            last, held = self._said_dropped.get(reason, (None, 0))
            if last is not None and now_s - last < SAY_DROPPED_EVERY:
                self._said_dropped[reason] = (last, held + len(ids))
                continue
            self._said_dropped[reason] = (now_s, 0)
            log.info(
                "incidents: %d %s report(s) %s: %s%s%s",
                len(ids),
                reason,
                DROPPED[reason],
                ", ".join(ids[:5]),
                f" and {len(ids) - 5} more" if len(ids) > 5 else "",
                f"; {held} more since the last such line" if held else "",
            )
