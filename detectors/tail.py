"""Calibrated tail probabilities over many sensors at once: citybrain's default detector.

Each reading is judged four ways against its own sensor's past, and each judgement
becomes a tail probability estimated from the sensor's own record of such judgements:

1. *How far*: ``z = |x - median| / spread``, the median of the last ``window`` readings
   (robust, and it absorbs a level shift within ``window / 2`` readings) and the spread an
   exponentially weighted mean absolute deviation, each deviation clipped at
   ``CLIP_Z`` spreads so a spike does not inflate its own baseline.
2. *How long*: an exponentially weighted mean of recent ``z`` (span ``short``), which
   rises when a sensor stays somewhat off for a while (a drift, a wider noise) though no
   single reading is far.
3. *Against yesterday*: ``|x - x(24 h earlier)|`` over its own spread, when the sensor has
   a reading at the same five minutes of the day before (a rush hour that did not come).
4. *Against last week*: ``|x - x(7 days earlier)|`` over its own spread, when the sensor
   has a reading in the same hour of the week before (a weekday shaped like a Sunday: a
   holiday, a match day). Statistics 3 and 4 exist only where the timestamps hold such
   references: the daily and weekly views are found from the data, never assumed.

Each statistic ``T = ln(1 + z)`` goes into a per-sensor histogram whose counts decay with
a half-life of ``memory`` readings (fed only once its spread has ``MIN_HISTORY`` readings
behind it; a statistic past the record counted one bin beyond it, and statistic 2's mean
carrying a ``z`` only as far as statistic 1's histogram counts it, so one far glitch does
not hold later readings down); the tail probability ``P(T' >= T)`` is read from it, and
beyond its 2 % tail extrapolated with an exponential fitted to the mean excess over that level (the
peaks-over-threshold method: Pickands 1975, Balkema and de Haan 1974; used for streams by
Siffer et al., "Anomaly detection in streams with extreme value theory", KDD 2017), but
never below the decayed share of the sensor's own readings at least as extreme: the fit
speaks beyond what the sensor has shown, its record within it (a burst as large as
several before it is not rarer than they were, whatever a thinner fitted tail says). The
three statistics of one reading (1, 3, 4) count only once a neighbour confirms them: their
evidence is the second smallest of ``min(p1, p3, p4)`` over this reading and the two
before (two of three), so a lone odd reading of a bursty series is not news while a run
of them is (statistic 2 is a run already). The probabilities are combined by Bonferroni,
``p = min(1, 4 min(p_confirmed, p2))``. Like Numenta's anomaly likelihood (Ahmad et al.,
"Unsupervised real-time anomaly detection for streaming data", Neurocomputing 2017)
this judges a reading by how rare it is for *this* sensor rather than on a fixed scale,
but the distribution is the sensor's own empirical one (with a fitted tail), not a
normal fitted to it, so the probability holds on skewed and heavy-tailed sensors too.

The score is ``min(1, log10(1 / p) / DECADES)``: score 0.5 means a one-in-10,000 reading
for that sensor, 0.75 one in a million. On a stationary sensor the fraction of readings
scoring at or above ``s`` is at most about ``10 ** (-DECADES * s)`` (the calibration
test; far below it for independent readings, whose confirmation is about 3 p^2). A
reading scores only when it is at least ``NEWS_FACTOR`` (two) times as rare as the
sensor's recent record (the novelty gate: the record, raised by every reading that
reaches it, is held for ``HOLD`` seconds, then decays), so a burst is one alert, and so
is a drift that creeps the record up a step at a time.

Silences. Every forgetting above is counted in readings; where readings carry times, a
reading that comes ``k`` of the sensor's mean intervals after the one before ages the
history by ``k`` readings (at least one): the histograms lose weight by the per-reading
decay to the power ``k``, the spreads' weights (a running mean's count, at most
``memory``) by theirs, the novelty record by its own. A silence lacking a window of
readings leaves a level that is gone: the reading after it is judged against it, then
starts the window afresh; one of more than ``GAP_MAX_HALF_LIVES`` half-lives forgets the
history outright, and the sensor warms up again (its warm-up counts the spread's weight).
Without times, or on a regular clock, nothing changes.

State: one row of ``record_size(window)`` float64 values per sensor (1,188, 9.5 kB, for
the default window), fixed whatever the rate. ``TailBank`` keeps many sensors' rows in one
array (grown in chunks) and scores a batch of interleaved readings from thousands of
sensors in one compiled pass (beside the rows it keeps, per histogram, a bound on its
highest non-empty bin, derived and never recorded, so a reading's walks over a histogram
stop where its counts do); ``TailDetector`` is the single-series ``Detector`` over a
bank of one.
"""

from __future__ import annotations

import base64
import math
import weakref
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from detectors.base import (
    ABSURD_ABOVE,
    FAR,
    FAR_GLITCH_SCORE,
    TINY_SPREAD,
    BoolArray,
    Detector,
    FloatArray,
    check_time,
    check_times,
    check_value,
    check_values,
    require_int,
)
from detectors.errors import DetectorInputError, DetectorStateError
from detectors.registry import DEFAULT_THRESHOLD as _REGISTRY_THRESHOLD

