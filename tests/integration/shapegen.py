"""A sixth generator for the dispatch oracle (``tools/amroute``, t157): shapes the earlier
ones (``chaingen.py``, ``advgen.py``, ``amgen.py``, ``cornergen.py``) do not make.

- matcher entries in every spelling Alertmanager 0.25's parser takes: spaces (and tabs)
  around the operator and the value, braces with spaces inside and out, a trailing comma
  in and out of braces, bare values (a bare regex with ``|``, ``*``, ``=`` or ``~``
  inside), an empty bare value (``kind=``, ``kind!~``), ``=~""``, ``!~""``, ``=""``,
  ``!=""``, quoted values with ``\\"``, ``\\\\``, ``\\n`` and a kept ``\\t``, the same
  matcher twice in one route (entries and ``match``/``match_re`` beside them);
- regexes from a pool of odd shapes (``a|``, ``|a``, ``()``, ``(?:)``, ``(|)``, ``a{0}``,
  ``(?i)`` alone or last, ``\\z``, ``\\A``, ``^`` and ``$`` in the middle, ``(?m)^$``,
  ``.`` and ``(?s).`` against ``\\n`` and ``\\r``, octal and hex escapes, ``\\Q…\\E``
  with metacharacters, the empty class ``[^\\x00-\\x{10FFFF}]``, empty-width
  repetitions ``(?:^)*``, ``(\\b)+``, lazy ones, nested flag groups, ``\\pZ``,
  ``\\p{Cc}``, ``\\p{Cf}``, ``\\PC``, POSIX classes negated);
- routes: ``continue: true`` chains whose links sit at different depths (a link with
  children of its own, a chain that ends in a route with ``continue: false`` deeper
  down), ``group_by`` as ``['...']``, listed labels (some every alert lacks), or left to
  inherit, timings overridden at one level and inherited at the next, ``receiver`` set at
  a grandparent only;
- inhibit rules whose ``equal`` names labels both sides lack, one side lacks, or that
  only the target carries, several rules on the same target, a source that is the
  target;
- alerts: labels absent against labels empty, the same label set twice (no
  ``alert_id``: one alert to Alertmanager), values with ``\\r``, ``\\n`` at either end;
- silences, many of them (up to 14, overlapping: several mute one alert), several
  matchers on one label (contradicting or redundant), windows pending (start in the
  future), active, ended (``endsAt`` passed), ending before they start, and of no length.

Pure: a seed gives a configuration as a dict (Alertmanager's spelling);
``chaingen.citybrain`` gives the routing file's.
"""

from __future__ import annotations

import base64
import random
from typing import Any

from tests.integration.chaingen import INTERVALS, RECEIVERS, quote

