"""Bursts of citizen reports: many reports of one category in one grid cell, against
that cell's own baseline. Pure; the incidents agent keeps the state in a faust table.

Reports are counted in a *sliding* event-time window (default 30 min), kept as ``hops``
sub-buckets (default six of 5 min): the window always ends at the newest report, so a
burst is seen whatever the clock says. (Fixed 30-minute buckets missed eight reports in
four minutes that straddled a bucket boundary: four and four, neither a burst.) The
window's count is compared with the cell and category's baseline, an exponentially
weighted mean of the count per window (folded one sub-bucket at a time, empty ones as
zero): it is a burst when the count reaches
``max(min_reports, baseline * factor + 3 * sqrt(baseline))``.

A burst opens an *episode*: one alert, whose id is derived from the cell, category and
the episode's first sub-bucket, and whose severity is fixed when it opens. Reports that
keep arriving while the window still holds at least half the opening threshold are
follow-ups of that alert (``first`` False, carrying only themselves and the episode's
severity), so the run that covers the alert covers them too and their reporters hear the
closure (playbooks.engine ``ReportsCovered``). Once the window has thinned out below that
(seen at the cell and category's next report, or, when none comes, by ``expire`` once the
worker's event time -- its newest report in any cell -- has passed it), the
episode is over: a ``resolved`` Burst ends the alert, as Alertmanager resolves an alert
whose condition cleared, and the next burst is a new alert (which joins the run if it is
still open: the run's group is the category and community).

The baseline learns only from sub-buckets that have *left* the window (trial 6: folding
each sub-bucket as it completed, scaled to a window, let a burst raise its own threshold
while it was still in the window: 6 reports in 6 minutes, an hour after a first burst,
met a threshold of 6.45 and raised no alert).

A report counted in the window but in no alert when its sub-bucket leaves the window (a
window that stayed below the threshold) is returned as ``unalerted`` by ``observe_all``:
the incidents agent counts, logs and audits it, so no valid report ends silently.

A report is counted once: a ``report_id`` already seen in its (cell, category) with an
event time within ``seen_seconds`` of this one's, either side (the last
``max_seen_reports`` ids counted or late there), is a **duplicate** (a re-sent report: a
gateway's retry, a re-export), checked first -- unless the id was seen from this very
Kafka message (partition and offset kept with the id): then it is **redelivered**, read
again after a worker restart, and skipped without being called a re-send (trial 15: a
restart made eight "duplicates" of reports no gateway had re-sent); a report older than
the window is **late**.
Neither is counted in the window, and ``dropped`` says which (the incidents agent counts
and logs them; docs/events.md). A late report's id is remembered like a counted one's, so
a re-send of it is a duplicate too (trial 7: two late copies of one report were two
incidents to the worker and ``report``, one to ``rehearse``).

A report whose id was seen there on a report with another text or channel is
**reused_id**: not a re-send (those are identical) but a producer giving two reports
one id; the incidents agent dead-letters it naming the id, rather than dropping it as a
copy.

State per (cell, category), JSON-serialisable for the faust table, O(hops +
max_held_reports + max_seen_reports): ``{"slot", "counts", "baseline", "held", "episode",
"seen", "ts", "step"}`` (``ts``: the newest report counted, epoch s; ``step``: the
sub-bucket length, seconds, the slots count in: a worker with another window length reads
the window through ``rebase``), and ``jump`` while a report more than ``CLOCK_JUMP`` after
``ts`` is held aside (``[id, channel, slot, department, ts]``) until the window's next
report or the sweep's clock says whether its time was real or odd. A new window's first
report more than ``CLOCK_JUMP`` past the city's clock (the sweep's) is held the
same way in a window of no ``slot`` yet (``{"baseline", "held", "episode", "seen",
"step", "jump"}``); a next report within a day before it, or any after it, folds it.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.events import IncidentReport

# A report more than this many seconds (a day) after its window's newest is a clock jump:
# held aside (``jump``) until the window's next report, or the city's clock, reaches its
# time (as ``streams.detection.CLOCK_JUMP`` for a sensor's readings, t185).
CLOCK_JUMP = 86_400.0


class Unchecked(enum.Enum):
    """``observe_all``'s default: the caller has not asked ``dropped`` itself."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED

