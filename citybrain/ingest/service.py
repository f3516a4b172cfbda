"""``citybrain ingest mqtt`` and ``citybrain ingest http``: wiring and the run loop."""

from __future__ import annotations

import errno
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citybrain.ingest import MAX_PAYLOAD
from citybrain.ingest.metrics import IngestMetrics
from citybrain.ingest.publisher import PackPublisher, PublisherStats, make_producer
from citybrain.ingest.receipts import receipts_path
from citybrain.ports import INGEST_METRICS_PORTS, check_listen, listen_error
from citybrain.text import counted
from streams.bounds import Bounds
from streams.errors import SettingsError, StreamsError, text_lines
from streams.events import MAX_PACK_READINGS, EventValidator
from streams.settings import Settings

if TYPE_CHECKING:
    from playbooks.grid import Grid

log = logging.getLogger("citybrain.ingest")

PORT_SETTING = "CITYBRAIN_INGEST_HTTP_PORT"


@dataclass
class IngestOptions:
    topics: list[str] = field(default_factory=list)
    value_field: str = "value"
    ts_field: str = "ts"
    qos: int = 1
    client_id: str = "citybrain-ingest"
    inflight: int = 10_000
    pack_size: int = 1000
    pack_ms: float = 5.0
    max_pending: int = 50_000
    sensor_id_template: str = "{id}-{kind}"
    max_body: int = MAX_PAYLOAD
    max_payload: int = MAX_PAYLOAD
    stats_every: float = 10.0


# The longest a pack may wait to fill (a minute): a reading older than this when it is
# sent is late for any detector.
MAX_PACK_MS = 60_000


class IngestOptionError(StreamsError):
    """An ingest option is invalid; the message names the option and its value."""


def check_options(options: IngestOptions, action: str) -> None:
    """Refuse bad options before any connection (``citybrain ingest mqtt|http``): a topic
    pattern with MQTT wildcards or an empty level, a sensor id template without
    ``{kind}``, sizes out of range. Raises ``IngestOptionError`` naming the option."""
    from citybrain.ingest.mapping import TopicPattern, TopicPatternError
    from citybrain.ingest.ngsi import template_fault

    def bad(option: str, value: object, expected: str) -> IngestOptionError:
        return IngestOptionError(f"--{option} is {value!r}: expected {expected}")

    if not 1 <= options.pack_size <= MAX_PACK_READINGS:
        raise bad("pack-size", options.pack_size, f"1..{MAX_PACK_READINGS:,} readings")
    if not 0 < options.pack_ms <= MAX_PACK_MS:
        # inf (or 1e20) reached the publisher thread's wait(), which raised OverflowError
        # there: the thread died and nothing more was sent.
        raise bad(
            "pack-ms", options.pack_ms, f"more than 0 and at most {MAX_PACK_MS:,} milliseconds"
        )
    if options.max_pending < options.pack_size:
        raise bad("max-pending", options.max_pending, f"at least --pack-size ({options.pack_size})")
    if action == "mqtt":
        for topic in options.topics:
            try:
                TopicPattern.parse(topic)
            except TopicPatternError as exc:
                raise IngestOptionError(f"--topic: {exc}") from None
        if not 1 <= options.inflight <= 65_535:
            raise bad("inflight", options.inflight, "1..65535 (MQTT 5 Receive Maximum)")
        for option, name in (("value-field", options.value_field), ("ts-field", options.ts_field)):
            if not name:
                raise bad(option, name, "a field name")
        if options.max_payload < 1:
            raise bad("max-payload", options.max_payload, "at least 1 byte")
        return
    fault = template_fault(options.sensor_id_template)
    if fault is not None:
        raise bad("sensor-id-template", options.sensor_id_template, fault)
    if options.max_body < 1:
        raise bad("max-body", options.max_body, "at least 1 byte")


def settings_bounds(settings: Settings) -> Bounds:
    """The HTTP servers' bounds the settings give (CITYBRAIN_HTTP_TIMEOUT, _MAX_CONNECTIONS)."""
    return Bounds(timeout=settings.http_timeout, max_connections=settings.http_max_connections)


def _validator(settings: Settings) -> EventValidator:
    from playbooks.loader import load_grid

    grid = load_grid(settings.grid_file, cache_dir=settings.grid_cache_dir)
    return EventValidator(grid, settings.max_future_skew)


