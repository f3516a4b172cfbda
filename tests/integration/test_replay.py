"""Replaying files into the real Kafka, one reading per message or as edge-gateway packs."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from citybrain.commands import cli_command
from citybrain.stack import PrometheusServer
from streams.events import IncidentReport, Reading, format_ts
from streams.feeds import Replayer
from streams.partitioning import ReadingPacker, key_partition
from tests.services import ROOT, Pipeline

pytestmark = pytest.mark.integration
T0 = 1_790_000_000.0


def events() -> list[Reading | IncidentReport]:
    out: list[Reading | IncidentReport] = [
        Reading(T0 + 60 * step, sensor, "water_level", float(step), "ft", "c-bridge")
        for step in range(20)
        for sensor in ("gauge-1", "gauge-2", "gauge-3")
    ]
    out.append(IncidentReport(T0, "r-1", "Flooding", "water on the road", "app", "c-bridge"))
    return out


def packed_readings(messages: list[Any], partitions: int) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {}
    for m in messages:
        doc = json.loads(m.value)
        assert doc["schema"] == "readings/1"
        for r in doc["readings"]:
            assert key_partition(r["sensor_id"].encode(), partitions) == m.partition
            seen.setdefault(r["sensor_id"], []).append(r["value"])
    return seen


@pytest.mark.parametrize("speed", [None, 3600.0])
def test_a_packed_replay_sends_every_reading_once_on_its_partition(
    stack: PrometheusServer, run_dir: Path, speed: float | None
) -> None:
    p = Pipeline(run_dir)
    n = p.settings.partitions
    replayer = Replayer(
        p.settings.kafka_bootstrap,
        p.topic("readings"),
        p.topic("incidents"),
        packer=ReadingPacker(n, 8),
    )
    try:
        stats = replayer.replay(events(), speed)
    finally:
        replayer.close()
    assert (stats.readings, stats.incidents) == (60, 1)
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 60,
        settle=1,
    )
    steps = [float(step) for step in range(20)]
    assert packed_readings(messages, n) == {s: steps for s in ("gauge-1", "gauge-2", "gauge-3")}
    packs = [json.loads(m.value)["readings"] for m in messages]
    assert all(len(pack) <= 8 for pack in packs)
    if speed is None:
        assert max(len(pack) for pack in packs) == 8  # as fast as possible: packs fill up
    else:
        # Paced: partial packs go out at each new event time, so no reading waits for
        # the next round.
        assert all(len({r["ts"] for r in pack}) == 1 for pack in packs)
    assert len(p.read("incidents", lambda m: len(m) >= 1, settle=0.5)) == 1


def _discharge(n: int) -> list[Reading | IncidentReport]:
    # As ../shared/field-cases/replay-pack-too-large/make_csv.py writes them (~148 bytes
    # a reading packed, so 8,000 of them are 1.18 MB, over Kafka's 1 MiB default).
    return [
        Reading(T0 + 60 * i, "usgs-01589330-discharge", "discharge", 100.0 + i % 7, "ft3/s", "c")
        for i in range(n)
    ]


@pytest.mark.parametrize("size", [8000, 10_000])
def test_large_packs_are_split_below_the_broker_limit_and_all_arrive(
    stack: PrometheusServer, run_dir: Path, size: int
) -> None:
    """Field case replay-pack-too-large: --pack 8000 and 10000 sent nothing (a
    MessageSizeTooLargeError traceback); now every reading reaches the topic."""
    p = Pipeline(run_dir)
    n = p.settings.partitions
    replayer = Replayer(
        p.settings.kafka_bootstrap,
        p.topic("readings"),
        p.topic("incidents"),
        packer=ReadingPacker(n, size),
    )
    try:
        stats = replayer.replay(_discharge(20_000), None)
    finally:
        replayer.close()
    assert (stats.readings, stats.failed) == (20_000, 0), stats.first_failure
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 20_000,
        settle=1,
    )
    assert all(len(m.value) <= 1_000_000 for m in messages)
    values = packed_readings(messages, n)["usgs-01589330-discharge"]
    assert values == [100.0 + i % 7 for i in range(20_000)]


def pack20k_csv(path: Path) -> Path:
    """The field case's ``pack20k.csv`` at ``path``: 20,000 minutely readings of one
    discharge gauge."""
    rows = ["timestamp,sensor_id,kind,value,unit,grid_cell"]
    for i in range(20_000):
        ts = format_ts(1_556_668_800.0 + 60 * i)
        rows.append(f"{ts},usgs-01589330-discharge,discharge,{100 + i % 7}.0,ft3/s,c")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_field_case_pack_8000_through_the_cli_sends_every_reading(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``citybrain replay pack20k.csv --max --pack 8000``, the field case's own command."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    csv = pack20k_csv(run_dir / f"{p.name}-pack20k.csv")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max", "--pack", "8000"]) == 0
    out = capsys.readouterr().out
    assert "read 20,000 rows: sent 20,000 readings and 0 incidents, skipped 0 bad rows" in out
    # It says where it sends (the new-user trial of issue 15: it named no topic).
    assert (
        f"sending to Kafka at {p.settings.kafka_bootstrap}, topics {p.name}.readings and "
        f"{p.name}.incidents (prefix '{p.name}': CITYBRAIN_TOPIC_PREFIX)"
    ) in out
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 20_000,
        settle=1,
    )
    assert sum(len(json.loads(m.value)["readings"]) for m in messages) == 20_000
    assert max(len(m.value) for m in messages) <= 1_000_000


def test_packs_are_split_below_what_the_broker_takes_when_max_message_bytes_is_above_it(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 19: with --max-message-bytes above the broker's message.max.bytes, the
    summary said "sent 20,000 readings" and then "Kafka refused 2 messages"; t162 counted
    them refused, but the broker's refusal had also failed every message after it. The
    replay now asks the broker what its topics take and splits the packs below that: every
    reading arrives."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    csv = pack20k_csv(run_dir / f"{p.name}-pack20k.csv")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        argv = ["replay", str(csv), "--max", "--pack", "10000", "--max-message-bytes", "3000000"]
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "read 20,000 rows: sent 20,000 readings and 0 incidents, skipped 0 bad rows" in out
    assert err.startswith(
        "citybrain: the broker takes messages of at most 1,048,588 bytes on "
        f"{p.name}.readings (its max.message.bytes), less than --max-message-bytes 3,000,000: "
        "the rows are checked again against 1,048,460"
    )
    assert "Traceback" not in err
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 20_000,
        settle=1,
    )
    assert sum(len(json.loads(m.value)["readings"]) for m in messages) == 20_000
    assert max(len(m.value) for m in messages) <= 1_048_460


def takes_at_most(p: Pipeline, size: int) -> None:
    """Set the max.message.bytes of ``p``'s readings topic to ``size``."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, p.topic("readings"), {"max.message.bytes": str(size)}
        )
        admin.alter_configs([resource])
    finally:
        admin.close()


