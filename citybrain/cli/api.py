"""The operator API's client: requests to a worker's ``/api/v1``, tokens and URLs
checked, answers and refusals said in one line, and the hints that go with them."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from citybrain.commands import (
    API_SETTINGS,
    command_line,
    make_command,
    shell_word,
)

if TYPE_CHECKING:
    from playbooks.routing import Route

from citybrain.cli.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_SERVICE,
    CliError,
    _ago,
    _local,
    _settings,
    given_argv,
    said,
    without_token,
)


def _matcher_labels(route: Route) -> set[str]:
    """Every label name a matcher of the routing tree compares. Iterative: a tree may
    nest about 1,000 routes deep (trial 23: RecursionError, exit 70)."""
    names: set[str] = set()
    stack = [route]
    while stack:
        node = stack.pop()
        names.update(m.name for m in node.matchers)
        stack.extend(node.routes)
    return names


def not_utf8(text: str) -> str | None:
    """Where ``text`` (a command-line argument) holds a byte that is not UTF-8, as
    ``byte 0xff at position 2`` (Python keeps such a byte of ``argv`` as a lone
    surrogate, U+DC80-U+DCFF), or None."""
    for i, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return f"byte 0x{ord(char) - 0xDC00:02x} at position {i + 1}"
    return None


def check_text(where: str, text: str) -> None:
    """CliError (status 2) naming ``where`` when ``text`` has a byte that is not UTF-8:
    quoted into a URL or written as JSON it was an "unexpected UnicodeEncodeError ...
    This is a bug" (an id, ``--url``), or a 400 about a "lone surrogate" (t117)."""
    fault = not_utf8(text)
    if fault is not None:
        raise CliError(
            f"{where} has {fault}, which is not UTF-8 (a terminal or file in another "
            "encoding?): give it as UTF-8 text"
        )


def check_free_text(option: str, text: str) -> None:
    """CliError (status 2) naming ``option`` (``--reason``, ``--note``, ``--comment``) when
    ``text`` has a byte that is not UTF-8 (check_text) or a control character the API
    refuses in free text (streams.events.text_control: all but line breaks and tabs),
    said before the API is asked, in the API's words with the option for the field (t197:
    a reason with an ESC was the worker's 400 about field "reason", or "cannot reach the
    operator API" with no worker, before the user heard of it)."""
    from playbooks.errors import shown
    from streams.events import text_control

    check_text(option, text)
    control = text_control(text)
    if control is not None:
        raise CliError(f"{option} is {shown(text)}: {control}")


# The option each request body field the commands send is given by (check_text names it).
_OPTION_OF = {
    "reason": "--reason",
    "note": "--note",
    "report_id": "--report",
    "comment": "--comment",
    "matchers": "--matcher",
    "duration": "--duration",
    "starts_at": "--start",
    "ends_at": "--end",
    "from_level": "--from",
}


def _segment(text: str, where: str = "the id") -> str:
    """An id as one URL path segment: a space, a newline or é was an InvalidURL or
    UnicodeEncodeError traceback, and ``x/../..`` or ``x?y`` addressed another resource.
    CliError naming ``where`` for a byte that is not UTF-8 (``check_text``)."""
    from urllib.parse import quote

    check_text(where, text)
    return quote(text, safe="")


# The worker's clock less this machine's, as its last answer's Date header said (t114):
# how long ago a run was created, when its deadline falls and whether a silence is
# active are told by the worker's clock, not by an operator's that is off by minutes.
_CLOCK = {"offset": 0.0}
# Below this, a difference is the header's whole seconds and the round trip, not skew.
CLOCK_SKEW_SECONDS = 2.0


def clock_offset(date_header: str | None, local: float) -> float:
    """Seconds the clock behind ``date_header`` (an HTTP ``Date``, RFC 9110) is ahead of
    ``local`` (epoch s, when the answer came); 0.0 without a readable header or for a
    difference under ``CLOCK_SKEW_SECONDS``."""
    import email.utils

    if not date_header:
        return 0.0
    try:
        server = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
    offset = server - local
    return offset if abs(offset) >= CLOCK_SKEW_SECONDS else 0.0


def api_now() -> float:
    """Now (epoch s) by the clock of the worker that last answered, else this machine's."""
    return time.time() + _CLOCK["offset"]


# The most of one operator API answer read (t194: read whole before, however large, and
# an endless answer grew the command's memory for ever, each read within the 10 s): a
# page of 1,000 runs is a few MB; an error's JSON a few hundred bytes. And how long one
# answer may take to come whole, once it began.
MAX_ANSWER_BYTES = 256 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
ANSWER_WAIT = 120.0


class AnswerTooLarge(Exception):
    """An answer past its bound of bytes, or of time (``read_answer``)."""


