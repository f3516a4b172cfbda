"""t76: README's `export CITYBRAIN_API_TOKEN=$(cat ~/.cache/citybrain/run/demo/operator-token)`
typed for a demo run with its own CITYBRAIN_RUN_DIR sends another demo's token; the 401
said only "check --token / CITYBRAIN_API_TOKEN", not where this run directory's demo
token is."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import main


class _Refuses(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"error": "unknown bearer token: it is none of the 3 configured tokens"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
