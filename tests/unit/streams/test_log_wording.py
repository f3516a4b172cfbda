"""A logged line says its level once: the log format already prints WARNING or ERROR
before the message, so a message of its own starting ``citybrain: warning:`` read
``WARNING citybrain: warning: …`` (helper brief t47, fault 7: the HTTP ingest's start-up
line). Every logging call and ``SayEvery`` prefix in the packages is walked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("citybrain", "streams", "playbooks", "detectors", "dashboards")
LEVEL_WORDS = ("warning:", "error:", "info:", "debug:", "critical:")


def _logged_texts() -> list[tuple[str, str]]:
    """(file:line, the leading string) of every ``….warning(…)``/``error``/``info``/
    ``debug``/``critical``/``exception`` call and every ``SayEvery(…, prefix=…)``."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                texts: list[ast.expr] = []
                if name in ("warning", "error", "info", "debug", "critical", "exception"):
                    texts = node.args[:1]
                elif name == "SayEvery":
                    texts = [k.value for k in node.keywords if k.arg == "prefix"]
                for text in texts:
                    if isinstance(text, ast.JoinedStr) and text.values:
                        text = text.values[0]
                    if isinstance(text, ast.Constant) and isinstance(text.value, str):
                        where = f"{path.relative_to(REPO)}:{node.lineno}"
                        found.append((where, text.value))
    return found


LOGGED = _logged_texts()


def test_the_walk_finds_the_logged_lines() -> None:
    assert len(LOGGED) > 50
    assert any(text.startswith("citybrain: ") for _, text in LOGGED)


@pytest.mark.parametrize(("where", "text"), LOGGED, ids=[w for w, _ in LOGGED])
def test_a_logged_line_does_not_say_its_level_again(where: str, text: str) -> None:
    words = text.lower().removeprefix("citybrain: ").lstrip()
    assert not words.startswith(LEVEL_WORDS), f"{where}: {text!r}"
