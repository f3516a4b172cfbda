"""Shared fixtures. The stack (real Kafka, Prometheus, Mosquitto) starts once per session, only
when an integration or e2e test asks for it, through citybrain's own stack code."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer
from playbooks.grid import Grid
from playbooks.loader import load_grid
from tests.services import FIXTURES, Pipeline, stack_settings

# CI (`.ci/run` sets CI=true) replays the same examples every run, so a red CI is about
# the change under test; local runs keep exploring new ones, and a falsifying example
# they find becomes an @example in the test (tests/unit/detectors/test_contract.py).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Tests Ctrl-C their commands (SIGINT to a demo, a replay, a bench run). A suite started
# from a background job of a non-interactive shell (`(make test &)`) inherits SIGINT
# ignored, and so did every command it started: none stopped, and three tests failed as
# if Ctrl-C were broken (thirty-fifth session's fresh-clone run). Its children get the
# default, as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# pytest-xdist's worker processes have COLUMNS=80 and LINES=24 in their environment, which
# a serial run has not, and every command a test starts inherits them: `citybrain runs
# list` into a pipe fitted its table to 80 columns instead of printing every column
# (tests/e2e/test_demo.py under `make test`'s three processes). The tests' commands write
# to pipes, as in a serial run; a test that wants a width sets COLUMNS itself.
for name in ("COLUMNS", "LINES"):
    os.environ.pop(name, None)

# The longest files first (seconds each under `make test`'s three processes, t145's run at
# load 8-13): --dist loadfile hands a process its next file when it is nearly done, so
# with these first the last files handed out are short ones. In collection order (xdist's
# own reorder, by count of tests, is turned off in the Makefile) the storms and the
# scale-out, 3-7 tests and ~10 min each, came last, and one process ran on alone.
SLOWEST_FIRST = (
    "tests/integration/test_report_storm.py",  # 667
    "tests/integration/test_chaos_storm.py",  # 594
    "tests/integration/test_scale_out.py",  # 531
    "tests/integration/test_ingest.py",  # 364
    "tests/integration/test_batch_drain.py",  # 364
    "tests/integration/test_poison_pills.py",  # 307
    "tests/integration/test_unreadable_batches.py",  # 248
    "tests/integration/test_replies.py",  # 240
    "tests/integration/test_config_reload.py",  # 228
    "tests/integration/test_stop_without_kafka.py",  # 195
    "tests/integration/test_response.py",  # 170
    "tests/integration/test_alertmanager_server.py",  # 168
    "tests/integration/test_pipeline.py",  # 163
    "tests/e2e/test_demo_lifecycle.py",  # 160
    "tests/integration/test_field_producers.py",  # 155
    "tests/integration/test_unreadable_records_cli.py",  # 137
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``SLOWEST_FIRST`` first, in its order; every other test after them in
    collection order (a stable sort: a file's tests keep their order)."""
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def grid() -> Grid:
    return load_grid(FIXTURES / "grid.yaml")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("citybrain-run")


@pytest.fixture(scope="session")
def stack(run_dir: Path) -> Iterator[PrometheusServer]:
    settings = stack_settings(run_dir)
    kafka, prom = KafkaBroker(settings), PrometheusServer(settings, scrape_interval="1s")
    kafka.start()
    prom.start()
    yield prom
    prom.stop()
    kafka.stop()


@pytest.fixture
def pipeline(stack: PrometheusServer, run_dir: Path) -> Iterator[Pipeline]:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "3"})
    yield p
    p.close()


@pytest.fixture(scope="session")
def mosquitto(stack: PrometheusServer, run_dir: Path) -> Iterator[MosquittoBroker]:
    """The MQTT broker, started by citybrain's own stack code (with Kafka, for the ingest)."""
    broker = MosquittoBroker(stack_settings(run_dir))
    broker.start()
    yield broker
    broker.stop()
