"""`stack status` says the demo's worker's consumer lag (t189).

A night operator told to check the consumer lag had, from the docs, only Kafka's Java
ConsumerGroupCommand with ``--group citybrain``: a demo's group is its app id, its topic
prefix, so it answered "Group citybrain not found" with a Java stack trace."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli.stack import consumer_lag_said, demo_worker_lines
from citybrain.demo import DemoFiles
from tests.unit.citybrain.test_demo_worker import _demo

METRICS = """\
# HELP citybrain_consumer_lag Messages behind the end of each consumed topic.
# TYPE citybrain_consumer_lag gauge
citybrain_consumer_lag{topic="demo-1.readings"} %s
citybrain_consumer_lag{topic="demo-1.incidents"} %s
citybrain_consumer_lag{topic="demo-1.commands"} 0.0
"""


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    """A stand-in worker's /metrics: the text of ``body[0]``, its URL."""
    body = [METRICS % ("0.0", "0.0")]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body[0].encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", body
    finally:
        server.shutdown()
        server.server_close()


def test_the_lag_is_said_caught_up_or_per_topic_most_first(
    served: tuple[str, list[str]],
) -> None:
    url, body = served
    assert consumer_lag_said(url) == "consumer lag 0 messages: caught up on the 3 topics it reads"
    body[0] = METRICS % ("12345.0", "34.0")
    assert consumer_lag_said(url) == (
        "consumer lag 12,379 messages behind (demo-1.readings 12,345, demo-1.incidents 34)"
    )
    # Not measured yet (a worker starting), or no worker: nothing said.
    body[0] = "# nothing yet\n"
    assert consumer_lag_said(url) is None
    assert consumer_lag_said("http://127.0.0.1:1") is None


def test_stack_status_shows_the_running_demo_workers_lag(
    tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    """Fails on the old code: no lag line (and no consumer_lag_said)."""
    url, body = served
    body[0] = METRICS % ("7.0", "0.0")
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        settings = _demo(tmp_path, worker.pid)
        state = DemoFiles.of(settings).state
        doc = json.loads(state.read_text())
        state.write_text(json.dumps({**doc, "worker_url": url}))
        lines = demo_worker_lines(settings)
        at = next(i for i, ln in enumerate(lines) if ln.startswith("demo worker"))
        assert lines[at].split()[2] == "running"
        assert lines[at + 1].split() == [
            "consumer",
            "lag",
            "7",
            "messages",
            "behind",
            "(demo-1.readings",
            "7)",
        ]
    finally:
        worker.kill()
        worker.wait()
