"""The ingest's only MQTT code: a paho-mqtt 2.x subscriber with manual acknowledgements.

MQTT 5, persistent session (``clean_start=False`` and a session expiry), QoS 1 by default:
a message is acknowledged to the broker only once Kafka has acknowledged the pack that
holds it (or its dead letter), so a killed ingest loses nothing: the broker delivers
every unacknowledged message again to the next ingest with the same client id. The
broker sends at most ``inflight`` unacknowledged messages (MQTT 5 Receive Maximum),
which bounds what the ingest holds in memory. One ingest per client id: each claims its
id, retained, on ``owner_topic``; one that reads a later instance's claim (or MQTT 5's
"session taken over") stops rather than take the session back (docs/ingest.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import paho.mqtt.properties as paho_properties
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from citybrain.ingest import MAX_PAYLOAD
from citybrain.ingest.mapping import MqttMapping
from citybrain.ingest.metrics import IngestMetrics
from citybrain.ingest.publisher import PackPublisher, packable
from citybrain.ingest.receipts import PublisherRetries, Receipts
from citybrain.text import first_named
from streams.errors import EventError, one_line
from streams.events import (
    MAX_PACK_READINGS,
    ORIGINAL_HEADER_PREFIX,
    EventValidator,
    Reading,
    decode_json,
    format_ts,
    items_read_alone,
    shared_original,
)
from streams.spans import items_as_sent

log = logging.getLogger(__name__)

SESSION_EXPIRY = 7 * 24 * 3600  # the broker keeps a stopped ingest's queue for a week


SESSION_TAKEN_OVER = 142  # MQTT 5 reason code 0x8E
# A connection dropped this soon after it was made counts towards "taken over".
QUICK_DROP = 5.0


def read_property_text(buffer: bytes, maxlen: int) -> tuple[str, int]:
    """An MQTT 5 UTF-8 string property at the start of ``buffer`` -> (its text, the bytes
    it took, 2 + its length), as paho's ``properties.readUTF`` reads it, without refusing
    the text: paho raised ``MalformedPacket`` for U+FEFF (a BOM, which MQTT 5 says must
    be kept, MQTT-1.5.4-3, and Mosquitto forwards) and U+0000, and ``UnicodeDecodeError``
    for a byte that is not UTF-8; raised while the PUBLISH was read, before any callback,
    it dropped the connection, and on the persistent session the broker sent the same
    message again at each reconnect: one message's user property stopped every message
    after it (t117). A byte that is not UTF-8 is kept as a lone surrogate
    (``surrogateescape``), so the dead letter gets the bytes sent (``mqtt_properties``).
    Raises paho's ``MalformedPacket`` for a length past the packet, as paho does."""
    if maxlen < 2:
        raise MalformedPacket("Not enough data to read string length")
    (length,) = struct.unpack("!H", buffer[:2])
    if length > maxlen - 2:
        raise MalformedPacket("Length delimited string too long")
    text = bytes(buffer[2 : 2 + length]).decode("utf-8", "surrogateescape")
    return text, length + 2


# Installed once, for every packet paho reads (properties.py looks it up at each call).
paho_properties.readUTF = read_property_text


# Where each ingest says, retained, which instance holds its client id (t101): Mosquitto
# 2.0 closes a taken-over connection without MQTT 5's reason 0x8E, so "taken over" is
# read from the newest instance's claim instead of guessed from quick drops.
OWNER_TOPIC = "citybrain/ingest-owner/{}"
OWNER_PREFIX = OWNER_TOPIC.format("").encode()


def owner_topic(client_id: str) -> str:
    """The retained claim topic of ``client_id``: the id itself when it is only letters,
    digits, ``.``, ``_`` and ``-``; else with the others (``/``, ``+``, ``#``, which a
    topic level may not hold, and the like) as ``_`` and 8 hex digits of the id's
    SHA-1 after a ``-``. Without them, two ingests whose ids differ only there
    (``gw/1`` and ``gw#1``, ``gw_1``) shared one claim topic, and the later stopped the
    other as if it had taken its session (t117)."""
    level = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)
    if level != client_id or not level:
        digest = hashlib.sha1(client_id.encode("utf-8", "surrogateescape")).hexdigest()
        level = f"{level or '_'}-{digest[:8]}"
    return OWNER_TOPIC.format(level)


