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
