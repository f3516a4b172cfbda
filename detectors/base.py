"""The contract every detector follows (modelled on river's anomaly detectors).

``score_one`` returns how anomalous an observation is, in [0, 1], *before* the detector
learns from it; ``learn_one`` then folds it into the state. ``score_many`` is the
vectorised path for a batch of consecutive observations of one series: it returns the
same scores as alternating ``score_one``/``learn_one`` row by row, and learns the batch.
State is bounded and serialisable (``get_state``/``set_state``) so a stream processor can
keep it in a changelog-backed table.

Every call also takes the observation's time (``t``, seconds since the epoch; ``ts`` for a
batch). Detectors that model time of day or gaps need it; the others ignore it.

Every detector also judges each reading a far glitch or not (``far_one``, before learning
it, as ``score_one``; ``score_far_many`` for a batch, with the same scores as
``score_many`` and the same judgements as ``far_one`` row by row): a reading many
decades beyond anything the state it is scored against has seen, in the series' own
scale (``far_glitch``: further than ``FAR`` times the larger of the state's spread and
its level's size from its level; with no history yet, beyond ``ABSURD_ABOVE``). A far
glitch scores ``FAR_GLITCH_SCORE`` (1) and is not learned; the stream routes a lone one
as a suspected sensor fault, not as an event decisive by its score (docs/detectors.md).
"""

from __future__ import annotations

import base64
import copy
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.errors import DetectorInputError, DetectorParameterError, DetectorStateError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def pack_floats(values: Collection[float]) -> str:
    """Floats as packed little-endian float64 in base64, for ``get_state``: a third the
    size of a JSON list and an order of magnitude cheaper to encode, and exact."""
    packed = np.fromiter(values, dtype="<f8", count=len(values)).tobytes()
    return base64.b64encode(packed).decode("ascii")


def unpack_floats(packed: str | list[float]) -> list[float]:
    """The floats ``pack_floats`` packed (or a JSON list of them: states written before a
    detector packed its floats). Raises ``DetectorStateError`` for one that is not finite:
    no detector keeps one in its state (t163: a window of NaN read back from a changelog
    scored every reading NaN)."""
    if isinstance(packed, list):
        values = [float(v) for v in packed]
    else:
        values = np.frombuffer(base64.b64decode(packed), dtype="<f8").tolist()
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise DetectorStateError(f"state holds {value!r} at place {i}: no finite number")
    return values


def check_state_document(document: Any, where: str = "state") -> None:
    """Raise ``DetectorStateError`` naming the place of the first float of ``document``
    (a ``get_state`` document: mappings, lists, numbers, text) that is not finite: no
    detector writes one (its document is JSON, which has none), so such a document read
    back is corrupt, and taken it scores NaN or nothing for good (t163: an ewma_cusum
    mean of NaN scored every later reading 0, a windowed_gaussian window of NaN NaN)."""
    if isinstance(document, float):
        if not math.isfinite(document):
            raise DetectorStateError(f"{where} is {document!r}: no finite number")
    elif isinstance(document, dict):
        for key, value in document.items():
            check_state_document(value, f"{where}.{key}")
    elif isinstance(document, list | tuple):
        for i, value in enumerate(document):
            check_state_document(value, f"{where}[{i}]")


# A finite reading beyond COMPRESS_ABOVE (2**341, about 4.5e102: far beyond any physical
# quantity) enters the detectors log-compressed, ``sign * SCALE * (1 + ln(|x| / SCALE))``
# with SCALE = 2**332, which lands it between 7 and 481 SCALE: DBL_MAX becomes about
# 4.2e102, 1e307 about 4.16e102. Every difference, mean, square and sum of millions of
# squares then stays finite, so a sentinel like 1e308 scores as a clear anomaly instead of
# overflowing to inf or NaN and poisoning the state (issue 12 item 3). The image lies in
# the unchanged range, so mapping twice (a composite detector and its member) is mapping
# once, and order is kept everywhere except among readings that are all absurd already.
SCALE = 2.0**332
COMPRESS_ABOVE = 2.0**341


def _compress(value: float) -> float:
    # np.log, not math.log: the batch path's np.log must give the same bits.
    return math.copysign(SCALE * (1.0 + float(np.log(abs(value) / SCALE))), value)


