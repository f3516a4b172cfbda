"""What routing one alert costs with many silences and firing alerts, counted in matcher
evaluations and table walks (not time): 10,000 silences (the API's limit) and 10,000
muted alerts. Before, every alert was checked against every silence, every muted alert
re-checked each tick walked the silences for its own by id, the stored silences (expired
ones too) were walked again for every alert, and the firing alerts were walked for every
alert an inhibit rule could not even target."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from playbooks.engine import MAX_NOTE
from playbooks.loader import PLAYBOOK_DIR, load_playbooks, load_routing
from playbooks.routing import (
    MAX_SILENCE_REASON_CHARS,
    PARSE_STEP,
    IndexedFiring,
    Matcher,
    Router,
    Silence,
    SilenceBook,
    SilenceList,
    SourceIndex,
    new_silence,
)
from tests.services import FIXTURES

NOW = 1_000_000.0
MANY = 10_000


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    path: Path = tmp_path_factory.mktemp("routing") / "routing.yaml"
    path.write_text((FIXTURES / "routing-mutes.yaml").read_text())
    return load_routing(path, load_playbooks(PLAYBOOK_DIR))


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Matcher evaluations made, counted while the test runs."""
    count = [0]
    matches = Matcher.matches

    def counted(self: Matcher, labels: Mapping[str, str]) -> bool:
        count[0] += 1
        return matches(self, labels)

    monkeypatch.setattr(Matcher, "matches", counted)
    return count


def sensor_alert(i: int, alert_id: str = "") -> dict[str, str]:
    return {
        "alert_id": alert_id or f"al-{i}",
        "source": "sensor",
        "kind": "pm25",
        "severity": "major",
        "sensor_id": f"sensor-{i}",
        "community": "c1",
    }


def many_silences(n: int = MANY) -> SilenceList:
    return SilenceList(
        new_silence(f"s{i}", [f'sensor_id="sensor-{i}"', 'kind="pm25"'], 0.0, 2e6, "op", "r")
        for i in range(n)
    )


def test_an_alert_is_checked_only_against_the_silences_that_can_match_it(
    router: Router, evaluations: list[int]
) -> None:
    silences = many_silences()
    silences.candidates({})  # the index, built once per read of the table
    evaluations[0] = 0
    decision = router.decide(sensor_alert(MANY - 1), [], silences, NOW)
    assert decision.silenced_by is not None and decision.silenced_by.id == f"s{MANY - 1}"
    assert evaluations[0] <= 4  # before: 10,001 (every silence's first matcher, then 2)
    evaluations[0] = 0
    assert router.decide(sensor_alert(MANY + 5), [], silences, NOW).mute is None
    assert evaluations[0] <= 4  # before: 10,000


def many_regex_silences(n: int = MANY) -> SilenceList:
    return SilenceList(
        new_silence(f"r{i}", [f'sensor_id=~"sensor-{i}(-.*)?"'], 0.0, 2e6, "op", "r")
        for i in range(n)
    )


def test_an_alert_is_checked_only_against_the_regex_silences_that_can_match_it(
    router: Router, evaluations: list[int]
) -> None:
    # 10,000 silences of one regex matcher each (the API's limit; more from the
    # changelog): before, each was tried for every alert, 41 ms an alert (0.67 s with
    # 100,000), so a control room's regex silences slowed every other alert's routing.
    silences = many_regex_silences()
    silences.candidates({})
    evaluations[0] = 0
    decision = router.decide(sensor_alert(MANY - 1), [], silences, NOW)
    assert decision.silenced_by is not None and decision.silenced_by.id == f"r{MANY - 1}"
    assert evaluations[0] <= 4  # before: 10,000
    evaluations[0] = 0
    assert router.decide(sensor_alert(MANY + 5), [], silences, NOW).mute is None
    assert evaluations[0] <= 4  # before: 10,000
    evaluations[0] = 0
    # An alert without the label: no regex silence can match it (none matches "").
    assert router.decide({"alert_id": "x", "kind": "pm25"}, [], silences, NOW).mute is None
    assert evaluations[0] <= 4


def test_a_muted_alert_rechecked_under_a_regex_silence_is_found_in_its_set(
    router: Router,
) -> None:
    silences = many_regex_silences(600)  # three RE2 sets
    for i in (0, 255, 256, 599):
        decision = router.recheck(sensor_alert(i), "silenced", "gone", None, [], silences, NOW)
        assert decision.silenced_by is not None and decision.silenced_by.id == f"r{i}"
    decision = router.decide({**sensor_alert(7), "sensor_id": "sensor-7-b"}, [], silences, NOW)
    assert decision.silenced_by is not None and decision.silenced_by.id == "r7"


