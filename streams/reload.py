"""The worker's configuration reload on SIGHUP (docs/operations.md, "Configuration
reload"): the playbooks, the routing file, the grid file and the operator API's tokens
file read again and swapped in together, or, when any of them has an error, the running
configuration kept whole and the first reason said in one line.

Before t122 the worker installed no SIGHUP handler, so the signal an operator sends
Alertmanager or Prometheus to reload (``kill -HUP``) ended the worker at once: no
commit, no leaving the consumer group, the control room down until restarted. Before
t130 the grid and the tokens were read at start only: a leaked token stayed valid until
the control room was restarted."""

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
from playbooks.grid import Grid, grid_summary
from playbooks.loader import (
    catch_all_warnings,
    load_grid,
    load_playbooks,
    load_routing,
    routing_errors,
    unrouted_playbooks,
)
from playbooks.machine import TERMINAL
from playbooks.routing import Router, label_values, regrouped_routes
from playbooks.schema import Playbook
from streams.auth import TokenStore, closed_reason, exposed
from streams.columns import BatchAdmission
from streams.context import GridChange, engines_of
from streams.corroboration import Areas
from streams.errors import SettingsError, text_lines
from streams.events import EventValidator
from streams.settings import Settings, playbook_dir_problem

if TYPE_CHECKING:
    from streams.alerting import Alerting
    from streams.context import Context
    from streams.ingest import Ingest
    from streams.response import Response

log = logging.getLogger(__name__)

_STATUSES = ("pending", "waiting_ack", "waiting_approval", "waiting_action", "open")
_TERMINAL = frozenset(status.value for status in TERMINAL)
# Open runs a reload names by id when their grid cell is gone (the rest are counted).
NAMED_RUNS = 5


