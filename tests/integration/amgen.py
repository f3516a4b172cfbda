"""An independent generator of Alertmanager configurations, alerts and silences (t50).

Written from Alertmanager 0.25's documentation and source alone (``config/config.go``,
``dispatch/route.go``, ``pkg/labels/parse.go``, ``inhibit/inhibit.go``,
``silence/silence.go``), not from citybrain's other generators (``regexgen.py``,
``test_routing_differential.py``), so that it does not share their blind spots. From a
seed it builds what operators write and what a fuzzer writes: deep trees with
``continue``, matchers in every spelling ``ParseMatchers`` accepts (quoted or bare,
braces, commas, spurious and real escapes, spaces around the operator, literal line
feeds), the deprecated ``match``/``match_re`` maps, ``group_by`` with ``...`` and labels
alerts lack, inherited settings, inhibit rules with ``equal`` on absent labels; alerts
whose values hold ``,``, ``"``, ``=``, ``|``, braces, line feeds, Unicode, nothing at all,
or 300 characters; silences on absent labels with ``=""``, ``!=""``, ``=~".*"``, ``!~``.

Each YAML scalar is written in a style chosen at random (plain, single- or double-quoted,
block or flow lists), so YAML reading is exercised as well as matcher parsing. Pure: no
I/O; ``render`` gives the same tree as citybrain's routing file and as Alertmanager's.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

# The labels citybrain's alerts carry (playbooks.routing.LABELS), weighted toward the
# ones operators route on.
COMMON = ("kind", "severity", "district", "street", "community", "category", "source")
RARE = (
    "city",
    "department",
    "sensor_id",
    "grid_cell",
    "corroboration",
    "neighbours_agreeing",
    "assessment",
    "alert_id",
)
POOLS: dict[str, tuple[str, ...]] = {
    "kind": ("water_level", "discharge", "pm25", "traffic_speed", "incident_burst"),
    "severity": ("minor", "major", "critical"),
    "district": ("d1", "d2", "Zürich-Nord"),
    "street": ("s1", "Main St", "火警街"),
    "community": ("c1", "c2", "c-1"),
    "city": ("metro", "Metro"),
    "source": ("sensor", "citizen"),
    "category": ("gas leak", "noise", "a,b", 'say "hi"'),
    "department": ("police", "fire", "ems"),
    "sensor_id": ("usgs-1", "x=y", "usgs-2"),
    "grid_cell": ("c1", "s1", "d1"),
    "corroboration": ("corroborated", "isolated"),
    "assessment": ("event", "suspected_sensor_fault"),
    "neighbours_agreeing": ("0", "1", "12"),
    "alert_id": ("a-1", "a-2"),
}
# Values a fuzzer tries: separators of citybrain's old group keys and of matcher lists,
# quotes, escapes, braces, line feeds, whitespace at either end, Unicode of every width.
WEIRD = (
    "",
    ",",
    "a,b",
    'say "hi"',
    '"',
    "x=y",
    "=~",
    "p|q",
    "|",
    "{br}",
    "{",
    "}",
    "}{",
    "line\nbreak",
    "\n",
    "back\\slash",
    "\\n",
    'a\\"b',
    "end\\",
    "tab\there",
    " lead",
    "trail ",
    "Zürich",
    "火警",
    "🌊",
    "ǅ",
    "Ωmega",
    "x" * 300,
    'kind="pm25"',
    "a|severity=b",
    # Spaces Go's TrimSpace knows and its regexp's \s does not, and other controls.
    "\v",
    "x\v",
    "\u00a0x",
    "x\u3000",
    "\x85",
    "x\u2028",
    "\r",
    "a\r\nb",
    "\x1b[31m",
    "\u200b",
    "\ufeffx",
)
# Only through the API (no program argument holds a NUL).
SERVER_WEIRD = ("\x00", "a\x00b", "\x7f")
DURATIONS = ("10s", "30s", "1m", "5m", "1h30m", "4h", "1d", "1w", "500ms", "2h", "0", "0s")
# Whether the configuration being generated is a fuzzer's (spellings whose meaning or
# validity is unusual: bare values with commas or spaces, zero intervals) or an
# operator's; per thread, as tests generate in a pool.
_mode = threading.local()


def fuzzing() -> bool:
    return bool(getattr(_mode, "fuzz", False))


# Go's \s (the matcher grammar's space around an operator and at either end).
SPACES = ("", "", "", " ", "  ", "\t")


def spaces(rng: random.Random) -> str:
    """Space around an operator: Go's \\s, and in a fuzzer's configuration also the
    spaces only TrimSpace knows (vertical tab, NEL, no-break, ideographic)."""
    if fuzzing() and rng.random() < 0.2:
        return rng.choice(("\v", "\x85", "\u00a0", "\u3000", "\u2028", "\f", "\r"))
    return rng.choice(SPACES)


def label_name(rng: random.Random) -> str:
    return rng.choice(COMMON) if rng.random() < 0.75 else rng.choice(RARE)


# Pieces of the label names an alert from another tool may carry (t127): Alertmanager's
# API takes an ASCII letter or _ first, then ASCII letters, digits or _, and refuses the
# alert otherwise ("invalid label set"); citybrain must refuse the same (bad_alert).
NAME_PIECES = (
    "kind", "zone", "_", "__", "a", "Z", "9", "0", " ", "-", ".", ":", "/", "ü", "Ω", "ª",
    "١", "²", "\u200b", "\t", "\n", "K", "ſ", "ﬁ", "x\u0301", "é", "$", "=", '"', "",
)  # fmt: skip


def odd_label_name(rng: random.Random) -> str:
    """A label name of one to three pieces of NAME_PIECES: most are refused by
    Alertmanager, some taken (``zone9``, ``_a``)."""
    return "".join(rng.choice(NAME_PIECES) for _ in range(rng.randint(1, 3)))


def value_for(rng: random.Random, name: str) -> str:
    if rng.random() < 0.7:
        return rng.choice(POOLS[name])
    return rng.choice(WEIRD)


# ---------------------------------------------------------------- regexes (Go syntax)

_META = set("\\.+*?()|[]{}^$")


def regex_literal(text: str) -> str:
    """``text`` as a Go regex matching it literally: metacharacters escaped with a
    backslash, a line feed as ``\\n`` (Go refuses a backslash before a letter it does not
    know, so nothing else is escaped)."""
    out = []
    for ch in text:
        if ch in _META:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(ch)
    return "".join(out)


_CLASSES = (
    "[a-z]+",
    "[^,]*",
    "\\d+",
    "\\w+",
    "\\S*",
    "\\pL+",
    "\\p{L}*",
    "\\PL*",
    "[[:alpha:]]+",
    "[[:^digit:]]*",
    '[,=|{}"]+',
    "\\p{Han}+",
    "[^\\n]*",
    ".",
    "",
    ".*",
    ".+",
    "(?s).*",
    "(?s:.+)",
    ".*\\n.*",
    "[\\s\\S]*",
    "\\x{7A}+",
    "[Z-z]+",
    "x*",
    "(a|)",
    "\\b\\w+\\b",
)


def regex(rng: random.Random, name: str) -> str:
    """A Go regex over the values of label ``name``: alternations of its values (with an
    empty alternative now and then), prefixes and infixes, classes, case folding,
    redundant anchors, ``\\Q…\\E``, repetitions, and concatenations of these."""
    values = [value_for(rng, name) for _ in range(rng.randint(1, 4))]
    v = values[0]
    shape = rng.randrange(10)
    if shape == 0:
        alts = [regex_literal(x) for x in values]
        if rng.random() < 0.3:
            alts.insert(rng.randrange(len(alts) + 1), "")
        return "|".join(alts)
    if shape == 1:
        cut = rng.randint(0, len(v))
        return regex_literal(v[:cut]) + rng.choice((".*", ".+", "(?s:.*)", "\\PZ*"))
    if shape == 2:
        lo = rng.randint(0, len(v))
        hi = rng.randint(lo, len(v))
        return ".*" + regex_literal(v[lo:hi]) + ".*"
    if shape == 3:
        return rng.choice(_CLASSES)
    if shape == 4:
        return "(?i)" + regex_literal(v.swapcase() if rng.random() < 0.5 else v)
    if shape == 5:
        return "^" + regex_literal(v) + "$"
    if shape == 6 and "\\E" not in v:
        return "\\Q" + v + "\\E"
    if shape == 7:
        return "(?:(" + regex_literal(v) + "){1,2})" + rng.choice(("", "?", "*"))
    if shape == 8:
        return regex(rng, name) + rng.choice(("|", "")) + regex(rng, name)
    return "(?:" + "|".join(regex_literal(x) for x in values) + ")" + rng.choice(("", "+", "?"))


# ---------------------------------------------------------------- matcher text (Go's)


def go_escape(value: str, rng: random.Random) -> str:
    """``value`` as ParseMatcher reads it back: ``\\`` and ``"`` escaped, a line feed as
    ``\\n`` or itself, and a backslash before anything but ``n``, ``"`` or ``\\`` left
    bare at random (ParseMatcher keeps a spurious escape's backslash)."""
    out = []
    for i, ch in enumerate(value):
        nxt = value[i + 1] if i + 1 < len(value) else ""
        if ch == "\\":
            spurious = nxt != "" and nxt not in 'n"\\' and rng.random() < 0.5
            out.append("\\" if spurious else "\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n" if rng.random() < 0.7 else "\n")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class M:
    """A matcher as meant: label, operator, value (unescaped)."""

    name: str
    op: str
    value: str


def matcher(rng: random.Random, name: str | None = None) -> M:
    name = name or label_name(rng)
    op = rng.choice(("=", "=", "!=", "=~", "=~", "!~"))
    value = regex(rng, name) if "~" in op else value_for(rng, name)
    return M(name, op, value)


def matcher_text(m: M, rng: random.Random) -> str:
    """One matcher written as Alertmanager's ParseMatcher takes it, quoted or bare, with
    Go's \\s around the operator."""
    body = go_escape(m.value, rng)
    v = m.value
    # Bare, a value means the same only without a comma (ParseMatchers splits there),
    # Go space at either end (trimmed), a leading quote or a final brace; the fuzzer
    # writes such values bare all the same.
    bare_same = not (
        "," in v or (v[:1] != "" and v[:1] in ' \t\n"') or v[-1:] in " \t\n}\\" or '\\"' in v
    )
    if rng.random() < 0.75 or not (bare_same or fuzzing()):
        body = '"' + body + '"'
    return f"{spaces(rng)}{m.name}{spaces(rng)}{m.op}{spaces(rng)}{body}"


def entry_text(ms: list[M], rng: random.Random) -> str:
    """One ``matchers:`` entry holding ``ms``: comma-separated (spaces either side), in
    braces or not, a trailing comma now and then."""
    sep = rng.choice((",", ", ", " ,", " , ", ",\t"))
    text = sep.join(matcher_text(m, rng) for m in ms)
    if rng.random() < 0.15:
        text += rng.choice((",", ", "))
    if rng.random() < 0.3:
        text = "{" + text + "}"
    return text


# ---------------------------------------------------------------- YAML scalars

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_=~!\"\\.*+|^$()/-]*")
_RESOLVED = re.compile(r"(?i)y|n|yes|no|on|off|true|false|null|~")


