"""Secrets the CLI is given are never echoed nor sent elsewhere (trial 29): a password in
a --url, a Grafana token a header cannot carry, a token a redirect would carry to another
host; and CITYBRAIN_GRAFANA_TOKEN is checked when the settings
are read, not when the first annotation fails with the token in its audit record."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from citybrain.cli import EXIT_USAGE, main
from streams.errors import SettingsError
from streams.settings import load_settings


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["runs", "list", "--url", "http://ops:hunter2@127.0.0.1:1", "--token", "abc"],
            "--url is 'http://ops:***@127.0.0.1:1': expected no user or password in the URL; "
            "give the token with --token",
        ),
        (
            ["silences", "list", "--url", "http://ops@127.0.0.1:1", "--token", "abc"],
            "--url is 'http://ops@127.0.0.1:1': expected no user or password in the URL",
        ),
        (
            ["dashboards", "push", "--url", "http://admin:hunter2@h:99999", "--token", "x"],
            "--url is 'http://admin:***@h:99999': the port is not a number from 1 to 65535",
        ),
        (
            ["dashboards", "push", "--url", "http://127.0.0.1:1", "--token", "glsa_hunter\n2"],
            "--token has '\\n' at position 12: a bearer token is ASCII letters, digits",
        ),
    ],
)
def test_a_secret_in_an_option_is_refused_without_echoing_it(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
    assert "hunter" not in err


def test_a_grafana_token_from_the_environment_is_checked_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYBRAIN_GRAFANA_TOKEN", "glsa_hunter2\r\nX-Evil: 1")
    argv = ["dashboards", "push", "--url", "http://127.0.0.1:1"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "CITYBRAIN_GRAFANA_TOKEN has '\\r' at position 13" in err
    assert "hunter" not in err


def test_the_workers_grafana_token_is_checked_when_the_settings_are_read() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(grafana_token="glsa_hunter2\n")
    assert str(info.value) == (
        "CITYBRAIN_GRAFANA_TOKEN: expected a bearer token: ASCII letters, digits and "
        "- . _ ~ + / (then = padding), RFC 6750 (the value is a secret and not shown)"
    )
    assert load_settings(grafana_token="glsa_AbC123_x").grafana_token is not None


class _Redirects(BaseHTTPRequestHandler):
    """Answers every request with a 302 to ``target``; another instance records what
    reaches it."""

    target: ClassVar[str] = ""
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        _Redirects.seen.append(self.headers.get("Authorization"))
        body = b'{"runs": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_redirect_from_the_operator_api_is_not_followed_with_the_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial 29: urllib followed a 302 to another host and sent the operator's token
    there in the Authorization header."""

    class Elsewhere(_Redirects):
        target = ""

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(_Redirects):
        target = f"http://localhost:{other.server_address[1]}"

    first = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for srv in (first, other):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Redirects.seen = []
    try:
        url = f"http://127.0.0.1:{first.server_address[1]}"
        assert main(["runs", "list", "--url", url, "--token", "operator-secret"]) == 1
    finally:
        for srv in (first, other):
            srv.shutdown()
            srv.server_close()
    err = capsys.readouterr().err
    assert err == (
        f"citybrain: the operator API at {url} answered GET /runs with HTTP 302, a redirect "
        f"to 'http://localhost:{other.server_address[1]}/api/v1/runs': not followed (the "
        "token would go with it); give --url the worker's own address\n"
    )
    assert _Redirects.seen == []  # nothing reached the other host


_TOKEN = "kMVu3v9vXq2Lr8ZpT4wYb6NcHd0Jf1Ge"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # t134: a misplaced or mistyped --token, its value echoed by argparse.
        (
            ["--token", _TOKEN, "runs", "list"],
            "invalid choice: 'kMVu…' (hidden: it follows --token)",
        ),
        (
            ["runs", "--token", _TOKEN, "list"],
            "invalid choice: 'kMVu…' (hidden: it follows --token)",
        ),
        (["runs", "list", "--tokn", _TOKEN], "--tokn kMVu… (hidden: it follows --tokn)"),
        (["runs", "list", "--tokn=" + _TOKEN], "--tokn=kMVu… (hidden: it is given to --tokn)"),
        (["alerts", "list", "--pasword", "hunter2"], "--pasword … (hidden: it follows --pasword)"),
        ([_TOKEN, "runs", "list"], "invalid choice: 'kMVu…' (hidden: it looks like a token)"),
    ],
)
def test_a_usage_error_never_echoes_a_secret_typed_on_the_command_line(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
    assert _TOKEN not in err and "hunter2" not in err


def test_a_word_of_the_tokens_file_is_hidden_however_short(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.auth import hash_token

    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: ops\n    sha256: {hash_token('ops-secret-1')}\n")
    monkeypatch.setenv("CITYBRAIN_API_TOKENS_FILE", str(tokens))
    assert main(["runs", "ops-secret-1", "list"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'…' (hidden: it is a token of the tokens file)" in err
    assert "ops-secret-1" not in err


def test_a_missing_token_value_names_the_option_not_a_hidden_word(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["runs", "list", "--token", "--json"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the next word, '--json', is an option" in err and "hidden" not in err


def test_an_id_or_a_path_is_no_token_and_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    """The masking is for secrets: a run id or a file's path in an error stays as typed."""
    from citybrain.cli.hidden import secret_words

    words = [
        "grp-0123456789abcdef.1",
        "datasets/nyc311_2024-05-26.csv.gz",
        "/tmp/x/long_name_2024.csv",
    ]
    assert secret_words(["runs", "show", *words]) == {}
    assert main(["runs", "shwo", "grp-0123456789abcdef.1"]) == EXIT_USAGE
    assert "'shwo' (did you mean 'show'?)" in capsys.readouterr().err


def test_a_token_typed_after_hash_token_is_hidden_and_stdin_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t147: `hash-token s3cr3t-operator-2026` echoed the token (memorable, so not
    token-looking) and said only "unrecognized arguments"."""
    assert main(["hash-token", "s3cr3t-operator-2026"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "s3cr3t" not in err.replace("s3cr…", "")
    assert "operator-2026" not in err
    assert "unrecognized arguments: s3cr… (hidden: hash-token's input is a token)" in err
    assert "(hash-token reads the token from standard input, not its arguments: `" in err
    assert "hash-token < token.txt`)" in err and err.count("\n") == 1
