"""Trial 18: a silence's matchers may be given as Alertmanager's API v2 takes them,
``{"name", "value", "isRegex", "isEqual"}`` objects (the value as it is, no escapes;
``isEqual`` true when left out), besides matcher text; before, such a body was a 400
("expected a list of strings"). Stored as matcher text, read back to the same matchers.
A missing, unknown or mistyped key is a 400 naming the entry and the key. Compared with a
real Alertmanager in tests/integration/test_alertmanager_server.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks.routing import Matcher, Silence
from streams.context import Context
from tests.services import OPERATOR_TOKEN
from tests.unit.streams.test_api_delivery import ask, context


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    ctx = context(tmp_path)

    async def acknowledged(sends: Any, timeout: float = 5.0) -> bool:
        return True

    monkeypatch.setattr(ctx, "acknowledged", acknowledged)
    return ctx


def post(ctx: Context, matchers: list[Any]) -> tuple[int, dict[str, Any]]:
    body = {"matchers": matchers, "duration": "1h", "reason": "trial 18"}
    status, doc, _ = ask(ctx, "POST", "/api/v1/silences", OPERATOR_TOKEN, body)
    return status, doc


def test_alertmanager_matcher_objects_are_taken_and_stored_as_matcher_text(ctx: Context) -> None:
    status, doc = post(
        ctx,
        [
            {"name": "category", "value": 'Noise "loud" \\ party\n', "isRegex": False},
            {"name": "kind", "value": "pm25|no2", "isRegex": True, "isEqual": True},
            {"name": "severity", "value": "minor", "isRegex": False, "isEqual": False},
            {"name": "district", "value": "d9.*", "isRegex": True, "isEqual": False},
            'source="citizen"',
        ],
    )
    assert status == 201, doc
    stored = ctx.silences.get(doc["silence"]["id"].encode())
    assert stored["matchers"] == [
        'category="Noise \\"loud\\" \\\\ party\\n"',
        'kind=~"pm25|no2"',
        'severity!="minor"',
        'district!~"d9.*"',
        'source="citizen"',
    ]
    assert Silence.from_dict(stored).matchers == (
        Matcher.build("category", "=", 'Noise "loud" \\ party\n'),
        Matcher.build("kind", "=~", "pm25|no2"),
        Matcher.build("severity", "!=", "minor"),
        Matcher.build("district", "!~", "d9.*"),
        Matcher.build("source", "=", "citizen"),
    )


@pytest.mark.parametrize(
    ("matcher", "said"),
    [
        ({"name": "kind", "value": "pm25"}, "matchers[0]: 'isRegex' is missing (required)"),
        ({"value": "pm25", "isRegex": False}, "matchers[0]: 'name' is missing (required)"),
        (
            {"name": "kind", "value": "pm25", "isregex": False},
            "matchers[0]: unknown key 'isregex', expected ['name', 'value', 'isRegex', "
            "'isEqual']: did you mean 'isRegex'?",
        ),
        (
            {"name": "kind", "value": 25, "isRegex": False},
            "matchers[0]: 'value' is 25, expected text",
        ),
        (
            {"name": "kind", "value": "pm25", "isRegex": "false"},
            "matchers[0]: 'isRegex' is 'false', expected true or false",
        ),
        ({"name": "kind", "value": "(", "isRegex": True}, "matchers[0]: bad regex (RE2 syntax)"),
        ({"name": "kidn", "value": "pm25", "isRegex": False}, "unknown label 'kidn'"),
        (7, "matchers[0] is 7, expected matcher text"),
        (
            {"name": "category", "value": ".*", "isRegex": True},
            "at least one matcher must not match the empty string",
        ),
    ],
)
def test_a_bad_matcher_object_is_a_400_naming_entry_and_key(
    ctx: Context, matcher: Any, said: str
) -> None:
    status, doc = post(ctx, [matcher])
    assert status == 400, doc
    assert said in doc["error"]
    assert dict(ctx.silences.data.items()) == {}
