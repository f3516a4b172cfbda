"""The closest registered sensor for an unknown id, at a bounded cost per minute."""

from __future__ import annotations

import time

from playbooks.grid import NEAR_ID_CACHE, NEAR_ID_LENGTH_FACTOR, NearIds


def city(n: int) -> list[str]:
    return [f"usgs-{i:08d}-water_level" for i in range(n)] + [f"dot-{i}-speed" for i in range(n)]


def test_a_typo_at_either_end_of_an_id_among_a_city_of_sensors_is_found_fast() -> None:
    near = NearIds(city(50_000))
    started = time.perf_counter()
    assert near.closest("usgs-00031415-water_levl") == "usgs-00031415-water_level"
    assert near.closest("usgx-00031415-water_level") == "usgs-00031415-water_level"
    assert near.closest("DOT-4711-speed") == "dot-4711-speed"
    # Neighbours only, not 100,000 comparisons (difflib's scan took about a second).
    assert time.perf_counter() - started < 0.2
    assert near.closest("something-else-entirely") is None


def test_fresh_lookups_are_bounded_per_minute_and_answers_are_kept() -> None:
    now = [0.0]
    near = NearIds(["gauge-1", "gauge-2", "air-1"], per_minute=2, clock=lambda: now[0])
    assert near.closest("guage-1") == "gauge-1"
    assert near.closest("air-l") == "air-1"
    assert near.closest("gauge-x9") is None  # this minute's two lookups are spent
    assert near.closest("guage-1") == "gauge-1"  # a kept answer costs no lookup
    now[0] = 60.0
    assert near.closest("gauge-x9") is not None


def test_the_kept_answers_are_bounded() -> None:
    near = NearIds(["gauge-1"], per_minute=10 * NEAR_ID_CACHE)
    for i in range(2 * NEAR_ID_CACHE):
        near.closest(f"unknown-{i}")
    assert len(near._cache) == NEAR_ID_CACHE


def test_a_megabyte_long_id_is_read_and_kept_only_as_far_as_any_known_id_reaches() -> None:
    """t80: an unknown id of a megabyte was compared whole (a third of a second each)
    and kept whole in the answers, so 1,024 of them held a gigabyte. It is read to
    NEAR_ID_LENGTH_FACTOR times the longest known id: the cache holds a bounded size,
    and the answers are those of the whole id (the known id it starts with)."""
    known = ["gauge-1", "usgs-01589330-discharge"]
    near = NearIds(known, per_minute=10 * NEAR_ID_CACHE)
    longest = max(map(len, known))
    assert near.closest("usgs-01589330-discharge" + "x" * 1_000_000) == "usgs-01589330-discharge"
    assert near.closest("q" * 1_000_000) is None
    assert near.closest("guage-1") == "gauge-1"  # short ids as before
    for i in range(NEAR_ID_CACHE):
        near.closest(f"unknown-{i}-" + "x" * 100_000)
    kept = sum(len(given) for given in near._cache)
    assert kept <= NEAR_ID_CACHE * (NEAR_ID_LENGTH_FACTOR * longest + 1)
