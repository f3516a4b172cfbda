"""The README's commands work as typed from a fresh clone (issue 15, item 1): every
`make TARGET` the README, the docs or the demo's output names is a Makefile target, and
every shell line in the README starts with something `make install` provides."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from citybrain.cli import build_parser
from citybrain.cli.campaign import _instant
from streams.settings import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M))
README = (REPO_ROOT / "README.md").read_text()
PLACEHOLDER_IDS = {
    "RUN_ID": "grp-0123456789abcdef.1",
    "SILENCE_ID": "s-1",
    "REPORT_ID": "nyc311-61279248",
}


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


DOCS = {p.name: p.read_text() for p in sorted((REPO_ROOT / "docs").glob("*.md"))}


def test_readme_shell_lines_run_as_typed() -> None:
    """The README's and the docs' shell blocks (t79: docs/operations.md told the user to
    type `kafka-consumer-groups.sh`, which the stack never installs: it fetches Kafka's
    jars, not its scripts; the docs' blocks were not checked at all)."""
    lines = _sh_lines(README) + [line for text in DOCS.values() for line in _sh_lines(text)]
    assert any(line.startswith("make demo") for line in lines)
    assert any(line.startswith("java ") for line in lines)  # the docs' blocks were read
    parser = build_parser()
    commands = []
    for line in lines:
        # t200: a loop over the ids a command prints (`for run in $(… runs list … --ids);
        # do … runs escalate "$run" …; done`): both commands are checked, the loop's
        # variable standing for a run id.
        loop = re.fullmatch(r"for (\w+) in \$\((.*?)\); do (.*); done", line)
        if loop:
            var, listing, body = loop.groups()
            commands += [listing, body.replace(f'"${var}"', PLACEHOLDER_IDS["RUN_ID"])]
        else:
            commands.append(line)
    for line in commands:
        if re.match(r"[a-z_]+=", line):
            # A shell variable a later line of the block reads (t209: the app id, taken
            # from the last demo's record when CITYBRAIN_APP_ID is unset): run below.
            continue
        words = shlex.split(line)
        # A bare `citybrain` is not on the PATH after `make install`.
        # mosquitto_pub and curl: the Debian clients the gateway section says to use;
        # umask: a secret file written by hand (docker/grafana.env) is private.
        allowed = {
            "make",
            ".venv/bin/citybrain",
            "export",
            "docker",
            "mosquitto_pub",
            "curl",
            "umask",
            # Kafka's own tools, through the jars the stack fetched (docs/operations.md).
            "java",
        }
        assert words[0] in allowed, line
        if words[0] == "make":
            assert set(words[1:]) <= TARGETS, line
        if words[0] == ".venv/bin/citybrain":
            # An id's placeholder stands for an id `runs list` shows (typed as it stands,
            # the parser refuses it, naming the placeholder).
            typed = [PLACEHOLDER_IDS.get(word, word) for word in words[1:]]
            args = parser.parse_args(typed)  # exits (fails the test) on a wrong command
            # Values the command itself reads, typed as they stand (helper brief t47:
            # `--from TODAY --to TOMORROW` was refused, "expected a date").
            for dest, flag in (("start", "--from"), ("end", "--to")):
                if getattr(args, dest, None) is not None:
                    _instant(getattr(args, dest), flag)


def test_the_demo_tells_the_user_what_works_as_typed() -> None:
    demo = (REPO_ROOT / "citybrain" / "demo.py").read_text()
    # Trial 9: `make stack-down` failed outside the checkout; the demo prints the
    # absolute citybrain (cli_command) with `stack down`, which works from anywhere.
    # (escaped: a path's [red] is text, not rich markup; helper t52)
    assert "[bold]{escape(command_line('stack', 'down'))}[/]" in demo


def test_every_docs_file_the_code_or_its_output_names_exists() -> None:
    """The campaign report's tables and page sent readers to docs/campaign.md, which never
    existed: every docs/ path in the source (messages, help, docstrings) must be there."""
    named: set[str] = set()
    for package in ("citybrain", "streams", "playbooks", "dashboards", "detectors"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"\bdocs/[\w.-]+\.(?:md|yaml)", path.read_text()))
    assert named  # the walk found the references
    assert sorted(n for n in named if not (REPO_ROOT / n).is_file()) == []


