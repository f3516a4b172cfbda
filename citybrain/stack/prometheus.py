"""Prometheus from Debian's package, run as a plain process with a generated config."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import yaml

from citybrain.errors import utf8_text
from citybrain.files import replace_text
from citybrain.ports import INGEST_METRICS_PORTS, check_listen
from citybrain.stack.process import (
    StackError,
    debian_binary,
    listed_port,
    other_port,
    other_run_dir,
    read_pid,
    refuse_other_run_dir,
    serving_run_dir,
    spawn,
    stop,
    wait_until,
)
from dashboards.rules import LOCATIONS_FILE, location_rules
from dashboards.yamltext import yaml_text
from streams.settings import REPO_ROOT, Settings

RULES = REPO_ROOT / "dashboards" / "generated" / "prometheus" / "citybrain-rules.yml"


class PrometheusServer:
    def __init__(self, settings: Settings, scrape_interval: str = "2s") -> None:
        self.settings = settings
        self.scrape_interval = scrape_interval
        self.dir = settings.run_dir / "prometheus"
        self.pid_file = self.dir / "prometheus.pid"
        self.log_file = self.dir / "prometheus.log"
        self.config = self.dir / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus_port}"

    def binary(self) -> str:
        return debian_binary("Prometheus", "prometheus", ["prometheus"])

    def scrape_targets(self) -> list[str]:
        # Room for a few workers on consecutive ports (scale-out on one machine).
        base = self.settings.worker_port
        return [f"127.0.0.1:{base + i}" for i in range(4)]

    def ingest_targets(self) -> list[str]:
        """The HTTP ingest (its own port serves /metrics) and MQTT ingests on consecutive
        metrics ports from CITYBRAIN_INGEST_METRICS_PORT, as for workers."""
        base = self.settings.ingest_metrics_port
        return [f"127.0.0.1:{self.settings.ingest_http_port}"] + [
            f"127.0.0.1:{base + i}" for i in range(INGEST_METRICS_PORTS)
        ]

    @property
    def locations(self) -> Path:
        """Rules giving each placed community cell of the grid its position (a Geomap
        joins on them), written from CITYBRAIN_GRID_FILE at every start."""
        return self.dir / LOCATIONS_FILE

    def write_locations(self) -> None:
        # As the worker reads it: a byte that is not UTF-8 is named with its line.
        # As the worker reads it: no alias bomb, ids as written (``0x1F``, not "31").
        from playbooks.loader import load_grid_yaml

        grid = load_grid_yaml(utf8_text(Path(self.settings.grid_file), "CITYBRAIN_GRID_FILE"))
        grid = grid if isinstance(grid, dict) else {}
        self.dir.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: written in place, a full disk left the file Prometheus
        # reads empty (t164, `stack reload`), its map with no cell until the next start.
        replace_text(
            self.locations,
            f"# Written by citybrain's stack from {self.settings.grid_file}; do not edit.\n"
            + yaml_text(location_rules(grid), sort_keys=False, allow_unicode=True),
        )

    def write_config(self) -> None:
        self.write_locations()
        config = {
            "rule_files": [str(RULES), str(self.locations)],
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "citybrain-worker",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": self.scrape_targets()}],
                },
                {
                    "job_name": "citybrain-ingest",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": self.ingest_targets()}],
                },
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.settings.prometheus_port}"]}],
                },
            ],
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def elsewhere(self) -> str:
        """``other_port``'s words when this run directory's server runs on another port
        (its command line names it: no config file does)."""
        pid = read_pid(self.pid_file)
        cmdline = Path(f"/proc/{pid}/cmdline")
        pattern = r"--web\.listen-address=[^:\x00]+:(\d+)"
        started = listed_port(cmdline, pattern) if pid is not None else None
        port = self.settings.prometheus_port
        return other_port("Prometheus", "CITYBRAIN_PROMETHEUS_PORT", started, port)

    def foreign_dir(self) -> Path | None:
        """The other run directory whose Prometheus serves this shell's port while this run
        directory's does not run (``serving_run_dir``), else None."""
        if self.running():
            return None
        return serving_run_dir(self.settings.prometheus_port, self.log_file, self.settings.run_dir)

    def foreign(self) -> str:
        """``other_run_dir``'s words for ``foreign_dir``; "" when there is none."""
        port = self.settings.prometheus_port
        return other_run_dir("Prometheus", port, self.foreign_dir(), self.settings.run_dir)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def check_ports(self) -> None:
        """Raise as ``citybrain.ports.check_listen`` unless running or its ports are free:
        ``stack up`` checks every service's before starting any."""
        if self.running():
            return
        # Another run directory's Prometheus on this port: named, with the command that
        # stops it (t164: "in use (another Prometheus's, or another program's)").
        refuse_other_run_dir(
            "Prometheus", self.settings.prometheus_port, self.foreign_dir(), self.settings.run_dir
        )
        port = self.settings.prometheus_port
        check_listen("127.0.0.1", port, "CITYBRAIN_PROMETHEUS_PORT", "Prometheus")

    def start(self, timeout: float = 30.0) -> None:
        elsewhere = self.elsewhere()
        if elsewhere:
            raise StackError(elsewhere)
        if self.running():
            # Started by another shell, or a start interrupted: "ready" was said of a
            # server still starting, and what came next found none.
            wait_until(
                self.ready,
                timeout,
                "Prometheus",
                self.log_file,
                self.running,
                pid_file=self.pid_file,
            )
            return
        self.check_ports()
        binary = self.binary()
        self.write_config()
        data: Path = self.dir / "data"
        cmd = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=2d",
        ]
        spawn(cmd, self.log_file, self.pid_file)
        wait_until(
            self.ready, timeout, "Prometheus", self.log_file, self.running, pid_file=self.pid_file
        )

    @property
    def shown_log(self) -> Path:
        """The log to point a user at (its whole output)."""
        return self.log_file

    def stop(self) -> bool:
        return stop(self.pid_file)
