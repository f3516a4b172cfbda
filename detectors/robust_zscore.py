"""Robust z-score over a rolling window: distance from the rolling median in MAD units.

Median and MAD (median absolute deviation) ignore the very outliers we look for, so a
flood peak or a fireworks night does not inflate its own baseline the way a mean and
standard deviation would.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from detectors.base import Detector, FloatArray, check_value, check_values
from detectors.errors import DetectorParameterError

# 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
# Rows per vectorised chunk: bounds the (rows x window) scratch matrix to a few MB.
CHUNK_ROWS = 2048


class RobustZScore(Detector):
    """Scores ``z = |x - median| / scale`` over the last ``window`` observations.

    ``scale`` is ``1.4826 * MAD`` but never below ``relative_floor * |median|`` nor
    ``absolute_floor``: a near-constant series (a dry stream bed, an empty road at night)
    would otherwise turn the smallest wobble into an infinite z. The score maps z into
    [0, 1) as ``z / (z + half_score_z)``, so ``z == half_score_z`` scores 0.5. Until
    ``min_samples`` observations are seen the detector is warming up and scores 0.
    """

    def __init__(
        self,
        window: int = 288,
        min_samples: int = 24,
        half_score_z: float = 3.5,
        relative_floor: float = 0.05,
        absolute_floor: float = 1e-6,
    ) -> None:
        self.window = window
        self.min_samples = min_samples
        self.half_score_z = half_score_z
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self._validate()
        self.values_: deque[float] = deque(maxlen=window)

    def _validate(self) -> None:
        if not isinstance(self.window, int) or self.window < 3:
            raise DetectorParameterError(
                f"parameter window is {self.window!r}, expected an integer >= 3"
            )
        if not isinstance(self.min_samples, int) or not 3 <= self.min_samples <= self.window:
            raise DetectorParameterError(
                f"parameter min_samples is {self.min_samples!r}, "
                f"expected an integer between 3 and window ({self.window})"
            )
        for name in ("half_score_z", "absolute_floor"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise DetectorParameterError(
                    f"parameter {name} is {value!r}, expected a positive number"
                )
        rf = self.relative_floor
        if not isinstance(rf, int | float) or not math.isfinite(rf) or rf < 0:
            raise DetectorParameterError(
                f"parameter relative_floor is {rf!r}, expected a number >= 0"
            )

    # -- one at a time ---------------------------------------------------------------
    def learn_one(self, x: float) -> None:
        self.values_.append(check_value(x))

    def score_one(self, x: float) -> float:
        value = check_value(x)
        if len(self.values_) < self.min_samples:
            return 0.0
        window = np.fromiter(self.values_, dtype=np.float64, count=len(self.values_))
        median = float(np.median(window))
        mad = float(np.median(np.abs(window - median)))
        return float(self._score(np.float64(value), np.float64(median), np.float64(mad)))

    # -- vectorised ------------------------------------------------------------------
    def score_many(self, xs: Sequence[float] | FloatArray) -> FloatArray:
        arr = check_values(xs)
        history = np.fromiter(self.values_, dtype=np.float64, count=len(self.values_))
        out = np.empty(arr.size, dtype=np.float64)
        for start in range(0, arr.size, CHUNK_ROWS):
            chunk = arr[start : start + CHUNK_ROWS]
            out[start : start + chunk.size] = self._score_chunk(history, chunk)
            history = np.concatenate([history, chunk])[-self.window :]
        self.values_.extend(arr.tolist())
        return out

    def _score_chunk(self, history: FloatArray, chunk: FloatArray) -> FloatArray:
        w, h, n = self.window, history.size, chunk.size
        # Row i of the view is the window that precedes chunk[i]; NaN pads a short history.
        padded = np.concatenate([np.full(w - h, np.nan), history, chunk[:-1]])
        rows = sliding_window_view(padded, w)[:n]
        counts = np.minimum(h + np.arange(n), w)
        medians = np.empty(n)
        mads = np.empty(n)
        partial = int(min(n, max(0, w - h)))
        if partial:
            # Rows still inside the warm-up are shorter than the window.
            for i in range(partial):
                # Row i's history is its last counts[i] entries (NaN padding before them).
                # Slicing beats np.nanmedian, whose small-array path goes through masked
                # arrays and dominated warm-up time.
                valid = rows[i, w - counts[i] :]
                if valid.size:
                    medians[i] = np.median(valid)
                    mads[i] = np.median(np.abs(valid - medians[i]))
                else:
                    medians[i] = mads[i] = 0.0  # no history: scored 0 below
        if partial < n:
            full = rows[partial:]
            medians[partial:] = np.median(full, axis=1)
            mads[partial:] = np.median(np.abs(full - medians[partial:, None]), axis=1)
        scores = self._score(chunk, medians, mads)
        scores[counts < self.min_samples] = 0.0
        return np.asarray(scores, dtype=np.float64)

    def _score(self, x: Any, median: Any, mad: Any) -> Any:
        scale = np.maximum(
            np.maximum(MAD_TO_SIGMA * mad, self.relative_floor * np.abs(median)),
            self.absolute_floor,
        )
        z = np.abs(x - median) / scale
        return z / (z + self.half_score_z)

    # -- parameters and state --------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "min_samples": self.min_samples,
            "half_score_z": self.half_score_z,
            "relative_floor": self.relative_floor,
            "absolute_floor": self.absolute_floor,
        }

    def get_state(self) -> dict[str, Any]:
        # Packed little-endian float64 in base64: a third the size of a JSON list of floats
        # and an order of magnitude cheaper to encode (state is written on every batch).
        packed = np.fromiter(self.values_, dtype="<f8", count=len(self.values_)).tobytes()
        return {"window": base64.b64encode(packed).decode("ascii")}

    def set_state(self, state: dict[str, Any]) -> None:
        if "window" in state:
            values = np.frombuffer(base64.b64decode(state["window"]), dtype="<f8").tolist()
        else:  # the unpacked form of earlier versions
            values = [float(v) for v in state["values"]]
        self.values_ = deque(values, maxlen=self.window)

    @property
    def n_seen(self) -> int:
        """Observations currently in the window (at most ``window``)."""
        return len(self.values_)
