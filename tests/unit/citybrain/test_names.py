"""t92: a command's host-name lookups (kafka-python's, urllib's, Grafana's) were bounded
only by /etc/resolv.conf, and kafka-python asked again at every reconnection: with a DNS
server that never answers a command waited long or for ever, then said only that the
service did not answer. Each lookup is waited for at most ``RESOLVE_SECONDS`` now, and
the command's one line says which name was looked up, of which name servers (exit 3)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from citybrain import names
from citybrain.cli import EXIT_SERVICE, main
from tests.stalls import NeverAnswers

HUNG = "svc.hung.invalid"


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Lookups of ``HUNG`` never answer (until the test ends); others are the loopback
    address. The bound is 0.2 s."""
    hangs = NeverAnswers()

    def resolve(host: Any, port: Any, *args: Any) -> list[Any]:
        if host == HUNG:
            return hangs()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port or 0)))]

    monkeypatch.setattr(names, "_ORIGINAL", resolve)
    monkeypatch.setattr(names, "RESOLVE_SECONDS", 0.2)
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)  # restored after
    names.forget()
    try:
        yield hangs
    finally:
        hangs.release()
        names.forget()


def _lookups() -> int:
    return sum(t.name.startswith("lookup ") for t in threading.enumerate())


def test_a_hung_lookup_is_said_within_the_bound_and_holds_one_thread(hung: Any) -> None:
    names.install()
    for _ in range(4):  # kafka-python asks again at each reconnection
        with pytest.raises(socket.gaierror) as caught:
            socket.getaddrinfo(HUNG, 9092, type=socket.SOCK_STREAM)
        assert str(caught.value).startswith(
            f"looking up the host name '{HUNG}' took longer than 0.2 s ("
        ), caught.value
        assert str(caught.value).endswith(" did not answer)")
    assert _lookups() == 1
    assert names.stalled() is caught.value
    # Another name, and an IP address, are answered.
    assert socket.getaddrinfo("svc.good.invalid", 80)[0][4] == ("127.0.0.1", 80)
    assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0][4] == ("127.0.0.1", 80)


def test_the_name_servers_asked_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 10.9.8.7\nnameserver 10.9.8.6\n")
    monkeypatch.setattr(names, "RESOLV_CONF", conf)
    assert names.name_servers(conf) == ["10.9.8.7", "10.9.8.6"]
    error = names.LookupStalledError("kafka.example", 5)
    assert str(error) == (
        f"looking up the host name 'kafka.example' took longer than 5 s (name server "
        f"10.9.8.7, 10.9.8.6 of {conf} did not answer)"
    )
    monkeypatch.setattr(names, "RESOLV_CONF", tmp_path / "missing")
    assert "(the DNS resolver did not answer)" in str(names.LookupStalledError("k", 5))


def test_an_unknown_name_is_the_resolvers_own_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(names, "_ORIGINAL", unknown)
    with pytest.raises(socket.gaierror) as caught:
        names.bounded_getaddrinfo("nowhere.invalid", 80)
    assert not isinstance(caught.value, names.LookupStalledError)


def test_the_operator_api_behind_a_hung_name_is_one_line_exit_3(
    hung: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_API_TOKEN", "x")
    assert main(["runs", "list", "--url", f"http://{HUNG}:16066"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"citybrain: cannot reach the operator API at http://{HUNG}:16066 ("), err
    assert f"(looking up the host name '{HUNG}' took longer than 0.2 s (" in err, err


def test_kafka_behind_a_hung_name_is_one_line_exit_3(
    hung: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CITYBRAIN_KAFKA_HOST", HUNG)
    assert main(["deadletters", "--prefix", "t92"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"citybrain: looking up the host name '{HUNG}' took longer than 0.2 s"), (
        err
    )
    assert f"{HUNG}:" in err, err


def test_grafana_behind_a_hung_name_is_one_line_exit_3(
    hung: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    url = f"http://{HUNG}:3000"
    assert main(["dashboards", "push", "--url", url, "--token", "x"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    # grafana-client's own words for it ("Name or service not known") come after ours.
    assert err.startswith(f"citybrain: looking up the host name '{HUNG}' took longer than 0.2 s"), (
        err
    )
    assert f", so: cannot reach Grafana at {url} (" in err, err
