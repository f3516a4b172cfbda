"""Dead letters of the ingest fit in one Kafka message, whatever the payload's size."""

from __future__ import annotations

from citybrain.ingest.mqtt import dead_letter_headers
from streams.events import MAX_DEAD_LETTER_KEY_BYTES, MAX_MESSAGE_BYTES, fit_dead_letter


def test_a_five_megabyte_payload_is_cut_and_says_its_size() -> None:
    # Before: sent whole, refused by the broker (MessageSizeTooLargeError), the ingest
    # stopped on it, and the unacknowledged message came back to stop the next one too.
    payload = b"x" * 5_000_000
    key = b"city/e/gauge-1/water_level"
    headers = dead_letter_headers(f"mqtt:{key.decode()}", "bad_payload", "not JSON", "mqtt")
    same_key, value, out = fit_dead_letter(payload, key, headers)
    assert same_key == key
    assert payload.startswith(value)
    total = len(value) + len(key) + sum(len(k) + len(v) for k, v in out)
    assert total <= MAX_MESSAGE_BYTES
    assert dict(out)["citybrain.error.truncated"] == b"5000000"


def test_a_payload_that_fits_is_kept_whole() -> None:
    headers = dead_letter_headers("mqtt:t", "bad_payload", "not JSON", "mqtt")
    assert fit_dead_letter(b"abc", b"t", headers) == (b"t", b"abc", headers)


def test_the_worker_dead_letter_of_a_message_near_the_broker_limit_fits() -> None:
    # A foreign producer may write up to the broker's message.max.bytes (1,048,588);
    # faust's producer sends at most 1,000,000, so the worker's dead letter of such a
    # message (streams/app.py _send_dead_letter) was refused and stopped the worker.
    headers = [
        ("citybrain.error.stream", b"readings"),
        ("citybrain.error.reason", b"bad_json"),
        ("citybrain.error.message", b"not valid JSON: ..."),
        ("citybrain.error.origin", b"city.readings/3/12345"),
    ]
    _, value, out = fit_dead_letter(b"{" * 1_040_000, b"pack-3", headers)
    assert len(value) + 6 + sum(len(k) + len(v) for k, v in out) <= 1_000_000
    assert dict(out)["citybrain.error.truncated"] == b"1040000"


def test_a_key_near_the_broker_limit_is_cut_and_says_its_size() -> None:
    # Trial 19: a foreign producer's message with a 999,900-byte key (or a reading whose
    # sensor_id, which keys its dead letter, is that long) made a dead letter over the
    # producer's limit whatever its value was cut to: the worker stopped on it, and again
    # at every restart.
    headers = dead_letter_headers("city.readings/0/7", "bad_json", "not JSON", "readings")
    key = b"k" * 999_900
    cut, value, out = fit_dead_letter(b"junk", key, headers)
    assert cut == key[:MAX_DEAD_LETTER_KEY_BYTES]
    assert value == b"junk"
    assert dict(out)["citybrain.error.key_truncated"] == b"999900"
    assert "citybrain.error.truncated" not in dict(out)
    big_key, big_value, both = fit_dead_letter(b"v" * 999_000, key, headers)
    total = len(big_key or b"") + len(big_value) + sum(len(k) + len(v) for k, v in both)
    assert total <= MAX_MESSAGE_BYTES
    assert dict(both)["citybrain.error.truncated"] == b"999000"


def test_a_key_at_the_bound_is_kept_whole() -> None:
    headers = dead_letter_headers("city.readings/0/7", "bad_json", "not JSON", "readings")
    key = b"k" * MAX_DEAD_LETTER_KEY_BYTES
    assert fit_dead_letter(b"junk", key, headers) == (key, b"junk", headers)
