"""t196: routing over time, a generator of alert timelines and two drivers of them.

Alertmanager's notifications depend on when things happen: a group flushes
``group_wait`` after its first alert and every ``group_interval`` after; a flush sends
the group's firing alerts not muted then (silences and inhibition are applied at the
flush, not when an alert arrives) if one is new since the last notification or
``repeat_interval`` has passed; a group whose alerts all resolved is deleted at its
flush. The other differential tests compare routing at one instant; this module makes
*timelines* (alerts firing, resolving and firing again, silences made, ended and
expired, inhibiting alerts that resolve or re-fire mid-group, rules inhibiting each
other) and plays each on a real Alertmanager 0.25 (``drive_alertmanager``: its webhook
receiver posting to a local sink, real time) and on citybrain's alerts and response
stages in one process with a fake clock (``drive_citybrain``), each giving the
notifications as ``(seconds after the start, timeline, group, firing alert ids)``.

Times: events come at whole seconds; ``group_wait`` is a whole number of seconds and a
half, ``group_interval`` whole seconds, so every flush is half a second from every
event (Alertmanager's timers are real: an event at a flush's instant would race it);
``repeat_interval`` is a half second plus whole seconds (never a multiple of
``group_interval``: at an exact multiple Alertmanager's notification log's timestamp,
taken after the webhook answered, races the flush's clock; docs/playbooks.md). The
notifications are compared on that half-second grid.

Several timelines share one Alertmanager and one citybrain configuration, each under
its own route (``tl="N"``) and inhibit rules whose ``equal`` holds ``tl``, so one
server run plays them all at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import faust
import orjson
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from playbooks.routing import new_silence
from streams.alerting import Alerting
from streams.context import Context
from streams.metrics import Metrics
from streams.partitioning import key_partition
from streams.response import Response
from streams.settings import Settings
from tests.services import FIXTURES

SEVERITIES = ("critical", "major", "minor")
PLAYBOOK = "sensor-anomaly"
# The label that holds a timeline (its value tlN): one citybrain knows.
TL = "category"
# The group_by of a timeline's second route (``Timeline.also``, t213).
ALSO = (TL, "severity")
# Inhibit rules a timeline may have, by name: each is scoped to the timeline by `equal`.
RULES: dict[str, dict[str, Any]] = {
    # The common one: a critical alert of a district mutes its minor ones.
    "critical>minor": {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="minor"'],
        "equal": [TL, "district"],
    },
    # Its mirror: with the first, two alerts of a district inhibit each other (the
    # mutual-inhibition kind), whichever came first.
    "minor>critical": {
        "source_matchers": ['severity="minor"'],
        "target_matchers": ['severity="critical"'],
        "equal": [TL, "district"],
    },
    # A rule whose source is its own target (two-sided: an alert matching both sides
    # does not inhibit, Alertmanager >= 0.13), across districts.
    "major<>major": {
        "source_matchers": ['severity=~"major|critical"'],
        "target_matchers": ['severity="major"'],
        "equal": [TL],
    },
}


@dataclass
class Step:
    """One event of a timeline at ``at`` seconds after its start: ``fire`` or
    ``resolve`` an alert (``alert``), ``silence`` (``silence``: id, ``matchers``, ending
    ``ends`` seconds after the start) or ``expire`` a silence early. ``ended`` (t213): a
    ``resolve`` sent to citybrain as Prometheus resolves an alert, a ``firing`` message
    whose ``ended_at`` is the step's instant (Alertmanager is sent ``endsAt`` then
    either way)."""

    at: int
    what: str
    alert: str = ""
    silence: str = ""
    matchers: tuple[str, ...] = ()
    ends: int = 0
    ended: bool = False


@dataclass
class Timeline:
    n: int
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    rules: tuple[str, ...]
    alerts: dict[str, dict[str, str]]  # id -> labels (alert_id and tl among them)
    steps: list[Step] = field(default_factory=list)
    # Where it came from, for a failure's message: "seed 33 timeline 4" (``play``).
    origin: str = ""
    # t213: the group_by of a second route every alert of the timeline also takes (the
    # first says ``continue: true``), or () for none: each alert in two groups at once.
    also: tuple[str, ...] = ()


def duration(seconds: float) -> str:
    """Seconds as an Alertmanager duration (whole milliseconds)."""
    return f"{round(seconds * 1000)}ms"


# The timings ``generate(wide=True)`` draws from, each a family that keeps every flush
# off the whole seconds events come at (an event at a flush's instant races it on a real
# Alertmanager): (group_waits, group_intervals, repeat_intervals).
TIMINGS: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    # t196's: flushes at half seconds.
    "half": ((0.5, 1.5, 2.5), (1.0, 2.0, 3.0), (0.5, 1.5, 2.5, 4.5, 3600.5)),
    # Tiny intervals (t202): a flush every half second, at quarter past and to, a repeat
    # due at every flush (0.25 s) or every other.
    "tiny": ((0.25, 0.75, 1.25), (0.5,), (0.25, 0.75, 1.25, 3600.25)),
    # group_wait 0 (t202): a group's first flush at its first alert's instant (on
    # Alertmanager the insert resets the group's timer to 0), the next ones 4.25 s
    # apart, off the whole seconds within the timeline (4.25, 8.5, 12.75 s after it).
    "zero": ((0.0,), (4.25,), (1.0, 5.0, 3600.5)),
}


def generate(rng: random.Random, n: int, end: int, wide: bool = False) -> Timeline:
    """Timeline ``n``: up to four alerts of two districts over ``end`` seconds. ``wide``
    (t202) draws its timing from every family of ``TIMINGS``, and keeps a group_wait 0
    timeline's alerts from coming together into a group at its first flush (that flush
    races the second's insert); without it, t196's draws (the seeds its tests and docs
    name play as they did)."""
    if not wide:
        return _generate(rng, n, end, TIMINGS["half"])
    family = rng.choice(["half", "tiny", "tiny", "zero", "zero"])
    for _ in range(50):
        tl = _generate(rng, n, end, TIMINGS[family])
        if family != "zero" or not _races_first_flush(tl):
            return tl
    return _generate(rng, n, end, TIMINGS["half"])


def _races_first_flush(tl: Timeline) -> bool:
    """Whether another fire or resolve step comes at the instant of a group's first
    alert: of the same group, or of any group when the timeline has inhibit rules (with
    group_wait 0 the group flushes as its first alert is inserted, racing the insert of
    the others posted with it, and the inhibitor's taking them)."""
    alerts = [s for s in tl.steps if s.what in ("fire", "resolve")]
    firsts: dict[tuple[tuple[str, str], ...], Step] = {}
    for s in alerts:
        for group in groups_of(tl, tl.alerts[s.alert]):
            firsts.setdefault(group, s)
    for group, first in firsts.items():
        for s in alerts:
            if s is first or s.at != first.at:
                continue
            if tl.rules or group in groups_of(tl, tl.alerts[s.alert]):
                return True
    return False


def _generate(
    rng: random.Random,
    n: int,
    end: int,
    timing: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]],
) -> Timeline:
    group_wait = rng.choice(timing[0])
    group_interval = float(rng.choice(timing[1]))
    repeat_interval = rng.choice(timing[2])
    rules = tuple(r for r in RULES if rng.random() < 0.45)
    if rng.random() < 0.3:
        rules = ("critical>minor", "minor>critical")  # the mutual kind, surely
    group_by = rng.choice([(TL, "district"), (TL,), (TL, "alert_id")])
    alerts = {}
    for i in range(rng.randint(2, 4)):
        alert_id = f"t{n}-a{i}"
        alerts[alert_id] = {
            "alert_id": alert_id,
            TL: f"tl{n}",
            "district": rng.choice(["d1", "d2"]),
            "severity": rng.choice(SEVERITIES),
        }
    steps: list[Step] = []
    for alert_id in alerts:
        at = rng.randint(0, end - 4)
        firing = True
        steps.append(Step(at, "fire", alert_id))
        while True:  # resolve, fire again, ...
            at += rng.randint(1, 6)
            if at >= end - 1:
                break
            firing = not firing
            steps.append(Step(at, "fire" if firing else "resolve", alert_id))
    for s in range(rng.choice([0, 0, 1, 2])):
        at = rng.randint(0, end - 3)
        target = rng.choice(list(alerts.values()))
        matcher = rng.choice(
            [f'alert_id="{target["alert_id"]}"', f'severity="{target["severity"]}"']
        )
        silence_id = f"t{n}-s{s}"
        ends = at + rng.randint(2, 8)
        steps.append(
            Step(at, "silence", silence=silence_id, matchers=(f'{TL}="tl{n}"', matcher), ends=ends)
        )
        if rng.random() < 0.4 and ends - at > 2:
            steps.append(Step(rng.randint(at + 1, ends - 1), "expire", silence=silence_id))
    steps.sort(key=lambda s: (s.at, s.what != "silence"))
    return Timeline(n, group_by, group_wait, group_interval, repeat_interval, rules, alerts, steps)


