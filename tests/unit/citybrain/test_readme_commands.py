"""The README's commands work as typed from a fresh clone (issue 15, item 1): every
`make TARGET` the README, the docs or the demo's output names is a Makefile target, and
every shell line in the README starts with something `make install` provides."""

from __future__ import annotations

import re
import shlex

from citybrain.cli import build_parser
from streams.settings import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M))
README = (REPO_ROOT / "README.md").read_text()


def _sh_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        # A line ending in a backslash goes on on the next: one command.
        for line in re.sub(r"\\[ \t]*(#[^\n]*)?\n", " ", block).splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def test_every_make_target_mentioned_exists() -> None:
    texts = [README, *(p.read_text() for p in (REPO_ROOT / "docs").glob("*.md"))]
    texts += [p.read_text() for p in (REPO_ROOT / "citybrain").glob("*.py")]
    named = {t for text in texts for t in re.findall(r"\bmake ([a-z][a-z-]+)\b", text)}
    assert named, "the README names no make target"
    assert named <= TARGETS, sorted(named - TARGETS)


def test_the_readme_lists_every_target() -> None:
    listed = re.search(r"`make help` lists the Makefile targets: (.*?)\.\n", README, re.S)
    assert listed
    assert set(re.findall(r"`([a-z-]+)`", listed.group(1))) == TARGETS - {"help"}
    # ...and each has a line in `make help`.
    described = set(re.findall(r"^([a-z-]+):.*## ", MAKEFILE, re.M))
    assert described == TARGETS


def test_readme_shell_lines_run_as_typed() -> None:
    lines = _sh_lines(README)
    assert any(line.startswith("make demo") for line in lines)
    parser = build_parser()
    for line in lines:
        words = shlex.split(line)
        # A bare `citybrain` is not on the PATH after `make install`.
        # mosquitto_pub and curl: the Debian clients the gateway section says to use.
        allowed = {"make", ".venv/bin/citybrain", "export", "docker", "mosquitto_pub", "curl"}
        assert words[0] in allowed, line
        if words[0] == "make":
            assert set(words[1:]) <= TARGETS, line
        if words[0] == ".venv/bin/citybrain":
            parser.parse_args(words[1:])  # exits (fails the test) on a wrong command


def test_the_demo_tells_the_user_what_works_as_typed() -> None:
    demo = (REPO_ROOT / "citybrain" / "demo.py").read_text()
    assert "make stack-down" in demo
    assert "citybrain stack down[/]" not in demo  # the old line, not on the PATH


def test_every_docs_file_the_code_or_its_output_names_exists() -> None:
    """The campaign report's tables and page sent readers to docs/campaign.md, which never
    existed: every docs/ path in the source (messages, help, docstrings) must be there."""
    named: set[str] = set()
    for package in ("citybrain", "streams", "playbooks", "dashboards", "detectors"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"\bdocs/[\w.-]+\.(?:md|yaml)", path.read_text()))
    assert named  # the walk found the references
    assert sorted(n for n in named if not (REPO_ROOT / n).is_file()) == []
