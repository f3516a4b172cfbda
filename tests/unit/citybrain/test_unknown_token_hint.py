"""t76: README's `export CITYBRAIN_API_TOKEN=$(cat ~/.cache/citybrain/run/demo/operator-token)`
typed for a demo run with its own CITYBRAIN_RUN_DIR sends another demo's token; the 401
said only "check --token / CITYBRAIN_API_TOKEN", not where this run directory's demo
token is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import main
from tests.unit.citybrain.json_api import json_api

REFUSAL = {"error": "unknown bearer token: it is none of the 3 configured tokens"}


@pytest.fixture
def api() -> Iterator[str]:
    with json_api(lambda method, path, body: (401, REFUSAL)) as url:
        yield url


def test_an_unknown_token_is_told_where_the_demo_s_token_is(
    api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "operator-token").write_text("op\n")
    assert main(["runs", "list", "--url", api, "--token", "another-demos"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"citybrain: the operator API at {api} refused GET /runs: HTTP 401: unknown bearer "
        "token: it is none of the 3 configured tokens; check --token / CITYBRAIN_API_TOKEN; "
        f"the demo's operator token is in {tmp_path}/demo/operator-token: "
        f'`export CITYBRAIN_API_TOKEN="$(cat {tmp_path}/demo/operator-token)"` '
        f"(its coordinator token is in {tmp_path}/demo/coordinator-token)\n"
    )
