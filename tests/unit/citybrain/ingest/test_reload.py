"""SIGHUP in the ingests (citybrain/ingest/service.py: ``hup_mqtt``, ``hup_http``): the
grid read again, all or none. Before, either ingest read its grid at start only: a sensor
added to the grid (and to the worker's, by its own SIGHUP) was dead-lettered by the ingest
as unknown until the ingest was restarted, and a sensor removed was still taken."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.ingest.http import IngestHttpServer
from citybrain.ingest.mapping import MqttMapping
from citybrain.ingest.mqtt import MqttIngest
from citybrain.ingest.ngsi import NgsiMapping
from citybrain.ingest.service import hup_http, hup_mqtt
from playbooks.loader import load_grid
from streams.auth import TokenStore, hash_token
from streams.events import EventValidator
from streams.settings import Settings
from tests.services import FIXTURES
from tests.unit.citybrain.ingest.conftest import T_NOW
from tests.unit.citybrain.ingest.test_http import GOOD
from tests.unit.citybrain.ingest.test_server import Kafka

NEW_SENSOR = "  - {id: gauge-9, kind: water_level, unit: ft, cell: c-mill}\n"
GATEWAY = "gw-reload-secret"


def grid_file(tmp_path: Path, extra: str = "") -> Path:
    """The ingest tests' grid, with ``extra`` sensor lines added at its end."""
    path = tmp_path / "grid.yaml"
    base = (FIXTURES / "grid-ingest.yaml").read_text()
    path.write_text(base.rstrip("\n") + "\n" + extra)
    return path


def tokens_file(tmp_path: Path, token: str, role: str = "gateway") -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: gw, role: {role}, sha256: '{hash_token(token)}'}}\n")
    path.chmod(0o600)
    return path


def test_an_mqtt_ingest_takes_a_sensor_added_to_the_grid_at_sighup_and_keeps_a_broken_one_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = grid_file(tmp_path)
    settings = Settings(grid_file=path, grid_cache_dir=tmp_path / "cache")
    grid = load_grid(path)
    kafka = Kafka()
    ingest = MqttIngest(
        "127.0.0.1",
        1,
        MqttMapping.build(grid),
        EventValidator(grid),
        kafka,  # type: ignore[arg-type]
        clock=lambda: T_NOW,
    )
    topic = "city/c-mill/gauge-9/water_level"

    def send() -> None:
        ingest.handle(topic, b'{"value": 2.5, "ts": 1789999000}', lambda: None)

    send()
    assert (len(kafka.readings), len(kafka.dead)) == (0, 1)  # unknown to the start's grid
    path.write_text(path.read_text() + NEW_SENSOR)
    with caplog.at_level(logging.INFO, "citybrain.ingest"):
        assert hup_mqtt(ingest, settings)
    said = caplog.text
    assert f"ingest: SIGHUP: the grid from {path} in force" in said, said
    assert "sensors 1 added, 0 removed" in said, said
    send()
    assert [r.sensor_id for r in kafka.readings] == ["gauge-9"]
    assert ingest.mapping.grid is ingest.validator.grid  # one grid, both parts
    assert ingest.mapping.subscriptions == MqttMapping.build(grid).subscriptions

    # A grid with an error: nothing reloaded, the running grid kept and named.
    path.write_text(
        path.read_text() + "  - {id: gauge-10, kind: water_level, unit: ft, cell: nowhere}\n"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, "citybrain.ingest"):
        assert not hup_mqtt(ingest, settings)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, caplog.text
    assert (
        errors[0]
        .getMessage()
        .startswith("ingest: SIGHUP: nothing reloaded, the running grid is kept: ")
    ), errors[0].getMessage()
    assert str(path) in errors[0].getMessage() and "nowhere" in errors[0].getMessage()
    send()
    assert [r.sensor_id for r in kafka.readings] == ["gauge-9", "gauge-9"]


@pytest.fixture
def http_ingest(tmp_path: Path) -> Iterator[tuple[IngestHttpServer, Kafka]]:
    grid = load_grid(grid_file(tmp_path))
    kafka = Kafka()
    srv = IngestHttpServer(
        ("127.0.0.1", 0),
        EventValidator(grid),
        NgsiMapping(grid, "{id}:{kind}"),
        kafka,  # type: ignore[arg-type]
        TokenStore.load(tokens_file(tmp_path, GATEWAY)),
        clock=lambda: T_NOW,
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, kafka
    srv.shutdown()
    srv.server_close()


def post(srv: IngestHttpServer, reading: dict[str, object], token: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{srv.server_address[1]}/ingest/v1/readings",
        data=json.dumps([reading]).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_an_http_ingest_reloads_its_grid_and_tokens_together_or_neither(
    http_ingest: tuple[IngestHttpServer, Kafka], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv, kafka = http_ingest
    path = tmp_path / "grid.yaml"
    settings = Settings(
        grid_file=path,
        grid_cache_dir=tmp_path / "cache",
        api_tokens_file=tmp_path / "tokens.yaml",
    )
    new = {**GOOD, "sensor_id": "gauge-9", "grid_cell": "c-mill"}
    status, answer = post(srv, new, GATEWAY)
    assert status == 400 and "gauge-9" in answer, answer

    # Both files changed, one with an error: neither is taken (the old token still works,
    # the new sensor is still refused), one ERROR line.
    path.write_text(path.read_text() + NEW_SENSOR)
    tokens_file(tmp_path, "rotated-token", role="gateways")
    with caplog.at_level(logging.INFO, "citybrain.ingest"):
        assert not hup_http(srv, settings)
    assert "nothing reloaded, the running grid and tokens are kept: " in caplog.text
    assert post(srv, GOOD, GATEWAY)[0] == 200
    assert post(srv, new, GATEWAY)[0] == 400

    tokens_file(tmp_path, "rotated-token")
    caplog.clear()
    with caplog.at_level(logging.INFO, "citybrain.ingest"):
        assert hup_http(srv, settings)
    assert "sensors 1 added, 0 removed" in caplog.text, caplog.text
    assert post(srv, new, GATEWAY)[0] == 401  # the old token revoked
    assert post(srv, new, "rotated-token")[0] == 200
    assert [r.sensor_id for r in kafka.readings] == ["gauge-1", "gauge-9"]
    assert srv.ngsi.template == "{id}:{kind}" and srv.ngsi.grid is srv.validator.grid
    for secret in (GATEWAY, "rotated-token"):
        assert secret not in caplog.text and hash_token(secret) not in caplog.text
