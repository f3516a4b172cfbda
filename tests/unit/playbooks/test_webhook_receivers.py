"""What the webhook executor counts as one receiver for its per-receiver bound."""

from __future__ import annotations

from playbooks.executors.webhook import receiver


def test_receivers_are_told_apart_by_scheme_host_and_port_only() -> None:
    assert receiver("http://Hooks.Example:80/a?x=1") == receiver("http://hooks.example/b")
    assert receiver("https://hooks.example/a") == "https://hooks.example:443"
    assert receiver("http://hooks.example:8080/a") != receiver("http://hooks.example/a")
    assert receiver("http://hooks.example/a") != receiver("https://hooks.example/a")
