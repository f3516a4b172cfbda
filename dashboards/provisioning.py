"""Grafana provisioning: the Prometheus datasource and a file provider for the dashboards."""

from __future__ import annotations

from typing import Any

from dashboards.panels import DATASOURCE_UID
from dashboards.rules import SCRAPE_INTERVAL

FOLDER = "citybrain"
# Where compose mounts dashboards/generated/dashboards inside the Grafana container.
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/citybrain"


def datasources() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "citybrain Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                # Grafana expands environment variables in provisioning files.
                "url": "${CITYBRAIN_PROMETHEUS_URL}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
            }
        ],
    }


def dashboard_providers() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "citybrain",
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_PATH},
            }
        ],
    }
