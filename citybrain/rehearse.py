"""Rehearsal: real citizen reports replayed through the real playbook engine, with
simulated field units that answer and finish after delays drawn from real service-time
distributions (datasets/service_times/). No Kafka: the pure engine and a simulated clock.

Each report becomes one run of the rehearsal playbook (one report, one case, like a 311
request). The simulation, event by event in time order:

- a new run's department asks for a unit. A department has ``units`` units with a
  ``capacity`` of incidents each (default 1: a busy unit takes no second one), on duty
  during its ``shifts`` (UTC hours ``[start, end)``). With no unit free and on duty the run
  queues (first come, first served) until one is;
- a unit asked does not answer with probability ``no_answer`` (it stays free; the run
  waits for its deadline, escalates, and the next level asks again); otherwise it
  acknowledges after a delay drawn from the ``response`` profile (SF fire calls, response
  delay per unit type) and resolves at ``created + resolve`` (NYC 311 created -> closed per
  department), or a minute after its acknowledgement if that is later;
- deadlines (the playbook's ``wait_ack`` steps, or ``ack_deadline`` for all of them) fire
  through ``PlaybookEngine.timeout``, so escalation is the engine's own.

Sampling is inverse-CDF with linear interpolation between the profile's quantiles, from a
seeded ``random.Random``: the same seed gives the same rehearsal, and two playbook
versions rehearsed with one seed see the same draws for the same report, in order.

Output: the engine's step records, ready for ``citybrain.campaign.campaign_report``.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citybrain.errors import InputError
from playbooks.engine import Command, PlaybookEngine, ReportsCovered, Run, is_terminal
from playbooks.grid import Grid
from playbooks.schema import Playbook

MIN_WORK = 60.0  # seconds from an acknowledgement to the earliest resolution


class RehearsalError(InputError):
    """A units profile or service-time profile that cannot be used; names the field."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration distribution given by quantiles ``[(q, seconds), ...]``, q from 0 to 1."""

    qs: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], where: str) -> Distribution:
        pairs = entry.get("quantiles")
        if not isinstance(pairs, list) or len(pairs) < 2:
            raise RehearsalError(f'{where}: "quantiles" is {pairs!r}, expected [[q, s], ...]')
        qs = tuple(float(p[0]) for p in pairs)
        values = tuple(float(p[1]) for p in pairs)
        if (
            qs[0] != 0.0
            or qs[-1] != 1.0
            or list(qs) != sorted(qs)
            or list(values) != sorted(values)
        ):
            raise RehearsalError(f"{where}: quantiles must rise from q=0 to q=1")
        return cls(qs, values)

    def sample(self, u: float) -> float:
        """The duration at cumulative probability ``u`` (0..1), interpolated."""
        i = min(max(bisect.bisect_right(self.qs, u) - 1, 0), len(self.qs) - 2)
        q0, q1 = self.qs[i], self.qs[i + 1]
        v0, v1 = self.values[i], self.values[i + 1]
        return v0 + (v1 - v0) * ((u - q0) / (q1 - q0) if q1 > q0 else 0.0)


def profile_distributions(doc: Mapping[str, Any], where: str) -> dict[str, Distribution]:
    """A service-time profile file (bench/service_profiles.py) -> name -> Distribution."""
    entries = doc.get("entries")
    if not isinstance(entries, dict) or "all" not in entries:
        raise RehearsalError(f'{where}: expected "entries" with an "all" entry')
    return {k: Distribution.from_entry(v, f"{where}: entry {k!r}") for k, v in entries.items()}


@dataclass(frozen=True, slots=True)
class DepartmentUnits:
    units: int
    capacity: int
    no_answer: float
    shifts: tuple[tuple[float, float], ...]
    response: Distribution
    resolve: Distribution

    def on_duty(self, t: float) -> bool:
        hour = (t % 86400.0) / 3600.0
        return any(start <= hour < end for start, end in self.shifts)

    def next_shift_start(self, t: float) -> float:
        """The next time (after ``t``) a shift starts."""
        day = t - t % 86400.0
        starts = sorted(day + s * 3600.0 + k * 86400.0 for s, _ in self.shifts for k in (0, 1))
        return next(s for s in starts if s > t)


