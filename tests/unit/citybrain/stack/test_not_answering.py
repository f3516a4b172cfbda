"""t85: a stack service that runs but answers nothing (a SIGSTOPped or wedged broker
takes TCP connections and never replies) was shown by `stack status` as "starting"
after 31 s, however long it had run, and the hint said to start the stack. Past the
start-up grace it is "not answering" now, within kafka-python's bounded bootstrap, with
its pid, its log and the commands that restart it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from streams.settings import Settings


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers (a frozen broker, as seen from a
    client: the kernel completes the handshake, nothing reads)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def _kafka_running_since(
    tmp_path: Path, port: int, seconds_ago: float, monkeypatch: pytest.MonkeyPatch
) -> KafkaBroker:
    # The test's own process stands for the broker: as old as its backdated pid file, or
    # read_pid takes the file for a stale one whose pid went to a younger process (t111).
    from citybrain.stack import process

    monkeypatch.setattr(process, "process_age", lambda pid: seconds_ago + 1.0)
    kafka = KafkaBroker(Settings(run_dir_override=tmp_path, kafka_port=port))
    kafka.dir.mkdir(parents=True)
    kafka.config.write_text(
        f"node.id=1\nlisteners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}\n"
    )
    kafka.pid_file.write_text(str(os.getpid()))  # a live process, as the stack's broker
    at = time.time() - seconds_ago
    os.utime(kafka.pid_file, (at, at))
    return kafka


@pytest.mark.parametrize(("seconds_ago", "state"), [(600.0, "not answering"), (5.0, "starting")])
def test_a_broker_taking_connections_and_answering_nothing(
    tmp_path: Path,
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seconds_ago: float,
    state: str,
) -> None:
    from citybrain.cli import EXIT_FAILED, main

    kafka = _kafka_running_since(tmp_path, silent_port, seconds_ago, monkeypatch)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(silent_port))
    for name in ("PROMETHEUS", "MQTT", "WORKER"):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(free.getsockname()[1]))
    assert main(["stack", "status"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    line = next(line for line in out.splitlines() if line.startswith("kafka"))
    assert line.split(maxsplit=1)[1].startswith(state), line
    if state == "not answering":
        assert f"(running for 10 min, pid {os.getpid()}; its log: {kafka.shown_log})" in line
        assert err.startswith(
            # How long it runs, not how long it is silent, which status cannot know (t98).
            "citybrain: the stack is not ready: kafka runs (for 10 min) but does not answer "
            "now: "
            f"see its log {kafka.shown_log}; `"
        ), err
        assert "start the local stack" not in err
    else:
        assert "start the local stack with `" in err, err


def test_a_command_whose_kafka_takes_connections_and_answers_nothing_is_not_told_to_start_it(
    silent_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """t85: `deadletters`, `campaign report` … on a broker frozen from the start ended
    "no Kafka broker answered … start the local stack with `… stack up`", which answers
    that it runs. With something taking connections there, the line says so and points
    to `stack status`; with nothing there, the start hint stays."""
    from kafka.errors import KafkaTimeoutError

    from citybrain.cli import EXIT_SERVICE
    from citybrain.cli.main import _describe

    # A run directory of its own: a local stack running in the default one (another
    # session's) turned "start the local stack" into its port-mismatch hint (t90).
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(silent_port))
    status, line = _describe(KafkaTimeoutError())
    assert status == EXIT_SERVICE
    assert line.startswith(
        f"no Kafka broker answered at 127.0.0.1:{silent_port} (it did not answer in time), "
        "though a process there takes connections: a broker frozen, overloaded or still "
        "starting? `"
    ), line
    assert line.endswith("stack status` says whether the local stack's Kafka runs and answers")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        nobody = free.getsockname()[1]
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(nobody))
    status, line = _describe(KafkaTimeoutError())
    assert status == EXIT_SERVICE and "start the local stack with `" in line, line


@pytest.mark.parametrize(
    "argv",
    [["runs", "list"], ["runs", "ack", "grp-x.1"]],
    ids=["read", "action"],
)
def test_an_operator_api_that_takes_the_connection_and_answers_nothing(
    silent_port: int, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """t85: `runs`/`silences` against a frozen or overloaded worker (the connection
    taken, no answer) said "no worker serves it there; start one"; an action's outcome,
    unknown, went unsaid. Now the line says the worker took it and did not answer, and
    an action's says its outcome is unknown and prints it again with its key."""
    from citybrain.cli import EXIT_SERVICE, main

    url = f"http://127.0.0.1:{silent_port}"
    assert main([*argv, "--url", url, "--token", "t0ken"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith(
        f"citybrain: the operator API at {url} took the connection but did not answer "
        "within 10 s: a worker frozen or overloaded? `"
    ), err
    assert "start one" not in err
    if argv[1] == "ack":
        assert "whether POST /runs/grp-x.1/ack was applied is unknown" in err, err
        retry = err.split(
            "retry it as the same action (applied once, even if the first one still takes effect): "
        )[1]
        assert "runs ack grp-x.1 --url " in retry and "--idempotency-key " in retry, retry
        assert "t0ken" not in err and retry.rstrip().endswith("with your --token")
    else:
        assert "unknown" not in err


def test_the_worker_start_up_probe_asks_below_authentication(silent_port: int) -> None:
    """``broker_answers``: a port that takes connections and answers nothing is False (a
    frozen broker); one that answers the ApiVersions request is True whatever it answers
    (a broker refusing the worker's credentials still answers, and the worker then says
    why: the twenty-ninth session's CI caught a wrong password called a frozen broker)."""
    from citybrain.kafka_read import broker_answers

    assert not broker_answers(Settings(kafka_port=silent_port), timeout=0.5)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    asked: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(64))
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x01")  # size, correlation id

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert broker_answers(Settings(kafka_port=server.getsockname()[1]), timeout=5)
    finally:
        thread.join(5)
        server.close()
    # ApiVersions (key 18) v0, correlation id 1, this probe's client id.
    assert asked[0][4:12] == b"\x00\x12\x00\x00\x00\x00\x00\x01"


@pytest.mark.parametrize(
    "argv",
    [
        ["deadletters", "--prefix", "t101"],
        ["replay", "--max", "DATA"],
        ["report", "--prefix", "t101", "--data", "DATA", "--out", "OUT/r.html"],
        ["campaign", "report", "--from", "2024-05-26", "--to", "2024-05-27", "--prefix", "t101"],
    ],
    ids=["deadletters", "replay", "report", "campaign report"],
)
def test_a_command_on_a_kafka_that_takes_connections_and_answers_nothing_says_it_waits(
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """t101: `replay` and `deadletters` on a frozen Kafka said nothing for ~30 s before
    their exit-3 line. Every command that talks to Kafka asks it first (``_require_kafka``):
    past ``KAFKA_QUIET_SECONDS`` it says on stderr that it waits and for how long, and past
    ``KAFKA_WAIT_SECONDS`` it gives up, exit 3 (both shortened here)."""
    import citybrain.cli.stack
    from citybrain.cli import EXIT_SERVICE, main

    monkeypatch.setattr(citybrain.cli.stack, "KAFKA_QUIET_SECONDS", 0.3)
    monkeypatch.setattr(citybrain.cli.stack, "KAFKA_WAIT_SECONDS", 1.0)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(silent_port))
    data = str(Path(__file__).parents[4] / "datasets" / "nyc311_2024-05-26.csv.gz")
    argv = [data if a == "DATA" else a.replace("OUT/", f"{tmp_path}/") for a in argv]
    assert main(argv) == EXIT_SERVICE
    lines = capsys.readouterr().err.strip().splitlines()
    waiting = [line for line in lines if line.startswith("citybrain: waiting for Kafka")]
    assert waiting == [
        f"citybrain: waiting for Kafka at 127.0.0.1:{silent_port}: it takes connections but "
        "has not answered for 0.3 s (frozen or overloaded?); giving up after 1 s (Ctrl-C "
        "stops now)"
    ], lines
    assert lines[-1].startswith(
        f"citybrain: Kafka at 127.0.0.1:{silent_port} takes connections but did not answer "
        "within 1 s (frozen or overloaded; `"
    ), lines
    assert "Traceback" not in "\n".join(lines)
