"""The pipeline's own work without Kafka or faust: the most one core could drain.

The catch-up's messages (bench/catchup.py, the same readings) are held in memory and put
through the worker's per-batch code -- validation and admission (``BatchAdmission``), detection
(``SensorDetection.process``, live detectors kept in a dict as the table keeps them) and
each touched sensor's changelog entry (``state_bytes``, once per commit's worth of readings) --
beside the decode floor, ``orjson.loads`` of the same messages (what the aiokafka floor
does per message). Reported as readings/s and ratios: the gap between the floor and this
ceiling is citybrain's own Python, the gap between this ceiling and the catch-up
pipeline is faust's and Kafka's.

    python -m bench.ceiling [--readings 1000000] [--sensors 20000] [--pack 100]
    python -m bench.ceiling --against main [--rounds 2] [--pack 100]
    python -m bench.ceiling --pack 100 --bad-every 500000 [--against main]
    python -m bench.ceiling --pack 100 --mixed [--against main]

``--bad-every N`` makes every N-th reading implausible (a negative traffic flow), as a
field's stuck or miswired sensor sends: it is refused and the rest must still pass.

No services needed. Writes ``ceiling`` (``ceiling_packed`` for packs, ``_bad_every`` added
with ``--bad-every``) into bench/results.json.
With ``--against REF`` it compares instead: ``streams/detection.py`` and
``streams/columns.py`` as they are at git revision REF (``git show``) are loaded beside
this checkout's, and each round times both (admission alone, then all own work; CPU
time, in alternating order) over the same messages, with the rest of the code shared;
it prints the rates and ratios and writes ``ceiling_against`` (or
``ceiling_packed_against``). The final sensor states must encode to the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import orjson

import streams.detection
from bench import count, machine, out_file, run_main
from bench.catchup import catchup_messages, catchup_readings, write_grid
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.app import settle_garbage_collector
from streams.columns import BatchAdmission
from streams.detection import state_bytes
from streams.events import EventValidator, Reading
from streams.settings import REPO_ROOT, load_settings

PARTITIONS = 2


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def decode_floor(messages: list[tuple[int, bytes, bytes]]) -> int:
    """Readings decoded, the aiokafka floor's per-message work."""
    seen = 0
    for _, _, value in messages:
        doc = orjson.loads(value)
        seen += len(doc["readings"]) if "readings" in doc else 1
    return seen


def own_work(
    messages: list[tuple[int, bytes, bytes]],
    grid: Grid,
    batch: int,
    detect: bool = True,
    commit_every: int = 100_000,
    modules: tuple[ModuleType, ModuleType] | None = None,
    final: dict[str, bytes] | None = None,
) -> int:
    """Firing alerts after the worker's per-batch code over every message, the touched
    sensors' states encoded every ``commit_every`` readings (a commit's worth: 2.8 s at
    the catch-up's rate); with ``detect`` False, validation and admission only (returns
    readings admitted). ``modules``: another revision's (detection, columns) modules to
    run instead of this checkout's; ``final`` receives every sensor's changelog entry at
    the end."""
    admission_class: Any = BatchAdmission if modules is None else modules[1].BatchAdmission
    detection_module: Any = streams.detection if modules is None else modules[0]
    encode: Callable[[Any], bytes] = state_bytes if modules is None else modules[0].state_bytes
    admission = admission_class(EventValidator(grid), PARTITIONS)
    detection = detection_module.SensorDetection.from_settings(load_settings())
    states: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    since_commit = 0
    firing = admitted_total = 0
    now = time.time()
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        incoming, refused = admission.admit(
            [value for _, _, value in chunk],
            [partition for partition, _, _ in chunk],
            range(start, start + len(chunk)),
            [now] * len(chunk),
            now,
        )
        admitted_total += len(incoming) + sum(
            1 for _, r in refused if r.error.code == "out_of_range"
        )
        if not detect:
            continue
        result = detection.process(incoming, states)
        firing += sum(a.status == "firing" for a in result.alerts)
        states.update(result.states)
        touched.update(result.states)
        since_commit += len(incoming)
        if since_commit >= commit_every:
            # The worker writes each touched sensor's state once per offset commit.
            for sensor_id in touched:
                encode(states[sensor_id])
            touched.clear()
            since_commit = 0
    if final is not None:
        final.update((sensor_id, encode(state)) for sensor_id, state in states.items())
    return firing if detect else admitted_total


