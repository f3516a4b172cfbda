"""Scale-out and faults on real services: two workers in one consumer group, a SIGKILL
that moves partitions and table state, a broker restart mid-stream, a stopped Prometheus,
and 100,000 fuzzed malformed events."""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citybrain.adapters import write_synthetic_grid
from citybrain.stack import KafkaBroker, PrometheusServer
from citybrain.stack.topics import create_topics
from streams.events import Reading
from streams.partitioning import key_partition
from streams.settings import load_settings
from tests.integration.test_pipeline import START, docs, firing, real_levels, steps_of
from tests.integration.test_silences import alert as silenced_alert
from tests.services import OPERATOR_TOKEN, Pipeline, scrape_sum, shifted_port

pytestmark = pytest.mark.integration
SENSORS = [f"pump-{i:02d}" for i in range(24)]


def write_grid(path: Path) -> Path:
    return write_synthetic_grid(path, SENSORS, "water_level", "ft", communities=4)


def reading(sensor: str, i: int, value: float) -> bytes:
    cell = f"c{SENSORS.index(sensor) % 4}"
    return Reading(START + 300 * i, sensor, "water_level", value, "ft", cell).to_json()


def warm_then_spike_all(p: Pipeline) -> list[float]:
    """Forty quiet rounds, then a spike on every sensor (round 40); returns the levels."""
    base = real_levels(60)
    for i in range(40):
        send_round(p, i, set(), base)
    send_round(p, 40, set(SENSORS), base)
    p.flush()
    return base


def send_round(p: Pipeline, i: int, spikes: set[str], base: list[float]) -> None:
    for s in SENSORS:
        value = base[i % len(base)] * (9 if s in spikes else 1)
        p.send("readings", s.encode(), reading(s, i, value))


@pytest.fixture
def scaled(stack: PrometheusServer, run_dir: Path, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
        },
    )
    yield p
    p.close()


def test_two_workers_share_partitions_and_a_sigkill_loses_and_duplicates_nothing(
    scaled: Pipeline,
) -> None:
    partitions = {key_partition(s.encode(), 2) for s in SENSORS}
    assert partitions == {0, 1}  # both workers get sensors
    a = scaled.worker().start()
    b_env = {**scaled.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26067))}
    b = type(a)(b_env, scaled.run_dir / f"{scaled.name}-worker-b.log").start()
    try:
        base = real_levels(60)
        for i in range(40):  # warm-up on both workers
            send_round(scaled, i, set(), base)
        first = set(SENSORS[:6]) | set(SENSORS[12:18])
        send_round(scaled, 40, first, base)
        scaled.flush()
        scaled.read("alerts", lambda m: len(firing(m)) >= len(first))
        time.sleep(1)  # let the worker flush its state for that batch
        ready_before = b.log().count("Worker ready")
        a.kill()  # its partitions and their table state move to b
        # Wait for b's rebalance and table recovery before the next spikes, so the test
        # measures the takeover, not a race with the session timeout.
        deadline = time.monotonic() + 90
        while b.log().count("Worker ready") == ready_before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert b.log().count("Worker ready") > ready_before, "b never took over"
        for i in range(41, 45):
            send_round(scaled, i, set(), base)
        second = set(SENSORS[6:12]) | set(SENSORS[18:24])
        send_round(scaled, 45, second, base)
        scaled.flush()
        alerts = scaled.read("alerts", lambda m: len(firing(m)) >= 24, timeout=90, settle=5)
        fired = [d["sensor_id"] for d in firing(alerts)]
        assert sorted(fired) == sorted(first | second)  # each injected spike exactly once
        # b now owns every partition, and it detected the second spikes without warming up.
        assert scrape_sum(shifted_port(26067), "citybrain_sensors_tracked") == len(SENSORS)
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    settings = load_settings(
        kafka_port=shifted_port(23092),
        kafka_controller_port=shifted_port(23093),
        run_dir_override=tmp_path_factory.mktemp("restart"),
    )
    broker = KafkaBroker(settings)
    broker.start()
    yield broker
    broker.stop()