def _as_float(x: Any) -> float | None:
    """``x`` as a float, or None when it is no number (None, text, a list): ``float()``
    would raise a TypeError for None and parse text such as "12" or "nan". An integer
    past a double's range (2**1024 and beyond) is infinite here, refused as not finite
    like 1e400 (t212: ``float()`` raised OverflowError, a traceback out of every
    detector, one at a time and in a batch)."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.number):
        return None
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _shown(x: Any) -> str:
    """``x`` as a message shows it: its repr, an integer of more than 40 digits cut in
    the middle with its length said (2**1024 has 309)."""
    if isinstance(x, int) and not isinstance(x, bool):
        digits = str(abs(x))
        if len(digits) > 40:
            sign = "-" if x < 0 else ""
            return f"{sign}{digits[:12]}...{digits[-6:]} (an integer of {len(digits)} digits)"
    return repr(x)


def check_value(x: float) -> float:
    """Return ``x`` as a float in the detectors' safe domain (``COMPRESS_ABOVE``), or raise
    DetectorInputError for NaN, infinities and anything that is no number (None, text,
    a bool)."""
    value = _as_float(x)
    if value is None or not math.isfinite(value):
        raise DetectorInputError(f"observation is {_shown(x)}, expected a finite number")
    return value if abs(value) <= COMPRESS_ABOVE else _compress(value)


def safe_domain(arr: FloatArray) -> FloatArray:
    """Finite values mapped as ``check_value`` maps them (a copy only if one is extreme)."""
    big = np.abs(arr) > COMPRESS_ABOVE
    if not big.any():
        return arr
    out = arr.copy()
    out[big] = np.copysign(SCALE * (1.0 + np.log(np.abs(arr[big]) / SCALE)), arr[big])
    return out


# The smallest spread a detector divides by, whatever the units (t93). A spread below
# RESOLUTION times the level's size is the rounding of a float64 at that level (four
# ulps, 2**-50: tail's floor since t78), not the sensor's; below TINY_SPREAD (2**-600,
# about 2.4e-181) a spread is nil at any level: a series of exact zeros that moves at all
# has moved infinitely far, and no difference of values in the safe domain (under 2**342)
# divided by it overflows. Until t93 detectors floored their spreads at constants in the
# reading's units (1e-12, 1e-9, 1e-6, 1e-9 of the level, 5 % of the level), so a
# sensor reporting in other units (1e-9 A, or a level of 1e12, or Kelvin) scored
# differently, and was blind at some scales.
RESOLUTION = 2.0**-50
TINY_SPREAD = 2.0**-600


def resolution(level: float) -> float:
    """The smallest spread worth dividing by at ``level`` (its rounding, ``RESOLUTION *
    |level|``, at least ``TINY_SPREAD``), in the reading's units."""
    return max(RESOLUTION * abs(level), TINY_SPREAD)


def resolutions(levels: Any) -> Any:
    """``resolution`` elementwise (NaN levels give NaN)."""
    return np.maximum(RESOLUTION * np.abs(levels), TINY_SPREAD)


# A reading further from its series' level than FAR times the larger of the series'
# spread, the level's own size and 1 (in the reading's units) is a far glitch: a sentinel
# such as 1e308 or DBL_MAX, no measurement (a unit mistake is a factor of 1,000). It
# scores as the anomaly it is, but a detector that keeps a mean, a variance or a range
# does not learn it: taken in, one glitch left their spread so wide that every real
# spike after it scored near 0, for the length of their memory (t63: windowed_gaussian's
# 6,400 readings, ewma_cusum's variance about 47,000).
FAR = 1e6
# A reading beyond ABSURD_ABOVE (7 SCALE, about 6.1e100) is absurd on its own, whatever
# the series: ``check_value`` maps everything beyond COMPRESS_ABOVE above it, and no
# physical quantity comes near it. It judges a reading with no history to judge it by.
ABSURD_ABOVE = 7.0 * SCALE


