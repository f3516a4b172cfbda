"""Pure anomaly detectors: learn and score one observation at a time, or a batch at once.

Nothing here touches Kafka, metrics, files or clocks; the stream processors in
``streams/`` own all I/O and keep each sensor's detector state in a faust table.
"""

from collections.abc import Callable

from detectors.base import Detector
from detectors.change import EwmaCusum
from detectors.discord import SubsequenceDiscord
from detectors.ensemble import Ensemble
from detectors.errors import DetectorError, DetectorInputError, DetectorParameterError
from detectors.flatline import StuckSensor
from detectors.isolation import WindowIsolationForest
from detectors.likelihood import AnomalyLikelihood
from detectors.patterns import UnfamiliarPattern
from detectors.robust_zscore import RobustZScore
from detectors.seasonal import DAY, SeasonalBaseline
from detectors.tail import DEFAULT_THRESHOLD, TailBank, TailDetector, TailSlot
from detectors.thresholds import ScoreThreshold
from detectors.transforms import DayOverDay, Differenced, MovingAverage
from detectors.windowed_gaussian import WindowedGaussian


def _ensemble_member(window: int = 500) -> RobustZScore:
    # No spread floor: the ensemble's gate compares each member with its own record, so
    # a member that overreacts on a flat series only raises its own bar. No floor in
    # units either (absolute_floor=1e-9 until t93: a series at 1e-9 scored otherwise).
    return RobustZScore(window=window, min_samples=60)


def city_ensemble() -> Ensemble:
    """The default detector: one series seen as its value, its change, and its short
    moving average against a 500-reading and a 5,000-reading baseline; the anomaly
    likelihood of the value's score; stuck and silent sensors; its change from a day
    before; how unfamiliar its recent pattern is. All reported through the ensemble's
    novelty gate, each member with its bar (docs/benchmarks.md has how each was chosen
    on NAB)."""
    # (member, its bar): the raw value and its first difference swing close to their
    # records most often, and a flat run only matters well beyond the longest recent one.
    members = [
        (_ensemble_member(), 1.1),
        (Differenced(_ensemble_member()), 1.1),
        (MovingAverage(_ensemble_member(), size=6), 1.0),
        (MovingAverage(_ensemble_member(window=5000), size=6), 1.0),
        (AnomalyLikelihood(_ensemble_member(), history=4000), 1.0),
        (StuckSensor(), 1.5),
        # A day's change is judged against more of them than the other views' 500.
        (DayOverDay(_ensemble_member(window=2000)), 1.0),
        # A stretch whose shape matches no pattern category learned so far (ARTime's idea).
        (UnfamiliarPattern(), 1.0),
    ]
    # A larger odds scale puts high scores in the logarithmic part of the surprise, so a
    # member at a high record needs a larger relative jump to count as news; the best
    # threshold then carries better from one set of files to another (docs/benchmarks.md).
    # A record beaten while the member scores under 0.2 (a robust z under 0.9 for the
    # z-score views) is a wobble after a calm stretch, not news (docs/benchmarks.md).
    return Ensemble(
        [m for m, _ in members],
        bars=[bar for _, bar in members],
        odds_scale=12.0,
        min_member_score=0.2,
    )


# The detectors a configuration can name (`citybrain detect --detector NAME`); the first
# is the default of `citybrain detect` and of the stream worker (issue 13): calibrated
# tail probabilities, one threshold for both (DEFAULT_THRESHOLD, docs/detectors.md).
DETECTORS: dict[str, Callable[[], Detector]] = {
    "tail": TailDetector,
    "ensemble": city_ensemble,
    "robust_zscore": RobustZScore,
    "likelihood": AnomalyLikelihood,
    "ewma_cusum": EwmaCusum,
    "seasonal": SeasonalBaseline,
    "stuck": StuckSensor,
    "isolation_forest": WindowIsolationForest,
    "discord": SubsequenceDiscord,
    "pattern": UnfamiliarPattern,
    "windowed_gaussian": WindowedGaussian,
}
DEFAULT_DETECTOR = next(iter(DETECTORS))
# Detectors documented at a threshold of their own, their scores being on another scale
# than the tail probabilities (robust_zscore's, the old stream default, is 0.6:
# docs/detectors.md); every other runs at DEFAULT_THRESHOLD.
OWN_THRESHOLDS: dict[str, float] = {"robust_zscore": 0.6}


def default_threshold(name: str) -> float:
    """The alert threshold, a score in (0, 1], the stream runs detector ``name`` at
    when CITYBRAIN_SCORE_THRESHOLD is not set."""
    return OWN_THRESHOLDS.get(name, DEFAULT_THRESHOLD)


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
