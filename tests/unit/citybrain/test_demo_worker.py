"""The demo's worker, once the demo has ended (trial 8, finding 4): demo.json records
every setting it runs with; a stopped one (crashed or killed, not `make stack-down`) is
shown by `stack status` with its log, and every hint to start it again carries all its
settings (the topic prefix, app id, tokens file and ack deadline the demo gave it)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from citybrain.cli.api import stopped_demo_worker
from citybrain.cli.stack import demo_worker_lines
from citybrain.commands import cli_command
from citybrain.demo import (
    DemoFiles,
    demo_worker,
    restart_advice,
    restart_command,
    restart_env,
    worker_settings,
)
from citybrain.stack import KafkaBroker
from streams.settings import Settings

OWN = {
    "CITYBRAIN_TOPIC_PREFIX": "demo-20261201185606",
    "CITYBRAIN_APP_ID": "demo-20261201185606",
    "CITYBRAIN_ACK_DEADLINE_SECONDS": "5.0",
    "CITYBRAIN_API_TOKENS_FILE": "/tmp/run/demo/tokens.yaml",
}


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _demo(tmp_path: Path, pid: int | None) -> Settings:
    """A run directory where a demo ran, its worker's pid file holding ``pid`` (None:
    no pid file, as `make stack-down` leaves it)."""
    settings = Settings(run_dir_override=tmp_path, worker_port=16766, kafka_port=19792)
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    environ = {"CITYBRAIN_KAFKA_PORT": "19792", "CITYBRAIN_WEBHOOK_SECRET": "s", "PATH": "/x"}
    files.state.write_text(
        json.dumps(
            {
                "topic_prefix": OWN["CITYBRAIN_TOPIC_PREFIX"],
                "worker_url": "http://127.0.0.1:16766",
                "worker_log": str(files.log),
                "worker_settings": worker_settings(environ, OWN, settings),
            }
        )
    )
    files.log.write_text("starting\nTraceback ...\nKafkaError: broker went away\n")
    if pid is not None:
        files.pid.write_text(str(pid))
    return settings


def test_the_worker_settings_are_every_one_it_runs_with_and_no_secret(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, kafka_port=19792)
    environ = {
        "CITYBRAIN_KAFKA_PORT": "19792",
        "CITYBRAIN_MQTT_PORT": "12583",
        "CITYBRAIN_WEBHOOK_SECRET": "s",
        "CITYBRAIN_API_TOKEN": "t",
        "CITYBRAIN_KAFKA_PASSWORD": "p",
        "CITYBRAIN_TOPIC_PREFIX": "the shell's, not the demo's",
        "PATH": "/usr/bin",
    }
    got = worker_settings(environ, OWN, settings)
    assert got == {
        **OWN,
        "CITYBRAIN_KAFKA_HOST": "127.0.0.1",
        "CITYBRAIN_KAFKA_PORT": "19792",
        "CITYBRAIN_MQTT_PORT": "12583",
        "CITYBRAIN_RUN_DIR": str(tmp_path),
        "CITYBRAIN_WORKER_PORT": "16066",
    }
    assert list(got) == sorted(got)


def test_the_restart_settings_are_every_one_the_demos_worker_ran_with(tmp_path: Path) -> None:
    settings = _demo(tmp_path, _dead_pid())
    _, doc = demo_worker(settings)
    assert restart_env(settings, doc) == worker_settings(
        {"CITYBRAIN_KAFKA_PORT": "19792"}, OWN, settings
    )


def test_the_restart_command_is_the_stacks_own_and_finds_the_run_directory(
    tmp_path: Path,
) -> None:
    """t36: the printed `CITYBRAIN_…=… citybrain worker >> log` started a worker no pid
    file tracked: `stack status` still said stopped and `stack down` left it running."""
    settings = _demo(tmp_path, _dead_pid())
    words = shlex.split(restart_command(settings))
    assert words[0] == f"CITYBRAIN_RUN_DIR={tmp_path}"
    assert words[2:] == ["stack", "restart-worker"]
    assert "worker" not in words and ">>" not in words
    default = shlex.split(restart_command(Settings()))
    assert default[1:] == ["stack", "restart-worker"]


def test_a_demo_json_from_before_worker_settings_still_gives_the_demos_own(
    tmp_path: Path,
) -> None:
    settings = Settings(run_dir_override=tmp_path)
    doc = {"topic_prefix": "demo-1", "app_id": "demo-1", "settings": {"CITYBRAIN_KAFKA_PORT": "1"}}
    env = restart_env(settings, doc)
    assert env["CITYBRAIN_TOPIC_PREFIX"] == "demo-1" and env["CITYBRAIN_APP_ID"] == "demo-1"
    assert env["CITYBRAIN_API_TOKENS_FILE"] == str(DemoFiles.of(settings).tokens)
    assert env["CITYBRAIN_KAFKA_PORT"] == "1"


# "self" for this process's pid, named so the test's id is one in every process (xdist).
@pytest.mark.parametrize(
    ("pid", "state"), [("self", "running"), ("dead", "stopped"), (None, "none")]
)
def test_the_demo_worker_is_running_stopped_or_none(
    tmp_path: Path, pid: str | None, state: str
) -> None:
    given = os.getpid() if pid == "self" else _dead_pid() if pid == "dead" else None
    settings = _demo(tmp_path, given)
    assert demo_worker(settings)[0] == state


def test_stack_status_shows_a_stopped_demo_worker_with_its_log_and_restart(
    tmp_path: Path,
) -> None:
    settings = _demo(tmp_path, _dead_pid())
    first, second = demo_worker_lines(settings)
    log = DemoFiles.of(settings).log
    assert first == (
        "demo worker stopped  http://127.0.0.1:16766: it exited without a `stack down` "
        f"(crashed or killed); its log: {log} (last line: KafkaError: broker went away)"
    )
    # The stack is down here (no Kafka pid file): the stack first (t48: restart-worker
    # alone, typed after `stack down`, was refused for want of Kafka).
    up = f"CITYBRAIN_RUN_DIR={tmp_path} {shlex.quote(cli_command())} stack up"
    assert second.strip() == (
        f"start it again, as the demo ran it: {up}, then {restart_command(settings)}"
    )
    KafkaBroker(settings).pid_file.parent.mkdir(parents=True, exist_ok=True)
    KafkaBroker(settings).pid_file.write_text(str(os.getpid()))  # a live pid: Kafka runs
    assert demo_worker_lines(settings)[1].strip() == (
        f"start it again, as the demo ran it: {restart_command(settings)}"
    )
    KafkaBroker(settings).pid_file.unlink()
    # Down (its demo interrupted, or `stack down` stopped it): its runs come back with
    # restart-worker (t46); with no demo recorded, nothing to start again.
    down = _demo(tmp_path / "down", None)
    assert demo_worker_lines(down) == [
        "demo worker down     http://127.0.0.1:16766 (optional)",
        f"{'':11} the last demo's (prefix demo-20261201185606); start it again, as the demo "
        f"ran it: {restart_advice(down)}",
    ]
    DemoFiles.of(down).state.unlink()
    assert demo_worker_lines(down) == ["demo worker down     http://127.0.0.1:16766 (optional)"]


def test_the_unreachable_api_hint_restarts_the_stopped_demo_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _demo(tmp_path, _dead_pid())
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    hint = stopped_demo_worker(None)
    assert hint.startswith(
        f"the demo's worker has stopped (crashed or killed: see {DemoFiles.of(settings).log}); "
        "start it again, as the demo ran it: "
    )
    assert hint.endswith(
        f"CITYBRAIN_RUN_DIR={tmp_path} {shlex.quote(cli_command())} stack restart-worker"
    )
    assert stopped_demo_worker("http://127.0.0.1:16766/") == hint
    assert stopped_demo_worker("http://10.0.0.9:16066") == ""  # another worker: not its hint


def test_the_unreachable_api_hint_names_the_running_demo_worker_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t76: a shell with the demo's run directory but not its worker port asked 16066,
    and was told to start a worker with `make demo`, which deletes the running demo
    worker's topics; the hint gives the command again with the demo's settings."""
    settings = _demo(tmp_path, os.getpid())  # a live pid: the demo's worker runs
    state = json.loads(DemoFiles.of(settings).state.read_text())
    state["settings"] = {"CITYBRAIN_WORKER_PORT": "16766", "CITYBRAIN_RUN_DIR": str(tmp_path)}
    DemoFiles.of(settings).state.write_text(json.dumps(state))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("CITYBRAIN_WORKER_PORT", raising=False)
    hint = stopped_demo_worker(None, ["runs", "show", "grp-1.1", "--token", "secret"])
    assert hint == (
        "the last demo's worker runs at http://127.0.0.1:16766, with settings this shell "
        f"lacks; type it with them: `CITYBRAIN_WORKER_PORT=16766 CITYBRAIN_RUN_DIR={tmp_path} "
        f"{shlex.quote(cli_command())} runs show grp-1.1` with your --token"
    )
    # A shell's own worker port is replaced by the demo's in the command printed.
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "17000")
    assert "`CITYBRAIN_WORKER_PORT=16766 " in stopped_demo_worker(None, ["runs", "list"])
    # Asked where the demo's worker runs (it did not answer this once): not this hint,
    # but that it is starting (below).
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    assert stopped_demo_worker(None, ["runs", "list"]).startswith("the last demo's worker (pid ")
    assert stopped_demo_worker("http://10.0.0.9:16066", ["runs", "list"]) == ""