def far_glitch(value: float, center: float, spread: float) -> bool:
    """True when ``value`` lies further than ``FAR * max(spread, |center|)`` from
    ``center``; all three in the safe domain (``check_value``), so nothing overflows.
    With no history yet (a NaN ``center``), a reading beyond ``ABSURD_ABOVE`` is far and
    any other is not; a NaN ``spread`` alone is never far. A series of exact zeros
    (``spread`` and ``center`` 0) has no scale of its own: there the scale is 1 in the
    reading's units (a gauge at 0 that reads 1e12 once). Until t93 the scale was at
    least 1 in the reading's units everywhere, so in nanoamperes (a level of 1e-9) a
    glitch of 1e3 was no glitch, was learned, and blinded windowed_gaussian, ewma_cusum,
    tail and the ensemble to a 50-sigma spike 30 readings later (scored 0.04, 0.01, 0
    and 0; 1.0, 0.91, 0.89 and 0.47 in amperes)."""
    if math.isnan(center):
        # A sentinel as a series' first reading would otherwise be its level: every
        # reading after it (a million times nearer zero) looked ordinary against it.
        return abs(value) > ABSURD_ABOVE
    scale = max(spread, abs(center))
    return abs(value - center) > FAR * (scale if scale != 0.0 else 1.0)


# A level that really moved a million-fold (no sentinel) is followed once this many far
# readings in a row agree among themselves and none is absurd (tail's location window:
# it follows such a level within half of it). Sentinels never form such a run.
FOLLOW = 32

FarRun = tuple[float, float, int]  # the far readings in a row: lowest, highest, count


def far_run_after(run: FarRun | None, value: float) -> FarRun | None:
    """The run of far readings in a row once far ``value`` (safe domain) is counted into
    ``run``: a new run when it is far against the run's own range, none when absurd
    (``ABSURD_ABOVE``). The run is a level to follow once its count reaches ``FOLLOW``."""
    if abs(value) > ABSURD_ABOVE:
        return None
    if run is None or far_glitch(value, (run[0] + run[1]) / 2.0, run[1] - run[0]):
        return (value, value, 1)
    return (min(run[0], value), max(run[1], value), run[2] + 1)


def far_glitches(values: FloatArray, centers: FloatArray, spreads: FloatArray) -> npt.NDArray[Any]:
    """``far_glitch`` row by row, as a boolean array."""
    with np.errstate(invalid="ignore"):
        scale = np.maximum(spreads, np.abs(centers))
        # (A series of exact zeros has no scale of its own: 1 in the reading's units.)
        far = np.abs(values - centers) > FAR * np.where(scale == 0.0, 1.0, scale)
    far |= np.isnan(centers) & (np.abs(values) > ABSURD_ABOVE)
    return np.asarray(far, dtype=bool)


