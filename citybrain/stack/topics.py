"""Create citybrain's topics with the configured partition count (kafka-python admin)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from citybrain.kafka_read import bounded
from citybrain.stack.process import sigterm_as_interrupt
from playbooks.loader import load_playbooks
from streams.events import MAX_MESSAGE_BYTES, WRITTEN_MESSAGE_BYTES
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

# How long a topic just created may take to show in the broker's metadata with a leader
# for every partition (CreateTopics returns before that; on KRaft it can lag by seconds).
METADATA_WAIT_MS = 30_000


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its full name, partition count and topic configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topics_admin(settings: Settings) -> KafkaAdminClient:
    """A kafka-python admin client on ``settings``' broker, as every topic check here
    opens it (client id ``citybrain-topics``); the caller closes it."""
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="citybrain-topics",
        **settings.kafka_python_options(),
    )


def task_topics(settings: Settings) -> set[str]:
    """The prefixed task topics the configured playbooks' ``kafka`` steps write to."""
    playbooks = load_playbooks(settings.playbook_dir, settings.topic_prefix)
    return {settings.topic(t) for pb in playbooks.values() for t in pb.task_topics}


def faust_topics(app: faust.App, partitions: int) -> list[TopicSpec]:
    """The topics faust declares itself when a worker starts: every table's changelog
    (compacted, with its segment and tombstone configs) and the leader assignor's
    one-partition topic (``<app id>-__assignor-__leader``, faust-streaming 0.11's
    ``LeaderAssignor``).

    Created beforehand so the consumer never subscribes to a topic the broker's metadata
    does not show yet (aiokafka then logs ERROR "Topic … not found in cluster metadata"
    per topic until it does)."""
    specs = [
        TopicSpec(
            table.changelog_topic.get_topic_name(),
            table.changelog_topic.partitions or partitions,
            # As faust declares it: compacted, with the configs the app gave it
            # (streams.settings.changelog_topic_configs).
            {"cleanup.policy": "compact", **table.changelog_topic.config},
        )
        for table in app.tables.values()
    ]
    if not app.conf.topic_disable_leader:
        specs.append(TopicSpec(f"{app.conf.id}-__assignor-__leader", 1))
    return specs


class TopicsRefusedError(KafkaError):  # type: ignore[misc]  # kafka-python is untyped
    """The broker refused to create some of the topics (``refused``: each topic's name
    and the broker's reason); every other topic was created (``created``: those made
    now) and shows in the metadata. A KafkaError, so a caller that says "could not
    create the topics" says these, by name."""

    def __init__(self, refused: Sequence[tuple[str, str]], created: Sequence[str] = ()) -> None:
        shown = "; ".join(f"{name}: {why}" for name, why in refused)
        k = len(refused)
        super().__init__(f"Kafka refused to create {k} topic{'s' * (k > 1)} ({shown})")
        self.refused, self.created = list(refused), list(created)

    def __str__(self) -> str:  # kafka-python's puts the class name first
        return str(self.args[0])


# What a topic the broker refused to create means for the worker (``TopicsRefusedError``).
REFUSED_TOPICS_HINT = (
    "every other topic was created; a worker waits for its own topics among them, and a "
    "playbook's kafka step writing to a task topic among them waits in its run's outbox "
    "until the topic is there (rename the topic, or create it)"
)


class PartitionCountError(ValueError):
    """Existing topics hold another partition count than ``CITYBRAIN_PARTITIONS``."""


def check_partition_counts(specs: Sequence[TopicSpec], described: Sequence[dict[str, Any]]) -> None:
    """Raise ``PartitionCountError`` naming every topic of ``specs`` whose partition count
    in ``described`` (kafka-python's ``describe_topics``) is not the spec's.

    A sensor's readings, its state's changelog entries, a run's commands and the muted
    and corroboration tables are placed by ``murmur2(key) % CITYBRAIN_PARTITIONS``: a
    worker counting 4 on topics of 2 dead-lettered every reading it placed on partition
    2 or 3 as ``wrong_partition`` and crashed writing a changelog partition that does not
    exist (trial t41), so readings were lost and alerts never raised."""
    wanted = {spec.name: spec.partitions for spec in specs}
    wrong = sorted(
        (str(t["name"]), len(t.get("partitions") or ()), wanted[str(t["name"])])
        for t in described
        if t.get("name") in wanted
        and t.get("partitions")
        and len(t["partitions"]) != wanted[str(t["name"])]
    )
    if wrong:
        name, has, want = wrong[0]
        k = len(wrong) - 1
        more = f" (so do {k} other topic{'s' * (k > 1)})" if k else ""
        raise PartitionCountError(
            f"topic {name} has {has} partitions, but it should have {want}"
            f" (CITYBRAIN_PARTITIONS is {want}){more}: keys would be placed on partitions "
            f"their topics do not match, readings dead-lettered as wrong_partition and "
            f"tables' state lost; set CITYBRAIN_PARTITIONS={has} as the topics were made, "
            "or add partitions to every topic while readings are stopped (docs/operations.md)"
        )