class Walked(SilenceList):
    """Silences that count how many of them were walked."""

    walked = 0

    def __iter__(self) -> Iterator[Silence]:
        for silence in super().__iter__():
            self.walked += 1
            yield silence


def test_a_muted_alert_rechecked_finds_its_silence_without_walking_them(
    router: Router, evaluations: list[int]
) -> None:
    silences = Walked(many_silences())
    alert = sensor_alert(MANY - 1)
    evaluations[0] = 0
    for _ in range(100):  # a tick over 100 muted alerts
        decision = router.recheck(alert, "silenced", f"s{MANY - 1}", None, [], silences, NOW)
        assert decision.mute == "silenced"
    # Walked once, to index them by id (before: 100 times, 10,000 each, a tick); each
    # alert evaluated its silence's two matchers and the routing tree's one.
    assert silences.walked == MANY
    assert evaluations[0] <= 100 * 3


def test_an_alert_no_inhibit_rule_targets_does_not_walk_the_firing_alerts(
    router: Router,
) -> None:
    def firing() -> Iterator[dict[str, str]]:
        raise AssertionError("the firing alerts were walked")
        yield {}

    # routing-mutes.yaml's one rule targets category="Noise - Vehicle" only.
    assert router.decide(sensor_alert(MANY + 1), firing(), many_silences(10), NOW).mute is None


def random_matcher(rng: random.Random) -> str:
    name = rng.choice(["sensor_id", "kind", "community", "category"])
    value = rng.choice(["", "sensor-1", "sensor-2", "pm25", "no2", "c1", "c2", "Noise - Vehicle"])
    op = rng.choice(["=", "=", "!=", "=~", "!~"])
    if op in ("=~", "!~"):
        value = rng.choice(
            ["sensor-.*", "pm.*", "c[12]", ".*", "", "sensor-[13]", "(?i)PM25|no2", "c1|"]
        )
    return f'{name}{op}"{value}"'


def random_silences(rng: random.Random, n: int) -> list[Silence]:
    made: list[Silence] = []
    while len(made) < n:
        try:
            made.append(
                new_silence(
                    f"s{len(made)}",
                    [random_matcher(rng) for _ in range(rng.randint(1, 3))],
                    rng.choice([0.0, NOW + 10]),  # some not started yet
                    2e6,
                    "op",
                    "r",
                )
            )
        except Exception:  # one whose matchers all match the empty string: refused
            continue
    return made


@pytest.mark.parametrize("seed", range(30))
def test_the_index_finds_the_silence_a_full_walk_finds(router: Router, seed: int) -> None:
    rng = random.Random(seed)
    silences = random_silences(rng, 40)
    indexed = SilenceList(silences)
    for _ in range(50):
        labels = {
            "alert_id": "al-1",
            "sensor_id": rng.choice(["sensor-1", "sensor-2", "sensor-3"]),
            "kind": rng.choice(["pm25", "no2"]),
            "community": rng.choice(["c1", "c2"]),
        }
        if rng.random() < 0.5:
            labels["category"] = rng.choice(["Noise - Vehicle", "Illegal Parking"])
        walked = router.decide(labels, [], silences, NOW)
        found = router.decide(labels, [], indexed, NOW)
        assert (found.silenced_by, found.routes) == (walked.silenced_by, walked.routes)


def stored(silences: list[Silence], walked: list[int]) -> Iterator[tuple[str, Any]]:
    for silence in silences:
        walked[0] += 1
        yield silence.id, silence.to_dict()


def test_a_silence_written_again_under_its_id_is_read_again() -> None:
    # The same id and ends_at, other matchers or start (another worker's or an older
    # citybrain's changelog entry): before, the first reading was kept until a restart,
    # so this worker silenced pm25 while one restarted silenced no2.
    book = SilenceBook()
    first = new_silence("s1", ['kind="pm25"'], 0.0, 2e6, "op", "r").to_dict()
    read, _ = book.read([("s1", first)], NOW, version=1)
    assert [str(m) for m in read[0].matchers] == ['kind="pm25"']
    read, _ = book.read([("s1", {**first, "matchers": ['kind="no2"']})], NOW, version=2)
    assert [str(m) for m in read[0].matchers] == ['kind="no2"']  # before: pm25
    read, _ = book.read([("s1", {**first, "starts_at": NOW + 60})], NOW, version=3)
    assert read[0].starts_at == NOW + 60 and not read[0].active(NOW)  # before: active
    # Changed in place (the store's own dict): read again too.
    doc = {**first, "matchers": ['kind="pm25"']}
    book.read([("s1", doc)], NOW, version=4)
    doc["matchers"][0] = 'kind="flow"'
    read, _ = book.read([("s1", doc)], NOW, version=5)
    assert [str(m) for m in read[0].matchers] == ['kind="flow"']


