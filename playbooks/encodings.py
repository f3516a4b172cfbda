"""Which encoding a file or payload that is not UTF-8 was written in, for the one line
that refuses it: UTF-16 or UTF-32 (with a byte order mark, or without one: its NULs),
a legacy CJK encoding (GBK/GB18030, Big5, Shift_JIS, EUC-KR) or Latin-1.

Pure byte logic, shared by every reader: the CSV files (``streams/csvfile.py``), the
JSON payloads (``streams/events.py``), the YAML files (``playbooks/loader.py``: grid,
playbooks, routing; the tokens file, units profiles) and any other file read whole
(``citybrain.errors.utf8_text``). Here, not in ``streams.errors``, so that the playbooks
package, which imports nothing of streams, says them the same way (t121: the grid said
a UTF-32 file was UTF-16, a UTF-16 one without a byte order mark had a bad byte at line
185, and a GBK one was not guessed at).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import itertools
import re
import unicodedata
from collections.abc import Callable

import charset_normalizer


# Legacy encodings a city's files and gateways still write, each with the test that its
# text is plausible: (codec, name said, whether a decoded character is common text of
# that script in that encoding). Strict decoding alone proves little: most byte strings
# past ASCII decode as GBK, and Latin-1 decodes everything.
def _common_in(codec: str, leads: tuple[tuple[int, int], ...]) -> Callable[[str], bool]:
    def common(c: str) -> bool:
        try:
            lead = c.encode(codec)[0]
        except UnicodeEncodeError:
            return False
        return any(lo <= lead <= hi for lo, hi in leads)

    return common


_CJK_PUNCT = (0xA1, 0xA3)  # full-width punctuation and symbols, in each EUC-style table
_LEGACY: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    # GB2312's punctuation rows and its 3,755 level-1 hanzi (rows 16-55).
    (
        "gb18030",
        "GBK/GB18030 (Simplified Chinese)",
        _common_in("gb2312", (_CJK_PUNCT, (0xB0, 0xD7))),
    ),
    # Big5's symbols and its 5,401 frequently used characters (0xA440-0xC67E).
    (
        "big5",
        "Big5 (Traditional Chinese: Taiwan, Hong Kong)",
        _common_in("big5", ((0xA1, 0xA3), (0xA4, 0xC6))),
    ),
    # Shift_JIS's symbols, kana and JIS level-1 kanji; not half-width katakana (one byte
    # each, 0xA1-0xDF: any Latin text past ASCII reads as them).
    ("cp932", "Shift_JIS (Japanese)", _common_in("shift_jis", ((0x81, 0x83), (0x88, 0x98)))),
    # EUC-KR's symbols and its 2,350 Hangul syllables (rows 16-40).
    ("cp949", "EUC-KR (Korean)", _common_in("euc_kr", (_CJK_PUNCT, (0xB0, 0xC8)))),
)
LATIN = "Latin-1 or Windows-1252"
# From this many bytes past ASCII (about eight characters) on, a text's language is told
# by its character frequencies; below it, two scripts' common characters are not.
_TELL_APART_BYTES = 16
# Past this many bytes only the start is looked at: the guess is for a message, never work.
_GUESS_BYTES = 64 * 1024


# NULs in a row from which they are a block of a file left unwritten (a crash while it was
# written: the file system zero-fills what was allocated but never written), not text in
# any encoding (UTF-16 and UTF-32 text has at most 3 in a row but for U+0000 itself).
NUL_RUN = 16
_NUL_RUNS = re.compile(rb"\x00{%d,}" % NUL_RUN)


def nul_block(text: str | bytes, at: int) -> str | None:
    """``4,096 NULs in a row, a block of the file left unwritten (by a crash while it was
    written?)`` when ``text`` holds a run of ``NUL_RUN`` NULs or more from ``at``, else
    None: how every reader names a file a crash left padded (t180)."""
    if isinstance(text, str):
        run = len(text) - at - len(text[at:].lstrip("\x00"))
    else:
        run = len(text) - at - len(text[at:].lstrip(b"\x00"))
    if run < NUL_RUN:
        return None
    return (
        f"{run:,} NULs in a row, a block of the file left unwritten (by a crash while it "
        "was written?)"
    )


def wide_without_bom(data: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte order mark, told by its NULs (ASCII in UTF-16LE
    is a NUL after each byte; in UTF-16BE before it), or None. Runs of ``NUL_RUN`` NULs
    or more are no text's and left out (t180: a tokens file of 21 bytes a crash padded
    with 100 NULs was said to be UTF-32BE)."""
    head = _NUL_RUNS.sub(b"", data[:_GUESS_BYTES])
    if len(head) < 4 or head.count(0) * 4 < len(head):
        return None
    quarter = len(head) // 4 * 4
    if quarter and all(head[i:quarter:4].count(0) * 5 >= quarter for i in (1, 2)):
        order = "LE" if head[0:quarter:4].count(0) * 5 < quarter else "BE"
        return f"UTF-32{order} without a byte order mark"
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if max(odd, even) * 10 >= len(head) * 4:  # most of one half is NUL, little of the other
        return (
            "UTF-16LE without a byte order mark"
            if odd > even
            else "UTF-16BE without a byte order mark"
        )
    return None


