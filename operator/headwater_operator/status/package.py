"""A Package's status from its setup, processor and finalise Jobs and their pods.

Each stage's Job leaves a `StageReport` (the worker's model) as its termination message: a processor's
phase (`Succeeded` or `Skipped`), message and result URIs, finalise's `datapackageUri`, or the error that
failed it. While a processor runs, its own Job writes its progress into `status.reports`; that field is the
Jobs', never written here, and is folded into the processor's entry.

A Job the index does not hold (yet) keeps what the status last said of it: the operator has just created it,
or it was deleted after it ended. The children depend on this status, so it never forgets a started Job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headwater_worker.package.config import StageReport
from pydantic import ValidationError

from ..api.common import MAX_URL
from ..api.package import PackageSpec, PackageStatus, ProcessorStatus
from ..builders import package as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..jobs import JobObservation, blocked_outcome, failure, name_of, observe_job, pods_of

MAX_RESULT_URIS = 100
MAX_MESSAGE = 1024
# Of the overall progress: setup, then the processors (by their mean), then finalise.
SETUP_SHARE, FINALISE_SHARE = 5, 5
PROCESSORS_SHARE = 100 - SETUP_SHARE - FINALISE_SHARE


def parse_status(raw: Mapping[str, Any] | None) -> PackageStatus | None:
    """The status as its model; None when there is none yet, or it no longer parses."""
    if not raw:
        return None
    try:
        return PackageStatus.model_validate(dict(raw))
    except ValidationError:
        return None


def _report(observation: JobObservation) -> StageReport | None:
    try:
        return StageReport.model_validate(observation.result or {})
    except ValidationError:
        return None


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Stage:
    """How one Job of the package went: its phase and, once it ended badly, why."""

    phase: str
    reason: str = ""
    message: str = ""
    observation: JobObservation | None = None


def _failure(spec: PackageSpec, observation: JobObservation, what: str) -> tuple[str, str]:
    reason, message = failure(observation, f"the {what} Job failed")
    if reason == "DeadlineExceeded":
        message = f"{what} did not finish within activeDeadlineSeconds of {spec.active_deadline_seconds} s"
    return reason, message


def observe_stage(
    spec: PackageSpec, job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], what: str
) -> Stage | None:
    """The stage as its Job tells it; None when the index holds no such Job."""
    if job is None:
        return None
    observation = observe_job(job, pods_of(name_of(job), pods))
    if observation.state == "failed":
        reason, message = _failure(spec, observation, what)
        return Stage("Failed", reason, message, observation)
    if observation.state == "succeeded":
        return Stage("Succeeded", observation=observation)
    phase = "Running" if observation.state == "running" else "Pending"
    if observation.failed_attempts:
        _, message = _failure(spec, observation, what)
        return Stage(
            phase,
            "Retrying",
            f"attempt {observation.failed_attempts + 1}: the last one failed: {message}",
            observation,
        )
    return Stage(phase, observation=observation)


def _kept_stage(phase: str | None, status: PackageStatus) -> Stage:
    """A stage whose Job the index does not hold, as the status last told it."""
    return Stage(phase or "Pending", status.reason or "", status.message or "")


def setup_stage(
    owner: Owner,
    spec: PackageSpec,
    current: PackageStatus | None,
    jobs: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> Stage | None:
    name = build.setup_job_name(owner)
    seen = observe_stage(spec, jobs.get(name), pods, "setup")
    if seen is None and current is not None and current.setup_job == name and current.setup_phase:
        return _kept_stage(current.setup_phase, current)
    return seen


def finalise_stage(
    owner: Owner,
    spec: PackageSpec,
    current: PackageStatus | None,
    jobs: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> Stage | None:
    name = build.finalise_job_name(owner)
    seen = observe_stage(spec, jobs.get(name), pods, "finalise")
    if seen is None and current is not None and current.finalise_job == name and current.finalise_phase:
        return _kept_stage(current.finalise_phase, current)
    return seen


def _live(current: PackageStatus | None, processor: str, job: str) -> tuple[int, str] | None:
    """What the processor's Job last reported of itself, if this Job did."""
    report = current.reports.get(processor) if current is not None else None
    if report is None or report.job_name != job:
        return None
    return report.percent, report.message


def processor_status(
    owner: Owner,
    spec: PackageSpec,
    processor: str,
    current: PackageStatus | None,
    jobs: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    *,
    setup_done: bool,
) -> tuple[ProcessorStatus, Stage | None]:
    """One processor's entry, and its Job's stage (None when the index holds no Job of it)."""
    name = build.processor_job_name(owner, processor)
    previous = build.processor_entry(owner, current, processor)
    stage = observe_stage(spec, jobs.get(name), pods, processor)
    if stage is None:
        if previous is not None:
            return previous, None
        waiting = f"waiting: {spec.parallelism} processors run at once" if setup_done else "waiting for setup"
        return ProcessorStatus(name=processor, phase="Pending", progress=0, message=waiting), None
    entry: dict[str, Any] = {"name": processor, "jobName": name}
    observation = stage.observation
    assert observation is not None
    if stage.phase == "Succeeded":
        report = _report(observation)
        result = next((r for r in report.processors if r.name == processor), None) if report else None
        entry.update(
            phase=str(result.phase) if result else "Succeeded",
            progress=100,
            message=_short(result.message if result else "ended without a report"),
            resultUris=[uri for uri in (result.result_uris if result else []) if len(uri) <= MAX_URL][
                :MAX_RESULT_URIS
            ],
            finishedAt=observation.finished_at,
        )
    elif stage.phase == "Failed":
        kept = previous.progress if previous is not None else 0
        entry.update(
            phase="Failed",
            progress=kept or 0,
            reason=stage.reason[:128],
            message=_short(stage.message),
            finishedAt=observation.finished_at,
        )
    else:
        live = _live(current, processor, name)
        progress = live[0] if live else (previous.progress or 0) if previous is not None else 0
        idle = "running" if stage.phase == "Running" else "starting"
        message = stage.message or (live[1] if live else idle)
        entry.update(phase=stage.phase, progress=progress, message=_short(message))
    return ProcessorStatus.model_validate({k: v for k, v in entry.items() if v is not None}), stage