def dead_letter_headers(
    origin: str, code: str, message: str, stream: str
) -> list[tuple[str, bytes]]:
    """The worker's dead-letter headers (streams/app.py ``_send_dead_letter``);
    ``origin`` is where the message came from (``mqtt:<topic>``, ``http:<path>``)."""
    # One line each (``one_line``): a topic is any UTF-8 text, a line break included.
    return [
        ("citybrain.error.stream", stream.encode()),
        ("citybrain.error.reason", code.encode()),
        ("citybrain.error.message", one_line(message).encode()),
        ("citybrain.error.origin", one_line(origin).encode()),
    ]


def carried_headers(pairs: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, bytes]]:
    """What a sender sent beside a payload (``(name, value)`` pairs: an MQTT 5 message's
    content type and user properties, an HTTP request's trace headers), as the dead
    letter's ``citybrain.original.header.<name>`` headers (docs/events.md), in order."""
    return [
        (ORIGINAL_HEADER_PREFIX + name, value if isinstance(value, bytes) else value.encode())
        for name, value in pairs
    ]


def mqtt_properties(msg: Any) -> list[tuple[str, str | bytes]]:
    """An MQTT 5 message's content type (as ``content-type``) and user properties, in
    order, repeated names kept; nothing for MQTT 3.1.1 (no properties)."""
    props = getattr(msg, "properties", None)
    found: list[tuple[str, str | bytes]] = []
    content_type = getattr(props, "ContentType", None)
    if isinstance(content_type, str):
        found.append(("content-type", _sent_bytes(content_type)))
    for pair in getattr(props, "UserProperty", None) or ():
        if isinstance(pair, tuple) and len(pair) == 2:
            # A value as the bytes sent; a name is a Kafka header's name, text: a byte
            # that is not UTF-8 in it is written as its escape (\xff).
            name = _sent_bytes(str(pair[0])).decode("utf-8", "backslashreplace")
            found.append((name, pair[1] if isinstance(pair[1], bytes) else _sent_bytes(pair[1])))
    return found


def _sent_bytes(text: object) -> bytes:
    """A property's text (``read_property_text``'s) as the bytes sent."""
    return str(text).encode("utf-8", "surrogateescape")


def topic_text(msg: Any) -> str:
    """The message's topic; paho's ``msg.topic`` raises on bytes that are not UTF-8 (MQTT
    requires UTF-8, but a broker may not check), so those are shown as escapes
    (``\\xff``: which byte, where U+FFFD hid it) and the topic matches no pattern: the
    message is dead-lettered, not lost."""
    try:
        return str(msg.topic)
    except UnicodeDecodeError:
        return bytes(msg._topic).decode("utf-8", "backslashreplace")


# A payload that is a JSON array (past white space and a UTF-8 byte order mark).
_ARRAY = re.compile(rb"^(?:\xef\xbb\xbf)?\s*\[")


def _array(mapping: MqttMapping, topic: str, payload: bytes) -> list[bytes] | None:
    """A JSON array payload's items, each as its bytes sent; None when the payload is
    no well-formed array of 1 to ``MAX_PACK_READINGS`` items or its topic matches no
    pattern: the payload is then refused whole, as any other (``to_document`` names
    the JSON parser's reason, or the topic). ``EventError`` (``pack_too_large``) for an
    array of more items. An item whose own JSON is at fault
    (nesting too deep, a byte that is not UTF-8: ``items_read_alone``) is one item
    still, refused by itself with the parser's reason."""
    try:
        mapping.check_topic(topic)
        body = decode_json(payload, check_text=False)
    except EventError as exc:
        pinned = items_read_alone(payload, (None,), exc) if exc.code == "bad_json" else None
        if pinned is None:
            return None
        body = pinned[0]
    if isinstance(body, list) and len(body) > MAX_PACK_READINGS:
        # Refused whole, as the HTTP ingest and the worker refuse such a pack, saying so:
        # "expected a number or a JSON object" (t165) hid why an array was refused.
        raise EventError(
            "pack_too_large",
            "payload",
            f"an array of {len(body):,} items",
            f"a message holds at most {MAX_PACK_READINGS:,} readings: send them in "
            "several messages",
        )
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_PACK_READINGS:
        return None
    return items_as_sent(payload, None, len(body))


