"""bench.sustained (step 19 of docs/benchmarks.md): the novelty gate it reruns over
``tail``'s rarity is ``tail``'s own to the bit, its two sustained-change statistics see a
held level shift that ``tail``'s median absorbs, and what a sensor would hold for them fits
the 32 kB budget (synthetic series; no NAB data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.sustained import (
    LAG_MIN,
    VARIANTS,
    bocpd_statistic,
    gate,
    rank_statistic,
    state_floats,
    variant_scores,
)
from detectors.tail import TailDetector, record_size

ROOT = Path(__file__).resolve().parents[3]
STEP = 300.0  # five-minute readings


def _daily(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` five-minute readings of a daily cycle with noise, two spikes, a run of
    spikes and a silence of six hours (the gate's aging)."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + STEP * np.arange(n, dtype=float)
    ts[n // 2 :] += 6 * 3600.0
    xs = 10.0 + 3.0 * np.sin(2 * np.pi * ts / 86_400.0) + rng.normal(0.0, 0.5, n)
    xs[n // 3] += 8.0
    xs[2 * n // 3 : 2 * n // 3 + 3] += 6.0
    xs[n - 100] -= 9.0
    return ts, xs


def test_the_gate_over_tails_rarity_gives_tails_own_scores() -> None:
    # The variants are tail's rarity plus members through this gate: were the gate not
    # tail's, every difference measured would be partly the gate's.
    ts, xs = _daily(4000)
    scores, rarity = TailDetector().score_rarity_many(xs, ts)
    again = gate(rarity, np.empty((0, xs.size)), 4.0, ts, True)
    assert (scores > 0).sum() >= 3  # (the gate had something to pass and to hold)
    assert np.array_equal(again, scores)
    found = variant_scores(ts, xs)
    assert np.array_equal(found["base"], found["tail"])
    assert set(VARIANTS) <= set(found)


def test_bocpd_sees_a_held_shift_after_tails_median_has_absorbed_it() -> None:
    rng = np.random.default_rng(7)
    xs = rng.normal(0.0, 1.0, 1200)
    xs[800:] += 3.0  # held: after 16 readings the 32-reading median sits on it
    stat = bocpd_statistic(xs)
    assert np.all(stat[: LAG_MIN + 1] == 0.0)  # (no lag beyond LAG_MIN exists yet)
    before = stat[600:800].max()  # (once the horizon is full)
    after = stat[800 + LAG_MIN + 4 : 800 + 60].max()
    assert after > before + 2.0, (before, after)


def test_the_rank_test_sees_an_hour_unlike_the_day_before() -> None:
    rng = np.random.default_rng(11)
    n = 2000
    ts = 1.7e9 + STEP * np.arange(n, dtype=float)
    xs = rng.normal(0.0, 1.0, n)
    xs[1500:1512] += 2.0  # an hour (twelve readings) shifted by two sigma
    stat = rank_statistic(xs, ts)
    assert np.all(stat[: 12 * 25 - 1] == -1.0)  # (an hour and a day before it needed)
    assert stat[1511] > stat[400:1500].max()


def test_what_a_sensor_would_hold_fits_32_kb() -> None:
    floats = record_size(32) + sum(state_floats().values())
    assert floats * 8 <= 32_000, floats


def test_main_writes_every_variant_and_says_the_gate_is_tails(tmp_path: Path) -> None:
    folder = tmp_path / "nab" / "data" / "realKnownCause"
    folder.mkdir(parents=True)
    ts, xs = _daily(1500)
    stamps = [np.datetime64(int(t), "s").astype(str).replace("T", " ") for t in ts]
    rows = "".join(f"{s},{float(x)!r}\n" for s, x in zip(stamps, xs, strict=True))
    (folder / "f.csv").write_text("timestamp,value\n" + rows)
    done = subprocess.run(
        [sys.executable, "-m", "bench.sustained", "--data", str(tmp_path / "nab"),
         "--cache", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["gate_is_tails"] is True
    for name in VARIANTS:
        scores = np.load(tmp_path / "cache" / f"sustained-{name}" / "realKnownCause__f.csv.npy")
        assert scores.shape == (1500,)
