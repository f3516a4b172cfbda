"""Integers the worker's encoder cannot write (t128): ``wide_integer`` finds the first
past -2**63 to 2**64 - 1 with its place, and ``refuse_unwritable_number`` refuses it with the
caller's reason, naming the place and the integer as sent."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import EventError
from streams.events import message_json, refuse_unwritable_number, wide_integer


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b'{"value": 18446744073709551616}', ("value", 2**64)),
        (b'{"a": {"b": [1, -9223372036854775809]}}', ("a.b[1]", -(2**63) - 1)),
        (b'{"v": 18446744073709551615, "w": -9223372036854775808}', None),
        (b'{"v": 123456789012345678901234567890.5}', None),  # a float: written as one
        (b'{"t": "18446744073709551616"}', None),  # text
    ],
)
def test_the_first_integer_past_64_bits_is_found_with_its_place(
    raw: bytes, found: tuple[str, int] | None
) -> None:
    doc = message_json(raw)
    assert wide_integer(doc) == found
    if found is None:
        refuse_unwritable_number(raw, doc, "bad_alert")
        orjson.dumps(doc)  # what the worker writes of it
    else:
        with pytest.raises(EventError) as refused:
            refuse_unwritable_number(raw, doc, "bad_alert", at="")
        assert refused.value.code == "bad_alert" and refused.value.field == found[0]
        assert str(refused.value).startswith(f'field "{found[0]}" is {found[1]}: an integer')


def test_an_integer_of_thousands_of_digits_is_named_as_sent() -> None:
    raw = b'{"alert": {"value": 1' + b"0" * 5000 + b"}}"
    with pytest.raises(EventError, match=r'field "alert.value" is 10000'):
        refuse_unwritable_number(raw, message_json(raw), "bad_alert")
