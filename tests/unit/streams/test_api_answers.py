"""The operator API answers in JSON whatever refuses a request: an unknown path's 404 and
another method's 405 (aiohttp's own, plain text before trial 8) and a body that is not
JSON by its Content-Type (415, as the ingest answers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from streams.api import API_MAX_BODY, ApiError, json_body, json_content_type, register_api
from streams.app import create_app
from streams.settings import Settings
from tests.services import OPERATOR_TOKEN
from tests.unit.streams.test_api_delivery import context


def answer(tmp_path: Path, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
    """Status, JSON body and Allow header of one request to a fresh app's web server."""
    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())

    async def ask() -> tuple[int, Any, str]:
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            resp = await client.request(method, path, **kw)
            return resp.status, await resp.json(), resp.headers.get("Allow", "")

    return asyncio.run(ask())


def test_an_unknown_path_is_a_json_404(tmp_path: Path) -> None:
    status, doc, _ = answer(tmp_path, "GET", "/api/v1/runz")
    assert status == 404
    assert doc == {
        "error": "no such path '/api/v1/runz': the operator API's paths are /api/v1/runs, "
        "/api/v1/runs/{run_id}, /api/v1/runs/{run_id}/{action}, /api/v1/alerts, "
        "/api/v1/silences, /api/v1/silences/{silence_id} (docs/openapi.yaml) "
        "(did you mean '/api/v1/runs'?)"
    }
    _, doc, _ = answer(tmp_path, "GET", "/api/v1/silence/s-1")
    assert doc["error"].endswith("(did you mean '/api/v1/silences/s-1'?)"), doc
    _, doc, _ = answer(tmp_path, "GET", "/api/v1/zzzzzz")
    assert "did you mean" not in doc["error"]


def test_another_method_is_a_json_405_naming_the_allowed_ones(tmp_path: Path) -> None:
    status, doc, allow = answer(tmp_path, "PUT", "/api/v1/silences")
    assert status == 405
    assert doc["error"].startswith("PUT is not allowed on '/api/v1/silences': it takes GET")
    assert "POST" in allow


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        (None, False),
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("application/merge-patch+json", False),
        ("application/x-www-form-urlencoded", True),
        ("text/plain", True),
        ("application/json; charset=latin-1", True),
    ],
)
def test_a_body_is_read_as_json_only_when_its_content_type_says_so(
    kind: str | None, refused: bool
) -> None:
    why = json_content_type(kind)
    assert (why is not None) == refused
    if why:
        assert why == f"Content-Type is {kind!r}, expected application/json (UTF-8)"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (
            b'{"report_id": "r-7", "satisfied": true, "satisfied": false}',
            "body is not valid JSON: key 'satisfied' is given twice in one object: which "
            "value is meant? (RFC 8259 section 4: names should be unique)",
        ),
        (b'{"matchers": [{"name": "a", "name": "b"}]}', "(in matchers[0])"),
    ],
)
def test_a_body_giving_a_key_twice_is_a_400_naming_it(raw: bytes, said: str) -> None:
    # Trial 13: the last of the two was taken silently (a satisfied answer recorded as not).
    with pytest.raises(ApiError) as err:
        json_body(raw)
    assert err.value.status == 400 and said in err.value.message
    assert json_body(b'{"report_id": "r-7", "satisfied": true}')["satisfied"] is True


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        # Trial 21: each was orjson's own text ("unexpected character: line 1 column 7
        # (char 6)", "str is not valid UTF-8: surrogates not allowed").
        (
            b'{"note": "on my way", ',
            "body is not valid JSON: at line 1, column 23 (byte 22), found the end of the "
            'text after \'note": "on my way", \': expected a key in double quotes ("name")',
        ),
        (
            b'{"note": "a" "b"}',
            "body is not valid JSON: at line 1, column 14 (byte 13), found '\"b\"}' after "
            "'{\"note\": \"a\" ': expected ',' or the end of the list or object",
        ),
        (b'{"note": 1} x', "more text after the end of the JSON value"),
        (b'{"note": "a",}', "a trailing comma before the end of a list or object"),
        (b'{"note": "two\nlines"}', "found '\\nlines\"}' after '{\"note\": \"two': a control"),
        (
            b'\xff{"note": 1}',
            "body is not valid JSON: byte 0xff at offset 0 is not UTF-8 (JSON is UTF-8 text, "
            "RFC 8259)",
        ),
        (b'{"note": "\\ud800"}', "field \"note\" is '\\ud800': a lone surrogate"),
        (b"[" * 2000 + b"]" * 2000, "body is not valid JSON: nested deeper than 1024 levels"),
        (b"[1, 2]", "body is [1, 2], expected a JSON object"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_saying_where_and_what(raw: bytes, said: str) -> None:
    with pytest.raises(ApiError) as err:
        json_body(raw)
    assert err.value.status == 400 and said in err.value.message, err.value.message


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        # A number past a double is read, so the field is named (orjson: "number is
        # infinity when parsed as double: line 1 column 39 (char 38)").
        (
            b'{"matchers": ["a=\\"b\\""], "starts_at": 1' + b"0" * 400 + b', "duration": "1h"}',
            'field "starts_at" is 1000',
        ),
        (
            b'{"matchers": ["a=\\"b\\""], "duration": 1e400}',
            # As sent, not the inf it overflows to (t98).
            'field "duration" is 1e400, expected text',
        ),
        (b'{"matchers": ["a=\\"b\\""], "duration": NaN}', 'field "duration" is nan, expected text'),
        (b'{"matchers": [null], "duration": "1h"}', "matchers[0] is null, expected matcher text"),
        (
            b'{"matchers": ["a=\\"b\\"", true], "duration": "1h"}',
            "matchers[1] is true, expected matcher text",
        ),
        # An empty body is {}: it said "duration is empty", naming nothing to add.
        (b"", 'field "duration" is missing: give "duration" (1h30m) or "ends_at"'),
    ],
)
def test_a_silence_body_with_a_bad_field_names_it(tmp_path: Path, raw: bytes, said: str) -> None:
    status, doc = post_raw(tmp_path, "/api/v1/silences", raw, {"Content-Type": "application/json"})
    assert status == 400 and said in doc["error"], doc


