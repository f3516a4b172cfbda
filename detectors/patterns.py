"""Unfamiliar patterns: how little the recent stretch of a series resembles any pattern
category learned so far (fuzzy adaptive resonance, the idea behind ARTime).

The series is summarised in steps of ``block`` readings, each step by its reading
furthest from a slowly moving level (so a one-reading spike survives the summary). The
last ``length`` steps form a pattern: their levels within the range of the last
``history`` steps, and their shape (the same steps scaled to their own range),
complement-coded as fuzzy ART does. A pattern's match with a category is the share of it
the category's hyperbox covers; the score is ``1 - best match``. At each step's end the
completed pattern is learned: it widens the best category it matches by at least
``vigilance``, or becomes a new one (at most ``categories``, the least recently used
replaced), so the state is bounded whatever the series: ``history`` steps and at most
``categories`` x ``4 length`` weights. Through the ensemble's gate it found windows the
other members missed on NAB (docs/benchmarks.md, step 12). A far glitch
(``detectors.base.GlitchGuard``: a 1e308 sentinel) is scored but not learned.

Both paths do the same arithmetic (the one-at-a-time path element by element in Python,
where a numpy call on 16 numbers costs more than the numbers), so batch and
one-at-a-time scores agree exactly (tests/unit/detectors/test_contract.py).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from detectors.base import (
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    pack_floats,
    require_int,
    require_number,
    unpack_floats,
)

_CHOICE_ALPHA = 0.001  # fuzzy ART's choice parameter: ties go to the smaller category
_PIECES_PER_CHUNK = 512  # steps whose patterns the batch path builds at once


def _running_extreme(values: FloatArray, level: float, prior: float | None) -> FloatArray:
    """After each of ``values``, the step's reading furthest from ``level`` so far (a later
    reading replaces it only when strictly further); ``prior`` is the step's extreme
    before ``values``, None when the step has no reading yet."""
    deviations = np.abs(values - level)
    start = -np.inf if prior is None else abs(prior - level)
    record_before = np.maximum.accumulate(np.concatenate([[start], deviations]))[:-1]
    holder = np.maximum.accumulate(np.where(deviations > record_before, np.arange(values.size), -1))
    kept = 0.0 if prior is None else prior
    return np.where(holder >= 0, values[np.maximum(holder, 0)], kept)


def _window_min_max(
    steps: FloatArray, stops: np.ndarray[Any, Any], history: int
) -> tuple[FloatArray, FloatArray]:
    """Per entry of ``stops``, the min and max of ``steps[stop - history : stop]``."""
    rolling = pd.Series(steps).rolling(history, min_periods=1)
    lows, highs = rolling.min().to_numpy(), rolling.max().to_numpy()
    return lows[stops - 1], highs[stops - 1]


class UnfamiliarPattern(GuardedDetector):
    """Scores 0 until ``min_steps`` steps have been completed."""

    def __init__(
        self,
        block: int = 8,
        length: int = 8,
        vigilance: float = 0.9,
        categories: int = 100,
        history: int = 2000,
        min_steps: int = 18,
    ) -> None:
        self.block = block
        self.length = length
        self.vigilance = vigilance
        self.categories = categories
        self.history = history
        self.min_steps = min_steps
        require_int("block", block, 1)
        require_int("length", length, 2)
        require_number("vigilance", vigilance, above=0, below=1)
        require_int("categories", categories, 1)
        require_int("history", history, length)
        require_int("min_steps", min_steps, length - 1, history)
        self.steps_: deque[float] = deque(maxlen=history)
        self.level_: float | None = None  # the level a step's readings are judged against
        self.count_ = 0  # readings in the current step
        self.total_ = 0.0
        self.extreme_ = 0.0  # the current step's reading furthest from the level
        self.weights_ = np.zeros((0, 4 * length))
        self.used_: list[int] = []  # per category, the step it last learned
        self.clock_ = 0
        # (extreme, its pattern, the pattern's matches, its score), valid until the step
        # ends, and the completed steps' last length - 1 and range, valid as long.
        self._cache: tuple[float, FloatArray, FloatArray, float] | None = None
        self._context: tuple[list[float], float, float] | None = None
        self._range: tuple[float, float] | None = None  # the steps' min and max
        # A far glitch (1e308) is scored but not learned: in the steps, it set their range
        # for ``history`` steps and every real pattern after it looked flat.
        self.guard_ = GlitchGuard()

    # -- patterns (batch; one at a time builds the same numbers), matches, learning ------
    def _active(self) -> bool:
        return len(self.steps_) >= self.min_steps

    def _patterns(
        self, base: FloatArray, lo: FloatArray, hi: FloatArray, extremes: FloatArray
    ) -> FloatArray:
        """Complement-coded patterns, one per row: the completed steps ``base`` (rows of
        ``length - 1``) followed by the step's extreme so far, scaled to the range
        ``lo``..``hi`` of the steps before (widened by the extreme) and to their own."""
        window = np.concatenate([base, extremes[:, None]], axis=1)
        low, high = np.minimum(lo, extremes), np.maximum(hi, extremes)
        span = high - low
        levels = np.where(
            span[:, None] > 0,
            (window - low[:, None]) / np.where(span > 0, span, 1.0)[:, None],
            0.0,
        )
        w_low, w_high = window.min(axis=1), window.max(axis=1)
        w_span = w_high - w_low
        shape = np.where(
            w_span[:, None] > 0,
            (window - w_low[:, None]) / np.where(w_span > 0, w_span, 1.0)[:, None],
            0.0,
        )
        features = np.concatenate([levels, shape], axis=1)
        return np.concatenate([features, 1.0 - features], axis=1)

    def _matches(self, patterns: FloatArray) -> FloatArray:
        """Per pattern (row) and category (column), the share of the pattern covered."""
        covered = np.minimum(patterns[:, None, :], self.weights_[None, :, :]).sum(axis=2)
        return np.asarray(covered / (2 * self.length), dtype=np.float64)

    def _learn_pattern(self, pattern: FloatArray, matches: FloatArray) -> None:
        self.clock_ += 1
        resonant = np.flatnonzero(matches >= self.vigilance)
        if resonant.size:
            sizes = self.weights_[resonant].sum(axis=1)
            choice = matches[resonant] / (_CHOICE_ALPHA + sizes)
            j = int(resonant[int(np.argmax(choice))])
            self.weights_[j] = np.minimum(pattern, self.weights_[j])
            self.used_[j] = self.clock_
        elif len(self.used_) < self.categories:
            self.weights_ = np.vstack([self.weights_, pattern])
            self.used_.append(self.clock_)
        else:
            j = int(np.argmin(self.used_))
            self.weights_[j] = pattern
            self.used_[j] = self.clock_

    def _end_step(self, extreme: float) -> None:
        dropped = self.steps_[0] if len(self.steps_) == self.history else None
        self.steps_.append(extreme)
        if self._range is not None:
            # Kept in step: a min over every step at each step's end cost more than the
            # rest of the detector; recomputed only when the dropped step held the range.
            lo, hi = self._range
            held = dropped is not None and dropped in (lo, hi)
            self._range = None if held else (min(lo, extreme), max(hi, extreme))
        assert self.level_ is not None
        # The level follows the steps' means, halfway each step.
        self.level_ = 0.5 * self.level_ + 0.5 * (self.total_ / self.block)
        self.count_, self.total_, self.extreme_ = 0, 0.0, 0.0
        self._cache, self._context = None, None

    # -- one at a time ---------------------------------------------------------------
    def _extreme_with(self, value: float) -> float:
        level = value if self.level_ is None else self.level_
        if self.count_ and abs(value - level) <= abs(self.extreme_ - level):
            return self.extreme_
        return value

    def _evaluate_one(self, extreme: float) -> tuple[float, FloatArray, FloatArray, float]:
        """The pattern ending with ``extreme``, its matches and score; cached, since
        within a step they change only when the extreme does."""
        if self._cache is None or self._cache[0] != extreme:
            if self._context is None:
                if self._range is None:
                    self._range = (min(self.steps_), max(self.steps_))
                steps = self.steps_
                base = [steps[i] for i in range(-(self.length - 1), 0)]
                self._context = (base, *self._range)
            base, lo, hi = self._context
            # The same arithmetic as _patterns, element by element (IEEE operations give
            # the same doubles in Python as in numpy): a small array costs more in numpy.
            window = [*base, extreme]
            low, high = min(lo, extreme), max(hi, extreme)
            span = high - low
            levels = [(w - low) / span if span > 0 else 0.0 for w in window]
            w_low, w_high = min(window), max(window)
            w_span = w_high - w_low
            shape = [(w - w_low) / w_span if w_span > 0 else 0.0 for w in window]
            features = levels + shape
            pattern = np.array(features + [1.0 - f for f in features])
            matches = self._matches(pattern[None, :])[0]
            score = 1.0 - float(matches.max()) if matches.size else 0.0
            self._cache = (extreme, pattern, matches, score)
        return self._cache

    def _score_value(self, value: float, t: float | None) -> float:
        if not self._active():
            return 0.0
        return self._evaluate_one(self._extreme_with(value))[3]

    def _learn_value(self, value: float, t: float | None) -> None:
        extreme = self._extreme_with(value)
        if self.level_ is None:
            self.level_ = value
        self.count_ += 1
        self.total_ += value
        self.extreme_ = extreme
        if self.count_ < self.block:
            return
        if self._active():
            _, pattern, matches, _ = self._evaluate_one(extreme)
            self._learn_pattern(pattern, matches)
        self._end_step(extreme)

    # -- vectorised ------------------------------------------------------------------
    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        """Score and learn ``arr``, none of it a far glitch."""
        self._cache, self._context, self._range = None, None, None
        if self.level_ is None:
            self.level_ = float(arr[0])
        # Pieces: the rest of the current step, then whole steps, then a partial one.
        first = min(arr.size, self.block - self.count_)
        bounds = [0, *range(first, arr.size, self.block), arr.size]  # first >= 1: no repeats
        scores = np.zeros(arr.size)
        for chunk in range(0, len(bounds) - 1, _PIECES_PER_CHUNK):
            edges = bounds[chunk : chunk + _PIECES_PER_CHUNK + 1]
            scores[edges[0] : edges[-1]] = self._score_pieces(arr, edges)
        return scores

    def _score_pieces(self, arr: FloatArray, edges: list[int]) -> FloatArray:
        """Score and learn the readings from ``edges[0]`` to ``edges[-1]``, each piece
        between two edges lying within one step."""
        n_pieces = len(edges) - 1
        # Each reading's step extreme, piece by piece (the level changes only at step
        # ends, which depend on the readings alone, not on the categories).
        extremes = np.empty(edges[-1] - edges[0])
        counts_before = []
        level, count, total, extreme = self.level_, self.count_, self.total_, self.extreme_
        assert level is not None
        for p in range(n_pieces):
            values = arr[edges[p] : edges[p + 1]]
            ext = _running_extreme(values, level, extreme if count else None)
            extremes[edges[p] - edges[0] : edges[p + 1] - edges[0]] = ext
            counts_before.append(count)
            for v in values.tolist():
                total += v
            count += values.size
            extreme = float(ext[-1])
            if count == self.block:
                level = 0.5 * level + 0.5 * (total / self.block)
                count, total = 0, 0.0
        # Per piece: the completed steps before it (their range, the last length - 1).
        ends_step = [
            counts_before[p] + edges[p + 1] - edges[p] == self.block for p in range(n_pieces)
        ]
        new_steps = np.array(
            [extremes[edges[p + 1] - edges[0] - 1] for p in range(n_pieces) if ends_step[p]]
        )
        old = np.fromiter(self.steps_, dtype=np.float64)
        steps = np.concatenate([old, new_steps])
        done_before = old.size + np.concatenate([[0], np.cumsum(ends_step)[:-1]]).astype(np.int64)
        scores = np.zeros(extremes.size)
        active_from = next(
            (p for p in range(n_pieces) if min(done_before[p], self.history) >= self.min_steps),
            n_pieces,
        )
        if active_from < n_pieces:
            # Patterns only where they change: at each piece's start and where a reading
            # becomes the step's extreme (the other rows repeat the row before).
            offset = edges[active_from] - edges[0]
            starts = np.asarray(edges[active_from:], dtype=np.int64) - edges[0]
            ext = extremes[offset:]
            fresh = np.ones(ext.size, dtype=bool)
            fresh[1:] = ext[1:] != ext[:-1]
            fresh[starts[:-1] - offset] = True
            rows = np.flatnonzero(fresh) + offset
            piece_of = active_from + np.searchsorted(starts[1:], rows, side="right")
            stop = done_before[piece_of]  # steps completed before each row
            lo, hi = _window_min_max(steps, stop, self.history)
            take = stop[:, None] - (self.length - 1) + np.arange(self.length - 1)[None, :]
            patterns = self._patterns(steps[take], lo, hi, extremes[rows])
            cuts = np.searchsorted(rows, starts).tolist()
            distinct = np.zeros(rows.size)
            for p in range(active_from, n_pieces):
                i, j = cuts[p - active_from], cuts[p - active_from + 1]
                matches = self._matches(patterns[i:j])
                if matches.shape[1]:
                    distinct[i:j] = 1.0 - matches.max(axis=1)
                if ends_step[p]:
                    self._learn_pattern(patterns[j - 1], matches[-1])
            scores[offset:] = distinct[np.cumsum(fresh) - 1]
        self.steps_.extend(new_steps.tolist())
        self.level_, self.count_, self.total_ = level, count, total
        self.extreme_ = extreme if count else 0.0
        return scores

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "length": self.length,
            "vigilance": self.vigilance,
            "categories": self.categories,
            "history": self.history,
            "min_steps": self.min_steps,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "steps": pack_floats(self.steps_),
            "level": self.level_,
            "count": self.count_,
            "total": self.total_,
            "extreme": self.extreme_,
            "weights": pack_floats(self.weights_.ravel()),
            "used": list(self.used_),
            "clock": self.clock_,
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.steps_ = deque(unpack_floats(state["steps"]), maxlen=self.history)
        self.level_ = None if state["level"] is None else float(state["level"])
        self.count_ = int(state["count"])
        self.total_ = float(state["total"])
        self.extreme_ = float(state["extreme"])
        weights = np.asarray(unpack_floats(state["weights"]), dtype=np.float64)
        self.weights_ = weights.reshape(-1, 4 * self.length)
        self.used_ = [int(v) for v in state["used"]]
        self.clock_ = int(state["clock"])
        self.guard_.set_state(state.get("guard"))
        self._cache, self._context, self._range = None, None, None
