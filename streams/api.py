"""The operator API, served by each worker's faust web server beside /metrics.

Token authentication (``Authorization: Bearer <token>``, tokens stored hashed, see
streams/auth.py) with the roles operator and coordinator. Commands are validated here
against the run's current state, then published on the commands topic keyed like the run,
so the worker that owns the run applies them through the engine; responses are ``202``
with the command, once Kafka has acknowledged it. Every state-changing call (run actions,
silences created and expired) answers 2xx only after Kafka has acknowledged what it wrote
(the command; a silence's changelog entry and audit record), and 503 when Kafka has not
within ``API_KAFKA_WAIT`` seconds (streams/context.py). Documented in docs/openapi.yaml.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import difflib
import hashlib
import logging
import math
import re
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

import aiohttp
import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View

from playbooks.encodings import blank
from playbooks.engine import (
    MAX_COMMENT,
    MAX_NOTE,
    WITHOUT_PLAYBOOK,
    Run,
    is_terminal,
    playbook_gone,
)
from playbooks.errors import RoutingConfigError, SilenceError, closest, did_you_mean
from playbooks.grid import LEVELS, PARENT_LEVEL
from playbooks.machine import RUN_LIST_STATUSES as LIST_STATUSES
from playbooks.machine import ReplyStatus, RunStatus
from playbooks.routing import (
    MAX_MATCHER_CHARS,
    MAX_SILENCE_AUTHOR_CHARS,
    MAX_SILENCE_ID_CHARS,
    MAX_SILENCE_MATCHERS,
    MAX_SILENCE_REASON_CHARS,
    MAX_SILENCE_SECONDS,
    BadSilence,
    Silence,
    api_matcher,
    label_values,
    matches_all,
    new_silence,
    read_stored,
    silence_matches_every_alert,
    silence_read_apart,
    silence_window,
)
from playbooks.schema import parse_duration
from streams.auth import (
    Principal,
    TokenStore,
    exposed,
    forbidden_reason,
    one_authorization,
    refusal_401,
)
from streams.context import (
    API_KAFKA_WAIT,
    Config,
    Context,
    PendingCommands,
    bounded_message,
    run_key,
    superseded_generation,
)
from streams.errors import MAX_SHOWN_KEY, EventError, show, shown_key, shown_name
from streams.events import am_epoch, decode_json, epoch_unit_guess, text_control
from streams.partitioning import key_partition
from streams.replies import RESEND, undelivered_of, undelivered_of_group
from streams.tables import stored_items

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
RUN_ACTIONS = {
    "ack": "ack",
    "resolve": "resolve",
    "escalate": "escalate",
    "cancel": "cancel",
    "approve": "approve",
    "reject": "approve",
    "answer": "answer",  # a reporter's answer to the closure of their report
    # Its undelivered closures called again: whoever may close a run may re-send its end.
    "resend": "resolve",
}


def undelivered_list(group: Any, run_id: str) -> list[dict[str, Any]]:
    """The closures of run ``run_id`` whose webhook call was given up, as the API shows
    them: ``[{"reply_id", "report_id", "channel", "failed_at" (epoch s), "detail"}]``,
    oldest first; empty when every closure was delivered (or is being called)."""
    return sorted(
        (
            {
                "reply_id": rid,
                "report_id": e["reply"].get("report_id"),
                "channel": e["reply"].get("channel"),
                "failed_at": e.get("failed_at"),
                "detail": e.get("detail"),
            }
            for rid, e in undelivered_of(group, run_id).items()
        ),
        key=lambda e: (e["failed_at"] or 0, e["reply_id"]),
    )


def shown_run(
    group: Any,
    run: dict[str, Any],
    *,
    listed: bool = False,
    held: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A stored run as the API lists and shows it: with ``closures_undelivered``
    (``undelivered_list``) when one of its closures was not delivered; ``listed`` (the
    runs list, which shows a group's latest run only) adds
    ``closures_undelivered_earlier``, ``{run id: how many}`` of the group's earlier
    (superseded) runs, when any of theirs was not delivered: a list that showed only
    the latest run's hid them (t89). ``held`` (``Context.runs_not_advancing``'s entry
    for the run's group: ``{"reason", "since"}``) is shown as ``not_advancing`` on the
    group's current run: the deadline check leaves it as it is, so an overdue step is
    not escalated, and the list said nothing of it."""
    run_id = str(run.get("run_id"))
    shown = dict(run)
    current = isinstance(group, dict) and (group.get("run") or {}).get("run_id") == run_id
    if held and current:
        shown["not_advancing"] = dict(held)
    undelivered = undelivered_list(group, run_id)
    if undelivered:
        shown["closures_undelivered"] = undelivered
    if listed:
        earlier = Counter(
            str((e.get("reply") or {}).get("run_id"))
            for e in undelivered_of_group(group).values()
            if (e.get("reply") or {}).get("run_id") != run_id
        )
        if earlier:
            shown["closures_undelivered_earlier"] = dict(sorted(earlier.items()))
    return shown if len(shown) > len(run) else run


# A silence whose key no request can carry is addressed as ``sha256:`` and at least this
# many of the first hex digits of its key's SHA-256 (``silence_handle``).
HANDLE_DIGITS = 16
_HANDLE = re.compile(rf"sha256:([0-9a-f]{{{HANDLE_DIGITS},64}})")
# The largest changelog entry (key and value) an expiry writes: the producer's
# max.request.size (1,048,576 bytes) less room for the record's framing.
MAX_SILENCE_ENTRY_BYTES = 1_048_576 - 1024


