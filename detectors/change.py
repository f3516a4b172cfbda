"""EWMA and CUSUM change detection: a sustained shift of the level, found before any
single reading looks extreme.

Each observation is standardised against an exponentially weighted mean and variance of
the past; a two-sided CUSUM accumulates the standardised excess over ``drift`` and
restarts after it crosses ``limit`` (so the next change is caught too). The score is the
larger of the instantaneous |z| and the CUSUM statistic (in units of ``limit``), mapped to
[0, 1) as ``g / (g + 1)``: 0.5 when the statistic reaches the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import Detector, FloatArray, check_value, check_values
from detectors.errors import DetectorParameterError

# Standardising against a variance of zero (a constant past) would make z infinite.
_MIN_VARIANCE = 1e-12


class EwmaCusum(Detector):
    """Two-sided CUSUM on EWMA-standardised observations; scores 0 for ``min_samples``."""

    def __init__(
        self,
        alpha: float = 0.01,
        drift: float = 0.5,
        limit: float = 8.0,
        z_limit: float = 6.0,
        min_samples: int = 30,
    ) -> None:
        self.alpha = alpha
        self.drift = drift
        self.limit = limit
        self.z_limit = z_limit
        self.min_samples = min_samples
        if not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise DetectorParameterError(f"parameter alpha is {alpha!r}, expected 0 < alpha < 1")
        for name in ("drift", "limit", "z_limit"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise DetectorParameterError(
                    f"parameter {name} is {value!r}, expected a positive number"
                )
        if not isinstance(min_samples, int) or min_samples < 2:
            raise DetectorParameterError(
                f"parameter min_samples is {min_samples!r}, expected an integer >= 2"
            )
        self.n_ = 0
        self.mean_ = 0.0
        self.var_ = 0.0
        self.high_ = 0.0
        self.low_ = 0.0

    def _step(self, x: float) -> tuple[float, tuple[int, float, float, float, float]]:
        """The score of ``x`` and the state after learning it (shared by both paths)."""
        n, mean, var, high, low = self.n_, self.mean_, self.var_, self.high_, self.low_
        score = 0.0
        if n == 0:
            mean = x
        else:
            if n >= self.min_samples:
                z = (x - mean) / math.sqrt(max(var, _MIN_VARIANCE))
                high = max(0.0, high + z - self.drift)
                low = max(0.0, low - z - self.drift)
                g = max(high / self.limit, low / self.limit, abs(z) / self.z_limit)
                score = g / (g + 1.0)
                if max(high, low) > self.limit:
                    high = low = 0.0  # alarm raised: start watching for the next change
            # Exponentially weighted mean and variance; early on the weight is 1/(n+1),
            # a plain running average, so the first readings do not fake a tiny variance.
            a = max(self.alpha, 1.0 / (n + 1))
            delta = x - mean
            mean += a * delta
            var = (1.0 - a) * (var + a * delta * delta)
        return score, (n + 1, mean, var, high, low)

    def score_one(self, x: float, t: float | None = None) -> float:
        return self._step(check_value(x))[0]

    def learn_one(self, x: float, t: float | None = None) -> None:
        _, (self.n_, self.mean_, self.var_, self.high_, self.low_) = self._step(check_value(x))

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        out = np.empty(arr.size)
        # The recursion is sequential by nature; a tight loop over Python floats.
        for i, x in enumerate(arr.tolist()):
            out[i], (self.n_, self.mean_, self.var_, self.high_, self.low_) = self._step(x)
        return out

    def get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "drift": self.drift,
            "limit": self.limit,
            "z_limit": self.z_limit,
            "min_samples": self.min_samples,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "n": self.n_,
            "mean": self.mean_,
            "var": self.var_,
            "high": self.high_,
            "low": self.low_,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.n_ = int(state["n"])
        self.mean_, self.var_ = float(state["mean"]), float(state["var"])
        self.high_, self.low_ = float(state["high"]), float(state["low"])
