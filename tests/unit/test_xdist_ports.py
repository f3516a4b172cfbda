"""t145: `make test` runs the integration and end-to-end tests in pytest-xdist processes,
each starting its own session stack. Every process had the same test ports, so the second
process's Kafka, Prometheus, Mosquitto, workers and ingests could not bind theirs (or
answered the first's tests). Each process now adds 50 per worker index."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.services import ROOT, xdist_index

# Every port the integration tests shift, besides TEST_PORTS: the second and third workers
# (26067-26069), the scale-out broker (23092-23093), SCRAM (21066, 21092-21093), a second
# ingest (26082), the dashboards server (26090), Alertmanager with its webhook (29095-29097)
# and the restarted Prometheus of the gauges and map tests (29098).
OTHER_BASES = [21066, 21092, 21093, 23092, 23093, 26067, 26068, 26069, 26082, 26090]
OTHER_BASES += [29094, 29095, 29096, 29097, 29098]

# ``shifted_port(<base>)`` and ``shifted_port(<base> + n)`` as the test sources write them.
SHIFTED = re.compile(r"shifted_port\((\d{4,5})\b")


def ports_of(worker: str | None) -> list[int]:
    """Every test port as a process of ``worker`` (PYTEST_XDIST_WORKER) shifts it."""
    env = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_TEST_PORT_OFFSET"}
    env.pop("PYTEST_XDIST_WORKER", None)
    if worker is not None:
        env["PYTEST_XDIST_WORKER"] = worker
    code = (
        "import json; from tests.services import TEST_PORTS, shifted_port; "
        f"print(json.dumps([int(p) for p in TEST_PORTS.values()] "
        f"+ [shifted_port(p) for p in {OTHER_BASES}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    ports: list[int] = json.loads(out)
    return ports


def test_each_xdist_process_has_ports_no_other_process_uses() -> None:
    serial = ports_of(None)
    processes = [ports_of(f"gw{i}") for i in range(4)]
    assert processes[0] == serial  # the first process (and a serial run) keeps the README's
    for i, mine in enumerate(processes):
        assert len(set(mine)) == len(mine)
        for other in processes[i + 1 :]:
            assert not set(mine) & set(other)
    # Below Linux's ephemeral range, as every test port (docs/operations.md).
    assert max(max(p) for p in processes) < 32768


def test_every_base_a_test_shifts_is_one_the_processes_are_checked_on() -> None:
    """A test's own base left out of ``OTHER_BASES`` escaped the check above: t210's
    restarted Prometheus took 29190, which the third process's session Prometheus
    (29090 + 2·50) also takes, and a CI run's map test found that stack on its port."""
    from tests.services import PORT_OFFSET, TEST_PORTS

    listed = set(OTHER_BASES) | {int(port) - PORT_OFFSET for port in TEST_PORTS.values()}
    found = {
        (str(path.relative_to(ROOT)), int(base))
        for path in (ROOT / "tests").rglob("*.py")
        for base in SHIFTED.findall(path.read_text())
    }
    assert found, "no shifted_port(<base>) found: the pattern no longer reads the tests"
    unlisted = sorted((path, base) for path, base in found if base not in listed)
    assert not unlisted, f"add these bases to OTHER_BASES: {unlisted}"


@pytest.mark.parametrize(
    ("worker", "index"), [(None, 0), ("", 0), ("master", 0), ("gw0", 0), ("gw12", 12)]
)
def test_the_worker_index(worker: str | None, index: int) -> None:
    assert xdist_index(worker) == index


def test_a_worker_name_out_of_shape_is_named() -> None:
    with pytest.raises(ValueError, match="PYTEST_XDIST_WORKER is 'gwx', expected gw<number>"):
        xdist_index("gwx")


def test_the_slowest_first_files_exist_and_lead_the_collection() -> None:
    """A renamed or removed file in ``SLOWEST_FIRST`` would fall silently to the end."""
    from tests.conftest import SLOWEST_FIRST

    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
    missing = [path for path in SLOWEST_FIRST if not (ROOT / path).is_file()]
    assert not missing, missing
    collect = ["--collect-only", "-q", "-p", "no:xdist", "tests/integration", "tests/e2e"]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", *collect],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    files = list(
        dict.fromkeys(line.split("::", 1)[0] for line in listed.stdout.splitlines() if "::" in line)
    )
    assert files[: len(SLOWEST_FIRST)] == list(SLOWEST_FIRST), listed.stdout[-2000:]
