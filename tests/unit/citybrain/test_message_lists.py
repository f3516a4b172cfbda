"""A message lists the values it expects in words (`expected one of app, emergency,
hotline, inspector`), not as a Python list (`['app', 'emergency', ...]`): trial 25 found
both forms side by side in one `playbooks check` run. The source is read for the pattern
that wrote the list form."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# "one of {sorted(X)}", "known: {list(X)}", "expected one of {X}" with X a set or list.
LIST_IN_MESSAGE = re.compile(r"(one of|known:) \{(sorted|list)\([^)]*\)\}")


def test_no_message_writes_a_python_list_of_the_values_it_expects() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for package in ("citybrain", "playbooks", "streams", "dashboards")
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if LIST_IN_MESSAGE.search(line)
    ]
    assert found == []
