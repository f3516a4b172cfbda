"""The resolve profile's censoring-aware estimate (Kaplan-Meier with an exponential tail)
on hand-computed cases: requests still open when a snapshot stops are lower bounds, not
left out."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.service_profiles import TAIL_CAP, censored_quantiles, kaplan_meier, resolve_entries


def test_kaplan_meier_keeps_censored_durations_at_risk_until_their_time() -> None:
    # Ends at 10, 20 and 40; 30 still open. S(10) = 3/4, S(20) = 3/4 * 2/3 = 1/2; the
    # open one leaves the risk set at 30, so at 40 one is at risk: S(40) = 0.
    assert kaplan_meier([40, 10, 30, 20], [True, True, False, True]) == [
        (10.0, 0.75),
        (20.0, 0.5),
        (40.0, 0.0),
    ]


def test_kaplan_meier_counts_ties_and_equals_the_empirical_curve_without_censoring() -> None:
    assert kaplan_meier([5, 5, 7, 9], [True] * 4) == [(5.0, 0.5), (7.0, 0.25), (9.0, 0.0)]


def test_quantiles_of_a_fully_observed_curve_are_its_steps() -> None:
    quantiles, tail = censored_quantiles(
        [40, 10, 30, 20], [True, True, False, True], [0, 0.25, 0.5, 0.75, 1]
    )
    # min{t : F(t) >= q}: F(10) = 1/4, F(20) = 1/2, F(40) = 1.
    assert quantiles == [[0, 10.0], [0.25, 10.0], [0.5, 20.0], [0.75, 40.0], [1, 40.0]]
    assert tail is None


def test_the_unobserved_share_gets_an_exponential_tail() -> None:
    # Ends at 10 and 20, two open at 30: S(10) = 3/4, S(20) = 1/2, and half still open
    # at 30, the longest time known. Hazard over the second half of the span (15 to 30):
    # ln(S(15) / S(30)) / 15 = ln(0.75 / 0.5) / 15.
    seconds, closed = [10, 20, 30, 30], [True, True, False, False]
    quantiles, tail = censored_quantiles(seconds, closed, [0.5, 0.75, 1])
    hazard = math.log(1.5) / 15
    assert tail == {"from_q": 0.5, "from_s": 30.0, "hazard_per_s": pytest.approx(hazard)}
    # q = 0.75: 0.5 * exp(-h (t - 30)) = 0.25 -> t = 30 + ln 2 / h = 55.6 s.
    assert quantiles[1] == [0.75, round(30 + math.log(2) / hazard, 1)] == [0.75, 55.6]
    # q = 1 is capped at the tail's TAIL_CAP quantile.
    assert quantiles[2] == [1, round(30 + math.log(0.5 / (1 - TAIL_CAP)) / hazard, 1)]


def test_closed_only_would_understate_a_censored_sample() -> None:
    # Half the requests are still open at 60 s: the closed ones alone say median 20 s;
    # the estimate that keeps the open ones has F(30) = 1/2 and nothing more known
    # before 60 s, so every quantile above 1/2 lies past 60 s (nothing ended in the
    # second half: hazard over the whole span, -ln(1/2) / 60).
    seconds, closed = [10, 20, 30, 60, 60, 60], [True, True, True, False, False, False]
    quantiles, tail = censored_quantiles(seconds, closed, [0.5])
    assert tail is not None and tail["from_q"] == 0.5
    assert quantiles[0][1] == 30.0  # F(30) = 1/2 exactly: the third end
    quantiles, tail = censored_quantiles(seconds, closed, [0.6])
    assert tail is not None and tail["hazard_per_s"] == pytest.approx(math.log(2) / 60)
    assert quantiles == [[0.6, round(60 + math.log(0.5 / 0.4) * 60 / math.log(2), 1)]]
    assert quantiles[0][1] > 60


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no duration was seen to end"):
        censored_quantiles([5, 6], [False, False])
    with pytest.raises(ValueError, match="2 durations but 1 closed flags"):
        kaplan_meier([5, 6], [True])
    with pytest.raises(ValueError, match=r"a negative duration: -1\.0 s"):
        kaplan_meier([-1, 6], [True, True])


def test_departments_without_their_own_entry_pool_into_others() -> None:
    # police: 20 closed (its own entry); housing: 1 closed of 3, parks: 1 open. "others"
    # pools housing and parks (4 requests, 1 closed), "all" every request.
    rows = [("police", True, 60.0 * (i + 1)) for i in range(20)]
    rows += [("housing", True, 100.0), ("housing", False, 500.0), ("housing", False, 500.0)]
    rows += [("parks", False, 400.0)]
    frame = pd.DataFrame(rows, columns=["department", "closed", "seconds"])
    entries = resolve_entries(frame)
    assert sorted(entries) == ["all", "others", "police"]
    assert (entries["others"]["n"], entries["others"]["closed"]) == (4, 1)
    assert (entries["all"]["n"], entries["police"]["n"]) == (24, 20)
    # Nothing closed outside police: no "others" (it could not be estimated).
    assert "others" not in resolve_entries(frame[frame["department"].isin(["police", "parks"])])