class GlitchGuard:
    """Which readings of one series are far glitches, for a detector whose own state has
    no level and spread to judge them by (a pattern's range, a score history, a forest's
    fit data): ``far_glitch`` against the middle and width of the range of the series'
    recent readings, far glitches left out, kept as the lowest and highest of each block of
    ``BLOCK`` admitted readings over the last ``BLOCKS`` blocks (2,048 readings). With no
    reading yet only an absurd one (``ABSURD_ABOVE``) is far.

    A level that really moved a million-fold is followed: after ``FOLLOW`` far readings in
    a row that are not absurd and agree among themselves (none far against the run's own
    range), the run becomes the guard's whole memory and the reading is admitted (until
    t78 every reading of such a level was far for good: the ensemble, guarded, scored each
    one 1). Sentinels (beyond ``ABSURD_ABOVE``) never form such a run.

    ``check(x)`` judges one reading and admits it unless far; ``check_many(xs)`` does the
    same for a batch in order and returns the far rows as a boolean array.
    """

    BLOCK = 64
    BLOCKS = 32
    FOLLOW = FOLLOW

    def __init__(self) -> None:
        self.blocks_: deque[tuple[float, float]] = deque(maxlen=self.BLOCKS)
        self.current_: tuple[float, float] | None = None  # the filling block's range
        self.count_ = 0  # readings admitted into the filling block
        self._held: tuple[float, float] | None = None  # the full blocks' range, cached
        self.run_: tuple[float, float] | None = None  # the far readings in a row, a range
        self.run_count_ = 0

    def _range(self) -> tuple[float, float]:
        """The lowest and highest admitted reading in memory (NaN, NaN: none)."""
        if self._held is None:
            self._held = (
                (min(b[0] for b in self.blocks_), max(b[1] for b in self.blocks_))
                if self.blocks_
                else (math.nan, math.nan)
            )
        low, high = self._held
        if self.current_ is not None:
            low = self.current_[0] if math.isnan(low) else min(low, self.current_[0])
            high = self.current_[1] if math.isnan(high) else max(high, self.current_[1])
        return low, high

    def _far_from_range(self, value: float) -> bool:
        low, high = self._range()
        return far_glitch(value, (low + high) / 2.0, high - low)

    def far(self, value: float) -> bool:
        """Whether ``value`` (in the safe domain) is a far glitch (``check`` would not
        admit it); admits nothing."""
        return self._far_from_range(value) and self._run_after(value)[1] < self.FOLLOW

    def _admit(self, low: float, high: float, count: int) -> None:
        """Admit ``count`` readings spanning ``low``..``high``, all in the filling block."""
        c = self.current_
        self.current_ = (low, high) if c is None else (min(c[0], low), max(c[1], high))
        self.count_ += count
        if self.count_ == self.BLOCK:
            self.blocks_.append(self.current_)
            self.current_, self.count_, self._held = None, 0, None

    def check(self, value: float) -> bool:
        """Whether ``value`` is a far glitch; if not, it is admitted into the range."""
        if self._far_from_range(value):
            run, count = self._run_after(value)
            if count < self.FOLLOW:
                self.run_, self.run_count_ = run, count
                return True
            # The run is a level: it becomes the guard's whole memory.
            self.blocks_.clear()
            self.current_, self.count_, self._held = None, 0, None
            self.run_, self.run_count_ = None, 0
            assert run is not None
            self._admit(run[0], run[1], 1)
            return False
        self.run_, self.run_count_ = None, 0
        self._admit(value, value, 1)
        return False

    def _run_after(self, value: float) -> tuple[tuple[float, float] | None, int]:
        """``far_run_after`` on the guard's run, as (range, count)."""
        run = None if self.run_ is None else (*self.run_, self.run_count_)
        after = far_run_after(run, value)
        return (None, 0) if after is None else ((after[0], after[1]), after[2])

    def check_many(self, values: FloatArray) -> npt.NDArray[np.bool_]:
        """``check`` row by row, in order (vectorised while no row is far)."""
        far = np.zeros(values.size, dtype=bool)
        start = 0
        while start < values.size:
            stop = min(values.size, start + self.BLOCK - self.count_)  # within one block
            chunk = values[start:stop]
            low, high = self._range()
            lows = np.fmin.accumulate(np.concatenate([[low], chunk]))[:-1]
            highs = np.fmax.accumulate(np.concatenate([[high], chunk]))[:-1]
            if far_glitches(chunk, (lows + highs) / 2.0, highs - lows).any():
                # A far row is left out of the range the rows after it see: in order.
                for i, value in enumerate(values[start:].tolist()):
                    far[start + i] = self.check(value)
                return far
            self.run_, self.run_count_ = None, 0
            self._admit(float(chunk.min()), float(chunk.max()), chunk.size)
            start = stop
        return far

    def get_state(self) -> dict[str, Any]:
        """The blocks' ranges, the filling block's and its count, as JSON data."""
        return {
            "blocks": pack_floats([v for block in self.blocks_ for v in block]),
            "current": None if self.current_ is None else list(self.current_),
            "count": self.count_,
            "run": None if self.run_ is None else [*self.run_, self.run_count_],
        }

    def set_state(self, state: dict[str, Any] | None) -> None:
        """Restore ``get_state``'s data (None: a state written before the guard, empty)."""
        self.blocks_.clear()
        self.current_, self.count_, self._held = None, 0, None
        self.run_, self.run_count_ = None, 0
        if state is None:
            return
        flat = unpack_floats(state["blocks"])
        self.blocks_.extend(zip(flat[::2], flat[1::2], strict=True))
        current = state["current"]
        self.current_ = None if current is None else (float(current[0]), float(current[1]))
        self.count_ = int(state["count"])
        run = state.get("run")  # (none in a state written before t78)
        self.run_ = None if run is None else (float(run[0]), float(run[1]))
        self.run_count_ = 0 if run is None else int(run[2])


# What a guarded detector scores a far glitch: a reading a million spreads from all the
# series has said is an anomaly whatever its view (a shape, a sustained rise in a score,
# a forest of windows). Scored by the view alone, DBL_MAX among readings near 10 was 0.21
# under likelihood (the threshold is 0.22), 0.25 under pattern and 0 under a fitted
# isolation_forest (t74).
FAR_GLITCH_SCORE = 1.0


