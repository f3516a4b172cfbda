"""A message on the worker's own topics larger than it can pass on is refused at once.

Another client may write up to a topic's ``max.message.bytes`` (1,048,588 by default);
the worker's producer takes at most 1,000,000 bytes a record. A valid alert of 1,030,000
bytes was taken: the firing table's changelog entry of its labels crashed the producer
and the worker, at every restart again (t99; tests/integration/test_oversized_records.py
on the real Kafka)."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import EventError
from streams.events import MAX_MESSAGE_BYTES, MAX_OWN_MESSAGE_BYTES, message_json


def test_a_message_over_the_bound_is_bad_json_saying_its_size() -> None:
    doc = {"alert_id": "a", "labels": {"note": "x" * MAX_OWN_MESSAGE_BYTES}}
    raw = orjson.dumps(doc)
    with pytest.raises(EventError) as caught:
        message_json(raw)
    assert caught.value.code == "bad_json"
    assert f"the message is {len(raw):,} bytes" in str(caught.value)
    assert f"at most {MAX_OWN_MESSAGE_BYTES:,}" in str(caught.value)


def test_a_message_at_the_bound_is_read() -> None:
    raw = orjson.dumps({"note": ""})
    raw = raw.replace(b'""', b'"' + b"x" * (MAX_OWN_MESSAGE_BYTES - len(raw)) + b'"')
    assert len(raw) == MAX_OWN_MESSAGE_BYTES
    assert len(message_json(raw)["note"]) == MAX_OWN_MESSAGE_BYTES - 11


def test_the_bound_leaves_room_for_what_the_worker_wraps_around_a_message() -> None:
    # A routed message is the alert and a route; a muted entry the alert and its merged
    # reports (at most 1,000 of 256-character ids): both must fit the producer's limit.
    assert MAX_OWN_MESSAGE_BYTES + 1_000 * (256 + 64) < MAX_MESSAGE_BYTES


def test_an_alert_id_longer_than_an_id_is_refused_naming_its_length() -> None:
    # An alert id keys the firing and muted tables and an area's labelled alerts (a
    # thousand kept): three of 400 kB made the area's state too large for Kafka (t99).
    from streams.alerting import checked_alert

    alert = {
        "alert_id": "a" * 257,
        "status": "firing",
        "kind": "water_level",
        "grid_cell": "c-bridge",
        "severity": "minor",
        "labels": {"kind": "water_level"},
    }
    with pytest.raises(EventError) as caught:
        checked_alert(alert)
    assert (caught.value.code, caught.value.field) == ("bad_alert", "alert_id")
    assert str(caught.value).endswith("257 characters, at most 256")
    assert checked_alert({**alert, "alert_id": "a" * 256})[0] is not None
