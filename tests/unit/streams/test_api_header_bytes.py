"""t117: a request header the operator API reads as text (``Idempotency-Key``,
``Content-Type``) with a byte that is not UTF-8 is a 400 naming the header, its value as
sent and the byte. Before, aiohttp kept the byte as a lone surrogate and hashing the key
into the silence id (or a run command's id) raised ``UnicodeEncodeError``: a 500 and a
traceback in the worker's log for a client's mistake; passed on to another worker, the
header could not be written again either."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from streams.api import header_fault
from streams.app import create_app
from streams.settings import Settings
from tests.services import OPERATOR_TOKEN, write_tokens

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SILENCE = json.dumps({"matchers": ['kind="pm25"'], "duration": "1h", "reason": "t117"}).encode()


def raw_request(tmp_path: Path, method: bytes, path: bytes, extra: bytes, body: bytes) -> bytes:
    """The whole answer of a fresh worker's web server to one request sent as raw bytes
    (no HTTP client sends a header byte that is not UTF-8)."""
    settings = Settings(
        run_dir_override=tmp_path,
        grid_file=FIXTURES / "grid.yaml",
        api_tokens_file=write_tokens(tmp_path / "tokens.yaml"),
    )
    app: Any = create_app(settings, CollectorRegistry())
    head = (
        b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n" % (method, path, OPERATOR_TOKEN.encode(), len(body))
    )
    request = head + extra + b"\r\n" + body

    def exchange(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            return data

    async def call() -> bytes:
        server = TestServer(app.web.web_app)
        await server.start_server()
        port = server.port
        assert port is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(None, exchange, port)
        finally:
            await server.close()

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("method", "path", "extra", "said"),
    [
        (
            b"POST",
            b"/api/v1/silences",
            b"Content-Type: application/json\r\nIdempotency-Key: \xff\xfe\r\n",
            "header 'Idempotency-Key' is b'\\xff\\xfe': byte 0xFF is not UTF-8",
        ),
        (
            b"POST",
            b"/api/v1/silences",
            b"Content-Type: application/json\r\nIdempotency-Key: key-\xed\xa0\x80\r\n",
            "header 'Idempotency-Key' is b'key-\\xed\\xa0\\x80': byte 0xED is not UTF-8",
        ),
        (
            b"POST",
            b"/api/v1/runs/r-1/ack",
            b"Content-Type: application/json\r\nIdempotency-Key: \xc3\r\n",
            "header 'Idempotency-Key' is b'\\xc3': byte 0xC3 is not UTF-8",
        ),
        (
            b"POST",
            b"/api/v1/silences",
            b"Content-Type: application/json; charset=\xff\r\n",
            "header 'Content-Type' is b'application/json; charset=\\xff': byte 0xFF is not",
        ),
    ],
)
def test_a_header_byte_that_is_not_utf8_is_a_400_naming_the_header(
    tmp_path: Path, method: bytes, path: bytes, extra: bytes, said: str
) -> None:
    answer = raw_request(tmp_path, method, path, extra, SILENCE if b"silences" in path else b"{}")
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    assert status_line.split()[1] == b"400", answer
    assert said in json.loads(body)["error"]


def test_a_utf8_key_is_taken_as_before(tmp_path: Path) -> None:
    assert header_fault({"Idempotency-Key": "café-1", "Content-Type": "application/json"}) is None
    answer = raw_request(
        tmp_path,
        b"POST",
        b"/api/v1/silences",
        b"Content-Type: application/json\r\nIdempotency-Key: caf\xc3\xa9\r\n",
        SILENCE,
    )
    # Past the header check: the fresh worker's tables are not read back yet (503), which
    # is what any silence gets here; not a 400 for the key.
    assert answer.split()[1] != b"400", answer