def test_packs_are_split_below_what_a_topic_takes_that_takes_less_than_the_default(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t162: a readings topic whose max.message.bytes is 200,000 refused every pack of
    `--pack 10000` (~1 MB each, under the default --max-message-bytes), and kafka-python's
    idempotent producer then failed every message after the first refusal. A packed
    replay asks the broker what its topics take and splits the packs below it."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    takes_at_most(p, 200_000)
    csv = pack20k_csv(run_dir / f"{p.name}-pack20k.csv")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max", "--pack", "10000"]) == 0
    out, err = capsys.readouterr()
    assert "read 20,000 rows: sent 20,000 readings and 0 incidents, skipped 0 bad rows" in out
    assert err.startswith(
        f"citybrain: the broker takes messages of at most 200,000 bytes on {p.name}.readings "
        "(its max.message.bytes), less than --max-message-bytes 1,000,000"
    )
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 20_000,
        settle=1,
    )
    assert sum(len(json.loads(m.value)["readings"]) for m in messages) == 20_000
    assert max(len(m.value) for m in messages) <= 200_000 - 128


def broker_takes_at_most(p: Pipeline, size: int | None) -> int:
    """Set the broker's own message.max.bytes (what it makes a topic with) to ``size``, or
    leave it (None); returns what it was. Each test process has a broker of its own."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        broker = str(admin.describe_cluster()["brokers"][0]["broker_id"])
        asked = ConfigResource(ConfigResourceType.BROKER, broker, ["message.max.bytes"])
        configs = admin.describe_configs([asked], config_filter="all")["broker"][broker]
        was = int(configs["message.max.bytes"]["value"])
        if size is not None:
            change = ConfigResource(
                ConfigResourceType.BROKER, broker, {"message.max.bytes": str(size)}
            )
            admin.alter_configs([change])
        return was
    finally:
        admin.close()


def test_packs_to_topics_not_made_yet_are_split_below_what_the_broker_makes_them_with(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t204: a replay to a prefix whose topics are not made yet (the broker makes them at
    the first send, with its message.max.bytes) asked nothing of them, so on a broker
    taking 100,000 bytes every pack of `--pack 10000` (~1 MB) was refused: 'sent 0
    readings …, Kafka refused 20,000', exit 1. It asks the broker's message.max.bytes for
    them and splits the packs below it."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    fresh = f"{p.name}n"  # a prefix of no topics yet
    csv = pack20k_csv(run_dir / f"{p.name}-pack20k.csv")
    was = broker_takes_at_most(p, 100_000)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in {**p.env, "CITYBRAIN_TOPIC_PREFIX": fresh}.items():
                mp.setenv(key, value)
            code = main(["replay", str(csv), "--max", "--pack", "10000"])
    finally:
        broker_takes_at_most(p, was)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "read 20,000 rows: sent 20,000 readings and 0 incidents, skipped 0 bad rows" in out
    assert err.startswith(
        f"citybrain: the broker takes messages of at most 100,000 bytes on {fresh}.readings "
        "(not made yet: the broker's message.max.bytes, which it makes it with), less than "
        "--max-message-bytes 1,000,000"
    )
    made = Pipeline(run_dir, name=fresh)  # the topics the broker made
    messages = made.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 20_000,
        settle=1,
    )
    assert sum(len(json.loads(m.value)["readings"]) for m in messages) == 20_000
    assert max(len(m.value) for m in messages) <= 100_000 - 128


def small_topic_csv(path: Path) -> Path:
    """200 readings of one gauge, and as line 52 one whose message is 1,002 bytes (four
    labels of 178 characters): more than a topic taking 1,000 bytes holds."""
    rows = ["timestamp,sensor_id,kind,value,unit,grid_cell"]
    for i in range(200):
        rows.append(f"{format_ts(1_557_532_800.0 + 60 * i)},gauge-1,water_level,{i},ft,c")
    long = "x" * 178
    rows.insert(51, f"{format_ts(1_557_532_800.0 + 3000)},s{long[1:]},{long},1.0,{long},{long}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("options", "code", "says"),
    [
        # Every replay asks (t215): the row is skipped by its line, the rest sent. Before,
        # a replay at the default --max-message-bytes did not ask, and the broker's
        # refusal failed every message queued after it ("Kafka refused", exit 1).
        (
            ["--on-error", "skip"],
            0,
            ":52: the row's message is 1,002 bytes, more than the 872 a Kafka message may "
            "hold here",
        ),
        # Asked: checked against 872 (1,000 less the framing), not 1,024.
        (
            ["--max-message-bytes", "2000000"],
            2,
            ":52: the row's message is 1,002 bytes, more than the 872 a Kafka message may "
            "hold here",
        ),
        (["--pack", "100"], 3, "too few for packs (1,024 bytes and Kafka's framing, 128)"),
    ],
)
def test_a_topic_taking_less_than_a_kilobyte_is_said_never_a_bug(
    stack: PrometheusServer,
    run_dir: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    code: int,
    says: str,
) -> None:
    """t204: a readings topic taking 1,000 bytes. Not asked, the replay ended in
    'unexpected UnknownError: Future not done. This is a bug' (exit 70); asked, the rows
    were checked against 1,024 bytes (more than it takes) and packs bounded by 1,024, so
    the broker refused them, and with them every message queued after."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    takes_at_most(p, 1_000)
    csv = small_topic_csv(run_dir / f"{p.name}-small.csv")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max", *options]) == code
    err = capsys.readouterr().err
    assert says in err, err
    assert "unexpected" not in err and "Traceback" not in err


