"""The operator API refuses what a request gets wrong, naming it (trial 25): a query
parameter a path does not take, or one given twice; a body field an action does not take;
a path with a trailing slash; HEAD where there is no GET. Ids echoed in an answer are cut."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from playbooks.machine import RUN_LIST_STATUSES as LIST_STATUSES
from streams.api import MAX_SHOWN_ID, RUN_ACTIONS, shown_id
from streams.app import create_app
from streams.settings import Settings
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, write_tokens

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def ask(
    tmp_path: Path, method: str, path: str, token: str = OPERATOR_TOKEN, **kw: Any
) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body (None for an empty one) and headers of one request to a fresh
    app's web server, with a token."""
    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
    )
    app = create_app(settings, CollectorRegistry())

    async def call() -> tuple[int, Any, dict[str, str]]:
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
            resp = await client.request(method, path, headers=headers, **kw)
            raw = await resp.read()
            doc = await resp.json() if raw else None
            return resp.status, doc, dict(resp.headers)

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("method", "path", "said"),
    [
        (
            "GET",
            "/api/v1/runs?stauts=open",
            "query parameter \"stauts\" is 'open': /api/v1/runs takes no such parameter "
            "(it takes status, limit, cursor) (did you mean 'status'?)",
        ),
        (
            "GET",
            "/api/v1/runs?status=open&status=resolved",
            "query parameter \"status\" is given 2 times ('open', 'resolved'): give it once",
        ),
        (
            "GET",
            "/api/v1/runs?status=",
            "query parameter \"status\" is '': expected one of pending, running,",
        ),
        (
            "GET",
            "/api/v1/runs?status=bogus",
            "query parameter \"status\" is 'bogus': expected one of pending, running,",
        ),
        (
            "GET",
            "/api/v1/alerts?severity=major",
            "query parameter \"severity\" is 'major': /api/v1/alerts takes no such "
            "parameter (it takes limit, cursor)",
        ),
        ("GET", "/api/v1/silences?active=1", "query parameter \"active\" is '1': /api/v1/silences"),
        ("GET", "/api/v1/runs/r-1?x=1", "query parameter \"x\" is '1': /api/v1/runs/r-1 takes"),
        ("POST", "/api/v1/runs/r-1/ack?note=hi", "query parameter \"note\" is 'hi': /api/v1/"),
        ("POST", "/api/v1/silences?duration=1h", "query parameter \"duration\" is '1h': /api"),
    ],
)
def test_a_query_parameter_a_path_does_not_take_is_a_400_naming_it(
    tmp_path: Path, method: str, path: str, said: str
) -> None:
    status, doc, _ = ask(tmp_path, method, path)
    assert status == 400 and doc["error"].startswith(said), doc