def create_topics(settings: Settings, extra: Sequence[TopicSpec] = ()) -> list[str]:
    """Create missing topics, the playbooks' task topics and ``extra`` included (a first
    send to a topic the broker must auto-create waits on its metadata, and a run's step
    waits with it), then wait until every one of them shows in the broker's metadata with
    a leader for each partition; returns the names created. Existing ones are left alone.

    Raises kafka-python's ``KafkaError`` (``KafkaTimeoutError`` when the topics did not
    show within ``METADATA_WAIT_MS``; ``TopicsRefusedError`` naming each topic the broker
    refused to create, after creating and waiting for all the others), and
    ``PartitionCountError`` when a topic that
    already existed (a playbook's task topic aside) has another partition count than
    its spec: ``CITYBRAIN_PARTITIONS`` changed since the topics were made."""
    admin = topics_admin(settings)
    try:
        existing = set(bounded(settings, "listing its topics", admin.list_topics))
        task = task_topics(settings)
        every = [
            *(TopicSpec(t, settings.partitions) for t in settings.topics.values()),
            *(TopicSpec(t, settings.partitions) for t in sorted(task)),
            *extra,
        ]
        created: list[str] = []
        refused: list[tuple[str, str]] = []
        for spec in every:
            if spec.name in existing:
                continue
            # Each topic's own error read, not raised: the broker refusing one (a task
            # topic whose name collides with another's but for '.' and '_') stopped
            # the loop there, and every topic after it (other task topics, the worker's
            # changelogs) went uncreated, under one warning naming none (t172).
            answer = admin.create_topics(
                [NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.configs)],
                raise_errors=False,
            )
            for result in answer.get("topics") or [{"error_code": 0}]:
                error = for_code(int(result.get("error_code") or 0))
                if error.errno == 0:
                    created.append(spec.name)
                elif error is not TopicAlreadyExistsError:
                    why = result.get("error_message") or error.description or error.__name__
                    refused.append((spec.name, f"{error.__name__}: {why}"))
        made = [spec for spec in every if spec.name not in dict(refused)]
        admin.wait_for_topics([spec.name for spec in made], timeout_ms=METADATA_WAIT_MS)
        # Task topics are only written (keyed by Kafka's partitioner on their own count).
        placed = [spec for spec in made if spec.name not in task]
        check_partition_counts(placed, admin.describe_topics([spec.name for spec in placed]))
        if refused:
            raise TopicsRefusedError(refused, created)
        return created
    finally:
        admin.close()


def committed_partitions(settings: Settings, group: str, topics: Sequence[str]) -> int:
    """How many partitions of ``topics`` consumer group ``group`` has committed an offset
    for (0 for a group that never committed). A worker whose group has committed reads
    on from those offsets, not from the start of its topics.

    Raises kafka-python's ``KafkaError`` and ``KafkaStoppedError`` (Kafka does not
    answer)."""
    admin = topics_admin(settings)
    try:
        offsets = bounded(
            settings,
            f"asking for consumer group {group!r}'s offsets",
            lambda: admin.list_group_offsets(group),
        ).get(group, {})
    finally:
        admin.close()
    wanted = set(topics)
    return sum(1 for tp, meta in offsets.items() if tp.topic in wanted and meta.offset >= 0)


