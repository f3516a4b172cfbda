"""Subsequence discords (as in the matrix profile, stumpy's ``stumpi``): how far the last
``length`` readings are from their nearest match among the earlier ones.

A shape never seen before -- a pump cycle that stalls half-way, a traffic wave in the wrong
order -- can have every single value ordinary. Its distance to the nearest earlier
subsequence (non-overlapping, among the last ``history`` readings) is large against the
distances seen so far: ``r = distance / median(last scale_window distances)`` and the
score is ``r / (r + half_score)``. Distances are raw Euclidean (not z-normalised: on NAB
a z-normalised discord scored 6-7, raw 46, docs/benchmarks.md), computed the same way on
both paths, so batch and one-at-a-time scores agree.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.base import (
    TINY_SPREAD,
    BoolArray,
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    require_int,
    require_number,
)

_BLOCK = 64  # rows per distance block in the batch path (rows x history x length floats)


class SubsequenceDiscord(GuardedDetector):
    """Scores 0 until ``min_distances`` nearest-match distances have been seen, but a far
    glitch (``detectors.base.GuardedDetector``: a 1e308 sentinel) 1 from the first reading
    on; a far glitch is not learned (no subsequence holds it)."""

    def __init__(
        self,
        length: int = 16,
        history: int = 2000,
        scale_window: int = 500,
        min_distances: int = 30,
        half_score: float = 3.0,
    ) -> None:
        self.length = length
        self.history = history
        self.scale_window = scale_window
        self.min_distances = min_distances
        self.half_score = half_score
        require_int("length", length, 2)
        require_int("history", history, 2 * length)
        require_int("scale_window", scale_window, 1)
        require_int("min_distances", min_distances, 1, scale_window)
        require_number("half_score", half_score, above=0)
        self.values_: deque[float] = deque(maxlen=history + length)
        self.distances_: deque[float] = deque(maxlen=scale_window)
        # (value, its distance) from score_one, so learn_one of the same reading does not
        # search the history a second time.
        self._pending: tuple[float, float] | None = None
        self.guard_ = GlitchGuard()

    # -- the distance, one way for both paths -----------------------------------------
    def _nearest(self, window: FloatArray, start: int, ends: np.ndarray[Any, Any]) -> FloatArray:
        """Per row, the distance from the ``length`` readings ending at place ``ends[r]``
        to the nearest earlier subsequence that ends at least ``length`` places before and
        starts within the ``history + length`` places before it; ``window`` holds the
        readings from place ``start`` on, the rows' own readings included. NaN where no
        candidate exists."""
        length = self.length
        subs = np.lib.stride_tricks.sliding_window_view(window, length)
        rows = np.asarray(ends, dtype=np.int64)
        out = np.full(rows.size, np.nan)
        if subs.shape[0] == 0 or rows.size == 0:
            return out
        current = subs[rows - start - length + 1]
        diff = current[:, None, :] - subs[None, :, :]
        dist = np.sqrt(np.sum(diff * diff, axis=2))
        first = start + np.arange(subs.shape[0])  # each candidate's first place
        valid = (first[None, :] + length - 1 <= rows[:, None] - length) & (
            first[None, :] >= rows[:, None] - (self.history + length)
        )
        best = np.where(valid, dist, np.inf).min(axis=1)
        found = np.isfinite(best)
        out[found] = best[found]
        return out

    def _score(self, distance: float, scale_of: Sequence[float]) -> float:
        if np.isnan(distance) or len(scale_of) < self.min_distances:
            return 0.0
        # Floored only where no distance is left (exact repeats): 1e-12 until t93, so a
        # series at 1e-9 found its steps 0.77 where one at 1 found them 1.0.
        scale = max(float(np.median(np.asarray(scale_of, dtype=np.float64))), TINY_SPREAD)
        r = distance / scale
        return r / (r + self.half_score)

    # -- one at a time ---------------------------------------------------------------
    def _distance_one(self, value: float) -> float:
        if self._pending is not None and self._pending[0] == value:
            return self._pending[1]
        if len(self.values_) < self.length - 1:
            distance = float("nan")
        else:
            window = np.append(np.fromiter(self.values_, dtype=np.float64), value)
            distance = float(self._nearest(window, 0, np.array([window.size - 1]))[0])
        self._pending = (value, distance)
        return distance

    def _score_value(self, value: float, t: float | None) -> float:
        return self._score(self._distance_one(value), self.distances_)

    def _learn_value(self, value: float, t: float | None) -> None:
        distance = self._distance_one(value)
        self._pending = None
        if not np.isnan(distance):
            self.distances_.append(distance)
        self.values_.append(value)

    # -- vectorised ------------------------------------------------------------------
    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        self._pending = None
        return super().score_far_many(xs, ts)

    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        self._pending = None
        past = np.fromiter(self.values_, dtype=np.float64)
        joined = np.concatenate([past, arr])
        h = past.size
        distances = np.full(arr.size, np.nan)
        for begin in range(0, arr.size, _BLOCK):
            stop = min(arr.size, begin + _BLOCK)
            # Rows whose own subsequence is complete (it starts at place 0 or later).
            first = max(begin, self.length - 1 - h)
            if first >= stop:
                continue
            lo = max(0, h + first - (self.history + self.length))
            ends = h + np.arange(first, stop)
            distances[first:stop] = self._nearest(joined[lo : h + stop], lo, ends)
        # Each row's scale: the median of the last scale_window distances before it.
        known = np.concatenate([np.fromiter(self.distances_, dtype=np.float64), distances])
        present = ~np.isnan(known)
        seen = np.cumsum(present) - present  # distances before each entry
        series = pd.Series(known[present])
        medians = series.rolling(self.scale_window, min_periods=1).median().to_numpy()
        before = np.concatenate([[np.nan], medians[:-1]])
        scale_at = np.full(known.size, np.nan)
        scale_at[present] = before
        new_seen, new_scale = seen[len(self.distances_) :], scale_at[len(self.distances_) :]
        with np.errstate(invalid="ignore"):
            r = distances / np.maximum(new_scale, TINY_SPREAD)
            scores = r / (r + self.half_score)
        ok = ~np.isnan(distances) & (np.minimum(new_seen, self.scale_window) >= self.min_distances)
        scores = np.where(ok, scores, 0.0)
        self.distances_.extend(distances[~np.isnan(distances)].tolist())
        self.values_.extend(arr.tolist())
        return np.asarray(scores, dtype=np.float64)

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "history": self.history,
            "scale_window": self.scale_window,
            "min_distances": self.min_distances,
            "half_score": self.half_score,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values_),
            "distances": list(self.distances_),
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.values_ = deque((float(v) for v in state["values"]), maxlen=self.history + self.length)
        self.distances_ = deque((float(v) for v in state["distances"]), maxlen=self.scale_window)
        self._pending = None
        self.guard_.set_state(state.get("guard"))
