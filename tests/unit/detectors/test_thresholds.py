from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorParameterError, ScoreThreshold


def test_flags_at_or_above_threshold() -> None:
    t = ScoreThreshold(0.6)
    assert t.flags(np.array([0.1, 0.6, 0.9])).tolist() == [False, True, True]
    assert t.is_anomaly(0.6) and not t.is_anomaly(0.59)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_threshold_outside_unit_interval_is_refused(bad: float) -> None:
    with pytest.raises(DetectorParameterError, match=f"parameter threshold is {bad}"):
        ScoreThreshold(bad)
