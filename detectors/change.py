"""EWMA and CUSUM change detection: a sustained shift of the level, found before any
single reading looks extreme.

Each observation is standardised against an exponentially weighted mean and variance of
the past; a two-sided CUSUM accumulates the standardised excess over ``drift`` and
restarts after it crosses ``limit`` (so the next change is caught too). A far glitch
(``detectors.base.far_glitch``: a 1e308 sentinel) is scored but not learned. The score is the
larger of the instantaneous |z| and the CUSUM statistic (in units of ``limit``), mapped to
[0, 1) as ``g / (g + 1)``: 0.5 when the statistic reaches the limit. Affine-invariant:
the scores of ``a * x + b`` are those of ``x`` for any ``a > 0`` and ``b`` but for rounding.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.base import (
    FAR_GLITCH_SCORE,
    FOLLOW,
    FarRun,
    StepwiseDetector,
    check_time,
    check_value,
    far_glitch,
    far_run_after,
    require_int,
    require_number,
    resolution,
)


class EwmaCusum(StepwiseDetector):
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
        require_number("alpha", alpha, above=0, below=1)
        for name in ("drift", "limit", "z_limit"):
            require_number(name, getattr(self, name), above=0)
        require_int("min_samples", min_samples, 2)
        self.n_ = 0
        self.mean_ = 0.0
        self.var_ = 0.0
        self.high_ = 0.0
        self.low_ = 0.0
        self.run_: FarRun | None = None  # far readings in a row (base.far_run_after)

    def _step(self, x: float, t: float | None) -> tuple[float, tuple[Any, ...]]:
        n, mean, var, high, low = self.n_, self.mean_, self.var_, self.high_, self.low_
        score = 0.0
        if n == 0:
            if far_glitch(x, math.nan, math.nan):
                # A sentinel first: an anomaly all the same, and no level.
                return FAR_GLITCH_SCORE, (n, mean, var, high, low, None)
            mean = x
        else:
            far = far_glitch(x, mean, math.sqrt(var))
            run = far_run_after(self.run_, x) if far else None
            if run is not None and run[2] >= FOLLOW:
                # A level FOLLOW far readings in a row hold is followed (t78: scored ~1
                # for good): the statistics restart at it, as at a first reading.
                return FAR_GLITCH_SCORE, (1, x, 0.0, 0.0, 0.0, None)
            if n < self.min_samples and far:
                # In warm-up too a sentinel is an anomaly (it scored 0), and not learned.
                return FAR_GLITCH_SCORE, (n, mean, var, high, low, run)
            if n >= self.min_samples:
                # A variance of zero (a constant past) would make z infinite; the floor is
                # the rounding of the level, in the series' own units (1e-12 until t93:
                # at a level of 1e-9 a step of the whole level scored 0.002).
                z = (x - mean) / max(math.sqrt(var), resolution(mean))
                high = max(0.0, high + z - self.drift)
                low = max(0.0, low - z - self.drift)
                g = max(high / self.limit, low / self.limit, abs(z) / self.z_limit)
                score = g / (g + 1.0)
                if max(high, low) > self.limit:
                    high = low = 0.0  # alarm raised: start watching for the next change
            if far:
                # Scored as far glitches are (1: g / (g + 1) rounds below it for a z near
                # 1e12), not learned: the variance would take tens of thousands of
                # readings to forget it, and every real change meanwhile looks small.
                # Nor does it move the CUSUM sums (it reset them: an alarm).
                return FAR_GLITCH_SCORE, (n, mean, var, self.high_, self.low_, run)
            # Exponentially weighted mean and variance; early on the weight is 1/(n+1),
            # a plain running average, so the first readings do not fake a tiny variance.
            a = max(self.alpha, 1.0 / (n + 1))
            delta = x - mean
            mean += a * delta
            var = (1.0 - a) * (var + a * delta * delta)
        return score, (n + 1, mean, var, high, low, None)

    def far_one(self, x: float, t: float | None = None) -> bool:
        value = check_value(x)
        check_time(t)
        if self.n_ == 0:
            return far_glitch(value, math.nan, math.nan)
        return far_glitch(value, self.mean_, math.sqrt(self.var_))

    def _apply(self, state: tuple[Any, ...]) -> None:
        self.n_, self.mean_, self.var_, self.high_, self.low_, self.run_ = state

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
            "run": None if self.run_ is None else list(self.run_),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._apply(
            (
                int(state["n"]),
                float(state["mean"]),
                float(state["var"]),
                float(state["high"]),
                float(state["low"]),
                _run_of(state.get("run")),
            )
        )


def _run_of(run: Any) -> FarRun | None:
    """A state's far run (``get_state``'s list; None, or absent before t78)."""
    return None if run is None else (float(run[0]), float(run[1]), int(run[2]))
