"""Bytes that are not UTF-8 are said with the encoding they most likely are (t109): a
Chengdu replay file or gateway payload in GBK was said to be "a Latin-1 or Windows-1252
file?", which sent its user the wrong way. t112: Big5, Shift_JIS and EUC-KR were all said
as "GBK/GB18030 (…; or Big5, Shift_JIS, EUC-KR)" or not at all, a payload of Latin-1 words
and a YAML file in UTF-16 without a byte order mark got no guess: each is named now, on
every path (a replay row, a payload at any edge, a file read whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.errors import InputError, utf8_text
from streams.csvfile import BadRow
from streams.errors import EventError, legacy_encoding, likely_encoding
from streams.events import decode_json
from streams.feeds import load_events

GBK = "GBK/GB18030 (Simplified Chinese)"
BIG5 = "Big5 (Traditional Chinese: Taiwan, Hong Kong)"
SJIS = "Shift_JIS (Japanese)"
EUC_KR = "EUC-KR (Korean)"
LATIN = "Latin-1 or Windows-1252"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ("成都市 噪音投诉".encode("gbk"), GBK),
        ("锦江区,噪音".encode("gb18030"), GBK),
        ("臺北市信義區 噪音陳情 深夜施工".encode("big5"), BIG5),
        ("香港九龍旺角 街道噪音投訴".encode("big5"), BIG5),
        ("東京都新宿区 騒音の苦情 深夜工事".encode("shift_jis"), SJIS),
        ("センサー".encode("shift_jis"), SJIS),
        ("서울특별시 강남구 소음 민원 야간 공사".encode("euc_kr"), EUC_KR),
        ("Zürich café".encode("latin-1"), LATIN),
        ("Straße,München".encode("cp1252"), LATIN),
        ('{"text": "“loud”"}'.encode("cp1252"), LATIN),
        # t162: Windows-1252's apostrophe and dashes, each alone between ASCII letters,
        # read in Shift_JIS as a kanji with the letter after it
        ("it’s loud".encode("cp1252"), LATIN),
        ("don’t – can’t".encode("cp1252"), LATIN),
        (
            '{"value": 1.5, "sensor_id": "g1"}'.encode("utf-16-le"),
            "UTF-16LE without a byte order mark",
        ),
        (
            '{"value": 1.5, "sensor_id": "g1"}'.encode("utf-16-be"),
            "UTF-16BE without a byte order mark",
        ),
        (b"\xff", LATIN),  # a replay row's fallback: no guess fits a stray byte
    ],
)
def test_the_likely_encoding(data: bytes, said: str) -> None:
    assert legacy_encoding(data) == said


def test_two_characters_that_fit_three_encodings_name_all_three() -> None:
    # Two common hanzi in GBK are common characters in Big5 and EUC-KR too: no
    # frequency tells them apart, so none is named alone.
    said = likely_encoding("成都".encode("gbk"))
    assert said == f"{GBK}, {BIG5} or {EUC_KR}"
    assert likely_encoding(b'{"x": "\xff"}') is None  # binary data: no guess


@pytest.mark.parametrize(
    ("text", "codec", "said"),
    [
        ("臺北 噪音陳情 深夜施工", "big5", BIG5),
        ("新宿区 深夜工事の騒音です", "shift_jis", SJIS),
        ("강남구 야간 공사 소음 민원", "euc_kr", EUC_KR),
        ("café fermé", "latin-1", LATIN),
    ],
)
def test_a_payload_in_a_legacy_encoding_names_it(text: str, codec: str, said: str) -> None:
    with pytest.raises(EventError) as caught:
        decode_json(f'{{"value": 1.5, "text": "{text}"}}'.encode(codec))
    assert f"; {said} text? re-encode it as UTF-8)" in caught.value.reason, caught.value.reason


def test_a_utf16_payload_without_a_byte_order_mark_names_it() -> None:
    with pytest.raises(EventError) as caught:
        decode_json('{"value": 1.5}'.encode("utf-16-le"))
    assert "(UTF-16LE without a byte order mark text? re-encode it as UTF-8" in (
        caught.value.reason
    )


@pytest.mark.parametrize(
    ("text", "codec", "said"),
    [("臺北市政府環境保護局", "big5", BIG5), ("新宿区役所 環境課", "shift_jis", SJIS)],
)
def test_a_replay_row_in_a_legacy_encoding_names_it(
    tmp_path: Path, text: str, codec: str, said: str
) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(
        b"timestamp,report_id,category,text,source,grid_cell\n"
        + f"2024-05-27T03:10:10Z,r1,noise,{text},app,c1\n".encode(codec)
    )
    bad: list[BadRow] = []
    load_events([path], on_error="skip", bad_rows=bad)
    assert f"is not UTF-8 (a {said} file? save it as UTF-8)" in bad[0].reason


def test_a_file_in_utf16_without_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_bytes("units:\n  - name: Bridge works\n".encode("utf-16-le"))
    with pytest.raises(InputError) as caught:
        utf8_text(path)
    assert str(caught.value) == (
        f"{path}: the file is UTF-16LE without a byte order mark; save it as UTF-8"
    )


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
    # Short: GBK first, the others its two characters also fit named after it.
    assert caught.value.code == "bad_json" and f"; {GBK}, " in caught.value.reason


def test_a_latin1_payload_is_said_to_be_latin1() -> None:
    with pytest.raises(EventError) as caught:
        decode_json(b'{"sensor_id": "caf\xe9"}')
    assert caught.value.reason.endswith(
        f"is not UTF-8 (JSON is UTF-8 text, RFC 8259; {LATIN} text? re-encode it as UTF-8)"
    )


def test_a_gbk_file_read_whole_is_said_to_be_gbk(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_bytes("units:\n  - name: 成都市应急管理局\n".encode("gbk"))
    with pytest.raises(InputError) as caught:
        utf8_text(path)
    assert f"(a {GBK} file? save the file as UTF-8)" in str(caught.value)