def _progress(setup: Stage | None, entries: Sequence[ProcessorStatus], finalise: Stage | None) -> int:
    if finalise is not None and finalise.phase == "Succeeded":
        return 100
    done = float(SETUP_SHARE if setup is not None and setup.phase == "Succeeded" else 0)
    if entries:
        done += PROCESSORS_SHARE * sum(entry.progress or 0 for entry in entries) / (100 * len(entries))
    return int(done)


def _blocked(stages: Sequence[Stage | None]) -> Outcome | None:
    for stage in stages:
        blocked = stage.observation.blocked if stage is not None and stage.observation is not None else None
        if blocked is not None:
            return blocked_outcome(blocked.reason, blocked.message)
    return None


def _failed_outcome(failed: Sequence[ProcessorStatus]) -> Outcome:
    first = failed[0]
    more = f" (and {len(failed) - 1} more processors failed)" if len(failed) > 1 else ""
    return Outcome.stalled(
        "Failed", first.reason or "ProcessorFailed", f"{first.name} failed: {first.message}{more}"
    )


def _summary(entries: Sequence[ProcessorStatus]) -> str:
    generated = sum(entry.phase == "Succeeded" for entry in entries)
    skipped = sum(entry.phase == "Skipped" for entry in entries)
    return f"{generated} generated, {skipped} skipped"


def outcome(
    owner: Owner,
    spec: PackageSpec,
    current: PackageStatus | None,
    setup: Stage | None,
    entries: Sequence[ProcessorStatus],
    stages: Sequence[Stage | None],
    finalise: Stage | None,
    datapackage_uri: str | None,
) -> Outcome:
    blocked = _blocked([setup, *stages, finalise])
    if blocked is not None:
        return blocked
    if setup is None:
        return Outcome.reconciling("Pending", "Creating", f"creating Job {build.setup_job_name(owner)}")
    if setup.phase == "Failed":
        return Outcome.stalled("Failed", setup.reason or "SetupFailed", f"setup failed: {setup.message}")
    if setup.phase != "Succeeded":
        reason = setup.reason or "SettingUp"
        message = setup.message or "checking the boundary, the processors and the storage"
        return Outcome.reconciling(setup.phase, reason, message)
    failed = [entry for entry in entries if entry.phase == "Failed"]
    if not all(entry.phase in build.ENDED for entry in entries):
        done = sum(entry.phase in build.DONE for entry in entries)
        message = f"{done} of {len(entries)} processors done"
        if failed:
            message += f"; {failed[0].name} failed: {failed[0].message}"
        return Outcome.reconciling("Running", "Processing", message)
    if failed:
        return _failed_outcome(failed)
    if finalise is None:
        return Outcome.reconciling("Running", "Finalising", f"creating Job {build.finalise_job_name(owner)}")
    if finalise.phase == "Failed":
        return Outcome.stalled(
            "Failed", finalise.reason or "FinaliseFailed", f"finalise failed: {finalise.message}"
        )
    if finalise.phase != "Succeeded":
        return Outcome.reconciling(
            "Running", finalise.reason or "Finalising", finalise.message or "writing datapackage.json"
        )
    uri = datapackage_uri or (current.datapackage_uri if current is not None else None)
    return Outcome.ready("Succeeded", "Packaged", f"{_summary(entries)}; datapackage.json at {uri}")


def derive(
    owner: Owner,
    spec: PackageSpec,
    raw_status: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    """Outcome and extra status fields for a Package, given the children found in its namespace."""
    current = parse_status(raw_status)
    by_name = {name_of(job): job for job in jobs}
    setup = setup_stage(owner, spec, current, by_name, pods)
    setup_done = setup is not None and setup.phase == "Succeeded"
    observed = [
        processor_status(owner, spec, name, current, by_name, pods, setup_done=setup_done)
        for name in spec.processors
    ]
    entries = [entry for entry, _ in observed]
    stages = [stage for _, stage in observed]
    finalise = finalise_stage(owner, spec, current, by_name, pods) if setup_done else None
    report = _report(finalise.observation) if finalise is not None and finalise.observation else None
    datapackage_uri = (
        report.datapackage_uri
        if report is not None and finalise is not None and finalise.phase == "Succeeded"
        else None
    )
    result = outcome(owner, spec, current, setup, entries, stages, finalise, datapackage_uri)
    extra: dict[str, Any] = {
        "progress": _progress(setup, entries, finalise),
        "setupJob": build.setup_job_name(owner),
        "setupPhase": setup.phase if setup is not None else "Pending",
        "processors": [entry.to_wire() for entry in entries],
        "finaliseJob": build.finalise_job_name(owner) if finalise is not None else None,
        "finalisePhase": finalise.phase if finalise is not None else None,
    }
    if datapackage_uri is not None:
        extra["datapackageUri"] = datapackage_uri[:MAX_URL]
    stale = sorted(set(current.reports) - set(spec.processors)) if current is not None else []
    if stale:
        extra["reports"] = dict.fromkeys(stale)
    return result, extra
