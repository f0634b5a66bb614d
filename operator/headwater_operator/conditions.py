"""kstatus conditions (Ready, Reconciling, Stalled) derived from one outcome of a reconcile.

`kubectl wait --for=condition=Ready`, Argo CD and Flux read health from these three conditions and from
`observedGeneration`; keeping them consistent in one pure function means every kind reports alike.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Phase = str
ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled")


@dataclass(frozen=True)
class Condition:
    """A condition of a kind's own beside the three of kstatus (a ComputeTask's `CallbackDelivered`)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Outcome:
    """Where a resource stands after a reconcile: exactly one of ready, reconciling or stalled is true."""

    phase: Phase
    state: Literal["ready", "reconciling", "stalled"]
    reason: str
    message: str = ""
    extra_conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        # A status message and its Event are one line, whatever the worker or a library wrote.
        object.__setattr__(self, "message", " ".join(self.message.split()))

    def with_condition(self, condition: Condition) -> Outcome:
        return replace(self, extra_conditions=(*self.extra_conditions, condition))

    @classmethod
    def ready(cls, phase: Phase, reason: str, message: str = "") -> Outcome:
        return cls(phase, "ready", reason, message)

    @classmethod
    def reconciling(cls, phase: Phase, reason: str, message: str = "") -> Outcome:
        return cls(phase, "reconciling", reason, message)

    @classmethod
    def stalled(cls, phase: Phase, reason: str, message: str = "") -> Outcome:
        return cls(phase, "stalled", reason, message)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    outcome: Outcome,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The three conditions for `outcome`, keeping lastTransitionTime where a status did not change."""
    before = {str(c.get("type")): c for c in previous or ()}
    wanted: dict[str, ConditionStatus] = {
        "Ready": "True" if outcome.state == "ready" else "False",
        "Reconciling": "True" if outcome.state == "reconciling" else "False",
        "Stalled": "True" if outcome.state == "stalled" else "False",
    }
    subjects = [
        Condition(
            kind,
            wanted[kind],
            outcome.reason if wanted[kind] == "True" or kind == "Ready" else _idle_reason(kind),
            outcome.message if wanted[kind] == "True" or kind == "Ready" else "",
        )
        for kind in CONDITION_TYPES
    ]
    conditions = []
    for condition in (*subjects, *outcome.extra_conditions):
        old = before.get(condition.type)
        changed = old is None or old.get("status") != condition.status
        conditions.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": " ".join(condition.message.split()),
                "observedGeneration": generation,
                "lastTransitionTime": now
                if changed or old is None
                else str(old.get("lastTransitionTime") or now),
            }
        )
    return conditions


def _idle_reason(kind: str) -> str:
    return {"Reconciling": "Idle", "Stalled": "NotStalled", "Ready": "NotReady"}[kind]


def status_patch(
    previous_status: Mapping[str, Any] | None,
    outcome: Outcome,
    generation: int,
    extra: Mapping[str, Any] | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """A merge patch for `.status`: phase, conditions, observedGeneration, reason/message, and `extra`."""
    previous_status = previous_status or {}
    patch: dict[str, Any] = {
        "phase": outcome.phase,
        "observedGeneration": generation,
        "reason": outcome.reason,
        "message": outcome.message,
        "conditions": build_conditions(
            previous_status.get("conditions"), outcome, generation, now or now_rfc3339()
        ),
    }
    patch.update(extra or {})
    return patch


def transitioned(previous_status: Mapping[str, Any] | None, outcome: Outcome) -> bool:
    """Whether this outcome is news: a different phase or reason than the status already says."""
    previous_status = previous_status or {}
    return previous_status.get("phase") != outcome.phase or previous_status.get("reason") != outcome.reason
