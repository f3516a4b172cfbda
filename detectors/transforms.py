"""Input transforms that wrap a detector: score the change between readings, or their
short moving average, instead of the raw value.

A jump in a noisy series stands out in its first difference; a sustained rise that no
single reading gives away stands out in a moving average. Wrapping keeps each base
detector simple and lets an ensemble look at one series through several lenses.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from detectors.base import (
    Detector,
    FloatArray,
    GlitchGuard,
    GuardedDetector,
    check_time,
    check_times,
    check_value,
    check_values,
    far_glitch,
    far_glitches,
    pack_floats,
    require_detector,
    require_int,
    require_number,
    unpack_floats,
)


class Differenced(Detector):
    """Feeds ``x - previous x`` to ``base``; the first observation scores 0."""

    def __init__(self, base: Detector) -> None:
        require_detector("base", base)
        self.base = base
        self.previous_: float | None = None

    def score_one(self, x: float, t: float | None = None) -> float:
        value = check_value(x)
        t = check_time(t)
        if self.previous_ is None:
            return 0.0
        return self.base.score_one(value - self.previous_, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        t = check_time(t)
        if self.previous_ is not None:
            self.base.learn_one(value - self.previous_, t)
        self.previous_ = value

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        out = np.zeros(arr.size)
        start = 1 if self.previous_ is None else 0
        if arr.size > start:
            before = np.concatenate([[self.previous_ if start == 0 else arr[0]], arr[:-1]])
            diffs = (arr - before)[start:]
            out[start:] = self.base.score_many(diffs, None if times is None else times[start:])
        self.previous_ = float(arr[-1])
        return out

    def get_params(self) -> dict[str, Any]:
        return {"base": self.base.clone()}

    def get_state(self) -> dict[str, Any]:
        return {"base": self.base.get_state(), "previous": self.previous_}

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state["base"])
        self.previous_ = state["previous"]


class MovingAverage(Detector):
    """Feeds the mean of the last ``size`` observations (this one included) to ``base``;
    scores 0 until ``size`` observations have been seen."""

    def __init__(self, base: Detector, size: int = 6) -> None:
        require_detector("base", base)
        require_int("size", size, 2)
        self.base = base
        self.size = size
        self.recent_: deque[float] = deque(maxlen=size - 1)

    def _mean_with(self, value: float) -> float | None:
        if len(self.recent_) < self.size - 1:
            return None
        if self.size < 8:
            # numpy sums fewer than 8 values left to right, so this loop gives the batch
            # path's float exactly, without numpy's per-call cost.
            total = 0.0
            for v in self.recent_:
                total += v
            return (total + value) / self.size
        # The same reduction as the batch path's sliding view, so both give equal scores.
        window = np.fromiter([*self.recent_, value], dtype=np.float64, count=self.size)
        return float(window[None, :].mean(axis=1)[0])

    def score_one(self, x: float, t: float | None = None) -> float:
        mean = self._mean_with(check_value(x))
        t = check_time(t)
        return 0.0 if mean is None else self.base.score_one(mean, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        value = check_value(x)
        t = check_time(t)
        mean = self._mean_with(value)
        if mean is not None:
            self.base.learn_one(mean, t)
        self.recent_.append(value)

    def score_many(
        self, xs: Sequence[float] | FloatArray, ts: Sequence[float] | FloatArray | None = None
    ) -> FloatArray:
        arr = check_values(xs)
        times = check_times(ts, arr.size)
        joined = np.concatenate([np.fromiter(self.recent_, dtype=np.float64), arr])
        out = np.zeros(arr.size)
        # Row i of the batch has a full window once joined holds size values up to it.
        first = max(0, self.size - 1 - len(self.recent_))
        if arr.size > first:
            means = sliding_window_view(joined, self.size).mean(axis=1)[-(arr.size - first) :]
            out[first:] = self.base.score_many(means, None if times is None else times[first:])
        self.recent_.extend(arr[-(self.size - 1) :].tolist())
        return out

    def get_params(self) -> dict[str, Any]:
        return {"base": self.base.clone(), "size": self.size}

    def get_state(self) -> dict[str, Any]:
        return {"base": self.base.get_state(), "recent": list(self.recent_)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state["base"])
        self.recent_ = deque((float(v) for v in state["recent"]), maxlen=self.size - 1)


def _echo(value: float, reference: float) -> bool:
    """True when ``reference`` is a far glitch against ``value`` (and the larger): the
    difference would show the old glitch again, not anything about ``value``."""
    return abs(reference) > abs(value) and far_glitch(reference, value, 0.0)


def _echoes(values: FloatArray, references: FloatArray) -> npt.NDArray[np.bool_]:
    """``_echo`` row by row."""
    far = far_glitches(references, values, np.zeros(values.size))
    return np.asarray((np.abs(references) > np.abs(values)) & far, dtype=bool)


class DayOverDay(GuardedDetector):
    """Feeds ``x`` minus the value one ``period`` earlier (seconds; a day by default) to
    ``base``: a daily pattern broken in shape — a dip that skips a day, a plateau at the
    wrong hour — stands out there while every single value looks ordinary.

    The reference is the last of the ``keep`` previous readings taken at or before
    ``t - period``; with no such reading (the first day, a gap, no times) the row scores
    0 and ``base`` learns nothing from it. Nor does a reading whose reference is a far
    glitch against it (``_echo``: a 1e308 a day ago), which was a second, false alarm a
    day after every sentinel (t63). A reading whose time goes back (a clock set back, two
    readings swapped) is kept at the latest time so far: the times kept never decrease,
    so the binary search of both paths finds the same reference (t74: unsorted, the two
    paths disagreed on most rows after the first step back). A reading whose time goes
    back more than a period drops what is kept after its time first: that was an odd
    time ahead, one reading's clock jump (a gateway's clock, a reading in milliseconds),
    which the stream and ``citybrain detect`` take and then go back from; held at it,
    every later time was too, and no reading found a reference until that time came
    (t212: a year ahead, blind for a year, 0.69 to 0.00 for a 8-sigma shape break);
    unless more readings are kept after its time than before it: then it is the odd
    one (a lone reading a year in the past, which no door passes on), kept at the latest
    time as before. A far glitch
    (``detectors.base.GuardedDetector``) scores 1, without a reference too (it scored 0
    on the first day), and is not kept.
    """

    def __init__(self, base: Detector, period: float = 86_400.0, keep: int = 3000) -> None:
        require_detector("base", base)
        require_number("period", period, above=0)
        require_int("keep", keep, 1)
        self.base = base
        self.period = float(period)
        self.keep = keep
        self.times_: deque[float] = deque(maxlen=keep)
        self.values_: deque[float] = deque(maxlen=keep)
        self.guard_ = GlitchGuard()

    def _reference(self, t: float | None, value: float) -> float | None:
        if t is None or not self.times_ or self.times_[0] > t - self.period:
            return None
        reference = self.values_[bisect.bisect_right(self.times_, t - self.period) - 1]
        return None if _echo(value, reference) else reference

    def _score_value(self, value: float, t: float | None) -> float:
        reference = self._reference(t, value)
        return 0.0 if reference is None else self.base.score_one(value - reference, t)

    def _learn_value(self, value: float, t: float | None) -> None:
        if t is None:
            return
        reference = self._reference(t, value)
        if reference is not None:
            self.base.learn_one(value - reference, t)
        if self.times_ and t < self.times_[-1] - self.period:
            # The clock went back more than a period: what is kept after ``t``, when
            # fewer readings than those at or before it, was an odd time ahead (a clock
            # jump the stream and ``citybrain detect`` take, one reading's), not
            # history. Held there, it held every later time too, and no reading found a
            # reference until that time came (t212). When more, ``t`` is the odd one.
            after = len(self.times_) - bisect.bisect_right(self.times_, t)
            if after < len(self.times_) - after:
                for _ in range(after):
                    self.times_.pop()
                    self.values_.pop()
        self.times_.append(max(float(t), self.times_[-1]) if self.times_ else float(t))
        self.values_.append(value)

    def _score_admitted(self, arr: FloatArray, times: FloatArray | None) -> FloatArray:
        out = np.zeros(arr.size)
        if times is None:
            return out
        # Vectorised up to the first row whose time goes back more than a period from
        # the latest time kept (it drops what it goes back past: ``_learn_value``),
        # that row one at a time, and on.
        start = 0
        while start < arr.size:
            latest = self.times_[-1] if self.times_ else -np.inf
            running = np.maximum.accumulate(np.concatenate([[latest], times[start:]]))[:-1]
            back = np.flatnonzero(times[start:] < running - self.period)
            stop = arr.size if back.size == 0 else start + int(back[0])
            if start < stop:
                out[start:stop] = self._score_sorted(arr[start:stop], times[start:stop])
            if stop < arr.size:
                out[stop] = self._score_value(float(arr[stop]), float(times[stop]))
                self._learn_value(float(arr[stop]), float(times[stop]))
            start = stop + 1
        return out

    def _score_sorted(self, arr: FloatArray, times: FloatArray) -> FloatArray:
        """``_score_admitted`` for rows none of which goes back more than a period."""
        out = np.zeros(arr.size)
        h = len(self.times_)
        # Kept as learn_one keeps them: never earlier than the latest before (sorted).
        all_times = np.maximum.accumulate(
            np.concatenate([np.fromiter(self.times_, dtype=np.float64), times])
        )
        all_values = np.concatenate([np.fromiter(self.values_, dtype=np.float64), arr])
        rows = h + np.arange(arr.size)  # each row's place in the joined history
        # Row j sees only the keep readings before it, as the one-at-a-time path does:
        # the last of them at or before its t - period (which rounds to t itself past
        # 2**53 periods, where the search would find the row itself).
        found = np.minimum(
            np.searchsorted(all_times, times - self.period, side="right") - 1, rows - 1
        )
        usable = (found >= 0) & (found >= rows - self.keep)
        references = all_values[np.maximum(found, 0)]
        usable &= ~_echoes(arr, references)
        if usable.any():
            diffs = arr[usable] - all_values[found[usable]]
            out[usable] = self.base.score_many(diffs, times[usable])
        self.times_.extend(all_times[h:][-self.keep :].tolist())
        self.values_.extend(arr[-self.keep :].tolist())
        return out

    def get_params(self) -> dict[str, Any]:
        return {"base": self.base.clone(), "period": self.period, "keep": self.keep}

    def get_state(self) -> dict[str, Any]:
        return {
            "base": self.base.get_state(),
            "times": pack_floats(self.times_),
            "values": pack_floats(self.values_),
            "guard": self.guard_.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state["base"])
        # (a state written before t74 may hold times that go back: kept sorted here too)
        times = np.maximum.accumulate(np.asarray(unpack_floats(state["times"]), np.float64))
        self.times_ = deque(times.tolist(), maxlen=self.keep)
        self.values_ = deque(unpack_floats(state["values"]), maxlen=self.keep)
        self.guard_.set_state(state.get("guard"))
