"""`citybrain dashboards push` through grafana-client against a local HTTP server that
implements the Grafana endpoints it calls. The server STANDS IN FOR GRAFANA (no Grafana
can be installed here): it keeps folders, datasources and dashboards in memory, checks the
bearer token, versions dashboards on save like Grafana does, and can be told to fail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dashboards.generate import BUILDERS
from dashboards.panels import DATASOURCE_UID
from dashboards.push import DashboardPusher, PushError

pytestmark = pytest.mark.integration
TOKEN = "glsa_pushtoken"
GENERATED = Path(__file__).resolve().parents[2] / "dashboards" / "generated"


class StandInGrafana(BaseHTTPRequestHandler):
    folders: ClassVar[dict[str, dict[str, Any]]] = {}
    datasources: ClassVar[dict[str, dict[str, Any]]] = {}
    dashboards: ClassVar[dict[str, dict[str, Any]]] = {}
    writes: ClassVar[list[str]] = []
    fail_next: ClassVar[list[int]] = []  # statuses to answer before behaving
    delay: ClassVar[float] = 0.0
    reject_saves: ClassVar[bool] = False
    reject_uid: ClassVar[str] = ""  # a dashboard whose every save is refused (400)

    @classmethod
    def reset(cls) -> None:
        cls.folders, cls.datasources, cls.dashboards = {}, {}, {}
        cls.writes, cls.fail_next, cls.delay, cls.reject_saves = [], [], 0.0, False
        cls.reject_uid = ""

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _reply(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        body = self._body()
        time.sleep(StandInGrafana.delay)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "invalid API key"})
        if StandInGrafana.fail_next:
            return self._reply(StandInGrafana.fail_next.pop(0), {"message": "try again"})
        path = self.path.split("?")[0]
        if method != "GET":
            StandInGrafana.writes.append(f"{method} {path}")
        routes = [
            ("GET", r"/api/folders/([\w-]+)", self._get_folder),
            ("POST", r"/api/folders", self._create_folder),
            ("PUT", r"/api/folders/([\w-]+)", self._update_folder),
            ("GET", r"/api/datasources/uid/([\w-]+)", self._get_datasource),
            ("POST", r"/api/datasources", self._create_datasource),
            ("PUT", r"/api/datasources/uid/([\w-]+)", self._update_datasource),
            ("GET", r"/api/dashboards/uid/([\w-]+)", self._get_dashboard),
            ("POST", r"/api/dashboards/db", self._save_dashboard),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(body, *match.groups())
        return self._reply(404, {"message": "Not found"})

    def _get_folder(self, _: Any, uid: str) -> None:
        folder = StandInGrafana.folders.get(uid)
        self._reply(200, folder) if folder else self._reply(404, {"message": "folder not found"})

    def _create_folder(self, body: Any) -> None:
        StandInGrafana.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
        self._reply(200, StandInGrafana.folders[body["uid"]])

    def _update_folder(self, body: Any, uid: str) -> None:
        StandInGrafana.folders[uid]["title"] = body["title"]
        self._reply(200, StandInGrafana.folders[uid])

    def _get_datasource(self, _: Any, uid: str) -> None:
        ds = StandInGrafana.datasources.get(uid)
        self._reply(200, {**ds, "id": 1}) if ds else self._reply(
            404, {"message": "Data source not found"}
        )

    def _create_datasource(self, body: Any) -> None:
        StandInGrafana.datasources[body["uid"]] = body
        self._reply(200, {"datasource": body, "message": "Datasource added"})

    def _update_datasource(self, body: Any, uid: str) -> None:
        StandInGrafana.datasources[uid] = body
        self._reply(200, {"datasource": body, "message": "Datasource updated"})

    def _get_dashboard(self, _: Any, uid: str) -> None:
        stored = StandInGrafana.dashboards.get(uid)
        self._reply(200, stored) if stored else self._reply(404, {"message": "Dashboard not found"})

    def _save_dashboard(self, body: Any) -> None:
        dashboard = body["dashboard"]
        if StandInGrafana.reject_saves or dashboard["uid"] == StandInGrafana.reject_uid:
            return self._reply(400, {"message": "Dashboard title cannot be empty"})
        old = StandInGrafana.dashboards.get(dashboard["uid"])
        version = (old["dashboard"]["version"] + 1) if old else 1
        StandInGrafana.dashboards[dashboard["uid"]] = {
            "dashboard": {**dashboard, "id": 7, "version": version},
            "meta": {"folderUid": body["folderUid"]},
        }
        self._reply(200, {"status": "success", "uid": dashboard["uid"], "version": version})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is part of the test


@pytest.fixture
def grafana() -> Iterator[str]:
    StandInGrafana.reset()
    server = QuietServer(("127.0.0.1", 0), StandInGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pusher(url: str, token: str = TOKEN, **kw: float) -> DashboardPusher:
    return DashboardPusher(url, token, "http://prometheus:9090", backoff=0.01, **kw)  # type: ignore[arg-type]


def test_first_push_creates_everything_and_a_second_push_changes_nothing(grafana: str) -> None:
    first = pusher(grafana).push(GENERATED)
    assert sorted(first.created) == sorted(
        ["folder citybrain", "datasource citybrain-prometheus"]
        + [f"dashboard {uid}" for uid in BUILDERS]
    )
    writes = list(StandInGrafana.writes)
    second = pusher(grafana).push(GENERATED)
    assert not second.changed and len(second.unchanged) == len(first.created)
    assert StandInGrafana.writes == writes  # no request changed anything
    for uid in BUILDERS:
        stored = StandInGrafana.dashboards[uid]
        assert stored["dashboard"]["version"] == 1
        generated = json.loads((GENERATED / "dashboards" / f"{uid}.json").read_text())
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == (
            generated
        )
    assert StandInGrafana.datasources["citybrain-prometheus"]["url"] == "http://prometheus:9090"


def test_the_datasource_is_told_the_prometheus_scrape_interval(grafana: str) -> None:
    """Trial 28: $__rate_interval is four of the datasource's timeInterval; pushed at 5 s
    to a Prometheus that scrapes once a minute, the per-second panels read 20 s windows
    holding one sample: empty. --scrape-interval sets it, and changing it is an update."""
    pusher(grafana).push(GENERATED)
    stored = StandInGrafana.datasources["citybrain-prometheus"]
    assert stored["jsonData"] == {"timeInterval": "5s"}
    minute = DashboardPusher(grafana, TOKEN, "http://prometheus:9090", scrape_interval="1m")
    report = minute.push(GENERATED)
    assert report.updated == ["datasource citybrain-prometheus"]
    assert StandInGrafana.datasources["citybrain-prometheus"]["jsonData"] == {"timeInterval": "1m"}
    assert not minute.push(GENERATED).changed


def test_a_changed_dashboard_is_updated_and_only_it(grafana: str) -> None:
    pusher(grafana).push(GENERATED)
    uid = next(iter(BUILDERS))
    StandInGrafana.dashboards[uid]["dashboard"]["title"] = "edited by hand in the UI"
    report = pusher(grafana).push(GENERATED)
    assert report.updated == [f"dashboard {uid}"] and not report.created
    assert StandInGrafana.dashboards[uid]["dashboard"]["version"] == 2


def test_refused_tokens_fail_clearly_without_echoing_the_token(grafana: str) -> None:
    with pytest.raises(PushError) as info:
        pusher(grafana, token="wrong-token").push(GENERATED)
    message = str(info.value)
    assert message.startswith("folder citybrain: Grafana answered 401: invalid API key")
    assert "wrong-token" not in message
    with pytest.raises(PushError, match="no Grafana token"):
        pusher(grafana, token=" ")


def test_server_errors_are_retried_then_succeed(grafana: str) -> None:
    StandInGrafana.fail_next = [503, 502]
    report = pusher(grafana).push(GENERATED)
    assert "folder citybrain" in report.created


def test_client_errors_are_not_retried(grafana: str) -> None:
    StandInGrafana.reject_saves = True
    with pytest.raises(
        PushError,
        match=r"dashboard citybrain-[\w-]+: Grafana answered 400: "
        "Dashboard title cannot be empty",
    ):
        pusher(grafana).push(GENERATED)
    assert len([w for w in StandInGrafana.writes if w.endswith("/dashboards/db")]) == 1


def test_timeouts_are_retried_then_reported(grafana: str) -> None:
    StandInGrafana.delay = 1.0
    with pytest.raises(
        PushError,
        match="folder citybrain: Grafana kept failing after 3 attempts: GrafanaTimeoutError",
    ):
        pusher(grafana, timeout=0.2, retries=2).push(GENERATED)


def _push_cli(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "dashboards", "push", "--url", url,
         "--token", TOKEN, "--prometheus-url", "http://prometheus:9090"],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "CITYBRAIN_GRAFANA_TOKEN"},
    )  # fmt: skip


def test_a_push_refused_half_way_lists_what_it_pushed_and_exits_1(grafana: str) -> None:
    """t83: the third of the dashboards refused, the push printed only the refusal: what
    Grafana already had (the folder, the datasource, the dashboards before it) was unsaid.
    Now stdout lists them, stderr says where it stopped, and the status is 1 (refused)."""
    uids = sorted(
        json.loads(p.read_text())["uid"] for p in (GENERATED / "dashboards").glob("*.json")
    )
    assert len(uids) >= 3
    StandInGrafana.reject_uid = uids[2]
    pushed = _push_cli(grafana)
    assert pushed.returncode == 1, pushed.stdout + pushed.stderr
    assert pushed.stdout.splitlines()[:2] == [
        "created   folder citybrain",
        f"created   datasource {DATASOURCE_UID}",
    ]
    assert len(pushed.stdout.splitlines()) == 4  # the folder, the datasource, two dashboards
    assert pushed.stderr.count("\n") == 1, pushed.stderr
    assert pushed.stderr.startswith(f"citybrain: dashboard {uids[2]}: Grafana answered 400: ")
    assert (
        "the push stopped there: 4 objects before it were pushed (listed on stdout)"
        in pushed.stderr
    )
    # The rest is pushed by running it again once fixed; what was pushed stays unchanged.
    StandInGrafana.reject_uid = ""
    again = _push_cli(grafana)
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith("unchanged") for line in again.stdout.splitlines()) == 4


def test_a_grafana_that_keeps_failing_is_an_unavailable_service_exit_3(grafana: str) -> None:
    """t83: 5xx answers after every retry were exit 1, "the answer is no", as a refusal;
    a Grafana that does not serve the push is a service that did not answer: 3."""
    StandInGrafana.fail_next = [503] * 4  # the first request and its three retries
    pushed = _push_cli(grafana)
    assert pushed.returncode == 3, pushed.stdout + pushed.stderr
    assert pushed.stderr.startswith(
        "citybrain: folder citybrain: Grafana kept failing after 4 attempts"
    )
    assert pushed.stdout == ""
