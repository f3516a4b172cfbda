"""Rehearsals: run a playbook against a scripted alert, acknowledgements and timeouts,
and compare the steps it takes with the expected ones (orquesta's tests-as-data idea).

A rehearsal is data (YAML in tests/rehearsals/)::

    playbook: flash-flood
    alert: {alert_id: al-1, kind: water_level, grid_cell: c-bridge, labels: {...}}
    script:                      # seconds after the alert
      - {at: 0, do: start}
      - {at: 300, do: timeout}
      - {at: 400, do: ack, by: river street office}
      - {at: 900, do: approve, by: duty coordinator, role: coordinator}
      - {at: 1000, do: resolve, by: duty coordinator, note: water gone}
    expect:
      actions: [dispatch, ..., resolved]   # every command but transitions, in order
      final: resolved
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playbooks.engine import Command, PlaybookEngine, Run
from playbooks.grid import Grid
from playbooks.schema import Playbook


@dataclass
class Outcome:
    run: Run
    commands: list[Command] = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        return [c.action for c in self.commands if c.action != "transition"]

    @property
    def statuses(self) -> list[str]:
        return [c.data["to"] for c in self.commands if c.action == "transition"]


def rehearse(playbook: Playbook, grid: Grid, rehearsal: dict[str, Any]) -> Outcome:
    engine = PlaybookEngine(playbook, grid)
    alert = rehearsal["alert"]
    outcome: Outcome | None = None
    for event in rehearsal["script"]:
        now, do = float(event["at"]), event["do"]
        if do == "start":
            run, cmds = engine.new_run(f"run-{alert['alert_id']}", alert, now)
            outcome = Outcome(run, cmds)
            continue
        assert outcome is not None, "a rehearsal script begins with start"
        run = outcome.run
        if do == "timeout":
            run, cmds = engine.timeout(run, now)
        elif do == "ack":
            run, cmds = engine.acknowledge(run, event["by"], now)
        elif do in ("approve", "reject"):
            run, cmds = engine.approve(
                run, event["by"], event["role"], now, approved=do == "approve"
            )
        elif do in ("webhook_ok", "webhook_failed"):
            run, cmds = engine.action_result(
                run, run.pending_action or "", do == "webhook_ok", event.get("detail", ""), now
            )
        elif do == "escalate":
            run, cmds = engine.escalate(run, event["by"], now)
        elif do == "resolve":
            run, cmds = engine.resolve(run, event["by"], event.get("note", ""), now)
        elif do == "cancel":
            run, cmds = engine.cancel(run, event["by"], event.get("reason", ""), now)
        elif do == "sla":
            run, cmds = engine.check_sla(run, now)
        else:
            raise ValueError(f"rehearsal step do={do!r} is not known")
        outcome.run = run
        outcome.commands.extend(cmds)
    assert outcome is not None
    return outcome
