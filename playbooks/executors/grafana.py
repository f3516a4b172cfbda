"""Grafana annotations for ``annotate`` steps, through grafana-client's async API.

Never blocks the caller: ``submit`` starts a background call and returns; at most
``max_in_flight`` calls run at once (beyond that, annotations are dropped and reported),
each bounded by ``timeout``. Failures go to ``on_error`` (the host audits and counts them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

from grafana_client.api import AsyncGrafanaApi


class GrafanaAnnotator:
    def __init__(
        self,
        url: str,
        token: str,
        on_error: Callable[[str, str], Awaitable[None]],
        timeout: float = 5.0,
        max_in_flight: int = 50,
    ) -> None:
        parsed = urlparse(url)
        self.api = AsyncGrafanaApi.from_url(url, credential=token, timeout=timeout)
        self.where = f"{parsed.scheme}://{parsed.netloc}"
        self.on_error = on_error
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, annotation_id: str, text: str, tags: list[str], at_ms: int) -> bool:
        if len(self._tasks) >= self.max_in_flight:
            return False
        task = asyncio.get_running_loop().create_task(self._post(annotation_id, text, tags, at_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _post(self, annotation_id: str, text: str, tags: list[str], at_ms: int) -> None:
        try:
            await asyncio.wait_for(
                self.api.annotations.add_annotation(time_from=at_ms, tags=tags, text=text),
                timeout=self.timeout,
            )
        except Exception as exc:  # any failure of a remote call is reported, never raised
            await self.on_error(annotation_id, f"{self.where}: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
