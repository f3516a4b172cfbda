"""A command's host-name lookups, each waited for at most ``RESOLVE_SECONDS``.

kafka-python (its ``dns_lookup``), urllib (``socket.create_connection``) and grafana-client
(urllib3-future's system resolver) all call ``socket.getaddrinfo``, the C library's
blocking lookup, bounded only by ``/etc/resolv.conf`` (``timeout`` x ``attempts`` per name
server: 10 s each at glibc's defaults, and kafka-python asked again at every reconnection):
with a DNS server that never answers, a command waited that long or for ever, and then
said only that the service did not answer. ``install`` replaces ``socket.getaddrinfo`` in
the command's process: a host name (an IP address is passed straight on) is looked up
on a daemon thread, once at a time per name (others asking for it meanwhile wait for the
same answer), and a caller waits at most ``RESOLVE_SECONDS``; then ``LookupStalledError``
(a ``socket.gaierror``, which every client takes as a failed lookup) names the host and
the name servers asked, and the CLI's boundary puts that first in the command's one line
(``stalled``), exit 3 as for any service that does not answer.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Seconds one lookup may take (as the worker's, playbooks/executors/resolve.py): a working
# resolver answers within a few hundred ms.
RESOLVE_SECONDS = 5.0
RESOLV_CONF = Path("/etc/resolv.conf")

_ORIGINAL: Callable[..., list[Any]] = socket.getaddrinfo
_lock = threading.Lock()
# Lookups under way, by their arguments: (done, outcome) with outcome [ok, value] once done.
_pending: dict[tuple[Any, ...], tuple[threading.Event, list[Any]]] = {}
_stalled: list[LookupStalledError] = []


def name_servers(conf: Path | None = None) -> list[str]:
    """The ``nameserver`` addresses of ``conf`` (``RESOLV_CONF``; none if it cannot be
    read)."""
    conf = RESOLV_CONF if conf is None else conf
    try:
        lines = conf.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [parts[1] for parts in (line.split() for line in lines) if parts[:1] == ["nameserver"]]


class LookupStalledError(socket.gaierror):
    """A host name's lookup did not finish within its bound. ``host``: the name;
    ``seconds``: the bound. Its text names both and the name servers asked."""

    def __init__(self, host: str, seconds: float) -> None:
        servers = name_servers()
        asked = (
            f"name server {', '.join(servers)} of {RESOLV_CONF}" if servers else "the DNS resolver"
        )
        message = (
            f"looking up the host name {host!r} took longer than {seconds:g} s "
            f"({asked} did not answer)"
        )
        super().__init__(socket.EAI_AGAIN, message)
        self.host, self.seconds = host, seconds

    def __str__(self) -> str:
        return str(self.strerror)


def _literal(host: Any) -> bool:
    if host is None:
        return True
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def bounded_getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    """``socket.getaddrinfo`` waited for at most ``RESOLVE_SECONDS``. Raises
    ``LookupStalledError`` past it (also remembered for ``stalled``), and what the lookup
    raises (``socket.gaierror`` for an unknown name)."""
    if _literal(host):  # no DNS question: answered at once
        return _ORIGINAL(host, port, family, type, proto, flags)
    key = (host, port, family, type, proto, flags)
    with _lock:
        found = _pending.get(key)
        if found is None:
            found = (threading.Event(), [])
            _pending[key] = found
            threading.Thread(
                target=_look_up, args=(key, *found), name=f"lookup {host!r}", daemon=True
            ).start()
    done, outcome = found
    if not done.wait(RESOLVE_SECONDS):
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        error = LookupStalledError(name, RESOLVE_SECONDS)
        _stalled.append(error)
        raise error
    ok, value = outcome
    if ok:
        return list(value)
    raise value


def _look_up(key: tuple[Any, ...], done: threading.Event, outcome: list[Any]) -> None:
    try:
        outcome.extend((True, _ORIGINAL(*key)))
    except BaseException as exc:  # handed to the callers' threads, raised there
        outcome.extend((False, exc))
    finally:
        with _lock:
            _pending.pop(key, None)
        done.set()


def install() -> None:
    """Make this process's ``socket.getaddrinfo`` the bounded one (idempotent)."""
    socket.getaddrinfo = bounded_getaddrinfo


def forget() -> None:
    """Forget the lookups that ran past their bound (a new command begins)."""
    _stalled.clear()


def stalled() -> LookupStalledError | None:
    """The last lookup of this process that ran past its bound, if any."""
    return _stalled[-1] if _stalled else None