def _latin_words(data: bytes) -> bool:
    """Whether every byte past ASCII reads in Windows-1252 as a letter beside an ASCII
    letter, or as its typographic punctuation (``Z\xfcrich``, ``caf\xe9``, ``\x93q\x94``):
    Latin-1 text, not a stray byte of binary data."""
    high = [i for i, b in enumerate(data) if b >= 0x80]
    for i in high:
        c = data[i : i + 1].decode("cp1252", "replace")
        if c in "\u2018\u2019\u201c\u201d\u2013\u2014\u20ac\u00b0\u00a0":
            continue
        if not c.isalpha():
            return False
        near = data[max(0, i - 1) : i] + data[i + 1 : i + 2]
        if not any(chr(b).isalpha() or b >= 0x80 for b in near):
            return False
    return bool(high)


def _adjacent_high(data: bytes) -> bool:
    """Whether two bytes past ASCII stand side by side in ``data``."""
    return any(a >= 0x80 and b >= 0x80 for a, b in itertools.pairwise(data))


def likely_encodings(data: bytes) -> list[str]:
    """The legacy encodings bytes that are not UTF-8 were most plausibly written in,
    best first (several when the bytes cannot tell them apart: two Hangul syllables in
    EUC-KR are two common hanzi in GBK), or ``[]`` when none fits (a stray byte of binary
    data). UTF-16 or UTF-32 without a byte order mark (NULs), GBK/GB18030, Big5,
    Shift_JIS, EUC-KR (every character past ASCII a common one of its script), else
    Latin-1/Windows-1252 (letters inside words). Looks at the first 64 KiB only."""
    head = data[:_GUESS_BYTES]
    wide = wide_without_bom(head)
    if wide is not None:
        return [wide]
    found: dict[str, str] = {}  # codec -> name, in _LEGACY's order
    for codec, name, common in _LEGACY:
        decoder = codecs.getincrementaldecoder(codec)("strict")
        try:
            text = decoder.decode(head, final=len(head) == len(data))
        except UnicodeDecodeError:
            continue
        past = [c for c in text if ord(c) >= 0x80]
        if past and all(map(common, past)):
            found[codec] = name
    if found and _latin_words(head) and not _adjacent_high(head):
        # Every byte past ASCII alone between ASCII ones, each a Windows-1252 letter or
        # its typographic punctuation: Latin-1 text. CJK text has runs of such bytes
        # (kana, hangul, common hanzi); one alone read as a double-byte character with
        # an ASCII letter (t162: "it\x92s loud", Windows-1252's apostrophe, was said to
        # look Shift_JIS).
        return [LATIN]
    if len(found) > 1 and sum(b >= 0x80 for b in head) >= _TELL_APART_BYTES:
        # Each reads as common text of its script: which language it reads as is
        # charset_normalizer's to judge (character frequencies per language); a short
        # text stays ambiguous, every candidate named.
        best = charset_normalizer.from_bytes(head, cp_isolation=list(found)).best()
        if best is not None and best.encoding in found:
            return [found[best.encoding]]
    if found:
        return list(found.values())
    return [LATIN] if _latin_words(head) else []