def test_the_unreachable_api_hint_waits_for_a_demo_worker_still_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209: while `stack restart-worker` started the demo's worker (its process alive,
    its API not yet served), `silences list` was told "no worker serves it there; start
    one (`make demo` in the checkout leaves its worker running, or `citybrain worker`)":
    a new demo deletes this demo's topics. Fails on the old code ("")."""
    settings = _demo(tmp_path, os.getpid())  # a live pid: the demo's worker runs
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    for url in (None, "http://127.0.0.1:16766/"):
        hint = stopped_demo_worker(url, ["silences", "list"])
        assert hint == (
            f"the last demo's worker (pid {os.getpid()}, topic prefix "
            f"{OWN['CITYBRAIN_TOPIC_PREFIX']}) runs but does not serve its API yet: it is "
            f"starting (about 30 s on 2 cores, at most 90 s; log: {DemoFiles.of(settings).log}); "
            f"run this again once `CITYBRAIN_WORKER_PORT=16766 CITYBRAIN_RUN_DIR={tmp_path} "
            f"{shlex.quote(cli_command())} stack status` shows it running"
        ), hint
    assert "make demo" not in hint


def test_a_mistyped_local_url_is_pointed_at_the_running_demo_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t102: `runs list --url http://127.0.0.1:16767` (one digit off the demo worker's
    16766) was told "start one on port 16767 (`… citybrain worker`)": a new worker on
    another topic prefix, none of the demo's runs. It names the demo's worker instead;
    another machine's URL is still not its business."""
    _demo(tmp_path, os.getpid())  # a live pid: the demo's worker runs
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    assert stopped_demo_worker("http://127.0.0.1:16767", ["runs", "list"]) == (
        "no worker serves it there; the last demo's worker runs at http://127.0.0.1:16766 "
        f"(topic prefix {OWN['CITYBRAIN_TOPIC_PREFIX']}): give --url http://127.0.0.1:16766"
    )
    assert stopped_demo_worker("http://10.0.0.9:16767", ["runs", "list"]) == ""


