"""``citybrain replay`` refuses limits it cannot keep before it reads or connects."""

from __future__ import annotations

import pytest

from citybrain.cli import main
from tests.services import FIXTURES

CASES = FIXTURES / "field-cases"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pack", "20000"], "--pack is 20000, expected 1..10000"),
        (["--pack", "0"], "--pack is 0, expected 1..10000"),
        (["--max-message-bytes", "100"], "--max-message-bytes is 100, expected at least 1024"),
    ],
)
def test_replay_refuses_impossible_limits_up_front(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(CASES / "stray-quote-incidents.csv"), "--max", *args]) == 2
    assert capsys.readouterr().err == f"citybrain: {message}\n"