def _publisher(settings: Settings, options: IngestOptions, client_id: str) -> PackPublisher:
    producer = make_producer(settings.kafka_bootstrap, settings.kafka_python_options(), client_id)
    return PackPublisher(
        producer,
        settings.topic("readings"),
        settings.topic("deadletter"),
        settings.partitions,
        pack_size=options.pack_size,
        pack_ms=options.pack_ms,
        max_pending=options.max_pending,
    ).start()


# How long a stopping ingest waits for Kafka to acknowledge what it holds (a second
# SIGTERM/SIGINT stops at once): a few seconds is plenty for a Kafka that answers.
STOP_GRACE = 5.0
EXIT_SERVICE = 3  # README's "a service the command needs did not answer"


def _stop_line(
    stats: PublisherStats,
    undelivered: int,
    fate: str,
    skipped: int | None = None,
    deadletters: str = "",
) -> int:
    """Log how the run ended; the exit status: 0, or 3 when Kafka left messages
    unacknowledged (``fate`` says what becomes of them, with ``{them}`` and
    ``{senders}`` for the count's grammar; ``skipped`` as for ``stats_sentence``)."""
    if not undelivered:
        log.info("ingest: stopped; %s", stats_sentence(stats, skipped, deadletters))
        return 0
    log.error(
        "ingest: stopped; %s; %s NOT delivered, Kafka did not acknowledge %s: %s",
        stats_sentence(stats, skipped, deadletters),
        counted(undelivered, "message"),
        "it" if undelivered == 1 else "them",
        fate.format(
            them="it" if undelivered == 1 else "them",
            senders="its sender" if undelivered == 1 else "their senders",
        ),
    )
    return EXIT_SERVICE


def _close(publisher: PackPublisher) -> int:
    """After the first SIGTERM/SIGINT: wait up to ``STOP_GRACE`` seconds for Kafka to
    acknowledge what the ingest holds, or until a second signal; how many it did not."""
    give_up = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: give_up.set())
    if publisher.pending:
        log.warning(
            "ingest: stopping; waiting up to %gs for Kafka to acknowledge %s "
            "(SIGTERM or Ctrl-C again: stop now)",
            STOP_GRACE,
            counted(publisher.pending, "message"),
        )
    else:
        log.info("ingest: stopping")
    return publisher.close(STOP_GRACE, give_up)


def deadletters_hint(settings: Settings) -> str:
    """The command that shows the ingest's dead letters and why each was refused."""
    from citybrain.commands import command_line

    return command_line("deadletters", "--prefix", settings.topic_prefix)


# SIGHUP's default ended the ingest at once (t122), as it did the worker, which now
# reloads on it: either ingest reads the grid again (and the HTTP ingest its tokens file,
# t130), all or none, as the worker's reload does.
def _reload_grid(settings: Settings, old: Grid) -> tuple[EventValidator, str]:
    """The grid file read again: its validator and what changed against ``old`` (cells,
    sensors, kinds counted). Raises ``PlaybookError`` (``GridError`` naming file, line
    and reason; ``PlaybookConfigError`` for a file unreadable or not YAML)."""
    validator = _validator(settings)
    from playbooks.grid import grid_summary

    return validator, grid_summary(old, validator.grid)[0]


def _kept(what: str, exc: Exception) -> None:
    lines = text_lines(str(exc)) or [type(exc).__name__]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    log.error("ingest: SIGHUP: nothing reloaded, the running %s kept: %s%s", what, lines[0], more)


def hup_mqtt(ingest: Any, settings: Settings) -> bool:
    """SIGHUP in the MQTT ingest: the grid read again and put in force (``ingest.reload``:
    a sensor added to the grid is taken from the next message on, one removed
    dead-lettered as unknown). On an error the running grid is kept and one ERROR line
    names it (file, line, reason). True when the new grid is in force."""
    from dataclasses import replace

    from playbooks.errors import PlaybookError

    old_mapping, old_validator = ingest.parsing
    try:
        validator, summary = _reload_grid(settings, old_validator.grid)
    except PlaybookError as exc:
        _kept("grid is", exc)
        return False
    ingest.reload(replace(old_mapping, grid=validator.grid), validator)
    log.info("ingest: SIGHUP: the grid from %s in force (%s)", settings.grid_file, summary)
    return True


