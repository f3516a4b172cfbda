"""README's Configuration tables list every setting and every CITYBRAIN_* variable the
code reads (a new setting fails here until it is documented)."""

from __future__ import annotations

import re
from pathlib import Path

from streams.settings import REPO_ROOT, Settings

SOURCES = ("citybrain", "streams", "playbooks", "dashboards", "detectors")


def documented() -> set[str]:
    """The variables in the first column of README's Configuration tables. A cell's
    shorthand ``_X`` after ``CITYBRAIN_A_B`` is ``CITYBRAIN_X`` or ``CITYBRAIN_A_X``
    (``CITYBRAIN_WEBHOOK_SECRET`` / ``_TIMEOUT``, ``CITYBRAIN_KAFKA_HOST`` / ``_KAFKA_PORT``)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        full, *short = re.findall(r"`([A-Z_]+)`", line.split("|")[1])
        names.add(full)
        first = full.removeprefix("CITYBRAIN_").split("_")[0]
        names |= {f"CITYBRAIN{t}" for t in short} | {f"CITYBRAIN_{first}{t}" for t in short}
    return names


def test_every_setting_is_in_the_readme_table() -> None:
    fields = {
        "CITYBRAIN_RUN_DIR" if name == "run_dir_override" else f"CITYBRAIN_{name.upper()}"
        for name in Settings.model_fields
    }
    assert sorted(fields - documented()) == []


def test_every_variable_the_code_reads_is_in_the_readme() -> None:
    read = set()
    for package in SOURCES:
        for path in Path(REPO_ROOT, package).rglob("*.py"):
            read |= set(re.findall(r"\bCITYBRAIN_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    assert sorted(read - documented()) == []


def test_a_misspelt_setting_is_named_with_the_one_it_resembles() -> None:
    # A newcomer's CITYBRAIN_KAFKA_PRT=19093 was ignored without a word (the default port
    # used); the test suite's and the CLI's own variables are not settings and pass.
    from streams.settings import NOT_SETTINGS, unknown_variables

    env = {
        "CITYBRAIN_KAFKA_PRT": "19093",
        "CITYBRAIN_KAFKA_PORT": "19092",
        "CITYBRAIN_RUN_DIR": "/tmp/x",
        "CITYBRAIN_FROBNICATE": "1",
        "PATH": "/usr/bin",
        "CITYBRAIN_TEST_PORT_OFFSET": "500",
        "CITYBRAIN_STORM_KILLS": "3",
        **dict.fromkeys(NOT_SETTINGS, "1"),
    }
    assert unknown_variables(env) == [
        "CITYBRAIN_FROBNICATE is not a citybrain setting and is ignored "
        "(the README's Configuration lists the settings)",
        "CITYBRAIN_KAFKA_PRT is not a citybrain setting and is ignored; "
        "did you mean CITYBRAIN_KAFKA_PORT?",
    ]