def score_guarded(
    guard: GlitchGuard,
    xs: Sequence[float] | FloatArray,
    ts: Sequence[float] | FloatArray | None,
    score_run: Callable[[FloatArray, FloatArray | None], FloatArray],
) -> tuple[FloatArray, BoolArray]:
    """A guarded detector's ``score_far_many``: ``xs`` (and ``ts``) checked, then scored
    in order: each run of rows that are not far glitches by ``guard`` by ``score_run``
    (which scores and learns them, vectorised), each far row ``FAR_GLITCH_SCORE``, not
    learned. Returns the scores and the far rows (a boolean array as long). Raises as
    ``check_values``/``check_times``."""
    arr = check_values(xs)
    times = check_times(ts, arr.size)
    far = guard.check_many(arr)
    if not far.any():
        return score_run(arr, times), far
    out = np.empty(arr.size, dtype=np.float64)
    start = 0
    for i in [*np.flatnonzero(far).tolist(), arr.size]:
        if start < i:
            out[start:i] = score_run(arr[start:i], None if times is None else times[start:i])
        if i < arr.size:
            out[i] = FAR_GLITCH_SCORE
        start = i + 1
    return out, far


def require_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Raise a DetectorParameterError naming ``name`` unless ``value`` is an integer in
    ``[minimum, maximum]``."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = (
            f"an integer >= {minimum}"
            if maximum is None
            else f"an integer between {minimum} and {maximum}"
        )
        raise DetectorParameterError(f"parameter {name} is {value!r}, expected {expected}")


def require_detector(name: str, value: Any) -> None:
    """Raise a DetectorParameterError naming ``name`` unless ``value`` is a Detector."""
    if not isinstance(value, Detector):
        raise DetectorParameterError(f"parameter {name} is {value!r}, expected a Detector")