def hup_http(server: Any, settings: Settings) -> bool:
    """SIGHUP in the HTTP ingest: its grid and tokens file read again and put in force
    together (``server.reload``: a revoked gateway token is refused from the next request
    on, a new one taken; a sensor added to the grid accepted), as the worker's reload
    does (docs/operations.md, "Configuration reload"); on an error in either, both
    running ones are kept and one ERROR line names it (file, line, entry, field; never a
    token or a hash). True when the new ones are in force."""
    from citybrain.ingest.ngsi import NgsiMapping
    from playbooks.errors import PlaybookError
    from streams.auth import TokenStore, exposed

    old_validator, old_ngsi = server.parsing
    try:
        tokens = TokenStore.load(settings.api_tokens_file)
        validator, summary = _reload_grid(settings, old_validator.grid)
    except (SettingsError, PlaybookError) as exc:
        _kept("grid and tokens are", exc)
        return False
    server.reload(validator, NgsiMapping(validator.grid, old_ngsi.template), tokens)
    log.info(
        "ingest: SIGHUP: %d gateway token(s) from %s in force; the grid from %s in force (%s)",
        tokens.count(("gateway",)),
        tokens.path if tokens.path is not None else "no tokens file (every POST gets 401)",
        settings.grid_file,
        summary,
    )
    if warning := exposed(tokens.path):
        log.warning("citybrain: %s", warning)
    return True


