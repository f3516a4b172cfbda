"""Helper brief t72, fault 3 on the real broker: a run action retried with the same
Idempotency-Key and body after it was applied was a 409 ("already acknowledged", or
"resolved, takes no action"); it now gets the first 202 answer again, and the same key
with another body is a 422 (draft-ietf-httpapi-idempotency-key-header)."""

from __future__ import annotations

import pytest

from tests.integration.test_response import one_spiked_run
from tests.services import OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration


def test_a_retry_of_an_applied_action_gets_its_first_answer(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        run_id = one_spiked_run(pipeline)

        for action, key, body, other in (
            ("ack", "ack-1", {"note": "on my way"}, {"note": "another note"}),
            ("resolve", "res-1", {"note": "fixed"}, {"note": "not fixed"}),
        ):
            headers = {"Idempotency-Key": key}
            path = f"/runs/{run_id}/{action}"
            first = pipeline.api("POST", path, OPERATOR_TOKEN, body, extra_headers=headers)
            assert first[0] == 202, first
            # Applied: the run shows it, so a retry without the stored answer was a 409.
            field = "acknowledged_at" if action == "ack" else "resolved_at"
            pipeline.api_until(
                f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b, f=field: bool(b["run"].get(f))
            )
            again = pipeline.api("POST", path, OPERATOR_TOKEN, body, extra_headers=headers)
            assert again == first
            reused = pipeline.api("POST", path, OPERATOR_TOKEN, other, extra_headers=headers)
            assert reused[0] == 422, reused
            assert f"Idempotency-Key '{key}' was used for a {action}" in reused[1]["error"]
        # Without a key a repeat is still answered by the run's state.
        plain = pipeline.api("POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "x"})
        assert plain[0] in (200, 409), plain
    finally:
        worker.stop()
