"""t164's walk: a run directory that is a file, or a disk that fills mid-write.

`CITYBRAIN_RUN_DIR` set to a file (a mistyped path, a log's name) was said by `worker` and
`stack down --wipe` as "cannot use …/faust/citybrain: Not a directory" (no setting, no
fix) and by `demo` and `restart-worker` as "cannot be written (File exists)". A write
refused after its file was opened names no file: `stack reload` on a full run directory
was "unexpected OSError … This is a bug" (exit 70), and left the map rules Prometheus
reads empty."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, main
from citybrain.cli.main import _describe
from citybrain.stack import PrometheusServer
from streams.settings import Settings

COMMANDS = [["worker"], ["stack", "down", "--wipe"], ["demo"], ["stack", "restart-worker"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_run_directory_that_is_a_file_is_named_with_the_setting(
    argv: list[str],
    shell: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fails on the old code: "cannot use …: Not a directory" or "(File exists)"."""
    run_file = shell / "run.log"
    run_file.write_text("")
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run_file))
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.endswith(
        f"citybrain: CITYBRAIN_RUN_DIR {run_file} cannot be written (it is a file, not a "
        "directory): point CITYBRAIN_RUN_DIR at a directory you can write\n"
    ), err


def test_a_file_in_the_run_directory_where_a_folder_belongs_is_named(
    shell: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shell / "run"
    (run / "demo").mkdir(parents=True)
    (run / "kafka").write_text("")  # `--wipe` deletes Kafka's folder: here a file
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run))
    (run / "faust").write_text("")
    assert main(["worker"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"citybrain: CITYBRAIN_RUN_DIR {run} cannot be written (a file where a directory "
        f"belongs: {run / 'faust'}): point CITYBRAIN_RUN_DIR at a directory you can write\n"
    ), err


def test_a_write_refused_with_no_file_named_is_no_bug(
    shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old code: exit 70, "This is a bug"."""
    full = OSError(errno.ENOSPC, "No space left on device")
    status, message = _describe(full)
    assert status == EXIT_USAGE
    assert "bug" not in message and "No space left on device" in message, message
    # The run directory's disk is the full one: named, with the setting.
    run = Settings().run_dir
    run.mkdir(parents=True)
    real = os.statvfs

    def statvfs(path: str | os.PathLike[str]) -> os.statvfs_result:
        found = real(path)
        if Path(path) != run:
            return found
        values = list(found)
        values[4] = 0  # f_bavail
        return os.statvfs_result(values)

    monkeypatch.setattr(os, "statvfs", statvfs)
    status, message = _describe(full)
    assert (status, message) == (
        EXIT_USAGE,
        f"CITYBRAIN_RUN_DIR {run} cannot be written (No space left on device): free space "
        "there, or point CITYBRAIN_RUN_DIR at a directory on another disk",
    )


def test_the_map_rules_are_replaced_whole_or_not_at_all(
    shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old code: the rules file Prometheus reads was left cut short, and the
    error named no file."""
    prom = PrometheusServer(Settings())
    prom.dir.mkdir(parents=True)
    prom.locations.write_text("# the rules in force\n")
    real = Path.write_text

    def full_disk(self: Path, data: str, *args: object, **kwargs: object) -> int:
        real(self, data[:10])  # what a disk takes before it fills
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(OSError) as caught:
        patched.setattr(Path, "write_text", full_disk)
        prom.write_locations()
    assert prom.locations.read_text() == "# the rules in force\n"
    assert sorted(p.name for p in prom.dir.iterdir()) == [prom.locations.name]
    assert caught.value.filename == str(prom.locations)
    status, message = _describe(caught.value)
    assert status == EXIT_USAGE
    assert message.startswith(f"CITYBRAIN_RUN_DIR {Settings().run_dir} cannot be written ("), (
        message
    )