def test_expiring_a_silence_with_a_query_is_a_400(tmp_path: Path) -> None:
    status, doc, _ = ask(tmp_path, "DELETE", "/api/v1/silences/s-1?force=1", COORDINATOR_TOKEN)
    assert status == 400
    assert doc["error"] == (
        "query parameter \"force\" is '1': /api/v1/silences/s-1 takes no such parameter (it "
        "takes none)"
    )


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        (
            "/api/v1/runs/r-1/ack",
            {"nte": "on my way"},
            "field \"nte\" is 'on my way': ack takes no such field (it takes note, reason) "
            "(did you mean 'note'?)",
        ),
        (
            "/api/v1/runs/r-1/answer",
            {"report_id": "r-7", "satisfied": True, "comments": "ok"},
            "field \"comments\" is 'ok': answer takes no such field (it takes report_id, "
            "satisfied, comment, note) (did you mean 'comment'?)",
        ),
        (
            "/api/v1/silences",
            {"matchers": ['kind="pm25"'], "duration": "1h", "reason": "x", "comment": "y"},
            "field \"comment\" is 'y': a silence takes no such field (it takes matchers, "
            "reason, starts_at, ends_at, duration) (Alertmanager's API v2 field; here write "
            'it as "reason")',
        ),
        (  # Alertmanager's own body: each of its names says what it is here
            "/api/v1/silences",
            {"matchers": ['kind="pm25"'], "duration": "1h", "createdBy": "ops"},
            "field \"createdBy\" is 'ops': a silence takes no such field (it takes matchers, "
            "reason, starts_at, ends_at, duration) (Alertmanager's API v2 field; here leave "
            "it out: the author is the name of the request's token)",
        ),
        (
            "/api/v1/silences",
            {"matchers": ['kind="pm25"'], "startsAt": "2026-12-04T10:00:00Z"},
            "field \"startsAt\" is '2026-12-04T10:00:00Z': a silence takes no such field (it "
            "takes matchers, reason, starts_at, ends_at, duration) (Alertmanager's API v2 "
            'field; here write it as "starts_at")',
        ),
        (  # t118: Alertmanager's update of a silence (same id): not done here, said so
            "/api/v1/silences",
            {"matchers": ['kind="pm25"'], "duration": "1h", "reason": "x", "id": "s-1"},
            "field \"id\" is 's-1': a silence takes no such field (it takes matchers, reason, "
            "starts_at, ends_at, duration) (Alertmanager's API v2 field; here silences are "
            "not edited: expire it and add a new one)",
        ),
    ],
)
def test_a_body_field_the_action_does_not_take_is_a_400_naming_it(
    tmp_path: Path, path: str, body: dict[str, Any], said: str
) -> None:
    status, doc, _ = ask(tmp_path, "POST", path, json=body)
    assert (status, doc) == (400, {"error": said})


@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        ("GET", "/api/v1/runs/", "/api/v1/runs"),
        ("GET", "/api/v1/runs/r-1/", "/api/v1/runs/r-1"),
        ("POST", "/api/v1/runs/r-1/ack/", "/api/v1/runs/r-1/ack"),
        ("GET", "/api/v1/alerts//", "/api/v1/alerts"),
        ("DELETE", "/api/v1/silences/s-1/", "/api/v1/silences/s-1"),
    ],
)
def test_a_trailing_slash_is_a_404_naming_the_path_without_it(
    tmp_path: Path, method: str, path: str, meant: str
) -> None:
    status, doc, _ = ask(tmp_path, method, path)
    assert status == 404
    assert doc["error"] == f"no such path {path!r}: without the trailing slash, {meant!r}"


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/", "/api/v2/runs", "/nope"])
def test_an_unknown_path_names_the_apis_paths(tmp_path: Path, path: str) -> None:
    status, doc, _ = ask(tmp_path, "GET", path)
    assert status == 404
    assert doc["error"].startswith(f"no such path {path!r}: the operator API's paths are ")


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/api/v2/silences", "/api/v1/silences"),  # Alertmanager's version, amtool's habit
        ("/api/v2/silences/s-1", "/api/v1/silences/s-1"),
        ("/api/v0/runs/r-1", "/api/v1/runs/r-1"),
    ],
)
def test_another_api_version_names_the_path_under_this_one(
    tmp_path: Path, path: str, meant: str
) -> None:
    """t102: an operator used to Alertmanager asked /api/v2/silences and was told only
    the API's paths; the 404 now ends with the same path under /api/v1."""
    status, doc, _ = ask(tmp_path, "GET", path)
    assert status == 404
    assert doc["error"].endswith(f"(this API is /api/v1: did you mean {meant!r}?)"), doc


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("HEAD", "/api/v1/runs/r-1/ack", "POST"),
        ("GET", "/api/v1/runs/r-1/ack", "POST"),
        ("HEAD", "/api/v1/silences/s-1", "DELETE"),
        ("OPTIONS", "/api/v1/runs", "GET,HEAD"),
        ("OPTIONS", "/api/v1/silences", "GET,HEAD,POST"),
        ("PATCH", "/api/v1/alerts", "GET,HEAD"),
    ],
)
def test_another_method_is_a_405_whose_allow_lists_only_what_is_answered(
    tmp_path: Path, method: str, path: str, allow: str
) -> None:
    status, doc, headers = ask(tmp_path, method, path)
    assert (status, headers.get("Allow")) == (405, allow)
    if method != "HEAD":  # a HEAD answer has no body
        assert doc["error"] == (
            f"{method} is not allowed on {path!r}: it takes {allow.replace(',', ', ')}"
        )