LABELS = ("kind", "severity", "category", "district", "street", "department", "alert_id")
# Labels some alerts carry, some carry empty and some lack.
VALUES = (
    "",
    "a",
    "A",
    "b",
    "ab",
    "a|b",
    "a,b",
    "a=b",
    "a b",
    " a",
    "a ",
    "\ta",
    "a\n",
    "\na",
    "\r",
    "a\r\n",
    "\n",
    ".",
    "x",
    '"',
    '"a"',
    "\\",
    "a\\tb",
    "a\tb",
    "{a}",
    "}",
    "~",
    "==",
    "é",
    "\u00ad",
    "\u200b",
    "\u2028",
    "\u0085",
    "Ａ",
    "1",
    "٣",
    "🌊",
)
REGEXES = (
    "",  # =~"" and !~"" (and bare: kind=~, kind!~)
    "a|",
    "|a",
    "|",
    "()",
    "(?:)",
    "(|)",
    "(|a)",
    "a{0}",
    "(a){0}b?",
    "(?i)",
    "a(?i)",
    "(?i)A",
    "(?i)a|b",
    "a(?i)b",
    "(?i:a)B",
    "(?i)(?-i:a)",
    "\\z",
    "a\\z",
    "\\Aa",
    "\\A",
    "a^",
    "^a",
    "a$",
    "$a",
    "a$|b",
    "(^a|b$)",
    "^",
    "$",
    "^$",
    "(?m)^$",
    "(?m)a$",
    "(?m)^a",
    "(?m)a$\\n",
    "(?m)^\\n",
    ".",
    ".*",
    ".+",
    "(?s).",
    "(?s).*",
    "(?s:.)a",
    "a.",
    "[^a]",
    "[^\\n]+",
    "\\r",
    "a\\r\\n",
    "\\n?a\\n?",
    "\\101",
    "\\x41",
    "\\x{1F30A}",
    "\\0",
    "\\Q.*\\E",
    "\\Qa|b\\E",
    "\\Q\\E",
    "[^\\x00-\\x{10FFFF}]",
    "[^\\x00-\\x{10FFFF}]*",
    "(?:^)*a",
    "(\\b)+a",
    "\\b",
    "\\B",
    "a\\b",
    "(?:$)+",
    "a*?",
    "a??",
    "a{1,}?",
    "a{,2}",
    "(?U)a+",
    "\\pZ",
    "\\p{Zs}",
    "\\p{Cc}",
    "\\p{Cf}",
    "\\PC",
    "\\pC+",
    "[[:^alpha:]]",
    "[[:^space:]]+",
    "[[:cntrl:]]",
    "\\s",
    "\\S+",
    "\\W",
    "[\\d-z]",
    "[-a]",
    "[a-]",
    "[]a]",
    "[^]a]",
    "\\pN",
    "\\p{Nd}",
    "\\d",
    "[\\p{L}\\d]+",
    "[\\P{L}]",
    "[^\\P{L}]",
    "\\P{^L}",
    "[\\x{FF21}-\\x{FF3A}]",
    "(?i)ａ",
    "[{}]a[{}]",
    "\\{a\\}",
    '"a"',
    '\\"',
    "\\\\",
    "a\\\\tb",
    "a\\tb",
    "=+",
    "~",
    ",",
    "a,b",
)


COMMON = ("", "a", "b", "A")


def value(rng: random.Random) -> str:
    # Half the time a common value, so matchers, equal labels and silences meet.
    return rng.choice(COMMON if rng.random() < 0.5 else VALUES)


def text(rng: random.Random, op: str) -> str:
    """A matcher's value for ``op``: a regex from REGEXES (sometimes two joined) or a
    value."""
    if op in ("=~", "!~"):
        if rng.random() < 0.15:
            return rng.choice(REGEXES) + rng.choice(("|", "")) + rng.choice(REGEXES)
        return rng.choice(REGEXES)
    return value(rng)


# Bare (unquoted) values 0.25's parser reads as they are: no quote, comma, brace or
# backslash, no line feed, no leading or trailing space (it trims them).
def bare(txt: str) -> bool:
    return not any(c in txt for c in '",{}\\') and txt == txt.strip() and "\n" not in txt


SPACES = ("", "", "", " ", "  ", "\t")


def spelled(rng: random.Random, name: str, op: str, txt: str) -> str:
    """``name op txt`` in one of the spellings 0.25's parser takes."""
    sp = rng.choice
    written = txt if bare(txt) and rng.random() < 0.4 else quote(txt)
    return f"{name}{sp(SPACES)}{op}{sp(SPACES)}{written}"


def entry(rng: random.Random, names: tuple[str, ...] = LABELS) -> str:
    """One ``matchers:`` entry: one to three matchers, in braces or not, with spaces and
    a trailing comma now and then."""
    count = rng.choice((1, 1, 1, 2, 3))
    parts = []
    name = rng.choice(names)
    for _ in range(count):
        if rng.random() < 0.6:
            name = rng.choice(names)
        op = rng.choice(("=", "!=", "=~", "!~", "=~"))
        parts.append(spelled(rng, name, op, text(rng, op)))
    sep = rng.choice((",", ", ", " ,", ",\t"))
    body = sep.join(parts)
    if rng.random() < 0.15:
        body += ","
    if rng.random() < 0.4:
        # Inside the braces spaces are trimmed; outside, rarely, they keep the brace as
        # text (" {a=b}" is refused, "{a=b} " reads the value "b}").
        body = rng.choice(("{", "{ ", "{\t")) + body + rng.choice(("}", " }"))
        if rng.random() < 0.03:
            body = rng.choice((" ", "")) + body + rng.choice((" ", ""))
    return body


