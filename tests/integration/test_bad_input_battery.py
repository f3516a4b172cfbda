"""One bad message among good ones, for every kind of bad field input, at every door
the worker and the ingest read (t95's battery).

Each door gets one batch: good messages with one message of each kind of badness
between them (bytes that are not UTF-8, a key twice, 10,000 levels of nesting, numbers
past a double, 2**64, NaN/Infinity, a string for a number and a number for a string, a
1 MB field, keys with a NUL or a Cyrillic letter, times far ahead, far back, at epoch 0
and negative, an unknown kind, a unit of another kind, an empty body, a Kafka tombstone,
no key, headers of odd bytes). Every good message is processed once, each bad one is
dead-lettered once with a reason naming its field (or, where no field can be read, the
byte or the nesting), the consumer group commits past all of them, the metrics count
them, and no log holds a traceback. A BOM'd message is read (docs/events.md)."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import MessageSizeTooLargeError

from citybrain.stack import MosquittoBroker
from streams.events import IncidentReport, Reading, format_ts
from streams.partitioning import sensor_partition
from tests.integration.test_ingest import (
    GAUGE_READING,
    TOPIC,
    count_readings,
    example,
    http_ingest,
    mqtt_ingest,
    packed,
    pipeline_for_ingest,
    post,
)
from tests.integration.test_poison_pills import assert_committed_to_end, wait_scored
from tests.services import Pipeline, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(10)
MB = 1_000_000


# A good alert and route as another tool would write them (docs/events.md).
OWN_ALERT = {
    "alert_id": "al-script",
    "status": "firing",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "minor",
    "labels": {"alert_id": "al-script", "kind": "water_level", "severity": "minor"},
}
OWN_ROUTE = {"id": "root", "playbook": "sensor-anomaly", "group_wait": 0}
OWN_ROUTE = {**OWN_ROUTE, "group_interval": 60, "repeat_interval": 3600}


def reading_bytes(i: int, value: float = 10.0) -> bytes:
    return Reading(START + 300 * i, "gauge-1", "water_level", value, "ft", "c-bridge").to_json()


def badly(good: bytes, old: bytes, new: bytes) -> bytes:
    assert old in good, (old, good[:80])
    return good.replace(old, new, 1)


def reading_poison(good: bytes) -> list[tuple[bytes, str, str]]:
    """(message, reason, text its message holds) of each kind, from one good reading."""
    v = b'"value":10.0'
    return [
        (badly(good, b'"ft"', b'"f\xfft"'), "bad_json", "byte 0xff at offset"),
        (badly(good, v, v + b',"value":11.0'), "bad_json", "key 'value' is given twice"),
        (b"[" * 10_000 + b"]" * 10_000, "bad_json", "nested deeper than 1024 levels"),
        # As sent, not the inf it overflows to (t98).
        (badly(good, v, b'"value":1e400'), "not_finite", 'field "value" is 1e400:'),
        (badly(good, v, b'"value":18446744073709551616'), "out_of_range", 'field "value"'),
        (badly(good, v, b'"value":NaN'), "not_finite", 'field "value" is nan'),
        (badly(good, v, b'"value":-Infinity'), "not_finite", 'field "value" is -inf'),
        (badly(good, v, b'"value":"10.0"'), "bad_type", "field \"value\" is '10.0'"),
        (badly(good, b'"ft"', b"5"), "bad_type", 'field "unit" is 5'),
        (badly(good, b'"ft"', b'"' + b"u" * MB + b'"'), "bad_unit", 'field "unit" is \'uuu'),
        (badly(good, v, b'"val\\u0000ue":10.0'), "bad_json", 'field "val\\x00ue" is 10.0'),
        (badly(good, v, '"v\u0430lue":10.0'.encode()), "bad_json", 'field "v\\u0430lue"'),
        (badly(good, v, v + ',"v\u0430lue":99'.encode()), "bad_json", "'value' is given too"),
        (ts(good, "9999-12-31T23:59:59Z"), "in_future", 'field "ts" is \'9999-12-31'),
        (ts(good, "0001-01-01T00:00:00Z"), "too_old", 'field "ts" is \'0001-01-01'),
        (ts(good, "1970-01-01T00:00:00Z"), "too_old", 'field "ts" is \'1970-01-01'),
        (ts(good, -1), "bad_type", 'field "ts" is -1'),
        # t171: past a date's range, each was unreadable, "OverflowError: date value out
        # of range", naming no field.
        (ts(good, "9999-12-31T24:00:00Z"), "bad_timestamp", "00:00 of the year 10000"),
        (ts(good, "9999-366T10:00Z"), "bad_timestamp", "field \"ts\" is '9999-366T10:00Z'"),
        (badly(good, b'"water_level"', b'"lava"'), "unknown_kind", "field \"kind\" is 'lava'"),
        (badly(good, b'"ft"', b'"m"'), "bad_unit", "field \"unit\" is 'm'"),
        (b"", "bad_json", "the message is empty"),
    ]


def largest_value(p: Pipeline, key: bytes) -> int:
    """The largest value (with ``key``, no headers) the broker takes on a topic like the
    pipeline's, found on a scratch topic of its own so no probe reaches the worker."""
    scratch = p.topic("size-probe")
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(scratch, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=p.settings.kafka_bootstrap, max_request_size=2 * MB)
    low, high = MB, 1_100_000  # taken, refused (message.max.bytes is 1,048,588)
    try:
        while high - low > 1:
            mid = (low + high) // 2
            try:
                producer.send(scratch, key=key, value=b"x" * mid).get(timeout=60)
                low = mid
            except MessageSizeTooLargeError:
                high = mid
    finally:
        producer.close()
    return low


