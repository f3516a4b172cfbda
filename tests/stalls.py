"""Stand-ins for what never answers: a resolver (or any blocking call) that never
answers until the test lets it go (the hung DNS server of t90's tests, without touching
the machine's resolver), and a process frozen with SIGSTOP for certain (``sigstop``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


class NeverAnswers:
    """A callable that blocks every caller until ``release`` and then returns ``[]`` (an
    empty ``getaddrinfo`` answer). Release it in a ``finally``, so the threads it holds
    end with the test."""

    def __init__(self) -> None:
        self._released = threading.Event()

    def __call__(self, *args: Any) -> list[Any]:
        self._released.wait()
        return []

    def release(self) -> None:
        self._released.set()


def loop_still_resolves(body: Callable[[], Awaitable[None]], hangs: NeverAnswers) -> None:
    """Run ``body`` on a loop whose default executor has one thread, then check the loop's
    own name resolution (``loop.getaddrinfo``, on that executor) still answers: a caller
    resolving through ``hangs`` must not have taken the thread. ``hangs`` is released
    at the end, whatever happened."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        await body()
        return await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)

    try:
        answer = asyncio.run(main())
    finally:
        hangs.release()
    assert answer[0][4][:2] == ("127.0.0.1", 80)


def sigstop(pid: int, timeout: float = 10.0) -> None:
    """SIGSTOP ``pid`` and return once every thread of it has stopped (state ``T``).

    ``kill`` returns before the process stops: the kernel wakes one thread to take the
    signal, and under load it may wait for a CPU while the others run on. A broker
    "frozen" that way answered a fetch sent just after (the whole topic read,
    DID NOT RAISE in CI). Raises ``AssertionError`` when a thread still runs after
    ``timeout`` seconds (a bound so a broken freeze fails, not a timing assertion)."""
    os.kill(pid, signal.SIGSTOP)
    until = time.monotonic() + timeout
    while True:
        running = _running_threads(pid)
        if not running:
            return
        if time.monotonic() > until:
            raise AssertionError(f"pid {pid} did not stop: threads {running[:5]} still run")
        time.sleep(0.002)


def _running_threads(pid: int) -> list[str]:
    """The threads of ``pid`` not stopped, as ``tid:state`` (none when it has exited)."""
    running = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        # The name (field 2) is in parentheses and may hold spaces: the state follows.
        state = stat[stat.rfind(")") + 1 :].split()[0]
        if state not in ("T", "t", "Z", "X"):
            running.append(f"{tid}:{state}")
    return running
