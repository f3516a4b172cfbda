"""The default detector (``city_ensemble``) on the real city slices in ``datasets/``: the
events their READMEs date must be seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from detectors import DEFAULT_THRESHOLD, TailDetector, city_ensemble

DATASETS = Path(__file__).resolve().parents[3] / "datasets"


def scored(series: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """(times, scores) of one sensor's readings, scored as ``citybrain detect`` does."""
    times = pd.to_datetime(series["timestamp"]).reset_index(drop=True)
    seconds = (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    values = series["value"].to_numpy(float)
    return times, city_ensemble().score_many(values, seconds.to_numpy(float))


def test_sees_the_spring_festival_fireworks_at_nearly_every_station() -> None:
    # Beijing, 2016-02-08 00:00-02:00 local time (16:00-18:00 UTC the day before): PM2.5
    # from ~20 to ~700 ug/m3 at every station, a day after small rises that fired weakly.
    frame = pd.read_csv(DATASETS / "beijing_air_2016-02.csv.gz")
    fired = []
    for _, series in frame[frame["kind"] == "pm25"].groupby("sensor_id"):
        times, scores = scored(series)
        night = ((times >= "2016-02-07T14:00Z") & (times <= "2016-02-07T20:00Z")).to_numpy()
        fired.append(bool((scores[night] > 0).any()))
    assert len(fired) == 8
    assert sum(fired) >= 7


def test_the_flash_flood_fires_strongly_on_both_dead_run_gauges() -> None:
    # Dead Run, Baltimore: the rise on the evening of 2019-05-10 (UTC), peak 05-11 02:25Z.
    frame = pd.read_csv(DATASETS / "usgs_flood_2019-05.csv.gz")
    for sensor_id in ("usgs-01589330-discharge", "usgs-01589330-water_level"):
        times, scores = scored(frame[frame["sensor_id"] == sensor_id])
        rise = ((times >= "2019-05-10T18:00Z") & (times <= "2019-05-11T06:00Z")).to_numpy()
        assert scores[rise].max() >= 0.5, sensor_id


# -- the stream's default (issue 13): the tail detector at its one threshold ----------
def tail_scored(series: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    times = pd.to_datetime(series["timestamp"]).reset_index(drop=True)
    seconds = (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return times, TailDetector().score_many(
        series["value"].to_numpy(float), seconds.to_numpy(float)
    )


def test_the_default_alerts_on_the_fireworks_and_the_night_is_each_stations_peak() -> None:
    frame = pd.read_csv(DATASETS / "beijing_air_2016-02.csv.gz")
    peaks: dict[str, list[bool]] = {"pm25": [], "pm10": []}
    alerted = 0
    for (kind, _), series in frame[frame["kind"].isin(list(peaks))].groupby(["kind", "sensor_id"]):
        times, scores = tail_scored(series)
        night = ((times >= "2016-02-07T12:00Z") & (times <= "2016-02-07T20:00Z")).to_numpy()
        if scores[night].max() > 0:
            peaks[kind].append(scores[night].max() > scores[~night].max())
        alerted += bool((scores[night] >= DEFAULT_THRESHOLD).any())
        # Quiet the rest of the fortnight: no instrument alerts outside the night.
        assert (scores[~night] < DEFAULT_THRESHOLD).all()
    # Every instrument that speaks that night peaks there. Three of the eight PM2.5
    # stations stay silent: their record, crept up the day before or that evening, was
    # within the factor two the news margin asks (Gucheng, Nongzhanguan: 0.22-0.24 before
    # it; Wanshouxigong: 0.263 against 0.2636 since the twenty-fourth session's far-glitch
    # rules, 0.264 before them), the margin's documented cost (docs/benchmarks.md); their
    # rarity still marks the neighbours' alerts corroborated (test_corroboration.py).
    assert len(peaks["pm25"]) >= 5 and all(peaks["pm25"])
    assert len(peaks["pm10"]) >= 5 and all(peaks["pm10"])
    assert alerted >= 7  # of the 16 instruments


def test_the_default_alerts_on_the_flash_flood_at_both_gauges_and_only_then() -> None:
    frame = pd.read_csv(DATASETS / "usgs_flood_2019-05.csv.gz")
    for sensor_id in ("usgs-01589330-discharge", "usgs-01589330-water_level"):
        times, scores = tail_scored(frame[frame["sensor_id"] == sensor_id])
        rise = ((times >= "2019-05-10T18:00Z") & (times <= "2019-05-11T06:00Z")).to_numpy()
        assert scores[rise].max() >= 0.9, sensor_id
        assert (scores[~rise] < DEFAULT_THRESHOLD).all(), sensor_id
