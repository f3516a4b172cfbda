"""``citybrain dashboards push``: upsert the folder, the Prometheus datasource and every
generated dashboard into a Grafana through grafana-client. Idempotent: objects that
already match are left alone, so a second push changes nothing (no new dashboard
versions). 5xx answers and timeouts are retried with backoff; 4xx answers fail at once
with the object and Grafana's message; the token is never printed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
)
from niquests.exceptions import ConnectionError as HTTPConnectionError
from niquests.exceptions import JSONDecodeError, RequestException, TooManyRedirects

from dashboards.panels import DATASOURCE_UID
from dashboards.provisioning import FOLDER, datasources
from dashboards.rules import SCRAPE_INTERVAL

FOLDER_UID = "citybrain"
# Grafana's own default port, for the examples in messages.
GRAFANA_PORT = 3000
T = TypeVar("T")


class PushError(RuntimeError):
    """Grafana refused or kept failing; the message names the object and the reason.
    ``unavailable``: Grafana kept answering 5xx or timing out (it did not serve the
    request), rather than refusing it with a 4xx."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class GeneratedError(ValueError):
    """The generated files to push are missing or unreadable; the message names the
    folder or file and what is wrong with it."""


def generated_dashboards(generated: Path) -> list[dict[str, Any]]:
    """Every ``generated/dashboards/*.json`` (in name order) as the dashboard objects to
    push, read before anything is pushed. Raises ``GeneratedError`` for a folder with
    none (t147: ``--generated dashboards`` pushed the folder and datasource, no dashboard,
    and exited 0; a folder of the JSON files themselves is pointed to its parent), and
    for a file that is not JSON or not a dashboard (an object with a text ``uid`` and
    ``title``), naming it (it was a traceback, or a KeyError, half-way through a push)."""
    paths = sorted((generated / "dashboards").glob("*.json"))
    if not paths:
        hint = (
            "give the folder `citybrain dashboards generate` writes, or leave --generated "
            "out for the checkout's"
        )
        if generated.name == "dashboards" and any(generated.glob("*.json")):
            hint = (
                "it holds the dashboards' files themselves: give its parent, "
                f"{generated.resolve().parent}"
            )
        raise GeneratedError(
            f"--generated {str(generated)!r} has no dashboards/*.json to push: {hint}"
        )
    dashboards = []
    for path in paths:
        try:
            dashboard = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise GeneratedError(
                f"{path}: not a dashboard's JSON ({exc}); regenerate it with "
                "`citybrain dashboards generate`"
            ) from None
        fields = dashboard if isinstance(dashboard, dict) else {}
        missing = [k for k in ("uid", "title") if not isinstance(fields.get(k), str)]
        if missing:
            raise GeneratedError(
                f"{path}: not a dashboard (a JSON object with a text {' and '.join(missing)}"
                "); regenerate it with `citybrain dashboards generate`"
            )
        dashboards.append(dashboard)
    return dashboards


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