def test_a_refusal_by_a_broker_the_replay_could_not_ask_is_counted_never_a_bug(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """t204: a record batch the broker refused (a topic taking 1,000 bytes), which
    kafka-python splits and sends again, made the producer's flush raise 'UnknownError:
    Future not done', and the replay ended as "unexpected … This is a bug" (exit 70). The
    CLI now asks the broker first (t215); a replayer that could not ask counts the
    refusals as events not sent, and sends the rest."""
    p = Pipeline(run_dir)
    takes_at_most(p, 1_000)
    long = "x" * 178
    events = [
        Reading(T0 + 60 * i, "gauge-1", "water_level", float(i), "ft", "c") for i in range(200)
    ]
    events.insert(51, Reading(T0 + 3000, "s" + long[1:], long, 1.0, long, long))
    replayer = Replayer(p.settings.kafka_bootstrap, p.topic("readings"), p.topic("incidents"))
    try:
        stats = replayer.replay(events, None)
    finally:
        replayer.close()
    assert stats.readings == 201 and stats.failed >= 1, stats
    assert "MessageSizeTooLarge" in stats.first_failure, stats.first_failure


def oversized_csv(path: Path, rows: int = 3_000, wide: int = 100_000) -> Path:
    """``rows`` readings of one gauge, 10 s apart, and as line 4 a reading whose message
    is 12 * ``wide`` bytes and more (control characters, 6 bytes each in JSON: 1.2 MB by
    default, more than Kafka's default message.max.bytes of 1,048,588, and less than a
    line may be)."""
    lines = ["timestamp,sensor_id,kind,value,unit,grid_cell"]
    for i in range(rows):
        ts = format_ts(1_557_482_400.0 + 10 * i)
        lines.append(f"{ts},usgs-01589330-discharge,discharge,{100 + i % 7},ft3/s,c")
    text = "\x01" * wide
    lines.insert(3, f"{format_ts(1_557_482_420.0)},s,discharge,1,{text},{text}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("pack", [[], ["--pack", "10"]])
def test_one_event_larger_than_the_broker_takes_is_refused_by_its_line_and_the_rest_sent(
    stack: PrometheusServer,
    run_dir: Path,
    capsys: pytest.CaptureFixture[str],
    pack: list[str],
) -> None:
    """t162: one 1.2 MB reading among 3,000 with --max-message-bytes 2000000 (the broker
    takes 1,048,588): "sent 2 readings ..., Kafka refused 2,999". kafka-python's
    idempotent producer takes the broker's MessageSizeTooLarge as fatal and fails every
    message queued after it. Now the row is refused by file:line before anything is sent
    (exit 2), or skipped with --on-error skip and every other reading sent."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    csv = oversized_csv(run_dir / f"{p.name}-oversized.csv")
    argv = ["replay", str(csv), "--max", "--max-message-bytes", "2000000", *pack]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert "sending to Kafka" not in out
        assert f"{csv}:4: the row's message is 1,200,1" in err
        assert "more than the 1,048,460 a Kafka message may hold here; nothing was sent" in err
        assert main([*argv, "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert "read 3,001 rows: sent 3,000 readings and 0 incidents, skipped 1 bad row" in out
    assert f"skipped {csv}:4: the row's message is 1,200,1" in err
    assert "Kafka refused" not in err and "Traceback" not in err

    def values(m: Any) -> list[float]:
        doc = json.loads(m.value)
        return [r["value"] for r in doc["readings"]] if "readings" in doc else [doc["value"]]

    messages = p.read("readings", lambda m: sum(len(values(x)) for x in m) >= 3_000, settle=1)
    assert [v for m in messages for v in values(m)] == [100.0 + i % 7 for i in range(3_000)]


def test_a_stray_quote_or_a_latin1_byte_costs_one_report_and_is_counted(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field cases replay-stray-quote and replay-bad-bytes through the CLI: the reports
    around the bad one reach the topic, the bad one is skipped, named and counted (read 5
    = sent 4 + skipped 1; read 3 = sent 2 + skipped 1)."""
    from citybrain.cli import main
    from tests.services import FIXTURES

    p = Pipeline(run_dir)
    case = FIXTURES / "field-cases" / "stray-quote-incidents.csv"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(case), "--max"]) == 2
        assert f"{case}:3: a quoted field opens here" in capsys.readouterr().err
        assert main(["replay", str(case), "--max", "--on-error", "skip"]) == 0
        out, err = capsys.readouterr()
        assert f"skipped {case}:3: a quoted field opens here" in err
        assert "read 5 rows: sent 0 readings and 4 incidents, skipped 1 bad row" in out
        # Field case replay-bad-bytes: a Latin-1 byte costs its row only.
        latin1 = FIXTURES / "field-cases" / "latin1-incidents.csv"
        assert main(["replay", str(latin1), "--max", "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert f"skipped {latin1}:3: byte 0xf1 at column 71 is not UTF-8" in err
    assert "read 3 rows: sent 0 readings and 2 incidents, skipped 1 bad row" in out
    messages = p.read("incidents", lambda m: len(m) >= 6, settle=1)
    ids = sorted(json.loads(m.value)["report_id"] for m in messages)
    assert ids == ["nyc311-1"] * 5 + ["nyc311-4"]


def test_a_replay_of_a_misspelt_sensor_warns_after_sending_naming_the_registered_one(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer's `water_levl` typo was "sent 1 reading ... skipped 0 bad rows", exit 0,
    and nothing said the worker would dead-letter it."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    csv = tmp_path / "typo.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2026-09-21T14:00:00Z,gauge-1,water_level,1.0,ft,c-bridge\n"
        "2026-09-21T14:05:00Z,guage-1,water_level,1.1,ft,c-bridge\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics, broker and grid
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max"]) == 0
    out, err = capsys.readouterr()
    assert "sent 2 readings" in out
    [warning] = [line for line in err.splitlines() if "does not have" in line]
    assert warning.startswith(
        "citybrain: warning: 1 row named a sensor that grid.yaml (CITYBRAIN_GRID_FILE) does "
        "not have, dead-lettered as unknown_sensor: 'guage-1' (did you mean 'gauge-1'?) (by a "
        f"worker reading prefix {p.settings.topic_prefix!r}, which raises no alert on them: `"
    )
    # The deadletters command it prints reads this replay's prefix (t48: a bare
    # `citybrain deadletters` read the running demo's).
    assert f"CITYBRAIN_TOPIC_PREFIX={p.settings.topic_prefix} " in warning
    assert warning.endswith(" deadletters`)")
    assert len(p.read("readings", lambda m: len(m) >= 2, settle=1)) == 2


def test_an_interrupted_replay_says_how_far_it_got_and_its_resume_sends_the_rest(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """Ctrl-C in the middle of a paced replay: the one line names how many events Kafka
    has and the command that sends the rest; run as printed, every event is sent once."""
    p = Pipeline(run_dir)
    total = 40
    src = tmp_path / "gauge.csv"
    src.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"{format_ts(T0 + 60 * i)},gauge-1,water_level,{i}.0,ft,c-bridge\n"
            for i in range(total)
        )
    )
    # 60 s of event time a second: one reading a second, so Ctrl-C lands mid-way.
    proc = subprocess.Popen(
        [sys.executable, "-m", "citybrain.cli", "replay", str(src), "--speed", "60"],
        env=p.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    p.read("readings", lambda m: len(m) >= 3, timeout=90)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("citybrain: ")]
    found = re.search(r"after sending (\d+) of 40 events .*to send the rest: (.+)$", line)
    assert found, line
    sent = int(found.group(1))
    assert 3 <= sent < total
    # What it says was sent is what Kafka has.
    assert len(p.read("readings", lambda m: len(m) >= sent, settle=1)) == sent
    words = shlex.split(found.group(2))
    # The runnable form the other printed commands use (citybrain/commands.py), led by
    # the settings it ran with that differ from their defaults (the test's ports and
    # prefix), so it works as typed in a fresh shell.
    assignments = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, words))
    resume = words[len(assignments) :]
    assert assignments["CITYBRAIN_KAFKA_PORT"] == p.env["CITYBRAIN_KAFKA_PORT"]
    assert assignments["CITYBRAIN_TOPIC_PREFIX"] == p.env["CITYBRAIN_TOPIC_PREFIX"]
    assert resume[:2] == [cli_command(), "replay"] and resume[-2:] == ["--skip", str(sent)]
    fresh = {k: v for k, v in p.env.items() if not k.startswith("CITYBRAIN_")}
    rest = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *resume[1:], "--max"],
        env={**fresh, **assignments},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rest.returncode == 0, rest.stderr
    values = sorted(
        json.loads(m.value)["value"]
        for m in p.read("readings", lambda m: len(m) >= total, settle=1)
    )
    assert values == [float(i) for i in range(total)]  # each once: none lost, none twice


