"""Operator API tokens: stored as SHA-256 hashes, compared in constant time, with a role.

Tokens file (YAML), never the tokens themselves::

    tokens:
      - {name: duty-operator-1, role: operator, sha256: 5e884898...}
      - {name: night-coordinator, role: coordinator, sha256: ...}
      - {name: orion-madrid, role: gateway, sha256: ...}     # the HTTP ingest only

``citybrain api hash-token`` prints the hash of a token read from standard input.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from playbooks.encodings import not_utf8_guess, wide_encoding
from playbooks.errors import did_you_mean, name_fault, shown
from playbooks.routing import MAX_SILENCE_AUTHOR_CHARS
from streams.errors import SettingsError

ROLES = ("operator", "coordinator", "gateway")
# What each role may do; a coordinator may do everything an operator may.
PERMISSIONS: dict[str, frozenset[str]] = {
    # "answer": relay a reporter's answer to a closure message (the channel desks).
    "operator": frozenset({"read", "ack", "resolve", "silence", "answer"}),
    "coordinator": frozenset(
        {
            "read",
            "ack",
            "resolve",
            "silence",
            "answer",
            "escalate",
            "cancel",
            "approve",
            "expire_silence",
        }
    ),
    # A city's gateways and context brokers post readings to the HTTP ingest, nothing else.
    "gateway": frozenset({"ingest"}),
}


def roles_that_may(action: str) -> list[str]:
    """The roles whose permissions include ``action`` (for a 403 that says who may)."""
    return [role for role in ROLES if action in PERMISSIONS[role]]


# Each permission in words, for a 403 a person reads ("may not expire a silence").
ACTION_WORDS = {
    "read": "read runs and silences",
    "ack": "acknowledge a run",
    "resolve": "resolve a run",
    "silence": "add a silence",
    "answer": "answer a closure",
    "escalate": "escalate a run",
    "cancel": "cancel a run",
    "approve": "approve a step",
    "expire_silence": "expire a silence",
    "ingest": "post readings to the ingest",
}


def closed_reason(tokens: TokenStore, roles: tuple[str, ...], service: str) -> str:
    """Why ``service`` refuses every request, or "" when it has a token of one of
    ``roles`` (the roles that may use it): no tokens file is set, or the file set has no
    such token (an empty ``tokens: []``, or only other roles')."""
    if tokens.count(roles):
        return ""
    if tokens.path is None and not len(tokens):
        return f"{service} has no tokens configured (CITYBRAIN_API_TOKENS_FILE is not set)"
    where = f" {tokens.path}" if tokens.path else ""
    return (
        f"CITYBRAIN_API_TOKENS_FILE{where} has no {' or '.join(roles)} token, "
        f"so {service} refuses every request"
    )


# RFC 6750's b64token, as `citybrain hash-token` takes them: no other token is stored.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None. The scheme is
    case-insensitive (RFC 9110 11.1): ``bearer`` and ``BEARER`` are ``Bearer``; spaces
    around the token are allowed (RFC 9110's ``1*SP``)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def one_authorization(values: Sequence[str]) -> str | None:
    """The text of a 400 for a request whose ``Authorization`` header (every value of
    it, in any casing of the name) is given more than once, else None. Which one would
    count is not defined: a proxy may check the last while we took the first (trial 29:
    a gateway token first and an operator's second passed as the gateway)."""
    if len(values) <= 1:
        return None
    return (
        f"the Authorization header is given {len(values)} times: send it once, "
        "Authorization: Bearer <token>"
    )


def exposed(path: Path | None, uid: int | None = None) -> str:
    """A warning when the tokens file ``path`` may be written by users other than its
    owner, or is this process's own file and may be read by others, else "". Writable,
    anyone may add a coordinator's token; readable, its hashes can be guessed at
    offline. A file another user owns (compose's secret, docker/tokens.yaml mode 644
    read by the container's own user) must be readable to be read at all: not warned
    of. ``uid``: this process's user (``os.getuid()`` when None). The text never holds a
    token or a hash (trial 29)."""
    if path is None:
        return ""
    try:
        info = path.stat()
    except OSError:
        return ""
    mode = info.st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        how = "written"
    elif mode & (stat.S_IRGRP | stat.S_IROTH) and info.st_uid == (
        os.getuid() if uid is None else uid
    ):
        how = "read"
    else:
        return ""
    return (
        f"CITYBRAIN_API_TOKENS_FILE {path} may be {how} by other users "
        f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
    )


def refusal_401(
    tokens: TokenStore,
    authorization: str | None,
    service: str,
    where: str,
    roles: tuple[str, ...] = ROLES,
) -> str:
    """The text of a 401 from ``service`` (``the operator API``, ``the ingest``): it has
    no token of ``roles`` (the roles that may use it; closed_reason: set
    CITYBRAIN_API_TOKENS_FILE, or add such a token to it, ``where``), the request carries
    no bearer token, or its token is not one of the configured ones."""
    closed = closed_reason(tokens, roles, service)
    if closed and tokens.path is None and not len(tokens):
        return f"{closed}, so it refuses every request: set CITYBRAIN_API_TOKENS_FILE {where}"
    if closed:
        return f"{closed}: add one (role: {roles[0]}) {where}"
    if bearer_token(authorization) is None:
        return "no bearer token: " + _not_bearer(authorization)
    return f"unknown bearer token: it is none of the {len(tokens)} configured tokens"


# HTTP authentication schemes (IANA's registry, and the common non-standard ones): only
# these are named back; any other first word may be a token sent without a scheme.
_SCHEMES = frozenset(
    {
        "basic",
        "bearer",
        "digest",
        "dpop",
        "gnap",
        "hoba",
        "mutual",
        "negotiate",
        "ntlm",
        "oauth",
        "privatetoken",
        "scram-sha-1",
        "scram-sha-256",
        "vapid",
        "token",
        "apikey",
        "api-key",
        "aws4-hmac-sha256",
        "kerberos",
    }
)


def _not_bearer(authorization: str | None) -> str:
    """What an Authorization header that carries no bearer token got wrong, said in
    its words (t102: ``Basic …``, a browser's or curl -u's, and ``Bearer`` with nothing
    after it were both only "no bearer token"); the scheme shortened, never a value."""
    scheme, _, rest = (authorization or "").strip().partition(" ")
    if not scheme:
        return "send the header Authorization: Bearer <token>"
    if scheme.lower() == "bearer" and not rest.strip():
        return "the header Authorization: Bearer has no token after it"
    if scheme.lower() not in _SCHEMES:
        # `Authorization: $TOKEN` (no scheme word): the first word is the token itself,
        # and a 401's body and the ingest's log are no place for it (t134).
        return (
            "the header Authorization has no scheme it knows before its value (not shown: "
            "it may be the token itself): send Authorization: Bearer <token>"
        )
    return (
        f"the header Authorization has the scheme {scheme!r}, not Bearer: send "
        "Authorization: Bearer <token>"
    )


def forbidden_reason(principal: Principal, action: str) -> str:
    """The text of a 403: the token's name and role, and the role the action needs, so
    the refused user knows which token to ask for (docs/playbooks.md lists the roles)."""
    needed = " or ".join(roles_that_may(action)) or "none of the roles"
    return (
        f"token {principal.name!r} has role {principal.role}, which may not "
        f"{ACTION_WORDS.get(action, action.replace('_', ' '))}: "
        f"that needs role {needed}"
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    def may(self, action: str) -> bool:
        return action in PERMISSIONS[self.role]


class TokenStore:
    def __init__(self, entries: list[tuple[str, str, str]], path: Path | None = None) -> None:
        self._entries = entries  # (sha256 hex, name, role)
        self.path = path  # the tokens file they came from; None when none is set

    @classmethod
    def load(cls, path: Path | None) -> TokenStore:
        if path is None:
            return cls([])
        from playbooks.loader import compose_yaml, load_yaml, locate, yaml_error

        try:
            data = path.read_bytes()
            wide = wide_encoding(data)
            if wide is not None:  # UTF-16 read as UTF-8 was a bad byte or a NUL (t121)
                raise SettingsError(
                    f"CITYBRAIN_API_TOKENS_FILE {path}:1: the file is {wide}; save it as UTF-8"
                )
            text = data.decode("utf-8")
            # A key twice (an entry's `role:`) is an error, not the last one silently.
            doc = load_yaml(text)
        except OSError as exc:
            raise SettingsError(
                f"CITYBRAIN_API_TOKENS_FILE {path}: cannot read: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:
            # As every other file citybrain reads: file:line and the byte, not a traceback.
            line = data.count(b"\n", 0, exc.start) + 1
            raise SettingsError(
                f"CITYBRAIN_API_TOKENS_FILE {path}:{line}: byte 0x{data[exc.start]:02x} is "
                f"not UTF-8 ({not_utf8_guess(data, exc.start)}save the file as UTF-8)"
            ) from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"CITYBRAIN_API_TOKENS_FILE {yaml_error(path, exc, text)}") from exc
        where = f"CITYBRAIN_API_TOKENS_FILE {path}"
        tokens = (doc or {}).get("tokens", []) if isinstance(doc, dict | None) else None
        if not isinstance(tokens, list):
            raise SettingsError(f"{where}: expected a mapping with a list 'tokens'")
        entries: list[tuple[str, str, str]] = []
        for i, entry in enumerate(tokens):
            # file:line, as the grid's and routing's errors: the entry's key, else the entry
            # (the file composed again only for an error).
            def at(key: str | None = None, i: int = i) -> str:
                loc: tuple[str | int, ...] = ("tokens", i, *((key,) if key else ()))
                line = locate(compose_yaml(text), loc)
                return f"{where}:{line}: tokens entry {i + 1}"  # counted from 1, as people count

            if not isinstance(entry, dict) or set(entry) != {"name", "role", "sha256"}:
                raise SettingsError(f"{at()}: expected keys name, role, sha256")
            who = entry["name"]
            if isinstance(who, int) and not isinstance(who, bool):
                who = str(who)  # `name: 7` is read as its digits, as a grid's ids
            fault = name_fault(who) if isinstance(who, str) else None
            if fault is not None:
                # One check for every name an operator writes (t186: a U+2028 or U+2029
                # passed, and cut each log line and audit row naming the token in two).
                raise SettingsError(
                    f"{at('name')}: name is {shown(who)}, which holds {fault}; expected "
                    "non-empty text without leading or trailing spaces, control or "
                    "invisible format characters, line or paragraph separators"
                )
            if not isinstance(who, str) or not who.strip() or who != who.strip():
                # The name is the audit record's actor (who acknowledged, who silenced):
                # `name: ~` was the actor "None", a list "['a', 'b']", and a newline or an
                # escape sequence went into every log line that names it (t54).
                raise SettingsError(
                    f"{at('name')}: name is {shown(who)}, expected non-empty text without "
                    "leading or trailing spaces, control or invisible format characters"
                )
            if len(who) > MAX_SILENCE_AUTHOR_CHARS:
                # It is the author of the silences its holder adds, which read back only
                # up to this length (t156).
                raise SettingsError(
                    f"{at('name')}: name is {len(who):,} characters, at most "
                    f"{MAX_SILENCE_AUTHOR_CHARS}"
                )
            if entry["role"] not in ROLES:
                raise SettingsError(
                    f"{at('role')}: role is {shown(entry['role'])}, expected one of "
                    f"{', '.join(ROLES)}"
                    + (did_you_mean(entry["role"], ROLES) if isinstance(entry["role"], str) else "")
                )
            digest = str(entry["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise SettingsError(f"{at('sha256')}: sha256 is not 64 hex digits")
            for stored, name, role in entries:
                # authenticate takes the last match: which role a token had depended on
                # the order of the entries (trial 29).
                if stored == digest:
                    raise SettingsError(
                        f"{at('sha256')}: sha256 is the same as entry {name!r}'s (role "
                        f"{role}): one token, one entry; give each its own token"
                    )
            entries.append((digest, who, str(entry["role"])))
        return cls(entries, path)

    def digests(self) -> frozenset[str]:
        """The stored SHA-256 hashes (hex): what a reload compares to count the tokens
        it added and revoked. Never to be logged or recorded."""
        return frozenset(stored for stored, _, _ in self._entries)

    def count(self, roles: tuple[str, ...]) -> int:
        """How many tokens have one of ``roles``."""
        return sum(role in roles for _, _, role in self._entries)

    def __len__(self) -> int:
        """How many tokens are configured; 0 means the API refuses every request."""
        return len(self._entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal for an ``Authorization: Bearer <token>`` header (the scheme in
        any case), or None."""
        token = bearer_token(authorization)
        # A byte no bearer token has (a header's non-ASCII byte came as a lone surrogate,
        # and hashing it raised: a 500, trial 29) matches no stored token.
        if token is None or not BEARER_TOKEN.fullmatch(token):
            return None
        digest = hash_token(token)
        found = None
        # Compare against every entry, in constant time each, so timing reveals nothing.
        for stored, name, role in self._entries:
            if hmac.compare_digest(stored, digest):
                found = Principal(name, role)
        return found
