"""t126: a group key was its route's position in the tree; it is now the route's matcher
path (Alertmanager's ``Route.Key()``). A group stored before the upgrade, under its old
key, keeps its run: the next alert of that group joins it (no second run, no second
dispatch), whether this worker holds the old key's partition (looked up in place) or
another does (the message forwarded there and taken, or sent back). No broker: the
routing stage's messages are fed to the response stage by hand, as Kafka would."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from playbooks.loader import default_routing_path
from streams.errors import EventError
from streams.response import Response
from tests.unit.streams import test_muted_alerts
from tests.unit.streams.test_covered_once import sending_response
from tests.unit.streams.test_muted_alerts import burst
from tests.unit.streams.test_response_races import Event


def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *alerts: str) -> list[Any]:
    """What the routing stage sends, with the library's routing, for noise bursts of
    ``alerts`` (alert ids) in one cell: one group of the citizen-report-burst route."""
    monkeypatch.setattr(test_muted_alerts, "ROUTING", default_routing_path().read_text())
    (tmp_path / "routing").mkdir(parents=True, exist_ok=True)
    stage = test_muted_alerts.Stage(tmp_path / "routing", monkeypatch)
    for alert_id in alerts:
        stage.alert(burst(alert_id, "Noise - Vehicle"))
    return stage.routed


def as_before(key: str, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``doc`` as citybrain before t126 sent it: under the group's old (position) key,
    with no ``legacy_key``."""
    return doc["legacy_key"], {k: v for k, v in doc.items() if k != "legacy_key"}


def feed(stage: Response, key: str, doc: dict[str, Any]) -> None:
    asyncio.run(stage.on_routed(Event(key.encode(), doc)))  # type: ignore[arg-type]


def no_run(stage: Response) -> bool:
    """Whether ``stage`` holds no run (a key's entry may hold its forwarding counts)."""
    return all(g["run"] is None for g in stage.ctx.groups.data.values())


def run_ids(sent: list[dict[str, Any]]) -> set[str]:
    return {s["run_id"] for s in sent if "run_id" in s}


def test_an_alert_of_a_group_stored_under_its_old_key_joins_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (new_key, first), (again, second) = routed(tmp_path, monkeypatch, "al-1", "al-2")
    assert new_key == again and first["legacy_key"] != new_key
    stage, sent = sending_response(tmp_path / "response")
    feed(stage, *as_before(new_key, first))  # stored by the old worker
    old = first["legacy_key"].encode()
    assert list(stage.ctx.groups.data) == [old]
    feed(stage, new_key, second)  # the upgraded worker's routing
    # Joined, under the old key: before t126's key change this opened a second run.
    assert list(stage.ctx.groups.data) == [old]
    assert stage.ctx.groups.data[old]["run"]["alerts"] == ["al-1", "al-2"]
    assert run_ids(sent) == {f"{old.decode()}.1"}


def test_a_new_group_with_nothing_stored_before_is_keyed_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(new_key, first)] = routed(tmp_path, monkeypatch, "al-1")
    stage, _ = sending_response(tmp_path / "response")
    feed(stage, new_key, first)
    assert list(stage.ctx.groups.data) == [new_key.encode()]


def two_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_key: str, old: str
) -> tuple[Any, Any, Any, list[tuple[str, dict[str, Any]]]]:
    """Two response stages, ``here`` holding ``new_key``'s partition and ``there`` the
    old key's, whose Kafka sends are caught in ``forwarded``: (here, there, what there
    sent as runs, forwarded)."""
    here, _ = sending_response(tmp_path / "here")
    there, there_sent = sending_response(tmp_path / "there")
    forwarded: list[tuple[str, dict[str, Any]]] = []

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        forwarded.extend(items)

    for stage, holds in ((here, new_key), (there, old)):
        stage._holds_partition = lambda key, h=holds: key == h.encode()  # type: ignore[method-assign]
        monkeypatch.setattr(stage.ctx, "send_all", send_all)
    return here, there, there_sent, forwarded


def test_on_another_workers_partition_the_old_group_is_asked_through_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (new_key, first), (_, second), (_, third) = routed(
        tmp_path, monkeypatch, "al-1", "al-2", "al-3"
    )
    old = first["legacy_key"]
    # Two workers: the new key's partition here, the old key's there.
    here, there, there_sent, forwarded = two_workers(tmp_path, monkeypatch, new_key, old)
    feed(there, *as_before(new_key, first))  # stored there by the old worker
    feed(here, new_key, second)
    assert no_run(here)  # not opened here: forwarded to the old key
    [(to, probe)] = forwarded
    assert to == old and probe["probe"] == new_key
    feed(there, to, probe)  # taken there, into the run stored before
    assert there.ctx.groups.data[old.encode()]["run"]["alerts"] == ["al-1", "al-2"]
    assert run_ids(there_sent) == {f"{old}.1"}
    # Later alerts of the group go the same way, while that group lives.
    forwarded.clear()
    feed(here, new_key, third)
    [(to, probe)] = forwarded
    feed(there, to, probe)
    assert there.ctx.groups.data[old.encode()]["run"]["alerts"] == ["al-1", "al-2", "al-3"]
    assert no_run(here)


