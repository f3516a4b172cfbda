"""`stack restart-worker` of a demo started with a port setting (t40: the demo ran with
CITYBRAIN_KAFKA_CONTROLLER_PORT=…, and restart-worker's lines dropped it): typed in a
fresh shell with only the run directory, it starts the demo's worker on the real Kafka,
and every command it then prints carries the demo's recorded setting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from citybrain.demo import DemoFiles
from citybrain.stack import PrometheusServer
from citybrain.stack.process import stop
from tests.services import FIXTURES, free_port, stack_settings


def test_restart_worker_prints_commands_with_the_demos_settings(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    settings = stack_settings(run_dir)
    files = DemoFiles(tmp_path / "demo")
    files.dir.mkdir()
    prefix = f"t40-{uuid.uuid4().hex[:8]}"
    port = free_port()
    controller = f"CITYBRAIN_KAFKA_CONTROLLER_PORT={settings.kafka_controller_port}"
    recorded = {
        "CITYBRAIN_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "CITYBRAIN_KAFKA_PORT": str(settings.kafka_port),
    }
    files.state.write_text(
        json.dumps(
            {
                "topic_prefix": prefix,
                "worker_url": f"http://127.0.0.1:{port}",
                "worker_log": str(files.log),
                "settings": recorded,
                "worker_settings": {
                    **recorded,
                    "CITYBRAIN_KAFKA_HOST": "127.0.0.1",
                    "CITYBRAIN_WORKER_PORT": str(port),
                    "CITYBRAIN_RUN_DIR": str(tmp_path),
                    "CITYBRAIN_TOPIC_PREFIX": prefix,
                    "CITYBRAIN_APP_ID": prefix,
                    "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml"),
                },
            }
        )
    )
    # A fresh shell: no CITYBRAIN_* setting but the run directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env["CITYBRAIN_RUN_DIR"] = str(tmp_path)
    cli = [sys.executable, "-m", "citybrain.cli"]
    try:
        done = subprocess.run(
            [*cli, "stack", "restart-worker"], env=env, capture_output=True, text=True, timeout=150
        )
        assert done.returncode == 0, done.stderr
        printed = re.findall(r"`([^`]+)`", done.stdout)
        assert printed and all(controller in line for line in printed), done.stdout
        assert any(line.endswith("stack down") for line in printed)
    finally:
        stop(files.pid)  # this test's worker only: `stack down` would stop the shared stack
