"""The department classifier's fitted model kept in the worker's cache directory: the fit
took 2.6 s of every worker start, a restart after a crash included."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from streams.departments import TRAINING_FILE, DepartmentClassifier

TEXTS = ["water main burst on the street", "fire in the kitchen", "loud music at night"]


def test_a_fitted_model_is_kept_and_read_back_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = DepartmentClassifier.from_training_file().predict(TEXTS)
    first = DepartmentClassifier.from_training_file(cache_dir=tmp_path)
    [kept] = tmp_path.glob("departments-*.pickle")
    assert not list(tmp_path.glob("*.part"))

    def no_fit(*args: object) -> DepartmentClassifier:
        raise AssertionError("fitted again though the cache has it")

    monkeypatch.setattr(DepartmentClassifier, "_fitted", classmethod(no_fit))
    again = DepartmentClassifier.from_training_file(cache_dir=tmp_path)
    assert again.predict(TEXTS) == first.predict(TEXTS) == fresh
    assert list(tmp_path.glob("departments-*.pickle")) == [kept]


def test_a_damaged_cache_is_fitted_again_and_replaced(tmp_path: Path) -> None:
    DepartmentClassifier.from_training_file(cache_dir=tmp_path)
    [kept] = tmp_path.glob("departments-*.pickle")
    for damage in (b"", b"not a pickle", kept.read_bytes()[:100], b"\x80\x05N."):
        kept.write_bytes(damage)
        model = DepartmentClassifier.from_training_file(cache_dir=tmp_path)
        assert model.predict(TEXTS[:1]) == DepartmentClassifier.from_training_file().predict(
            TEXTS[:1]
        )
        assert kept.read_bytes() != damage  # written again, whole


def test_another_training_file_is_another_model(tmp_path: Path) -> None:
    DepartmentClassifier.from_training_file(cache_dir=tmp_path)
    other = tmp_path / "other.csv"
    rows = gzip.decompress(TRAINING_FILE.read_bytes()).decode().splitlines()
    other.write_text("\n".join(rows[:400]) + "\n")
    DepartmentClassifier.from_training_file(other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("departments-*.pickle"))) == 2


def test_a_cache_that_cannot_be_written_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    model = DepartmentClassifier.from_training_file(cache_dir=blocked / "models")
    assert model.predict(TEXTS[:1])
    assert "the fitted model cannot be kept in" in caplog.text
