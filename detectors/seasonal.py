"""Seasonal baseline: compare a reading with the same time of day (or of week) on the
previous few cycles, and score how unusual that difference is.

Rush hour is not an anomaly; rush-hour traffic at 3 a.m. is. The time of day comes
from each observation's timestamp, so gaps and irregular sampling do not shift the
phase. The residual against the per-slot median of the last ``depth`` cycles is scored
by an inner ``RobustZScore``; a slot without ``depth`` past cycles scores 0, but a far
glitch (``detectors.base.GuardedDetector``: a 1e308 sentinel) scores 1 from the first
reading on and is not learned.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.base import (
    BoolArray,
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    check_time,
    check_value,
    check_values,
    require_int,
    require_number,
)
from detectors.errors import DetectorInputError
from detectors.robust_zscore import RobustZScore

DAY = 86_400.0


class SeasonalBaseline(GuardedDetector):
    """``period`` seconds split into ``slots`` equal slots (288 five-minute slots a day by
    default; ``period=7 * DAY`` with ``slots=2016`` models the day of week too)."""

    def __init__(
        self,
        period: float = DAY,
        slots: int = 288,
        depth: int = 3,
        residuals: RobustZScore | None = None,
    ) -> None:
        require_number("period", period, above=0)
        require_int("slots", slots, 1)
        require_int("depth", depth, 1)
        self.period = period
        self.slots = slots
        self.depth = depth
        self.residuals = residuals if residuals is not None else RobustZScore(window=500)
        self.history_: dict[int, deque[float]] = {}
        # A far glitch (1e308) scores 1 from the first reading on (a slot's profile
        # takes ``depth`` days to form: until then it scored 0) and is not learned.
        self.guard_ = GlitchGuard()

    def _slot(self, t: float | None) -> int:
        if t is None:
            raise DetectorInputError("SeasonalBaseline needs each observation's time t")
        return int((t % self.period) // (self.period / self.slots))

    def _residual(self, x: float, slot: int) -> float | None:
        past = self.history_.get(slot)
        if past is None or len(past) < self.depth:
            return None
        return x - float(np.median(np.fromiter(past, dtype=np.float64)))

    # A bad value, then a missing time, is refused before anything is judged or admitted.
    def score_one(self, x: float, t: float | None = None) -> float:
        check_value(x)
        self._slot(check_time(t))
        return super().score_one(x, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        check_value(x)
        self._slot(check_time(t))
        super().learn_one(x, t)

    def far_one(self, x: float, t: float | None = None) -> bool:
        check_value(x)
        self._slot(check_time(t))
        return super().far_one(x, t)

    def _score_value(self, value: float, t: float | None) -> float:
        slot = self._slot(t)
        residual = self._residual(value, slot)
        return 0.0 if residual is None else self.residuals.score_one(residual, t)

    def _learn_value(self, value: float, t: float | None) -> None:
        slot = self._slot(t)
        residual = self._residual(value, slot)
        if residual is not None:
            self.residuals.learn_one(residual, t)
        self.history_.setdefault(slot, deque(maxlen=self.depth)).append(value)

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        check_values(xs)
        if ts is None:
            raise DetectorInputError("SeasonalBaseline needs each observation's time t")
        return super().score_far_many(xs, ts)

    def _score_admitted(self, arr: FloatArray, times: FloatArray | None) -> FloatArray:
        if times is None:
            raise DetectorInputError("SeasonalBaseline needs each observation's time t")
        # Residuals depend only on earlier cycles, so collect them first, then score them
        # in one vectorised call to the inner detector.
        rows: list[int] = []
        residuals: list[float] = []
        for i, (x, t) in enumerate(zip(arr.tolist(), times.tolist(), strict=True)):
            slot = self._slot(t)
            residual = self._residual(x, slot)
            if residual is not None:
                rows.append(i)
                residuals.append(residual)
            self.history_.setdefault(slot, deque(maxlen=self.depth)).append(x)
        out = np.zeros(arr.size)
        if rows:
            out[rows] = self.residuals.score_many(residuals, times[rows])
        return out

    def get_params(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "slots": self.slots,
            "depth": self.depth,
            "residuals": self.residuals.clone(),
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "residuals": self.residuals.get_state(),
            "history": {str(k): list(v) for k, v in self.history_.items()},
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.residuals.set_state(state["residuals"])
        self.history_ = {
            int(k): deque((float(x) for x in v), maxlen=self.depth)
            for k, v in state["history"].items()
        }
        self.guard_.set_state(state.get("guard"))
