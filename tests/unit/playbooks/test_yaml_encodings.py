"""Every file citybrain reads whole names the encoding a file that is not UTF-8 is in, as
the CSV readers do (t121): the grid, a playbook, the routing tree and the tokens file
said a UTF-32 file was UTF-16 (its byte order mark starts with UTF-16's), a UTF-16 file
without a byte order mark had "byte 0xc5 at column 18" at line 185 (the first line past
ASCII; every NUL before it is UTF-8), and a GBK or Latin-1 file was given no guess; a
units profile with a UTF-16 byte order mark was said to have none; NAB's labels file
named a byte offset and no line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from citybrain.errors import InputError, utf8_text
from citybrain.nab import read_windows
from playbooks.errors import PlaybookError
from playbooks.loader import PLAYBOOK_DIR, load_grid, load_playbook, load_playbooks, load_routing
from streams.auth import TokenStore
from streams.errors import SettingsError

GBK = "GBK/GB18030 (Simplified Chinese)"
LATIN = "Latin-1 or Windows-1252"
GRID = """version: 1
cells:
  - {id: beijing, level: city, name: Beijing, unit: Beijing city duty office}
sensors:
  - {id: bj-pm25, kind: pm25, unit: ug/m3, cell: beijing}
"""

# (how a text is encoded, what the refusal says of it)
WIDE = [
    ("utf-32", "the file is UTF-32 (it starts with a UTF-32 byte order mark)"),
    ("utf-16", "the file is UTF-16 (it starts with a UTF-16 byte order mark)"),
    ("utf-16-le", "the file is UTF-16LE without a byte order mark"),
    ("utf-16-be", "the file is UTF-16BE without a byte order mark"),
]


def _grid(path: Path) -> Any:
    return load_grid(path, cache_dir=path.parent / "cache")


def _routing(path: Path) -> Any:
    return load_routing(path, load_playbooks(PLAYBOOK_DIR))


# Each YAML reader of the playbooks package, with a file it reads (its text, ASCII
# only up to a name that then carries a character past ASCII).
READERS: list[tuple[str, Callable[[Path], Any], str]] = [
    ("grid", _grid, GRID + "# 东四站\n"),
    (
        "routing",
        _routing,
        "version: 1\nroute: {playbook: sensor-anomaly, group_by: [kind]}\n# 东四站\n",
    ),
    (
        "playbook",
        load_playbook,
        (PLAYBOOK_DIR / "sensor-check.yaml").read_text(encoding="utf-8") + "# 东四站\n",
    ),
]


@pytest.mark.parametrize(("encoding", "said"), WIDE)
@pytest.mark.parametrize(("name", "read", "text"), READERS, ids=[r[0] for r in READERS])
def test_a_yaml_file_in_utf16_or_utf32_is_named_so_at_line_1(
    tmp_path: Path, name: str, read: Callable[[Path], Any], text: str, encoding: str, said: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(PlaybookError) as refused:
        read(path)
    assert str(refused.value) == (
        f"{path}:1: {said}; citybrain reads YAML files as UTF-8 only: save it as UTF-8"
    )


@pytest.mark.parametrize(("name", "read", "text"), READERS, ids=[r[0] for r in READERS])
def test_a_yaml_file_in_gbk_is_said_to_look_gbk(
    tmp_path: Path, name: str, read: Callable[[Path], Any], text: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    data = text.encode("gb18030")
    path.write_bytes(data)
    line = data[: data.index("东".encode("gb18030"))].count(b"\n") + 1
    with pytest.raises(PlaybookError) as refused:
        read(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:{line}: byte 0xb6 at column 3 is not UTF-8")
    assert message.endswith(f"(a {GBK} file? save the file as UTF-8)")


def test_a_tokens_file_in_gbk_or_utf16_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    text = "tokens:\n  - {name: 东四, role: operator, sha256: x}\n"
    path.write_bytes(text.encode("gb18030"))
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert str(refused.value) == (
        f"CITYBRAIN_API_TOKENS_FILE {path}:2: byte 0xb6 is not UTF-8 "
        f"(a {GBK} file? save the file as UTF-8)"
    )
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert str(refused.value) == (
        f"CITYBRAIN_API_TOKENS_FILE {path}:1: the file is UTF-16LE without a byte order "
        "mark; save it as UTF-8"
    )


@pytest.mark.parametrize(("encoding", "said"), WIDE)
def test_a_file_read_whole_names_its_byte_order_mark(
    tmp_path: Path, encoding: str, said: str
) -> None:
    # A units profile in UTF-16 with its mark was "UTF-16LE without a byte order mark",
    # one in UTF-32 "UTF-16LE" too.
    path = tmp_path / "units.yaml"
    path.write_bytes("units:\n  - name: 东四\n".encode(encoding))
    with pytest.raises(InputError) as refused:
        utf8_text(path, "--units")
    assert str(refused.value) == f"--units {path}: {said}; save it as UTF-8"


def test_nab_labels_not_utf8_name_their_line_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "combined_windows.json"
    path.write_bytes('{\n  "realKnownCause/café.csv": []\n}\n'.encode("latin-1"))
    with pytest.raises(InputError) as refused:
        read_windows(path)
    assert str(refused.value) == (
        f"{path}:2: byte 0xe9 is not UTF-8 (a {LATIN} file? save the file as UTF-8)"
    )
    path.write_bytes('{"realKnownCause/x.csv": []}\n'.encode("utf-16"))
    with pytest.raises(InputError) as refused:
        read_windows(path)
    assert "the file is UTF-16 (it starts with a UTF-16 byte order mark)" in str(refused.value)


@pytest.mark.parametrize(("name", "read", "text"), READERS, ids=[r[0] for r in READERS])
def test_a_yaml_file_padded_with_nuls_or_holding_a_control_character_names_its_line(
    tmp_path: Path, name: str, read: Callable[[Path], Any], text: str
) -> None:
    """t180: a YAML file a crash padded with NULs (its last block allocated, never
    written), or holding a terminal's ESC, said "not valid YAML: unacceptable character
    #x0000: control characters are not allowed in "<unicode string>", position 2486",
    naming no line (and the position in bytes, not characters)."""
    path = tmp_path / f"{name}.yaml"
    line = text.count("\n") + 1
    path.write_bytes(text.encode() + b"\x00" * 4096)
    with pytest.raises(PlaybookError) as refused:
        read(path)
    assert str(refused.value) == (
        f"{path}:{line}: character U+0000 (NUL) at column 1 is not allowed in YAML: 4,096 "
        "NULs in a row, a block of the file left unwritten (by a crash while it was "
        "written?); remove them, or write the file again"
    )
    path.write_bytes(text.encode() + b"# \x1b[31mred\n")
    with pytest.raises(PlaybookError) as refused:
        read(path)
    assert str(refused.value) == (
        f"{path}:{line}: character U+001B (ESC) at column 3 is not allowed in YAML; remove it"
    )


def test_a_tokens_file_padded_with_nuls_names_its_line_not_utf32(tmp_path: Path) -> None:
    """t180: 21 bytes of a tokens file and 100 NULs a crash left were said to be
    "UTF-32BE without a byte order mark" (its NULs counted as the encoding's)."""
    path = tmp_path / "tokens.yaml"
    path.write_bytes(b"tokens:\n  - name: x\n" + b"\x00" * 100)
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert str(refused.value).startswith(
        f"CITYBRAIN_API_TOKENS_FILE {path}:3: character U+0000 (NUL) at column 1 is not "
        "allowed in YAML: 100 NULs in a row"
    )


@pytest.mark.parametrize(
    ("data", "said"),
    [
        # A file cut inside its last character (a copy or write stopped part-way).
        ("caf\u00e9 ".encode() + "\u00e9".encode()[:1], "the file ends part-way through a"),
        (b"ab" + "\u20ac".encode()[:2], "ends part-way through a UTF-8 character (0xe2 0x82)"),
        # One byte past ASCII ending an ASCII file: Latin-1's as well.
        (b"caf\xe9", "(0xe9), cut short (copied, or read, while it was written?), or a Latin-1"),
        (b"a: /etc\xc0\xafpasswd\n", "0xc0 0xaf is U+002F in an overlong form, which UTF-8"),
        (b"a: x\xc0\x80y\n", "0xc0 0x80 is U+0000 in an overlong form, which UTF-8 forbids (Java"),
        (b"a: \xed\xa0\xbd\xed\xb8\x80\n", "0xed 0xa0 0xbd is a UTF-16 surrogate written as"),
    ],
)
def test_a_utf8_writers_slip_is_said_as_one(tmp_path: Path, data: bytes, said: str) -> None:
    """t180: a file cut inside its last character was said to look Latin-1, an overlong
    form (0xc0 0xaf for '/') GBK, Big5 or EUC-KR, a surrogate written as UTF-8 (CESU-8,
    Java's modified UTF-8) likewise; the files read whole, the YAML files and CSV rows
    name the slip."""
    path = tmp_path / "f.yaml"
    path.write_bytes(data)
    with pytest.raises(InputError) as whole:
        utf8_text(path)
    assert said in str(whole.value)
    with pytest.raises(PlaybookError) as yaml_file:
        _grid(path)
    assert said in str(yaml_file.value)
    from streams.feeds import load_events

    csv = tmp_path / "r.csv"
    header = b"timestamp,sensor_id,kind,value,unit,grid_cell\n"
    csv.write_bytes(header + b"2026-11-01T10:00:00Z,s1,water_level,1.5,m," + data.strip())
    bad: list[object] = []
    load_events([csv], "skip", bad)
    assert said in str(bad[0])


def test_a_legacy_files_guess_is_kept_when_it_is_no_utf8_slip() -> None:
    from playbooks.encodings import utf8_slip

    assert utf8_slip(b"x\xc0\xaf\xe9t\xe9", 1) is None  # Latin-1 bytes after it
    assert utf8_slip("Beijing \u4e1c\u56db".encode("gbk"), 8) is None


@pytest.mark.parametrize("mark", ["\ufeff", ""], ids=["bom", "no-bom"])
def test_utf16_appended_to_a_utf8_yaml_file_is_named_at_its_line(tmp_path: Path, mark: str) -> None:
    """t180: UTF-16 appended to a UTF-8 file (Windows PowerShell's `>>`): with its byte
    order mark it was "byte 0xff at column 1 is not UTF-8 (a Latin-1 or Windows-1252
    file? …)", without one "binary data" or libyaml's "unacceptable character #x0000 …
    position N"."""
    path = tmp_path / "grid.yaml"
    path.write_bytes(GRID.encode() + f"{mark}# more\nx: 1\n".encode("utf-16-le"))
    line = GRID.count("\n") + 1
    with pytest.raises(PlaybookError) as refused:
        _grid(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert "UTF-16 text from this line on, not UTF-8 (a part written in another" in message
