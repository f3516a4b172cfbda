"""The in-process ceiling benchmark's workload: the worker's per-batch code, unpacked and
packed, over the catch-up's readings (no services)."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.catchup import catchup_messages, catchup_readings, is_spike, write_grid
from bench.ceiling import decode_floor, own_work
from playbooks.loader import load_grid
from streams.partitioning import sensor_partition

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
    # A spike within six readings of its sensor's last one extends the same episode
    # (quiet_readings): one alert.
    last_spike: dict[str, int] = {}
    episodes = 0
    for n, reading in enumerate(catchup_readings(READINGS, SENSORS)):
        if is_spike(reading):
            step = n // SENSORS
            episodes += step - last_spike.get(reading.sensor_id, -100) > 6
            last_spike[reading.sensor_id] = step
    assert episodes > 10
    for pack in (0, 50):
        messages = list(catchup_messages(catchup_readings(READINGS, SENSORS), pack))
        assert own_work(messages, grid, batch=100, detect=False) == READINGS
        # Spikes are x20 against a 10..14 baseline: each episode fires exactly once.
        assert own_work(messages, grid, batch=100, commit_every=1000) == episodes
