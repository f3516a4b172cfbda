"""docker/ is checked statically (no Docker engine runs here): the files parse, everything
they reference exists, and their ports agree with the settings and each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dashboards.provisioning import DASHBOARDS_PATH
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return doc


def test_dockerfile_copies_existing_paths_and_exposes_the_worker_port() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    exposed = re.findall(r"^EXPOSE (\d+)", text, flags=re.M)
    env = compose()["x-citybrain-env"]
    assert exposed == [env["CITYBRAIN_WORKER_PORT"]]


def test_compose_builds_from_the_dockerfile_and_mounts_existing_files() -> None:
    services = compose()["services"]
    assert {"kafka", "worker", "replay", "prometheus", "grafana"} <= set(services)
    for name in ("worker", "replay"):
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DOCKER / source).exists(), f"compose mounts missing {source}"
    grafana_mounts = [v.split(":")[1] for v in services["grafana"]["volumes"]]
    assert DASHBOARDS_PATH in grafana_mounts


def test_replay_files_exist_and_settings_keys_are_real() -> None:
    services = compose()["services"]
    for arg in services["replay"]["command"]:
        if arg.startswith("datasets/"):
            assert (ROOT / arg).exists(), arg
    fields = {f"CITYBRAIN_{name.upper()}" for name in Settings.model_fields}
    for key in compose()["x-citybrain-env"]:
        assert key in fields, f"{key} is not a citybrain setting"


def test_ports_agree_between_compose_prometheus_and_kafka() -> None:
    env = compose()["x-citybrain-env"]
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    worker_job = next(j for j in prom["scrape_configs"] if j["job_name"] == "citybrain-worker")
    assert str(worker_job["dns_sd_configs"][0]["port"]) == env["CITYBRAIN_WORKER_PORT"]
    kafka = compose()["services"]["kafka"]["environment"]
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == (
        f"PLAINTEXT://{env['CITYBRAIN_KAFKA_HOST']}:{env['CITYBRAIN_KAFKA_PORT']}"
    )


def test_dockerfile_env_names_real_settings_and_existing_paths() -> None:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    fields = {f"CITYBRAIN_{name.upper()}" for name in Settings.model_fields}
    pairs = re.findall(r"(CITYBRAIN_[A-Z_]+)=(\S+)", text)
    assert pairs
    for key, value in pairs:
        assert key in fields, f"Dockerfile sets {key}, which is not a citybrain setting"
        if value.startswith("/app/"):
            assert (ROOT / value.removeprefix("/app/")).exists(), value
