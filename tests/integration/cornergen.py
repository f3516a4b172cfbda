"""Generators for the corners ``amgen.py`` and ``regexgen.py`` do not reach (t94).

Written from Alertmanager 0.25's source (``config/config.go`` Route and InhibitRule
``UnmarshalYAML``, ``model.Duration``, ``pkg/labels/parse.go``, ``inhibit/inhibit.go``
``hasEqual``, ``silence/silence.go`` ``Set``/``getState``/``validateSilence``,
``api/v2/api.go`` ``postSilencesHandler``, go-openapi's ``strfmt.IsDateTime``):

- ``config_case``: configurations whose values sit at validation edges: durations of
  every unit, sign, leading zero, fraction and magnitude near Go's 292-year bound;
  label names Alertmanager refuses (``1kind``, ``ki-nd``, ``kínd``, ``""``) or accepts
  and citybrain does not know (``Kind``, ``__name__``, ``kind:x``) in ``group_by``,
  ``equal``, ``match`` keys and matchers; ``group_by`` on labels every alert lacks;
  matchers on absent labels (``!=""``, ``=~".*"``, ``=~""``, ``!~".+"``); ``continue``
  at depth; inhibit rules whose sides both match the same alerts, ``equal`` on absent
  labels. Every scalar is JSON-quoted, so only the values are at an edge, not the YAML.
- ``label_set``: label sets with labels missing, empty or holding the corner values.
- ``silence_times``: a silence's ``startsAt``/``endsAt`` in every spelling of RFC 3339
  and its near misses (zones ``Z``, ``z``, ``±HH:MM``, ``±HHMM``, ``±HH``, ``+24:00``,
  a space or ``t`` for ``T``, no seconds, fractions of any length, leap seconds, day 31
  of a 30-day month), windows pending, active, reversed, empty or ended.

Pure: no I/O.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

# What citybrain's alerts carry (playbooks.routing.LABELS), the usual ones first.
KNOWN = ("kind", "severity", "district", "street", "community", "category", "source")
RARE = ("department", "city", "sensor_id", "grid_cell", "assessment", "corroboration")
# Names at the edges of Go's label-name rules: valid in Alertmanager but not citybrain's
# (refused deliberately, "unknown label"), or invalid in Alertmanager.
ODD_NAMES = (
    "Kind",
    "KIND",
    "__name__",
    "_kind",
    "kind:x",
    "zone",
    "1kind",
    "ki-nd",
    "kínd",
    "kind ",
    " kind",
    "",
    "...",
    "…",
    "a b",
)
VALUES = (
    "",
    "water_level",
    "pm25",
    "major",
    "critical",
    "d1",
    "Zürich-Nord",
    "火警街",
    "🌊",
    'say "hi"',
    "a,b",
    "back\\slash",
    "line\nbreak",
    ".*",
    " ",
    "x" * 40,
)
# Regexes whose meaning turns on the empty string, anchoring and RE2 specifics.
REGEXES = (
    "",
    ".*",
    ".+",
    "|",
    "(|x)",
    "x|",
    "()",
    "x?",
    "[^a]*",
    "^d1$",
    "d1$",
    "^d1",
    "d",
    "d.",
    "(?i)D1",
    "(?s).*",
    "(?m)^d1$",
    "\\Ad1\\z",
    "d1\\b",
    "\\pL+",
    "[[:alpha:]]+",
    "(?U)d.+",
    "\\Q.*\\E",
)
# Regexes Go refuses (or RE2 reads otherwise): a few in a hundred matchers.
BAD_REGEXES = (
    "a)|(b",
    "(",
    "a**",
    "x{2}{3}",
    "\\z",
    "\\Z",
    "(?P<n>d)1",
    "(?<n>d)1",
    "\\x{10FFFF}",
    "\\x{110000}",
    "\\8",
    "\\_",
    "[z-a]",
    "\\p{Foo}",
)
OPS = ("=", "!=", "=~", "!~")
BAD_OPS = ("==", "=!", "~=", "<>", "!", "~", ":")
RECEIVERS = ("pb-root", "pb-a", "pb-b", "pb-c", "pb-d")


def duration(rng: random.Random) -> str:
    """A Prometheus duration at an edge: units of every size, one or two parts, signs,
    leading zeros, fractions, Go's int64-nanosecond bound (about 292 years)."""
    r = rng.random()
    if r < 0.8:
        return rng.choice(("0", "0s", "1s", "30s", "5m", "1h30m", "4h", "1d", "1w", "1y", "500ms"))
    if r < 0.9:
        return rng.choice(
            (
                "106751d",
                "106752d",
                "292y",
                "293y",
                "15250w",
                "15251w",
                "9223372036s",
                "9223372037s",
                "2562047h",
                "2562048h",
                "153722867m",
                "153722868m",
                "9223372036854ms",
                "9223372036855ms",
            )
        )
    numbers = ("0", "1", "01", "10", "1.5", "-1", "+1", "1_0", "0x1", "1e3", "", " 1")
    units = ("s", "m", "h", "d", "w", "y", "ms", "us", "µs", "ns", "M", "S", "H", "", " s")
    parts = "".join(rng.choice(numbers) + rng.choice(units) for _ in range(rng.randint(1, 3)))
    return parts


