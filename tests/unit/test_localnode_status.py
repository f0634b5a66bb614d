"""The local node's pod status: phase rules, conditions and container statuses."""

from __future__ import annotations

import datetime

import pytest
from headwater_localcluster.podstatus import (
    ContainerRecord,
    Terminated,
    container_status,
    pod_conditions,
    pod_phase,
    pod_status,
    rfc3339,
)

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=7)


def running(name: str = "c") -> ContainerRecord:
    return ContainerRecord(name, "img", running_since=T0, ready=True)


def exited(code: int, name: str = "c") -> ContainerRecord:
    return ContainerRecord(
        name, "img", terminated=Terminated(code, "Completed" if code == 0 else "Error", T1, T0)
    )


def restarting(name: str = "c") -> ContainerRecord:
    return ContainerRecord(
        name,
        "img",
        restart_count=1,
        waiting_reason="CrashLoopBackOff",
        last_terminated=Terminated(1, "Error", T1, T0),
    )


def waiting(name: str = "c") -> ContainerRecord:
    return ContainerRecord(name, "img")


@pytest.mark.parametrize(
    ("policy", "records", "phase"),
    [
        ("Always", [waiting()], "Pending"),
        ("Always", [running(), waiting("d")], "Pending"),
        ("Always", [running()], "Running"),
        ("Always", [exited(0)], "Running"),
        ("Always", [restarting()], "Running"),
        ("OnFailure", [exited(0)], "Succeeded"),
        ("OnFailure", [restarting()], "Running"),
        ("OnFailure", [exited(0), running("d")], "Running"),
        ("Never", [exited(0), exited(0, "d")], "Succeeded"),
        ("Never", [exited(0), exited(2, "d")], "Failed"),
        ("Never", [exited(1), running("d")], "Running"),
    ],
)
def test_pod_phase(policy: str, records: list[ContainerRecord], phase: str) -> None:
    assert pod_phase(policy, True, False, records) == phase


def test_pod_phase_before_and_after_init() -> None:
    assert pod_phase("Never", False, False, [running()]) == "Pending"
    assert pod_phase("Never", False, True, [waiting()]) == "Failed"


def test_container_status_states() -> None:
    assert container_status(waiting())["state"] == {"waiting": {"reason": "ContainerCreating"}}
    live = container_status(running())
    assert live["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    assert live["started"] is True
    assert live["ready"] is True
    assert live["image"] == live["imageID"] == "img"
    record = exited(3)
    record.terminated = Terminated(
        3, "Error", T1, T0, message="bad", signal=None, container_id="localnode://x"
    )
    done = container_status(record)
    assert done["state"] == {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "2026-01-02T03:04:05Z",
            "finishedAt": "2026-01-02T03:04:12Z",
            "message": "bad",
            "containerID": "localnode://x",
        }
    }
    assert done["lastState"] == {}
    again = container_status(restarting())
    assert again["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert again["lastState"]["terminated"]["exitCode"] == 1
    assert again["restartCount"] == 1


def test_conditions_running_and_ready() -> None:
    conditions = pod_conditions(
        phase="Running",
        sandbox_ready=True,
        initialized=True,
        init_containers=[],
        containers=[running()],
        moment=T1,
    )
    by_type = {c["type"]: c for c in conditions}
    assert [c["type"] for c in conditions] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert all(c["status"] == "True" for c in conditions)
    assert by_type["Ready"]["lastTransitionTime"] == rfc3339(T1)


def test_conditions_report_what_is_missing() -> None:
    init = [exited(1, "setup")]
    conditions = pod_conditions(
        phase="Pending",
        sandbox_ready=True,
        initialized=False,
        init_containers=init,
        containers=[waiting("a"), waiting("b")],
        moment=T1,
    )
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Initialized"]["reason"] == "ContainersNotInitialized"
    assert by_type["Initialized"]["message"] == "containers with incomplete status: [setup]"
    assert by_type["Ready"]["message"] == "containers with unready status: [a b]"
    assert by_type["ContainersReady"]["status"] == "False"


def test_conditions_keep_transition_times_and_foreign_conditions() -> None:
    existing = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {"type": "Initialized", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
    ]
    conditions = pod_conditions(
        phase="Running",
        sandbox_ready=True,
        initialized=True,
        init_containers=[],
        containers=[running()],
        existing=existing,
        moment=T1,
    )
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert by_type["Initialized"]["lastTransitionTime"] == rfc3339(T1)
    assert by_type["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"


def test_readiness_gates() -> None:
    common = {
        "phase": "Running",
        "sandbox_ready": True,
        "initialized": True,
        "init_containers": [],
        "containers": [running()],
        "readiness_gates": ["example.com/ready"],
    }
    gated = {c["type"]: c for c in pod_conditions(**common)}  # type: ignore[arg-type]
    assert gated["Ready"]["status"] == "False"
    assert gated["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert gated["ContainersReady"]["status"] == "True"
    existing = [{"type": "example.com/ready", "status": "True"}]
    opened = {c["type"]: c for c in pod_conditions(**common, existing=existing)}  # type: ignore[arg-type]
    assert opened["Ready"]["status"] == "True"


def test_completed_pod_is_not_ready() -> None:
    conditions = pod_conditions(
        phase="Succeeded", sandbox_ready=True, initialized=True, init_containers=[], containers=[exited(0)]
    )
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Ready"]["reason"] == "PodCompleted"
    assert by_type["PodReadyToStartContainers"]["status"] == "False"


def test_pod_status_document() -> None:
    status = pod_status(
        phase="Failed",
        conditions=[],
        init_containers=[],
        containers=[exited(1)],
        start_time=T0,
        reason="DeadlineExceeded",
        message="too slow",
    )
    assert status["phase"] == "Failed"
    assert status["reason"] == "DeadlineExceeded"
    assert status["podIP"] == status["hostIP"] == "127.0.0.1"
    assert status["startTime"] == "2026-01-02T03:04:05Z"
    assert status["initContainerStatuses"] is None  # removed by the merge patch
    assert (
        pod_status(phase="Running", conditions=[], init_containers=[], containers=[], start_time=T0)["reason"]
        is None
    )