def routing_docs(timelines: list[Timeline], hook_port: int, scale: float = 1.0) -> tuple[str, str]:
    """(Alertmanager's configuration, citybrain's routing file) of ``timelines``, their
    durations ``scale`` times the timelines'."""
    am_routes, cb_routes, rules = [], [], []
    for tl in timelines:
        timing = {
            "group_by": list(tl.group_by),
            "group_wait": duration(tl.group_wait * scale),
            "group_interval": duration(tl.group_interval * scale),
            "repeat_interval": duration(tl.repeat_interval * scale),
        }
        both = {"continue": True} if tl.also else {}
        am_routes.append({"receiver": "hook", "matchers": [f'{TL}="tl{tl.n}"'], **timing, **both})
        cb_routes.append({"playbook": PLAYBOOK, "matchers": [f'{TL}="tl{tl.n}"'], **timing, **both})
        if tl.also:
            # The second route every alert of the timeline takes too: other matchers (so
            # another Route.Key) and another group_by (so other group labels).
            second = {
                "matchers": [f'{TL}="tl{tl.n}"', 'severity=~".+"'],
                **timing,
                "group_by": list(tl.also),
            }
            am_routes.append({"receiver": "hook", **second})
            cb_routes.append({"playbook": PLAYBOOK, **second})
        # Each rule of the timeline's own alerts only (``equal`` on TL would still let
        # another timeline's rule act on them).
        mine = f'{TL}="tl{tl.n}"'
        rules += [
            {
                **RULES[r],
                "source_matchers": [mine, *RULES[r]["source_matchers"]],
                "target_matchers": [mine, *RULES[r]["target_matchers"]],
            }
            for r in tl.rules
        ]
    am = {
        "route": {"receiver": "hook", "group_wait": "1h", "routes": am_routes},
        "receivers": [
            {
                "name": "hook",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{hook_port}/", "send_resolved": False}
                ],
            }
        ],
        "inhibit_rules": rules,
    }
    cb = {
        "version": 1,
        "route": {
            "playbook": PLAYBOOK,
            "group_by": ["..."],
            "group_wait": "1h",
            "routes": cb_routes,
        },
        "inhibit_rules": rules,
    }
    return json.dumps(am), json.dumps(cb)