# How far apart (event time) two copies of a report id may be, and how much older than
# its group's run's opening a report may be and still be offered to that run
# (streams.response): one day, the span of one incident.
SEEN_SECONDS = 86_400.0
# Burst windows one grid cell may hold at once, one per category (a city's 311 taxonomy
# has a few hundred): a report of a new category in a cell that has this many is counted
# towards no burst ("crowded"). Category is free text, so without this bound a feed
# sending a new category per report grew the table, its changelog and every sweep
# without end (t80: 100,000 categories in one cell, 100,000 windows kept for good).
MAX_CATEGORIES_PER_CELL = 1_000
# A window's held reports (until it alerts) and seen report ids (the duplicate rule):
# bounded, so its changelog entry and its burst alert's reports stay well within one
# Kafka message; a stored window with more is unreadable (streams.context, t156).
MAX_HELD_REPORTS = 200
MAX_SEEN_REPORTS = 200
# The shortest burst window (``CITYBRAIN_BURST_BUCKET_SECONDS``), and the shortest
# sub-bucket a stored window may count in (a sixth of it). A window's slot is its event
# time over the sub-bucket, a whole number: at 5e-324 s the sub-bucket was 0 and every
# report of the city a ZeroDivisionError, at 1e-300 s an OverflowError, at 1e-9 s a slot
# past 64 bits that the state could not be written with; and a stored window's step of
# 5e-324 scaled its baseline by infinity when read back (``rebase``), NaN written as
# null, the window unreadable from then on (t171).
MIN_BUCKET_SECONDS = 1.0
MIN_STEP_SECONDS = MIN_BUCKET_SECONDS / 6


def newest_report_time(state: dict[str, Any] | None, step: float) -> float | None:
    """The event time (epoch s) of the newest report counted in a window ``state``: its
    ``ts``, or for a window written before it was kept, the start of its newest
    sub-bucket (``slot * step``, never after that report); None for no window."""
    if not state:
        return None
    ts = state.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
        return float(ts)
    slot = state.get("slot")
    return float(slot * step) if type(slot) is int else None


def _jump_in(jump: list[Any] | None, step: float) -> dict[str, Any]:
    """A window's ``jump`` entry (a report held aside) with its slot in sub-buckets of
    ``step`` seconds, from its own time; none when there is no report held aside."""
    if jump is None:
        return {}
    return {"jump": [jump[0], jump[1], math.floor(float(jump[4]) / step), jump[3], jump[4]]}


def episode_alert_id(cell: str, category: str, start: float) -> str:
    """The id of the alert of a burst episode in ``cell`` and ``category`` whose window
    starts at ``start`` (epoch seconds): ``al-`` and 16 hex digits, the same on every
    worker and replay, and another for any other cell, category or start."""
    if "|" in cell or "|" in category:
        # Joined with "|", cell "c1|a" and category "b" made the id of cell "c1" and
        # category "a|b" (a category is the reporter's text): one alert for two episodes
        # (t44, a sibling of the group keys' fault). JSON after "||" keeps the ids of
        # values without "|" as they were.
        key = "||" + json.dumps([cell, category, f"{start:.0f}"])
    else:
        key = f"{cell}|{category}|{start:.0f}"
    return "al-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def report_digest(report: IncidentReport) -> str:
    """What a re-send of ``report`` keeps (its text and channel; its cell and category
    are its window's, and a re-export may stamp another time, which the day's rule
    allows) as 12 hex digits of SHA-1: the same for a gateway's retry or a re-export,
    another for a different report under the same id."""
    content = json.dumps([report.text, report.source], ensure_ascii=False)
    return hashlib.sha1(content.encode()).hexdigest()[:12]


@dataclass(slots=True)
class Burst:
    alert_id: str
    grid_cell: str
    category: str
    department: str
    count: int
    baseline: float
    bucket_start: float  # epoch s: start of the episode's first sub-bucket
    severity: str
    reports: list[tuple[str, str]] = field(default_factory=list)  # (report id, channel)
    first: bool = True  # False: a follow-up report of a bucket that already alerted
    status: str = "firing"  # "resolved": the episode is over (its window thinned out)

    def reports_doc(self) -> list[dict[str, str]]:
        """The reports as the alert document's ``reports`` list."""
        return [{"report_id": rid, "channel": ch} for rid, ch in self.reports]


