"""Raw-socket HTTP for the servers' bound tests: bytes as a client sends them, slowly or
badly, which no HTTP client library will."""

from __future__ import annotations

import contextlib
import socket


def send(port: int, data: bytes) -> socket.socket:
    """A connection to 127.0.0.1:``port`` that has sent ``data`` (10 s socket timeout)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(data)
    return conn


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes ``conn`` (a reset ends it too); closes it."""
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := conn.recv(65536):
            data += chunk
    conn.close()
    return data
