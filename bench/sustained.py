"""Sustained changes for ``tail``, measured by leave-one-category-out on NAB (issue 13, step 19).

Step 17 of docs/benchmarks.md found what ``tail`` misses: changes sustained over hours in
which no reading is odd at the scale of its 32-reading median. Two statistics of such
changes, each a family not tried before, each calibrated the way ``tail`` calibrates its
own (a decayed per-sensor histogram of the statistic read as a tail probability,
``detectors.tail._tail``) and each one more member of ``tail``'s Bonferroni minimum beside
the 8-reading mean (a run statistic, so not confirmed two of three):

* ``bocpd``: Bayesian online changepoint detection (Adams and MacKay, "Bayesian online
  changepoint detection", 2007): the run-length posterior over the last ``RUN_MAX``
  readings, a Normal-Gamma prior (a Student-t predictive) and a constant hazard. The
  statistic is ``-ln(1 - S)``, ``S`` the posterior probability that the current run
  began more than ``LAG_MIN`` readings ago but inside the horizon: a change at lag at
  least ``LAG_MIN`` that the readings since have kept supporting.
* ``ranks``: the Mann-Whitney rank-sum test of the last hour's readings against the day
  before them (two-sided, ``ln(1 + |z|)``); readings autocorrelate, so its nominal
  p-value is not one, and it is calibrated by its own record instead.
* ``both``: the two together (Bonferroni over six).
* ``bocpd_raw``: bocpd's posterior mass outside the band, ``1 - S``, taken as the member's
  probability without its record's calibration (a posterior is no p-value on a sensor
  the model misdescribes: shown to say why the calibration is there).

``tail``'s own scores are not recomputed: its rarity (``score_rarity_many``: the score
before the novelty gate, ``min(1, log10(1 / (4 min(p_confirmed, p2))) / 8)``) gives back
its minimum, the new members join it, and the gate (``NEWS_FACTOR``, ``HOLD``,
``NOVELTY``, a silence's aging) runs again over the combined score. ``base``, the gate
over ``tail``'s rarity alone, must equal ``tail``'s scores to the bit: the check that the
gate here is ``tail``'s (``main`` says if not).

    python -m bench.sustained --data ../shared/data/nab --cache /tmp/cache
    python -m bench.nab_loco --data ../shared/data/nab --cache /tmp/cache --name sustained-bocpd

Each variant's per-file scores go to ``CACHE/sustained-<variant>/`` in ``bench.nab_loco``'s
cache layout, so its LOCO, nested LOCO (``--nested``) and losses are read from there.
Benchmarks only (a prototype, not the detector: no silences' aging of the new members'
histograms, no bank of sensors); the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numba
import numpy as np

from bench import in_dir, run_main
from citybrain.detect import DetectInputError, read_series
from detectors.tail import (
    BINS,
    DECADES,
    GAP_MAX_HALF_LIVES,
    HOLD,
    MIN_HISTORY,
    NEWS_MARGIN,
    NOVELTY,
    STEP_CLIP,
    TailDetector,
    _learn_hist,
    _tail,
)

# tail's defaults (TailDetector()): the location window, the histograms' half-life in
# readings, its warm-up, and its Bonferroni factor.
WINDOW = 32
MEMORY = 2000
TAIL_STATS = 4
# The run-length horizon: 512 readings (42 hours at five-minute readings, three weeks at
# hourly), a truncated posterior of 513 floats and a ring of the last 512 readings, 8 kB
# beside tail's 9.5 kB (the budget is 32 kB a sensor). Longer runs are one hypothesis,
# "at least RUN_MAX", judged on the last RUN_MAX readings.
RUN_MAX = 512
# Constant hazard: one change expected per horizon. It sets only the prior odds of a
# change, a constant factor on the statistic's odds, which its own record calibrates.
HAZARD = 1.0 / RUN_MAX
# A change counts when more than this many readings have come since it: half the
# location window, after which tail's median has absorbed a level shift and "how far"
# no longer sees it (a change younger than that is tail's own business).
LAG_MIN = WINDOW // 2
# The Normal-Gamma prior is worth one reading: mean the 32-reading median, kappa 1;
# alpha 1 and beta the sensor's own variance (its robust spread squared).
PRIOR_WEIGHT = 1.0
PRIOR_ALPHA = 1.0
# The rank test: the last hour against the 24 hours before it, an hour being the readings
# in 3,600 s at the sensor's mean interval, at least 4 (hourly sensors: the last four
# hours against the four days before) and at most 60 (one a minute), so the ring holds at
# most 1,500 readings (12 kB).
HOUR = 3600.0
HOUR_MIN = 4
HOUR_MAX = 60
DAYS = 24
MAD_MEAN_TO_SIGMA = math.sqrt(math.pi / 2)
CLIP_Z = 6.0

VARIANTS = ("base", "bocpd", "bocpd_raw", "ranks", "both")


def state_floats() -> dict[str, int]:
    """Floats a sensor would hold for each new member beside tail's record: the bocpd
    posterior and its ring, the rank test's ring, each statistic's histogram and total."""
    return {
        "bocpd": (RUN_MAX + 1) + RUN_MAX + 4 + BINS + 1,
        "ranks": HOUR_MAX * (DAYS + 1) + 2 + BINS + 1,
    }


@numba.njit(cache=True)
def _calibrate(stat: np.ndarray, ready: np.ndarray, decay: float) -> np.ndarray:
    """Each ``stat[i]``'s tail probability from the decayed histogram of the values
    before it (``detectors.tail._tail``: empirical, a fitted exponential beyond the 2 %
    level, never below the share seen), learned once ``ready[i]``; 1 while empty."""
    row = np.zeros(1 + BINS)
    tops = np.zeros((1, 1), dtype=np.int64)
    out = np.ones(stat.size)
    for i in range(stat.size):
        if not ready[i]:
            continue
        if row[0] > 0.0:
            out[i] = _tail(row, 1, row[0], stat[i], tops[0, 0])
        _learn_hist(row, 1, 0, stat[i], decay, tops, 0, 0)
    return out


@numba.njit(cache=True)
def _spread_and_median(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Before each reading: the median of the ``WINDOW`` readings before it and tail's
    kind of spread (a mean absolute deviation from it, each counting at most ``CLIP_Z``
    spreads, a running mean until ``MEMORY`` readings), as a sigma; 0 before any."""
    n = xs.size
    med = np.zeros(n)
    sig = np.zeros(n)
    spread = 0.0
    for i in range(n):
        lo = max(0, i - WINDOW)
        if i > 0:
            m = np.median(xs[lo:i])
            med[i] = m
            sig[i] = MAD_MEAN_TO_SIGMA * spread
            a = abs(xs[i] - m)
            if i > WINDOW and sig[i] > 0.0:
                a = min(a, CLIP_Z * sig[i])
            spread += max(1.0 / MEMORY, 1.0 / i) * (a - spread)
    return med, sig