def test_silences_ending_one_by_one_do_not_rebuild_the_index_for_every_alert(
    router: Router,
) -> None:
    # 10,000 regex silences, one ending every second: before, each end made the next
    # alert walk the table and index it again (~0.4 s an alert with the RE2 sets).
    silences = [
        new_silence(f"r{i}", [f'sensor_id=~"sensor-{i}"'], 0.0, NOW + 1 + i, "op", "r")
        for i in range(MANY)
    ]
    docs = [(s.id, s.to_dict()) for s in silences]
    book = SilenceBook()
    first, _ = book.read(docs, NOW, version=1)
    for second in range(1, 100):
        now = NOW + second + 0.5
        read, _ = book.read(docs, now, version=1)
        assert read is first  # before: a new list at every second
        assert router.decide(sensor_alert(second - 1), [], read, now).mute is None  # ended
        assert router.decide(sensor_alert(second), [], read, now).silenced_by == silences[second]
    later, _ = book.read(docs, NOW + MANY / 2 + 1, version=1)
    assert later is not first and len(later) < MANY / 2  # half ended: read again


def test_silences_new_to_the_book_are_read_in_steps_for_the_event_loop() -> None:
    # 100,000 silences first read from the changelog were 8-45 s of parsing in one go,
    # the worker frozen (no routing, API or Kafka heartbeat): now a step every PARSE_STEP.
    docs = [(s.id, s.to_dict()) for s in many_silences(3 * PARSE_STEP + 5)]
    book = SilenceBook()
    steps, yields = book.reading(docs, NOW, version=1), 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            read, bad = done.value
            break
    assert yields == 3 and len(read) == len(docs) and bad == []  # before: no steps at all
    again = book.reading(docs, NOW, version=2)  # changed table, each silence read before
    with pytest.raises(StopIteration):
        next(again)
    assert book.read(docs, NOW, version=2)[0] == read


def test_a_stored_silence_past_the_apis_bounds_is_unreadable_not_parsed(router: Router) -> None:
    # From the changelog (another tool, a citybrain before trial 8): 10,000 regex
    # matchers were ~8 s of parsing in one go, the worker frozen, then walked per alert.
    good = new_silence("good", ['sensor_id="sensor-1"'], 0.0, 2e6, "op", "r").to_dict()
    huge = {**good, "id": "huge", "matchers": [f'kind=~"k{i}.*"' for i in range(10_000)]}
    long = {**good, "id": "long", "matchers": ['category="' + "c" * 2000 + '"']}
    read, bad = SilenceBook().read([("huge", huge), ("long", long), ("good", good)], NOW)
    assert [s.id for s in read] == ["good"]  # before: all three read
    assert [(b.key, b.problem) for b in bad] == [("huge", "field"), ("long", "field")]
    assert "10,000 entries, at most 64" in bad[0].message
    assert "2,011 characters, at most 1,024" in bad[1].message
    assert router.decide(sensor_alert(1), [], read, NOW).silenced_by == read[0]


def test_an_unchanged_table_is_not_walked_again_until_a_silence_ends() -> None:
    silences = list(many_silences(100))
    ending = new_silence("soon", ['sensor_id="x"'], 0.0, NOW + 60, "op", "r")
    book, walked = SilenceBook(), [0]
    first, _ = book.read(stored([*silences, ending], walked), NOW, version=7)
    assert len(first) == 101 and walked[0] == 101
    again, _ = book.read(stored([*silences, ending], walked), NOW + 1, version=7)
    assert again is first and walked[0] == 101  # before: walked for every alert
    changed, _ = book.read(stored(silences, walked), NOW + 2, version=8)
    assert len(changed) == 100 and walked[0] == 201
    ninth, _ = book.read(stored([*silences, ending], walked), NOW + 3, version=9)
    walked[0] = 0
    after, _ = book.read(stored([*silences, ending], walked), NOW + 60, version=9)
    # "soon" ended: kept in the list, muting nothing, until half of them have ended.
    assert walked[0] == 0 and after is ninth and not ending.active(NOW + 60)
    assert book.read(stored([ending], walked), NOW + 3, version=10)[0] == [ending]
    walked[0] = 0
    after, _ = book.read(stored([ending], walked), NOW + 60, version=10)
    assert walked[0] == 1 and len(after) == 0  # the only one ended: read again, gone
    walked[0] = 0
    book.read(stored(silences, walked), NOW + 61, version=None)
    assert walked[0] == 100  # a store that cannot tell: read every time


