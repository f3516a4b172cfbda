"""Stuck and silent sensors: a reading that repeats for longer than this sensor has ever
repeated, or that arrives after a longer gap than usual.

A frozen water-level gauge reports a perfectly calm river through a flood; a dead
traffic loop simply goes quiet. Neither looks extreme, so value-based detectors miss
both. The stuck score compares the current run of (near-)equal readings with the longest
run seen before; the silence score compares the gap since the previous reading (when
times are given) with the typical interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import (
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    require_int,
    require_number,
)

# The longest gap between two readings a detector measures, in seconds (about 2.6e120:
# no silence comes near it): any finite times may be given, and a gap beyond a double's
# range would leave an interval of inf in the state.
LONGEST_GAP = 2.0**400


class StuckSensor(GuardedDetector):
    """Scores ``1 - reference / observed`` once a run or a gap beats its reference.

    The run reference is the longest run seen so far (at least ``min_run``); the gap
    reference is ``gap_factor`` times an exponentially weighted typical interval.
    """

    def __init__(
        self,
        tolerance: float = 0.0,
        min_run: int = 12,
        gap_factor: float = 3.0,
        interval_alpha: float = 0.05,
    ) -> None:
        require_number("tolerance", tolerance, at_least=0)
        require_int("min_run", min_run, 2)
        require_number("gap_factor", gap_factor, above=1)
        require_number("interval_alpha", interval_alpha, above=0, below=1)
        self.tolerance = tolerance
        self.min_run = min_run
        self.gap_factor = gap_factor
        self.interval_alpha = interval_alpha
        self.previous_: float | None = None
        self.run_ = 0
        self.longest_ = 0
        self.last_time_: float | None = None
        self.interval_: float | None = None
        self.guard_ = GlitchGuard()

    def _step(self, x: float, t: float | None) -> tuple[float, tuple[Any, ...]]:
        previous, run, longest = self.previous_, self.run_, self.longest_
        last_time, interval = self.last_time_, self.interval_
        if previous is not None and abs(x - previous) <= self.tolerance:
            run += 1
        else:
            longest = max(longest, run)
            run = 1
        reference = max(longest, self.min_run)
        score = 1.0 - reference / run if run > reference else 0.0
        if t is not None:
            if last_time is not None:
                # (At most LONGEST_GAP: from -DBL_MAX to DBL_MAX seconds the gap was inf,
                # the interval after it inf, and the state no JSON document: t212.)
                gap = min(t - last_time, LONGEST_GAP)
                if interval is not None and interval > 0:
                    expected = self.gap_factor * interval
                    if gap > expected:
                        score = max(score, 1.0 - expected / gap)
                if gap > 0:  # repeated stamps (a clock change) say nothing of the rate
                    a = self.interval_alpha
                    interval = gap if interval is None else (1 - a) * interval + a * gap
            last_time = t if last_time is None else max(last_time, t)
        return score, (x, run, longest, last_time, interval)

    def _apply(self, state: tuple[Any, ...]) -> None:
        self.previous_, self.run_, self.longest_, self.last_time_, self.interval_ = state

    # A run is a recursion: the batch path is the same step in a loop.
    def _score_value(self, value: float, t: float | None) -> float:
        return self._step(value, t)[0]

    def _learn_value(self, value: float, t: float | None) -> None:
        self._apply(self._step(value, t)[1])

    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        stamps: list[float | None] = [None] * arr.size if ts is None else ts.tolist()
        out = np.empty(arr.size)
        for i, (x, t) in enumerate(zip(arr.tolist(), stamps, strict=True)):
            out[i], state = self._step(x, t)
            self._apply(state)
        return out

    def get_params(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "min_run": self.min_run,
            "gap_factor": self.gap_factor,
            "interval_alpha": self.interval_alpha,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "previous": self.previous_,
            "run": self.run_,
            "longest": self.longest_,
            "last_time": self.last_time_,
            "interval": self.interval_,
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._apply(
            (
                state["previous"],
                int(state["run"]),
                int(state["longest"]),
                state["last_time"],
                state["interval"],
            )
        )
        self.guard_.set_state(state.get("guard"))