def _escaped_in_yaml(ch: str) -> bool:
    """Whether YAML wants ``ch`` escaped (in double quotes): controls but tab, C1
    controls, NEL and the line and paragraph separators (line breaks to YAML 1.1), the
    byte-order mark and lone surrogates."""
    code = ord(ch)
    return (
        (code < 0x20 and ch != "\t")
        or 0x7F <= code < 0xA0
        or ch in "\u2028\u2029\ufeff"
        or 0xD800 <= code <= 0xDFFF
    )


# Tags Alertmanager's YAML reader (go-yaml v2) reads a text scalar, a list or a mapping
# through as if untagged (t107): local, verbatim, unknown global and unknown ``!!`` ones.
TAGS = ("!x", "!<!x>", "!!foo", "!<tag:example.com,2000:x>", "!e")


def yaml_tag(rng: random.Random) -> str:
    """Now and then a tag and a space to write before a text scalar, list or mapping
    (more often in a fuzzer's configuration), else ""."""
    if rng.random() < (0.08 if fuzzing() else 0.02):
        return rng.choice(TAGS) + " "
    return ""


def yaml_scalar(text: str, rng: random.Random) -> str:
    """``text`` as a YAML scalar both readers read back as ``text``: plain when that is
    safe (also inside ``[...]``: no comma, bracket or brace), else single- or
    double-quoted at random (double-quoted when it holds a character YAML wants escaped),
    non-ASCII now and then as ``\\u`` escapes; now and then tagged (``yaml_tag``)."""
    return yaml_tag(rng) + _yaml_scalar(text, rng)


