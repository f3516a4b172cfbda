"""The README's gateway examples work typed in order (trial 3): its mosquitto_pub lines
give readings the worker takes (the second was dead-lettered out_of_order, its fixed past
time after the first's "now"), its curl line is accepted by the HTTP ingest, and its Orion
subscription sends the token (``httpCustom``, not ``http`` beside it)."""

from __future__ import annotations

import json
import re
import subprocess
import threading

import pytest

from citybrain.ingest.http import IngestHttpServer
from citybrain.ingest.ngsi import NgsiMapping
from detectors import RobustZScore, ScoreThreshold
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.auth import TokenStore, hash_token
from streams.detection import Incoming, SensorDetection
from streams.events import EventValidator
from streams.settings import REPO_ROOT, Settings
from tests.unit.citybrain.ingest.test_server import Kafka, mqtt_ingest

README = (REPO_ROOT / "README.md").read_text()
GATEWAY = "readme-gateway-token"


@pytest.fixture(scope="module")
def city() -> Grid:
    return load_grid(Settings.model_fields["grid_file"].default)


def sh_commands(tool: str) -> list[str]:
    """The README's ``sh`` commands starting with ``tool``, continuation lines joined."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        joined = re.sub(r"\\[ \t]*\n", " ", block)
        found += [line for line in joined.splitlines() if line.startswith(tool + " ")]
    assert found, f"the README has no {tool} line"
    return found


def test_the_mosquitto_pub_lines_typed_in_order_give_readings_the_worker_takes(
    city: Grid,
) -> None:
    # A shell function in mosquitto_pub's place prints what it would publish: the shell
    # expands each line exactly as a user's would.
    stub = 'mosquitto_pub() { while [ $# -gt 0 ]; do case $1 in -t|-m) printf "%s\\0" "$2"; shift;; esac; shift; done; }'
    out = subprocess.run(
        ["bash", "-c", "\n".join([stub, *sh_commands("mosquitto_pub")])],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")[:-1]
    messages = list(zip(out[::2], out[1::2], strict=True))
    assert len(messages) == 2
    kafka = Kafka()
    ingest = mqtt_ingest(city, kafka)
    for topic, payload in messages:
        ingest.handle(topic.decode(), payload, lambda: None)
    assert kafka.dead == [] and len(kafka.readings) == 2
    detection = SensorDetection(RobustZScore(window=48, min_samples=4), ScoreThreshold(0.6), 3)
    incoming = [Incoming(r, 0.0, offset=i) for i, r in enumerate(kafka.readings)]
    assert detection.process(incoming, {}).rejected == []


def test_the_curl_line_is_accepted_by_the_http_ingest(city: Grid) -> None:
    [curl] = sh_commands("curl")
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(city),
        NgsiMapping(city),
        Kafka(),  # type: ignore[arg-type]
        TokenStore([(hash_token(GATEWAY), "gateway", "gateway")]),
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = {
            "PATH": "/usr/bin:/bin",
            "GATEWAY_TOKEN": GATEWAY,
            "CITYBRAIN_INGEST_HTTP_PORT": str(srv.server_address[1]),
        }
        done = subprocess.run(
            ["bash", "-c", curl], capture_output=True, check=True, env=env, timeout=30
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert json.loads(done.stdout) == {"accepted": 1}


def test_the_orion_subscription_sends_the_token_to_the_ngsi_path() -> None:
    [block] = [b for b in re.findall(r"```json\n(.*?)```", README, re.S) if "httpCustom" in b]
    notification = json.loads(block)["notification"]
    assert "http" not in notification  # an alternative to httpCustom, not a companion
    custom = notification["httpCustom"]
    assert custom["url"].endswith("/ingest/v1/ngsi")
    assert custom["headers"]["Authorization"].startswith("Bearer ")
    assert notification["attrsFormat"] == "normalized"