def require_number(
    name: str,
    value: Any,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> None:
    """Raise a DetectorParameterError naming ``name`` unless ``value`` is a finite number
    within the given bounds."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (above is None or value > above)
        and (at_least is None or value >= at_least)
        and (below is None or value < below)
    )
    if not ok:
        bounds = [
            f"{op} {bound}"
            for op, bound in ((">", above), (">=", at_least), ("<", below))
            if bound is not None
        ]
        raise DetectorParameterError(
            f"parameter {name} is {value!r}, expected a finite number {' and '.join(bounds)}"
        )


def _numbers(xs: Any, what: str) -> FloatArray:
    """``xs`` as a float64 array, refusing an entry that is no number (None, text, a
    bool) by its place and value: ``np.asarray(..., dtype=float64)`` turned None into a
    NaN the message then named, and "12" into 12.0. An integer past a double's range
    is refused as sent, not as the inf it would be (t212: an OverflowError before)."""
    if isinstance(xs, list | tuple) and not all(type(x) is float for x in xs):
        # (A bool in a list of floats becomes 1.0 in numpy's array, unseen below.)
        for i, x in enumerate(xs):
            _check_entry(x, i, what)
    raw = np.asarray(xs)
    if raw.dtype.kind in "fiu":
        return np.asarray(raw, dtype=np.float64)
    # The entries as given (numpy turns [1, "x"] into the strings "1" and "x").
    items = list(xs) if isinstance(xs, list | tuple) else raw.ravel().tolist()
    for i, x in enumerate(items if raw.ndim else [raw.item()]):
        _check_entry(x, i, what)
    return np.asarray(raw, dtype=np.float64)


def _check_entry(x: Any, i: int, what: str) -> None:
    """Raise DetectorInputError naming entry ``i`` of a batch when it is no number, or an
    integer past a double's range (which ``np.asarray`` could not convert)."""
    value = _as_float(x)
    if value is None or (isinstance(x, int) and math.isinf(value)):
        raise DetectorInputError(f"{what} {i} is {_shown(x)}, expected a finite number")


def check_time(t: Any) -> float | None:
    """``t`` as a float (None stays None: no time), or raise DetectorInputError for a time
    that is no finite number, as ``check_times`` does for a batch (t93: one at a time,
    "abc" raised a TypeError in the ensemble, seasonal and stuck, and a NaN time was
    taken in silently by all but tail)."""
    if t is None:
        return None
    value = _as_float(t)
    if value is None or not math.isfinite(value):
        raise DetectorInputError(f"time is {_shown(t)}, expected a finite number")
    return value


def check_times(ts: Sequence[float] | FloatArray | None, n: int) -> FloatArray | None:
    """Return ``ts`` as a float array of length ``n`` (or None), refusing non-finite times
    and entries that are no number."""
    if ts is None:
        return None
    arr = _numbers(ts, "time")
    if arr.shape != (n,):
        raise DetectorInputError(f"times have shape {arr.shape}, expected ({n},) like the values")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise DetectorInputError(f"time {i} is {arr[i].item()!r}, expected a finite number")
    return arr


def check_values(xs: Sequence[float] | FloatArray) -> FloatArray:
    """Return ``xs`` as a 1-D float array in the safe domain (``check_value``), or raise
    DetectorInputError for empty or non-finite input, or an entry that is no number."""
    arr = _numbers(xs, "observation")
    if arr.ndim != 1:
        raise DetectorInputError(f"observations have shape {arr.shape}, expected one dimension")
    if arr.size == 0:
        raise DetectorInputError("observations are empty, expected at least one value")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise DetectorInputError(f"observation {i} is {arr[i].item()!r}, expected a finite number")
    return safe_domain(arr)


class Detector(ABC):
    """Base class: parameters are plain ``__init__`` keywords, learned state ends in ``_``."""

    @abstractmethod
    def learn_one(self, x: float, t: float | None = None) -> None:
        """Fold one observation into the state."""

    def _score_rows(self, arr: FloatArray) -> FloatArray:
        """Score then learn each row of ``arr`` (already checked) one at a time: the
        exact path a vectorised ``score_many`` falls back on."""
        out = np.empty(arr.size)
        for i, x in enumerate(arr.tolist()):
            out[i] = self.score_one(x)
            self.learn_one(x)
        return out

    def _score_far_rows(
        self, arr: FloatArray, times: FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        """``_score_rows`` with each row's ``far_one`` (taken before it is learned), for
        ``score_far_many``: ``arr`` and ``times`` already checked. A far glitch scores
        ``FAR_GLITCH_SCORE``, so only a row scoring that is asked."""
        out = np.empty(arr.size)
        far = np.zeros(arr.size, dtype=bool)
        stamps: list[float | None] = [None] * arr.size if times is None else times.tolist()
        for i, (x, t) in enumerate(zip(arr.tolist(), stamps, strict=True)):
            out[i] = self.score_one(x, t)
            far[i] = out[i] >= FAR_GLITCH_SCORE and self.far_one(x, t)
            self.learn_one(x, t)
        return out, far

    @abstractmethod
    def score_one(self, x: float, t: float | None = None) -> float:
        """Score one observation in [0, 1] without learning it."""

    def far_one(self, x: float, t: float | None = None) -> bool:
        """Whether ``x`` at ``t`` is a far glitch for the state as it stands (before it is
        learned, as ``score_one``): every built-in detector judges it by ``far_glitch``
        against the level and spread its own state holds (a ``GlitchGuard`` where it
        keeps none), and scores it ``FAR_GLITCH_SCORE``. Raises as ``score_one``.

        This default, for a detector of one's own that keeps no level, judges by the
        reading alone: beyond ``ABSURD_ABOVE`` (about 6e100, a sentinel such as 1e308
        whatever the series). Overriding it, override ``score_far_many`` too or leave
        it to the default's row-by-row path."""
        value = check_value(x)
        check_time(t)
        return abs(value) > ABSURD_ABOVE

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        """``score_many``'s scores (the batch learned) and, beside them, which rows were
        far glitches: ``far_one`` of each row before it was learned, as a boolean
        array. Raises as ``score_many``."""
        if type(self).far_one is Detector.far_one:
            # (The default judges the reading alone, whatever the state.)
            arr = check_values(xs)
            return self.score_many(arr, ts), np.abs(arr) > ABSURD_ABOVE
        arr = check_values(xs)
        return self._score_far_rows(arr, check_times(ts, arr.size))

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        """Score then learn each observation in order; subclasses vectorise this."""
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        out = np.empty(arr.size, dtype=np.float64)
        for i, x in enumerate(arr.tolist()):
            t = None if times is None else float(times[i])
            out[i] = self.score_one(x, t)
            self.learn_one(x, t)
        return out

    def learn_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> None:
        """Learn a batch of observations in order."""
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        for i, x in enumerate(arr.tolist()):
            self.learn_one(x, None if times is None else float(times[i]))

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The constructor keywords, so ``type(self)(**get_params())`` is a fresh copy."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """The learned state as JSON-compatible data."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Restore state produced by ``get_state`` of a detector with the same parameters."""

    def clone(self) -> Detector:
        """A fresh, unfitted detector with the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class StepwiseDetector(Detector):
    """A detector defined by one pure step per observation: ``_step`` returns the score
    and the state after learning; ``_apply`` installs that state. Recursions (CUSUM, run
    lengths) cannot be vectorised, so the batch path is the same step in a loop."""

    @abstractmethod
    def _step(self, x: float, t: float | None) -> tuple[float, tuple[Any, ...]]:
        """The score of ``x`` at ``t`` and the state after learning it."""

    @abstractmethod
    def _apply(self, state: tuple[Any, ...]) -> None:
        """Install a state returned by ``_step``."""

    def score_one(self, x: float, t: float | None = None) -> float:
        return self._step(check_value(x), check_time(t))[0]

    def learn_one(self, x: float, t: float | None = None) -> None:
        self._apply(self._step(check_value(x), check_time(t))[1])

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        stamps: list[float | None] = [None] * arr.size if times is None else times.tolist()
        out = np.empty(arr.size)
        for i, (x, t) in enumerate(zip(arr.tolist(), stamps, strict=True)):
            out[i], state = self._step(x, t)
            self._apply(state)
        return out

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        stamps: list[float | None] = [None] * arr.size if times is None else times.tolist()
        out = np.empty(arr.size)
        far = np.zeros(arr.size, dtype=bool)
        by_value = type(self).far_one is Detector.far_one  # (the reading alone)
        for i, (x, t) in enumerate(zip(arr.tolist(), stamps, strict=True)):
            out[i], state = self._step(x, t)
            # (A far glitch scores FAR_GLITCH_SCORE: only such a row is asked.)
            far[i] = (
                abs(x) > ABSURD_ABOVE
                if by_value
                else out[i] >= FAR_GLITCH_SCORE and self.far_one(x, t)
            )
            self._apply(state)
        return out, far


class GuardedDetector(Detector):
    """A detector whose far glitches a ``GlitchGuard`` (``guard_``) judges: each scores
    ``FAR_GLITCH_SCORE``, from the series' first reading on (warm-up included), and is
    not learned, on both paths: the readings after it score as if it never came. The one
    mechanism for every detector whose own state has no level and spread to judge a
    reading by (a score history, a pattern, a forest, a day profile, flat runs, a
    discord's distances, an ensemble's gate).

    A subclass sets ``self.guard_ = GlitchGuard()`` in ``__init__``, keeps its
    ``get_state()`` under ``"guard"`` (``set_state(state.get("guard"))``: a state
    written before the guard has none), and implements ``_score_value`` (one reading,
    checked, not far: its score, nothing learned), ``_learn_value`` (learn it) and
    ``_score_admitted`` (a checked run, none far: score then learn each, in order)."""

    guard_: GlitchGuard

    @abstractmethod
    def _score_value(self, value: float, t: float | None) -> float:
        """The score of ``value`` (in the safe domain, not a far glitch) at ``t``."""

    @abstractmethod
    def _learn_value(self, value: float, t: float | None) -> None:
        """Learn ``value`` (in the safe domain, not a far glitch) at ``t``."""

    @abstractmethod
    def _score_admitted(self, arr: FloatArray, ts: FloatArray | None) -> FloatArray:
        """Score then learn each row of ``arr`` (checked, none a far glitch), in order."""

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        t = check_time(t)
        if self.guard_.far(value):
            return FAR_GLITCH_SCORE
        return self._score_value(value, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        t = check_time(t)
        if not self.guard_.check(value):
            self._learn_value(value, t)

    def far_one(self, x: float, t: float | None = None) -> bool:
        value = check_value(x)
        check_time(t)
        return self.guard_.far(value)

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        return self.score_far_many(xs, ts)[0]

    def score_far_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> tuple[FloatArray, BoolArray]:
        return score_guarded(self.guard_, xs, ts, self._score_admitted)