def _mentions(text: str) -> list[str]:
    """The ``citybrain …`` commands a text names in backticks, `.venv/bin/` or not, and
    the bare words listed right after one (```citybrain runs list`, `silences`, `alerts```
    reads as three commands)."""
    found = []
    listed = r"`(?:\.venv/bin/)?citybrain ([^`]+)`((?:,? (?:and |or )?`[a-z][a-z-]*`)*)"
    for m in re.finditer(listed, text):
        found.append(m.group(1).replace("\\|", "|"))
        found += re.findall(r"`([a-z][a-z-]*)`", m.group(2))
    return found


def _check_mention(parser: argparse.ArgumentParser, mention: str) -> str | None:
    """Why ``mention`` (``runs list [--status S]|show``, ``COMMAND --help``) names a
    command or option the CLI lacks, or None. Placeholders (upper case, ``…``) and
    alternatives (``a|b``) are read as the README writes them."""
    words = re.findall(r"--?[a-z][a-z-]*|[A-Za-z][\w.-]*|…", mention)
    current = parser
    path: list[str] = []
    for word in words:
        if word == "…" or word.isupper() or word.startswith("-"):
            if word.startswith("-"):
                options = {o for a in current._actions for o in a.option_strings}
                if word not in options:
                    return f"citybrain {' '.join(path)}: no option {word}"
            continue
        subparsers = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            continue  # an argument's value (a file, a prefix)
        choices = subparsers[0].choices
        if word not in choices:
            # "runs list|show|ack": each alternative must be an action of the same parent.
            return f"citybrain {' '.join(path)}: no command {word!r}"
        path.append(word)
        current = choices[word]
    return None


def test_every_citybrain_command_the_docs_name_exists() -> None:
    """Trial 6: the README said `citybrain runs list`, `silences`, `alerts`, and
    `citybrain alerts` is an invalid choice. Every `citybrain …` in backticks in the README
    and docs/ names real commands and options."""
    parser = build_parser()
    texts = {"README.md": README}
    texts |= {f"docs/{p.name}": p.read_text() for p in (REPO_ROOT / "docs").glob("*.md")}
    problems = []
    for name, text in texts.items():
        for mention in _mentions(text):
            for alternative in _alternatives(mention):
                why = _check_mention(parser, alternative)
                if why:
                    problems.append(f"{name}: `citybrain {mention}`: {why}")
    assert _mentions(README), "the README names no citybrain command"
    assert problems == []


def _alternatives(mention: str) -> list[str]:
    """``runs list [--status S]|show|ack`` -> ``runs list [--status S]``, ``runs show``,
    ``runs ack``: an alternative outside brackets replaces the action (the second word);
    inside brackets (``[--speed N | --max]``, ``stop|skip``) both are kept. A first part of
    one word (``… | head``) is a shell pipe, not alternatives."""
    mention = re.sub(r"\[([^\]]*)\]", lambda m: "[" + m.group(1).replace("|", " ") + "]", mention)
    first, *others = (part.strip() for part in mention.split("|"))
    words = first.split()
    if len(words) < 2:
        return [first]
    return [first, *(f"{words[0]} {other}" for other in others if other)]


def test_a_command_the_cli_lacks_is_found() -> None:
    parser = build_parser()
    assert _check_mention(parser, "logs") == "citybrain : no command 'logs'"
    assert _check_mention(parser, "runs list --status S") is None
    assert _check_mention(parser, "runs list --bogus") is not None
    assert _check_mention(parser, "COMMAND --help") is None


