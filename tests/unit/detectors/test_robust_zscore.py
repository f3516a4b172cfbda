"""RobustZScore on a real series: the Dead Run flash flood in the committed USGS slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from detectors import RobustZScore, ScoreThreshold

DATA = Path(__file__).resolve().parents[3] / "datasets" / "usgs_flood_2019-05.csv.gz"


def test_flags_the_flood_rise_and_not_the_quiet_days_before() -> None:
    frame = pd.read_csv(DATA)
    flow = frame[frame["sensor_id"] == "usgs-01589330-discharge"].reset_index(drop=True)
    scores = RobustZScore().score_many(flow["value"].to_numpy())
    flags = ScoreThreshold(0.6).flags(scores)
    times = pd.to_datetime(flow["timestamp"])
    first = times[np.argmax(flags)]
    # The USGS README dates the rise to the evening of 2019-05-10 (UTC), peak 05-11 02:25Z.
    flood = flags[(times >= "2019-05-10T18:00Z") & (times <= "2019-05-11T06:00Z")]
    assert flood.any()
    assert first >= pd.Timestamp("2019-05-07T00:00Z")


def test_warm_up_scores_zero_until_min_samples() -> None:
    det = RobustZScore(window=20, min_samples=5)
    scores = det.score_many([1.0, 1.0, 1.0, 1.0, 1.0, 100.0])
    assert scores[:5].tolist() == [0.0] * 5
    assert scores[5] > 0.9


def test_constant_history_uses_the_floor_not_infinity() -> None:
    det = RobustZScore(window=20, min_samples=5, relative_floor=0.05)
    det.learn_many([2.0] * 10)
    # 2.0 -> 2.05 is a 2.5 % wobble: half the 5 % floor, so z = 0.5, not infinite.
    assert det.score_one(2.05) < 0.2
    assert det.score_one(20.0) > 0.9