def name(rng: random.Random, odd: float = 0.02) -> str:
    if rng.random() < odd:
        return rng.choice(ODD_NAMES)
    return rng.choice(KNOWN) if rng.random() < 0.85 else rng.choice(RARE)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Matcher:
    name: str
    op: str
    value: str

    def text(self, rng: random.Random) -> str:
        """As written in a ``matchers:`` entry: quoted (escaped), or bare when that
        reads back the same, with spaces around the operator now and then."""
        sp = rng.choice(("", "", " "))
        bare_ok = self.value and all(c not in self.value for c in ' ,"{}\\\n=!~')
        value = self.value if bare_ok and rng.random() < 0.3 else f'"{_escape(self.value)}"'
        return f"{self.name}{sp}{self.op}{sp}{value}"


def matcher(rng: random.Random) -> Matcher:
    """A matcher on a label alerts carry or lack, favouring the empty string."""
    op = rng.choice(OPS) if rng.random() > 0.01 else rng.choice(BAD_OPS)
    regexes = BAD_REGEXES if rng.random() < 0.03 else REGEXES
    value = rng.choice(regexes) if "~" in op else rng.choice(VALUES)
    return Matcher(name(rng), op, value)


def entry(rng: random.Random) -> str:
    """One ``matchers:`` entry: one matcher, or several comma-separated, in braces or not."""
    ms = [matcher(rng) for _ in range(rng.choice((1, 1, 1, 2)))]
    text = ", ".join(m.text(rng) for m in ms)
    return f"{{{text}}}" if rng.random() < 0.2 else text


@dataclass
class Route:
    receiver: str | None
    entries: list[str] = field(default_factory=list)
    match: dict[str, str] = field(default_factory=dict)
    match_re: dict[str, str] = field(default_factory=dict)
    group_by: list[str] | None = None
    timing: dict[str, str] = field(default_factory=dict)
    cont: bool | None = None
    routes: list[Route] = field(default_factory=list)


@dataclass
class Rule:
    source: list[str]
    target: list[str]
    equal: list[str] | None
    source_match: dict[str, str] = field(default_factory=dict)
    target_match: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    root: Route
    rules: list[Rule]


