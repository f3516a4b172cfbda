"""streams/inputs.py: whether a file a command or setting names can be read, in one
wording (helper brief t37, fault 2); the CLI's walk over every file option is
tests/unit/citybrain/test_cli_input_files.py."""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.inputs import not_a_directory, not_text, unreadable
from streams.settings import load_settings

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("name", "head", "compressed", "says"),
    [
        ("a.csv", b"timestamp,value\n", True, ""),
        ("a.csv", "h\u00e9\n".encode("latin-1"), True, ""),  # Latin-1: the reader names it
        ("a.csv", "timestamp\n".encode("utf-16"), True, ""),  # so is UTF-16
        ("a.csv", b"%PDF-1.7\n", True, "a PDF document"),
        ("a.csv", b"\xd0\xcf\x11\xe0\xa1\xb1", True, "an old Excel .xls workbook; save it as"),
        ("a.yaml", b"\xd0\xcf\x11\xe0\xa1\xb1", False, "an old Excel .xls workbook"),
        ("a.csv", b"\x1f\x8b\x08\x00", True, "it is gzip-compressed; name it a.csv.gz"),
        ("a.yaml", b"\x1f\x8b\x08\x00", False, "it is gzip-compressed; decompress it"),
        ("a.csv.gz", b"\x1f\x8b\x08\x00\x00\x00", True, ""),  # cut short: the reader says where
        # t204: each was "it holds binary data (byte 0x00 at offset 9)", named for no format.
        ("a.csv", b"\x28\xb5\x2f\xfd\x24\x00\x00", True, "zstd-compressed (decompress it"),
        ("a.csv", b"\x04\x22\x4d\x18\x64\x40\x00", True, "lz4-compressed (decompress it"),
        ("a.csv", b"7z\xbc\xaf\x27\x1c\x00\x04", True, "a 7-Zip archive (extract it"),
        # A NUL in a row of text is that row's fault (the reader names it, skip skips it);
        # a NUL in the header line, or control bytes throughout, is binary data.
        ("a.csv", b"timestamp,value\n2026-11-01T10:00:00Z,1\x00.5\n", True, ""),
        ("a.csv", b"t,v\n" + b"2026-11-01T10:00:00Z,1\n" * 9 + b"\x00" * 20 + b"\n", True, ""),
        ("a.csv", b"timestamp\x00,value\n2026-11-01T10:00:00Z,1\n", True, "it holds binary"),
        ("a.csv", b"name: x\n\x00\x01\x02", True, "it holds binary data (byte 0x00 at offset 8)"),
        ("a.yaml", b"name: x\nb: \x00\n", False, "it holds binary data"),
        # A block of NULs after rows (a crash's padding) is one bad line, not binary data.
        ("a.csv", b"t,v\n2026-11-01T10:00:00Z,1\n" + b"\x00" * 4096, True, ""),
        ("a.csv", b"t,v\n2026-11-01T10:00:00Z,1\n" + b"\x00\x01" * 64, True, "it holds binary"),
        ("a.yaml", b"name: x\n" + b"\x00" * 4096, False, ""),  # the loader names its line
    ],
)
def test_not_text(name: str, head: bytes, compressed: bool, says: str) -> None:
    reason = not_text(Path(name), head, compressed)
    assert reason.startswith(says) if says else reason == "", reason


def test_a_nul_in_a_row_of_a_csv_file_costs_that_row_not_the_file(tmp_path: Path) -> None:
    """A NUL in row 3 of a CSV refused the whole file as binary data (replay, detect)
    when it came in the first 64 KiB, and was a bad row when it came later."""
    from streams.feeds import load_events

    path = tmp_path / "r.csv"
    rows = [f"2026-11-01T10:0{i}:00Z,s1,water_level,1.5,m,c1\n" for i in range(3)]
    rows[1] = rows[1].replace("1.5", "1\x00.5")
    path.write_text("timestamp,sensor_id,kind,value,unit,grid_cell\n" + "".join(rows))
    assert unreadable(path, "CSV") == ""
    bad: list[object] = []
    assert len(load_events([path], "skip", bad)) == 2
    assert [str(b) for b in bad] == [f"{path}:3: byte 0x00 (NUL) at column 38: not text"]