def test_broker_restart_mid_stream_loses_nothing(
    own_broker: KafkaBroker, tmp_path: Path, stack: PrometheusServer
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from tests.services import Worker

    prefix = "restart"
    settings = load_settings(kafka_port=shifted_port(23092), topic_prefix=prefix)
    create_topics(settings)
    env = {
        **__import__("os").environ,
        "CITYBRAIN_KAFKA_PORT": str(shifted_port(23092)),
        "CITYBRAIN_WORKER_PORT": str(shifted_port(26068)),
        "CITYBRAIN_APP_ID": prefix,
        "CITYBRAIN_TOPIC_PREFIX": prefix,
        "CITYBRAIN_RUN_DIR": str(tmp_path),
        "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
        "CITYBRAIN_DETECTOR": "robust_zscore",  # as tests.services.Pipeline: mechanics
        "CITYBRAIN_SCORE_THRESHOLD": "0.6",
        "CITYBRAIN_DETECTOR_WINDOW": "48",
        "CITYBRAIN_DETECTOR_MIN_SAMPLES": "12",
        "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
    }
    worker = Worker(env, tmp_path / "worker.log").start()
    base = real_levels(60)
    sent = 0
    try:
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{shifted_port(23092)}",
            acks="all",
            retries=20,
            reconnect_backoff_max_ms=2000,
        )
        for i in range(30):
            for s in SENSORS:
                producer.send(f"{prefix}.readings", key=s.encode(), value=reading(s, i, base[i]))
                sent += 1
        producer.flush()
        producer.close()
        own_broker.stop()  # SIGTERM, data kept
        # Prometheus stopped too: the worker only serves /metrics, nothing waits on it.
        stack.stop()
        time.sleep(3)
        own_broker.start()
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{shifted_port(23092)}", acks="all")
        for i in range(30, 42):
            for s in SENSORS:
                value = base[i] * (9 if i == 41 else 1)
                producer.send(f"{prefix}.readings", key=s.encode(), value=reading(s, i, value))
                sent += 1
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            f"{prefix}.alerts",
            bootstrap_servers=f"127.0.0.1:{shifted_port(23092)}",
            auto_offset_reset="earliest",
            consumer_timeout_ms=60000,
        )
        alerts: list[dict[str, Any]] = []
        for message in consumer:
            alerts.append(json.loads(message.value))
            if len(firing_docs(alerts)) >= len(SENSORS):
                break
        consumer.close()
        assert sorted(d["sensor_id"] for d in firing_docs(alerts)) == sorted(SENSORS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if scrape_sum(shifted_port(26068), "citybrain_readings_total") >= sent:
                break
            time.sleep(0.5)
        assert scrape_sum(shifted_port(26068), "citybrain_readings_total") == sent  # nothing lost
        assert worker.alive()
    finally:
        worker.stop()
        stack.start()


def firing_docs(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["status"] == "firing"]


def fuzzed(rng: random.Random, base: bytes) -> bytes:
    """A malformed variant of a valid reading: one of the ways real feeds break."""
    doc = json.loads(base)
    choice = rng.randrange(9)
    if choice == 0:
        return base[: rng.randrange(len(base))]  # truncated
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))  # noise
    if choice == 2:
        del doc[rng.choice(sorted(doc))]
    elif choice == 3:
        doc["value"] = rng.choice(["high", None, [1], {"v": 1}, True])
    elif choice == 4:
        return base.replace(b'"value":', b'"value":NaN,"x":')
    elif choice == 5:
        doc["kind"] = rng.choice(["lava", "", 7])
    elif choice == 6:
        doc["grid_cell"] = f"nowhere-{rng.randrange(10**6)}"
    elif choice == 7:
        doc["ts"] = rng.choice(
            ["yesterday", "2026-13-45T99:00:00Z", "1970-01-01T00:00:00Z", "2099-01-01T00:00:00Z"]
        )
    else:
        doc["schema"] = "reading/9"
    return json.dumps(doc).encode()