def ts(good: bytes, value: Any) -> bytes:
    doc = json.loads(good)
    return json.dumps({**doc, "ts": value}).encode()


def gauge_alerts(messages: list[Any]) -> list[dict[str, Any]]:
    """The worker's firing alerts of gauge-1 (the topic holds the bad ones sent too)."""
    out = []
    for m in messages:
        try:
            doc = json.loads(m.value)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict) and (doc.get("status"), doc.get("sensor_id")) == (
            "firing",
            "gauge-1",
        ):
            out.append(doc)
    return out


def said(dead: list[Any], stream: str) -> Counter[tuple[str, str]]:
    """(reason, message) of each of ``stream``'s dead letters."""
    out: Counter[tuple[str, str]] = Counter()
    for m in dead:
        h = dict(m.headers)
        if h["citybrain.error.stream"].decode() == stream:
            # (a listed reading's field is named by its place: readings[7].value)
            text = re.sub(r"readings\[[0-9]+\]\.", "", h["citybrain.error.message"].decode())
            out[(h["citybrain.error.reason"].decode(), text)] += 1
    return out


def assert_each_said(got: Counter[tuple[str, str]], poison: list[tuple[bytes, str, str]]) -> None:
    left = list(got.elements())
    for _, reason, text in poison:
        match = [g for g in left if g[0] == reason and text in g[1]]
        assert match, f"no dead letter {reason} saying {text!r} in {sorted(left)}"
        left.remove(match[0])
    assert not left, f"dead letters beyond the poison: {left}"


