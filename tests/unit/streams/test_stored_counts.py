"""Counts stored in the tables are bounded at read-back (t128): the tables' encoders
(orjson, msgpack) write integers of 64 bits at most, so a count read back at 2**64 - 1
and counted once more could not be written again, and every alert, command or report
that met it failed. Past JSON's exact integers (``MAX_COUNT``) each is refused as
``bad_shape``, naming the field; ``MAX_COUNT`` itself is read and written again."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from playbooks.engine import MAX_COUNT, run_problem
from streams.context import read_generation, read_group
from streams.detection import read_state
from streams.errors import BAD_SHAPE
from streams.tables import UnreadableEntryError

U64 = 2**64 - 1
ROUTE = {"id": "r", "playbook": "p", "group_interval": 300.0, "repeat_interval": 3600.0}
RUN = {
    "run_id": "grp-a.1",
    "alert_id": "al-1",
    "playbook": "p",
    "grid_cell": "c",
    "kind": "k",
    "department": "d",
}


def group(**fields: object) -> dict[str, object]:
    return {"generation": 1, "run": None, "seen": [], "commands": [], "route": ROUTE, **fields}


def test_the_largest_count_is_read_and_written_again_once_more() -> None:
    at_most = group(generation=MAX_COUNT, run={**RUN, "seq": MAX_COUNT})
    assert read_group(orjson.dumps(at_most)) == at_most
    assert orjson.dumps(MAX_COUNT + 1)  # what the next run or step writes
    assert read_generation(orjson.dumps({"floor": MAX_COUNT})) == {"floor": MAX_COUNT}


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (group(generation=U64), "field 'generation' is 18446744073709551615, expected a whole"),
        (group(generation=MAX_COUNT + 1), "field 'generation' is 9007199254740992"),
        (group(run={**RUN, "seq": U64}), "run: field 'seq' is 18446744073709551615"),
        (group(run={**RUN, "escalations": U64}), "run: field 'escalations' is 1844"),
        (group(run={**RUN, "reopened": MAX_COUNT + 1}), "run: field 'reopened' is 9007"),
    ],
)
def test_a_group_with_a_count_past_the_bound_is_refused_naming_it(
    entry: dict[str, object], said: str
) -> None:
    with pytest.raises(UnreadableEntryError, match=said) as refused:
        read_group(orjson.dumps(entry))
    assert refused.value.reason == BAD_SHAPE


def test_a_generation_floor_past_the_bound_is_refused() -> None:
    with pytest.raises(UnreadableEntryError, match="'floor' is 18446744073709551615"):
        read_generation(orjson.dumps({"floor": U64}))


def test_a_run_document_says_the_bound() -> None:
    assert run_problem({**RUN, "seq": U64}) == (
        "field 'seq' is 18446744073709551615, expected a whole number from 0 to 2**53 - 1"
    )
    assert run_problem({**RUN, "seq": MAX_COUNT}) is None


def test_a_sensor_episode_quiet_past_the_bound_is_refused() -> None:
    episode = {
        "alert_id": "al-x",
        "started_at": 1.7e9,
        "last_anomalous_at": 1.7e9,
        "peak_score": 0.9,
        "peak_value": 8.0,
        "quiet": U64,
    }
    state = {"detector": {}, "last_ts": 1.7e9, "last_offset": 3, "episode": episode}
    with pytest.raises(UnreadableEntryError, match="'quiet' is 18446744073709551615"):
        read_state(b"\x01" + msgspec.msgpack.encode(state))
