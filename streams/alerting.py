"""Alerting and routing: the ``alerts`` agent's handler.

Each alert (decoded from ``alerts``) updates the ``firing`` table, is checked against the
active silences (the ``silences`` table) and inhibition, and goes through the routing tree
(``playbooks.routing``) to one message per matched route on ``routed``, keyed by the
route's group key; suppressed alerts are audited instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from faust.types import EventT

from playbooks.errors import RoutingConfigError
from playbooks.loader import routing_errors
from playbooks.routing import Route, Silence, SilenceBook, label_set, label_values
from streams.context import Context

log = logging.getLogger(__name__)


class Alerting:
    """Alerts to routed alerts: silences, inhibition and the routing tree."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.router = ctx.router
        self._silences = SilenceBook()
        # A matcher on a value no alert carries (a kind the grid lacks) never matches:
        # `citybrain playbooks check` refuses it; the worker starts, and says so.
        _, self.never_matching = routing_errors(
            ctx.settings.routing_file, ctx.playbooks, label_values(ctx.grid)
        )
        if self.never_matching:

            @ctx.app.task  # type: ignore[untyped-decorator]
            async def announce_never_matching() -> None:
                for line in self.never_matching:
                    log.warning("citybrain: warning: %s (`citybrain playbooks check`)", line)

    # -- routing ---------------------------------------------------------------------
    async def on_alert(self, event: EventT[bytes]) -> None:
        try:
            alert = orjson.loads(event.value)
            alert_id, status = alert["alert_id"], alert["status"]
            labels = label_set(alert["labels"])
        except (orjson.JSONDecodeError, KeyError, TypeError, RoutingConfigError) as exc:
            await self.ctx.dead_letter("alerts", event, "bad_alert", f"alert not readable: {exc!r}")
            return
        now = time.time()
        key = alert_id.encode()
        if self.ctx.annotator is not None:
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
                self.ctx.annotator.open_region(alert_id, text, tags, now_ms)
            else:
                self.ctx.annotator.close_region(alert_id, text + ", ended", tags, now_ms, now_ms)
        if status == "firing":
            self.ctx.firing[key] = labels
            # A generator: the firing table is walked only if a silence does not apply first.
            firing = (v for k, v in self.ctx.firing.items() if k != key)
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
                await self.ctx.audit(
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
            self.ctx.firing.pop(key, None)
            decision = self.router.decide(labels, [], [], now)
        routed = [
            (route.group_key(labels), {"alert": alert, "route": _route_doc(route)})
            for route in decision.routes
        ]
        await self.ctx.send_all(self.ctx.routed, routed)

    async def _active_silences(self, now: float) -> list[Silence]:
        # Each stored version is read once; one that cannot be read is skipped, audited
        # and counted once, never fatal to the route agent (playbooks.routing.SilenceBook).
        silences, bad = self._silences.read(
            ((k.decode(errors="replace"), v) for k, v in self.ctx.silences.items()), now
        )
        for silence in bad:
            log.warning(
                "citybrain: warning: skipping stored silence %s: %s", silence.key, silence.message
            )
            self.metrics.silences_invalid.labels(silence.problem).inc()
            await self.ctx.audit(
                {
                    "action": "silence_unreadable",
                    "silence_id": silence.key,
                    "at": now,
                    "actor": "citybrain",
                    "detail": f"{silence.problem}: {silence.message}",
                }
            )
        return silences


def _route_doc(route: Route) -> dict[str, Any]:
    return {
        "id": route.id,
        "playbook": route.playbook,
        "group_wait": route.group_wait,
        "group_interval": route.group_interval,
        "repeat_interval": route.repeat_interval,
    }
