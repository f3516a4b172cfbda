"""Helpers for tests against the real local services, started by citybrain's own stack code."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from citybrain.stack.process import tail
from citybrain.stack.topics import create_topics
from streams.settings import Settings
from tests.stalls import sigstop

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

OPERATOR_TOKEN = "test-operator-token"
COORDINATOR_TOKEN = "test-coordinator-token"
WEBHOOK_SECRET = "test-webhook-secret"
# Seconds a reading consumer may give nothing, the condition unmet, before it is checked
# against the topic's end offsets (Pipeline.read).
STALL_CHECK = 15.0


def write_tokens(path: Path) -> Path:
    from streams.auth import hash_token

    path.write_text(
        "tokens:\n"
        f"  - {{name: duty-operator, role: operator, sha256: '{hash_token(OPERATOR_TOKEN)}'}}\n"
        f"  - {{name: duty-coordinator, role: coordinator, "
        f"sha256: '{hash_token(COORDINATOR_TOKEN)}'}}\n"
    )
    path.chmod(0o600)  # as a tokens file should be (the worker warns of a wider one)
    return path


# Every port sits below Linux's ephemeral range (32768-60999): a broker restarted on an
# ephemeral port can find it taken by some client's outgoing connection.
# Test ports differ from the defaults so a developer's running demo stack is left alone.
# CITYBRAIN_TEST_PORT_OFFSET shifts them all, so two checkouts can test side by side.
# Under pytest-xdist (`make test` spreads the integration and end-to-end files over
# processes) each process starts its own session stack, so each adds 50 per worker index
# (gw0 +0, gw1 +50, gw2 +100, ...): no two processes share a Kafka, Prometheus, Mosquitto,
# Alertmanager, worker or ingest port. 50 is wider than the spread of any base port's
# neighbours (26066-26090, 29090-29098), and no base lies 50·k (k < 4) from another
# (tests/unit/test_xdist_ports.py checks every base the tests shift). The run
# directory is per process already: xdist gives each its own basetemp (popen-gwN), where
# the ``run_dir`` fixture (tests/conftest.py) and every tmp_path live.
XDIST_PORT_STEP = 50


def xdist_index(worker: str | None) -> int:
    """The pytest-xdist worker's index from ``PYTEST_XDIST_WORKER`` (``gw3`` -> 3); 0
    outside xdist (unset, or ``master``)."""
    if not worker or not worker.startswith("gw"):
        return 0
    index = worker[2:]
    if not index.isdigit():
        raise ValueError(f"PYTEST_XDIST_WORKER is {worker!r}, expected gw<number>")
    return int(index)


PORT_OFFSET = int(os.environ.get("CITYBRAIN_TEST_PORT_OFFSET", "0")) + XDIST_PORT_STEP * (
    xdist_index(os.environ.get("PYTEST_XDIST_WORKER"))
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on now: each
    socket held bound until all are picked (one ``free_port()`` after another could be
    given the same port back once the first socket closed: a CI run's Settings refused
    a worker port equal to its Kafka port)."""
    import socket
    from contextlib import ExitStack

    with ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def shifted_port(port: int) -> int:
    """A test port (29092, 26066, ...) shifted by ``CITYBRAIN_TEST_PORT_OFFSET`` and this
    xdist process's share (``PORT_OFFSET``)."""
    return port + PORT_OFFSET


TEST_PORTS = {
    "CITYBRAIN_KAFKA_PORT": str(shifted_port(29092)),
    "CITYBRAIN_KAFKA_CONTROLLER_PORT": str(shifted_port(29093)),
    "CITYBRAIN_PROMETHEUS_PORT": str(shifted_port(29090)),
    "CITYBRAIN_WORKER_PORT": str(shifted_port(26066)),
    "CITYBRAIN_MQTT_PORT": str(shifted_port(21883)),
    "CITYBRAIN_INGEST_HTTP_PORT": str(shifted_port(26080)),
    "CITYBRAIN_INGEST_METRICS_PORT": str(shifted_port(26081)),
}


