"""Robust z-score over a rolling window: distance from the rolling median in MAD units.

Median and MAD (median absolute deviation) ignore the very outliers we look for, so a
flood peak or a fireworks night does not inflate its own baseline the way a mean and
standard deviation would.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.base import (
    FAR_GLITCH_SCORE,
    FOLLOW,
    BoolArray,
    Detector,
    FarRun,
    FloatArray,
    check_time,
    check_times,
    check_value,
    check_values,
    far_glitch,
    far_glitches,
    far_run_after,
    pack_floats,
    require_int,
    require_number,
    resolution,
    resolutions,
    unpack_floats,
)

# 1.4826 * MAD estimates the standard deviation of normally distributed data; so does
# sqrt(pi / 2) * mean absolute deviation.
MAD_TO_SIGMA = 1.4826
MEAN_DEV_TO_SIGMA = math.sqrt(math.pi / 2)
# Batches up to this size take the one-at-a-time path (same scores, lower fixed cost).
SMALL_BATCH = 32
# Running sums (ours and pandas' rolling ones) keep about 16 digits: once one value
# exceeds the others by this factor, their sum is mostly rounding error.
PRECISION_SPAN = 1e6


def _wide_range(history: Collection[float], arr: FloatArray) -> bool:
    """True when a batch's rolling sums would lose the small values to one huge value
    (an extreme reading): such batches take the exact one-at-a-time path. Huge means
    beyond PRECISION_SPAN times the typical deviation from the median (its 90th
    percentile, or a millionth of the median's size for a series that barely moves)."""
    past = np.fromiter(history, dtype=np.float64, count=len(history))
    joined = np.concatenate([past, arr])
    median = float(np.median(joined))
    deviations = np.abs(joined - median)
    typical = max(float(np.quantile(deviations, 0.9)), 1e-6 * abs(median), 1e-300)
    return float(deviations.max()) > PRECISION_SPAN * typical


def _sum_lost(values: FloatArray, sums: FloatArray) -> bool:
    """True when a running (rolling) sum over ``values`` (NaN for missing) may hold mostly
    rounding error at some row: a value larger than PRECISION_SPAN times that row's sum
    entered the accumulator at or before it. A heuristic on the batch's spread
    (``_wide_range``) misses runs of extremes that fill a tenth of the batch (the
    contract's falsifying example: a moving average of DBL_MAX readings); this check
    is on the sums themselves, so it misses none."""
    seen = np.fmax.accumulate(np.abs(values))
    with np.errstate(invalid="ignore"):
        lost = seen > PRECISION_SPAN * np.abs(sums)
    return bool(lost.any())


class RobustZScore(Detector):
    """Scores ``z = |x - median| / scale`` over the last ``window`` observations.

    The median is the window's; the spread is the median of the last ``window`` absolute
    deviations, each taken from the median in force when its observation arrived (a
    streaming MAD: exact rolling medians, so the batch path runs in O(log window) per
    row). ``scale`` is ``1.4826 * MAD`` but never below the series' **resolution**:
    the smallest nonzero deviation in the window (a quantised sensor's step: a count of
    0 or 1, a gauge read to 10 units; a series that sits on one value most of the time
    has MAD 0, and every excursion of one step was infinitely rare), nor the rounding of
    the level (``detectors.base.resolution``: four ulps of the median). Both are in the
    series' own units, so the scores of ``a * x + b`` are those of ``x`` for any
    ``a > 0`` and ``b`` (Pa or kPa, Celsius or Kelvin, a level of 1e-9 or 1e12) but for
    rounding. A constant series that moves has moved infinitely far (it scores about 1).
    Optional floors, all 0 by default and each in the reading's units or its level's,
    so each breaks that invariance: ``relative_floor * |median|`` (5 % by default until
    t93: at a level of 1e6 a 50-sigma spike of a spread of 1 scored 0, and a reading in
    Kelvin scored lower than in Celsius), ``spread_floor`` times the mean absolute
    deviation (as a sigma) and ``absolute_floor``.
    The score maps z into [0, 1) as ``z / (z + half_score_z)``, so
    ``z == half_score_z`` scores 0.5. Until ``min_samples`` observations are seen the
    detector is warming up and scores 0. A far glitch (``detectors.base.far_glitch``: a
    1e308 sentinel) is scored but not learned: its deviation would hold the
    ``spread_floor`` up for a whole window.
    """

    def __init__(
        self,
        window: int = 288,
        min_samples: int = 24,
        half_score_z: float = 3.5,
        relative_floor: float = 0.0,
        absolute_floor: float = 0.0,
        spread_floor: float = 0.0,
    ) -> None:
        self.window = window
        self.min_samples = min_samples
        self.half_score_z = half_score_z
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self.spread_floor = spread_floor
        self._validate()
        self.values_: deque[float] = deque(maxlen=window)
        self.deviations_: deque[float] = deque(maxlen=window)
        self._sorted_cache: tuple[list[float], list[float]] | None = None
        self._deviation_sum = 0.0
        self.run_: FarRun | None = None  # far readings in a row (base.far_run_after)

    def _validate(self) -> None:
        require_int("window", self.window, 3)
        require_int("min_samples", self.min_samples, 3, self.window)
        require_number("half_score_z", self.half_score_z, above=0)
        for name in ("relative_floor", "spread_floor", "absolute_floor"):
            require_number(name, getattr(self, name), at_least=0)

    # -- one at a time ---------------------------------------------------------------
    def _sorted(self) -> tuple[list[float], list[float]]:
        """Sorted copies of the window and the deviations, kept in step one observation
        at a time (bisect into a list: a memmove, far cheaper than a median per row)."""
        if self._sorted_cache is None:
            self._sorted_cache = (sorted(self.values_), sorted(self.deviations_))
            self._deviation_sum = math.fsum(self.deviations_)
        return self._sorted_cache

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        check_time(t)
        values, devs = self._sorted()
        if far_glitch(value, *(self._median_spread() if values else (math.nan, math.nan))):
            # Not learned: its deviation would hold a spread floor up for a window. But
            # a level FOLLOW such readings in a row hold is followed: the window restarts
            # at it (t78: a million-fold level scored ~1 for good).
            self.run_ = far_run_after(self.run_, value)
            if self.run_ is None or self.run_[2] < FOLLOW:
                return
            self.values_.clear()
            self.deviations_.clear()
            self._sorted_cache, self._deviation_sum = None, 0.0
            values, devs = self._sorted()
        self.run_ = None
        if values:
            if len(self.deviations_) == self.window:
                old = self.deviations_[0]
                del devs[bisect.bisect_left(devs, old)]
                self._deviation_sum -= old
                if old > PRECISION_SPAN * abs(self._deviation_sum):
                    # A huge deviation (a 1e308 sentinel) left the running sum holding only
                    # its rounding error: sum the window exactly instead.
                    self._deviation_sum = math.fsum(itertools.islice(self.deviations_, 1, None))
            deviation = abs(value - _median(values))
            self.deviations_.append(deviation)
            bisect.insort(devs, deviation)
            self._deviation_sum += deviation
        if len(self.values_) == self.window:
            del values[bisect.bisect_left(values, self.values_[0])]
        self.values_.append(value)
        bisect.insort(values, value)

    def _median_scale(self) -> tuple[float, float]:
        """The window's median and the scale a z is taken in (the window is not empty)."""
        values, devs = self._sorted()
        median = _median(values)
        mad = _median(devs) if devs else 0.0
        mean_dev = self._deviation_sum / len(devs) if devs else 0.0
        above_zero = bisect.bisect_right(devs, 0.0)
        step = devs[above_zero] if above_zero < len(devs) else 0.0
        scale = max(
            max(MAD_TO_SIGMA * mad, self.relative_floor * abs(median)),
            max(self.spread_floor * MEAN_DEV_TO_SIGMA * mean_dev, self.absolute_floor),
            max(step, resolution(median)),
        )
        return median, scale

    def _median_spread(self) -> tuple[float, float]:
        """The median and the scale a far glitch is judged by: the scale, but 0 where it
        is only the resolution floor (``detectors.base.far_glitch`` then judges by the
        level, or for a series of exact zeros by 1 in the reading's units)."""
        median, scale = self._median_scale()
        return median, (0.0 if scale <= resolution(median) else scale)

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        check_time(t)  # (unused, but refused as every detector refuses it)
        if len(self.values_) < self.min_samples:
            # In warm-up a far glitch is an anomaly all the same (it scored 0).
            center = self._median_spread() if self.values_ else (math.nan, math.nan)
            return FAR_GLITCH_SCORE if far_glitch(value, *center) else 0.0
        median, scale = self._median_scale()
        if far_glitch(value, *self._median_spread()):
            return FAR_GLITCH_SCORE  # (z / (z + h) rounds below 1 for a z near 1e12)
        z = abs(value - median) / scale
        return z / (z + self.half_score_z)

    def far_one(self, x: float, t: float | None = None) -> bool:
        value = check_value(x)
        check_time(t)
        return far_glitch(value, *(self._median_spread() if self.values_ else (math.nan, math.nan)))

    # -- vectorised ------------------------------------------------------------------
    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        return self.score_far_many(xs, ts)[0]

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        arr = check_values(xs)
        check_times(ts, arr.size)  # (unused, but refused as every detector refuses it)
        if arr.size <= SMALL_BATCH or _wide_range(self.values_, arr):
            # A stream batch often holds one or two readings of a sensor: pandas' fixed
            # cost per rolling call would dominate, the sorted window does not.
            return self._score_far_rows(arr)
        h, w = len(self.values_), self.window
        values = pd.Series(np.concatenate([np.fromiter(self.values_, dtype=np.float64), arr]))
        # Statistic at joined index j describes the window ending at j, i.e. before j + 1.
        medians = values.rolling(w, min_periods=1).median().to_numpy()
        before = np.concatenate([[np.nan], medians[:-1]])[h:]
        new_devs = np.abs(arr - before)  # NaN only for the very first observation
        old_devs = np.fromiter(self.deviations_, dtype=np.float64)
        devs = pd.Series(np.concatenate([np.full(h - old_devs.size, np.nan), old_devs, new_devs]))
        rolling = devs.rolling(w, min_periods=1)
        mads = np.concatenate([[np.nan], rolling.median().to_numpy()[:-1]])[h:]
        sums = rolling.sum().to_numpy()
        if _sum_lost(devs.to_numpy(), sums):
            # An extreme deviation passed through pandas' running sum and left it holding
            # rounding error: take the exact path, as learn_one re-sums when one leaves.
            return self._score_far_rows(arr)
        mean_devs = np.concatenate([[np.nan], rolling.mean().to_numpy()[:-1]])[h:]
        # The smallest nonzero deviation in each row's window (exact, as a minimum is).
        steps = devs.where(devs > 0).rolling(w, min_periods=1).min().to_numpy()
        steps = np.concatenate([[np.nan], steps[:-1]])[h:]
        with np.errstate(invalid="ignore"):
            scale = self._scale(
                before, np.nan_to_num(mads), np.nan_to_num(mean_devs), np.nan_to_num(steps)
            )
            # Far against the spread the series shows, not the floor of its rounding.
            spread = np.where(scale <= resolutions(before), 0.0, scale)
            if far_glitches(arr, before, spread).any():
                # A far glitch is not learned: the windows after it are not these.
                return self._score_far_rows(arr)
            z = np.abs(arr - before) / scale
            scores = z / (z + self.half_score_z)
        counts = np.minimum(h + np.arange(arr.size), w)
        scores[counts < self.min_samples] = 0.0
        self.values_.extend(arr.tolist())
        self.deviations_.extend(new_devs[~np.isnan(new_devs)].tolist())
        self._sorted_cache = None  # rebuilt if the one-at-a-time path is used next
        self.run_ = None  # (no row was far)
        return np.asarray(scores, dtype=np.float64), np.zeros(arr.size, dtype=bool)

    def _scale(self, median: Any, mad: Any, mean_dev: Any, step: Any) -> Any:
        """``_median_scale``'s scale, row by row (``step``: the smallest nonzero
        deviation, 0 for none)."""
        return np.maximum(
            np.maximum(
                np.maximum(MAD_TO_SIGMA * mad, self.relative_floor * np.abs(median)),
                np.maximum(self.spread_floor * MEAN_DEV_TO_SIGMA * mean_dev, self.absolute_floor),
            ),
            np.maximum(step, resolutions(median)),
        )

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "min_samples": self.min_samples,
            "half_score_z": self.half_score_z,
            "relative_floor": self.relative_floor,
            "absolute_floor": self.absolute_floor,
            "spread_floor": self.spread_floor,
        }

    def get_state(self) -> dict[str, Any]:
        # Packed: state is written on every batch.
        return {
            "window": pack_floats(self.values_),
            "deviations": pack_floats(self.deviations_),
            "run": None if self.run_ is None else list(self.run_),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        # Earlier versions kept the window unpacked, as "values".
        values = unpack_floats(state["window"] if "window" in state else state["values"])
        self.values_ = deque(values, maxlen=self.window)
        # Earlier versions kept no deviations: the spread re-learns within one window.
        self.deviations_ = deque(unpack_floats(state.get("deviations", "")), maxlen=self.window)
        self._sorted_cache = None
        run = state.get("run")  # (none before t78)
        self.run_ = None if run is None else (float(run[0]), float(run[1]), int(run[2]))

    @property
    def n_seen(self) -> int:
        """Observations currently in the window (at most ``window``)."""
        return len(self.values_)


def _median(ordered: list[float]) -> float:
    """np.median's result on an already sorted list (the same float, bit for bit)."""
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
