"""Configuration from the field (t122): faults of a playbook or routing file that
``citybrain playbooks check`` and the worker's start let through or said wrongly. Each
case is read by both paths (``check_playbooks``/``routing_errors``, what the check
prints, and ``load_playbooks``/``load_routing``, what the worker loads), which must
refuse it with the same ``file:line: field: reason`` line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from playbooks.errors import PlaybookError
from playbooks.loader import (
    PLAYBOOK_DIR,
    check_playbooks,
    load_playbooks,
    load_routing,
    routing_errors,
)

PLAYBOOK = """playbook: probe
version: {version}
department: water-authority
steps:
  - {{id: notify-community, action: notify, level: community}}
  - {{id: wait-community, action: wait_ack, deadline: 5m}}
  - {{id: escalate-street, action: escalate, level: street}}
"""

ROUTING = "version: {version}\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"


def _library(tmp_path: Path, text: str) -> Path:
    """A copy of the library's playbooks with ``probe.yaml`` holding ``text``."""
    directory = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOK_DIR, directory)
    (directory / "probe.yaml").write_text(text, encoding="utf-8")
    return directory


def _playbook_refusal(tmp_path: Path, text: str) -> list[str]:
    """The check's errors, asserted to be the worker's refusal word for word."""
    directory = _library(tmp_path, text)
    _, _, errors = check_playbooks(directory)
    with pytest.raises(PlaybookError) as info:
        load_playbooks(directory)
    assert str(info.value).splitlines() == errors
    return errors


def _routing_refusal(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    _, errors = routing_errors(path, load_playbooks(PLAYBOOK_DIR))
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value).splitlines() == errors
    return errors


@pytest.mark.parametrize("written", ["true", "yes", "on", "True"])
def test_a_playbook_whose_version_is_a_boolean_is_refused(tmp_path: Path, written: str) -> None:
    # pydantic's Literal[1] took True (== 1 in Python), where the grid file refuses it.
    errors = _playbook_refusal(tmp_path, PLAYBOOK.format(version=written))
    path = tmp_path / "playbooks" / "probe.yaml"
    assert errors == [f"{path}:2: version: is true, expected 1"]


@pytest.mark.parametrize("written", ["true", "yes", "on"])
def test_a_routing_file_whose_version_is_a_boolean_is_refused(tmp_path: Path, written: str) -> None:
    errors = _routing_refusal(tmp_path, ROUTING.format(version=written))
    assert errors == [f"{tmp_path / 'routing.yaml'}:1: version: is true, expected 1"]


@pytest.mark.parametrize("written", ["2", "'1'", "[1]"])
def test_a_bad_version_is_one_error_not_also_missing(tmp_path: Path, written: str) -> None:
    # Before, a routing file's `version: 2` was also "version: missing: this key is
    # required", of the key written on that very line.
    errors = _routing_refusal(tmp_path, ROUTING.format(version=written))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{tmp_path / 'routing.yaml'}:1: version: is ")
    assert "missing" not in errors[0]


def test_a_routing_file_without_a_version_still_says_it_is_missing(tmp_path: Path) -> None:
    errors = _routing_refusal(tmp_path, ROUTING.format(version=1).replace("version: 1\n", ""))
    assert len(errors) == 1 and "version: missing: this key is required" in errors[0]


def test_version_one_is_read(tmp_path: Path) -> None:
    directory = _library(tmp_path, PLAYBOOK.format(version=1))
    assert load_playbooks(directory)["probe"].version == 1
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING.format(version=1))
    assert load_routing(path, load_playbooks(PLAYBOOK_DIR)).root.playbook == "sensor-anomaly"


NAMES = [
    ("''", "is '', expected non-empty text"),
    ("'  '", "is '  ', expected non-empty text"),
    ("'probe '", "is 'probe ', expected text without leading or trailing spaces"),
    ('"pr\\eobe"', "is 'pr\\x1bobe', which holds a control character (U+001B)"),
    ('"pr\\x85obe"', "is 'pr\\x85obe', which holds a control character (U+0085)"),
    (
        '"pr\\u200bobe"',
        "is 'pr\\u200bobe', which holds an invisible format character (U+200B, ZERO WIDTH SPACE) "
        "at character 3",
    ),
    # t186: line and paragraph separators passed (str.splitlines and YAML break there),
    # and a bidirectional control is named as one.
    ('"pr\\Lobe"', "is 'pr\\u2028obe', which holds a line separator (U+2028)"),
    ('"pr\\u2029obe"', "is 'pr\\u2029obe', which holds a paragraph separator (U+2029)"),
    (
        '"pr\\u202eobe"',
        "is 'pr\\u202eobe', which holds an invisible format character (U+202E, RIGHT-TO-LEFT "
        "OVERRIDE, a bidirectional control) at character 3",
    ),
]


