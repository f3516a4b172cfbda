"""Windowed Gaussian: the textbook baseline (NAB's ``windowedGaussian``), kept to measure
every other detector against, in score and in speed.

The score is the two-sided Gaussian tail mass inside ``|z|`` for ``z`` against the mean
and standard deviation of the last ``window`` observations: ``erf(|z| / sqrt(2))``. A far
glitch (``detectors.base.far_glitch``: a 1e308 sentinel) scores 1 and stays out of the
window: in it, it would have hidden every real spike for ``window`` readings.
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
    Detector,
    FarRun,
    FloatArray,
    check_times,
    check_value,
    check_values,
    far_glitch,
    far_glitches,
    far_run_after,
    require_int,
)
from detectors.robust_zscore import _sum_lost, _wide_range

_MIN_STD = 1e-12
# Sums of float64 values carry rounding of about 1e-16 of their size: a spread below
# 1e-9 of the mean is rounding (a run of 1e308 sentinels), not a spread to divide by.
_RELATIVE_STD = 1e-9
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
            self._moments = (float(past.mean()), float(past.std()))
        return self._moments

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        if len(self.values_) < self.min_samples:
            # In warm-up a far glitch is an anomaly all the same (it scored 0).
            center, spread = self._mean_std() if self.values_ else (math.nan, math.nan)
            return FAR_GLITCH_SCORE if far_glitch(value, center, spread) else 0.0
        mean, std = self._mean_std()
        z = abs(value - mean) / max(std, _MIN_STD, _RELATIVE_STD * abs(mean))
        return math.erf(z / math.sqrt(2.0))

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
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

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        check_times(ts, arr.size)  # (unused, but refused as every detector refuses it)
        h = len(self.values_)
        if _wide_range(self.values_, arr):
            # pandas' rolling moments are running sums: one extreme reading would leave
            # them mostly rounding error, so such batches go one at a time (exact).
            return self._score_rows(arr)
        joined = pd.Series(np.concatenate([np.fromiter(self.values_, dtype=np.float64), arr]))
        rolling = joined.rolling(self.window, min_periods=1)
        values = joined.to_numpy()
        sums = rolling.sum().to_numpy()
        if (
            not np.isfinite(sums).all()
            or float(np.abs(values).max()) > _SQUARE_LIMIT
            or _sum_lost(values, sums)
        ):
            # The spread heuristic misses a run of extremes that fills a tenth of the
            # batch (twelve DBL_MAX readings then ordinary ones): the sums overflowed or
            # hold rounding, or the squares behind the variance would overflow.
            return self._score_rows(arr)
        # Index j of a rolling statistic describes the window that precedes row j + 1.
        mean = np.concatenate([[np.nan], rolling.mean().to_numpy()[:-1]])[h:]
        std = np.concatenate([[np.nan], rolling.std(ddof=0).to_numpy()[:-1]])[h:]
        if far_glitches(arr, mean, std).any():
            # A far glitch is not learned, so the windows after it are not these.
            return self._score_rows(arr)
        with np.errstate(invalid="ignore"):
            z = np.abs(arr - mean) / np.maximum(
                np.maximum(std, _MIN_STD), _RELATIVE_STD * np.abs(mean)
            )
            scores = np.asarray(erf(z / math.sqrt(2.0)), dtype=np.float64)
        scores[np.minimum(h + np.arange(arr.size), self.window) < self.min_samples] = 0.0
        self.values_.extend(arr.tolist())
        self._moments = None
        self.run_ = None  # (no row was far)
        return scores

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
