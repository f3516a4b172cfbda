"""t92: a benchmark whose Kafka stopped answering a bounded question, or whose host-name
lookup ran past its bound, ends with one line and status 3, as citybrain's commands."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import EXIT_PIPE, EXIT_SERVICE, run_main
from citybrain import names
from citybrain.errors import KafkaStoppedError

ROOT = Path(__file__).resolve().parents[3]


def _fails(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [
        KafkaStoppedError("Kafka at 127.0.0.1:19092 took the connection but did not answer"),
        names.LookupStalledError("kafka.example", 5),
    ],
)
def test_a_service_that_does_not_answer_is_one_line_and_status_3(
    exc: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    before = socket.getaddrinfo
    with pytest.raises(SystemExit) as caught:
        run_main(lambda: _fails(exc))
    assert caught.value.code == EXIT_SERVICE
    assert capsys.readouterr().err == f"{sys.argv[0]}: {exc}\n"
    assert socket.getaddrinfo is before  # the bounded lookup is the run's only


def test_the_runs_lookups_are_bounded() -> None:
    seen = []
    run_main(lambda: seen.append(socket.getaddrinfo))
    assert seen == [names.bounded_getaddrinfo]


def test_a_reader_gone_is_status_141_and_no_traceback() -> None:
    """`python -m bench.nab_loco … | head` ended with a BrokenPipeError traceback (t93)."""
    code = "from bench import run_main\nrun_main(lambda: [print('x' * 80) for _ in range(200_000)])"
    done = subprocess.run(
        f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} | head -1; "
        'echo "status ${PIPESTATUS[0]}" >&2',
        shell=True,
        executable="/bin/bash",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == "x" * 80 + "\n"
    assert done.stderr == f"status {EXIT_PIPE}\n"