@pytest.mark.parametrize(
    ("log", "shown"),
    [
        # faust's multi-line message: its record's first line, not "3) The agent …".
        (
            "[2026-12-05 02:34:35,001] [19210] [INFO] fine\n"
            "[2026-12-05 02:34:36,256] [19210] [ERROR] [^---AIOKafkaConsumerThread]: Stream "
            "has not started processing TP(topic='d.readings', partition=1)\n\n"
            "There are multiple possible explanations for this:\n\n"
            " 2) The stream has stopped processing events for some reason.\n\n"
            "3) The agent processing the stream is hanging (waiting for network, I/O or "
            "infinite loop). \n",
            "[2026-12-05 02:34:36,256] [19210] [ERROR] [^---AIOKafkaConsumerThread]: Stream "
            "has not started processing TP(topic='d.readings', partition=1)",
        ),
        # A traceback's exception, a record, or a log without records: its last line.
        (
            "[2026-12-05 02:00:00,000] [1] [ERROR] crashed\nTraceback (most recent call last):\n"
            '  File "x.py", line 1\nfaust.exceptions.ConsumerNotStarted: no\n',
            "faust.exceptions.ConsumerNotStarted: no",
        ),
        (
            "[2026-12-05 02:00:00,000] [1] [INFO] a\n[2026-12-05 02:00:01,000] [1] [INFO] b\n",
            "[2026-12-05 02:00:01,000] [1] [INFO] b",
        ),
        ("starting\nsomething\n", "something"),
        ("\n\n", ""),
        # t169: a record holding a U+2028 or U+0085 (a value it quotes) is one line of the
        # log; str.splitlines() cut it there and showed the fragment after it. Fails on
        # the old code.
        (
            "[2026-12-05 02:00:00,000] [1] [INFO] a\n"
            "[2026-12-05 02:00:01,000] [1] [WARNING] note 'x\u2028y\x85z' refused\n",
            "[2026-12-05 02:00:01,000] [1] [WARNING] note 'x\u2028y\x85z' refused",
        ),
    ],
)
def test_the_last_line_shown_is_the_last_record_s_or_the_exception(log: str, shown: str) -> None:
    """t91: a demo worker killed after faust logged a multi-line message showed `stack
    status` "(last line: 3) The agent processing the stream is hanging …)"."""
    from citybrain.cli.stack import last_record

    assert last_record(log) == shown


