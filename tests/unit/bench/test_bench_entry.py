"""The benchmarks start their workers and ingests the way the demo does, ``python -m
citybrain`` (``citybrain.launch``'s start-up signal guard, t173), not ``-m citybrain.cli``,
which imports the whole command line before any handler is in: a SIGTERM in that second
killed the process unsaid, status 143 (t175: four benches still did)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT

BENCHES = sorted((REPO_ROOT / "bench").glob("*.py"))


def module_run(path_text: str) -> list[str]:
    """Every module a literal argv in the source runs with ``-m`` (the string after a
    ``"-m"`` in a list or tuple literal)."""
    out = []
    for node in ast.walk(ast.parse(path_text)):
        if isinstance(node, ast.List | ast.Tuple):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            out += [str(items[i + 1]) for i in range(len(items) - 1) if items[i] == "-m"]
    return out


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_benches_start_citybrain_through_its_guard(path: Path) -> None:
    assert "citybrain.cli" not in module_run(path.read_text())


def test_the_benches_that_start_citybrain_are_seen() -> None:
    runs = {p.name for p in BENCHES if "citybrain" in module_run(p.read_text())}
    assert {"recovery.py", "worker_start.py", "mqtt_ingest.py", "catchup.py"} <= runs
