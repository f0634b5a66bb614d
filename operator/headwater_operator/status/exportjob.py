"""An ExportJob's status from its Job or CronJob and their pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..api.exportjob import ExportJobSpec, ExportTaskStatus
from ..builders import exportjob as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..jobs import blocked_outcome, cronjob_runs, failure, name_of, observe_job, pods_of

EXPORT_FAILED = "the export failed"


def task_statuses(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Per-task figures the worker reported; anything malformed is dropped rather than written."""
    tasks = []
    for raw in (result or {}).get("tasks") or ():
        try:
            tasks.append(ExportTaskStatus.model_validate(raw))
        except ValueError:
            continue
    return [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tasks]


def one_off(
    owner: Owner, jobs: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> tuple[Outcome, dict[str, Any]]:
    name = build.job_name(owner)
    job = next((j for j in jobs if name_of(j) == name), None)
    if job is None:
        return Outcome.reconciling("Pending", "Creating", f"creating Job {name}"), {}
    observation = observe_job(job, pods_of(name, pods))
    extra: dict[str, Any] = {"jobName": name}
    if observation.state == "succeeded":
        extra["tasks"] = task_statuses(observation.result)
        if observation.finished_at:
            extra["lastSuccessfulTime"] = observation.finished_at
        return Outcome.ready("Succeeded", "Exported", f"Job {name} exported every task"), extra
    if observation.state == "failed":
        extra["tasks"] = task_statuses(observation.result)
        reason, message = failure(observation, EXPORT_FAILED)
        return Outcome.stalled("Failed", reason, message), extra
    if observation.blocked is not None:
        return blocked_outcome(observation.blocked.reason, observation.blocked.message), extra
    if (job.get("spec") or {}).get("suspend") and not observation.started_at:
        return Outcome.ready("Pending", "Suspended", "the export is suspended"), extra
    if observation.failed_attempts:
        reason, message = failure(observation, EXPORT_FAILED)
        return Outcome.reconciling(
            "Running",
            "Retrying",
            f"attempt {observation.failed_attempts + 1}: last one failed: {reason}: {message}",
        ), extra
    phase = "Running" if observation.state == "running" else "Pending"
    return Outcome.reconciling(phase, "Exporting", f"Job {name} is {observation.state}"), extra


def scheduled(
    owner: Owner,
    spec: ExportJobSpec,
    cronjob: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    name = build.cronjob_name(owner)
    if cronjob is None:
        return Outcome.reconciling("Pending", "Creating", f"creating CronJob {name}"), {}
    cron_status = cronjob.get("status") or {}
    extra: dict[str, Any] = {
        key: cron_status[key] for key in ("lastScheduleTime", "lastSuccessfulTime") if cron_status.get(key)
    }
    observations = cronjob_runs(name, jobs, pods)
    last_success = next((o for o in observations if o.state == "succeeded"), None)
    if last_success is not None:
        extra["tasks"] = task_statuses(last_success.result)
    if observations:
        extra["jobName"] = observations[0].name
    if spec.suspend:
        return Outcome.ready("Scheduled", "Suspended", f"CronJob {name} is suspended"), extra
    latest = observations[0] if observations else None
    if latest is not None and latest.blocked is not None:
        return blocked_outcome(latest.blocked.reason, latest.blocked.message), extra
    if latest is not None and latest.state == "failed":
        reason, message = failure(latest, EXPORT_FAILED)
        return Outcome.stalled("Scheduled", reason, f"last run {latest.name} failed: {message}"), extra
    if latest is not None and latest.state in ("running", "pending"):
        return Outcome.ready("Running", "Running", f"run {latest.name} is in progress"), extra
    return Outcome.ready("Scheduled", "Scheduled", f"runs on schedule {spec.schedule!r}"), extra


def derive(
    owner: Owner,
    spec: ExportJobSpec,
    cronjob: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    """Outcome and extra status fields for an ExportJob, given the children found in its namespace."""
    if spec.schedule is not None:
        return scheduled(owner, spec, cronjob, jobs, pods)
    return one_off(owner, jobs, pods)
