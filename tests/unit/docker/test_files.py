"""docker/ is checked statically (no Docker engine runs here): the files parse, everything
they reference exists, and their ports agree with the settings and each other."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from citybrain.cli import build_parser
from dashboards.provisioning import DASHBOARDS_PATH
from streams.auth import TokenStore
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
    named = set(compose().get("volumes") or {})
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source in named:
                continue
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
    # The ingests' metrics (dead letters, refusals) at the ports their services serve.
    ingest_job = next(j for j in prom["scrape_configs"] if j["job_name"] == "citybrain-ingest")
    metrics_port = str(Settings.model_fields["ingest_metrics_port"].default)
    assert set(ingest_job["static_configs"][0]["targets"]) == {
        f"ingest-mqtt:{env_of('ingest-mqtt').get('CITYBRAIN_INGEST_METRICS_PORT', metrics_port)}",
        f"ingest-http:{env['CITYBRAIN_INGEST_HTTP_PORT']}",
    }
    for service in ("ingest-mqtt", "ingest-http"):
        assert compose()["services"][service]["environment"]["CITYBRAIN_WORKER_BIND"] == "0.0.0.0"
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


# -- third new-user trial, item 5: the deployment does what the README describes -------
CITYBRAIN_SERVICES = ("worker", "replay", "ingest-mqtt", "ingest-http")


def env_of(service: str) -> dict[str, str]:
    env: dict[str, str] = compose()["services"][service]["environment"]
    return env


def published(service: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each port a service publishes."""
    out = []
    for entry in compose()["services"][service].get("ports", []):
        address, host, container = str(entry).split(":")
        out.append((address, int(host), int(container)))
    return out


