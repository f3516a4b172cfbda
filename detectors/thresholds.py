"""Deciding apart from scoring: turn a score in [0, 1] into an anomaly flag."""

from __future__ import annotations

import numpy as np

from detectors.base import FloatArray
from detectors.errors import DetectorParameterError


class ScoreThreshold:
    """Flags scores at or above ``threshold`` (like river's ``ThresholdFilter``)."""

    def __init__(self, threshold: float = 0.6) -> None:
        if not 0.0 < threshold <= 1.0:
            raise DetectorParameterError(
                f"parameter threshold is {threshold!r}, expected a number in (0, 1]"
            )
        self.threshold = threshold

    def is_anomaly(self, score: float) -> bool:
        return score >= self.threshold

    def flags(self, scores: FloatArray) -> np.ndarray:
        return np.asarray(scores) >= self.threshold
