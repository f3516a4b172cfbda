"""Pure anomaly detectors: learn and score one observation at a time, or a batch at once.

Nothing here touches Kafka, metrics, files or clocks; the stream processors in
``streams/`` own all I/O and keep each sensor's detector state in a faust table.

The registry (names, the default detector and thresholds) imports nothing heavy; a
detector class is imported on first use (``detectors.TailDetector``,
``DETECTORS["tail"]``), so a command that only reads settings does not pay for numpy,
scipy and numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from detectors.errors import (
    DetectorError,
    DetectorInputError,
    DetectorParameterError,
    DetectorStateError,
)
from detectors.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_THRESHOLD,
    DETECTORS,
    OWN_THRESHOLDS,
    default_threshold,
)

if TYPE_CHECKING:
    from detectors.base import Detector
    from detectors.change import EwmaCusum
    from detectors.city import city_ensemble
    from detectors.discord import SubsequenceDiscord
    from detectors.ensemble import Ensemble
    from detectors.flatline import StuckSensor
    from detectors.isolation import WindowIsolationForest
    from detectors.likelihood import AnomalyLikelihood
    from detectors.patterns import UnfamiliarPattern
    from detectors.robust_zscore import RobustZScore
    from detectors.seasonal import DAY, SeasonalBaseline
    from detectors.tail import TailBank, TailDetector, TailSlot
    from detectors.thresholds import ScoreThreshold
    from detectors.transforms import DayOverDay, Differenced, MovingAverage
    from detectors.windowed_gaussian import WindowedGaussian

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY: dict[str, str] = {
    "DAY": "detectors.seasonal",
    "AnomalyLikelihood": "detectors.likelihood",
    "DayOverDay": "detectors.transforms",
    "Detector": "detectors.base",
    "Differenced": "detectors.transforms",
    "Ensemble": "detectors.ensemble",
    "EwmaCusum": "detectors.change",
    "MovingAverage": "detectors.transforms",
    "RobustZScore": "detectors.robust_zscore",
    "ScoreThreshold": "detectors.thresholds",
    "SeasonalBaseline": "detectors.seasonal",
    "StuckSensor": "detectors.flatline",
    "SubsequenceDiscord": "detectors.discord",
    "TailBank": "detectors.tail",
    "TailDetector": "detectors.tail",
    "TailSlot": "detectors.tail",
    "UnfamiliarPattern": "detectors.patterns",
    "WindowIsolationForest": "detectors.isolation",
    "WindowedGaussian": "detectors.windowed_gaussian",
    "city_ensemble": "detectors.city",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DAY",
    "DEFAULT_DETECTOR",
    "DEFAULT_THRESHOLD",
    "DETECTORS",
    "OWN_THRESHOLDS",
    "AnomalyLikelihood",
    "DayOverDay",
    "Detector",
    "DetectorError",
    "DetectorInputError",
    "DetectorParameterError",
    "DetectorStateError",
    "Differenced",
    "Ensemble",
    "EwmaCusum",
    "MovingAverage",
    "RobustZScore",
    "ScoreThreshold",
    "SeasonalBaseline",
    "StuckSensor",
    "SubsequenceDiscord",
    "TailBank",
    "TailDetector",
    "TailSlot",
    "UnfamiliarPattern",
    "WindowIsolationForest",
    "WindowedGaussian",
    "city_ensemble",
    "default_threshold",
]