def group_by(rng: random.Random, root: bool) -> list[str] | None:
    r = rng.random()
    if not root and r < 0.5:
        return None
    if r < 0.65:
        return ["..."]
    labels = [name(rng, odd=0.03) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.05:
        labels.append(rng.choice(labels))  # a label twice: refused by both
    # An absent label to group by is ordinary (every alert lacks it: one group).
    return labels


def _timing(rng: random.Random) -> dict[str, str]:
    keys = ("group_wait", "group_interval", "repeat_interval")
    return {k: duration(rng) for k in keys if rng.random() < 0.1}


def route(rng: random.Random, depth: int) -> Route:
    spec = Route(
        receiver=rng.choice(RECEIVERS[1:]) if rng.random() < 0.7 else None,
        entries=[entry(rng) for _ in range(rng.choice((0, 1, 1, 1, 2)))],
        group_by=group_by(rng, root=False),
        timing=_timing(rng),
        cont=rng.choice((None, None, True, False)),
    )
    if rng.random() < 0.08:
        spec.match = {name(rng): rng.choice(VALUES) for _ in range(rng.randint(1, 2))}
    if rng.random() < 0.08:
        spec.match_re = {name(rng): rng.choice(REGEXES) for _ in range(rng.randint(1, 2))}
    if depth < 4 and rng.random() < 0.4:
        spec.routes = [route(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return spec


def rule(rng: random.Random) -> Rule:
    """An inhibit rule; one in three has sides that the same alerts can both match."""
    source = [entry(rng) for _ in range(rng.randint(1, 2))]
    target = list(source) if rng.random() < 0.2 else [entry(rng) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.15:
        target = [*source, entry(rng)]
    equal = [name(rng, odd=0.03) for _ in range(rng.choice((0, 1, 1, 2)))]
    spec = Rule(source, target, equal if equal or rng.random() < 0.5 else None)
    if rng.random() < 0.05:
        spec.source_match = {name(rng): rng.choice(VALUES)}
    if rng.random() < 0.05:
        spec.target_match = {name(rng): rng.choice(VALUES)}
    return spec


def config(rng: random.Random) -> Config:
    root = Route(receiver=RECEIVERS[0], group_by=group_by(rng, root=True), timing=_timing(rng))
    root.routes = [route(rng, 1) for _ in range(rng.randint(1, 4))]
    return Config(root, [rule(rng) for _ in range(rng.choice((0, 1, 2)))])


def _q(text: str) -> str:
    # JSON strings are YAML double-quoted scalars to both readers (never '\/').
    return json.dumps(text, ensure_ascii=False)


def _route_lines(spec: Route, indent: int, key: str, root: bool) -> list[str]:
    pad = " " * indent
    lines = []
    if spec.receiver is not None:
        lines.append(f"{pad}{key}: {_q(spec.receiver)}")
    if spec.entries:
        lines.append(f"{pad}matchers: [{', '.join(_q(e) for e in spec.entries)}]")
    if spec.match:
        lines.append(
            f"{pad}match: {{{', '.join(f'{_q(k)}: {_q(v)}' for k, v in spec.match.items())}}}"
        )
    if spec.match_re:
        items = ", ".join(f"{_q(k)}: {_q(v)}" for k, v in spec.match_re.items())
        lines.append(f"{pad}match_re: {{{items}}}")
    if spec.group_by is not None:
        lines.append(f"{pad}group_by: [{', '.join(_q(g) for g in spec.group_by)}]")
    lines.extend(f"{pad}{k}: {_q(v)}" for k, v in spec.timing.items())
    if spec.cont is not None and not root:
        lines.append(f"{pad}continue: {'true' if spec.cont else 'false'}")
    if spec.routes:
        lines.append(f"{pad}routes:")
        for child in spec.routes:
            body = _route_lines(child, indent + 4, key, False) or [f"{pad}    {{}}"]
            lines.append(f"{pad}  - {body[0].lstrip()}")
            lines.extend(body[1:])
    return lines


def render(spec: Config, alertmanager: bool) -> str:
    """Alertmanager's configuration (``receiver:``, ``receivers:``) or citybrain's
    routing file (``version: 1``, ``playbook:``): the same tree and rules."""
    lines = [] if alertmanager else ["version: 1"]
    lines.append("route:")
    lines.extend(_route_lines(spec.root, 2, "receiver" if alertmanager else "playbook", True))
    if spec.rules:
        lines.append("inhibit_rules:")
        for r in spec.rules:
            body = [
                f"source_matchers: [{', '.join(_q(e) for e in r.source)}]",
                f"target_matchers: [{', '.join(_q(e) for e in r.target)}]",
            ]
            if r.source_match:
                items = ", ".join(f"{_q(k)}: {_q(v)}" for k, v in r.source_match.items())
                body.append(f"source_match: {{{items}}}")
            if r.target_match:
                items = ", ".join(f"{_q(k)}: {_q(v)}" for k, v in r.target_match.items())
                body.append(f"target_match: {{{items}}}")
            if r.equal is not None:
                body.append(f"equal: [{', '.join(_q(e) for e in r.equal)}]")
            lines.append(f"  - {body[0]}")
            lines.extend(f"    {b}" for b in body[1:])
    if alertmanager:
        lines.append("receivers:")
        lines.extend(f"  - name: {r}" for r in RECEIVERS)
    return "\n".join(lines) + "\n"


def label_set(rng: random.Random, alert_id: str) -> dict[str, str]:
    """Labels of one alert: most known labels missing or empty now and then, values from
    the corner pools (the regexes too, so ``=~".*"`` meets ``.*`` as text)."""
    labels = {}
    for n in KNOWN + RARE:
        if rng.random() < 0.45:
            labels[n] = rng.choice(VALUES + REGEXES[:6]) if rng.random() < 0.5 else ""
            if labels[n] == "" and rng.random() < 0.5:
                del labels[n]
    labels["alert_id"] = alert_id
    return labels


# ---------------------------------------------------------------- silence times


def rfc3339(rng: random.Random, at: float) -> str:
    """``at`` (epoch seconds) written as RFC 3339 or a near miss of it: the zone as
    ``Z``/``z``/``±HH:MM``/``±HHMM``/``±HH``, the offset of a real or impossible zone,
    ``T``, ``t`` or a space, seconds left out, fractions of 0-12 digits."""
    offset_minutes = rng.choice((0, 0, 0, 60, -300, 330, 345, -720, 840, 1439, -1439, 1440))
    zone = timezone(timedelta(minutes=offset_minutes)) if abs(offset_minutes) < 1440 else UTC
    local = datetime.fromtimestamp(at, zone)
    sep = "T" if rng.random() < 0.85 else rng.choice(("t", " "))
    digits = rng.choice((0, 0, 3, 6, 9, 1, 12))
    frac = "" if digits == 0 else "." + f"{local.microsecond:06d}{'0' * 6}"[:digits]
    seconds = f":{local.second:02d}" if rng.random() > 0.05 else ""
    if offset_minutes == 0:
        tz = rng.choice(("Z",) * 6 + ("z", "+00:00", "-00:00", "+0000", "+00", ""))
    elif abs(offset_minutes) == 1440:
        tz = "+24:00"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        hh, mm = divmod(abs(offset_minutes), 60)
        tz = rng.choice((f"{sign}{hh:02d}:{mm:02d}",) * 8 + (f"{sign}{hh:02d}{mm:02d}", ""))
    text = f"{local:%Y-%m-%d}{sep}{local:%H:%M}{seconds}{frac}{tz}"
    r = rng.random()
    if r < 0.03:
        text = text[:17] + "60" + text[19:]  # a leap second
    elif r < 0.05:
        text = f"{local:%Y}-04-31T10:00:00Z"  # April has 30 days
    elif r < 0.07:
        text = f"{local:%Y-%m-%d}T24:00:00Z"
    return text


@dataclass
class SilenceTimes:
    starts: str
    ends: str
    expire: bool  # expired after being made (DELETE)


def silence_times(rng: random.Random, now: float) -> SilenceTimes:
    """A window around ``now``: pending (starts ahead), active, reversed, empty, ended."""
    starts = now + rng.choice((-86400, -3600, -5, 0, 0, 0, 600, 3600, 86400))
    ends = starts + rng.choice((-60, 0, 900, 3600, 3600, 7 * 86400))
    if rng.random() < 0.1:
        ends = now - rng.choice((1, 3600))
    return SilenceTimes(rfc3339(rng, starts), rfc3339(rng, ends), rng.random() < 0.2)
