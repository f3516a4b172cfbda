"""A parsed grid kept in CITYBRAIN_HOME/grids by the file's content hash (t103): every
worker start parsed and checked the grid again (0.3 s of the committed grid)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import playbooks.loader as loader
from playbooks.errors import GridError
from playbooks.loader import load_grid
from streams.settings import REPO_ROOT

GRID = REPO_ROOT / "datasets" / "grid.yaml"


def parses(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The documents ``load_grid`` parsed and checked from now on."""
    seen: list[object] = []
    check = loader._grid

    def counted(doc: object) -> object:
        seen.append(doc)
        return check(doc)

    monkeypatch.setattr(loader, "_grid", counted)
    return seen


def test_a_cached_grid_is_the_grid_and_read_back_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = load_grid(GRID)
    parsed = parses(monkeypatch)
    first = load_grid(GRID, cache_dir=tmp_path / "grids")
    kept = list((tmp_path / "grids").iterdir())
    assert len(parsed) == 1 and len(kept) == 1 and kept[0].name.startswith("grid-")
    again = load_grid(GRID, cache_dir=tmp_path / "grids")
    assert len(parsed) == 1  # read back, not parsed
    assert first == again == fresh
    assert again.sensors.keys() == fresh.sensors.keys() and again.cells == fresh.cells
    # A lookup that builds its index at first use works on the read-back grid.
    assert again.near_sensor("usgs-01650800-water_levl") == fresh.near_sensor(
        "usgs-01650800-water_levl"
    )


def test_an_edited_grid_is_parsed_again_and_kept_beside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.read_text())
    cache = tmp_path / "grids"
    before = load_grid(grid, cache_dir=cache)
    grid.write_text(GRID.read_text().replace("lat: 38.986222", "lat: 38.986223", 1))
    parsed = parses(monkeypatch)
    after = load_grid(grid, cache_dir=cache)
    assert len(parsed) == 1 and after != before
    assert after == load_grid(grid)
    assert len(list(cache.glob("grid-*.pickle"))) == 2


def test_a_damaged_cache_is_parsed_again_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "grids"
    load_grid(GRID, cache_dir=cache)
    (kept,) = cache.glob("grid-*.pickle")
    kept.write_bytes(b"not a pickle")
    parsed = parses(monkeypatch)
    with caplog.at_level(logging.INFO, logger="playbooks.loader"):
        grid = load_grid(GRID, cache_dir=cache)
    assert len(parsed) == 1 and grid == load_grid(GRID)
    assert "not read" in caplog.text
    assert load_grid(GRID, cache_dir=cache) == grid and len(parsed) == 2  # replaced: read


def test_a_cache_that_cannot_be_written_is_said_and_the_grid_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory would be
    with caplog.at_level(logging.WARNING, logger="playbooks.loader"):
        grid = load_grid(GRID, cache_dir=blocked / "grids")
    assert grid == load_grid(GRID)
    assert "cannot be kept in" in caplog.text and str(blocked / "grids") in caplog.text
    assert list(tmp_path.iterdir()) == [blocked]  # no part file left


def test_a_grid_with_faults_is_refused_as_without_a_cache_and_not_kept(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("version: 1\ncells: []\n")
    with pytest.raises(GridError) as plain:
        load_grid(grid)
    for _ in range(2):  # said again each time, never read from a cache
        with pytest.raises(GridError) as cached:
            load_grid(grid, cache_dir=tmp_path / "grids")
        assert str(cached.value) == str(plain.value)
    assert not (tmp_path / "grids").exists() or not list((tmp_path / "grids").iterdir())


def test_a_missing_grid_file_is_the_same_error_with_a_cache(tmp_path: Path) -> None:
    with pytest.raises(Exception) as plain:
        load_grid(tmp_path / "absent.yaml")
    with pytest.raises(Exception) as cached:
        load_grid(tmp_path / "absent.yaml", cache_dir=tmp_path / "grids")
    assert type(cached.value) is type(plain.value) and str(cached.value) == str(plain.value)
    assert "cannot read" in str(cached.value)