@pytest.mark.parametrize(("written", "reason"), NAMES)
@pytest.mark.parametrize(
    ("field", "line", "original"),
    [
        ("playbook", 1, "playbook: probe"),
        ("department", 3, "department: water-authority"),
        ("steps.1.wait_ack.id", 6, "id: wait-community"),
    ],
)
def test_a_name_no_route_or_reader_can_tell_is_refused(
    tmp_path: Path, written: str, reason: str, field: str, line: int, original: str
) -> None:
    # Before t122 each was taken: a playbook named '' or 'probe ' passed the check, and
    # no route could name it; an ESC in a step id reached the audit, logs and runs show.
    key = original.split(":")[0]
    text = PLAYBOOK.format(version=1).replace(original, f"{key}: {written}")
    if key == "id":  # its transitions name it as written
        text = text.replace(
            "wait_ack, deadline: 5m", f"wait_ack, deadline: 5m, on_timeout: {written}"
        )
    errors = _playbook_refusal(tmp_path, text)
    path = tmp_path / "playbooks" / "probe.yaml"
    assert any(e.startswith(f"{path}:{line}: {field}: {reason}") for e in errors), errors


def test_a_unicode_name_is_read(tmp_path: Path) -> None:
    text = PLAYBOOK.format(version=1).replace("playbook: probe", "playbook: 洪水")
    text = text.replace("id: notify-community", "id: 通知社区")
    assert "洪水" in load_playbooks(_library(tmp_path, text))


UNREACHED = [
    # A step written after a resolve, named by no transition.
    (
        "  - {id: done, action: resolve, note: handled}\n  - {id: orphan, action: annotate, text: x}\n",
        "steps.4.id: step 'orphan' is never reached: no on_success, on_failure or on_timeout "
        "names it, and the step before it, 'done', resolves the run",
        9,
    ),
    # A transition that jumps over the step it meant to name.
    (
        "  - {id: ask, action: approval, role: coordinator, question: q, deadline: 5m, "
        "on_success: close, on_failure: close}\n"
        "  - {id: tell, action: annotate, text: rejected}\n"
        "  - {id: close, action: resolve}\n",
        "steps.4.id: step 'tell' is never reached: no on_success, on_failure or on_timeout "
        "names it, and the step before it, 'ask', goes on to 'close' only",
        9,
    ),
]


@pytest.mark.parametrize(("tail", "reason", "line"), UNREACHED)
def test_a_step_no_run_can_reach_is_refused(
    tmp_path: Path, tail: str, reason: str, line: int
) -> None:
    errors = _playbook_refusal(tmp_path, PLAYBOOK.format(version=1) + tail)
    path = tmp_path / "playbooks" / "probe.yaml"
    assert errors == [f"{path}:{line}: {reason}; name it in a transition, or remove it"]


REACHED = [
    # Only by its on_failure (rejected), on_timeout, or a wait_ack's timeout.
    "  - {id: ask, action: approval, role: coordinator, question: q, deadline: 5m, "
    "on_success: close, on_failure: tell}\n"
    "  - {id: tell, action: annotate, text: rejected}\n"
    "  - {id: close, action: resolve}\n",
    "  - {id: ask, action: approval, role: coordinator, question: q, deadline: 5m, "
    "on_success: close, on_timeout: tell}\n"
    "  - {id: tell, action: annotate, text: late}\n"
    "  - {id: close, action: resolve}\n",
    # After a resolve, named by a transition before it.
    "  - {id: hook, action: webhook, url: 'http://127.0.0.1:9/x', on_failure: fallback}\n"
    "  - {id: done, action: resolve}\n"
    "  - {id: fallback, action: annotate, text: failed}\n",
]


