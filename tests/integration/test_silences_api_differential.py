"""The operator API's silences against the real Alertmanager's API v2 (field cases
silence-escaped-quote and silence-matches-all, end to end): the same bodies go to
``POST /api/v2/silences`` of Debian's prometheus-alertmanager and to ``POST
/api/v1/silences`` of a citybrain worker. Both accept or both refuse each (citybrain's one
documented stricter refusal: matchers that all match the empty string with a ``!=`` or
``!~`` among them); what the worker stores lists back readable with Alertmanager's
matchers, and silences exactly the alerts Alertmanager marks silenced by it; the text it
lists, given to ``amtool silence add``, is the same silence in Alertmanager."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.routing import Silence
from tests.integration.test_alertmanager_independent import amtool
from tests.integration.test_alertmanager_server import PORT, Alertmanager, http
from tests.services import OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration


def m(name: str, value: str, regex: bool = False, equal: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


FLOOD = m("kind", "water_level")
# (matchers as Alertmanager's API v2 takes them, what both do: "accept", "refuse" or
# "stricter": refused by citybrain only, the documented difference).
CASES: list[tuple[list[dict[str, Any]], str]] = [
    ([m("category", 'Noise "loud" party')], "accept"),
    ([m("category", "back\\slash")], "accept"),
    ([m("category", "line\nbreak"), FLOOD], "accept"),
    ([m("category", "a\rb\tc "), FLOOD], "accept"),
    ([m("category", " é—🙂\u2028")], "accept"),
    ([m("category", "x\\", regex=True)], "refuse"),  # a trailing backslash: a bad regex
    ([m("category", 'Noise "loud" .*|back\\\\slash', regex=True)], "accept"),
    ([m("kind", "water_level"), m("kind", "pm25")], "accept"),  # duplicates: silence nothing
    ([m("category", "", regex=True)], "refuse"),
    ([m("category", "noise|", regex=True)], "refuse"),
    ([m("category", "(?i)")], "accept"),  # an equality: the value as it is
    ([m("category", "(?i)", regex=True)], "refuse"),
    ([m("category", "\\B", regex=True)], "refuse"),
    ([m("alert_id", ".*", regex=True)], "refuse"),
    ([m("department", "")], "refuse"),
    ([m("category", "", equal=False)], "accept"),  # != "": matches only labelled alerts
    ([m("category", "noise.+", regex=True, equal=False)], "stricter"),
    ([m("severity", "minor", equal=False)], "stricter"),
    ([m("category", ""), FLOOD], "accept"),
    ([m("category", "a)|(b", regex=True), FLOOD], "refuse"),
    ([m("0kind", "x")], "refuse"),
    ([m("kind:x", "x")], "refuse"),
    ([m("", "x")], "refuse"),
    ([], "refuse"),
]


def sorted_items(matcher: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(matcher.items())


VALUES = [
    'Noise "loud" party',
    "back\\slash",
    "line\nbreak",
    "a\rb\tc ",
    " é—🙂\u2028",
    "(?i)",
    "noise",
    "",
]


def test_silences_agree_with_alertmanager_api(tmp_path: Path, pipeline: Pipeline) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {"route": {"receiver": "r", "group_wait": "1h"}, "receivers": [{"name": "r"}]}
        )
    )
    alerts = [
        {"alert_id": f"al-{i}-{kind}", "kind": kind, "category": value, "severity": "minor"}
        for i, value in enumerate(VALUES)
        for kind in ("water_level", "pm25")
    ]
    for labels in alerts:  # Alertmanager drops an empty label: missing in both
        if not labels["category"]:
            del labels["category"]
    am = Alertmanager(config, tmp_path / "data")
    worker = pipeline.worker().start()
    try:
        now = time.time()
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        status, _ = http(
            "POST", "/alerts", [{"labels": a, "startsAt": starts, "endsAt": ends} for a in alerts]
        )
        assert status == 200
        silenced_some = 0
        for matchers, expected in CASES:
            theirs, answer = http(
                "POST",
                "/silences",
                {
                    "matchers": matchers,
                    "startsAt": starts,
                    "endsAt": ends,
                    "createdBy": "test",
                    "comment": "differential",
                },
            )
            ours, created = pipeline.api(
                "POST",
                "/silences",
                OPERATOR_TOKEN,
                {"matchers": matchers, "duration": "1h", "reason": "differential"},
            )
            assert (theirs == 200) is (expected in ("accept", "stricter")), (matchers, answer)
            assert (ours == 201) is (expected == "accept"), (matchers, created)
            if ours != 201:
                # A clear refusal, never a 500, naming what is wrong.
                assert ours == 400 and created["error"], created
                if expected == "refuse" and "empty string" in str(answer):
                    assert "must not match the empty string" in created["error"]
                continue
            # Stored in a form that reads back to the matchers Alertmanager stored.
            stored = created["silence"]
            listed = {
                s["id"]: s for s in pipeline.api("GET", "/silences", OPERATOR_TOKEN)[1]["silences"]
            }
            assert "unreadable" not in listed[stored["id"]] and listed[stored["id"]]["active"]
            silence = Silence.from_dict(listed[stored["id"]])
            _, kept = http("GET", f"/silence/{answer['silenceID']}")
            assert sorted(
                (x.name, x.value, x.op in ("=~", "!~"), x.op in ("=", "=~"))
                for x in silence.matchers
            ) == sorted(
                (k["name"], k["value"], k["isRegex"], k["isEqual"]) for k in kept["matchers"]
            )
            # The listed text is what amtool reads as the same matchers.
            added = amtool(
                "silence",
                "add",
                f"--alertmanager.url=http://127.0.0.1:{PORT}",
                "--author=t",
                "--comment=c",
                "--duration=1h",
                "--",
                *stored["matchers"],
            )
            assert added.returncode == 0, (stored["matchers"], added.stderr)
            _, again = http("GET", f"/silence/{added.stdout.strip()}")
            assert sorted(map(sorted_items, again["matchers"])) == sorted(
                map(sorted_items, kept["matchers"])
            ), stored["matchers"]
            http("DELETE", f"/silence/{added.stdout.strip()}")
            # ... and silences what Alertmanager silences with it.
            _, listed_alerts = http("GET", "/alerts")
            muted = {
                a["labels"]["alert_id"]
                for a in listed_alerts
                if answer["silenceID"] in a["status"]["silencedBy"]
            }
            assert muted == {a["alert_id"] for a in alerts if silence.silences(a, time.time())}, (
                matchers
            )
            silenced_some += bool(muted)
            http("DELETE", f"/silence/{answer['silenceID']}")
        assert silenced_some >= 5
        # Times: an end in the past, an end before the start, refused by both.
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
        for body_am, body_ours in (
            ({"startsAt": starts, "endsAt": past}, {"starts_at": now - 60, "ends_at": now - 30}),
            ({"startsAt": ends, "endsAt": starts}, {"starts_at": now + 3600, "ends_at": now + 60}),
        ):
            theirs, answer = http(
                "POST",
                "/silences",
                {"matchers": [FLOOD], "createdBy": "t", "comment": "c", **body_am},
            )
            ours, said = pipeline.api(
                "POST",
                "/silences",
                OPERATOR_TOKEN,
                {"matchers": [FLOOD], "reason": "r", **body_ours},
            )
            assert theirs == 400 and ours == 400, (answer, said)
            assert "ends_at" in said["error"], said
        # Alertmanager's whole body: a 400 saying what its first other field is here.
        for field, says in (("comment", 'write it as "reason"'), ("createdBy", "leave it out")):
            ours, said = pipeline.api(
                "POST",
                "/silences",
                OPERATOR_TOKEN,
                {"matchers": [FLOOD], "duration": "1h", field: "x"},
            )
            assert ours == 400 and says in said["error"], said
        assert "Crashed" not in worker.log() and "Traceback" not in worker.log()
    finally:
        worker.stop()
        am.stop()