def units_profile(
    doc: Mapping[str, Any],
    response: Mapping[str, Distribution],
    resolve: Mapping[str, Distribution],
) -> dict[str, DepartmentUnits]:
    """The ``departments`` of a units profile (YAML, see datasets/service_times/README.md)
    -> department -> DepartmentUnits; ``default`` is used for departments not listed.
    Raises ``RehearsalError`` naming the department and field."""
    departments = doc.get("departments")
    if not isinstance(departments, dict) or "default" not in departments:
        raise RehearsalError('units profile: expected "departments" with a "default" entry')
    out = {}
    for name, spec in departments.items():
        where = f"units profile: departments.{name}"
        if not isinstance(spec, dict):
            raise RehearsalError(f"{where} is {spec!r}, expected a mapping")
        unknown = set(spec) - {"units", "capacity", "no_answer", "shifts", "response", "resolve"}
        if unknown:
            raise RehearsalError(f"{where}: unknown field(s) {sorted(unknown)}")
        units, capacity = spec.get("units"), spec.get("capacity", 1)
        if not isinstance(units, int) or units < 1:
            raise RehearsalError(f"{where}.units is {units!r}, expected a whole number >= 1")
        if not isinstance(capacity, int) or capacity < 1:
            raise RehearsalError(f"{where}.capacity is {capacity!r}, expected a whole number >= 1")
        no_answer = spec.get("no_answer", 0.0)
        if not isinstance(no_answer, (int, float)) or not 0 <= no_answer < 1:
            raise RehearsalError(f"{where}.no_answer is {no_answer!r}, expected 0 <= p < 1")
        shifts = spec.get("shifts", [[0, 24]])
        try:
            pairs = tuple((float(a), float(b)) for a, b in shifts)
        except (TypeError, ValueError):
            raise RehearsalError(
                f"{where}.shifts is {shifts!r}, expected [[start, end], ...]"
            ) from None
        if not pairs or any(not 0 <= a < b <= 24 for a, b in pairs):
            raise RehearsalError(
                f"{where}.shifts is {shifts!r}, expected hours 0 <= start < end <= 24"
            )
        picks = {}
        for key, table in (("response", response), ("resolve", resolve)):
            pick = str(spec.get(key, "all"))
            if pick not in table:
                raise RehearsalError(f"{where}.{key} is {pick!r}, expected one of {sorted(table)}")
            picks[key] = table[pick]
        out[str(name)] = DepartmentUnits(
            units, capacity, float(no_answer), pairs, picks["response"], picks["resolve"]
        )
    return out


@dataclass(frozen=True, slots=True)
class Incident:
    """One report to replay: epoch seconds, id, channel, category, cell, department."""

    ts: float
    report_id: str
    source: str
    category: str
    grid_cell: str
    department: str


@dataclass(slots=True)
class _Case:
    run: Run
    incident: Incident
    draws: tuple[float, float, float]  # no-answer, response, resolve: fixed per report
    attempts: int = 0
    unit: bool = False  # holds a unit slot
    queued: bool = False


@dataclass
class Rehearsal:
    """The outcome: every step record and a few counters of the simulation itself."""

    records: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0  # runs that waited for a free unit at least once
    unanswered: int = 0  # unit requests not answered
    events: int = 0