@numba.njit(cache=True)
def bocpd_statistic(xs: np.ndarray) -> np.ndarray:
    """Per reading, ``-ln(1 - S)``, ``S`` the run-length posterior's mass (after the
    reading) on runs that began more than ``LAG_MIN`` readings ago and are not the
    longest the horizon holds (that one is "no change": the run since the first reading,
    or at least ``RUN_MAX`` readings); 0 while no such run exists yet. The mass left,
    ``1 - S``, is on a change within ``LAG_MIN`` readings (a spike, tail's business) or on
    none."""
    n = xs.size
    med, sig = _spread_and_median(xs)
    log_r = np.full(RUN_MAX + 1, -np.inf)  # log P(run length r), r readings in the run
    new = np.empty(RUN_MAX + 1)
    ring = np.zeros(RUN_MAX)
    # lgamma(alpha_n + 1/2) - lgamma(alpha_n) for n readings in the run
    lg = np.empty(RUN_MAX + 1)
    for k in range(RUN_MAX + 1):
        a = PRIOR_ALPHA + k / 2.0
        lg[k] = math.lgamma(a + 0.5) - math.lgamma(a)
    out = np.zeros(n)
    log_h = math.log(HAZARD)
    log_g = math.log1p(-HAZARD)
    longest = 0  # the longest run the posterior holds (the "no change" hypothesis)
    for i in range(n):
        mu0 = med[i] if i > 0 else xs[0]
        # tail's floor on the spread (the rounding of the level), squared without
        # underflowing to a variance of 0
        floor = max(2.0**-50 * abs(mu0), 1e-150)
        b0 = PRIOR_ALPHA * max(sig[i], floor) ** 2
        y = xs[i] - mu0
        new[:] = -np.inf
        # Growth of every run held, each judged by the Student-t predictive of its readings.
        s1 = 0.0
        s2 = 0.0
        prior_lp = 0.0
        for r in range(longest + 1):
            if r > 0:
                v = ring[(i - r) % RUN_MAX] - mu0
                s1 += v
                s2 += v * v
            kn = PRIOR_WEIGHT + r
            an = PRIOR_ALPHA + r / 2.0
            bn = b0 + 0.5 * max(s2 - s1 * s1 / kn, 0.0)
            mun = s1 / kn
            scale2 = bn * (kn + 1.0) / (an * kn)
            nu = 2.0 * an
            d = y - mun
            lp = (
                lg[r]
                - 0.5 * math.log(nu * math.pi * scale2)
                - (an + 0.5) * math.log1p(d * d / (nu * scale2))
            )
            if r == 0:
                prior_lp = lp
            if log_r[r] > -np.inf or (i == 0 and r == 0):
                base = 0.0 if i == 0 else log_r[r]
                to = min(r + 1, RUN_MAX)
                grown = base + log_g + lp
                new[to] = np.logaddexp(new[to], grown)
        if i > 0:
            new[1] = np.logaddexp(new[1], log_h + prior_lp)  # a change: x starts a run
        total = -np.inf
        for r in range(RUN_MAX + 1):
            total = np.logaddexp(total, new[r])
        for r in range(RUN_MAX + 1):
            log_r[r] = new[r] - total
        ring[i % RUN_MAX] = xs[i]
        longest = min(longest + 1, RUN_MAX)
        if longest > LAG_MIN + 1:
            # -ln(1 - S), S the mass of the runs that began inside the band: what is
            # left is the runs of LAG_MIN readings or fewer and the longest one.
            rest = log_r[longest]
            for r in range(1, LAG_MIN + 1):
                rest = np.logaddexp(rest, log_r[r])
            out[i] = max(-rest, 0.0)
    return out


