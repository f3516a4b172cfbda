"""`citybrain alerts list` and the words a newcomer types for a command by its meaning
(helper brief t116, a newcomer's walk: `citybrain alerts` listed every command with no
word of where the alerts are, the README said they had no command; `citybrain stack
start` was asked "did you mean 'status'?"; `stack stop` and `citybrain version` got
every choice)."""

from __future__ import annotations

from typing import Any

import pytest

from citybrain.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from citybrain.cli.alerts import alerts_table
from tests.unit.citybrain.json_api import json_api

FIRING = [
    {
        "alert_id": "al-minor",
        "kind": "pm25",
        "severity": "minor",
        "sensor_id": "bj-dongsi-pm25",
        "grid_cell": "bj-site-dongsi",
        "source": "sensor",
        "corroboration": "isolated",
    },
    {
        "alert_id": "al-burst",
        "kind": "incident_burst",
        "severity": "major",
        "grid_cell": "nyc-cb-03-bronx-zip-10456",
        "source": "citizen",
        "category": "Noise - Street/Sidewalk",
    },
    {
        "alert_id": "al-flood",
        "kind": "water_level",
        "severity": "critical",
        "sensor_id": "usgs-01589330-water_level",
        "grid_cell": "md-gauge-01589330",
        "source": "sensor",
        "corroboration": "corroborated",
    },
]


def _serve(firing: list[dict[str, Any]]) -> Any:
    def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/v1/alerts"):
            return 200, {"firing": firing}
        return 404, {"error": f"no {path}"}

    return json_api(answer)


