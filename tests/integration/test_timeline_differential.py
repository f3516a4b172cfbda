"""t196: routing over time against a running Alertmanager 0.25.

The other differential tests compare what is routed, grouped, inhibited and silenced at
one instant; this one compares the *timeline*: which notifications go out when, and
with which alerts, as alerts fire, resolve and fire again, silences are made, end and
are expired, and inhibiting alerts (two rules inhibiting each other among them) come
and go, under small ``group_wait``, ``group_interval`` and ``repeat_interval`` (one
shorter than ``group_interval`` too; t202: ``group_wait`` 0 and a ``group_interval`` of
half a second). Each round plays 20 generated timelines per seed
(``timelines.play``) at once on a real Alertmanager, its webhook receiver posting to a
local sink, and on citybrain's alerts and response stages with a fake clock; per group,
the notifications (time of the flush each came from, firing alert ids) must be the
same. A group is compared up to the first alert firing into it after it emptied, where
Alertmanager 0.25's 30 s cleanup races (``comparable_until``).
Found with it (each fixed, docs/playbooks.md): an alert firing again after resolving was
never notified again; an alert muted at a notification was not new once freed; a muted
alert's resolution ended its group at once, not at the group's next flush; a muted
alert coming to a run whose alerts had all resolved did not keep its group; a group
holding a muted alert while its run was open died with the run's own alerts, and an
alert new to such a group went out as a late repeat, off its ticks (t201, "Closed
(t201)"; seeds 25-27 met it); an alert new to a notified group but muted at its flush
was notified (with the others), and a flush finding no alert firing unmuted but one
resolved did not empty the notification log (t202, "Closed (t202)": seeds 33 and 37,
played here, fail on the code before it); a ``firing`` alert whose ``ended_at`` had
passed, Prometheus' way of resolving, fired on (t213: half of the resolutions are sent to
citybrain so, ``timelines.spell_resolutions``; both rounds fail on the code before it).
A third round (t213) gives half its timelines a second route their alerts also take
(``continue: true``), each alert in two groups at once.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.timelines import (
    Sink,
    Timeline,
    by_timeline,
    comparable_until,
    describe,
    drive_alertmanager,
    drive_citybrain,
    play,
    routing_docs,
)
from tests.services import free_ports

pytestmark = pytest.mark.integration

ALERTMANAGER = shutil.which("prometheus-alertmanager")
END = 16  # timeline seconds: events up to 14, the flushes after them
SCALE = 2.0  # real seconds per timeline second on Alertmanager
TIMELINES = 20  # per seed
# Each round: (seeds, wide, also) played at once on one Alertmanager run (about 40 s
# each). t196's two seeds and the two seeds whose timelines t201 left open (33: timeline
# 4, 37: timeline 3; docs/playbooks.md "Closed (t202)"), with t196's draws; seeds of
# t202's wider draws (group_wait 0, tiny intervals); and (t213) wider draws half of
# whose timelines have a second route their alerts also take (``continue: true``).
ROUNDS = {
    "t196": ([196, 197, 33, 37], False, False),
    "wide": ([202, 203, 204, 205], True, False),
    "continue": ([213, 214], True, True),
}


def disagreements(timelines: list[Timeline], am: list[tuple], cb: list[tuple]) -> list[str]:
    """Each timeline whose groups' notifications differ, told with both sequences."""
    out = []
    am_by, cb_by = by_timeline(am), by_timeline(cb)
    for tl in timelines:
        until = comparable_until(tl)

        def kept(notes: list[tuple], until: dict = until) -> list[tuple]:
            return [n for n in notes if n[0] < until.get(n[2], float("inf"))]

        theirs, ours = kept(am_by.get(tl.n, [])), kept(cb_by.get(tl.n, []))
        if theirs != ours:
            lines = list(describe(tl))
            for n in sorted(set(theirs) | set(ours)):
                side = ("AM" if n in theirs else "  ") + " " + ("CB" if n in ours else "  ")
                lines.append(f"    {side} {n}")
            out.append("\n".join(lines))
    return out


@pytest.mark.parametrize("name", list(ROUNDS))
def test_notification_timelines_agree_with_alertmanager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    assert ALERTMANAGER is not None, "apt-get install prometheus-alertmanager"
    port, hook = free_ports(2)  # the kernel's picks: other suites share the machine
    seeds, wide, also = ROUNDS[name]
    timelines = play(seeds, TIMELINES, END - 2, wide, also)
    ours = drive_citybrain(timelines, tmp_path / "citybrain", monkeypatch, END)
    config, _ = routing_docs(timelines, hook, SCALE)
    (tmp_path / "alertmanager.yml").write_text(config)
    sink = Sink(hook)
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/status", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        theirs = drive_alertmanager(timelines, port, sink, END, SCALE)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        sink.close()
    # Enough happened to compare: most timelines notified, some more than once.
    assert len({n[1] for n in theirs}) > len(timelines) // 2, theirs
    assert len(theirs) > 2 * len(timelines), theirs
    differ = disagreements(timelines, theirs, ours)
    assert not differ, "\n".join(differ)
