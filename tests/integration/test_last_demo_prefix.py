"""t217: after the demo's worker stopped (crashed, interrupted, `stack down`), `campaign
report` and `deadletters` typed as the runbook prints them, without --prefix, read the
default prefix and said "no topic citybrain.steps …; prefixes there: demo-…", not what to
type. Now the line ends with the command again with the last demo's --prefix."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from tests.services import TEST_PORTS, Pipeline

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "argv",
    [["campaign", "report", "--from", "2024-05-26", "--to", "2024-05-27"], ["deadletters"]],
    ids=["campaign", "deadletters"],
)
def test_a_reading_command_after_the_demos_worker_stopped_gives_the_demos_prefix(
    stack: PrometheusServer,
    run_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    from citybrain.cli import main
    from citybrain.demo import DemoFiles
    from streams.settings import Settings

    demo = Pipeline(run_dir)  # the last demo's topics, under its own prefix
    own = tmp_path / "run"  # a run directory whose last demo's worker no longer runs
    with pytest.MonkeyPatch.context() as mp:
        for key, value in TEST_PORTS.items():
            mp.setenv(key, value)
        mp.setenv("CITYBRAIN_RUN_DIR", str(own))
        mp.delenv("CITYBRAIN_TOPIC_PREFIX", raising=False)
        state = DemoFiles.of(Settings()).state
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"topic_prefix": demo.name}), encoding="utf-8")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("citybrain: the default prefix 'citybrain' (no --prefix given): ")
        said = f"; the last demo's prefix is {demo.name} (read without --prefix only while "
        assert said in err, err
        words = shlex.split(err.split("its worker runs): `", 1)[1].split("`", 1)[0])
        assert f"CITYBRAIN_RUN_DIR={own}" in words, words
        assert words[-len(argv) - 2 :] == [*argv, "--prefix", demo.name], words
        # Typed with --prefix (or CITYBRAIN_TOPIC_PREFIX), a prefix was chosen: no hint.
        assert main([*argv, "--prefix", "citybrain"]) == 2
        assert "the last demo's prefix" not in capsys.readouterr().err
