"""A command reading a topic whose Kafka stops answering part-way (frozen with SIGSTOP:
it still takes connections, answers nothing) ends with exit 3 and one line naming the
broker and what was read, rather than waiting for ever (`citybrain deadletters`,
helper t85) or returning part of the topic as all of it (`report`, `campaign report`,
the demo's summary); `deadletters --follow` says Kafka stopped answering and goes on
once it answers again; a replay ends with 3 and the command that sends the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

import streams.feeds
from citybrain.cli import EXIT_SERVICE, main
from citybrain.deadletters import Reader
from citybrain.demo import read_topic
from citybrain.errors import KafkaStoppedError
from citybrain.stack import KafkaBroker
from citybrain.stack.process import read_pid
from tests.services import TEST_PORTS, Pipeline, stack_settings
from tests.stalls import sigstop

pytestmark = pytest.mark.integration


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def freeze(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Freezes the test stack's Kafka at the first ``poll`` of any kafka-python consumer
    (after the command's own checks, before it reads a message), thawed at the end."""
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    frozen: list[int] = []
    poll = KafkaConsumer.poll

    def freezing_poll(self: KafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        if not frozen:
            sigstop(pid)
            frozen.append(pid)
        return poll(self, *args, **kwargs)

    monkeypatch.setattr(KafkaConsumer, "poll", freezing_poll)
    try:
        yield frozen
    finally:
        os.kill(pid, signal.SIGCONT)


def _send_dead_letters(pipeline: Pipeline, count: int) -> str:
    topic = pipeline.topic("deadletter")
    for i in range(count):
        pipeline.producer.send(topic, key=f"k{i}".encode(), value=b"{}", partition=i % 2)
    pipeline.producer.flush()
    return topic


def test_deadletters_ends_with_3_when_kafka_freezes_mid_read(
    pipeline: Pipeline,
    env: None,
    freeze: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = _send_dead_letters(pipeline, 4)
    assert main(["deadletters", "--prefix", pipeline.name]) == EXIT_SERVICE
    assert freeze  # it froze mid-read, not before
    out, err = capsys.readouterr()
    assert out == ""  # nothing half-shown
    assert err.startswith(
        f"citybrain: Kafka at {pipeline.settings.kafka_bootstrap} stopped answering while "
        f"reading the latest dead letters of {topic} (2 partitions not read to the end)"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_whole_topic_read_is_an_error_not_part_of_it_when_kafka_freezes(
    pipeline: Pipeline, freeze: list[int]
) -> None:
    topic = _send_dead_letters(pipeline, 4)
    with pytest.raises(KafkaStoppedError, match=f"while reading {topic} "):
        read_topic(pipeline.settings, topic)


def test_a_follow_says_kafka_stopped_answering_and_goes_on_when_it_answers(
    pipeline: Pipeline, run_dir: Path
) -> None:
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    topic = _send_dead_letters(pipeline, 1)
    notices: list[str] = []

    def notice(line: str) -> None:
        notices.append(line)
        if "stopped answering" in line:
            os.kill(pid, signal.SIGCONT)  # back; the follow should say so and go on
        elif "answers again" in line:
            _send_dead_letters(pipeline, 1)

    # (A bound so a broken follow fails rather than hangs; not a timing assertion.)
    give_up = time.monotonic() + 180
    try:
        with Reader(pipeline.settings, topic) as reader:
            assert len(reader.latest(10)) == 1
            sigstop(pid)
            new = next(reader.new(lambda: time.monotonic() > give_up, notice), None)
    finally:
        os.kill(pid, signal.SIGCONT)
    where = pipeline.settings.kafka_bootstrap
    assert notices[0].startswith(f"Kafka at {where} stopped answering; still following {topic}")
    assert notices[1] == f"Kafka at {where} answers again; following {topic}"
    assert new is not None and new.key == b"k0"


def test_a_replay_ends_with_3_when_kafka_freezes_part_way(
    pipeline: Pipeline,
    env: None,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A replay whose Kafka froze part-way waited for ever in kafka-python's flush (and
    its close, so SIGTERM did not end it either), silent; now its last flush is bounded
    and the replay ends with 3, how far it got and the command that sends the rest."""
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    monkeypatch.setenv("CITYBRAIN_TOPIC_PREFIX", pipeline.name)
    monkeypatch.setattr(streams.feeds, "FLUSH_SECONDS", 10.0)  # the bound, shortened
    sent: list[int] = []
    send = KafkaProducer.send

    def freezing_send(self: KafkaProducer, *args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        if len(sent) == 200:
            sigstop(pid)
        return send(self, *args, **kwargs)

    monkeypatch.setattr(KafkaProducer, "send", freezing_send)
    data = Path(__file__).parents[2] / "datasets" / "usgs_flood_2019-05.csv.gz"
    try:
        status = main(["replay", "--max", str(data)])
    finally:
        os.kill(pid, signal.SIGCONT)
    err = capsys.readouterr().err
    assert status == EXIT_SERVICE, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(
        f"citybrain: Kafka at {pipeline.settings.kafka_bootstrap} stopped answering part-way"
    )
    assert "to send the rest: " in line and " --skip " in line
    assert "Traceback" not in err


def test_a_worker_does_not_start_silently_on_a_frozen_kafka(
    pipeline: Pipeline, run_dir: Path
) -> None:
    """A frozen broker takes connections, so the TCP check passed and the worker waited
    without a word for as long as it stayed frozen (95 s by hand, helper t85)."""
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    sigstop(pid)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "citybrain.cli", "worker"],
            env=pipeline.env,
            capture_output=True,
            text=True,
            timeout=180,  # a bound so a hang fails rather than blocks; not a timing check
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert done.returncode == EXIT_SERVICE, done.stderr
    lines = done.stderr.strip().splitlines()
    # Said while it waits (t101), then the bounded wait's end: every command's words.
    assert any(
        line.startswith(f"citybrain: waiting for Kafka at {pipeline.settings.kafka_bootstrap}")
        for line in lines
    ), done.stderr
    assert lines[-1].startswith(
        f"citybrain: Kafka at {pipeline.settings.kafka_bootstrap} takes connections but did "
        "not answer within 20 s (frozen or overloaded"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["replay", "deadletters"])
def test_a_command_started_on_a_frozen_kafka_says_it_waits_and_goes_on_once_it_answers(
    pipeline: Pipeline, run_dir: Path, command: str
) -> None:
    """t101: `replay` and `deadletters` on a frozen Kafka (SIGSTOP: the port takes
    connections, nothing answers) said nothing for ~30 s, then exit 3. Now they say on
    stderr that they wait for it, and for how long; thawed meanwhile, they go on."""
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    data = Path(__file__).parents[2] / "datasets" / "usgs_flood_2019-05.csv.gz"
    argv = {
        "replay": ["replay", "--max", str(data)],
        "deadletters": ["deadletters", "--prefix", pipeline.name],
    }[command]
    sigstop(pid)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", *argv],
            env=pipeline.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        said = []
        for line in proc.stderr:  # until it says it waits (a bound below, not a timing)
            said.append(line)
            if line.startswith("citybrain: waiting for Kafka"):
                break
    finally:
        os.kill(pid, signal.SIGCONT)
    rest = proc.communicate(timeout=300)[1]
    err = "".join(said) + rest
    assert said[-1] == (
        f"citybrain: waiting for Kafka at {pipeline.settings.kafka_bootstrap}: it takes "
        "connections but has not answered for 3 s (frozen or overloaded?); giving up after "
        "20 s (Ctrl-C stops now)\n"
    ), err
    assert proc.returncode == 0, err
    assert f"citybrain: Kafka at {pipeline.settings.kafka_bootstrap} answers\n" in rest, err
    assert "Traceback" not in err
