"""docs/openapi.yaml documents exactly the routes the worker and the HTTP ingest serve."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_openapi_paths_match_the_registered_views() -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.")
    source = (ROOT / "streams" / "api.py").read_text()
    served = {
        p.replace("{{", "{").replace("}}", "}")
        for p in re.findall(r'@app\.page\(f"\{PREFIX\}([^"]+)"\)', source)
    }
    worker = {p: v for p, v in spec["paths"].items() if not p.startswith("/ingest/")}
    assert set(worker) == served
    methods = {m for path in worker.values() for m in path}
    assert methods == {"get", "post", "delete"}


def test_openapi_documents_the_http_ingest_paths_with_their_method_and_port() -> None:
    from citybrain.ingest.http import METHODS, METRICS_PATH
    from streams.settings import Settings

    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    ingest = {p: v for p, v in spec["paths"].items() if p.startswith("/ingest/")}
    # /metrics is Prometheus' text format, not part of the API.
    assert {p: m.upper() for p, v in ingest.items() for m in v if m != "servers"} == {
        p: m for p, m in METHODS.items() if p != METRICS_PATH
    }
    port = Settings.model_fields["ingest_http_port"].default
    assert all(v["servers"] == [{"url": f"http://127.0.0.1:{port}"}] for v in ingest.values())


def test_the_run_schema_names_every_field_a_run_is_answered_with() -> None:
    """Trial 25: seven fields of every run in GET /runs (updated_at, seq, held, ...) were
    not in the spec, and sla_deadline_at, null on a run without an SLA, was not nullable."""
    import dataclasses
    import types
    import typing

    from playbooks.engine import Run

    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    schema = spec["components"]["schemas"]["Run"]["properties"]
    fields = {f.name: f for f in dataclasses.fields(Run)}
    # The API adds closures_undelivered (from the run's group) when a closure was not
    # delivered, and the list closures_undelivered_earlier for its superseded runs'
    # (streams/api.py, shown_run), and not_advancing on a run the deadline check holds.
    added = {"closures_undelivered", "closures_undelivered_earlier", "not_advancing"}
    assert set(schema) == set(fields) | added
    hints = typing.get_type_hints(Run)
    for name in fields:
        optional = isinstance(hints[name], types.UnionType) and type(None) in hints[name].__args__
        assert bool(schema[name].get("nullable")) == optional, name


# The modules whose code answers for each server, and the spec's paths of that server.
SERVERS = {
    "worker": ("streams/web_server.py", "streams/api.py", "streams/bounds.py"),
    "ingest": ("citybrain/ingest/bounded.py", "citybrain/ingest/http.py", "streams/bounds.py"),
}
# Error statuses in that code that are no answer: the standard library's 501 for a
# method without a handler, which the HTTP ingest answers as its path's 404 or 405.
NOT_ANSWERED = {("citybrain/ingest/http.py", 501)}


def _spec() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    return doc


def answered(module: str) -> set[int]:
    """Every 4xx and 5xx status written in ``module``'s code (its docstrings and comments
    aside): an answer's status, or a status it checks for before answering."""
    tree = ast.parse((ROOT / module).read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and type(node.value) is int
        and 400 <= node.value <= 599
        and (module, node.value) not in NOT_ANSWERED
    }


def stated(spec: dict[str, Any], server: str) -> tuple[set[int], set[int]]:
    """The statuses the spec states for ``server``: its server-level answers, and those
    of its paths' operations."""
    own = {int(s) for s in spec["x-server-responses"][server]}
    paths = {
        int(status)
        for path, ops in spec["paths"].items()
        if path.startswith("/ingest/") == (server == "ingest")
        for method, op in ops.items()
        if method != "servers"
        for status in op["responses"]
    }
    return own, paths


def test_every_status_the_servers_answer_is_in_the_spec() -> None:
    """Helper brief t37, fault 4: the worker's web server answers 408, 503 busy, 400
    too_long and bad_request, 500 and 504 before any view, and the spec listed none of
    them (and said a long request line was "400 in plain text")."""
    from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

    spec = _spec()
    for server, modules in SERVERS.items():
        code = set().union(*(answered(m) for m in modules))
        if server == "worker":
            # aiohttp's parser refusals, which web_server.handle_error answers in JSON.
            code |= {BadHttpMessage.code, LineTooLong.code}
        own, paths = stated(spec, server)
        assert code - own - paths == set(), (server, "answered, not in the spec")
        # And the spec states no server-level answer the code cannot give.
        assert own - code == set(), (server, "in the spec, not answered")
    for module, status in NOT_ANSWERED:
        assert status in {
            n.value
            for n in ast.walk(ast.parse((ROOT / module).read_text()))
            if isinstance(n, ast.Constant)
        }, (module, status, "NOT_ANSWERED names what the code no longer has")


def test_the_server_answers_shape_reasons_and_headers_are_stated() -> None:
    from streams.bounds import REFUSAL_REASONS, busy_answer

    spec = _spec()
    reasons = spec["components"]["schemas"]["ServerAnswer"]["properties"]["reason"]["enum"]
    source = (ROOT / "streams" / "web_server.py").read_text()
    assert 'reason = "internal"' in source  # a fault's reason, besides the refusals'
    assert set(reasons) == {*REFUSAL_REASONS, "internal"}
    busy = spec["components"]["responses"]["Busy"]
    assert "Retry-After" in busy["headers"]
    assert b"\r\nRetry-After: 1" in busy_answer("the worker", 1)
    for server in SERVERS:
        for status, ref in spec["x-server-responses"][server].items():
            name = ref["$ref"].removeprefix("#/components/responses/")
            assert name in spec["components"]["responses"], (server, status, name)


def test_every_reference_resolves() -> None:
    spec = _spec()
    refs = re.findall(r"\$ref: '#/([^']+)'", (ROOT / "docs" / "openapi.yaml").read_text())
    assert refs
    for ref in refs:
        node: Any = spec
        for part in ref.split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