def _conflicts(
    taken: list[tuple[int, Reading]],
) -> tuple[list[Reading], list[tuple[int, EventError, object]]]:
    """The readings of one array to send, and the refused ones (index, error, sensor):
    items for one sensor at one event time with different values, each naming the
    others (the worker would keep the first and refuse the rest); the same value twice
    is a repeat, sent as it is (the worker drops and counts it)."""
    at: dict[tuple[str, float], list[tuple[int, Reading]]] = {}
    for item in taken:
        at.setdefault((item[1].sensor_id, item[1].ts), []).append(item)
    clash = {i for same in at.values() if len({r.value for _, r in same}) > 1 for i, _ in same}
    refused: list[tuple[int, EventError, object]] = []
    for i, r in taken:
        if i not in clash:
            continue
        same = at[(r.sensor_id, r.ts)]
        others = first_named(
            (f"payload[{j}] {o.value!r}" for j, o in same if j != i), len(same) - 1
        )
        reason = (
            f"sensor {r.sensor_id!r} at {format_ts(r.ts)} is given another value by "
            f"{others}: which is meant?"
        )
        exc = EventError("conflicting_reading", "value", r.value, reason)
        refused.append((i, exc, r.sensor_id))
    return [r for i, r in taken if i not in clash], refused


# How far ahead of this host's clock a claim's start may be (other hosts' clocks differ):
# one further ahead started no later than this ingest, it is no claim (t117).
CLAIM_CLOCK_SKEW = 3600.0


def read_claim(payload: bytes, now: float) -> tuple[dict[str, Any] | None, str]:
    """An ingest's claim on its client id (``{"instance", "started", "pid", "host"}``,
    ``started`` in epoch seconds) -> (the claim, "") when it can be read, else (None,
    why; "" for a payload that is no claim at all: not JSON or without the keys). Any
    MQTT client may publish on the claim topic: a "started" past any float (t117: an
    OverflowError), not finite (NaN: a ValueError from gmtime) or more than
    ``CLAIM_CLOCK_SKEW`` after ``now`` (it stopped every ingest of the id, at every
    start, the claim being retained) is no instance that started later."""
    try:
        claim = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return None, ""
    if not isinstance(claim, dict) or "started" not in claim or "instance" not in claim:
        return None, ""
    started = claim["started"]
    shown = repr(started) if len(repr(started)) <= 40 else f"{repr(started)[:37]}..."
    if isinstance(started, bool) or not isinstance(started, int | float):
        return None, f"gives started {shown}, not epoch seconds"
    if isinstance(started, int) and abs(started) > 1e18:  # float() of it may overflow
        return None, f"gives started {shown}, not a time"
    if not math.isfinite(started):
        return None, f"gives started {shown}, not a time"
    if started > now + CLAIM_CLOCK_SKEW:
        return None, f"gives started {shown}, after this host's clock (no later instance)"
    return claim, ""