def test_every_command_the_docs_name_without_citybrain_exists() -> None:
    """t79's walk of the docs: they name commands without the `citybrain` before them too
    (`runs answer --report`, `stack down --wipe`, `replay --pack N`), which the check above
    never read. Each such mention, a command word followed by an action or an option, names
    real commands and options."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    texts = {"README.md": README} | {f"docs/{name}": text for name, text in DOCS.items()}
    problems, read = [], 0
    for name, text in texts.items():
        for m in re.finditer(r"`([a-z][a-z-]*)( (?:-|[a-z])[^`]*)`", text):
            if m.group(1) not in sub.choices:
                continue
            read += 1
            mention = (m.group(1) + m.group(2)).replace("\\|", "|")
            for alternative in _alternatives(mention):
                why = _check_mention(parser, alternative)
                if why:
                    problems.append(f"{name}: `{mention}`: {why}")
    assert read > 20  # the docs' mentions were found
    assert problems == []


def _commands_of(text: str) -> list[str]:
    """The shell commands of a Markdown text: its ```sh lines and its `…` spans that
    start with a command word (kill, cat, curl, citybrain, …) or hold a $(…)."""
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = [
        span for span in spans if "$(" in span or re.match(r"(kill|cat|curl|ls|tail)\b", span)
    ]
    return [*_sh_lines(text), *commands]


def test_no_docs_command_reads_a_citybrain_setting_without_its_default() -> None:
    """t134: docs/operations.md's `kill -HUP $(cat $CITYBRAIN_RUN_DIR/demo/worker.pid)`
    failed as typed in a fresh shell (the variable unset): every CITYBRAIN_ variable a
    command reads has its default, ``${CITYBRAIN_RUN_DIR:-…}``."""
    texts = {"README.md": README}
    texts |= {f"docs/{p.name}": p.read_text() for p in (REPO_ROOT / "docs").glob("*.md")}
    bare = [
        (name, command)
        for name, text in texts.items()
        for command in _commands_of(text)
        if re.search(r"\$CITYBRAIN_|\$\{CITYBRAIN_[A-Z_]+\}", command)
    ]
    assert not bare, bare


def test_the_demo_worker_pid_command_expands_as_typed(tmp_path: Path) -> None:
    """The docs' default for the run directory is the one the stack uses (bash, a fresh
    environment: no CITYBRAIN_ variable set)."""
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    word = re.search(r'"(\$\{CITYBRAIN_RUN_DIR:-[^"]*)/demo/worker\.pid"', text)
    assert word is not None
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-c", f'echo "{word.group(1)}"'], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    clean["HOME"] = str(tmp_path)
    expected = subprocess.run(
        [
            sys.executable,
            "-c",
            "from streams.settings import load_settings; print(load_settings().run_dir)",
        ],
        env={**clean, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == expected.stdout.strip(), expected.stderr


def _kafka_blocks() -> list[str]:
    """docs/operations.md's blocks that run Kafka's tools with the stack's jars."""
    blocks = re.findall(r"```sh\n(.*?)```", DOCS["operations.md"], re.S)
    return [block for block in blocks if block.startswith(("java ", "app=", "group="))]


def test_the_docs_kafka_tools_name_the_last_demos_group_as_printed(tmp_path: Path) -> None:
    """t209: after `make demo`, the docs' consumer-groups and changelog-config commands,
    copied as printed, named group `citybrain` and topic `citybrain-groups-changelog`,
    which a demo's stack does not have ("Group citybrain not found",
    UnknownTopicOrPartitionException, each with a Java stack trace): they read only
    CITYBRAIN_APP_ID, which nobody had exported. Each block is run here as printed, with
    a `java` that prints its arguments. Fails on the old docs."""
    blocks = [b for b in _kafka_blocks() if "ConsumerGroupCommand" in b or "ConfigCommand" in b]
    assert len(blocks) == 2, blocks
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    java.chmod(0o755)
    home = tmp_path / "home"
    (home / ".cache" / "citybrain" / "run" / "demo").mkdir(parents=True)
    record = home / ".cache" / "citybrain" / "run" / "demo" / "demo.json"

    def run(block: str, **env: str) -> list[str]:
        base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home)}
        done = subprocess.run(
            ["bash", "-c", block], env={**base, **env}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def named(words: list[str]) -> str:
        flag = "--group" if "--group" in words else "--entity-name"
        return words[words.index(flag) + 1]

    for block in blocks:
        changelog = "-groups-changelog" if "ConfigCommand " in block else ""
        assert named(run(block)) == f"citybrain{changelog}"  # no demo: the default
        record.write_text(json.dumps({"topic_prefix": "demo-1", "app_id": "demo-1"}, indent=2))
        assert named(run(block)) == f"demo-1{changelog}"
        assert named(run(block, CITYBRAIN_APP_ID="mine")) == f"mine{changelog}"
        other = tmp_path / "run2"
        (other / "demo").mkdir(parents=True, exist_ok=True)
        (other / "demo" / "demo.json").write_text(json.dumps({"app_id": "demo-2"}, indent=2))
        assert named(run(block, CITYBRAIN_RUN_DIR=str(other))) == f"demo-2{changelog}"
        record.unlink()
