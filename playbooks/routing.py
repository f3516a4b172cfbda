"""Alert routing after Alertmanager: a tree of routes with matchers and ``continue``,
inherited grouping settings, inhibition rules and silences. Pure: no files, no clock.

Semantics (as in Alertmanager): a route matches when all its matchers match; its children
are tried in order and the first match wins unless that child says ``continue: true``;
a matching route whose children all fail is itself the result.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from playbooks.errors import RoutingConfigError

# The labels an alert carries (docs/playbooks.md); matchers on anything else are typos.
LABELS = frozenset(
    {
        "alert_id",
        "kind",
        "severity",
        "sensor_id",
        "grid_cell",
        "community",
        "street",
        "district",
        "city",
        "source",
        "department",
        "category",
    }
)
ALL_LABELS = "..."  # group_by: [...] puts every alert in a group of its own

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if not m:
            raise RoutingConfigError(
                f'matcher {text!r} is not name="value", name!="value", '
                f'name=~"regex" or name!~"regex"'
            )
        name, op, value = m.group(1), m.group(2), m.group(3).replace('\\"', '"')
        if name not in LABELS:
            raise RoutingConfigError(
                f"matcher {text!r}: unknown label {name!r}, expected one of {sorted(LABELS)}"
            )
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(f"^(?:{value})$")  # anchored, as in Alertmanager
            except re.error as exc:
                raise RoutingConfigError(f"matcher {text!r}: bad regex: {exc}") from None
        return cls(name, op, value, pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.match(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class Route:
    """A route with its inherited settings resolved."""

    id: str  # position in the tree: "root", "root.0", "root.0.1", ...
    matchers: tuple[Matcher, ...]
    playbook: str
    continue_: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    routes: tuple[Route, ...] = field(default=())

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            if hits:
                found.extend(hits)
                if not child.continue_:
                    break
        return found or [self]

    def group_key(self, labels: Mapping[str, str]) -> str:
        """Alerts with the same key share one run; a short stable hash of route + labels."""
        if ALL_LABELS in self.group_by:
            values = sorted(labels.items())
        else:
            values = [(name, labels.get(name, "")) for name in self.group_by]
        text = self.id + "|" + "|".join(f"{k}={v}" for k, v in values)
        return "grp-" + hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def inhibits(self, target: Mapping[str, str], source: Mapping[str, str]) -> bool:
        return (
            matches_all(self.target, target)
            and matches_all(self.source, source)
            and all(target.get(name, "") == source.get(name, "") for name in self.equal)
        )


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    reason: str

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def silences(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "author": self.author,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return new_silence(
            str(data["id"]),
            [str(m) for m in data["matchers"]],
            float(data["starts_at"]),
            float(data["ends_at"]),
            str(data["author"]),
            str(data["reason"]),
        )


def new_silence(
    silence_id: str, matchers: list[str], starts_at: float, ends_at: float, author: str, reason: str
) -> Silence:
    """A checked silence; every problem is named (matcher, times, author, reason)."""
    if not matchers:
        raise RoutingConfigError("a silence needs at least one matcher")
    parsed = tuple(Matcher.parse(m) for m in matchers)
    if ends_at <= starts_at:
        raise RoutingConfigError(
            f"silence ends_at ({ends_at:g}) is not after starts_at ({starts_at:g})"
        )
    if not author.strip():
        raise RoutingConfigError("a silence needs an author")
    if not reason.strip():
        raise RoutingConfigError("a silence needs a reason")
    return Silence(silence_id, parsed, starts_at, ends_at, author, reason)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an alert goes: the matched routes, or why it goes nowhere."""

    routes: tuple[Route, ...]
    silenced_by: Silence | None = None
    inhibited_by: InhibitRule | None = None


@dataclass(frozen=True, slots=True)
class Router:
    root: Route
    inhibit_rules: tuple[InhibitRule, ...] = ()

    def decide(
        self,
        labels: Mapping[str, str],
        firing: Iterable[Mapping[str, str]],
        silences: Iterable[Silence],
        now: float,
    ) -> Decision:
        routes = tuple(self.root.match(labels))
        for silence in silences:
            if silence.silences(labels, now):
                return Decision(routes, silenced_by=silence)
        for source in firing:
            if source.get("alert_id") == labels.get("alert_id"):
                continue  # an alert never inhibits itself
            for rule in self.inhibit_rules:
                if rule.inhibits(labels, source):
                    return Decision(routes, inhibited_by=rule)
        return Decision(routes)
