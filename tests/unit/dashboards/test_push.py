"""The pusher's reading of answers that are not Grafana's (the real Grafana protocol is
tested against a stand-in server in tests/integration/test_dashboards_push.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from grafana_client.client import GrafanaClientError

from dashboards.push import DashboardPusher, PushError


def _pusher(answer: object, status: int | None) -> DashboardPusher:
    pusher = DashboardPusher("http://127.0.0.1:9", "token", "http://127.0.0.1:19090")

    def get_folder(uid: str) -> object:
        if status is not None:
            raise GrafanaClientError(status, answer, f"Client Error {status}: {answer}")  # type: ignore[no-untyped-call]
        return answer

    pusher.api.folder.get_folder = get_folder
    return pusher


@pytest.mark.parametrize(
    ("answer", "status", "said"),
    [
        # Prometheus at --url: trial 5 item 16 was "Grafana answered 404 ... 404 page not found".
        ("404 page not found\n", 404, "the server answered 404 '404 page not found'"),
        ("", 404, "the server answered 404 with an empty body"),
        ("<html><body>hello</body></html>", None, "the server answered '<html><body>hello"),
        # citybrain's own worker at --url (t116's walk: "Grafana answered 404: …").
        (
            {"error": "no such path '/api/folders': the operator API's paths are /api/v1/runs"},
            404,
            "the server answered 404 \"no such path '/api/folders': the operator API's",
        ),
    ],
)
def test_a_server_that_is_not_a_grafana_is_said_to_be_so(
    tmp_path: Path, answer: object, status: int | None, said: str
) -> None:
    with pytest.raises(PushError) as info:
        _pusher(answer, status).push(tmp_path)
    message = str(info.value)
    assert message.startswith(f"folder citybrain: {said}")
    assert "this is not a Grafana" in message and "Grafana answered" not in message


def _push(generated: Path) -> int:
    from citybrain.cli import main

    # Port 9 answers nothing: the generated files are checked before Grafana is asked.
    url = ("--url", "http://127.0.0.1:9", "--token", "t")
    return main(["dashboards", "push", *url, "--generated", str(generated)])


def test_a_folder_with_no_dashboards_is_refused_before_grafana_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t147: `--generated` of a folder without dashboards/*.json pushed the folder and the
    datasource, no dashboard, and exited 0 (here, with no Grafana, "cannot reach")."""
    from citybrain.cli import EXIT_USAGE

    assert _push(tmp_path) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"citybrain: --generated {str(tmp_path)!r} has no dashboards/*.json to push: give "
        "the folder `citybrain dashboards generate` writes, or leave --generated out for "
        "the checkout's\n"
    )
    # The dashboards' own folder, a newcomer's likely slip: its parent is named.
    own = tmp_path / "generated" / "dashboards"
    own.mkdir(parents=True)
    (own / "a.json").write_text('{"uid": "a", "title": "A"}')
    assert _push(own) == EXIT_USAGE
    assert capsys.readouterr().err.endswith(
        f"it holds the dashboards' files themselves: give its parent, {own.parent}\n"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{bad", "not a dashboard's JSON (Expecting property name"),
        ("[1]", "not a dashboard (a JSON object with a text uid and title)"),
        ('{"uid": 5, "title": "A"}', "not a dashboard (a JSON object with a text uid)"),
    ],
)
def test_a_generated_file_that_is_no_dashboard_is_named_before_grafana_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    """A broken file was read half-way through a push: a JSONDecodeError (exit 70) or a
    KeyError after the folder and datasource were pushed."""
    from citybrain.cli import EXIT_USAGE

    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "a.json").write_text(text)
    assert _push(tmp_path) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {tmp_path / 'dashboards' / 'a.json'}: {said}"), err
    assert err.count("\n") == 1