def read_answer(resp: Any, limit: int, wait: float = ANSWER_WAIT) -> bytes:
    """The body of ``resp`` (urllib's), read in chunks; ``AnswerTooLarge`` saying why as
    soon as its declared length or what came passes ``limit`` bytes, or it has taken
    more than ``wait`` seconds (an endless or dripping answer is cut there)."""
    declared = resp.headers.get("Content-Length") if resp.headers is not None else None
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise AnswerTooLarge(f"{int(declared):,} bytes declared, more than the {limit:,} read")
    deadline = time.monotonic() + wait
    chunks: list[bytes] = []
    size = 0
    while chunk := resp.read(65536):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(f"more than the {limit:,} bytes read")
        if time.monotonic() > deadline:
            raise AnswerTooLarge(f"{size:,} bytes in {wait:g} s and not done")
        chunks.append(chunk)
    return b"".join(chunks)


def _api(
    args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None
) -> Any:
    """The JSON answer of the worker's operator API; CliError when it cannot be had."""
    import urllib.error
    import urllib.request

    if args.token is not None and not args.token.strip():
        # An empty --token (a script's unset variable) must not act under the
        # environment's token, another identity (trial 8).
        raise CliError(
            "--token is empty: give the API token, or leave --token out to use CITYBRAIN_API_TOKEN"
        )
    token = args.token or os.environ.get("CITYBRAIN_API_TOKEN")
    if not token:
        raise CliError(f"no API token: give --token or set CITYBRAIN_API_TOKEN{no_token_hint()}")
    check_bearer(token, "--token" if args.token else "CITYBRAIN_API_TOKEN")
    base = api_base(args.url)
    url = base + "/api/v1" + path
    for field, value in (body or {}).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                check_text(_OPTION_OF.get(field, f'"{field}"'), text)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Every state-changing call carries a key, so a retry after a 503 (Kafka did not
    # acknowledge in time, yet the action may still take effect) is applied once.
    given_key = getattr(args, "idempotency_key", None)
    key = given_key or (uuid.uuid4().hex if method != "GET" else None)
    if key:
        check_text("--idempotency-key", key)
        # http.client writes a header as ISO-8859-1: the key's UTF-8 bytes, so written,
        # are what the worker reads (it takes UTF-8 header text); "ключ" or a byte that
        # is not UTF-8 was "unexpected UnicodeEncodeError ... This is a bug" (t117).
        headers["Idempotency-Key"] = key.encode("utf-8").decode("latin-1")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _no_redirects().open(request, timeout=10) as resp:
            _CLOCK["offset"] = clock_offset(resp.headers.get("Date"), time.time())
            raw = read_answer(resp, MAX_ANSWER_BYTES)
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(
                f"the operator API at {base} answered {method} {path} with {len(raw):,} "
                "bytes that are not JSON: "
                + (
                    "is --url a citybrain worker's address?"
                    if args.url is not None
                    else not_a_worker(None)
                ),
                EXIT_FAILED,
            ) from None
    except AnswerTooLarge as exc:
        raise CliError(
            f"the operator API at {base} answered {method} {path} with {exc}: not read "
            "further (a page of runs is a few MB: "
            + (
                "give --url a citybrain worker's address)"
                if args.url is not None
                else f"{not_a_worker(None)})"
            ),
            EXIT_FAILED,
        ) from None
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "nowhere")
            raise CliError(
                f"the operator API at {base} answered {method} {path} with HTTP {exc.code}, "
                f"a redirect to {shown_location(where)!r}: not followed (the token would go "
                "with it); "
                + (
                    "give --url the worker's own address"
                    if args.url is not None
                    else not_a_worker(None)
                ),
                EXIT_FAILED,
            ) from None
        try:
            text = read_answer(exc, MAX_ERROR_BYTES, 10.0).decode(errors="replace")
        except (AnswerTooLarge, OSError) as cut:
            text = f"(its answer not read: {cut})"
        reason = api_reason(text, exc.code)
        hint = {
            # t76: README's default-run-directory token path typed with another run
            # directory: say where this run directory's demo token is.
            401: "; check --token / CITYBRAIN_API_TOKEN" + no_token_hint(),
            403: forbidden_hint(),
            404: not_found_hint(path, reason, args.url),
        }.get(exc.code, "")
        if exc.code == 404:  # asks the API for its ids: only when one was not found
            report = body.get("report_id") if body is not None else None
            if isinstance(report, str) and "(did you mean " in reason:
                hint = answer_again(report, reason, given_argv(args))
            else:
                hint = known_id_hint(base, token, path, given_argv(args)) + hint
        # 503: the worker's Kafka did not acknowledge the action (docs/playbooks.md,
        # Operator API): a service the command needs, exit 3, as when no worker answers.
        if exc.code == 503 and key:
            hint = same_action_again(args, key, given_key)
            # The API's own retry advice is about its header, which the hint's command
            # line carries: said once, not twice in one line (t119).
            reason = reason.split("; retry (", 1)[0]
        # A long id is cut as the API cuts it in its answer (trial 25: a 300-character
        # id filled the line twice over).
        shown = path if len(path) <= 200 else f"{path[:100]}... ({len(path):,} characters)"
        raise CliError(
            f"the operator API at {base} refused {method} {shown}: HTTP {exc.code}: {reason}{hint}",
            EXIT_SERVICE if exc.code == 503 else EXIT_FAILED,
        ) from None
    except KeyboardInterrupt:
        if not key:
            raise
        # t217: Ctrl-C while an action waited on a slow worker said only "interrupted":
        # typed again, the action got a new key and was applied twice (an escalation two
        # levels, two silences). Its outcome is unknown: say so, and how to retry it once.
        raise CliError(
            f"interrupted: whether {method} {path} was applied is unknown (`runs show` or "
            "`silences list` tells)" + same_action_again(args, key, given_key),
            EXIT_INTERRUPTED,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(getattr(exc, "reason", exc), TimeoutError):
            # t85: a worker frozen or overloaded (it took the connection, answered nothing
            # in 10 s) was "no worker serves it there; start one", and an action's outcome,
            # unknown, went unsaid.
            unknown = (
                f"; whether {method} {path} was applied is unknown (`runs show` or "
                "`silences list` tells)" + same_action_again(args, key, given_key)
                if key
                else ""
            )
            held = frozen_demo_worker(base)
            raise CliError(
                f"the operator API at {base} took the connection but did not answer within "
                + (
                    f"10 s: {held}{unknown}"
                    if held
                    else f"10 s: a worker frozen or overloaded? "
                    f"`{command_line('stack', 'status')}` shows the demo's worker, and its "
                    f"log what it is doing{unknown}"
                ),
                EXIT_SERVICE,
            ) from None
        why = said(getattr(exc, "reason", exc))
        raise CliError(
            f"cannot reach the operator API at {base} ({why}): "
            f"{unreachable_hint(args.url, given_argv(args))}",
            EXIT_SERVICE,
        ) from None


def listed(doc: Any, key: str, url: str | None, path: str) -> list[Any]:
    """``doc[key]``: the list a listing GET of the operator API answers (``runs``,
    ``silences``, ``firing``), once ``doc`` is seen to be the operator API's, a JSON
    object whose ``key`` is a list. Else CliError (status 1) naming the server and what
    it answered instead (t116: ``alerts list --url`` at a Prometheus, whose own
    ``/api/v1/alerts`` answers ``{"status", "data"}``, said "0 alerts firing now", exit
    0; an Alertmanager 0.25's ``/api/v1/silences`` would have been "0 silences")."""
    if isinstance(doc, dict) and isinstance(doc.get(key), list):
        return list(doc[key])
    if isinstance(doc, dict):
        keys = list(doc)
        had = "an object with " + (
            "no keys" if not keys else "keys " + ", ".join(repr(str(k)[:40]) for k in keys[:6])
        )
    else:
        had = "JSON that is no object"
    raise CliError(
        f"the server at {api_base(url)} answered GET /api/v1{path} with {had}, not the "
        f'operator API\'s "{key}" list: no citybrain worker there (Prometheus and '
        f"Alertmanager have an /api/v1 of their own); {not_a_worker(url)}",
        EXIT_FAILED,
    )


# Pages a listing follows at most (of up to 1,000 items each, the API's PAGE_MAX): a
# server whose next links went round in a loop is stopped, not followed for ever.
MAX_PAGES = 10_000


def all_pages(args: argparse.Namespace, path: str, key: str) -> dict[str, Any]:
    """Every page of a paged listing (``GET /runs``, t186): the first page's answer with
    ``key`` holding the items of all its pages, followed by each answer's ``next`` link
    until it is null (a worker before t186 answers one page, with no ``next``), and
    ``warnings`` gathering every page's (the runs some workers could not give). Each page
    is checked as ``listed`` checks it. CliError (status 1) for a ``next`` link that is
    not under the API's path, or one given twice (a loop)."""
    doc = _api(args, "GET", path)
    items = listed(doc, key, args.url, path)
    seen: set[str] = set()
    page = doc
    warnings: list[str] = []
    while True:
        # A page that lacks some workers' runs says so (t194: a rolling upgrade, a slow
        # worker): each line kept once, in order.
        said = page.get("warnings") if isinstance(page, dict) else None
        for line in said if isinstance(said, list) else ():
            if isinstance(line, str) and line not in warnings:
                warnings.append(line)
        if not (isinstance(page, dict) and isinstance(page.get("next"), str)):
            break
        link = page["next"]
        if not link.startswith("/api/v1/") or link in seen or len(seen) >= MAX_PAGES:
            raise CliError(
                f"the server at {api_base(args.url)} answered GET /api/v1{path} with a next "
                f"page {link[:120]!r} that "
                + ("it gave before (a loop)" if link in seen else "is not a page of its list")
                + f"; {len(items):,} {key} read",
                EXIT_FAILED,
            )
        seen.add(link)
        page = _api(args, "GET", link.removeprefix("/api/v1"))
        items += listed(page, key, args.url, path)
    merged = {**doc, key: items, "next": None}
    if warnings:
        merged["warnings"] = warnings
    return merged


def same_action_again(args: argparse.Namespace, key: str, given_key: str | None) -> str:
    """The hint to retry an action whose outcome is unknown as the same action: the
    command again with its Idempotency-Key (the token left out, as everywhere)."""
    argv, secret = without_token(given_argv(args))
    retry = argv if given_key else [*argv, "--idempotency-key", key]
    return (
        f"; retry it as the same action (applied once, even if the first one still "
        f"takes effect): {command_line(*retry)}" + (" with your --token" if secret else "")
    )


def api_command(*argv: str, url: str | None = None) -> str:
    """A `runs` or `silences` command line to print: after only the settings it reads
    (API_SETTINGS), with ``--url`` when the command that failed was given one."""
    return command_line(*argv, *(["--url", url] if url else []), only=API_SETTINGS)


def unreachable_hint(url: str | None, argv: Sequence[str] = ()) -> str:
    """What to do when no worker answers: start one where --url points (its port as
    CITYBRAIN_WORKER_PORT when the host is this machine), not on the default port (trial
    8: ``--url http://127.0.0.1:1`` was told to start a worker on 16066). ``argv``: the
    command that failed, printed again with the demo's settings when its worker runs
    elsewhere."""
    import urllib.parse

    stopped = stopped_demo_worker(url, argv)
    if stopped:
        return stopped
    if url is None:
        return (
            f"no worker serves it there; start one (`{make_command('demo')}` in the checkout "
            f"leaves its worker running, or `{command_line('worker')}`) or give --url"
        )
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        start = command_line("worker", env={"CITYBRAIN_WORKER_PORT": str(port)})
        return f"no worker serves it there; start one on port {port} (`{start}`) or check --url"
    return f"no worker serves it there; check --url, or that the worker on {parts.hostname} runs"


def frozen_demo_worker(base: str) -> str:
    """When ``base`` is the last demo's worker and its process is frozen (``kill -STOP``,
    a debugger): so, with its pid and ``kill -CONT``; else "". t104: `runs list` said "a
    worker frozen or overloaded?" and sent the user to `stack status`, which said
    "running"."""
    from citybrain.demo import DemoFiles, demo_worker
    from citybrain.stack.process import frozen, read_pid

    settings = _settings()
    state, doc = demo_worker(settings)
    demo_url = str((doc or {}).get("worker_url") or f"http://127.0.0.1:{settings.worker_port}")
    pid = read_pid(DemoFiles.of(settings).pid) if state == "running" else None
    if base.rstrip("/") != demo_url.rstrip("/") or not frozen(pid):
        return ""
    return (
        f"it is the demo's worker (pid {pid}), frozen (stopped by `kill -STOP` or a "
        f"debugger): `kill -CONT {pid}` resumes it"
    )


def stopped_demo_worker(url: str | None, argv: Sequence[str] = ()) -> str:
    """When the worker --url names (the default one with none) is the last demo's and it
    does not run: the command that starts it again with every setting the demo gave it
    (trial 8: the hint to start a worker left out its topic prefix, app id, tokens file
    and ack deadline), after where its log is when it stopped without `make stack-down`
    (crashed or killed), or its prefix when it is down (its demo interrupted, or `stack
    down` stopped it); with no --url while the demo's worker runs at another address
    than this shell's settings give, ``argv`` (the command that failed) again with the
    demo's settings; else ""."""
    from citybrain.demo import DemoFiles, demo_worker, restart_advice, running_demo

    settings = _settings()
    state, doc = demo_worker(settings)
    demo_url = (doc or {}).get("worker_url") or f"http://127.0.0.1:{settings.worker_port}"
    demo = running_demo(settings)
    if demo is not None and state != "running" and url in (None, demo_url):
        # t60: `runs list` typed while a demo started said "no worker serves it there;
        # start one (`make demo` …)", which refuses while this demo runs.
        return (
            f"the running demo (pid {demo.pid}, topic prefix {demo.prefix or '?'}) is still "
            f"starting its worker (log: {DemoFiles.of(settings).log}); run this again once "
            "the demo prints its progress lines"
        )
    if state == "running" and url is None and api_base(None) != demo_url.rstrip("/"):
        # t76: with only CITYBRAIN_RUN_DIR set, `runs list` asked 16066 and was told to
        # start a worker with `make demo`, which deletes the running demo worker's topics.
        import urllib.parse

        argv, secret = without_token(argv or ["runs", "list"])
        # The demo's port over this shell's, which printed commands otherwise keep.
        port = urllib.parse.urlsplit(demo_url).port
        env = {"CITYBRAIN_WORKER_PORT": str(port)} if port else None
        again = command_line(*argv, env=env, only=API_SETTINGS)
        return (
            f"the last demo's worker runs at {demo_url}, with settings this shell lacks; "
            f"type it with them: `{again}`" + (" with your --token" if secret else "")
        )
    if state == "running" and url is not None and url.rstrip("/") != demo_url.rstrip("/"):
        import urllib.parse

        if urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            # t102: a mistyped --url port (21067 for 21066) was told to start a worker
            # there, a new one on another prefix, while the demo's served its runs.
            return (
                f"no worker serves it there; the last demo's worker runs at {demo_url} "
                f"(topic prefix {doc.get('topic_prefix') if doc else '?'}): give --url "
                f"{demo_url}"
            )
    if state == "running" and (url is None or url.rstrip("/") == demo_url.rstrip("/")):
        # Its process lives but does not serve yet: starting (`stack restart-worker` in
        # another shell, a worker restarted after a crash). t209: `silences list` typed
        # then was told "no worker serves it there; start one (`make demo` …)", which
        # would delete this demo's topics, or a second worker.
        from citybrain.stack.process import read_pid

        pid = read_pid(DemoFiles.of(settings).pid)
        log = (doc or {}).get("worker_log") or DemoFiles.of(settings).log
        prefix = (doc or {}).get("topic_prefix") or "?"
        return (
            f"the last demo's worker (pid {pid}, topic prefix {prefix}) runs but does not "
            f"serve its API yet: it is starting (about 30 s on 2 cores, at most 90 s; log: "
            f"{log}); run this again once `{command_line('stack', 'status')}` shows it "
            "running"
        )
    if state == "running" or doc is None or (url is not None and url.rstrip("/") != demo_url):
        return ""
    if state == "none":
        # Its demo was interrupted, or `stack down` stopped it: not "start one (`make
        # demo` …)", which deletes this demo's topics (t46).
        return (
            f"the last demo's worker (prefix {doc.get('topic_prefix')}) is not running; start "
            f"it again, as the demo ran it, with its runs: {restart_advice(settings)}"
        )
    log = doc.get("worker_log") or "its log"
    return (
        f"the demo's worker has stopped (crashed or killed: see {log}); start it again, as "
        f"the demo ran it: {restart_advice(settings)}"
    )


def no_token_hint() -> str:
    """Where a token is, for a command given none: the demo's operator token file when a
    demo made one (t40: the message said only "`make demo` prints a demo token" while a
    demo ran, not the file the 403 messages name), else how to get one."""
    from citybrain.demo import DemoFiles

    token = DemoFiles.of(_settings()).token
    if token.exists():
        return (
            f"; the demo's operator token is in {token}: "
            f'`export CITYBRAIN_API_TOKEN="$(cat {shell_word(str(token))})"` (its '
            f"coordinator token is in {DemoFiles.of(_settings()).coordinator_token})"
        )
    return (
        f" (`{make_command('demo')}` in the checkout prints a demo token; docs/playbooks.md "
        "says how to configure your own)"
    )


def forbidden_hint() -> str:
    """A 403 means the token's role may not do this: point to the demo's coordinator
    token when a demo made one (its operator token may not expire silences)."""
    from citybrain.demo import DemoFiles

    coordinator = DemoFiles.of(_settings()).coordinator_token
    if coordinator.exists():
        # Once, shell-quoted (t60: the path twice made the line 330 characters, and a
        # run directory with a space broke the `$(cat …)` typed as printed).
        quoted = shell_word(str(coordinator))
        return f'; give the demo\'s coordinator token: --token "$(cat {quoted})"'

    return "; ask for a token with that role (docs/playbooks.md, the operator API: roles)"


def known_id_hint(base: str, token: str, path: str, argv: Sequence[str]) -> str:
    """For a 404 on a run or silence id: ``; did you mean 'grp-….1'? (…/citybrain runs
    show grp-….1)``, the closest id the worker lists (``closest``; t40: an id with its ``.1``
    left off got only "check the id with `runs list`") and the command as given
    (``argv``, every option kept) with that id, or "" when none is close or the list
    cannot be had (the 404's own hint still says what to do)."""
    import urllib.parse
    import urllib.request

    from streams.errors import closest

    parts = path.split("?")[0].split("/")
    if len(parts) < 3 or parts[1] not in ("runs", "silences") or not parts[2]:
        return ""
    listing, given = parts[1], urllib.parse.unquote(parts[2])
    key = "run_id" if listing == "runs" else "id"
    headers = {"Authorization": f"Bearer {token}"}
    items: list[Any] = []
    link: Any = f"/api/v1/{listing}"
    deadline = time.monotonic() + 5
    try:
        # Every page of a paged list (t186: GET /runs answers 500 runs a page, the
        # oldest first, and a recent run was never suggested), within the 5 s in all.
        while isinstance(link, str) and link.startswith("/api/v1/"):
            request = urllib.request.Request(base + link, headers=headers)
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            with _no_redirects().open(request, timeout=wait) as resp:
                doc = json.load(resp)
            items += doc.get(listing, [])
            link = doc.get("next")
        ids = [str(item[key]) for item in items if isinstance(item, dict) and item.get(key)]
    except Exception:  # only a suggestion: the 404 is the answer
        return ""
    words, secret = without_token(argv)
    with_token = " with your --token" if secret else ""

    def again(run_id: str) -> str:
        if given not in argv:
            return ""
        line = command_line(*[run_id if w == given else w for w in words], only=API_SETTINGS)
        return f" (`{line}`{with_token})"

    if listing == "runs" and (owners := runs_named_by(given, items)):
        # t102: an alert's id (from /alerts or the demo's summary), a cell's or a
        # report's, typed for the run's, was only "no run 'al-…'".
        what, runs = owners
        if len(runs) == 1:
            return f"; {given!r} is {what} of run {runs[0]!r}{again(runs[0])}"
        shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
        return f"; {given!r} is {what} of {len(runs)} runs: {shown}"
    near = closest(given, ids)
    if near is None or near == given:
        return ""
    return f"; did you mean {str(near)!r}?{again(str(near))}"


def runs_named_by(given: str, runs: Sequence[Any]) -> tuple[str, list[str]] | None:
    """When ``given`` (typed as a run id) is instead an alert id, a grid cell or a
    citizen report id of some of ``runs`` (the API's run objects): what it is (``an
    alert id``) and the ids of those runs, in the list's order; else None."""
    kinds = (
        (
            "an alert id",
            lambda r: (
                given in (r.get("alert_id"), *r.get("alerts", ()), *r.get("ended_alerts", ()))
            ),
        ),
        ("the grid cell", lambda r: r.get("grid_cell") == given),
        ("a citizen report id", lambda r: given in (r.get("reports") or {})),
    )
    for what, names in kinds:
        found = []
        for run in runs:
            try:
                if isinstance(run, dict) and run.get("run_id") and names(run):
                    found.append(str(run["run_id"]))
            except TypeError:  # a field of another shape: only a suggestion
                continue
        if found:
            return what, found
    return None


def answer_again(report: str, reason: str, argv: Sequence[str]) -> str:
    """For the API's 404 on a report id a run does not cover, whose ``reason`` names the
    closest one it covers (``… (did you mean 'nyc311-61279245'?)``): the command as given
    (``argv``) with that id, `` (`…/citybrain runs answer … --report nyc311-61279245`)``,
    or "" when ``report`` is not one word of ``argv`` (``--report=…``)."""
    import ast

    near = reason.rsplit("(did you mean ", 1)[1].removesuffix("?)")
    try:
        near = ast.literal_eval(near)
    except (ValueError, SyntaxError):
        return ""
    if report not in argv or not isinstance(near, str):
        return ""
    words, secret = without_token(argv)
    again = [near if word == report else word for word in words]
    with_token = " with your --token" if secret else ""
    return f": `{command_line(*again, only=API_SETTINGS)}`{with_token}"


def _worker_example(url: str | None) -> str:
    """``, e.g. http://…`` naming a worker's base URL to give --url: the running demo's
    worker's, else this shell's settings' (CITYBRAIN_WORKER_PORT); "" when that is the
    URL given. t147: the example was always http://127.0.0.1:16066, where no worker ran
    while the demo's served on the port it was started with."""
    from citybrain.demo import demo_worker

    state, doc = demo_worker(_settings())
    example = api_base(None)
    if state == "running" and doc and doc.get("worker_url"):
        example = str(doc["worker_url"]).rstrip("/")
        if example != api_base(None):
            example += ", the last demo's worker"
    if url is not None and example.split(",")[0] == url.rstrip("/").removesuffix("/api/v1"):
        return ""
    return f", e.g. {example}"


def not_a_worker(url: str | None) -> str:
    """What to do when the server at the operator API's address is no citybrain worker
    (a 404 on a list, an answer that is not JSON, a redirect): give ``--url`` the worker's
    base URL when ``url`` (``--url``) was given; when it was not, the default address
    (CITYBRAIN_WORKER_PORT's) is another program's, named by its pid and command line
    when ``/proc`` says. t209: a server left on port 16066 answered 404, and the
    newcomer, who had given no --url, was told "--url takes the worker's base URL
    (scheme, host and port, e.g. http://127.0.0.1:16066)", the address that failed."""
    if url is not None:
        return f"--url takes the worker's base URL (scheme, host and port{_worker_example(url)})"
    from citybrain.ports import holder

    port = _settings().worker_port
    who = holder(port)
    example = _worker_example(None)
    elsewhere = "" if example == f", e.g. {api_base(None)}" else example
    return (
        f"port {port} (CITYBRAIN_WORKER_PORT) is "
        + (f"held by {who}, " if who else "")
        + "a server that is no citybrain worker: stop it, or give --url where a worker "
        + f"serves{elsewhere}"
    )


def not_found_hint(path: str, reason: str, url: str | None = None) -> str:
    """What a 404 from the API path ``path`` tells the operator to check: a report id
    the run does not cover is listed by `runs show RUN_ID` (`runs list` shows none);
    a run or silence id by its `list`."""
    if path.startswith("/runs/") and path.endswith("/answer") and "covers no report" in reason:
        if reason.endswith("covers no citizen report at all"):
            return ""  # nothing `runs show` would list (t48)
        run_id = path.split("/")[2]
        return f"; see the run's report ids with `{api_command('runs', 'show', run_id, url=url)}`"
    listing = "silences" if path.startswith("/silences") else "runs"
    if path.split("?")[0] in ("/runs", "/silences", "/alerts"):
        # A list has no id to check: the API itself is not where --url points.
        return f"; no operator API there: {not_a_worker(url)}"
    return f"; check the id with `{api_command(listing, 'list', url=url)}`"


def _no_redirects() -> Any:
    """A urllib opener that follows no redirect (a 3xx is an HTTPError): urllib's own
    copied the Authorization header to wherever a redirect pointed, another host too
    (trial 29: a 302 from --url sent the operator's token to the host it named)."""
    import urllib.request

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # urllib then raises the 3xx as an HTTPError

    return urllib.request.build_opener(Refuse)


def shown_location(location: str) -> str:
    """A redirect's target as a message shows it: a password as ***, at most 200
    characters, control characters escaped."""
    from citybrain.text import cell
    from playbooks.schema import shown_url

    shown = cell(shown_url(location))
    return shown if len(shown) <= 200 else shown[:200] + "..."


def check_bearer(token: str, where: str) -> None:
    """CliError (status 2) when ``token`` (given as ``where``: an option or a setting)
    has a character no ``Authorization: Bearer`` header can carry; the message names
    the character and its position, never the token. Such a character was a
    UnicodeEncodeError or an "Illegal header value b'Bearer <the token>'" traceback
    ("a bug", exit 70; trial 29 for Grafana's token)."""
    encoded = token.encode("utf-8", "surrogateescape")
    if _BEARER.fullmatch(encoded):
        return
    bad = _bearer_fault(encoded)  # (every byte before it is ASCII: a character index)
    char = token[bad]
    # (A byte that is not UTF-8 arrives as a surrogate escape: named as the byte.)
    shown = f"byte 0x{ord(char) - 0xDC00:02x}" if "\udc80" <= char <= "\udcff" else repr(char)
    raise CliError(
        f"{where} has {shown} at position {bad + 1}: a bearer token is ASCII "
        "letters, digits and - . _ ~ + / (then = padding), RFC 6750"
    )


def check_url(option: str, url: str | None, port: int | None = None) -> str | None:
    """``url`` as given (None stays None), or CliError (status 2) naming ``option`` when
    it is not an http:// or https:// URL with a host: ``localhost:16766`` would
    otherwise be tried as a URL of scheme "localhost" and reported as unreachable.
    ``port``: the port of the service ``option`` names, for the messages' example (the
    operator API's by default; t168: `dashboards push --url` was shown the worker's
    http://127.0.0.1:16066 as the example of a Grafana's URL)."""
    import urllib.parse

    from playbooks.schema import host_problem, shown_url

    if url is None:
        return None
    if port is None:
        port = _settings().worker_port
    if not url.strip():
        # t151: `--url ''` was "the http:// scheme is missing, e.g. http://", a URL with
        # no host; a script's unset variable is said as that.
        raise CliError(
            f"{option} is {'empty' if not url else 'blank'}: expected an http:// or https:// "
            f"URL with a host, e.g. http://127.0.0.1:{port}"
        )
    check_text(option, url)
    odd = next((c for c in url if not c.isascii()), None)
    if odd is not None:
        # urllib sends a URL as it is: é in it was an "unexpected UnicodeEncodeError" (t117).
        raise CliError(
            f"{option} has {odd!r} at position {url.index(odd) + 1}: a URL is ASCII (a host "
            "name in its punycode, xn--…; a path with %-escapes)"
        )
    shown = shown_url(url)  # a password in it is never echoed (trial 29)
    example = f"expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:{port}"
    if any(c.isspace() for c in url):
        raise CliError(f"{option} is {shown!r}: {example}")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        # `http://[::1` (a bracket left open), `http://[zz]`: urlsplit's own ValueError
        # was "unexpected ValueError: Invalid IPv6 URL … a bug", exit 70 (t158).
        raise CliError(
            f"{option} is {shown!r}: {exc}; an IPv6 address goes in brackets, "
            f"e.g. http://[::1]:{port}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(
            f"{option} is {shown!r}: the http:// scheme is missing, e.g. http://{shown}"
            if "://" not in url
            else f"{option} is {shown!r}: {example}"
        )
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port outside 0-65535
    except ValueError:
        raise CliError(f"{option} is {shown!r}: the port is not a number from 1 to 65535") from None
    bad_host = host_problem(parts.hostname or "")
    if parts.hostname and bad_host:
        raise CliError(f"{option} is {shown!r}: {bad_host}")
    if parts.username is not None:
        # The services take a token (--token), not a user and password in the URL; the
        # URL is shown in every message (trial 29: "cannot reach … at http://ops:pw@…").
        raise CliError(
            f"{option} is {shown!r}: expected no user or password in the URL; give the "
            "token with --token"
        )
    return url.rstrip("/")


def api_base(url: str | None) -> str:
    """The operator API's base URL from ``--url`` (checked by ``check_url``), the local
    worker's by default. A URL ending in the API's own ``/api/v1`` (the path the README
    names) is taken as the worker's: the commands add ``/api/v1`` themselves."""
    base = check_url("--url", url) or f"http://127.0.0.1:{_settings().worker_port}"
    return base.removesuffix("/api/v1")


def api_reason(body: str, status: int) -> str:
    """The readable part of an error answer: the API's ``{"error": ...}`` text, else the
    body's first line of text with any HTML tags removed (a proxy's or aiohttp's page),
    at most 200 characters (the API's own text: 2,000); the HTTP reason phrase when the
    body says nothing."""
    import http
    import re

    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        text = doc["error"]
    elif doc is not None:  # JSON without a reason in it: the status's phrase says more
        text = ""
    else:
        lines = [ln.strip() for ln in re.sub(r"<[^>]*>", "\n", body).splitlines()]
        text = next((ln for ln in lines if ln), "")
    text = " ".join(text.split())
    if not text:
        try:
            text = http.HTTPStatus(status).phrase
        except ValueError:
            text = "no reason given"
    # The API's own reason is shown whole: its advice ("relay the reporter's answer as a
    # new report, or answer run <new> …") comes last (trial 5: cut at 200 characters). A
    # page from something else (a proxy) is cut.
    limit = 2000 if isinstance(doc, dict) and isinstance(doc.get("error"), str) else 200
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2))


