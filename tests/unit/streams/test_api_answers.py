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

from streams.api import ApiError, json_body, json_content_type
from streams.app import create_app
from streams.settings import Settings


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
    assert doc == {"error": "no such path '/api/v1/runz': the operator API is under /api/v1"}


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