TIMINGS = {
    "group_wait": ("0s", "10s", "1m", "90s", "1h"),
    "group_interval": ("1s", "30s", "2m", "1h"),
    "repeat_interval": ("1m", "3h", "2d", "1w"),
}


def route(rng: random.Random, depth: int, in_chain: bool) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if rng.random() < 0.3:
        node["receiver"] = rng.choice(RECEIVERS[1:])
    if rng.random() < 0.85:
        node["matchers"] = [entry(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.1:
            node["matchers"].append(node["matchers"][0])  # the same entry twice
    if rng.random() < 0.1:
        node["match"] = {rng.choice(LABELS): value(rng)}
    if rng.random() < 0.1:
        node["match_re"] = {rng.choice(LABELS): rng.choice(REGEXES)}
    if in_chain or rng.random() < 0.3:
        node["continue"] = in_chain or rng.random() < 0.8
    pick = rng.random()
    if pick < 0.15:
        node["group_by"] = ["..."]
    elif pick < 0.4:
        node["group_by"] = rng.sample(LABELS, rng.randint(1, 3))
    for key, pool in TIMINGS.items():
        if rng.random() < 0.25:
            node[key] = rng.choice(pool)
    if rng.random() < 0.06:
        node["mute_time_intervals"] = rng.sample(sorted(INTERVALS), 1)
    if rng.random() < 0.06:
        node["active_time_intervals"] = rng.sample(sorted(INTERVALS), 1)
    if depth < 4 and rng.random() < 0.55:
        chain = rng.random() < 0.4
        children = [route(rng, depth + 1, chain and i < 2) for i in range(rng.randint(1, 4))]
        node["routes"] = children
    return node


def side(rng: random.Random, which: str) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.35:
        # A plain matcher on a common value (or its negation), so the rule meets alerts.
        name, op = rng.choice(LABELS[:-1]), rng.choice(("=", "=", "!=", "=~"))
        txt = rng.choice(COMMON) if op != "=~" else rng.choice(("a|b", "A|", "(?i)a"))
        return {f"{which}_matchers": [spelled(rng, name, op, txt)]}
    if pick < 0.7:
        return {f"{which}_matchers": [entry(rng) for _ in range(rng.randint(1, 2))]}
    if pick < 0.8:
        return {f"{which}_matchers": []}
    if pick < 0.9:
        return {f"{which}_match": {rng.choice(LABELS): value(rng)}}
    return {f"{which}_match_re": {rng.choice(LABELS): rng.choice(REGEXES)}}


def rule(rng: random.Random, target: dict[str, Any] | None) -> dict[str, Any]:
    source = side(rng, "source")
    if target is None:
        if rng.random() < 0.15:
            target = {k.replace("source", "target"): v for k, v in source.items()}
        else:
            target = side(rng, "target")
    out: dict[str, Any] = {**source, **target}
    # equal: labels both sides may lack (department, street), one side only, or none.
    pick = rng.random()
    if pick < 0.1:
        out["equal"] = []
    elif pick < 0.85:
        out["equal"] = rng.sample(LABELS, rng.randint(1, 4))
    return out


def config(rng: random.Random) -> dict[str, Any]:
    root: dict[str, Any] = {
        "receiver": RECEIVERS[0],
        "group_by": rng.choice((["..."], [], ["department"], ["kind", "street"], ["alert_id"])),
    }
    for key, pool in TIMINGS.items():
        if rng.random() < 0.5:
            root[key] = rng.choice(pool)
    root["routes"] = [route(rng, 1, rng.random() < 0.3) for _ in range(rng.randint(1, 4))]
    cfg: dict[str, Any] = {
        "route": root,
        "receivers": [{"name": n} for n in RECEIVERS],
        "time_intervals": [{"name": n, "time_intervals": v} for n, v in INTERVALS.items()],
    }
    if rng.random() < 0.85:
        rules: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 4)):
            # Several rules on one target now and then.
            shared = None
            if rules and rng.random() < 0.3:
                shared = {k: v for k, v in rules[-1].items() if k.startswith("target")}
            rules.append(rule(rng, shared))
        cfg["inhibit_rules"] = rules
    return cfg


