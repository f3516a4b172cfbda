"""The detectors a configuration can name, their default and their thresholds, without
importing any of them.

Every ``citybrain`` command checks ``CITYBRAIN_DETECTOR`` and takes the default threshold
from here; importing the detectors themselves (numpy, scipy, numba, pandas: 0.6–0.9 s)
is left to the commands that score (the worker, ``detect``, ``bench``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.base import Detector

# The one threshold of `citybrain detect` and the stream: the threshold NAB's optimiser
# picks for the tail detector on the 34 NAB files (standard profile, 0.22; 0.2155 before
# the twenty-fourth session's far-glitch rules; to two decimals; docs/benchmarks.md), a
# reading rarer than about 1 in 60 for its sensor after the Bonferroni factor, the
# two-of-three confirmation and the novelty gate.
DEFAULT_THRESHOLD = 0.22

# name -> (module, factory): the first is the default of `citybrain detect` and of the
# stream worker (issue 13): calibrated tail probabilities, one threshold for both
# (DEFAULT_THRESHOLD, docs/detectors.md).
_FACTORIES: dict[str, tuple[str, str]] = {
    "tail": ("detectors.tail", "TailDetector"),
    "ensemble": ("detectors.city", "city_ensemble"),
    "robust_zscore": ("detectors.robust_zscore", "RobustZScore"),
    "likelihood": ("detectors.likelihood", "AnomalyLikelihood"),
    "ewma_cusum": ("detectors.change", "EwmaCusum"),
    "seasonal": ("detectors.seasonal", "SeasonalBaseline"),
    "stuck": ("detectors.flatline", "StuckSensor"),
    "isolation_forest": ("detectors.isolation", "WindowIsolationForest"),
    "discord": ("detectors.discord", "SubsequenceDiscord"),
    "pattern": ("detectors.patterns", "UnfamiliarPattern"),
    "windowed_gaussian": ("detectors.windowed_gaussian", "WindowedGaussian"),
}
DEFAULT_DETECTOR = next(iter(_FACTORIES))
# Detectors documented at a threshold of their own, their scores being on another scale
# than the tail probabilities (robust_zscore's, the old stream default, is 0.6:
# docs/detectors.md); every other runs at DEFAULT_THRESHOLD.
OWN_THRESHOLDS: dict[str, float] = {"robust_zscore": 0.6}


def default_threshold(name: str) -> float:
    """The alert threshold, a score in (0, 1], the stream runs detector ``name`` at
    when CITYBRAIN_SCORE_THRESHOLD is not set."""
    return OWN_THRESHOLDS.get(name, DEFAULT_THRESHOLD)


class DetectorRegistry(MutableMapping[str, "Callable[[], Detector]"]):
    """Detector name -> a factory taking no arguments, in registration order (the
    default first). A built-in name's module is imported on its first lookup;
    membership, iteration and ``len`` import nothing. A factory of one's own is
    registered by assignment (``DETECTORS["mine"] = MyDetector``). Raises ``KeyError``
    for a name not registered."""

    def __init__(self, built_in: dict[str, tuple[str, str]]) -> None:
        self._entries: dict[str, tuple[str, str] | Callable[[], Detector]] = dict(built_in)

    def __getitem__(self, name: str) -> Callable[[], Detector]:
        entry = self._entries[name]
        if not isinstance(entry, tuple):
            return entry
        module, attribute = entry
        factory: Callable[[], Detector] = getattr(importlib.import_module(module), attribute)
        return factory

    def __setitem__(self, name: str, factory: Callable[[], Detector]) -> None:
        self._entries[name] = factory

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


DETECTORS = DetectorRegistry(_FACTORIES)
