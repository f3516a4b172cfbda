"""docs/openapi.yaml documents exactly the routes the worker serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_openapi_paths_match_the_registered_views() -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.")
    source = (ROOT / "streams" / "api.py").read_text()
    served = {
        p.replace("{{", "{").replace("}}", "}")
        for p in re.findall(r'@app\.page\(f"\{PREFIX\}([^"]+)"\)', source)
    }
    assert set(spec["paths"]) == served
    methods = {m for path in spec["paths"].values() for m in path}
    assert methods == {"get", "post", "delete"}
