"""``citybrain deadletters --replay``: which dead letters can be sent back, and as what
(helper t81: a dead letter could be read, not restored)."""

from __future__ import annotations

import argparse

import pytest

from citybrain.cli.parser import _partition_offset
from citybrain.deadletters import DeadLetter, NotReplayable, replay_of

ALLOWED = ["p.readings", "p.incidents"]


def letter(origin: str, original: list[tuple[str, bytes]], **more: str) -> DeadLetter:
    headers = {"reason": "bad_type", "origin": origin, **more}
    return DeadLetter(0, 5, 0.0, b"gauge-1", b"{}", headers, tuple(original))


def test_the_original_key_and_headers_go_back_to_the_origin_topic() -> None:
    got = replay_of(
        letter(
            "p.readings/1/7",
            [
                ("citybrain.original.timestamp", b"1000"),
                ("citybrain.original.key", b"pack-7"),
                ("citybrain.original.header.hop", b"a"),
                ("citybrain.original.header.hop", b"\xff"),
            ],
        ),
        "p.deadletter",
        ALLOWED,
    )
    assert (got.topic, got.key, got.value) == ("p.readings", b"pack-7", b"{}")
    assert got.headers == [
        ("hop", b"a"),
        ("hop", b"\xff"),
        ("citybrain.replayed_from", b"p.deadletter/0/5"),
    ]


def test_a_packs_reading_keeps_its_sensors_key_and_a_keyless_one_none() -> None:
    pack = [("citybrain.original.key", b"pack-7")]
    assert replay_of(letter("p.readings/1/7#3", pack), "d", ALLOWED).key == b"gauge-1"
    keyless = [("citybrain.original.key_null", b"")]
    assert replay_of(letter("p.incidents/0/2", keyless), "d", ALLOWED).key is None


@pytest.mark.parametrize(
    ("origin", "more", "said"),
    [
        ("mqtt:city/e/x", {}, "came from the MQTT ingest"),
        ("http:/ingest/v1/readings", {}, "came from the HTTP ingest"),
        ("q.readings/0/1", {}, "is no topic of this prefix"),
        ("p.readings/0/1", {"truncated": "5000000"}, "the original was cut (truncated"),
        ("p.readings/0/1", {"headers_truncated": "3 of 9"}, "(headers truncated: 3 of 9)"),
        ("p.readings/0/1", {"reason": "unreadable_batch"}, "holds no record"),
    ],
)
def test_one_that_is_not_whole_or_not_from_kafka_is_refused(
    origin: str, more: dict[str, str], said: str
) -> None:
    with pytest.raises(NotReplayable, match=r"^d/0/5: ") as caught:
        replay_of(letter(origin, [], **more), "d", ALLOWED)
    assert said in str(caught.value)


def test_a_place_is_two_whole_numbers() -> None:
    assert _partition_offset("0:17") == (0, 17)
    for bad in ("0", "a:1", "1:-2", "²:1", ":"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not PARTITION:OFFSET"):
            _partition_offset(bad)


def test_a_replay_interrupted_while_sending_says_what_was_sent_and_how_to_send_the_rest() -> None:
    """t219: Ctrl-C while `deadletters --replay` sent said only "interrupted", exit 130:
    which dead letters went back was unknown, and sending them all again unsaid to be
    safe. Now: those Kafka acknowledged, and the rest's line to send again."""
    from citybrain.cli.deadletters import interrupted_replay

    replays = [replay_of(letter("p.readings/1/7", []), "d", ALLOWED)] * 3
    places = [(0, 5), (1, 0), (1, 2)]
    said = interrupted_replay("d", places, replays, {0: (1, 13)}, "citybrain deadletters")
    assert said.startswith(
        "interrupted: d: sent back 0:5 (to p.readings partition 1, offset 13); whether 1:0, "
        "1:2 were sent is unknown: sending them again is safe, the worker drops a record it "
        "has taken already: "
    )
    assert said.endswith("`citybrain deadletters --replay 1:0 --replay 1:2`")
    none = interrupted_replay("d", places[:1], replays[:1], {}, "citybrain deadletters")
    assert "none known sent back; whether 0:5 was sent is unknown: sending it again" in none
    every = interrupted_replay("d", places[:1], replays[:1], {0: (1, 13)}, "x")
    assert (
        every
        == "interrupted: d: sent back 0:5 (to p.readings partition 1, offset 13): each was sent"
    )
