"""Bytes that are not UTF-8 are said with the encoding they most likely are (t109): a
Chengdu replay file or gateway payload in GBK was said to be "a Latin-1 or Windows-1252
file?", which sent its user the wrong way; Latin-1 is still said as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.errors import InputError, utf8_text
from streams.csvfile import BadRow
from streams.errors import EventError, legacy_encoding
from streams.events import decode_json
from streams.feeds import load_events

GBK = "GBK/GB18030 (Chinese Windows; or Big5, Shift_JIS, EUC-KR)"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ("成都市 噪音投诉".encode("gbk"), GBK),
        ("锦江区,噪音".encode("gb18030"), GBK),
        ("Zürich café".encode("latin-1"), "Latin-1 or Windows-1252"),
        ("Straße,München".encode("cp1252"), "Latin-1 or Windows-1252"),
        (b"\xff", "Latin-1 or Windows-1252"),
    ],
)
def test_the_likely_encoding(data: bytes, said: str) -> None:
    assert legacy_encoding(data) == said


def test_a_gbk_replay_row_is_said_to_be_gbk(tmp_path: Path) -> None:
    path = tmp_path / "chengdu.csv"
    path.write_bytes(
        b"timestamp,report_id,category,text,source,grid_cell\n"
        + "2024-05-27T03:10:10Z,r1,噪音,锦江区 噪音,app,c1\n".encode("gbk")
        + b"2024-05-27T03:10:11Z,r2,Noise,loud,app,c1\n"
    )
    bad: list[BadRow] = []
    events = load_events([path], on_error="skip", bad_rows=bad)
    assert len(events) == 1 and [b.line for b in bad] == [2]
    assert f"is not UTF-8 (a {GBK} file? save it as UTF-8)" in bad[0].reason


def test_a_gbk_payload_is_said_to_be_gbk() -> None:
    with pytest.raises(EventError) as caught:
        decode_json('{"value": 1.5, "sensor_id": "成都-pm25"}'.encode("gbk"))
    assert caught.value.code == "bad_json" and f"{GBK} text?" in caught.value.reason


def test_a_latin1_payload_gets_no_guess() -> None:
    with pytest.raises(EventError) as caught:
        decode_json(b'{"sensor_id": "caf\xe9"}')
    assert caught.value.reason.endswith("is not UTF-8 (JSON is UTF-8 text, RFC 8259)")


def test_a_gbk_file_read_whole_is_said_to_be_gbk(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_bytes("units:\n  - name: 成都市应急管理局\n".encode("gbk"))
    with pytest.raises(InputError) as caught:
        utf8_text(path)
    assert f"(a {GBK} file? save the file as UTF-8)" in str(caught.value)
