"""A ComputeTask's status from its task Job, its callback Job and their pods.

While the task runs, `status.status` and `status.stages` are the worker's (it writes each protocol state
itself), so they are left alone here except for an `image` task, whose container cannot write them. Once
the task Job ends, its result (the worker's `ComputeResult`, or an `image` service's TaskUpdate) settles
everything: the protocol status, `dataOut`, the error message, the stages and the callback's fate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater_worker.compute.config import ComputeResult
from headwater_worker.compute.protocol import TaskUpdate
from headwater_worker.compute.urls import shown_url
from pydantic import ValidationError

from ..api.computetask import ComputeTaskSpec, ComputeTaskStatus
from ..builders import computetask as build
from ..builders.common import Owner
from ..conditions import Condition, Outcome
from ..jobs import JobObservation, blocked_outcome, failure, name_of, observe_job, pods_of

CALLBACK_CONDITION = "CallbackDelivered"


def parse_status(raw: Mapping[str, Any] | None) -> ComputeTaskStatus | None:
    """The status as its model; None when there is none yet, or it no longer parses."""
    if not raw:
        return None
    try:
        return ComputeTaskStatus.model_validate(dict(raw))
    except ValidationError:
        return None


@dataclass(frozen=True)
class Ending:
    """How the task ended, from its Job's result."""

    update: TaskUpdate
    reason: str
    stages: list[dict[str, Any]] | None = None
    callback: dict[str, Any] | None = None


def _deadline_message(spec: ComputeTaskSpec) -> str:
    return f"the task did not finish within its activeDeadlineSeconds of {spec.active_deadline_seconds} s"


def ending(spec: ComputeTaskSpec, observation: JobObservation) -> Ending | None:
    """The task's end as its Job tells it; None while it has not ended."""
    if observation.state not in ("succeeded", "failed"):
        return None
    raw = observation.result or {}
    try:
        result = ComputeResult.model_validate(raw)
    except ValidationError:
        result = None
    if result is not None:
        stages = [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in result.stages]
        reason = result.error.reason if result.error else _reason(result.update)
        return Ending(result.update, reason, stages, result.callback)
    if spec.service.image is not None and "error" not in raw:
        try:
            update = TaskUpdate.model_validate(raw)
        except ValidationError as invalid:
            message = f"the service's termination message is not a TaskUpdate: {invalid.errors()[0]['msg']}"
            return Ending(TaskUpdate(status="error", error_message=message), "InvalidTaskUpdate")
        if observation.state == "failed" and update.status != "error":
            update = TaskUpdate(
                status="error", error_message=f"the service failed: {failure(observation, '')[1]}"
            )
        return Ending(update, _reason(update))
    if observation.state == "succeeded":
        message = "the task's pod ended without reporting a result"
        return Ending(TaskUpdate(status="error", error_message=message), "NoResult")
    reason, message = failure(observation, "the task's pod failed")
    if reason == "DeadlineExceeded":
        message = _deadline_message(spec)
    return Ending(TaskUpdate(status="error", error_message=message), reason)


def _reason(update: TaskUpdate) -> str:
    return "Finished" if update.status == "finished" else "ServiceFailed"