def rehearse(
    incidents: Sequence[Incident],
    playbook: Playbook,
    grid: Grid,
    units: Mapping[str, DepartmentUnits],
    ack_deadline: float | None = None,
    seed: int = 0,
) -> Rehearsal:
    """Replay ``incidents`` (any order; sorted by time here) to the end: every run
    acknowledged and resolved, or left open with nobody to answer. Pure and
    deterministic for a seed."""
    engine = PlaybookEngine(playbook, grid, deadline_override=ack_deadline)
    rng = random.Random(seed)
    out = Rehearsal()
    busy: dict[str, int] = {}
    queues: dict[str, deque[str]] = {}
    cases: dict[str, _Case] = {}
    heap: list[tuple[float, int, str, str]] = []
    seq = 0

    def push(t: float, kind: str, run_id: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, run_id))

    def pool(case: _Case) -> str:
        name = case.incident.department
        return name if name in units else "default"

    def dept(case: _Case) -> DepartmentUnits:
        return units[pool(case)]

    def full(name: str) -> bool:
        return busy.get(name, 0) >= units[name].units * units[name].capacity

    def record(case: _Case, cmds: list[Command]) -> None:
        for cmd in cmds:
            out.records.append({"playbook": playbook.playbook, **cmd.to_dict()})
            if cmd.action == "wait_ack" and case.run.deadline_at is not None:
                push(case.run.deadline_at, "deadline", case.run.run_id)
            if cmd.action == "escalate" and not case.unit and not case.queued:
                ask(case, cmd.at)  # the next level asks again

    def ask(case: _Case, t: float) -> None:
        """Ask the department for a unit: queue without one free on duty; else it answers
        (taking the slot) or not."""
        d, name = dept(case), pool(case)
        if full(name) or not d.on_duty(t):
            if not case.queued:
                case.queued = True
                out.queued += 1
                queues.setdefault(name, deque()).append(case.run.run_id)
                if not d.on_duty(t):
                    push(d.next_shift_start(t), "shift", name)
            return
        # Each later attempt draws afresh; the first uses the report's own draw.
        u = case.draws[0] if case.attempts == 0 else rng.random()
        case.attempts += 1
        if u < d.no_answer:
            out.unanswered += 1
            return
        busy[name] = busy.get(name, 0) + 1
        case.unit = True
        push(t + d.response.sample(case.draws[1]), "ack", case.run.run_id)

    def release(name: str, t: float) -> None:
        busy[name] -= 1
        queue = queues.get(name)
        while queue and not full(name):
            waiting = cases[queue.popleft()]
            waiting.queued = False
            ask(waiting, t)
            if waiting.queued:
                break

    for inc in sorted(incidents, key=lambda i: (i.ts, i.report_id)):
        # The draws are made in report order, so versions compare report by report.
        draws = (rng.random(), rng.random(), rng.random())
        run_id = f"rh-{inc.report_id}"
        cases[run_id] = _Case(Run(run_id, "", "", "", "", ""), inc, draws)
        push(inc.ts, "report", run_id)

    while heap:
        t, _, kind, key = heapq.heappop(heap)
        out.events += 1
        if kind == "shift":
            queue = queues.get(key)
            for _ in range(len(queue or ())):
                assert queue is not None
                case = cases[queue.popleft()]
                case.queued = False
                ask(case, t)
            continue
        case = cases[key]
        if kind == "report":
            inc = case.incident
            alert = {
                "alert_id": f"report-{inc.report_id}",
                "kind": "citizen_report",
                "grid_cell": inc.grid_cell,
                "labels": {"category": inc.category, "department": inc.department},
            }
            case.run, cmds = engine.new_run(key, alert, t)
            case.run, more = engine.step(
                case.run, ReportsCovered(((inc.report_id, inc.source),), t)
            )
            ask(case, t)
            record(case, cmds + more)
        elif kind == "deadline":
            case.run, cmds = engine.timeout(case.run, t)
            record(case, cmds)
        elif kind == "ack":
            case.run, cmds = engine.acknowledge(case.run, "field unit", t)
            record(case, cmds)
            resolve_at = max(
                case.run.created_at + dept(case).resolve.sample(case.draws[2]), t + MIN_WORK
            )
            push(resolve_at, "resolve", key)
        elif kind == "resolve":
            if not is_terminal(case.run):
                case.run, cmds = engine.resolve(case.run, "field unit", "done", t)
                record(case, cmds)
            case.unit = False
            release(pool(case), t)
    return out
