"""Decode and validate a batch of readings messages in a few calls, one pass over rows.

Most city producers send one ``reading/1`` per Kafka message. ``BatchAdmission.admit``
decodes a whole batch with one msgspec call into typed rows (``WireReading``: C code, no
dict per message), then checks every row against one precomputed registration per sensor
(kind, cell, unit, plausible range and home partition in one tuple), so a valid reading
costs a decode, a dictionary lookup and a few comparisons instead of the validator's
field-by-field calls.

Only rows that pass every rule of ``EventValidator`` are admitted here. Every other
message (a pack, bad JSON, a missing or mistyped field, an unknown sensor, a value out of
range, a wrong partition, ...) goes through ``streams.detection.admit`` on its own, so
its refusal, reason code and field-naming message are exactly the validator's, and a
fault in one message never costs another (a batch whose one-call decode raises is
decoded message by message). msgspec and orjson agree on what is JSON (both refuse bare
NaN, lone surrogates, numbers beyond a double; both keep the last of duplicated keys), and
whatever msgspec refuses is left to the validator, whose lenient fallback still applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import msgspec

from streams.detection import Incoming, Refused, admit
from streams.events import MIN_EVENT_TIME, READING_SCHEMA, EventValidator, Reading, _epoch
from streams.partitioning import sensor_partition


class WireReading(msgspec.Struct, gc=False):
    """A ``reading/1`` message as msgspec decodes it (unknown fields ignored, as the
    validator does; ``value`` accepts a JSON integer or float)."""

    schema: str
    ts: str
    sensor_id: str
    kind: str
    value: float
    unit: str
    grid_cell: str


# sensor id -> (kind, grid cell, unit, plausible min, plausible max, home partition)
Registration = tuple[str, str, str, float, float, int]


class BatchAdmission:
    """The readings agent's admission of a batch: ``EventValidator``'s rules and the
    home-partition rule of ``streams.detection.admit``, columnar for ``reading/1``.

    ``partitions`` is the readings topic's partition count. The registrations are taken
    from the validator's grid once, here (the worker loads its grid at start-up)."""

    def __init__(self, validator: EventValidator, partitions: int) -> None:
        self.validator = validator
        self._decode = msgspec.json.Decoder(WireReading).decode
        self._home: Callable[[str], int] = partial(sensor_partition, partitions=partitions)
        grid = validator.grid
        self._registered: dict[str, Registration] = {}
        for sensor_id, sensor in grid.sensors.items():
            kind = grid.kinds.get(sensor.kind)
            if kind is not None and sensor.cell in grid.cells:
                self._registered[sensor_id] = (
                    sensor.kind,
                    sensor.cell,
                    kind.unit,
                    kind.min,
                    kind.max,
                    self._home(sensor_id),
                )

    def _decoded(self, values: Sequence[bytes]) -> list[WireReading | None]:
        """Every message as a ``WireReading``, None where msgspec refuses it."""
        decode = self._decode
        try:
            return [decode(value) for value in values]  # the common case: one call's loop
        except Exception:
            pass
        rows: list[WireReading | None] = []
        for value in values:
            try:
                rows.append(decode(value))
            except Exception:  # the validator names the fault below
                rows.append(None)
        return rows

    def admit(
        self,
        values: Sequence[bytes | None],
        partitions: Sequence[int],
        offsets: Sequence[int],
        received: Sequence[float],
        now: float,
    ) -> tuple[list[Incoming], list[tuple[int, Refused]]]:
        """A batch of readings messages (values, their partitions, offsets and Kafka
        timestamps in seconds, in offset order) -> the readings detection takes, in
        order, and the refused ones as (message's place in the batch, ``Refused``).
        Never raises for a message's content; the same result as ``admit`` called on
        each message."""
        raw = [value or b"" for value in values]  # a tombstone is refused as bad JSON
        rows = self._decoded(raw)
        registered = self._registered
        newest = now + self.validator.max_future_skew
        incoming: list[Incoming] = []
        refused: list[tuple[int, Refused]] = []
        for i, row in enumerate(rows):
            if row is not None:
                reg = registered.get(row.sensor_id)
                if (
                    reg is not None
                    and row.schema == READING_SCHEMA
                    and row.kind == reg[0]
                    and row.grid_cell == reg[1]
                    and row.unit == reg[2]
                    and reg[3] <= row.value <= reg[4]
                    and partitions[i] == reg[5]
                ):
                    try:
                        ts = _epoch(row.ts)
                    except ValueError:
                        ts = None
                    if ts is not None and MIN_EVENT_TIME <= ts <= newest:
                        reading = Reading(
                            ts, row.sensor_id, row.kind, row.value, row.unit, row.grid_cell
                        )
                        incoming.append(Incoming(reading, received[i], offsets[i], raw[i], 0))
                        continue
            # Anything else: the validator's own path, for its exact reason and message.
            admitted, refusals = admit(
                self.validator, raw[i], now, partitions[i], self._home, offsets[i], received[i]
            )
            incoming.extend(admitted)
            refused.extend((i, r) for r in refusals)
        return incoming, refused