@dataclass
class BurstTracker:
    bucket_seconds: float = 1800.0  # the sliding window's length
    min_reports: int = 5
    factor: float = 3.0
    alpha: float = 0.1  # weight of one window's count in the baseline
    max_idle_buckets: int = 96  # after this many empty windows the baseline is ~0 anyway
    max_held_reports: int = MAX_HELD_REPORTS  # report ids the window holds until it alerts
    hops: int = 6  # sub-buckets per window: a burst shorter than 5/6 of it is seen whole
    seen_seconds: float = SEEN_SECONDS  # how far apart (event time) two copies of an id may be
    max_seen_reports: int = MAX_SEEN_REPORTS  # per (cell, category): bounds the table state
    max_categories_per_cell: int = MAX_CATEGORIES_PER_CELL
    departments: Counter[str] = field(default_factory=Counter)

    @property
    def step(self) -> float:
        """Seconds per sub-bucket."""
        return self.bucket_seconds / self.hops

    def dropped(
        self,
        state: dict[str, Any] | None,
        report: IncidentReport,
        position: tuple[int, int] | None = None,
    ) -> str | None:
        """Why ``report`` would not be counted in its (cell, category) ``state``:
        ``redelivered`` (its report id was seen there from this very Kafka message,
        ``position`` = (partition, offset): read again after a worker restart, not
        re-sent), ``duplicate`` (its report id was seen there from another message, the
        same report), ``reused_id`` (its id was seen there on a report with another text
        or channel: a producer reusing ids; the caller dead-letters it), ``late``
        (older than the window), else None."""
        if not state or ("slot" not in state and state.get("jump") is None):
            return None
        slot = math.floor(report.ts / self.step)
        # Seen with an event time within ``seen_seconds`` of this report's, either side:
        # one rule whatever the order (a late copy of a late report, an id re-sent
        # after a quiet spell of more than a day is a new report). Checked before
        # lateness, so a re-sent late report is a duplicate, not late twice.
        day = math.ceil(self.seen_seconds / self.step)
        copies = [
            s
            for s in state.get("seen", ())
            if s[0] == report.report_id and abs(int(s[1]) - slot) <= day
        ]
        if copies:
            # Entries written before positions were kept have two fields: a duplicate.
            if position is not None and any(
                len(s) > 2 and s[2] is not None and list(s[2]) == list(position) for s in copies
            ):
                return "redelivered"
            # A re-send is the same report: one with another text or channel under an id
            # seen here is a producer reusing ids, and is not dropped as a copy.
            digests = [s[3] for s in copies if len(s) > 3]
            if digests and report_digest(report) not in digests:
                return "reused_id"
            return "duplicate"
        if "slot" in state and slot - max(slot, int(state["slot"])) + self.hops - 1 < 0:
            return "late"
        return None

    @property
    def forget_seconds(self) -> float:
        """Event-time seconds after its newest report when a quiet window is forgotten:
        past both the duplicate horizon (``seen_seconds``) and ``max_idle_buckets``
        windows, after which its baseline is ~0 (what a new window starts with)."""
        return max(self.seen_seconds, self.max_idle_buckets * self.bucket_seconds)

    def forgettable(self, state: dict[str, Any] | None, slot: int) -> bool:
        """Whether the window ``state`` can be dropped at event-time sub-bucket ``slot``
        (``math.floor(ts / step)``) with nothing lost: no open episode, no held report
        (``expire`` first takes out those that left the window), and its newest report
        more than ``forget_seconds`` behind, so no id of it can be a duplicate any more
        and its baseline has decayed to what a new window has (``newest_report_time``)."""
        if (
            not state
            or state.get("episode") is not None
            or state.get("held")
            or state.get("jump") is not None
        ):
            return False
        newest = newest_report_time(state, self.step)
        if newest is None:
            return False
        return slot * self.step - newest > self.forget_seconds

    def observe(
        self, state: dict[str, Any] | None, report: IncidentReport, department: str
    ) -> tuple[dict[str, Any], Burst | None]:
        """``observe_all`` reduced to the firing Burst (an alert or a follow-up), if any."""
        state, bursts, _ = self.observe_all(state, report, department)
        firing = [b for b in bursts if b.status == "firing"]
        return state, firing[-1] if firing else None

    def observe_all(
        self,
        state: dict[str, Any] | None,
        report: IncidentReport,
        department: str,
        reason: str | Unchecked | None = UNCHECKED,
        position: tuple[int, int] | None = None,
        clock: float | None = None,
    ) -> tuple[dict[str, Any], list[Burst], list[tuple[str, str]]]:
        """Fold one report into its (cell, category) state.

        Returns the new state (the old one is not kept); the Bursts, in order: a
        ``resolved`` one when this report finds the open episode's window thinned out,
        then a firing one when it tips over or follows an open episode; and the reports
        (id, channel) that left the window in no alert. A report ``dropped`` names
        changes nothing in the window: a duplicate changes nothing at all, a late one only
        has its id remembered (so a re-send of it is a duplicate). ``reason``: what
        ``dropped`` said of this report and state, if the caller asked it already (the
        incidents agent does, to count and log it): not asked twice. ``position``: the
        report's Kafka message (partition, offset), remembered with its id so a read
        after a restart is told from a re-send. ``clock``: the city's clock (epoch s,
        the newest report counted in any window: the burst sweep's), None when there is
        none yet; a new window's first report more than ``CLOCK_JUMP`` past it is held
        aside as a clock jump in a window of no slot yet, until the window's next report
        or the clock says what it was (with no clock, nothing to judge it by: opened)."""
        if isinstance(reason, Unchecked):
            reason = None if state is None else self.dropped(state, report, position)
        slot = math.floor(report.ts / self.step)
        if state is not None and reason in ("duplicate", "redelivered", "reused_id"):
            return state, [], []
        if state is not None and reason == "late":
            # Not counted, but remembered: a re-send of it is a duplicate.
            return {**state, "seen": self._seen(state, report, slot, position)}, [], []
        if state is None and clock is not None and report.ts - clock > CLOCK_JUMP:
            # A new window's first report with nothing vouching for its time: held aside
            # in a window of no slot yet (t206: one dated a year ahead opened the window
            # there, every later report of its cell and category late for good).
            empty = {"baseline": 0.0, "held": [], "episode": None, "seen": [], "step": self.step}
            jump = [report.report_id, report.source, slot, department, report.ts]
            return (
                {**empty, "seen": self._seen(empty, report, slot, position), "jump": jump},
                [],
                [],
            )
        if state is not None and state.get("jump") is not None:
            # The report held aside as a clock jump: this one says what it was.
            jump = state["jump"]
            first = "slot" not in state  # a new window's first report (no time before it)
            state = {k: v for k, v in state.items() if k != "jump"}
            if report.ts >= jump[4] or (first and jump[4] - report.ts <= CLOCK_JUMP):
                # At or after it (a quiet spell), or for a window's first report within a
                # day before it (reports come a little out of order): a real time, folded
                # first (this report may then be late in its window, as any).
                # At or after it: a real time (a quiet spell), folded first.
                state, out, unalerted = self._fold_jump(state, jump, report)
                if first:
                    reason = self.dropped(state, report, position)
                    if reason == "late":
                        seen = self._seen(state, report, slot, position)
                        return {**state, "seen": seen}, out, unalerted
                state, more, left = self._fold(state, report, department, position)
                return state, out + more, unalerted + left
            # Before it: that report's time was odd (a gateway's clock, a year typed
            # wrong); in no alert, said as such, and the window goes on without it.
            state, out, unalerted = self.observe_all(state, report, department, None, position)
            return state, out, [(str(jump[0]), str(jump[1])), *unalerted]
        # (Its newest report's own time: a window written before it was kept, read by
        # its slot in this worker's sub-buckets, may be far off it.)
        newest = newest_report_time(state, self.step) if state and "ts" in state else None
        if state is not None and newest is not None and report.ts - newest > CLOCK_JUMP:
            # More than a day after the window's newest report: held aside, the window
            # not moved (one report dated a year ahead made every later report of its
            # cell and category late, for good, and its time the sweep's clock).
            return (
                {
                    **state,
                    "seen": self._seen(state, report, slot, position),
                    "jump": [report.report_id, report.source, slot, department, report.ts],
                },
                [],
                [],
            )
        return self._fold(state, report, department, position)

    def _fold(
        self,
        state: dict[str, Any] | None,
        report: IncidentReport,
        department: str,
        position: tuple[int, int] | None = None,
    ) -> tuple[dict[str, Any], list[Burst], list[tuple[str, str]]]:
        """``observe_all``'s fold of a report counted in its window (neither dropped nor
        held aside)."""
        slot = math.floor(report.ts / self.step)
        state = self._advance(state, slot)
        # The newest report counted here: a restarted worker takes its event time (the
        # burst sweep's clock) back from its windows (``newest_report_time``).
        state["ts"] = max(report.ts, newest_report_time(state, self.step) or report.ts)
        index = slot - state["slot"] + self.hops - 1  # position in the window's ring
        state["counts"][index] += 1
        state["seen"] = self._seen(state, report, slot, position)
        count = sum(state["counts"])
        baseline = state["baseline"]
        threshold = max(self.min_reports, baseline * self.factor + 3 * math.sqrt(baseline))
        first_slot = state["slot"] - self.hops + 1
        held = [h for h in state["held"] if h[2] >= first_slot]
        unalerted = [(str(h[0]), str(h[1])) for h in state["held"] if h[2] < first_slot]
        mine = [report.report_id, report.source, slot, department]
        where = (report.grid_cell, report.category)
        episode = state["episode"]
        out: list[Burst] = []
        if episode is not None and count < max(1.0, episode["threshold"] / 2):
            # The window has thinned out: that burst is over, and its alert resolves.
            out.append(self._episode_burst(episode, where, count, baseline, [], "resolved"))
            episode = None
        if episode is not None:
            # An open episode: this report follows its alert to the run.
            state["held"] = held
            state["episode"] = episode
            mine_only = [(report.report_id, report.source)]
            out.append(self._episode_burst(episode, where, count, baseline, mine_only))
            return state, out, unalerted
        if len(held) < self.max_held_reports:
            held.append(mine)
        if count < threshold:
            state["held"], state["episode"] = held, None
            return state, out, unalerted
        occupied = [i for i, n in enumerate(state["counts"]) if n]
        start = (first_slot + occupied[0]) * self.step
        tally = Counter(str(h[3]) for h in held)
        top = max(tally.items(), key=lambda kv: (kv[1], kv[0]))[0]
        alert_id = episode_alert_id(report.grid_cell, report.category, start)
        state["held"] = []  # they travel with the alert now
        severity = self._severity(count, threshold)
        state["episode"] = {
            "alert_id": alert_id,
            "start": start,
            "department": top,
            "threshold": threshold,
            "severity": severity,
        }
        out.append(
            Burst(
                alert_id,
                report.grid_cell,
                report.category,
                top,
                count,
                baseline,
                start,
                severity,
                [(str(h[0]), str(h[1])) for h in held],
            )
        )
        return state, out, unalerted

    def _fold_jump(
        self, state: dict[str, Any], jump: list[Any], report: IncidentReport
    ) -> tuple[dict[str, Any], list[Burst], list[tuple[str, str]]]:
        """Fold the report held aside as a clock jump (``jump``: ``[id, channel, slot,
        department, ts]``) into ``state`` (without its ``jump``), now that its time is
        reached: counted as when it came, its id seen already. ``report``: one of the
        window's (its cell and category)."""
        held = IncidentReport(
            float(jump[4]), str(jump[0]), report.category, "", str(jump[1]), report.grid_cell
        )
        seen = state.get("seen", [])
        state, out, unalerted = self._fold(state, held, str(jump[3]))
        state["seen"] = seen
        return state, out, unalerted

    def expire(
        self, state: dict[str, Any] | None, where: tuple[str, str], slot: int
    ) -> tuple[dict[str, Any] | None, list[Burst], list[tuple[str, str]]]:
        """What the window of one (cell, category) says once event time has reached
        sub-bucket ``slot`` (``math.floor(ts / step)``) with no report of its own: the
        ``resolved`` Burst of an episode whose window has thinned out by then (as the next
        report would have found it), and the held reports (id, channel) that have left
        the window in no alert. ``where``: (grid cell, category).

        Returns the state with those taken out (the same object when nothing changed).
        Its window, counts and baseline are left as they are, so the next report folds
        exactly as it would have: ``observe_all`` then finds nothing left to resolve or
        to call unalerted. Raises nothing for a state ``observe_all`` wrote.

        A report held aside as a clock jump whose time the city's clock has reached is
        folded first (its Bursts and reports in no alert come first)."""
        jump = state.get("jump") if state else None
        if state and jump is not None and slot >= int(jump[2]):
            cell, category = where
            probe = IncidentReport(float(jump[4]), "", category, "", "", cell)
            rest = {k: v for k, v in state.items() if k != "jump"}
            folded, first, said = self._fold_jump(rest, jump, probe)
            after, more, gone = self.expire(folded, where, slot)
            return after, first + more, said + gone
        if not state or "slot" not in state or slot <= int(state["slot"]):
            return state, [], []
        shift = min(slot - int(state["slot"]), self.hops)
        count = sum(state["counts"][shift:])  # what is still in the window at ``slot``
        first_slot = slot - self.hops + 1
        left = [h for h in state["held"] if h[2] < first_slot]
        episode = state["episode"]
        out: list[Burst] = []
        if episode is not None and count < max(1.0, episode["threshold"] / 2):
            out.append(
                self._episode_burst(episode, where, count, float(state["baseline"]), [], "resolved")
            )
            episode = None
        if not out and not left:
            return state, [], []
        held = [h for h in state["held"] if h[2] >= first_slot]
        return (
            {**state, "held": held, "episode": episode},
            out,
            [(str(h[0]), str(h[1])) for h in left],
        )

    def _seen(
        self,
        state: dict[str, Any],
        report: IncidentReport,
        slot: int,
        position: tuple[int, int] | None = None,
    ) -> list[Any]:
        """``state``'s seen ids with ``report``'s added, ``[id, slot, [partition,
        offset] or None, digest]`` (its Kafka position, ``report_digest``; entries
        written before were ``[id, slot]`` or ``[id, slot, [partition, offset]]``): the last
        ``max_seen_reports`` (the rule in ``dropped`` compares event times, so no pruning
        by time is needed and none would be safe: a late report's id is older than the
        window)."""
        seen = [list(s) for s in state.get("seen", ())]
        where = list(position) if position else None
        seen.append([report.report_id, slot, where, report_digest(report)])
        return seen[-self.max_seen_reports :]

    def _episode_burst(
        self,
        episode: dict[str, Any],
        where: tuple[str, str],
        count: int,
        baseline: float,
        reports: list[tuple[str, str]],
        status: str = "firing",
    ) -> Burst:
        """A follow-up (or the end) of an open episode: its id, department and the
        severity it opened with (one severity per alert: the alerts API, the firing table
        and ``citybrain_alerts_total`` must agree; trial 6)."""
        threshold = float(episode["threshold"])
        return Burst(
            episode["alert_id"],
            *where,
            episode["department"],
            count,
            baseline,
            episode["start"],
            str(episode.get("severity") or self._severity(math.ceil(threshold), threshold)),
            reports,
            first=False,
            status=status,
        )

    def _advance(self, state: dict[str, Any] | None, slot: int) -> dict[str, Any]:
        """The state with its window moved on to ``slot`` (if later), each sub-bucket
        that left the window folded into the baseline (and only those)."""
        if state is None or "slot" not in state:
            # New, or the fixed-bucket layout written before the sliding window: its
            # baseline is in the same unit (reports per window) and carries over.
            baseline = float(state.get("baseline", 0.0)) if state else 0.0
            return {
                "slot": slot,
                "counts": [0] * self.hops,
                "baseline": baseline,
                "held": [],
                "episode": None,
                "seen": [],
                "step": self.step,
            }
        gap = slot - int(state["slot"])
        if gap <= 0:
            return {**state, "step": self.step}
        # Per sub-bucket, the weight that makes ``hops`` of them weigh ``alpha``.
        a = 1.0 - (1.0 - self.alpha) ** (1.0 / self.hops)
        counts = list(state["counts"])
        shift = min(gap, self.hops)
        # Left the window now: the oldest ``shift`` sub-buckets (each scaled to a whole
        # window's count), then ``gap - shift`` empty ones that came and went unseen,
        # each decaying the baseline by ``1 - a``. Sub-buckets still in the window stay
        # out of the baseline, so a burst cannot raise its own threshold.
        baseline = float(state["baseline"])
        for n in counts[:shift]:
            baseline = (1 - a) * baseline + a * n * self.hops
        baseline *= (1 - a) ** min(gap - shift, self.max_idle_buckets * self.hops)
        return {
            **state,
            "slot": slot,
            "counts": counts[shift:] + [0] * shift,
            "baseline": baseline,
            "step": self.step,
        }

    def stored_step(self, state: dict[str, Any]) -> float:
        """The sub-bucket length (seconds) window ``state``'s slots count in: its
        ``step``; for a window written before the step was kept, the one its newest
        report's time ``ts`` and its ``slot`` agree with (``slot == floor(ts / step)``):
        this worker's if they do, else the whole-second window length of ``hops``
        sub-buckets that does, else ``ts`` over ``slot + 0.5`` (within one of its
        sub-buckets); this worker's when it has no ``ts`` (nothing to go by)."""
        step = state.get("step")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            # (At least MIN_STEP_SECONDS as read back: ``streams.context`` refuses less.)
            return float(step)
        ts, slot = state.get("ts"), state.get("slot")
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
            return self.step
        if type(slot) is not int or slot <= 0 or math.floor(ts / self.step) == slot:
            return self.step
        whole = round(ts / slot * self.hops)
        if whole > 0 and math.floor(ts / (whole / self.hops)) == slot:
            return whole / self.hops
        return ts / (slot + 0.5)

    def rebase(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """Window ``state`` in this tracker's sub-buckets (``step``), as read back: one
        stored by a worker with another ``CITYBRAIN_BURST_BUCKET_SECONDS`` counts its
        ``slot``, ring, held and seen reports in that worker's sub-buckets. Read as they
        were, a longer setting made every report ``late`` (its slot far below the
        stored one) until event time caught up, and a shorter one cleared the window
        and saw no re-send as a duplicate (the seen slots far behind). Each slot is
        mapped by the middle of its old sub-bucket (never past the newest report); the
        counts move into the new sub-bucket holding that middle (those before the new
        window have left it), and the baseline and an open episode's threshold, counts
        per window, are scaled by the ratio of the windows' lengths. Returns ``state``
        itself when it is in this tracker's sub-buckets already."""
        if not state or "slot" not in state:
            if state and state.get("jump") is not None and state.get("step") != self.step:
                # A new window's first report held aside: its slot in this worker's steps.
                return {**state, **_jump_in(state["jump"], self.step), "step": self.step}
            return state
        old = self.stored_step(state)
        new = self.step
        if old == new:
            return state if state.get("step") == new else {**state, "step": new}
        ts = newest_report_time(state, old)
        assert ts is not None  # (a window with a slot)

        def moved(slot: int) -> int:
            return math.floor(min((slot + 0.5) * old, ts) / new)

        last = math.floor(ts / new)
        first = last - self.hops + 1
        counts = [0] * self.hops
        oldest = int(state["slot"]) - len(state["counts"]) + 1
        for i, n in enumerate(state["counts"]):
            at = moved(oldest + i)
            if n and at >= first:
                counts[min(at, last) - first] += int(n)
        ratio = new / old
        episode = state.get("episode")
        if episode is not None:
            episode = {**episode, "threshold": float(episode["threshold"]) * ratio}
        return {
            **state,
            "slot": last,
            "counts": counts,
            "baseline": float(state["baseline"]) * ratio,
            "held": [[h[0], h[1], moved(int(h[2])), h[3]] for h in state["held"]],
            "seen": [[s[0], moved(int(s[1])), *s[2:]] for s in state.get("seen", ())],
            "episode": episode,
            "ts": ts,
            "step": new,
            **_jump_in(state.get("jump"), new),
        }

    @staticmethod
    def _severity(count: int, threshold: float) -> str:
        ratio = count / max(threshold, 1.0)
        return "critical" if ratio >= 3 else "major" if ratio >= 1.5 else "minor"
