"""How long a worker takes to start, and to come back after a SIGKILL (t103).

    python -m bench.worker_start [--rounds 3] [--out FILE]

Against the local stack (``citybrain stack up``, the ``CITYBRAIN_*`` ports of the shell),
with the committed grid (``datasets/grid.yaml``). Each round has its own topics
(``run_topics``, deleted at its end) and, before any worker starts, forty readings of a
real USGS gauge and a spike eight times the last on its readings topic. Then:

- **start**: a ``citybrain worker`` is started; the clock runs from just before the
  process is spawned to the first reading it counts (``citybrain_readings_total`` on its
  ``/metrics``, asked every 50 ms) and to its first firing alert on ``<prefix>.alerts``;
- **restart**: that worker is SIGKILLed once its alert is on the topic (before its
  periodic offset commit, as ``tests/integration/test_pipeline.py`` does), nine calmer
  readings and a second spike are sent, and a new worker is started: the clock runs from
  just before it is spawned to its first reading counted and to the second firing alert
  on the topic (the first emitted after recovery).

The detector is the integration tests' (``robust_zscore``, a short warm-up) so that a
spike a few dozen readings in alerts; corroboration passes every alert at once. Prints
one line per phase and round, and the medians; ``--out`` merges them into a JSON file
(``worker_start``)."""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
from kafka import KafkaConsumer, KafkaProducer

from bench import count, machine, out_file, run_main, worker_metric
from bench.catchup import worker_env
from citybrain.stack.topics import run_topics
from streams.events import Reading
from streams.settings import REPO_ROOT, load_settings

SENSOR = "usgs-01650800-water_level"
CELL = "md-gauge-01650800"


def levels(n: int) -> list[float]:
    frame = pd.read_csv(REPO_ROOT / "datasets" / "usgs_flood_2019-05.csv.gz")
    return [float(v) for v in frame[frame["sensor_id"] == SENSOR]["value"].head(n)]


class FiringWatch:
    """Stamps (monotonic s) each firing alert that reaches ``topic``, from a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.stamps: list[float] = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                now = time.monotonic()
                for record in records:
                    if json.loads(record.value).get("status") == "firing":
                        self.stamps.append(now)

    def wait(self, count: int, timeout: float = 180.0) -> float:
        deadline = time.monotonic() + timeout
        while len(self.stamps) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"no firing alert number {count} within {timeout:.0f} s")
            time.sleep(0.02)
        return self.stamps[count - 1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``citybrain worker`` in its own process, logging at info (its log is the
    timeline of its start: faust's recovery and the group's rebalance)."""
    with log.open("wb") as out:
        # The log's first line: when the process was spawned, in the log's own format.
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        out.write(f"[{stamp},{int(now % 1 * 1000):03d}] spawned\n".encode())
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "citybrain", "worker", "--loglevel", "info"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def first_reading(port: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> float:
    deadline = time.monotonic() + timeout
    while worker_metric(port, "citybrain_readings_total") < 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker counted no reading (exit status {proc.poll()})")
        time.sleep(0.05)
    return time.monotonic()


def one_round(workdir: Path) -> dict[str, float]:
    run = f"wstart-{uuid.uuid4().hex[:8]}"
    base = load_settings()
    settings = base.model_copy(update={"topic_prefix": run, "app_id": run})
    port = settings.worker_port
    env = worker_env(
        run,
        settings.grid_file,
        port,
        detector="robust_zscore",
        score_threshold="0.6",
        detector_window="48",
        detector_min_samples="12",
        quiet_readings="3",
        corroboration_agree="0.5",
        corroboration_decisive="0.6",
    )
    values = levels(50)
    start = float(int(time.time()) // 3600 * 3600 - 10 * 86400)
    out: dict[str, float] = {}
    with run_topics(settings):
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

        def send(first: int, series: list[float]) -> None:
            for i, value in enumerate(series, start=first):
                r = Reading(start + 300 * i, SENSOR, "water_level", value, "ft", CELL)
                producer.send(settings.topic("readings"), key=SENSOR.encode(), value=r.to_json())
            producer.flush()

        send(0, [*values[:40], values[39] * 8])
        watch = FiringWatch(settings.kafka_bootstrap, settings.topic("alerts"))
        worker: subprocess.Popen[bytes] | None = None
        try:
            t0 = time.monotonic()
            worker = start_worker(env, workdir / f"{run}-1.log")
            out["start_first_reading_s"] = first_reading(port, worker) - t0
            out["start_first_alert_s"] = watch.wait(1) - t0
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            send(41, [*values[41:50], values[49] * 9])
            t0 = time.monotonic()
            worker = start_worker(env, workdir / f"{run}-2.log")
            out["restart_first_reading_s"] = first_reading(port, worker) - t0
            out["restart_first_alert_s"] = watch.wait(2) - t0
        finally:
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            watch.close()
            producer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=count(), default=3)
    parser.add_argument("--out", type=out_file)
    args = parser.parse_args()
    workdir = load_settings().run_dir / "bench-worker-start"
    workdir.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[str, float]] = []
    for i in range(args.rounds):
        rounds.append(one_round(workdir))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in rounds[-1].items()))
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print("median: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))
    if args.out:
        # Merged into the file under its own key, as the other benchmarks' results.
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        merged["worker_start"] = {**machine(), "rounds": rounds, "median": medians}
        args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