def start_of_hour(days_back: float) -> float:
    """A past event time ``days_back`` days ago, on the hour (epoch seconds).

    On the hour so a test's events share event-time buckets: with a time taken straight
    from the clock, eight reports 30 s apart straddled a 30-minute burst bucket about one
    run in nine, four reports in each, and no burst alerted.
    """
    return float(int(time.time()) // 3600 * 3600 - int(days_back * 86400))


def stack_settings(run_dir: Path) -> Settings:
    return Settings(
        kafka_port=shifted_port(29092),
        kafka_controller_port=shifted_port(29093),
        prometheus_port=shifted_port(29090),
        worker_port=shifted_port(26066),
        mqtt_port=shifted_port(21883),
        ingest_http_port=shifted_port(26080),
        ingest_metrics_port=shifted_port(26081),
        run_dir_override=run_dir,
        # The test grid, so the stack's cell-location rules name the cells tests use.
        grid_file=FIXTURES / "grid.yaml",
    )


@dataclass
class Pipeline:
    """One test's own topics, consumer group and worker environment."""

    run_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 2  # of every topic and table (CITYBRAIN_PARTITIONS)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            **TEST_PORTS,
            "CITYBRAIN_RUN_DIR": str(self.run_dir),
            "CITYBRAIN_TOPIC_PREFIX": self.name,
            "CITYBRAIN_APP_ID": self.name,
            "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml"),
            # The pipeline's mechanics are tested with robust_zscore and a short warm-up,
            # so a spike a few dozen readings in alerts; the default (tail) detector is
            # tested on real events in tests/e2e and tests/unit/detectors.
            "CITYBRAIN_DETECTOR": "robust_zscore",
            "CITYBRAIN_SCORE_THRESHOLD": "0.6",
            "CITYBRAIN_DETECTOR_WINDOW": "48",
            "CITYBRAIN_DETECTOR_MIN_SAMPLES": "12",
            "CITYBRAIN_QUIET_READINGS": "3",
            # Alerts pass the corroboration stage (labelled) but every one is decisive,
            # so none is held and the mechanics tests' routes stand; the neighbour
            # policy itself is tested in tests/integration/test_corroboration.py.
            "CITYBRAIN_CORROBORATION_AGREE": "0.5",
            "CITYBRAIN_CORROBORATION_DECISIVE": "0.6",
            "CITYBRAIN_API_TOKENS_FILE": str(write_tokens(self.run_dir / "tokens.yaml")),
            "CITYBRAIN_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CITYBRAIN_WEBHOOK_RETRIES": "2",
            "CITYBRAIN_WEBHOOK_BACKOFF": "0.2",
            "CITYBRAIN_WEBHOOK_TIMEOUT": "1",
            "CITYBRAIN_PARTITIONS": str(self.partitions),
            **self.extra_env,
        }
        self.settings = stack_settings(self.run_dir).model_copy(
            update={"topic_prefix": self.name, "app_id": self.name, "partitions": self.partitions}
        )
        create_topics(self.settings)
        self.producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")

    def topic(self, role: str) -> str:
        return self.settings.topic(role)

    def send(self, role: str, key: bytes, value: bytes) -> None:
        self.producer.send(self.topic(role), key=key, value=value)

    def flush(self) -> None:
        self.producer.flush()

    def worker(self) -> Worker:
        return Worker(self.env, self.run_dir / f"{self.name}-worker.log")

    def worker_logs(self, lines: int) -> str:
        """The last ``lines`` lines of every worker log of this pipeline (a test with two
        workers that kills one needs the survivor's log, not only the dead one's)."""
        logs = sorted(self.run_dir.glob(f"{self.name}-worker*.log"))
        if not logs:
            return "(no worker log)"
        return "\n".join(f"worker log ({log.name}):\n{tail(log, lines)}" for log in logs)

    def read(
        self,
        role: str,
        until: Callable[[list[Any]], bool],
        timeout: float = 60.0,
        settle: float = 0.0,
    ) -> list[Any]:
        """All messages on the topic once ``until(messages)`` holds (then ``settle`` more
        seconds, to catch anything that should *not* arrive); fails after ``timeout``
        seconds without a new message (at most four times ``timeout`` in all: a loaded
        machine is slow, a stuck pipeline is silent), saying how many messages the topic
        holds beside how many were read.

        A reading consumer silent for ``STALL_CHECK`` seconds while the topic holds
        records it has not given (kafka-python 3.0.12's consumer was once seen to stop
        fetching after its first record under load, CI 2026-12-07: 1 of 4 records read
        in 60 s) is replaced by a fresh one reading from the start, at most twice, and
        said on stderr: the test then judges the pipeline, not the reader."""
        consumer = self._reader(role)
        messages: list[Any] = []
        cap = time.monotonic() + 4 * timeout
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        rereads = 0
        met_at: float | None = None
        try:
            while True:
                for records in consumer.poll(timeout_ms=200).values():
                    messages.extend(records)
                    deadline = min(cap, time.monotonic() + timeout)
                    quiet_since = time.monotonic()
                now = time.monotonic()
                if met_at is None and until(messages):
                    met_at = now
                if met_at is not None and now - met_at >= settle:
                    return messages
                if now > deadline:
                    raise AssertionError(
                        f"{self.topic(role)}: condition not met in {timeout:.0f}s; "
                        f"{len(messages)} messages read, the topic's end offsets "
                        f"{self.end_offsets(role)}: {[m.value[:120] for m in messages[-5:]]}\n"
                        f"{self.worker_logs(30)}"
                    )
                if met_at is None and rereads < 2 and now - quiet_since > STALL_CHECK:
                    quiet_since = now
                    ends = self.end_offsets(role)
                    read = {m.partition: m.offset + 1 for m in messages}
                    if any(end > read.get(p, 0) for p, end in ends.items()):
                        print(
                            f"{self.topic(role)}: the reading consumer gave {len(messages)} "
                            f"records in {STALL_CHECK:.0f}s of silence while the topic "
                            f"ends at {ends}: reading it again with a fresh consumer",
                            file=sys.stderr,
                        )
                        consumer.close()
                        consumer = self._reader(role)
                        messages = []
                        rereads += 1
        finally:
            consumer.close()

    def _reader(self, role: str) -> KafkaConsumer:
        return KafkaConsumer(
            self.topic(role),
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )

    def end_offsets(self, role: str) -> dict[int, int]:
        """Partition -> end offset (the next offset to be written) of the role's topic,
        asked by a consumer of its own."""
        probe = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None)
        try:
            topic = self.topic(role)
            tps = [
                TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or ())
            ]
            return {tp.partition: end for tp, end in probe.end_offsets(tps).items()}
        finally:
            probe.close()

    def api_until(
        self,
        path: str,
        token: str,
        until: Callable[[int, dict[str, Any]], bool],
        timeout: float = 60.0,
        port: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """GET ``path`` until ``until(status, body)`` holds; the last answer either way.

        The API reads the worker's tables, which are written after the steps that a test
        waits on: a read right after a step can see the state before it."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.api("GET", path, token, port=port)
            # A paged list (GET /runs, /silences: t186) read whole, its pages' items
            # in the first page's list.
            while status == 200 and isinstance(body.get("next"), str):
                status, more = self.api(
                    "GET", body["next"].removeprefix("/api/v1"), token, port=port
                )
                for key, value in more.items():
                    if isinstance(value, list):
                        body[key] = [*body.get(key, []), *value]
                body["next"] = more.get("next") if status == 200 else None
            if until(status, body) or time.monotonic() > deadline:
                return status, body
            time.sleep(0.1)

    def api(
        self,
        method: str,
        path: str,
        token: str | None,
        body: dict[str, Any] | bytes | None = None,
        port: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Call the operator API of the worker on ``port`` (by default this pipeline's
        first worker) with a JSON body (or these bytes) and ``extra_headers``; (status,
        JSON body)."""
        url = f"http://127.0.0.1:{port or self.settings.worker_port}/api/v1{path}"
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = (
            body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        )
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def close(self) -> None:
        self.producer.close()


class Worker:
    """``citybrain worker`` in its own process, so tests can SIGKILL it."""

    def __init__(self, env: dict[str, str], log_file: Path) -> None:
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> Worker:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "citybrain.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{tail(self.log_file, 40)}")
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                if b"Worker ready" in fh.read():
                    return self
            # Every test starts workers (hundreds in the suite): each poll interval is
            # paid half over on average at every start.
            time.sleep(0.1)
        # Not left running: a worker that missed the deadline would keep its port, and
        # every later test's worker would then fail to bind it.
        self.stop()
        raise AssertionError(f"worker not ready in {timeout:.0f}s:\n{tail(self.log_file, 40)}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the worker stays a group member until its session times out."""
        assert self.proc is not None
        sigstop(self.proc.pid)

    def thaw(self) -> None:
        """SIGCONT: a frozen worker wakes, holding what it held when frozen."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def thaw_until_rejoined(self, timeout: float) -> None:
        """``thaw``, then wait until its log says it sought its partitions' committed
        offsets again (it rejoined the group and read back what it took), at most
        ``timeout`` seconds, and 3 s more for its first batches."""
        thawed_at = self.log_file.stat().st_size
        self.thaw()
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            with self.log_file.open("rb") as log:
                log.seek(thawed_at)
                if b"Seek stream partitions to committed offsets" in log.read():
                    break
            time.sleep(0.2)
        time.sleep(3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen worker must see the SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def kill_in_turn(
    workers: Sequence[Worker],
    kills: int,
    rng: random.Random,
    pause: float,
    down: float,
    until: threading.Event | None = None,
) -> int:
    """SIGKILL one of ``workers``, chosen by ``rng``, ``kills`` times: each after 1 to
    ``pause`` seconds, started again after up to ``down`` seconds; stops early once
    ``until`` is set. Returns how many were killed. (The draws' order is the storms'
    seeds' own: a seed replays the same schedule.)"""
    killed = 0
    for _ in range(kills):
        if until is not None and until.is_set():
            break
        time.sleep(rng.uniform(1.0, pause))
        victim = workers[rng.randrange(len(workers))]
        victim.kill()
        killed += 1
        time.sleep(rng.uniform(0.0, down))
        victim.start()
    return killed


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    full = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(full, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scrape_sum(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


class IngestProcess:
    """``citybrain ingest mqtt|http`` in its own process (so tests can SIGKILL it); ready
    once it logged its connection (MQTT) or its address (HTTP)."""

    def __init__(self, env: dict[str, str], log_file: Path, mode: str, *args: str) -> None:
        self.env = env
        self.log_file = log_file
        self.cmd = [sys.executable, "-m", "citybrain.cli", "ingest", mode, *args]
        self.ready_line = b"subscribed to" if mode == "mqtt" else b"HTTP ready"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> IngestProcess:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited:\n{tail(self.log_file, 40)}")
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                if self.ready_line in fh.read():
                    return self
            time.sleep(0.2)
        raise AssertionError(f"ingest not ready in {timeout:.0f}s:\n{tail(self.log_file, 40)}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc is not None else None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")
