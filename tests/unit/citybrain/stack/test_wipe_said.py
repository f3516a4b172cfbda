"""t112: `stack down --wipe` said "kafka data wiped" whatever happened: with no data
there at all (a fresh run directory, a mistyped CITYBRAIN_RUN_DIR), and with a file it
could not delete still there (errors were ignored). Each line now says what happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, main
from citybrain.cli.stack import size_said
from citybrain.demo import DemoFiles
from streams.settings import Settings


def test_wiping_nothing_says_there_was_nothing(
    shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "down", "--wipe"]) == 0
    out = capsys.readouterr().out
    assert f"kafka       no data to wipe (nothing in {shell / 'run' / 'kafka'})" in out, out
    assert "data wiped" not in out and "record removed" not in out, out


def test_wiping_data_says_how_much_and_where(
    shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = shell / "run" / "kafka" / "data" / "citybrain.readings-0"
    data.mkdir(parents=True)
    (data / "00000000000000000000.log").write_bytes(b"x" * 2_500)
    record = DemoFiles.of(Settings()).state
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{}")
    assert main(["stack", "down", "--wipe"]) == 0
    out = capsys.readouterr().out
    assert f"kafka       data wiped (2.5 kB in {shell / 'run' / 'kafka'})" in out, out
    assert f"demo        record removed ({record})" in out, out
    assert not (shell / "run" / "kafka").exists() and not record.exists()


def test_a_file_that_cannot_be_deleted_is_named_not_said_wiped(
    shell: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (shell / "run" / "kafka" / "data").mkdir(parents=True)
    (shell / "run" / "kafka" / "data" / "meta.properties").write_text("x")

    def refuse(path: str | Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("citybrain.stack.kafka.shutil.rmtree", refuse)
    assert main(["stack", "down", "--wipe"]) == EXIT_SERVICE
    out, err = capsys.readouterr()
    assert "data wiped" not in out, out
    assert "could not all be deleted (Permission denied" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("held", "said"),
    [(0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (2_500, "2.5 kB"), (3 * 10**9, "3.0 GB")],
)
def test_sizes_are_said_in_decimal_units(held: int, said: str) -> None:
    assert size_said(held) == said
