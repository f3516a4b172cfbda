"""What the demo and the commands after it tell a new user to type works as typed
(the new-user trial of issue 15: `make stack-down` in a new shell stopped the default
stack, not the demo's on shifted ports; `replay` after the demo sent to another prefix
without saying so; the count of alerts outside the known events dropped the bursts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from citybrain.cli.feeds import ingest_target, replay_target
from citybrain.commands import cli_command, make_command
from citybrain.demo import (
    SPAN_GAP_DAYS,
    SUMMARY_COUNTS,
    DemoFiles,
    Progress,
    RateMeter,
    _print_summary,
    _sensor_days,
    make_demo_token,
    shell_settings,
    watch_phase,
)
from streams.settings import REPO_ROOT, Settings


def test_the_printed_settings_are_the_shells_stack_settings_without_secrets() -> None:
    env = {
        "CITYBRAIN_KAFKA_PORT": "19392",
        "CITYBRAIN_RUN_DIR": "/tmp/demo two",
        "CITYBRAIN_API_TOKEN": "secret",
        "CITYBRAIN_WEBHOOK_SECRET": "s",
        "CITYBRAIN_GRAFANA_TOKEN": "g",
        "CITYBRAIN_TOPIC_PREFIX": "set-by-the-demo",
        "CITYBRAIN_TEST_PORT_OFFSET": "700",  # a test's variable, no setting (trial 9)
        "PATH": "/usr/bin",
    }
    assert shell_settings(env) == {
        "CITYBRAIN_KAFKA_PORT": "19392",
        "CITYBRAIN_RUN_DIR": "/tmp/demo two",
    }


def test_a_printed_command_carries_its_settings_into_a_fresh_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {"CITYBRAIN_KAFKA_PORT": "19392", "CITYBRAIN_RUN_DIR": "/tmp/demo two; rm -rf /"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    line = make_command("stack-down").removesuffix("make stack-down") + "env"
    # A shell with none of this session's environment, as a new terminal would be.
    done = subprocess.run(
        ["sh", "-c", line], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    seen = dict(ln.split("=", 1) for ln in done.stdout.splitlines() if ln.startswith("CITY"))
    assert seen == settings
    for name in settings:
        monkeypatch.delenv(name)
    assert make_command("stack-down") == "make stack-down"


def test_replay_names_its_target_and_the_running_demos_prefix(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="citybrain")
    files = DemoFiles.of(settings)
    lines = replay_target(settings, ["replay", "a.csv"])
    assert lines == [
        f"sending to Kafka at {settings.kafka_bootstrap}, topics citybrain.readings and "
        "citybrain.incidents (prefix 'citybrain': CITYBRAIN_TOPIC_PREFIX's default)"
    ]
    # A demo whose worker runs (this process stands in for it) under its own prefix.
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    lines = replay_target(settings, ["replay", "my file.csv"])
    assert lines[1] == (
        "note: the demo's worker (still running) reads the prefix 'demo-1', not this one; "
        "to feed it instead: CITYBRAIN_TOPIC_PREFIX=demo-1 "
        f"{cli_command()} replay 'my file.csv'"
    )
    same = settings.model_copy(update={"topic_prefix": "demo-1"})
    assert len(replay_target(same, ["replay", "a.csv"])) == 1


def test_ingest_names_its_topic_and_how_to_feed_the_running_demo(tmp_path: Path) -> None:
    """Issue 15: ingest wrote to citybrain.readings while the demo's worker read demo-…."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="citybrain")
    argv = ["ingest", "mqtt", "--topic", "gw/{gateway}/up"]
    lines = ingest_target(settings, argv)
    assert len(lines) == 1 and "topic citybrain.readings" in lines[0]
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))  # this process stands in for the demo's worker
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    lines = ingest_target(settings, argv)
    assert lines[1].startswith("note: the demo's worker (still running) reads the prefix 'demo-1'")
    assert lines[1].endswith(
        f"to feed it instead: CITYBRAIN_TOPIC_PREFIX=demo-1 {cli_command()} ingest mqtt "
        "--topic 'gw/{gateway}/up'"
    )


