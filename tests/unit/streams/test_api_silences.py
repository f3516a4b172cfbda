"""Trial 18: a silence's matchers may be given as Alertmanager's API v2 takes them,
``{"name", "value", "isRegex", "isEqual"}`` objects (the value as it is, no escapes;
``isEqual`` true when left out), besides matcher text; before, such a body was a 400
("expected a list of strings"). Stored as matcher text, read back to the same matchers.
A missing, unknown or mistyped key is a 400 naming the entry and the key. Compared with a
real Alertmanager in tests/integration/test_alertmanager_server.py. And a silence not yet
started is expired as Alertmanager expires it: it starts and ends now."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from citybrain.cli.silences import already_expired_message, silences_table
from playbooks.routing import Matcher, Silence, read_stored
from streams.api import register_api
from streams.context import Context
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN
from tests.unit.streams.test_api_delivery import ask, context


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    ctx = context(tmp_path)

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        return True

    monkeypatch.setattr(ctx, "acknowledged", acknowledged)
    return ctx


def post(ctx: Context, matchers: list[Any]) -> tuple[int, dict[str, Any]]:
    body = {"matchers": matchers, "duration": "1h", "reason": "trial 18"}
    status, doc, _ = ask(ctx, "POST", "/api/v1/silences", OPERATOR_TOKEN, body)
    return status, doc


def list_expire_all_list(ctx: Context) -> tuple[Any, list[Any], Any]:
    """On ``ctx``'s API: the silences listed, each listed one expired by the ``id`` the
    listing gives (DELETE), and the listing after; each answer as (status, document)."""
    register_api(ctx.app, ctx)

    async def scenario() -> tuple[Any, list[Any], Any]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]

            async def call(method: str, path: str, token: str) -> Any:
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.request(method, path, headers=headers)
                return resp.status, await resp.json()

            listed = await call("GET", "/api/v1/silences", OPERATOR_TOKEN)
            expired = [
                await call("DELETE", f"/api/v1/silences/{s['id']}", COORDINATOR_TOKEN)
                for s in listed[1]["silences"]
            ]
            return listed, expired, await call("GET", "/api/v1/silences", OPERATOR_TOKEN)

    return asyncio.run(scenario())


def test_alertmanager_matcher_objects_are_taken_and_stored_as_matcher_text(ctx: Context) -> None:
    status, doc = post(
        ctx,
        [
            {"name": "category", "value": 'Noise "loud" \\ party\n', "isRegex": False},
            {"name": "kind", "value": "pm25|no2", "isRegex": True, "isEqual": True},
            {"name": "severity", "value": "minor", "isRegex": False, "isEqual": False},
            {"name": "district", "value": "d9.*", "isRegex": True, "isEqual": False},
            'source="citizen"',
        ],
    )
    assert status == 201, doc
    stored = ctx.silences.get(doc["silence"]["id"].encode())
    assert stored["matchers"] == [
        'category="Noise \\"loud\\" \\\\ party\\n"',
        'kind=~"pm25|no2"',
        'severity!="minor"',
        'district!~"d9.*"',
        'source="citizen"',
    ]
    assert Silence.from_dict(stored).matchers == (
        Matcher.build("category", "=", 'Noise "loud" \\ party\n'),
        Matcher.build("kind", "=~", "pm25|no2"),
        Matcher.build("severity", "!=", "minor"),
        Matcher.build("district", "!~", "d9.*"),
        Matcher.build("source", "=", "citizen"),
    )


@pytest.mark.parametrize(
    ("matcher", "said"),
    [
        ({"name": "kind", "value": "pm25"}, "matchers[0]: 'isRegex' is missing (required)"),
        ({"value": "pm25", "isRegex": False}, "matchers[0]: 'name' is missing (required)"),
        (
            {"name": "kind", "value": "pm25", "isregex": False},
            "matchers[0]: unknown key 'isregex', expected ['name', 'value', 'isRegex', "
            "'isEqual']: did you mean 'isRegex'?",
        ),
        (
            {"name": "kind", "value": 25, "isRegex": False},
            "matchers[0]: 'value' is 25, expected text",
        ),
        (
            {"name": "kind", "value": "pm25", "isRegex": "false"},
            "matchers[0]: 'isRegex' is 'false', expected true or false",
        ),
        # t44: said in JSON's words (it said "None"); Alertmanager reads a null isEqual as
        # true, citybrain refuses it, as it refuses null for unset elsewhere.
        (
            {"name": "kind", "value": "pm25", "isRegex": False, "isEqual": None},
            "matchers[0]: 'isEqual' is null, expected true or false",
        ),
        (
            {"name": "kind", "value": "pm25", "isRegex": None},
            "matchers[0]: 'isRegex' is null, expected true or false",
        ),
        ({"name": "kind", "value": None, "isRegex": False}, "matchers[0]: 'value' is null"),
        ({"name": "kind", "value": "(", "isRegex": True}, "matchers[0]: bad regex (RE2 syntax)"),
        # t73: it said "missing ): a\\", of the wrapping's ")" the backslash escapes.
        (
            {"name": "kind", "value": "a\\", "isRegex": True},
            "matchers[0]: bad regex (RE2 syntax): trailing backslash at end of expression: a\\",
        ),
        ({"name": "kidn", "value": "pm25", "isRegex": False}, "unknown label 'kidn'"),
        (7, "matchers[0] is 7, expected matcher text"),
        (
            {"name": "category", "value": ".*", "isRegex": True},
            "at least one matcher must not match the empty string",
        ),
    ],
)
def test_a_bad_matcher_object_is_a_400_naming_entry_and_key(
    ctx: Context, matcher: Any, said: str
) -> None:
    status, doc = post(ctx, [matcher])
    assert status == 400, doc
    assert said in doc["error"]
    assert dict(ctx.silences.data.items()) == {}


def test_expiring_a_silence_not_yet_started_makes_it_start_and_end_now(ctx: Context) -> None:
    """Before: it was stored ending before it started (Alertmanager sets both to now)."""
    register_api(ctx.app, ctx)

    async def scenario() -> list[Any]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]

            async def call(method: str, path: str, token: str, body: Any = None) -> Any:
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.request(method, path, json=body, headers=headers)
                return resp.status, await resp.json()

            body = {
                "matchers": ['kind="pm25"'],
                "starts_at": time.time() + 3600,
                "duration": "1h",
                "reason": "roadworks tomorrow",
            }
            status, created = await call("POST", "/api/v1/silences", OPERATOR_TOKEN, body)
            assert status == 201, created
            path = f"/api/v1/silences/{created['silence']['id']}"
            expired = await call("DELETE", path, COORDINATOR_TOKEN)
            listed = await call("GET", "/api/v1/silences", OPERATOR_TOKEN)
            return [expired, listed]

    (status, expired), (_, listed) = asyncio.run(scenario())
    assert status == 200
    silence = expired["silence"]
    assert silence["starts_at"] == silence["ends_at"] == silence["expired_at"]
    assert listed["silences"] == [{**silence, "active": False}]


def test_silences_past_the_limit_are_refused_until_some_end(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 29: one operator could add silences without end; each is held by every
    worker and checked for every alert."""
    monkeypatch.setattr("streams.api.MAX_SILENCES", 3)
    register_api(ctx.app, ctx)

    async def scenario() -> list[Any]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]

            async def call(method: str, path: str, token: str, body: Any = None) -> Any:
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.request(method, path, json=body, headers=headers)
                return resp.status, await resp.json()

            def silence(category: str) -> dict[str, Any]:
                return {"matchers": [f'category="{category}"'], "duration": "1h", "reason": "x"}

            made = [
                await call("POST", "/api/v1/silences", OPERATOR_TOKEN, silence(f"c{i}"))
                for i in range(3)
            ]
            refused = await call("POST", "/api/v1/silences", OPERATOR_TOKEN, silence("more"))
            first = made[0][1]["silence"]["id"]
            expired = await call("DELETE", f"/api/v1/silences/{first}", COORDINATOR_TOKEN)
            again = await call("POST", "/api/v1/silences", OPERATOR_TOKEN, silence("more"))
            return [made, refused, expired, again]

    made, refused, expired, again = asyncio.run(scenario())
    assert [status for status, _ in made] == [201, 201, 201]
    assert refused == (
        409,
        {
            "error": "3 silences have not ended, at most 3 may: expire some first "
            "(citybrain silences list, then expire ID)"
        },
    )
    assert expired[0] == 200
    assert again[0] == 201  # an expired one does not count