class _Answering(BaseHTTPRequestHandler):
    """Answers every request as ``self.server.answer`` says: (status, headers, body)."""

    def _answer(self) -> None:
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server(status: int, headers: dict[str, str], body: bytes) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.answer = (status, headers, body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "headers", "body", "said"),
    [
        # A login page behind a proxy that redirects every path to itself: "unexpected
        # TooManyRedirects … a bug", exit 70.
        (302, {"Location": "/login"}, b"", "the server kept redirecting (Exceeded 30"),
        # An empty 200 not marked as text: "unexpected JSONDecodeError … a bug", exit 70.
        (200, {}, b"", "the server answered with a body that is not JSON (response"),
        (200, {"Content-Type": "application/json"}, b"{oops", "the server answered with a"),
    ],
)
def test_a_server_whose_answer_cannot_be_read_is_said_not_to_be_a_grafana(
    capsys: pytest.CaptureFixture[str],
    status: int,
    headers: dict[str, str],
    body: bytes,
    said: str,
) -> None:
    """t168 (fails on the old code): answers the HTTP client could not read as JSON
    escaped the pusher as "unexpected …" errors, exit 70."""
    from citybrain.cli import EXIT_FAILED, main

    with _server(status, headers, body) as url:
        code = main(["dashboards", "push", "--url", url, "--token", "t"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED, err
    assert err.startswith(f"citybrain: folder citybrain: {said}"), err
    assert "this is not a Grafana" in err and err.count("\n") == 1


def test_a_refused_token_says_where_it_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    """t168 (fails on the old code): a mistyped token was "Grafana answered 401: invalid
    API key" alone."""
    from citybrain.cli import EXIT_FAILED, main

    answer = (401, {"Content-Type": "application/json"}, b'{"message": "invalid API key"}')
    with _server(*answer) as url:
        assert main(["dashboards", "push", "--url", url, "--token", "t"]) == EXIT_FAILED
    assert capsys.readouterr().err == (
        "citybrain: folder citybrain: Grafana answered 401: invalid API key; check the "
        "token (--token): a Grafana service-account token (glsa_…) of that Grafana\n"
    )


def test_a_url_from_citybrain_grafana_url_is_named_when_it_is_no_grafana(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t173 (fails on the old code): with the URL taken from CITYBRAIN_GRAFANA_URL, a
    server that is no Grafana was "check --url", an option the operator had not typed;
    a token from CITYBRAIN_GRAFANA_TOKEN refused was "check the token (--token or …)"."""
    from citybrain.cli import EXIT_FAILED, main

    monkeypatch.setenv("CITYBRAIN_GRAFANA_TOKEN", "t")
    with _server(302, {"Location": "/login"}, b"") as url:
        monkeypatch.setenv("CITYBRAIN_GRAFANA_URL", url)
        assert main(["dashboards", "push"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "check CITYBRAIN_GRAFANA_URL (Grafana's own address" in err, err
    assert "--url" not in err, err
    answer = (401, {"Content-Type": "application/json"}, b'{"message": "invalid API key"}')
    with _server(*answer) as url:
        monkeypatch.setenv("CITYBRAIN_GRAFANA_URL", url)
        assert main(["dashboards", "push"]) == EXIT_FAILED
    assert "check the token (CITYBRAIN_GRAFANA_TOKEN): a Grafana" in capsys.readouterr().err


def test_the_url_comes_from_citybrain_grafana_url_as_the_token_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t168 (fails on the old code): with CITYBRAIN_GRAFANA_URL and _TOKEN set (the
    worker's annotation settings), `dashboards push` was a usage error asking for --url;
    a mistyped --url was shown the worker's port as a Grafana's example."""
    from citybrain.cli import EXIT_SERVICE, EXIT_USAGE, main

    monkeypatch.delenv("CITYBRAIN_GRAFANA_URL", raising=False)
    monkeypatch.setenv("CITYBRAIN_GRAFANA_TOKEN", "t")
    assert main(["dashboards", "push"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "citybrain: no Grafana URL: give --url (Grafana's own address, e.g. "
        "http://127.0.0.1:3000) or set CITYBRAIN_GRAFANA_URL\n"
    )
    monkeypatch.setenv("CITYBRAIN_GRAFANA_URL", "localhost:3000")
    assert main(["dashboards", "push"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "citybrain: CITYBRAIN_GRAFANA_URL is 'localhost:3000': the http:// scheme is "
        "missing, e.g. http://localhost:3000\n"
    )
    monkeypatch.setenv("CITYBRAIN_GRAFANA_URL", "http://127.0.0.1:9")
    assert main(["dashboards", "push"]) == EXIT_SERVICE
    assert "check CITYBRAIN_GRAFANA_URL and that Grafana runs" in capsys.readouterr().err
    assert main(["dashboards", "push", "--url", "http://"]) == EXIT_USAGE
    assert capsys.readouterr().err.endswith("e.g. http://127.0.0.1:3000\n")


def test_a_redirect_to_a_server_that_does_not_answer_names_that_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t168 (fails on the old code): --url answering with a redirect to a port where
    nothing listens was "cannot reach Grafana at <--url> (Connection refused)", blaming
    the server that had answered."""
    from citybrain.cli import EXIT_SERVICE, main
    from tests.services import free_ports

    (nobody,) = free_ports(1)
    with _server(302, {"Location": f"http://127.0.0.1:{nobody}/login"}, b"") as url:
        code = main(["dashboards", "push", "--url", url, "--token", "t"])
    err = capsys.readouterr().err
    assert code == EXIT_SERVICE, err
    assert err.startswith(
        f"citybrain: folder citybrain: {url} redirected to http://127.0.0.1:{nobody}, which "
        "does not answer ("
    ), err
    assert err.count("\n") == 1