@numba.njit(cache=True)
def rank_statistic(xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Per reading, ``ln(1 + |z|)`` of the Mann-Whitney test of the last hour's ``m``
    readings (this one included) against the ``DAYS * m`` before them, ``m`` from the
    sensor's mean interval so far (ties count a half; no tie correction to the variance:
    the statistic's own record calibrates it); -1 while the history is shorter."""
    n = xs.size
    out = np.full(n, -1.0)
    step = 0.0
    for i in range(n):
        if i > 0:
            gap = ts[i] - ts[i - 1]
            if gap > 0.0:
                step = (
                    gap
                    if step == 0.0
                    else step + max(1.0 / WINDOW, 1.0 / i) * (min(gap, STEP_CLIP * step) - step)
                )
        m = HOUR_MIN
        if step > 0.0:
            m = min(max(round(HOUR / step), HOUR_MIN), HOUR_MAX)
        k = DAYS * m
        if i + 1 < m + k:
            continue
        u = 0.0
        for a in range(i - m + 1, i + 1):
            for b in range(i - m - k + 1, i - m + 1):
                if xs[b] < xs[a]:
                    u += 1.0
                elif xs[b] == xs[a]:
                    u += 0.5
        mean = m * k / 2.0
        var = m * k * (m + k + 1.0) / 12.0
        out[i] = math.log1p(abs(u - mean) / math.sqrt(var))
    return out


@numba.njit(cache=True)
def gate(
    rarity: np.ndarray,
    extra: np.ndarray,
    factor: float,
    ts: np.ndarray,
    has_time: bool,
) -> np.ndarray:
    """``tail``'s score with ``extra`` members: each reading's ``p = min(1, factor *
    min(p_tail, extra[:, i]))``, ``p_tail`` recovered from its rarity (``TAIL_STATS``
    over the Bonferroni factor; at or above 1/4 when the rarity is 0, where any factor
    of four or more gives 1 whatever it was), scored ``log10(1 / p) / DECADES``, through
    ``tail``'s novelty gate (the record held ``HOLD`` seconds after it was last reached,
    then decaying by ``NOVELTY`` a reading, a silence aging it by its missing readings)."""
    n = rarity.size
    out = np.zeros(n)
    record = 0.0
    record_t = 0.0
    step = 0.0
    last_t = 0.0
    max_age = GAP_MAX_HALF_LIVES * MEMORY
    for i in range(n):
        r = rarity[i]
        if extra.shape[0] == 0:
            score = r
        else:
            p = 10.0 ** (-DECADES * r) / TAIL_STATS if r > 0.0 else 1.0 / TAIL_STATS
            for j in range(extra.shape[0]):
                p = min(p, extra[j, i])
            p = min(1.0, factor * p)
            score = min(1.0, -math.log10(max(p, 1e-300)) / DECADES)
        aging = 1.0
        if has_time and i > 0 and last_t != 0.0 and step > 0.0:
            aging = min(max(1.0, (ts[i] - last_t) / step), max_age)
        held = has_time and ts[i] - record_t < HOLD
        if score >= record:
            record_t = ts[i] if has_time else 0.0
            held = True
        fade = NOVELTY if aging == 1.0 else NOVELTY**aging
        old = record
        record = max(record * (1.0 if held and has_time else fade), score)
        out[i] = 0.0 if (score <= old or score < old + NEWS_MARGIN) else score
        if has_time:
            if i > 0 and last_t != 0.0:
                gap = ts[i] - last_t
                if gap <= 0.0:
                    pass
                elif step > 0.0:
                    step = step + max(1.0 / WINDOW, 1.0 / i) * (min(gap, STEP_CLIP * step) - step)
                else:
                    step = gap
            last_t = ts[i]
    return out


def variant_scores(times: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Every variant's scores of one series (``VARIANTS``), and ``tail``'s own."""
    scores, rarity = TailDetector().score_rarity_many(values, times)
    decay = 0.5 ** (1.0 / MEMORY)
    index = np.arange(values.size)
    b_stat = bocpd_statistic(values)
    # Its histogram learns once the horizon is full (step 5's rule: a statistic is
    # recorded once it means what it says): until then "no change" is the run since the
    # first reading, judged with the spreads of the first readings, and the statistic
    # sits near its ceiling on noise alone (4.5 of about 5 on normal noise).
    p_b = _calibrate(b_stat, index >= max(MIN_HISTORY, RUN_MAX), decay)
    r_stat = rank_statistic(values, times)
    p_r = _calibrate(np.maximum(r_stat, 0.0), r_stat >= 0.0, decay)
    none = np.empty((0, values.size))
    return {
        "tail": scores,
        "base": gate(rarity, none, TAIL_STATS, times, True),
        "bocpd": gate(rarity, p_b[None, :], TAIL_STATS + 1, times, True),
        # The posterior itself as the member's probability, uncalibrated: 1 - S, the
        # mass left outside the band (shown to say why the calibration is there).
        "bocpd_raw": gate(rarity, np.exp(-b_stat)[None, :], TAIL_STATS + 1, times, True),
        "ranks": gate(rarity, p_r[None, :], TAIL_STATS + 1, times, True),
        "both": gate(rarity, np.vstack([p_b, p_r]), TAIL_STATS + 2, times, True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=in_dir, required=True, help="NAB's root (data/, labels/)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/citybrain-nab-cache"),
        help="bench.nab_loco's cache: each variant's scores go to CACHE/sustained-<variant>/",
    )
    args = parser.parse_args()
    data = args.data / "data"
    if not data.is_dir():
        parser.error(f"{data}: not found (--data is NAB's root: data/, labels/)")
    for name in VARIANTS:
        folder = args.cache / f"sustained-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"argument --cache: cannot make {str(folder)!r} ({exc.strerror})")
    mismatched = []
    for path in sorted(data.rglob("*.csv")):
        try:
            _, times, values = read_series(path)
        except DetectInputError as exc:  # (its file, line and reason)
            parser.error(f"argument --data: {exc}")
        found = variant_scores(np.asarray(times, float), np.asarray(values, float))
        if not np.array_equal(found["base"], found["tail"]):
            mismatched.append(str(path.relative_to(data)))
        stored = str(path.relative_to(data)).replace("/", "__") + ".npy"
        for name in VARIANTS:
            np.save(args.cache / f"sustained-{name}" / stored, found[name])
    print(
        json.dumps(
            {
                "variants": [f"sustained-{v}" for v in VARIANTS],
                "gate_is_tails": not mismatched,
                "gate_differs_on": mismatched,
                "state_floats_beside_tail": state_floats(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run_main(main)