def play(
    seeds: list[int], count: int, end: int, wide: bool = False, also: bool = False
) -> list[Timeline]:
    """``count`` timelines of each of ``seeds`` (``generate``: seed ``s``'s are those of
    ``random.Random(s)``, whatever else is played), numbered one after another, so one
    Alertmanager run plays them all at once. ``also`` (t213): half of them have a second
    route their alerts also take (``Timeline.also``), drawn apart from the timeline's
    own draws."""
    out: list[Timeline] = []
    for seed in seeds:
        rng = random.Random(seed)
        for i in range(count):
            tl = generate(rng, len(out), end, wide)
            tl.origin = f"seed {seed} timeline {i}"
            spelling = random.Random(f"t213 {seed} {i}")
            spell_resolutions(tl, spelling)
            if also and spelling.random() < 0.5:
                tl.also = ALSO
                if tl.group_wait == 0.0 and _races_first_flush(tl):
                    tl.also = ()  # its second route's groups would race a first flush
            out.append(tl)
    return out


def spell_resolutions(tl: Timeline, rng: random.Random) -> None:
    """t213: half of ``tl``'s resolutions (drawn by ``rng``, apart from the timeline's
    own draws, so every seed's timelines stay as they were) are sent to citybrain as a
    ``firing`` message whose ``ended_at`` is the step's instant, as Alertmanager reads
    an alert whose ``endsAt`` has passed (its resolution); before t213 citybrain took it
    for the alert firing (again)."""
    for s in tl.steps:
        if s.what == "resolve":
            s.ended = rng.random() < 0.5


