"""Pure anomaly detectors: learn and score one observation at a time, or a batch at once.

Nothing here touches Kafka, metrics, files or clocks; the stream processors in
``streams/`` own all I/O and keep each sensor's detector state in a faust table.
"""

from detectors.base import Detector
from detectors.errors import DetectorError, DetectorInputError, DetectorParameterError
from detectors.likelihood import AnomalyLikelihood
from detectors.robust_zscore import RobustZScore
from detectors.thresholds import ScoreThreshold

# The detectors a configuration can name (`citybrain bench nab --detector NAME`).
DETECTORS: dict[str, type[Detector]] = {
    "robust_zscore": RobustZScore,
    "likelihood": AnomalyLikelihood,
}

__all__ = [
    "DETECTORS",
    "AnomalyLikelihood",
    "Detector",
    "DetectorError",
    "DetectorInputError",
    "DetectorParameterError",
    "RobustZScore",
    "ScoreThreshold",
]
