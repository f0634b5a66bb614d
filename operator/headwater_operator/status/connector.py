"""A Connector's status from its CronJob and Jobs (or its Deployment) and their pods.

The figures (`rowsLoaded`, `rowsRejected`, `batches`, `qualityScore`, `cursor`, `lastBatchId`) are the
connector's totals as the worker read them from the database at the end of its last finished run, taken
from that run's termination message: they survive the CronJob's trimmed Job history. A watcher never
finishes: it writes the figures into the status itself after each load, so the watching case derives none
of them (the status is merge-patched with only the keys derived here, leaving the worker's in place).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headwater_worker.ingest.config import IngestSummary

from ..api.connector import ConnectorSpec
from ..builders import connector as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..jobs import blocked_outcome, cronjob_runs, failure

INGEST_FAILED = "the ingest run failed"


def figures(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status figures a run reported; anything malformed is dropped rather than written."""
    if not result:
        return {}
    try:
        summary = IngestSummary.model_validate(result)
    except ValueError:
        return {}
    return summary.status_figures()


def scheduled(
    owner: Owner,
    spec: ConnectorSpec,
    cronjob: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    name = build.workload_name(owner)
    extra: dict[str, Any] = {"workloadName": name}
    if cronjob is None:
        return Outcome.reconciling("Pending", "Creating", f"creating CronJob {name}"), extra
    cron_status = cronjob.get("status") or {}
    observations = cronjob_runs(name, jobs, pods)
    starts = [o.started_at for o in observations if o.started_at]
    last_run = max(
        [*starts, *([cron_status["lastScheduleTime"]] if cron_status.get("lastScheduleTime") else [])],
        default=None,
    )
    if last_run:
        extra["lastRunTime"] = last_run
    successes = [o.finished_at for o in observations if o.state == "succeeded" and o.finished_at]
    if cron_status.get("lastSuccessfulTime"):
        successes.append(cron_status["lastSuccessfulTime"])
    if successes:
        extra["lastSuccessfulTime"] = max(successes)
    # Figures: from the newest run that reported them (a failed run reports what it had done, too).
    for observation in observations:
        found = figures(observation.result)
        if observation.state in ("succeeded", "failed") and found:
            extra.update(found)
            break
    schedule = spec.schedule or spec.interval
    if spec.suspend:
        return Outcome.ready("Scheduled", "Suspended", f"CronJob {name} is suspended"), extra
    latest = observations[0] if observations else None
    if latest is not None and latest.blocked is not None:
        return blocked_outcome(latest.blocked.reason, latest.blocked.message), extra
    if latest is not None and latest.state == "failed":
        reason, message = failure(latest, INGEST_FAILED)
        return Outcome.stalled("Failed", reason, f"last run {latest.name} failed: {message}"), extra
    if latest is not None and latest.state in ("running", "pending"):
        if latest.failed_attempts:
            reason, message = failure(latest, INGEST_FAILED)
            return Outcome.reconciling(
                "Running",
                "Retrying",
                f"run {latest.name}, attempt {latest.failed_attempts + 1}: {reason}: {message}",
            ), extra
        return Outcome.ready("Running", "Running", f"run {latest.name} is in progress"), extra
    return Outcome.ready(
        "Scheduled", "Scheduled", f"runs on schedule {build.schedule_of(spec)!r} ({schedule})"
    ), extra


def watching(
    owner: Owner, spec: ConnectorSpec, deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]
) -> tuple[Outcome, dict[str, Any]]:
    name = build.workload_name(owner)
    extra: dict[str, Any] = {"workloadName": name}
    if deployment is None:
        return Outcome.reconciling("Pending", "Creating", f"creating Deployment {name}"), extra
    if spec.suspend:
        return Outcome.ready("Scheduled", "Suspended", f"Deployment {name} is scaled to zero"), extra
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses") or ():
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in (
                "CreateContainerConfigError",
                "CreateContainerError",
                "CrashLoopBackOff",
            ):
                message = str(waiting.get("message") or waiting["reason"])
                last = ((container.get("lastState") or {}).get("terminated") or {}).get("message")
                if last:
                    message = f"{message}: {last[-512:]}"
                return blocked_outcome(str(waiting["reason"]), message), extra
    status = deployment.get("status") or {}
    if int(status.get("availableReplicas") or 0) >= 1:
        return Outcome.ready("Watching", "Watching", f"Deployment {name} is watching for files"), extra
    return Outcome.reconciling("Pending", "Starting", f"Deployment {name} is starting"), extra


def derive(
    owner: Owner,
    spec: ConnectorSpec,
    workload: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    """Outcome and extra status fields for a Connector, given the children found in its namespace."""
    try:
        build.schedule_of(spec) if not build.watches(spec) else None
    except build.InvalidSpecError as invalid:
        return Outcome.stalled("Stalled", invalid.reason, invalid.message), {}
    if build.watches(spec):
        return watching(owner, spec, workload, pods)
    return scheduled(owner, spec, workload, jobs, pods)