# Layout of one sensor's record (all float64).
BINS = 48  # histogram bins over T = ln(1 + z) in [0, T_MAX]
T_MAX = math.log1p(1e4)
SLOTS = 288  # the day in five minutes: yesterday's reading at this time of day
DAY = 86_400.0
WEEK_SLOTS = 168  # the week in hours: last week's reading at this hour of the week
WEEK = 7 * DAY
(
    _N,
    _POS,
    _SPREAD,
    _SPREAD_D,
    _SHORT,
    _TOTAL1,
    _TOTAL2,
    _TOTAL3,
    _LAST_T,
    _RECORD,
    _SPREAD_W,
    _TOTAL4,
    _RECORD_T,
    _N_D,
    _N_W,
    _SURPRISE1,
    _SURPRISE2,
    _STEP,
    _WEIGHT,
    _FILLED,
) = range(20)
_SCALARS = 20
_V1_MISSING = 2  # version-1 records (before _SURPRISE1 and _SURPRISE2) lack these
_V2_MISSING = 3  # version-2 records (before _STEP, _WEIGHT and _FILLED) lack these
VERSION = 3
_LITTLE_ENDIAN = np.dtype(np.float64).str == "<f8"  # the bank's rows are the record's bytes
N_STATS = 4
CLIP_Z = 6.0  # a deviation counts at most this many spreads towards the spread
TAIL_FROM = 0.02  # the empirical tail is extrapolated below this probability
MIN_EXCEEDANCES = 5.0  # readings beyond that level needed to fit the tail
MIN_HISTORY = 32  # readings before the statistics' histograms start learning
DECADES = 8.0  # score 1 = probability 1e-8
# A reading scores only when rarer than the sensor's recent record (the highest score,
# decayed by this factor a reading once the hold below is over: half-life 6.6
# readings): one alert per burst, not one per reading of it (the novelty gate).
# Leave-one-category-out on NAB is flat from 0.8 to 0.995 without the hold (52.3 to
# 53.6; no gate: 42.2; docs/benchmarks.md).
NOVELTY = 0.9
# And only when at least twice as rare as that record (a score this much above it): a
# drift that creeps up the sensor's record a little at each reading is one alert, not
# one per step (fourth session: NAB leave-one-category-out 63.3 -> 69.2; the factor is a
# round number, not a fitted one; nested over the margins swept 65.7, over every variant
# of the idea tried 63.2: docs/benchmarks.md).
NEWS_FACTOR = 2.0
NEWS_MARGIN = math.log10(NEWS_FACTOR) / DECADES
# Seconds the record is held (not decayed) after it was last reached, when readings
# carry times: one alert per sensor per day unless a rarer reading comes. NAB's
# leave-one-category-out 50.7 -> 56.6 (docs/benchmarks.md). A neighbour's corroboration
# reads the score before this gate (``score_learn``'s ``rarity``), so a station that
# alerted earlier that day still counts as leaning the same way.
HOLD = DAY
# A reading that comes k of the sensor's mean intervals after the one before ages the
# sensor's history by max(1, k) readings (a silence counts the readings it lacks), at
# most GAP_MAX_HALF_LIVES half-lives of the histograms (memory readings each): a
# history aged that far is forgotten (its histograms emptied: not even the highest value
# seen, which the few-data tail rests on, is kept), so a year's silence and seven
# years' are the same news.
GAP_MAX_HALF_LIVES = 16.0
# The mean interval learns an interval of at most this many mean intervals: one long
# silence moves it by under a tenth (window 32), a sensor that slows down is followed
# within a few dozen readings.
STEP_CLIP = 4.0
MAD_MEAN_TO_SIGMA = math.sqrt(math.pi / 2)
# The spread is never taken below this share of the level: four ulps (2**-50, 8.9e-16),
# differences of rounding, not of the sensor; 1e-9 before t78.
RELATIVE_FLOOR = 2.0**-50
# A spread below this share of the floor measured nothing (a run of one value, moved by
# an ulp at most): a deviation beyond the floor then ends the run, and the spread learns
# the sensor afresh (``_run``). Quantised noise near the floor (a gauge at 1e15 whose
# readings step by 1, its floor 0.89, its spread about 0.6) is far above it.
EMPTY_SPREAD = 2.0**-6
# The one threshold of `citybrain detect` and the stream (detectors/registry.py says how
# it was chosen), re-exported here beside the detector it belongs to.
DEFAULT_THRESHOLD = _REGISTRY_THRESHOLD


def record_size(window: int) -> int:
    """Floats in one sensor's record for a location window of ``window`` readings."""
    return _SCALARS + 2 * window + N_STATS * BINS + 2 * SLOTS + 2 * WEEK_SLOTS


@numba.njit(cache=True, nogil=True)
def _tail(row: FloatArray, h: int, total: float, t: float, top: int) -> float:
    """P(T >= t) from decayed counts ``row[h : h + BINS]`` (bins over [0, T_MAX]), with an
    exponential tail fitted beyond the TAIL_FROM level, never below the share of the
    counts at or above ``t``. ``top`` is at least the highest non-empty
    bin: the walks skip the empty bins above it (adding their zeros changed no sum, so
    the result is the same to the bit; BINS - 1 is always a valid hint)."""
    if total <= 0.0:
        return 1.0
    width = T_MAX / BINS
    # The level q where the empirical tail reaches TAIL_FROM, walking down from the top.
    above = 0.0
    k = top
    while k > 0 and above + row[h + k] < TAIL_FROM * total:
        above += row[h + k]
        k -= 1
    # Within bin k the tail crosses TAIL_FROM: place q linearly inside it.
    frac = (TAIL_FROM * total - above) / row[h + k] if row[h + k] > 0.0 else 0.0
    q = (k + 1.0 - min(max(frac, 0.0), 1.0)) * width
    if t <= q:
        # Empirical: counts above t's bin, plus the part of its bin above t.
        b = min(int(t / width), BINS - 1)
        mass = row[h + b] * ((b + 1) * width - t) / width
        for j in range(b + 1, top + 1):
            mass += row[h + j]
        return float(min(1.0, max(mass / total, TAIL_FROM)))
    # Mean excess over q of the mass above q (bin centres), floored at half a bin.
    excess = 0.0
    mass = 0.0
    for j in range(k, top + 1):
        centre = (j + 0.5) * width
        if centre > q:
            excess += row[h + j] * (centre - q)
            mass += row[h + j]
    beta = max(excess / mass if mass > 0.0 else 0.0, 0.5 * width)
    p = TAIL_FROM * math.exp(-(t - q) / beta)
    if TAIL_FROM * total < MIN_EXCEEDANCES:
        # Too few readings beyond q to fit a tail: claim no more than the record shows,
        # 1 / (total + 1), shrunk beyond the highest statistic seen by a Pareto tail of
        # index one, (1 + z_top) / (1 + z) (t = ln(1 + z); index two, Chebyshev's bound,
        # cost 7 points of leave-one-category-out on NAB).
        highest = k
        for j in range(top, -1, -1):
            if row[h + j] > 0.0:
                highest = j
                break
        edge = (highest + 1.0) * width
        p = max(p, min(1.0, math.exp(edge - t)) / (total + 1.0))
    # No rarer than the record shows: the fitted tail claims rarity beyond the level
    # q, but where the sensor's own history holds readings at least as extreme, their
    # decayed share is the probability it has measured (zero beyond the highest
    # reading seen, where the fit alone speaks). Ninth session: NAB leave-one-category-
    # out 69.2 -> 70.3, nested 70.3 (docs/benchmarks.md, step 17).
    b = min(int(t / width), BINS - 1)
    seen = row[h + b] * ((b + 1) * width - t) / width if b <= top else 0.0
    for j in range(b + 1, top + 1):
        seen += row[h + j]
    return max(p, seen / total)


