"""What a newcomer types to send a dead letter back or list them is pointed to the option
that does it, and no hint glues an option typed after a value into that value (t151:
``deadletters --prefix P --requeue 0:17`` was told to write ``--prefix 'P --requeue
0:17'``, which no prefix can be; ``deadletters replay 0:17`` and ``deadletters list``
said only "unrecognized arguments")."""

from __future__ import annotations

import pytest

from citybrain.cli.parser import build_parser


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("citybrain: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("option", ["--requeue", "--retry", "--resend"])
def test_an_option_for_sending_back_is_pointed_to_replay(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refusal(["deadletters", "--prefix", "demo-1", option, "0:17"], capsys)
    assert f"unrecognized arguments: {option} 0:17 (did you mean --replay?)" in err, err
    assert "'demo-1 " not in err, err  # never glued into the prefix


@pytest.mark.parametrize(
    ("word", "says"),
    [
        ("replay", "a dead letter is sent back with --replay PARTITION:OFFSET"),
        ("requeue", "a dead letter is sent back with --replay PARTITION:OFFSET"),
        ("list", "it lists the latest dead letters as it is"),
        ("follow", "--follow does that"),
    ],
)
def test_an_action_word_is_pointed_to_what_does_it(
    word: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refusal(["deadletters", word, "0:17"], capsys)
    assert f"(deadletters takes no ACTION: {says}" in err, err
    err = _refusal(["deadletters", "--prefix", "demo-1", word], capsys)
    assert f"(deadletters takes no ACTION: {says}" in err, err
    assert "'demo-1 " not in err, err


def test_a_prefix_is_never_suggested_with_a_space(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(["deadletters", "--prefix", "demo-1", "x"], capsys)
    assert "--prefix 'demo-1 x'" not in err, err
    # A text option still gets its words joined (t134's hint kept).
    err = _refusal(["runs", "ack", "grp-1.1", "--note", "on", "my", "way"], capsys)
    assert "write --note 'on my way'" in err, err
