"""Every "run this instead / again" line keeps the options the user gave (t40: replay
`smallbad.csv --max --on-error skip`, with a demo running under another prefix, was told
to feed it with `CITYBRAIN_TOPIC_PREFIX=demo-… citybrain replay smallbad.csv`: typed so,
it stopped at the bad row and ran 3 min at 60x instead of at once)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from citybrain.cli import build_parser
from citybrain.cli.base import given_argv, without_token
from citybrain.cli.feeds import ingest_target, replay_stopped, replay_target
from citybrain.demo import DemoFiles
from streams.settings import Settings

ARGV = ["replay", "small bad.csv", "--max", "--on-error", "skip", "--pack", "50"]


def _demo_running(tmp_path: Path) -> Settings:
    """A run directory whose demo worker runs (this process stands in) under demo-1."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="citybrain")
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    return settings


def _suggested(line: str) -> list[str]:
    return shlex.split(line.rsplit(": ", 1)[1])


def test_the_feed_the_demo_line_keeps_every_replay_option(tmp_path: Path) -> None:
    note = replay_target(_demo_running(tmp_path), ARGV)[1]
    words = _suggested(note)
    assert words[0] == "CITYBRAIN_TOPIC_PREFIX=demo-1"
    assert words[2:] == ARGV


def test_the_feed_the_demo_line_keeps_every_ingest_option(tmp_path: Path) -> None:
    argv = ["ingest", "http", "--port", "18080", "--max-body-bytes", "2048"]
    assert _suggested(ingest_target(_demo_running(tmp_path), argv)[1])[2:] == argv


def test_the_arguments_given_are_those_main_passed() -> None:
    args = build_parser().parse_args(ARGV)
    args.argv = list(ARGV)
    assert given_argv(args) == ARGV


def test_run_it_again_keeps_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(ARGV)
    args.argv = list(ARGV)
    line = replay_stopped(args, 0, 5, None)
    assert _suggested(line)[1:] == ARGV


@pytest.mark.parametrize(
    "skip", [["--skip", "5"], ["--skip=5"], ["--sk", "5"]], ids=["spaced", "equals", "abbreviated"]
)
def test_the_feed_the_demo_line_leaves_out_this_prefixs_progress(
    tmp_path: Path, skip: list[str]
) -> None:
    """t46: a replay resumed under t42x with `--skip 5` offered the demo's worker
    `… replay FILE --skip 5 --max`, which left out 5 events that worker never had."""
    argv = ["replay", "small bad.csv", *skip, "--max"]
    note = replay_target(_demo_running(tmp_path), argv)[1]
    assert _suggested(note)[2:] == ["replay", "small bad.csv", "--max"]
    assert f"from the first event ({shlex.join(skip)} is this prefix's)" in note


def test_a_printed_command_never_shows_the_token_given_abbreviated() -> None:
    for token in (["--token", "s3cret"], ["--token=s3cret"], ["--tok", "s3cret"]):
        assert without_token(["runs", "list", *token, "--wide"]) == (
            ["runs", "list", "--wide"],
            True,
        )