def test_a_hundred_thousand_fuzzed_events_all_reach_the_dead_letter_topic(
    scaled: Pipeline,
) -> None:
    worker = scaled.worker().start()
    try:
        rng = random.Random(20261127)
        base = reading(SENSORS[0], 0, 1.0)
        n = 100_000
        for _ in range(n):
            scaled.send("readings", SENSORS[rng.randrange(24)].encode(), fuzzed(rng, base))
        scaled.flush()
        # Waits while the count grows (a loaded machine is slow); fails once it stalls.
        count, stalled_at = 0.0, time.monotonic() + 120
        while time.monotonic() < stalled_at:
            now = scrape_sum(shifted_port(26066), "citybrain_dead_letters_total")
            if now >= n:
                break
            if now > count:
                count, stalled_at = now, time.monotonic() + 120
            time.sleep(0.2)  # each second polled waited up to a second past the last one
        assert scrape_sum(shifted_port(26066), "citybrain_dead_letters_total") == n
        assert worker.alive()
        # All of them: a reading's dead letter is keyed by its sensor id, so the
        # partitions of the dead-letter topic hold different mixes of reasons, and the
        # first few thousand read need not show them all.
        dead = scaled.read("deadletter", lambda m: len(m) >= n)
        assert all(dict(m.headers).get("citybrain.error.reason") for m in dead)
        assert len({dict(m.headers)["citybrain.error.reason"] for m in dead}) >= 6
    finally:
        worker.stop()


def run_per_sensor(
    run_dir: Path, tmp_path: Path, ack_deadline: int, partitions: int = 2
) -> Pipeline:
    """A pipeline on the scale-out grid whose routing opens a run per sensor (so runs lie
    on every partition), with ``ack_deadline`` seconds to acknowledge each."""
    routing = tmp_path / "routing.yaml"
    routing.write_text("version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [sensor_id]\n")
    return Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
            "CITYBRAIN_ROUTING_FILE": str(routing),
            "CITYBRAIN_ACK_DEADLINE_SECONDS": str(ack_deadline),
        },
        partitions=partitions,
    )


def test_a_run_moved_to_a_new_worker_is_escalated_once(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """Runs opened on one worker, then a second worker joins and takes half the
    partitions: each run's missed acknowledgement is escalated once, by its owner. The
    first worker used to keep the moved runs in memory (faust's memory store forgets only
    the keys it read from a changelog), and its deadline timer escalated them too."""
    # Long enough for b to start and join before any deadline passes on a loaded
    # machine (30 s was not: a CI run shared with benchmarks took longer to start b).
    deadline = 60
    p = run_per_sensor(run_dir, tmp_path, deadline)
    a = p.worker().start()
    b_env = {**p.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26067))}
    b = type(a)(b_env, p.run_dir / f"{p.name}-worker-b.log")
    try:
        warm_then_spike_all(p)
        steps = p.read("steps", lambda m: len(steps_of(m, "notify")) >= len(SENSORS), settle=2)
        runs = {d["run_id"] for d in steps_of(steps, "run_created")}
        owners = {key_partition(run_id.rsplit(".", 1)[0].encode(), 2) for run_id in runs}
        assert owners == {0, 1}, f"runs {sorted(runs)} all on one partition"
        opened = time.monotonic()
        b.start()  # a rebalance: half of a's partitions, and their runs, move to b
        assert time.monotonic() - opened < deadline - 5, "b joined too late to test"
        # Each run's first deadline passes once; the next rung's deadline is as far again.
        escalated = p.read(
            "steps",
            lambda m: {d["run_id"] for d in steps_of(m, "escalate")} >= runs,
            timeout=deadline + 60,
            settle=deadline / 3,
        )
        per_run = [d["run_id"] for d in steps_of(escalated, "escalate")]
        assert sorted(per_run) == sorted(runs), per_run  # each once: none twice
    finally:
        b.stop()
        a.stop()
        p.close()


