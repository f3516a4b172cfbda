"""SIGHUP's reload of the playbooks and routing file (streams/reload.py, t122): a good
reload swaps them into every stage at once, a bad one keeps the running configuration
and says why in one line, with ``citybrain_config_last_reload_successful`` as
Alertmanager's ``alertmanager_config_last_reload_successful``. No broker is needed: the
app is built, nothing connects (the real worker's signal is in
tests/integration/test_config_reload.py)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from playbooks.loader import PLAYBOOK_DIR
from streams.app import config_reload, create_app
from streams.reload import ConfigReload
from streams.settings import REPO_ROOT, Settings

ROUTING = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()


def reloader(tmp_path: Path) -> tuple[ConfigReload, CollectorRegistry, Path, Path]:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOK_DIR, playbooks)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = Settings(
        run_dir_override=tmp_path, topic_prefix="t", playbook_dir=playbooks, routing_file=routing
    )
    registry = CollectorRegistry()
    found = config_reload(create_app(settings, registry))
    assert found is not None
    return found, registry, playbooks, routing


def ok(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("citybrain_config_last_reload_successful")


def test_a_bad_routing_file_keeps_the_running_configuration_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, _playbooks, routing = reloader(tmp_path)
    ctx = reload.ctx
    before = (ctx.router, dict(ctx.playbooks), reload.response.engines)
    assert ok(registry) == 1
    started = registry.get_sample_value("citybrain_config_last_reload_success_timestamp_seconds")
    assert started is not None and started > 0
    routing.write_text(ROUTING.replace("playbook: gas-leak", "playbook: gas-leek"))
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    assert (ctx.router, ctx.playbooks, reload.response.engines) == before
    assert reload.response.engines is ctx.config.engines
    assert ok(registry) == 0
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line == (
        "citybrain: configuration reload failed, the running playbooks, routing, grid and "
        f"tokens are kept: {routing}:27: route.routes.5.playbook: playbook 'gas-leek' does not exist "
        "(known: air-pollution, citizen-report-burst, crowd-surge, flash-flood, gas-leak, "
        "sensor-anomaly, sensor-check, sensor-failure, traffic-incident) (did you mean "
        "'gas-leak'?); `citybrain playbooks check` lists every error"
    )
    # Fixed, the next reload succeeds.
    routing.write_text(ROUTING)
    assert reload.reload() is True
    assert ok(registry) == 1


def test_a_bad_playbook_keeps_the_running_ones_and_counts_its_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, playbooks, _routing = reloader(tmp_path)
    flood = playbooks / "flash-flood.yaml"
    text = flood.read_text()
    flood.write_text(text.replace("deadline: 5m", "deadline: soon").replace("sla: 2h", "sla: 0s"))
    engine = reload.response.engines["flash-flood"]
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    assert reload.response.engines["flash-flood"] is engine
    assert ok(registry) == 0
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"kept: {flood}:8: sla: sla cannot be zero" in line
    assert line.endswith(" (and 1 more); `citybrain playbooks check` lists every error")


def test_a_good_reload_swaps_playbooks_routing_and_engines_together(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, playbooks, routing = reloader(tmp_path)
    ctx = reload.ctx
    # gas-leak removed (its route now to crowd-surge), a new playbook routed to.
    (playbooks / "gas-leak.yaml").unlink()
    new = (
        (playbooks / "crowd-surge.yaml")
        .read_text()
        .replace("playbook: crowd-surge", "playbook: crowd-surge-2")
    )
    (playbooks / "crowd-surge-2.yaml").write_text(new)
    routing.write_text(ROUTING.replace("playbook: gas-leak", "playbook: crowd-surge-2"))
    with caplog.at_level(logging.INFO, logger="streams.reload"):
        assert reload.reload() is True
    assert ok(registry) == 1
    assert "gas-leak" not in ctx.playbooks and "crowd-surge-2" in ctx.playbooks
    assert set(reload.response.engines) == set(ctx.playbooks)
    assert reload.response.engines is ctx.config.engines
    labels = {"source": "citizen", "category": "gas smell", "community": "c"}
    assert [r.playbook for r in ctx.router.root.match(labels)] == ["crowd-surge-2"]
    said = [r.getMessage() for r in caplog.records]
    assert any(
        "configuration reloaded: 9 playbooks" in m and "no longer in the library: gas-leak" in m
        for m in said
    ), said
    # t189 (fails on the old code): the new one by name, not only in the count.
    [line] = [m for m in said if "configuration reloaded: 9 playbooks" in m]
    assert "; new playbooks: crowd-surge-2" in line


def test_a_changed_grid_is_reloaded_not_said_to_need_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before t130 the grid was read at start only and a reload warned "restart the
    # worker to use it"; it is now read again with the other files.
    grid = tmp_path / "grid.yaml"
    shutil.copy(REPO_ROOT / "datasets" / "grid.yaml", grid)
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t", grid_file=grid)
    reload = config_reload(create_app(settings, CollectorRegistry()))
    assert reload is not None
    first = next(iter(reload.ctx.grid.cells.values()))
    grid.write_text(grid.read_text().replace(f"name: {first.name}\n", "name: Renamed\n", 1))
    with caplog.at_level(logging.INFO, logger="streams.reload"):
        assert reload.reload() is True
    assert reload.ctx.grid.cells[first.id].name == "Renamed"
    assert not any("restart the worker" in r.getMessage() for r in caplog.records)
    assert any(f"grid from {grid} (changed)" in r.getMessage() for r in caplog.records)


def test_the_signal_reads_off_the_loop_and_a_second_one_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A routing file of 150,000 routes took ~80 s to read and check (measured, t122): on
    # the event loop that would stop heartbeats, readings and the API as long.
    import asyncio
    import time as clock

    reload, registry, _playbooks, routing = reloader(tmp_path)
    read = reload._read
    reads: list[float] = []

    def slow_read() -> object:
        clock.sleep(0.5)
        reads.append(clock.monotonic())
        return read()

    monkeypatch.setattr(reload, "_read", slow_read)

    async def scenario() -> int:
        ticks = 0
        reload.on_signal()
        reload.on_signal()  # before the read began: that one read serves both
        await asyncio.sleep(0.2)
        reload.on_signal()  # while the file is read: one more read after it
        assert reload._running is not None
        while not reload._running.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks

    routing.write_text(ROUTING.replace("playbook: gas-leak", "playbook: gas-leek"))
    ticks = asyncio.run(scenario())
    assert len(reads) == 2  # the second signal's read came after the first
    assert ticks > 50  # the loop ran on through both reads (~1 s)
    assert ok(registry) == 0


def test_the_config_hash_shows_which_files_a_worker_runs(tmp_path: Path) -> None:
    # Workers each reload on their own SIGHUP; before t125 nothing showed two of one
    # group running different files (one reloaded, the other not).
    reload, registry, playbooks, routing = reloader(tmp_path)

    def hashed() -> float | None:
        return registry.get_sample_value("citybrain_config_hash")

    started = hashed()
    assert started is not None and 0 < started < 2**48
    _other, other_registry, _p, _r = reloader(tmp_path / "other")  # the same files
    assert other_registry.get_sample_value("citybrain_config_hash") == started
    routing.write_text(ROUTING + "# edited\n")
    assert hashed() == started  # not reloaded yet: the files in force are the old ones
    assert reload.reload() is True
    edited = hashed()
    assert edited not in (None, started)
    # A refused reload keeps the running files, and their hash.
    (playbooks / "flash-flood.yaml").write_text("name: [\n")
    assert reload.reload() is False
    assert hashed() == edited
    (playbooks / "flash-flood.yaml").unlink()
    (playbooks / "x.yaml").write_text((PLAYBOOK_DIR / "flash-flood.yaml").read_text())
    # A playbook renamed on disk, its bytes the same, is another configuration.
    assert reload.reload() is True
    assert hashed() not in (None, started, edited)


def test_a_reload_that_regroups_open_groups_says_which_routes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # t125: a route added at the top of the list moved every later route (root.0 became
    # root.1...), and a group's key was its route's position: every open group's new
    # alerts opened new runs. t126: the key is the route's matcher path, as
    # Alertmanager's: the insertion regroups nothing, and the warning names no route.
    reload, _registry, _playbooks, routing = reloader(tmp_path)
    ctx = reload.ctx
    flood = {"source": "sensor", "kind": "water_level", "street": "Elm", "sensor_id": "g1"}
    [was] = ctx.router.root.match(flood)
    added = "  routes:\n    - matchers: ['category=\"drill\"']\n      playbook: sensor-check\n"
    routing.write_text(ROUTING.replace("  routes:\n", added, 1))
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    [now] = ctx.router.root.match(flood)
    assert now.id != was.id  # moved down the list...
    assert now.group_key(flood) == was.group_key(flood)  # ...its groups kept
    said = [
        r.getMessage() for r in caplog.records if "configuration reload: route" in r.getMessage()
    ]
    assert said == []
    # A matcher edit of the route does change its key, and is said, naming that route only.
    routing.write_text(ROUTING)
    assert reload.reload() is True
    caplog.clear()
    edited = ROUTING.replace('kind=~"water_level|discharge"', 'kind=~"discharge|water_level"')
    assert edited != ROUTING
    routing.write_text(edited)
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    [moved] = ctx.router.root.match(flood)
    assert moved.group_key(flood) != was.group_key(flood)
    said = [
        r.getMessage() for r in caplog.records if "configuration reload: route" in r.getMessage()
    ]
    assert len(said) == 1, said
    assert said[0].startswith(f"citybrain: configuration reload: route {was.id} (")
    assert "is gone" in said[0] and said[0].endswith(
        "new alerts of its open groups open new groups and runs beside the open ones"
    ), said
    # A group_by changed, and a playbook changed, are said too; an unchanged reload is not.
    routing.write_text(ROUTING)
    assert reload.reload() is True
    caplog.clear()
    routing.write_text(
        ROUTING.replace(
            "playbook: flash-flood\n      group_by: [street]",
            "playbook: flash-flood\n      group_by: [sensor_id]",
        ).replace("playbook: gas-leak", "playbook: crowd-surge")
    )
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    said = [
        r.getMessage() for r in caplog.records if "configuration reload: route" in r.getMessage()
    ]
    assert len(said) == 2, said
    assert "groups by [sensor_id], was [street]" in said[0]
    assert (
        "opens crowd-surge runs, was gas-leak: new alerts of its open groups join their open gas-leak runs"
        in said[1]
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    assert not [r for r in caplog.records if "configuration reload: route" in r.getMessage()]


def test_a_playbook_directory_renamed_away_is_named_not_blamed_on_the_routes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # t125: a directory replaced by renames (mv playbooks playbooks.old; mv new playbooks)
    # is absent for a moment; a reload then read an empty library and its error was
    # "routing.yaml:4: route.playbook: playbook 'sensor-anomaly' does not exist (known: )"
    # (and 8 more). The start names the directory; the reload now does too.
    reload, registry, playbooks, _routing = reloader(tmp_path)
    engines = reload.response.engines
    playbooks.rename(tmp_path / "playbooks.old")
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    playbooks.mkdir()  # there again, empty for a moment
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    assert reload.response.engines is engines and ok(registry) == 0
    gone, empty = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    kept = (
        "citybrain: configuration reload failed, the running playbooks, routing, grid and "
        "tokens are kept: "
    )
    assert gone.startswith(f"{kept}CITYBRAIN_PLAYBOOK_DIR is {str(playbooks)!r}: "), gone
    assert "routing.yaml" not in gone and "(and " not in gone
    assert empty == (
        f"{kept}CITYBRAIN_PLAYBOOK_DIR is {str(playbooks)!r}: no playbooks (*.yaml) in it; "
        "`citybrain playbooks check` lists every error"
    )


def test_each_signalled_reload_is_audited_and_kafka_away_holds_no_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit trail says when the configuration changed (config_reloaded: the files'
    hash, the playbooks, what the reload did to open groups) or was refused
    (config_reload_failed: the first error); the record is sent beside the reload, so a
    send that waits on an absent Kafka holds neither it nor the next SIGHUP's."""
    import asyncio

    reload, registry, _playbooks, routing = reloader(tmp_path)
    records: list[dict[str, object]] = []
    kafka_back = asyncio.Event()

    async def audit(record: dict[str, object]) -> None:
        await kafka_back.wait()  # Kafka away: the send waits for it
        records.append(record)

    monkeypatch.setattr(reload.ctx, "audit", audit)

    async def signalled() -> None:
        reload.on_signal()
        assert reload._running is not None
        await asyncio.wait_for(reload._running, 30)  # done, though nothing was audited yet

    async def scenario() -> None:
        # A route's matchers edited: its groups' key changes (t126: a route added above
        # another no longer does), a clause of the record.
        edited = 'kind=~"discharge|water_level"'
        routing.write_text(ROUTING.replace('kind=~"water_level|discharge"', edited, 1))
        await signalled()
        assert ok(registry) == 1 and records == []
        routing.write_text(ROUTING.replace("playbook: gas-leak", "playbook: gas-leek"))
        await signalled()
        assert ok(registry) == 0
        kafka_back.set()
        while reload._audits:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [r["action"] for r in records] == ["config_reloaded", "config_reload_failed"]
    applied, refused = records
    digest = registry.get_sample_value("citybrain_config_hash")
    assert str(applied["detail"]).startswith(f"hash {int(digest or 0)}: ")
    assert "is gone (no route has its matchers there now" in str(applied["detail"])
    assert "gas-leek" in str(refused["detail"]) and "(and " not in str(refused["detail"])
