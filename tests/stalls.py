"""A stand-in for a resolver (or any blocking call) that never answers until the test
lets it go: the hung DNS server of t90's tests, without touching the machine's resolver."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
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