class MqttIngest:
    def __init__(
        self,
        host: str,
        port: int,
        mapping: MqttMapping,
        validator: EventValidator,
        publisher: PackPublisher,
        client_id: str = "citybrain-ingest",
        qos: int = 1,
        inflight: int = 10_000,
        clock: Any = time.time,
        metrics: IngestMetrics | None = None,
        max_payload: int = MAX_PAYLOAD,
        receipts: Path | None = None,
    ) -> None:
        """``receipts``: the file that keeps the first receipts of QoS 1 messages across
        restarts (``citybrain.ingest.receipts``; ``receipts_path`` of the run directory
        and the client id); None keeps them in memory only."""
        if qos not in (0, 1):
            raise ValueError(f"qos is {qos}: expected 0 or 1")
        if not 1 <= inflight <= 65_535:
            raise ValueError(f"inflight is {inflight}: expected 1..65535 (Receive Maximum)")
        if max_payload < 1:
            raise ValueError(f"max_payload is {max_payload}: expected at least 1 byte")
        self.host, self.port = host, port
        # One pair, swapped whole by a SIGHUP's grid (``reload``): a message reads both
        # from one snapshot, never a new mapping with the old grid's validator.
        self.parsing: tuple[MqttMapping, EventValidator] = (mapping, validator)
        self.publisher = publisher
        self.client_id = client_id
        self.qos = qos
        self.inflight = inflight
        self.clock = clock
        self.max_payload = max_payload
        self.metrics = metrics or IngestMetrics.create("mqtt", lambda: publisher.stats.readings)
        self.received = 0
        self.skipped = 0  # empty payloads: a retained value cleared, nothing to ingest
        # Packet id -> (digest of the topic and payload, receipt time) of each QoS 1
        # message this client id's ingests received, this process's and, from the file,
        # the ones before it: a redelivery (DUP set, the same packet id, topic and
        # payload) is stamped at its first receipt (``_receipt``). At most 65,535
        # entries (packet ids are 16 bits; a reused id replaces its entry).
        self._first_receipt = Receipts(receipts, clock, SESSION_EXPIRY)
        # A publisher's QoS 1 retry, forwarded by the broker as a new message: stamped
        # at the first one's receipt when it comes sooner than its topic's pace allows.
        self._retries = PublisherRetries()
        self._stopping = False
        self._connected_at = 0.0  # monotonic time of the last connection
        self._quick_drops = 0  # drops in a row within QUICK_DROP seconds of connecting
        self.connected = threading.Event()
        # Set when the broker gave this ingest's session to another client (MQTT 5 reason
        # 0x8E): the run loop stops the ingest with ``taken_over_message``.
        self.taken_over = threading.Event()
        # This instance's claim on the client id: the later (started, instance) wins.
        self.instance = uuid.uuid4().hex
        self.started = time.time()
        self.owner_topic = owner_topic(client_id)
        self.taken_by = ""  # who took the session, as its claim says (for the message)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY
        props.ReceiveMaximum = self.inflight
        self.client.connect_async(
            self.host, self.port, keepalive=60, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self, close: Callable[[], int] | None = None) -> int:
        """Flush to Kafka (acknowledging what it took), then leave; the session stays, so
        the broker delivers what Kafka did not take again. ``close`` closes the publisher
        (default: ``publisher.close()``); returns how many messages Kafka did not take."""
        self._stopping = True
        undelivered = close() if close is not None else self.publisher.close()
        if not self.taken_over.is_set() and self.connected.is_set():
            # Its claim goes with it (an empty retained message clears it): left, a
            # stopped newer ingest's claim stopped an older one that reconnected later.
            self.client.publish(self.owner_topic, b"", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()
        self._first_receipt.close()
        return undelivered

    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("ingest: MQTT broker refused the connection: %s", reason)
            return
        # Subscribing again on a resumed session covers a new pattern. Retained values
        # only for a subscription the session did not have yet (MQTT 5 Retain Handling
        # 1): the broker would send its stored values again at every restart and
        # reconnect, read again, or dead-lettered again (trial 13).
        options = SubscribeOptions(
            qos=self.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
        )
        # The claim topic first and always with its retained value (Retain Handling 0):
        # a newer instance's claim read here stops this one before it publishes its own.
        claims = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        client.subscribe(
            [(self.owner_topic, claims), *[(s, options) for s in self.mapping.subscriptions]]
        )
        claim = {
            "instance": self.instance,
            "started": self.started,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        client.publish(self.owner_topic, json.dumps(claim), qos=1, retain=True)
        log.info(
            "ingest: connected to %s:%s, subscribed to %s",
            self.host,
            self.port,
            self.mapping.subscriptions,
        )
        self._connected_at = time.monotonic()
        self.connected.set()

    def _on_disconnect(self, client: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._stopping:
            return
        if was_connected:
            log.warning("ingest: disconnected from the MQTT broker (%s); reconnecting", reason)
        else:
            # Once per drop (t85: a frozen broker's keepalive timeout was said twice for
            # one disconnect); failed attempts while it stays away are not news.
            log.info("ingest: MQTT broker not reached yet (%s); still reconnecting", reason)
        quick = time.monotonic() - self._connected_at < QUICK_DROP
        self._quick_drops = self._quick_drops + 1 if quick else 0
        # An MQTT session belongs to one connection: a second client with this client id
        # takes it (MQTT 5 says so, reason 142; a 3.1.1 broker just closes). Reconnecting
        # would take it back, and the two took it from each other once a second for ever
        # (t101): the one that lost it stops instead, so the newer one keeps the session.
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            self._give_up_session(client)
            return
        if self._quick_drops == 2:
            log.warning(
                "ingest: the broker keeps dropping this connection right after it connects: "
                "probably another client uses the client id %r and takes the session; give "
                "each ingest its own --client-id (docs/ingest.md, Operating it)",
                self.client_id,
            )

    def _give_up_session(self, client: Any, by: str = "") -> None:
        """Stop reconnecting (another client holds the session; ``by`` says who) and
        tell the run loop (``taken_over``)."""
        self._stopping = True
        self.taken_by = by
        client.disconnect()
        self.taken_over.set()

    def _claim(self, client: Any, payload: bytes) -> None:
        """Another instance's claim on the client id (``owner_topic``): one started later
        (ties: the larger instance id) holds the session from now on, so this one stops;
        an earlier one's is an old claim, which this instance's own replaces. A claim
        that cannot be read (``read_claim``) is said and passed over."""
        claim, fault = read_claim(payload, time.time())
        if claim is None:
            if fault:
                log.warning(
                    "ingest: the claim on client id %r (retained on %s) %s: passed over",
                    self.client_id,
                    self.owner_topic,
                    fault,
                )
            return
        theirs = (float(claim["started"]), str(claim["instance"]))
        if theirs[1] == self.instance or theirs <= (self.started, self.instance):
            return
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(theirs[0]))
        by = f"pid {claim.get('pid')!s:.40} on {claim.get('host')!s:.100}, started {started}"
        self._give_up_session(client, by)

    def taken_over_message(self) -> str:
        """The stop line of an ingest whose session another client took: the client id,
        who took it when known, why it stops rather than take the session back, and what
        to do."""
        who = f" ({self.taken_by})" if self.taken_by else ""
        return (
            f"ingest: stopping: another MQTT client{who} connected to {self.host}:{self.port} "
            f"with this ingest's client id {self.client_id!r}, and the broker gave it the "
            "session (session taken over); taking it back would make "
            "the two drop each other for ever. If that client replaces this ingest, "
            "nothing is lost: it has the session and the messages not acknowledged here. "
            "To run two ingests, give each its own --client-id and its own --topic part "
            "of the topic tree (docs/ingest.md, Operating it)"
        )

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self._message(client, userdata, msg)
        except Exception as exc:
            # Raised to paho, it ends paho's network thread: the ingest reads nothing
            # more, and says nothing (t117: an unreadable retained claim). The message
            # stays unacknowledged, the broker's to deliver again.
            topic = bytes(getattr(msg, "_topic", b"")).decode("utf-8", "backslashreplace")
            log.error("ingest: a message on %s was not handled: %r", one_line(topic), exc)

    def _message(self, client: Any, _userdata: Any, msg: Any) -> None:
        mid, qos = msg.mid, msg.qos
        if msg._topic.startswith(OWNER_PREFIX):
            # Before the patterns: '{a}/{b}/{c}' would read a claim as a reading, and
            # another client id's claim (an ingest per topic subset) as a bad one.
            if qos > 0:
                client.ack(mid, qos)
            if msg._topic == self.owner_topic.encode():
                self._claim(client, msg.payload)
            return
        self.received += 1

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        topic = topic_text(msg)
        sent = carried_headers(mqtt_properties(msg))
        now = self._receipt(msg)
        try:
            self.handle(topic, msg.payload, ack, retained=bool(msg.retain), original=sent, now=now)
        except Exception as exc:
            # One message's fault must not cost the others: dead-letter it, unacknowledged
            # until Kafka has the dead letter.
            log.exception("ingest: message on %s failed", topic)
            try:
                self._dead_letter(topic, msg.payload, "internal", repr(exc), ack, original=sent)
            except Exception:
                # Kafka refused for good (the run loop stops the ingest): the message
                # stays unacknowledged, and the broker's to deliver again.
                log.exception("ingest: dead letter for %s not sent", topic)

    def _receipt(self, msg: Any) -> float:
        """When ``msg`` was received, the time a reading without its own ``ts`` is
        stamped with: now, or, for a redelivery of a QoS 1 message this process received
        before (DUP set, the same packet id, topic and payload: the broker sends every
        unacknowledged message again when the session resumes after a dropped
        connection, or to the next ingest of the client id after this one was killed),
        its first receipt. Stamped anew, a redelivered plain number was a second reading
        at another time, counted twice by the worker (t165; t173 across a restart, the
        receipts kept in a file); stamped alike, it is the same reading again, which the
        worker drops as a repeat. A publisher's own retry, which the broker forwards as
        a new message, is told by its topic's pace (``PublisherRetries``, t206)."""
        now: float = self.clock()
        if msg.qos == 0:
            return now
        topic, payload = bytes(msg._topic), bytes(msg.payload)
        digest = hashlib.blake2b(
            len(topic).to_bytes(4, "big") + topic + payload, digest_size=16
        ).digest()
        first = self._first_receipt.get(msg.mid)
        if getattr(msg, "dup", False) and first is not None and first[0] == digest:
            return first[1]
        # A publisher's retry, which the broker forwards under a packet id of its own
        # (t206): the same topic and payload sooner than the topic's pace allows.
        now = self._retries.stamp(topic, digest, now)
        self._first_receipt.put(msg.mid, digest, now)  # on disk before Kafka has it
        return now

    @property
    def mapping(self) -> MqttMapping:
        return self.parsing[0]

    @property
    def validator(self) -> EventValidator:
        return self.parsing[1]

    def reload(self, mapping: MqttMapping, validator: EventValidator) -> None:
        """Put a new grid's ``mapping`` and ``validator`` in force together (any thread):
        the next message reads them; one being handled finishes with the old pair."""
        self.parsing = (mapping, validator)

    def handle(
        self,
        topic: str,
        payload: bytes,
        ack: Any,
        retained: bool = False,
        original: Sequence[tuple[str, bytes]] = (),
        now: float | None = None,
    ) -> None:
        """One MQTT message: a reading to publish, or a dead letter (carrying
        ``original``, ``carried_headers`` of the message's properties); ``now``: when it
        was received (``_receipt``; default the clock's now)."""
        mapping, validator = self.parsing
        if not payload:
            # An empty publish is MQTT's way to clear a topic's retained value (the broker
            # passes it on to subscribers): no reading, no mistake. Counted, acknowledged.
            self.skipped += 1
            self.metrics.skipped.labels("mqtt", "empty_payload").inc()
            ack()
            return
        if len(payload) > self.max_payload:
            # Refused before it is parsed (a reading is a number or a small object): a
            # 200 MB publish would cost seconds of parsing. Dead-lettered (its first
            # bytes, the header giving its size), not dropped.
            self._dead_letter(
                topic,
                payload,
                "too_large",
                f"payload is {len(payload):,} bytes, at most {self.max_payload:,} are "
                "accepted (--max-payload)",
                ack,
                mapping.sensor_of(topic),
                original,
            )
            return
        if now is None:
            now = self.clock()
        if _ARRAY.match(payload):
            try:
                items = _array(mapping, topic, payload)
            except EventError as exc:
                sensor = mapping.sensor_of(topic)
                self._dead_letter(topic, payload, exc.code, str(exc), ack, sensor, original)
                return
            if items is not None:
                self._each(mapping, validator, topic, items, now, retained, ack, original)
                return
        doc: dict[str, Any] = {}
        try:
            doc = mapping.to_document(topic, payload, now, retained)
            reading = packable(validator.reading_document(doc, now))
        except EventError as exc:
            sensor = doc.get("sensor_id") or mapping.sensor_of(topic)
            exc = mapping.as_sent(exc, payload, doc)  # the payload's fields, as sent
            self._dead_letter(topic, payload, exc.code, str(exc), ack, sensor, original)
            return
        self.publisher.submit(reading, ack)

    def _each(
        self,
        mapping: MqttMapping,
        validator: EventValidator,
        topic: str,
        items: list[bytes],
        now: float,
        retained: bool,
        ack: Callable[[], None],
        original: Sequence[tuple[str, bytes]],
    ) -> None:
        """A JSON array of readings (a gateway's batch): each item read alone, as a
        payload of its own (a number or an object), as the HTTP ingest reads a list. A
        bad item is dead-lettered by itself, its bytes as sent, named ``payload[i]``
        (``field "payload[1].value" is 'x': expected a number``); the good ones go to
        Kafka. The message is acknowledged once Kafka has every item's reading or dead
        letter (t150: one bad item dead-lettered the whole array, the good readings in
        it with it). Two items for one sensor at one time with different values are both
        refused ``conflicting_reading``, as in an HTTP body: which is meant cannot be
        known (items without a ``ts`` are stamped alike, at receipt). ``mapping`` and
        ``validator``: the pair the message began with (``parsing``; SIGHUP swaps it)."""
        left = [len(items)]
        lock = threading.Lock()

        def done() -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                ack()

        taken: list[tuple[int, Reading]] = []
        refused: list[tuple[int, EventError, object]] = []
        for i, raw in enumerate(items):
            doc: dict[str, Any] = {}
            try:
                doc = mapping.to_document(topic, raw, now, retained)
                taken.append((i, packable(validator.reading_document(doc, now))))
            except EventError as exc:
                sensor = doc.get("sensor_id") or mapping.sensor_of(topic)
                refused.append((i, mapping.as_sent(exc, raw, doc), sensor))
            except Exception as exc:  # this item's alone (docs/ingest.md: internal)
                log.exception("ingest: item %d of a message on %s failed", i, topic)
                refused.append((i, EventError("internal", None, None, repr(exc)), None))
        readings, clashes = _conflicts(taken)
        refused.extend(clashes)
        # The message's properties go whole with its first dead letters only: 10,000
        # bad items each carrying 500 kB of them were 5 GB of dead letters.
        shares = shared_original(original, len(refused))
        for (i, bad, sensor), (carried, said) in zip(
            sorted(refused, key=lambda r: r[0]), shares, strict=True
        ):
            where = f"payload[{i}]"
            if bad.field is None and bad.code == "internal":
                message = f"{where}: {bad.reason}"
            else:
                field = where if bad.field in (None, "payload") else f"{where}.{bad.field}"
                message = str(EventError(bad.code, field, bad.value, bad.reason))
            self._dead_letter(topic, items[i], bad.code, message, done, sensor, carried, said)
        for reading in readings:
            self.publisher.submit(reading, done)

    def _dead_letter(
        self,
        topic: str,
        payload: bytes,
        code: str,
        message: str,
        ack: Any,
        sensor: object = None,
        original: Sequence[tuple[str, bytes]] = (),
        said: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Dead-letter one message, keyed by its reading's sensor id when the topic or
        payload gave one (``sensor``: the rule of every reading's dead letter,
        docs/events.md), else by its topic; ``said``: headers to add
        (``shared_original``'s)."""
        headers = dead_letter_headers(f"mqtt:{topic}", code, message, "mqtt") + list(said)
        key = topic.encode("utf-8", "backslashreplace")
        if isinstance(sensor, str) and sensor:
            key = sensor.encode("utf-8", "backslashreplace")
        self.publisher.dead_letter(payload, key, headers, ack, original=original)
        self.metrics.dead_letters.labels("mqtt", code).inc()