@pytest.mark.parametrize("tail", REACHED)
def test_a_step_reached_only_by_a_transition_or_a_timeout_is_read(
    tmp_path: Path, tail: str
) -> None:
    assert "probe" in load_playbooks(_library(tmp_path, PLAYBOOK.format(version=1) + tail))


def test_the_library_playbooks_have_no_unreached_step() -> None:
    from playbooks.schema import unreached_step_errors

    library = load_playbooks(PLAYBOOK_DIR)
    assert len(library) == 9
    for playbook in library.values():
        steps = [s.model_dump() for s in playbook.steps]
        ids = {s["id"]: i for i, s in enumerate(steps)}
        assert unreached_step_errors(steps, ids) == [], playbook.playbook


HINT = "expected an integer with units y, w, d, h, m, s, ms, largest first (1h30m)"


@pytest.mark.parametrize(
    ("original", "written", "field", "line", "reason"),
    [
        (
            "deadline: 5m",
            "300",
            "steps.1.wait_ack.deadline",
            6,
            f"duration is '300', {HINT}: a number needs its unit (300s)",
        ),
        (
            "deadline: 5m",
            "'300'",
            "steps.1.wait_ack.deadline",
            6,
            f"duration is '300', {HINT}: a number needs its unit (300s)",
        ),
        (
            "deadline: 5m",
            "0",
            "steps.1.wait_ack.deadline",
            6,
            "deadline cannot be zero (it is '0'): the step would not wait",
        ),
        (
            "department: water-authority",
            "department: w\nsla: 7200",
            "sla",
            4,
            f"duration is '7200', {HINT}: a number needs its unit (7200s)",
        ),
    ],
)
def test_a_playbook_duration_written_as_a_number_is_read_as_the_routing_file_reads_it(
    tmp_path: Path, original: str, written: str, field: str, line: int, reason: str
) -> None:
    # Before, `deadline: 300` said "is 300, expected text", where the routing file's
    # `group_interval: 300` said what a duration is (docs: a duration is read as
    # written, quoted or not, in both); neither said that 300 lacks its unit.
    new = f"deadline: {written}" if original.startswith("deadline") else written
    errors = _playbook_refusal(tmp_path, PLAYBOOK.format(version=1).replace(original, new))
    path = tmp_path / "playbooks" / "probe.yaml"
    assert errors == [f"{path}:{line}: {field}: {reason}"]


def test_a_routing_duration_without_its_unit_says_so(tmp_path: Path) -> None:
    errors = _routing_refusal(tmp_path, ROUTING.format(version=1) + "  group_interval: 300\n")
    assert errors == [
        f"{tmp_path / 'routing.yaml'}:5: route.group_interval: duration is '300', {HINT}: a "
        "number needs its unit (300s)"
    ]


HOW = "(YAML reads an unquoted yes, no, on, off, true or false as {}: quote the text, as 'on' or 'NO')"


@pytest.mark.parametrize(
    ("original", "written", "field", "line", "read"),
    [
        ("id: wait-community", "id: on", "steps.1.wait_ack.id", 6, "true"),
        ("department: water-authority", "department: NO", "department", 3, "false"),
        ("level: street", "level: off", "steps.2.escalate.level", 7, "false"),
    ],
)
def test_a_yaml_1_1_boolean_where_text_goes_says_how_it_came_to_be_one(
    tmp_path: Path, original: str, written: str, field: str, line: int, read: str
) -> None:
    # Before: "steps.1.wait_ack.id: is true, expected text", of a file that wrote `on`.
    errors = _playbook_refusal(tmp_path, PLAYBOOK.format(version=1).replace(original, written))
    path = tmp_path / "playbooks" / "probe.yaml"
    assert f"{path}:{line}: {field}: is {read}, expected text {HOW.format(read)}" in errors


def test_a_grid_id_read_as_a_boolean_says_how_it_came_to_be_one(tmp_path: Path) -> None:
    from playbooks.loader import load_grid

    path = tmp_path / "grid.yaml"
    path.write_text("version: 1\ncells:\n  - {id: NO, level: city, name: Norway, unit: u}\n")
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value) == (
        f"{path}:3: cells entry 1: id is false, expected text {HOW.format('false')}"
    )