def test_head_is_answered_where_get_is(tmp_path: Path) -> None:
    status, doc, _ = ask(tmp_path, "HEAD", "/api/v1/runs?stauts=x")
    assert (status, doc) == (400, None)  # checked as GET is; a refusal's 401 is audited on
    # Kafka, so tests/integration/test_openapi_walk.py checks HEAD's 401 on a real worker


def test_an_unknown_action_is_named_in_words(tmp_path: Path) -> None:
    status, doc, _ = ask(tmp_path, "POST", "/api/v1/runs/r-1/acknowledge")
    assert status == 404
    assert doc["error"] == (
        "no action 'acknowledge': expected one of ack, answer, approve, cancel, escalate, "
        "reject, resend, resolve (did you mean 'ack'?)"
    )


def test_a_long_id_is_echoed_cut_with_its_length() -> None:
    assert shown_id("grp-1.1") == "'grp-1.1'"
    assert shown_id("x" * MAX_SHOWN_ID) == repr("x" * MAX_SHOWN_ID)
    long = "y" * 5000
    assert shown_id(long) == f"{'y' * (MAX_SHOWN_ID // 2)!r}... (5,000 characters)"


def test_a_long_action_is_echoed_cut(tmp_path: Path) -> None:
    status, doc, _ = ask(tmp_path, "POST", "/api/v1/runs/r-1/" + "z" * 5000)
    assert status == 404 and "... (5,000 characters): expected one of ack" in doc["error"]
    assert len(doc["error"]) < 400


@pytest.mark.parametrize(
    ("kind", "choice"),
    [("status", s) for s in LIST_STATUSES] + [("action", a) for a in sorted(RUN_ACTIONS)],
)
def test_a_misspelt_status_or_action_suggests_the_closest(
    tmp_path: Path, kind: str, choice: str
) -> None:
    """Helper brief t37 (a sibling of the command line's "did you mean"): the API listed
    every status or action and did not say which was meant."""
    wrong = choice + choice[-1]
    if kind == "status":
        status, doc, _ = ask(tmp_path, "GET", f"/api/v1/runs?status={wrong}")
        assert status == 400
        assert doc["error"].startswith(f'query parameter "status" is {wrong!r}: expected one of ')
    else:
        status, doc, _ = ask(tmp_path, "POST", f"/api/v1/runs/r-1/{wrong}")
        assert status == 404 and doc["error"].startswith(f"no action {wrong!r}: expected one of ")
    assert doc["error"].endswith(f" (did you mean {choice!r}?)"), doc


@pytest.mark.parametrize(
    ("action", "body", "said"),
    [
        ("ack", {"note": 5}, 'field "note" is 5, expected text'),
        ("resolve", {"reason": ["x"]}, 'field "reason" is ["x"], expected text'),
        ("escalate", {"note": "n" * 2001}, 'field "note" is 2,001 characters, at most 2,000'),
        (
            "cancel",
            {"note": "a", "reason": "b"},
            'fields "note" and "reason" are both given (\'a\' and \'b\'): "reason" is the '
            "note's other name, give one",
        ),
        ("resend", {"note": None}, 'field "note" is null, expected text'),
        ("answer", {"note": 1, "report_id": "r", "satisfied": True}, 'field "note" is 1'),
    ],
)
def test_a_bad_note_is_a_400_before_the_run_is_asked(
    tmp_path: Path, action: str, body: dict[str, Any], said: str
) -> None:
    """Helper t102: `{"note": 5}` on an acknowledged run was a 200 "already acknowledged"
    and on a resolved one a 409, the bad field unsaid (the run's state was asked first);
    a `reason` beside a `note` was dropped unread. The body is checked first: here the
    run does not even exist, and the answer is the body's 400, not the run's 404."""
    token = COORDINATOR_TOKEN
    status, doc, _ = ask(tmp_path, "POST", f"/api/v1/runs/r-1/{action}", token, json=body)
    assert status == 400, doc
    assert doc["error"].startswith(said), doc