def sensor_series(port: int) -> set[str]:
    """The sensor ids with a ``citybrain_sensor_value`` series on the worker at ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        line.split('sensor_id="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("citybrain_sensor_value{")
    }


def test_after_a_second_worker_joins_each_sensor_and_open_alert_is_exported_once(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """A second worker joins a worker with 24 firing alerts and 24 watched sensors: each
    sensor then has its per-sensor series on one worker, the one that reads it, and the
    workers' ``citybrain_alerts_open`` sum to the alerts firing. The first worker used to
    keep the series of the sensors that moved (frozen, a second series each), and both
    workers counted every firing alert (``firing`` is a global table), so the city
    overview's ``sum(citybrain_alerts_open)`` showed each alert twice."""
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
            "CITYBRAIN_WATCH_SENSORS": ",".join(SENSORS),
        },
    )
    a = p.worker().start()
    port_a, port_b = shifted_port(26066), shifted_port(26067)
    b_env = {**p.env, "CITYBRAIN_WORKER_PORT": str(port_b)}
    b = type(a)(b_env, p.run_dir / f"{p.name}-worker-b.log")
    try:
        base = warm_then_spike_all(p)
        alerts = p.read("alerts", lambda m: len(firing(m)) >= len(SENSORS))
        ids = {d["alert_id"] for d in firing(alerts)}
        assert {key_partition(i.encode(), 2) for i in ids} == {0, 1}  # both workers count
        b.start()  # a rebalance: half of a's partitions move to b
        i, give_up = 41, time.monotonic() + 120
        while time.monotonic() < give_up:  # readings for both until the split shows
            send_round(p, i, set(), base)
            p.flush()
            i += 1
            time.sleep(1)
            on_a, on_b = sensor_series(port_a), sensor_series(port_b)
            open_a = scrape_sum(port_a, "citybrain_alerts_open")
            open_b = scrape_sum(port_b, "citybrain_alerts_open")
            split = on_b and on_a | on_b == set(SENSORS) and not on_a & on_b
            if split and open_b and open_a + open_b == len(ids):
                break
        assert on_b, "b exported no sensor: it never took partitions"
        assert on_a | on_b == set(SENSORS)
        assert not on_a & on_b, f"sensors with a series on both workers: {sorted(on_a & on_b)}"
        assert (open_a, open_b) != (0, 0)
        assert open_a + open_b == len(ids), (open_a, open_b)
        # Every worker holds every firing alert (inhibition reads them all), not only
        # those of its partitions: b lists the 24 alerts a routed before it joined.
        _, listed = p.api_until(
            "/alerts",
            OPERATOR_TOKEN,
            lambda status, body: len(body.get("firing", [])) >= len(ids),
            timeout=30,
            port=port_b,
        )
        held = {d["alert_id"] for d in listed["firing"]}
        assert held == ids, f"b holds {len(held & ids)} of the {len(ids)} firing alerts"
    finally:
        b.stop()
        a.stop()
        p.close()