def legacy_encoding(data: bytes) -> str:
    """The encoding bytes that are not UTF-8 were most likely written in, for the hint
    ``(a … file? save it as UTF-8)``: ``likely_encoding``'s, else ``Latin-1 or
    Windows-1252`` (t109: a Chengdu file in GBK was said to look Latin-1, which it is
    not)."""
    return likely_encoding(data) or LATIN


def likely_encoding(data: bytes) -> str | None:
    """``likely_encodings`` said in one phrase (``Big5 (…)``, ``GBK/GB18030 (…) or
    EUC-KR (…)``), or None when none fits (t112: Big5, Shift_JIS, EUC-KR, UTF-16 without
    a byte order mark and Latin-1 were said as GBK or not at all)."""
    names = likely_encodings(data)
    if len(names) > 2:
        return f"{', '.join(names[:-1])} or {names[-1]}"
    return " or ".join(names) if names else None


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def wide_encoding(data: bytes) -> str | None:
    """UTF-32 or UTF-16 as ``data`` (a file's first bytes, or all of them) shows it: its
    byte order mark (``UTF-32 (it starts with a UTF-32 byte order mark)``; UTF-32's
    little-endian mark is checked first, since it starts with UTF-16's), else its NULs
    (``wide_without_bom``); None for anything else."""
    if data.startswith(UTF32_BOMS):
        return "UTF-32 (it starts with a UTF-32 byte order mark)"
    if data.startswith(UTF16_BOMS):
        return "UTF-16 (it starts with a UTF-16 byte order mark)"
    return wide_without_bom(data)


# What a message or payload that is no text starts with, as its sender would know it:
# compressed JSON (a gateway gzipping its body, a producer compressing the value itself
# rather than leaving it to Kafka's batch compression) or a binary serialisation.
_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "LZ4"),
    (b"\xff\x06\x00\x00sNaPpY", "Snappy"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


SCHEMA_REGISTRY = "Confluent Schema Registry wire format"
# CBOR's self-described tag (55799, RFC 8949 3.4.6), which some encoders write first.
_CBOR_SELF_DESCRIBED = b"\xd9\xd9\xf7"


def schema_registry_form(data: bytes) -> str | None:
    """``Confluent Schema Registry wire format (magic byte 0, schema id 7, then JSON
    text)`` for bytes a Schema Registry serializer wrote (KafkaAvroSerializer,
    KafkaJsonSchemaSerializer, KafkaProtobufSerializer, Kafka Connect's AvroConverter):
    a zero byte, the schema's id as a 4-byte big-endian integer, then the data (Avro or
    Protobuf bytes, or JSON text); None for other bytes. UTF-16BE or UTF-32BE text, which
    starts with a zero byte too, is told apart by its NULs (``wide_without_bom``)."""
    if len(data) < 5 or data[0] != 0 or wide_without_bom(data) is not None:
        return None
    schema_id = int.from_bytes(data[1:5], "big")
    rest = data[5:].lstrip()
    then = (
        "nothing after it"
        if not rest
        else "then JSON text"
        if rest[:1] in (b"{", b"[")
        else "then Avro or Protobuf bytes"
    )
    return f"{SCHEMA_REGISTRY} (magic byte 0, schema id {schema_id}, {then})"


def binary_format(data: bytes) -> str | None:
    """What bytes that are no UTF-8 JSON text were most likely written as, for the reason
    that refuses them (t137: a gzipped Kafka value or MQTT payload was "byte 0x00 (NUL)
    at offset 3 (UTF-16 or UTF-32 text? …)", which sent its sender to look for a text
    encoding): ``gzip-compressed``, ``zstd-``, ``LZ4-``, ``Snappy-``, ``xz-``,
    ``bzip2-compressed`` by their magic bytes, ``zlib-compressed`` by its header (the
    first two bytes a multiple of 31, deflate, 32 KiB window), the Confluent Schema
    Registry's wire format (``schema_registry_form``), ``MessagePack`` or ``CBOR`` by a
    map whose first key is text (their usual document; CBOR's also of indefinite length
    or after its self-described tag, as streaming encoders write it); None for any
    other bytes. Before t170 the Schema Registry's frame and those CBOR maps were
    "binary data" or a byte "not UTF-8" alone."""
    for magic, name in _COMPRESSED:
        if data.startswith(magic):
            return f"{name}-compressed"
    registry = schema_registry_form(data)
    if registry is not None:
        return registry
    if data.startswith(_CBOR_SELF_DESCRIBED):
        return "CBOR"
    if len(data) >= 2:
        first, second = data[0], data[1]
        if first == 0x78 and (first << 8 | second) % 31 == 0 and not second & 0x20:
            return "zlib-compressed"
        if (0x80 <= first <= 0x8F and 0xA0 <= second <= 0xBF) or first in (0xDE, 0xDF):
            return "MessagePack"
        if 0xA1 <= first <= 0xB7 and 0x61 <= second <= 0x77:
            return "CBOR"
        # A MessagePack list of such maps (a batch of documents): a short array, then
        # the map's head and its first key's (before t170 guessed to be Shift_JIS text).
        # (A CBOR list of maps begins as a MessagePack map does: said as MessagePack.)
        third = data[2] if len(data) >= 3 else 0
        if 0x91 <= first <= 0x9F and 0x81 <= second <= 0x8F and 0xA0 <= third <= 0xBF:
            return "MessagePack"
        # A map of indefinite length (0xbf) or of 24 to 255 pairs (0xb8 n), text first.
        if first == 0xBF and 0x61 <= second <= 0x77:
            return "CBOR"
        if first == 0xB8 and len(data) >= 3 and second >= 24 and 0x61 <= data[2] <= 0x77:
            return "CBOR"
    return None


_FORM = re.compile(r"[\w.\-\[\]%]+=[^&\s]*(?:&[\w.\-\[\]%]+=[^&\s]*)*")
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-\s]{8,}={0,2}")
_YAML_LINE = re.compile(r"(?:---\s*\n\s*)?[A-Za-z_][\w\-]*:(?:\s|$)")