STORM_ROUTING = """version: 1
route:
  playbook: sensor-anomaly
  group_by: [kind, community]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"minor|major"']
    equal: [community]
  - source_matchers: ['kind="water_level"']
    target_matchers: ['kind="pm25"']
    equal: []
"""


@pytest.fixture(scope="module")
def storm_router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    path: Path = tmp_path_factory.mktemp("routing") / "routing.yaml"
    path.write_text(STORM_ROUTING)
    return load_routing(path, load_playbooks(PLAYBOOK_DIR))


def firing_alert(i: int, severity: str = "major", kind: str = "pm25") -> dict[str, str]:
    return {**sensor_alert(i), "severity": severity, "kind": kind, "community": f"c{i % 50}"}


def test_an_alert_an_inhibit_rule_targets_looks_up_its_sources(
    storm_router: Router, evaluations: list[int]
) -> None:
    # 10,000 firing alerts a rule's target side matches, none of them a source.
    index = SourceIndex(storm_router.inhibit_rules)
    table = {f"al-{i}".encode(): firing_alert(i) for i in range(MANY)}
    for key, labels in table.items():
        index.put(key, labels)
    alert = firing_alert(MANY + 1, severity="minor")
    evaluations[0] = 0
    walk = lambda: iter(table.values())  # noqa: E731
    assert storm_router.decide(alert, IndexedFiring(index, b"new", walk), [], NOW).mute is None
    assert evaluations[0] <= 10  # before: 20,001 (two per firing alert), ~85 ms
    # A source fires in the alert's community: found at once.
    index.put(b"al-crit", {**firing_alert(MANY + 1, severity="critical"), "alert_id": "crit"})
    evaluations[0] = 0
    decision = storm_router.decide(alert, IndexedFiring(index, b"new", walk), [], NOW)
    assert (decision.mute, decision.muted_by) == ("inhibited", "crit")
    assert evaluations[0] <= 10
    index.drop(b"al-crit")
    assert storm_router.decide(alert, IndexedFiring(index, b"new", walk), [], NOW).mute is None


@pytest.mark.parametrize("seed", range(20))
def test_the_source_index_agrees_with_walking_the_firing_alerts(
    storm_router: Router, seed: int
) -> None:
    rng = random.Random(seed)
    index = SourceIndex(storm_router.inhibit_rules)
    table: dict[bytes, Any] = {}
    for step in range(300):
        key = f"al-{rng.randrange(40)}".encode()
        if rng.random() < 0.3:
            table.pop(key, None)
            index.drop(key)
            continue
        labels: Any = {
            "alert_id": key.decode(),
            "source": "sensor",
            "kind": rng.choice(["pm25", "water_level", "no2"]),
            "severity": rng.choice(["minor", "major", "critical"]),
            "community": rng.choice(["c1", "c2", "c3"]),
        }
        if rng.random() < 0.05:
            labels = {"alert_id": 7}  # a stored value that is no label set
        table[key] = labels
        index.put(key, labels)
        alert_key = f"al-{rng.randrange(40)}".encode()
        alert = {
            "alert_id": alert_key.decode(),
            "source": "sensor",
            "kind": rng.choice(["pm25", "no2"]),
            "severity": rng.choice(["minor", "major"]),
            "community": rng.choice(["c1", "c2", "c3"]),
        }
        others = [v for k, v in table.items() if k != alert_key]
        walked = storm_router.decide(alert, others, [], NOW)
        found = storm_router.decide(
            alert, IndexedFiring(index, alert_key, partial(iter, others)), [], NOW
        )
        assert found.mute == walked.mute, step
        if found.mute:
            assert found.inhibited_by is not None
            source = table[found.muted_by.encode()]
            assert found.inhibited_by.inhibits(alert, source)