def _next_deadline(run: dict[str, Any], now: float, short: bool = False) -> str:
    """The nearer of the run's step deadline and its SLA deadline, with how far off
    (``short``: only which and how far off, "step in 90 s")."""
    candidates = [
        (at, what)
        for at, what in ((run.get("deadline_at"), "step"), (run.get("sla_deadline_at"), "SLA"))
        if at is not None
    ]
    if not candidates or run.get("status") in ("resolved", "cancelled", "failed", "expired"):
        return "-"
    at, what = min(candidates)
    delta = at - now
    when = f"in {_ago(delta)}" if delta >= 0 else f"{_ago(-delta)} overdue"
    return f"{what} {when}" if short else f"{_local(at)} ({what}, {when})"


def _cell_names() -> dict[str, str]:
    """Cell id -> name from the local grid file; empty when it cannot be read (the table
    then shows ids only: the names are a help, not the answer)."""
    from playbooks.loader import load_grid

    try:
        grid = load_grid(_settings().grid_file)
    except Exception:
        return {}
    return {cell_id: cell.name for cell_id, cell in grid.cells.items()}


def _cell(run: dict[str, Any], names: dict[str, str]) -> str:
    name = names.get(run.get("grid_cell", ""))
    return f"{run.get('grid_cell', '')} ({name})" if name else str(run.get("grid_cell", ""))


_BEARER = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_BYTES = 4096
_NOT_BEARER = re.compile(rb"[^A-Za-z0-9\-._~+/=]")
_AFTER_PADDING = re.compile(rb"=[^=]")


def _bearer_fault(data: bytes) -> int:
    """Index of the first byte that keeps ``data`` (not a ``_BEARER`` token) from being
    one: a byte outside the alphabet, else the first byte after ``=`` padding; 0 for an
    empty or all-padding token."""
    outside = _NOT_BEARER.search(data)
    if outside:
        return outside.start()
    padded = _AFTER_PADDING.search(data)
    return padded.start() + 1 if padded else 0
