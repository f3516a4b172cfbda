"""A host no client can connect to, in a URL option, a URL setting, a playbook's
webhook or a host setting, is bad input named by where it was given (t158's newcomer
walk: `--url http://a..b`, `--url http://[::1`, `CITYBRAIN_KAFKA_HOST=a..b` were
"unexpected UnicodeError/ValueError … This is a bug", exit 70)."""

from __future__ import annotations

import socket

import pytest

from citybrain.cli import main
from playbooks.schema import http_url_problem

LONG_LABEL = "y" * 64


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://a..b", "the host name 'a..b' has an empty part (two dots together"),
        ("http://.example.org:3000", "the host name '.example.org' has an empty part"),
        (f"http://{LONG_LABEL}.org", "the host name has a part of 64 characters"),
        ("http://" + "a." * 130 + "org", "the host name is 263 characters: a DNS name has"),
        ("http://[::1", "Invalid IPv6 URL; an IPv6 address goes in brackets"),
        ("http://[zz]:3000", "'zz' does not appear to be an IPv4 or IPv6 address"),
        ("http://a%20b:3000", "the host name 'a%20b' has '%': expected a DNS name or an IP"),
    ],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list", "--token", "x", "--url"],
        ["silences", "list", "--token", "x", "--url"],
        ["dashboards", "push", "--token", "x", "--url"],
        ["dashboards", "push", "--token", "x", "--url", "http://127.0.0.1:1", "--prometheus-url"],
    ],
)
def test_a_url_whose_host_no_client_takes_is_bad_input(
    argv: list[str], url: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, url]) == 2
    err = capsys.readouterr().err
    # (A URL of over 200 characters is shown cut: hidden.cut_long.)
    shown = repr(url) if len(url) <= 200 else f"'{url[:40]}…' ({len(url):,} characters)"
    assert err.startswith(f"citybrain: {argv[-1]} is {shown}: ") and says in err, err
    assert err.count("\n") == 1 and "bug" not in err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "kafka_1", "example.org."])
def test_a_host_clients_take_is_no_host_problem(host: str) -> None:
    from playbooks.schema import host_problem

    assert host_problem(host) == ""


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://a..b/hook", "the host name 'a..b' has an empty part"),
        (f"https://{LONG_LABEL}.example.org/hook", "the host name has a part of 64"),
    ],
)
def test_a_webhook_or_url_setting_whose_host_no_client_takes_is_refused(
    url: str, says: str
) -> None:
    """A playbook's webhook to `http://a..b/hook` passed `playbooks check`, and every
    call of it failed as "error: UnicodeError"; CITYBRAIN_GRAFANA_URL and
    CITYBRAIN_REPLIES_WEBHOOK_URL are checked by the same function."""
    assert http_url_problem(url).startswith(says)


@pytest.mark.parametrize("setting", ["CITYBRAIN_GRAFANA_URL", "CITYBRAIN_REPLIES_WEBHOOK_URL"])
def test_a_url_setting_whose_host_no_client_takes_is_named(
    setting: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(setting, "http://grafana..example.org:3000")
    assert main(["playbooks", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"citybrain: {setting} is 'http://grafana..example.org:3000': the host name "
        "'grafana..example.org' has an empty part"
    ), err


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("a..b", "the host name 'a..b' has an empty part"),
        (LONG_LABEL, "the host name has a part of 64 characters"),
        ("[::1", "the host name '[::1' has '[': expected a DNS name or an IP address (an IPv6 "),
    ],
)
@pytest.mark.parametrize(
    ("setting", "argv"),
    [
        ("CITYBRAIN_KAFKA_HOST", ["deadletters"]),
        ("CITYBRAIN_MQTT_HOST", ["ingest", "mqtt"]),
        ("CITYBRAIN_WORKER_BIND", ["stack", "status"]),
    ],
)
def test_a_host_setting_no_client_takes_is_named(
    setting: str,
    argv: list[str],
    value: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`CITYBRAIN_KAFKA_HOST=a..b citybrain deadletters` was "unexpected UnicodeError:
    encoding with 'idna' codec failed … a bug" (exit 70), `ingest mqtt` likewise."""
    monkeypatch.setenv(setting, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{setting} is {value!r}: {says}" in err, err
    assert "bug" not in err


def test_grafana_at_an_ipv6_address_is_reached_there(capsys: pytest.CaptureFixture[str]) -> None:
    """grafana-client's from_url dropped the brackets of http://[::1]:PORT and its HTTP
    client could not parse http://::1:PORT/api/…: "unexpected InvalidURL … a bug", exit
    70. Nobody listens on the port: Grafana is unreachable, exit 3."""
    from dashboards.push import DashboardPusher

    port = _closed_port()
    pusher = DashboardPusher(f"http://[::1]:{port}", "x", "http://127.0.0.1:19090")
    assert pusher.api.client.url == f"http://[::1]:{port}/api"
    argv = ["dashboards", "push", "--token", "x", "--url", f"http://[::1]:{port}"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: cannot reach Grafana at http://[::1]:{port} "), err