def test_an_http_ingest_after_the_demo_is_told_of_the_demos_gateway_token(tmp_path: Path) -> None:
    """t66: after `make demo`, the README's HTTP example got only 401s: the demo wrote
    no gateway token, and the ingest's "to feed it instead" command carried no tokens
    file. The demo now writes one, and the command and the 401 name it."""
    from citybrain.demo import demo_gateway_hint
    from streams.auth import TokenStore

    settings = Settings(run_dir_override=tmp_path, topic_prefix="citybrain")
    assert demo_gateway_hint(settings) == ""  # no demo
    files = DemoFiles.of(settings)
    make_demo_token(files)
    gateway = files.gateway_token.read_text().strip()
    assert files.gateway_token.stat().st_mode & 0o777 == 0o600
    principal = TokenStore.load(files.tokens).authenticate(f"Bearer {gateway}")
    assert principal is not None and principal.role == "gateway" and principal.may("ingest")
    hint = demo_gateway_hint(settings)
    assert f"CITYBRAIN_API_TOKENS_FILE={files.tokens}" in hint
    assert f"export GATEWAY_TOKEN=$(cat {files.gateway_token})" in hint
    chosen = settings.model_copy(update={"api_tokens_file": tmp_path / "mine.yaml"})
    assert demo_gateway_hint(chosen) == ""  # the shell's own tokens file is not second-guessed
    files.pid.write_text(str(os.getpid()))  # this process stands in for the demo's worker
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    [_, note] = ingest_target(settings, ["ingest", "http"])
    assert note.endswith(
        f"CITYBRAIN_TOPIC_PREFIX=demo-1 CITYBRAIN_API_TOKENS_FILE={files.tokens} "
        f"{cli_command()} ingest http"
    )
    [_, note] = ingest_target(settings, ["ingest", "mqtt"])  # MQTT takes no token
    assert "CITYBRAIN_API_TOKENS_FILE" not in note
    [_, note] = ingest_target(chosen, ["ingest", "http"])
    assert "CITYBRAIN_API_TOKENS_FILE" not in note


@pytest.mark.parametrize(("bursts", "says"), [(0, False), (1, True), (21, True)])
def test_the_count_outside_the_known_events_says_bursts_are_apart(bursts: int, says: bool) -> None:
    summary = {key: 0 for key in SUMMARY_COUNTS}
    summary.update(
        alert_list=[],
        known_events=[],
        alerts_outside_known_events=1,
        false_alarms_per_1000_sensor_days=2.5,
        incident_burst_alerts=bursts,
    )
    console = Console(record=True, width=300)
    _print_summary(console, summary)
    text = console.export_text()
    assert "1 sensor alert outside the known events: 2.5 per 1,000 sensor-days" in text
    noun, verb = ("alert", "is") if bursts == 1 else ("alerts", "are")
    assert (f"{bursts} citizen-report burst {noun} above {verb} not counted here" in text) is says


def test_sensor_days_count_only_readings_the_worker_takes_by_their_time(tmp_path: Path) -> None:
    """t171: a reading the worker refuses by its time (``in_future`` past the clock's
    skew, ``too_old`` before 1990) stretched its sensor's span: one of the year 9999
    among a gauge's readings an hour apart in 2019 made 2.9 million sensor-days, and the
    false alarms per 1,000 sensor-days about nothing."""
    from streams.feeds import load_events

    rows = [
        "timestamp,sensor_id,kind,value,unit,grid_cell",
        "1985-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330",
        "2019-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330",
        "2019-05-06T01:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330",
        "2019-05-06T06:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330",
        "9999-05-06T00:00:00Z,usgs-01589330-discharge,discharge,105.0,ft3/s,md-gauge-01589330",
        "2099-05-06T00:00:00Z,usgs-01589330-water_level,water_level,1.7,ft,md-gauge-01589330",
    ]
    data = tmp_path / "far.csv"
    data.write_text("\n".join(rows) + "\n")
    events = load_events([data])
    now = 1_557_136_800.0  # 2019-05-06T10:00:00Z
    assert _sensor_days(events, now, 300.0) == pytest.approx(6 / 24)
    # Ahead of the clock by no more than its skew: taken, as the worker takes it.
    assert _sensor_days(events, 1_557_118_000.0, 300.0) == pytest.approx(1 / 24)


