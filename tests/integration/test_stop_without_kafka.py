"""Stopping while Kafka is down (trial 3, item 4): the HTTP ingest and the worker end on
SIGTERM within their grace period, or at once on a second signal, each saying what it
waited for and what it dropped; the ingest counts the readings Kafka never acknowledged
and leaves no kafka-python traceback behind."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer
from streams.events import format_ts
from tests.integration.test_ingest import (
    GATEWAY_TOKEN,
    TOPIC,
    http_ingest,
    mosquitto_pub,
    mqtt_ingest,
    pipeline_for_ingest,
)
from tests.services import Pipeline, stack_settings, start_of_hour

pytestmark = pytest.mark.integration


def wait_for(log: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {log}"
        time.sleep(0.2)


def test_the_ingest_and_worker_stop_without_kafka_and_say_what_was_lost(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = pipeline_for_ingest(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    ingest = http_ingest(p, "--stats-every", "0.2").start()
    worker = p.worker().start()
    answers: list[int] = []

    try:
        assert kafka.stop()
        sender = threading.Thread(target=post_reading, args=(p, answers))
        sender.start()
        wait_for(ingest.log_file, " pending=1 ")  # the reading waits for Kafka
        assert ingest.proc is not None and worker.proc is not None
        ingest.proc.send_signal(signal.SIGTERM)
        worker.proc.send_signal(signal.SIGTERM)
        # Bounds far above the grace periods (5 s, 10 s): they catch a hang, not speed.
        ingest.proc.wait(120)
        worker.proc.wait(120)
        sender.join(120)

        log = ingest.log()
        assert ingest.proc.returncode == 3, log
        assert "waiting up to 5s for Kafka to acknowledge 1 message" in log
        assert "1 message NOT delivered" in log
        assert "Exception ignored" not in log and "Traceback" not in log
        assert answers and answers[0] != 200  # the sender was never told "delivered"

        wlog = worker.log()
        stopping = "citybrain: stopping: committing offsets and flushing to Kafka"
        assert stopping in wlog
        assert "Traceback" not in wlog.split(stopping, 1)[1], wlog
        assert worker.proc.returncode in (0, 130), wlog
    finally:
        for proc in (ingest.proc, worker.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if not kafka.running():
            kafka.start()
        p.close()


def test_a_second_signal_stops_the_ingest_at_once(stack: PrometheusServer, run_dir: Path) -> None:
    p = pipeline_for_ingest(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    ingest = http_ingest(p, "--stats-every", "0.2").start()
    try:
        assert kafka.stop()
        threading.Thread(target=post_reading, args=(p, []), daemon=True).start()
        wait_for(ingest.log_file, " pending=1 ")
        assert ingest.proc is not None
        ingest.proc.send_signal(signal.SIGTERM)
        wait_for(ingest.log_file, "SIGTERM or Ctrl-C again: stop now")
        ingest.proc.send_signal(signal.SIGINT)
        ingest.proc.wait(120)
        assert ingest.proc.returncode == 3
        assert "1 message NOT delivered" in ingest.log()
        assert "Traceback" not in ingest.log()
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
        if not kafka.running():
            kafka.start()
        p.close()


def test_the_mqtt_ingest_stops_without_kafka_leaving_the_message_to_the_broker(
    mosquitto: MosquittoBroker, run_dir: Path
) -> None:
    p = pipeline_for_ingest(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    ingest = mqtt_ingest(p).start()
    try:
        assert kafka.stop()
        payload = json.dumps({"value": 2.1, "ts": start_of_hour(1)})
        mosquitto_pub(p.settings.mqtt_port, TOPIC, [payload])
        wait_for(ingest.log_file, " pending=1 ")
        assert ingest.stop() == 3
        log = ingest.log()
        assert "1 message NOT delivered" in log
        assert "the MQTT broker delivers it again to the next ingest" in log
        assert "Exception ignored" not in log and "Traceback" not in log
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
        if not kafka.running():
            kafka.start()
        p.close()


def post_reading(p: Pipeline, answers: list[int]) -> None:
    """POST one valid reading; its HTTP status goes to ``answers`` (0: no answer)."""
    reading = {
        "ts": format_ts(start_of_hour(1)),
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "value": 2.1,
        "unit": "ft",
        "grid_cell": "c-bridge",
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{p.settings.ingest_http_port}/ingest/v1/readings",
        data=json.dumps([reading]).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {GATEWAY_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            answers.append(resp.status)
    except urllib.error.HTTPError as exc:
        answers.append(exc.code)
    except OSError:
        answers.append(0)  # the connection closed: no answer, the sender retries