def test_a_body_over_the_limit_is_a_413_naming_the_limit(tmp_path: Path) -> None:
    """aiohttp answered {"error": "Request Entity Too Large"}; a chunked body too (no
    Content-Length), refused once past the limit rather than read whole."""
    big = b'{"reason": "' + b"x" * API_MAX_BODY + b'"}'
    status, doc = post_raw(tmp_path, "/api/v1/silences", big, {})
    assert status == 413
    assert doc["error"] == (
        f"body is {len(big):,} bytes, at most 1,048,576 are accepted: send less in one request"
    )

    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65_536

    status, doc = post_raw(tmp_path, "/api/v1/silences", chunks(), {})
    assert status == 413
    assert doc["error"].startswith(
        "body is more than 1,048,576 bytes (sent without Content-Length), at most 1,048,576"
    )


def test_a_chunked_body_within_the_limit_is_read(tmp_path: Path) -> None:
    async def chunks() -> Any:
        yield b'{"matchers": ["kind=\\"pm25\\""], '
        yield b'"duration": "0s", "reason": "chunked"}'

    status, doc = post_raw(
        tmp_path, "/api/v1/silences", chunks(), {"Content-Type": "application/json"}
    )
    # Read whole and checked: its duration is named, so the body was read.
    assert status == 400 and doc["error"].startswith("\"duration\" is '0s', expected more than 0")


def post_raw(tmp_path: Path, path: str, data: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """Status and JSON answer of a POST of ``data`` (bytes or an async generator, sent
    chunked) with an operator's token to a context's API."""
    ctx = context(tmp_path)
    register_api(ctx.app, ctx)

    async def ask() -> tuple[int, Any]:
        async with TestClient(TestServer(ctx.app.web.web_app)) as client:  # type: ignore[attr-defined]
            resp = await client.post(
                path, data=data, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}", **headers}
            )
            return resp.status, await resp.json()

    return asyncio.run(ask())
