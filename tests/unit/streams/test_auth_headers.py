"""Tokens and Authorization headers as a low-privilege insider would try them (trial 29):
a header twice, a byte no token has, one token under two roles, a tokens file others
may read or write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.auth import TokenStore, exposed, hash_token, one_authorization
from streams.errors import SettingsError


def store(*entries: tuple[str, str, str]) -> TokenStore:
    return TokenStore([(hash_token(token), name, role) for token, name, role in entries])


def test_a_second_authorization_header_is_named_not_one_of_them_taken() -> None:
    assert one_authorization([]) is None
    assert one_authorization(["Bearer a"]) is None
    assert one_authorization(["Bearer a", "Bearer b"]) == (
        "the Authorization header is given 2 times: send it once, Authorization: Bearer <token>"
    )


@pytest.mark.parametrize(
    "header",
    [
        "Bearer \udcffsecret",  # aiohttp's reading of a 0xff byte: hashing it raised
        "Bearer s\u00e9cret",
        "Bearer sec ret",
        "Bearer secret\x00",
    ],
)
def test_a_token_with_a_byte_no_token_has_matches_none(header: str) -> None:
    tokens = store(("secret", "a", "coordinator"))
    assert tokens.authenticate(header) is None


def test_extra_spaces_and_the_scheme_in_capitals_still_authenticate() -> None:
    tokens = store(("secret", "a", "operator"))
    for header in ("Bearer   secret", "  BEARER secret  ", "bearer secret"):
        principal = tokens.authenticate(header)
        assert principal is not None and principal.name == "a", header


def test_one_token_under_two_roles_is_refused_at_load(tmp_path: Path) -> None:
    """authenticate took the last entry: the token's role hung on the file's order."""
    path = tmp_path / "tokens.yaml"
    digest = hash_token("shared")
    path.write_text(
        "tokens:\n"
        f"  - {{name: desk, role: operator, sha256: '{digest}'}}\n"
        f"  - {{name: lead, role: coordinator, sha256: '{digest.upper()}'}}\n"
    )
    with pytest.raises(SettingsError) as info:
        TokenStore.load(path)
    assert str(info.value) == (
        f"CITYBRAIN_API_TOKENS_FILE {path}:3: tokens entry 2: sha256 is the same as entry "
        "'desk''s (role operator): one token, one entry; give each its own token"
    )
    assert digest not in str(info.value)


@pytest.mark.parametrize(
    ("mode", "how"),
    [
        (0o600, None),
        (0o400, None),
        (0o640, "read"),
        (0o644, "read"),
        (0o620, "written"),
        (0o666, "written"),
    ],
)
def test_a_tokens_file_others_may_read_or_write_is_warned_of(
    tmp_path: Path, mode: int, how: str | None
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{name: a, role: operator, sha256: '{hash_token('t')}'}}\n")
    path.chmod(mode)
    warning = exposed(path)
    if how is None:
        assert warning == ""
    else:
        assert warning == (
            f"CITYBRAIN_API_TOKENS_FILE {path} may be {how} by other users "
            f"(mode {mode:04o}): chmod 600 {path}"
        )
    assert TokenStore.load(path).count(("operator",)) == 1  # a warning, not a refusal


def test_no_tokens_file_and_a_missing_one_warn_of_nothing(tmp_path: Path) -> None:
    assert exposed(None) == ""
    assert exposed(tmp_path / "absent.yaml") == ""


def test_another_users_readable_file_is_not_warned_of_unless_writable(tmp_path: Path) -> None:
    """compose's secret (docker/tokens.yaml, 0644) is read by the container's own user:
    it must be readable to be read at all."""
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: []\n")
    path.chmod(0o644)
    someone_else = os.getuid() + 1
    assert exposed(path, uid=someone_else) == ""
    path.chmod(0o646)
    assert "may be written by other users" in exposed(path, uid=someone_else)


@pytest.mark.parametrize(
    ("authorization", "said"),
    [
        (None, "no bearer token: send the header Authorization: Bearer <token>"),
        ("", "no bearer token: send the header Authorization: Bearer <token>"),
        (
            "Basic b3BzOnNlY3JldA==",
            "no bearer token: the header Authorization has the scheme 'Basic', not Bearer: "
            "send Authorization: Bearer <token>",
        ),
        ("Bearer", "no bearer token: the header Authorization: Bearer has no token after it"),
        ("bearer   ", "no bearer token: the header Authorization: Bearer has no token after it"),
        (
            "Tok\u00e9n abc",
            "no bearer token: the header Authorization has no scheme it knows before its "
            "value (not shown: it may be the token itself): send Authorization: Bearer <token>",
        ),
        # t134: a token sent without its scheme word was named back as the scheme.
        (
            "kMVu3v9vXq2Lr8",
            "no bearer token: the header Authorization has no scheme it knows before its "
            "value (not shown: it may be the token itself): send Authorization: Bearer <token>",
        ),
        (
            "Token abc",
            "no bearer token: the header Authorization has the scheme 'Token', not Bearer: "
            "send Authorization: Bearer <token>",
        ),
    ],
)
def test_a_401_says_what_the_authorization_header_got_wrong(
    authorization: str | None, said: str
) -> None:
    """t102: `curl -u ops:secret` (Basic) and a script's `Bearer $UNSET` were both only
    "no bearer token: send the header …", as if none had been sent; the operator API's
    and the ingest's 401 (one function) now say what came instead."""
    from streams.auth import refusal_401

    tokens = store(("t0k3n", "desk", "operator"), ("g4t3", "gw", "gateway"))
    assert refusal_401(tokens, authorization, "the operator API", "on the worker") == said
