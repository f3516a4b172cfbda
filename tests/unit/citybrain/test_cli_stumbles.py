"""A new user's stumbles (issue 15, part A): each fixed as the kind of fault it is."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, main
from citybrain.commands import cli_command
from citybrain.ingest.publisher import PublisherStats
from citybrain.ingest.service import stats_sentence


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A port that accepts TCP connections and answers the first request of each with a
    few bytes, then closes it: a Kafka that answers (``_require_kafka``'s ApiVersions
    probe; t101: one that answers nothing is a frozen broker, waited for 20 s) and no
    more."""
    import threading

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.2)
        stop = threading.Event()

        def answer() -> None:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(2)
                    try:
                        if conn.recv(64):
                            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x01")
                    except OSError:
                        pass

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        try:
            yield int(sock.getsockname()[1])
        finally:
            stop.set()
            thread.join(5)


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    for name in ("KAFKA_PORT", "MQTT_PORT", "WORKER_PORT", "INGEST_HTTP_PORT"):
        monkeypatch.setenv(f"CITYBRAIN_{name}", str(_closed_port()))


# 2. ingest mqtt without a broker hung silently; 3. without Kafka it logged ~22 lines.


@pytest.mark.parametrize("action", ["mqtt", "http"])
def test_ingest_without_kafka_says_one_line(
    action: str, stopped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", action]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith("citybrain: no Kafka broker answers at 127.0.0.1:")
    assert err.count("\n") == 1, err


def test_ingest_mqtt_without_a_broker_names_it_and_make_stack_up(
    stopped: None,
    listening: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    mqtt = _closed_port()
    monkeypatch.setenv("CITYBRAIN_MQTT_PORT", str(mqtt))
    assert main(["ingest", "mqtt"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: no MQTT broker answers at 127.0.0.1:{mqtt}: ")
    # A command that works from any directory in a fresh shell, with the settings this
    # one runs with (trial 10: without them it started the default-port stack).
    hint = err.split("`")[1]
    assert hint.endswith(f" {cli_command()} stack up"), hint
    assert f"CITYBRAIN_KAFKA_PORT={listening} " in hint and f"CITYBRAIN_MQTT_PORT={mqtt} " in hint
    assert f"{cli_command()} stack up` starts Mosquitto" in err
    assert err.count("\n") == 1, err


def test_bad_ingest_options_are_bad_input_before_any_service(
    stopped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "mqtt", "--topic", "a/#"]) == 2
    assert "--topic" in capsys.readouterr().err


# 8. the ingest's stop line printed PublisherStats(readings=2, ...).


def test_the_ingest_stop_line_is_a_sentence() -> None:
    text = stats_sentence(PublisherStats(readings=2, packs=1, dead_letters=0, max_pending=2))
    assert text == (
        "sent 2 readings to Kafka in 1 pack, dead-lettered 0 messages; "
        "at most 2 readings waited for Kafka at once"
    )
    assert "PublisherStats" not in text


# 1. detect --input X --output X overwrote its input; --output - made a file named "-".

SERIES = "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,2\n"


def test_detect_refuses_to_overwrite_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    src.write_text(SERIES)
    same = tmp_path / "sub" / ".." / "a.csv"
    assert main(["detect", "--input", str(src), "--output", str(same)]) == 2
    err = capsys.readouterr().err
    assert "is the same file as --input" in err and err.count("\n") == 1
    assert src.read_text() == SERIES


@pytest.mark.parametrize("out", [".", "out"])
def test_detect_refuses_an_output_dir_at_or_inside_the_input_dir(
    out: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.csv").write_text(SERIES)
    argv = ["detect", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / out)]
    assert main(argv) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert (tmp_path / "a.csv").read_text() == SERIES


def test_detect_output_dash_is_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    src.write_text(SERIES)
    monkeypatch.chdir(tmp_path)
    assert main(["detect", "--input", str(src), "--output", "-"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "timestamp,value,anomaly_score"
    assert len(out.splitlines()) == 3
    assert "read 2 rows" in err  # the summary is kept out of the scores
    assert not (tmp_path / "-").exists()


def test_detect_input_dash_is_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--input", "-", "--output", "x.csv"]) == 2
    assert "--input is '-'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["rehearse", "--units", "u", "--incidents", "i", "--playbook", "p", "--out", "-"],
        ["campaign", "report", "--from", "2020-01-01", "--to", "2020-01-02", "--out", "-"],
        ["dashboards", "generate", "--out", "-"],
        ["datasets", "build", "--shared", ".", "--out", "-"],
        ["demo", "--summary", "-"],
    ],
)
def test_every_output_path_refuses_a_dash(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is '-'" in err, err
    assert not (tmp_path / "-").exists()


def test_campaign_out_may_not_be_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.json"
    records.write_text("")
    argv = ["campaign", "report", "--from", "2020-01-01", "--to", "2020-01-02"]
    assert main([*argv, "--input", str(records), "--out", str(records)]) == 2
    assert "the same file as --input" in capsys.readouterr().err


# 8. detect's bad header was shown as a Python list.


def test_a_bad_header_is_shown_as_the_csv_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.csv"
    src.write_text("timestamp,sensor_id,value\n2020-01-01 00:00:00,s,1\n")
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "header is 'timestamp,sensor_id,value'" in err and "[" not in err


# 4. printed commands said bare `citybrain`, which is not on the PATH outside the venv.


def test_every_printed_command_has_the_demo_form(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from citybrain import commands
    from citybrain.cli.feeds import replay_stopped
    from streams.events import Reading

    monkeypatch.setattr(commands, "cli_command", lambda: ".venv/bin/citybrain")
    assert commands.command_line("replay", "a b.csv", env={"CITYBRAIN_TOPIC_PREFIX": "x"}) == (
        "CITYBRAIN_TOPIC_PREFIX=x .venv/bin/citybrain replay 'a b.csv'"
    )
    args = argparse.Namespace(
        files=["r.csv"],
        max=False,
        speed=60.0,
        on_error="stop",
        pack=None,
        max_message_bytes=1_000_000,
    )
    reading = Reading(ts=0.0, sensor_id="s1", kind="noise", value=1.0, unit="dB", grid_cell="c")
    line = replay_stopped(args, 1, 2, reading)
    # The file by absolute path: the line works typed in any directory (t51).
    resume = f"to send the rest: .venv/bin/citybrain replay {Path('r.csv').absolute()} --skip 1"
    assert line.endswith(resume)


def test_no_message_in_the_code_prints_a_bare_citybrain_command() -> None:
    """Messages build commands with command_line(); the only bare forms left are in
    docstrings, comments, titles and generated-file headers."""
    import re

    from streams.settings import REPO_ROOT

    bare = re.compile(r"""[`'"]citybrain (?:worker|replay|silences|hash-token|runs|report)\b""")
    for path in (REPO_ROOT / "citybrain").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not bare.search(line), f"{path}:{number}: {line.strip()}"


# 9. `runs answer --help` showed "--unsatisfied ... (default: True)" and "(default: )".


def _parsers() -> list[tuple[tuple[str, ...], object]]:
    import argparse

    from citybrain.cli import build_parser

    found: list[tuple[tuple[str, ...], object]] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found.append((path, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*path, name))

    walk(build_parser(), ())
    return found


@pytest.mark.parametrize("path", [p for p, _ in _parsers()], ids=" ".join)
def test_no_help_shows_a_misleading_default(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at any space
    for misleading in ("(default: True)", "(default: False)", "(default: )"):
        assert misleading not in text


# 13. the worker's "CITYBRAIN_WEBHOOK_SECRET is not set" lacked the citybrain: prefix.


def test_every_worker_warning_has_the_citybrain_prefix() -> None:
    """Every log.warning the worker's own code (streams/, less the faust patch that
    keeps faust's wording) makes starts with ``citybrain: ``, not ``citybrain:
    warning:``: the log format prints the level before it (helper brief t47: ``WARNING
    citybrain: warning: …``); tests/unit/streams/test_log_wording.py walks every level."""
    import ast

    from streams.settings import REPO_ROOT

    seen = 0
    for path in sorted((REPO_ROOT / "streams").glob("*.py")):
        if path.name == "faust_patches.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "warning"
                and node.args
            ):
                first = node.args[0]
                text = first.values[0] if isinstance(first, ast.JoinedStr) else first
                assert isinstance(text, ast.Constant), f"{path.name}:{node.lineno}"
                assert str(text.value).startswith("citybrain: "), f"{path.name}:{node.lineno}"
                seen += 1
    assert seen >= 3  # the webhook secret, the closed API, a skipped silence at least


def test_a_warning_the_worker_logs_before_faust_starts_shows_its_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t51's walk: `citybrain worker` whose port was taken printed
    "citybrain: CITYBRAIN_WEBHOOK_SECRET is not set: …" bare (Python's last-resort
    handler: faust's logging is set up later) above the port error, read as the error
    that stopped it. A worker that starts shows it in its log format, level first; one
    that cannot start says only why."""
    import logging
    import re

    from citybrain.cli.stack import _worker_log_format

    log = logging.getLogger("streams.response")
    with _worker_log_format():
        log.warning("citybrain: CITYBRAIN_WEBHOOK_SECRET is not set: …")
        log.info("citybrain: not shown")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert re.fullmatch(
        r"\[[-0-9 :,]+\] \[\d+\] \[WARNING\] citybrain: CITYBRAIN_WEBHOOK_SECRET is not set: …",
        err[0],
    )
    with pytest.raises(RuntimeError), _worker_log_format():
        log.warning("citybrain: CITYBRAIN_WEBHOOK_SECRET is not set: …")
        raise RuntimeError("the port is taken")
    assert capsys.readouterr().err == ""


def test_a_worker_that_cannot_start_says_only_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CITYBRAIN_WEBHOOK_SECRET", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("CITYBRAIN_WORKER_PORT", str(taken.getsockname()[1]))
        assert main(["worker"]) == EXIT_SERVICE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("citybrain: CITYBRAIN_WORKER_PORT is ")


# 14. the demo's first line named only Kafka and Prometheus, not what it leaves out.


def test_the_demos_first_line_says_what_it_starts_and_what_not() -> None:
    from citybrain.demo import starting_line

    for started in ("Kafka", "Prometheus", "worker"):
        assert started in starting_line()
    assert "Mosquitto" in starting_line() and "make stack-up" in starting_line()


# 7. --url localhost:16766 (no scheme) was "cannot reach ..., no worker serves it", exit 3.


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list", "--token", "x", "--url", "localhost:16766"],
        ["silences", "list", "--token", "x", "--url", "localhost:16766"],
        ["dashboards", "push", "--token", "x", "--url", "localhost:3000"],
        ["dashboards", "push", "--token", "x", "--url", "http://g", "--prometheus-url", "p:9"],
    ],
)
def test_a_url_without_its_scheme_is_bad_input(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the http:// scheme is missing, e.g. http://" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "option", "port"),
    [
        (["runs", "list", "--token", "x", "--url", ""], "--url", 16066),
        (["silences", "list", "--token", "x", "--url", " "], "--url", 16066),
        (["alerts", "list", "--token", "x", "--url", ""], "--url", 16066),
        # t168: the Grafana's and the Prometheus's examples were the worker's port too.
        (["dashboards", "push", "--token", "x", "--url", ""], "--url", 3000),
        (
            ["dashboards", "push", "--token", "x", "--url", "http://g", "--prometheus-url", ""],
            "--prometheus-url",
            19090,
        ),
    ],
)
def test_an_empty_url_is_said_as_empty_with_a_whole_example(
    argv: list[str],
    option: str,
    port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t151: `--url ''` was "the http:// scheme is missing, e.g. http://", an example
    with no host, which fails as typed."""
    monkeypatch.delenv("CITYBRAIN_WORKER_PORT", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    said = "empty" if argv[-1] == "" else "blank"
    assert err == (
        f"citybrain: {option} is {said}: expected an http:// or https:// URL with a host, "
        f"e.g. http://127.0.0.1:{port}\n"
    )


@pytest.mark.parametrize("interval", ["5", "1 m", "0s", "five"])
def test_a_scrape_interval_that_is_no_duration_is_bad_input(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 28: the pushed datasource's timeInterval (Grafana's $__rate_interval is four
    of it) is checked before any request, as a Prometheus duration."""
    argv = ["dashboards", "push", "--token", "x", "--url", "http://g"]
    assert main([*argv, "--scrape-interval", interval]) == 2
    err = capsys.readouterr().err
    assert f"--scrape-interval is {interval!r}, expected a Prometheus duration" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1"),
        ("http://127.0.0.1:99999", "the port is not a number from 1 to 65535"),
    ],
)
def test_a_url_that_is_no_url_is_bad_input_not_a_service_failure(
    url: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Second trial: 'not a url' was suggested as 'http://not a url'; port 99999 was
    reported as a refused connection (exit 3)."""
    assert main(["runs", "list", "--token", "x", "--url", url]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_the_api_url_the_readme_names_is_taken_as_the_workers() -> None:
    """Second trial: `--url http://127.0.0.1:16966/api/v1` (the README's "operator API
    /api/v1") went to /api/v1/api/v1/runs and answered "check the id" for a list."""
    from citybrain.cli.api import api_base, not_found_hint

    assert api_base("http://127.0.0.1:16966/api/v1/") == "http://127.0.0.1:16966"
    assert api_base("https://ops.example/citybrain") == "https://ops.example/citybrain"
    hint = not_found_hint("/runs", "404: Not Found", "http://127.0.0.1:16966/api/v1/")
    assert "no operator API there: --url takes the worker's base URL" in hint


# 8. `--matcher 'kind=="pm25"'` said "unescaped double quote"; a 403 said "expire_silence".


def test_a_double_equals_matcher_names_the_operator() -> None:
    from playbooks.errors import PlaybookError
    from playbooks.routing import Matcher

    with pytest.raises(PlaybookError) as info:
        Matcher.parse('kind=="pm25"')
    assert "operator '=='" in str(info.value) and 'write kind="pm25"' in str(info.value)
    assert "double quote" not in str(info.value)
    assert Matcher.parse('kind="=x"').value == "=x"  # a value may start with =


# 5. a 16-hour replay at 60x looked stuck; 6. rows ahead of the clock were dead-lettered
# unseen; 12. a SIGTERM'd replay said nothing of how far it got.


def _readings(*stamps: float) -> list[object]:
    from streams.events import Reading

    return [Reading(ts, "s1", "noise", 1.0, "dB", "c") for ts in stamps]


def test_a_long_replay_says_so_and_how_to_shorten_it() -> None:
    from citybrain.cli.base import LONG_REPLAY_SECONDS
    from citybrain.cli.feeds import replay_duration_note

    sixteen_hours = _readings(0.0, 16 * 3600.0)
    note = replay_duration_note(sixteen_hours, 60.0)
    assert "span 16 h of event time" in note and "about 16 min" in note
    assert "--max" in note and "--speed" in note
    # Trial 5 item 16: 12 minutes at --speed 1 were "0.2 h".
    assert "span 12 min of event time" in replay_duration_note(_readings(0.0, 720.0), 0.5)
    assert replay_duration_note(sixteen_hours, None) == ""  # --max
    short = _readings(0.0, LONG_REPLAY_SECONDS * 60.0)  # exactly the limit at 60x
    assert replay_duration_note(short, 60.0) == ""


@pytest.mark.parametrize("speed", [1e-10, 1e-300, 1e-320])
def test_a_replay_slower_than_a_century_says_so_without_overflowing(speed: float) -> None:
    # 1e-320: the estimate was infinite and int(inf) raised OverflowError ("a bug").
    from citybrain.cli.feeds import replay_duration_note

    note = replay_duration_note(_readings(0.0, 300.0), speed)
    assert "takes more than a century" in note and "--max" in note


def test_events_ahead_of_the_clock_are_counted_before_sending() -> None:
    from citybrain.cli.feeds import ahead_of_clock

    now = 1_700_000_000.0
    events = _readings(now - 10, now + 200, now + 400, now + 4000)
    warning = ahead_of_clock(events, 300.0, now)
    assert warning.startswith("2 events of 4 are more than 300 s ahead")
    assert "in_future" in warning
    assert ahead_of_clock(events[:2], 300.0, now) == ""


class _KilledReplayer:
    """Stands in for streams.feeds.Replayer: hands two events over, then the process
    receives a SIGTERM, as from `kill`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        from streams.feeds import ReplayStats

        self.stats = ReplayStats()

    def replay(self, events: list[object], speed: object, progress: object) -> None:
        import os
        import signal
        import time

        self.stats.readings = 2
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the replay")

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_sigterm_ends_a_replay_as_ctrl_c_does(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import signal

    from citybrain.cli import EXIT_INTERRUPTED

    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    monkeypatch.setattr("streams.feeds.Replayer", _KilledReplayer)
    csv = tmp_path / "r.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"2019-05-11T00:0{i}:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
            for i in range(3)
        )
    )
    # The bar is drawn at a terminal only (t143): this one's, on captured stdout.
    from rich.console import Console

    from citybrain.cli import feeds

    bar = feeds.replay_bar
    terminal = Console(file=sys.stdout, force_terminal=True, width=100)
    monkeypatch.setattr(feeds, "replay_bar", lambda: bar(terminal))
    before = signal.getsignal(signal.SIGTERM)
    assert main(["replay", str(csv), "--max"]) == EXIT_INTERRUPTED
    out, err = capsys.readouterr()
    assert "interrupted after sending 2 of 3 events" in err
    assert "2/3" in out  # the bar too, though the replayer never reported them
    assert f"replay {csv} --max --skip 2" in err
    assert signal.getsignal(signal.SIGTERM) is before  # restored


# 10. detect counted robust_zscore's rows at the tail's 0.24, not at its own 0.6.


def test_detect_counts_at_the_threshold_the_stream_runs_the_detector_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from detectors import DEFAULT_THRESHOLD, default_threshold
    from streams.settings import Settings

    assert default_threshold("robust_zscore") == 0.6
    assert default_threshold("tail") == DEFAULT_THRESHOLD
    assert Settings(_env_file=None, detector="robust_zscore").score_threshold == 0.6
    monkeypatch.delenv("CITYBRAIN_SCORE_THRESHOLD", raising=False)
    src = tmp_path / "a.csv"
    src.write_text(SERIES)
    argv = ["detect", "--input", str(src), "--output", str(tmp_path / "o.csv")]
    assert main([*argv, "--detector", "robust_zscore"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # The stream runs tail here (CITYBRAIN_DETECTOR unset): "would", and it says so.
    assert line.endswith(
        "scored at or above 0.6 (robust_zscore's threshold, the one the stream would alert "
        "at running it; the stream runs tail)"
    )
    monkeypatch.setenv("CITYBRAIN_SCORE_THRESHOLD", "0.5")
    assert main([*argv, "--detector", "robust_zscore"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # The stream runs its own detector (CITYBRAIN_DETECTOR, tail by default) at 0.5.
    assert line.endswith(
        "at or above 0.5 (CITYBRAIN_SCORE_THRESHOLD, which the stream applies to its detector "
        "tail; robust_zscore's own threshold is 0.6)"
    )
    monkeypatch.setenv("CITYBRAIN_DETECTOR", "robust_zscore")
    assert main([*argv, "--detector", "robust_zscore"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith(
        "at or above 0.5 (CITYBRAIN_SCORE_THRESHOLD, the stream's alert threshold)"
    )


# 11. route-test took severity=huge silently and left an empty group_by label unexplained.


@pytest.mark.parametrize(
    ("label", "says"),
    [
        ("severity=huge", "label severity='huge': expected one of critical, major, minor"),
        ("source=robot", "label source='robot': expected one of citizen, sensor"),
        ("kind=lava", "label kind='lava': expected one of"),
        ("street=nowhere", "(the ids under cells: with level: street in the grid file)"),
    ],
)
def test_route_test_refuses_a_value_no_alert_can_carry(
    label: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Beside another label (one given twice is refused as such, trial 8).
    other = "severity=major" if label.startswith("kind=") else "kind=water_level"
    assert main(["playbooks", "route-test", other, label]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


def test_route_test_says_which_label_fills_an_empty_group_by(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["playbooks", "route-test", "kind=water_level", "severity=major"]) == 0
    out = capsys.readouterr().out
    assert "group_by label street is empty: give grid_cell=CELL" in out


def test_a_403_points_to_the_demos_coordinator_token_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second trial: the 403 on `silences expire` with the operator token did not say
    where the coordinator token is."""
    from citybrain.cli.api import forbidden_hint

    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    assert "ask for a token with that role" in forbidden_hint()
    from citybrain.demo import DemoFiles
    from streams.settings import load_settings

    path = DemoFiles.of(load_settings()).coordinator_token
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("secret\n")
    assert f'the demo\'s coordinator token: --token "$(cat {path})"' in forbidden_hint()
    # t60: typed as printed from a run directory with a space in it, too.
    spaced = tmp_path / "my run"
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(spaced))
    path = DemoFiles.of(load_settings()).coordinator_token
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("secret\n")
    import subprocess

    hint = forbidden_hint()
    given = subprocess.run(
        ["bash", "-c", "printf %s " + hint.split("--token ", 1)[1]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert given.stdout == "secret"


def test_a_resumed_replay_reads_every_row_and_says_what_skip_left_out() -> None:
    """Trial 5 item 16: `replay --skip 10` of 11,520 rows said "read 11,510 rows"."""
    from citybrain.cli.feeds import replay_summary

    line = replay_summary(11_520, 11_500, 10, 0, resumed=10)
    assert line == (
        "read 11,520 rows: left out the first 10 (--skip, sent before), sent 11,500 readings "
        "and 10 incidents, skipped 0 bad rows"
    )
    assert (
        replay_summary(3, 2, 0, 1)
        == "read 3 rows: sent 2 readings and 0 incidents, skipped 1 bad row"
    )


def test_a_replay_kafka_refused_says_what_it_held_and_what_to_do() -> None:
    """Trial 19: refused packs were counted as sent, and the error said only
    "MessageSizeTooLargeError: None"."""
    from citybrain.cli.feeds import replay_refused, replay_summary
    from streams.feeds import ReplayStats

    assert replay_summary(5, 2, 1, 0, refused=2) == (
        "read 5 rows: sent 2 readings and 1 incident, skipped 0 bad rows, Kafka refused 2 (below)"
    )
    stats = ReplayStats(
        readings=4,
        incidents=1,
        failed=2,
        first_failure="MessageSizeTooLargeError: [Error 10] MessageSizeTooLargeError: None",
        failed_readings=2,
        largest_failed=1_320_036,
    )
    said = replay_refused(stats, 3_000_000)
    assert said.startswith("citybrain: Kafka refused 2 messages (2 readings, not sent); ")
    assert "The largest was 1,320,036 bytes" in said
    assert "than --max-message-bytes 3,000,000 allows" in said
    other = ReplayStats(failed=1, first_failure="KafkaTimeoutError: x", failed_incidents=1)
    assert replay_refused(other, 1_000_000) == (
        "citybrain: Kafka refused 1 message (1 incident, not sent); the first: KafkaTimeoutError: x"
    )


def test_the_start_the_stack_hint_carries_the_settings_this_shell_changed(
    stopped: None,
    listening: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Trial 10: with non-default ports set, `stack status` and the worker printed a bare
    # `citybrain stack up`, which in a fresh shell starts the default-port stack.
    from citybrain.commands import start_stack_hint

    kafka = _closed_port()
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(kafka))
    monkeypatch.setenv("CITYBRAIN_PROMETHEUS_PORT", "19890")
    hint = start_stack_hint()
    up, make = hint.split("`")[1], hint.split("`")[3]
    for line in (up, make):
        assert (
            f"CITYBRAIN_KAFKA_PORT={kafka} " in line and "CITYBRAIN_PROMETHEUS_PORT=19890 " in line
        )
    assert up.endswith(f" {cli_command()} stack up") and make.endswith(" make stack-up")
    assert main(["worker"]) == EXIT_SERVICE
    assert hint in capsys.readouterr().err


class _RefusedThenKilledReplayer(_KilledReplayer):
    """Hands two events over, Kafka refuses one of them, then a SIGTERM comes."""

    def replay(self, events: list[object], speed: object, progress: object) -> None:
        self.stats.failed, self.stats.failed_readings = 1, 1
        self.stats.first_failure = "KafkaTimeoutError: Batch expired"
        super().replay(events, speed, progress)


def test_an_interrupted_replay_says_what_kafka_refused(
    stopped: None,
    listening: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial 26: interrupted, a replay said "interrupted after sending 2 of 3 events" and
    printed a --skip 2 resume, though Kafka had refused one of the two: a finished
    replay says so, an interrupted one lost it without a word."""
    from citybrain.cli import EXIT_INTERRUPTED

    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(listening))
    monkeypatch.setattr("streams.feeds.Replayer", _RefusedThenKilledReplayer)
    csv = tmp_path / "r.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "".join(
            f"2019-05-11T00:0{i}:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
            for i in range(3)
        )
    )
    assert main(["replay", str(csv), "--max"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert (
        "citybrain: Kafka refused 1 message (1 reading, not sent); the first: "
        "KafkaTimeoutError: Batch expired" in err
    )
    assert "Kafka refused 1 of them (above), not sent by the command below either); to" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["campaign", "report", "--from", "2020-01-01", "--to", "2020-01-02", "--input"],
        ["detect", "--input"],
    ],
)
def test_an_output_that_is_a_symbolic_link_is_refused_and_its_target_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Trial 29: --out through a link left in a shared folder (/tmp/report.html ->
    ~/.bashrc) overwrote the link's target with the report."""
    src = tmp_path / "a.csv"
    src.write_text(SERIES if argv[0] == "detect" else "")
    victim = tmp_path / "bashrc"
    victim.write_text("keep me\n")
    link = tmp_path / ("report.html" if argv[0] == "campaign" else "scores.csv")
    link.symlink_to(victim)
    option = "--out" if argv[0] == "campaign" else "--output"
    assert main([*argv, str(src), option, str(link)]) == 2
    err = capsys.readouterr().err
    assert f"{option} {link} is a symbolic link (to {str(victim)!r})" in err
    assert err.count("\n") == 1
    assert victim.read_text() == "keep me\n"
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "nowhere.html")
    assert main([*argv, str(src), option, str(dangling)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.html").exists()


@pytest.mark.parametrize("service", ["dashboards push", "runs list"])
@pytest.mark.parametrize("where", ["https to a plain HTTP port", "a name that does not resolve"])
def test_a_service_url_that_cannot_be_reached_is_a_service_failure_not_a_bug(
    service: str, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t79 walked docs/control-room.md's `citybrain dashboards push --url
    https://grafana.example --token $TOKEN`: "unexpected ConnectionError ... This is a
    bug", exit 70, where `runs list` said "cannot reach" (exit 3). A host name that does
    not resolve and a TLS handshake that fails are the service's address, not a bug."""
    from tests.unit.citybrain.json_api import json_api

    with json_api(lambda method, path, body: (404, {})) as base:
        url = {
            "https to a plain HTTP port": base.replace("http://", "https://"),
            # .invalid never resolves (RFC 2606).
            "a name that does not resolve": "http://no-such-grafana.invalid",
        }[where]
        argv = [*service.split(), "--url", url, "--token", "x"]
        assert main(argv) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: cannot reach {'Grafana' if 'push' in service else 'the'}")
    assert "This is a bug" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["rehearse", "--incidents", "x", "--units", "y", "--ack-deadline", "5m"],
            "'5m' is not a number of seconds: write 300",
        ),
        (["demo", "--ack-deadline", "2s"], "'2s' is not a number of seconds: write 2"),
        (
            ["ingest", "http", "--max-body", "1MiB"],
            "'1MiB' is not a whole number of bytes: write 1048576",
        ),
        (
            ["ingest", "mqtt", "--max-payload", "1k"],
            "'1k' is not a whole number of bytes: write 1000",
        ),
        (
            ["replay", "x.csv", "--max-message-bytes", "2MiB"],
            "'2MiB' is not a whole number of bytes: write 2097152",
        ),
        # No unit known to convert to: the number alone, as before.
        (
            ["replay", "x.csv", "--speed", "5x"],
            "'5x' is not a number: give the number alone, without a unit",
        ),
    ],
)
def test_a_number_with_a_unit_is_said_in_the_options_own_unit(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """t151: `rehearse --ack-deadline 5m` was told "give the number alone, without a
    unit", and 5 is five seconds, not five minutes; the settings say `write 300`."""
    from citybrain.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


@pytest.mark.parametrize("shape", ["404", "not JSON", "redirect", "other JSON"])
def test_another_server_on_the_default_worker_port_is_named_not_url_advice(
    shape: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t209: with a server left on the worker's port (no --url given), `runs list` said
    "no operator API there: --url takes the worker's base URL (scheme, host and port,
    e.g. http://127.0.0.1:16066)": the very address that failed, and an option the
    newcomer had not typed. It now names the port's setting and the process holding it.
    Fails on the old code."""
    import http.server
    import os
    import threading

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, status, headers = {
                "404": (b"<h1>Not Found</h1>", 404, {}),
                "not JSON": (b"hello", 200, {}),
                "redirect": (b"", 302, {"Location": "http://127.0.0.1:1/x"}),
                "other JSON": (b'{"status": "success"}', 200, {}),
            }[shape]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", str(port))
    monkeypatch.setenv("CITYBRAIN_API_TOKEN", "operator-secret")
    try:
        assert main(["runs", "list"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert f"port {port} (CITYBRAIN_WORKER_PORT) is held by pid {os.getpid()}, `" in err, err
    assert "a server that is no citybrain worker: stop it, or give --url where" in err
    assert "--url takes" not in err and "give --url the worker's own" not in err
    assert err.count("\n") == 1


@pytest.fixture
def interrupting_worker() -> Iterator[tuple[int, list[bytes]]]:
    """A port whose server answers a GET of a run (at level street) and, on any other
    request, interrupts this process (Ctrl-C, as the operator typing it while the worker
    is slow to answer) and never answers it."""
    import os
    import signal
    import threading

    requests: list[bytes] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        sock.settimeout(0.2)
        stop = threading.Event()
        held: list[socket.socket] = []

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                held.append(conn)
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                requests.append(data)
                if data.startswith(b"GET "):  # escalate asks the run's level first
                    body = b'{"run": {"run_id": "grp-x.1", "level": "street"}}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                os.kill(os.getpid(), signal.SIGINT)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield int(sock.getsockname()[1]), requests
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "escalate", "grp-x.1", "--note", "needs the district"],
        ["silences", "add", "--matcher", "kind=pm25", "--duration", "2h", "--reason", "r"],
    ],
    ids=["escalate", "silence"],
)
def test_ctrl_c_while_an_action_waits_on_the_worker_gives_the_same_action_again(
    interrupting_worker: tuple[int, list[bytes]],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """t217: Ctrl-C while `runs escalate` or `silences add` waited on a slow worker said
    only `citybrain: interrupted`, though the request had reached the worker; typed again,
    the action took a new key and could be applied twice (two levels, two silences). Now
    the line says its outcome is unknown and prints it again with its --idempotency-key."""
    from citybrain.cli import EXIT_INTERRUPTED

    port, requests = interrupting_worker
    url = f"http://127.0.0.1:{port}"
    assert main([*argv, "--url", url, "--token", "t0ken"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert requests and requests[-1].startswith(b"POST "), requests
    sent_key = [
        line.split(b":", 1)[1].strip().decode()
        for line in requests[-1].split(b"\r\n")
        if line.lower().startswith(b"idempotency-key:")
    ]
    assert err.startswith("citybrain: interrupted: whether POST /"), err
    assert " was applied is unknown" in err, err
    retry = err.split("retry it as the same action (applied once, ")[1]
    assert f"{argv[0]} {argv[1]} " in retry and f"--idempotency-key {sent_key[0]}" in retry, err
    assert "t0ken" not in err and retry.rstrip().endswith("with your --token"), err
    if argv[1] == "escalate":  # from the level it had, not the one the first may have set
        assert "--from street" in retry, err


def test_a_rehearsal_says_each_step_before_its_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t217: the docs' `citybrain rehearse` (998 NYC reports, two deadlines) printed
    nothing for 21 s on a loaded 2-core machine, then the table. Now it says on stderr
    that it reads the reports, then each version as it starts, before the table."""
    from streams.settings import REPO_ROOT

    (tmp_path / "in.csv").write_text(
        "timestamp,report_id,category,text,source,grid_cell,department\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police\n"
        "2024-05-27T00:05:00Z,r2,Noise,loud,app,c-top,police\n"
    )
    argv = ["rehearse", "--incidents", str(tmp_path / "in.csv")]
    argv += ["--grid", str(REPO_ROOT / "tests" / "fixtures" / "grid.yaml")]
    argv += ["--units", str(REPO_ROOT / "datasets" / "service_times" / "units-nyc.yaml")]
    assert main([*argv, "--ack-deadline", "300", "--ack-deadline", "900"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"rehearse: reading the reports of {tmp_path / 'in.csv'} …",
        "rehearse: 2 reports through the engine on a simulated clock, ack deadline 300 s"
        " (1 of 2) …",
        "rehearse: 2 reports through the engine on a simulated clock, ack deadline 900 s"
        " (2 of 2) …",
    ], err
    assert out.startswith("figure"), out
