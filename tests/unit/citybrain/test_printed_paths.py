"""A command citybrain prints names files and directories by absolute path, so it works
typed in a new shell, which starts in another directory (t51's walk: a replay run from
one directory with `../data/x.csv`, interrupted, printed a resume line whose relative
FILE was "no such file" typed in a new shell; a relative CITYBRAIN_RUN_DIR, printed as
given, named another run directory there)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, build_parser, main
from citybrain.cli.base import absolute_argv, path_values
from citybrain.commands import command_line, start_stack_hint
from citybrain.demo import shell_settings, worker_settings
from streams.settings import Settings


def _assignments(line: str) -> dict[str, str]:
    """The ``NAME=value`` words before the command of a printed line."""
    out = {}
    for word in shlex.split(line):
        name, equals, value = word.partition("=")
        if not equals or not name.startswith("CITYBRAIN_"):
            break
        out[name] = value
    return out


def test_a_relative_run_dir_is_printed_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", "run")
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", "grids/city.yaml")
    printed = _assignments(command_line("stack", "down"))
    assert printed["CITYBRAIN_RUN_DIR"] == str(tmp_path / "run")
    assert printed["CITYBRAIN_GRID_FILE"] == str(tmp_path / "grids" / "city.yaml")
    assert f"CITYBRAIN_RUN_DIR={tmp_path / 'run'}" in start_stack_hint()


def test_settings_that_are_no_paths_are_printed_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYBRAIN_TOPIC_PREFIX", "run")
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "abs"))
    printed = _assignments(command_line("stack", "down"))
    assert printed["CITYBRAIN_TOPIC_PREFIX"] == "run"
    assert printed["CITYBRAIN_RUN_DIR"] == str(tmp_path / "abs")


def test_the_demo_records_its_shells_relative_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo.json's settings are what later commands print and restart-worker runs with,
    typed in any directory."""
    monkeypatch.chdir(tmp_path)
    environ = {"CITYBRAIN_RUN_DIR": "run", "CITYBRAIN_ROUTING_FILE": "r.yaml"}
    assert shell_settings(environ) == {
        "CITYBRAIN_ROUTING_FILE": str(tmp_path / "r.yaml"),
        "CITYBRAIN_RUN_DIR": str(tmp_path / "run"),
    }
    worker = worker_settings(environ, {}, Settings(run_dir_override=Path("run")))
    assert worker["CITYBRAIN_RUN_DIR"] == str(tmp_path / "run")
    assert worker["CITYBRAIN_ROUTING_FILE"] == str(tmp_path / "r.yaml")


def test_file_arguments_of_a_command_to_print_again_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    argv = ["replay", "../a.csv", "b.csv", "--speed", "10"]
    args = parser.parse_args(argv)
    assert absolute_argv(argv, path_values(parser, args)) == [
        "replay",
        str(tmp_path / "../a.csv"),
        str(tmp_path / "b.csv"),
        "--speed",
        "10",
    ]
    argv = ["detect", "--input=in.csv", "--output", "-"]
    args = parser.parse_args(argv)
    assert absolute_argv(argv, path_values(parser, args)) == [
        "detect",
        f"--input={tmp_path / 'in.csv'}",
        "--output",
        "-",
    ]
    # An option's value that is no file stays as typed, even one that looks like one.
    argv = ["runs", "list", "--status", "open"]
    args = parser.parse_args(argv)
    assert absolute_argv(argv, path_values(parser, args)) == argv


def test_a_readings_file_given_to_detect_by_a_relative_path_is_printed_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.csv").write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n2019-05-10T00:00:00Z,s1,water_level,1,ft,c\n"
    )
    assert main(["detect", "--input", "r.csv", "--output", "o.csv"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"replay {tmp_path / 'r.csv'}` sends it" in err


def test_an_interrupted_replay_of_a_relative_file_resumes_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citybrain.cli.feeds import replay_stopped
    from streams.events import Reading

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["replay", "../data/r.csv", "--speed", "600"])
    reading = Reading(ts=0.0, sensor_id="s1", kind="noise", value=1.0, unit="dB", grid_cell="c")
    line = replay_stopped(args, 1, 2, reading)
    assert line.endswith(f"replay {tmp_path / '../data/r.csv'} --speed 600 --skip 1")


def test_hash_tokens_hint_carries_no_setting_it_never_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t51's walk: `hash-token < /dev/null` advised `CITYBRAIN_KAFKA_PORT=… (every port,
    the run directory) citybrain hash-token < token.txt`; it reads none of them."""
    import io

    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "23592")
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", "/tmp/elsewhere")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["hash-token"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no token on standard input: `" in err and "hash-token < token.txt`" in err
    assert "CITYBRAIN_" not in err


def test_a_relative_run_directory_is_absolute_in_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token files, logs and pid files the demo and the stack name (`export
    CITYBRAIN_API_TOKEN=$(cat …/operator-token)`) come from it."""
    from citybrain.demo import DemoFiles

    monkeypatch.chdir(tmp_path)
    assert Settings(run_dir_override=Path("run")).run_dir == tmp_path / "run"
    assert Settings(home=Path("home")).run_dir == tmp_path / "home" / "run"
    token = DemoFiles.of(Settings(run_dir_override=Path("run"))).token
    assert token.is_absolute() and token.is_relative_to(tmp_path / "run")


def test_a_quoted_tilde_in_a_file_argument_is_printed_expanded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """t101: a resume line names the file the replay read, the home directory's."""
    monkeypatch.setenv("HOME", str(tmp_path))
    parser = build_parser()
    args = parser.parse_args(["replay", "~/x.csv", "--speed", "10"])
    assert absolute_argv(["replay", "~/x.csv", "--speed", "10"], path_values(parser, args)) == [
        "replay",
        str(tmp_path / "x.csv"),
        "--speed",
        "10",
    ]
