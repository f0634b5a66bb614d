"""What a Job and its pods say about a run: pure functions over the objects the API returns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .conditions import Outcome

# Waiting reasons after which a pod will not start until someone changes something.
BLOCKING_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
    }
)

JobState = Literal["pending", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class Blocked:
    reason: str
    message: str


@dataclass(frozen=True)
class JobObservation:
    name: str
    state: JobState
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    blocked: Blocked | None = None
    failed_attempts: int = 0


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or ():
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def termination_result(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON a worker left in its termination message, from the newest terminated container state."""
    for status in pod.get("status", {}).get("containerStatuses") or ():
        for state_key in ("state", "lastState"):
            terminated = (status.get(state_key) or {}).get("terminated")
            if terminated and terminated.get("message"):
                try:
                    parsed = json.loads(terminated["message"])
                except ValueError:
                    return {"error": {"reason": "WorkerFailed", "message": terminated["message"][-512:]}}
                return parsed if isinstance(parsed, dict) else None
    return None


def blocked_reason(pod: Mapping[str, Any]) -> Blocked | None:
    for status in pod.get("status", {}).get("containerStatuses") or ():
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BLOCKING_REASONS:
            return Blocked(str(waiting["reason"]), str(waiting.get("message") or ""))
    return None


def _newest(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp") or ""), reverse=True)


def observe_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobObservation:
    """Summarise one Job run; `pods` are the Job's pods (any order)."""
    status = job.get("status") or {}
    name = str(job.get("metadata", {}).get("name"))
    newest = _newest(pods)
    failed_attempts = int(status.get("failed") or 0)
    started_at = status.get("startTime")
    complete = _condition(job, "Complete")
    if complete:
        succeeded_pods = [p for p in newest if p.get("status", {}).get("phase") == "Succeeded"]
        result = termination_result(succeeded_pods[0]) if succeeded_pods else None
        return JobObservation(
            name,
            "succeeded",
            started_at,
            status.get("completionTime") or complete.get("lastTransitionTime"),
            result,
            failed_attempts=failed_attempts,
        )
    failed = _condition(job, "Failed")
    if failed:
        failed_pods = [p for p in newest if p.get("status", {}).get("phase") == "Failed"]
        result = termination_result(failed_pods[0]) if failed_pods else None
        return JobObservation(
            name,
            "failed",
            started_at,
            failed.get("lastTransitionTime"),
            result,
            failure_reason=str(failed.get("reason") or "JobFailed"),
            failure_message=str(failed.get("message") or ""),
            failed_attempts=failed_attempts,
        )
    blocked = next((b for b in map(blocked_reason, newest) if b), None)
    last_failure = next(
        (termination_result(p) for p in newest if p.get("status", {}).get("phase") == "Failed"), None
    )
    running = any(p.get("status", {}).get("phase") == "Running" for p in newest)
    return JobObservation(
        name,
        "running" if running else "pending",
        started_at,
        result=last_failure,
        blocked=blocked,
        failed_attempts=failed_attempts,
    )


# -- what every kind's status derivation asks of its Jobs ------------------------------------------------

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def name_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def created_at(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("creationTimestamp") or "")


def owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    return any(
        ref.get("kind") == kind and ref.get("name") == name
        for ref in obj.get("metadata", {}).get("ownerReferences") or ()
    )


def pods_of(job_name: str, pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [p for p in pods if (p.get("metadata", {}).get("labels") or {}).get(JOB_NAME_LABEL) == job_name]


def cronjob_runs(
    cronjob: str, jobs: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> list[JobObservation]:
    """The runs of a CronJob, newest first."""
    runs = sorted((j for j in jobs if owned_by(j, "CronJob", cronjob)), key=created_at, reverse=True)
    return [observe_job(job, pods_of(name_of(job), pods)) for job in runs]


def failure(observation: JobObservation, fallback: str) -> tuple[str, str]:
    """Reason and message of a failed run: the worker's own words when it left any."""
    error = (observation.result or {}).get("error") or {}
    reason = str(error.get("reason") or observation.failure_reason or "JobFailed")
    message = str(error.get("message") or observation.failure_message or fallback)
    return reason, message


def blocked_outcome(reason: str, message: str) -> Outcome:
    """A pod that cannot start: a missing Secret is the usual cause and gets its own reason."""
    return Outcome.stalled("Stalled", "SecretNotFound" if "secret" in message.lower() else reason, message)
