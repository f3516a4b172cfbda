"""The city ensemble: every view of one series behind the ensemble's novelty gate
(``citybrain detect --detector ensemble``; docs/benchmarks.md has how each member was
chosen on NAB)."""

from detectors.ensemble import Ensemble
from detectors.flatline import StuckSensor
from detectors.likelihood import AnomalyLikelihood
from detectors.patterns import UnfamiliarPattern
from detectors.robust_zscore import RobustZScore
from detectors.transforms import DayOverDay, Differenced, MovingAverage


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