def test_a_report_on_a_prefix_without_events_says_so_and_lists_the_prefixes(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new-user trial of issue 15: a wrong --prefix gave an empty report (or blamed
    the grid). No topic under it: status 2, the topic named and the prefixes there;
    topics but no events: status 2, saying they are empty."""
    from citybrain.cli import main

    empty = Pipeline(run_dir)  # its topics exist, nothing was sent to them
    other = Pipeline(run_dir)  # another prefix with topics, named beside it
    data = str(ROOT / "datasets" / "usgs_flood_2019-05.csv.gz")
    out = str(run_dir / "report.html")
    missing = f"{empty.name}-not-there"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in empty.env.items():
            mp.setenv(key, value)
        assert main(["report", "--prefix", missing, "--data", data, "--out", out]) == 2
        err = capsys.readouterr().err
        assert f"--prefix '{missing}': no events under it: Kafka at " in err
        assert (
            f"has no topic {missing}.readings or {missing}.incidents or {missing}.alerts; "
            "prefixes there: "
        ) in err
        assert empty.name in err.split("prefixes there: ")[1] or "(the latest 8)" in err
        assert main(["report", "--prefix", empty.name, "--data", data, "--out", out]) == 2
        err = capsys.readouterr().err
        assert f"--prefix '{empty.name}': no events under it: its topics" in err
        assert "are empty" in err
        # t51: the others are named, as for a prefix with no topics.
        assert "(the demo prints its own); other prefixes there: " in err
        listed = err.split("other prefixes there: ")[1]
        assert other.name in listed or "(the latest 8)" in listed
        assert f" {empty.name}," not in listed and not listed.startswith(f"{empty.name},")
        assert not Path(out).exists()
        # Trial 5 item 15: campaign report reads steps and audit, and names those.
        period = ["--from", "2024-05-26", "--to", "2024-05-27"]
        assert main(["campaign", "report", "--prefix", missing, *period]) == 2
        err = capsys.readouterr().err
        assert f"has no topic {missing}.steps or {missing}.audit; prefixes there: " in err
        assert main(["campaign", "report", "--prefix", empty.name, *period]) == 2
        err = capsys.readouterr().err
        assert f"its topics ({empty.name}.steps, {empty.name}.audit) on Kafka at " in err
        assert "other prefixes there: " in err


def test_a_report_on_files_the_prefix_never_replayed_is_refused_or_warned(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 5 item 1: a Beijing file never sent to the prefix gave "5,345 readings" and
    a missed Spring Festival. Only files the topics hold none of: status 2, nothing
    written; beside one that was replayed: written, with a warning naming the other."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    sent = events()[:3]
    for e in sent:
        p.send("readings" if isinstance(e, Reading) else "incidents", b"k", e.to_json())
    p.flush()
    mine = run_dir / "mine.csv"
    mine.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"{format_ts(e.ts)},{e.sensor_id},{e.kind},{e.value},{e.unit},{e.grid_cell}\n"
            for e in sent
            if isinstance(e, Reading)
        )
    )
    beijing = str(ROOT / "datasets" / "beijing_air_2016-02.csv.gz")
    out = run_dir / "wi.html"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():
            mp.setenv(key, value)
        assert main(["report", "--prefix", p.name, "--data", beijing, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"the topics of prefix '{p.name}' hold none of the events of " in err
        assert "beijing_air_2016-02.csv.gz (" in err and not out.exists()
        # The command to replay them is one to type, under this prefix (t40).
        again = err.split("replay them: `")[1].split("`")[0]
        assert f"CITYBRAIN_TOPIC_PREFIX={p.name}" in again and again.endswith(f"replay {beijing}")
        args = ["report", "--prefix", p.name, "--data", str(mine), beijing, "--out", str(out)]
        assert main(args) == 0
        err = capsys.readouterr().err
        # t217: 13.5 s passed in silence before its one line; what it reads is said first.
        assert err.startswith(
            f"report: reading the topics of prefix '{p.name}' and 2 --data files …\n"
        ), err
        assert "--data beijing_air_2016-02.csv.gz: the topics of prefix" in err
        # The test grid has gauge-2 in another cell and no gauge-3: the worker refuses
        # both, so the report counts gauge-1's reading alone.
        assert "--data mine.csv: the topics hold 1 of its 3 events" in err
        page = out.read_text()
        assert "<b>1</b><span>readings</span>" in page
        assert "Spring Festival" not in page  # its sensors' readings are not in the topics
        assert f"Event time: readings {format_ts(T0)[:10]}" in page
        # Trial 5 item 15: docs/citizens.md spoke of "an export" no command wrote.
        now = time.time()
        step = {
            "schema": "step/1",
            "id": "run-1:1",
            "run_id": "run-1",
            "action": "run_created",
            "at": now,
            "level": "community",
            "playbook": "flash-flood",
            "data": {"grid_cell": "c-bridge", "department": "water", "category": "flood"},
        }
        p.send("steps", b"run-1", json.dumps(step).encode())
        p.flush()
        export = run_dir / "records.jsonl"
        period = ["--from", format_ts(now - 60), "--to", format_ts(now + 60), "--json"]
        campaign = ["campaign", "report", *period]
        # Given relative, named absolute, as every written file is (t98: "exported to
        # records.jsonl", where the report's line names its file absolute).
        mp.chdir(run_dir)
        assert main([*campaign, "--prefix", p.name, "--export", "records.jsonl"]) == 0
        out, err = capsys.readouterr()
        from_topics = json.loads(out)  # --json output alone: the export's line is on stderr
        assert f"1 record exported to {export.absolute()}\n" in err
        assert [json.loads(line) for line in export.read_text().splitlines()] == [step]
        assert main([*campaign, "--input", str(export)]) == 0
        assert json.loads(capsys.readouterr().out) == from_topics
        # t79: a period with none of the prefix's runs named "the topics of " and no prefix.
        before = ["campaign", "report", "--from", "2024-05-27", "--to", "2024-05-28"]
        assert main([*before, "--prefix", p.name]) == 1
        err = capsys.readouterr().err
        assert f"the 1 run in the topics of prefix {p.name!r} was created at " in err, err


def test_a_report_on_a_prefix_only_an_ingest_wrote_to_is_written(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 6 item 8: before any worker ran, the ingest had written <prefix>.readings,
    and the report said "no events under it: ... no topic t6.alerts". Readings are
    events: the report is written, saying no worker has read them yet."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    from citybrain.cli import main

    p = Pipeline(run_dir)  # for its settings and environment; its topics go unused
    prefix = f"{p.name}-ingest"
    readings_topic = f"{prefix}.readings"
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(readings_topic, 1, 1)])
    finally:
        admin.close()
    sent = [e for e in events()[:3] if isinstance(e, Reading)]
    producer = KafkaProducer(bootstrap_servers=p.settings.kafka_bootstrap, acks="all")
    for e in sent:
        producer.send(readings_topic, key=e.sensor_id.encode(), value=e.to_json())
    producer.flush()
    producer.close()
    mine = run_dir / "ingested.csv"
    mine.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"{format_ts(e.ts)},{e.sensor_id},{e.kind},{e.value},{e.unit},{e.grid_cell}\n"
            for e in sent
        )
    )
    out = run_dir / "ingested.html"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():
            mp.setenv(key, value)
        args = ["report", "--prefix", prefix, "--data", str(mine), "--out", str(out)]
        assert main(args) == 0
    err = capsys.readouterr().err
    assert "no events under it" not in err
    assert f"prefix '{prefix}' has no alerts and no steps: no worker has read its events" in err
    page = out.read_text()
    assert "<b>0</b><span>alerts</span>" in page
    assert "Every figure is limited to the events of the --data files (ingested.csv)" in page


def test_a_replay_with_nothing_to_send_is_refused_and_a_header_only_file_is_said(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: a file of only its header was "read 0 rows: sent 0 readings and 0
    incidents", exit 0, and with --on-error skip a file whose every row is bad (a GB18030
    station name) "sent 0 …, skipped 1 bad row", exit 0: a script took either for a
    replay done. Both are exit 2 now, nothing sent, as detect refuses them; a header-only
    file beside others is said, and the others' events are sent."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    header = "timestamp,sensor_id,kind,value,unit,grid_cell\n"
    empty = tmp_path / "empty.csv"
    empty.write_text(header)
    chinese = tmp_path / "gb.csv"
    chinese.write_bytes(
        "timestamp,report_id,category,text,source,grid_cell\n"
        "2026-11-01T10:00:00Z,r1,noise,东四站噪音,hotline,bj-site-dongsi\n".encode("gb18030")
    )
    good = tmp_path / "good.csv"
    good.write_text(
        header
        + "".join(
            f"{format_ts(T0 + 60 * i)},gauge-1,water_level,{i},ft,c-bridge\n" for i in range(3)
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(empty), "--max"]) == 2
        assert capsys.readouterr().err == (
            f"citybrain: FILE {str(empty)!r} has no rows after the header: nothing was sent; "
            "give a file with reading or incident rows (docs/events.md)\n"
        )
        assert main(["replay", str(chinese), "--max", "--on-error", "skip"]) == 2
        err = capsys.readouterr().err
        assert err.splitlines() == [
            f"skipped {chinese}:2: byte 0xb6 at column 31 is not UTF-8 (a GBK/GB18030 "
            "(Simplified Chinese) file? save it as UTF-8)",
            "citybrain: every row read is bad (1 bad row, above): nothing was sent; fix them "
            "(docs/events.md)",
        ]
        assert main(["replay", str(empty), str(good), "--max"]) == 0
    out, err = capsys.readouterr()
    assert (
        f"citybrain: warning: FILE {str(empty)!r} has no rows after the header: nothing of "
        "it is sent"
    ) in err
    assert "read 3 rows: sent 3 readings and 0 incidents, skipped 0 bad rows" in out
    messages = p.read("readings", lambda m: len(m) >= 3, settle=1)
    assert sorted(json.loads(m.value)["value"] for m in messages) == [0.0, 1.0, 2.0]
    assert p.read("incidents", lambda m: True, settle=2) == []


def test_a_file_still_being_written_is_said_to_have_changed_while_it_was_read(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t121: a replay reads its files whole before it sends; a feed still being written
    lost, unsaid, the rows written after the read, and a last line caught half-written
    ('...,pm25,1' of '...,pm25,17.5') was sent as a reading. The replay now says the file
    changed while it was read, and sends what it read."""
    import threading

    from citybrain.cli import main

    p = Pipeline(run_dir)
    feed = tmp_path / "live.csv"
    rows = 20_000
    feed.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"{format_ts(T0 + i)},gauge-1,water_level,{i % 7},ft,c-bridge\n" for i in range(rows)
        )
    )
    stop = threading.Event()
    appended = threading.Event()

    def append() -> None:  # a logger adding a row every 2 ms
        i = rows
        while not stop.is_set():
            with feed.open("a") as fh:
                fh.write(f"{format_ts(T0 + i)},gauge-1,water_level,1,ft,c-bridge\n")
            appended.set()
            i += 1
            time.sleep(0.002)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        assert appended.wait(10)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in p.env.items():  # this test's topics and the test broker
                mp.setenv(key, value)
            assert main(["replay", str(feed), "--max"]) == 0
    finally:
        stop.set()
        writer.join()
    out, err = capsys.readouterr()
    assert re.search(
        rf"citybrain: warning: {re.escape(str(feed))} changed while it was read "
        r"\([\d,]+ bytes, then [\d,]+\): what was written to it after that is not sent, "
        r"and its last row may have been cut short; replay it once it is complete",
        err,
    ), err
    said = re.search(r"read ([\d,]+) rows: sent ([\d,]+) readings", out)
    assert said is not None and said[1] == said[2]
    sent = int(said[2].replace(",", ""))
    assert sent > rows
    messages = p.read("readings", lambda m: len(m) >= sent, settle=1)
    assert len(messages) == sent


