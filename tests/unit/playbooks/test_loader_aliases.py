"""An alias bomb ("billion laughs") in any YAML file citybrain reads is refused at once.

Aliases (``*name``) share one value when PyYAML builds the document, but every later walk
(a schema check, an error message naming the value) expands them: nine lists of nine,
nested nine deep, were 387 million values. Before, a grid file of 400 bytes with a cell's
``name: *h`` took the worker's start (and ``citybrain stack up``) minutes and gigabytes;
now it is ``file:line`` naming the aliasing, as Alertmanager's reader (go-yaml) refuses
"excessive aliasing"."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from citybrain.demo import load_expected
from playbooks.errors import PlaybookConfigError
from playbooks.loader import (
    MAX_ALIASED_VALUES,
    check_playbooks,
    load_grid,
    load_playbooks,
    load_yaml,
    routing_errors,
)
from streams.auth import TokenStore
from streams.errors import SettingsError

REPO = Path(__file__).resolve().parents[3]
LIBRARY = REPO / "playbooks" / "library"
NINES = ", ".join(["*{}"] * 9)
# Anchors a..i: each a list of nine of the one before; *i expands to 9**9 strings.
ANCHORS = (
    "x-a: &a ["
    + ", ".join(['"lol"'] * 9)
    + "]\n"
    + "".join(
        f"x-{b}: &{b} [{NINES.format(*[a] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)
BOMB_LINE = 7  # x-g, 9**7 strings: the first anchor past the bound
SAID = f"aliases (*name) expand the document to more than {MAX_ALIASED_VALUES:,} values"


def quickly(call: object) -> None:
    """The refusal came at once: the bomb was not walked."""
    assert callable(call)
    start = time.monotonic()
    call()
    assert time.monotonic() - start < 5.0


def test_a_grid_with_an_alias_bomb_is_refused_naming_the_line(tmp_path: Path) -> None:
    grid = (REPO / "datasets" / "grid.yaml").read_text()
    path = tmp_path / "grid.yaml"
    path.write_text(ANCHORS + grid.replace("  name: Baltimore County\n", "  name: *i\n", 1))

    def load() -> None:
        with pytest.raises(PlaybookConfigError) as err:
            load_grid(path)
        assert str(err.value).startswith(f"{path}:{BOMB_LINE}: not valid YAML: its {SAID}")

    quickly(load)


def test_a_routing_file_with_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    routing = (LIBRARY / "routing.yaml").read_text()
    path = tmp_path / "routing.yaml"
    path.write_text(ANCHORS + routing.replace("matchers: ['source=\"citizen\"']", "matchers: *i"))
    playbooks = load_playbooks(LIBRARY / "playbooks")

    def load() -> None:
        with pytest.raises(PlaybookConfigError, match=r"routing.yaml:\d+: not valid YAML: its"):
            routing_errors(path, playbooks)

    quickly(load)


def test_a_playbook_with_an_alias_bomb_is_its_own_error_and_costs_no_other(
    tmp_path: Path,
) -> None:
    shutil.copytree(LIBRARY / "playbooks", tmp_path, dirs_exist_ok=True)
    gas = (tmp_path / "gas-leak.yaml").read_text().replace("playbook: gas-leak", "playbook: zz")
    (tmp_path / "zz.yaml").write_text(
        ANCHORS + gas.replace("sla: 30m", "sla: 30m\nsteps_x: *i").replace("steps_x", "notes")
    )

    def check() -> None:
        playbooks, _, errors = check_playbooks(tmp_path)
        assert "gas-leak" in playbooks and "zz" not in playbooks
        assert [e for e in errors if SAID in e] == [
            f"{tmp_path / 'zz.yaml'}:{BOMB_LINE}: not valid YAML: its {SAID} (an alias "
            "bomb?); write the values out, or alias fewer times (column 6)"
        ]

    quickly(check)


def test_a_tokens_file_and_an_expect_file_with_an_alias_bomb_are_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(ANCHORS + "tokens:\n  - {name: *i, role: operator, sha256: ab}\n")
    expect = tmp_path / "expect.yaml"
    expect.write_text("- " + ANCHORS.replace("\n", "\n  ") + "name: *i\n")

    def load() -> None:
        with pytest.raises(SettingsError) as err:
            TokenStore.load(tokens)
        assert str(err.value).startswith(f"CITYBRAIN_API_TOKENS_FILE {tokens}:{BOMB_LINE}: ")
        assert SAID in str(err.value)
        with pytest.raises(ValueError) as bad:
            load_expected(expect)
        assert str(bad.value).startswith(f"--expect {expect}:") and SAID in str(bad.value)

    quickly(load)


def test_aliases_used_as_they_are_meant_still_load() -> None:
    # Matchers shared between routes, a value repeated: far below the bound.
    doc = load_yaml("a: &m ['x=\"1\"', 'y=\"2\"']\nb: *m\nc: [*m, *m, *m]\n")
    assert doc["c"] == [doc["a"]] * 3
    fan = "x-a: &a [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 999) + "]\n"
    assert len(load_yaml(fan)["b"]) == 999  # 999,000 values through aliases: allowed