def emptied_tables_warning(
    settings: Settings, app: faust.App, created: Sequence[str], committed: int
) -> str | None:
    """The warning for a worker that has just created the changelog topic of a table
    (``created``: the topics ``create_topics`` made) while its consumer group has
    ``committed`` partitions' offsets: that table starts empty, and what it held is not
    rebuilt, since the events behind it are not read again. None when no changelog was
    created, or when the group never committed (a first start: nothing was held)."""
    made = set(created)
    emptied = sorted(
        str(table.name)
        for table in app.tables.values()
        if table.changelog_topic.get_topic_name() in made
    )
    if not emptied or not committed:
        return None
    return (
        f"warning: the changelog topic of table(s) {', '.join(emptied)} was missing "
        f"(deleted?) and is created empty, though consumer group {settings.app_id!r} has "
        f"committed offsets on {committed} partition(s) of its topics: "
        f"{'those tables start' if len(emptied) > 1 else 'that table starts'} empty and "
        "what they held is not read again (runs open or held and their deadlines, silences, "
        "firing and muted alerts, sensor states and their open episodes, burst windows, "
        'as named): docs/operations.md, "Changelog topics deleted"'
    )


def config_changes(
    specs: Sequence[TopicSpec], described: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, tuple[str | None, str]]]:
    """Per topic of ``specs`` in ``described`` (kafka-python's ``describe_configs``
    result for topics: name -> config -> {"value": ...}), each config of its spec whose
    value there differs: config -> (the topic's value, the spec's). Topics not
    described (not made yet) are left out."""
    changes: dict[str, dict[str, tuple[str | None, str]]] = {}
    for spec in specs:
        have = described.get(spec.name)
        if have is None:
            continue
        differ = {
            key: ((have.get(key) or {}).get("value"), want)
            for key, want in spec.configs.items()
            if (have.get(key) or {}).get("value") != want
        }
        if differ:
            changes[spec.name] = differ
    return changes


def align_topic_configs(settings: Settings, specs: Sequence[TopicSpec]) -> list[str]:
    """Set, on the existing topics of ``specs``, each config whose value differs from its
    spec's (Kafka's incremental alter: the topic's other configs are kept), so a table's
    changelog made before t155 (segments of 1 GiB or 7 days, compacted only then) gets
    the segment and tombstone configs of ``streams.settings.changelog_topic_configs``
    too. Returns one line per topic changed, naming each config, its old and new value.

    Raises kafka-python's ``KafkaError`` (a broker that refuses: no alter permission)
    and ``KafkaStoppedError`` (Kafka does not answer)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    wanted = [spec for spec in specs if spec.configs]
    if not wanted:
        return []
    admin = topics_admin(settings)
    try:
        existing = set(bounded(settings, "listing its topics", admin.list_topics))
        there = [spec for spec in wanted if spec.name in existing]
        if not there:
            return []
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, spec.name, list(spec.configs))
            for spec in there
        ]
        described = bounded(
            settings,
            "describing its topics' configs",
            lambda: admin.describe_configs(resources, config_filter="all"),
        )
        changes = config_changes(there, described.get("topic", {}))
        if not changes:
            return []
        result = bounded(
            settings,
            "setting its topics' configs",
            lambda: admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC, name, {k: new for k, (_, new) in differ.items()}
                    )
                    for name, differ in changes.items()
                ]
            ),
        )
        for name, outcome in result.get("topic", {}).items():
            if outcome != "OK":
                raise KafkaError(f"topic {name}: the broker refused its configs: {outcome}")
        return [
            f"topic {name}: "
            + ", ".join(f"{key} {old} -> {new}" for key, (old, new) in sorted(differ.items()))
            for name, differ in sorted(changes.items())
        ]
    finally:
        admin.close()


def message_limits(
    settings: Settings, roles: Sequence[str], unmade: set[str] | None = None
) -> dict[str, int]:
    """Per topic of ``roles`` (``"readings"``, ...), the largest record batch the broker
    takes on it (``topic_message_limits``); with ``unmade``, topics not made yet too, each
    added to it."""
    return topic_message_limits(settings, [settings.topic(role) for role in roles], unmade)


def topic_message_limits(
    settings: Settings, names: Sequence[str], unmade: set[str] | None = None
) -> dict[str, int]:
    """Per topic of ``names`` that exists, the largest record batch the broker takes on
    it, in bytes: its ``max.message.bytes`` (the broker's ``message.max.bytes`` unless the
    topic sets its own; Kafka's default 1,048,588). Topics not made yet are left out, or,
    with ``unmade`` (a set each such name is added to), given the broker's
    ``message.max.bytes``: what the broker gives a topic it makes at the first send to it
    (``auto.create.topics.enable``). A replay to a new prefix asked nothing of topics not
    made yet, and a broker taking 100,000 bytes refused every pack of ~1 MB (t204).

    Raises kafka-python's ``KafkaError`` when the broker cannot be asked, and
    ``KafkaStoppedError`` when it does not answer."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = topics_admin(settings)
    try:
        existing = set(bounded(settings, "listing its topics", admin.list_topics))
        wanted = list(dict.fromkeys(names))
        missing = [name for name in wanted if name not in existing]
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, name, ["max.message.bytes"])
            for name in wanted
            if name in existing
        ]
        limits: dict[str, int] = {}
        if resources:
            described = bounded(
                settings,
                "describing its topics' configs",
                lambda: admin.describe_configs(resources, config_filter="all"),
            )
            for name, configs in described.get("topic", {}).items():
                value = _whole(configs.get("max.message.bytes"))
                if value is not None:
                    limits[name] = value
        if unmade is not None and missing:
            broker = _broker_message_max_bytes(settings, admin)
            if broker is not None:
                for name in missing:
                    limits[name] = broker
                    unmade.add(name)
        return limits
    finally:
        admin.close()