def _yaml_scalar(text: str, rng: random.Random) -> str:
    if _PLAIN.fullmatch(text) and not _RESOLVED.fullmatch(text) and rng.random() < 0.4:
        return text
    if not any(_escaped_in_yaml(ch) for ch in text) and rng.random() < 0.5:
        return "'" + text.replace("'", "''") + "'"
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t" if rng.random() < 0.5 else "\t")
        elif _escaped_in_yaml(ch) or (ord(ch) > 0x7F and rng.random() < 0.2):
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def yaml_list(items: list[str], rng: random.Random, indent: int) -> list[str]:
    """A list of scalars: ``[a, 'b']`` or a block list, as lines after the key (the flow
    form is returned as a single line starting with a space)."""
    tag = yaml_tag(rng)
    if not items or rng.random() < 0.5:
        return [f" {tag}[" + ", ".join(yaml_scalar(t, rng) for t in items) + "]"]
    pad = " " * indent
    return [f" {tag}".rstrip()] + [f"{pad}- {yaml_scalar(t, rng)}" for t in items]


# ---------------------------------------------------------------- the model

# Refusals citybrain makes where Alertmanager accepts (docs/playbooks.md, "Refused where
# citybrain deliberately differs"): the words of each, as citybrain says them.
DELIBERATE = {
    "root_group_by": "the root route needs group_by",
    "child_empty_group_by": "group_by: [] on a child route",
    "all_twice": "lists `...` more than once",
    "empty_entry": "has no matcher in it",
    "unknown_label": "unknown label",
    "missing_side": "is required (or Alertmanager's",
    "empty_receiver": "playbook is empty",
    "null_value": "is null, expected",
}
# Keys whose null Alertmanager reads as unset and citybrain refuses ("null_value").
NULLABLE = ("matchers", "match", "match_re", "continue", "routes")
RECEIVERS = ("pb-root", "pb-a", "pb-b", "pb-c", "pb-d", "pb-e")


