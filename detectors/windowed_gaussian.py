"""Windowed Gaussian: the textbook baseline (NAB's ``windowedGaussian``), kept to measure
every other detector against, in score and in speed.

The score is the two-sided Gaussian tail mass inside ``|z|`` for ``z`` against the mean
and standard deviation of the last ``window`` observations: ``erf(|z| / sqrt(2))``. A far
glitch (``detectors.base.far_glitch``: a 1e308 sentinel) scores 1 and stays out of the
window: in it, it would have hidden every real spike for ``window`` readings.

Affine-invariant: the scores of ``a * x + b`` are those of ``x`` for any ``a > 0`` and
``b`` but for rounding (the units a sensor reports in change nothing). The standard
deviation is floored only at the rounding of the mean (``detectors.base.resolution``);
until t93 it was floored at 1e-9 of the mean and at 1e-12, so a gauge at 1e12 with a
spread of 1 scored a 50-sigma spike 0.04, and one at 1e-9 saw nothing. The batch path
takes its rolling moments of the readings less the window's first, so a level of 1e12
leaves the sums' rounding at the spread's scale, not the level's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import erf

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
    require_int,
    resolution,
    resolutions,
)
from detectors.robust_zscore import _sum_lost, _wide_range

# Above this a value's square (inside the rolling variance) overflows float64 (1.8e308).
_SQUARE_LIMIT = 1e150


class WindowedGaussian(Detector):
    """Scores 0 until ``min_samples`` observations are in the window."""

    def __init__(self, window: int = 6400, min_samples: int = 30) -> None:
        require_int("window", window, 3)
        require_int("min_samples", min_samples, 2, window)
        self.window = window
        self.min_samples = min_samples
        self.values_: deque[float] = deque(maxlen=window)
        self._moments: tuple[float, float] | None = None  # the window's, until it changes
        self.run_: FarRun | None = None  # far readings in a row (base.far_run_after)

    def _mean_std(self) -> tuple[float, float]:
        """The window's mean and standard deviation (ddof 0); the window is not empty."""
        if self._moments is None:
            past = np.fromiter(self.values_, dtype=np.float64)
            # Less the first reading, as the batch path: a constant window's mean is then
            # exact (its rounding was a spread of a few ulps: 0.18 for an unchanged 1e-9).
            ref = float(past[0])
            self._moments = (ref + float((past - ref).mean()), float((past - ref).std()))
        return self._moments

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        check_time(t)  # (unused, but refused as every detector refuses it)
        if len(self.values_) < self.min_samples:
            # In warm-up a far glitch is an anomaly all the same (it scored 0).
            center, spread = self._mean_std() if self.values_ else (math.nan, math.nan)
            return FAR_GLITCH_SCORE if far_glitch(value, center, spread) else 0.0
        mean, std = self._mean_std()
        if far_glitch(value, mean, std):
            # Scored as far glitches are. erf saturates at 1 for one nearly everywhere,
            # but not at a level below the spread floor's TINY_SPREAD (2.4e-181): a
            # glitch of 1e-300 among subnormal readings of 1e-309 scored 0 (t179).
            return FAR_GLITCH_SCORE
        z = abs(value - mean) / max(std, resolution(mean))
        return math.erf(z / math.sqrt(2.0))

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        check_time(t)
        center, spread = self._mean_std() if self.values_ else (math.nan, math.nan)
        if far_glitch(value, center, spread):
            # A far glitch in the window would blind it to every real spike; but a level
            # FOLLOW such readings in a row hold is followed: the window restarts at it.
            self.run_ = far_run_after(self.run_, value)
            if self.run_ is None or self.run_[2] < FOLLOW:
                return
            self.values_.clear()
        self.run_ = None
        self.values_.append(value)
        self._moments = None

    def far_one(self, x: float, t: float | None = None) -> bool:
        value = check_value(x)
        check_time(t)
        center, spread = self._mean_std() if self.values_ else (math.nan, math.nan)
        return far_glitch(value, center, spread)

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        return self.score_far_many(xs, ts)[0]

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        arr = check_values(xs)
        check_times(ts, arr.size)  # (unused, but refused as every detector refuses it)
        h = len(self.values_)
        if _wide_range(self.values_, arr):
            # pandas' rolling moments are running sums: one extreme reading would leave
            # them mostly rounding error, so such batches go one at a time (exact).
            return self._score_far_rows(arr)
        values = np.concatenate([np.fromiter(self.values_, dtype=np.float64), arr])
        # Moments of the readings less a reference (the first): the same spread, and
        # sums whose rounding is the spread's, not the level's (at 1e12 the paths
        # differed by 2e-7).
        ref = float(values[0])
        rolling = pd.Series(values - ref).rolling(self.window, min_periods=1)
        sums = rolling.sum().to_numpy() + ref * np.minimum(
            np.arange(1, values.size + 1), self.window
        )
        if (
            not np.isfinite(sums).all()
            or float(np.abs(values).max()) > _SQUARE_LIMIT
            or _sum_lost(values, sums)
        ):
            # The spread heuristic misses a run of extremes that fills a tenth of the
            # batch (twelve DBL_MAX readings then ordinary ones): the sums overflowed or
            # hold rounding, or the squares behind the variance would overflow.
            return self._score_far_rows(arr)
        # Index j of a rolling statistic describes the window that precedes row j + 1.
        mean = np.concatenate([[np.nan], rolling.mean().to_numpy()[:-1] + ref])[h:]
        std = np.concatenate([[np.nan], rolling.std(ddof=0).to_numpy()[:-1]])[h:]
        if far_glitches(arr, mean, std).any():
            # A far glitch is not learned, so the windows after it are not these.
            return self._score_far_rows(arr)
        with np.errstate(invalid="ignore"):
            z = np.abs(arr - mean) / np.maximum(std, resolutions(mean))
            scores = np.asarray(erf(z / math.sqrt(2.0)), dtype=np.float64)
        scores[np.minimum(h + np.arange(arr.size), self.window) < self.min_samples] = 0.0
        self.values_.extend(arr.tolist())
        self._moments = None
        self.run_ = None  # (no row was far)
        return scores, np.zeros(arr.size, dtype=bool)

    def get_params(self) -> dict[str, Any]:
        return {"window": self.window, "min_samples": self.min_samples}

    def get_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values_),
            "run": None if self.run_ is None else list(self.run_),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.values_ = deque((float(v) for v in state["values"]), maxlen=self.window)
        self._moments = None
        run = state.get("run")  # (none before t78)
        self.run_ = None if run is None else (float(run[0]), float(run[1]), int(run[2]))