def test_restart_worker_checks_the_shells_settings_and_names_those_it_does_not_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t134: `CITYBRAIN_GRID_FILE=/tmp/bad.yaml stack restart-worker` started a worker
    that died of the grid, said as "crashed, or was killed"; the shell's settings are
    checked first (one line, exit 2, no worker started), and a differing one the demo's
    recorded settings override is named."""
    from citybrain.cli import EXIT_USAGE, main

    files = DemoFiles.of(_demo(tmp_path, _dead_pid()))
    state = json.loads(files.state.read_text())
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: []\n")
    state["worker_settings"]["CITYBRAIN_API_TOKENS_FILE"] = str(tokens)
    files.state.write_text(json.dumps(state))
    dead = files.pid.read_text()
    for name in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells:\n\t- a\n")
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", str(bad))
    assert main(["stack", "restart-worker"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid YAML" in err and err.count("\n") == 1
    assert files.pid.read_text() == dead  # no worker started

    # A good setting of this shell the demo did not have: named, not used. The start
    # then goes on, to the Kafka the demo's worker used (none answers here).
    monkeypatch.delenv("CITYBRAIN_GRID_FILE")
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "1")
    assert main(["stack", "restart-worker"]) != EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        "the demo's recorded settings are used, not this shell's: CITYBRAIN_KAFKA_PORT "
        "('19792' in the demo, '1' here)"
    ) in err
    assert "no Kafka broker answers at 127.0.0.1:19792" in err


def test_a_url_with_no_operator_api_is_given_the_demo_workers_as_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t147: `runs list --url` of a server that is no worker (the stack's Prometheus) was
    told "e.g. http://127.0.0.1:16066", where nothing ran while the demo's worker served
    on the port it was started with; it names that one (else this shell's)."""
    from citybrain.cli.api import not_found_hint

    _demo(tmp_path, os.getpid())  # a live pid: the demo's worker runs, on 16766
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("CITYBRAIN_WORKER_PORT", raising=False)
    said = "; no operator API there: --url takes the worker's base URL (scheme, host and port"
    hint = not_found_hint("/runs", "404 page not found", "http://127.0.0.1:19090")
    assert hint == f"{said}, e.g. http://127.0.0.1:16766, the last demo's worker)"
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    hint = not_found_hint("/alerts", "404 page not found", "http://127.0.0.1:19090")
    assert hint == f"{said}, e.g. http://127.0.0.1:16766)"
    # A server whose /api/v1 is another's (a Prometheus's alerts): the same example.
    from citybrain.cli.api import listed
    from citybrain.cli.base import CliError

    with pytest.raises(CliError) as info:
        listed({"status": "success", "data": {}}, "firing", "http://127.0.0.1:19090", "/alerts")
    assert str(info.value).endswith("(scheme, host and port, e.g. http://127.0.0.1:16766)")
    # No demo: this shell's own worker port.
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "17066")
    hint = not_found_hint("/silences", "404 page not found", "http://127.0.0.1:19090")
    assert hint == f"{said}, e.g. http://127.0.0.1:17066)"