def _whole(config: Any) -> int | None:
    """A config entry's value (``{"value": "1048588", …}``) as a whole number, else None."""
    value = (config or {}).get("value")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _broker_message_max_bytes(settings: Settings, admin: KafkaAdminClient) -> int | None:
    """The ``message.max.bytes`` of the first broker the cluster lists (every broker of a
    cluster citybrain runs has the same), or None when it says none."""
    from kafka.admin import ConfigResource, ConfigResourceType

    cluster = bounded(settings, "describing its cluster", admin.describe_cluster)
    brokers = sorted(b["broker_id"] for b in cluster.get("brokers", []))
    if not brokers:
        return None
    resource = ConfigResource(ConfigResourceType.BROKER, str(brokers[0]), ["message.max.bytes"])
    described = bounded(
        settings,
        "describing its broker's configs",
        lambda: admin.describe_configs([resource], config_filter="all"),
    )
    configs = described.get("broker", {}).get(str(brokers[0]), {})
    return _whole(configs.get("message.max.bytes"))


class MessageLimitError(ValueError):
    """Topics citybrain writes take smaller messages than it writes."""


# What a topic too small is raised to: Kafka's default max.message.bytes.
KAFKA_DEFAULT_MESSAGE_BYTES = 1_048_588


def check_message_limits(
    limits: Mapping[str, int],
    bootstrap: str,
    writer: str,
    unmade: Collection[str] = (),
    *,
    tool: str = "kafka-configs.sh",
) -> None:
    """Raise ``MessageLimitError`` naming every topic of ``limits`` (name -> its
    ``max.message.bytes``, ``topic_message_limits``) that takes less than
    ``WRITTEN_MESSAGE_BYTES``, what ``writer`` (``the worker``, ``the ingest``) may write
    to it, with the command that raises it on ``bootstrap`` (``host:port``), run as
    ``tool`` (``Settings.kafka_tool``). A topic of ``unmade`` is not made yet: its limit
    is the broker's ``message.max.bytes``, which the broker makes it with (t204: left
    out, the ingest started on a fresh prefix and its first large pack was refused), and
    the command raises that.

    Every message citybrain writes is bounded by one figure, ``MAX_MESSAGE_BYTES``: a
    dead letter is cut to it, a pack split below it, an audit record and a table's entry
    kept within it. A topic made or altered to take less (``max.message.bytes=200000`` on
    the dead-letter topic, t176) refused such a message: faust's producer only logged the
    refusal, and the dead letter of a 600 kB bad reading was lost while its offset was
    committed; a changelog entry or an ingest's pack refused so stops its writer."""
    short = sorted((name, limit) for name, limit in limits.items() if limit < WRITTEN_MESSAGE_BYTES)
    if not short:
        return
    lines = [
        f"topic {name} is not made yet, and the broker makes a topic to take messages of "
        f"at most {limit:,} bytes (its message.max.bytes)"
        if name in unmade
        else f"topic {name} takes messages of at most {limit:,} bytes (its max.message.bytes, "
        "or the broker's message.max.bytes)"
        for name, limit in short
    ]
    example = short[0][0]
    raise_it = (
        f"--entity-type brokers --entity-default --add-config "
        f"message.max.bytes={KAFKA_DEFAULT_MESSAGE_BYTES}"
        if example in unmade
        else f"--entity-type topics --entity-name {example} --add-config "
        f"max.message.bytes={KAFKA_DEFAULT_MESSAGE_BYTES}"
    )
    raise MessageLimitError(
        "\n".join(
            [
                *lines,
                f"{writer} writes messages of up to {WRITTEN_MESSAGE_BYTES:,} bytes to "
                f"{'them' if len(short) > 1 else 'it'} (a dead letter, pack, audit record "
                f"or table entry of {MAX_MESSAGE_BYTES:,} bytes and the record's framing), "
                "which Kafka would refuse and which would be lost; raise "
                f"{'each' if len(short) > 1 else 'it'} to at least that, e.g. to Kafka's "
                f"default: {tool} --bootstrap-server {bootstrap} --alter {raise_it}",
            ]
        )
    )


