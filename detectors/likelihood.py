"""Anomaly likelihood: how unusual a detector's *recent* scores are against its own
history of scores (the idea behind Numenta HTM's anomaly likelihood, written anew).

A raw score of 0.9 means little on a series that often scores 0.9 and a lot on one that
never does. This layer keeps the base detector's past scores, models them as normal
(mean and deviation over a long window), and turns the mean of the last few scores into
a tail probability, reported on a log scale so that 0.5 is already one in ~3,000 and
1.0 one in ten billion.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import Detector, FloatArray, check_value, check_values
from detectors.errors import DetectorParameterError
from detectors.robust_zscore import RobustZScore

_LOG_FLOOR = math.log(1e-10)


def _tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class AnomalyLikelihood(Detector):
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
        if not isinstance(history, int) or history < 20:
            raise DetectorParameterError(
                f"parameter history is {history!r}, expected an integer >= 20"
            )
        if not isinstance(short, int) or not 1 <= short < history:
            raise DetectorParameterError(
                f"parameter short is {short!r}, expected an integer in [1, history)"
            )
        if not isinstance(warmup, int) or not short <= warmup <= history:
            raise DetectorParameterError(
                f"parameter warmup is {warmup!r}, expected an integer in [short, history]"
            )
        if not isinstance(min_std, int | float) or not min_std > 0:
            raise DetectorParameterError(
                f"parameter min_std is {min_std!r}, expected a positive number"
            )
        self.scores_: deque[float] = deque(maxlen=history)

    def _likelihood(self, raw: float) -> float:
        n = len(self.scores_)
        if n < self.warmup:
            return 0.0
        past = np.fromiter(self.scores_, dtype=np.float64, count=n)
        mean = float(past.mean())
        std = max(float(past.std()), self.min_std)
        recent = past[n - self.short + 1 :] if self.short > 1 else past[:0]
        short_mean = (float(recent.sum()) + raw) / (recent.size + 1)
        tail = _tail((short_mean - mean) / std)
        return min(1.0, math.log(max(tail, 1e-10)) / _LOG_FLOOR)

    def score_one(self, x: float) -> float:
        value = check_value(x)
        return self._likelihood(self.base.score_one(value))

    def learn_one(self, x: float) -> None:
        value = check_value(x)
        raw = self.base.score_one(value)
        self.base.learn_one(value)
        self.scores_.append(raw)

    def score_many(self, xs: Sequence[float] | FloatArray) -> FloatArray:
        arr = check_values(xs)
        raws = self.base.score_many(arr)  # scores each before learning it, vectorised
        out = np.empty(arr.size)
        for i, raw in enumerate(raws.tolist()):
            out[i] = self._likelihood(raw)
            self.scores_.append(raw)
        return out

    def get_params(self) -> dict[str, Any]:
        return {
            "base": self.base.clone(),
            "history": self.history,
            "short": self.short,
            "warmup": self.warmup,
            "min_std": self.min_std,
        }

    def get_state(self) -> dict[str, Any]:
        packed = np.fromiter(self.scores_, dtype="<f8", count=len(self.scores_)).tobytes()
        return {"base": self.base.get_state(), "scores": base64.b64encode(packed).decode()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state["base"])
        scores = np.frombuffer(base64.b64decode(state["scores"]), dtype="<f8").tolist()
        self.scores_ = deque(scores, maxlen=self.history)
