"""Label names in alerts, taken or refused alike by a real Alertmanager's API and by
citybrain's alerts agent (t127).

Alertmanager 0.25 (``api/v2/api.go``) drops the labels whose value is empty, then refuses
an alert with a label name prometheus common's ``LabelName.IsValid`` refuses (an ASCII
letter or ``_`` first, then ASCII letters, digits or ``_``): "invalid label set".
citybrain routed such an alert, the label unseen by every matcher (``kind="pm25"`` does
not see ``'kind '``); it now dead-letters it as ``bad_alert`` naming the label
(``streams.alerting.checked_alert``, ``playbooks.routing.label_set``). t138: an alert
left with no label once the empty ones are dropped is refused there too ("at least one
label pair required"); citybrain routed it to the root's playbook.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from streams.errors import EventError
from tests.integration import amgen
from tests.integration.test_alertmanager_independent import _iso, alertmanager_factory

pytestmark = pytest.mark.integration
__all__ = ["alertmanager_factory"]  # the fixture, used by name

SEED = 127_000
NAMES = 400
# Written out: the corners each run has, whatever the seeds draw.
FIXED = ["kind ", "a b", "", "1st", "zürich", "_", "__x", "zone9", "K", "a-b", "a.b", "a:b"]
# Label sets with no label of a value (t138), and their neighbours with one.
UNLABELLED: list[dict[str, str]] = [
    {},
    {"alert_id": ""},
    {"kind": "", "severity": ""},
    {"a b": "", "": ""},
    {"kind": "", "a b": "x"},
    {"kind": "", "zone": " "},
]
REFUSALS = {
    "not a label name Alertmanager takes": "invalid label set",
    "no label has a non-empty value": "at least one label pair required",
}


def citybrain_takes(labels: dict[str, str]) -> bool:
    from streams.alerting import checked_alert

    alert = {
        "alert_id": "a-1",
        "status": "firing",
        "kind": "pm25",
        "severity": "minor",
        "grid_cell": "c1",
        "labels": labels,
    }
    try:
        checked_alert(alert)
    except EventError as exc:
        assert exc.code == "bad_alert" and any(why in str(exc) for why in REFUSALS), exc
        return False
    return True


def same_reason(labels: dict[str, str], answer: Any) -> bool:
    """citybrain's refusal names the reason Alertmanager's answer gives."""
    from streams.alerting import checked_alert

    alert = {"alert_id": "a", "status": "firing", "kind": "k", "severity": "s", "grid_cell": "c"}
    try:
        checked_alert({**alert, "labels": labels})
    except EventError as exc:
        return any(ours in str(exc) and theirs in str(answer) for ours, theirs in REFUSALS.items())
    return False


def test_label_names_are_taken_or_refused_as_alertmanager_takes_them(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: r, group_by: [alert_id]}\nreceivers: [{name: r}]\n")
    am = alertmanager_factory(config, "names")
    rng = random.Random(SEED)
    names = FIXED + [amgen.odd_label_name(rng) for _ in range(NAMES)]
    now = time.time()
    differ, refused = [], 0
    for i, name in enumerate(names):
        for value in ("x", ""):  # an empty value is no label there, whatever its name
            labels = {"alert_id": f"a-{i}", name: value} if name != "alert_id" else {name: value}
            body = [{"labels": labels, "startsAt": _iso(now - 60), "endsAt": _iso(now + 600)}]
            status, answer = am.call("POST", "/api/v2/alerts", body)
            assert status in (200, 400), (status, answer)
            theirs, ours = status == 200, citybrain_takes(labels)
            refused += not theirs
            if theirs != ours:
                differ.append(f"{labels!r}: Alertmanager {status} {answer!r}, citybrain {ours}")
    for labels in UNLABELLED:
        body = [{"labels": labels, "startsAt": _iso(now - 60), "endsAt": _iso(now + 600)}]
        status, answer = am.call("POST", "/api/v2/alerts", body)
        theirs, ours = status == 200, citybrain_takes(labels)
        if theirs != ours or (not ours and not same_reason(labels, answer)):
            differ.append(f"{labels!r}: Alertmanager {status} {answer!r}, citybrain {ours}")
    assert not differ, f"{len(differ)} of {2 * len(names)} differ:\n" + "\n".join(differ[:20])
    # Both sides of the rule are met: most odd names refused, some taken.
    assert len(names) / 2 < refused < 2 * len(names) - 20, refused