def alert(rng: random.Random, alert_id: str | None) -> dict[str, str]:
    labels = {} if alert_id is None else {"alert_id": alert_id}
    for name in rng.sample(LABELS, rng.randint(1, len(LABELS))):
        if name != "alert_id":
            labels[name] = value(rng)
    if not any(labels.values()):
        labels["kind"] = "a"
    return labels


def alerts(rng: random.Random, n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for i in range(n):
        pick = rng.random()
        if out and pick < 0.1:
            # The same label set again (no alert_id: the same alert to Alertmanager), an
            # empty label added now and then.
            twin = dict(rng.choice(out))
            twin.pop("alert_id", None)
            absent = [n for n in LABELS[:-1] if not twin.get(n)]
            if absent and rng.random() < 0.5:
                twin[rng.choice(absent)] = ""
            if not any(twin.values()):
                twin["kind"] = "a"
            out.append(twin)
        else:
            out.append(alert(rng, None if pick < 0.25 else f"a-{i}"))
    return out


# Windows in seconds from now. The oracle (``silence.Silences.Set``) is asked only the
# first four; the API's refusals of the rest are asked of the running server.
WINDOWS = (
    (-60.0, 3600.0),  # active
    (-86400.0, 600.0),  # active, started a day ago
    (600.0, 4200.0),  # pending
    (-60.0, 90.0),  # active, ending soon
    (-7200.0, -60.0),  # ended
    (-60.0, -120.0),  # ends before it starts
    (1200.0, 1200.0),  # no length
    (600.0, 300.0),  # pending, ends before it starts
)


def silence(rng: random.Random, windows: int = 4) -> dict[str, Any]:
    """API v2 matcher objects, several on one label now and then (contradicting or
    redundant), with one of WINDOWS (seconds from now)."""
    name = rng.choice(LABELS)
    matchers = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.35:
            name = rng.choice(LABELS)
        regex_, equal = rng.choice(((False, True), (False, False), (True, True), (True, False)))
        matchers.append(
            {
                "name": name,
                "value": rng.choice(REGEXES) if regex_ else value(rng),
                "isRegex": regex_,
                "isEqual": equal,
            }
        )
    starts, ends = rng.choice(WINDOWS[:windows]) if rng.random() < 0.5 else WINDOWS[0]
    return {"matchers": matchers, "starts_in": starts, "ends_in": ends}


def silences(rng: random.Random, windows: int = 4) -> list[dict[str, Any]]:
    return [silence(rng, windows) for _ in range(rng.randint(2, 14))]


# YAML spellings (t157): a routing file written by hand, its scalars in every style YAML
# has, read by both readers (go-yaml v2 in Alertmanager, libyaml here).
YAML_ESCAPES = (
    "\\\\", '\\"', "\\t", "\\n", "\\x41", "\\u00e9", "\\ ", "\\_", "\\N", "\\0", "\\e",
    "\\a", "\\v", "\\b", "\\f", "\\r", "\\L", "\\P", "\\U0001F30A", "\\\t",
)  # fmt: skip
BLOCK_STYLES = ("|", "|-", "|+", ">", ">-", ">+", "|2-", "|-2")
COMMENTS = ("", "", "", " # c", "  #c", "\t# t")


def double_quoted(rng: random.Random, text: str) -> str:
    """``text`` double-quoted: escaped, a line feed as ``\\n`` or a blank line, a space
    escaped or a line continuation now and then, and a stray YAML escape added."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append(rng.choice(("\\n", "\\n", "\n\n")))
        elif c == " " and rng.random() < 0.3:
            out.append(rng.choice(("\\ ", "\\\n   ")))
        elif c == "\t":
            out.append(rng.choice(("\\t", "\t")))
        elif c == "é" and rng.random() < 0.5:
            out.append("\\u00e9")
        else:
            out.append(c)
        if rng.random() < 0.03:
            out.append(rng.choice(YAML_ESCAPES))
    return '"' + "".join(out) + '"'


def single_quoted(rng: random.Random, text: str) -> str:
    """``text`` single-quoted, a line feed as a blank line, a space folded now and then."""
    out = text.replace("'", "''").replace("\n", "\n\n" + " " * 8)
    if " " in out and rng.random() < 0.3:
        i = out.index(" ")
        out = out[:i] + "\n" + " " * 8 + out[i + 1 :]
    return "'" + out + "'"


def block_scalar(rng: random.Random, text: str, indent: int) -> str:
    style = rng.choice(BLOCK_STYLES)
    lines = text.split("\n") if text else [""]
    body = "\n".join((" " * indent + line) if line else "" for line in lines)
    return style + "\n" + body + ("\n" if rng.random() < 0.3 else "")


def plain_ok(text: str, flow: bool) -> bool:
    """Whether ``text`` can be a plain scalar as it is (most often: a few that cannot
    are written plain anyway)."""
    if not text or text[0] in "-?:,[]{}#&*!|>'\"%@` \t" or text[-1] in " \t":
        return False
    if ": " in text or " #" in text or "\n" in text or text.endswith(":"):
        return False
    return not (flow and any(c in text for c in ",[]{}"))


def tagged(rng: random.Random, text: str, indent: int, flow: bool) -> str:
    """``text`` with a tag go-yaml v2 reads otherwise than PyYAML did (t157): ``!!binary``
    (its base64), the non-specific ``!``, or ``!!str``/a local tag on a quoted value."""
    tag = rng.choice(("!!binary", "!", "!!str", "!foo"))
    if tag == "!!binary":
        encoded = base64.b64encode(text.encode()).decode()
        return "!!binary " + (encoded or "''")
    return f"{tag} {scalar(rng, text, indent, flow, tags=False)}"


def scalar(rng: random.Random, text: str, indent: int, flow: bool, tags: bool = True) -> str:
    if tags and rng.random() < 0.08:
        return tagged(rng, text, indent, flow)
    pick = rng.random()
    if pick < 0.3 and (plain_ok(text, flow) or rng.random() < 0.05):
        if " " in text and rng.random() < 0.3:  # a plain scalar over two lines
            i = text.index(" ")
            return text[:i] + "\n" + " " * 8 + text[i + 1 :]
        return text
    if pick < 0.55:
        return single_quoted(rng, text)
    if pick < 0.85 or flow:
        return double_quoted(rng, text)
    return block_scalar(rng, text, indent)


def yaml_route(rng: random.Random, receiver: str) -> str:
    """One child route's YAML lines (RECEIVER for the receiver key): ``matchers:`` in a
    flow or block list, or a ``match_re``/``match`` value, each scalar in a random style
    with a comment after it now and then."""
    lines = [f"  - RECEIVER: {receiver}"]
    pick = rng.random()
    if pick < 0.6:
        entries = [entry(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.4:
            flow = ", ".join(scalar(rng, e, 8, True) for e in entries)
            lines.append(f"    matchers: [{flow}]{rng.choice(COMMENTS)}")
        else:
            lines.append("    matchers:" + rng.choice(COMMENTS))
            lines += [f"    - {scalar(rng, e, 6, False)}{rng.choice(COMMENTS)}" for e in entries]
    else:
        key, text = ("match_re", rng.choice(REGEXES)) if pick < 0.8 else ("match", value(rng))
        if rng.random() < 0.05:
            text = rng.choice(("~", "null", "5", "2026-10-01", "true"))  # YAML would type it
        lines.append(f"    {key}:")
        written = scalar(rng, text, 8, False)
        lines.append(f"      {rng.choice(LABELS[:-1])}: {written}{rng.choice(COMMENTS)}")
    lines.append("    continue: true")
    return "\n".join(lines)


def yaml_config(rng: random.Random) -> tuple[str, str]:
    """Three routes written by hand: (Alertmanager's file, citybrain's routing file)."""
    routes = "\n".join(yaml_route(rng, RECEIVERS[1 + i]) for i in range(3))
    head = "route:\n  RECEIVER: pb-root\n  group_by: ['...']\n  routes:\n" + routes + "\n"
    am = head.replace("RECEIVER", "receiver") + "receivers:\n"
    am += "".join(f"- name: {r}\n" for r in RECEIVERS)
    return am, "version: 1\n" + head.replace("RECEIVER", "playbook")