def text_format(text: str) -> str | None:
    """What UTF-8 text that does not even start as JSON was most likely written as, with
    what to send instead, for the reason that refuses it (t165: an XML document, a URL-
    encoded or multipart form, base64 of the JSON, YAML or CSV were each "found '…':
    expected a value", which named no cause; binary forms: ``binary_format``). None for
    any other text. Reads at most the first 4,000 characters."""
    head = text[:4000].strip()
    if head.startswith("<"):
        return "XML or HTML, not JSON? send the JSON document itself"
    if head.startswith("--") and "content-disposition" in head[:400].lower():
        return (
            "a multipart form (curl -F), not JSON? send the JSON as the body itself "
            "(curl --data-binary @file.json)"
        )
    if _BASE64.fullmatch(head):
        compact = re.sub(r"\s", "", head)
        try:
            decoded = base64.b64decode(compact[:400] + "=" * (-len(compact[:400]) % 4), b"-_")
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded.lstrip()[:1] in (b"{", b"["):
            return "base64-encoded JSON? send the JSON itself, not encoded"
    if _FORM.fullmatch(head):
        return "a URL-encoded form (key=value&…), not JSON? send a JSON object"
    first = head.split("\n", 1)[0]
    if _YAML_LINE.match(head) and not first.lstrip().startswith(("{", "[", '"')):
        return "YAML (key: value lines), not JSON? send a JSON object"
    if first.count(",") >= 2 and "\n" in head and not first.startswith(("{", "[", '"')):
        return "CSV, not JSON? send JSON (citybrain replay reads CSV files)"
    return None


def not_utf8_guess(data: bytes, start: int | None = None) -> str:
    """``a GBK/GB18030 (Simplified Chinese) file? `` (``likely_encoding``'s guess, said
    before ``save the file as UTF-8``), or "" when none fits (a stray byte of binary
    data). With ``start``, the offset of the first byte that is not UTF-8, a UTF-8 slip
    (``utf8_slip``) is said instead, ending in ``; ``."""
    slip = utf8_slip(data, start) if start is not None else None
    if slip is not None:
        return f"{slip} " if slip.endswith((" or", "?")) else f"{slip}; "
    encoding = likely_encoding(data)
    return f"a {encoding} file? " if encoding else ""


# Byte sequences no UTF-8 encoder writes though tools that mean UTF-8 do: an overlong form
# (two bytes or more for a character UTF-8 writes in fewer; Java's modified UTF-8 writes
# U+0000 as C0 80) and a UTF-16 surrogate written as three bytes (CESU-8, and Java's
# modified UTF-8 for characters past U+FFFF).
_OVERLONG = re.compile(
    rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}"
)
_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")
_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


