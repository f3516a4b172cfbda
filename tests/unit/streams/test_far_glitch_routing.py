"""A far glitch (a DBL_MAX-style sentinel, no measurement: docs/detectors.md) scores 1 in
``tail``, at or above the corroboration rule's decisive bar (0.9). Until t175 a lone one
was routed as a real event decisive on its own (a Dead Run gauge's to ``flash-flood``,
at once) instead of as a suspected sensor fault (``sensor-check``); and its mark agreed
with its neighbours' alerts. Detector -> alert -> labels -> corroboration -> route."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors import (
    DEFAULT_THRESHOLD,
    DETECTORS,
    RobustZScore,
    ScoreThreshold,
    TailDetector,
    default_threshold,
)
from detectors.tail import far_glitch_rows
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_grid, load_playbooks, load_routing
from playbooks.routing import Router
from streams.corroboration import (
    Areas,
    Policy,
    corroborate,
    new_area_state,
    on_alert,
    on_tick,
)
from streams.detection import AlertEvent, Incoming, SensorDetection
from streams.events import Reading
from streams.settings import REPO_ROOT

GAUGE = "usgs-01589330-water_level"  # Dead Run, beside its discharge gauge
CELL = "usgs-01589330"
T0 = 1_557_000_000.0
DBL_MAX = 1.7976931348623157e308
POLICY = Policy()


@pytest.fixture(scope="module")
def grid() -> Grid:
    return load_grid(REPO_ROOT / "datasets" / "grid.yaml")


@pytest.fixture(scope="module")
def router() -> Router:
    return load_routing(
        REPO_ROOT / "playbooks" / "library" / "routing.yaml", load_playbooks(PLAYBOOK_DIR)
    )


AT = 900  # the odd reading's row, after three days of a gauge at 1.7 ft
FLOOD = [5.0, 10.0, 20.0, 30.0, 40.0, 40.0]  # a flash flood's rise, feet: real


def series(*odd: float, n: int = 1000) -> list[float]:
    rng = np.random.default_rng(7)
    values = (1.7 + 0.02 * rng.standard_normal(n)).tolist()
    values[AT : AT + len(odd)] = odd
    return values


def items(values: list[float], grid: Grid) -> list[Incoming]:
    cell = grid.sensors[GAUGE].cell
    return [
        Incoming(Reading(T0 + 300 * i, GAUGE, "water_level", v, "ft", cell), 0.0, offset=i)
        for i, v in enumerate(values)
    ]


def detect(handler: SensorDetection, batch: list[Incoming], one_by_one: bool) -> Any:
    """The alerts and marks of ``batch``, in one batch or one reading per batch (the
    bank's fast path for a sensor with one reading, its per-sensor path otherwise)."""
    handler.mark_at = 0.2
    if not one_by_one:
        result = handler.process(batch, {})
        return result.alerts, result.marks
    states: dict[str, Any] = {}
    alerts, marks = [], []
    for item in batch:
        result = handler.process([item], states)
        states.update(result.states)
        alerts += result.alerts
        marks += result.marks
    return alerts, marks


def test_tail_tells_a_far_glitch_from_a_real_extreme_reading() -> None:
    times = T0 + 300 * np.arange(1000)
    scores, rarity = TailDetector().score_rarity_many(series(DBL_MAX), times)
    far = far_glitch_rows(scores, rarity)
    assert (
        scores[AT] == 1.0 and rarity[AT] == 0.0 and far.tolist() == [i == AT for i in range(1000)]
    )
    scores, rarity = TailDetector().score_rarity_many(series(*FLOOD), times)
    assert scores[AT] == 1.0 and not far_glitch_rows(scores, rarity).any()  # a measurement


@pytest.mark.parametrize("one_by_one", [False, True])
def test_a_lone_far_glitch_goes_to_sensor_check_not_flash_flood(
    grid: Grid, router: Router, one_by_one: bool
) -> None:
    """Fails on the old code: the sentinel's alert carried no sign of what it was, was
    forwarded at once as ``assessment=event`` and matched ``flash-flood``."""
    handler = SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), 3)
    alerts, marks = detect(handler, items(series(DBL_MAX), grid), one_by_one)
    firing = [a for a in alerts if a.status == "firing"]
    assert len(firing) == 1 and firing[0].score == 1.0 and firing[0].far_glitch
    # It marks no neighbour: a sentinel is no agreement with the discharge gauge's alert.
    assert all(ts != T0 + 300 * AT for _, ts, *_ in marks)
    docs = [a.document(grid) for a in alerts]
    assert all(d["labels"]["reading"] == "far_glitch" for d in docs)  # its resolution too
    areas = Areas(grid)
    state = new_area_state()
    assert on_alert(state, docs[0], 0.0, areas, POLICY) == []  # held for a neighbour
    (out,) = on_tick(state, POLICY.grace, areas, POLICY)
    labels = out["labels"]
    assert (labels["corroboration"], labels["assessment"]) == ("isolated", "suspected_sensor_fault")
    assert [r.playbook for r in router.root.match(labels)] == ["sensor-check"]


