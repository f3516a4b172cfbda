"""An interrupted LOCO run stops: Ctrl-C (SIGINT to the whole process group) or SIGTERM
to the run ends it within seconds, in one line with status 130, its scoring workers
gone and no cache file cut short. Was: the pool's ``with`` waited for every queued file
(minutes, both cores) and each worker printed a ``KeyboardInterrupt`` traceback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.nab_loco import save_scores
from streams.settings import REPO_ROOT
from tests.unit.citybrain.test_cli_errors import interruptible


def corpus(root: Path, files: int, rows: int) -> None:
    (root / "data" / "cat").mkdir(parents=True)
    (root / "labels").mkdir()
    stamps = pd.date_range("2014-01-01", periods=rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    windows = {}
    for i in range(files):
        values = np.random.default_rng(i).normal(10, 1, rows)
        frame = pd.DataFrame({"timestamp": stamps, "value": values})
        frame.to_csv(root / "data" / "cat" / f"f{i}.csv", index=False)
        windows[f"cat/f{i}.csv"] = [[stamps[rows // 2], stamps[rows // 2 + 50]]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "SIGTERM"])
def test_an_interrupted_loco_run_stops_its_workers_at_once(
    tmp_path: Path, signum: signal.Signals
) -> None:
    corpus(tmp_path / "nab", files=8, rows=40_000)  # minutes of the slowest detector
    cache = tmp_path / "cache"
    options = ["--detector", "discord", "--cache", str(cache), "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.nab_loco", "--data", str(tmp_path / "nab"), *options],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's command
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 120
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children(proc.pid)
        assert len(workers) == 2
        time.sleep(2)  # the workers are scoring their first files
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (gone already, as it should be)
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("interrupted")
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    assert not list(cache.rglob("*.partial"))


def test_a_cache_file_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "cat__f0.csv.npy"
    save_scores(path, np.arange(3.0))
    assert np.load(path).tolist() == [0.0, 1.0, 2.0]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_pool_managers_cancelled_future_race_is_quiet_and_nothing_else_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CI run's Ctrl-C ended in "interrupted" then a pool manager thread's traceback:
    Python 3.11's ``terminate_broken`` set an exception on a future the interrupted map
    had cancelled (``InvalidStateError``). That one is quiet; any other is printed."""
    from concurrent.futures import InvalidStateError

    from bench.nab_loco import _quiet_cancelled_race

    def raise_in_thread(exc: BaseException) -> str:
        def run() -> None:
            raise exc

        previous = threading.excepthook
        threading.excepthook = _quiet_cancelled_race
        try:
            thread = threading.Thread(target=run)
            thread.start()
            thread.join()
        finally:
            threading.excepthook = previous
        return capsys.readouterr().err

    assert raise_in_thread(InvalidStateError("CANCELLED: <Future state=cancelled>")) == ""
    assert "RuntimeError: not the race" in raise_in_thread(RuntimeError("not the race"))
