import json
from typing import Any

from headwater_operator.jobs import observe_job, termination_result


def job(conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "status": {"conditions": conditions or [], **status}}


def pod(phase: str, created: str, message: str | None = None, waiting: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if message is not None:
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "message": message}}
    if waiting is not None:
        state = {"waiting": {"reason": waiting, "message": 'secret "db" not found'}}
    return {
        "metadata": {"creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "worker", "state": state}]},
    }


def test_succeeded_job_reads_the_newest_successful_pod() -> None:
    observed = observe_job(
        job([{"type": "Complete", "status": "True"}], completionTime="t2", startTime="t0", failed=1),
        [
            pod("Failed", "2026-01-01T00:00:00Z", json.dumps({"error": {"reason": "X"}})),
            pod("Succeeded", "2026-01-01T00:01:00Z", json.dumps({"tasks": [{"name": "a"}]})),
        ],
    )
    assert observed.state == "succeeded"
    assert observed.result == {"tasks": [{"name": "a"}]}
    assert observed.finished_at == "t2"
    assert observed.failed_attempts == 1


def test_failed_job_keeps_the_workers_reason() -> None:
    observed = observe_job(
        job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}]),
        [pod("Failed", "2026-01-01T00:00:00Z", json.dumps({"error": {"reason": "InvalidQuery"}}))],
    )
    assert observed.state == "failed"
    assert observed.failure_reason == "BackoffLimitExceeded"
    assert observed.result == {"error": {"reason": "InvalidQuery"}}


def test_pod_that_cannot_start_is_blocked() -> None:
    observed = observe_job(
        job(), [pod("Pending", "2026-01-01T00:00:00Z", waiting="CreateContainerConfigError")]
    )
    assert observed.state == "pending"
    assert observed.blocked is not None
    assert observed.blocked.reason == "CreateContainerConfigError"


def test_unreadable_termination_message_is_reported_not_raised() -> None:
    result = termination_result(pod("Failed", "t", "Traceback: boom"))
    assert result is not None
    assert result["error"]["reason"] == "WorkerFailed"