def test_every_citybrain_service_runs_a_real_command_with_real_settings() -> None:
    services = compose()["services"]
    assert {"mosquitto", "ingest-mqtt", "ingest-http"} <= set(services)
    fields = {f"CITYBRAIN_{name.upper()}" for name in Settings.model_fields}
    for name in CITYBRAIN_SERVICES:
        build_parser().parse_args(services[name]["command"])  # exits on an unknown one
        for key in env_of(name):
            assert key in fields, f"{name} sets {key}, which is not a citybrain setting"
    assert services["ingest-mqtt"]["command"] == ["ingest", "mqtt"]
    assert services["ingest-http"]["command"] == ["ingest", "http"]
    assert services["ingest-mqtt"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_ports_are_published_on_loopback_where_the_cli_looks_by_default() -> None:
    defaults = Settings.model_fields
    for service in compose()["services"]:
        for address, _, _ in published(service):
            assert address == "127.0.0.1", f"{service} publishes beyond this machine"
    # The host CLI's defaults (no CITYBRAIN_* set) reach the containers' ports.
    for service, port_setting, container_setting in (
        ("worker", "worker_port", "CITYBRAIN_WORKER_PORT"),
        ("ingest-http", "ingest_http_port", "CITYBRAIN_INGEST_HTTP_PORT"),
        ("mosquitto", "mqtt_port", "CITYBRAIN_MQTT_PORT"),
    ):
        env = env_of("ingest-mqtt")
        [(_, host, container)] = published(service)
        assert host == defaults[port_setting].default, service
        assert str(container) == env[container_setting], service
    [(_, host, _)] = published("prometheus")
    assert host == defaults["prometheus_port"].default
    listener = re.search(r"^listener (\d+)", (DOCKER / "mosquitto.conf").read_text(), re.M)
    assert (
        listener is not None and listener.group(1) == env_of("ingest-mqtt")["CITYBRAIN_MQTT_PORT"]
    )
    assert env_of("ingest-mqtt")["CITYBRAIN_MQTT_HOST"] == "mosquitto"


def test_the_brokers_packet_limit_is_the_stacks() -> None:
    # A 200 MB publish is refused by the broker in a deployment as on the local stack.
    from citybrain.stack.mosquitto import MAX_PACKET

    limit = re.search(r"^max_packet_size (\d+)$", (DOCKER / "mosquitto.conf").read_text(), re.M)
    assert limit is not None and int(limit.group(1)) == MAX_PACKET


def test_the_tokens_file_is_mounted_and_never_committed() -> None:
    doc = compose()
    secret = doc["secrets"]["citybrain_tokens"]["file"]
    for service in ("worker", "ingest-http"):
        assert doc["services"][service]["secrets"] == ["citybrain_tokens"]
        assert env_of(service)["CITYBRAIN_API_TOKENS_FILE"] == "/run/secrets/citybrain_tokens"
    path = (DOCKER / secret).resolve().relative_to(ROOT).as_posix()
    for ignore in (".gitignore", ".dockerignore"):
        lines = (ROOT / ignore).read_text().splitlines()
        assert path in lines and "docker/*.token" in lines, ignore
    assert "docker-tokens:" in (ROOT / "Makefile").read_text()


def _docker_tokens(directory: Path | str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``make docker-tokens DOCKER_DIR=directory`` with the virtualenv running the tests
    (a worktree without its own .venv would otherwise install one), never reinstalled."""
    venv = Path(sys.prefix)
    target = ("docker-tokens", f"DOCKER_DIR={directory}")
    return subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", *target],
        cwd=ROOT,
        check=check,
        capture_output=True,
        text=True,
    )


def test_make_docker_tokens_writes_tokens_the_worker_accepts(tmp_path: Path) -> None:
    _docker_tokens(tmp_path)
    store = TokenStore.load(tmp_path / "tokens.yaml")
    for role in ("operator", "coordinator", "gateway"):
        secret = tmp_path / f"{role}.token"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        principal = store.authenticate(f"Bearer {secret.read_text().strip()}")
        assert principal is not None and principal.role == role
    # Hashes only, readable by the containers' user.
    assert stat.S_IMODE((tmp_path / "tokens.yaml").stat().st_mode) == 0o644


def test_make_docker_tokens_prints_the_token_file_by_absolute_path(tmp_path: Path) -> None:
    """t51's walk: `export CITYBRAIN_API_TOKEN=$(cat docker/operator.token)`, typed in a new
    shell (in ~), read no file; the file by absolute path works from any directory."""
    relative = os.path.relpath(tmp_path, ROOT)
    done = _docker_tokens(relative)
    line = f"operator API: export CITYBRAIN_API_TOKEN=$(cat {tmp_path}/operator.token)"
    assert line in done.stdout.splitlines()
    for role in ("operator", "coordinator", "gateway"):
        assert (tmp_path / f"{role}.token").read_text().strip() not in (
            tmp_path / "tokens.yaml"
        ).read_text()


def test_make_docker_tokens_takes_a_directory_with_a_space(tmp_path: Path) -> None:
    """t168 (fails on the old code): DOCKER_DIR="…/a b" was sh's "test: unexpected
    operator" and "Syntax error", status 2; the printed line quotes the path."""
    spaced = tmp_path / "a b"
    spaced.mkdir()
    done = _docker_tokens(spaced)
    line = f"operator API: export CITYBRAIN_API_TOKEN=$(cat '{spaced}/operator.token')"
    assert line in done.stdout.splitlines()
    store = TokenStore.load(spaced / "tokens.yaml")
    token = (spaced / "operator.token").read_text().strip()
    assert store.authenticate(f"Bearer {token}") is not None


def test_make_docker_tokens_keeps_tokens_and_tightens_a_readable_one(tmp_path: Path) -> None:
    """t168 (fails on the old code): an operator.token of mode 0644 (copied, or written
    by hand) was kept readable by every user, silently. A second run keeps the tokens, so
    the hashes the deployment has stay valid; a blank file is no token and is replaced."""
    _docker_tokens(tmp_path)
    before = {r: (tmp_path / f"{r}.token").read_text() for r in ("operator", "gateway")}
    (tmp_path / "operator.token").chmod(0o644)
    (tmp_path / "coordinator.token").write_text("  \n")
    done = _docker_tokens(tmp_path)
    assert done.stdout.splitlines()[0] == (
        f"{tmp_path}/operator.token had mode 644 (readable by others): now 600; if others "
        "may have read it, delete it and run make docker-tokens again for a new token"
    )
    for role, text in before.items():
        assert (tmp_path / f"{role}.token").read_text() == text
    for role in ("operator", "coordinator", "gateway"):
        assert stat.S_IMODE((tmp_path / f"{role}.token").stat().st_mode) == 0o600
    store = TokenStore.load(tmp_path / "tokens.yaml")
    coordinator = (tmp_path / "coordinator.token").read_text().strip()
    assert coordinator and store.authenticate(f"Bearer {coordinator}") is not None


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda d: d / "missing",
            "DOCKER_DIR '{d}/missing' is not a directory: create it, or give another",
        ),
        (
            lambda d: (d / "gateway.token").write_text("abc def\n") and d,
            "{d}/gateway.token: the token has byte 0x20 at position 4: a bearer token is",
        ),
        (
            lambda d: (d / "gateway.token").mkdir() or d,
            "{d}/gateway.token is not a file: move it away and run make docker-tokens again",
        ),
    ],
)
def test_make_docker_tokens_names_the_file_it_cannot_use(
    tmp_path: Path, make: Any, said: str
) -> None:
    """t168 (fails on the old code): a missing DOCKER_DIR was sh's "cannot create …
    Directory nonexistent"; a token file that is no token was hash-token's "the token has
    byte 0x20", naming no file, and left tokens.yaml.new behind."""
    directory = make(tmp_path)
    done = _docker_tokens(directory, check=False)
    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"make docker-tokens: {said.format(d=tmp_path)}"), done.stderr
    assert not list(tmp_path.glob("*.new"))


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("path", [".venv", ".git", "test-artifacts", "docker/tokens.yaml"])
def test_the_build_context_leaves_out_the_virtualenv_git_and_secrets(path: str) -> None:
    assert any(fnmatch.fnmatch(path, pattern) for pattern in dockerignore()), path