def test_every_answer_is_counted_with_its_status(tmp_path: Path) -> None:
    """Helper t102: `citybrain_api_requests_total{action, outcome}` counted a few answers
    view by view: a 400, a 404 or a 409, a run or the silences read, were never counted.
    Every answer of the API's views is counted once, by the permission asked."""
    from prometheus_client import CollectorRegistry

    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
    )
    registry = CollectorRegistry()
    app = create_app(settings, registry)
    calls = [
        ("POST", "/api/v1/runs/r-1/ack", OPERATOR_TOKEN, {"note": 5}),  # 400
        ("POST", "/api/v1/runs/r-1/ackk", OPERATOR_TOKEN, {}),  # 404, no such action
        ("POST", "/api/v1/silences", OPERATOR_TOKEN, {"matchers": []}),  # 400
        ("DELETE", "/api/v1/silences/s-1?x=1", COORDINATOR_TOKEN, None),  # 400
        ("GET", "/api/v1/alerts?x=1", OPERATOR_TOKEN, None),  # 400
    ]

    async def call() -> list[int]:
        statuses = []
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            for method, path, token, body in calls:
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.request(method, path, headers=headers, json=body)
                statuses.append(resp.status)
        return statuses

    # (A 401 or 403 is counted the same way; its audit record needs Kafka, so it is
    # left to tests/integration/test_action_bodies.py.)
    assert asyncio.run(call()) == [400, 404, 400, 400, 400]
    counted = {
        (s.labels["action"], s.labels["outcome"]): s.value
        for metric in registry.collect()
        if metric.name == "citybrain_api_requests"
        for s in metric.samples
        if s.name == "citybrain_api_requests_total" and s.value
    }
    assert counted == {
        ("ack", "400"): 1,
        ("none", "404"): 1,
        ("silence", "400"): 1,
        ("expire_silence", "400"): 1,
        ("read", "400"): 1,
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "said"),
    [
        (
            "GET",
            "/api/v1/runs",
            {"status": "open"},
            "GET '/api/v1/runs' takes no body, and this one has 18 bytes "
            '(\'{"status": "open"}\'): give a status as a query parameter, ?status=open',
        ),
        ("GET", "/api/v1/runs/r-1", {"x": 1}, "GET '/api/v1/runs/r-1' takes no body"),
        ("GET", "/api/v1/alerts", {"kind": "pm25"}, "GET '/api/v1/alerts' takes no body"),
        ("GET", "/api/v1/silences", {"active": True}, "GET '/api/v1/silences' takes no body"),
        (
            "DELETE",
            "/api/v1/silences/s-1",
            {"reason": "done"},
            "DELETE '/api/v1/silences/s-1' takes no body, and this one has 18 bytes "
            '(\'{"reason": "done"}\'): an expiry takes no reason or note: it records who '
            "expired it and when",
        ),
    ],
)
def test_a_body_where_an_operation_takes_none_is_a_400(
    tmp_path: Path, method: str, path: str, body: dict[str, Any], said: str
) -> None:
    """t102: `DELETE /silences/ID` with `{"reason": "done"}` expired the silence and
    dropped the reason unsaid, and `GET /runs` with `{"status": "open"}` listed every
    run (the filter is a query parameter): the body is refused, named, before anything."""
    token = COORDINATOR_TOKEN
    status, doc, _ = ask(tmp_path, method, path, token, json=body)
    assert status == 400, doc
    assert doc["error"].startswith(said), doc


