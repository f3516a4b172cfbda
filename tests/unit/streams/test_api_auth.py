"""What a 401 from the operator API says (issue 15, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.api import unauthenticated_reason
from streams.auth import TokenStore, closed_reason, hash_token
from streams.errors import SettingsError


def test_no_tokens_configured_is_said_as_such() -> None:
    tokens = TokenStore.load(None)
    assert len(tokens) == 0
    for header in (None, "Bearer anything"):
        reason = unauthenticated_reason(tokens, header)
        assert reason.startswith("the operator API has no tokens configured")
        assert "CITYBRAIN_API_TOKENS_FILE" in reason


def test_a_missing_and_an_unknown_token_differ(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: a, role: operator, sha256: '{hash_token('t')}'}}\n")
    tokens = TokenStore.load(path)
    assert len(tokens) == 1
    assert unauthenticated_reason(tokens, None).startswith("no bearer token")
    assert unauthenticated_reason(tokens, "Basic dTpw").startswith("no bearer token")
    assert unauthenticated_reason(tokens, "Bearer other") == (
        "unknown bearer token: it is none of the 1 configured tokens"
    )
    assert tokens.authenticate("Bearer t") is not None


def test_the_bearer_scheme_is_case_insensitive(tmp_path: Path) -> None:
    """Fourth new-user trial, item 11: `Authorization: bearer <token>` got 401."""
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: a, role: operator, sha256: '{hash_token('t')}'}}\n")
    tokens = TokenStore.load(path)
    for header in ("bearer t", "BEARER t", "Bearer  t "):
        assert tokens.authenticate(header) is not None, header
    assert unauthenticated_reason(tokens, "bearer other").startswith("unknown bearer token")
    assert tokens.authenticate("Bearert") is None


def test_a_tokens_file_without_a_token_of_the_role_is_named(tmp_path: Path) -> None:
    """Fourth new-user trial, item 5: with the file set but empty, the 401 said "set
    CITYBRAIN_API_TOKENS_FILE" although it was set."""
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: []\n")
    empty = TokenStore.load(path)
    assert closed_reason(empty, ("gateway",), "the HTTP ingest") == (
        f"CITYBRAIN_API_TOKENS_FILE {path} has no gateway token, so the HTTP ingest refuses "
        "every request"
    )
    assert unauthenticated_reason(empty, "Bearer t").startswith(
        f"CITYBRAIN_API_TOKENS_FILE {path} has no operator or coordinator token"
    )
    path.write_text(f"tokens:\n  - {{name: a, role: operator, sha256: '{hash_token('t')}'}}\n")
    operators = TokenStore.load(path)
    assert "has no gateway token" in closed_reason(operators, ("gateway",), "the ingest")
    assert closed_reason(operators, ("operator", "coordinator"), "the operator API") == ""
    assert closed_reason(TokenStore.load(None), ("gateway",), "the ingest") == (
        "the ingest has no tokens configured (CITYBRAIN_API_TOKENS_FILE is not set)"
    )


def test_a_token_entry_with_a_key_twice_is_refused_not_read_as_its_last(tmp_path: Path) -> None:
    # PyYAML kept the last `role:`: this gateway token became a coordinator's.
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "tokens:\n"
        f"  - {{name: gw, role: gateway, sha256: '{hash_token('t')}', role: coordinator}}\n"
    )
    with pytest.raises(SettingsError) as info:
        TokenStore.load(path)
    assert str(info.value).startswith(
        f"CITYBRAIN_API_TOKENS_FILE {path}:2: not valid YAML: key 'role' is given twice"
    )


def test_a_tokens_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    # Trial 27: an operator's Latin-1 name ended the worker's start in "unexpected
    # UnicodeDecodeError ... This is a bug", as no other file citybrain reads does.
    path = tmp_path / "tokens.yaml"
    path.write_bytes(b"tokens:\n  - {name: jos\xe9, role: operator, sha256: x}\n")
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert str(refused.value) == (
        f"CITYBRAIN_API_TOKENS_FILE {path}:2: byte 0xe9 is not UTF-8 (a Latin-1 or "
        "Windows-1252 file? save the file as UTF-8)"
    )


def test_a_token_name_no_silence_author_can_be_is_refused(tmp_path: Path) -> None:
    """t156: a token's name is the author of the silences its holder adds, and a stored
    silence's author reads back only up to 256 characters: a longer name is refused in
    the tokens file, where it is written, not by every later start's read-back."""
    path = tmp_path / "tokens.yaml"
    entry = "  - {{name: {name}, role: operator, sha256: '{sha}'}}\n"
    path.write_text("tokens:\n" + entry.format(name="n" * 257, sha=hash_token("t")))
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert f"{path}:2: tokens entry 1: name is 257 characters, at most 256" in str(refused.value)
    path.write_text("tokens:\n" + entry.format(name="n" * 256, sha=hash_token("t")))
    assert len(TokenStore.load(path)) == 1


@pytest.mark.parametrize(
    ("written", "fault"),
    [
        ("ana\\Lbel", "a line separator (U+2028) at character 4"),
        ("ana\\u2029bel", "a paragraph separator (U+2029) at character 4"),
        ("ana\\Nbel", "a control character (U+0085) at character 4"),
        (
            "ana\\u2066bel",
            "an invisible format character (U+2066, LEFT-TO-RIGHT ISOLATE, a bidirectional "
            "control) at character 4",
        ),
    ],
)
def test_a_token_name_holding_a_line_separator_or_bidi_control_names_it(
    tmp_path: Path, written: str, fault: str
) -> None:
    """t186: a token's name is the audit's actor and a silence's author; a U+2028 or
    U+2029 in it passed (only control and format characters were refused) and cut each
    log line and audit row naming it in two. The refusal names the character."""
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n  - {{name: \"{written}\", role: operator, sha256: '{hash_token('t')}'}}\n"
    )
    with pytest.raises(SettingsError) as refused:
        TokenStore.load(path)
    assert f"{path}:2: tokens entry 1: name is " in str(refused.value)
    assert f", which holds {fault}; expected non-empty text" in str(refused.value)
