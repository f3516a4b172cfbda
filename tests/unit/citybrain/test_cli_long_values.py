"""A very long word typed on the command line is shown cut in the one line that refuses
it: its first 40 characters and its length (t158's newcomer walk: a pasted line as
`route-test sensor_id=…` echoed 100,000 characters, a label name twice; `stack …`,
`replay --speed …`, `campaign report --from …` each echoed theirs whole)."""

from __future__ import annotations

import pytest

from citybrain.cli import main

LONG = "y" * 5000
HEAD = f"{'y' * 40}…"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["playbooks", "route-test", "kind=pm25", f"sensor_id={LONG}"], f"sensor_id='{HEAD}'"),
        (["playbooks", "route-test", f"kind={LONG}"], f"label kind='{HEAD}' (5,000 characters)"),
        (["playbooks", "route-test", f"{LONG}=1"], "unknown label"),
        (["stack", LONG], f"invalid choice: '{HEAD}' (5,000 characters)"),
        (["replay", "--speed", LONG, "x.csv"], f"--speed: '{HEAD}' (5,000 characters)"),
        (["replay", f"--speed={LONG}", "x.csv"], f"--speed: '{HEAD}' (5,000 characters)"),
        (["runs", "list", "--status", LONG], f"invalid choice: '{HEAD}' (5,000 characters)"),
        (["campaign", "report", "--from", LONG, "--to", "today"], f"--from is '{HEAD}'"),
        (["deadletters", "--replay", LONG], f"--replay: '{HEAD}' (5,000 characters)"),
        ([LONG], f"invalid choice: '{HEAD}' (5,000 characters)"),
        (["detect", LONG], f"unrecognized arguments: {HEAD} (5,000 characters)"),
        (["silences", "add", "--matcher", "kind=pm25", "--duration", LONG, "--reason", "r"], HEAD),
    ],
)
def test_a_long_typed_value_is_shown_cut(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert len(err) < 600 and "y" * 41 not in err, err
    assert err.count("\n") == 1


def test_a_long_secret_stays_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    """Looking the word up as a file (`detect one.csv`'s hint) raised "File name too
    long": the boundary then printed the word after `--tokn`, a secret."""
    secret = "s3cr3t" * 100
    assert main(["runs", "list", "--tokn", secret]) == 2
    err = capsys.readouterr().err
    assert "(hidden: it follows --tokn)" in err and "s3cr3ts3" not in err, err
    assert "cannot use" not in err


def test_short_words_and_what_was_not_typed_are_left_whole() -> None:
    from citybrain.cli.hidden import cut_long

    message = f"label kind='pm25x': expected one of {'z' * 300}"
    assert cut_long(message, ["route-test", "kind=pm25x"]) == message
    typed = "/tmp/" + "d" * 250
    cut = cut_long(f"--out '{typed}/r.html': no", ["--out", f"{typed}/r.html"])
    assert cut == f"--out '/tmp/{'d' * 35}…' (262 characters): no"
