"""Playbook definitions (schema version 1), strict: unknown keys are errors.

A playbook is a list of steps run in order. Each step may name where to go next on
``on_success``, ``on_failure`` and (for steps that wait) ``on_timeout``; without them a
run goes to the following step, a failure fails the run, and after an acknowledgement a
run skips the rest of the escalation ladder (the ``escalate``/``wait_ack`` steps that
follow). ``on_cancel`` lists compensation steps run when a run is cancelled.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from playbooks.errors import did_you_mean, name_fault, shown
from playbooks.grid import LEVELS

# Prometheus' model.Duration (prometheus/common model/time.go, ParseDuration), the syntax
# of every Alertmanager duration: integers with units from the largest to the smallest,
# each at most once, "0" alone allowed; no fractions, signs or spaces.
_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION_PART = re.compile(r"([0-9]+)([a-z]+)")
_MAX_NANOSECONDS = 2**63 - 1  # Go's time.Duration
ROLES = ("operator", "coordinator")


def go_int(digits: str, limit: int = _MAX_NANOSECONDS) -> int | None:
    """``digits`` (ASCII digits, a sign allowed) as Go's ``strconv.ParseInt`` reads them:
    the number, leading zeros and all (``0002020`` is 2020), or None when it is beyond
    ``limit`` either way (Go's int64 by default: "value out of range"). Never hands
    int() more than 19 digits: Python refuses a decimal of over 4,300 ("Exceeds the limit
    (4300 digits) for integer string conversion"), which was the message, or a
    ValueError out of the routing file's check (exit 70), for a duration or a time
    interval's year of 5,000 digits (t190)."""
    sign = -1 if digits.startswith("-") else 1
    significant = digits.lstrip("+-").lstrip("0") or "0"
    if len(significant) > len(str(limit)):
        return None
    value = sign * int(significant)
    return value if abs(value) <= limit else None


# An ISO 8601 duration of weeks, days, hours, minutes and seconds (``P1D``, ``PT1H30M``,
# ``P1DT12H``): the spelling of Java, .NET and JSON APIs, not Prometheus's. Years and
# months are left out: a month is no fixed time.
_ISO_DURATION = re.compile(
    r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", re.IGNORECASE
)
# A part with a fraction (``1.5h``, ``0.5d``).
_FRACTION_PART = re.compile(r"([0-9]*\.[0-9]+|[0-9]+\.)([a-z]+)")


def duration_text(seconds: int) -> str:
    """Whole ``seconds`` in Prometheus syntax, largest unit first: 5400 -> ``1h30m``,
    86400 -> ``1d``, 0 -> ``0s`` (weeks and years left out: ``14d`` reads plainer than
    ``2w``)."""
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(_UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _duration_hint(text: str) -> str:
    """A hint for a duration written in a spelling other than Prometheus's, or "": a sign
    (``-1h``: a duration here is a length of time), an ISO 8601 duration (``P1D``: write
    ``1d``) or a fraction (``1.5h``: write ``1h30m``). Each was "expected an integer with
    units" alone (t197: ``citybrain silences add --duration P1D``)."""
    if text[:1] in "-+" and len(text) > 1:
        rest = text[1:]
        if text[0] == "-":
            return ": a duration is a length of time, never negative"
        return f": write it without the sign, {rest}"
    iso = _ISO_DURATION.fullmatch(text)
    if iso is not None and any(iso.groups()) and len(text) <= 40:
        weeks, days, hours, minutes, secs = (int(g or 0) for g in iso.groups())
        total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
        return f": {text} is an ISO 8601 duration; write it {duration_text(total)}"
    if _FRACTION_PART.search(text) is not None:
        try:
            seconds = sum(
                float(n) * _UNITS[u]
                for n, u in re.findall(r"([0-9.]+)([a-z]+)", text)
                if u in _UNITS
            )
        except ValueError:
            return ": whole numbers only"
        if not seconds < 1e12:  # (a number past any duration, or an infinite one)
            return ": whole numbers only"
        whole, ms = divmod(round(seconds * 1000), 1000)
        if abs(seconds * 1000 - round(seconds * 1000)) < 1e-6 and (whole or ms):
            written = (duration_text(whole) if whole else "") + (f"{ms}ms" if ms else "")
            return f": whole numbers only; write it {written}"
        return ": whole numbers only"
    if text != text.lower() and text.isascii():
        try:
            parse_duration(text.lower())
        except ValueError:
            return ""
        return f": units are lower case, {text.lower()}"
    return ""


def parse_duration(text: str) -> float:
    """A duration in Prometheus syntax (``"90s"``, ``"1h30m"``, ``"1d"``, ``"1w"``,
    ``"0s"``, ``"0"``) -> seconds. Raises ValueError naming the text, as Prometheus'
    ``model.ParseDuration`` would refuse it (``"1.5h"``, ``"-1m"``, ``"5x"``, ``"1m1h"``)."""
    if not isinstance(text, str):
        raise ValueError(f"duration is {shown(text)}, expected text such as 30s, 5m, 1h30m or 1d")
    if text == "0":
        return 0.0
    expected = "expected an integer with units y, w, d, h, m, s, ms, largest first (1h30m)"
    if text == "":
        raise ValueError(f"duration is empty, {expected}")
    if text.isascii() and text.isdigit():
        # A bare number of seconds, as a playbook's `deadline: 300` is often meant (t122).
        example = f" ({text}s)" if len(text) <= 40 else ""
        raise ValueError(f"duration is {shown(text)}, {expected}: a number needs its unit{example}")
    position, order, nanoseconds = 0, -1, 0
    units = list(_UNITS)
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError(f"duration is {shown(text)}, {expected}{_duration_hint(text)}")
        number, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError(
                f"duration {shown(text)} has the unknown unit {shown(unit)}, {expected}"
                f"{did_you_mean(unit, _UNITS)}"
            )
        if units.index(unit) <= order:
            raise ValueError(f"duration is {shown(text)}, {expected}")
        order = units.index(unit)
        count = go_int(number)
        if count is not None:
            nanoseconds += count * int(_UNITS[unit] * 1_000_000_000)
        if count is None or nanoseconds > _MAX_NANOSECONDS:
            raise ValueError(f"duration {shown(text)} is out of range (at most about 292 years)")
        position = match.end()
    return nanoseconds / 1_000_000_000


def _level(value: str | None) -> str | None:
    if value is not None and value not in LEVELS:
        raise ValueError(
            f"level is {value!r}, expected one of {', '.join(LEVELS)}{did_you_mean(value, LEVELS)}"
        )
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _name(value: str) -> str:
    """A playbook's name, a step's id or a playbook's department, as the grid's ids are
    checked (loader._text): non-empty, without leading or trailing spaces, control
    characters (an ESC reached the terminal of whoever read the audit, a log or `runs
    show`), invisible format characters (a zero-width space, a bidirectional control) or
    line and paragraph separators (U+2028, U+2029: t186), as ``errors.name_fault`` says
    with the character (U+XXXX). Raises ValueError naming
    the value. Before t122 each was taken: ``playbook: ''`` or ``'probe '`` passed the
    check, and no route could name it (``playbook: ''`` is refused, ``probe`` is not
    ``'probe '``)."""
    if not value.strip():
        raise ValueError(f"is {shown(value)}, expected non-empty text")
    if value != value.strip():
        raise ValueError(f"is {shown(value)}, expected text without leading or trailing spaces")
    fault = name_fault(value)
    if fault is not None:
        raise ValueError(f"is {shown(value)}, which holds {fault}, expected printable text")
    return value


def _version_one(value: Any) -> Any:
    """``version: true`` refused: pydantic's ``Literal[1]`` takes True, which equals 1 in
    Python (t122: a playbook or routing file with ``version: true``, or ``yes``/``on`` in
    YAML 1.1, passed where the grid file refuses it)."""
    if isinstance(value, bool):
        raise ValueError(f"is {str(value).lower()}, expected 1")
    return value


# A step text's parts (``fill``): ``{name}``, a placeholder (an alert label such as
# ``{category}``, or ``{kind}``, ``{grid_cell}``, ``{run_id}``), and ``{{``/``}}``, a brace.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The same parts, and any other brace: the first of those is where a text goes wrong.
_PARTS = re.compile(PLACEHOLDER.pattern + r"|[{}]")


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{name}`` replaced by ``values[name]`` (empty when it has none)
    and ``{{``/``}}`` by a brace; anything else as written, and a label's value put in as
    it is, never read as a template. Never raises: str.format_map took
    ``{grid_cell.real}`` (AttributeError) and ``{category[x]}`` (TypeError) and failed
    every run of the playbook, and ``{category:>1000000000}`` built a gigabyte (helper
    t52); the loader refuses them (``_template``)."""
    return PLACEHOLDER.sub(
        lambda m: m.group(0)[0] if m.group(1) is None else values.get(m.group(1), ""), text
    )


def _template(value: str | None) -> str | None:
    """A step text (``message``, ``text``, a dispatch's ``unit`` or ``department``): its
    braces only in ``{name}`` placeholders, ``{{`` and ``}}``. Raises ValueError naming
    the first other part (``{grid_cell.real}``, ``{0}``, a lone brace)."""
    for part in _PARTS.finditer(value or ""):
        if part.group(0) not in "{}":
            continue
        assert value is not None
        at = part.start()
        close = value.find("}", at + 1) if part.group(0) == "{" else at
        odd = value[at : close + 1] if 0 <= close - at < 40 else value[at : at + 30]
        raise ValueError(
            f"placeholder {odd!r} in {value!r:.80}: a text takes {{name}} only, an alert "
            "label ({category}) or {kind}, {grid_cell}, {run_id}, with no format or index; "
            "write {{ and }} for a brace"
        )
    return value


# The shortest step deadline and SLA, seconds. The worker acts on deadlines at its
# deadline check, once a second (CITYBRAIN_DEADLINE_CHECK_INTERVAL): a shorter one is kept
# as if it were zero. `deadline: 1ms` passed where `0s` was refused, and a wait_ack
# looping back on its timeout notified at every check all the same (t177).
MIN_DEADLINE_SECONDS = 1.0


def _sla(value: str) -> str:
    """A playbook's ``sla``: a duration of at least a second. ``0s`` passed, and every run
    of the playbook breached its SLA the moment it opened (``sla_breach`` on every run);
    ``1ms`` did the same at the first deadline check (t177)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"sla cannot be zero (it is {value!r}): every run would breach it at once")
    if seconds < MIN_DEADLINE_SECONDS:
        raise ValueError(
            f"sla is {value!r}, less than a second: every run would breach it at the worker's "
            "first deadline check; give 1s or more"
        )
    return value


def _deadline(value: str) -> str:
    """A step's ``deadline``: a duration of at least a second. ``0s`` passed, and a
    ``wait_ack`` looping back on its timeout notified once a second, for good (as
    ``repeat_interval: 0s`` did before the routing loader refused it); ``1ms`` did the
    same, as the worker acts on deadlines once a second (t177)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"deadline cannot be zero (it is {value!r}): the step would not wait")
    if seconds < MIN_DEADLINE_SECONDS:
        raise ValueError(
            f"deadline is {value!r}, less than a second: the step would not wait (the worker "
            "acts on deadlines at its check, once a second); give 1s or more"
        )
    return value


def _duration_text(value: Any) -> Any:
    # YAML reads `0` as a number; Alertmanager's YAML decoder takes it as the text "0",
    # and `0x0` or `00` as that text too (the routing loader keeps it: `written`).
    if isinstance(value, int) and not isinstance(value, bool):
        return getattr(value, "written", None) or str(value)
    return value


# Kafka refuses a topic name longer than this (its Topic.MAX_NAME_LENGTH).
KAFKA_TOPIC_NAME_MAX = 249
# The worker's own topics (``<topic prefix>.<role>``, streams.settings.Settings.topics
# takes them from here): a kafka step may not write its task messages into one, where the
# worker would read them as its own records (t172).
PIPELINE_TOPICS: tuple[str, ...] = (
    "readings",
    "incidents",
    "deadletter",
    "alerts",
    "corroboration",
    "routed",
    "steps",
    "audit",
    "commands",
    "replies",
)


def kafka_name_key(name: str) -> str:
    """``name`` as Kafka compares topic names for a collision: two names that differ
    only by '.' and '_' cannot both exist (the broker refuses to create the second)."""
    return name.replace(".", "_")


# A task topic's longest name: Kafka's 249 characters, less room for the topic prefix
# (whose own length the loader checks the two against: loader.task_topic_errors).
MAX_TASK_TOPIC = 200


def _json_problem(value: Any, where: str) -> str | None:
    """What in ``value`` (as read from YAML) JSON cannot carry as written, naming its
    place (``message.a[2]``), or None: keys are text, numbers finite and 64-bit, values
    text, numbers, true/false, null, lists and mappings."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}, expected text (quote it)"
            problem = _json_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, list):
        return next(
            (p for i, item in enumerate(value) if (p := _json_problem(item, f"{where}[{i}]"))),
            None,
        )
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return None
        return f"{where} is {value}, expected an integer of at most 64 bits (quote it)"
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{where} is {value}, expected a finite number"
    return (
        f"{where} is {type(value).__name__} {str(value)[:60]!r}, expected JSON: text, a "
        "number, true/false, null, a list or a mapping (quote a time or date)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Strict):
    id: str
    on_success: str | None = None
    on_failure: str | None = None
    _check_id = field_validator("id")(_name)


class NotifyStep(_Step):
    """Tell the unit responsible at a grid level (or a named unit)."""

    action: Literal["notify"]
    level: str = "community"
    unit: str | None = None
    message: str = ""
    _check_level = field_validator("level")(_level)
    _check_message = field_validator("message")(_template)


class DispatchStep(_Step):
    """Send a named unit or a department out."""

    action: Literal["dispatch"]
    unit: str | None = None
    department: str | None = None
    message: str = ""
    _check_texts = field_validator("unit", "department", "message")(_template)

    @model_validator(mode="after")
    def _one_target(self) -> DispatchStep:
        if (self.unit is None) == (self.department is None):
            raise ValueError("dispatch needs exactly one of unit or department")
        return self


class KafkaStep(_Step):
    """A task message on a team's topic (``<topic prefix>.<topic>``)."""

    action: Literal["kafka"]
    topic: str
    message: dict[str, Any] = Field(default_factory=dict)

    @field_validator("message")
    @classmethod
    def _json_message(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The message is sent as JSON (orjson) when the step runs: an integer key, a
        # 2**64, a !!binary or !!set passed `playbooks check` and failed every run of the
        # playbook at its send, and .nan was sent as null (t54).
        problem = _json_problem(value, "message")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("topic")
    @classmethod
    def _kafka_name(cls, value: str) -> str:
        # Kafka's legal topic characters, as CITYBRAIN_TOPIC_PREFIX: "tasks metro" passed
        # `playbooks check` and the broker refused it when the topics were made (t54).
        # Kafka's 249-character limit less room for the prefix.
        if (
            not value
            or len(value) > MAX_TASK_TOPIC
            or value in (".", "..")
            or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value)
        ):
            raise ValueError(
                f"{value[:60]!r} is no Kafka topic name: expected letters, digits, '.', '_' "
                f"or '-', at most {MAX_TASK_TOPIC} characters"
            )
        if value in PIPELINE_TOPICS:
            # The worker would read its task messages as its own records (on `alerts`,
            # as alerts to route to runs; on `commands`, as operator commands).
            raise ValueError(
                f"{value!r} is the worker's own {value} topic (<topic prefix>.{value}), "
                "which it reads or writes itself: name a topic of the team's own, such as "
                f"tasks.{value}"
            )
        return value


class AnnotateStep(_Step):
    """A Grafana annotation on the run's timeline."""

    action: Literal["annotate"]
    text: str
    _check_text = field_validator("text")(_template)


InstantStep = Annotated[
    NotifyStep | DispatchStep | KafkaStep | AnnotateStep, Field(discriminator="action")
]


class ParallelStep(_Step):
    """Issue several instant steps at once (dispatch every responsible unit together)."""

    action: Literal["parallel"]
    branches: list[InstantStep]

    @field_validator("branches")
    @classmethod
    def _two_or_more(cls, branches: list[Any]) -> list[Any]:
        if len(branches) < 2:
            raise ValueError("parallel needs at least two branches")
        return branches


class WaitAckStep(_Step):
    action: Literal["wait_ack"]
    deadline: str
    on_timeout: str | None = None
    _text = field_validator("deadline", mode="before")(_duration_text)
    _check_deadline = field_validator("deadline")(_deadline)


class EscalateStep(_Step):
    """Escalate to a named level, or (no level) to the next level up the grid."""

    action: Literal["escalate"]
    level: str | None = None
    _check_level = field_validator("level")(_level)


class ApprovalStep(_Step):
    """A human decision by a role; ``on_failure`` is taken when it is rejected."""

    action: Literal["approval"]
    role: Literal["operator", "coordinator"]
    question: str
    deadline: str
    on_timeout: str | None = None
    _text = field_validator("deadline", mode="before")(_duration_text)
    _check_deadline = field_validator("deadline")(_deadline)


def http_url_problem(url: str) -> str:
    """Why ``url`` is no URL citybrain may POST to, or "": it must be ``http://`` or
    ``https://`` (``file://``, ``ftp://``, ``gopher://`` are refused) with a host and a
    port in range, no user or password (a URL is named in audit records, warnings and
    run steps: a password in it would be shown everywhere; the receiver checks the HMAC
    signature instead), and no space or control character (trial 29)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range or not a number raises ValueError
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:3000"
    bad_host = host_problem(parts.hostname)
    if bad_host:
        return bad_host
    if parts.username is not None or parts.password is not None:
        return (
            "expected no user or password in the URL: it would be shown in audit records and logs"
        )
    if any(c.isspace() or not c.isprintable() for c in url):
        return "expected no space or control character in the URL"
    return ""


# DNS's bounds (RFC 1035 2.3.4): a label of at most 63 octets, a name of at most 253
# characters written out. The IDNA codec every HTTP client encodes a host with refuses
# others with "label empty or too long", raised as a UnicodeError no client wraps.
LONGEST_LABEL = 63
LONGEST_HOST = 253


def host_problem(host: str) -> str:
    """Why ``host`` (a URL's host, as ``urlsplit(url).hostname`` gives it, or a host
    setting's value) can be no host a client connects to, or "": a name with a
    character no DNS name has (``[::1`` in a host setting, ``a%20b``), an empty label
    (``a..b``, ``.example.com``), a label over 63 characters or a name over 253. t158:
    such a ``--url`` or CITYBRAIN_KAFKA_HOST was "unexpected UnicodeError … This is a
    bug" (exit 70) from `runs list`, `dashboards push`, `deadletters`, and a playbook's
    webhook to one passed `playbooks check` and failed every call. An IP address, or a
    name with one trailing dot, is fine (``_`` too: container names have it)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return ""
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    odd = next((c for c in name if c.isascii() and not (c.isalnum() or c in "-_.")), None)
    if odd is not None:
        # `[::1` (a bracket of a URL's IPv6 address in a host setting), `a%20b`, `a:b`.
        brackets = " (an IPv6 one without brackets: ::1)" if odd in "[]" else ""
        return (
            f"the host name {shown(name)} has {odd!r}: expected a DNS name or an IP "
            f"address{brackets}"
        )
    if len(name) > LONGEST_HOST:
        return f"the host name is {len(name):,} characters: a DNS name has at most {LONGEST_HOST}"
    for label in name.split("."):
        if not label:
            return (
                f"the host name {shown(name)} has an empty part (two dots together, or "
                "a dot first): expected a DNS name such as example.org"
            )
        if len(label) > LONGEST_LABEL:
            return (
                f"the host name has a part of {len(label):,} characters "
                f"({shown(label)}): a part between dots is at most "
                f"{LONGEST_LABEL}"
            )
    try:
        name.encode("idna")
    except UnicodeError as exc:  # what the clients would raise, said as the reason
        return f"the host name {shown(name)} is no DNS name ({exc})"
    return ""


def shown_url(url: str) -> str:
    """``url`` as an error may show it: a password in it replaced by ``***``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class WebhookStep(_Step):
    """POST the run to a URL (HMAC-signed); the run waits for the outcome."""

    action: Literal["webhook"]
    url: str
    deadline: str = "60s"
    on_timeout: str | None = None
    _text = field_validator("deadline", mode="before")(_duration_text)
    _check_deadline = field_validator("deadline")(_deadline)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        problem = http_url_problem(url)
        if problem:
            raise ValueError(f"url is {shown_url(url)!r}, {problem}")
        return url


class ResolveStep(_Step):
    action: Literal["resolve"]
    note: str = ""


Step = Annotated[
    NotifyStep
    | DispatchStep
    | KafkaStep
    | AnnotateStep
    | ParallelStep
    | WaitAckStep
    | EscalateStep
    | ApprovalStep
    | WebhookStep
    | ResolveStep,
    Field(discriminator="action"),
]

WAITING_STEPS = (WaitAckStep, ApprovalStep, WebhookStep)


class Playbook(_Strict):
    playbook: str
    version: Literal[1]
    description: str = ""
    department: str
    sla: str = "1h"
    steps: list[Step]
    on_cancel: list[InstantStep] = Field(default_factory=list)
    _sla_text = field_validator("sla", mode="before")(_duration_text)
    _check_sla = field_validator("sla")(_sla)
    _check_version = field_validator("version", mode="before")(_version_one)
    _check_names = field_validator("playbook", "department")(_name)

    @field_validator("steps")
    @classmethod
    def _non_empty(cls, steps: list[Any]) -> list[Any]:
        if not steps:
            raise ValueError("a playbook needs at least one step")
        return steps

    @property
    def sla_seconds(self) -> float:
        return parse_duration(self.sla)

    @property
    def task_topics(self) -> set[str]:
        """The task topics its ``kafka`` steps write to (without the topic prefix), in
        steps, parallel branches and ``on_cancel``."""
        flat: list[Any] = [*self.steps, *self.on_cancel]
        flat += [b for s in self.steps if isinstance(s, ParallelStep) for b in s.branches]
        return {s.topic for s in flat if isinstance(s, KafkaStep)}

    def cross_reference_errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(location, message) for duplicate step ids and transitions to unknown steps."""
        return step_reference_errors([s.model_dump() for s in self.steps])


def step_reference_errors(steps: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, message) for duplicate step ids and transitions to unknown steps in a
    playbook's ``steps`` as read from YAML, valid or not: entries that are not mappings,
    and ids or targets that are not text, are left to the schema's own errors."""
    if not isinstance(steps, list):
        return []
    errors: list[tuple[tuple[str | int, ...], str]] = []
    ids: dict[str, int] = {}
    for i, step in enumerate(steps):
        step_id = step.get("id") if isinstance(step, dict) else None
        if not isinstance(step_id, str):
            continue
        if step_id in ids:
            errors.append((("steps", i, "id"), f"step id {step_id!r} is used twice"))
        ids.setdefault(step_id, i)
    for i, step in enumerate(steps):
        for key in ("on_success", "on_failure", "on_timeout"):
            target = step.get(key) if isinstance(step, dict) else None
            if isinstance(target, str) and target not in ids:
                errors.append(
                    (
                        ("steps", i, key),
                        f"{key} names step {target!r}, which does not exist"
                        f"{did_you_mean(target, ids)}",
                    )
                )
    return errors + step_loop_errors(steps, ids) + unreached_step_errors(steps, ids)


# Steps a run stops at (for a person, or for good); every other step is taken and left at
# once (wait_ack too, once the run is acknowledged). A webhook is left as soon as its
# receiver answers, which can be at once: it stops a run only on its way to on_timeout.
_STOPPING = frozenset({"approval", "resolve"})
_LADDER = frozenset({"escalate", "wait_ack"})


def step_loop_errors(
    steps: list[Any], ids: dict[str, int]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, message) for each loop of steps a run would go round without ever
    stopping (``on_success`` back to an earlier step with only instant steps between:
    notify, dispatch, escalate, ..., wait_ack once acknowledged, and a webhook on its
    ``on_success`` or ``on_failure``). Before, such a playbook passed ``playbooks check``
    and the first alert routed to it held the worker's response agent for good, its
    commands growing without bound; a loop through a webhook's outcome (a receiver that
    answers at once, 200 or 400) notified and called it as fast as it answered (t177).
    The location is the transition that closes the loop."""

    def at_once(i: int) -> list[tuple[int, str]]:
        """The steps a run goes on to from step ``i`` without waiting, each with the
        key of the transition that names it (``on_success`` for the step after it)."""
        step = steps[i]
        if not isinstance(step, dict) or step.get("action") in _STOPPING:
            return []
        out: list[tuple[int, str]] = []
        failure = step.get("on_failure")
        if step.get("action") == "webhook" and isinstance(failure, str) and failure in ids:
            out.append((ids[failure], "on_failure"))
        target = step.get("on_success")
        if isinstance(target, str):
            return [(ids[target], "on_success"), *out] if target in ids else out
        for j in range(i + 1, len(steps)):
            # Acknowledged, a wait_ack skips the rest of the escalation ladder.
            nxt = steps[j]
            ladder = isinstance(nxt, dict) and nxt.get("action") in _LADDER
            if step.get("action") == "wait_ack" and ladder:
                continue
            if isinstance(nxt, dict) and isinstance(nxt.get("id"), str):
                return [(j, "on_success"), *out]
            return out
        return out

    errors: list[tuple[tuple[str | int, ...], str]] = []
    done: set[int] = set()
    for start in range(len(steps)):
        if start in done:
            continue
        # Depth first; a step met again on the current path closes a loop.
        path: list[int] = [start]
        todo: list[list[tuple[int, str]]] = [at_once(start)]
        while path:
            if not todo[-1]:
                done.add(path.pop())
                todo.pop()
                continue
            nxt, key = todo[-1].pop(0)
            if nxt in path:
                loop = path[path.index(nxt) :]
                closing = loop[-1]
                names = " -> ".join(str(steps[k]["id"]) for k in [*loop, nxt])
                errors.append(
                    (
                        ("steps", closing, key),
                        f"steps {names} loop without stopping (each is left at once, a "
                        "wait_ack too once the run is acknowledged, a webhook as soon as its "
                        "receiver answers): a run would go round for good; put a wait_ack or "
                        "an approval in the loop, or leave it on timeout only",
                    )
                )
            elif nxt not in done:
                path.append(nxt)
                todo.append(at_once(nxt))
    return errors


def unreached_step_errors(
    steps: list[Any], ids: dict[str, int]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, message) for each step no run can reach from the first, following the
    engine's moves (engine._next): a step goes on to its ``on_success`` or the step after
    it (a ``wait_ack`` acknowledged, to the first after it off the escalation ladder; timed
    out, to its ``on_timeout`` or the step after it), and to its ``on_failure`` and
    ``on_timeout``; a ``resolve`` ends the run. Such a step is dead configuration, most
    often a transition that names the step after it by mistake or a step written after a
    ``resolve`` (t122: it passed the check, and the run never took it). Steps that are not
    mappings with a text id are left to the schema's errors (nothing is said then)."""
    if not steps or any(not (isinstance(s, dict) and isinstance(s.get("id"), str)) for s in steps):
        return []

    def moves(i: int) -> list[int]:
        step = steps[i]
        action = step.get("action")
        if action == "resolve":
            return []
        out = [ids[t] for k in _TRANSITIONS if isinstance(t := step.get(k), str) and t in ids]
        if not isinstance(step.get("on_success"), str):
            following = range(i + 1, len(steps))
            if action == "wait_ack":
                out += [j for j in following if steps[j].get("action") not in _LADDER][:1]
            else:
                out += list(following)[:1]
        if action == "wait_ack" and not isinstance(step.get("on_timeout"), str):
            out += list(range(i + 1, len(steps)))[:1]
        return out

    reached, todo = {0}, [0]
    while todo:
        for j in moves(todo.pop()):
            if j not in reached:
                reached.add(j)
                todo.append(j)
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for i, step in enumerate(steps):
        if i in reached:
            continue
        before = steps[i - 1]
        if i - 1 not in reached:
            why = f"the step before it, {before['id']!r}, is not reached either"
        elif before.get("action") == "resolve":
            why = f"the step before it, {before['id']!r}, resolves the run"
        else:
            targets = " or ".join(repr(steps[j]["id"]) for j in dict.fromkeys(moves(i - 1)))
            why = f"the step before it, {before['id']!r}, goes on to {targets} only"
        errors.append(
            (
                ("steps", i, "id"),
                f"step {step['id']!r} is never reached: no on_success, on_failure or on_timeout "
                f"names it, and {why}; name it in a transition, or remove it",
            )
        )
    return errors


_TRANSITIONS = ("on_success", "on_failure", "on_timeout")


class RouteConfig(_Strict):
    """One node of the routing tree as written in routing.yaml."""

    matchers: list[str] = Field(default_factory=list)
    # Alertmanager's deprecated label maps, read as it reads them: ``match`` as equality
    # matchers, ``match_re`` as anchored regex matchers, together with ``matchers``
    # (values must be text: the loader names each that is not).
    match: dict[str, Any] = Field(default_factory=dict)
    match_re: dict[str, Any] = Field(default_factory=dict)
    playbook: str | None = None
    # Strict, as Alertmanager's loader: `continue: 1` or `continue: "true"` is an error,
    # not a silent true.
    continue_: StrictBool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    # Names of the file's time intervals (the loader checks they are defined).
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    _text = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(
        _duration_text
    )

    @field_validator("group_wait", "group_interval", "repeat_interval")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)


class InhibitRuleConfig(_Strict):
    # Each side needs ``*_matchers`` or Alertmanager's deprecated ``*_match`` /
    # ``*_match_re`` maps (checked by the loader, which names the side).
    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, Any] = Field(default_factory=dict)
    source_match_re: dict[str, Any] = Field(default_factory=dict)
    target_match: dict[str, Any] = Field(default_factory=dict)
    target_match_re: dict[str, Any] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)


class RoutingConfig(_Strict):
    version: Literal[1]
    route: RouteConfig
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    # Named time intervals (playbooks/time_intervals.py reads their contents);
    # ``mute_time_intervals`` is Alertmanager's deprecated name for the same list.
    time_intervals: list[Any] | None = None
    mute_time_intervals: list[Any] | None = None
    _check_version = field_validator("version", mode="before")(_version_one)
