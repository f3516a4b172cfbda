"""The faust app: builds the stages and wires them to topics, agents and timers.

Each stage is a module with one job, holding its handlers: ``streams.ingest`` (readings
and incident reports to alerts; the burst sweep), ``streams.alerting`` (alerts through
silences, inhibition and the routing tree; the mute re-check), ``streams.response``
(routed alerts and commands to playbook runs; the deadline timer) and ``streams.api``
(the operator API). They share one ``streams.context.Context`` (topics, tables,
sending). This module only builds and wires them: ``create_app(settings)``, so tests
get a fresh app each.

Flow: readings -> detect -> alerts (keyed by alert id) -> route (silences, inhibition,
routing tree) -> routed (keyed by group key) -> respond (one run per group, in the
``groups`` table) -> steps / audit / task topics and webhooks. Operator commands and
webhook outcomes arrive on ``commands``, keyed by group key like the runs they change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.alerting import Alerting
from streams.api import register_api
from streams.bounds import Bounds
from streams.codecs import require_codecs
from streams.context import Context
from streams.faust_metrics import setup_faust_metrics
from streams.faust_patches import (
    BatchDrain,
    group_dropped,
    keep_to_the_consumer_thread,
    leave_group_on_stop,
    read_changelogs_once,
    read_committed,
    set_fetch_max_wait,
    start_tables_at_once,
)
from streams.faust_patches import install as install_faust_patches
from streams.http_client import http_client
from streams.ingest import Ingest
from streams.logs import SayEvery
from streams.membership import group_answer
from streams.membership import still_member as membership_still
from streams.metrics import Metrics
from streams.partitioning import grown_topics
from streams.reload import ConfigReload
from streams.response import Response
from streams.settings import Settings, changelog_topic_configs, load_settings
from streams.tables import REASONS, ReadBack, coalesce_changelog
from streams.topic_ids import METADATA_MAX_AGE, TopicIdWatch, admin_lookups
from streams.web_server import install as bound_web_server

log = logging.getLogger(__name__)


def settle_garbage_collector() -> None:
    """Called once the app is built. The start-up objects (grid, playbooks, classifier,
    modules) never die: moved out of the collector's reach, with fewer full collections,
    so a collection does not stall the event loop for a tenth of a second under load.
    The collector is on afterwards (``citybrain worker`` builds the app with it off)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    gc.enable()


def group_instance_id(settings: Settings) -> str | None:
    """This worker's static member id in the consumer group (Kafka's group.instance.id),
    None with ``static_membership`` off: ``<app id>.<host name>.<bind>.<port>``, with
    any character Kafka's ids do not take (outside ``[A-Za-z0-9._-]``) as ``_``. The
    same across the worker's restarts on this machine, and no two workers' alike: two
    on one machine cannot bind one address and port, and the host name tells machines
    apart (two workers with one id would fence each other out of the group)."""
    if not settings.static_membership:
        return None
    raw = f"{settings.app_id}.{socket.gethostname()}.{settings.worker_bind}.{settings.worker_port}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:249]


def worker_url(settings: Settings) -> str:
    """The URL the other workers reach this worker's operator API at (faust's
    ``canonical_url``, which the consumer group's assignment carries to every member):
    ``http://<bind>:<port>``; for a wildcard bind (``0.0.0.0``, ``::``), this machine's
    host name, as a wildcard address is no address another machine can reach."""
    host = settings.worker_bind
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{settings.worker_port}"


_RELOAD = "citybrain_config_reload"


