"""t117: a request body the operator API is told is compressed (``Content-Encoding``),
against a really started worker. aiohttp decompresses one gzip or deflate layer while the
view reads the body: a body that was not gzip under ``Content-Encoding: gzip`` raised
out of the view (a 500, a traceback in the worker's log), ``gzip, gzip`` was read one
layer deep as JSON ("byte 0x00 (NUL) ... UTF-16?"), an unknown coding was ignored and
its bytes read as JSON. Now a body not as its coding says is a 400 naming it, and a
coding the API does not read a 415 naming it with ``Accept-Encoding``; one gzip or
deflate layer is read as before."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.raw_http import read_all, send
from tests.services import OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration
SILENCE = json.dumps({"matchers": ['kind="pm25"'], "duration": "1h", "reason": "t117"}).encode()


def post(port: int, coding: bytes, body: bytes) -> bytes:
    head = (
        b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
        % (OPERATOR_TOKEN.encode(), coding, len(body))
    )
    return read_all(send(port, head + body))


@pytest.mark.parametrize(
    ("coding", "body", "status", "said"),
    [
        (
            b"gzip",
            SILENCE,  # said, not done
            400,
            "the body could not be read as its Content-Encoding 'gzip' says: ",
        ),
        (
            b"deflate",
            SILENCE,
            400,
            "the body could not be read as its Content-Encoding 'deflate' says: ",
        ),
        (
            b"gzip, gzip",
            gzip.compress(gzip.compress(SILENCE)),
            415,
            "Content-Encoding is 'gzip, gzip': the operator API takes JSON uncompressed or in "
            "one gzip or deflate coding; send the body without compression (no "
            "Content-Encoding, or identity)",
        ),
        (
            b"x-custom",
            SILENCE,
            415,
            "Content-Encoding is 'x-custom': the operator API takes JSON uncompressed or in "
            "one gzip or deflate coding;",
        ),
    ],
)
def test_a_body_not_as_its_coding_says_or_in_a_coding_not_read_is_named(
    pipeline: Pipeline, coding: bytes, body: bytes, status: int, said: str
) -> None:
    worker = pipeline.worker().start()
    try:
        answer = post(pipeline.settings.worker_port, coding, body)
        # One gzip layer, and identity (no coding at all), are read as before (201, or
        # 503 while the worker reads its state back).
        zipped = post(pipeline.settings.worker_port, b"gzip", gzip.compress(SILENCE))
        plain = post(pipeline.settings.worker_port, b"identity", SILENCE)
        log = worker.log()
    finally:
        worker.stop()
    head, _, text = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status, answer[:300]
    assert json.loads(text)["error"].startswith(said), text
    if status == 415:
        assert b"accept-encoding: identity, gzip, deflate" in head.lower()
    assert zipped.split()[1] in (b"201", b"503"), zipped[:300]
    assert plain.split()[1] in (b"201", b"503"), plain[:300]
    assert "Traceback" not in log, log[-3000:]


def test_a_coding_aiohttp_has_no_decoder_for_is_named_not_blamed_on_http(
    pipeline: Pipeline,
) -> None:
    # aiohttp refuses br and zstd as it parses, before any view: the worker's JSON 400
    # said "the request is not HTTP/1.1 the worker can read: Can not decode
    # content-encoding: brotli (br). Please install `Brotli`".
    worker = pipeline.worker().start()
    try:
        answers = {c: post(pipeline.settings.worker_port, c, SILENCE) for c in (b"br", b"zstd")}
        log = worker.log()
    finally:
        worker.stop()
    for coding, answer in answers.items():
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == b"400", answer[:300]
        error = json.loads(text)["error"]
        assert error.startswith("the body's Content-Encoding is "), error
        assert f"({coding.decode()}), which the worker does not read: send JSON " in error
        assert "install" not in error
    assert "Traceback" not in log


def test_a_utf8_idempotency_key_from_the_cli_is_the_same_silence_once(
    pipeline: Pipeline,
) -> None:
    # t117: http.client writes a header as ISO-8859-1, so `--idempotency-key ключ-1` was
    # "unexpected UnicodeEncodeError ... This is a bug" (exit 70). Now it goes out as its
    # UTF-8 bytes, which the worker reads as the same text: a retry is the same silence.
    import subprocess
    import sys

    worker = pipeline.worker().start()
    try:
        pipeline.api_until("/silences", OPERATOR_TOKEN, lambda status, _: status == 200)
        env = {**pipeline.env, "CITYBRAIN_API_TOKEN": OPERATOR_TOKEN}
        argv = [sys.executable, "-m", "citybrain.cli", "silences", "add", "--json"]
        argv += ["--matcher", 'kind="pm25"', "--duration", "1h", "--reason", "t117"]
        argv += ["--idempotency-key", "ключ-1"]
        runs = [subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)]
        runs.append(subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60))
    finally:
        worker.stop()
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    first, again = (json.loads(r.stdout) for r in runs)
    assert again["silence"]["id"] == first["silence"]["id"]
    assert again.get("already") == "created" and "already" not in first