def test_every_kind_of_bad_message_costs_only_itself_on_the_worker_s_topics(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    worker = p.worker().start()
    try:
        topic = p.topic("readings")
        home = sensor_partition("gauge-1", p.settings.partitions)
        # 40 readings of gauge-1, a spike of three at 30-32: one alert.
        values = [10.0 + 0.1 * (i % 3) for i in range(40)]
        values[30:33] = [80.0, 85.0, 82.0]
        goods = [reading_bytes(i, v) for i, v in enumerate(values)]
        poison = reading_poison(goods[0])
        for i, good in enumerate(goods):
            if i < len(poison):
                p.send("readings", b"gauge-1", poison[i][0])
            if i == 5:  # no key, on the sensor's partition; odd header bytes; a BOM
                p.producer.send(topic, key=None, value=good, partition=home)
            elif i == 6:
                p.producer.send(topic, key=b"gauge-1", value=good, headers=[("x", b"\xff\x00")])
            elif i == 7:
                p.send("readings", b"gauge-1", b"\xef\xbb\xbf" + good)
            else:
                p.send("readings", b"gauge-1", good)
        p.producer.send(topic, key=b"gauge-1", value=None)  # a tombstone
        poison.append((b"", "bad_json", "a Kafka tombstone"))
        # A pack: three good readings, three bad ones that cost only themselves.
        later = [reading_bytes(40 + i) for i in range(3)]
        in_pack = [
            (badly(later[0], b"{", b'{"location":"Ca\xf1ada",'), "bad_json", "byte 0xf1 at"),
            (
                badly(later[1], b"{", b'{"n":' + b"[" * 1100 + b"]" * 1100 + b","),
                "bad_json",
                "deep",
            ),
            (badly(later[2], b'"value"', '"v\u0430lue"'.encode()), "bad_json", "\\u0430"),
        ]
        items = [*later, *(bad for bad, _, _ in in_pack)]
        pack = b'{"schema":"readings/1","readings":[' + b",".join(items) + b"]}"
        p.send("readings", b"gauge-1", pack)
        goods += later
        poison += in_pack
        # Reports: twelve good ones of one cell, the bad kinds between them.
        report = IncidentReport(START + 7200, "r-0", "Noise", "loud", "app", "c-top").to_json()
        t = b'"text":"loud"'
        bad_reports = [
            (badly(report, b'"loud"', b'"lo\xffud"'), "bad_json", "byte 0xff at offset"),
            (badly(report, t, t + b',"text":"x"'), "bad_json", "key 'text' is given twice"),
            (b"[" * 10_000 + b"]" * 10_000, "bad_json", "nested deeper than 1024 levels"),
            (badly(report, t, b'"text":NaN'), "bad_type", 'field "text" is nan'),
            (badly(report, t, b'"text":18446744073709551616'), "bad_type", 'field "text"'),
            (badly(report, t, b'"text":"' + b"y" * MB + b'"'), "too_long", 'field "text"'),
            (badly(report, t, '"t\u0435xt":"loud"'.encode()), "bad_json", 'field "t\\u0435xt"'),
            (ts(report, "9999-12-31T23:59:59Z"), "in_future", 'field "ts"'),
            (ts(report, "1970-01-01T00:00:00Z"), "too_old", 'field "ts"'),
            (ts(report, "9999-12-31T24:00Z"), "bad_timestamp", "00:00 of the year 10000"),
            (badly(report, b'"app"', b"5"), "bad_type", 'field "source" is 5'),
            (b"", "bad_json", "the message is empty"),
            # t109: blank, padded or control-character ids and texts were taken.
            (badly(report, t, b'"text":"  "'), "bad_type", "blank: expected a description"),
            (badly(report, b'"r-0"', b'" r-0 "'), "bad_type", "white space around it"),
            (
                badly(report, t, b'"text":"lo\\u001bud"'),
                "bad_type",
                "control character (U+001B) at character 3",
            ),
            (badly(report, b'"Noise"', b'"No\\u200bise"'), "bad_type", "U+200B"),
        ]
        for i in range(max(12, len(bad_reports))):
            if i < len(bad_reports):
                p.send("incidents", b"c-top", bad_reports[i][0])
            if i < 12:
                good = IncidentReport(
                    START + 7200 + 30 * i, f"r-{i}", "Noise", "loud", "app", "c-top"
                )
                p.send("incidents", b"c-top", good.to_json())
        # citybrain's own topics, written by a third party: each bad kind, no good one
        # needed (the readings and reports above are the ones that must go on).
        own = [
            b"\xff",
            b'{"id": "c", "id": "d"}',
            b"[" * 10_000 + b"]" * 10_000,
            b'{"id": NaN}',
            b"\xef\xbb\xbf{}",
            b'{"id": "c", "run_id": "g.1", "acti\\u043en": "ack"}',
            # Whole messages an operator's script got right but for one key (t99): each
            # was taken before, half-read (a minor alert routed as the script's critical
            # was meant, a run opened from the route the script did not mean).
            json.dumps({**OWN_ALERT, "Severity": "critical"}).encode(),
            json.dumps({"alert": OWN_ALERT, "route": OWN_ROUTE, "Route": {}}).encode(),
            b"",
        ]
        for role in ("alerts", "routed", "commands"):
            for raw in own:
                p.send(role, b"c-top", raw)
        # Records exactly at the broker's size limit: a valid reading (an unknown field
        # fills it: read and scored) and one that is no JSON (dead-lettered, cut).
        size = largest_value(p, b"gauge-1")
        filler = reading_bytes(43)
        note = b',"note":"' + b"n" * (size - len(filler) - 10) + b'"}'
        at_limit = filler[:-1] + note
        assert len(at_limit) == size
        big = KafkaProducer(bootstrap_servers=p.settings.kafka_bootstrap, max_request_size=2 * MB)
        try:
            big.send(topic, key=b"gauge-1", value=at_limit).get(timeout=60)
            big.send(topic, key=b"gauge-1", value=b"x" * size).get(timeout=60)
        finally:
            big.close()
        goods.append(at_limit)
        poison.append((b"", "bad_json", "not valid JSON: at line 1, column 1 (byte 0)"))
        p.flush()

        total = len(poison) + len(bad_reports) + 3 * len(own)
        dead = p.read("deadletter", lambda m: len(m) >= total, timeout=120, settle=3)
        assert_each_said(said(dead, "readings"), poison)
        assert_each_said(said(dead, "incidents"), bad_reports)
        for role in ("alerts", "routed", "commands"):
            assert sum(said(dead, role).values()) == len(own), said(dead, role)
        assert any('field "acti\\u043en"' in text for _, text in said(dead, "commands"))
        assert any('field "Severity"' in text for _, text in said(dead, "alerts"))
        assert any('field "Route"' in text for _, text in said(dead, "routed"))
        wait_scored(p, len(goods), "the good readings were not all scored")
        port = p.settings.worker_port
        assert scrape_sum(port, "citybrain_readings_total") == len(goods)
        assert scrape_sum(port, "citybrain_dead_letters_total") == total
        alerts = p.read("alerts", lambda m: len(gauge_alerts(m)) >= 1, settle=3)
        assert len(gauge_alerts(alerts)) == 1
        for role in ("readings", "incidents", "alerts", "routed", "commands"):
            assert_committed_to_end(p, role)
        log = worker.log()
        assert worker.alive() and "Traceback" not in log and "Crashed" not in log
    finally:
        worker.stop()


@pytest.fixture
def ingest_pipeline(mosquitto: MosquittoBroker, run_dir: Path) -> Any:
    p = pipeline_for_ingest(run_dir)
    yield p
    p.close()


def test_every_kind_of_bad_item_costs_only_itself_at_the_http_and_mqtt_doors(
    ingest_pipeline: Pipeline,
) -> None:
    p = ingest_pipeline
    server = http_ingest(p, "--max-body", str(3 * MB)).start()
    mqtt = mqtt_ingest(p).start()
    try:
        good = [
            json.dumps({**GAUGE_READING, "ts": format_ts(START + 60 * i)}).encode()
            for i in range(30)
        ]
        # Every kind but the empty one (no item of a JSON list can be empty).
        poison = reading_poison(badly(good[0], b'"value": 2.1', b'"value":10.0'))[:-1]
        items = [
            x for i, g in enumerate(good[:20]) for x in (g, *(p[0] for p in poison[i : i + 1]))
        ] + [bad for bad, _, _ in poison[20:]]  # (more kinds than good readings)
        status, answer = post(p, "/ingest/v1/readings", b"[" + b",".join(items) + b"]")
        assert status == 200, answer
        assert (answer["accepted"], answer["refused"]) == (20, len(poison)), answer
        # Body-level faults: each its own request, a 4xx naming it, no traceback.
        bodies = {
            b"\xff": "byte 0xff",
            b"": "",
            b"[" * 10_000 + b"]" * 10_000: "nested deeper",
            b'{"schema": "reading/1", "value": 1, "value": 2}': "given twice",
        }
        for body, text in bodies.items():
            status, answer = post(p, "/ingest/v1/readings", body)
            assert 400 <= status < 500 and text in json.dumps(answer), (status, answer)
        # NGSI: the real AirQualityObserved example (its no2 registered), one bad
        # entity of each kind beside it, each refused alone.
        air = json.dumps(example("AirQualityObserved")).encode()
        entities = [
            badly(air, b'"no2"', '"n\u043e2"'.encode()),
            badly(
                air,
                b"{",
                b'{"note": "Ca\xf1ada", ',
            ),
            badly(air, b"{", b'{"note": ' + b"[" * 10_000 + b"]" * 10_000 + b", "),
            badly(air, b'"value": 69', b'"value": NaN'),
            badly(air, b'"value": 69', b'"value": 1e400'),
            badly(air, b'"value": 69', b'"value": "69"'),
            badly(air, b'"AirQualityObserved"', b'"LavaObserved"'),
        ]
        status, answer = post(
            p,
            "/ingest/v1/ngsi",
            b'{"subscriptionId": "s", "data": [' + b",".join([air, *entities]) + b"]}",
        )
        assert (status, answer["accepted"], answer["refused"]) == (200, 1, len(entities)), answer
        bom = b"\xef\xbb\xbf" + b"[" + b",".join(good[20:22]) + b"]"
        assert post(p, "/ingest/v1/readings", bom) == (200, {"accepted": 2})
        # MQTT: one payload of each kind between good ones, on the gauge's topic.
        payloads = [
            (b"\xff", "bad_payload"),
            (b'{"value": 1, "value": 2}', "bad_payload"),
            (b"[" * 10_000 + b"]" * 10_000, "bad_payload"),
            (b"1e400", "not_finite"),
            (b"18446744073709551616", "out_of_range"),
            (b'{"value": NaN}', "not_finite"),
            (b'{"value": "x"}', "bad_type"),
            (b'{"value": 1, "unit": 5}', "bad_type"),
            (b'{"value": 1, "unit": "' + b"u" * MB + b'"}', "bad_unit"),
            (b'{"val\\u0000ue": 1}', "bad_json"),
            ('{"v\u0430lue": 1}'.encode(), "bad_json"),
            (b'{"value": 1, "ts": "9999-12-31T23:59:59Z"}', "in_future"),
            (b'{"value": 1, "ts": 0}', "too_old"),
            (b'{"value": 1, "ts": -1}', "bad_timestamp"),
            (b'{"value": 1, "unit": "m"}', "bad_unit"),
            # t150: an array's bad item costs only itself; its good one is a reading.
            (json.dumps([{"value": 3.0, "ts": START + 7300}, "x"]).encode(), "bad_payload"),
        ]
        port = str(p.settings.mqtt_port)
        # (an empty payload clears a retained value in MQTT: skipped and counted, below)
        for i, (payload, _) in enumerate([*payloads, (b"", "")]):
            for raw in (payload, json.dumps({"value": 2.0, "ts": START + 7200 + i}).encode()):
                subprocess.run(  # -n: an empty message (-s refuses empty input)
                    ["mosquitto_pub", "-p", port, "-q", "1", "-t", TOPIC, "-s" if raw else "-n"],
                    input=raw,
                    check=True,
                    timeout=30,
                )
        subprocess.run(
            ["mosquitto_pub", "-p", port, "-q", "1", "-t", TOPIC, "-s"],
            input=b"\xef\xbb\xbf2.5",
            check=True,
            timeout=30,
        )
        want = 20 + 1 + 2 + len(payloads) + 2 + 1  # (+1: the array's good item)
        readings = packed(p.read("readings", lambda m: count_readings(m) >= want, settle=2))
        assert len(readings) == want
        ngsi_dead = len(entities)
        dead = p.read(
            "deadletter", lambda m: len(m) >= len(poison) + len(payloads) + ngsi_dead, settle=2
        )
        assert len(said(dead, "ngsi")) == ngsi_dead
        http_said = said(dead, "http")
        assert_each_said(http_said, poison)
        mqtt_said = said(dead, "mqtt")
        assert sorted(r for r, _ in mqtt_said.elements()) == sorted(r for _, r in payloads)
        # Counted: each refused item and body at the HTTP ingest, each MQTT dead letter.
        refused = scrape_sum(p.settings.ingest_http_port, "citybrain_ingest_refused_total")
        assert refused == len(poison) + len(bodies) + ngsi_dead
        mqtt_dead = scrape_sum(p.settings.ingest_metrics_port, "citybrain_dead_letters_total")
        assert mqtt_dead == len(payloads)
    finally:
        mqtt.stop()
        server.stop()
    assert "skipped 1 empty message" in mqtt.log()
    for log in (server.log(), mqtt.log()):
        assert "Traceback" not in log
