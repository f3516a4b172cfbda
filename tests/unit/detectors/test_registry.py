"""The detector registry: names and thresholds without importing a detector, and every
name and public attribute resolving to the real thing on first use."""

import subprocess
import sys

import pytest

import detectors
from detectors.base import Detector
from detectors.registry import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, DETECTORS, default_threshold

HEAVY = ("numpy", "numba", "scipy", "pandas", "sklearn", "detectors.base", "detectors.tail")


def test_a_command_that_only_reads_settings_imports_no_detector() -> None:
    # Every citybrain command builds Settings, which checks CITYBRAIN_DETECTOR: before the
    # registry it imported every detector (0.6-0.9 s for `citybrain runs list`).
    probe = (
        "import sys\n"
        "import citybrain.cli.main\n"
        "from streams.settings import Settings\n"
        "Settings(detector='ensemble')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", list(DETECTORS))
def test_every_registered_name_builds_a_detector(name: str) -> None:
    assert name in DETECTORS
    assert isinstance(DETECTORS[name](), Detector)


def test_the_registry_is_ordered_default_first_and_refuses_unknown_names() -> None:
    assert next(iter(DETECTORS)) == DEFAULT_DETECTOR == "tail"
    assert len(DETECTORS) == len(list(DETECTORS)) == len(dict(DETECTORS.items()))
    assert "talil" not in DETECTORS
    with pytest.raises(KeyError):
        DETECTORS["talil"]


def test_thresholds_are_one_figure_wherever_read() -> None:
    from detectors import tail

    assert tail.DEFAULT_THRESHOLD == detectors.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
    assert default_threshold("robust_zscore") == 0.6
    assert default_threshold("tail") == DEFAULT_THRESHOLD


@pytest.mark.parametrize("name", detectors.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(detectors, name) is not None
    assert name in dir(detectors)


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'TailDetecter'"):
        detectors.TailDetecter  # noqa: B018


def test_a_factory_of_ones_own_registers_by_assignment() -> None:
    from detectors.robust_zscore import RobustZScore

    DETECTORS["mine"] = RobustZScore
    try:
        assert list(DETECTORS)[-1] == "mine"
        assert DETECTORS["mine"] is RobustZScore
    finally:
        del DETECTORS["mine"]
    assert "mine" not in DETECTORS


def test_the_docs_say_every_method_a_new_detector_must_define() -> None:
    """t200: docs/detectors.md named learn_one, score_one, get_state and set_state as the
    contract; Detector also requires get_params, and a newcomer's detector without it was
    "unexpected TypeError ... This is a bug" (exit 70). Its "Adding a detector" section
    names every abstract method of Detector, and the registry it says to edit."""
    import re
    from pathlib import Path

    from detectors.base import Detector

    root = Path(__file__).resolve().parents[3]
    docs = (root / "docs" / "detectors.md").read_text()
    section = re.search(r"## Adding a detector\n(.*?)\n## ", docs, re.S)
    assert section, "docs/detectors.md has no 'Adding a detector' section"
    for method in sorted(Detector.__abstractmethods__):
        assert f"`{method}`" in section.group(1), method
    assert (
        "`_FACTORIES`" in section.group(1)
        and "_FACTORIES" in (root / "detectors" / "registry.py").read_text()
    )