def test_a_real_extreme_reading_alone_is_still_decisive(grid: Grid, router: Router) -> None:
    handler = SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), 3)
    alerts, _ = detect(handler, items(series(*FLOOD), grid), False)
    firing = [a for a in alerts if a.status == "firing"]
    assert len(firing) == 1 and firing[0].score >= 0.9 and not firing[0].far_glitch
    doc = firing[0].document(grid)
    assert "reading" not in doc["labels"]
    (out,) = on_alert(new_area_state(), doc, 0.0, Areas(grid), POLICY)  # at once
    assert out["labels"]["assessment"] == "event"
    assert [r.playbook for r in router.root.match(out["labels"])] == ["flash-flood"]


def test_a_far_glitch_is_never_decisive_but_a_neighbour_still_corroborates(grid: Grid) -> None:
    at = T0 + 60_000
    lone = corroborate(GAUGE, at, 1.0, {}, grid, far=True)
    assert (lone.label, lone.route) == ("isolated", "suspected_sensor_fault")
    assert corroborate(GAUGE, at, 1.0, {}, grid).route == "event"  # a measurement
    seen = {"usgs-01589330-discharge": [at]}
    both = corroborate(GAUGE, at, 1.0, seen, grid, far=True)
    assert (both.label, both.route) == ("corroborated", "event")


def test_another_detector_flags_a_sentinel_beyond_absurd(grid: Grid) -> None:
    """A detector without ``tail``'s rarity (``robust_zscore``, the worker's other
    choice): a reading beyond ABSURD_ABOVE (about 6e100) is a far glitch whatever the
    series, and marks nothing."""
    handler = SensorDetection(RobustZScore(window=48, min_samples=12), ScoreThreshold(0.6), 3)
    alerts, marks = detect(handler, items(series(1e308), grid), False)
    firing = [a for a in alerts if a.status == "firing"]
    assert firing and firing[0].far_glitch
    assert all(ts != T0 + 300 * AT for _, ts, *_ in marks)
    assert isinstance(firing[0], AlertEvent)


@pytest.mark.parametrize("one_by_one", [False, True])
def test_a_far_glitch_amid_an_episode_is_not_its_peak(grid: Grid, one_by_one: bool) -> None:
    """Fails on the old code: a sentinel after a moderate anomaly became the episode's
    peak, and its resolution said score 1, severity critical, value 1.8e308."""
    handler = SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), 3)
    alerts, _ = detect(handler, items(series(2.1, DBL_MAX), grid), one_by_one)
    firing, resolved = alerts
    assert (firing.status, resolved.status) == ("firing", "resolved")
    assert not firing.far_glitch and 0.22 <= firing.score < 0.9  # a measurement, moderate
    assert (resolved.score, resolved.value, resolved.severity) == (
        firing.score,
        2.1,
        firing.severity,
    )


# The detectors with an episode open at the glitch's row of series(): they flag much of
# a gauge's noise at their threshold.
OPEN_AT_THE_GLITCH = {"discord", "seasonal", "windowed_gaussian"}


@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_s_far_glitch_is_a_suspected_fault(
    grid: Grid, router: Router, name: str, one_by_one: bool
) -> None:
    """Fails on the old code for every detector but tail: a 1e13 reading on a gauge at
    1.7 ft (far below ABSURD_ABOVE, a million spreads and levels away) was routed as a
    real event decisive by its score of 1, to ``flash-flood`` at once, and marked its
    neighbours. The detector's own judgement (``far_one``/``score_far_many``) now says
    so, on the batch path and one reading at a time."""
    threshold = ScoreThreshold(default_threshold(name))
    handler = SensorDetection(DETECTORS[name](), threshold, 3)
    alerts, marks = detect(handler, items(series(1e13), grid), one_by_one)
    glitch_at = T0 + 300 * AT
    assert all(ts != glitch_at for _, ts, *_ in marks)
    # Nor is it the peak (score 1, value 1e13) of an episode a measurement opened: a
    # detector that flags much of the noise (windowed_gaussian, seasonal, discord) has
    # one open at the glitch.
    assert all(a.far_glitch for a in alerts if a.value == 1e13)
    firing = [a for a in alerts if a.status == "firing" and a.started_at == glitch_at]
    if name in OPEN_AT_THE_GLITCH:
        assert not firing
        return
    assert len(firing) == 1 and firing[0].score == 1.0 and firing[0].far_glitch
    doc = firing[0].document(grid)
    assert doc["labels"]["reading"] == "far_glitch"
    areas = Areas(grid)
    state = new_area_state()
    assert on_alert(state, doc, 0.0, areas, POLICY) == []  # held for a neighbour
    (out,) = on_tick(state, POLICY.grace, areas, POLICY)
    assert out["labels"]["assessment"] == "suspected_sensor_fault"
    assert [r.playbook for r in router.root.match(out["labels"])] == ["sensor-check"]
