"""t117: a command-line argument with a byte that is not UTF-8 (Python keeps it in argv as
a lone surrogate, U+DCFF for 0xff) is one line naming the argument and the byte, status 2.
Before, a run or silence id and --url with one were "unexpected UnicodeEncodeError ...
This is a bug" (exit 70), and --reason or --note reached the worker, whose 400 spoke of a
"lone surrogate"; --url with a character that is not ASCII (a host not in punycode) was
the same "bug"."""

from __future__ import annotations

import socket

import pytest

from tests.unit.citybrain.test_cli_errors import run_in_process


@pytest.fixture
def env(tmp_path: object) -> dict[str, str]:
    # A port nothing listens on: a command that got past its checks says so (exit 3).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {
        "CITYBRAIN_RUN_DIR": str(tmp_path),
        "CITYBRAIN_HOME": str(tmp_path),
        "CITYBRAIN_WORKER_PORT": str(port),
        "CITYBRAIN_API_TOKEN": "tok",
    }


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["runs", "show", "r-\udcff"], "RUN_ID has byte 0xff at position 3, which is not UTF-8"),
        (["runs", "ack", "r-\udcff"], "RUN_ID has byte 0xff at position 3, which is not UTF-8"),
        (
            ["silences", "expire", "\udcc3"],
            "SILENCE_ID has byte 0xc3 at position 1, which is not UTF-8",
        ),
        (
            ["runs", "ack", "r-1", "--note", "on my w\udce9y"],
            "--note has byte 0xe9 at position 8, which is not UTF-8",
        ),
        (
            [
                "silences",
                "add",
                "--matcher",
                'kind="pm25"',
                "--duration",
                "1h",
                "--reason",
                "f\udcfcr",
            ],
            "--reason has byte 0xfc at position 2, which is not UTF-8",
        ),
        (
            ["runs", "answer", "r-1", "--report", "x\udcff", "--satisfied"],
            "--report has byte 0xff at position 2, which is not UTF-8",
        ),
        (
            ["runs", "list", "--url", "http://127.0.0.1:1/\udcff"],
            "--url has byte 0xff at position 20, which is not UTF-8",
        ),
        (
            [
                "silences",
                "add",
                "--matcher",
                'kind="pm25"',
                "--duration",
                "1h",
                "--reason",
                "r",
                "--idempotency-key",
                "k\udcff",
            ],
            "--idempotency-key has byte 0xff at position 2, which is not UTF-8",
        ),
        # t197: a --matcher's byte was said as the lone surrogate Python keeps it as
        # ("holds a lone surrogate (U+DCFF)", before that "is not valid UTF-8" alone),
        # and route-test's label likewise.
        (
            [
                "silences",
                "add",
                "--matcher",
                'category="a\udcffb"',
                "--duration",
                "1h",
                "--reason",
                "r",
            ],
            "--matcher has byte 0xff at position 12, which is not UTF-8",
        ),
        (
            ["playbooks", "route-test", "category=a\udcffb"],
            "label 'category=a\\xffb' has byte 0xff at position 11, which is not UTF-8",
        ),
        (
            ["silences", "list", "--url", "http://b\u00fccher.example"],
            "--url has 'ü' at position 9: a URL is ASCII (a host name in its punycode",
        ),
    ],
)
def test_an_argument_that_is_not_utf8_is_named_with_its_byte(
    env: dict[str, str], argv: list[str], said: str
) -> None:
    outcome = run_in_process(argv, env)
    assert outcome.returncode == 2, outcome
    assert said in outcome.stderr
    assert "unexpected" not in outcome.stderr and "Traceback" not in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1


def test_utf8_text_in_an_id_note_or_key_is_asked_as_before(env: dict[str, str]) -> None:
    argv = ["runs", "ack", "r-é", "--note", "on my wáy", "--idempotency-key", "ключ-1"]
    outcome = run_in_process(argv, env)
    assert outcome.returncode == 3, outcome  # past every check: no worker listens there
    assert "cannot reach the operator API" in outcome.stderr
