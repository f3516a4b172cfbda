"""Muted alerts re-checked (trial 10, finding 2): ``Router.recheck`` answers as ``decide``
does, so an alert whose silence ended or whose inhibiting alert resolved is found
unmuted, and one still muted says by what (the fast path keyed by that)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.loader import PLAYBOOK_DIR, load_playbooks, load_routing
from playbooks.routing import MUTES, Router, new_silence
from tests.services import FIXTURES

ROUTING = (FIXTURES / "routing-mutes.yaml").read_text()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    path: Path = tmp_path_factory.mktemp("routing") / "routing.yaml"
    path.write_text(ROUTING)
    return load_routing(path, load_playbooks(PLAYBOOK_DIR))


def burst(alert_id: str, category: str, community: str = "c1") -> dict[str, str]:
    return {
        "alert_id": alert_id,
        "source": "citizen",
        "kind": "incident_burst",
        "severity": "minor",
        "category": category,
        "community": community,
    }


NOISE = burst("al-noise", "Noise - Vehicle")
PARKING = burst("al-parking", "Illegal Parking")
SILENCE = new_silence("s1", ['category="Noise - Vehicle"'], 100.0, 145.0, "op", "works")


def test_a_decision_says_what_mutes_the_alert(router: Router) -> None:
    silenced = router.decide(NOISE, [PARKING], [SILENCE], 120.0)
    assert (silenced.mute, silenced.muted_by) == ("silenced", "s1")
    inhibited = router.decide(NOISE, [PARKING], [], 120.0)
    assert (inhibited.mute, inhibited.muted_by) == ("inhibited", "al-parking")
    free = router.decide(NOISE, [], [], 120.0)
    assert (free.mute, free.muted_by) == (None, "")
    assert {silenced.mute, inhibited.mute} == set(MUTES)


@pytest.mark.parametrize(
    ("now", "firing", "expected"),
    [
        (120.0, [], ("silenced", "s1")),  # the silence still runs
        (145.0, [], (None, "")),  # it ended (its end is exclusive): routed now
        (200.0, [], (None, "")),
        (200.0, [PARKING], ("inhibited", "al-parking")),  # still muted, by another cause
    ],
)
def test_a_silenced_alert_is_free_once_its_silence_ends(
    router: Router, now: float, firing: list[dict[str, str]], expected: tuple[str | None, str]
) -> None:
    decision = router.recheck(NOISE, "silenced", "s1", None, firing, [SILENCE], now)
    assert (decision.mute, decision.muted_by) == expected
    assert [r.playbook for r in decision.routes] == ["citizen-report-burst"]


def test_an_expired_silence_no_longer_listed_frees_the_alert(router: Router) -> None:
    # An operator's expiry rewrites ends_at; SilenceBook then leaves it out altogether.
    assert router.recheck(NOISE, "silenced", "s1", None, [], [], 120.0).mute is None


def test_an_inhibited_alert_is_free_once_its_source_resolves(router: Router) -> None:
    still = router.recheck(NOISE, "inhibited", "al-parking", PARKING, [PARKING], [], 0.0)
    assert (still.mute, still.muted_by) == ("inhibited", "al-parking")
    # The source resolved: it is in the firing alerts no more (source None).
    free = router.recheck(NOISE, "inhibited", "al-parking", None, [], [], 0.0)
    assert free.mute is None and free.routes


def test_another_firing_source_keeps_it_inhibited(router: Router) -> None:
    other = burst("al-parking-2", "Illegal Parking")
    decision = router.recheck(NOISE, "inhibited", "al-parking", None, [other], [], 0.0)
    assert (decision.mute, decision.muted_by) == ("inhibited", "al-parking-2")
    elsewhere = burst("al-parking-3", "Illegal Parking", community="c2")  # `equal` differs
    assert router.recheck(NOISE, "inhibited", "al-parking", None, [elsewhere], [], 0.0).mute is None


def test_a_silence_made_since_it_was_inhibited_keeps_it_muted(router: Router) -> None:
    decision = router.recheck(NOISE, "inhibited", "al-parking", None, [], [SILENCE], 120.0)
    assert (decision.mute, decision.muted_by) == ("silenced", "s1")
    # While both apply the answer is decide's: the silence.
    both = router.recheck(NOISE, "inhibited", "al-parking", PARKING, [PARKING], [SILENCE], 120.0)
    assert both == router.decide(NOISE, [PARKING], [SILENCE], 120.0)


def test_the_source_changed_to_labels_that_no_longer_inhibit(router: Router) -> None:
    # The same alert id now firing with other labels (stored anew in the firing table).
    moved = {**PARKING, "community": "c9"}
    assert router.recheck(NOISE, "inhibited", "al-parking", moved, [moved], [], 0.0).mute is None


@pytest.mark.parametrize("mute", ["silenced", "inhibited", "unknown"])
def test_recheck_agrees_with_decide(router: Router, mute: str) -> None:
    """Whatever the earlier mute, the answer (muted or not, and why) is decide's."""
    cases = [
        ([], []),
        ([PARKING], []),
        ([], [SILENCE]),
        ([PARKING], [SILENCE]),
        ([burst("al-x", "Illegal Parking", "c2")], []),
    ]
    for firing, silences in cases:
        for now in (90.0, 120.0, 150.0):
            source = firing[0] if firing else None
            got = router.recheck(NOISE, mute, "al-parking", source, firing, silences, now)
            want = router.decide(NOISE, firing, silences, now)
            assert (got.mute, got.muted_by, got.routes) == (want.mute, want.muted_by, want.routes)