class DashboardPusher:
    def __init__(
        self,
        url: str,
        token: str,
        prometheus_url: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        scrape_interval: str = SCRAPE_INTERVAL,
        url_from: str = "--url",
        token_from: str = "--token or CITYBRAIN_GRAFANA_TOKEN",
    ) -> None:
        """``url_from`` and ``token_from`` name where the caller took ``url`` and
        ``token`` (an option or a setting), so messages that ask to check one name it
        (t173: a URL from CITYBRAIN_GRAFANA_URL that was no Grafana was "check --url",
        an option the operator had not typed)."""
        if not token.strip():
            raise PushError("no Grafana token: give --token or set CITYBRAIN_GRAFANA_TOKEN")
        self.api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
        self.url = url.rstrip("/")
        host = urlsplit(url).hostname or ""
        if ":" in host:
            # grafana-client 5.1's from_url builds its API URL from the host without
            # its brackets, so an IPv6 URL (http://[::1]:3000) became http://::1:3000/…,
            # which its HTTP client cannot parse: "unexpected InvalidURL … a bug", exit
            # 70 (t158). Its client keeps the built URL in `url`.
            client = self.api.client
            client.url_host = f"[{host}]"
            client.url = client.url.replace(f"://{host}", f"://[{host}]", 1)
        self.url_from = url_from
        self.token_from = token_from
        self.prometheus_url = prometheus_url
        # The datasource's timeInterval: $__rate_interval is four of it, so one shorter
        # than the Prometheus's scrape interval leaves the per-second panels empty.
        self.scrape_interval = scrape_interval
        self.retries = retries
        self.backoff = backoff

    def push(
        self,
        generated: Path,
        report: PushReport | None = None,
        dashboards: list[dict[str, Any]] | None = None,
    ) -> PushReport:
        """Upsert the folder, the datasource and every ``generated/dashboards/*.json``
        (in name order; ``dashboards``, when given, as ``generated_dashboards`` read them
        beforehand), recording each in ``report`` (a new one when None) as it is done: a
        caller that passes its own still has what was pushed when one object fails
        (``PushError``) or Grafana goes away half-way."""
        report = PushReport() if report is None else report
        self._folder(report)
        self._datasource(report)
        if dashboards is None:
            dashboards = generated_dashboards(generated)
        for dashboard in dashboards:
            self._dashboard(dashboard, report)
        return report

    # -- objects ---------------------------------------------------------------------
    def _folder(self, report: PushReport) -> None:
        what = f"folder {FOLDER_UID}"
        existing = self._get(what, lambda: self.api.folder.get_folder(FOLDER_UID))
        if existing is None:
            self._call(what, lambda: self.api.folder.create_folder(FOLDER, uid=FOLDER_UID))
            report.created.append(what)
        elif existing.get("title") != FOLDER:
            self._call(
                what,
                lambda: self.api.folder.update_folder(FOLDER_UID, title=FOLDER, overwrite=True),
            )
            report.updated.append(what)
        else:
            report.unchanged.append(what)

    def _datasource(self, report: PushReport) -> None:
        wanted = {
            **datasources()["datasources"][0],
            "url": self.prometheus_url,
            "jsonData": {"timeInterval": self.scrape_interval},
        }
        wanted.pop("editable", None)
        what = f"datasource {DATASOURCE_UID}"
        existing = self._get(
            what, lambda: self.api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        )
        if existing is None:
            self._call(what, lambda: self.api.datasource.create_datasource(wanted))
            report.created.append(what)
        elif any(existing.get(k) != v for k, v in wanted.items()):
            self._call(
                what, lambda: self.api.datasource.update_datasource_by_uid(DATASOURCE_UID, wanted)
            )
            report.updated.append(what)
        else:
            report.unchanged.append(what)

    def _dashboard(self, dashboard: dict[str, Any], report: PushReport) -> None:
        uid = dashboard["uid"]
        what = f"dashboard {uid}"
        existing = self._get(what, lambda: self.api.dashboard.get_dashboard(uid))
        if existing is not None:
            current = {
                k: v for k, v in existing.get("dashboard", {}).items() if k not in ("id", "version")
            }
            same_folder = existing.get("meta", {}).get("folderUid") == FOLDER_UID
            if current == dashboard and same_folder:
                report.unchanged.append(what)
                return
        self._call(
            what,
            lambda: self.api.dashboard.update_dashboard(
                {
                    "dashboard": dashboard,
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "citybrain dashboards push",
                }
            ),
        )
        (report.updated if existing is not None else report.created).append(what)

    # -- HTTP policy -----------------------------------------------------------------
    def _get(self, what: str, fetch: Callable[[], Any]) -> Any:
        """The object, None when Grafana says it does not exist. A server whose 404 or
        200 is no JSON object, or whose 404 has no "message" (Grafana's word for why), is
        not a Grafana (a Prometheus answers "404 page not found", citybrain's worker
        ``{"error": …}``): PushError saying so, not "Grafana answered 404"."""
        try:
            found = self._call(what, fetch)
        except PushError as exc:
            cause = exc.__cause__
            if getattr(cause, "status_code", None) == 404:
                answer = getattr(cause, "response", None)
                # Grafana says why in "message"; t116: citybrain's own worker at --url
                # (its 404 a JSON object with "error") was reported as "Grafana answered".
                if not isinstance(answer, dict) or "message" not in answer:
                    shown = answer.get("error", answer) if isinstance(answer, dict) else answer
                    raise PushError(
                        f"{what}: the server answered 404 {_brief(shown)}: {self._not_grafana()}"
                    ) from cause
                return None
            raise
        if not isinstance(found, dict):
            raise PushError(f"{what}: the server answered {_brief(found)}: {self._not_grafana()}")
        return found

    def _call(self, what: str, call: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except GrafanaClientError as exc:  # 4xx: retrying will not help
                raise PushError(
                    f"{what}: Grafana answered {exc.status_code}: {_message(exc)}"
                    f"{self._token_hint(exc.status_code)}"
                ) from exc
            except (GrafanaServerError, GrafanaTimeoutError) as exc:
                if attempt == self.retries:
                    raise PushError(
                        f"{what}: Grafana kept failing after {attempt + 1} "
                        f"attempts: {type(exc).__name__}: {_message(exc)}",
                        unavailable=True,
                    ) from exc
                time.sleep(self.backoff * 2**attempt)
            except HTTPConnectionError as exc:
                target = str(getattr(getattr(exc, "request", None), "url", "") or "")
                if target and _origin(target) != _origin(self.url):
                    # t168: --url answered with a redirect to a server that does not
                    # answer; "cannot reach Grafana at <--url>" blamed the one that did.
                    raise PushError(
                        f"{what}: {self.url} redirected to {_origin(target)}, which does not "
                        f"answer ({_reason(exc)}): check {self.url_from} (Grafana's own "
                        "address, not a proxy's or login page's)",
                        unavailable=True,
                    ) from exc
                raise  # no answer at all: the caller says it cannot reach --url
            except TooManyRedirects as exc:
                # t168: a server that redirects every path (a login page behind a proxy,
                # a redirect loop) was "unexpected TooManyRedirects … a bug", exit 70.
                raise PushError(
                    f"{what}: the server kept redirecting ({_message(exc)}): {self._not_grafana()}"
                ) from exc
            except JSONDecodeError as exc:
                # A 2xx answer whose body is empty or not JSON, and not marked as text
                # (t168: an empty 200 was "unexpected JSONDecodeError … a bug", exit 70);
                # grafana-client decodes only what is not text/*.
                raise PushError(
                    f"{what}: the server answered with a body that is not JSON "
                    f"({_message(exc)}): {self._not_grafana()}"
                ) from exc
            except (GrafanaException, RequestException) as exc:
                # Any other answer the HTTP client could not read (a body cut short, a
                # bad header, an encoding it cannot decode): the server did not serve it.
                raise PushError(
                    f"{what}: Grafana's answer could not be read: {type(exc).__name__}: "
                    f"{_message(exc)}",
                    unavailable=True,
                ) from exc
        raise AssertionError("unreachable")

    def _not_grafana(self) -> str:
        """Why an answer shows the server is no Grafana, and which setting to check."""
        return NOT_GRAFANA.format(url_from=self.url_from)

    def _token_hint(self, status: int) -> str:
        """What a refusal of the token means, naming where the token came from; "" for
        statuses other than 401 and 403."""
        return _TOKEN_HINTS.get(status, "").format(token_from=self.token_from)


# What a refusal of the token means, said after Grafana's own words (t168: a mistyped
# token was "Grafana answered 401: invalid API key" alone, naming neither where the
# token came from nor what kind Grafana takes).
_TOKEN_HINTS = {
    401: (
        "; check the token ({token_from}): a Grafana service-account token (glsa_…) of that Grafana"
    ),
    403: (
        "; the token's service account may not change it: give it the Editor role (Admin "
        "to create the datasource)"
    ),
}

NOT_GRAFANA = (
    "this is not a Grafana, whose HTTP API answers in JSON objects (an error's reason in "
    '"message"): check {url_from} (Grafana\'s own address, e.g. '
    f"http://127.0.0.1:{GRAFANA_PORT})"
)


def _brief(answer: object) -> str:
    """A non-JSON answer in a message: its first line, quoted and cut."""
    text = str(answer).strip().splitlines()[0] if str(answer).strip() else ""
    return repr(text[:80]) if text else "with an empty body"


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port written out), to tell servers apart."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _reason(exc: BaseException) -> str:
    """The innermost cause's words: "Connection refused" rather than the client's
    wrapping of it."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text) or type(exc).__name__


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(getattr(exc, "message", exc))