def require_message_limits(settings: Settings, names: Sequence[str], writer: str) -> None:
    """``check_message_limits`` on the topics of ``names``, asked of the broker: those
    that exist by their own ``max.message.bytes``, those not made yet by the broker's
    ``message.max.bytes``, which it makes them with. Raises kafka-python's ``KafkaError``
    (or ``KafkaStoppedError``) when the broker cannot be asked."""
    unmade: set[str] = set()
    limits = topic_message_limits(settings, names, unmade)
    tool = settings.kafka_tool("kafka-configs.sh", "kafka.admin.ConfigCommand")
    check_message_limits(limits, settings.kafka_bootstrap, writer, unmade, tool=tool)


def require_partition_counts(settings: Settings, roles: Sequence[str]) -> None:
    """Raise ``PartitionCountError`` when a topic of ``roles`` (``"readings"``, ...) that
    exists has another partition count than ``CITYBRAIN_PARTITIONS``; a topic not made
    yet passes (the worker makes it). For a process that places messages on a partition
    it computes itself (the ingest's and a packed replay's packs), where a wrong count
    sent readings to partitions the worker refuses them on, or that do not exist.

    Raises kafka-python's ``KafkaError`` when the broker cannot be asked."""
    admin = topics_admin(settings)
    try:
        names = [settings.topic(role) for role in roles]
        existing = set(bounded(settings, "listing its topics", admin.list_topics))
        there = [n for n in names if n in existing]
        if there:
            check_partition_counts(
                [TopicSpec(n, settings.partitions) for n in there], admin.describe_topics(there)
            )
    finally:
        admin.close()


def run_topic_prefixes(run: str) -> tuple[str, ...]:
    """The prefixes of every topic a run named ``run`` makes: its ``<run>.<role>``
    topics, faust's ``<run>-<table>-changelog`` and ``<run>-__assignor-__leader``, and
    the internal topics of a Quix Streams consumer group named ``<run>.…`` (Quix names
    them ``changelog__<group>--<topic>--<store>`` and ``repartition__…``: the catch-up's
    Quix candidate left one of 12.8 kB per sensor state per run, 3.6 GB after three)."""
    return (f"{run}.", f"{run}-", f"changelog__{run}.", f"repartition__{run}.")


def delete_run_topics(settings: Settings, run: str) -> list[str]:
    """Delete every topic of one run whose topic prefix and app id are both ``run``
    (``run_topic_prefixes``). Returns the names deleted, sorted. Raises kafka-python's
    ``KafkaError``."""
    admin = topics_admin(settings)
    try:
        listed = bounded(settings, "listing its topics", admin.list_topics)
        mine = sorted(t for t in listed if t.startswith(run_topic_prefixes(run)))
        if mine:
            admin.delete_topics(mine)
        return mine
    finally:
        admin.close()


@contextlib.contextmanager
def run_topics(settings: Settings) -> Iterator[list[str]]:
    """A benchmark run's topics (``create_topics``), deleted when the block ends, however
    it ends: a catch-up run leaves about 45 topics and 0.4 GB on the broker, and
    repeated ``make bench`` runs filled the local stack's disk (12 GB found after the
    nineteenth session). A SIGTERM ends the block as Ctrl-C does (``KeyboardInterrupt``,
    ``sigterm_as_interrupt``), so the topics go then too. The run's prefix must be its
    app id (``delete_run_topics``)."""
    if settings.topic_prefix != settings.app_id:
        raise ValueError(
            f"a run's topic prefix {settings.topic_prefix!r} is not its app id "
            f"{settings.app_id!r}: its faust topics would not be found to delete"
        )
    with sigterm_as_interrupt():
        try:
            yield create_topics(settings)
        finally:
            deleted = delete_run_topics(settings, settings.topic_prefix)
            print(f"deleted the {len(deleted):,} topics of {settings.topic_prefix}", flush=True)
