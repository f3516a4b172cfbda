"""The pusher's reading of answers that are not Grafana's (the real Grafana protocol is
tested against a stand-in server in tests/integration/test_dashboards_push.py)."""

from __future__ import annotations

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