def implausible_every(readings: Iterable[Reading], every: int) -> Iterator[Reading]:
    """``readings`` with every ``every``-th one's value made negative (below traffic
    flow's plausible range: refused as ``out_of_range``)."""
    for n, reading in enumerate(readings, 1):
        yield msgspec.structs.replace(reading, value=-1.0) if n % every == 0 else reading


def mixed(messages: Iterable[tuple[int, bytes, bytes]]) -> Iterator[tuple[int, bytes, bytes]]:
    """Packs with every third one sent as its readings one per message (``reading/1``,
    keyed by sensor): a topic that gateways and single-reading producers share."""
    for n, (partition, key, value) in enumerate(messages):
        if n % 3 != 1:
            yield partition, key, value
            continue
        for doc in orjson.loads(value)["readings"]:
            single = {**doc, "schema": "reading/1"}
            yield partition, doc["sensor_id"].encode(), orjson.dumps(single)


def result_key(pack: int, bad_every: int, *more: str, mixed: bool = False) -> str:
    """bench/results.json's key: ``ceiling``, ``_packed`` for packs (``_mixed`` with
    single readings among them), ``_bad_every`` when some readings are implausible,
    ``_against`` for a comparison."""
    shape = ("mixed" if mixed else "packed") if pack else ""
    parts = ["ceiling", shape, "bad_every" if bad_every else "", *more]
    return "_".join(filter(None, parts))