@pytest.mark.parametrize("after", [b"", b"2026-11-01T10:09:00Z,s1,water_level,1.6,m,c1\n"])
def test_a_csv_file_a_crash_padded_with_nuls_is_its_rows_and_one_bad_line(
    tmp_path: Path, after: bytes
) -> None:
    """t180: rows of text, then a block of NULs (a file system zero-fills the block a
    crash left allocated but unwritten), with or without rows appended after it: the
    whole file was refused as binary data, even with --on-error skip, naming no line.
    Now its rows are read and the block is one bad line, named as such."""
    from streams.feeds import load_events

    path = tmp_path / "r.csv"
    rows = "".join(f"2026-11-01T10:0{i}:00Z,s1,water_level,1.5,m,c1\n" for i in range(3))
    head = "timestamp,sensor_id,kind,value,unit,grid_cell\n" + rows
    path.write_bytes(head.encode() + b"\x00" * 4096 + after)
    assert unreadable(path, "CSV") == ""
    bad: list[object] = []
    assert len(load_events([path], "skip", bad)) == 3
    assert [str(b) for b in bad] == [
        f"{path}:5: 4,096 NULs in a row, a block of the file left unwritten (by a crash "
        "while it was written?) from column 1, not text"
    ]


def test_the_gzip_files_of_the_data_sets_are_csv() -> None:
    import gzip

    for path in sorted((REPO / "datasets").glob("*.csv.gz")):
        head = path.read_bytes()[: 1 << 16]
        assert not_text(path, head, compressed=True) == "", path
        assert gzip.decompress(path.read_bytes())  # whole, not just the head


# Every setting that names a file or directory the commands read.
FILE_SETTINGS = {
    "CITYBRAIN_GRID_FILE": "file",
    "CITYBRAIN_ROUTING_FILE": "file",
    "CITYBRAIN_API_TOKENS_FILE": "file",
    "CITYBRAIN_KAFKA_SSL_CAFILE": "file",
    "CITYBRAIN_PLAYBOOK_DIR": "directory",
}


def test_the_walk_covers_every_path_setting() -> None:
    from streams.settings import Settings, variable

    paths = {
        variable(name)
        for name, info in Settings.model_fields.items()
        if "Path" in str(info.annotation) and name not in ("home", "run_dir_override")
    }
    assert paths == set(FILE_SETTINGS)