@pytest.mark.parametrize("body", [b"{}", b" \n", b"{}\n"])
def test_an_empty_object_or_whitespace_on_a_get_is_no_body(tmp_path: Path, body: bytes) -> None:
    """Some clients send `{}` with every request: a body that asks for nothing is
    answered as if none had come (only one that asks for something is refused)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    without = ask(tmp_path / "a", "GET", "/api/v1/runs", COORDINATOR_TOKEN)
    given = ask(
        tmp_path / "b",
        "GET",
        "/api/v1/runs",
        COORDINATOR_TOKEN,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert given[:2] == without[:2]
    assert "takes no body" not in str(given[1])


@pytest.mark.parametrize(
    ("action", "body", "said"),
    [
        (
            "ack",
            {"note": "on my way\x1b[2J"},
            "field \"note\" is 'on my way\\x1b[2J': holds a control ",
        ),
        ("resolve", {"reason": "done\x00"}, "field \"reason\" is 'done\\x00': holds a control "),
        ("cancel", {"note": "dup\x85"}, "field \"note\" is 'dup\\x85': holds a control "),
        ("escalate", {"note": "\x7f"}, "field \"note\" is '\\x7f': holds a control "),
        (
            "answer",
            {"report_id": "r", "satisfied": False, "comment": "loud\x1b]0;owned\x07"},
            "field \"comment\" is 'loud\\x1b]0;owned\\x07': holds a control ",
        ),
    ],
)
def test_a_control_character_in_free_text_is_a_400_naming_it(
    tmp_path: Path, action: str, body: dict[str, Any], said: str
) -> None:
    """Helper t119: a note, a reason or a reporter's comment holding a NUL, an ESC, DEL or
    a C1 control was accepted and went into the citizen's closure text (a resolve note is
    its `what`), the audit and every terminal that ran `runs show`, while a report's own
    `text` has been refused for the same characters since t109. Now the same rule: a 400
    naming the field, the value and the character, before the run is asked."""
    token = COORDINATOR_TOKEN
    status, doc, _ = ask(tmp_path, "POST", f"/api/v1/runs/r-1/{action}", token, json=body)
    assert status == 400, doc
    assert doc["error"].startswith(said), doc
    assert "holds a control character (U+00" in doc["error"], doc
    assert " at character " in doc["error"], doc
    assert doc["error"].endswith("expected text (line breaks and tabs are taken)"), doc


def test_line_breaks_and_tabs_in_a_note_are_text(tmp_path: Path) -> None:
    """The rule refuses control characters, not lines: a note of two lines with a tab
    passes the body's check and is answered for the run (this worker, which has read
    nothing back from Kafka, answers that it cannot know the run yet: 503)."""
    body = {"note": "line one\r\n\tline two"}
    status, doc, _ = ask(tmp_path, "POST", "/api/v1/runs/r-1/ack", COORDINATOR_TOKEN, json=body)
    assert status == 503, doc
    assert doc["error"].startswith("run 'r-1' cannot be answered yet"), doc


def test_a_control_character_in_a_silences_reason_is_a_400(tmp_path: Path) -> None:
    """Helper t119, the same kind on silences: a reason with an ESC was stored, listed on
    every worker and printed by `silences list`."""
    body = {"matchers": ['kind="pm25"'], "duration": "1h", "reason": "works\x1b[31m"}
    status, doc, _ = ask(tmp_path, "POST", "/api/v1/silences", OPERATOR_TOKEN, json=body)
    assert status == 400, doc
    assert doc["error"] == (
        "field \"reason\" is 'works\\x1b[31m': holds a control character (U+001B) at character "
        "6: expected text (line breaks and tabs are taken)"
    ), doc


def test_a_list_of_statuses_is_said_as_a_list_not_a_misspelling(tmp_path: Path) -> None:
    """t147: `?status=open,resolved` was asked "did you mean 'resolved'?" (the command
    line's --status says a list as one since t143)."""
    status, doc, _ = ask(tmp_path, "GET", "/api/v1/runs?status=open,resolved")
    assert status == 400
    assert doc["error"].endswith(" (one choice, not a list: give 'open' or 'resolved')"), doc
