"""Apache Kafka 4 in KRaft mode, one combined node on 127.0.0.1, from Maven Central jars."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from citybrain.ports import check_listen
from citybrain.stack.dirs import disk_trouble
from citybrain.stack.process import (
    StackError,
    fresh_log,
    listed_port,
    other_port,
    other_run_dir,
    read_pid,
    refuse_other_run_dir,
    serving_run_dir,
    spawn,
    stop,
    wait_until,
)
from streams.settings import (
    KAFKA_VERSION as KAFKA_VERSION,
)  # (its home: the worker names its tools)
from streams.settings import Settings

# What Maven fetches for it, measured (du -sh of kafka-4.0.2: 53M on 2026-12-05); the
# README says the same. The demo said 120 MB, over twice the real download (t104).
KAFKA_JARS_MB = 55
POM = Path(__file__).with_name("kafka-pom.xml")

# Kafka's log, rolled by size: a stack left up for weeks (or a flood of clients
# connecting, of topics and groups coming and going) wrote server.log without bound, into
# the run directory, where Kafka's data lives too (t176). At most SERVER_LOG_MB in
# server.log and each of SERVER_LOG_FILES older files (server.log.1 newest), so at most
# (SERVER_LOG_FILES + 1) * SERVER_LOG_MB MB in all; a start moves the last start's
# server.log to server.log.1 (``fresh_log``).
SERVER_LOG_MB = 100
SERVER_LOG_FILES = 5
LOG4J2 = f"""\
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${{sys:kafka.logs.dir}}/server.log
appender.file.filePattern = ${{sys:kafka.logs.dir}}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = {SERVER_LOG_MB}MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = {SERVER_LOG_FILES}
appender.file.strategy.fileIndex = min
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` (``flock``, released however the process ends) for the block; one
    held by another process is waited for."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class KafkaBroker:
    def __init__(self, settings: Settings, scram_users: dict[str, str] | None = None) -> None:
        """``scram_users`` (name -> password) turns the client listener into
        SASL_PLAINTEXT with SCRAM-SHA-256, the users created when storage is formatted."""
        self.settings = settings
        self.scram_users = dict(scram_users or {})
        if self.scram_users:
            # The broker talks to itself over the SASL listener too.
            self.scram_users.setdefault("broker", secrets.token_urlsafe(16))
        self.libs = settings.home / f"kafka-{KAFKA_VERSION}" / "libs"
        self.dir = settings.run_dir / "kafka"
        self.pid_file = self.dir / "kafka.pid"
        self.log_file = self.dir / "logs" / "kafka.out"  # the JVM's own output
        # Kafka's log4j lines (log4j2.properties above): what to read when it fails.
        self.server_log = self.dir / "logs" / "server.log"
        self.config = self.dir / "server.properties"

    # -- install ---------------------------------------------------------------------
    def download_notice(self) -> str | None:
        """The line to print before ``install`` downloads the jars, None when they are here."""
        if (self.libs.parent / ".complete").exists():
            return None
        return (
            f"first run: downloading Kafka {KAFKA_VERSION} (about {KAFKA_JARS_MB} MB of jars) "
            f"from Maven Central into {self.libs.parent} with mvn; later runs reuse it"
        )

    def install(self) -> None:
        """Resolve the broker jars with Maven into the cache; a stamp marks a full copy.

        The cache (CITYBRAIN_HOME) is shared by every run directory: stacks started at
        once (the test suite's xdist processes, each with its own stack; two checkouts)
        take ``kafka-<version>.lock`` in turn, and one that waited finds the stamp the
        first wrote. Unlocked, each saw no stamp and ran Maven into the same directory,
        removing the others' half-made copy first. Raises StackError (no mvn, mvn failed).
        """
        stamp = self.libs.parent / ".complete"
        if stamp.exists():
            return
        if shutil.which("mvn") is None:
            raise StackError("Kafka: mvn not found; install Maven (and Java 17) first")
        self.libs.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(self.libs.parent.with_name(f"{self.libs.parent.name}.lock")):
            if not stamp.exists():  # another stack's download may have ended meanwhile
                self._download(stamp)

    def _download(self, stamp: Path) -> None:
        """Maven's copy into ``self.libs``, then ``stamp``; the caller holds the lock."""
        if self.libs.exists():
            shutil.rmtree(self.libs)  # an interrupted copy is redone, not trusted
        pom = self.libs.parent / "pom.xml"
        shutil.copyfile(POM, pom)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={self.libs}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.libs.parent)
        if proc.returncode != 0:
            raise StackError(f"Kafka: mvn failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
        stamp.write_text(KAFKA_VERSION)

    # -- run -------------------------------------------------------------------------
    def write_config(self) -> None:
        s = self.settings
        data = self.dir / "data"
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
                    "controller.listener.names=CONTROLLER",
                    f"listeners={self.protocol}://127.0.0.1:{s.kafka_port},"
                    f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
                    f"advertised.listeners={self.protocol}://127.0.0.1:{s.kafka_port}",
                    f"listener.security.protocol.map={self.protocol}:{self.protocol},CONTROLLER:PLAINTEXT",
                    f"inter.broker.listener.name={self.protocol}",
                    *self._sasl_config(),
                    f"log.dirs={data}",
                    f"num.partitions={s.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        (self.dir / "log4j2.properties").write_text(LOG4J2)

    @property
    def protocol(self) -> str:
        return "SASL_PLAINTEXT" if self.scram_users else "PLAINTEXT"

    def _sasl_config(self) -> list[str]:
        if not self.scram_users:
            return []
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="broker" password="{self.scram_users["broker"]}";'
        )
        return [
            "sasl.enabled.mechanisms=SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256",
            f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={jaas}",
        ]

    def _scram_args(self) -> list[str]:
        args = []
        for name, password in self.scram_users.items():
            args += ["--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]"]
        return args

    def client_options(self) -> dict[str, str]:
        """kafka-python options to reach this broker as its own admin user."""
        if not self.scram_users:
            return {}
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "broker",
            "sasl_plain_password": self.scram_users["broker"],
        }

    def _java(self, *args: str) -> list[str]:
        logs = self.dir / "logs"
        return [
            "java",
            f"-Xms{self.settings.kafka_heap}",
            f"-Xmx{self.settings.kafka_heap}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def elsewhere(self) -> str:
        """``other_port``'s words when this run directory's broker runs on another port."""
        started = (
            listed_port(self.config, r"^listeners=[A-Z_]+://[^:]+:(\d+)")
            if self.running()
            else None
        )
        return other_port("Kafka", "CITYBRAIN_KAFKA_PORT", started, self.settings.kafka_port)

    def foreign_dir(self) -> Path | None:
        """The other run directory whose Kafka serves this shell's port while this run
        directory's does not run (``serving_run_dir``), else None."""
        if self.running():
            return None
        return serving_run_dir(self.settings.kafka_port, self.log_file, self.settings.run_dir)

    def foreign(self) -> str:
        """``other_run_dir``'s words for ``foreign_dir``; "" when there is none."""
        port = self.settings.kafka_port
        return other_run_dir("Kafka", port, self.foreign_dir(), self.settings.run_dir)

    def ready(self) -> bool:
        """The broker answers a metadata request (better than grepping its log)."""
        try:
            with socket.create_connection(("127.0.0.1", self.settings.kafka_port), timeout=1):
                pass
        except OSError:
            return False
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap,
                # kafka-python's own bootstrap wait is 30 s: a frozen broker (taking
                # connections, answering nothing) held `stack status` that long.
                bootstrap_timeout_ms=3000,
                request_timeout_ms=3000,
                client_id="citybrain-stack",
                **self.client_options(),
            )
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def check_ports(self) -> None:
        """Raise as ``citybrain.ports.check_listen`` unless running or its ports are free:
        ``stack up`` checks every service's before starting any."""
        if self.running():
            return
        # Another run directory's Kafka on this port: named, with the command that
        # stops it (t164: "in use (another Kafka's, or another program's)").
        refuse_other_run_dir(
            "Kafka", self.settings.kafka_port, self.foreign_dir(), self.settings.run_dir
        )
        check_listen("127.0.0.1", self.settings.kafka_port, "CITYBRAIN_KAFKA_PORT", "Kafka")
        check_listen(
            "127.0.0.1",
            self.settings.kafka_controller_port,
            "CITYBRAIN_KAFKA_CONTROLLER_PORT",
            "Kafka controller",
        )

    def start(self, timeout: float = 90.0) -> None:
        elsewhere = self.elsewhere()
        if elsewhere:
            raise StackError(elsewhere)
        if self.running():
            # Started by another shell, or a start interrupted: "ready" was said of a
            # server still starting, and what came next found none.
            self._wait(timeout)
            return
        self.check_ports()
        self.install()
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.write_config()
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            proc = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    # "=" form: a random id starting with "-" (1 in 64) would read as a flag.
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(self.config),
                    *self._scram_args(),
                ),
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise StackError(f"Kafka: storage format failed:\n{proc.stdout}{proc.stderr}")
        fresh_log(self.server_log)  # log4j appends: an earlier start's lines misled
        spawn(self._java("kafka.Kafka", str(self.config)), self.log_file, self.pid_file)
        self._wait(timeout)

    def starting_line(self) -> str:
        """What ``stack up`` and the demo say before they start it and wait: where, how
        long it takes and its log (t60: 40 s of silence on 2 cores before "kafka ready";
        t209: the demo's 25 s after "starting Kafka and Prometheus" said neither)."""
        return (
            f"kafka       starting on {self.settings.kafka_bootstrap} (about 30 s on 2 cores, "
            f"at most 90 s; log: {self.shown_log})"
        )

    @property
    def shown_log(self) -> Path:
        """The log to point a user at: log4j's server.log (kafka.out is only the JVM's
        own output, empty unless the JVM itself failed)."""
        return self.server_log

    def _wait(self, timeout: float) -> None:
        """``wait_until`` ready, naming the pid and the JVM's output, else server.log's tail;
        a broker that exited because its disk refused a write says that (``exited``)."""
        try:
            wait_until(
                self.ready,
                timeout,
                "Kafka",
                self.log_file,
                self.running,
                pid_file=self.pid_file,
                logs=(self.log_file, self.server_log),
            )
        except StackError:
            trouble = self.exited()
            if trouble is not None and "cannot be written" in trouble:
                raise StackError(trouble) from None
            raise

    def exited(self) -> str | None:
        """One line when this run directory's broker was started and has exited since (its
        pid file names a process that is gone): why, when its log says its disk refused a
        write (full, read-only: ``dirs.disk_trouble``), else that it exited and its log;
        None when it runs or was stopped (no pid file).

        t111: a full disk killed Kafka right after "kafka ready", and `stack up` went on
        to say "no Kafka broker answered ...: start the local stack with `stack up`"."""
        if not self.pid_file.exists() or self.running():
            return None
        trouble = disk_trouble(self.settings, [self.server_log, self.log_file])
        if trouble is not None:
            return f"the local stack's Kafka has exited: {trouble}"
        from citybrain.commands import command_line

        return (
            f"the local stack's Kafka has exited (its log: {self.server_log}); "
            f"`{command_line('stack', 'up')}` starts it again"
        )

    def stop(self) -> bool:
        return stop(self.pid_file)

    def wipe(self) -> int | None:
        """Delete the broker's data (only when stopped): the bytes its files held, or None
        when there was none (no directory). Raises ``StackError`` when the broker runs or
        a file cannot be deleted (t112: errors were ignored, and `stack down --wipe` said
        "data wiped" with nothing there, or with the data still there)."""
        if self.running():
            raise StackError("Kafka: stop the broker before wiping its data")
        if not self.dir.is_dir():
            return None
        held = 0
        for path in self.dir.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    held += path.stat().st_size
        try:
            shutil.rmtree(self.dir)
        except OSError as exc:
            raise StackError(
                f"Kafka's data in {self.dir} could not all be deleted "
                f"({exc.strerror or exc}: {exc.filename}); the rest is still there"
            ) from None
        return held
