"""Playbook definitions (schema version 1), strict: unknown keys are errors.

A playbook is an ordered list of steps. This first version knows the steps of the
minimal response loop: ``notify`` the unit responsible at a grid level, ``wait_ack``
for an acknowledgement until a deadline, ``escalate`` to the next grid level.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from playbooks.grid import LEVELS

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"5m"``, ``"1.5h"`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"duration is {text!r}, expected a number with ms, s, m or h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotifyStep(_Strict):
    id: str
    action: Literal["notify"]
    level: str = "community"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"level is {value!r}, expected one of {list(LEVELS)}")
        return value


class WaitAckStep(_Strict):
    id: str
    action: Literal["wait_ack"]
    deadline: str

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def deadline_seconds(self) -> float:
        return parse_duration(self.deadline)


class EscalateStep(_Strict):
    id: str
    action: Literal["escalate"]
    # None: the next level up from where the run is now.
    level: str | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None and value not in LEVELS:
            raise ValueError(f"level is {value!r}, expected one of {list(LEVELS)}")
        return value


Step = Annotated[NotifyStep | WaitAckStep | EscalateStep, Field(discriminator="action")]


class Playbook(_Strict):
    playbook: str
    version: Literal[1]
    description: str = ""
    sla: str = "1h"
    steps: list[Step]

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[Step]) -> list[Step]:
        if not steps:
            raise ValueError("a playbook needs at least one step")
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return steps