def flush_times(tl: Timeline, group: tuple[tuple[str, str], ...], end: float) -> list[float]:
    """The instants (timeline seconds) ``group`` of ``tl`` flushes at on Alertmanager up
    to ``end``: ``group_wait`` after its first alert (muted or not: Alertmanager puts a
    muted alert in its group), then every ``group_interval`` (the group is compared only
    until an alert comes after it emptied, ``comparable_until``)."""
    made = min(
        (s.at for s in tl.steps if s.alert and group in groups_of(tl, tl.alerts[s.alert])),
        default=None,
    )
    if made is None:
        return []
    out, at = [], made + tl.group_wait
    while at <= end + tl.group_interval:
        out.append(at)
        at += tl.group_interval
    return out


def merged(timelines: list[Timeline]) -> list[Step]:
    return sorted(
        (s for tl in timelines for s in tl.steps), key=lambda s: (s.at, s.what != "silence")
    )


# A notification: (seconds after the start, on the half-second grid; timeline; group
# labels as sorted (name, value) pairs; the firing alert ids it carries, sorted).
Notification = tuple[float, int, tuple[tuple[str, str], ...], tuple[str, ...]]


def group_of(
    tl: Timeline, labels: dict[str, str], group_by: tuple[str, ...] | None = None
) -> tuple[tuple[str, str], ...]:
    """The group of ``labels`` on the timeline's first route (or a route grouping by
    ``group_by``)."""
    names = tl.group_by if group_by is None else group_by
    return tuple(sorted((k, labels[k]) for k in names if k in labels))


def groups_of(tl: Timeline, labels: dict[str, str]) -> list[tuple[tuple[str, str], ...]]:
    """The groups of ``labels``, one per route of the timeline (t213: two with ``also``;
    their group labels are told apart by their names)."""
    return [group_of(tl, labels, g) for g in (tl.group_by, *([tl.also] if tl.also else []))]


# -- Alertmanager ------------------------------------------------------------------------