def _digest(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b""


def config_hash(
    playbook_dir: Path,
    routing_file: Path,
    grid_file: Path | None = None,
    tokens_file: Path | None = None,
) -> int:
    """The first 48 bits of the SHA-256 of the playbook directory's ``*.yaml`` files (by
    name, each name and its bytes), the routing file's bytes, and the grid file's and
    the tokens file's (each file's own SHA-256 goes in, never its text: the tokens
    file's hashes are not to be guessed at from a metric): an integer below 2**48,
    exact as a Prometheus float. Files that cannot be read hash as empty (their reader
    says why); no tokens file (None) hashes as none."""
    sha = hashlib.sha256()
    for path in sorted(Path(playbook_dir).glob("*.yaml")):
        sha.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
        sha.update(_digest(path))
    sha.update(b"\0routing\0" + _digest(Path(routing_file)))
    sha.update(b"\0grid\0" + _digest(grid_file))
    sha.update(b"\0tokens\0" + _digest(tokens_file))
    return int.from_bytes(sha.digest()[:6], "big")


def settings_hash(settings: Settings) -> int:
    """``config_hash`` of the files ``settings`` names."""
    return config_hash(
        settings.playbook_dir, settings.routing_file, settings.grid_file, settings.api_tokens_file
    )


class ConfigReload:
    """Reads the playbook directory, the routing file, the grid file and the tokens file
    again (``reload``), as the worker's start reads them (on SIGHUP, on a thread of its
    own: ``on_signal``), and swaps the new playbooks, routing tree, playbook engines,
    grid (with what each stage derives from it: the readings' admission, the
    corroboration areas, the label values and zero series) and tokens into the stages
    between two messages: the swap awaits nothing and replaces one object
    (``Context.config``), which each message, batch, timer tick and API request takes
    once and reads to its end, so none is handled half under one configuration and half
    under the other (t133: awaits inside one message saw a swap made at them). Runs and
    alert groups live in the tables and are untouched: a run whose playbook or current
    step is gone after a reload is handled as after a restart with an edited library
    (docs/playbooks.md, "Runs of an edited library"), and so is an open run whose grid
    cell is gone: it goes on, its notifications and escalations to the city's unit, and
    the reload names it."""

    def __init__(
        self, ctx: Context, alerting: Alerting, response: Response, ingest: Ingest
    ) -> None:
        self.ctx, self.alerting, self.response, self.ingest = ctx, alerting, response, ingest
        # The grid file's bytes in force: a reload that finds them unchanged keeps the
        # running grid, and what is built from it, as they are.
        self._grid_digest = _digest(ctx.settings.grid_file)
        ctx.metrics.config_reload_successful.set(1)
        ctx.metrics.config_reload_success_time.set(time.time())
        # Workers of one group each reload on their own SIGHUP: while they disagree an
        # alert routes by whichever worker holds its partition; this shows it.
        ctx.metrics.config_hash.set(settings_hash(ctx.settings))
        self._running: asyncio.Future[None] | None = None
        self._again = False
        # What the last reload applied changed beyond the files (for its audit record),
        # and the records being sent (held so that they are not collected mid-send).
        self._changes: list[str] = []
        self._audits: set[asyncio.Future[None]] = set()

    def reload(self) -> bool:
        """Reload at once, here; True when the new configuration is in force. On an error
        in any of the four files, the running configuration is kept whole, an ERROR
        line names the first error (file, line, field, value) and how many more there
        are, and ``citybrain_config_last_reload_successful`` is 0 until a reload
        succeeds."""
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
        """The new configuration, or the errors of every file (any thread: reads files
        and builds new objects only, the running ones untouched). Errors in the order
        playbooks and routing, grid, tokens; each a ``file:line: ...`` line."""
        settings = self.ctx.settings
        # Before the load: a file changed between the two is read again at the next SIGHUP.
        digest = settings_hash(settings)
        grid_digest = _digest(settings.grid_file)
        errors: list[str] = []
        playbooks: dict[str, Playbook] = {}
        router: Router | None = None
        # As the start asks it: an absent directory would read as an empty library.
        if why := playbook_dir_problem(settings.playbook_dir):
            errors.append(why)
        else:
            try:
                playbooks = load_playbooks(settings.playbook_dir, settings.topic_prefix)
                router = load_routing(settings.routing_file, playbooks)
            except PlaybookError as exc:
                errors += text_lines(str(exc)) or [type(exc).__name__]
        grid: Grid | None = self.ctx.grid
        if grid_digest != self._grid_digest or not grid_digest:
            try:
                grid = load_grid(settings.grid_file, cache_dir=settings.grid_cache_dir)
            except PlaybookError as exc:  # GridError, or a file not YAML or unreadable
                errors += text_lines(str(exc)) or [type(exc).__name__]
                grid = None
        try:
            tokens = TokenStore.load(settings.api_tokens_file)
        except SettingsError as exc:
            # Its text names file, line, entry and field, never a token or a hash.
            errors += text_lines(str(exc)) or [type(exc).__name__]
        if errors or grid is None or router is None:
            return errors or ["not read"]
        engines = engines_of(playbooks, grid, settings.ack_deadline_seconds)
        values = label_values(grid)
        warnings = (
            routing_errors(settings.routing_file, playbooks, values)[1]
            + unrouted_playbooks(settings.routing_file, router, playbooks)
            + catch_all_warnings(settings.routing_file, router, values)
        )
        built = None
        if grid is not self.ctx.grid:
            # Built here, off the loop: both walk every sensor (a second for a city's).
            validator = EventValidator(grid, max_future_skew=settings.max_future_skew)
            admission = BatchAdmission(validator, settings.partitions)
            built = (validator, admission, Areas(grid), self.ctx.grid_change(grid))
            summary, gone_cells = grid_summary(self.ctx.grid, grid)
        else:
            summary, gone_cells = "", frozenset()
        return _Read(
            playbooks,
            router,
            engines,
            warnings,
            digest,
            grid,
            grid_digest,
            tokens,
            built,
            summary,
            gone_cells,
        )

    def _apply(self, read: _Read | list[str]) -> bool:
        """Swap ``read`` in (on the loop: nothing awaited), or say why not."""
        settings, metrics, ctx = self.ctx.settings, self.ctx.metrics, self.ctx
        if isinstance(read, list):
            more = f" (and {len(read) - 1} more)" if len(read) > 1 else ""
            log.error(
                "citybrain: configuration reload failed, the running playbooks, routing, "
                "grid and tokens are kept: %s%s; `citybrain playbooks check` lists every "
                "error",
                read[0],
                more,
            )
            metrics.config_reload_successful.set(0)
            return False
        playbooks = read.playbooks
        gone = set(ctx.playbooks) - set(playbooks)
        # Said by name (t189: an operator who wrote a playbook and reloaded read "10
        # playbooks", a count to compare with a number not on the screen).
        added = set(playbooks) - set(ctx.playbooks)
        # Said before the swap: a control room must know when two runs will stand for one
        # incident (t125: a route added at the top regrouped every later route unsaid).
        regrouped = regrouped_routes(ctx.router, read.router)
        for line in regrouped:
            log.warning("citybrain: configuration reload: %s", line)
        changes = ([f"no longer in the library: {', '.join(sorted(gone))}"] if gone else []) + (
            regrouped
        )
        old_grid, old_tokens = ctx.grid, ctx.tokens
        grid_changed = read.grid is not old_grid
        stranded = ""
        if grid_changed:
            stranded = self._stranded(read.gone_cells)
            changes += [read.grid_summary, *([stranded] if stranded else [])]
        tokens_line = _tokens_change(old_tokens, read.tokens)
        if tokens_line:
            changes.append(tokens_line)
        # The swap: every stage at once, nothing awaited from here to its end.
        ctx.configured(
            read.grid,
            playbooks,
            read.router,
            read.tokens,
            read.engines,
            read.built[3] if read.built else None,
        )
        if read.built is not None:
            # Live sensors registered under another kind or cell are counted under
            # their new ones from the first batch admitted under it (t156, t159:
            # ``Ingest._follow_grid``; a batch under way ends by the grid it began under).
            validator, admission, areas, _change = read.built
            self.ingest.grid, self.ingest.validator, self.ingest.admission = (
                read.grid,
                validator,
                admission,
            )
            self.ingest.corroboration.areas = areas
            self.ingest.corroboration.initialise_kinds(read.grid.kinds)
            self.response.grid_changed(read.grid)
            self._grid_digest = read.grid_digest
        for name in gone:  # counted by the deadline check for the playbooks in force only
            for status in _STATUSES:
                with contextlib.suppress(KeyError):  # no series of it yet
                    metrics.runs_open.remove(name, status)
        self._changes = changes
        metrics.config_reload_successful.set(1)
        metrics.config_reload_success_time.set(time.time())
        metrics.config_hash.set(read.digest)
        for line in read.warnings:
            log.warning("citybrain: %s (`citybrain playbooks check`)", line)
        if stranded:
            log.warning("citybrain: configuration reload: %s", stranded)
        if warning := exposed(read.tokens.path):
            log.warning("citybrain: %s", warning)
        if closed := closed_reason(read.tokens, ("operator", "coordinator"), "the operator API"):
            # As at start (streams.api): a reload that leaves no desk token closes the API.
            log.warning("citybrain: configuration reload: %s", closed)
        log.info(
            "citybrain: configuration reloaded: %d playbooks from %s, routing from %s, "
            "grid from %s%s, %s%s%s",
            len(playbooks),
            settings.playbook_dir,
            settings.routing_file,
            settings.grid_file,
            " (changed)" if grid_changed else " (unchanged)",
            _tokens_said(read.tokens),
            f"; new playbooks: {', '.join(sorted(added))}" if added else "",
            f"; playbooks no longer in the library: {', '.join(sorted(gone))} (their open "
            "runs are held: docs/playbooks.md, Runs of an edited library)"
            if gone
            else "",
        )
        return True

    def _stranded(self, gone_cells: frozenset[str]) -> str:
        """The open runs of this worker in ``gone_cells`` (cells the new grid drops;
        ``NAMED_RUNS`` named by id, the rest counted), or "" when none: they go on, as
        after a restart with an edited grid. On the loop: walks this worker's groups."""
        if not gone_cells:
            return ""
        stranded: list[tuple[str, str]] = []
        for group in list(self.ctx.groups.data.values()):
            run = group.get("run") if isinstance(group, dict) else None
            if (
                isinstance(run, dict)
                and run.get("grid_cell") in gone_cells
                and run.get("status") not in _TERMINAL
            ):
                stranded.append((str(run.get("run_id")), str(run.get("grid_cell"))))
        if not stranded:
            return ""
        stranded.sort()
        named = ", ".join(f"{run_id} (cell {cell!r})" for run_id, cell in stranded[:NAMED_RUNS])
        more = f" and {len(stranded) - NAMED_RUNS} more" if len(stranded) > NAMED_RUNS else ""
        return (
            f"{len(stranded)} open run(s) of this worker are in grid cells no longer in the "
            f"grid: {named}{more}; they go on, their notifications and escalations to the "
            "city's unit (docs/playbooks.md, Runs of an edited library)"
        )


def _tokens_said(tokens: TokenStore) -> str:
    """How many tokens are in force and from where, never a name's secret or a hash."""
    if tokens.path is None:
        return "no tokens file (the operator API refuses every request)"
    return f"{len(tokens)} token(s) from {tokens.path}"


def _tokens_change(old: TokenStore, new: TokenStore) -> str:
    """The audit clause of a tokens change: how many were added and removed (by count;
    a token is only its hash, which no record holds), or "" when none changed."""
    before, after = old.digests(), new.digests()
    if before == after:
        return ""
    return f"tokens: {len(after - before)} added, {len(before - after)} revoked"


def reload_record(read: _Read | list[str], applied: bool, changes: list[str]) -> dict[str, Any]:
    """The audit record of one reload (``<prefix>.audit``, keyed ``api``): action
    ``config_reloaded`` (``detail``: the files' hash as ``citybrain_config_hash`` shows
    it, the playbooks in force, then ``changes``: those gone, what the reload did to
    open groups, one clause per route, what it changed in the grid (and the open runs
    in cells it dropped) and how many tokens it added and revoked) or
    ``config_reload_failed`` (``detail``: the first error and how many more), so the
    audit trail says when the worker's configuration changed."""
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
    digest: int
    grid: Grid
    grid_digest: bytes
    tokens: TokenStore
    # For a new grid: the validator, the readings' admission, the corroboration areas
    # and the per-cell series' labels built from it; None when the grid is the running one.
    built: tuple[EventValidator, BatchAdmission, Areas, GridChange] | None
    # For a new grid: what it adds and drops (counted), and the cells it drops.
    grid_summary: str
    gone_cells: frozenset[str]