def test_with_no_old_group_there_the_message_comes_back_and_opens_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (new_key, first), (_, second) = routed(tmp_path, monkeypatch, "al-1", "al-2")
    old = first["legacy_key"]
    here, there, _, forwarded = two_workers(tmp_path, monkeypatch, new_key, old)
    feed(here, new_key, first)
    # The second alert comes before the first is back: it goes the same way, so it is
    # not taken before the first.
    feed(here, new_key, second)
    assert [to for to, _ in forwarded] == [old, old]
    for to, probe in list(forwarded):
        feed(there, to, probe)
    assert not there.ctx.groups.data
    back = forwarded[2:]
    assert [(to, doc["checked"]) for to, doc in back] == [(new_key, True), (new_key, True)]
    for to, doc in back:
        feed(here, to, doc)
    group = here.ctx.groups.data[new_key.encode()]
    assert group["run"]["alerts"] == ["al-1", "al-2"]
    # Both back: the next message of the key is taken here at once.
    forwarded.clear()
    (_, third) = routed(tmp_path / "3", monkeypatch, "al-3")[0]
    feed(here, new_key, third)
    assert forwarded == []
    assert here.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-1", "al-2", "al-3"]


def test_an_old_group_that_does_not_translate_is_said_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (new_key, first), (_, second), (_, third) = routed(
        tmp_path, monkeypatch, "al-1", "al-2", "al-3"
    )
    stage, _ = sending_response(tmp_path / "response")
    old_key, before = as_before(new_key, first)
    # Stored while the route was elsewhere in the tree (a position that holds another
    # route, of another playbook, now).
    before["route"] = {**before["route"], "id": "root.0"}
    feed(stage, old_key, before)
    old = old_key.encode()
    with caplog.at_level(logging.WARNING, logger="streams.response"):
        feed(stage, new_key, second)
        feed(stage, new_key, third)
    said = [r.getMessage() for r in caplog.records if "stored before t126" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(f"citybrain: group {old_key} (stored before t126")
    assert f"is not the group {new_key}: the route at its position root.0 opens" in said[0]
    assert f"run {old_key}.1 readable" in said[0]
    # Kept as it was; the new alerts have a group of their own.
    assert stage.ctx.groups.data[old]["run"]["alerts"] == ["al-1"]
    assert stage.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-2", "al-3"]


@pytest.mark.parametrize("position", ["root.²", "root.١", "root." + "9" * 5000])
def test_an_old_group_whose_position_is_no_index_is_said_once_and_kept(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    position: str,
) -> None:
    # t190: int() of "²" (isdigit() takes it) or of 5,000 digits raised ValueError out of
    # the migration, and the alert joining the group was a processing error.
    (new_key, first), (_, second) = routed(tmp_path, monkeypatch, "al-1", "al-2")
    stage, _ = sending_response(tmp_path / "response")
    old_key, before = as_before(new_key, first)
    before["route"] = {**before["route"], "id": position}
    feed(stage, old_key, before)
    with caplog.at_level(logging.WARNING, logger="streams.response"):
        feed(stage, new_key, second)
    said = [r.getMessage() for r in caplog.records if "stored before t126" in r.getMessage()]
    assert len(said) == 1, [r.getMessage()[:300] for r in caplog.records]
    assert "no route is at its route's position" in said[0]
    assert stage.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-2"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("legacy_key", "root.3|x"), ("probe", 7), ("legacy_key", "grp-XYZ"), ("checked", "yes")],
)
def test_a_routed_message_with_a_bad_migration_field_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: Any
) -> None:
    [(new_key, first)] = routed(tmp_path, monkeypatch, "al-1")
    stage, _ = sending_response(tmp_path / "response")
    with pytest.raises(EventError) as raised:
        feed(stage, new_key, {**first, field: value})
    assert raised.value.field == field and raised.value.value == value
    assert not stage.ctx.groups.data


def test_a_message_on_its_way_to_the_old_key_is_not_overtaken_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t148: while one of a key's messages is forwarded to its old key's partition, the
    key's next ones follow it, so none overtakes another. That was counted in the
    worker's memory: restarted (or the partition moved) with two on their way, the
    worker took the first back as the last, and a third message, routed while the
    second was still on its way, was taken at once: the third before the second (a
    resolution before its alert's firing leaves the alert firing in its run for good).
    Stored with the key's entry (``forwards``), the count survives the restart."""
    (new_key, first), (_, second), (_, third) = routed(
        tmp_path, monkeypatch, "al-1", "al-2", "al-3"
    )
    old = first["legacy_key"]
    here, there, _, forwarded = two_workers(tmp_path, monkeypatch, new_key, old)
    feed(here, new_key, first)
    feed(here, new_key, second)
    for to, probe in list(forwarded):
        feed(there, to, probe)  # no old group there: both sent back
    [back_1, back_2] = forwarded[2:]
    forwarded.clear()
    restarted = Response(here.ctx)  # its memory gone, the table read back
    restarted._holds_partition = here._holds_partition  # type: ignore[method-assign]
    restarted._update_lag = here._update_lag  # type: ignore[method-assign]
    feed(restarted, *back_1)  # al-1 back: opens the group under its new key
    assert here.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-1"]
    feed(restarted, new_key, third)  # al-2 still on its way: al-3 follows it
    assert [to for to, _ in forwarded] == [old]
    assert here.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-1"]
    feed(restarted, *back_2)
    feed(there, *forwarded[0])
    feed(restarted, *forwarded[1])
    assert here.ctx.groups.data[new_key.encode()]["run"]["alerts"] == ["al-1", "al-2", "al-3"]
