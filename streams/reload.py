"""The worker's configuration reload on SIGHUP (docs/operations.md, "Configuration
reload"): the playbooks and the routing file read again and swapped in whole, or, when
either has an error, the running configuration kept and the reason said in one line.

Before t122 the worker installed no SIGHUP handler, so the signal an operator sends
Alertmanager or Prometheus to reload (``kill -HUP``) ended the worker at once: no
commit, no leaving the consumer group, the control room down until restarted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbooks.engine import PlaybookEngine
from playbooks.errors import PlaybookError
from playbooks.loader import load_playbooks, load_routing, routing_errors, unrouted_playbooks
from playbooks.routing import Router, label_values, regrouped_routes
from playbooks.schema import Playbook
from streams.settings import playbook_dir_problem

if TYPE_CHECKING:
    from streams.alerting import Alerting
    from streams.context import Context
    from streams.ingest import Ingest
    from streams.response import Response

log = logging.getLogger(__name__)

_STATUSES = ("pending", "waiting_ack", "waiting_approval", "waiting_action", "open")


def _digest(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b""


def config_hash(playbook_dir: Path, routing_file: Path) -> int:
    """The first 48 bits of the SHA-256 of the playbook directory's ``*.yaml`` files (by
    name, each name and its bytes) and the routing file's bytes: an integer below 2**48,
    exact as a Prometheus float. Files that cannot be read hash as empty (their reader
    says why)."""
    sha = hashlib.sha256()
    for path in sorted(Path(playbook_dir).glob("*.yaml")):
        sha.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
        sha.update(_digest(path))
    sha.update(b"\0routing\0" + _digest(Path(routing_file)))
    return int.from_bytes(sha.digest()[:6], "big")


class ConfigReload:
    """Reads the playbook directory and the routing file again (``reload``), as the
    worker's start reads them (on SIGHUP, on a thread of its own: ``on_signal``), and
    swaps the new playbooks, routing tree and playbook engines into the stages between
    two messages (the swap awaits nothing, so no message is handled half under one
    configuration and half under the other). Runs and
    alert groups live in the tables and are untouched: a run whose playbook or current
    step is gone after a reload is handled as after a restart with an edited library
    (docs/playbooks.md, "Runs of an edited library"). The grid is read at start only."""

    def __init__(
        self, ctx: Context, alerting: Alerting, response: Response, ingest: Ingest
    ) -> None:
        self.ctx, self.alerting, self.response, self.ingest = ctx, alerting, response, ingest
        self._grid_digest = _digest(ctx.settings.grid_file)
        ctx.metrics.config_reload_successful.set(1)
        ctx.metrics.config_reload_success_time.set(time.time())
        # Workers of one group each reload on their own SIGHUP: while they disagree an
        # alert routes by whichever worker holds its partition; this shows it.
        settings = ctx.settings
        ctx.metrics.config_hash.set(config_hash(settings.playbook_dir, settings.routing_file))
        self._running: asyncio.Future[None] | None = None
        self._again = False
        # What the last reload applied changed beyond the files (for its audit record),
        # and the records being sent (held so that they are not collected mid-send).
        self._changes: list[str] = []
        self._audits: set[asyncio.Future[None]] = set()

    def reload(self) -> bool:
        """Reload at once, here; True when the new configuration is in force. On an error
        the running configuration is kept, an ERROR line names the first error (file,
        line, field, value) and how many more there are, and
        ``citybrain_config_last_reload_successful`` is 0 until a reload succeeds."""
        return self._apply(self._read())

    def on_signal(self) -> None:
        """SIGHUP's handler: the files are read on a thread of their own (a routing file
        of 150,000 routes takes ~80 s to read and check, which on the event loop would
        stop heartbeats, readings and the API as long), then swapped in on the loop.
        A SIGHUP while one is being read asks for one more read after it."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.ensure_future(self._reload_off_loop())

    async def _reload_off_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._again = True
        while self._again:
            self._again = False
            read = await loop.run_in_executor(None, self._read)
            applied = self._apply(read)
            # Sent beside the reloads, not awaited by them: with Kafka away the send waits
            # for it, and a reload (or the next SIGHUP's) must not.
            task = asyncio.ensure_future(
                self.ctx.audit(reload_record(read, applied, self._changes))
            )
            self._audits.add(task)
            task.add_done_callback(self._audited)

    def _audited(self, task: asyncio.Future[None]) -> None:
        self._audits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The reload stands; its audit record is what is lost, said here.
            log.warning("citybrain: configuration reload not audited: %r", task.exception())

    def _read(self) -> _Read | list[str]:
        """The new configuration, or its errors (any thread: reads files only)."""
        settings = self.ctx.settings
        # Before the load: a file changed between the two is read again at the next SIGHUP.
        digest = config_hash(settings.playbook_dir, settings.routing_file)
        # As the start asks it: an absent directory would read as an empty library.
        if why := playbook_dir_problem(settings.playbook_dir):
            return [why]
        try:
            playbooks = load_playbooks(settings.playbook_dir, settings.topic_prefix)
            router = load_routing(settings.routing_file, playbooks)
        except PlaybookError as exc:
            return str(exc).splitlines() or [type(exc).__name__]
        engines = {
            name: PlaybookEngine(pb, self.ctx.grid, settings.ack_deadline_seconds)
            for name, pb in playbooks.items()
        }
        warnings = routing_errors(settings.routing_file, playbooks, label_values(self.ctx.grid))[
            1
        ] + unrouted_playbooks(settings.routing_file, router, playbooks)
        grid_changed = _digest(settings.grid_file) != self._grid_digest
        return _Read(playbooks, router, engines, warnings, grid_changed, digest)

    def _apply(self, read: _Read | list[str]) -> bool:
        """Swap ``read`` in (on the loop: nothing awaited), or say why not."""
        settings, metrics = self.ctx.settings, self.ctx.metrics
        if isinstance(read, list):
            more = f" (and {len(read) - 1} more)" if len(read) > 1 else ""
            log.error(
                "citybrain: configuration reload failed, the running playbooks and routing "
                "are kept: %s%s; `citybrain playbooks check` lists every error",
                read[0],
                more,
            )
            metrics.config_reload_successful.set(0)
            return False
        playbooks = read.playbooks
        gone = set(self.ctx.playbooks) - set(playbooks)
        # Said before the swap: a control room must know when two runs will stand for one
        # incident (t125: a route added at the top regrouped every later route unsaid).
        regrouped = regrouped_routes(self.ctx.router, read.router)
        for line in regrouped:
            log.warning("citybrain: configuration reload: %s", line)
        self._changes = (
            [f"no longer in the library: {', '.join(sorted(gone))}"] if gone else []
        ) + regrouped
        self.ctx.playbooks = playbooks
        self.ctx.router = self.alerting.router = self.ingest.router = read.router
        self.response.engines = read.engines
        self.ctx.label_departments = self.ctx.label_departments | {
            pb.department for pb in playbooks.values()
        }
        for name in gone:  # counted by the deadline check for the playbooks in force only
            for status in _STATUSES:
                with contextlib.suppress(KeyError):  # no series of it yet
                    metrics.runs_open.remove(name, status)
        metrics.config_reload_successful.set(1)
        metrics.config_reload_success_time.set(time.time())
        metrics.config_hash.set(read.digest)
        for line in read.warnings:
            log.warning("citybrain: %s (`citybrain playbooks check`)", line)
        log.info(
            "citybrain: configuration reloaded: %d playbooks from %s, routing from %s%s",
            len(playbooks),
            settings.playbook_dir,
            settings.routing_file,
            f"; playbooks no longer in the library: {', '.join(sorted(gone))} (their open "
            "runs are held: docs/playbooks.md, Runs of an edited library)"
            if gone
            else "",
        )
        if read.grid_changed:
            log.warning(
                "citybrain: the grid file %s changed since the worker started: the grid is "
                "read at start only, restart the worker to use it",
                settings.grid_file,
            )
        return True


def reload_record(read: _Read | list[str], applied: bool, changes: list[str]) -> dict[str, Any]:
    """The audit record of one reload (``<prefix>.audit``, keyed ``api``): action
    ``config_reloaded`` (``detail``: the files' hash as ``citybrain_config_hash`` shows
    it, the playbooks in force, then ``changes``: those gone, and what the reload did to
    open groups, one clause per route) or ``config_reload_failed`` (``detail``: the
    first error and how many more), so the audit trail says when the worker's
    configuration changed."""
    at = time.time()
    if isinstance(read, list) or not applied:
        errors = read if isinstance(read, list) else []
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        first = errors[0] if errors else "not applied"
        return {
            "action": "config_reload_failed",
            "at": at,
            "actor": "citybrain",
            "detail": f"{first}{more}"[:2000],
        }
    parts = [f"hash {read.digest}: {len(read.playbooks)} playbooks", *changes]
    return {
        "action": "config_reloaded",
        "at": at,
        "actor": "citybrain",
        "detail": "; ".join(parts)[:2000],
    }


@dataclass(frozen=True)
class _Read:
    playbooks: dict[str, Playbook]
    router: Router
    engines: dict[str, PlaybookEngine]
    warnings: list[str]
    grid_changed: bool
    digest: int
