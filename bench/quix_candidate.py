"""The Quix Streams candidate of the catch-up benchmark: a minimal Quix pipeline doing the
same detection as citybrain's worker (the same validator, the same per-sensor
``SensorDetection`` with its state in Quix's RocksDB state store), writing alerts to a
topic. Runs in its own virtualenv (Quix pins its own pydantic and confluent-kafka), with
the repository on PYTHONPATH; ``bench.catchup`` builds that environment and starts it.

    python bench/quix_candidate.py BOOTSTRAP TOPIC ALERTS_TOPIC GRID READINGS STATE_DIR

Prints one JSON line: readings/s from the first processed message to the last, and the
ids of the firing alerts, so the benchmark can check both candidates raised the same ones.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from quixstreams import Application, State

from playbooks.loader import load_grid
from streams.detection import Incoming, SensorDetection, state_document
from streams.errors import EventError
from streams.events import EventValidator, Reading
from streams.settings import Settings


def main() -> None:
    bootstrap, topic, alerts_topic, grid, readings, state_dir = sys.argv[1:7]
    settings = Settings()  # the worker's settings: the same detector and threshold
    validator = EventValidator(load_grid(grid), max_future_skew=settings.max_future_skew)
    detection = SensorDetection.from_settings(settings)
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"{topic}-quix",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    source = app.topic(topic, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(alerts_topic, value_serializer="json")
    firing: list[str] = []
    clock: dict[str, float] = {}
    seen = 0
    total = int(readings)

    def detect(raw: bytes, state: State) -> list[dict[str, Any]]:
        nonlocal seen
        clock.setdefault("start", time.monotonic())
        try:
            _, decoded = validator.readings(raw, time.time())
        except EventError:
            decoded = []
        seen += max(1, len(decoded))  # a pack counts its readings
        if seen >= total:
            # Application.run(count=...) counts outputs, not inputs: stop here instead.
            clock["end"] = time.monotonic()
            app.stop()
        readings = [r for r in decoded if isinstance(r, Reading)]
        if not readings:
            return []
        # No offsets here: Quix hands the value only, so redelivery is not checked. Its
        # state is scoped to the message key (the sensor, or a pack's partition key), so
        # each sensor's state is stored under its id within that scope.
        result = detection.process(
            [Incoming(r, 0.0, -1, b"") for r in readings],
            {r.sensor_id: state.get(r.sensor_id) for r in readings},
        )
        for sensor_id, sensor_state in result.states.items():
            state.set(sensor_id, state_document(sensor_state))  # Quix stores JSON
        firing.extend(a.alert_id for a in result.alerts if a.status == "firing")
        return [a.to_dict() for a in result.alerts]

    sdf = app.dataframe(source)
    sdf = sdf.apply(detect, stateful=True, expand=True)
    sdf.to_topic(sink)
    app.run(sdf)
    elapsed = clock["end"] - clock["start"]
    print(json.dumps({"readings_per_s": total / elapsed, "firing": sorted(firing)}))


if __name__ == "__main__":
    main()