class Sink:
    """The webhook receiver: every notification's arrival time, group labels and
    firing alert ids."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, dict[str, str], list[str]]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ids = [a["labels"]["alert_id"] for a in body["alerts"] if a["status"] == "firing"]
                got.append((time.time(), body["groupLabels"], sorted(ids)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        class Server(ThreadingHTTPServer):
            # Many groups flush at one instant: socketserver's backlog of 5 dropped
            # connections, which Alertmanager's client made again after TCP's 1 s
            # retransmission, its notification log's time then a second late (the
            # next repeat skipped).
            request_queue_size = 256

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def _api(port: int, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _am_matcher(text: str) -> dict[str, Any]:
    name, value = text.split("=", 1)
    regex = name.endswith("~") or value.startswith("~")
    return {"name": name.rstrip("~"), "value": value.lstrip("~").strip('"'), "isRegex": regex}


def drive_alertmanager(
    timelines: list[Timeline], port: int, sink: Sink, end: int, scale: float
) -> list[Notification]:
    """Play ``timelines`` on the Alertmanager listening on ``port`` (configured by
    ``routing_docs`` with the same ``scale``), in real time from now, each of the
    timelines' seconds ``scale`` real ones (room for a loaded machine: a flush a little
    late, a webhook call slow), and read its notifications from ``sink`` until ``end``
    timeline seconds after the start. Their times are the flushes they came from, in
    timeline seconds: the last flush of their group (``flush_times``) at or before their
    arrival; one arriving after ``end`` is left out (a loaded machine's sleep can
    overshoot ``end``, and citybrain is played up to it)."""
    steps = merged(timelines)
    by_alert = {a: tl for tl in timelines for a in tl.alerts}
    started: dict[str, float] = {}
    silences: dict[str, str] = {}
    t0 = time.time() + 0.5
    for at in sorted({s.at for s in steps}):
        while time.time() < t0 + at * scale:
            time.sleep(0.005)
        now = time.time()
        posted = []
        for s in (s for s in steps if s.at == at):
            if s.what == "fire":
                started[s.alert] = now
                labels = by_alert[s.alert].alerts[s.alert]
                posted.append({"labels": labels, "startsAt": _iso(now)})
            elif s.what == "resolve":
                labels = by_alert[s.alert].alerts[s.alert]
                posted.append(
                    {"labels": labels, "startsAt": _iso(started[s.alert]), "endsAt": _iso(now)}
                )
            elif s.what == "silence":
                body = {
                    "matchers": [_am_matcher(m) for m in s.matchers],
                    "startsAt": _iso(now),
                    "endsAt": _iso(t0 + s.ends * scale),
                    "createdBy": "t196",
                    "comment": "timeline",
                }
                silences[s.silence] = _api(port, "POST", "/silences", body)["silenceID"]
            else:
                _api(port, "DELETE", f"/silence/{silences[s.silence]}")
        if posted:
            _api(port, "POST", "/alerts", posted)
        late = time.time() - (t0 + at * scale)
        assert late < 0.25 * scale, f"too slow: the step at {at} posted {late:.2f}s late"
    while time.time() < t0 + end * scale:
        time.sleep(0.05)
    out: list[Notification] = []
    for got_at, group_labels, ids in list(sink.got):
        tl = timelines[int(group_labels[TL].removeprefix("tl"))]
        group = tuple(sorted(group_labels.items()))
        # A notification arrives a little after its flush (timers do not fire early).
        arrived = (got_at - t0) / scale
        if arrived > end:
            continue
        ticks = [t for t in flush_times(tl, group, end) if t <= arrived + 0.02]
        flushed = ticks[-1] if ticks else math.floor(arrived - 0.25) + 0.5
        out.append((flushed, tl.n, group, tuple(ids)))
    return sorted(out)


# -- citybrain ---------------------------------------------------------------------------


class _Event:
    """What the stages read of a faust event: at the next offset of its partition."""

    offsets: ClassVar[dict[int, int]] = {}

    def __init__(self, key: bytes, value: dict[str, Any]) -> None:
        self.key, self.value = key, orjson.dumps(value)
        partition = key_partition(key, 2)
        offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
        self.message = SimpleNamespace(
            topic="t.routed",
            partition=partition,
            offset=offset,
            key=key,
            value=self.value,
            timestamp=None,
            timestamp_type=0,
            headers=[],
        )


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)  # strftime, gmtime, ...


def drive_citybrain(
    timelines: list[Timeline], tmp_path: Path, monkeypatch: Any, end: int, tick: float = 0.25
) -> list[Notification]:
    """Play ``timelines`` on citybrain's alerts stage and response stage in one process
    (no broker: the routed messages go straight from one to the other), the clock moved
    ``tick`` seconds at a time, the deadline check and the mute re-check run at each,
    as the worker's timers run them. Its notifications, each with the alerts of its run
    firing and not muted then (what Alertmanager's notification would carry)."""
    _, routing_text = routing_docs(timelines, 0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_text)
    settings = Settings(
        run_dir_override=tmp_path,
        topic_prefix="t",
        routing_file=routing,
        grid_file=FIXTURES / "grid.yaml",
    )
    app = faust.App("t196-timelines", store="memory://", datadir=str(tmp_path / "app"))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    firing: dict[bytes, dict[str, str]] = {}
    silences: dict[bytes, dict[str, Any]] = {}
    monkeypatch.setattr(ctx, "firing", firing)
    monkeypatch.setattr(ctx, "silences", silences)
    # A clock of 2027: an alert's ended_at (Step.ended) must be from 1990 on.
    clock = _Clock(1_800_000_000.0)
    t0 = clock.now
    monkeypatch.setattr("streams.response.time", clock)
    monkeypatch.setattr("streams.alerting.time", clock)
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    routed: list[tuple[str, dict[str, Any]]] = []
    sent: list[dict[str, Any]] = []

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        routed.extend(items)

    async def queue_all(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        routed.extend(items)  # the mute check's freed alerts (t208), delivered at once
        return []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(value for _, value in items if isinstance(value, dict))
        return []

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(ctx, "send_all", send_all)
    monkeypatch.setattr(ctx, "queue_all", queue_all)
    monkeypatch.setattr(ctx, "queue", queue)
    monkeypatch.setattr(ctx, "audit", nothing)
    monkeypatch.setattr(ctx, "audit_all", nothing)
    alerting = Alerting(ctx)
    monkeypatch.setattr(alerting.muted, "_send", nothing)
    monkeypatch.setattr(
        alerting.muted,
        "send_changelog",
        lambda *a, **k: SimpleNamespace(message=SimpleNamespace(partition=0)),
    )
    monkeypatch.setattr(
        app.consumer,
        "assignment",
        lambda: {TP(alerting.topic_name, p) for p in range(settings.partitions)},
    )
    ctx.groups._send = nothing  # type: ignore[method-assign]

    async def forget(keys: list[bytes]) -> None:
        for k in keys:
            ctx.groups.data.pop(k, None)

    monkeypatch.setattr(ctx.groups, "delete_many", forget)
    response = Response(ctx)
    response._update_lag = nothing  # type: ignore[method-assign]
    by_alert = {a: tl for tl in timelines for a in tl.alerts}
    steps = merged(timelines)
    out: list[Notification] = []

    async def deliver() -> None:
        while routed:
            key, doc = routed.pop(0)
            await response.on_routed(_Event(key.encode(), doc))  # type: ignore[arg-type]

    async def alert_message(alert_id: str, status: str, ended: bool = False) -> None:
        labels = by_alert[alert_id].alerts[alert_id]
        doc = {
            "alert_id": alert_id,
            "status": status,
            "kind": "water_level",
            "grid_cell": "c-bridge",
            "severity": labels["severity"],
            "labels": labels,
        }
        if ended:  # a resolution as Prometheus sends one: firing, ended now
            doc["ended_at"] = _iso(clock.now)
        await alerting.on_alert(SimpleNamespace(value=orjson.dumps(doc)))  # type: ignore[arg-type]
        await deliver()

    def record(since: int) -> None:
        router = ctx.config.router
        stored = list(ctx.stored_silences())
        book = ctx.silence_book.read(stored, clock.now, ctx.silences_version(), report=False)[0]
        for cmd in sent[since:]:
            if cmd.get("action") != "notify":
                continue
            group = next(
                g
                for g in ctx.groups.data.values()
                if g.get("run") and g["run"]["run_id"] == cmd["run_id"]
            )
            ids = []
            for alert_id in group["run"]["alerts"]:
                labels = firing.get(alert_id.encode())
                if labels is None:
                    continue
                others = [v for k, v in firing.items() if k != alert_id.encode()]
                if router.decide(labels, others, book, clock.now).mute is None:
                    ids.append(alert_id)
            first = group["run"]["alerts"][0]
            tl = by_alert[first]
            route = next(r for r in router.root.routes if r.id == group["route"]["id"])
            out.append(
                (
                    clock.now - t0,
                    tl.n,
                    group_of(tl, tl.alerts[first], tuple(route.group_by)),
                    tuple(sorted(ids)),
                )
            )

    async def play() -> None:
        at = 0.0
        while at <= end:
            # From before the steps: a run whose group_wait is 0 is notified as its
            # alert is routed.
            since = len(sent)
            for s in (s for s in steps if s.at == at):
                if s.what == "fire" or s.ended:
                    await alert_message(s.alert, "firing", s.ended)
                elif s.what == "resolve":
                    await alert_message(s.alert, "resolved")
                elif s.what == "silence":
                    silence = new_silence(
                        s.silence, list(s.matchers), clock.now, t0 + s.ends, "t196", "timeline"
                    )
                    silences[s.silence.encode()] = silence.to_dict()
                else:
                    silences[s.silence.encode()] = {
                        **silences[s.silence.encode()],
                        "ends_at": clock.now,
                    }
            await alerting.recheck_muted()
            await deliver()
            await response.check_deadlines()
            record(since)
            at += tick
            clock.now = t0 + at

    asyncio.run(play())
    return sorted(out)


def comparable_until(tl: Timeline) -> dict[tuple[tuple[str, str], ...], float]:
    """Each group of ``tl`` -> the time until which its notifications are compared:
    the first alert firing into the group after a flush found every alert of it
    resolved. Alertmanager 0.25 deletes such a group only at its next 30 s cleanup
    (``dispatch.go``, ``Dispatcher.run``: every empty group at each tick of a 30 s
    ticker; later versions at that flush), so whether the alert joins the old group's
    flushes or starts a fresh one with its own group_wait races that ticker; citybrain
    follows the later versions (docs/playbooks.md)."""
    fires: dict[tuple[tuple[str, str], ...], list[Step]] = {}
    for s in tl.steps:
        if s.what in ("fire", "resolve"):
            for group in groups_of(tl, tl.alerts[s.alert]):
                fires.setdefault(group, []).append(s)
    until = {}
    for group, steps in fires.items():
        made = steps[0].at
        firing: set[str] = set()
        emptied = False
        until[group] = float("inf")
        tick = made + tl.group_wait
        for s in steps:
            while tick < s.at:  # the flushes before this step
                emptied = emptied or not firing
                tick += tl.group_interval
            if s.what == "fire":
                if emptied:
                    until[group] = s.at
                    break
                firing.add(s.alert)
            else:
                firing.discard(s.alert)
    return until


def by_timeline(notes: list[Notification]) -> dict[int, list[Notification]]:
    out: dict[int, list[Notification]] = {}
    for n in notes:
        out.setdefault(n[1], []).append(n)
    return out


def describe(tl: Timeline) -> Iterator[str]:
    yield (
        f"{tl.origin or 'timeline'} (tl{tl.n}): group_by {list(tl.group_by)}, group_wait {tl.group_wait}s, "
        f"group_interval {tl.group_interval}s, repeat_interval {tl.repeat_interval}s, "
        f"rules {list(tl.rules)}" + (f", and a second route by {list(tl.also)}" if tl.also else "")
    )
    for a, labels in tl.alerts.items():
        yield f"  {a}: {labels['district']} {labels['severity']}"
    for s in tl.steps:
        if s.what in ("fire", "resolve"):
            spelt = " (to citybrain: firing, ended_at now)" if s.ended else ""
            yield f"  {s.at:>3}s {s.what} {s.alert}{spelt}"
        elif s.what == "silence":
            yield f"  {s.at:>3}s silence {s.silence} {list(s.matchers)} until {s.ends}s"
        else:
            yield f"  {s.at:>3}s expire {s.silence}"
