"""docs/openapi.yaml walked against a running worker (trial 25): every operator path,
method and status code the spec states is provoked and answered with that status and a
body of the stated shape; every other method is a 405 whose Allow lists exactly the
spec's; HEAD answers as GET does, without a body; a trailing slash, an unknown path, a
query parameter a path does not take, a URL-encoded and a huge id are JSON answers
naming what was wrong."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.machine import RunStatus
from streams.auth import hash_token
from tests.integration.test_pipeline import steps_of
from tests.integration.test_response import spike
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, ROOT, Pipeline

pytestmark = pytest.mark.integration

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
OPERATIONS = {
    (path, method): op
    for path, ops in SPEC["paths"].items()
    if not path.startswith("/ingest/")
    for method, op in ops.items()
}
GATEWAY_TOKEN = "test-gateway-token"
# What a running worker with its tables read back cannot be made to answer here, and
# where it is tested instead.
NOT_PROVOKED = {
    # Kafka not acknowledging, or tables still being read back:
    # tests/integration/test_api_durability.py, tests/unit/streams/test_api_reading_back.py
    "503",
}
# A superseded run the group no longer keeps (three newer runs of one group):
# tests/unit/streams/test_api_runs.py.
# 10,000 silences in force: tests/unit/streams/test_api_delivery.py.
# Two stored keys whose SHA-256 share the 16 digits of a sha256: handle (t173):
# tests/unit/streams/test_api_silences.py.
NOT_PROVOKED_ON = {
    ("/runs/{run_id}", "get"): {"409"},
    ("/silences", "post"): {"409"},
    ("/silences/{silence_id}", "delete"): {"409"},
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = SPEC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def mismatches(schema: dict[str, Any], value: Any, where: str = "body") -> list[str]:
    """Where ``value`` departs from the OpenAPI 3.0 ``schema`` (the subset the spec uses:
    type, nullable, enum, properties, required, items, additionalProperties, oneOf)."""
    schema = resolve(schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where} is null"]
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not mismatches(s, value, where)]
        return [] if len(fits) == 1 else [f"{where} fits {len(fits)} of oneOf"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    kind = schema.get("type")
    wrong = kind is not None and not isinstance(value, kinds[kind])
    if wrong or (kind in ("integer", "number") and isinstance(value, bool)):
        return [f"{where} is {value!r}, expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where} is {value!r}, not one of {schema['enum']}"]
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{where}.{k} is missing" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                found += mismatches(props[k], v, f"{where}.{k}")
            elif isinstance(extra, dict):
                found += mismatches(extra, v, f"{where}.{k}")
            elif props and extra is not True:
                found.append(f"{where}.{k} is not in the spec")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += mismatches(schema["items"], item, f"{where}[{i}]")
    return found


class Api:
    """Raw HTTP to one worker: status, headers and the JSON body (None when empty)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __call__(
        self,
        method: str,
        path: str,
        token: str | None = OPERATOR_TOKEN,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        sent = {"Content-Type": "application/json"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        try:
            conn.request(method, "/api/v1" + path, body=raw, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
        finally:
            conn.close()


def check(
    api: Api,
    seen: dict[tuple[str, str], set[str]],
    key: tuple[str, str],
    status: int,
    method: str,
    path: str,
    token: str | None = OPERATOR_TOKEN,
    **kw: Any,
) -> Any:
    """One request for the operation ``key``; its status must be ``status``, one the spec
    lists for the operation, and its body of the spec's shape for that status."""
    got, headers, doc = api(method, path, token, **kw)
    assert got == status, (method, path, got, doc)
    responses = OPERATIONS[key]["responses"]
    assert str(status) in responses, (key, status, "not in the spec")
    content = resolve(responses[str(status)]).get("content", {})
    if method != "HEAD":
        assert headers["Content-Type"].startswith("application/json"), headers
        schema = content["application/json"]["schema"]
        assert mismatches(schema, doc) == [], (key, status, doc)
        if status >= 400:
            assert isinstance(doc["error"], str) and "Traceback" not in doc["error"]
    seen.setdefault(key, set()).add(str(status))
    return doc


@pytest.fixture
def walked(pipeline: Pipeline, tmp_path: Path) -> Pipeline:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        f"  - {{name: duty-operator, role: operator, sha256: '{hash_token(OPERATOR_TOKEN)}'}}\n"
        f"  - {{name: duty-coordinator, role: coordinator, "
        f"sha256: '{hash_token(COORDINATOR_TOKEN)}'}}\n"
        f"  - {{name: gate-1, role: gateway, sha256: '{hash_token(GATEWAY_TOKEN)}'}}\n"
    )
    pipeline.env["CITYBRAIN_API_TOKENS_FILE"] = str(tokens)
    return pipeline


def test_every_status_the_spec_states_is_what_the_worker_answers(walked: Pipeline) -> None:
    p = walked
    worker = p.worker().start()
    api = Api(p.settings.worker_port)
    seen: dict[tuple[str, str], set[str]] = {}
    try:
        spike(p)
        steps = p.read("steps", lambda m: bool(steps_of(m, "run_created")))
        run_id = steps_of(steps, "run_created")[0]["run_id"]
        assert p.api_until(f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: s == 200)[0] == 200
        run_path = f"/runs/{urllib.parse.quote(run_id, safe='')}"

        key = ("/runs", "get")
        runs = check(api, seen, key, 200, "GET", "/runs")
        assert [r["run_id"] for r in runs["runs"]] == [run_id]
        check(api, seen, key, 200, "GET", "/runs?status=reopened")
        check(api, seen, key, 400, "GET", "/runs?status=bogus")
        check(api, seen, key, 400, "GET", "/runs?stauts=open")
        check(api, seen, key, 401, "GET", "/runs", token=None)
        check(api, seen, key, 401, "GET", "/runs", token="not-a-token")
        check(api, seen, key, 200, "HEAD", "/runs")
        check(api, seen, key, 401, "HEAD", "/runs", token=None)

        key = ("/runs/{run_id}", "get")
        assert check(api, seen, key, 200, "GET", run_path)["run"]["run_id"] == run_id
        doc = check(api, seen, key, 404, "GET", "/runs/a%2Fb")
        assert doc["error"] == "no run 'a/b'"
        doc = check(api, seen, key, 404, "GET", "/runs/" + "x" * 5000)
        assert doc["error"].endswith("... (5,000 characters)")
        check(api, seen, key, 401, "GET", run_path, token=None)
        check(api, seen, key, 400, "GET", run_path + "?verbose=1")

        key = ("/runs/{run_id}/{action}", "post")
        check(api, seen, key, 401, "POST", run_path + "/ack", token=None)
        check(api, seen, key, 403, "POST", run_path + "/escalate", body={})
        check(api, seen, key, 403, "POST", run_path + "/ack", token=GATEWAY_TOKEN)
        check(api, seen, key, 404, "POST", "/runs/grp-nope.1/ack", body={})
        check(api, seen, key, 404, "POST", run_path + "/acknowledge", body={})
        check(api, seen, key, 400, "POST", run_path + "/resolve", body={})
        check(api, seen, key, 400, "POST", run_path + "/ack", body={"nte": "on my way"})
        check(api, seen, key, 400, "POST", run_path + "/ack", body=b'{"note": ')
        check(api, seen, key, 409, "POST", run_path + "/approve", COORDINATOR_TOKEN, body={})
        check(api, seen, key, 413, "POST", run_path + "/ack", body=b" " * (1024 * 1024 + 1))
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        check(api, seen, key, 415, "POST", run_path + "/ack", body=b"note=x", headers=form)
        keyed = {"Idempotency-Key": "walk-ack"}
        ack = {"note": "on my way"}
        done = check(api, seen, key, 202, "POST", run_path + "/ack", body=ack, headers=keyed)
        assert done["command"]["action"] == "ack"
        p.api_until(f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: b["run"]["acknowledged_at"])
        # Its key again: the same body gets the first answer, another a 422 (t72).
        assert (
            check(api, seen, key, 202, "POST", run_path + "/ack", body=ack, headers=keyed) == done
        )
        check(api, seen, key, 422, "POST", run_path + "/ack", body={"note": "j"}, headers=keyed)
        again = check(api, seen, key, 200, "POST", run_path + "/ack", body={"note": "again"})
        assert again["already"]["by"] == "duty-operator"
        assert again["status"] in {status.value for status in RunStatus}  # the run's now

        for key, path in ((("/alerts", "get"), "/alerts"), (("/silences", "get"), "/silences")):
            check(api, seen, key, 200, "GET", path)
            check(api, seen, key, 401, "GET", path, token=None)
            check(api, seen, key, 200, "HEAD", path)
            check(api, seen, key, 400, "GET", path + "?verbose=1")

        key = ("/silences", "post")
        silence = {"matchers": ['kind="pm25"'], "duration": "1h", "reason": "walk"}
        idem = {"Idempotency-Key": "walk-1"}
        made = check(api, seen, key, 201, "POST", "/silences", body=silence, headers=idem)
        silence_id = made["silence"]["id"]
        again = check(api, seen, key, 201, "POST", "/silences", body=silence, headers=idem)
        assert (again["silence"]["id"], again["already"]) == (silence_id, "created")
        other = {**silence, "reason": "another"}
        check(api, seen, key, 422, "POST", "/silences", body=other, headers=idem)
        check(api, seen, key, 400, "POST", "/silences", body={})
        check(api, seen, key, 400, "POST", "/silences", body={**silence, "comment": "x"})
        check(api, seen, key, 401, "POST", "/silences", token=None, body=silence)
        check(api, seen, key, 403, "POST", "/silences", token=GATEWAY_TOKEN, body=silence)
        check(api, seen, key, 413, "POST", "/silences", body=b" " * (1024 * 1024 + 1))
        check(api, seen, key, 415, "POST", "/silences", body=b"x=1", headers=form)

        key = ("/silences/{silence_id}", "delete")
        gone = f"/silences/{silence_id}"
        check(api, seen, key, 401, "DELETE", gone, token=None)
        check(api, seen, key, 403, "DELETE", gone)
        check(api, seen, key, 404, "DELETE", "/silences/nope", COORDINATOR_TOKEN)
        check(api, seen, key, 400, "DELETE", gone + "?force=1", COORDINATOR_TOKEN)
        expired = check(api, seen, key, 200, "DELETE", gone, COORDINATOR_TOKEN)
        assert expired["silence"]["expired_by"] == "duty-coordinator"
        again = check(api, seen, key, 200, "DELETE", gone, COORDINATOR_TOKEN)
        assert again["already"]["by"] == "duty-coordinator"

        for (path, method), op in OPERATIONS.items():
            stated = (
                set(op["responses"]) - NOT_PROVOKED - NOT_PROVOKED_ON.get((path, method), set())
            )
            assert seen.get((path, method), set()) == stated, (path, method)
    finally:
        worker.stop()


def test_other_methods_trailing_slashes_and_unknown_paths_answer_in_json(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker().start()
    api = Api(pipeline.settings.worker_port)
    try:
        concrete = {"{run_id}": "grp-nope.1", "{action}": "ack", "{silence_id}": "s-1"}
        for path, ops in SPEC["paths"].items():
            if path.startswith("/ingest/"):
                continue
            for name, value in concrete.items():
                path = path.replace(name, value)
            methods = {m.upper() for m in ops} | ({"HEAD"} if "get" in ops else set())
            for method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - methods:
                status, headers, doc = api(method, path)
                assert status == 405, (method, path, status, doc)
                assert set(headers["Allow"].split(",")) == methods, (method, path, headers)
                if method != "HEAD":
                    assert doc["error"].startswith(f"{method} is not allowed on "), doc
            status, _, doc = api(sorted(methods)[0], path + "/")
            assert (status, doc) == (
                404,
                {
                    "error": f"no such path {'/api/v1' + path + '/'!r}: without the trailing "
                    f"slash, {'/api/v1' + path!r}"
                },
            )
        for path in ("", "/", "/runz"):
            status, _, doc = api("GET", path)
            assert status == 404 and "the operator API's paths are /api/v1/runs" in doc["error"]
    finally:
        worker.stop()
