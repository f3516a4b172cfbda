"""detectors/base.py: the far-glitch rule and the shared GlitchGuard."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from detectors.base import (
    ABSURD_ABOVE,
    GlitchGuard,
    check_value,
    check_values,
    far_glitch,
    far_glitches,
)


def test_with_no_history_only_an_absurd_reading_is_far() -> None:
    values = check_values([1e308, -1.7976931348623157e308, 1e100, 1e101, 10.0, 5e-324])
    nan = np.full(values.size, math.nan)
    expected = [True, True, False, True, False, False]
    assert far_glitches(values, nan, nan).tolist() == expected
    assert [far_glitch(v, math.nan, math.nan) for v in values.tolist()] == expected
    assert check_value(1e101) > ABSURD_ABOVE > 1e100


def _glitchy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xs = 10 + rng.normal(0, 0.3, n)
    for at in rng.integers(0, n, 6):
        xs[at] = rng.choice([1e308, -1e308, 1.7976931348623157e308])
    xs[0] = 1e308  # no history yet: far
    return check_values(xs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_many_is_check_row_by_row_across_blocks_and_a_restart(seed: int) -> None:
    xs = _glitchy(3 * GlitchGuard.BLOCK * GlitchGuard.BLOCKS // 2, seed)
    one = GlitchGuard()
    expected = [one.check(x) for x in xs.tolist()]
    many = GlitchGuard()
    cuts = [0, 1, 63, 64, 65, 500, 2100, xs.size]
    got: list[bool] = []
    for a, b in itertools.pairwise(cuts):
        got.extend(many.check_many(xs[a:b]).tolist())
        restored = GlitchGuard()
        restored.set_state(json.loads(json.dumps(many.get_state())))
        many = restored
    assert got == expected
    assert expected[0] and sum(expected) >= 2
    assert many.get_state() == one.get_state()


def test_a_state_written_before_the_guard_starts_it_empty() -> None:
    guard = GlitchGuard()
    guard.check_many(check_values(10 + np.arange(100) * 0.01))
    guard.set_state(None)
    assert guard.get_state() == GlitchGuard().get_state()
    assert guard.check(1e308) and not guard.check(10.0) and guard.check(1e308)