def test_alerts_list_shows_the_firing_alerts_worst_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _serve(FIRING) as url:
        assert main(["alerts", "list", "--url", url, "--token", "t"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 alerts firing now (an alert that ended is listed no more")
    assert "runs list" in out[0]  # where an ended alert is still found
    assert out[1].split() == [
        "ALERT",
        "SEVERITY",
        "KIND",
        "WHAT",
        "CELL",
        "SOURCE",
        "CORROBORATION",
    ]
    assert [line.split()[:2] for line in out[2:]] == [
        ["al-flood", "critical"],
        ["al-burst", "major"],
        ["al-minor", "minor"],
    ]
    burst = out[3]
    # A burst has no sensor: its report category stands in WHAT, no corroboration.
    assert "Noise - Street/Sidewalk" in burst and burst.rstrip().endswith("-")
    assert "usgs-01589330-water_level" in out[2] and "corroborated" in out[2]


def test_no_firing_alert_is_said_with_where_the_ended_ones_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After the demo every alert has ended: "0 alerts" beside the summary's 43 must not
    read as alerts lost."""
    with _serve([]) as url:
        assert main(["alerts", "list", "--url", url, "--token", "t"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("0 alerts firing now")
    assert "its run keeps it" in out[0]


def test_alerts_list_json_is_the_api_document(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    with _serve(FIRING[:1]) as url:
        assert main(["alerts", "list", "--json", "--url", url, "--token", "t"]) == EXIT_OK
    # Every page read (t186): the document's next is null.
    assert json.loads(capsys.readouterr().out) == {"firing": FIRING[:1], "next": None}


def test_alerts_list_follows_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    """t186: GET /alerts is paged; `alerts list` reads every page over HTTP, following
    each answer's next link."""
    asked: list[str] = []

    def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
        asked.append(path)
        if path == "/api/v1/alerts":
            return 200, {"firing": FIRING[:2], "next": "/api/v1/alerts?cursor=c1.WyJhbC1idXJzdCJd"}
        if path == "/api/v1/alerts?cursor=c1.WyJhbC1idXJzdCJd":
            return 200, {"firing": FIRING[2:], "next": None}
        return 404, {"error": f"no {path}"}

    with json_api(answer) as url:
        assert main(["alerts", "list", "--url", url, "--token", "t"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("3 alerts firing now"), out
    assert all(a["alert_id"] in out for a in FIRING)
    assert len(asked) == 2


def test_alerts_list_refused_says_the_api_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
        return 401, {"error": "unknown token"}

    with json_api(answer) as url:
        assert main(["alerts", "list", "--url", url, "--token", "t"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("citybrain: ") and "GET /alerts" in err and len(err.splitlines()) == 1


def test_a_label_with_control_characters_is_shown_escaped() -> None:
    table = alerts_table([{**FIRING[0], "sensor_id": "evil\x1b[2J"}])
    assert "\x1b" not in table and "\\x1b" in table


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["stack", "start"], "(did you mean 'up'?)"),
        (["stack", "stop"], "(did you mean 'down'?)"),
        (["stack", "Stop"], "(did you mean 'down'?)"),
        (["stack", "shutdown"], "(did you mean 'down'?)"),
        (["start"], "(did you mean 'stack up'?)"),
        (["stop"], "(did you mean 'stack down'?)"),
        (["version"], "(did you mean --version?)"),
        (["alert"], "(did you mean 'alerts'?)"),
        # t143: these listed every choice, or pointed to 'runs resend', 'dashboards push'.
        (["silences", "rm", "abc"], "(did you mean 'expire'?)"),
        (["silences", "delete", "abc"], "(did you mean 'expire'?)"),
        (["silences", "remove", "abc"], "(did you mean 'expire'?)"),
        (["runs", "close", "grp-1.1"], "(did you mean 'resolve'?)"),
        (["rm", "abc"], "(did you mean 'silences expire'?)"),
        (["close", "grp-1.1"], "(did you mean 'runs resolve'?)"),
        (["send", "x.csv"], "(did you mean 'replay'?)"),
        (["feed", "x.csv"], "(did you mean 'replay'?)"),
        (["publish", "x.csv"], "(did you mean 'replay'?)"),
    ],
)
def test_a_word_for_a_choice_by_its_meaning_is_pointed_to_it(
    argv: list[str], meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    typed = argv[1] if argv[0] in ("stack", "silences", "runs") else argv[0]
    assert f"invalid choice: {typed!r} {meant}" in err, err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("word", ["logs", "log", "Logs"])
def test_logs_typed_as_a_command_names_the_log_files_under_this_shells_run_directory(
    word: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # t116's walk: `citybrain logs` listed every command; the worker's log path was said
    # only in the demo's closing lines.
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    assert main([word]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    for log in ("demo/worker.log", "kafka/logs/server.log", "prometheus/prometheus.log"):
        assert str(tmp_path / log) in err, err
    assert f"`tail -f {tmp_path / 'demo/worker.log'}`" in err
    assert "choose from" not in err


@pytest.mark.parametrize(
    ("argv", "path", "key"),
    [
        (["alerts", "list"], "/api/v1/alerts", "firing"),
        (["alerts", "list", "--json"], "/api/v1/alerts", "firing"),
        (["runs", "list"], "/api/v1/runs", "runs"),
        (["runs", "list", "--json"], "/api/v1/runs", "runs"),
        (["silences", "list"], "/api/v1/silences", "silences"),
    ],
)
@pytest.mark.parametrize(
    ("answer", "had"),
    [
        # Prometheus's own /api/v1/alerts, Alertmanager 0.25's /api/v1/silences.
        ({"status": "success", "data": {"alerts": []}}, "an object with keys 'status', 'data'"),
        ({"status": "success", "data": []}, "an object with keys 'status', 'data'"),
        ([], "JSON that is no object"),
    ],
)
def test_a_listing_answered_by_another_server_is_no_empty_list(
    argv: list[str],
    path: str,
    key: str,
    answer: Any,
    had: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t116's walk: `alerts list --url` at the stack's Prometheus, which has an
    /api/v1/alerts of its own, said "0 alerts firing now", exit 0; `runs list` and
    `silences list` at a server answering so said "0 runs" / "0 silences"."""

    def serve(method: str, got: str, body: Any) -> tuple[int, Any]:
        return 200, answer

    with json_api(serve) as url:
        assert main([*argv, "--url", url, "--token", "t"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"citybrain: the server at {url} answered GET {path} with {had}, not the operator "
        f'API\'s "{key}" list: no citybrain worker there (Prometheus and Alertmanager have '
        "an /api/v1 of their own); --url takes the worker's base URL (scheme, host and "
        "port, e.g. http://127.0.0.1:16066)\n"
    )
