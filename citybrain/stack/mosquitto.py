"""Mosquitto (Debian's package) as the local MQTT broker: a plain process on loopback with a
generated config, its own port (``CITYBRAIN_MQTT_PORT``) and persistent sessions."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

from citybrain.ingest import MAX_PAYLOAD
from citybrain.ports import check_listen
from citybrain.stack.process import (
    StackError,
    debian_binary,
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
from streams.settings import Settings

# Debian installs the broker in /usr/sbin, which a non-root PATH may leave out.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

# An MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, client id "citybrain-ready") and
# the CONNACK that accepts it (MQTT 3.1.1 sections 3.1 and 3.2).
_CONNECT = bytes([0x10, 27, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 15, *b"citybrain-ready"])
_CONNACK_OK = bytes([0x20, 0x02, 0x00, 0x00])
_DISCONNECT = bytes([0xE0, 0x00])

# The largest MQTT packet the broker takes (topic, properties and payload): twice the
# ingest's payload limit and room for a topic, so a payload just past that limit still
# reaches the ingest and is dead-lettered with its size, while a 200 MB publish is not
# held whole: Mosquitto disconnects its publisher (MQTT 5: reason 0x95, "Packet too
# large", announced in CONNACK's Maximum Packet Size). Mosquitto's default is no limit.
MAX_PACKET = 2 * MAX_PAYLOAD + 65_536


class MosquittoBroker:
    """One broker listening on 127.0.0.1:``settings.mqtt_port``.

    Sessions and their queued QoS 1 messages persist across broker restarts (saved on a
    clean stop); a client's queue is bounded only by ``max_queued_messages`` here, so a
    slow or restarting ingest is queued for rather than dropped (Mosquitto's default drops
    QoS 1 messages past 1,000 per client).
    """

    def __init__(self, settings: Settings, max_queued_messages: int = 5_000_000) -> None:
        self.settings = settings
        self.max_queued_messages = max_queued_messages
        self.dir = settings.run_dir / "mosquitto"
        self.pid_file = self.dir / "mosquitto.pid"
        self.log_file = self.dir / "mosquitto.log"
        self.config = self.dir / "mosquitto.conf"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.settings.mqtt_port}"

    def binary(self) -> str:
        return debian_binary(
            "Mosquitto", "mosquitto", ["mosquitto", "mosquitto-clients"], SEARCH_PATH
        )

    def write_config(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    f"listener {self.settings.mqtt_port} 127.0.0.1",
                    # Started as root, Mosquitto switches to user "mosquitto", who cannot
                    # write our data directory; stay whoever started it.
                    f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {data}/",
                    "autosave_interval 60",
                    # Queue for a disconnected or slow persistent session, never drop.
                    f"max_queued_messages {self.max_queued_messages}",
                    "max_queued_bytes 0",
                    # MQTT 5 clients bound their own in-flight window (Receive Maximum);
                    # v3.1.1 clients get this one.
                    "max_inflight_messages 1000",
                    f"max_packet_size {MAX_PACKET}",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "connection_messages false",
                    "",
                ]
            )
        )

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def elsewhere(self) -> str:
        """``other_port``'s words when this run directory's broker runs on another port."""
        started = listed_port(self.config, r"^listener (\d+)") if self.running() else None
        return other_port("Mosquitto", "CITYBRAIN_MQTT_PORT", started, self.settings.mqtt_port)

    def foreign_dir(self) -> Path | None:
        """The other run directory whose Mosquitto serves this shell's port while this run
        directory's does not run (``serving_run_dir``), else None."""
        if self.running():
            return None
        return serving_run_dir(self.settings.mqtt_port, self.log_file, self.settings.run_dir)

    def foreign(self) -> str:
        """``other_run_dir``'s words for ``foreign_dir``; "" when there is none."""
        port = self.settings.mqtt_port
        return other_run_dir("Mosquitto", port, self.foreign_dir(), self.settings.run_dir)

    def ready(self) -> bool:
        """The broker accepts an MQTT CONNECT (a listening socket alone is not enough)."""
        try:
            with socket.create_connection(("127.0.0.1", self.settings.mqtt_port), timeout=1) as s:
                s.sendall(_CONNECT)
                reply = s.recv(4)
                s.sendall(_DISCONNECT)
                return reply == _CONNACK_OK
        except OSError:
            return False

    def check_ports(self) -> None:
        """Raise as ``citybrain.ports.check_listen`` unless running or its ports are free:
        ``stack up`` checks every service's before starting any."""
        if self.running():
            return
        # Another run directory's Mosquitto on this port: named, with the command that
        # stops it (t164: "in use (another Mosquitto's, or another program's)").
        refuse_other_run_dir(
            "Mosquitto", self.settings.mqtt_port, self.foreign_dir(), self.settings.run_dir
        )
        check_listen("127.0.0.1", self.settings.mqtt_port, "CITYBRAIN_MQTT_PORT", "Mosquitto")

    def start(self, timeout: float = 30.0) -> None:
        elsewhere = self.elsewhere()
        if elsewhere:
            raise StackError(elsewhere)
        if self.running():
            # Started by another shell, or a start interrupted: "ready" was said of a
            # server still starting, and what came next found none.
            wait_until(
                self.ready,
                timeout,
                "Mosquitto",
                self.log_file,
                self.running,
                pid_file=self.pid_file,
            )
            return
        self.check_ports()
        binary = self.binary()
        self.write_config()
        spawn([binary, "-c", str(self.config)], self.log_file, self.pid_file)
        wait_until(
            self.ready, timeout, "Mosquitto", self.log_file, self.running, pid_file=self.pid_file
        )

    @property
    def shown_log(self) -> Path:
        """The log to point a user at (its whole output)."""
        return self.log_file

    def stop(self) -> bool:
        return stop(self.pid_file)
