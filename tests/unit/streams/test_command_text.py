"""t119's sibling: the operator API refuses control characters in free text, but a
command written on the commands topic by hand (or by another tool) carried a NUL or an
ESC in its note, actor or comment into the run's history, the audit and the citizen's
closure message. The worker now dead-letters it ``bad_command`` naming the field; the
worker's own action results keep a remote answer in ``detail`` as it came."""

from __future__ import annotations

import pytest

from streams.response import EventError, command_fields

BASE = {"id": "c-1", "run_id": "g.1", "action": "resolve"}


@pytest.mark.parametrize("field", ["note", "by", "role", "comment"])
@pytest.mark.parametrize("bad", ["\x1b[31m", "\x00", "\x7f", "\x85"])
def test_a_control_character_in_a_commands_free_text_is_refused_naming_it(
    field: str, bad: str
) -> None:
    with pytest.raises(EventError) as err:
        command_fields({**BASE, field: f"fixed{bad}now"})
    said = str(err.value)
    assert err.value.code == "bad_command"
    assert field in said and f"U+{ord(bad[0]):04X}" in said and "character 6" in said, said


@pytest.mark.parametrize("text", ["line one\nline two", "col\tcol", "水管爆裂，已修复", ""])
def test_line_breaks_tabs_and_any_script_are_text(text: str) -> None:
    assert command_fields({**BASE, "note": text, "comment": text})["note"] == text


def test_an_action_results_detail_keeps_a_remote_answer_as_it_came() -> None:
    cmd = {
        **BASE,
        "action": "action_result",
        "ok": False,
        "detail": "HTTP 500: \x1b[1mboom\x1b[0m after 3 attempt(s)",
    }
    assert command_fields(cmd)["detail"] == cmd["detail"]
