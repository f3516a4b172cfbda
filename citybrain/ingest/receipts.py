"""The MQTT ingest's first receipts, kept on disk across restarts.

A plain number (or an object without ``ts``) is stamped when it is received. A QoS 1
message the ingest handed to Kafka but had not acknowledged to the broker when it was
killed is delivered again to the next ingest with the same client id (DUP set, the same
packet id, topic and payload). Stamped anew there, it was a second reading at another
time, counted twice by the worker (t173; t165 had made a redelivery to the same process
keep its first receipt). So each QoS 1 message's packet id, a digest of its topic and
payload, and its receipt time are appended to a file under the run directory, one line
each, before its reading goes to Kafka; the next ingest of that client id reads them back
and stamps such a redelivery at its first receipt, the same reading again, which the
worker drops as a repeat.

Shape of a line: ``<packet id> <32 hex digits of the digest> <epoch seconds>``. A line
that cannot be read (the last one, cut by a SIGKILL) is skipped. The file holds at most
``COMPACT_LINES`` lines: past that it is written again with the latest entry of each
packet id (at most 65,535). Appended without fsync: a SIGKILL keeps every line (the
page cache has them), a machine's crash may lose the last ones.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Past this many lines the file is written again with one line per packet id.
COMPACT_LINES = 4 * 65_536
_LINE = re.compile(rb"([0-9]{1,5}) ([0-9a-f]{32}) ([0-9]+(?:\.[0-9]+)?)")


def receipts_path(run_dir: Path, client_id: str) -> Path:
    """Where the ingest of ``client_id`` keeps its receipts: ``<run dir>/ingest/
    mqtt-<client id>-<8 hex digits>.receipts``, the client id's characters other than
    letters, digits, ``.``, ``_`` and ``-`` as ``_`` and cut to 64 (the digits, of the
    whole id's SHA-256, keep two ids that read alike apart)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)[:64]
    digest = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return run_dir / "ingest" / f"mqtt-{safe}-{digest}.receipts"


class Receipts:
    """Packet id -> (digest of topic and payload, first receipt in epoch s) of the QoS 1
    messages received under one client id, by this process and, read from ``path`` at
    construction, by the ingests before it. ``path`` None keeps them in memory only (as
    before t173). ``keep_seconds``: entries older than this (the broker's session expiry:
    it has dropped their messages) are not read back."""

    def __init__(
        self,
        path: Path | None,
        clock: Callable[[], float],
        keep_seconds: float,
    ) -> None:
        self.path = path
        self.entries: dict[int, tuple[bytes, float]] = {}
        self._lines = 0
        self._fd: int | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._read(path, clock() - keep_seconds)
            self._rewrite()
        except OSError as exc:
            self._give_up(exc)

    def get(self, mid: int) -> tuple[bytes, float] | None:
        return self.entries.get(mid)

    def put(self, mid: int, digest: bytes, at: float) -> None:
        """Record the first receipt of packet ``mid`` (replacing a reused id's), on disk
        before the caller hands its reading to Kafka."""
        self.entries[mid] = (digest, at)
        if self._fd is None:
            return
        try:
            os.write(self._fd, f"{mid} {digest.hex()} {at!r}\n".encode())
            self._lines += 1
            if self._lines > COMPACT_LINES:
                self._rewrite()
        except OSError as exc:
            self._give_up(exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read(self, path: Path, since: float) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.splitlines():
            match = _LINE.fullmatch(line)
            if match is None:
                continue  # cut by a kill while it was written, or not ours
            mid, at = int(match.group(1)), float(match.group(3))
            if 0 < mid <= 65_535 and at >= since:
                self.entries[mid] = (bytes.fromhex(match.group(2).decode()), at)

    def _rewrite(self) -> None:
        """The file written again with one line per entry (atomically: a new file put in
        its place), then appended to."""
        assert self.path is not None
        self.close()
        new = self.path.with_name(self.path.name + ".new")
        text = "".join(f"{mid} {d.hex()} {at!r}\n" for mid, (d, at) in self.entries.items())
        new.write_text(text)
        os.replace(new, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._lines = len(self.entries)

    def _give_up(self, exc: OSError) -> None:
        """Kept in memory only from now on, said once: the ingest goes on."""
        self.close()
        log.warning(
            "ingest: cannot keep first receipts in %s (%s): a plain number redelivered "
            "to the next ingest after this one stops before acknowledging it may count "
            "twice; receipts are kept in memory only",
            self.path,
            exc.strerror or exc,
        )
        self.path = None


# A message whose topic and payload are its topic's previous message's, received sooner
# after that one's first receipt than this fraction of the topic's shortest recent gap
# between messages, is a publisher's retry (``PublisherRetries``).
RETRY_FRACTION = 0.25
# Topics remembered (the least recently heard forgotten first): a city's sensors, with
# room; about 150 bytes each.
MAX_RETRY_TOPICS = 200_000


class PublisherRetries:
    """A QoS 1 publisher's retry told from a new reading, per topic.

    A gateway publishing at QoS 1 whose connection dropped before the broker's PUBACK
    reached it sends the message again when it reconnects (DUP set, to the broker). The
    broker cannot tell a QoS 1 retry from a new message, and forwards it to the ingest
    as a new one (its own packet id, DUP clear), so a plain number stamped at receipt
    was a second reading a few seconds later, counted twice by the worker (t206; t165
    and t173 covered the broker's own redelivery to the ingest, which keeps the packet
    id). Nothing in the message says which it is: the time does. A sensor's readings
    come at its own pace; the same payload again on its topic, sooner after the first
    than ``RETRY_FRACTION`` of the topic's shortest recent gap (the gap between its
    messages, falling at once to a shorter one and rising a tenth of the way to a
    longer one a message), is taken as the retry: stamped at the first's receipt, the
    same reading again, which the worker drops as a repeat (counted in
    ``citybrain_readings_duplicate_total``). A topic heard once has no pace yet: its
    second message is taken as new. Retries of the retry are likewise; a payload that
    differs, or one as late as a quarter of the pace, is a new reading.

    Limits: a retry later than a quarter of the topic's pace (a gateway that noticed its
    dropped connection only after its keep-alive) is a second reading, as before;
    a sensor that really sends one value twice within a quarter of its usual gap loses
    the second to the worker's repeat count (not silently). In memory: an ingest restarted
    between a message and its publisher's retry takes the retry as new."""

    def __init__(self, max_topics: int = MAX_RETRY_TOPICS) -> None:
        self.max_topics = max_topics
        # topic -> [digest of its newest payload, its first receipt, the pace (s; NaN:
        # none yet)], the least recently heard first.
        self._topics: OrderedDict[bytes, list[Any]] = OrderedDict()

    def stamp(self, topic: bytes, digest: bytes, now: float) -> float:
        """When a message on ``topic`` (``digest`` of its topic and payload) received at
        ``now`` (epoch s) is to be stamped: ``now``, or a retry's first receipt."""
        entry = self._topics.get(topic)
        if entry is None:
            self._topics[topic] = [digest, now, math.nan]
            if len(self._topics) > self.max_topics:
                self._topics.popitem(last=False)
            return now
        self._topics.move_to_end(topic)
        last, first, pace = entry
        gap = now - first
        if digest == last and 0 <= gap < RETRY_FRACTION * pace:  # (NaN: never)
            return float(first)
        if gap > 0:
            entry[2] = gap if not gap >= pace else pace + 0.1 * (gap - pace)
        entry[0], entry[1] = digest, now
        return now
