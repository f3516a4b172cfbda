"""What a 401 from the operator API says (issue 15, item 3)."""

from __future__ import annotations

from pathlib import Path

from streams.api import unauthenticated_reason
from streams.auth import TokenStore, hash_token


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