def _utf8_start(tail: bytes) -> bool:
    """Whether ``tail`` (1 to 3 bytes) is the start of a UTF-8 character, cut short."""
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(tail, final=False) == ""
    except UnicodeDecodeError:
        return False


def utf8_slip(data: bytes, start: int) -> str | None:
    """What the byte at ``start`` of ``data`` (the first that is not UTF-8) is when
    ``data`` is otherwise UTF-8, or None: the file's end cutting a character short (a
    copy or write stopped part-way: only where ``data`` ends, so the caller hands a
    file's last line whole), an overlong form or a surrogate written as UTF-8 (Java's
    modified UTF-8, CESU-8). t180: a file cut inside its last ``é`` was said to look
    Latin-1, and the overlong ``0xc0 0xaf`` GBK, Big5 or EUC-KR."""
    line = data.rfind(b"\n", 0, start) + 1
    if line and wide_encoding(data[line : line + 64]):
        # t180: UTF-16 appended to a UTF-8 file (Windows PowerShell's `>>`), its byte
        # order mark the first byte that is not UTF-8.
        return (
            "UTF-16 text from this line on, not UTF-8 (a part written in another encoding: "
            "Windows PowerShell's >> appends UTF-16 to a file)"
        )
    tail = data[start:]
    before = data[max(0, start - _GUESS_BYTES) : start]
    if 0 < len(tail) < 4 and _utf8_start(tail):
        # A lone byte past ASCII ending a file of ASCII may as well be Latin-1 (café
        # without a final newline): cut only when UTF-8 was written before it.
        shown = " ".join(f"0x{b:02x}" for b in tail)
        cut = (
            f"the file ends part-way through a UTF-8 character ({shown}), cut short "
            "(copied, or read, while it was written?)"
        )
        if len(tail) > 1 or _MULTIBYTE.search(before):
            return f"{cut}: copy it whole again, or"
        return f"{cut}, or a {LATIN} file?"
    head = data[start : start + _GUESS_BYTES]
    rest = _SURROGATE.sub(b"", _OVERLONG.sub(b"", head))
    try:
        # Not final: the head may end inside a character.
        codecs.getincrementaldecoder("utf-8")().decode(rest, final=False)
    except UnicodeDecodeError:
        return None  # other bytes are not UTF-8 either: a legacy encoding's guess
    # Short text in a double-byte encoding can look the same (0xc0 0xa1 is a GBK hanzi).
    legacy = likely_encoding(data)
    also = f" (or a {legacy} file?)" if legacy and legacy != LATIN else ""
    if overlong := _OVERLONG.match(data, start):
        form = overlong.group()
        shown = " ".join(f"0x{b:02x}" for b in form)
        value = form[0] & (0x1F if len(form) == 2 else 0x0F if len(form) == 3 else 0x07)
        for b in form[1:]:
            value = value << 6 | b & 0x3F
        java = " (Java's modified UTF-8 writes it so)" if value == 0 else ""
        return f"{shown} is U+{value:04X} in an overlong form, which UTF-8 forbids{java}{also}"
    if surrogate := _SURROGATE.match(data, start):
        shown = " ".join(f"0x{b:02x}" for b in surrogate.group())
        return (
            f"{shown} is a UTF-16 surrogate written as UTF-8, which UTF-8 forbids (CESU-8, "
            f"or Java's modified UTF-8, writes characters past U+FFFF so){also}"
        )
    return None


# Characters that show nothing though they are neither white space nor format characters:
# Hangul fillers and the blank Braille pattern, which chat apps' "empty message" tricks use.
_SHOWS_NOTHING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only white space, invisible format characters
    (zero-width space and joiners, U+FEFF, direction marks: Unicode category Cf) and
    fillers that render empty (``_SHOWS_NOTHING``). ``str.strip`` leaves the others, so a
    report's text, a resolve's note or a silence's reason of one zero-width space passed
    as "not blank" (t137)."""
    return all(c.isspace() or c in _SHOWS_NOTHING or unicodedata.category(c) == "Cf" for c in text)
