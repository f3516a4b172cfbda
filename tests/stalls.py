"""A stand-in for a resolver (or any blocking call) that never answers until the test
lets it go: the hung DNS server of t90's tests, without touching the machine's resolver."""

from __future__ import annotations

import threading
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