def test_one_reading_a_year_ahead_but_before_the_clock_adds_no_year_of_sensor_days() -> None:
    """t185: a gauge's readings an hour apart over six hours of 2019 and one reading of
    2020, which the worker takes (before its clock) as a clock jump: the span ran to 2020,
    365 sensor-days. Now each gap counts up to a day, the worker's clock jump."""
    from streams.detection import CLOCK_JUMP
    from streams.events import Reading

    assert SPAN_GAP_DAYS * 86_400 == CLOCK_JUMP
    start = 1_557_100_800.0  # 2019-05-06T00:00:00Z
    times = [start + 3600 * i for i in range(7)]
    times.insert(3, start + 365 * 86_400)
    events = [Reading(t, "gauge-1", "water_level", 1.7, "ft", "c-1") for t in times]
    now = 1_800_000_000.0
    assert _sensor_days(events, now, 300.0) == pytest.approx(6 / 24 + 1)
    # A sensor reporting once a day for a week: a week of sensor-days, as before.
    daily = [Reading(start + 86_400 * i, "g", "water_level", 1.0, "ft", "c-1") for i in range(8)]
    assert _sensor_days(daily, now, 300.0) == pytest.approx(7)


def test_the_rate_is_never_zero_once_readings_were_processed() -> None:
    """Issue 15 item 2: the replay finished before the first progress line, and every
    line said 0 readings/s (the rate over the last half second)."""
    meter = RateMeter(started=100.0)
    assert meter.update(0.0, 100.5) == (0.0, False)  # nothing yet: 0 is the truth
    # 30,000 readings processed between two samples, then nothing more.
    assert meter.update(30_000.0, 101.0) == (30_000.0 / 1.0, False)  # window so far: 1 s
    rates = [meter.update(30_000.0, 101.0 + 0.5 * i) for i in range(1, 40)]
    assert all(rate > 0 for rate, _ in rates)
    # Once the window has no growth left in it: the average over the replay.
    assert rates[-1] == (30_000.0 / (101.0 - 100.0), True)


def test_a_steady_rate_is_the_rate_over_the_window_and_lines_say_average() -> None:
    meter = RateMeter(started=0.0, window=5.0)
    for i in range(1, 21):
        rate, average = meter.update(1000.0 * i, 0.5 * i)  # 2,000 readings/s
    assert (rate, average) == (2000.0, False)
    live = Progress("replaying", 10, 5, 10, 10.0, 2000.0, 0)
    done = Progress(
        "replay done; alerts and runs settling", 10, 10, 10, 30.0, 2000.0, 0, average=True
    )
    assert "2,000 readings/s; " in live.line({})
    assert "2,000 readings/s on average; " in done.line({})


def test_the_demo_says_it_waits_for_the_corroboration_grace() -> None:
    """Issue 15: "settling ... 0 waiting for a person", then 43 runs at once."""
    phase = watch_phase(False, 10, 10, 0, 60.0, held=7, grace_left=12.4)
    assert phase == (
        "replay done; 7 lone sensor alerts held for the corroboration grace "
        "(a neighbour may agree, up to 12 s left); runs follow when it ends"
    )
    assert "1 lone sensor alert held" in watch_phase(False, 10, 10, 0, 60.0, held=1)
    assert "settling" not in phase
    waiting = watch_phase(False, 10, 10, 3, 60.0, held=7, grace_left=5.0)
    assert waiting.startswith("replay done; 3 runs wait for a person")
    assert watch_phase(True, 5, 10, 0, 60.0) == "replaying"


def test_every_known_event_gives_its_local_date_time_and_zone() -> None:
    """Issue 15: one event's date was UTC, the other's "local": both local, with the zone."""
    from citybrain.demo import KNOWN_EVENTS, local_time

    assert local_time("2019-05-11T02:25:00Z", "America/New_York") == "2019-05-10 22:25 local, EDT"
    assert local_time("2016-02-07T16:00:00Z", "Asia/Shanghai") == "2016-02-08 00:00 local, CST"
    for event in KNOWN_EVENTS:
        assert re.search(r"\(\w[\w ]*, \d{4}-\d\d-\d\d \d\d:\d\d local, [A-Z]{3}\)$", event.name)


