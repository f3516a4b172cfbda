"""A stand-in for a worker's operator API in the command line's unit tests: an HTTP
server on a free local port that answers every request with the JSON a function gives."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

# (method, path, JSON body or None) -> (HTTP status, JSON document)
Answer = Callable[[str, str, Any], tuple[int, Any]]


@contextlib.contextmanager
def json_api(answer: Answer) -> Iterator[str]:
    """Serve ``answer`` on 127.0.0.1 for the ``with`` block; yields the base URL
    (``http://127.0.0.1:PORT``, the form ``--url`` takes)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size)) if size else None
            status, doc = answer(self.command, self.path, body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
