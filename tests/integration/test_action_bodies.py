"""Helper t102 on the real broker: a run action's body is checked before the run's state
is. `{"note": 5}` on an acknowledged run was a 200 "already acknowledged", and an
escalation with it on a resolved run a 409, the bad field unsaid; and
`citybrain_api_requests_total` left those answers (and most reads) uncounted."""

from __future__ import annotations

import pytest

from tests.integration.test_response import one_spiked_run
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, Pipeline

pytestmark = pytest.mark.integration


def requests_counted(pipeline: Pipeline, action: str, outcome: str) -> float:
    """``citybrain_api_requests_total{action, outcome}`` on the pipeline's worker."""
    import urllib.request

    url = f"http://127.0.0.1:{pipeline.settings.worker_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    wanted = f'citybrain_api_requests_total{{action="{action}",outcome="{outcome}"}} '
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)
    )


def test_a_bad_note_is_named_whatever_the_runs_state(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        run_id = one_spiked_run(pipeline)
        path = f"/runs/{run_id}"
        assert pipeline.api("POST", f"{path}/ack", OPERATOR_TOKEN, {"note": "on my way"})[0] == 202
        pipeline.api_until(path, OPERATOR_TOKEN, lambda s, b: bool(b["run"].get("acknowledged_at")))

        status, body = pipeline.api("POST", f"{path}/ack", OPERATOR_TOKEN, {"note": 5})
        assert (status, body) == (400, {"error": 'field "note" is 5, expected text'})
        # The repeat with a good body is still the 200 that says who did it.
        status, body = pipeline.api("POST", f"{path}/ack", OPERATOR_TOKEN, {"note": "again"})
        assert (status, body["already"]["note"]) == (200, "on my way")

        assert pipeline.api("POST", f"{path}/resolve", OPERATOR_TOKEN, {"note": "fixed"})[0] == 202
        pipeline.api_until(path, OPERATOR_TOKEN, lambda s, b: b["run"]["status"] == "resolved")
        status, body = pipeline.api(
            "POST", f"{path}/escalate", COORDINATOR_TOKEN, {"note": "a", "reason": "b"}
        )
        assert status == 400 and body["error"].startswith('fields "note" and "reason"'), body
        status, body = pipeline.api("POST", f"{path}/escalate", COORDINATOR_TOKEN, {"note": "up"})
        assert (status, body) == (
            409,
            {
                "error": f"run {run_id} is resolved: cannot escalate (it is closed; a new "
                "alert of its group starts a new run)"
            },
        )

        # Each of those answers counted once, with its status; a 403 and a 401 too.
        assert pipeline.api("POST", f"{path}/escalate", OPERATOR_TOKEN, {})[0] == 403
        assert pipeline.api("GET", path, "not-a-token")[0] == 401
        assert requests_counted(pipeline, "ack", "202") == 1
        assert requests_counted(pipeline, "ack", "400") == 1
        assert requests_counted(pipeline, "ack", "200") == 1
        assert requests_counted(pipeline, "escalate", "400") == 1
        assert requests_counted(pipeline, "escalate", "409") == 1
        assert requests_counted(pipeline, "escalate", "403") == 1
        assert requests_counted(pipeline, "read", "401") == 1
        assert requests_counted(pipeline, "read", "200") >= 3  # the runs list and the run
    finally:
        worker.stop()
