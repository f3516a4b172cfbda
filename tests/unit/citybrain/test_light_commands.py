"""The operator's commands that only talk to the worker's API load no numeric library:
before, every one imported every detector (numpy, scipy, numba: 0.6-0.9 s) through the
settings, and its hints for an unreachable worker imported pandas through the demo's
report module (0.3 s), so `citybrain runs list` took about a second to say anything."""

import subprocess
import sys

import pytest

HEAVY = ("numpy", "pandas", "scipy", "numba", "sklearn")


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list"],
        ["runs", "list", "--token", "t", "--url", "http://127.0.0.1:1"],
        ["silences", "list", "--token", "t", "--url", "http://127.0.0.1:1"],
    ],
)
def test_an_api_command_loads_no_numeric_library(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from citybrain.cli.main import main\n"
        f"status = main({argv!r})\n"
        f"print(status, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        check=True,
    )
    status, _, loaded = done.stdout.strip().rpartition("\n")[2].partition(" ")
    assert status != "0", done.stdout  # no worker there: the command says so
    assert "citybrain:" in done.stderr
    assert loaded == "[]", done.stderr
