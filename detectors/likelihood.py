"""Anomaly likelihood: how unusual a detector's *recent* scores are against its own
history of scores (the idea behind Numenta HTM's anomaly likelihood, written anew).

A raw score of 0.9 means little on a series that often scores 0.9 and a lot on one that
never does. This layer keeps the base detector's past scores, models them as normal
(mean and deviation over a long window), and turns the mean of the last few scores into
a tail probability, reported on a log scale so that 0.5 is already one in ~3,000 and
1.0 one in ten billion. A far glitch (``detectors.base.GlitchGuard``: a 1e308 sentinel)
is scored but not learned, by this layer or its base.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from detectors.base import (
    Detector,
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    pack_floats,
    require_int,
    require_number,
    unpack_floats,
)
from detectors.robust_zscore import RobustZScore

_LOG_FLOOR = math.log(1e-10)


def _log_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z, on the log scale of the module docstring."""
    if math.isnan(z):
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return min(1.0, math.log(max(tail, 1e-10)) / _LOG_FLOOR)


class AnomalyLikelihood(GuardedDetector):
    """Wraps a base detector. Until ``warmup`` base scores are seen it scores 0."""

    def __init__(
        self,
        base: Detector | None = None,
        history: int = 2000,
        short: int = 10,
        warmup: int = 300,
        min_std: float = 0.02,
    ) -> None:
        self.base = base if base is not None else RobustZScore()
        self.history = history
        self.short = short
        self.warmup = warmup
        self.min_std = min_std
        require_int("history", history, 20)
        require_int("short", short, 1, history - 1)
        require_int("warmup", warmup, short, history)
        require_number("min_std", min_std, above=0)
        self.scores_: deque[float] = deque(maxlen=history)
        self._sum = 0.0
        self._sum_sq = 0.0
        # A far glitch (1e308) is scored but not learned: its raw score in the history
        # widened the deviation, and real spikes after it scored lower for ``history``.
        self.guard_ = GlitchGuard()

    def _likelihood(self, raw: float) -> float:
        n = len(self.scores_)
        if n < self.warmup:
            return 0.0
        # Running sums keep the one-at-a-time path O(short) per row; the batch path
        # uses pandas' rolling moments, equal to within rounding.
        mean = self._sum / n
        std = max(math.sqrt(max(self._sum_sq / n - mean * mean, 0.0)), self.min_std)
        recent = list(itertools.islice(self.scores_, n - self.short + 1, n))
        short_mean = (math.fsum(recent) + raw) / (len(recent) + 1)
        return _log_tail((short_mean - mean) / std)

    def _remember(self, raw: float) -> None:
        if len(self.scores_) == self.history:
            old = self.scores_[0]
            self._sum -= old
            self._sum_sq -= old * old
        self.scores_.append(raw)
        self._sum += raw
        self._sum_sq += raw * raw

    def _score_value(self, value: float, t: float | None) -> float:
        return self._likelihood(self.base.score_one(value, t))

    def _learn_value(self, value: float, t: float | None) -> None:
        raw = self.base.score_one(value, t)
        self.base.learn_one(value, t)
        self._remember(raw)

    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        """Score and learn ``arr``, none of it a far glitch."""
        raws = self.base.score_many(arr, ts)  # scores each before learning it, vectorised
        h = len(self.scores_)
        joined = pd.Series(np.concatenate([np.fromiter(self.scores_, dtype=np.float64), raws]))
        rolling = joined.rolling(self.history, min_periods=1)
        # Index j of a rolling statistic describes the history that precedes row j + 1.
        mean = np.concatenate([[np.nan], rolling.mean().to_numpy()[:-1]])[h:]
        var = np.concatenate([[np.nan], rolling.var(ddof=0).to_numpy()[:-1]])[h:]
        short = joined.rolling(self.short, min_periods=1).mean().to_numpy()[h:]
        with np.errstate(invalid="ignore"):
            std = np.maximum(np.sqrt(np.maximum(var, 0.0)), self.min_std)
            out = np.vectorize(_log_tail, otypes=[np.float64])((short - mean) / std)
        out[h + np.arange(arr.size) < self.warmup] = 0.0
        for raw in raws.tolist():
            self._remember(raw)
        return np.asarray(out, dtype=np.float64)

    def get_params(self) -> dict[str, Any]:
        return {
            "base": self.base.clone(),
            "history": self.history,
            "short": self.short,
            "warmup": self.warmup,
            "min_std": self.min_std,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "base": self.base.get_state(),
            "scores": pack_floats(self.scores_),
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state["base"])
        self.scores_ = deque(unpack_floats(state["scores"]), maxlen=self.history)
        self._sum = math.fsum(self.scores_)
        self._sum_sq = math.fsum(v * v for v in self.scores_)
        self.guard_.set_state(state.get("guard"))