def ignore_hup() -> None:
    """SIGHUP ignored until ``_wait`` says so in the log: a reload signal sent to every
    citybrain process must not end an ingest while it starts."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _wait(
    publisher: PackPublisher,
    every: float,
    extra: Callable[[], str] | None = None,
    deadletters: str = "",
    ended: threading.Event | None = None,
    on_hup: Callable[[], object] | None = None,
) -> int:
    """Until SIGTERM/SIGINT or ``ended`` (0) or a send Kafka refused for good (1); a
    stats line every ``every`` seconds (``extra`` adds the MQTT ingest's ``received=…
    skipped=…``), and after it, when messages were dead-lettered since the last, the
    command that shows them (``deadletters``; t60's walk: ``dead_letters=1`` alone, and
    a newcomer's misspelt sensor gone without a word of where or why)."""
    stop, hup = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    last = time.monotonic()
    told = 0
    while not stop.wait(0.2) and not (ended is not None and ended.is_set()):
        if hup.is_set():
            hup.clear()
            if on_hup is not None:
                on_hup()
        if publisher.failure is not None:
            log.error("ingest: stopping, %s: %r", publisher.failure_said, publisher.failure)
            return 1
        if time.monotonic() - last >= every:
            last = time.monotonic()
            s = publisher.stats
            log.info(
                "ingest stats: readings=%d packs=%d dead_letters=%d pending=%d max_pending=%d%s",
                s.readings,
                s.packs,
                s.dead_letters,
                publisher.pending,
                s.max_pending,
                extra() if extra else "",
            )
            if deadletters and s.dead_letters > told:
                log.warning(
                    "ingest: %s dead-lettered since the last stats line; why each was refused: %s",
                    counted(s.dead_letters - told, "message"),
                    deadletters,
                )
                told = s.dead_letters
    return 0


def stats_sentence(stats: PublisherStats, skipped: int | None = None, deadletters: str = "") -> str:
    """The stop line's account of a run, in words: ``sent 2 readings to Kafka in 1 pack,
    dead-lettered 0 messages[, skipped 1 empty message]; at most 2 readings waited for
    Kafka at once`` (``skipped``: the MQTT ingest's empty payloads); with dead letters and
    ``deadletters``, the command that shows why each was refused after their count."""
    empty = "" if skipped is None else f", skipped {counted(skipped, 'empty message')}"
    why = f" (why: {deadletters})" if deadletters and stats.dead_letters else ""
    return (
        f"sent {counted(stats.readings, 'reading')} to Kafka in "
        f"{counted(stats.packs, 'pack')}, dead-lettered {counted(stats.dead_letters, 'message')}"
        f"{why}{empty}; at most {counted(stats.max_pending, 'reading')} waited for Kafka at once"
    )


def serve_metrics(
    metrics: IngestMetrics, bind: str, port: int, bounds: Bounds | None = None
) -> Callable[[], None]:
    """Serve ``GET /metrics`` for the MQTT ingest (``CITYBRAIN_INGEST_METRICS_PORT``)
    under ``bounds`` (citybrain/ingest/bounded.py); returns the function that stops it. A
    port that cannot be bound raises as ``citybrain.ports.listen_error``: ``ListenError``
    (exit 3) when another ingest holds it, naming the setting and the next port to try;
    ``InputError`` (exit 2) for a bind address this machine lacks."""
    return serve_metrics_from(metrics, bind, port, 1, bounds)[0]


def serve_metrics_from(
    metrics: IngestMetrics, bind: str, port: int, tries: int, bounds: Bounds | None = None
) -> tuple[Callable[[], None], int]:
    """``serve_metrics`` on the first of ``port`` … ``port + tries - 1`` that is free
    (the ports the stack's Prometheus scrapes: ``INGEST_METRICS_PORTS``); returns the
    stop function and the port taken. Only a port in use moves on to the next; when
    every one is, or for any other fault, raises as ``serve_metrics`` does for ``port``."""
    from citybrain.ingest.bounded import MetricsServer

    counter = metrics.server_refused

    def refused(reason: str) -> None:
        if counter is not None:
            counter.labels(reason).inc()

    first: OSError | None = None
    for candidate in range(port, max(port + 1, min(port + tries, 65536))):
        try:
            server = MetricsServer(
                (bind, candidate), metrics.registry, bounds or Bounds(), refused, "the MQTT ingest"
            )
        except OSError as exc:
            first = first or exc
            if exc.errno == errno.EADDRINUSE:
                continue
            break
        thread = threading.Thread(target=server.serve_forever, name="ingest-metrics", daemon=True)
        thread.start()

        def stop(server: Any = server, thread: Any = thread) -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop, candidate
    assert first is not None
    raise listen_error(first, bind, port, "CITYBRAIN_INGEST_METRICS_PORT", "MQTT ingest") from None


def run_mqtt(
    settings: Settings, options: IngestOptions, require: Callable[[], None] | None = None
) -> int:
    """Subscribe and publish until SIGTERM/SIGINT (0; 3 when Kafka left messages
    unacknowledged at the stop, ``STOP_GRACE``), another client took the session (3,
    flushed as at SIGTERM, naming the client id) or a send Kafka refused (1).
    ``require`` runs once the options and the grid are checked, before any connection
    (the CLI's fail-fast check that Kafka and the broker answer)."""
    from citybrain.ingest.mapping import MqttMapping
    from citybrain.ingest.mqtt import MqttIngest

    ignore_hup()
    check_options(options, "mqtt")
    validator = _validator(settings)
    mapping = MqttMapping.build(
        validator.grid, options.topics or None, options.value_field, options.ts_field
    )
    # The metrics port and bind address are checked (by serving) before ``require``
    # says where the readings go, as ``run_http`` checks its port: a taken port or a bad
    # bind address is found before any "writing to Kafka" line.
    publisher: PackPublisher | None = None
    metrics = IngestMetrics.create("mqtt", lambda: publisher.stats.readings if publisher else 0)
    # README: a second MQTT ingest on one machine takes the next port. A port set
    # explicitly is the user's choice and stays a hard stop (exit 3) when it is taken;
    # the default moves on through the ports Prometheus scrapes (trial 8: a second ingest
    # stopped on the default port in use).
    explicit = "ingest_metrics_port" in settings.model_fields_set
    stop_metrics, metrics_port = serve_metrics_from(
        metrics,
        settings.worker_bind,
        settings.ingest_metrics_port,
        1 if explicit else INGEST_METRICS_PORTS,
        settings_bounds(settings),
    )
    if metrics_port != settings.ingest_metrics_port:
        log.info(
            "ingest: metrics port %d is taken (another MQTT ingest?): serving metrics on %d "
            "instead (CITYBRAIN_INGEST_METRICS_PORT is not set; set it to choose)",
            settings.ingest_metrics_port,
            metrics_port,
        )
    if require is not None:
        try:
            require()
        except BaseException:
            stop_metrics()
            raise
    publisher = _publisher(settings, options, f"{options.client_id}-kafka")
    ingest = MqttIngest(
        settings.mqtt_host,
        settings.mqtt_port,
        mapping,
        validator,
        publisher,
        client_id=options.client_id,
        qos=options.qos,
        inflight=options.inflight,
        metrics=metrics,
        max_payload=options.max_payload,
        receipts=receipts_path(settings.run_dir, options.client_id),
    )
    ingest.start()
    log.info(
        "ingest: MQTT %s:%s %s -> Kafka %s %s (packs of up to %d every %g ms); "
        "metrics on http://%s:%d/metrics",
        settings.mqtt_host,
        settings.mqtt_port,
        mapping.subscriptions,
        settings.kafka_bootstrap,
        settings.topic("readings"),
        options.pack_size,
        options.pack_ms,
        settings.worker_bind,
        metrics_port,
    )
    code = _wait(
        publisher,
        options.stats_every,
        lambda: f" received={ingest.received} skipped={ingest.skipped}",
        deadletters_hint(settings),
        ingest.taken_over,
        on_hup=lambda: hup_mqtt(ingest, settings),
    )
    if code != 0:
        stop_metrics()
        log.info(
            "ingest: stopped; %s",
            stats_sentence(publisher.stats, ingest.skipped, deadletters_hint(settings)),
        )
        return code
    undelivered = ingest.stop(lambda: _close(publisher))
    stop_metrics()
    fate = "left unacknowledged, so the MQTT broker delivers {them} again to the next ingest"
    code = _stop_line(
        publisher.stats, undelivered, fate, ingest.skipped, deadletters_hint(settings)
    )
    if ingest.taken_over.is_set():
        # Last, so it is the line a control room reads; exit 3 as for a lost service.
        log.error("%s", ingest.taken_over_message())
        return EXIT_SERVICE
    return code


def run_http(
    settings: Settings, options: IngestOptions, require: Callable[[], None] | None = None
) -> int:
    """Serve until SIGTERM/SIGINT (0; 3 when Kafka left readings unacknowledged at
    the stop) or a send Kafka refused (1); ``require`` as for ``run_mqtt``."""
    from citybrain.demo import demo_gateway_hint
    from citybrain.ingest.http import IngestHttpServer
    from citybrain.ingest.ngsi import NgsiMapping
    from streams.auth import TokenStore, closed_reason, exposed

    ignore_hup()
    check_options(options, "http")
    validator = _validator(settings)
    tokens = TokenStore.load(settings.api_tokens_file)
    closed = closed_reason(tokens, ("gateway",), "the HTTP ingest")
    hint = demo_gateway_hint(settings)
    if closed:
        # As the worker warns of a closed operator API: a gateway's 401s are explained here.
        log.warning("citybrain: %s: every POST gets 401%s (docs/ingest.md, Tokens)", closed, hint)
    if warning := exposed(tokens.path):
        log.warning("citybrain: %s", warning)
    mapping = NgsiMapping(validator.grid, options.sensor_id_template)  # bad input before Kafka
    host, port = settings.worker_bind, settings.ingest_http_port
    check_listen(host, port, PORT_SETTING, "HTTP ingest")  # before Kafka, too
    if require is not None:
        require()
    publisher = _publisher(settings, options, "citybrain-ingest-http")
    try:
        server = IngestHttpServer(
            (host, port),
            validator,
            mapping,
            publisher,
            tokens,
            max_body=options.max_body,
            bounds=settings_bounds(settings),
            token_hint=hint,
        )
    except OSError as exc:  # taken since the check
        publisher.close(timeout=1)
        raise listen_error(exc, host, port, PORT_SETTING, "HTTP ingest") from None
    thread = threading.Thread(target=server.serve_forever, name="ingest-http", daemon=True)
    thread.start()
    log.info(
        "ingest: HTTP ready on http://%s:%d (metrics on /metrics) -> Kafka %s %s",
        settings.worker_bind,
        settings.ingest_http_port,
        settings.kafka_bootstrap,
        settings.topic("readings"),
    )
    code = _wait(
        publisher,
        options.stats_every,
        deadletters=deadletters_hint(settings),
        on_hup=lambda: hup_http(server, settings),
    )
    server.shutdown()
    if code != 0:
        log.info(
            "ingest: stopped; %s", stats_sentence(publisher.stats, None, deadletters_hint(settings))
        )
        return code
    undelivered = _close(publisher)
    fate = "{senders} got no 2xx answer (a 503 or a closed connection), the sign to send again"
    return _stop_line(publisher.stats, undelivered, fate, None, deadletters_hint(settings))
