"""Pod status from the node's record of each container (pure functions).

The phase and the conditions follow the kubelet's rules:

- Pending while init containers have not all completed, or while a container has never started;
- Running while a container runs or is waiting to be restarted;
- Succeeded when every container terminated with exit code 0 and none will restart;
- Failed when every container terminated, one of them not with 0, and none will restart.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .podenv import HOST_IP

Json = dict[str, Any]

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})
OUR_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Terminated:
    exit_code: int
    reason: str
    finished_at: datetime.datetime
    started_at: datetime.datetime | None = None
    message: str = ""
    signal: int | None = None
    container_id: str = ""

    def to_json(self) -> Json:
        state: Json = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "finishedAt": rfc3339(self.finished_at),
        }
        if self.started_at is not None:
            state["startedAt"] = rfc3339(self.started_at)
        if self.message:
            state["message"] = self.message
        if self.signal is not None:
            state["signal"] = self.signal
        if self.container_id:
            state["containerID"] = self.container_id
        return {"terminated": state}


@dataclass
class ContainerRecord:
    """What the node knows about one container. Exactly one of waiting/running/terminated holds:
    running when `running_since` is set, terminated when `terminated` is set, waiting otherwise."""

    name: str
    image: str
    restart_count: int = 0
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    running_since: datetime.datetime | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    container_id: str = ""
    ready: bool = False

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def never_started(self) -> bool:
        return not self.running and self.terminated is None and self.last_terminated is None

    def state_json(self) -> Json:
        if self.running_since is not None:
            return {"running": {"startedAt": rfc3339(self.running_since)}}
        if self.terminated is not None:
            return self.terminated.to_json()
        waiting: Json = {"reason": self.waiting_reason}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}


def container_status(record: ContainerRecord) -> Json:
    status: Json = {
        "name": record.name,
        "image": record.image,
        "imageID": record.image,
        "ready": record.ready,
        "restartCount": record.restart_count,
        "started": record.running,
        "state": record.state_json(),
        "lastState": record.last_terminated.to_json() if record.last_terminated else {},
    }
    if record.container_id:
        status["containerID"] = record.container_id
    return status


def pod_phase(
    restart_policy: str, initialized: bool, init_failed: bool, containers: Sequence[ContainerRecord]
) -> str:
    """The kubelet's phase rules; `init_failed` means an init container failed and will not be retried."""
    if init_failed:
        return FAILED
    if not initialized:
        return PENDING
    waiting = running = stopped = succeeded = 0
    for record in containers:
        if record.running:
            running += 1
        elif record.terminated is not None:
            stopped += 1
            succeeded += record.terminated.exit_code == 0
        elif record.last_terminated is not None:
            stopped += 1  # waiting to restart
        else:
            waiting += 1
    if waiting:
        return PENDING
    if running:
        return RUNNING
    if restart_policy == "Always":
        return RUNNING
    if stopped == succeeded:
        return SUCCEEDED
    if restart_policy == "Never":
        return FAILED
    return RUNNING


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Json:
    condition: Json = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def _names(records: Iterable[ContainerRecord]) -> str:
    return "[" + " ".join(record.name for record in records) + "]"


def pod_conditions(
    *,
    phase: str,
    sandbox_ready: bool,
    initialized: bool,
    init_containers: Sequence[ContainerRecord],
    containers: Sequence[ContainerRecord],
    readiness_gates: Sequence[str] = (),
    existing: Sequence[Json] = (),
    moment: datetime.datetime | None = None,
) -> list[Json]:
    """Our five conditions, then any condition someone else set (DisruptionTarget, readiness gates);
    `lastTransitionTime` carries over from `existing` while a condition's status does not change."""
    moment = moment or now()
    terminal = phase in TERMINAL_PHASES
    incomplete = [r for r in init_containers if r.terminated is None or r.terminated.exit_code != 0]
    unready = [r for r in containers if not r.ready]
    containers_ready = not unready and not terminal
    completed = terminal and phase == SUCCEEDED
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_message = "" if completed else f"containers with unready status: {_names(unready)}"
    existing_by_type = {str(c.get("type")): c for c in existing}
    gates_ok = all(existing_by_type.get(gate, {}).get("status") == "True" for gate in readiness_gates)
    ready = _condition("Ready", containers_ready and gates_ok, ready_reason, ready_message)
    if containers_ready and not gates_ok:
        missing = [g for g in readiness_gates if existing_by_type.get(g, {}).get("status") != "True"]
        ready.update(
            reason="ReadinessGatesNotReady",
            message=f"corresponding condition of pod readiness gate {missing[0]!r} is not True",
        )
    ours = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal),
        _condition(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            f"containers with incomplete status: {_names(incomplete)}",
        ),
        ready,
        _condition("ContainersReady", containers_ready, ready_reason, ready_message),
        _condition("PodScheduled", True),
    ]
    for condition in ours:
        previous = existing_by_type.get(condition["type"])
        if previous and previous.get("status") == condition["status"] and previous.get("lastTransitionTime"):
            condition["lastTransitionTime"] = previous["lastTransitionTime"]
        else:
            condition["lastTransitionTime"] = rfc3339(moment)
        condition["lastProbeTime"] = None
    foreign = [c for c in existing if c.get("type") not in OUR_CONDITIONS]
    return ours + foreign


def pod_status(
    *,
    phase: str,
    conditions: list[Json],
    init_containers: Sequence[ContainerRecord],
    containers: Sequence[ContainerRecord],
    start_time: datetime.datetime,
    reason: str = "",
    message: str = "",
) -> Json:
    """The whole status the node owns; None values remove a field in a JSON merge patch."""
    return {
        "phase": phase,
        "reason": reason or None,
        "message": message or None,
        "conditions": conditions,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": rfc3339(start_time),
        "initContainerStatuses": [container_status(r) for r in init_containers] or None,
        "containerStatuses": [container_status(r) for r in containers],
    }