def test_one_event_larger_than_a_topic_that_takes_less_than_the_default_is_a_bad_row(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t162: on a readings topic taking 200,000 bytes, one 600 kB reading (under the
    default --max-message-bytes) was refused by the broker, and kafka-python's producer
    then failed every reading queued after it. A message of 64 KiB or more makes the
    replay ask the broker what its topics take: the row is a bad row by its line."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    takes_at_most(p, 200_000)
    csv = oversized_csv(run_dir / f"{p.name}-oversized.csv", wide=50_000)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max", "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert "read 3,001 rows: sent 3,000 readings and 0 incidents, skipped 1 bad row" in out
    assert (
        f"skipped {csv}:4: the row's message is 600,1" in err
        and "more than the 199,872 a Kafka message may hold here" in err
    )
    assert "Kafka refused" not in err and "Traceback" not in err
    messages = p.read("readings", lambda m: len(m) >= 3_000, settle=1)
    assert [json.loads(m.value)["value"] for m in messages] == [100.0 + i % 7 for i in range(3_000)]


def test_one_row_larger_than_a_topic_taking_less_than_64_kib_is_a_bad_row(
    stack: PrometheusServer, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t215: on a readings topic taking 30,000 bytes, one 40 kB reading among 3,000 (under
    64 KiB and the default --max-message-bytes, so the broker was not asked) was refused by
    the broker, and kafka-python's producer failed every reading queued after it: "sent 3
    readings …, Kafka refused 2,998", exit 1, no row named. Every replay now asks: the row
    is a bad row by its line, and the other 3,000 readings all reach the topic."""
    from citybrain.cli import main

    p = Pipeline(run_dir)
    takes_at_most(p, 30_000)
    csv = oversized_csv(run_dir / f"{p.name}-oversized.csv", wide=3_400)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in p.env.items():  # this test's topics and the test broker
            mp.setenv(key, value)
        assert main(["replay", str(csv), "--max"]) == 2
        out, err = capsys.readouterr()
        assert "sending to Kafka" not in out
        assert "more than the 29,872 a Kafka message may hold here; nothing was sent" in err
        assert main(["replay", str(csv), "--max", "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert "read 3,001 rows: sent 3,000 readings and 0 incidents, skipped 1 bad row" in out
    assert f"skipped {csv}:4: the row's message is 40,9" in err
    assert "Kafka refused" not in err and "Traceback" not in err
    messages = p.read("readings", lambda m: len(m) >= 3_000, settle=1)
    assert [json.loads(m.value)["value"] for m in messages] == [100.0 + i % 7 for i in range(3_000)]
