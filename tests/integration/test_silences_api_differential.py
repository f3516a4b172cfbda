"""The operator API's silences against the real Alertmanager's API v2 (field cases
silence-escaped-quote and silence-matches-all, end to end): the same bodies go to
``POST /api/v2/silences`` of Debian's prometheus-alertmanager and to ``POST
/api/v1/silences`` of a citybrain worker. Both accept or both refuse each (citybrain's one
documented stricter refusals: matchers that all match the empty string with a ``!=`` or
``!~`` among them, and a matcher on a label citybrain's alerts do not carry); what the worker stores lists back readable with Alertmanager's
matchers, and silences exactly the alerts Alertmanager marks silenced by it; the text it
lists, given to ``amtool silence add``, is the same silence in Alertmanager; expired in
both, it is listed with the matchers Alertmanager lists (t214: matchers of more than 4,096
bytes of JSON were listed as 80 characters of text once expired). t146: the
times, in 291 spellings each as the end and as the start, taken or refused alike and the
same instant kept; a refused window said in Alertmanager's words."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.routing import Silence
from tests.integration.test_alertmanager_independent import amtool
from tests.integration.test_alertmanager_server import PORT, Alertmanager, http
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, Pipeline

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
    # A label no citybrain alert carries (an alert from another tool may: t149): the API
    # refuses it as a typo ("unknown label"), Alertmanager takes it (docs/playbooks.md).
    ([m("zone", "north"), FLOOD], "stricter"),
    ([m("category", ""), FLOOD], "accept"),
    ([m("category", "a)|(b", regex=True), FLOOD], "refuse"),
    ([m("0kind", "x")], "refuse"),
    ([m("kind:x", "x")], "refuse"),
    ([m("", "x")], "refuse"),
    ([], "refuse"),
    # t214: matchers of more than 4,096 bytes of JSON together, an escaped quote and
    # backslash in each: once expired, listed whole (they were listed as 80 characters).
    ([m("category", f'{c}"\\\\' + "a?" * 490, regex=True) for c in "vwxyz"] + [FLOOD], "accept"),
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
            # Expired in both, listed with the matchers Alertmanager lists it with (t214:
            # an expired silence's matchers of over 4,096 bytes were listed as text, cut).
            http("DELETE", f"/silence/{answer['silenceID']}")
            expired, said = pipeline.api("DELETE", f"/silences/{stored['id']}", COORDINATOR_TOKEN)
            assert expired == 200, said
            listed = {
                s["id"]: s for s in pipeline.api("GET", "/silences", OPERATOR_TOKEN)[1]["silences"]
            }
            ended = listed[stored["id"]]
            assert not ended["active"] and "cut" not in ended, ended
            assert ended["matchers"] == stored["matchers"], ended
            _, kept = http("GET", f"/silence/{answer['silenceID']}")
            assert kept["status"]["state"] == "expired"
            assert sorted(
                (x.name, x.value, x.op in ("=~", "!~"), x.op in ("=", "=~"))
                for x in Silence.from_dict(ended).matchers
            ) == sorted(
                (k["name"], k["value"], k["isRegex"], k["isEqual"]) for k in kept["matchers"]
            )
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


# t146: a silence's times in every spelling of the alert time differential (t140: 51
# corners and 240 seeded), moved ten years ahead so that an end is in the future: the
# same body times to Alertmanager's POST /api/v2/silences and the worker's POST
# /api/v1/silences, each once as the end and once as the start (of a silence ending in
# 2099). Before t146 the worker read them by a rule of its own (offsets to ±23:59, `t`,
# `z`, a space before a zone, +0100 and +01 taken, no zone refused).
FAR = "2099-01-01T00:00:00Z"
# citybrain's own bounds on a silence's time (docs/playbooks.md): from 2000-01-01 to 100
# years ahead; Alertmanager reads "" as 1970 and takes a start of any age (made now).
OWN_BOUNDS = ("before 2000-01-01", "more than 100 years from now")
# Alertmanager 0.25's refusals of a window (api/v2/api.go, postSilencesHandler).
AM_WINDOW_WORDS = ("start time must be before end time", "end time can't be in the past")


def ahead(text: str) -> str:
    """``text`` with a leading year 2025 or 2026 written ten years later."""
    return (
        "2036" + text[4:]
        if text[:4] == "2026"
        else "2035" + text[4:]
        if text[:4] == "2025"
        else text
    )


def test_silence_time_spellings_are_taken_or_refused_as_alertmanager_takes_them(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    from tests.integration.test_alert_label_names_differential import (
        RANDOM_SPELLINGS,
        SEED,
        SPELLINGS,
        random_spelling,
        read_back_ns,
    )

    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {"route": {"receiver": "r", "group_wait": "1h"}, "receivers": [{"name": "r"}]}
        )
    )
    rng = random.Random(SEED + 146)
    spellings = [
        ahead(t) for t in SPELLINGS + [random_spelling(rng) for _ in range(RANDOM_SPELLINGS)]
    ]
    am = Alertmanager(config, tmp_path / "data")
    worker = pipeline.worker().start()
    differ: list[str] = []
    taken = refused = 0
    try:
        for i, text in enumerate(spellings):
            for side in ("ends", "starts"):
                times = {"endsAt": text} if side == "ends" else {"startsAt": text, "endsAt": FAR}
                mine = {"ends_at": text} if side == "ends" else {"starts_at": text, "ends_at": FAR}
                body = {"matchers": [m("alert_id", f"s-{i}")], "createdBy": "t146"}
                theirs, answer = http(
                    "POST",
                    "/silences",
                    {**body, "comment": "c", "startsAt": times.get("startsAt", _now()), **times},
                )
                ours, created = pipeline.api(
                    "POST",
                    "/silences",
                    OPERATOR_TOKEN,
                    {"matchers": body["matchers"], "reason": "t146", **mine},
                )
                assert theirs in (200, 400, 422) and ours in (201, 400), (text, answer, created)
                where = f"{side}_at {text!r}"
                if theirs == 200 and ours == 201:
                    taken += 1
                    _, kept = http("GET", f"/silence/{answer['silenceID']}")
                    their_ns = read_back_ns(kept[f"{side}At"])
                    our_ns = round(created["silence"][f"{side}_at"] * 1000) * 10**6
                    # A start in the past is made now by both: only a future one is kept.
                    if (side == "ends" or their_ns > time.time_ns()) and abs(
                        our_ns - their_ns
                    ) > 10**6:
                        differ.append(
                            f"{where}: Alertmanager {kept[side + 'At']}, citybrain {created}"
                        )
                    http("DELETE", f"/silence/{answer['silenceID']}")
                    pipeline.api("DELETE", f"/silences/{created['silence']['id']}", OPERATOR_TOKEN)
                elif theirs == 200:
                    http("DELETE", f"/silence/{answer['silenceID']}")
                    if not any(b in created.get("error", "") for b in OWN_BOUNDS):
                        differ.append(f"{where}: Alertmanager takes it, citybrain: {created}")
                elif ours == 201:
                    pipeline.api("DELETE", f"/silences/{created['silence']['id']}", OPERATOR_TOKEN)
                    differ.append(f"{where}: Alertmanager {theirs} {answer!r}, citybrain takes it")
                else:
                    refused += 1
                    # Alertmanager's words for a window it refuses, said by citybrain too.
                    for words in AM_WINDOW_WORDS:
                        mine = created["error"]
                        own = any(b in mine for b in OWN_BOUNDS)
                        if words in str(answer) and words not in mine and not own:
                            differ.append(f"{where}: Alertmanager {answer!r}, citybrain {created}")
                    # A clear refusal naming the field and value, never a 500.
                    assert (
                        f'field "{side}_at" is ' in created["error"]
                        or "ends_at" in created["error"]
                    ), (where, created)
        # The windows Alertmanager's validation refuses (postSilencesHandler: the times
        # as given, then the end against the clock), said in its words by both.
        now = time.time()
        for starts, ends, words in (
            (now + 3600, now + 3600, AM_WINDOW_WORDS[0]),  # empty
            (now + 7200, now + 3600, AM_WINDOW_WORDS[0]),  # reversed, ahead
            (now - 60, now - 120, AM_WINDOW_WORDS[0]),  # reversed and past: this first
            (now - 120, now - 60, AM_WINDOW_WORDS[1]),  # past
        ):
            window = {"startsAt": _iso(starts), "endsAt": _iso(ends)}
            theirs, answer = http(
                "POST",
                "/silences",
                {"matchers": [FLOOD], "createdBy": "t", "comment": "c", **window},
            )
            ours, said = pipeline.api(
                "POST",
                "/silences",
                OPERATOR_TOKEN,
                {
                    "matchers": [FLOOD],
                    "reason": "r",
                    "starts_at": window["startsAt"],
                    "ends_at": window["endsAt"],
                },
            )
            assert theirs == 400 and words in str(answer), (window, answer)
            assert ours == 400 and words in said["error"], (window, said)
        assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:30])
        # Both sides of the rule are met.
        assert taken > 200 and refused > 100, (taken, refused)
        assert "Crashed" not in worker.log() and "Traceback" not in worker.log()
    finally:
        worker.stop()
        am.stop()


def _now() -> str:
    return _iso(time.time())


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
