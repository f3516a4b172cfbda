"""t92: a benchmark whose Kafka stopped answering a bounded question, or whose host-name
lookup ran past its bound, ends with one line and status 3, as citybrain's commands."""

from __future__ import annotations

import socket
import sys

import pytest

from bench import EXIT_SERVICE, run_main
from citybrain import names
from citybrain.errors import KafkaStoppedError


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
