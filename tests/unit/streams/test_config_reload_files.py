"""SIGHUP's reload of the grid file and the operator API's tokens file beside the
playbooks and routing (streams/reload.py, t130): before, both were read at start only,
so a leaked token stayed valid until the control room was restarted, and a grid edit
was only warned of. All four files are swapped in together or none is; the config hash
covers them all, never showing a token or its hash. No broker is needed: the app is
built, nothing connects (the real worker's signal is in
tests/integration/test_config_reload.py)."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from playbooks.engine import PlaybookEngine
from playbooks.loader import PLAYBOOK_DIR, load_playbooks
from streams.app import config_reload, create_app
from streams.context import run_key
from streams.reload import ConfigReload, reload_record
from streams.settings import REPO_ROOT, Settings

GRID = (REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text()
ROUTING = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
OLD, NEW = "old-secret-token-1", "new-secret-token-2"


def tokens_text(*entries: tuple[str, str, str]) -> str:
    lines = [
        f"  - {{name: {name}, role: {role}, sha256: {hashlib.sha256(t.encode()).hexdigest()}}}"
        for name, role, t in entries
    ]
    return "tokens:\n" + "\n".join(lines) + "\n"


def reloader(tmp_path: Path) -> tuple[ConfigReload, CollectorRegistry, dict[str, Path]]:
    files = {
        "playbooks": tmp_path / "playbooks",
        "routing": tmp_path / "routing.yaml",
        "grid": tmp_path / "grid.yaml",
        "tokens": tmp_path / "tokens.yaml",
    }
    shutil.copytree(PLAYBOOK_DIR, files["playbooks"])
    files["routing"].write_text(ROUTING)
    files["grid"].write_text(GRID)
    files["tokens"].write_text(tokens_text(("desk", "coordinator", OLD)))
    files["tokens"].chmod(0o600)
    settings = Settings(
        run_dir_override=tmp_path,
        topic_prefix="t",
        playbook_dir=files["playbooks"],
        routing_file=files["routing"],
        grid_file=files["grid"],
        api_tokens_file=files["tokens"],
    )
    registry = CollectorRegistry()
    found = config_reload(create_app(settings, registry))
    assert found is not None
    return found, registry, files


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


def ok(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("citybrain_config_last_reload_successful")


def test_a_revoked_token_is_refused_and_a_new_one_taken_from_the_reload_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, files = reloader(tmp_path)
    ctx = reload.ctx
    before = registry.get_sample_value("citybrain_config_hash")
    assert ctx.tokens.authenticate(f"Bearer {OLD}") is not None
    assert ctx.tokens.authenticate(f"Bearer {NEW}") is None
    files["tokens"].write_text(tokens_text(("desk-2", "operator", NEW)))
    with caplog.at_level(logging.INFO, logger="streams.reload"):
        assert reload.reload() is True
    assert ctx.tokens.authenticate(f"Bearer {OLD}") is None
    principal = ctx.tokens.authenticate(f"Bearer {NEW}")
    assert principal is not None and (principal.name, principal.role) == ("desk-2", "operator")
    # The hash covers the tokens file; neither a token nor its hash shows anywhere.
    after = registry.get_sample_value("citybrain_config_hash")
    assert after not in (None, before)
    record = reload_record(reload._read(), True, reload._changes)
    assert "tokens: 1 added, 1 revoked" in str(record["detail"])
    said = "\n".join(r.getMessage() for r in caplog.records) + str(record)
    said += generate_latest(registry).decode()
    for secret in (OLD, NEW):
        assert secret not in said
        assert hashlib.sha256(secret.encode()).hexdigest() not in said
    assert "1 token(s) from" in said


def test_an_invalid_tokens_file_keeps_every_file_running_and_names_its_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, files = reloader(tmp_path)
    ctx = reload.ctx
    kept = (ctx.grid, ctx.playbooks, ctx.router, ctx.tokens, reload.response.engines)
    # A good playbook edit and a good grid edit, with a typo in a role: none is taken.
    flood = files["playbooks"] / "flash-flood.yaml"
    flood.write_text(flood.read_text().replace("department: water-authority", "department: x"))
    files["grid"].write_text(GRID.replace("name: Top,", "name: Summit,"))
    files["tokens"].write_text(
        tokens_text(("desk", "coordinator", OLD), ("desk-2", "operater", NEW))
    )
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    assert (ctx.grid, ctx.playbooks, ctx.router, ctx.tokens, reload.response.engines) == kept
    assert reload.ingest.grid is kept[0] and reload.response.grid is kept[0]
    assert ctx.tokens.authenticate(f"Bearer {OLD}") is not None
    assert ctx.tokens.authenticate(f"Bearer {NEW}") is None
    assert ok(registry) == 0
    [line] = errors(caplog)
    assert line == (
        "citybrain: configuration reload failed, the running playbooks, routing, grid and "
        f"tokens are kept: CITYBRAIN_API_TOKENS_FILE {files['tokens']}:3: tokens entry 2: "
        "role is 'operater', expected one of operator, coordinator, gateway (did you mean "
        "'operator'?); `citybrain playbooks check` lists every error"
    )


def test_an_invalid_grid_keeps_every_file_running_and_counts_the_other_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, registry, files = reloader(tmp_path)
    ctx = reload.ctx
    grid, tokens = ctx.grid, ctx.tokens
    files["grid"].write_text(
        GRID.replace("parent: s-hill, name: Top", "parent: s-hil, name: Top").replace(
            "kind: pm25, unit: ug/m3", "kind: pm25, unit: mg/m3"
        )
    )
    files["tokens"].write_text(tokens_text(("desk-2", "operator", NEW)))  # valid, not taken
    with caplog.at_level(logging.ERROR, logger="streams.reload"):
        assert reload.reload() is False
    assert ctx.grid is grid and ctx.tokens is tokens and ok(registry) == 0
    [line] = errors(caplog)
    assert (
        f"tokens are kept: {files['grid']}:10: cell 'c-top': parent 's-hil' is not a cell "
        "(did you mean 's-hill'?) (and 1 more); "
    ) in line, line


def test_a_new_grid_is_in_force_in_every_stage_at_once(tmp_path: Path) -> None:
    reload, registry, files = reloader(tmp_path)
    ctx, ingest, response = reload.ctx, reload.ingest, reload.response
    old = ctx.grid
    # c-top and its sensor removed; c-ford added with a sensor of a new kind.
    edited = (
        GRID.replace("  - {id: c-top,", "  #")
        .replace("  - {id: air-1,", "  #")
        .replace(
            "sensors:\n",
            "  - {id: c-ford, level: community, parent: s-hill, name: Ford, unit: ford post}\n"
            "kinds:\n  - {id: salinity, unit: psu, min: 0, max: 50}\n"
            "sensors:\n  - {id: salt-1, kind: salinity, unit: psu, cell: c-ford}\n",
        )
    )
    files["grid"].write_text(edited)
    path_top = ctx.cell_path("c-top")
    ctx.metrics.cell_runs_open.labels(*path_top).set(1)  # a run there, counted before
    assert reload.reload() is True
    grid = ctx.grid
    assert grid is not old and "c-ford" in grid.cells and "c-top" not in grid.cells
    assert ingest.grid is grid and ingest.validator.grid is grid and response.grid is grid
    assert all(engine.grid is grid for engine in response.engines.values())
    assert "salt-1" in ingest.admission._registered and "air-1" not in ingest.admission._registered
    assert ingest.corroboration.areas.area("salt-1") == "c-ford"
    assert "salinity" in ctx.label_kinds and ctx.label_kind("salinity") == "salinity"
    assert ctx.cell_path("c-ford") == ("d-east", "s-hill", "c-ford")
    # The gone cell's gauge is removed (nothing would set it again); the new one's made.
    labels = dict(zip(("district", "street", "community"), path_top, strict=True))
    assert registry.get_sample_value("citybrain_cell_runs_open", labels) is None
    ford = {"district": "d-east", "street": "s-hill", "community": "c-ford", "kind": "salinity"}
    assert registry.get_sample_value("citybrain_cell_alerts_total", ford) == 0
    # Unchanged on the next reload: the grid in force, and what is built on it, stay.
    admission = ingest.admission
    assert reload.reload() is True
    assert ctx.grid is grid and ingest.admission is admission


def test_department_labels_are_recomputed_not_only_grown(tmp_path: Path) -> None:
    reload, _registry, files = reloader(tmp_path)
    ctx = reload.ctx
    flood = files["playbooks"] / "flash-flood.yaml"
    text = flood.read_text()
    flood.write_text(text.replace("department: water-authority", "department: flood-desk"))
    assert reload.reload() is True
    assert ctx.label_department("flood-desk") == "flood-desk"
    flood.write_text(text)
    assert reload.reload() is True
    assert "flood-desk" not in ctx.label_departments
    assert ctx.label_department("flood-desk") == "other"


def test_an_open_run_in_a_cell_the_grid_drops_goes_on_and_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reload, _registry, files = reloader(tmp_path)
    ctx = reload.ctx
    engine = PlaybookEngine(load_playbooks(files["playbooks"])["flash-flood"], ctx.grid)
    run_id = 'root.2/{}:{street="s-hill"}.1'
    alert = {"alert_id": "a-1", "kind": "water_level", "grid_cell": "c-top", "labels": {}}
    run, _ = engine.new_run(run_id, alert, 100.0)
    group: dict[str, Any] = {"generation": 1, "run": run.to_dict(), "commands": []}
    ctx.groups.data[run_key(run_id)] = group
    files["grid"].write_text(
        GRID.replace("  - {id: c-top,", "  #").replace("  - {id: air-1,", "  #")
    )
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    said = [r.getMessage() for r in caplog.records if "open run" in r.getMessage()]
    assert said == [
        "citybrain: configuration reload: 1 open run(s) of this worker are in grid cells no "
        f"longer in the grid: {run_id} (cell 'c-top'); they go on, their notifications and "
        "escalations to the city's unit (docs/playbooks.md, Runs of an edited library)"
    ]
    assert "1 open run(s) of this worker" in str(
        reload_record(reload._read(), True, reload._changes)
    )
    # It goes on: its units are now the city's.
    assert reload.response.engines["flash-flood"].unit(run, "street") == "city command centre"


def test_a_batch_begun_before_a_grid_reload_ends_under_the_grid_it_was_admitted_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload may land at any await of a readings batch: one that dropped the cell of
    an alert the batch had detected made its counts fail (KeyError: the batch failed as
    a whole, which stops the worker) and its alert's labels (GridError). The batch is
    labelled and counted by the grid it was admitted under."""
    import asyncio
    from types import SimpleNamespace

    from streams.detection import AlertEvent, BatchResult

    reload, registry, files = reloader(tmp_path)
    ctx, ingest = reload.ctx, reload.ingest
    admitted_under = ctx.grid
    alert = AlertEvent(
        "a-1", "firing", "air-1", "pm25", "c-top", "major", 0.99, 700.0, 1.7e9, None, 1.7e9
    )
    incoming = SimpleNamespace(sensor_ids=["air-1"])
    monkeypatch.setattr(ingest.admission, "admit", lambda *a, **k: (incoming, []))
    result = BatchResult(alerts=[alert], states={"air-1": {}})
    monkeypatch.setattr(ingest.detection, "process", lambda *a: result)
    for name in ("get_many", "stage_many"):
        monkeypatch.setattr(ctx.sensor_state, name, lambda keys: [None for _ in keys])

    async def set_many(states: object) -> None:
        return None

    monkeypatch.setattr(ctx.sensor_state, "set_many", set_many)
    sent: list[dict[str, Any]] = []

    async def send(result: BatchResult, alert_doc: Any) -> None:
        # The SIGHUP's swap lands while the batch awaits Kafka here.
        files["grid"].write_text(
            GRID.replace("  - {id: c-top,", "  #").replace("  - {id: air-1,", "  #")
        )
        assert reload.reload() is True and "c-top" not in ctx.grid.cells
        sent.extend(alert_doc(a) for a in result.alerts)

    monkeypatch.setattr(ingest.corroboration, "send", send)
    message = SimpleNamespace(value=b"{}", partition=0, offset=0, timestamp=1.7e9)
    asyncio.run(ingest.on_readings([message]))  # type: ignore[list-item]
    assert admitted_under is not ctx.grid
    [doc] = sent
    assert doc["labels"]["street"] == "s-hill" and doc["labels"]["grid_cell"] == "c-top"
    labels = {"district": "d-east", "street": "s-hill", "community": "c-top", "kind": "pm25"}
    assert registry.get_sample_value("citybrain_cell_alerts_total", labels) == 1


def test_a_reload_that_leaves_no_desk_token_says_the_api_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As the start says it: every operator API request now gets 401.
    reload, _registry, files = reloader(tmp_path)
    files["tokens"].write_text(tokens_text(("gw", "gateway", NEW)))
    with caplog.at_level(logging.WARNING, logger="streams.reload"):
        assert reload.reload() is True
    assert reload.ctx.tokens.authenticate(f"Bearer {OLD}") is None
    said = [r.getMessage() for r in caplog.records]
    assert (
        f"citybrain: configuration reload: CITYBRAIN_API_TOKENS_FILE {files['tokens']} has no "
        "operator or coordinator token, so the operator API refuses every request"
    ) in said, said