@numba.njit(cache=True, nogil=True)
def _highest(row: FloatArray, h: int, top: int) -> int:
    """The highest non-empty bin of histogram ``row[h : h + BINS]`` (0 if empty), given
    ``top``, a bound on it."""
    while top > 0 and row[h + top] == 0.0:
        top -= 1
    return top


@numba.njit(cache=True, nogil=True)
def _learn_hist(
    row: FloatArray, h: int, total: int, t: float, decay: float, tops: Any, s: int, which: int
) -> None:
    """Decay histogram ``row[h : h + BINS]`` and its total, count ``t``; ``tops[s, which]``
    bounds its highest non-empty bin (the bins above it are zeros: left as they are).

    A statistic beyond the record counts one bin beyond the highest non-empty bin, not
    by how far (winsorised at the record, SPOT's rule: Siffer et al., KDD 2017): one far
    glitch (a 1e10 from a unit or encoding fault) would otherwise sit in the histogram as
    the value above every later one, holding them at its share and widening the fitted
    tail for ``memory`` readings. A real regime that goes on climbs a bin a reading."""
    width = T_MAX / BINS
    bin_ = min(int(t / width), BINS - 1)
    highest = _highest(row, h, tops[s, which])
    if row[total] > 0.0:  # (an empty histogram has no record to winsorise at)
        bin_ = min(bin_, highest + 1)
    top = max(highest, bin_)
    tops[s, which] = top
    for j in range(top + 1):
        row[h + j] *= decay
    row[h + bin_] += 1.0
    row[total] = row[total] * decay + 1.0


@numba.njit(cache=True, nogil=True)
def _age(
    row: FloatArray,
    h1: int,
    aging: float,
    decay: float,
    keep: float,
    forget: bool,
    tops: Any,
    s: int,
) -> None:
    """A silence's missing readings (``aging - 1`` of them) leave the sensor's history:
    the four histograms (from ``h1`` on) lose their weight by ``decay`` a reading, the
    spreads' weights (the main one's and the seasonal statistics' counts) by ``keep``;
    with ``forget`` nothing is left (not even the highest value seen, which the few-data
    tail rests on)."""
    factor = 0.0 if forget else decay ** (aging - 1.0)
    for j in range(N_STATS * BINS):
        row[h1 + j] *= factor
    if forget:
        tops[s, :] = 0  # (every bin is empty)
    for total in (_TOTAL1, _TOTAL2, _TOTAL3, _TOTAL4):
        row[total] *= factor
    factor = 0.0 if forget else keep ** (aging - 1.0)
    for count in (_WEIGHT, _N_D, _N_W):
        row[count] *= factor


@numba.njit(cache=True, nogil=True)
def _sorted_remove(row: FloatArray, sw0: int, size: int, old: float) -> None:
    """Remove one ``old`` from the sorted ``row[sw0 : sw0 + size]``."""
    j = 0
    while j < size - 1 and row[sw0 + j] != old:
        j += 1
    while j < size - 1:
        row[sw0 + j] = row[sw0 + j + 1]
        j += 1


@numba.njit(cache=True, nogil=True)
def _learn_seasonal(
    row: FloatArray,
    n_at: int,
    spread_at: int,
    deviation: float,
    spread_rate: float,
    h: int,
    total: int,
    t: float,
    decay: float,
    memory: float,
    tops: Any,
    s: int,
    which: int,
    floor: float,
) -> None:
    """One seasonal statistic (day or week over) learns a reading that had a reference:
    its spread (``floor``: its level's rounding), then (after ``MIN_HISTORY`` such
    readings) its histogram; ``n_at`` counts them (a weight: at most ``memory``, aged by
    silences)."""
    m = row[n_at]
    rate = max(spread_rate, 1.0 / (m + 1.0))
    _clipped_spread(row, spread_at, deviation, rate, m > 10.0, floor)
    if m >= MIN_HISTORY:
        _learn_hist(row, h, total, t, decay, tops, s, which)
    row[n_at] = min(max(memory, MIN_HISTORY), m + 1.0)  # (a weight, as the spread's)


@numba.njit(cache=True, nogil=True)
def _second_largest(a: float, b: float, c: float) -> float:
    """The middle one of three numbers."""
    return max(min(a, b), min(max(a, b), c))


@numba.njit(cache=True, nogil=True)
def _clipped_spread(
    row: FloatArray, k: int, a: float, rate: float, clip: bool, floor: float
) -> None:
    """Mean absolute deviation at ``row[k]``, a deviation counting at most CLIP_Z spreads.

    A spread below ``EMPTY_SPREAD`` of ``floor`` (the rounding of the level: a run of one
    value, a sensor stuck) measured no noise, so a deviation beyond the floor is the
    spread's first measure, taken whole. Clipped and at the running rate instead, the
    spread of a sensor stuck for a day grew from a few ulps by at most ``CLIP_Z`` spreads
    a reading at ``1 / memory``: thousands of readings, each of its ordinary deviations
    scoring millions of spreads into the histograms (t195)."""
    sig = MAD_MEAN_TO_SIGMA * row[k]
    if sig <= EMPTY_SPREAD * floor and a > floor:
        row[k] = a
        return
    if clip and sig > 0.0:
        a = min(a, CLIP_Z * sig)
    row[k] += rate * (a - row[k])