def test_the_printed_citybrain_works_from_any_directory(tmp_path: Path) -> None:
    """Trial 9: the demo printed `.venv/bin/citybrain`, relative to the checkout."""
    cli = cli_command()
    assert cli == "citybrain" or Path(cli).is_absolute()
    done = subprocess.run(
        ["sh", "-c", f"{cli} detect --help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_demo_watches_its_known_events_sensors() -> None:
    """Trial 9: sensor_detail was empty after `make demo` (episodes open and close
    between two scrapes in a fast replay). The demo's worker watches the sensors of its
    known events: the Dead Run gauges and the Beijing stations, from the data itself."""
    from citybrain.demo import DEMO_DATA, KNOWN_EVENTS, watched_sensors

    watched = watched_sensors(list(DEMO_DATA), KNOWN_EVENTS)
    prefixes = tuple(e.sensor_prefix for e in KNOWN_EVENTS)
    assert watched and all(s.startswith(prefixes) for s in watched)
    for prefix in prefixes:  # every event has its sensors, none left out
        assert any(s.startswith(prefix) for s in watched), prefix
    assert "usgs-01589330-water_level" in watched
    assert watched_sensors(list(DEMO_DATA), ()) == []
    demo = (REPO_ROOT / "citybrain" / "demo.py").read_text()
    assert 'own["CITYBRAIN_WATCH_SENSORS"]' in demo


def test_the_watched_sensors_are_read_as_the_replay_reads_the_data(tmp_path: Path) -> None:
    """t162: the watched sensors were read again with csv's DictReader, which took a line
    of spaces (no row to the replay's reader, which the demo checked its data with) for a
    row without a sensor_id: None.startswith raised, a traceback after the stack started."""
    from citybrain.demo import KNOWN_EVENTS, watched_sensors

    data = tmp_path / "r.csv"
    data.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-10T22:00:00Z,usgs-01589330-discharge,discharge,1,ft3/s,md-gauge-01589330\n"
        "   \n"
    )
    assert watched_sensors([data], KNOWN_EVENTS) == ["usgs-01589330-discharge"]


def test_a_usage_errors_help_hint_runs_as_typed_in_a_fresh_shell(tmp_path: Path) -> None:
    """New-user walk (t17): with the venv not activated, `.venv/bin/citybrain runs list
    --staus open` said ``see `citybrain runs list --help` ``, and the bare name is not on
    that shell's PATH. The hint is typed as every other printed command is, and runs."""
    script = Path(sys.executable).parent / "citybrain"
    path = ":".join(p for p in os.environ["PATH"].split(":") if Path(p) != script.parent)
    env = {**os.environ, "PATH": path}
    done = subprocess.run(
        [str(script), "runs", "list", "--staus", "open"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    hint = re.search(r"see `([^`]+)`$", done.stderr.strip())
    assert hint is not None and hint.group(1).endswith(" runs list --help"), done.stderr
    assert hint.group(1).split()[0] == str(script.absolute())
    helped = subprocess.run(
        ["sh", "-c", hint.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "usage: citybrain runs list" in helped.stdout, helped


def test_an_interrupted_demo_says_what_it_left_running_and_what_to_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New-user walk (t17): Ctrl-C in `make demo` (and in `stack up`) said only
    `citybrain: interrupted`, leaving Kafka and Prometheus running unannounced. The line names what still runs and
    the command that stops it (with the shell's settings), or that nothing is left."""
    from citybrain.demo import DemoFiles, interrupted_message
    from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer

    for key in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    settings = Settings()
    alive = str(os.getpid())  # a live process stands for each component's own
    cli = cli_command()
    assert interrupted_message(settings) == (
        "interrupted: the demo did not finish and left nothing running; "
        f"`CITYBRAIN_RUN_DIR={tmp_path} make demo` in the checkout starts a new demo"
    )
    kafka, prometheus = KafkaBroker(settings), PrometheusServer(settings)
    for component in (kafka, prometheus):
        component.pid_file.parent.mkdir(parents=True, exist_ok=True)
        component.pid_file.write_text(alive)
    said = interrupted_message(settings)
    assert said.startswith(
        "interrupted: the demo did not finish (its worker was stopped); Kafka and "
        f"Prometheus keep running: `CITYBRAIN_RUN_DIR={tmp_path} {cli} stack down` stops "
        "them, or "
    ), said
    prometheus.pid_file.unlink()
    mosquitto = MosquittoBroker(settings)
    mosquitto.pid_file.parent.mkdir(parents=True, exist_ok=True)
    mosquitto.pid_file.write_text(alive)
    files = DemoFiles.of(settings)
    files.pid.parent.mkdir(parents=True, exist_ok=True)
    files.pid.write_text(alive)
    said = interrupted_message(settings)
    assert (
        "(its worker keeps serving the runs it made); Kafka, Mosquitto and the demo's "
        "worker keep running" in said
    ), said
    assert len(said.splitlines()) == 1
    # `stack up` interrupted while Kafka starts: the same line, with `stack up` to go on.
    said = interrupted_message(settings, stack_up=True)
    assert said.startswith(
        "interrupted: the stack did not finish starting; Kafka, Mosquitto and the demo's "
        f"worker keep running: `CITYBRAIN_RUN_DIR={tmp_path} {cli} stack down` stops them, "
        f"or `CITYBRAIN_RUN_DIR={tmp_path} {cli} stack up` starts the rest"
    ), said
    for pid_file in (kafka.pid_file, mosquitto.pid_file, files.pid):
        pid_file.unlink()
    assert interrupted_message(settings, stack_up=True) == (
        "interrupted: the stack did not finish starting and left nothing running; "
        f"`CITYBRAIN_RUN_DIR={tmp_path} {cli} stack up` starts the rest"
    )


def test_the_demos_tokens_and_their_hashes_are_its_owners_alone(tmp_path: Path) -> None:
    """Trial 29: touch(mode=0o600) left a token file that existed (0644) readable by
    anyone, and the hashes file the worker reads was written 0644."""
    from streams.auth import TokenStore, exposed

    files = DemoFiles.of(Settings(run_dir_override=tmp_path))
    files.dir.mkdir(parents=True)
    for path in (files.token, files.coordinator_token, files.tokens):
        path.write_text("old\n")
        path.chmod(0o644)
    token = make_demo_token(files)
    for path in (files.token, files.coordinator_token, files.tokens):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert files.token.read_text() == token + "\n"
    assert exposed(files.tokens) == ""
    assert TokenStore.load(files.tokens).authenticate(f"Bearer {token}") is not None
    # A link planted where a token goes is not written through.
    files.token.unlink()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    files.token.symlink_to(victim)
    with pytest.raises(OSError):
        make_demo_token(files)
    assert victim.read_text() == "keep me\n"


def test_a_missed_expect_event_fails_the_demo_naming_it() -> None:
    # Helper brief t47, fault 4: `demo --expect` exited 0 under "missed my spike: 0
    # alerts"; a CI user giving --expect expects a miss to fail.
    from citybrain.cli import EXIT_FAILED, CliError
    from citybrain.cli.demo import missed_expected

    known = [
        {"event": "my flood", "alerts": 3, "detected": True},
        {"event": "my spike", "alerts": 0, "detected": False},
    ]
    with pytest.raises(CliError) as info:
        missed_expected("mine.yaml", known)
    assert info.value.status == EXIT_FAILED
    assert str(info.value).startswith(
        "--expect mine.yaml: the demo missed 1 of the 2 expected events it replayed: 'my spike'"
    )
    missed_expected("mine.yaml", known[:1])  # every one detected: no error
    missed_expected("mine.yaml", [])  # none replayed: nothing to miss


def test_the_live_line_puts_each_count_in_its_number() -> None:
    """t51's walk: "13 anomalies, 13 alerts, 1 runs (0 waiting for a person)"."""
    line = Progress("replaying", 10, 5, 10, 6.0, 3762.0, 0).line(
        {
            "citybrain_anomalies_total": 1,
            "citybrain_alerts_total": 1,
            "citybrain_playbook_runs_total": 1,
            "citybrain_playbook_escalations_total": 1,
        }
    )
    assert line.endswith("1 anomaly, 1 alert, 1 run (0 waiting for a person), 1 escalation")
    line = Progress("replaying", 10, 5, 10, 6.0, 3762.0, 2).line(
        {"citybrain_alerts_total": 13, "citybrain_playbook_runs_total": 2}
    )
    assert line.endswith("0 anomalies, 13 alerts, 2 runs (2 waiting for a person), 0 escalations")
    one = watch_phase(False, 10, 10, 1, 5.0)
    assert one == (
        "replay done; 1 run waits for a person and escalates every 5 s until its ladder ends"
    )


@pytest.mark.parametrize("name", ["Flood [/] night", "Flood [/bold] 2019", "[red]Flood[/red]"])
def test_a_known_event_s_name_is_printed_as_written(name: str) -> None:
    """Helper t52: an --expect file's event name went into the console as markup: "[/]"
    ended the demo, after all its work, in a MarkupError (exit 70), and "[red]" was
    swallowed."""
    summary = {key: 0 for key in SUMMARY_COUNTS}
    summary.update(
        alert_list=[],
        known_events=[{"event": name, "alerts": 2, "detected": True}],
    )
    console = Console(record=True, width=300)
    _print_summary(console, summary)
    assert f"detected {name}: 2 alerts" in console.export_text()


def test_the_prefix_is_said_as_the_default_or_as_set(tmp_path: Path) -> None:
    """t60's walk: a shell without CITYBRAIN_TOPIC_PREFIX read "(prefix 'citybrain':
    CITYBRAIN_TOPIC_PREFIX)" as if it were set; the default is said as the default."""
    default = Settings(run_dir_override=tmp_path)
    assert (
        "(prefix 'citybrain': CITYBRAIN_TOPIC_PREFIX's default)"
        in replay_target(default, ["replay", "a.csv"])[0]
    )
    assert (
        "prefix 'citybrain': CITYBRAIN_TOPIC_PREFIX's default)"
        in ingest_target(default, ["ingest", "mqtt"])[0]
    )
    mine = Settings(run_dir_override=tmp_path, topic_prefix="mine")
    assert replay_target(mine, ["replay", "a.csv"])[0].endswith(
        "(prefix 'mine': CITYBRAIN_TOPIC_PREFIX)"
    )


def test_demo_data_without_rows_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """t121: `demo --data x.csv` with a file of only its header started the stack and a
    worker, replayed nothing and ended "no alert was raised: the detectors found nothing
    anomalous enough in these files"; it is refused as replay refuses it, before the
    demo starts anything. A header-only file beside one with rows is read with it."""
    from citybrain.demo import demo_events
    from streams.errors import FeedError

    empty = tmp_path / "empty.csv"
    empty.write_text("timestamp,sensor_id,kind,value,unit,grid_cell\n")
    with pytest.raises(FeedError) as refused:
        demo_events([empty])
    assert str(refused.value) == (
        f"--data {str(empty)!r}: no rows after the header: nothing to replay; give files "
        "with reading or incident rows (docs/events.md)"
    )
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2026-11-01T10:00:00Z,bj-dongsi-pm25,pm25,12.5,ug/m3,bj-site-dongsi\n"
    )
    assert [e.value for e in demo_events([empty, rows])] == [12.5]  # type: ignore[union-attr]


@pytest.mark.parametrize("replayed", [True, False])
def test_a_demo_interrupted_before_its_replay_offers_no_worker_restart(
    replayed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209: Ctrl-C while the demo's worker was starting, before anything was replayed,
    said "`citybrain stack restart-worker` starts it again on the runs it made": it had
    made none. Interrupted once its replay began, the offer stays. Fails on the old code
    (no ``replayed``, and the offer made either way)."""
    from citybrain.demo import DemoFiles, interrupted_message
    from citybrain.stack import KafkaBroker

    for key in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    settings = Settings()
    kafka = KafkaBroker(settings)
    kafka.pid_file.parent.mkdir(parents=True, exist_ok=True)
    kafka.pid_file.write_text(str(os.getpid()))  # a live process stands for Kafka
    files = DemoFiles.of(settings)
    files.state.parent.mkdir(parents=True, exist_ok=True)
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    said = interrupted_message(settings, prefix="demo-1", replayed=replayed)
    if replayed:
        assert "stack restart-worker` starts it again on the runs it made" in said, said
    else:
        assert said.startswith(
            "interrupted: the demo did not finish (its worker was stopped before its replay "
            "began: nothing was sent, no run made); Kafka keeps running: `"
        ), said
        assert "restart-worker" not in said and said.endswith("starts a new demo")