def test_a_silence_stored_through_one_worker_silences_the_alerts_of_both(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """Two workers; a silence is created through the first one's API: the second lists it
    and the alerts it routes are silenced too. ``firing`` and ``silences`` were meant to
    be global tables, but faust marks a table global by its arguments, not by its class:
    each worker held only its own partitions of them (and what it wrote itself), so the
    second worker never saw the silence and opened runs for silenced alerts (and
    inhibition saw only the firing alerts of a worker's own partitions)."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    a = p.worker().start()
    port_b = shifted_port(26067)
    b = type(a)({**p.env, "CITYBRAIN_WORKER_PORT": str(port_b)}, p.run_dir / f"{p.name}-b.log")
    try:
        b.start()
        # Both workers own an alerts partition once b is ready (a rebalance, then b's
        # table recovery): b's /silences answers only then.
        body = {"matchers": ['category="Noise"'], "duration": "1h", "reason": "block party"}
        status, created = p.api("POST", "/silences", OPERATOR_TOKEN, body)
        assert status == 201, created
        silence_id = created["silence"]["id"]
        _, listed = p.api_until(
            "/silences",
            OPERATOR_TOKEN,
            lambda status, body: silence_id in {s["id"] for s in body.get("silences", [])},
            timeout=30,
            port=port_b,
        )
        seen_by_b = silence_id in {s["id"] for s in listed.get("silences", [])}
        ids = [f"al-party-{i}" for i in range(8)]
        assert {key_partition(i.encode(), 2) for i in ids} == {0, 1}  # both workers route
        for alert_id in ids:
            p.send("alerts", alert_id.encode(), silenced_alert(alert_id, category="Noise"))
        p.flush()

        silenced: set[str] = set()
        opened: set[str] = set()
        give_up = time.monotonic() + 60
        while silenced | opened < set(ids) and time.monotonic() < give_up:
            # Each alert is either silenced (audited) or opens a run (a step).
            audit = p.read("audit", lambda m: True, settle=1)
            silenced = {d["alert_id"] for d in docs(audit) if d["action"] == "alert_silenced"}
            steps = p.read("steps", lambda m: True, settle=1)
            opened = {
                m.key.decode() for m in steps if json.loads(m.value)["action"] == "run_created"
            }
        assert not opened, (
            f"runs opened for silenced alerts {sorted(opened)} (b lists it: {seen_by_b})"
        )
        assert silenced == set(ids)
    finally:
        b.stop()
        a.stop()
        p.close()


class Hooks:
    """A webhook receiver on its own port: records each request's ``delivery``; holds
    the first one unanswered (the call in flight when its worker dies), answers the
    others 200."""

    def __init__(self, port: int) -> None:
        self.deliveries: list[str] = []
        self.release = threading.Event()
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.deliveries.append(json.loads(body)["delivery"])
                if len(hooks.deliveries) == 1:
                    hooks.release.wait(120)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_webhook_call_in_flight_when_its_worker_is_killed_is_made_again(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """A run's webhook call is in flight (its receiver has not answered) when the worker
    is SIGKILLed: the restarted worker, which recovers the run waiting for that call's
    outcome, makes it again under the same delivery id, and the run goes on. The call
    and its retries lived only in the dead worker's memory: nobody made it again, and
    the run waited for the step's deadline and took its timeout path."""
    port = shifted_port(26090)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "hook.yaml").write_text(
        "playbook: hook\nversion: 1\ndescription: one webhook\ndepartment: test\nsla: 6h\n"
        "steps:\n"
        f"  - {{id: call, action: webhook, url: 'http://127.0.0.1:{port}/hook', deadline: 10m}}\n"
        "  - {id: done, action: annotate, text: called}\n"
    )
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroute:\n  playbook: hook\n  group_by: [sensor_id]\n  group_wait: 0s\n"
    )
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_PLAYBOOK_DIR": str(playbooks),
            "CITYBRAIN_ROUTING_FILE": str(routing),
            "CITYBRAIN_WEBHOOK_TIMEOUT": "60",
        },
    )
    hooks = Hooks(port)
    worker = p.worker().start()
    try:
        base = real_levels(40)
        for i, value in enumerate([*base, base[-1] * 8]):
            p.send(
                "readings",
                b"gauge-1",
                Reading(
                    START + 300 * i, "gauge-1", "water_level", value, "ft", "c-bridge"
                ).to_json(),
            )
        p.flush()
        p.read("steps", lambda m: bool(steps_of(m, "webhook")))
        give_up = time.monotonic() + 30
        while not hooks.deliveries and time.monotonic() < give_up:
            time.sleep(0.2)
        assert hooks.deliveries, "the webhook was never called"
        time.sleep(3)  # the run's state (waiting for the call) reaches its changelog
        worker.kill()
        worker.start()
        steps = p.read("steps", lambda m: bool(steps_of(m, "action_ok")), timeout=60)
        [call] = steps_of(steps, "webhook")
        assert hooks.deliveries[1:] == [call["id"]], hooks.deliveries
        assert len(steps_of(steps, "action_ok")) == 1
    finally:
        worker.stop()
        hooks.close()
        p.close()
