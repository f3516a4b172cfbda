"""An ensemble that reports only *news*: a member's surprise higher than anything that
member has said in a long memory, once per incident.

Why: a control room (and NAB, which charges every false row) pays for each alarm. A
member that is noisy on a series raises its own bar, so its routine peaks stay quiet;
a member that is usually calm speaks up the moment it sees something new. Each member's
score becomes an open-ended surprise ``u = log1p(c * s / (1 - s))``; the row's novelty
is the largest ratio ``u / (highest u of that member in the last memory_rows)`` over the
members that beat their own record. A firing is followed by ``refractory`` quiet rows,
since the rows right after an onset describe the same incident -- unless a row in them
scores at least ``escalation_floor`` and ``escalation`` times the last firing: a far
stronger incident right after a weak one is news (a fireworks night a day after a small
blip). An ``escalation_floor`` of 1 or more turns that off (scores stay below 1). The score is
``1 - 1 / novelty`` in [0, 1): 0 when no member beats its record, 0.5 when one doubles it.

A member's ``bar`` (1 by default) multiplies its record: a member whose routine swings
are often close to a new record (a noisy first difference, a flat-line length) must beat
it by that factor to count. And a record beaten while the member barely speaks (its score
below ``min_member_score``) is not news: after a calm stretch any wobble beats the
member's record, yet it is still a wobble.

The long memory is kept as maxima of ``block_rows``-row blocks, so state stays small and
bounded (``memory_rows / block_rows`` numbers per member), with each block's lowest and
highest reading. A far glitch (``detectors.base.GuardedDetector``: a 1e308 sentinel)
scores 1, from the first reading on, and is not learned: no member sees it, no record,
block or refractory counts it (as a record it muted every real spike for
``memory_rows`` rows, t63; in the gate's warm-up it scored 0, and the members' views of
the readings next to it, a first difference back, a moving average holding it, still
set their records). And the first change of a series whose memory (at least a block of
rows) holds one value only is news (score 1): a sensor stuck since it started had no
member with a record to beat, so its coming alive was silent (t67).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import (
    BoolArray,
    Detector,
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    require_int,
    require_number,
)
from detectors.errors import DetectorParameterError

# Scores are clipped below 1 so the surprise stays finite.
_MAX_SCORE = 1.0 - 1e-12


class Ensemble(GuardedDetector):
    """Combines ``members`` (each scoring every observation) through a novelty gate."""

    def __init__(
        self,
        members: Sequence[Detector],
        memory_rows: int = 4000,
        block_rows: int = 100,
        refractory: int = 50,
        odds_scale: float = 3.5,
        bars: Sequence[float] | None = None,
        escalation: float = 2.0,
        escalation_floor: float = 0.25,
        min_member_score: float = 0.0,
    ) -> None:
        self.members = list(members)
        self.min_member_score = min_member_score
        self.bars = None if bars is None else list(bars)
        self.escalation = escalation
        self.escalation_floor = escalation_floor
        self.memory_rows = memory_rows
        self.block_rows = block_rows
        self.refractory = refractory
        self.odds_scale = odds_scale
        self._validate()
        m = len(self.members)
        self._bar = np.asarray(self.bars or [1.0] * m, dtype=np.float64)
        self._bar_list: list[float] = self._bar.tolist()
        self._floor = float(self._surprise(np.array([min_member_score]))[0])
        self.blocks_: deque[list[float]] = deque(maxlen=memory_rows // block_rows)
        self.current_: list[float] = [0.0] * m
        # Each block's lowest and highest reading (None: a state written while far
        # glitches were counted in blocks), as blocks_.
        self.ranges_: deque[list[float] | None] = deque(maxlen=memory_rows // block_rows)
        self.current_range_: list[float] | None = None
        self.in_block_ = 0
        self.since_fire_ = refractory + 1
        self.last_fire_score_ = 0.0
        self._pending: tuple[float, float | None, FloatArray, float] | None = None
        self._blocks_max: FloatArray | None = None
        self._blocks_range: tuple[float, float] | None = None
        self.guard_ = GlitchGuard()

    def _validate(self) -> None:
        if not self.members or not all(isinstance(d, Detector) for d in self.members):
            raise DetectorParameterError(
                f"parameter members is {self.members!r}, expected a non-empty list of Detectors"
            )
        require_int("block_rows", self.block_rows, 1)
        require_int("memory_rows", self.memory_rows, self.block_rows)
        require_int("refractory", self.refractory, 0)
        require_number("odds_scale", self.odds_scale, above=0)
        require_number("escalation", self.escalation, at_least=1)
        require_number("escalation_floor", self.escalation_floor, above=0)
        require_number("min_member_score", self.min_member_score, at_least=0, below=1)
        if self.bars is not None:
            if len(self.bars) != len(self.members):
                raise DetectorParameterError(
                    f"parameter bars is {self.bars!r}, expected one per member "
                    f"({len(self.members)})"
                )
            for bar in self.bars:
                require_number("bars", bar, at_least=1)

    def _surprise(self, scores: FloatArray) -> FloatArray:
        s = np.clip(scores, 0.0, _MAX_SCORE)
        return np.asarray(np.log1p(self.odds_scale * s / (1.0 - s)), dtype=np.float64)

    def _record(self) -> FloatArray:
        """Each member's highest surprise in memory, the current block included (not yet
        raised by its bar)."""
        if self._blocks_max is None:
            # Recomputed only when a block enters or leaves, not on every row.
            self._blocks_max = (
                np.max(np.asarray(self.blocks_), axis=0)
                if self.blocks_
                else np.zeros(len(self.members))
            )
        return np.maximum(np.asarray(self.current_, dtype=np.float64), self._blocks_max)

    def _range(self) -> tuple[float, float]:
        """The lowest and highest reading in memory (never a far glitch: none is
        learned); NaN, NaN before the first."""
        if self._blocks_range is None:
            kept = [r for r in self.ranges_ if r is not None]
            self._blocks_range = (
                (min(r[0] for r in kept), max(r[1] for r in kept)) if kept else (math.nan, math.nan)
            )
        low, high = self._blocks_range
        if self.current_range_ is not None:
            low = self.current_range_[0] if math.isnan(low) else min(low, self.current_range_[0])
            high = self.current_range_[1] if math.isnan(high) else max(high, self.current_range_[1])
        return low, high

    def _rows_in_memory(self) -> int:
        return len(self.blocks_) * self.block_rows + self.in_block_

    def _first_change(self, value: float) -> bool:
        """Whether ``value`` is the first change of a series that has held one value for
        at least a block of rows and all its memory (a sensor stuck since it started):
        news, though no member has a record to beat (each scored the run 0)."""
        low, high = self._range()
        constant = low == high and self._rows_in_memory() >= self.block_rows
        return constant and value != low

    def _first_changes(self, values: FloatArray) -> npt.NDArray[np.bool_]:
        """``_first_change`` per row of ``values`` (within one block, before ``_widen``
        takes them in): only the first row that differs from a constant memory."""
        out = np.zeros(values.size, dtype=bool)
        low, high = self._range()
        rows = self._rows_in_memory()
        # Only while the range is empty or one value: once it has a width it only widens.
        for i, value in enumerate(values.tolist()):
            if not (math.isnan(low) or low == high):
                break
            out[i] = low == high and value != low and rows + i >= self.block_rows
            low = value if math.isnan(low) else min(low, value)
            high = value if math.isnan(high) else max(high, value)
        return out

    def _widen(self, low: float, high: float | None = None) -> None:
        high = low if high is None else high
        if self.current_range_ is None:
            self.current_range_ = [low, high]
        else:
            self.current_range_ = [
                min(self.current_range_[0], low),
                max(self.current_range_[1], high),
            ]

    def _novelty(self, u: FloatArray, record: FloatArray) -> FloatArray:
        """Per row, the largest ratio u / record among members that beat their record
        (and speak at least at the floor)."""
        beats = (u > record) & (record > 0) & (u >= self._floor)
        # A subnormal record (members silent at ~1e-309) overflows the ratio to inf, as
        # the one-row path's plain floats do: novelty past any bound, score 1.
        with np.errstate(over="ignore"):
            ratio = np.where(beats, u / np.where(record > 0, record, 1.0), 0.0)
        return np.asarray(ratio.max(axis=0), dtype=np.float64)

    # -- one at a time ---------------------------------------------------------------
    def _evaluate_one(self, value: float, t: float | None) -> tuple[FloatArray, float]:
        """The members' surprises at ``value`` and its novelty; learn_one of the reading
        score_one just scored reuses them (the members' state has not changed)."""
        if self._pending is not None and self._pending[:2] == (value, t):
            return self._pending[2], self._pending[3]
        u = self._surprise(np.array([d.score_one(value, t) for d in self.members]))
        # _novelty's arithmetic in plain floats (the same doubles): for one row, numpy's
        # per-call cost is most of the ensemble's own time.
        novelty = 0.0
        for ui, ri, bar in zip(u.tolist(), self._record().tolist(), self._bar_list, strict=True):
            raised = bar * ri
            if ui > raised and raised > 0 and ui >= self._floor:
                novelty = max(novelty, ui / raised)
        if self._first_change(value):
            novelty = math.inf
        self._pending = (value, t, u, novelty)
        return u, novelty

    def _score_value(self, value: float, t: float | None) -> float:
        novelty = self._evaluate_one(value, t)[1]
        if novelty <= 1.0:
            return 0.0
        score = 1.0 - 1.0 / novelty
        muted = self.since_fire_ <= self.refractory
        return 0.0 if muted and not self._escalates(score, self.last_fire_score_) else score

    def _escalates(self, score: float, last_score: float) -> bool:
        return score >= self.escalation_floor and score > self.escalation * last_score

    def _learn_value(self, value: float, t: float | None) -> None:
        u, novelty = self._evaluate_one(value, t)
        self._pending = None
        self._widen(value)
        self._advance_one(u.tolist(), novelty)
        for d in self.members:
            d.learn_one(value, t)

    # -- vectorised ------------------------------------------------------------------
    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        self._pending = None
        return super().score_far_many(xs, ts)

    def _score_admitted(self, arr: FloatArray, times: FloatArray | None) -> FloatArray:
        self._pending = None
        u_all = self._surprise(np.vstack([d.score_many(arr, times) for d in self.members]))
        out = np.zeros(arr.size)
        start = 0
        while start < arr.size:
            # One segment per block: the record is the block maxima before it, plus a
            # running maximum within the block up to the previous row.
            stop = min(arr.size, start + self.block_rows - self.in_block_)
            u = u_all[:, start:stop]
            first = self._first_changes(arr[start:stop])
            self._widen(float(arr[start:stop].min()), float(arr[start:stop].max()))
            before = np.maximum.accumulate(np.hstack([self._record()[:, None], u[:, :-1]]), axis=1)
            novelty = self._novelty(u, self._bar[:, None] * before)
            novelty[first] = np.inf
            out[start:stop] = self._advance(u, novelty)
            start = stop
        return out

    def _advance_one(self, u: list[float], novelty: float) -> None:
        """``_advance`` for one row, in plain floats."""
        if novelty > 1.0:
            score = 1.0 - 1.0 / novelty
            if self.since_fire_ > self.refractory or self._escalates(score, self.last_fire_score_):
                self.since_fire_, self.last_fire_score_ = 0, score
        self.since_fire_ += 1
        self.current_ = [max(c, x) for c, x in zip(self.current_, u, strict=True)]
        self._end_rows(1)

    def _end_rows(self, rows: int) -> None:
        self.in_block_ += rows
        if self.in_block_ >= self.block_rows:
            self.blocks_.append(self.current_)
            self.ranges_.append(self.current_range_)
            self._blocks_max = None
            self._blocks_range = None
            self.current_ = [0.0] * len(self.members)
            self.current_range_ = None
            self.in_block_ = 0

    def _advance(self, u: FloatArray, novelty: FloatArray) -> FloatArray:
        """Fold a segment (within one block) into the record and apply the refractory
        rule; returns the segment's scores."""
        out = np.zeros(novelty.size)
        last, last_score = -self.since_fire_, self.last_fire_score_
        for i in np.flatnonzero(novelty > 1.0).tolist():
            score = 1.0 - 1.0 / float(novelty[i])
            if i - last > self.refractory or self._escalates(score, last_score):
                out[i] = score
                last, last_score = i, score
        self.since_fire_ = novelty.size - last
        self.last_fire_score_ = last_score
        self.current_ = np.maximum(np.asarray(self.current_), u.max(axis=1)).tolist()
        self._end_rows(novelty.size)
        return out

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "members": [d.clone() for d in self.members],
            "memory_rows": self.memory_rows,
            "block_rows": self.block_rows,
            "refractory": self.refractory,
            "odds_scale": self.odds_scale,
            "bars": None if self.bars is None else list(self.bars),
            "escalation": self.escalation,
            "escalation_floor": self.escalation_floor,
            "min_member_score": self.min_member_score,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "members": [d.get_state() for d in self.members],
            "blocks": [list(b) for b in self.blocks_],
            "current": list(self.current_),
            "ranges": [None if r is None else list(r) for r in self.ranges_],
            "current_range": None if self.current_range_ is None else list(self.current_range_),
            "in_block": self.in_block_,
            "since_fire": self.since_fire_,
            "last_fire_score": self.last_fire_score_,
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for d, s in zip(self.members, state["members"], strict=True):
            d.set_state(s)
        self.blocks_ = deque((list(b) for b in state["blocks"]), maxlen=self.blocks_.maxlen)
        self.current_ = [float(v) for v in state["current"]]
        # States written before the ranges: no range until readings come.
        self.ranges_ = deque(
            (None if r is None else [float(v) for v in r] for r in state.get("ranges", [])),
            maxlen=self.ranges_.maxlen,
        )
        current_range = state.get("current_range")
        self.current_range_ = None if current_range is None else [float(v) for v in current_range]
        self.in_block_ = int(state["in_block"])
        self.since_fire_ = int(state["since_fire"])
        # States written before escalation existed: no escalation until the next firing.
        self.last_fire_score_ = float(state.get("last_fire_score", 1.0))
        self._pending = None
        self._blocks_max = None
        self._blocks_range = None
        self.guard_.set_state(state.get("guard"))