def test_a_stored_silence_whose_id_no_alert_can_carry_is_unreadable(router: Router) -> None:
    """t154: a silence's id goes with every alert it mutes (the muted entry's ``by``, the
    ``alert_silenced`` audit, the ``alert_unmuted`` id). One of 1,000,000 characters
    (another tool's changelog entry: the topic takes 1,048,588 bytes) was read and
    obeyed; each record of an alert it muted was then larger than the producer's
    1,000,000 bytes, which it cannot send. Read as unreadable now; the others obey."""
    good = new_silence("good", ['sensor_id="sensor-1"'], 0.0, 2e6, "op", "r").to_dict()
    long_id = "s" * 1_000_000
    wide = {**good, "id": long_id, "matchers": ['kind=~".+"']}
    at_most = {**good, "id": "a" * 256}
    entries = [("wide", wide), ("a" * 256, at_most), ("good", good)]  # keyed by id
    read, bad = SilenceBook().read(entries, NOW)
    assert [s.id for s in read] == ["a" * 256, "good"]  # before: all three read
    assert [(b.key, b.problem) for b in bad] == [("wide", "field")]
    assert "'id' is 1,000,000 characters, at most 256" in bad[0].message
    assert router.decide(sensor_alert(1), [], read, NOW).silenced_by == read[0]


def test_a_stored_silence_whose_author_or_reason_is_unbounded_is_unreadable(
    router: Router,
) -> None:
    """t156: the id's siblings. A stored silence's ``author`` (``createdBy``) and
    ``reason`` (``comment``) were any length: every listing of the silences (the API's,
    the CLI's table) carried one of 1,000,000 characters whole. Read as unreadable past
    the API's own bounds (an author is a token's name, at most 256 characters; a reason
    at most 2,000, a run action's note's bound, MAX_NOTE); the others obey."""
    good = new_silence("good", ['sensor_id="sensor-1"'], 0.0, 2e6, "op", "r").to_dict()
    entries = [
        ("la", {**good, "id": "la", "author": "a" * 1_000_000}),
        ("lr", {**good, "id": "lr", "reason": "r" * (MAX_NOTE + 1)}),
        ("am", {**good, "id": "am", "author": "a" * 256, "reason": "r" * MAX_NOTE}),
        ("good", good),
    ]
    read, bad = SilenceBook().read(entries, NOW)
    assert [s.id for s in read] == ["am", "good"]  # before: all four read
    assert [(b.key, b.problem) for b in bad] == [("la", "field"), ("lr", "field")]
    assert "'author' is 1,000,000 characters, at most 256" in bad[0].message
    assert f"'reason' is {MAX_NOTE + 1:,} characters, at most {MAX_NOTE:,}" in bad[1].message
    assert MAX_SILENCE_REASON_CHARS == MAX_NOTE  # one bound, said by the API and read-back


def test_a_stored_silence_whose_id_is_not_its_key_is_unreadable(router: Router) -> None:
    """t160: a silence's id is its key, as Alertmanager keys each silence by its id. An
    entry stored under one key with another id (another tool's changelog entry) was
    read and obeyed under that id: listed under it, its expiry by the listed id was "no
    silence", so nothing could end it. And under the id of an API silence it shadowed
    that one: once ``s1`` was expired the re-check still found "s1" by id, and the alert
    stayed muted by an expired silence. Now unreadable (skipped, reported), the others
    obey; one without an id was unreadable already."""
    s1 = new_silence("s1", ['sensor_id="sensor-1"'], 0.0, 2e6, "op", "r").to_dict()
    shadow = {**s1, "matchers": ['kind="pm25"']}
    entries = [("s1", s1), ("x", shadow), ("no-id", {k: v for k, v in s1.items() if k != "id"})]
    read, bad = SilenceBook().read(entries, NOW)
    assert [s.id for s in read] == ["s1"]  # before: s1 and the "s1" stored under x
    assert [(b.key, b.problem) for b in bad] == [("x", "field"), ("no-id", "field")]
    assert "'id' is 's1', but it is stored under the key 'x'" in bad[0].message
    # s1 expired: the alert it muted is routed, not kept "silenced by s1".
    expired, _ = SilenceBook().read([("s1", {**s1, "ends_at": NOW - 1}), ("x", shadow)], NOW)
    decision = router.recheck(sensor_alert(1), "silenced", "s1", None, [], expired, NOW)
    assert decision.mute is None