def test_the_build_context_keeps_everything_the_dockerfile_copies() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    sources = [
        src for line in text.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]
    ]
    for src in sources:
        for pattern in dockerignore():
            assert not fnmatch.fnmatch(src, pattern), f"{pattern} leaves out {src}"


def test_grafana_login_is_set_and_documented() -> None:
    env = compose()["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_USER"] == "admin"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-admin}"
    readme = (ROOT / "README.md").read_text()
    docker = readme[readme.index("## Docker") :]
    assert "GRAFANA_ADMIN_PASSWORD" in docker and "make docker-tokens" in docker


def build_inputs() -> set[str]:
    """Top-level files and folders pyproject.toml's build reads: the readme, the licence
    files (PEP 639), and the packages setuptools finds (with their package data)."""
    import tomllib

    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = doc["project"]
    needed = {"pyproject.toml"}
    readme = project.get("readme")
    if readme:
        needed.add(readme if isinstance(readme, str) else readme["file"])
    for pattern in project.get("license-files", []):
        matches = list(ROOT.glob(pattern))
        assert matches, f"pyproject's license-files {pattern!r} matches no file"
        needed |= {m.relative_to(ROOT).parts[0] for m in matches}
    setuptools = doc.get("tool", {}).get("setuptools", {})
    for pattern in setuptools.get("packages", {}).get("find", {}).get("include", []):
        needed |= {p.name for p in ROOT.glob(pattern.rstrip("*")) if (p / "__init__.py").exists()}
    needed |= set(setuptools.get("package-data", {}))
    return needed


def test_everything_the_build_reads_is_copied_before_the_install() -> None:
    """Trial 9: the Dockerfile copied pyproject.toml and README.md but not the LICENSE
    that pyproject's license-files names: the build needs it, the image must ship it."""
    copied: set[str] = set()
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("RUN ") and "pip install" in line:
            break
        if line.startswith("COPY "):
            copied |= {Path(src).parts[0] for src in line.split()[1:-1]}
    else:
        pytest.fail("the Dockerfile has no pip install step")
    needed = build_inputs()
    assert {"LICENSE", "README.md", "citybrain", "streams"} <= needed
    assert needed <= copied, f"copied only after the install, or never: {needed - copied}"


def test_the_worker_annotates_grafana_is_health_checked_and_restarts() -> None:
    """Trial 9: the worker had no Grafana URL or token (no annotations in the documented
    deployment), no healthcheck and no restart policy while both ingests restart."""
    services = compose()["services"]
    worker = services["worker"]
    port = env_of("worker")["CITYBRAIN_WORKER_PORT"]
    # Grafana by its compose name and container port.
    [(_, _, grafana_port)] = published("grafana")
    assert env_of("worker")["CITYBRAIN_GRAFANA_URL"] == f"http://grafana:{grafana_port}"
    # The token: an env file that may be absent, never committed, never in an image.
    [env_file] = worker["env_file"]
    assert env_file["required"] is False
    path = (DOCKER / env_file["path"]).resolve().relative_to(ROOT).as_posix()
    assert path in (ROOT / ".gitignore").read_text().splitlines()
    assert any(fnmatch.fnmatch(path, pattern) for pattern in dockerignore())
    assert "CITYBRAIN_GRAFANA_TOKEN" not in env_of("worker")
    readme = (ROOT / "README.md").read_text()
    assert path in readme and "CITYBRAIN_GRAFANA_TOKEN=" in readme
    # The healthcheck asks the worker's own /metrics on its port.
    test = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/metrics" in test
    for name in ("worker", "ingest-mqtt", "ingest-http"):
        assert services[name]["restart"] == "unless-stopped", name