def load_revision(ref: str, into: Path) -> tuple[ModuleType, ModuleType]:
    """``streams/detection.py`` and ``streams/columns.py`` as they are at git revision
    ``ref``, loaded as modules ``ref_detection`` and ``ref_columns`` (the rest of the code
    is this checkout's). Raises SystemExit (status 2) naming the revision if git has no
    such file there."""
    loaded = []
    for name in ("detection", "columns"):
        try:
            text = subprocess.run(
                ["git", "show", f"{ref}:streams/{name}.py"],
                cwd=REPO_ROOT,
                capture_output=True,
                check=True,
            ).stdout
        except subprocess.CalledProcessError as exc:
            message = exc.stderr.decode(errors="replace").strip()
            raise SystemExit(f"--against {ref}: streams/{name}.py not found ({message})") from None
        path = into / f"ref_{name}.py"
        path.write_bytes(text)
        spec = importlib.util.spec_from_file_location(f"ref_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"ref_{name}"] = module  # (dataclasses look their module up)
        spec.loader.exec_module(module)
        loaded.append(module)
    return loaded[0], loaded[1]


def cpu_timed(run: Callable[[], int]) -> tuple[float, int]:
    """(CPU seconds of this process, result) of one call: on a shared machine CPU time
    is less disturbed than wall time by the others' work."""
    start = time.process_time()
    result = run()
    return time.process_time() - start, result


def against(
    messages: list[tuple[int, bytes, bytes]],
    grid: Grid,
    batch: int,
    ref: str,
    rounds: int,
    readings: int,
) -> dict[str, Any]:
    """This checkout's own work against ``ref``'s, alternated round by round."""
    with tempfile.TemporaryDirectory() as tmp:
        theirs = load_revision(ref, Path(tmp))
    sides: dict[str, tuple[ModuleType, ModuleType] | None] = {"this": None, ref: theirs}
    runs: list[dict[str, Any]] = []
    entries: dict[str, dict[str, bytes]] = {}
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for side in order:
            modules = sides[side]
            admit_s, _ = cpu_timed(
                partial(own_work, messages, grid, batch, detect=False, modules=modules)
            )
            entries[side] = {}
            own_s, firing = cpu_timed(
                partial(own_work, messages, grid, batch, modules=modules, final=entries[side])
            )
            run = {
                "round": number,
                "code": side,
                "own_work_readings_per_s": round(readings / own_s),
                "admission_readings_per_s": round(readings / admit_s),
                "detection_us_per_reading": round((own_s - admit_s) / readings * 1e6, 3),
                "firing_alerts": firing,
            }
            print(json.dumps(run), flush=True)
            runs.append(run)
    same = entries["this"] == entries[ref]
    ratios = []
    for number in range(rounds):
        mine, other = (
            next(r for r in runs if r["round"] == number and r["code"] == code)
            for code in ("this", ref)
        )
        ratios.append(
            {
                "round": number,
                "own_work": round(
                    mine["own_work_readings_per_s"] / other["own_work_readings_per_s"], 3
                ),
                "detection": round(
                    other["detection_us_per_reading"] / mine["detection_us_per_reading"], 3
                ),
                "admission": round(
                    mine["admission_readings_per_s"] / other["admission_readings_per_s"], 3
                ),
            }
        )
    return {"against": ref, "runs": runs, "ratios": ratios, "same_final_states": same}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=count(), default=1_000_000)
    parser.add_argument("--sensors", type=count(), default=20_000)
    parser.add_argument("--pack", type=count(0), default=0, metavar="N")
    parser.add_argument(
        "--batch", type=count(), default=5000, help="messages per batch (the catch-up worker's)"
    )
    parser.add_argument("--out", type=out_file, default=REPO_ROOT / "bench" / "results.json")
    parser.add_argument(
        "--against", metavar="REF", help="compare with git revision REF's detection and admission"
    )
    parser.add_argument("--rounds", type=count(), default=2, help="alternated rounds (--against)")
    parser.add_argument(
        "--mixed", action="store_true", help="every third pack sent one reading per message"
    )
    parser.add_argument(
        "--bad-every", type=count(0), default=0, metavar="N", help="every N-th reading implausible"
    )
    args = parser.parse_args()
    readings: Iterable[Reading] = catchup_readings(args.readings, args.sensors)
    if args.bad_every:
        readings = implausible_every(readings, args.bad_every)
    messages = list(catchup_messages(readings, args.pack, PARTITIONS))
    if args.mixed:
        messages = list(mixed(messages))
    batch = args.batch
    with tempfile.TemporaryDirectory() as tmp:
        write_grid(Path(tmp) / "grid.yaml", args.sensors)
        grid = load_grid(Path(tmp) / "grid.yaml")
    settle_garbage_collector()  # as the worker does
    if args.against:
        compared = {
            "readings": args.readings,
            "readings_per_message": round(args.readings / len(messages), 1),
            "messages_per_batch": batch,
            "bad_every": args.bad_every,
            "mixed": args.mixed,
            **against(messages, grid, batch, args.against, args.rounds, args.readings),
            **machine(),
        }
        print(json.dumps({k: v for k, v in compared.items() if k != "runs"}, indent=2))
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        merged[result_key(args.pack, args.bad_every, "against", mixed=args.mixed)] = compared
        args.out.write_text(json.dumps(merged, indent=2) + "\n")
        if not compared["same_final_states"]:
            raise SystemExit(f"the final sensor states differ from {args.against}'s")
        return
    floor_s, decoded = timed(lambda: decode_floor(messages))
    admit_s, admitted = timed(lambda: own_work(messages, grid, batch, detect=False))
    own_s, firing = timed(lambda: own_work(messages, grid, batch))
    assert decoded == admitted == args.readings, (decoded, admitted)
    rate = {
        name: args.readings / s
        for name, s in (("floor", floor_s), ("admit", admit_s), ("own", own_s))
    }
    results = {
        "readings": args.readings,
        "readings_per_message": round(args.readings / len(messages), 1),
        "messages_per_batch": batch,
        "bad_every": args.bad_every,
        "mixed": args.mixed,
        "decode_floor_readings_per_s": round(rate["floor"]),
        "admission_readings_per_s": round(rate["admit"]),
        "own_work_readings_per_s": round(rate["own"]),
        # Detection, episodes and state encoding alone: own work less admission.
        "detection_readings_per_s": round(args.readings / max(own_s - admit_s, 1e-9)),
        "ratio_own_work_vs_decode_floor": round(rate["own"] / rate["floor"], 3),
        "share_of_own_work_in_admission": round(admit_s / own_s, 3),
        "firing_alerts": firing,
        **machine(),
    }
    print(json.dumps(results, indent=2))
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged[result_key(args.pack, args.bad_every, mixed=args.mixed)] = results
    args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
