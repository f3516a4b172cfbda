"""t145: stacks started at once on a fresh cache (the integration tests' xdist processes,
each starting its own stack; two checkouts) each saw no stamp and ran Maven into the one
shared jar directory, removing the others' half-made copy first. Now one downloads and
the others wait for its lock and find its stamp."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from streams.settings import Settings

# A stand-in for Maven that records each run and takes a second over its copy: long
# enough that stacks started together all ask for the jars while the first still copies.
FAKE_MVN = """#!/bin/sh
echo run >> "{runs}"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
done
sleep 1
mkdir -p "$out" && echo jar > "$out/kafka.jar"
"""


def test_stacks_started_at_once_download_the_jars_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, runs = tmp_path / "bin", tmp_path / "mvn-runs"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(runs=runs))
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    home = tmp_path / "home"
    brokers = [
        KafkaBroker(Settings(run_dir_override=tmp_path / f"run{i}", home=home)) for i in range(3)
    ]
    start = threading.Barrier(len(brokers))
    errors: list[BaseException] = []

    def install(broker: KafkaBroker) -> None:
        start.wait()
        try:
            broker.install()
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=install, args=(b,)) for b in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert runs.read_text().splitlines() == ["run"]  # one download; the others waited
    libs = brokers[0].libs
    assert (libs / "kafka.jar").read_text() == "jar\n"
    assert all(b.download_notice() is None for b in brokers)