def config_reload(app: faust.types.AppT) -> ConfigReload | None:
    """The reload of ``app``'s playbooks and routing file (streams/reload.py), which
    ``citybrain worker`` calls on SIGHUP; None for an app create_app did not build."""
    found = getattr(app, _RELOAD, None)
    return found if isinstance(found, ConfigReload) else None


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> faust.App:
    """A fresh faust app with its agents, tables, timer, operator API and /metrics.

    Raises ``streams.codecs.MissingCodecError`` if a Kafka compression codec cannot be
    decoded, and the grid's and playbooks' load errors."""
    settings = settings or load_settings()
    # Before anything: a field producer's lz4, snappy or zstd batch must not stop the
    # worker (streams/codecs.py).
    require_codecs()
    registry = registry or CollectorRegistry()
    # Parsed once per grid file and code version, then read back (playbooks/loader.py).
    grid = load_grid(settings.grid_file, cache_dir=settings.grid_cache_dir)
    datadir = settings.run_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=settings.faust_credentials(),
        store="memory://",
        datadir=str(datadir),
        web_bind=settings.worker_bind,
        web_host=settings.worker_bind,
        web_port=settings.worker_port,
        # Where the other workers pass on an operator API request about a run this
        # worker owns (streams/api.py).
        canonical_url=worker_url(settings),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        # No standbys: a restarted or new owner rebuilds from the changelog, and the
        # deadline timer never sees another worker's runs.
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        consumer_group_instance_id=group_instance_id(settings),
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=settings.commit_interval,
        broker_commit_every=settings.commit_every,
        # A commit writes thousands of ~6 kB sensor states; aiokafka keeps one open batch
        # per partition and waits a broker round trip whenever it is full, so faust's
        # 16 kB default stalls the event loop (~400 ms per commit at 2,000 sensors).
        # Stays under the broker's default message.max.bytes (1 MiB).
        producer_max_batch_size=1_000_000,
        consumer_max_fetch_size=settings.fetch_max_bytes,
        broker_max_poll_records=settings.batch_size,
        # A topic deleted, created again or grown under the worker is seen within this
        # long, not aiokafka's 5 minutes (t208; streams/topic_ids.py).
        consumer_metadata_max_age_ms=int(METADATA_MAX_AGE * 1000),
        # Its name resolution bounded, on threads of its own (streams/http_client.py).
        HttpClient=http_client,
    )
    metrics = Metrics.create(registry)
    setup_faust_metrics(app, registry)
    ctx = Context(app, settings, grid, metrics)
    # Built in the order their configuration is checked: routing, playbooks, detector.
    alerting, response, ingest = Alerting(ctx), Response(ctx), Ingest(ctx)
    # `kill -HUP` reads the playbooks and routing again (the worker command installs it).
    setattr(app, _RELOAD, ConfigReload(ctx, alerting, response, ingest))

    # Sensor states and corroboration areas' marks reach their changelogs once per commit.
    # None of them once the group has dropped this worker (t192).
    async def dropped() -> bool:
        return await group_answer(ctx.membership, lambda: group_dropped(app.consumer))

    coalesce_changelog(
        app,
        # The run-id floors a dropped group raises at read-back (``keep_generation``).
        [ctx.sensor_state, ingest.corroboration.table, ctx.generations],
        ctx.states_settled,
        [ctx.delivery],
        dropped,
    )
    # Every table's entries that cannot be read back are dropped, said, counted and
    # audited (docs/operations.md, "State read back"); never fatal to recovery.
    changelog_configs = changelog_topic_configs(settings)
    for table in app.tables.values():
        # Every changelog compacted within hours, not weeks: its length, and a restart's
        # time, bounded by its live keys (docs/operations.md, "Restart time and changelog
        # length"). faust declares a missing changelog with these; citybrain creates them
        # before (citybrain.stack.topics.faust_topics) and sets them on existing ones.
        table.extra_topic_configs = changelog_configs
        table.changelog_topic.config = dict(changelog_configs)
        if isinstance(table, ReadBack):
            table.on_unreadable = ctx.on_unreadable_state
            table.on_skipped = ctx.on_skipped_state
            for reason in REASONS:
                metrics.state_unreadable.labels(table.name, reason)
    # A group dropped at read-back keeps its run generation as its partition's floor.
    ctx.groups.on_refused_history = ctx.keep_generation
    register_api(app, ctx)
    # Slow and greedy clients bounded, and aiohttp's own refusals in the API's JSON
    # (streams/web_server.py).
    bound_web_server(
        app,
        Bounds(timeout=settings.http_timeout, max_connections=settings.http_max_connections),
        lambda reason: metrics.api_refused.labels(reason).inc(),
    )

    # The high-rate topics reach their agents as one batch per partition and fetch,
    # acked together once processed (streams/faust_patches.py); the stream faust hands
    # these agents stays empty.
    if settings.faust_drain != "stock":
        install_faust_patches()
    # faust fixes the broker's hold on an empty fetch at 1.5 s, which idled a catching-up
    # worker a third of the time (streams/faust_patches.py, change 4).
    set_fetch_max_wait(app, settings.fetch_max_wait)
    # Records of a field producer's aborted transaction are no readings (change 11).
    read_committed(app)
    # Every table is added above: the table manager need not wait a second for more
    # before the worker subscribes (change 15).
    start_tables_at_once()
    # A global table's changelog is read once at a start, not a second time from offset
    # 0 before a new entry is applied; nor is an entry read lost when the flow resumes
    # (change 17).
    read_changelogs_once()
    # A static member (settings.static_membership) stopped on purpose still leaves the
    # group, so its partitions move at once (change 16).
    leave_group_on_stop()
    # faust's seek runs on the consumer's thread, and its partition checks leave a
    # partition a rebalance has moved alone (aiokafka is not thread-safe).
    keep_to_the_consumer_thread()
    drain = BatchDrain(app) if settings.faust_drain == "batch" else None
    # And the routed alerts: the joins of one group read in one batch are one change of
    # its run (``Response.on_routed_batch``), so a storm into one group no longer holds
    # every other group's alert for two Kafka round trips per alert.
    # And the alerts, whose routed messages are delivered once per batch
    # (``Alerting.on_alert_batch``). And the operator commands: those of one run read in
    # one batch are one change of it, the runs' changes stored side by side
    # (``Response.on_command_batch``; t193: a flood of 2,000 acknowledgements and
    # closures cost two Kafka round trips each, every other command waiting behind).
    for role in ("readings", "incidents", "alerts", "routed", "commands"):
        if drain is not None:
            drain.register(settings.topic(role))

    async def batches(
        role: str,
        stream: faust.StreamT[bytes],
        handler: Callable[[Sequence[Message]], Awaitable[None]],
    ) -> None:
        if drain is None:  # faust's own event path (a benchmark lever)
            async for events in cast(faust.Stream[bytes], stream).take_events(
                settings.batch_size, within=0.01
            ):
                await handler([e.message for e in events])
            return
        async for batch in drain.batches(settings.topic(role)):
            if not await still_member():
                drain.done(batch, acked=False)  # its partition's owner reads it again
                continue
            try:
                async with batch:
                    await handler(batch.messages)
            except Exception as exc:
                # Per-message faults are dead-lettered inside the handler; this is a
                # batch-wide one (e.g. Kafka refusing the dead letter itself). The batch
                # stays unacked, so no commit passes it, and the worker stops: a
                # restart reads it again (at-least-once, docs/operations.md).
                await stop_on_fault(role, exc)
                raise

    async def still_member() -> bool:
        # t192: a message fetched before a freeze past the session, handled once the
        # group had given its partition to another worker, wrote over that one's state.
        consumer = app.consumer
        return await membership_still(ctx.membership, lambda: group_dropped(consumer))

    async def stop_on_fault(role: str, exc: BaseException) -> None:
        log.critical("%s: a batch failed as a whole, stopping the worker: %r", role, exc)
        await app.crash(exc)

    @app.agent(ctx.readings)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        await batches("readings", stream, ingest.on_readings)

    @app.agent(ctx.incidents)
    async def incidents(stream: faust.StreamT[bytes]) -> None:
        await batches("incidents", stream, ingest.on_incidents)

    @app.agent(ctx.alerts)
    async def route(stream: faust.StreamT[bytes]) -> None:
        await batches("alerts", stream, alerting.on_alert_batch)

    @app.agent(ctx.routed)
    async def respond(stream: faust.StreamT[bytes]) -> None:
        await batches("routed", stream, response.on_routed_batch)

    @app.agent(ctx.commands)
    async def command(stream: faust.StreamT[bytes]) -> None:
        await batches("commands", stream, response.on_command_batch)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_moved(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        # Sensors, cells and runs of partitions this worker no longer owns may now
        # belong to another (their states reached the changelog when faust flushed at the
        # revocation). Only those: a rebalance revokes every partition first, and faust
        # does not re-read the changelog of a partition it keeps, so forgetting a kept
        # partition's sensors (as the revocation signal did) lost their detector state.
        await ctx.forget_moved(assigned)
        # Its gauges of keyed state are of the partitions it held before until its next
        # whole deadline pass counts the ones it owns now (t210).
        ctx.metrics.state_counted.set(0)
        # Per-sensor series of sensors now read by another worker (streams/ingest.py).
        ingest.forget_sensors(ctx.lost_partitions(assigned, "readings"))
        say_grown_topics(assigned)
        # In the background: an admin round trip must not hold up the rebalance (nor a
        # broker that does not answer it).
        task = asyncio.get_running_loop().create_task(topic_ids.check(assigned))
        id_checks.add(task)
        task.add_done_callback(id_checks.discard)

    # t173: a topic deleted and created again under the worker, its old positions
    # committed onto the new one, had its first messages skipped unsaid.
    describe, committed = admin_lookups(settings)
    topic_ids = TopicIdWatch(
        settings.topics.values(),
        describe,
        committed,
        settings.app_id,
        settings.kafka_bootstrap,
        settings.kafka_tool(
            "kafka-consumer-groups.sh", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
        ),
    )
    id_checks: set[asyncio.Task[list[str]]] = set()

    said_grown: set[str] = set()

    def say_grown_topics(assigned: set[TP]) -> None:
        # t167: partitions added to a topic while its workers ran reach them at the next
        # metadata refresh (up to 5 min), as a rebalance; every reading placed on a new
        # partition was dead-lettered wrong_partition, and nothing said why (faust's
        # only word was an ERROR that the stream "has not started processing" it).
        grown = grown_topics(assigned, settings.topics.values(), settings.partitions)
        for topic, count in sorted(grown.items()):
            if topic in said_grown:
                continue
            said_grown.add(topic)
            log.error(
                "citybrain: topic %s now has at least %d partitions, but "
                "CITYBRAIN_PARTITIONS is %d (partitions were added while the worker ran?): "
                "every reading or report on a partition past %d is dead-lettered "
                "wrong_partition, and a worker started now stops, naming it; stop the "
                "ingests and workers and give every topic one count (docs/operations.md, "
                "Scaling out)",
                topic,
                count,
                settings.partitions,
                settings.partitions - 1,
            )

    # faust ends a timer, and crashes the worker, on its first exception; a fault that
    # comes back every tick (a broker away, a state no code reads) would then stop every
    # run's deadlines and the worker with them. Said once a minute, tried again next tick.
    say_timer_fault = SayEvery(log, logging.ERROR, prefix="citybrain: timer ")

    async def tick(name: str, work: Callable[[], Awaitable[Any]]) -> None:
        try:
            await work()
        except Exception as exc:
            ctx.metrics.timer_failures.labels(name).inc()  # every failed pass, said or not
            say_timer_fault(name, f"{name} failed, tried again next tick: {exc!r}", exc_info=True)

    @app.timer(interval=settings.deadline_check_interval)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        await tick("deadlines", response.check_deadlines)

    # Apart from the deadlines: the lag asks faust's consumer thread each partition's
    # position, which aiokafka waits for while Kafka does not answer (t92).
    @app.timer(interval=settings.deadline_check_interval)  # type: ignore[untyped-decorator]
    async def consumer_lag() -> None:
        await tick("consumer lag", response.update_lag)

    @app.timer(interval=settings.burst_sweep_interval)  # type: ignore[untyped-decorator]
    async def burst_sweep() -> None:
        await tick("burst sweep", ingest.sweep_bursts)
        await tick("no-data sweep", ingest.sweep_silent_sensors)

    # Silences end and inhibiting alerts resolve with no message to the route agent: the
    # muted firing alerts are re-checked on the wall clock, as Alertmanager's flushes do.
    @app.timer(interval=settings.mute_check_interval)  # type: ignore[untyped-decorator]
    async def mute_check() -> None:
        await tick("mute check", alerting.read_silences_ahead)  # before the first alert
        await tick("mute check", alerting.recheck_muted)
        await tick("silence retention", alerting.forget_ended_silences)

    # A loop that stood still past the session is seen at its next tick (t184); the
    # timers above ask ctx.moving() and reading_back(), which also see it before then.
    @app.timer(interval=0.25)  # type: ignore[untyped-decorator]
    async def membership_watch() -> None:
        ctx.membership.tick()

    # t208: a topic deleted or created again under the worker said within an interval,
    # not at the next rebalance (streams/topic_ids.py). One pass at a time.
    @app.timer(interval=METADATA_MAX_AGE)  # type: ignore[untyped-decorator]
    async def topic_watch() -> None:
        if not id_checks:
            await tick("topic id watch", topic_ids.watch)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def state_audit() -> None:
        await tick("unreadable state audit", ctx.audit_unreadable_state)

    return app