@pytest.mark.parametrize("name", sorted(FILE_SETTINGS))
def test_a_file_setting_is_said_as_an_option_s_file_is(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same words as the command line's (``--grid 'x': no such file``), in the
    settings' shape (``CITYBRAIN_GRID_FILE is 'x': no such file``)."""
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x: 1\n")
    os.symlink("loop", tmp_path / "loop")
    with zipfile.ZipFile(tmp_path / "book.xlsx", "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")
    loop = f"cannot read: {os.strerror(errno.ELOOP)}"
    if FILE_SETTINGS[name] == "directory":
        cases = {"missing": "no such directory", "a-file": "a file, expected a directory"}
    else:
        cases = {"missing": "no such file", "a-dir": "a directory, expected a file: "}
        if name != "CITYBRAIN_KAFKA_SSL_CAFILE":  # PEM: any text, not checked as YAML
            cases["book.xlsx"] = "not a YAML file: a ZIP archive"
    cases["loop"] = loop
    for key in [k for k in os.environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    if name == "CITYBRAIN_KAFKA_SSL_CAFILE":
        monkeypatch.setenv("CITYBRAIN_KAFKA_SECURITY_PROTOCOL", "SSL")
    for given, says in cases.items():
        path = str(tmp_path / given)
        monkeypatch.setenv(name, path)
        with pytest.raises(SettingsError) as info:
            load_settings()
        assert str(info.value).startswith(f"{name} is {path!r}: {says}"), str(info.value)


def test_a_missing_file_names_the_closest_file_beside_it(tmp_path: Path) -> None:
    """t53's walk: ``--units units-nyc.yml`` beside ``units-nyc.yaml`` said only "no such
    file"; a directory of a close name is no file to suggest, and nothing close is said."""
    (tmp_path / "units-nyc.yaml").write_text("x: 1\n")
    (tmp_path / "units-nyc.ym").mkdir()
    assert unreadable(tmp_path / "units-nyc.yml") == (
        f": no such file (did you mean {str(tmp_path / 'units-nyc.yaml')!r}?)"
    )
    assert unreadable(tmp_path / "other.csv") == ": no such file"
    assert unreadable(tmp_path / "nodir" / "units-nyc.yml") == ": no such file"


@pytest.mark.parametrize("name", ["FILE", "F", "PROFILE", "GRID_FILE", "…", "demo-…", "FILE…"])
def test_a_missing_placeholder_is_named_as_one(tmp_path: Path, name: str) -> None:
    """t68's walk: the demo's ``citybrain replay FILE`` typed as printed said only "no
    such file"; a real file of that name is read, and a name like it is no placeholder."""
    hint = f": {name!r} is the placeholder the examples print: give a file's path"
    assert unreadable(Path(name)) == ": no such file" + hint
    assert not_a_directory(Path(name)) == (
        ": no such directory" + hint.replace("a file's", "a directory's")
    )
    (tmp_path / name).write_text("x: 1\n")
    assert unreadable(tmp_path / name) == ""
    (tmp_path / "empty").mkdir()
    for other in ("FILE.csv", "file", "README"):
        assert unreadable(tmp_path / "empty" / other) == ": no such file"


def test_a_missing_directory_names_the_closest_directory_beside_it(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbook.yaml").write_text("x: 1\n")
    assert not_a_directory(tmp_path / "playbook") == (
        f": no such directory (did you mean {str(tmp_path / 'playbooks')!r}?)"
    )


def test_a_near_name_of_another_kind_of_file_is_not_suggested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t134: CITYBRAIN_ROUTING_FILE=routing.yaml from /tmp was "did you mean
    't126-routing.py'?", a Python script; only a file of the same kind is suggested, and
    with none near the library's routing file is named."""
    from citybrain.cli import EXIT_USAGE, main

    (tmp_path / "t126-routing.py").write_text("")
    assert unreadable(tmp_path / "routing.yaml") == ": no such file"
    (tmp_path / "routes.yml").write_text("")  # another ending of the same kind
    assert unreadable(tmp_path / "route.yaml") == (
        f": no such file (did you mean {str(tmp_path / 'routes.yml')!r}?)"
    )
    (tmp_path / "routes.yml").unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYBRAIN_ROUTING_FILE", "routing.yaml")
    assert main(["playbooks", "check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "t126-routing.py" not in err
    assert "/playbooks/library/routing.yaml'" in err and err.count("\n") == 1


def test_a_dash_is_said_to_stand_for_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t180: `replay -`, `rehearse --incidents -`, `--grid -` … said "'-': no such file
    (the checkout's: …)", as if a file named so were missing; a file named '-' is read."""
    monkeypatch.chdir(tmp_path)
    assert unreadable(Path("-"), "CSV").startswith(" stands for standard input, which is not")
    assert not_a_directory(Path("-")).startswith(" stands for standard input, expected a dir")
    (tmp_path / "-").write_text("timestamp,value\n")
    assert unreadable(Path("-"), "CSV") == ""


def test_utf16_appended_to_a_utf8_csv_is_its_own_bad_lines(tmp_path: Path) -> None:
    """t180: UTF-16 lines after UTF-8 rows (Windows PowerShell's `>>` appends UTF-16 to
    a UTF-8 file) refused the whole file as "binary data (byte 0x00 at offset 216)",
    even with --on-error skip. Now each UTF-16 line is a bad row saying so, the UTF-8
    rows are read, and the NUL of the last LF is no line of its own."""
    from streams.feeds import load_events

    path = tmp_path / "r.csv"
    rows = "".join(f"2026-11-01T10:0{i}:00Z,s1,water_level,1.5,m,c1\n" for i in range(3))
    more = "\ufeff2026-11-01T10:05:00Z,s1,water_level,1.6,m,c1\n2026-11-01T10:06:00Z,s1,water_level,1.7,m,c1\n"
    path.write_bytes(
        ("timestamp,sensor_id,kind,value,unit,grid_cell\n" + rows).encode()
        + more.encode("utf-16-le")
    )
    assert unreadable(path, "CSV") == ""
    bad: list[object] = []
    assert len(load_events([path], "skip", bad)) == 3
    said = (
        "the line is UTF-16 text, not UTF-8 (a part written in another encoding: Windows "
        "PowerShell's >> appends UTF-16 to a file); save the file as UTF-8"
    )
    assert [str(b) for b in bad] == [f"{path}:5: {said}", f"{path}:6: {said}"]