@numba.njit(cache=True, nogil=True)
def _run(
    state: FloatArray,
    tops: Any,
    slots: Any,
    xs: FloatArray,
    ts: FloatArray,
    has_time: bool,
    learn: bool,
    window: int,
    warmup: int,
    decay: float,
    spread_rate: float,
    short_rate: float,
    novelty: float,
    margin: float,
    hold: float,
    memory: float,
    max_age: float,
    out: FloatArray,
    rare: FloatArray,
) -> None:
    """Score (and with ``learn``, then learn) ``xs[i]`` for sensor row ``slots[i]``, in
    order; scores into ``out``, and each reading's rarity (its score before the novelty
    gate) into ``rare``."""
    w0 = _SCALARS  # the window in arrival order (a ring)
    sw0 = w0 + window  # the same values sorted, for the median
    h1 = sw0 + window
    h2 = h1 + BINS
    h3 = h2 + BINS
    h4 = h3 + BINS
    d0 = h4 + BINS  # yesterday's values by five minutes
    dt0 = d0 + SLOTS  # and when each was taken
    k0 = dt0 + SLOTS  # last week's values by hour of the week
    kt0 = k0 + WEEK_SLOTS  # and when each was taken
    for i in range(xs.size):
        s = slots[i]
        row = state[s]
        x = xs[i]
        n = int(row[_N])
        filled = int(row[_FILLED])
        pos = int(row[_POS])
        score = 0.0
        rare[i] = 0.0
        far = False
        # -ln p of the two readings before (0: none yet, or not rare at all)
        prev1 = row[_SURPRISE1]
        prev2 = row[_SURPRISE2]
        slot = -1
        ref_ok = False
        ref = 0.0
        wslot = -1
        wref_ok = False
        wref = 0.0
        # How many readings' worth this reading ages the history: one, or the intervals
        # a silence before it lasted (the sensor's mean interval as the unit), bounded.
        aging = 1.0
        if has_time and n > 0 and row[_LAST_T] != 0.0 and row[_STEP] > 0.0:
            aging = min(max(1.0, (ts[i] - row[_LAST_T]) / row[_STEP]), max_age)
        # A silence lacking at least a window of readings leaves a level that is gone:
        # this reading is judged against it, then starts the window afresh.
        restart = aging >= window + 1.0
        if has_time:
            slot = int((ts[i] % DAY) // (DAY / SLOTS))
            since = ts[i] - row[dt0 + slot]
            # The reading a day before (within a quarter hour) is the reference.
            ref_ok = row[dt0 + slot] > 0.0 and abs(since - DAY) <= DAY / SLOTS
            ref = row[d0 + slot]
            # And the reading at the same hour a week before (within the hour).
            wslot = int((ts[i] % WEEK) // (WEEK / WEEK_SLOTS))
            wage = ts[i] - row[kt0 + wslot]
            wref_ok = row[kt0 + wslot] > 0.0 and abs(wage - WEEK) <= WEEK / WEEK_SLOTS
            wref = row[k0 + wslot]
        if filled == 0:
            far = abs(x) > ABSURD_ABOVE  # (base.far_glitch with no history)
        else:
            mid = filled // 2
            median = row[sw0 + mid] if filled % 2 else (row[sw0 + mid - 1] + row[sw0 + mid]) / 2.0
            dev = x - median
            # The spread's floor: rounding of the level (a few ulps), no coarser. At 1e-9
            # of the median a gauge at 1e15 (ulp 0.125) with a spread of 1 was divided by
            # 10**6, and a 50-spread step scored 0 (t78).
            # Nor an absolute 1e-12 (until t93): at a level of 1e-9 a step of a hundredth
            # of it was 10 spreads, not news (0.69, and 1.0 later), while at 1 it was.
            floor = max(RELATIVE_FLOOR * abs(median), TINY_SPREAD)
            z = abs(dev) / max(MAD_MEAN_TO_SIGMA * row[_SPREAD], floor)
            # A far glitch (``detectors.base.far_glitch``: a sentinel such as 1e308, no
            # measurement) is scored, but its statistics are not learned and it sets no
            # novelty record: held for a day, its score of ~1 made nothing after it news,
            # so one sentinel silenced its sensor's real spikes for that day.
            # (base.far_glitch: in the series' own scale, no 1 in its units, t93)
            far_scale = max(MAD_MEAN_TO_SIGMA * row[_SPREAD], abs(median))
            far = abs(dev) > FAR * (far_scale if far_scale != 0.0 else 1.0)  # (exact zeros)
            short = (1.0 - short_rate) * row[_SHORT] + short_rate * min(z, 1e4)
            if n == 1:
                # The series' first deviation has no spread to be measured in but the
                # floor, the rounding of its level: its z (1e4 at a level of 10, 337 at
                # 1e12 for the same 0.3) told the units, not the sensor, and the mean
                # carried it into the first scores after warm-up (t93). It counts 0.
                short = row[_SHORT]
            t1 = math.log1p(min(z, 1e300))
            # The mean carries this z only as far as statistic 1's histogram counts it
            # (one bin beyond its record): a far glitch is news now, through the short
            # mean as scored, but its share would hold the mean far off for dozens of
            # readings, all learned as statistic 2's tail.
            carried = short
            if row[_TOTAL1] > 0.0:
                edge = (_highest(row, h1, tops[s, 0]) + 2.0) * (T_MAX / BINS)
                if t1 > edge:
                    carried = (1.0 - short_rate) * row[_SHORT] + short_rate * math.expm1(edge)
            t2 = math.log1p(short)
            t3 = 0.0
            if ref_ok:
                z3 = abs(x - ref) / max(MAD_MEAN_TO_SIGMA * row[_SPREAD_D], floor)
                t3 = math.log1p(min(z3, 1e300))
            t4 = 0.0
            if wref_ok:
                z4 = abs(x - wref) / max(MAD_MEAN_TO_SIGMA * row[_SPREAD_W], floor)
                t4 = math.log1p(min(z4, 1e300))
            # Warm-up counts the spread's weight: n until ``memory``, and again from
            # little after a silence long enough to have emptied it.
            if n >= warmup and row[_WEIGHT] >= min(memory, warmup):
                # The statistics of one reading (how far, against yesterday, against
                # last week) count once a neighbour confirms them: their evidence is the
                # second rarest of this reading's and the two before (two of three).
                p_point = _tail(row, h1, row[_TOTAL1], t1, tops[s, 0])
                if ref_ok and row[_TOTAL3] > 0.0:
                    p_point = min(p_point, _tail(row, h3, row[_TOTAL3], t3, tops[s, 2]))
                if wref_ok and row[_TOTAL4] > 0.0:
                    p_point = min(p_point, _tail(row, h4, row[_TOTAL4], t4, tops[s, 3]))
                surprise = -math.log(max(p_point, 1e-300))
                if learn and not far:
                    row[_SURPRISE2] = prev1
                    row[_SURPRISE1] = surprise
                confirmed = _second_largest(surprise, prev1, prev2)
                p = min(math.exp(-confirmed), _tail(row, h2, row[_TOTAL2], t2, tops[s, 1]))
                p = min(1.0, N_STATS * p)  # Bonferroni over the statistics
                score = min(1.0, -math.log10(max(p, 1e-300)) / DECADES)
            rare[i] = score
            record = row[_RECORD]
            if learn and not far:
                # Held for ``hold`` seconds after it was last reached, then decaying; any
                # reading reaching it raises it, news or not, so a creeping drift stays
                # within the margin of its own last step.
                held = has_time and ts[i] - row[_RECORD_T] < hold
                if score >= record:
                    row[_RECORD_T] = ts[i] if has_time else 0.0
                    held = True
                fade = novelty if aging == 1.0 else novelty**aging
                row[_RECORD] = max(record * (1.0 if held and has_time else fade), score)
            if score <= record or score < record + margin:
                score = 0.0  # not twice as rare as this sensor's recent record: not news
            if learn:
                # The spread is a mean over the readings' decayed weight: n (a running
                # mean) until ``memory``, then exponential; a silence's missing readings
                # take their share of the weight away, so after a long one the spread
                # learns the sensor afresh instead of keeping the distant past's.
                if aging > 1.0:
                    _age(row, h1, aging, decay, 1.0 - spread_rate, aging >= max_age, tops, s)
                weight = row[_WEIGHT]
                if not restart and not far:  # (a level that is gone, a glitch: no spread)
                    empty = MAD_MEAN_TO_SIGMA * row[_SPREAD] <= EMPTY_SPREAD * floor
                    if n > 1 and empty and abs(dev) > floor:
                        # A run of one value (a sensor stuck, the readings before its
                        # first change; not the series' first reading, whose z tells
                        # only the units) measured no noise (``EMPTY_SPREAD``), and this
                        # deviation is beyond the rounding of its level: the spread learns the
                        # sensor afresh from it, its weight emptied as by a long silence
                        # (the sensor warms up again). Kept, the run's weight made the
                        # spread grow from the floor at ``1 / memory`` a reading: for
                        # hundreds of readings every ordinary deviation was dozens of
                        # spreads, learned into the histograms, which then held a
                        # 50-sigma spike a thousand readings later at 0.00 (0.89 without
                        # the stuck run; t195).
                        row[_WEIGHT] = 0.0
                    rate = min(1.0, max(spread_rate, 1.0 / max(row[_WEIGHT], 1e-300)))
                    _clipped_spread(row, _SPREAD, abs(dev), rate, n > window, floor)
                if not far:
                    row[_SHORT] = carried
                if n >= MIN_HISTORY and weight >= min(memory, MIN_HISTORY) and not far:
                    # Histograms learn only once the spread means something (again, after
                    # a silence long enough to have emptied its weight).
                    _learn_hist(row, h1, _TOTAL1, t1, decay, tops, s, 0)
                    _learn_hist(row, h2, _TOTAL2, t2, decay, tops, s, 1)
                # The same rule for the seasonal statistics, counted in readings that
                # had a reference: a histogram fed while its spread was still a few
                # differences holds huge early values that fatten its tail for good.
                if wref_ok and not far:
                    _learn_seasonal(
                        row,
                        _N_W,
                        _SPREAD_W,
                        abs(x - wref),
                        spread_rate,
                        h4,
                        _TOTAL4,
                        t4,
                        decay,
                        memory,
                        tops,
                        s,
                        3,
                        floor,
                    )
                if ref_ok and not far:
                    _learn_seasonal(
                        row,
                        _N_D,
                        _SPREAD_D,
                        abs(x - ref),
                        spread_rate,
                        h3,
                        _TOTAL3,
                        t3,
                        decay,
                        memory,
                        tops,
                        s,
                        2,
                        floor,
                    )
        # (A far glitch that would start the window, first or after a silence, is no
        # level: learned, the readings after it looked ordinary. Nothing of it is kept.)
        if learn and not (far and (filled == 0 or restart)):
            if filled == 0 and aging > 1.0:  # (not aged above)
                _age(row, h1, aging, decay, 1.0 - spread_rate, aging >= max_age, tops, s)
            size = 0 if restart else filled
            # Keep the sorted copy in step: drop the value leaving, insert x (O(window)).
            if size == window:
                _sorted_remove(row, sw0, size, row[w0 + pos])
                size -= 1
            j = size
            while j > 0 and row[sw0 + j - 1] > x:
                row[sw0 + j] = row[sw0 + j - 1]
                j -= 1
            row[sw0 + j] = x
            row[w0 + pos] = x
            row[_POS] = (pos + 1) % window
            row[_N] = n + 1
            row[_FILLED] = size + 1
            row[_WEIGHT] = min(memory, row[_WEIGHT] + 1.0)
            if has_time:
                if n > 0 and row[_LAST_T] != 0.0:
                    # The mean interval over about a window of readings (an interval
                    # counting at most STEP_CLIP of them) between distinct times:
                    # readings that share a time came together (a batch upload, a
                    # coarse clock), no silence between them to measure.
                    # (At most _ROW_BOUND: times of -DBL_MAX and DBL_MAX are an
                    # infinite gap, an interval no record holds: t212.)
                    gap = min(ts[i] - row[_LAST_T], _ROW_BOUND)
                    step = row[_STEP]
                    if gap <= 0.0:
                        pass
                    elif step > 0.0:
                        row[_STEP] = step + max(1.0 / window, 1.0 / n) * (
                            min(gap, STEP_CLIP * step) - step
                        )
                    else:
                        row[_STEP] = gap
                row[_LAST_T] = ts[i]
                if not far:  # (a glitch is no reference for tomorrow or next week)
                    row[d0 + slot] = x
                    row[dt0 + slot] = ts[i]
                    row[k0 + wslot] = x
                    row[kt0 + wslot] = ts[i]
        # A far glitch is an anomaly whatever the history says, in warm-up too (its
        # first reading a sentinel scored 0: ``citybrain detect`` said nothing of it).
        out[i] = FAR_GLITCH_SCORE if far else score
        if far:
            # But no measurement, so no rarity: it marks no neighbour's alert as agreeing,
            # and its score above its rarity tells it apart (``far_glitch_rows``).
            rare[i] = 0.0


class TailBank:
    """Many sensors' states as rows of one float64 array (struct of arrays: column
    blocks per quantity), grown by a quarter (at least ``CHUNK`` rows) at a time.

    ``score_learn(slots, values, times)`` scores then learns a batch of interleaved
    readings (each row's sensor by its slot) in one compiled pass, in order, exactly as
    the readings would be scored one at a time. ``record``/``load`` read a sensor's row
    out as one changelog document and write it back.
    """

    CHUNK = 1024

    def __init__(
        self,
        window: int = 32,
        memory: int = 2000,
        short: int = 8,
        warmup: int = 32,
        capacity: int = 0,
    ) -> None:
        require_int("window", window, 3, 4096)
        require_int("memory", memory, 10)
        require_int("short", short, 1)
        require_int("warmup", warmup, MIN_HISTORY)
        self.window = window
        self.memory = memory
        self.short = short
        self.warmup = warmup
        self.width = record_size(window)
        self.state = np.zeros((capacity, self.width))
        # Per row and histogram, a bound on its highest non-empty bin (derived from the
        # row, never recorded: ``load`` recomputes it): the kernel skips the empty bins
        # above it, the same sums to the bit.
        self.tops = np.zeros((capacity, N_STATS), dtype=np.int64)
        self.used = 0
        self._free: list[int] = []
        # Half-life of ``memory`` readings for the histograms; the spread's mean absolute
        # deviation forgets over the same span, the short statistic over ``short``.
        self._decay = 0.5 ** (1.0 / memory)
        self._spread_rate = 1.0 / memory
        self._short_rate = 2.0 / (short + 1.0)
        self._max_age = GAP_MAX_HALF_LIVES * memory

    # -- slots -------------------------------------------------------------------------
    def allocate(self) -> int:
        """A fresh slot (a sensor with no history)."""
        if self._free:
            slot = self._free.pop()
        else:
            if self.used == self.state.shape[0]:
                # A quarter more (at least CHUNK rows): numpy zero-fills every new row at
                # once, so doubling touched up to twice the pages the sensors use (20,000
                # sensors: 32,768 rows, 311 MB, against 24,413 and 232 MB), and a page's
                # first touch is the dearest part of a new sensor on a VM (120-300 us).
                rows = self.state.shape[0] + max(self.CHUNK, self.state.shape[0] // 4)
                try:
                    # In place (realloc: a large block is remapped, not copied; the new
                    # rows are zeros): a worker catching up on 20,000 new sensors spent
                    # 24-30 us per sensor growing by copy, mostly page faults on the
                    # copies, against 9 us (docs/benchmarks.md). Safe because no view of
                    # the array outlives a call: the kernel runs synchronously and
                    # ``record`` copies its row out.
                    self.state.resize((rows, self.width), refcheck=False)
                    self.tops.resize((rows, N_STATS), refcheck=False)
                except ValueError:  # (an array that does not own its data: unpickled)
                    grown = np.zeros((rows, self.width))
                    grown[: self.used] = self.state[: self.used]
                    self.state = grown
                    tops = np.zeros((rows, N_STATS), dtype=np.int64)
                    tops[: self.used] = self.tops[: self.used]
                    self.tops = tops
            slot = self.used
            self.used += 1
        self.state[slot] = 0.0
        self.tops[slot] = 0  # (every bin empty)
        return slot

    def release(self, slot: int) -> None:
        """Give a slot back (its sensor's state has been written out)."""
        self._free.append(slot)

    # -- scoring -----------------------------------------------------------------------
    def score_learn(
        self,
        slots: Sequence[int] | Any,
        values: FloatArray,
        times: FloatArray | None,
        learn: bool = True,
        rarity: FloatArray | None = None,
    ) -> FloatArray:
        """Scores in [0, 1] of ``values[i]`` for sensor ``slots[i]`` (each before it is
        learned, in order); ``times`` in seconds (or None: no daily profile). Values
        must already be finite and in the safe domain (``check_values``).

        ``rarity`` (an array as long as ``values``), when given, receives each reading's
        score before the novelty gate: how rare it is for its sensor, news or not (a
        station still high from its first alert of the day is as anomalous for a
        neighbour's corroboration as it was then). A far glitch (``far_glitch``: a
        sentinel such as 1e308) is no measurement: its rarity is 0 while it scores
        ``FAR_GLITCH_SCORE``, and every other reading scores at most its rarity (the gate
        only lowers a score), so ``far_glitch_rows`` tells the glitches apart."""
        idx = np.asarray(slots, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.used):
            raise DetectorInputError(f"slots must lie in [0, {self.used}), got {idx.min()}..")
        out = np.empty(values.size)
        has_time = times is not None
        _run(
            self.state,
            self.tops,
            idx,
            values,
            times if times is not None else np.zeros(values.size),
            has_time,
            learn,
            self.window,
            self.warmup,
            self._decay,
            self._spread_rate,
            self._short_rate,
            NOVELTY,
            NEWS_MARGIN,
            HOLD,
            float(self.memory),
            self._max_age,
            out,
            np.empty(values.size) if rarity is None else rarity,
        )
        return out

    def warm(self) -> None:
        """Compile the kernel now (numba compiles on first call, seconds on a busy
        machine; its cache makes later processes fast): a worker calls this at start-up
        so its first live batch does not stall its event loop."""
        scratch = np.zeros((1, self.width))
        _run(
            scratch,
            np.zeros((1, N_STATS), dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(1),
            np.zeros(1),
            True,
            True,
            self.window,
            self.warmup,
            self._decay,
            self._spread_rate,
            self._short_rate,
            NOVELTY,
            NEWS_MARGIN,
            HOLD,
            float(self.memory),
            self._max_age,
            np.empty(1),
            np.empty(1),
        )

    # -- records -----------------------------------------------------------------------
    def record(self, slot: int, raw: bool = False, view: bool = False) -> dict[str, Any]:
        """One sensor's state as a JSON-compatible document (packed little-endian
        float64 in base64, exact); with ``raw``, the packed bytes themselves (for a
        binary encoding: the stream's changelog); with ``view`` (and ``raw``), those
        bytes as a memoryview of the bank's own row, not copied: valid only until the
        bank next changes (encode it at once; the stream's changelog entry does)."""
        if view and raw and _LITTLE_ENDIAN:
            # A row of the bank's C-contiguous float64 array: its bytes as they are.
            return {"v": VERSION, "window": self.window, "row": self.state[slot].data}
        packed = np.ascontiguousarray(self.state[slot], dtype="<f8").tobytes()
        return {
            "v": VERSION,
            "window": self.window,
            "row": packed if raw else base64.b64encode(packed).decode(),
        }

    def load(self, slot: int, document: dict[str, Any]) -> None:
        """Write a ``record`` (either form) back into ``slot``; raises DetectorInputError
        when it does not fit this bank."""
        try:
            packed = document["row"]
            if not isinstance(packed, bytes):
                packed = base64.b64decode(packed)
            row = np.frombuffer(packed, dtype="<f8")
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorInputError(f"state document is unreadable: {exc}") from None
        version = document.get("v")
        if not (type(version) is int and 1 <= version <= VERSION):
            # A newer version's row may hold other statistics in the same places: refused,
            # never read as this version's (the sensor warms up again).
            raise DetectorInputError(
                f"state document version {version!r} is not one this version reads "
                f"(1 to {VERSION}); written by a newer citybrain?"
            )
        if version == 1 and row.size == self.width - _V1_MISSING - _V2_MISSING:
            # Written before the two-of-three confirmation: its two surprises start at 0
            # (nothing rare before), the rest of the row stands where it was.
            row = np.insert(row, _SURPRISE1, np.zeros(_V1_MISSING))
            version = 2
        if version == 2 and row.size == self.width - _V2_MISSING:
            # Written before silences aged the history: the mean interval is measured
            # afresh from the next reading, the spread's weight is what it was then
            # (the readings seen, at most ``memory``).
            n = row[_N]
            row = np.insert(row, _STEP, [0.0, min(float(self.memory), n), min(self.window, n)])
        if document.get("window") != self.window or row.size != self.width:
            raise DetectorInputError(
                f"state document holds {row.size} floats for window "
                f"{document.get('window')!r}, expected {self.width} for window {self.window}"
            )
        fault = _row_fault(row, self.window)
        if fault is not None:
            raise DetectorStateError(f"state document: {fault}")
        self.state[slot] = row
        h1 = _SCALARS + 2 * self.window
        for which in range(N_STATS):
            nonzero = np.flatnonzero(row[h1 + which * BINS : h1 + (which + 1) * BINS])
            self.tops[slot, which] = nonzero[-1] if nonzero.size else 0

    def params(self) -> dict[str, int]:
        return {
            "window": self.window,
            "memory": self.memory,
            "short": self.short,
            "warmup": self.warmup,
        }


# No value the kernel writes into a row comes near this, but for times: readings enter in
# the safe domain (under 2**342, ``detectors.base.check_value``), the mean interval is
# capped at it, the rest are counts, weights, spreads and scores. A row holding more
# (1e300, DBL_MAX) there was not written by this detector. A time is any finite number
# the detector was given (t212: a reading at 1e300 or -DBL_MAX seconds was scored, and
# its record then refused as corrupt when read back, its sensor started over).
_ROW_BOUND = 2.0**400
# Fields that are counts or positions (whole numbers >= 0), and those that are never
# negative (spreads, totals, weights, the record and the mean interval).
_WHOLE = (_N, _POS, _FILLED)
_NOT_NEGATIVE = (
    _SPREAD, _SPREAD_D, _SPREAD_W, _TOTAL1, _TOTAL2, _TOTAL3, _TOTAL4,
    _RECORD, _N_D, _N_W, _STEP, _WEIGHT,
)  # fmt: skip


def far_glitch_rows(scores: FloatArray, rarity: FloatArray) -> Any:
    """Which readings of a ``score_learn`` call (its ``scores`` and ``rarity``, arrays
    or lists of one length) were far glitches (``detectors.base.far_glitch``: scored
    ``FAR_GLITCH_SCORE`` as sentinels, no measurement): a boolean array. A reading's
    score is its rarity or 0 (the novelty gate), so only a glitch scores above it. The
    stream routes a lone one as a suspected sensor fault, not as an event decisive by
    its score alone (streams/corroboration.py)."""
    return np.asarray(scores, np.float64) > np.asarray(rarity, np.float64)


def _time_columns(window: int, width: int) -> BoolArray:
    """Which of a record's ``width`` columns hold times (the last reading's, the record's,
    and each daily and weekly reference's)."""
    d0 = _SCALARS + 2 * window + N_STATS * BINS
    dt0 = d0 + SLOTS
    kt0 = dt0 + SLOTS + WEEK_SLOTS
    columns = np.zeros(width, dtype=bool)
    columns[[_LAST_T, _RECORD_T]] = True
    columns[dt0 : dt0 + SLOTS] = True
    columns[kt0 : kt0 + WEEK_SLOTS] = True
    return columns


def _row_fault(row: FloatArray, window: int) -> str | None:
    """Why ``row`` (one sensor's record, the bank's width) is no record this detector
    wrote, or None: a value that is not finite or beyond ``_ROW_BOUND``, a count or
    position that is not a whole number in its range, a spread, total, weight or
    histogram count below 0. t163: ``load`` took any bytes of the right length, and a
    count of readings of NaN or 1e300 (a corrupt changelog entry) left its sensor blind
    for good (a 50-sigma spike scored 0, with no fault said)."""
    bad = ~np.isfinite(row) | ((np.abs(row) > _ROW_BOUND) & ~_time_columns(window, row.size))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        return f"value {float(row[at])!r} at {at} is no value this detector writes"
    for at in _WHOLE:
        value = float(row[at])
        top = window - 1 if at == _POS else window if at == _FILLED else 2.0**53
        if not (value.is_integer() and 0.0 <= value <= top):
            return f"count {value!r} at {at} is not a whole number from 0 to {top:g}"
    h1 = _SCALARS + 2 * window
    for at in (*_NOT_NEGATIVE, *range(h1, h1 + N_STATS * BINS)):
        if row[at] < 0.0:
            return f"value {float(row[at])!r} at {at} is below 0"
    return None


class _BankRow(Detector):
    """One row (``slot``) of a ``TailBank`` as a ``Detector``: the contract's methods,
    shared by the single-series ``TailDetector`` and the stream's ``TailSlot``."""

    bank: TailBank
    slot: int

    def _call(self, xs: FloatArray, ts: FloatArray | None, learn: bool) -> FloatArray:
        return self.bank.score_learn(np.full(xs.size, self.slot, dtype=np.int64), xs, ts, learn)

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        time = check_time(t)
        ts = None if time is None else np.array([time])
        return float(self._call(np.array([value]), ts, False)[0])

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        time = check_time(t)
        ts = None if time is None else np.array([time])
        self._call(np.array([value]), ts, True)

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        return self._call(arr, check_times(ts, arr.size), True)

    def far_one(self, x: float, t: float | None = None) -> bool:
        value = check_value(x)
        time = check_time(t)
        ts = None if time is None else np.array([time])
        rarity = np.empty(1)
        slots = np.full(1, self.slot, dtype=np.int64)
        scores = self.bank.score_learn(slots, np.array([value]), ts, False, rarity)
        return bool(far_glitch_rows(scores, rarity)[0])

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        scores, rarity = self.score_rarity_many(xs, ts)
        return scores, far_glitch_rows(scores, rarity)

    def score_rarity_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """``score_many``'s scores and, beside them, each reading's rarity (its score
        before the novelty gate, ``TailBank.score_learn``): the anomaly marks a
        neighbour's corroboration reads."""
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        rarity = np.empty(arr.size)
        scores = self.bank.score_learn(
            np.full(arr.size, self.slot, dtype=np.int64), arr, times, True, rarity
        )
        return scores, rarity

    def get_params(self) -> dict[str, Any]:
        return self.bank.params()

    def get_state(self) -> dict[str, Any]:
        return self.bank.record(self.slot)

    def set_state(self, state: dict[str, Any]) -> None:
        self.bank.load(self.slot, state)


class TailDetector(_BankRow):
    """The single-series face of ``TailBank`` (module docstring): the default of
    ``citybrain detect`` and of the stream worker. Scores 0 for the first ``warmup``
    readings."""

    def __init__(self, window: int = 32, memory: int = 2000, short: int = 8, warmup: int = 32):
        self.bank = TailBank(window, memory, short, warmup, capacity=1)
        self.slot = self.bank.allocate()

    @property
    def warmup(self) -> int:
        return self.bank.warmup

    def learn_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> None:
        self.score_many(xs, ts)


class TailSlot(_BankRow):
    """One sensor's row in a shared ``TailBank``, as a ``Detector``: what a stream
    worker keeps per sensor (a handle; the numbers live in the bank's array). The slot
    returns to the bank when the handle is garbage-collected. ``clone`` takes a fresh
    slot of the same bank."""

    def __init__(self, bank: TailBank, slot: int | None = None) -> None:
        self.bank = bank
        self.slot = bank.allocate() if slot is None else slot
        weakref.finalize(self, bank.release, self.slot)

    def clone(self) -> TailSlot:
        return TailSlot(self.bank)


def mean_interval(detector: object) -> float:
    """The mean interval between a sensor's readings (s) its tail state has learned from
    their times: a live ``TailDetector`` or ``TailSlot``, or a ``record`` document (either
    form). 0.0 when it is not known: readings without times, fewer than two of them, a
    record written before version 3 (which did not keep it), or not a tail state at all.
    Never raises."""
    if isinstance(detector, _BankRow):
        return float(detector.bank.state[detector.slot, _STEP])
    if not isinstance(detector, dict) or detector.get("v") != VERSION:
        return 0.0
    packed = detector.get("row")
    try:
        if isinstance(packed, str):
            packed = base64.b64decode(packed)
        if not isinstance(packed, (bytes, bytearray, memoryview)) or len(packed) < 8 * _SCALARS:
            return 0.0
        step = float(np.frombuffer(packed, dtype="<f8", count=1, offset=8 * _STEP)[0])
    except (TypeError, ValueError):
        return 0.0
    return step if math.isfinite(step) and step > 0.0 else 0.0
