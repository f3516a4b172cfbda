"""Where a citybrain server listens (the worker's web server, the HTTP ingest): one line
naming the setting when it cannot, instead of an ``OSError`` or faust's traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

from citybrain.errors import InputError, ListenError

BIND_SETTING = "CITYBRAIN_WORKER_BIND"


# How many consecutive ports from CITYBRAIN_INGEST_METRICS_PORT the stack's Prometheus
# scrapes for MQTT ingests, and an MQTT ingest on the default port may move on through.
INGEST_METRICS_PORTS = 4


def proc_pids() -> list[int] | None:
    """Every process id ``/proc`` lists now; None when it cannot be read (no procfs)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None


def listen_error(exc: OSError, host: str, port: int, port_setting: str, what: str) -> Exception:
    """``exc`` (raised binding ``host:port``) as ``InputError`` when the setting is wrong
    (a bind address this machine lacks or cannot resolve, a privileged port: exit 2) or
    ``ListenError`` when the port is taken (exit 3); each message names the setting, its
    value and what to do."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        reason = exc.strerror or str(exc)
        return InputError(
            f"{BIND_SETTING} is {host!r}: the {what} cannot listen there ({reason}); give an "
            "address of this machine, e.g. 127.0.0.1, or 0.0.0.0 for every interface"
        )
    if exc.errno == errno.EACCES:
        return InputError(
            f"{port_setting} is {port}: only root may listen on a port below 1024; give "
            "1024 or above"
        )
    if exc.errno == errno.EADDRINUSE:
        # Which process, when /proc says (t164: "another X's, or another program's" left
        # a newcomer to find it with ss or lsof).
        who = holder(port)
        whose = f"by {who}" if who else f"(another {what}'s, or another program's)"
        return ListenError(
            f"{port_setting} is {port}, but {host}:{port} is already in use {whose}: stop "
            f"that one, or give this {what} its own port, e.g. {port_setting}="
            f"{_next(port, host)}"
        )
    return ListenError(
        f"{port_setting} is {port}: the {what} cannot listen on {host}:{port}: {exc}"
    )


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` of this machine (any address, IPv4 or IPv6),
    found through ``/proc/net/tcp``/``tcp6`` (state ``0A``: LISTEN) and the sockets the
    processes hold open; None when nothing listens there or ``/proc`` cannot say (a
    process of another user, whose descriptors cannot be read)."""
    sockets: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl, local address (hex address:hex port), remote address, state, ..., inode
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":
                with contextlib.suppress(ValueError, IndexError):
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        sockets.add(f"socket:[{fields[9]}]")
    if not sockets:
        return None
    pids = proc_pids()
    for pid in pids or ():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return pid
    return None


def holder(port: int) -> str:
    """ "pid N, `its command line`" of the process listening on ``port`` (``listening_pid``),
    the command line cut to 100 characters; "" when ``/proc`` cannot say."""
    pid = listening_pid(port)
    if pid is None:
        return ""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return f"pid {pid}"
    shown = " ".join(os.fsdecode(arg) for arg in args)
    shown = shown if len(shown) <= 100 else shown[:99] + "…"
    return f"pid {pid}, `{shown}`" if shown else f"pid {pid}"


def check_listen(host: str, port: int, port_setting: str, what: str) -> None:
    """Raise as ``listen_error`` unless ``host:port`` can be bound now, for a server that
    binds later inside a framework (faust's web server) whose own failure is a traceback.
    Binds with SO_REUSEADDR, as aiohttp and ``socketserver`` do: a port left in TIME_WAIT
    by a stopped server passes, one another process listens on does not."""
    try:
        _bind(host, port)
    except OSError as exc:
        raise listen_error(exc, host, port, port_setting, what) from None


def can_bind(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (``check_listen``'s test)."""
    try:
        _bind(host, port)
    except OSError:
        return False
    return True


def _bind(host: str, port: int) -> None:
    """Bind ``host:port`` and let it go; raises ``OSError`` as the server would."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)


def other_settings_ports() -> set[int]:
    """The ports the ``CITYBRAIN_*_PORT`` settings give this shell (the environment's, else
    the defaults): a port to suggest must not be one of them, or following the advice
    makes two servers of one stack collide (trial 4: Kafka told to take its own
    controller's port)."""
    from streams.settings import LISTEN_PORTS, Settings

    ports = set()
    for name in LISTEN_PORTS:
        value = os.environ.get(f"CITYBRAIN_{name.upper()}", "").strip()
        whole = value.isascii() and value.isdigit()  # int("²") raised (helper t52)
        ports.add(int(value) if whole else Settings.model_fields[name].default)
    return ports


def free_port_near(port: int, host: str = "127.0.0.1") -> int | str:
    """A port to suggest instead of ``port`` (``_next``)."""
    return _next(port, host)


def _next(port: int, host: str = "127.0.0.1") -> int | str:
    """The nearest port above (else below) ``port`` that can be bound on ``host`` now and
    is no ``CITYBRAIN_*_PORT`` setting's; ``"<a free port>"`` if none within 100."""
    reserved = other_settings_ports()
    candidates = [p for p in range(port + 1, port + 101) if p <= 65535]
    candidates += [p for p in range(port - 1, port - 101, -1) if p >= 1024]
    for candidate in candidates:
        if candidate in reserved:
            continue
        try:
            _bind(host, candidate)
        except OSError:
            continue
        return candidate
    return "<a free port>"
