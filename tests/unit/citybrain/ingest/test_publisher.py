"""Dead letters of the ingest fit in one Kafka message, whatever the payload's size."""

from __future__ import annotations

from citybrain.ingest.mqtt import dead_letter_headers
from streams.events import MAX_MESSAGE_BYTES, fit_dead_letter


def test_a_five_megabyte_payload_is_cut_and_says_its_size() -> None:
    # Before: sent whole, refused by the broker (MessageSizeTooLargeError), the ingest
    # stopped on it, and the unacknowledged message came back to stop the next one too.
    payload = b"x" * 5_000_000
    key = b"city/e/gauge-1/water_level"
    headers = dead_letter_headers(f"mqtt:{key.decode()}", "bad_payload", "not JSON", "mqtt")
    value, out = fit_dead_letter(payload, key, headers)
    assert payload.startswith(value)
    total = len(value) + len(key) + sum(len(k) + len(v) for k, v in out)
    assert total <= MAX_MESSAGE_BYTES
    assert dict(out)["citybrain.error.truncated"] == b"5000000"


def test_a_payload_that_fits_is_kept_whole() -> None:
    headers = dead_letter_headers("mqtt:t", "bad_payload", "not JSON", "mqtt")
    assert fit_dead_letter(b"abc", b"t", headers) == (b"abc", headers)


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
    value, out = fit_dead_letter(b"{" * 1_040_000, b"pack-3", headers)
    assert len(value) + 6 + sum(len(k) + len(v) for k, v in out) <= 1_000_000
    assert dict(out)["citybrain.error.truncated"] == b"1040000"
