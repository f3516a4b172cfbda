"""A new user's first hour, third walk (trial 20): a SIGTERM ends every command as
Ctrl-C does, and an input path that exists but is no regular file is named for what it
is, not "no such file"."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, TextIO

import pytest

from citybrain.cli import EXIT_INTERRUPTED, EXIT_USAGE, main

SERIES = "timestamp,value\n" + "".join(f"2026-01-01T00:{i:02d}:00Z,{i % 7}\n" for i in range(60))


def _killed_while_scoring(fh: TextIO, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """Stands in for citybrain.detect._score_chunks: writes a row, then the process
    receives a SIGTERM, as from `kill` or `timeout`."""
    fh.write("timestamp,value,anomaly_score\n2026-01-01T00:00:00Z,0.0,0.000000\n")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler interrupts this
    raise AssertionError("SIGTERM did not interrupt detect")


def test_a_sigterm_ends_detect_as_ctrl_c_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Killed by default, detect left its 14 MB .partial file beside the output, said
    # nothing and exited 143; a demo left its half-fed worker running.
    monkeypatch.setattr("citybrain.detect._score_chunks", _killed_while_scoring)
    src, out = tmp_path / "a.csv", tmp_path / "scores.csv"
    src.write_text(SERIES)
    out.write_text("as it was\n")
    before = signal.getsignal(signal.SIGTERM)
    assert main(["detect", "--input", str(src), "--output", str(out)]) == EXIT_INTERRUPTED
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        f"citybrain: interrupted: nothing was written to {out} (it is as it was before); "
        "run the command again to score the file"
    )
    assert out.read_text() == "as it was\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "scores.csv"]
    assert signal.getsignal(signal.SIGTERM) is before  # restored for the caller


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["report", "--prefix", "p", "--data", "x.csv", "--out", "r.html"],
        ["campaign", "report", "--from", "2026-12-01", "--to", "2026-12-02"],
        ["deadletters"],
        ["stack", "up"],
        ["worker"],  # until its event loop's handler replaces it (t167)
    ],
)
def test_every_command_hears_a_sigterm_as_ctrl_c(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.cli import parser
    from citybrain.cli.base import _interrupt

    heard: list[object] = []

    def command(args: object) -> int:
        heard.append(signal.getsignal(signal.SIGTERM))
        return 0

    commands = (
        "cmd_demo",
        "cmd_report",
        "cmd_campaign",
        "cmd_deadletters",
        "cmd_stack",
        "cmd_worker",
    )
    for name in commands:
        monkeypatch.setattr(parser, name, command)  # what build_parser hands each command
    assert main(argv) == 0
    assert heard == [_interrupt]


def test_a_sigterm_while_the_worker_starts_is_heard_as_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t167: until the worker's event loop put its handler in (imports, settings, the
    Kafka check and topic creation, about 4 s), a SIGTERM killed it by default: no word,
    status 143 (Ctrl-C there said "interrupted", 130). The signal here is real."""

    def create_app(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the worker's start")

    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setattr("streams.app.create_app", create_app)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["worker"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == "citybrain: interrupted"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_pipe_a_device_and_a_dangling_link_are_not_said_to_be_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o.csv")
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)  # what `--input <(zcat a.csv.gz)` gives: /dev/fd/63
    link = tmp_path / "latest.csv"
    link.symlink_to("gone.csv")
    instead = "expected a regular file: save its content to a file and give that"
    cases = [
        (fifo, f" is a pipe (such as <(zcat FILE.gz)), {instead}"),
        (Path("/dev/null"), f" is a device, {instead}"),
        (link, ": a symbolic link to 'gone.csv', which does not exist"),
        (tmp_path / "absent.csv", ": no such file"),
    ]
    for path, reason in cases:
        assert main(["detect", "--input", str(path), "--output", out]) == EXIT_USAGE
        assert capsys.readouterr().err == f"citybrain: --input {str(path)!r}{reason}\n"
    # The same check stands behind every option that takes a file.
    assert main(["demo", "--expect", "/dev/null"]) == EXIT_USAGE
    assert "--expect '/dev/null' is a device, expected a regular file" in capsys.readouterr().err
    assert main(["detect", "--input-dir", str(fifo), "--output-dir", out]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith(
        f"citybrain: --input-dir {str(fifo)!r} is a pipe (such as <(zcat FILE.gz)), "
        "expected a directory"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Each ran: a rehearsal to "unexpected StopIteration" (exit 70), a replay at an
        # infinite speed.
        (
            ["rehearse", "--incidents", "x.csv", "--units", "u.yaml", "--ack-deadline", "1e308"],
            "argument --ack-deadline: '1e308': expected more than 0 and at most "
            "9,223,372,036 seconds (about 292 years)",
        ),
        (
            ["rehearse", "--incidents", "x.csv", "--units", "u.yaml", "--ack-deadline", "inf"],
            "argument --ack-deadline: 'inf': expected more than 0 and at most",
        ),
        (["replay", "x.csv", "--speed", "inf"], "argument --speed: 'inf': expected a finite"),
        (["demo", "--ack-deadline", "Infinity"], "argument --ack-deadline: 'Infinity': expected"),
        (
            ["ingest", "http", "--stats-every", "1e400"],
            "--stats-every: '1e400': expected more than 0 and at most 3,600 seconds",
        ),
    ],
)
def test_an_endless_number_is_refused_where_a_positive_one_is_taken(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_rehearsal_runs_at_its_longest_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain.cli.base import REHEARSAL_MAX_DEADLINE
    from streams.settings import REPO_ROOT

    (tmp_path / "in.csv").write_text(
        "timestamp,report_id,category,text,source,grid_cell,department\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police\n"
    )
    argv = ["rehearse", "--incidents", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.json")]
    argv += ["--grid", str(REPO_ROOT / "tests" / "fixtures" / "grid.yaml")]
    argv += ["--units", str(REPO_ROOT / "datasets" / "service_times" / "units-nyc.yaml")]
    assert main([*argv, "--ack-deadline", f"{REHEARSAL_MAX_DEADLINE:.0f}"]) == 0
    assert "rehearsal report written to" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # It ran a whole demo that could only report the event "missed".
        (
            b'- {name: e, sensor_prefix: s, start: "2020-01-02T00:00:00Z", '
            b'end: "2020-01-01T00:00:00Z"}\n',
            ":1: entry 1: end '2020-01-01T00:00:00Z' is before start '2020-01-02T00:00:00Z'",
        ),
        # Python's "'utf-8' codec can't decode byte 0xff in position 9: invalid start byte".
        (b"# events\n\xff\n", ":2: byte 0xff is not UTF-8 (save the file as UTF-8)"),
    ],
)
def test_an_expect_file_that_cannot_hold_an_event_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, message: str
) -> None:
    path = tmp_path / "events.yaml"
    path.write_bytes(body)
    assert main(["demo", "--expect", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: --expect {path}") and message in err


def test_an_expect_window_is_compared_as_times_not_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # "2019-05-10 23:00:00+00:00" (a space) sorted before "2019-05-10T22:25:00Z" as
    # text, and a window without a zone was read in the machine's local time: the
    # flood's alert counted as a false alarm.
    import time as clock

    from citybrain.demo import KnownEvent, outside_events

    alert = {"sensor_id": "usgs-1-flow", "first_event_time": "2019-05-10T22:25:00Z"}
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    clock.tzset()
    try:
        for start, end in [
            ("2019-05-10 20:00:00+00:00", "2019-05-10 23:00:00+00:00"),
            ("2019-05-10T20:00:00", "2019-05-10T23:00:00"),  # no zone: UTC
            ("2019-05-11T01:00:00+03:00", "2019-05-11T02:00:00+03:00"),
        ]:
            flood = KnownEvent("flood", "usgs-", start, end)
            assert outside_events([alert], (flood,)) == [], (start, end)
        late = KnownEvent("flood", "usgs-", "2019-05-10T23:00:00Z", "2019-05-11T00:00:00Z")
        assert outside_events([alert], (late,)) == [alert]
    finally:
        monkeypatch.undo()
        clock.tzset()


def test_a_demo_says_whose_topics_it_deleted() -> None:
    # A new demo deleted the earlier demos' topics without a word; `report --prefix`
    # of the previous demo then found none.
    from citybrain.demo import dropped_note

    assert dropped_note([]) == ""
    assert dropped_note(["demo-20261202110751"]) == (
        "deleted the topics of 1 earlier demo (demo-20261202110751): their reports and "
        "dead letters can no longer be read"
    )
    five = [f"demo-2026120211075{i}" for i in range(5)]
    assert dropped_note(five).startswith(
        "deleted the topics of 5 earlier demos (demo-20261202110752, demo-20261202110753, "
        "demo-20261202110754 and 2 more)"
    )


def test_the_version_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # A new user's next try after --help was "unrecognized arguments: --version".
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"citybrain {version('citybrain')}\n"


def test_stack_names_its_action_as_every_command_does(capsys: pytest.CaptureFixture[str]) -> None:
    # "the following arguments are required: action", where runs, silences and the
    # others say ACTION.
    assert main(["stack"]) == EXIT_USAGE
    assert "the following arguments are required: ACTION;" in capsys.readouterr().err
    assert main(["runs"]) == EXIT_USAGE
    assert "the following arguments are required: ACTION;" in capsys.readouterr().err


def test_a_demos_changelog_topics_count_as_that_demo_not_as_more_demos() -> None:
    # One earlier demo with a worker was "10 earlier demos": faust names its changelog
    # topics from the app id with no dot, and each counted as a demo.
    from citybrain.demo import demo_of

    topics = [
        "demo-20261203064618.readings",
        "demo-20261203064618.alerts",
        "demo-20261203064618-muted-changelog",
        "demo-20261203064618-sensor-state-changelog",
        "demo-20261203070000-__assignor-__leader",
    ]
    assert sorted({demo_of(t) for t in topics}) == ["demo-20261203064618", "demo-20261203070000"]
    assert demo_of("demo-mine.readings") == "demo-mine"


def test_a_file_written_by_a_relative_path_is_said_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t60's walk: `--out o.json` said "rehearsal report written to o.json" (the demo its
    summary and report, `dashboards generate` each file), while every command printed
    names its files absolute; the line now says where the file is from any directory."""
    from citybrain.commands import written_path
    from streams.settings import REPO_ROOT

    (tmp_path / "in.csv").write_text(
        "timestamp,report_id,category,text,source,grid_cell,department\n"
        "2024-05-27T00:00:00Z,r1,Noise,loud,app,c-top,police\n"
    )
    monkeypatch.chdir(tmp_path)
    argv = ["rehearse", "--incidents", "in.csv", "--out", "o.json"]
    argv += ["--grid", str(REPO_ROOT / "tests" / "fixtures" / "grid.yaml")]
    argv += ["--units", str(REPO_ROOT / "datasets" / "service_times" / "units-nyc.yaml")]
    assert main(argv) == 0
    assert f"rehearsal report written to {tmp_path / 'o.json'}\n" in capsys.readouterr().out
    assert main(["dashboards", "generate", "--out", "gen"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'gen' / 'dashboards'}" in out and "wrote gen/" not in out
    assert written_path("a/b.html") == str(tmp_path / "a" / "b.html")


def test_dashboards_generate_stopped_half_way_lists_the_files_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t83: a write that failed after the dashboards were written (here a file where the
    provisioning folder goes) said only the failure; which files were new was unsaid."""
    from dashboards.generate import BUILDERS

    out = tmp_path / "gen"
    out.mkdir()
    (out / "provisioning").write_text("not a folder")
    assert main(["dashboards", "generate", "--out", str(out)]) == EXIT_USAGE
    said, err = capsys.readouterr()
    assert said.splitlines() == [f"wrote {out / 'dashboards' / f'{uid}.json'}" for uid in BUILDERS]
    assert err.startswith(f"citybrain: --out {str(out)!r}: cannot write ")
    assert err.endswith(
        f"; stopped there: {len(BUILDERS)} files before it were written (listed on stdout), "
        "the rest left as they were\n"
    )
