"""Secrets typed on a command line, hidden from every usage error the CLI prints.

A mistyped ``--token`` (``citybrain --token "$T" runs list``, ``runs list --tokn $T``)
made argparse say ``invalid choice: '<token>'`` or ``unrecognized arguments: --tokn
<token>``: the secret on the terminal, in a CI log, in a bug report. The README promises
secrets are never printed, so every usage message passes through :func:`hide`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from playbooks.errors import shown

# An option is secret-looking when its name holds one of these words (``--token``,
# ``--grafana-token``, ``--webhook-secret``, ``--kafka-password``) or is a misspelling
# of one within did-you-mean distance (``--tokn``, ``--pasword``).
_SECRET_WORDS = ("token", "password", "passwd", "secret", "apikey", "api-key")
_NEAR = 0.75  # difflib ratio, as the did-you-mean hints' own closeness

# Long text of bearer-token letters with no path or sentence shape: a token pasted where
# a command was expected (``citybrain "$T" runs list``).
_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=-]{20,}")
_MIN_BITS = 3.5  # Shannon entropy a character: secrets.token_urlsafe(32) has ~5
# A secret is masked only as a whole word: no token letter before it (but the '=' of
# ``--tokn=…``), none after it (but a full stop).
_BEFORE = "A-Za-z0-9._~+/-"
_AFTER = "A-Za-z0-9_~+/=-"
_HASH = re.compile(rb"\b[0-9a-f]{64}\b")


def _secret_option(word: str) -> str | None:
    """The option's name when ``word`` is a secret-looking option (``--token``,
    ``--tokn``, ``--token=…``, ``-token``), else None."""
    if not word.startswith("-") or len(word) < 3:
        return None
    name = word.split("=", 1)[0]
    bare = name.lstrip("-").lower()
    if not bare:
        return None
    if any(secret in bare for secret in _SECRET_WORDS):
        return name
    for part in [bare, *bare.split("-")]:
        for secret in _SECRET_WORDS:
            if difflib.SequenceMatcher(None, part, secret).ratio() >= _NEAR:
                return name
    return None


def _entropy(text: str) -> float:
    """Bits a character of ``text``'s own letter frequencies."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_like_token(word: str) -> bool:
    """True for long high-entropy text of token letters, not a path or a file name."""
    if not _TOKENISH.fullmatch(word) or word.startswith(("/", ".", "~", "-")):
        return False
    if re.search(r"\.[A-Za-z]{2,5}$", word):  # x.csv, a.yaml: a file name
        return False
    kinds = sum(bool(re.search(p, word)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    # Mixed case and digits (token_urlsafe's), or as long as token_hex(16): an id the
    # CLI takes (grp-0123456789abcdef.1, lowercase hex, 22 characters) is no token.
    return (kinds == 3 or len(word) >= 32) and _entropy(word) >= _MIN_BITS


def _known_hashes() -> frozenset[bytes]:
    """The SHA-256 hashes of the tokens file (``CITYBRAIN_API_TOKENS_FILE``); empty when
    it is unset or unreadable (a usage error is no place for the file's own faults)."""
    name = os.environ.get("CITYBRAIN_API_TOKENS_FILE")
    if not name:
        return frozenset()
    try:
        with Path(name).expanduser().open("rb") as file:
            return frozenset(_HASH.findall(file.read(1 << 20)))
    except (OSError, ValueError):
        return frozenset()


def secret_words(argv: Sequence[str]) -> dict[str, str]:
    """The words of ``argv`` never to print, each with why: ``{'kMVu3v…': 'it follows
    --token'}``. A word is secret when it follows a secret-looking option (or is its
    ``=`` value), when its SHA-256 is in the tokens file, or when it looks like a token."""
    found: dict[str, str] = {}
    hashes: frozenset[bytes] | None = None
    # `hash-token s3cr3t-2026`: hash-token's only input is a token (read from stdin), so
    # a word typed after it is one, memorable or not (t147: echoed unmasked).
    after_hash_token = False
    for index, word in enumerate(argv):
        if after_hash_token and not word.startswith("-"):
            found.setdefault(word, "hash-token's input is a token")
            continue
        after_hash_token = after_hash_token or word == "hash-token"
        option = _secret_option(word)
        if option is not None and "=" in word:
            value = word.split("=", 1)[1]
            if value:
                found.setdefault(value, f"it is given to {option}")
            continue
        before = _secret_option(argv[index - 1]) if index else None
        # ``--token --json``: the next word is an option, not the token (argparse says
        # the value is missing).
        option_like = re.fullmatch(r"--?[a-z][a-z0-9-]*", word) is not None
        if before is not None and not option_like and "=" not in argv[index - 1]:
            found.setdefault(word, f"it follows {before}")
            continue
        if len(word) >= 8 and not word.startswith("-"):
            if hashes is None:
                hashes = _known_hashes()
            digest = hashlib.sha256(word.encode()).hexdigest().encode()
            if digest in hashes:
                found.setdefault(word, "it is a token of the tokens file")
                continue
        if _looks_like_token(word):
            found.setdefault(word, "it looks like a token")
    return found


def _masked(word: str) -> str:
    """The first 4 characters and an ellipsis; none of a short word's."""
    return f"{word[:4]}…" if len(word) >= 16 else "…"


def hide(message: str, argv: Sequence[str]) -> str:
    """``message`` with every secret word of ``argv`` masked and the reason said once:
    ``invalid choice: 'kMVu…' (hidden: it follows --token)``."""
    for word, why in sorted(secret_words(argv).items(), key=lambda item: -len(item[0])):
        # Whole words only: a short secret ('t') is a letter of many words of the message.
        pattern = re.compile(rf"(?<![{_BEFORE}])(')?{re.escape(word)}(?(1)')(?![{_AFTER}])")
        said = [f" (hidden: {why})"]

        def masked(match: re.Match[str], word: str = word, said: list[str] = said) -> str:
            quote = "'" if match.group(1) else ""
            text = f"{quote}{_masked(word)}{quote}{said[0]}"
            said[0] = ""  # the reason once
            return text

        message = pattern.sub(masked, message)
    return message


# A typed word longer than this is shown cut in a message: its first characters and its
# length. t158: a pasted line as a value (`route-test sensor_id=<100,000 characters>`,
# `stack <5,000 characters>`, `replay --speed …`) was echoed whole, a label name twice,
# a screenful of it around the one line that said what was wrong.
LONGEST_SHOWN = 200
SHOWN_HEAD = 40


def _cut(word: str) -> str:
    return f"{word[:SHOWN_HEAD]}…"


def cut_long(message: str, argv: Sequence[str]) -> str:
    """``message`` with every word of ``argv`` (or either side of its first ``=``:
    ``--speed=…``, a ``label=value``) longer than ``LONGEST_SHOWN`` characters shown as
    its first ``SHOWN_HEAD`` characters, an ellipsis and its length, once it is quoted
    or ends a path: ``invalid choice: 'yyyy…' (5,000 characters)``. The word was typed:
    its head says which it was; the rest of the message says what was wrong with it."""
    long_words: set[str] = set()
    for word in argv:
        for part in (word, *word.split("=", 1)):
            if len(part) > LONGEST_SHOWN:
                long_words.add(part)
    for word in sorted(long_words, key=len, reverse=True):
        # A checker that already clipped it as config files' values are shown
        # (``playbooks.errors.shown``: 'yyy...yyy', a duration since t190) is told in
        # the same words as every other typed word, its head and its length.
        message = message.replace(shown(word), f"'{_cut(word)}' ({len(word):,} characters)")
        # The word with a path glued to it (its folder before, `.deadletter` or `/data`
        # after), in its quotes when it has them.
        pattern = re.compile(rf"(')?([^\s'=]*){re.escape(word)}([\w./-]*)(?(1)')")
        length = f" ({len(word):,} characters)"

        def cut(match: re.Match[str], word: str = word, length: str = length) -> str:
            quote = match.group(1) or ""
            return f"{quote}{match.group(2)}{_cut(word)}{match.group(3)}{quote}{length}"

        message = pattern.sub(cut, message)
    return message
