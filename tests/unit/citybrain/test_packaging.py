"""Package metadata in the form current setuptools reads without deprecation warnings."""

from __future__ import annotations

import re
import tomllib

from streams.settings import REPO_ROOT


def test_licence_is_an_spdx_string_with_its_file() -> None:
    # The PEP 639 form: a `license = {text = ...}` table made setuptools >= 77 print its
    # deprecation warning four times on every `make install` (issue 15, item 6).
    doc = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = doc["project"]
    assert project["license"] == "Apache-2.0"
    for pattern in project["license-files"]:
        assert list(REPO_ROOT.glob(pattern)), pattern
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text()[:200]
    # Older setuptools reject the string form, so the build must ask for a new enough one.
    (setuptools,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert match and int(match.group(1)) >= 77
    assert not any("License ::" in c for c in project.get("classifiers", []))


def test_the_package_root_is_declared_so_editable_installs_are_quiet() -> None:
    # With a flat layout and no package-dir, setuptools' editable install takes its
    # meta-path-finder strategy and emits "BuildBackendWarning: Editable installation.
    # Please be careful with folders in your working directory..." on every `make install`
    # (issue 15, new-user trial). Declaring the root as "." makes the layout explicit and
    # the install a plain .pth entry for the checkout, which is what the repo runs from.
    doc = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert doc["tool"]["setuptools"]["package-dir"] == {"": "."}
    included = doc["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in included:  # every package sits directly in the root it names
        assert (REPO_ROOT / pattern.rstrip("*") / "__init__.py").is_file(), pattern


def test_kafka_python_checks_crcs_with_the_compiled_crc32c() -> None:
    # Without the `crc32c` package kafka-python verifies each fetched batch's CRC-32C in
    # pure Python, about 0.56 s a MiB on this machine (8 s of a demo's `report`).
    from crc32c import crc32c
    from kafka.record import util

    assert util._crc32c is crc32c
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # RFC 3720's check value