def silence_handle(raw: bytes) -> str | None:
    """How ``DELETE /silences/ID`` (``silences expire``) addresses the silence stored
    under ``raw`` when its key cannot be the ID: ``sha256:`` and the first
    ``HANDLE_DIGITS`` hex digits of the key's SHA-256, for a key longer than
    ``MAX_SHOWN_KEY`` characters (listed cut, ``shown_key``; one of about 1 MB fits in
    no URL) or that is not UTF-8 (listed with replacement characters, which name another
    key); None for every other key, its own ID. t173: such a silence (another tool's
    changelog entry) was listed but could not be expired by anything the listing showed."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and len(text) <= MAX_SHOWN_KEY:
        return None
    return f"sha256:{hashlib.sha256(raw).hexdigest()[:HANDLE_DIGITS]}"


def handled_key(keys: Iterable[bytes], silence_id: str) -> bytes | None:
    """The one stored key among ``keys`` that ``silence_id`` (``sha256:`` and 16 to 64
    hex digits) addresses by ``silence_handle``, None when ``silence_id`` is no such
    handle or no key has it. ``ApiError`` 409 when several keys share those digits (give
    more of them: the listing's ``key`` shows 16)."""
    match = _HANDLE.fullmatch(silence_id)
    if match is None:
        return None
    digits = match.group(1)
    found = [
        k
        for k in keys
        if silence_handle(k) is not None and hashlib.sha256(k).hexdigest().startswith(digits)
    ]
    if len(found) > 1:
        raise ApiError(
            409,
            f"{len(found)} stored silences' keys have a SHA-256 starting {digits}: give "
            "more of its 64 digits",
        )
    return found[0] if found else None


def _listed(
    key: str,
    doc: Any,
    now: float,
    read: Callable[[Any], Silence | BadSilence] | None = None,
    handle: str | None = None,
) -> dict[str, Any]:
    """A stored silence as listed (``bounded_document``), with whether it is active now;
    one that cannot be read (playbooks.routing.SilenceBook skips it) is listed as such
    rather than failing.
    ``key``: its key in the table, listed as its ``id`` (what ``DELETE /silences/ID``
    takes; t160: one stored without an id, or with another, was listed without the key,
    so nothing the listing showed could expire it). ``read``: the document's reading
    (the route agent's book's, ``reading_of``), by default parsed here. ``handle``: the
    ``silence_handle`` of a key that cannot be its ID, listed as the ID (what expires
    it), the key itself shown cut as ``key``."""
    base = doc if isinstance(doc, dict) else {}
    named = {"id": shown_key(key)} if handle is None else {"id": handle, "key": shown_key(key)}
    ends = base.get("ends_at")
    if isinstance(ends, int | float) and not isinstance(ends, bool) and ends <= now:
        # Expired: not read, as the route agent does, so bounded as an unreadable one.
        return {**bounded_document(base), **named, "active": False}
    silence = read_stored(key, doc) if read is None else read(doc)
    if isinstance(silence, BadSilence):
        unreadable = bounded_message(silence.message)
        return {
            **bounded_document(base),
            **named,
            "active": False,
            "unreadable": unreadable,
        }
    # Bounded too (t214): a readable silence may carry fields the API never writes
    # (another tool's changelog entry: a comment of 1 MB, a thousand fields), which were
    # listed whole; every field the API writes is within its bounds, so listed whole.
    return {**bounded_document(base), **named, "active": silence.active(now)}


# An unreadable or expired stored silence is listed with at most this many of its fields,
# each at most this many bytes of JSON (a longer one shown as ``show`` shows a value):
# every field of a silence the API stores is smaller (a matcher list of 64 x 1,024
# characters, the largest, is shown cut).
MAX_LISTED_FIELDS = 32
MAX_LISTED_FIELD_BYTES = 4096


def json_size(value: Any) -> int:
    """Bytes of ``value`` as JSON; past any message's size for one JSON cannot write as
    it is (an int past 64 bits)."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return MAX_SILENCE_ENTRY_BYTES + 1


def expiry_fields(expired: Mapping[str, Any]) -> dict[str, Any]:
    """An expired silence's times and who expired it, the fields an expiry must keep."""
    fields = ("starts_at", "ends_at", "expired_by", "expired_at")
    return {k: expired[k] for k in fields if k in expired}


# A stored silence's text fields the API writes, each with the most characters it writes
# (``Silence.from_dict`` reads no more back).
_WRITTEN_TEXT = {
    "id": MAX_SILENCE_ID_CHARS,
    "author": MAX_SILENCE_AUTHOR_CHARS,
    "expired_by": MAX_SILENCE_AUTHOR_CHARS,
    "reason": MAX_SILENCE_REASON_CHARS,
}


def written_whole(name: str, value: Any) -> bool:
    """Whether a stored silence's field ``name`` holds no more than the API writes there
    (``matchers``: at most MAX_SILENCE_MATCHERS texts of MAX_MATCHER_CHARS characters;
    ``reason``, ``author``, ``expired_by``, ``id``: text of their bounds), so that a
    listing shows it whole, as a silence in force is."""
    if name == "matchers":
        return (
            isinstance(value, list)
            and len(value) <= MAX_SILENCE_MATCHERS
            and all(isinstance(m, str) and len(m) <= MAX_MATCHER_CHARS for m in value)
        )
    limit = _WRITTEN_TEXT.get(name)
    return limit is not None and isinstance(value, str) and len(value) <= limit


def bounded_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document that was not read (an unreadable or expired silence) as a
    listing shows it: at most ``MAX_LISTED_FIELDS`` fields, a name past 64 characters
    cut (``shown_key``), a value whose JSON is over ``MAX_LISTED_FIELD_BYTES`` bytes
    shown as its start (``show``: 80 characters, text), and ``"cut"`` naming what was
    left out or cut. t166: such a silence was listed with its whole stored document, so
    one entry of 1 MB (another tool's changelog entry) made every ``GET /silences`` and
    ``silences list`` answer 1 MB larger, 60 such entries 60 MB. A field within what the
    API writes there (``written_whole``) is shown whole whatever its size: t214, an
    expired silence of 5 regexes of 1,000 characters, or a reason of 2,000 CJK
    characters, was listed with its matchers as 80 characters of text and its reason cut,
    so what it had silenced could not be read back nor added again (Alertmanager lists an
    expired silence's matchers whole)."""
    shown: dict[str, Any] = {}
    cut: list[str] = []
    for n, (name, value) in enumerate(doc.items()):
        label = shown_key(name) if len(name) > 64 else name
        if n >= MAX_LISTED_FIELDS:
            cut.append(f"{len(doc) - MAX_LISTED_FIELDS:,} more fields")
            break
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError):  # an int past 64 bits
            size = MAX_LISTED_FIELD_BYTES + 1
        if label == name and written_whole(name, value):
            size = 0
        if size > MAX_LISTED_FIELD_BYTES or label != name:
            cut.append(label)
        shown[label] = show(value) if size > MAX_LISTED_FIELD_BYTES else value
    if cut:
        shown["cut"] = cut
    return shown


def firing_matched(silence: Silence, firing: Iterable[Any]) -> dict[str, int]:
    """How many of the ``firing`` alerts' label sets (the firing table's values) the
    silence's matchers match, whether it is active yet or not: ``{"firing_matched": n,
    "firing": total}``. A control-room safety net: ``alert_id=~".+"`` is a valid silence
    (Alertmanager accepts it: it does not match the empty string) that mutes everything."""
    labels = [v for v in firing if isinstance(v, dict)]
    matched = sum(matches_all(silence.matchers, v) for v in labels)
    return {"firing_matched": matched, "firing": len(labels)}


def silence_already_expired(doc: Any, now: float) -> dict[str, Any] | None:
    """For a stored silence that has already ended by ``now`` (epoch s), how:
    ``{"action": "expire", "by", "at"}`` (``by`` None when it ran out on its own or was
    expired before who expired it was kept); None while it can still be expired."""
    ends = doc.get("ends_at") if isinstance(doc, dict) else None
    if not isinstance(ends, int | float) or isinstance(ends, bool) or ends > now:
        return None
    return {"action": "expire", "by": doc.get("expired_by"), "at": ends}


# Paging of the lists that grow (runs, silences): at most PAGE_DEFAULT items a page
# unless ``limit`` asks for another number, at most PAGE_MAX. Before t186 GET /runs
# answered every run of every worker in one body: a city's closed runs grow without end.
PAGE_DEFAULT = 500
PAGE_MAX = 1000
# The cursor's form: "c1." and the last listed item's sort key as base64url JSON; opaque
# to clients, who give back the ``next`` link as given.
_CURSOR_PREFIX = "c1."


def page_limit(text: str | None) -> int:
    """A request's ``limit`` query parameter (None: ``PAGE_DEFAULT``); ``ApiError`` 400
    naming it and its value unless it is a whole number from 1 to ``PAGE_MAX``."""
    if text is None:
        return PAGE_DEFAULT
    if re.fullmatch(r"[0-9]{1,7}", text) is None or not 1 <= int(text) <= PAGE_MAX:
        raise ApiError(
            400,
            f'query parameter "limit" is {show(text)}: expected a whole number from 1 to '
            f"{PAGE_MAX:,} (items a page; {PAGE_DEFAULT:,} when left out)",
        )
    return int(text)


def cursor_text(key: tuple[Any, ...]) -> str:
    """The opaque cursor that lists what sorts after ``key`` (an item's sort key)."""
    raw = base64.urlsafe_b64encode(orjson.dumps(list(key))).decode("ascii").rstrip("=")
    return _CURSOR_PREFIX + raw


def page_cursor(text: str | None, shape: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The sort key a ``cursor`` query parameter stands for (None: the first page), its
    parts of the types of ``shape``; ``ApiError`` 400 naming it and its value for text
    no page of this list gave (cut, edited, or another list's)."""
    if text is None:
        return None
    try:
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        raw = text[len(_CURSOR_PREFIX) :]
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(key, list) or len(key) != len(shape):
            raise ValueError
        for part, kind in zip(key, shape, strict=True):
            if not isinstance(part, kind) or isinstance(part, bool):
                raise ValueError
    except (ValueError, TypeError, orjson.JSONDecodeError, binascii.Error):
        raise ApiError(
            400,
            f'query parameter "cursor" is {show(text)}: not a cursor this list gave (give '
            "the next link of the page before as it is, or leave cursor out for the first "
            "page)",
        ) from None
    return tuple(key)


def paged(
    items: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], tuple[Any, ...]],
    limit: int,
    after: tuple[Any, ...] | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The page of ``items`` (any order) that sorts by ``key`` right after ``after``
    (None: from the first), at most ``limit`` of them, and the cursor of the next page
    (None on the last). Keyed by what an item keeps (a run's ``created_at`` and id, a
    silence's id), a page is stable while items are added: none is listed twice or
    passed over for being added between two pages (one added before the cursor is
    listed by the next traversal)."""
    ordered = sorted((key(item), n) for n, item in enumerate(items))
    start = 0 if after is None else bisect.bisect_right(ordered, (after, len(items)))
    chosen = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return [items[n] for _, n in chosen], cursor_text(chosen[-1][0]) if more else None


def next_link(path: str, query: Mapping[str, str], cursor: str | None) -> str | None:
    """The ``next`` link of a page: ``path`` with the request's other parameters and
    the next page's ``cursor``, None on the last page."""
    if cursor is None:
        return None
    return f"{path}?{urllib.parse.urlencode({**query, 'cursor': cursor})}"


def _alert_sort_key(alert: Any) -> tuple[str]:
    """A firing alert's place in the alerts list: by its id."""
    return (str(alert.get("alert_id", "")) if isinstance(alert, Mapping) else "",)


def listed_count(value: Any) -> int:
    """A count a listed run holds (``reopened``), 0 when it is none: a run another worker
    listed may be of another version's shape."""
    return value if type(value) is int else 0


def run_sort_key(run: Mapping[str, Any]) -> tuple[float, str]:
    """A listed run's place in the runs list: oldest first, by id within a second."""
    created = run.get("created_at")
    at = (
        float(created)
        if isinstance(created, int | float) and not isinstance(created, bool)
        else 0.0
    )
    return (at, str(run.get("run_id", "")))


# Request bodies are flat (a few fields, a list of matchers). Deeper nesting is refused
# before any field is read: str() or repr() of a value nested 1,000 levels deep (orjson
# decodes 1,024) raised RecursionError, a 500 instead of a 400.
MAX_BODY_DEPTH = 8
# A silence's matchers: playbooks.routing's MAX_SILENCE_MATCHERS and MAX_MATCHER_CHARS,
# which a stored silence is read with too.
# Silences not yet ended, in all: each is held by every worker and checked for every
# alert (trial 29: one operator's loop added 50,000; Alertmanager's own limit is
# --silences.max-silences). An expired one does not count.
MAX_SILENCES = 10_000


def request_fingerprint(by: str, action: str, doc: Mapping[str, Any]) -> str:
    """A request's identity for its Idempotency-Key: a hex SHA-256 of who sent it, the
    action and its JSON body with keys sorted (so key order and spacing do not count)."""
    text = orjson.dumps({"by": by, "action": action, "body": doc}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


def too_long(field: str, text: str, limit: int) -> str:
    """The 400's message for a text field over its limit (characters)."""
    return (
        f'field "{field}" is {len(text):,} characters, at most {limit:,}: keep the full text '
        "elsewhere and link to it"
    )


def check_free_text(field: str, text: str, limit: int) -> None:
    """``ApiError`` 400 naming ``field`` when an operator's free text (a run action's note,
    a reporter's comment, a silence's reason) is longer than ``limit`` characters or holds
    a control character other than a line break or a tab. Such text reaches the
    citizen's closure message, the audit, the worker's log and every terminal that runs
    ``runs show``; before t119 a NUL or an ESC in it was taken, which a report's own
    ``text`` has been refused for since t109 (docs/events.md)."""
    if len(text) > limit:
        raise ApiError(400, too_long(field, text, limit))
    reason = text_control(text)
    if reason is not None:
        raise ApiError(400, f'field "{field}" is {show(text)}: {reason}')


def nested_at_most(doc: Any, limit: int) -> bool:
    """Whether no list or object in ``doc`` is nested deeper than ``limit`` levels (the
    document itself is level 1). Iterative: safe at any depth."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return False
            inner = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in inner)
    return True


# aiohttp's own limit (web.Application's client_max_size), kept here so a 413 can name
# it: aiohttp's answered "Request Entity Too Large" and nothing more (trial 21).
API_MAX_BODY = 1024 * 1024


# Seconds a client may take to send a body, in all, as at the HTTP ingest: aiohttp waits
# for each chunk without end, so a body dripped a byte at a time held its connection and
# coroutine for as long as the client liked (trial 29). The worker's is the setting
# CITYBRAIN_HTTP_TIMEOUT (Settings.http_timeout), which bounds the request's head too.
API_BODY_TIMEOUT = 30.0


async def read_body(request: Any, limit: int, timeout: float | None = None) -> bytes:
    """An aiohttp request's body (faust's Request is one), at most ``limit`` bytes;
    ``ApiError`` 413 naming the limit for a larger one, before reading it when
    ``Content-Length`` says so, else (a chunked body) as soon as more than ``limit`` bytes
    have come; 408 when the whole body has not come within ``timeout`` seconds
    (API_BODY_TIMEOUT when None). Memory stays within ``limit``."""
    seconds = API_BODY_TIMEOUT if timeout is None else timeout
    try:
        async with asyncio.timeout(seconds):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(408, f"the body was not sent within {seconds:g}s") from None


# The request content codings the API reads: aiohttp decodes one gzip or deflate layer
# as the view reads the body (identity is none). Answered in a 415's Accept-Encoding.
BODY_CODINGS = ("identity", "gzip", "deflate")


def body_coding_fault(headers: Any) -> str | None:
    """Why the request's ``Content-Encoding`` cannot be read (aiohttp would not decode it,
    or only one layer of it), or None: unknown codings were ignored and the compressed
    bytes read as JSON, and ``gzip, gzip`` was read one layer deep (t117)."""
    given = ", ".join(headers.getall("Content-Encoding", []))
    codings = [c.strip().lower() for c in given.split(",") if c.strip()]
    layers = [c for c in codings if c != "identity"]
    if len(layers) <= 1 and all(c in BODY_CODINGS for c in layers):
        return None
    return (
        f"Content-Encoding is {shown_id(given)}: the operator API takes JSON uncompressed "
        "or in one gzip or deflate coding; send the body without compression (no "
        "Content-Encoding, or identity)"
    )


async def _read_body(request: Any, limit: int) -> bytes:
    coding = body_coding_fault(request.headers) if request.body_exists else None
    if coding is not None:
        # RFC 9110 section 15.5.16: 415, saying which codings would be read.
        raise ApiError(415, coding, {"Accept-Encoding": ", ".join(BODY_CODINGS)})
    try:
        return await _read_payload(request, limit)
    except web.RequestPayloadError as exc:
        # A body that is not what its Content-Encoding says (aiohttp decodes it as it is
        # read), or whose chunked framing breaks: raised out of the view, a 500 (t117).
        cause = exc.__cause__ or exc
        said = str(getattr(cause, "message", "") or cause).strip() or type(cause).__name__
        given = request.headers.get("Content-Encoding")
        how = f" as its Content-Encoding {shown_id(given)} says" if given else ""
        raise ApiError(400, f"the body could not be read{how}: {said[:200]}") from None


async def _read_payload(request: Any, limit: int) -> bytes:
    size = request.content_length
    if size is not None and size > limit:
        raise ApiError(
            413, f"body is {size:,} bytes, at most {limit:,} are accepted: send less in one request"
        )
    parts: list[bytes] = []
    got = 0
    while chunk := await request.content.read(65_536):
        got += len(chunk)
        if got > limit:
            raise ApiError(
                413,
                f"body is more than {limit:,} bytes (sent without Content-Length), at most "
                f"{limit:,} are accepted: send less in one request",
            )
        parts.append(chunk)
    return b"".join(parts)


def json_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; ``ApiError`` 400 when it is not JSON, not an
    object, nested deeper than MAX_BODY_DEPTH, or gives a key twice in one object
    (``{"satisfied": true, "satisfied": false}``: the last was taken silently, trial 13)."""
    try:
        # Read as every edge reads JSON (streams.events.decode_json): a syntax fault is
        # named in our words with its line, column, byte and the text there (trial 21:
        # orjson's own "unexpected character: line 1 column 7 (char 6)"); a bare NaN or a
        # number past a double is read, so the field's own check names it.
        doc = decode_json(raw, unique_keys=True)
    except EventError as exc:
        raise ApiError(400, str(exc) if exc.field else f"body is {exc.reason}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"body is {show(doc)}, expected a JSON object")
    if not nested_at_most(doc, MAX_BODY_DEPTH):
        raise ApiError(400, f"body nests deeper than {MAX_BODY_DEPTH} levels")
    return doc


def answer_comment(doc: Mapping[str, Any]) -> str:
    """The ``comment`` of an answer's body, "" when absent or null; ``ApiError`` 400
    naming it when it is not text, is longer than ``MAX_COMMENT`` characters or holds a
    control character (``check_free_text``). Checked before the run is asked, as a note is."""
    comment = doc.get("comment", "")
    # Each said with the value, as the other fields are (trials 21 and 22: "must be a
    # string of at most 1000 characters" named neither); null is no comment, as the
    # worker's own reading of an answer command takes it.
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise ApiError(400, f'field "comment" is {show(comment)}, expected text')
    check_free_text("comment", comment, MAX_COMMENT)
    return comment


def answer_fields(run: Run, doc: dict[str, Any]) -> dict[str, Any]:
    """The answer command's fields from a request body ``{"report_id", "satisfied",
    "comment"?}``; ``ApiError`` 400 for a bad field, 404 for a report the run does not
    cover, 409 when the report has had no closure to answer or already answered it
    (``run`` as it is once the API's earlier commands on it are applied: a second
    answer sent before the worker applied the first is that 409 too, trial 13)."""
    rid, satisfied = doc.get("report_id"), doc.get("satisfied")
    if not isinstance(rid, str) or not rid:
        raise ApiError(400, f'field "report_id" is {show(rid)}, expected a non-empty string')
    if not isinstance(satisfied, bool):
        raise ApiError(400, f'field "satisfied" is {show(satisfied)}, expected true or false')
    comment = answer_comment(doc)
    report = run.reports.get(rid)
    if report is None:
        # Echoed cut as every id a request names (a 100,000-character one came back
        # whole), with the closest among the run's own reports (at most MAX_REPORTS).
        # A run with none at all says so: `runs show` lists no id to pick (t48).
        none = "" if run.reports else ": it covers no citizen report at all"
        # Among as close ones, a report whose closure awaits its answer first (t102: one
        # that had answered already was named, and the command printed with it a 409).
        waiting = [r for r, v in run.reports.items() if v.get("status") == "replied"]
        near = closest(rid, run.reports)
        if (answerable := closest(rid, waiting)) is not None and near is not None:
            ratio = difflib.SequenceMatcher(None, rid.casefold())
            near = answerable if _ratio(ratio, answerable) >= _ratio(ratio, near) else near
        hint = f" (did you mean {str(near)!r}?)" if near is not None else ""
        raise ApiError(404, f"run {run.run_id} covers no report {shown_id(rid)}{hint}{none}")
    status = report["status"]
    if status == ReplyStatus.OPEN.value:
        raise ApiError(409, f"report {rid} is open: no closure to answer")
    if status != ReplyStatus.REPLIED.value:
        # One rule for every reporter (trial 6): one answer per closure; the next
        # closure (when the run closes again) can be answered again.
        said = {
            ReplyStatus.SATISFIED.value: "satisfied",
            ReplyStatus.REOPENED.value: "not satisfied, which reopened the run",
            ReplyStatus.UNSATISFIED.value: "not satisfied, recorded only (the run was "
            "reopened already)",
        }.get(status, status)
        then = (
            "a satisfied reporter hears no more closures"
            if status == ReplyStatus.SATISFIED.value
            else f"the next closure, when run {run.run_id} closes again, can be answered"
        )
        # The same answer again is a 200 "already" (already_answered): this one differs.
        raise ApiError(
            409,
            f"report {rid} has answered its closure already ({said}): a different answer "
            f"is not taken; {then}",
        )
    return {"report_id": rid, "satisfied": satisfied, "comment": comment}


_ANSWERED_AS = {
    ReplyStatus.SATISFIED.value: True,
    ReplyStatus.REOPENED.value: False,
    ReplyStatus.UNSATISFIED.value: False,
}


def already_answered(run: Run, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """For an answer the report's closure has had already, the same one again (the same
    ``satisfied`` and comment: a desk's retry), what happened: ``{"action": "answer",
    "report_id", "satisfied", "by", "at", "comment"}`` (``by``/``at`` from the run's
    record of the answer, None when it is no longer kept). None for anything
    else, which ``answer_fields`` checks: a different answer to an answered closure
    stays its 409. The API answers the repeat with 200 and ``{"already": ...}`` as it
    does a repeated ack (t219: it was a 409, exit 1, for the same answer twice)."""
    rid, satisfied = doc.get("report_id"), doc.get("satisfied")
    if not isinstance(rid, str) or not isinstance(satisfied, bool):
        return None
    report = run.reports.get(rid)
    if report is None:
        return None
    if _ANSWERED_AS.get(str(report.get("status"))) is not satisfied:
        return None
    comment = doc.get("comment") or ""
    said = f"report {rid}: " + ("satisfied" if satisfied else "not satisfied")
    said += f": {comment}" if comment else ""
    mine = [a for a in run.actions if a.get("action") == "answer"]
    last = next((a for a in reversed(mine) if _answer_said(a, rid)), None)
    if last is not None and not _answer_said(last, rid, said):
        return None  # another comment: a different answer, not the same one again
    last = last or {}
    return {
        "action": "answer",
        "report_id": rid,
        "satisfied": satisfied,
        "by": last.get("by"),
        "at": last.get("at"),
        "comment": comment,
    }


def _answer_said(action: Mapping[str, Any], rid: str, said: str | None = None) -> bool:
    """Whether a run's record of an answer is report ``rid``'s (``said``: that answer's
    own words, as the engine records them, with or without "(recorded only ...)")."""
    note = action.get("note")
    if not isinstance(note, str):
        return False
    if said is None:
        return note.startswith(f"report {rid}: ")
    return note == said or note.startswith(f"{said} (recorded only: ")


def _ratio(matcher: difflib.SequenceMatcher[str], choice: object) -> float:
    """How close ``choice`` is to the text ``matcher`` holds as its first sequence."""
    matcher.set_seq2(str(choice).casefold())
    return matcher.ratio()


_DONE = {"ack": "acknowledged", "resolve": "resolved", "cancel": "cancelled"}


def _last(run: Run, *actions: str) -> dict[str, Any] | None:
    return next((a for a in reversed(run.actions) if a.get("action") in actions), None)


def already_done(run: Run, action: str) -> dict[str, Any] | None:
    """For an action the run's state says has already happened, what happened:
    ``{"action", "by", "at", "note"}`` (``at`` in epoch seconds, ``by``/``note`` from
    the run's records, None where a run stored before they were kept lacks them; and
    ``level``, the grid level it was given at, None for one recorded before t114);
    None when the action would change the run. The API answers such a repeat with 200
    and ``{"already": ...}`` and sends no command, so a repeat never looks like a first
    success."""
    status = RunStatus(run.status)
    if action == "ack" and run.acknowledged_at is not None:
        last = _last(run, "ack") or {}
        return {
            "action": "ack",
            "by": run.acknowledged_by,
            "at": run.acknowledged_at,
            "note": last.get("note"),
            "level": last.get("level"),  # where it was given; None before t114
        }
    wanted = {"resolve": RunStatus.RESOLVED, "cancel": RunStatus.CANCELLED}.get(action)
    if wanted is not None and status is wanted:
        last = _last(run, action) or {}
        return {
            "action": action,
            "by": run.resolved_by,
            "at": last.get("at", run.resolved_at or run.updated_at),
            "note": run.resolution,
            "level": last.get("level"),
        }
    if action in ("approve", "reject") and status is not RunStatus.WAITING_APPROVAL:
        decided = _last(run, "approve", "reject")
        if decided is not None and decided["action"] == action:
            return dict(decided)
    return None


def escalated_from(doc: Mapping[str, Any]) -> str | None:
    """An escalate body's ``from_level``: the grid level the coordinator saw the run at
    (``community``, ``street`` or ``district``), None when not given. ``ApiError`` 400
    naming the field and value for anything else."""
    if "from_level" not in doc:
        return None
    value = doc["from_level"]
    if not isinstance(value, str) or value not in PARENT_LEVEL:
        raise ApiError(
            400,
            f'field "from_level" is {show(value)}, expected the level you saw the run at: '
            f"one of {', '.join(PARENT_LEVEL)} (a run at the city level goes no further)",
        )
    return str(value)


def already_escalated(run: Run, from_level: str) -> dict[str, Any] | None:
    """For an escalate from ``from_level`` of a run already above it (another coordinator
    or the playbook's ladder escalated it since it was seen there), what happened:
    ``{"action": "escalate", "level", "from_level", "by", "at", "note"}`` (``by``, ``at``
    and ``note`` from the last escalation by hand to this level, None when the ladder
    took it there). ``ApiError`` 409 for a run below ``from_level`` (the level given is
    not one it has been at). None when the run is at ``from_level``: two coordinators
    who saw it there escalate it once, not twice (t110)."""
    at, wanted = LEVELS.index(run.level), LEVELS.index(from_level)
    if at == wanted:
        return None
    if at < wanted:
        raise ApiError(
            409,
            f'run {run.run_id} is at the {run.level} level, not {from_level} ("from_level"): '
            "nothing escalated; look at the run again and give the level it is at",
        )
    last = _last(run, "escalate") or {}
    by_hand = last.get("level") == run.level
    return {
        "action": "escalate",
        "level": run.level,
        "from_level": from_level,
        "by": last.get("by") if by_hand else None,
        "at": last.get("at") if by_hand else None,
        "note": last.get("note") if by_hand else None,
    }


def action_note(doc: Mapping[str, Any]) -> str:
    """The note of a run action's body ``{"note"?, "reason"?}`` (``reason`` is its other
    name), "" when neither is given. ``ApiError`` 400 naming the field and value for a
    note that is not text or is longer than ``MAX_NOTE`` characters, or for both names
    given at once. Checked before the run's state is: t102's ``{"note": 5}`` on an
    acknowledged run was a 200 "already" and on a resolved one a 409, the bad field
    unsaid, and a ``reason`` beside a ``note`` was dropped unread."""
    given = [f for f in ("note", "reason") if f in doc]
    for field in given:
        value = doc[field]
        if not isinstance(value, str):
            raise ApiError(400, f'field "{field}" is {show(value)}, expected text')
        check_free_text(field, value, MAX_NOTE)
    if len(given) == 2:
        raise ApiError(
            400,
            f'fields "note" and "reason" are both given ({show(doc["note"])} and '
            f'{show(doc["reason"])}): "reason" is the note\'s other name, give one',
        )
    return str(doc[given[0]]) if given else ""


def api_action(method: str, run_action: str | None) -> str:
    """The ``action`` label of ``citybrain_api_requests_total`` for a request: the
    permission it asks for (``read`` for GET and HEAD, ``silence``, ``expire_silence``,
    a run action's: ``ack``, ``resolve``, ``escalate``, ``cancel``, ``approve``,
    ``answer``), ``none`` for a run action the API does not have."""
    if method in ("GET", "HEAD"):
        return "read"
    if method == "DELETE":
        return "expire_silence"
    if run_action is None:
        return "silence"
    return RUN_ACTIONS.get(run_action, "none")


def run_part(run: Run, report_id: str | None = None) -> dict[str, Any]:
    """The part a run is of its citizen reports, for the 202 of an answer or a closing
    (resolve, cancel): ``{"run_id", "playbook", "department"}``, and for an answer the
    ``report_id`` and its other parts (``also``: runs of other groups covering the same
    report, ``{"group", "playbook", "department"}`` each; empty when this run is its
    only one). A closing names every report it closes that has other parts
    (``reports_with_other_parts``: report id -> its ``also``)."""
    part: dict[str, Any] = {
        "run_id": run.run_id,
        "playbook": run.playbook,
        "department": run.department,
    }
    if report_id is not None:
        part["report_id"] = report_id
        part["also"] = list(run.reports.get(report_id, {}).get("also", []))
    else:
        part["reports_with_other_parts"] = {
            rid: list(r["also"]) for rid, r in run.reports.items() if r.get("also")
        }
    return part


def reopens(run: Run) -> bool:
    """Whether an unsatisfied answer reopens ``run`` as it stands: only a finished run
    (resolved or cancelled) is reopened; on one that is open again (another reporter's
    answer to the same closure reopened it) or failed, the answer is only recorded."""
    return is_terminal(run) and run.status != RunStatus.FAILED.value


def refused(run: Run, action: str) -> str | None:
    """Why the run's state refuses ``action`` (the 409's text), or None. Checked here
    rather than left to the worker, whose refusal would only reach the audit topic
    after the API had said "accepted"."""
    status = RunStatus(run.status)
    if action == "answer":
        return None  # answers come after the closure, to a finished (or reopened) run
    if status is RunStatus.FAILED and action in ("resolve", "cancel"):
        return None  # finished by hand: its reporters hear their closure then
    if is_terminal(run):
        # What can be done instead (t119: the 409 named the state and nothing after it).
        if status is RunStatus.FAILED:
            then = "a failed run is closed by hand: resolve or cancel it"
        elif run.reports:
            then = (
                "it is closed; a reporter's unsatisfied answer reopens it, and a new alert "
                "of its group starts a new run"
            )
        else:
            then = "it is closed; a new alert of its group starts a new run"
        return f"run {run.run_id} is {run.status}: cannot {action} ({then})"
    if action in ("approve", "reject") and status is not RunStatus.WAITING_APPROVAL:
        last = _last(run, "approve", "reject")
        done = f" ({last['action']}d by {last['by']})" if last else ""
        return f"run {run.run_id} is {run.status}, not waiting for an approval{done}"
    if action == "escalate" and PARENT_LEVEL.get(run.level) is None:
        return f"run {run.run_id} is already at the city level: cannot escalate further"
    return None


# An id a request names is echoed in its answer cut to this many characters: a 5,000
# character run id came back whole in its 404 (trial 25).
MAX_SHOWN_ID = 200


# The request headers a view reads as text or passes on to another worker: each must be
# UTF-8 (aiohttp keeps a byte that is not as a lone surrogate, which hashing the key, or
# writing the header again to pass the request on, could not encode: a 500, t117).
TEXT_REQUEST_HEADERS = ("Content-Type", "Idempotency-Key")


def header_fault(headers: Mapping[str, str]) -> str | None:
    """Why one of ``TEXT_REQUEST_HEADERS`` cannot be read (its first byte that is not
    UTF-8, named with the header and its value as sent), or None."""
    for name in TEXT_REQUEST_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            sent = value.encode("utf-8", "surrogateescape")
            byte = value[exc.start].encode("utf-8", "surrogateescape")
            return (
                f"header {name!r} is {show(sent)}: byte 0x{byte.hex().upper()} is not UTF-8 "
                "(send the header as UTF-8 text; ASCII is safest)"
            )
    return None


def shown_id(text: str) -> str:
    """``text`` (a run or silence id from a request) quoted as an answer shows it: whole
    up to ``MAX_SHOWN_ID`` characters, else its start and its length."""
    if len(text) <= MAX_SHOWN_ID:
        return repr(text)
    return f"{text[: MAX_SHOWN_ID // 2]!r}... ({len(text):,} characters)"


def run_in_group(group: Mapping[str, Any] | None, run_id: str) -> Run:
    """The run ``run_id`` from its group's stored state (``groups`` table value, or None).
    A group keeps only its latest run (``<group key>.<generation>``), so an older run
    of the group is gone: ``ApiError`` 409 naming the run that superseded it and what to
    do instead; 404 for a run that never was."""
    current = group.get("run") if group else None
    if not group or not current:
        raise ApiError(404, f"no run {shown_id(run_id)}")
    if current["run_id"] == run_id:
        return Run.from_dict(current)
    # Generations are issued as 1, 2, 3, ... (streams.response): ".0", ".01" or a
    # negative one was never a run, so it is a 404, not "superseded" (trial 6; the rule
    # the worker's unknown_run keeps too, streams.context.superseded_generation).
    if superseded_generation(group, run_id):
        raise ApiError(
            409,
            f"run {run_id} was superseded by run {current['run_id']} (a later alert of "
            f"the same group, {current['kind']} at {current['grid_cell']}, opened it after "
            f"{run_id} closed); a group keeps only its latest run, so {run_id} can no "
            "longer be changed or reopened: relay the reporter's answer as a new report, "
            f"or answer run {current['run_id']} if it covers the report",
        )
    raise ApiError(404, f"no run {shown_id(run_id)}")


def superseded_run(group: Mapping[str, Any] | None, run_id: str) -> dict[str, Any] | None:
    """The finished run ``run_id`` as its group kept it after a newer run superseded it
    (``{"run": <run dict>, "by": <newer run id>, "at": epoch s}``), or None when the group
    keeps it no longer (it keeps the last few, streams.response ``KEEP_SUPERSEDED``)."""
    for kept in (group or {}).get("superseded", ()):
        if kept["run"]["run_id"] == run_id:
            return dict(kept)
    return None


# How long the operator API waits for a run whose first steps are out but whose state is
# not yet stored (one produce round trip, normally milliseconds).
RUN_STORE_WAIT = 5.0


async def stored_run(
    read_group: Callable[[], Mapping[str, Any] | None],
    storing: Mapping[str, asyncio.Event],
    run_id: str,
    wait: float = RUN_STORE_WAIT,
) -> Run:
    """``run_in_group`` of the group ``read_group`` returns; a run being stored
    (``storing``: its first steps are on Kafka, its state not yet) is waited for, at most
    ``wait`` seconds, instead of being reported absent: an operator acking the instant a
    step arrived got 404 "no run" in that window. Raises ``ApiError`` as
    ``run_in_group``."""
    try:
        return run_in_group(read_group(), run_id)
    except ApiError as exc:
        event = storing.get(run_id)
        if exc.status != 404 or event is None:
            raise
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), wait)
    return run_in_group(read_group(), run_id)


def json_content_type(kind: str | None) -> str | None:
    """Why a request body of Content-Type ``kind`` cannot be read as JSON (the text of a
    415), None when it can: no header, ``application/json`` or ``*/*+json``, UTF-8. The
    ingest's rule (citybrain/ingest/http.py): a form-encoded body (curl's ``-d`` without
    ``-H``) was read as JSON and refused as a bad body (trial 8)."""
    if kind is None:
        return None
    media, _, params = kind.partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
    if (media == "application/json" or media.endswith("+json")) and (
        charset is None or charset.group(1).lower() in ("utf-8", "utf8")
    ):
        return None
    return f"Content-Type is {kind[:80]!r}, expected application/json (UTF-8)"


def query_params(query: Any, path: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A request's query parameters (aiohttp's multidict ``query``) as a dict, each given
    at most once; ``ApiError`` 400 naming the parameter and its value for one ``path``
    does not take (``allowed``) or one given twice. A misspelt ``?stauts=open`` listed
    every run and ``?status=open&status=resolved`` only the open ones, silently (trial 25)."""
    taken: dict[str, str] = {}
    for name in query:
        values = query.getall(name)
        if name not in allowed:
            takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
            raise ApiError(
                400,
                f'query parameter "{shown_name(name[:MAX_SHOWN_ID])}" is {show(values[0])}: '
                f"{path[:MAX_SHOWN_ID]} takes no such parameter ({takes})"
                f"{did_you_mean(name, allowed)}",
            )
        if len(values) > 1:
            raise ApiError(
                400,
                f'query parameter "{name}" is given {len(values)} times '
                f"({', '.join(show(v) for v in values[:5])}): give it once",
            )
        taken[name] = values[0]
    return taken


# Alertmanager's API v2 silence fields (PostableSilence) a client of it sends here, and
# what each is in a citybrain silence: "comment" was refused with no hint of "reason".
ALERTMANAGER_SILENCE_FIELDS = {
    "comment": 'write it as "reason"',
    "startsAt": 'write it as "starts_at"',
    "endsAt": 'write it as "ends_at"',
    "createdBy": "leave it out: the author is the name of the request's token",
    "id": "silences are not edited: expire it and add a new one",
}


def body_fields(
    doc: Mapping[str, Any],
    allowed: tuple[str, ...],
    what: str,
    known: Mapping[str, str] | None = None,
) -> None:
    """``ApiError`` 400 naming the first field of the request body ``doc`` that ``what``
    (``"a silence"``, ``"ack"``) does not take, with those it takes: a misspelt ``"nte"``
    was dropped silently and the action taken without its note (trial 25). ``known``
    maps a field another API names (Alertmanager's ``comment``) to what to do instead."""
    for name in doc:
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            if known is not None and name in known:
                hint = f" (Alertmanager's API v2 field; here {known[name]})"
            raise ApiError(
                400,
                f'field "{shown_name(name[:MAX_SHOWN_ID])}" is {show(doc[name])}: '
                f"{what} takes no such "
                f"field (it takes {', '.join(allowed)}){hint}",
            )


# The operator API's paths (docs/openapi.yaml), named in a 404.
API_PATHS = (
    "/runs",
    "/runs/{run_id}",
    "/runs/{run_id}/{action}",
    "/alerts",
    "/silences",
    "/silences/{silence_id}",
)


async def unknown_path(request: web.Request) -> str:
    """The text of a 404 for a path no view serves: the path one without its trailing
    slash would reach (``/api/v1/runs/`` was told "the operator API is under /api/v1",
    which it is: trial 25), else the API's paths."""
    path = request.path
    stripped = path.rstrip("/")
    if stripped and stripped != path:
        match = await request.app.router.resolve(request.clone(rel_url=stripped))
        missing = match.http_exception
        if missing is None or missing.status == 405:
            return f"no such path {shown_id(path)}: without the trailing slash, {stripped!r}"
    # A misspelt first part (/api/v1/runz, /api/v1/silence/x): the path with it spelt.
    hint = ""
    other = re.match(r"/api/v\d+(?=/)", path)
    if other and other.group() != PREFIX:
        # Alertmanager's API is /api/v2: an amtool user's /api/v2/silences (t102) was
        # told only the paths; the same path under this API's version, when it has one.
        meant = PREFIX + path[other.end() :]
        match = await request.app.router.resolve(request.clone(rel_url=meant))
        if match.http_exception is None or match.http_exception.status == 405:
            hint = f" (this API is {PREFIX}: did you mean {shown_id(meant)}?)"
    head, _, rest = path.removeprefix(PREFIX + "/").partition("/")
    if path.startswith(PREFIX + "/"):
        near = closest(head, {p.split("/")[1] for p in API_PATHS})
        if near is not None and near != head:
            hint = f" (did you mean {shown_id(PREFIX + '/' + str(near) + (rest and '/' + rest))}?)"
    return (
        f"no such path {shown_id(path)}: the operator API's paths are "
        f"{', '.join(PREFIX + p for p in API_PATHS)} (docs/openapi.yaml){hint}"
    )


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own answers (an unknown path's 404, another method's 405, with Allow) as
    the JSON ``{"error": ...}`` every other answer of the API is, not its plain text
    ``404: Not Found`` (trial 8). The views' own answers pass through as they are."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            text = await unknown_path(request)
        elif exc.status == 405:
            allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
            text = f"{request.method} is not allowed on {request.path[:200]!r}" + (
                f": it takes {', '.join(allowed)}" if allowed else ""
            )
        else:
            text = exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error": text}, status=exc.status, headers=headers)


def elsewhere(run_id: str, owned: set[int], partitions: int) -> str | None:
    """Why a run absent here may exist on another worker: its group's partition (of
    ``routed`` and ``commands``, ``partitions`` in all) is not in ``owned`` (this worker's
    partitions), so the worker that owns it holds the run; None when this worker owns it
    (the run does not exist). With several workers the 404 says so, not just "no run".
    A request about such a run is passed on to its owner (``owner_elsewhere``); this is
    said only when none is known, or the partition moved while it was passed on."""
    partition = key_partition(run_key(run_id), partitions)
    if partition in owned:
        return None
    return (
        f"no run {shown_id(run_id)} on this worker: its group is on partition {partition}, which "
        "another worker owns (runs live on the worker that owns their partition), and the "
        "consumer group names no other worker for it now (it is moving: a worker joined or "
        "left); retry in a few seconds, or ask the worker that owns it (the CLI's --url)"
    )


# A request one worker passed on to the worker that owns its run's partition carries this
# header; that worker answers it from its own state and never passes it on again (a
# partition that moved meanwhile is its 404 or 503, not a loop between workers).
FORWARDED_HEADER = "X-Citybrain-Forwarded-By"
# How long a worker waits for the owner's answer to a request it passed on: the owner's
# own waits (Kafka's acknowledgement, API_KAFKA_WAIT; a run being stored, RUN_STORE_WAIT)
# and some slack, under the HTTP timeout the client's request lives within.
API_FORWARD_WAIT = 15.0
# The request headers passed on: what the owner reads (the token, the body's type, the
# retry key), nothing hop-by-hop.
FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
# The most a worker reads of another worker's answer to a request it passed on: one page
# of up to PAGE_MAX runs is normally a few MB (t194: it was read whole, however large,
# and an endless answer grew the worker's memory until the wait ran out). A peer that
# answers more is named and refused (for a list: not read, said in the answer).
API_PEER_MAX_BYTES = 64 * 1024 * 1024
# The query parameters of a paged list; an older worker (before t186) takes none of
# them, and answers its whole list without them (``PeerRead``).
PAGING_PARAMETERS = ("limit", "cursor")


class PeerAnswerTooLarge(Exception):
    """A peer worker's answer longer than ``API_PEER_MAX_BYTES`` (declared or read)."""


async def bounded_body(answer: Any, limit: int | None = None) -> bytes:
    """The body of aiohttp's ``answer`` (a peer worker's), read in chunks; raises
    ``PeerAnswerTooLarge`` as soon as its declared length or what came passes ``limit``
    bytes (None: ``API_PEER_MAX_BYTES``; an endless answer is cut there, not read into
    memory whole)."""
    if limit is None:
        limit = API_PEER_MAX_BYTES
    declared = answer.content_length
    if declared is not None and declared > limit:
        raise PeerAnswerTooLarge(f"{declared:,} bytes declared")
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PeerAnswerTooLarge(f"more than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def unlisted_warning(entry: Mapping[str, Any]) -> str:
    """The line a runs list's ``warnings`` gives for one of its ``unlisted`` entries
    (``{"worker": URL or None, "partitions": [n, ...], "reason": text}``)."""
    held = ", ".join(map(str, entry["partitions"]))
    plural = "s" if len(entry["partitions"]) != 1 else ""
    who = f"the worker at {entry['worker']}" if entry["worker"] else "no worker"
    return (
        f"the runs of partition{plural} {held} are not in this list: {who} "
        f"({entry['reason']}); list again in a few seconds"
    )


def peer_runs(doc: Any) -> list[dict[str, Any]] | None:
    """The runs of a peer worker's ``GET /runs`` answer (decoded JSON), or None when it is
    no list of runs: this version's ``{"runs": [...], "next": ...}``, an older one's
    ``{"runs": [...]}`` without ``next``, or a bare list. An item that is not an object
    (no run) is left out; a run of an older shape (a field this version adds missing)
    is kept as it came: the list's filters and order read it with defaults."""
    runs = doc.get("runs") if isinstance(doc, dict) else doc
    if not isinstance(runs, list):
        return None
    return [r for r in runs if isinstance(r, dict)]


def partition_owners(distribution: Mapping[str, Mapping[str, Any]], topic: str) -> dict[int, str]:
    """Partition -> the URL of the worker that owns it, for the changelog ``topic`` of a
    table, from the consumer group's last assignment as faust's assignor keeps it
    (``changelog_distribution``: worker URL -> {changelog topic: [partitions]}). A
    partition no worker holds (a member left, the next assignment not yet made) is
    absent."""
    return {
        int(partition): url
        for url, topics in distribution.items()
        for partition in topics.get(topic, ()) or ()
    }


def run_partition(run_id: str, partitions: int) -> int:
    """The partition of ``run_id``'s group: of ``routed``, ``commands`` and the ``groups``
    table alike (each keyed by the group key, Kafka's default partitioner)."""
    return key_partition(run_key(run_id), partitions)


def owner_elsewhere(
    partition: int, owned: set[int], owners: Mapping[int, str], own_url: str
) -> str | None:
    """The URL of the worker to pass a request about ``partition`` on to, or None when
    this worker answers it itself: it owns the partition (``owned``), or the group's last
    assignment names no other worker for it (``owners``, ``partition_owners``), or names
    this one (``own_url``: it was given it and is still taking it over)."""
    if partition in owned:
        return None
    url = owners.get(partition)
    if url is None or url.rstrip("/") == own_url.rstrip("/"):
        return None
    return url.rstrip("/")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# How long an operator action waits for the API's earlier commands on the same run to be
# applied (normally milliseconds: the command topic's round trip to its own worker).
COMMAND_SETTLE_SECONDS = 5.0


def not_yet(what: str, reason: str) -> ApiError:
    """The 503 of a call this worker cannot answer truly yet (``Context.reading_back``):
    ``what`` it was asked, ``reason`` why; retrying in a moment is safe."""
    return ApiError(
        503,
        f"{what} cannot be answered yet: {reason}; retry in a few seconds (nothing was applied)",
        {"Retry-After": "2"},
    )


def keep_unconfirmed(
    pending: PendingCommands, run_id: str, command_id: str, queued: list[Awaitable[Any]]
) -> None:
    """After a 503 for command ``command_id``: released at once when it was never queued
    (``queued`` empty); else held as unconfirmed until its delivery's outcome, since a
    queued command still reaches Kafka once the broker answers (a failed delivery
    releases it; a delivered one the worker releases when it applies it). Released at
    once, a second terminal's action on the run was checked against the run without it
    and could be told 202 for what the worker then refused or took as a no-op (t110)."""
    if not queued:
        pending.release(run_id, command_id)
        return
    pending.unconfirm(run_id, command_id)

    def settled(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            pending.release(run_id, command_id)

    asyncio.ensure_future(queued[0]).add_done_callback(settled)


def kafka_unreachable(what: str, retry: str, wait: float = API_KAFKA_WAIT) -> ApiError:
    """The 503 of a state-changing call whose write Kafka has not acknowledged within
    ``wait`` seconds: ``what`` was written, ``retry`` says how a retry stays safe."""
    return ApiError(
        503,
        f"Kafka is unreachable: it has not acknowledged {what} in {wait:g} s, so nothing is "
        f"applied yet; retry ({retry})",
        {"Retry-After": "5"},
    )


# Times a request gives (a silence's starts_at and ends_at; ends from a duration too) lie
# from 2000-01-01 to 100 years after now: further out is a mistake (epoch milliseconds
# read as seconds land in the year 58,000, past what a date can show), and a time before
# 2000 is no silence anyone means.
EARLIEST_REQUEST_TIME = 946_684_800.0  # 2000-01-01T00:00:00Z
REQUEST_TIME_AHEAD = 100 * 365.25 * 86400.0  # seconds after now


def request_time(field: str, value: Any, now: float) -> float:
    """``value`` of the request field ``field`` as epoch seconds: a number (epoch
    seconds) or a time in text read as Alertmanager 0.25's silences API reads
    ``startsAt``/``endsAt`` (``streams.events.am_epoch``: go-openapi strfmt's
    ``DateTime``; no zone is UTC, any offset under 100 hours, ``""`` the epoch);
    ``ApiError`` 400 naming the field and value when it is neither (saying which
    spellings are taken), not finite, looks like epoch milliseconds, or lies outside
    2000-01-01 .. ``now`` + 100 years (``EARLIEST_REQUEST_TIME``, ``REQUEST_TIME_AHEAD``,
    citybrain's own bounds)."""
    expected = "expected epoch seconds or ISO 8601 (2026-12-01T10:00:00Z)"
    if isinstance(value, str):
        # The spellings Alertmanager's POST /api/v2/silences takes, and the instant it
        # reads (t146; its differential, test_silences_api_differential): before, a rule
        # of citybrain's own took `t`, `z`, a space before a zone, +0100 and +01, which
        # Alertmanager refuses, and refused a time without a zone, an offset past 23:59
        # (-25:30) and offset minutes past 59 (+01:60), which it takes.
        read = 0.0 if value == "" else am_epoch(value)  # strfmt reads "" as 1970-01-01
        if isinstance(read, str):
            raise ApiError(
                400, f'field "{field}" is {show(value)}: {read}; or epoch seconds, a number'
            )
        number = read
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f'field "{field}" is {show(value)}: {expected}')
    else:
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float: finite, but past any date
            raise ApiError(
                400, f'field "{field}" is {show(value)}: more than 100 years from now; {expected}'
            ) from None
        if not math.isfinite(number):
            raise ApiError(400, f'field "{field}" is {show(value)}: not finite; {expected}')
    latest = now + REQUEST_TIME_AHEAD
    if number > latest and epoch_unit_guess(number) is not None:
        # Milli-, micro- or nanoseconds (t109: only milliseconds were said).
        raise ApiError(
            400,
            f'field "{field}" is {show(value)}: that looks like epoch '
            f"{epoch_unit_guess(number)}; {expected}",
        )
    if number > latest:
        raise ApiError(
            400, f'field "{field}" is {show(value)}: more than 100 years from now; {expected}'
        )
    if number < EARLIEST_REQUEST_TIME:
        raise ApiError(400, f'field "{field}" is {show(value)}: before 2000-01-01; {expected}')
    return number


def silence_times(
    doc: Mapping[str, Any], now: float
) -> tuple[float | None, float | None, float | None]:
    """A silence request's (starts_at, ends_at, duration in seconds) checked: each time by
    ``request_time`` (None where not given), the duration a Prometheus duration above 0
    and at most 100 years; ``ApiError`` 400 for a bad one, or for ``ends_at`` and
    ``duration`` both given."""
    given = {name: doc.get(name) for name in ("starts_at", "ends_at", "duration")}
    if given["ends_at"] is not None and given["duration"] not in (None, ""):
        raise ApiError(
            400,
            f"give ends_at or duration, not both (ends_at {show(given['ends_at'])}, "
            f"duration {show(given['duration'])})",
        )
    starts = (
        None if given["starts_at"] is None else request_time("starts_at", doc["starts_at"], now)
    )
    ends = None if given["ends_at"] is None else request_time("ends_at", doc["ends_at"], now)
    seconds = None
    if ends is None:
        if "duration" not in doc:
            # An empty body came here as {}: "duration is empty" named no field to add.
            raise ApiError(
                400,
                'field "duration" is missing: give "duration" (1h30m) or "ends_at" '
                '(a silence is {"matchers": [...], "duration": "1h", "reason": "..."})',
            )
        duration = "" if given["duration"] is None else given["duration"]
        if not isinstance(duration, str):
            raise ApiError(400, f'field "duration" is {show(duration)}, expected text')
        try:
            seconds = parse_duration(duration)
        except (ValueError, RoutingConfigError) as exc:
            raise ApiError(400, str(exc)) from None
        if not seconds > 0:
            raise ApiError(400, f'"duration" is {duration!r}, expected more than 0, e.g. 30m or 2h')
        if not seconds <= MAX_SILENCE_SECONDS:
            raise ApiError(400, f'"duration" is {duration!r}: more than 100 years')
    return starts, ends, seconds


def unauthenticated_reason(tokens: TokenStore, authorization: str | None) -> str:
    """Why a request without a valid token is refused (the text of its 401): the API has
    no tokens at all, the request carries none, or its token is not one of them."""
    return refusal_401(
        tokens,
        authorization,
        "the operator API",
        "on the worker (docs/playbooks.md, Operator API)",
        ("operator", "coordinator"),
    )


# The fields each request body takes (docs/openapi.yaml); "reason" is a run action's
# note by another name.
ACTION_FIELDS = ("note", "reason")
ESCALATE_FIELDS = (*ACTION_FIELDS, "from_level")
ANSWER_FIELDS = ("report_id", "satisfied", "comment", "note")
SILENCE_FIELDS = ("matchers", "reason", "starts_at", "ends_at", "duration")


class ApiView(View):
    """A faust view that answers HEAD only where it answers GET: faust's registers HEAD
    on every path and answers it with ``get``, so on a POST-only path HEAD was a 405
    without Allow, while another method's 405 listed HEAD as allowed (trial 25)."""

    def get_methods(self) -> set[str]:
        methods = set(super().get_methods())
        if "GET" not in methods:
            methods.discard("HEAD")
        return methods


def register_api(app: faust.App, ctx: Context) -> None:
    # The tokens are ``ctx.tokens``, read at each request: a reload (SIGHUP,
    # streams/reload.py) swaps them, so a revoked token is refused from then on.
    # Before the web server starts: aiohttp freezes its middlewares then.
    web_app: web.Application = app.web.web_app  # type: ignore[attr-defined]  # the aiohttp driver
    web_app.middlewares.append(json_errors)

    @app.task  # type: ignore[untyped-decorator]
    async def announce_api() -> None:
        # In the start-up log, so a refused operator can see why from the worker side.
        tokens = ctx.tokens
        if not len(tokens):
            log.warning(
                "citybrain: operator API closed: no tokens configured "
                "(CITYBRAIN_API_TOKENS_FILE), every %s request gets 401",
                PREFIX,
            )
        else:
            # Gateway tokens (the HTTP ingest's, in the demo's file too) open nothing here.
            users = tokens.count(("operator", "coordinator"))
            log.info("operator API open on %s with %d token(s)", PREFIX, users)
        if warning := exposed(tokens.path):
            log.warning("citybrain: %s", warning)

    async def authorize(
        view: View, request: Request, action: str, config: Config | None = None
    ) -> Principal:
        authorization = request.headers.get("Authorization")
        # faust types headers as a Mapping; aiohttp's is a multidict that holds them all.
        headers: Any = request.headers
        twice = one_authorization(headers.getall("Authorization", []))
        # One store for the whole request, whatever a reload does: the request's
        # ``config`` when it reads more of the configuration after an await (t133).
        tokens = (config or ctx.config).tokens
        principal = None if twice else tokens.authenticate(authorization)
        reason = None
        if twice:
            reason = (400, twice)
        elif principal is None:
            reason = (401, unauthenticated_reason(tokens, authorization))
        elif not principal.may(action):
            reason = (403, forbidden_reason(principal, action))
        if reason is not None:
            # Every refusal is audited; the token itself is never recorded.
            await ctx.audit(
                {
                    "action": "api_refused",
                    "at": time.time(),
                    "actor": principal.name if principal else "anonymous",
                    "detail": f"{request.method} {request.url.path}: {reason[1]}",
                    "status": reason[0],
                }
            )
            raise ApiError(*reason)
        assert principal is not None
        # Before any view reads them or passes the request on to another worker.
        bad_header = header_fault(request.headers)
        if bad_header is not None:
            raise ApiError(400, bad_header)
        return principal

    async def body(
        request: Request,
        fields: tuple[str, ...],
        what: str,
        known: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        raw = await read_body(request, API_MAX_BODY, ctx.settings.http_timeout)
        if not raw:
            return {}
        wrong_type = json_content_type(request.headers.get("Content-Type"))
        if wrong_type:
            raise ApiError(415, wrong_type)
        doc = json_body(raw)
        body_fields(doc, fields, what, known)
        return doc

    async def no_body(request: Request, instead: str) -> None:
        """``ApiError`` 400 for a request that carries a body on an operation that takes
        none (the GETs, an expiry), naming it and ``instead``, what to do: t102's
        ``DELETE /silences/ID`` with ``{"reason": …}`` expired it and dropped the reason
        unsaid, and ``GET /runs`` with ``{"status": "open"}`` listed every run."""
        raw = await read_body(request, API_MAX_BODY, ctx.settings.http_timeout)
        # Whitespace or an empty object says nothing (some clients send `{}` on every
        # request): only a body that asks for something is refused.
        if raw.strip() not in (b"", b"{}"):
            text = raw[:200].decode("utf-8", "replace")
            raise ApiError(
                400,
                f"{request.method} {shown_id(request.url.path)} takes no body, and this one "
                f"has {len(raw):,} bytes ({show(text)}{'…' if len(raw) > 200 else ''}): "
                f"{instead}",
            )

    def query(request: Request, allowed: tuple[str, ...] = ()) -> dict[str, str]:
        return query_params(request.query, request.url.path, allowed)

    async def find_run(run_id: str) -> Run:
        try:
            return await stored_run(
                lambda: ctx.groups.get(run_key(run_id)), ctx.storing_runs, run_id
            )
        except ApiError as exc:
            # Absent from a table still being read back is not "no run" (trial 15: a
            # live run was a 404 at a worker taking over its partition).
            reason = ctx.reading_back() if exc.status == 404 else None
            if reason is not None:
                raise not_yet(f"run {shown_id(run_id)}", reason) from None
            owned = ctx.owned_partitions("routed")
            why = elsewhere(run_id, owned, ctx.settings.partitions)
            if exc.status != 404 or why is None:
                raise
            raise ApiError(404, why) from None

    async def keyed_answer(
        run_id: str, command_id: str, fingerprint: str, key: str
    ) -> dict[str, Any] | None:
        """The 202 body first given to the request ``command_id`` (a run action sent with
        the Idempotency-Key ``key``) once the worker has applied it, for a retry with the
        same body (draft-ietf-httpapi-idempotency-key-header: the stored result, not a
        409 "already acknowledged"); None when none was applied. ``ApiError`` 422 when
        the key was used for this action of this run with another body."""
        group = ctx.groups.get(run_key(run_id))
        earlier = ((group or {}).get("keyed") or {}).get(command_id)
        if not isinstance(earlier, dict):
            return None
        if earlier.get("request") != fingerprint:
            raise ApiError(
                422,
                f"Idempotency-Key {show(key)} was used for a {earlier.get('action')} of run "
                f"{shown_id(run_id)} with another body or by another user: use a new key "
                "for a new request",
            )
        return {"command": earlier, **(earlier.get("reply") or {})}

    async def settled_run(run_id: str) -> Run:
        """The run ``run_id`` once every command this worker's API sent for it has been
        applied, so an action is checked against the run as it will be, not as it was
        (an escalate right after a resolve was a 202 the worker then refused, seen only
        on the audit topic: t61). ``ApiError`` 409 with ``Retry-After`` when one is still
        unapplied after ``COMMAND_SETTLE_SECONDS``; ``find_run``'s errors otherwise."""
        deadline = time.monotonic() + COMMAND_SETTLE_SECONDS
        while True:
            waiting = await ctx.pending_commands.settled(
                run_id, max(0.0, deadline - time.monotonic())
            )
            if waiting is not None:
                if waiting.unconfirmed:
                    raise ApiError(
                        503,
                        f"run {shown_id(run_id)} has a {waiting.action} command answered "
                        f"503 {time.monotonic() - waiting.at:.1f} s ago (Kafka had not "
                        "acknowledged it) that is still queued and may yet be applied: "
                        "retry once Kafka answers, and see the run first (nothing of this "
                        "request was applied)",
                        {"Retry-After": "5"},
                    )
                raise ApiError(
                    409,
                    f"run {shown_id(run_id)} has a {waiting.action} command sent "
                    f"{time.monotonic() - waiting.at:.1f} s ago that the worker has not "
                    "applied yet: retry in a moment, once it shows in the run (nothing "
                    "was applied)",
                    {"Retry-After": "2"},
                )
            run = await find_run(run_id)
            # find_run may await: a command sent meanwhile is waited for too.
            if not ctx.pending_commands.pending(run_id, time.monotonic()):
                return run

    async def store_silence(key: bytes, value: dict[str, Any], record: dict[str, Any]) -> bool:
        """Write a silence's changelog entry and its audit ``record``, and once Kafka has
        acknowledged both (``Context.acknowledged``) the silence into this worker's table;
        False (nothing stored here) when Kafka has not. Not the table's own assignment,
        which only queued the entry (trial 10: 9 of 9 silences answered 201 were gone
        after a SIGKILL). One not acknowledged in time may still reach Kafka later; every
        worker, this one too, then applies it from the changelog (a global table)."""
        table = ctx.silences

        async def send() -> list[Awaitable[Any]]:
            entry = table.send_changelog(table.partition_for_key(key), key, value)
            audit_key, audit_value = ctx.audit_send(record)
            return [entry, await ctx.audit_topic.send(key=audit_key, value=audit_value)]

        if not await ctx.acknowledged(send):
            return False
        table.data[key] = value
        return True

    def own_url() -> str:
        return str(app.conf.canonical_url)

    def owners() -> dict[int, str]:
        """Partition of the runs -> its worker's URL, as the last assignment gave them
        (faust's own router's view of where each table's partitions live, the one its
        ``route_req`` reads)."""
        topic = ctx.groups.changelog_topic.get_topic_name()
        return partition_owners(app.router.tables_metadata(), topic)

    async def pass_on(view: View, request: Request, url: str, partition: int) -> Response:
        """``request`` asked of the worker at ``url`` (it owns ``partition``), and its
        answer as this worker's: status, JSON body and ``Retry-After`` as the owner gave
        them. 503 when the owner does not answer within ``API_FORWARD_WAIT``."""
        data = None
        if request.method == "POST":
            data = await read_body(request, API_MAX_BODY, ctx.settings.http_timeout)
        headers = {
            name: request.headers[name]
            for name in FORWARDED_REQUEST_HEADERS
            if name in request.headers
        }
        headers[FORWARDED_HEADER] = own_url()
        target = url + str(request.rel_url)
        client: Any = app.http_client
        try:
            async with client.request(
                request.method,
                target,
                headers=headers,
                data=data,
                timeout=aiohttp.ClientTimeout(total=API_FORWARD_WAIT),
            ) as answer:
                body = await bounded_body(answer)
                status = answer.status
                kept = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
                kind = answer.content_type
        except PeerAnswerTooLarge as exc:
            log.warning("citybrain: API: the worker at %s answered %s with %s", url, target, exc)
            raise ApiError(
                503,
                f"partition {partition} is owned by the worker at {url}, whose answer was "
                f"too large ({exc}; at most {API_PEER_MAX_BYTES:,} are read): not passed on",
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("citybrain: API: the worker at %s did not answer %s: %r", url, target, exc)
            raise ApiError(
                503,
                f"partition {partition} is owned by the worker at {url}, which did not answer "
                f"({type(exc).__name__}); retry in a few seconds (with the same "
                "Idempotency-Key header a retried action is the same command, applied once)",
                {"Retry-After": "2"},
            ) from None
        return view.bytes(body, content_type=kind, status=status, headers=kept)

    async def owner_answers(view: View, request: Request, run_id: str) -> Response | None:
        """The owner's answer to a request about ``run_id`` when another worker owns its
        partition (the request passed on, once: ``FORWARDED_HEADER``); None when this
        worker answers it itself. Any worker's API then acts on any run (before, a run on
        another worker's partition was a 404 telling the operator to find that worker)."""
        if FORWARDED_HEADER in request.headers:
            return None
        partition = run_partition(run_id, ctx.settings.partitions)
        url = owner_elsewhere(partition, ctx.owned_partitions("routed"), owners(), own_url())
        if url is None:
            return None
        return await pass_on(view, request, url, partition)

    async def other_workers_runs(
        request: Request,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The runs the other workers hold, each asked once for its own (the request
        passed on), all at once within one ``API_FORWARD_WAIT``; and what could not be
        read: ``[{"worker": URL or None, "partitions": [n, ...], "reason": text}]`` for a
        partition no worker holds yet and for a worker that did not answer a list of
        runs in time (down, slow, too large, another version's answer). A rolling
        upgrade or a rebalance is normal operations: the list answers with what it has
        and says what it lacks (t194: any of these was a 503 for the whole list)."""
        by_partition = owners()
        if not by_partition:
            return [], []  # no assignment known (no consumer group): this worker's own runs
        owned = ctx.owned_partitions("routed")
        me = own_url().rstrip("/")
        others: dict[str, list[int]] = {}
        unlisted: list[dict[str, Any]] = []
        orphans: list[int] = []
        for partition in range(ctx.settings.partitions):
            url = owner_elsewhere(partition, owned, by_partition, me)
            if url is not None:
                others.setdefault(url, []).append(partition)
            elif partition not in owned:
                orphans.append(partition)
        if orphans:
            reason = "one left, and the group has not given its partitions to another yet"
            unlisted.append({"worker": None, "partitions": orphans, "reason": reason})
        asked = [pass_on_read(request, url, partitions) for url, partitions in others.items()]
        runs: list[dict[str, Any]] = []
        for (url, partitions), (answer, fault) in zip(
            others.items(), await asyncio.gather(*asked), strict=True
        ):
            runs += answer
            if fault is not None:
                unlisted.append({"worker": url, "partitions": partitions, "reason": fault})
        return runs, unlisted

    async def pass_on_read(
        request: Request, url: str, partitions: list[int]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /runs`` (with the request's query) of the worker at ``url``, its own runs
        only, and None; or no runs and why it gave none (``other_workers_runs``): no
        answer within ``API_FORWARD_WAIT``, an answer over ``API_PEER_MAX_BYTES`` (read
        no further), a status other than 200, or no list of runs. A worker older than
        the list's paging (t186) refuses ``limit`` and ``cursor`` (a 400): it is asked
        again without them and its whole list paged here."""
        headers = {FORWARDED_HEADER: own_url()}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        client: Any = app.http_client
        query = dict(request.rel_url.query)
        deadline = time.monotonic() + API_FORWARD_WAIT
        while True:
            target = url + str(request.rel_url.with_query(query))
            try:
                left = max(0.001, deadline - time.monotonic())
                async with client.get(
                    target, headers=headers, timeout=aiohttp.ClientTimeout(total=left)
                ) as answer:
                    status = answer.status
                    body = await bounded_body(answer) if status in (200, 400) else b""
            except PeerAnswerTooLarge as exc:
                fault = (
                    f"its answer was too large ({exc}; at most {API_PEER_MAX_BYTES:,} are "
                    "read): ask for fewer runs a page (limit)"
                )
                break
            except TimeoutError:
                fault = f"it did not answer within {API_FORWARD_WAIT:g} s"
                break
            except aiohttp.ClientError as exc:
                fault = f"it did not answer ({type(exc).__name__})"
                break
            paging = [name for name in PAGING_PARAMETERS if name in query]
            if status == 400 and paging:
                # A worker before t186's paging: its own runs, all of them, paged here.
                for name in paging:
                    del query[name]
                continue
            if status != 200:
                fault = f"it answered HTTP {status}"
                break
            try:
                runs = peer_runs(orjson.loads(body))
            except orjson.JSONDecodeError:
                runs = None
            if runs is None:
                fault = f"its answer of {len(body):,} bytes was no list of runs"
                break
            return runs, None
        log.warning(
            "citybrain: API: the runs of partition(s) %s are left out of a runs list: the "
            "worker at %s: %s",
            ", ".join(map(str, partitions)),
            url,
            fault,
        )
        return [], fault

    def handled(fun: Any) -> Any:
        async def wrapper(self: View, request: Request, **kw: Any) -> Response:
            try:
                response: Response = await fun(self, request, **kw)
            except ApiError as exc:
                response = self.error(exc.status, exc.message, headers=exc.headers)
            # Every answer counted once, here, with its status: counted view by view, the
            # 400s, 404s and 409s and most reads went uncounted (helper t102). A request
            # another worker passed on is counted by the worker the client asked.
            if FORWARDED_HEADER not in request.headers:
                ctx.metrics.api_requests.labels(
                    api_action(request.method, kw.get("action")), str(response.status)
                ).inc()
            return response

        return wrapper

    @app.page(f"{PREFIX}/runs")
    class RunsView(ApiView):
        @handled
        async def get(self, request: Request) -> Response:
            await authorize(self, request, "read")
            given = query(request, ("status", "limit", "cursor"))
            status = given.get("status")
            limit = page_limit(given.get("limit"))
            after = page_cursor(given.get("cursor"), (float | int, str))
            await no_body(request, "give a status as a query parameter, ?status=open")
            if status is not None and status not in LIST_STATUSES:
                raise ApiError(
                    400,
                    f'query parameter "status" is {show(status)}: expected one of '
                    f"{', '.join(LIST_STATUSES)}{did_you_mean(status, LIST_STATUSES)}",
                )
            reason = ctx.reading_back()
            if reason is not None:  # a partial list would hide live runs
                raise not_yet("the list of runs", reason)
            runs = [
                shown_run(g, g["run"], listed=True, held=ctx.runs_not_advancing.get(key))
                for key, g in ctx.groups.items()
                if g.get("run")
            ]
            unlisted: list[dict[str, Any]] = []
            if FORWARDED_HEADER not in request.headers:
                # The other workers' runs too: a worker holds only its partitions' runs,
                # so its list alone showed about 1/N of the city's (helper t61).
                theirs, unlisted = await other_workers_runs(request)
                # Once each (a worker of another version may list a run this one does
                # while a partition moves), this worker's first.
                ids = {r.get("run_id") for r in runs}
                for run in theirs:
                    if run.get("run_id") not in ids:
                        ids.add(run.get("run_id"))
                        runs.append(run)
            if status == "reopened":  # reopened by a reporter's answer, at least once
                runs = [r for r in runs if listed_count(r.get("reopened")) > 0]
            elif status:
                runs = [r for r in runs if r.get("status") == status]
            # Each worker answers its own page (the query passed on), so the first
            # ``limit`` after the cursor of all of them are among what they answered.
            page, cursor = paged(runs, run_sort_key, limit, after)
            doc: dict[str, Any] = {"runs": page, "next": None}
            if cursor is not None:
                doc["next"] = next_link(f"{PREFIX}/runs", given, cursor)
            if unlisted:
                # Only when some are missing, as a silence's warnings.
                doc["unlisted"] = unlisted
                doc["warnings"] = [unlisted_warning(entry) for entry in unlisted]
            return self.json(doc)

    @app.page(f"{PREFIX}/runs/{{run_id}}")
    class RunView(ApiView):
        @handled
        async def get(self, request: Request, run_id: str) -> Response:
            await authorize(self, request, "read")
            query(request)
            await no_body(request, "act on a run with POST /api/v1/runs/{run_id}/{action}")
            if (passed := await owner_answers(self, request, run_id)) is not None:
                return passed
            try:
                run = await find_run(run_id)
            except ApiError as exc:
                kept = superseded_run(ctx.groups.get(run_key(run_id)), run_id)
                if exc.status != 409 or kept is None:
                    raise
                # A superseded run can be looked at (trial 5: its `runs show` was a 409),
                # saying where it went; acting on it stays a 409 with the same advice.
                return self.json(
                    {
                        "run": shown_run(ctx.groups.get(run_key(run_id)), kept["run"]),
                        "superseded_by": kept["by"],
                        "superseded_at": kept["at"],
                        "note": exc.message,
                    }
                )
            key = run_key(run_id)
            held = ctx.runs_not_advancing.get(key)
            return self.json({"run": shown_run(ctx.groups.get(key), run.to_dict(), held=held)})

    async def resend(principal: Principal, run_id: str) -> dict[str, Any] | None:
        """The ``resend_closures`` command for run ``run_id``'s undelivered closures, sent
        (Kafka's acknowledgement awaited); None when it has none (delivered, or re-sent
        already: the repeat is a 200 that sends nothing). 404 for an unknown run."""
        group = ctx.groups.get(run_key(run_id))
        undelivered = undelivered_list(group, run_id)
        if not undelivered:
            if superseded_run(group, run_id) is None:
                await find_run(run_id)  # 404 (or not yet read back) for an unknown run
            return None
        command = {
            "id": uuid.uuid4().hex,
            "run_id": run_id,
            "action": RESEND,
            "by": principal.name,
            "role": principal.role,
            "note": "",
            "at": time.time(),
            "reply_ids": [e["reply_id"] for e in undelivered],
        }
        value = orjson.dumps(command)

        async def send() -> list[Awaitable[Any]]:
            return [await ctx.commands.send(key=run_key(run_id), value=value)]

        if not await ctx.acknowledged(send):
            raise kafka_unreachable(
                "the resend command", "a retry re-sends only closures still undelivered"
            )
        return {"command": command, "closures": undelivered}

    @app.page(f"{PREFIX}/runs/{{run_id}}/{{action}}")
    class RunActionView(ApiView):
        @handled
        async def post(self, request: Request, run_id: str, action: str) -> Response:
            if action not in RUN_ACTIONS:
                raise ApiError(
                    404,
                    f"no action {shown_id(action)}: expected one of "
                    f"{', '.join(sorted(RUN_ACTIONS))}{did_you_mean(action, RUN_ACTIONS)}",
                )
            # The request's configuration, to its end (t133): the tokens it was let in by
            # and the playbooks its run is checked against, of one reload.
            config = ctx.config
            principal = await authorize(self, request, RUN_ACTIONS[action], config)
            query(request)
            if (passed := await owner_answers(self, request, run_id)) is not None:
                return passed
            fields = {"answer": ANSWER_FIELDS, "escalate": ESCALATE_FIELDS}
            doc = await body(request, fields.get(action, ACTION_FIELDS), action)
            # The body's own faults first, whatever the run's state would answer.
            note = action_note(doc)
            if action == "answer":
                answer_comment(doc)
            from_level = escalated_from(doc) if action == "escalate" else None
            if action == "resend":
                # Any run, finished or superseded: its closures are what is sent again.
                sent = await resend(principal, run_id)
                if sent is None:
                    return self.json({"run_id": run_id, "already": {"action": "resend"}})
                return self.json(sent, status=202)
            run = await settled_run(run_id)
            key = request.headers.get("Idempotency-Key")
            command_id = (
                hashlib.sha1(f"{run_id}|{action}|{key}".encode()).hexdigest()
                if key
                else uuid.uuid4().hex
            )
            fingerprint = request_fingerprint(principal.name, action, doc) if key else ""
            if key and (stored := await keyed_answer(run_id, command_id, fingerprint, key)):
                return self.json(stored, status=202)
            done = already_answered(run, doc) if action == "answer" else None
            extra = answer_fields(run, doc) if action == "answer" and done is None else {}
            done = done or already_done(run, action)
            if done is None and from_level is not None:
                done = already_escalated(run, from_level)
            if done is not None:
                # Its status now too: an ack repeated on a run resolved since said only
                # "already acknowledged", as if it were still open (t209).
                return self.json({"already": done, "run_id": run_id, "status": run.status})
            reason = refused(run, action)
            gone = run.playbook not in config.playbooks and action not in WITHOUT_PLAYBOOK
            if reason is None and gone:
                # The worker would refuse it (an audit line only): said here, not accepted.
                reason = playbook_gone(run, action)
            if reason is not None:
                raise ApiError(409, reason)
            if action in ("resolve", "cancel") and blank(note):
                raise ApiError(400, f'{action} needs a "note" saying why')
            command = {
                "id": command_id,
                "run_id": run_id,
                "action": action,
                "by": principal.name,
                "role": principal.role,
                "note": note,
                # When it was given and the level the run was at then (t114): a command
                # applied late (Kafka frozen) is recorded there, not where the ladder
                # took the run meanwhile.
                "at": time.time(),
                "level": run.level,
                **extra,
            }
            if from_level is not None:
                command["from_level"] = from_level
            reply: dict[str, Any] = {}
            if action in ("answer", "resolve", "cancel"):
                # Which part of its reports' story this is: a report covered by runs of
                # several groups hears one closure per run, each its department's.
                reply["part"] = run_part(run, extra.get("report_id"))
            if action == "answer" and not extra["satisfied"]:
                # Whether it will reopen the run, as the run stands now: a run already
                # reopened by another answer to the same closure only records this one.
                reply["reopens"] = reopens(run)
            if key:
                # Kept by the worker with the run's group, so a retry once it is applied
                # gets this answer again (keyed_answer), from any worker.
                command |= {"request": fingerprint, "reply": reply}
            value = orjson.dumps(command)
            queued: list[Awaitable[Any]] = []

            async def send() -> list[Awaitable[Any]]:
                queued.append(await ctx.commands.send(key=run_key(run_id), value=value))
                return queued

            # Held before the send's await: a request for the same run arriving meanwhile
            # waits for this one to be applied (settled_run); released if Kafka does not
            # take it, and by the worker once it has applied it (streams/response.py).
            ctx.pending_commands.hold(run_id, command_id, action, time.monotonic())

            # Answered once Kafka has the command: a worker killed after the 202 then
            # loses nothing (trial 10: 3 of 11 acks and 10 of 13 resolves answered 202
            # were lost, send() only queues).
            if not await ctx.acknowledged(send):
                keep_unconfirmed(ctx.pending_commands, run_id, command_id, queued)
                raise kafka_unreachable(
                    f"the {action} command",
                    "with the same Idempotency-Key header the retry is the same command, "
                    "applied once even if this one reaches Kafka later",
                )
            return self.json({"command": command, **reply}, status=202)

    @app.page(f"{PREFIX}/alerts")
    class AlertsView(ApiView):
        @handled
        async def get(self, request: Request) -> Response:
            await authorize(self, request, "read")
            given = query(request, ("limit", "cursor"))
            limit = page_limit(given.get("limit"))
            after = page_cursor(given.get("cursor"), (str,))
            await no_body(request, "it only lists; it takes no filter")
            reason = ctx.reading_back(partitioned=False)
            if reason is not None:
                raise not_yet("the firing alerts", reason)
            # Paged as the runs are (t186): a flood fires an alert per sensor and cell,
            # every one in one body before. By alert id, which an alert keeps.
            firing = [v for _, v in ctx.firing.items()]
            page, cursor = paged(firing, _alert_sort_key, limit, after)
            return self.json({"firing": page, "next": next_link(f"{PREFIX}/alerts", given, cursor)})

    @app.page(f"{PREFIX}/silences")
    class SilencesView(ApiView):
        @handled
        async def get(self, request: Request) -> Response:
            await authorize(self, request, "read")
            given = query(request, ("limit", "cursor"))
            limit = page_limit(given.get("limit"))
            after = page_cursor(given.get("cursor"), (str,))
            await no_body(request, "it only lists; it takes no filter")
            reason = ctx.reading_back(partitioned=False)
            if reason is not None:
                raise not_yet("the list of silences", reason)
            now = time.time()
            # Each silence as the route agent's book read it: before, every GET parsed
            # every silence, 10,000 regex ones seconds of a frozen worker (no routing,
            # no heartbeat) for each listing. The book is read first, in steps, and keeps
            # what it parsed: until the route agent had read it (its first alert after a
            # start), every listing parsed all 10,000 again in one step (6-9 s each).
            await ctx.read_silences(now, report=False)  # the route agent reports
            book = ctx.silence_book
            items = [
                _listed(
                    k.decode(errors="replace"),
                    v,
                    now,
                    partial(book.reading_of, k.decode(errors="replace")),
                    silence_handle(k),
                )
                for k, v in stored_items(ctx.silences)
            ]
            # Paged as the runs are (t186): up to 10,000 silences in force and those
            # ended within 120 h, each up to 64 KB of matchers, came in one body. By id,
            # which a silence keeps: a page is stable while silences are added.
            page, cursor = paged(items, lambda item: (str(item["id"]),), limit, after)
            return self.json(
                {"silences": page, "next": next_link(f"{PREFIX}/silences", given, cursor)}
            )

        @handled
        async def post(self, request: Request) -> Response:
            principal = await authorize(self, request, "silence")
            query(request)
            doc = await body(request, SILENCE_FIELDS, "a silence", ALERTMANAGER_SILENCE_FIELDS)
            now = time.time()
            matchers = doc.get("matchers", [])
            if not isinstance(matchers, list):
                raise ApiError(
                    400,
                    f'"matchers" is {show(matchers)}, expected a list of matcher texts or '
                    "Alertmanager matcher objects",
                )
            if not isinstance(doc.get("reason", ""), str):
                raise ApiError(400, f'field "reason" is {show(doc["reason"])}, expected text')
            if len(matchers) > MAX_SILENCE_MATCHERS:
                raise ApiError(
                    400,
                    f'field "matchers" has {len(matchers):,} entries, at most '
                    f"{MAX_SILENCE_MATCHERS}",
                )
            for i, m in enumerate(matchers):
                if not isinstance(m, str | dict):
                    # Said in JSON's words (null, true), as every field of a body is:
                    # playbooks' message for a YAML file wrote Python's None (trial 21).
                    raise ApiError(
                        400,
                        f"matchers[{i}] is {show(m)}, expected matcher text "
                        '(category="noise") or an object {"name", "value", "isRegex", "isEqual"}',
                    )
            given = list(matchers)
            try:
                # Alertmanager's API v2 objects ({"name", "value", "isRegex", "isEqual"})
                # as matcher text: one form from here on, stored and listed.
                matchers = [
                    m if isinstance(m, str) else api_matcher(m, f"matchers[{i}]")
                    for i, m in enumerate(matchers)
                ]
            except SilenceError as exc:
                raise ApiError(400, str(exc)) from None
            for i, text in enumerate(matchers):
                if len(text) > MAX_MATCHER_CHARS:
                    raise ApiError(400, too_long(f"matchers[{i}]", text, MAX_MATCHER_CHARS))
            check_free_text("reason", doc.get("reason", ""), MAX_NOTE)
            starts_at, ends_at, seconds = silence_times(doc, now)
            # With an Idempotency-Key a retry (after a 503) is the same silence, written
            # again under the same id, never a second one.
            key = request.headers.get("Idempotency-Key")
            silence_id = (
                hashlib.sha1(f"silence|{principal.name}|{key}".encode()).hexdigest()[:12]
                if key
                else uuid.uuid4().hex[:12]
            )
            try:
                starts, ends = silence_window(starts_at, ends_at, seconds, now)
                if ends > now + REQUEST_TIME_AHEAD:  # starts_at plus duration, both in range
                    raise ApiError(
                        400,
                        f"the silence would end at {ends:.0f}, more than 100 years from now "
                        f"(starts_at {show(doc.get('starts_at'))} plus duration "
                        f"{show(doc.get('duration'))})",
                    )
                silence = new_silence(
                    silence_id,
                    matchers,
                    starts,
                    ends,
                    principal.name,
                    str(doc.get("reason", "")),
                )
            except (ValueError, RoutingConfigError) as exc:
                raise ApiError(400, str(exc)) from None
            # Text entries Alertmanager 0.27's UTF-8 matchers read otherwise, said in the
            # answer as playbooks check and silences add say them; a key of citybrain's
            # own, present only when non-empty, so an Alertmanager client sees nothing new.
            read_apart = silence_read_apart(given)
            # And a silence each of whose matchers matches every alert (t197): taken, as
            # Alertmanager takes it, and said, as playbooks check says such a route.
            every = silence_matches_every_alert(silence.matchers, label_values(ctx.grid))
            if every:
                read_apart = [*read_apart, f"matchers: {every}"]
            warned = {"warnings": read_apart} if read_apart else {}
            stored = silence.to_dict()
            reason = ctx.reading_back(partitioned=False)
            if reason is not None:
                # A retry's silence may be stored and not read back yet: written again
                # now, it would undo an expiry since.
                raise not_yet(f"silence {silence.id}", reason)
            earlier = ctx.silences.get(silence.id.encode()) if key else None
            if isinstance(earlier, dict):
                # A retry: the silence as it was stored, never rewritten (an expiry since
                # stands, its times do not move); a key reused for another silence is
                # refused rather than rewriting the first.
                if [earlier.get("matchers"), earlier.get("reason")] != [
                    stored["matchers"],
                    stored["reason"],
                ]:
                    # 422 as draft-ietf-httpapi-idempotency-key-header says for a key
                    # reused with another payload (409 is for one still in flight).
                    raise ApiError(
                        422,
                        f"Idempotency-Key {show(key)} was used for silence {silence.id} with "
                        "other matchers or reason: use a new key for a new silence",
                    )
                counts = firing_matched(silence, (v for _, v in ctx.firing.items()))
                return self.json(
                    {"silence": earlier, "already": "created", **counts, **warned}, status=201
                )
            in_force = sum(silence_already_expired(v, now) is None for _, v in ctx.silences.items())
            if in_force >= MAX_SILENCES:
                raise ApiError(
                    409,
                    f"{in_force:,} silences have not ended, at most {MAX_SILENCES:,} may: "
                    "expire some first (citybrain silences list, then expire ID)",
                )
            record = {
                "action": "silence_created",
                "at": now,
                "actor": principal.name,
                "detail": str(stored),
            }
            if not await store_silence(silence.id.encode(), stored, record):
                raise kafka_unreachable(
                    f"silence {silence.id}",
                    "it is not in force on this worker; it may still reach Kafka and take "
                    "effect; with the same Idempotency-Key header the retry writes the same "
                    "silence, not a second one",
                )
            counts = firing_matched(silence, (v for _, v in ctx.firing.items()))
            return self.json({"silence": stored, **counts, **warned}, status=201)

    @app.page(f"{PREFIX}/silences/{{silence_id}}")
    class SilenceView(ApiView):
        @handled
        async def delete(self, request: Request, silence_id: str) -> Response:
            principal = await authorize(self, request, "expire_silence")
            query(request)
            await no_body(
                request, "an expiry takes no reason or note: it records who expired it and when"
            )
            reason = ctx.reading_back(partitioned=False)
            if reason is not None:
                raise not_yet(f"the expiry of silence {shown_id(silence_id)}", reason)
            key = silence_id.encode()
            doc = ctx.silences.get(key)
            if doc is None:
                # A key no URL can carry (listed cut, or not UTF-8): by its handle (t173).
                handled = handled_key((k for k, _ in stored_items(ctx.silences)), silence_id)
                if handled is not None:
                    key, doc = handled, ctx.silences.get(handled)
            if doc is None:
                raise ApiError(404, f"no silence {shown_id(silence_id)}")
            now = time.time()
            done = silence_already_expired(doc, now)
            if done is not None:
                return self.json({"silence": doc, "already": done})
            stored_end = doc.get("ends_at") if isinstance(doc, dict) else None
            # A stored silence that cannot be read can still be expired: one whose end is
            # no number ends now (t160: an end of true, an int to Python, was written
            # back as true, and starts_at with it: never ended, nor ever forgotten).
            ends = now
            if isinstance(stored_end, int | float) and not isinstance(stored_end, bool):
                ends = min(stored_end, now)
            base = doc if isinstance(doc, dict) else {}
            expired = {**base, "ends_at": ends, "expired_by": principal.name, "expired_at": now}
            starts = base.get("starts_at")
            if isinstance(starts, int | float) and not isinstance(starts, bool) and starts > ends:
                # A silence that had not started: as Alertmanager expires a pending one,
                # it starts and ends now (stored ending before it started, it was a
                # window no silence can have).
                expired["starts_at"] = ends
            record = {
                "action": "silence_expired",
                "at": now,
                "actor": principal.name,
                "detail": silence_id,
            }
            if len(key) + json_size(expired) > MAX_SILENCE_ENTRY_BYTES:
                # Under a key of about 1 MB the whole document with its expiry is more
                # than one message the producer sends: the expiry keeps what a listing
                # shows of it (``bounded_document``), or its times and who ended it.
                expired = {**bounded_document(base), **expiry_fields(expired)}
                if len(key) + json_size(expired) > MAX_SILENCE_ENTRY_BYTES:
                    expired = {**expiry_fields(expired), "cut": ["the stored document"]}
            if not await store_silence(key, expired, record):
                raise kafka_unreachable(
                    f"the expiry of silence {silence_id}",
                    "the silence stays in force on this worker until Kafka has the expiry; "
                    "expiring it again is safe",
                )
            if key != silence_id.encode():
                # Its document as a listing shows it: one of 1 MB is not answered whole.
                return self.json({"silence": {**bounded_document(expired), "id": silence_id}})
            return self.json({"silence": expired})
