"""An integer past 64 bits is named with its own digits at every door.

orjson reads one as the nearest double without a word: 18446744073709551617 was named
``1.8446744073709552e+19`` in the worker's dead letter (a value nobody sent), while the
HTTP ingest's answer, read by another path, showed the digits (t95's battery)."""

from __future__ import annotations

import pytest

from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator, decode_json
from tests.unit.streams.test_columns import batched, good, home_of_gauge
from tests.unit.streams.test_poison_pills import NOW


@pytest.mark.parametrize(
    "digits", ["18446744073709551616", "18446744073709551617", "-9223372036854775809", "9" * 30]
)
def test_an_integer_past_64_bits_keeps_its_digits(grid: Grid, digits: str) -> None:
    assert decode_json(b'{"v": ' + digits.encode() + b"}") == {"v": int(digits)}
    raw = good(1).replace(b'"value": 1.5', b'"value": ' + digits.encode())
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(raw, NOW)
    assert caught.value.code == "out_of_range"
    assert str(caught.value).startswith(f'field "value" is {digits[:77]}')
    # The batch's fast path (msgspec, a float) leaves it to the validator: the same words.
    [(_, code, said, _, _)] = batched(grid, [raw], [home_of_gauge()])[1]
    assert (code, said) == ("out_of_range", str(caught.value))


def test_digits_in_text_and_64_bit_integers_read_as_before() -> None:
    doc = decode_json(b'{"id": "12345678901234567890", "n": 9223372036854775807}')
    assert doc == {"id": "12345678901234567890", "n": 9223372036854775807}
