from __future__ import annotations

import json
from typing import Any

import pytest

from playbooks.grid import Grid
from playbooks.loader import load_grid
from tests.services import FIXTURES

T_NOW = 1_790_000_000.0  # 2026-09-21: after every example's observation time


@pytest.fixture(scope="session")
def ingest_grid() -> Grid:
    return load_grid(FIXTURES / "grid-ingest.yaml")


def example(name: str) -> dict[str, Any]:
    """A Smart Data Models example entity (tests/fixtures/ngsi/)."""
    doc: dict[str, Any] = json.loads((FIXTURES / "ngsi" / f"{name}.json").read_text())
    return doc