def test_a_body_dripped_a_byte_at_a_time_is_cut_408(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 29: aiohttp waits for each chunk without end, so a body sent a byte every
    few seconds held its connection for as long as the client liked. Here the rule is
    1 s (CITYBRAIN_HTTP_TIMEOUT) and a byte comes every 0.2 s."""
    monkeypatch.setattr(ctx.settings, "http_timeout", 1.0)
    register_api(ctx.app, ctx)
    body = b'{"matchers": ["kind=\\"pm25\\""], "duration": "1h", "reason": "dripped"}'

    async def scenario() -> tuple[bytes, int]:
        server = TestServer(ctx.app.web.web_app)  # type: ignore[attr-defined]
        await server.start_server()
        try:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"Authorization: Bearer {OPERATOR_TOKEN}\r\n".encode()
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            sent = 0
            answer = b""
            for byte in body:
                writer.write(bytes([byte]))
                sent += 1
                try:
                    answer = await asyncio.wait_for(reader.read(65536), 0.2)
                except TimeoutError:
                    continue
                if answer:
                    break
            while b"not sent within" not in answer:  # the rest of the answer, if split
                more = await asyncio.wait_for(reader.read(65536), 10)
                if not more:
                    break
                answer += more
            writer.close()
            return answer, sent
        finally:
            await server.close()

    answer, sent = asyncio.run(scenario())
    assert sent < len(body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b'"the body was not sent within 1s"' in answer
    assert len(ctx.silences) == 0


@pytest.mark.parametrize(("matcher", "matched"), [('alert_id=~".+"', 2), ('kind="pm25"', 1)])
def test_a_new_silence_says_how_many_firing_alerts_it_matches(
    ctx: Context, matcher: str, matched: int
) -> None:
    """t71: ``alert_id=~".+"`` matches every alert yet no matcher of it matches the empty
    string, so it is a valid silence (Alertmanager 0.25 and amtool accept it too); the
    answer says how many alerts firing now it matches, so a control room sees at once
    that it mutes everything."""
    ctx.firing.data[b"al-1"] = {"alert_id": "al-1", "kind": "water_level"}
    ctx.firing.data[b"al-2"] = {"alert_id": "al-2", "kind": "pm25"}
    status, doc = post(ctx, [matcher])
    assert status == 201, doc
    assert (doc["firing_matched"], doc["firing"]) == (matched, 2)


@pytest.mark.parametrize(
    ("matchers", "warning"),
    [
        (['alert_id=~".+"'], "'alert_id=~\".+\"' matches any alert_id"),
        (
            [{"name": "severity", "value": "minor|major|critical", "isRegex": True}],
            "'severity=~\"minor|major|critical\"' matches every severity an alert can have "
            "(minor, major, critical)",
        ),
        (
            ['source=~"sensor|citizen"', 'kind!=""'],
            "'source=~\"sensor|citizen\"' matches every source an alert can have (sensor, "
            "citizen); 'kind!=\"\"' matches every kind an alert can have (all 14 of them)",
        ),
        # t203: !="" written as a regex, and a regex of no text: each passes every alert.
        (
            ['alert_id!~"^$"'],
            "'alert_id!~\"^$\"' matches any alert_id, and every alert citybrain raises has one",
        ),
        (
            [{"name": "alert_id", "value": "a^b", "isRegex": True, "isEqual": False}, 'kind!=""'],
            "'alert_id!~\"a^b\"' matches any alert_id ('a^b' matches no text); 'kind!=\"\"' "
            "matches every kind an alert can have (all 14 of them)",
        ),
        # One matcher that chooses is enough: no warning.
        (['source=~"sensor|citizen"', 'kind!=""', 'kind="pm25"'], None),
    ],
)
def test_the_answer_warns_of_a_silence_each_matcher_of_which_matches_every_alert(
    ctx: Context, matchers: list[Any], warning: str
) -> None:
    """t197: no matcher of these matches the empty string, so each silence is taken (as
    Alertmanager takes it) and mutes every alert; the answer says so in ``warnings``, as
    ``playbooks check`` says it of a route. Fails on the old code (no warnings key)."""
    status, doc = post(ctx, matchers)
    assert status == 201, doc
    if warning is None:
        assert "warnings" not in doc, doc
        return
    assert doc["warnings"] == [
        f"matchers: this silence matches every alert ({warning}), so it mutes every alert, "
        "critical floods included: add a matcher that tells the alerts to mute apart"
    ]


def test_the_answer_warns_of_a_matcher_alertmanager_0_27_reads_otherwise(ctx: Context) -> None:
    """t118: a text entry Alertmanager 0.25 and 0.27's UTF-8 matchers read apart is taken
    as 0.25 reads it (t115) and the answer says so in ``warnings``, as ``silences add``
    and ``playbooks check`` print it (before, only the worker's log said it); an object
    and an entry both read alike add nothing, and an answer without a warning has no
    ``warnings`` key (Alertmanager API clients see the answer they knew). A retry with
    the same Idempotency-Key answers the same warnings."""
    entry = 'category="a\\tb"'
    body = {
        "matchers": ['kind="pm25"', entry, {"name": "source", "value": "a\\tb", "isRegex": False}],
        "duration": "1h",
        "reason": "t118",
    }
    register_api(ctx.app, ctx)

    async def go() -> list[tuple[int, dict[str, Any]]]:
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Idempotency-Key": "k1"}
        async with TestClient(TestServer(web_app)) as client:
            out = []
            for _ in range(2):  # created, then the retry's "already: created"
                resp = await client.post("/api/v1/silences", json=body, headers=headers)
                out.append((resp.status, await resp.json()))
                await asyncio.sleep(0.01)
            # Read alike by both (an object is taken as it is): no warnings key.
            alike = {**body, "matchers": [body["matchers"][0], body["matchers"][2]]}
            del headers["Idempotency-Key"]
            resp = await client.post("/api/v1/silences", json=alike, headers=headers)
            out.append((resp.status, await resp.json()))
            return out

    *answers, (status, alike) = asyncio.run(go())
    assert status == 201 and "warnings" not in alike, alike
    for status, doc in answers:
        assert status == 201, doc
        [warning] = doc["warnings"]
        assert warning.startswith(
            f'matchers[1]: matcher {entry!r} is read as category="a\\\\tb", as Alertmanager 0.25'
        ), warning
        assert 'but as category="a\\tb" by Alertmanager 0.27' in warning, warning
    assert answers[1][1]["already"] == "created"


def store_silences(ctx: Context, now: float, matchers: Any) -> None:
    """300 silences ``s0``..``s299`` in ``ctx``'s table as the changelog fills it, the
    ``i``-th with ``matchers(i)``, started 10 s before ``now`` and ending an hour after."""
    for i in range(300):
        doc = {
            "id": f"s{i}",
            "matchers": matchers(i),
            "starts_at": now - 10,
            "ends_at": now + 3600,
            "author": "op",
            "reason": "r",
        }
        ctx.silences.data[f"s{i}".encode()] = doc


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item counter of ``Silence.from_dict`` calls from now on."""
    parsed = [0]
    from_dict = Silence.from_dict.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Silence], data: Any) -> Silence:
        parsed[0] += 1
        return from_dict(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(Silence, "from_dict", classmethod(counted))
    return parsed


def test_listing_silences_reads_them_as_the_route_agent_read_them(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t131: every GET /silences parsed every stored silence again, 10,000 regex ones
    seconds of a frozen worker (no routing, no Kafka heartbeat) for each listing; now
    the route agent's book's reading is used, and only a changed one is parsed."""
    now = time.time()
    store_silences(ctx, now, lambda i: [f'alert_id=~"al-{i}.*"'])
    ctx.silence_book.read(ctx.stored_silences(), now, ctx.silences_version())
    parsed = count_parses(monkeypatch)
    ctx.silences.data[b"s7"] = {
        **ctx.silences.data[b"s7"],
        "matchers": ['category="x"', 'kind=~"a("'],
    }
    status, doc, _ = ask(ctx, "GET", "/api/v1/silences", OPERATOR_TOKEN)
    assert status == 200 and len(doc["silences"]) == 300
    assert parsed[0] == 1  # the changed one only; before: 300
    by_id = {s["id"]: s for s in doc["silences"]}
    assert by_id["s1"]["active"] is True and "unreadable" not in by_id["s1"]
    assert "bad regex" in by_id["s7"]["unreadable"] and by_id["s7"]["active"] is False


def test_a_listing_before_the_route_agent_read_keeps_what_it_parsed(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t141: until the route agent had read the silences (its first alert after a
    start), every GET /silences parsed every stored one again, in one step, and kept
    nothing: 10,000 took 6-9 s a listing. Now a listing reads the worker's book (in
    steps) and keeps it; the route agent then parses nothing and still reports (audits,
    counts) an unreadable one, once; the listing itself writes no audit record."""
    now = time.time()
    store_silences(ctx, now, lambda i: [f'alert_id=~"al-{i}.*"'] if i != 7 else ['kind=~"a("'])
    parsed = count_parses(monkeypatch)
    audited: list[dict[str, Any]] = []

    async def audit(record: dict[str, Any]) -> None:
        audited.append(record)

    monkeypatch.setattr(ctx, "audit", audit)
    register_api(ctx.app, ctx)

    async def listings() -> list[tuple[int, dict[str, Any], int]]:
        answers = []
        web_app = ctx.app.web.web_app  # type: ignore[attr-defined]
        async with TestClient(TestServer(web_app)) as client:
            for _ in range(2):
                parsed[0] = 0
                resp = await client.get(
                    "/api/v1/silences", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
                )
                answers.append((resp.status, await resp.json(), parsed[0]))
        return answers

    for (status, doc, count), expected in zip(asyncio.run(listings()), (300, 0), strict=True):
        assert status == 200 and len(doc["silences"]) == 300
        by_id = {s["id"]: s for s in doc["silences"]}
        assert by_id["s1"]["active"] is True and "unreadable" not in by_id["s1"]
        assert "bad regex" in by_id["s7"]["unreadable"] and by_id["s7"]["active"] is False
        assert count == expected  # before: 300 each
    parsed[0] = 0
    assert audited == []
    silences = asyncio.run(ctx.read_silences(time.time()))  # the route agent
    assert len(silences) == 299 and parsed[0] == 0
    assert [(r["action"], r["silence_id"]) for r in audited] == [("silence_unreadable", "s7")]
    asyncio.run(ctx.read_silences(time.time()))
    assert len(audited) == 1


def test_a_stored_silence_is_listed_and_expired_by_its_key(ctx: Context) -> None:
    """t160: a stored silence without an id, or with another id than its key (another
    tool's changelog entry), was listed without its key, so nothing the listing showed
    could expire it ("no silence 'B'"). Every silence is listed under its key now, which
    DELETE takes; the mismatched one is unreadable (read_stored), not in force. And one
    whose end was true (an int to Python) was expired by writing true back, starts_at
    too: never ended, never forgotten; it ends now. `silences list` showed none of them:
    one whose matchers were null made it exit 70 ('NoneType' object is not iterable)."""
    now = time.time()
    good = {
        "matchers": ['kind="pm25"'],
        "starts_at": now - 10,
        "ends_at": now + 3600,
        "author": "op",
        "reason": "r",
    }
    ctx.silences.data[b"no-id"] = dict(good)
    ctx.silences.data[b"other"] = {**good, "id": "B"}
    ctx.silences.data[b"true-end"] = {**good, "id": "true-end", "ends_at": True}
    ctx.silences.data[b"null"] = {**good, "id": "null", "matchers": None}
    (status, doc), expired, (_, after) = list_expire_all_list(ctx)
    assert status == 200
    listed = {s["id"]: s for s in doc["silences"]}
    assert sorted(listed) == ["no-id", "null", "other", "true-end"]
    assert all(s["active"] is False and s["unreadable"] for s in listed.values())
    assert "'id' is 'B', but it is stored under the key 'other'" in listed["other"]["unreadable"]
    table = silences_table(doc["silences"], now).splitlines()
    assert len(table) == 5 and "True (not a date)" in "".join(table)
    for key, (status, answer) in zip(listed, expired, strict=True):
        assert status == 200, answer
        stored = ctx.silences.data[key.encode()]
        assert isinstance(stored["ends_at"], float) and stored["ends_at"] <= time.time()
        assert not isinstance(stored["starts_at"], bool)
        assert already_expired_message(key, answer["silence"], {"by": "c"}, now)
    assert {s["id"]: s.get("unreadable") for s in after["silences"]} == dict.fromkeys(listed)


def test_an_unreadable_silence_is_listed_bounded_not_whole(ctx: Context) -> None:
    """t166: an unreadable (or expired) stored silence was listed with its whole stored
    document: one entry of 1 MB (another tool's changelog entry: a comment of 1 MB, a
    thousand fields) made every listing 1 MB larger. Now at most MAX_LISTED_FIELDS
    fields, each at most MAX_LISTED_FIELD_BYTES of JSON, a longer one shown by its start,
    and ``cut`` naming them. Fails on the old code."""
    now = time.time()
    good = {"matchers": ['kind="pm25"'], "starts_at": now - 10, "ends_at": now + 3600}
    huge = {**good, "id": "B", "comment": "c" * 1_000_000}
    huge.update({f"extra-{n}": n for n in range(1_000)})
    ctx.silences.data[b"huge"] = huge
    ctx.silences.data[b"ended"] = {**good, "id": "ended", "ends_at": now - 1, "note": "n" * 10**6}
    long_key = "k" * 100_000
    ctx.silences.data[long_key.encode()] = {**good, "id": "other"}
    register_api(ctx.app, ctx)

    async def listing() -> tuple[int, bytes]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]
            headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            resp = await client.get("/api/v1/silences", headers=headers)
            return resp.status, await resp.read()

    status, body = asyncio.run(listing())
    assert status == 200 and len(body) < 20_000
    listed = {s.get("key", s["id"])[:20]: s for s in orjson.loads(body)["silences"]}
    shown = listed["huge"]
    assert shown["unreadable"] and shown["comment"].startswith("'ccc") and len(shown) < 40
    assert shown["cut"] == ["comment", "973 more fields"]
    assert shown["matchers"] == good["matchers"]  # a field of its size is shown whole
    assert listed["ended"]["cut"] == ["note"] and listed["ended"]["active"] is False
    cut_key = listed["k" * 20]["key"]  # its id the handle that expires it (t173)
    assert cut_key.startswith("k" * 100) and "(100,000 characters, sha256 " in cut_key


@pytest.mark.parametrize(
    ("matchers", "said"),
    [
        (['kind="pm25", severity="major"'] * 64, "128 matchers in 64 entries, at most 64"),
        (['category=~"' + "\\." * 500 + 'x"', 'kind="pm25"'], "1,513 characters as stored"),
        (["category=" + "a" * 1015, 'kind="pm25"'], "1,026 characters as stored"),
    ],
)
def test_a_silence_past_the_bounds_once_stored_is_refused_not_stored_unreadable(
    ctx: Context, matchers: list[str], said: str
) -> None:
    """t160: the API bounded a request's entries (64, 1,024 characters each), read-back
    the stored matchers: an entry holding two matchers is stored as two, and a matcher
    is stored quoted and escaped (an unquoted value gains its quotes, each `\\.` of a
    regex an escaped backslash). Such a silence was answered 201 and stored past the
    bounds, so every worker, the one that wrote it too, read it as unreadable: never in
    force. Now a 400 saying so; nothing is stored."""
    status, doc = post(ctx, matchers)
    assert status == 400 and said in doc["error"], doc
    assert dict(ctx.silences.data.items()) == {}


def test_a_silence_at_the_bounds_once_stored_is_stored_readable(ctx: Context) -> None:
    status, doc = post(ctx, ["category=" + "a" * 1013, *['kind="pm25"'] * 63])
    assert status == 201, doc
    key = doc["silence"]["id"]
    stored = ctx.silences.data[key.encode()]
    assert max(map(len, stored["matchers"])) == 1024 and len(stored["matchers"]) == 64
    assert isinstance(read_stored(key, stored), Silence)


def test_a_silence_under_a_key_no_url_carries_is_expired_by_its_listed_handle(
    ctx: Context,
) -> None:
    """t173 (fails on the old code): a silence stored under a key of about 1 MB (another
    tool's changelog entry), or one that is not UTF-8, was listed with its key cut (or
    with replacement characters), and nothing the listing showed could expire it: no URL
    carries the key. Now it is listed under ``sha256:`` and 16 hex digits of its key's
    SHA-256 (the key, cut, as ``key``), which ``DELETE /silences/ID`` takes; the expiry
    of the 1 MB key still fits one message, and the answer is bounded."""
    now = time.time()
    good = {"matchers": ['kind="pm25"'], "starts_at": now - 10, "ends_at": now + 3600}
    huge_key = b"k" * 1_000_000
    ctx.silences.data[huge_key] = {**good, "id": "other", "comment": "c" * 40_000}
    ctx.silences.data[b"bad-\xff"] = {**good, "id": "bad-\ufffd"}
    (status, doc), expired, (_, after) = list_expire_all_list(ctx)
    assert status == 200
    ids = [s["id"] for s in doc["silences"]]
    assert all(i.startswith("sha256:") and len(i) == 7 + 16 for i in ids), ids
    keys = [s["key"] for s in doc["silences"]]
    assert any("(1,000,000 characters, sha256 " in k for k in keys), keys
    assert [s for s, _ in expired] == [200, 200], expired
    for key in (huge_key, b"bad-\xff"):
        stored = ctx.silences.data[key]
        assert stored["ends_at"] <= time.time() and stored["expired_by"]
        assert len(key) + len(orjson.dumps(stored)) <= 1_048_576
    assert all(len(orjson.dumps(answer)) < 20_000 for _, answer in expired)
    assert {s["id"] for s in after["silences"]} == set(ids)
    assert all(s["active"] is False and "unreadable" not in s for s in after["silences"])


def test_a_handle_that_names_no_stored_key_is_no_silence(ctx: Context) -> None:
    # As `silences expire` sends it: the colon percent-encoded in the path segment.
    register_api(ctx.app, ctx)
    status, doc, _ = ask(
        ctx, "DELETE", "/api/v1/silences/sha256%3A0123456789abcdef", COORDINATOR_TOKEN
    )
    assert status == 404 and "no silence 'sha256:0123456789abcdef'" in doc["error"], doc


def test_a_handle_several_stored_keys_share_is_a_409_asking_for_more_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t173's ``sha256:`` handle of a silence whose key no URL carries: when several
    stored keys' SHA-256 start with the digits given, DELETE answers 409 naming them and
    asking for more of the 64 digits (openapi.yaml; 16 shared digits cannot be made on a
    running worker, so tests/integration/test_openapi_walk.py leaves that 409 to here).
    The digest is made to agree for every key."""
    import types

    from streams.api import ApiError, handled_key

    class SameDigest:
        def __init__(self, data: bytes = b"") -> None:
            self.data = data

        def hexdigest(self) -> str:
            return "ab" * 32

    monkeypatch.setattr("streams.api.hashlib", types.SimpleNamespace(sha256=SameDigest))
    keys = [b"x" * 2_000, b"y" * 2_000, b"short-id"]
    with pytest.raises(ApiError) as refused:
        handled_key(keys, "sha256:" + "ab" * 8)
    assert refused.value.status == 409
    assert refused.value.message == (
        "2 stored silences' keys have a SHA-256 starting abababababababab: give more of "
        "its 64 digits"
    )


def test_an_expired_silence_is_listed_with_its_exact_matchers_and_reason(ctx: Context) -> None:
    """t214: an expired silence was listed bounded as an unreadable one is (t166), each
    field over 4,096 bytes of JSON shown as its first 80 characters: a silence the API
    took, its matchers 5 regexes of 1,000 characters or its reason 2,000 CJK characters,
    once expired was listed with ``matchers`` as a text ("'['category=~..." cut) and its
    reason cut, so neither ``silences list`` nor the API gave back what had been silenced,
    and the listed matchers could not be added again. Alertmanager lists an expired
    silence's matchers whole. Now a field within the bounds the API writes it to is listed
    whole, expired or not; a field past them is still cut. Fails on the old code."""
    regexes = [f'category=~"{c}{"a?" * 498}"' for c in "vwxyz"]
    body = {"matchers": [*regexes, 'kind="pm25"'], "duration": "1h", "reason": "中" * 2000}
    register_api(ctx.app, ctx)

    async def scenario() -> list[tuple[int, Any]]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]

            async def call(method: str, path: str, token: str, json: Any = None) -> Any:
                headers = {"Authorization": f"Bearer {token}"}
                resp = await client.request(method, path, json=json, headers=headers)
                return resp.status, await resp.json()

            made = await call("POST", "/api/v1/silences", OPERATOR_TOKEN, body)
            path = f"/api/v1/silences/{made[1]['silence']['id']}"
            before = await call("GET", "/api/v1/silences", OPERATOR_TOKEN)
            expired = await call("DELETE", path, COORDINATOR_TOKEN)
            after = await call("GET", "/api/v1/silences", OPERATOR_TOKEN)
            # What the listing gives is a silence the API takes again, the same matchers.
            listed = after[1]["silences"][0]["matchers"]
            again = await call(
                "POST", "/api/v1/silences", OPERATOR_TOKEN, {**body, "matchers": listed}
            )
            return [made, before, expired, after, again]

    made, before, expired, after, again = asyncio.run(scenario())
    assert [made[0], before[0], expired[0], after[0], again[0]] == [201, 200, 200, 200, 201]
    stored = made[1]["silence"]
    assert len(orjson.dumps(stored["matchers"])) > 4096
    assert len(orjson.dumps(stored["reason"])) > 4096
    for listing in (before[1], after[1]):
        listed = next(s for s in listing["silences"] if s["id"] == stored["id"])
        assert "cut" not in listed, listed["cut"]
        assert listed["matchers"] == stored["matchers"] and listed["reason"] == stored["reason"]
    assert after[1]["silences"][0]["active"] is False
    assert again[1]["silence"]["matchers"] == stored["matchers"]


def test_a_readable_silence_with_fields_the_api_never_writes_is_listed_bounded(
    ctx: Context,
) -> None:
    """t214 (t166's sibling): a stored silence that reads as one (another tool's changelog
    entry with a comment of 1 MB and a thousand fields besides valid matchers and times)
    was listed with its whole document: every listing 1 MB larger. Now bounded as an
    unreadable or expired one is; its matchers and reason whole. Fails on the old code."""
    now = time.time()
    doc: dict[str, Any] = {
        "id": "other-tool",
        "matchers": ['kind="pm25"', 'category="a \\"b\\""'],
        "starts_at": now - 10,
        "ends_at": now + 3600,
        "author": "a",
        "reason": "r" * 2000,
        "comment": "c" * 1_000_000,
    }
    doc.update({f"extra-{n}": n for n in range(1_000)})
    ctx.silences.data[b"other-tool"] = doc
    (status, listing), _, _ = list_expire_all_list(ctx)
    assert status == 200
    (listed,) = listing["silences"]
    assert listed["active"] is True and "unreadable" not in listed
    assert listed["matchers"] == doc["matchers"] and listed["reason"] == doc["reason"]
    assert listed["cut"] == ["comment", "975 more fields"]
    assert len(orjson.dumps(listing)) < 20_000