@dataclass
class RouteSpec:
    entries: list[str] | None = None  # matchers: texts, None: no key
    match: dict[str, str] | None = None
    match_re: dict[str, str] | None = None
    receiver: str | None = None
    continue_: bool | None = None
    group_by: list[str] | None = None
    timing: dict[str, str] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    meant: list[M] = field(default_factory=list)  # the matchers as generated
    nulls: list[str] = field(default_factory=list)  # keys written as ~ instead


@dataclass
class RuleSpec:
    sides: dict[str, list[str] | dict[str, str]]  # source_matchers, target_match_re, ...
    equal: list[str]


@dataclass
class ConfigSpec:
    root: RouteSpec
    rules: list[RuleSpec]
    features: set[str]  # DELIBERATE keys the generator put in


def _group_by(rng: random.Random, root: bool) -> list[str] | None:
    r = rng.random()
    if r < (0.0 if root else 0.45):
        return None
    if r < 0.6:
        return ["..."]
    if root and r < 0.65:
        return []
    return rng.sample(COMMON + RARE, rng.randint(1, 3))


def _route(
    rng: random.Random, depth: int, budget: list[int], features: set[str], root: bool = False
) -> RouteSpec:
    spec = RouteSpec()
    if not root:
        n = rng.choice((0, 1, 1, 1, 2, 2, 3))
        pieces: list[list[M]] = []
        made: list[M] = []
        for _ in range(n):
            ms = [matcher(rng) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
            made.extend(ms)
            pieces.append(ms)
        entries = [entry_text(ms, rng) for ms in pieces]
        spec.entries = entries if entries or rng.random() < 0.3 else None
        if rng.random() < 0.2:
            spec.match = {}
            for _ in range(rng.randint(1, 2)):
                name = label_name(rng)
                spec.match[name] = value_for(rng, name)
                made.append(M(name, "=", spec.match[name]))
        if rng.random() < 0.15:
            spec.match_re = {}
            for _ in range(rng.randint(1, 2)):
                name = label_name(rng)
                spec.match_re[name] = regex(rng, name)
        spec.meant = made
        if rng.random() < 0.5:
            spec.continue_ = rng.random() < 0.6
    if root or rng.random() < 0.5:
        spec.receiver = rng.choice(RECEIVERS[1:]) if not root else RECEIVERS[0]
    spec.group_by = _group_by(rng, root)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if rng.random() < 0.15:
            durations = DURATIONS if fuzzing() else DURATIONS[:-2]
            spec.timing[key] = rng.choice(durations)
    if depth < 6 and budget[0] > 0:
        for _ in range(rng.choice((0, 0, 1, 2, 3, 4)) if not root else rng.randint(1, 6)):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            spec.routes.append(_route(rng, depth + 1, budget, features))
    return spec


def _chain(rng: random.Random, length: int, features: set[str]) -> RouteSpec:
    """A deep chain (a route in a route in a route …), each level one matcher that the
    labels of a generated alert may or may not meet, with ``continue`` siblings."""
    top = node = RouteSpec(entries=[], receiver=rng.choice(RECEIVERS[1:]))
    for _ in range(length):
        m = matcher(rng, rng.choice(COMMON))
        child = RouteSpec(
            entries=[entry_text([m], rng)],
            meant=[m],
            receiver=rng.choice(RECEIVERS[1:]) if rng.random() < 0.3 else None,
            continue_=rng.random() < 0.3,
        )
        node.routes.append(child)
        if rng.random() < 0.2:
            node.routes.append(RouteSpec(entries=[], receiver=rng.choice(RECEIVERS[1:])))
        node = child
    return top


def _side(
    rng: random.Random, prefix: str, features: set[str]
) -> dict[str, list[str] | dict[str, str]]:
    out: dict[str, list[str] | dict[str, str]] = {}
    r = rng.random()
    if r < 0.6 or r > 0.97:
        ms = [matcher(rng) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:  # several in one entry, braced or not
            out[f"{prefix}_matchers"] = [entry_text(ms, rng)]
        else:
            out[f"{prefix}_matchers"] = [entry_text([m], rng) for m in ms]
    elif r < 0.8:
        name = label_name(rng)
        out[f"{prefix}_match"] = {name: value_for(rng, name)}
    else:
        name = label_name(rng)
        out[f"{prefix}_match_re"] = {name: regex(rng, name)}
    if r > 0.97:
        out[f"{prefix}_match"] = {"severity": rng.choice(POOLS["severity"])}
    return out


def rule(rng: random.Random, features: set[str]) -> RuleSpec:
    sides = {**_side(rng, "source", features), **_side(rng, "target", features)}
    equal = rng.sample(COMMON + RARE[:-1], rng.choice((0, 1, 1, 2, 3)))
    return RuleSpec(sides, equal)


def _routes(spec: RouteSpec) -> list[RouteSpec]:
    out = [spec]
    for child in spec.routes:
        out.extend(_routes(child))
    return out


def config(rng: random.Random, size: int = 20) -> ConfigSpec:
    """A configuration: an operator's four times in five, else a fuzzer's (see
    ``fuzzing``); one in six carries one of citybrain's deliberate refusals
    (DELIBERATE), put in at a random place and named in ``features``."""
    _mode.fuzz = rng.random() < 0.2
    features: set[str] = set()
    root = _route(rng, 0, [size], features, root=True)
    if rng.random() < 0.1:
        chain = _chain(rng, rng.randint(10, 120), features)
        root.routes.insert(rng.randrange(len(root.routes) + 1), chain)
    rules = [rule(rng, features) for _ in range(rng.choice((0, 0, 1, 2, 4)))]
    children = _routes(root)[1:]
    if rng.random() < 1 / 6:
        odd = rng.choice(sorted(DELIBERATE))
        where = rng.choice(children) if children else None
        if odd == "root_group_by":
            root.group_by = None
        elif odd == "child_empty_group_by" and where is not None:
            where.group_by = []
        elif odd == "all_twice":
            (where or root).group_by = ["...", "..."]
        elif odd == "empty_entry" and where is not None:
            where.entries = (where.entries or []) + [rng.choice(("{}", "{", "{ }", "}", " {}"))]
        elif odd == "unknown_label" and where is not None and rng.random() < 0.5:
            where.entries = (where.entries or []) + [entry_text([M("zone", "=", "x")], rng)]
        elif odd == "unknown_label" and where is not None:
            where.group_by = [*(where.group_by or []), "zone"]
        elif odd == "unknown_label" and rules:
            rules[0].equal.append("zone")
        elif odd == "empty_receiver" and where is not None:
            where.receiver = ""
        elif odd == "null_value" and where is not None:
            where.nulls = [
                rng.choice([k for k in NULLABLE if not (k == "routes" and where.routes)])
            ]
        elif odd == "missing_side" and rules:
            side = rng.choice(("source", "target"))
            rules[0].sides = {k: v for k, v in rules[0].sides.items() if not k.startswith(side)}
        else:
            odd = ""
        if odd:
            features.add(odd)
    return ConfigSpec(root, rules, features)


def alert(
    rng: random.Random, alert_id: str, spec: ConfigSpec | None = None, server: bool = False
) -> dict[str, str]:
    """A label set: a random subset of labels with pool or weird values; with ``spec``,
    sometimes the ``=`` matchers along a random path of its tree are met, so deep routes
    are reached."""
    labels: dict[str, str] = {}
    for name in COMMON + RARE[:-1]:
        if rng.random() < (0.6 if name in COMMON else 0.25):
            labels[name] = value_for(rng, name)
    if spec is not None and rng.random() < 0.6:
        node = spec.root
        while node.routes and rng.random() < 0.9:
            node = rng.choice(node.routes)
            for m in node.meant:
                if m.op == "=" and rng.random() < 0.9:
                    labels[m.name] = m.value
    if server and rng.random() < 0.1:
        labels[label_name(rng)] = rng.choice(SERVER_WEIRD)
    labels["alert_id"] = alert_id
    return labels


def silence(rng: random.Random) -> list[M]:
    """A silence's matchers, absent labels and the empty string favoured: ``=""``,
    ``!=""``, ``=~".*"``, ``!~`` and ordinary ones."""
    out = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = label_name(rng)
        r = rng.random()
        if r < 0.15:
            out.append(M(name, rng.choice(("=", "!=")), ""))
        elif r < 0.25:
            regexes = (".*", "", ".+", "a)|(b", "(|x)", "\\Qabc", "a|\\Q)", "\\Q.*\\E")
            out.append(M(name, rng.choice(("=~", "!~")), rng.choice(regexes)))
        else:
            out.append(matcher(rng, name))
    return out


# ---------------------------------------------------------------- rendering


def _flow_route(spec: RouteSpec, rng: random.Random, receiver_key: str) -> str | None:
    """A leaf route as one flow mapping (``{matchers: [...], receiver: x}``), or None
    when it has what a flow mapping cannot hold here (children, maps, timings)."""
    if spec.routes or spec.match or spec.match_re or spec.timing or spec.nulls:
        return None
    parts = []
    if spec.entries is not None:
        parts.append("matchers: [" + ", ".join(yaml_scalar(e, rng) for e in spec.entries) + "]")
    if spec.receiver is not None:
        parts.append(f"{receiver_key}: {yaml_scalar(spec.receiver, rng)}")
    if spec.continue_ is not None:
        parts.append(f"continue: {'true' if spec.continue_ else 'false'}")
    if spec.group_by is not None:
        parts.append("group_by: [" + ", ".join(yaml_scalar(g, rng) for g in spec.group_by) + "]")
    rng.shuffle(parts)
    return "{" + ", ".join(parts) + "}"


def _route_lines(
    spec: RouteSpec,
    rng: random.Random,
    indent: int,
    receiver_key: str,
    root: bool,
    anchors: list[tuple[str, list[str]]] | None = None,
) -> list[str]:
    anchors = [] if anchors is None else anchors
    pad = " " * indent
    lines: list[str] = []
    keys: list[tuple[str, list[str]]] = []
    nulls = set(spec.nulls)
    keys.extend((key, [" ~"]) for key in spec.nulls)
    if spec.entries is not None and "matchers" not in nulls:
        reuse = [name for name, entries in anchors if entries == spec.entries]
        if reuse and rng.random() < 0.8:
            # The same matcher list written once and aliased (*name), as operators share them.
            keys.append(("matchers", [f" *{reuse[0]}"]))
        elif spec.entries and rng.random() < 0.2:
            name = f"m{len(anchors)}"
            anchors.append((name, spec.entries))
            body = yaml_list(spec.entries, rng, indent + 2)
            keys.append(("matchers", [f" &{name}{body[0]}", *body[1:]]))
        else:
            keys.append(("matchers", yaml_list(spec.entries, rng, indent + 2)))
    for key, mapping in (("match", spec.match), ("match_re", spec.match_re)):
        if mapping is not None and key not in nulls:
            body = [""] + [f"{pad}  {k}: {yaml_scalar(v, rng)}" for k, v in mapping.items()]
            keys.append((key, body))
    if spec.receiver is not None:
        keys.append((receiver_key, [" " + yaml_scalar(spec.receiver, rng)]))
    if spec.continue_ is not None and "continue" not in nulls:
        keys.append(("continue", [" " + ("true" if spec.continue_ else "false")]))
    if spec.group_by is not None:
        keys.append(("group_by", yaml_list(spec.group_by, rng, indent + 2)))
    for key, value in spec.timing.items():
        keys.append((key, [" " + (value if rng.random() < 0.6 else f"'{value}'")]))
    rng.shuffle(keys)
    for key, body in keys:
        if rng.random() < 0.05:
            lines.append(f"{pad}# {key} below")
        written = f'"{key}"' if rng.random() < 0.05 else key
        lines.append(f"{pad}{written}:{body[0]}")
        lines.extend(body[1:])
    if spec.routes:
        lines.append(f"{pad}routes:")
        for child in spec.routes:
            flow = _flow_route(child, rng, receiver_key) if rng.random() < 0.2 else None
            if flow is not None:
                lines.append(f"{pad}  - {flow}")
                continue
            child_lines = _route_lines(child, rng, indent + 4, receiver_key, False, anchors)
            if not child_lines:
                child_lines = [f"{pad}    {{}}"]
            first = child_lines[0]
            lines.append(f"{pad}  - {first[indent + 4 :]}")
            lines.extend(child_lines[1:])
    elif rng.random() < 0.05 and not root and "routes" not in nulls:
        lines.append(f"{pad}routes: []")
    return lines


def render(spec: ConfigSpec, seed: int, alertmanager: bool) -> str:
    """The configuration as text: Alertmanager's (``receiver:``, ``receivers:``) or
    citybrain's routing file (``version: 1``, ``playbook:``), the same YAML styles in both
    (one random stream from ``seed``)."""
    rng = random.Random(seed)
    # Document markers Alertmanager's reader takes: a leading '---' (after a directive),
    # a trailing one, or one followed by comments only.
    head = rng.choice(([], [], ["---"], ["%YAML 1.1", "---"], ["# routing", "---"]))
    tail = rng.choice(
        (
            [],
            [],
            ["---"],
            [
                "...",
            ],
            ["---", "# nothing more"],
        )
    )
    lines = head + ([] if alertmanager else ["version: 1"])
    lines.append("route:")
    lines.extend(
        _route_lines(spec.root, rng, 2, "receiver" if alertmanager else "playbook", True, [])
    )
    if spec.rules:
        lines.append("inhibit_rules:")
        for r in spec.rules:
            body: list[str] = []
            for key, side in r.sides.items():
                if isinstance(side, list):
                    items = yaml_list(side, rng, 6)
                    body.append(f"{key}:{items[0]}")
                    body.extend(items[1:])
                else:
                    body.append(f"{key}:")
                    body.extend(f"      {k}: {yaml_scalar(v, rng)}" for k, v in side.items())
            if r.equal or rng.random() < 0.5:
                items = yaml_list(r.equal, rng, 6)
                body.append(f"equal:{items[0]}")
                body.extend(items[1:])
            if not body:
                body = ["{}"]
            lines.append(f"  - {body[0]}")
            lines.extend(
                f"    {line}" if not line.startswith("      ") else line for line in body[1:]
            )
    if alertmanager:
        lines.append("receivers:")
        lines.extend(f"  - name: {name}" for name in RECEIVERS)
    # Windows line ends and a UTF-8 byte-order mark, as some editors save: both readers
    # take them.
    end = "\r\n" if rng.random() < 0.1 else "\n"
    bom = "\ufeff" if rng.random() < 0.05 else ""
    return bom + end.join(lines + tail) + end


# ---------------------------------------------------------------- a regex token fuzzer

_TOKENS = (
    "a",
    "b",
    "é",
    "ſ",
    "K",
    "k",
    "S",
    "s",
    "火",
    "🌊",
    "ǅ",
    "ß",
    "ẞ",
    "İ",
    "ı",
    "Ω",
    "ω",
    "ᏸ",
    ".",
    "^",
    "$",
    "|",
    "(",
    ")",
    "(?:",
    "(?i)",
    "(?i:",
    "(?s)",
    "(?m)",
    "(?U)",
    "(?-i)",
    "(?is:",
    "(?P<n>",
    "*",
    "+",
    "?",
    "*?",
    "+?",
    "??",
    "{2}",
    "{1,}",
    "{0,2}",
    "{,2}",
    "{0}",
    "{",
    "}",
    "[",
    "]",
    "[^",
    "[a-z]",
    "[^a]",
    "[]a]",
    "[^]a]",
    "[a-]",
    "[-a]",
    "[[:alpha:]]",
    "[[:^space:]]",
    "[[:word:]]",
    "[\\d\\s]",
    "[\\p{L}]",
    "[^\\P{L}]",
    "\\d",
    "\\D",
    "\\w",
    "\\W",
    "\\s",
    "\\S",
    "\\b",
    "\\B",
    "\\A",
    "\\z",
    "\\pL",
    "\\PL",
    "\\p{Greek}",
    "\\p{^Greek}",
    "\\pN",
    "\\p{Lu}",
    "\\p{Any}",
    "\\x41",
    "\\x{1F30A}",
    "\\Q.|\\E",
    "\\Q",
    "\\E",
    "\\.",
    "\\|",
    "\\-",
    "\\,",
    '\\"',
    "\\n",
    "\\t",
    "\\f",
    "\\v",
    "\\r",
    "\\a",
    "\\0",
    "\\01",
    "\\101",
    "\\8",
    "\\1",
    "\\e",
    "\\h",
    "\\Z",
    "\\_",
    "\\!",
    "\\ ",
    ",",
    "=",
    '"',
    " ",
    "\n",
    "\\\\",
    "}{",
    "a{2}{2}",
    "a**",
    "(?i)ſ",
    "[[.a.]]",
    "[[=a=]]",
    "[a&&b]",
    "\\C",
    "(?#c)",
    "(?=a)",
    "(?<n>a)",
    "\\k<n>",
    "\\X",
    "\\R",
    "\\G",
    "\\Qa\\\\E",
    "\\p{Latin}",
    "\\p{Zs}",
    "\\p{Cn}",
    "\\pC",
    "\\p{Cs}",
)


def token_regex(rng: random.Random) -> str:
    """A regex strung from Go's and other engines' tokens, valid or not, balanced or
    not: Go and RE2 must accept the same and match the same."""
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 6)))


# Values token regexes are matched against: case variants Go folds (ſ s S, K k K, ß ẞ),
# line feeds at either end (Go's $ is the very end), empty and astral text.
TOKEN_VALUES = (
    "",
    "a",
    "b",
    "aa",
    "A",
    "s",
    "S",
    "ſ",
    "k",
    "K",
    "K",
    "ß",
    "ẞ",
    "ss",
    "İ",
    "i",
    "ı",
    "é",
    "É",
    "火",
    "🌊",
    "ǅ",
    "ǆ",
    "Ǆ",
    "Ω",
    "ω",
    "Ω",
    "ᏸ",
    "Ᏸ",
    "\n",
    "a\n",
    "\na",
    ".|",
    ",",
    "=",
    '"',
    " ",
    "ab",
    "abc",
    "a,b",
    "}{",
    "{",
    "0",
    "7",
    "\\",
    "a\\E",
    "ΐ",
    "-",
)
