"""IsolationForest over sliding windows: an unusual *shape* of the last few readings,
even when each reading on its own is within range.

scikit-learn's ``IsolationForest`` is fitted on the windows of the last ``history``
readings and refitted every ``refit_every`` observations, always on the past only.
Windows are centred and scaled with the fit data's median and MAD, so the level and the
shape both count. Scoring is batched: every window between two refits goes to the forest
in one call. The fit data is part of the state, so a restored detector rebuilds the same
forest (fixed ``random_state``) instead of storing trees.

Fit data that is one value throughout (a sensor reporting a constant) gives trees that
cannot split: every window would score the same, 0, and a jump from the constant to 1e6
would go unseen. Then no forest is built: a window equal to the constant scores 0 and any
other 1, as a point a real forest isolates at the first split. A far glitch
(``detectors.base.GlitchGuard``: a 1e308 sentinel) is scored but not learned.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from detectors.base import (
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    require_int,
)

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest


class WindowIsolationForest(GuardedDetector):
    """Scores ``max(0, 2 * (s - 0.5))`` for the forest's anomaly score ``s`` (0.5 is
    ordinary in the original paper's scale, 1 isolated at once); 0 before the first fit."""

    def __init__(
        self,
        lags: int = 8,
        history: int = 1024,
        refit_every: int = 1024,
        n_estimators: int = 50,
        random_state: int = 0,
    ) -> None:
        require_int("lags", lags, 1)
        require_int("history", history, max(16, 2 * lags))
        require_int("refit_every", refit_every, 1)
        require_int("n_estimators", n_estimators, 1)
        self.lags = lags
        self.history = history
        self.refit_every = refit_every
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.values_: deque[float] = deque(maxlen=history)
        self.n_ = 0
        self.fit_values_: list[float] = []
        # (forest, center, scale); no forest when the fit data is one constant value.
        self._forest: tuple[IsolationForest | None, float, float] | None = None
        # A far glitch (1e308) is scored but not learned: in the fit data it set the
        # trees' splits apart from every ordinary window, so real spikes scored lower.
        self.guard_ = GlitchGuard()

    # -- the forest ------------------------------------------------------------------
    def _fit(self) -> None:
        # Imported here: scikit-learn takes a second to import and most detectors never fit.
        from sklearn.ensemble import IsolationForest

        data = np.asarray(self.fit_values_)
        if (data == data[0]).all():
            self._forest = (None, float(data[0]), 1.0)
            return
        center = float(np.median(data))
        scale = float(np.median(np.abs(data - center))) * 1.4826 or float(data.std()) or 1.0
        forest = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(sliding_window_view(_standardised(data, center, scale), self.lags))
        self._forest = (forest, center, scale)

    def _scores(self, windows: FloatArray) -> FloatArray:
        if not self.fit_values_:
            return np.zeros(len(windows))
        if self._forest is None:
            self._fit()  # restored from state: rebuild the same forest
        assert self._forest is not None
        forest, center, scale = self._forest
        if forest is None:  # constant fit data: anything else is isolated at once
            return np.asarray((windows != center).any(axis=1), dtype=np.float64)
        s = -forest.score_samples(_standardised(windows, center, scale))
        return np.asarray(np.maximum(0.0, 2.0 * (s - 0.5)), dtype=np.float64)

    def _after_learning(self) -> None:
        if self.n_ % self.refit_every == 0 and len(self.values_) >= 2 * self.lags:
            self.fit_values_ = list(self.values_)
            self._fit()

    # -- one at a time ---------------------------------------------------------------
    def _score_value(self, value: float, t: float | None) -> float:
        if len(self.values_) < self.lags - 1 or not self.fit_values_:
            return 0.0
        recent = list(self.values_)[len(self.values_) - self.lags + 1 :]
        return float(self._scores(np.array([[*recent, value]]))[0])

    def _learn_value(self, value: float, t: float | None) -> None:
        self.values_.append(value)
        self.n_ += 1
        self._after_learning()

    # -- vectorised ------------------------------------------------------------------
    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        """Score and learn ``arr``, none of it a far glitch."""
        out = np.zeros(arr.size)
        start = 0
        while start < arr.size:
            # Rows up to the next refit share one forest: score them in one call.
            stop = min(arr.size, start + self.refit_every - self.n_ % self.refit_every)
            segment = arr[start:stop]
            joined = np.concatenate([np.fromiter(self.values_, dtype=np.float64), segment])
            first = len(self.values_)  # joined index of segment[0]
            if self.fit_values_:
                ready = max(0, self.lags - 1 - first)  # rows with a full window
                if ready < segment.size:
                    windows = sliding_window_view(joined, self.lags)[
                        first + ready - self.lags + 1 :
                    ]
                    out[start + ready : stop] = self._scores(windows)
            self.values_.extend(segment.tolist())
            self.n_ += segment.size
            self._after_learning()
            start = stop
        return out

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "lags": self.lags,
            "history": self.history,
            "refit_every": self.refit_every,
            "n_estimators": self.n_estimators,
            "random_state": self.random_state,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "values": list(self.values_),
            "n": self.n_,
            "fit_values": list(self.fit_values_),
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.values_ = deque((float(v) for v in state["values"]), maxlen=self.history)
        self.n_ = int(state["n"])
        self.fit_values_ = [float(v) for v in state["fit_values"]]
        self.guard_.set_state(state.get("guard"))
        self._forest = None


# scikit-learn's trees split in float32: a standardised value beyond its range (a 1e308
# sentinel over a spread of 1) would overflow to inf; isolation depends only on order, so
# clipping far beyond any split keeps every score.
_FLOAT32_SAFE = 1e30


def _standardised(values: FloatArray, center: float, scale: float) -> FloatArray:
    with np.errstate(over="ignore"):  # a subnormal spread: inf, clipped like the rest
        return np.asarray(np.clip((values - center) / scale, -_FLOAT32_SAFE, _FLOAT32_SAFE))
