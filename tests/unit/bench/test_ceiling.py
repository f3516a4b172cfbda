"""The in-process ceiling benchmark's workload: the worker's per-batch code, unpacked and
packed, over the catch-up's readings (no services)."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.catchup import catchup_messages, catchup_readings, is_spike, write_grid
from bench.ceiling import against, decode_floor, load_revision, own_work
from detectors import DETECTORS, Detector
from playbooks.loader import load_grid
from streams.partitioning import sensor_partition
from streams.settings import load_settings

READINGS, SENSORS = 30_000, 100


def test_packed_and_single_messages_carry_the_same_readings() -> None:
    single = list(catchup_messages(catchup_readings(READINGS, SENSORS)))
    packed = list(catchup_messages(catchup_readings(READINGS, SENSORS), pack=50))
    assert decode_floor(single) == decode_floor(packed) == READINGS
    assert len(single) == READINGS and len(packed) < READINGS // 49
    for partition, key, value in single:
        assert partition == sensor_partition(key.decode(), 2)
        assert orjson.loads(value)["sensor_id"] == key.decode()


def test_every_spike_episode_fires_once_packed_or_not(tmp_path: Path) -> None:
    write_grid(tmp_path / "grid.yaml", SENSORS)
    grid = load_grid(tmp_path / "grid.yaml")
    # The reference: each sensor's readings one at a time through its own default
    # detector at the default threshold; an anomaly within six readings of the sensor's
    # last one extends the same episode (quiet_readings): one alert.
    settings = load_settings()
    detectors: dict[str, Detector] = {}
    last_flag: dict[str, int] = {}
    episodes = spikes_flagged = 0
    for n, reading in enumerate(catchup_readings(READINGS, SENSORS)):
        det = detectors.setdefault(reading.sensor_id, DETECTORS[settings.detector]())
        score = det.score_one(reading.value, reading.ts)
        det.learn_one(reading.value, reading.ts)
        if score >= settings.score_threshold:
            step = n // SENSORS
            episodes += step - last_flag.get(reading.sensor_id, -100) > settings.quiet_readings
            last_flag[reading.sensor_id] = step
            spikes_flagged += is_spike(reading)
    assert episodes > 10 and spikes_flagged > 10
    for pack in (0, 50):
        messages = list(catchup_messages(catchup_readings(READINGS, SENSORS), pack))
        assert own_work(messages, grid, batch=100, detect=False) == READINGS
        # The worker's vectorised cross-sensor path fires each episode exactly once.
        assert own_work(messages, grid, batch=100, commit_every=1000) == episodes


def test_against_another_revision_runs_both_and_requires_the_same_states(
    tmp_path: Path,
) -> None:
    # ``--against HEAD``: the committed detection and admission loaded beside the
    # checkout's, both timed over the same messages; their final states must agree.
    write_grid(tmp_path / "grid.yaml", SENSORS)
    grid = load_grid(tmp_path / "grid.yaml")
    messages = list(catchup_messages(catchup_readings(3_000, SENSORS)))
    compared = against(messages, grid, 500, "HEAD", 2, 3_000)
    assert compared["same_final_states"] is True
    assert [(r["round"], r["code"]) for r in compared["runs"]] == [
        (0, "this"),
        (0, "HEAD"),
        (1, "HEAD"),
        (1, "this"),
    ]
    assert len({r["firing_alerts"] for r in compared["runs"]}) == 1
    assert len(compared["ratios"]) == 2


def test_against_an_unknown_revision_says_which() -> None:
    try:
        load_revision("no-such-revision-here", Path("/nonexistent"))
    except SystemExit as exc:
        assert "--against no-such-revision-here: streams/detection.py not found" in str(exc)
    else:
        raise AssertionError("an unknown revision was loaded")
