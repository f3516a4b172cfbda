"""A path the file system cannot look up for its length is named with the option or
setting that gave it, in the words of every other file fault (t158's newcomer walk: a
pasted line as `replay`'s FILE, `detect --output`, `--grid`, CITYBRAIN_RUN_DIR … said
"cannot use <path>: File name too long", naming no option; `stack status` printed its
table first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import main

LONG = "y" * 300  # one folder or file name: Linux takes at most 255 bytes
NAME_SAYS = (
    ": its name is too long: a part of it is {n} bytes, and a file or folder name is at most 255"
)


def _said(err: str, option: str, path: str, n: int) -> bool:
    """The option and the path, cut to its head and length (``hidden.cut_long``), then
    the reason."""
    shown = f"{option} '{path[:40]}…' ({len(path):,} characters)"
    return err.startswith(f"citybrain: {shown}{NAME_SAYS.format(n=n)}")


@pytest.mark.parametrize(
    ("argv", "option", "name"),
    [
        (["replay", "{p}"], "FILE", LONG),
        (["replay", "--max", "{p}"], "FILE", f"{LONG}.csv"),
        (["detect", "--input", "{p}", "--output", "{out}"], "--input", LONG),
        (["detect", "--input", "{csv}", "--output", "{p}"], "--output", f"{LONG}.csv"),
        (["detect", "--input-dir", "{dir}", "--output-dir", "{p}"], "--output-dir", LONG),
        (["report", "--data", "{csv}", "--out", "{p}"], "--out", f"{LONG}.html"),
        (["demo", "--grid", "{p}"], "--grid", f"{LONG}.yaml"),
        (["demo", "--summary", "{p}"], "--summary", f"{LONG}.json"),
        (["rehearse", "--incidents", "{p}", "--units", "{csv}"], "--incidents", LONG),
        (["bench", "nab", "--data", "{p}"], "--data", LONG),
        (["playbooks", "route-test", "--routing", "{p}", "kind=pm25"], "--routing", LONG),
    ],
)
def test_a_path_too_long_to_look_up_is_named_with_its_option(
    argv: list[str],
    option: str,
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv = tmp_path / "ts.csv"
    csv.write_text("timestamp,value\n2024-01-01T00:00:00Z,1\n")
    long_path = str(tmp_path / name)
    values = {"p": long_path, "csv": str(csv), "dir": str(tmp_path), "out": str(tmp_path / "o.csv")}
    assert main([word.format(**values) for word in argv]) == 2
    err = capsys.readouterr().err
    assert _said(err, option, long_path, len(name)), err
    assert "cannot use" not in err and err.count("\n") == 1


def _said_deep(err: str, deep: str, n: int) -> bool:
    return err.startswith(
        f"citybrain: FILE '{deep[:40]}…' ({n:,} characters): its name is too long: "
        f"{n:,} bytes, and a path is at most 4,096"
    )


def test_a_path_over_the_longest_path_is_named_with_its_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = str(tmp_path / ("a/" * 2100) / "x.csv")
    assert main(["replay", deep]) == 2
    err = capsys.readouterr().err
    n = len(deep.encode())
    assert _said_deep(err, deep, n), err


def test_a_playbook_directory_too_long_to_look_up_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_path = str(tmp_path / LONG)
    assert main(["playbooks", "check", long_path]) == 2
    err = capsys.readouterr().err
    assert _said(err, "the playbook directory", long_path, 300), err


@pytest.mark.parametrize(
    ("setting", "argv"),
    [
        ("CITYBRAIN_RUN_DIR", ["stack", "status"]),
        ("CITYBRAIN_HOME", ["stack", "status"]),
        ("CITYBRAIN_GRID_FILE", ["playbooks", "route-test", "kind=pm25"]),
        ("CITYBRAIN_PLAYBOOK_DIR", ["playbooks", "check"]),
    ],
)
def test_a_setting_too_long_to_look_up_is_named(
    setting: str,
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CITYBRAIN_RUN_DIR is named as itself (a fault of a setting with an alias was
    named CITYBRAIN_CITYBRAIN_RUN_DIR), before `stack status` prints any table."""
    long_path = str(tmp_path / LONG)
    monkeypatch.setenv(setting, long_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    shown = f"'{long_path[:40]}…' ({len(long_path):,} characters)"
    assert err.startswith(f"citybrain: {setting} is {shown}: its name is too long"), err
    assert out == ""