def callback_status(
    owner: Owner,
    spec: ComputeTaskSpec,
    end: Ending,
    current: ComputeTaskStatus | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """Where the callback stands: as the task's pod delivered it, else as the callback Job does."""
    if spec.callback_url is None:
        return None
    if end.callback is not None:
        return {**end.callback, "url": shown_url(str(spec.callback_url))}
    name = build.callback_job_name(owner)
    known = current.callback if current is not None else None
    status: dict[str, Any] = {"url": shown_url(str(spec.callback_url)), "jobName": name}
    if known is not None and known.delivered is not None:
        return known.model_dump(mode="json", by_alias=True, exclude_none=True)
    job = next((j for j in jobs if name_of(j) == name), None)
    if job is None:
        return status
    observation = observe_job(job, pods_of(name, pods))
    try:
        delivered = ComputeResult.model_validate(observation.result or {}).callback
    except ValidationError:
        delivered = None
    if delivered is not None:
        return {**delivered, "url": status["url"], "jobName": name}
    if observation.state == "failed":
        return {**status, "delivered": False, "lastError": failure(observation, "the callback Job failed")[1]}
    return status


def _duration(started: str | None, finished: str | None) -> float | None:
    if not started or not finished:
        return None
    begin = datetime.fromisoformat(started.replace("Z", "+00:00"))
    end = datetime.fromisoformat(finished.replace("Z", "+00:00"))
    return max(0.0, (end - begin).total_seconds())


def ended_outcome(end: Ending, callback: dict[str, Any] | None) -> Outcome:
    update = end.update
    if update.status == "finished":
        outcome = Outcome.ready("Succeeded", "Finished", f"the task finished: {len(update.data_out)} outputs")
    else:
        outcome = Outcome.stalled("Failed", end.reason, update.error_message or "the task failed")
    if callback is None:
        return outcome
    if callback.get("delivered") is None:
        return Outcome.reconciling(
            outcome.phase,
            "DeliveringCallback",
            f"task {update.status}; delivering its update to {callback['url']}",
        )
    if callback["delivered"]:
        return outcome.with_condition(
            Condition(CALLBACK_CONDITION, "True", "Delivered", f"delivered to {callback['url']}")
        )
    attempts = callback.get("attempts")
    problem = (
        f"the update could not be delivered to {callback['url']}"
        f"{f' after {attempts} attempts' if attempts else ''}: {callback.get('lastError') or 'no answer'}"
    )
    failed = Condition(CALLBACK_CONDITION, "False", "CallbackFailed", problem)
    if update.status == "finished":
        return Outcome.ready(
            "Succeeded", "CallbackFailed", f"the task finished, but {problem}"
        ).with_condition(failed)
    return outcome.with_condition(failed)


def derive(
    owner: Owner,
    spec: ComputeTaskSpec,
    raw_status: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    """Outcome and extra status fields for a ComputeTask, given the children found in its namespace."""
    current = parse_status(raw_status)
    name = build.job_name(owner)
    image = spec.service.image is not None
    extra: dict[str, Any] = {"taskId": build.task_id(owner, spec), "jobName": name}
    job = next((j for j in jobs if name_of(j) == name), None)
    if job is None:
        if current is None or current.status is None:
            extra["status"] = "pending"
        return Outcome.reconciling("Pending", "Creating", f"creating Job {name}"), extra
    observation = observe_job(job, pods_of(name, pods))
    if observation.started_at:
        extra["startedAt"] = observation.started_at
    end = ending(spec, observation)
    if end is None:
        if observation.blocked is not None:
            return blocked_outcome(observation.blocked.reason, observation.blocked.message), extra
        if image:
            extra["status"] = "processing" if observation.state == "running" else "pending"
        phase = "Running" if observation.state == "running" else "Pending"
        if observation.failed_attempts:
            _, message = failure(observation, "the task's pod failed")
            return Outcome.reconciling(
                phase,
                "Retrying",
                f"attempt {observation.failed_attempts + 1}: the last one failed: {message}",
            ), extra
        # Not the protocol status, which `status.status` shows: a message that changed with every stage the
        # worker writes would make the operator write the status again each time.
        return Outcome.reconciling(phase, "Processing", f"Job {name} is {observation.state}"), extra
    finished_at = observation.finished_at
    callback = callback_status(owner, spec, end, current, jobs, pods)
    extra.update(
        {
            "status": end.update.status,
            "dataOut": list(end.update.data_out),
            "errorMessage": end.update.error_message,
            "finishedAt": finished_at,
            "durationSeconds": _duration(observation.started_at, finished_at),
        }
    )
    if end.stages is not None:
        extra["stages"] = end.stages
    if callback is not None:
        extra["callback"] = callback
    return ended_outcome(end, callback), {key: value for key, value in extra.items() if value is not None}
