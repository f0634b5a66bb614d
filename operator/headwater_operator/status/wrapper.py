"""A Wrapper's status from its generator Job, its collector (Job, CronJob runs or Deployment) and the
reports they leave.

The generator's report (its termination message) says whether code was stored and with which digest; that
goes into `status.code`, which decides what the operator builds next. A one-off or scheduled run reports in
its termination message, a continuous collector in `status.collector` itself. Phases follow the seed's
wrapper states; health follows the seed's health values. A collector that fails because the source changed
shape gets its code regenerated once (`status.regenerations`); a second such failure is `Error`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headwater_worker.wrapper.config import CollectionReport, GenerationReport
from pydantic import ValidationError

from ..api.wrapper import MAX_LOG_ENTRIES, ExecutionLogEntry, GeneratedCode, WrapperSpec, WrapperStatus
from ..builders import wrapper as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..jobs import JobObservation, blocked_outcome, cronjob_runs, name_of, observe_job, pods_of

# Generation failures that no retry and no new attempt would mend until someone changes something: a refused
# key stalls the Wrapper (fix the Secret, then delete the generator Job or edit the spec).
STALLING_GENERATION_REASONS = frozenset({"GeminiKeyRejected"})
# Polls in a row that found nothing new before a continuous collector counts as `STALLED`.
STALLED_AFTER_EMPTY_POLLS = 3
CRASHING = ("CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError")


def parse_status(raw: Mapping[str, Any] | None) -> WrapperStatus | None:
    """The status as its model; None when there is none or it does not parse (it is rebuilt then)."""
    if not raw:
        return None
    try:
        return WrapperStatus.model_validate(dict(raw))
    except ValidationError:
        return None


def _report(model: type[Any], result: Mapping[str, Any] | None) -> Any:
    if not result:
        return None
    try:
        return model.model_validate(dict(result))
    except ValidationError:
        return None


@dataclass
class Derivation:
    """The status being derived: fields to write, and the execution log grown by what happened."""

    status: WrapperStatus | None
    extra: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        entries = self.status.execution_log if self.status is not None else []
        self.log = [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in entries]

    def note(self, time: datetime | str | None, event: str, message: str) -> None:
        """Log an event once, however often the same children are looked at."""
        if time is None:
            return
        moment = time if isinstance(time, str) else time.isoformat().replace("+00:00", "Z")
        entry = ExecutionLogEntry(time=moment, event=event, message=message[:1024]).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        if entry not in self.log:
            self.log = sorted([*self.log, entry], key=lambda item: str(item["time"]))[-MAX_LOG_ENTRIES:]

    def result(self, outcome: Outcome, health: str) -> tuple[Outcome, dict[str, Any]]:
        self.extra["health"] = health
        self.extra["executionLog"] = self.log
        return outcome, self.extra


def _find(objects: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((item for item in objects if name_of(item) == name), None)


def _earlier_success(status: WrapperStatus | None) -> bool:
    return status is not None and bool(status.points_collected or status.high_water_mark)


def _crash_health(status: WrapperStatus | None) -> str:
    return "DEGRADED" if _earlier_success(status) else "CRASHED"


# -- generation -------------------------------------------------------------------------------------------


def generation(
    owner: Owner,
    spec_generator: str,
    status: WrapperStatus | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    out: Derivation,
) -> GeneratedCode | tuple[Outcome, str]:
    """The code stored by this generation's generator, or the outcome while there is none."""
    regeneration = build.regeneration_of(owner, status)
    # Written back so that the count of an earlier spec generation is reset in status too.
    out.extra["regenerations"] = regeneration
    name = build.generator_job_name(owner, regeneration)
    job = _find(jobs, name)
    if job is None:
        return Outcome.reconciling("Generating", "Generating", f"starting generator Job {name}"), "UNKNOWN"
    observed = observe_job(job, pods_of(name, pods))
    if observed.blocked is not None:
        return blocked_outcome(observed.blocked.reason, observed.blocked.message), "UNKNOWN"
    report: GenerationReport | None = _report(GenerationReport, observed.result)
    for entry in report.log if report is not None else ():
        out.note(entry.time, entry.event, entry.message or "")
    if observed.state in ("pending", "running"):
        if observed.failed_attempts and report is not None and report.retryable:
            # The pod before this one found Gemini out of reach or of quota; the Job tries again later.
            when = report.log[-1].time if report.log else None
            out.note(when, "retrying", f"{report.reason}: {report.message}")
            return Outcome.reconciling(
                "Retrying",
                report.reason or "Retrying",
                f"generator Job {name} tries again later (attempt {observed.failed_attempts + 1}): "
                f"{report.message}",
            ), "UNKNOWN"
        return Outcome.reconciling(
            "Generating", "Generating", f"generator Job {name} is writing the collector"
        ), "UNKNOWN"
    if report is not None:
        out.extra["attempts"] = report.attempts
    gemini = _gemini_fields(owner, spec_generator, report)
    if (
        observed.state == "succeeded"
        and report is not None
        and report.outcome == "generated"
        and report.sha256
    ):
        code = GeneratedCode(
            config_map_name=build.code_config_map_name(owner),
            sha256=report.sha256,
            generator=report.generator if report.generator in ("template", "gemini") else None,
            model=report.model,
            generated_at=report.generated_at,
            validation={"passed": True, "errors": []},
            generation=owner.generation,
            regeneration=regeneration,
            **gemini,
        )
        out.extra["code"] = code.model_dump(mode="json", by_alias=True, exclude_none=True)
        return code
    reason = (report.reason if report else None) or observed.failure_reason or "GenerationFailed"
    message = (report.message if report else None) or observed.failure_message or "the generator failed"
    errors = report.validation.errors if report is not None and report.validation is not None else [message]
    failed = GeneratedCode(
        config_map_name=build.code_config_map_name(owner),
        generation=owner.generation,
        regeneration=regeneration,
        validation={"passed": False, "errors": [error[:1024] for error in errors[:20]]},
        **gemini,
    )
    out.extra["code"] = failed.model_dump(mode="json", by_alias=True, exclude_none=True)
    out.note(observed.finished_at, "error", f"{reason}: {message}")
    phase = "Stalled" if reason in STALLING_GENERATION_REASONS else "Error"
    return Outcome.stalled(phase, reason, f"could not generate the collector: {message}"), "UNKNOWN"


def _gemini_fields(owner: Owner, generator: str, report: GenerationReport | None) -> dict[str, Any]:
    """What a generation by Gemini adds to `status.code`: where its prompts are, their version, its
    tokens (those of a generation that fell back to the template generator too)."""
    if generator != "gemini":
        return {}
    found: dict[str, Any] = {"prompts_config_map_name": build.prompts_config_map_name(owner)}
    if report is not None and report.prompt_version:
        found["prompt_version"] = report.prompt_version
    if report is not None and report.tokens is not None:
        found["tokens"] = report.tokens.model_dump()
    return found


# -- collection -------------------------------------------------------------------------------------------


def record_report(report: CollectionReport, out: Derivation, owner: Owner) -> None:
    """The figures of a successful run: water marks, periods, points, when."""
    status = out.status
    previous_low = status.low_water_mark if status is not None else None
    low = min(
        (moment for moment in (previous_low, report.low_water_mark) if moment is not None), default=None
    )
    high = report.high_water_mark or (status.high_water_mark if status is not None else None)
    total = report.total_points
    if total is None:
        # An S3 output counts only what each run wrote: add the runs not counted yet.
        counted = status.points_collected or 0 if status is not None else 0
        newer = status is None or status.last_run_time is None or report.ran_at > status.last_run_time
        total = counted + (report.new_points or 0) if newer else counted
    figures = {
        "resourceId": report.resource_id or owner.uid,
        "highWaterMark": high,
        "lowWaterMark": low,
        "startPeriod": low,
        "endPeriod": high,
        "pointsCollected": total,
        "lastRunTime": report.ran_at,
        "collectionPhase": report.collection_phase,
        "collector": report.to_status(),
    }
    for key, value in figures.items():
        if value is not None:
            out.extra[key] = (
                value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
            )


def failed_run(
    owner: Owner, report: CollectionReport | None, observed: JobObservation | None, out: Derivation
) -> tuple[Outcome, str]:
    """A run that failed for good: regenerate once when the source changed shape, else `Error`."""
    reason = (
        (report.reason if report else None) or (observed.failure_reason if observed else None) or "RunFailed"
    )
    message = (
        (report.message if report else None)
        or (observed.failure_message if observed else None)
        or "the collector failed"
    )
    when = report.ran_at if report is not None else (observed.finished_at if observed else None)
    if report is not None:
        out.extra["collector"] = report.to_status()
    if reason == "SourceChanged":
        if build.regeneration_of(owner, out.status) == 0:
            out.extra["regenerations"] = 1
            out.note(when, "regenerating", f"the source changed shape: {message}")
            return Outcome.reconciling(
                "Generating", "Regenerating", f"the source changed shape, regenerating: {message}"
            ), _crash_health(out.status)
        out.note(when, "error", f"the source changed shape again after regenerating: {message}")
        return Outcome.stalled(
            "Error", reason, f"the source changed shape again after regenerating: {message}"
        ), "CRASHED"
    out.note(when, "error", f"{reason}: {message}")
    return Outcome.stalled("Error", reason, message), "CRASHED"


def once(
    owner: Owner,
    status: WrapperStatus | None,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    out: Derivation,
) -> tuple[Outcome, str]:
    name = build.run_job_name(owner, build.regeneration_of(owner, status))
    job = _find(jobs, name)
    if job is None:
        return Outcome.reconciling("CreatingResource", "CreatingResource", f"creating Job {name}"), "UNKNOWN"
    observed = observe_job(job, pods_of(name, pods))
    report: CollectionReport | None = _report(CollectionReport, observed.result)
    if observed.blocked is not None:
        return blocked_outcome(observed.blocked.reason, observed.blocked.message), "UNKNOWN"
    if observed.state in ("pending", "running"):
        if observed.failed_attempts and report is not None and report.outcome == "failed":
            out.note(report.ran_at, "retrying", f"{report.reason}: {report.message}")
            return Outcome.reconciling(
                "Retrying",
                report.reason or "Retrying",
                f"run {name}, attempt {observed.failed_attempts + 1}: {report.message}",
            ), _crash_health(status)
        return Outcome.reconciling("Executing", "Executing", f"Job {name} is collecting"), "HEALTHY"
    if observed.state == "succeeded" and report is not None and report.outcome == "collected":
        record_report(report, out, owner)
        out.note(report.ran_at, "completed", f"collected {report.new_points} new points")
        total = out.extra.get("pointsCollected")
        return Outcome.ready(
            "Completed", "Completed", f"collected {report.new_points} new points, {total} in all"
        ), "HEALTHY"
    return failed_run(owner, report, observed, out)


def scheduled(
    owner: Owner,
    spec: WrapperSpec,
    status: WrapperStatus | None,
    cronjobs: Sequence[Mapping[str, Any]],
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    out: Derivation,
) -> tuple[Outcome, str]:
    name = build.workload_name(owner)
    if _find(cronjobs, name) is None:
        return Outcome.reconciling(
            "CreatingResource", "CreatingResource", f"creating CronJob {name}"
        ), "UNKNOWN"
    runs = cronjob_runs(name, jobs, pods)
    for observed in runs:
        report = _report(CollectionReport, observed.result)
        if observed.state == "succeeded" and report is not None and report.outcome == "collected":
            record_report(report, out, owner)
            out.note(report.ran_at, "completed", f"collected {report.new_points} new points")
            break
    latest = runs[0] if runs else None
    if latest is not None and latest.blocked is not None:
        return blocked_outcome(latest.blocked.reason, latest.blocked.message), "UNKNOWN"
    if latest is not None and latest.state == "failed":
        report = _report(CollectionReport, latest.result)
        if report is not None and report.reason == "SourceChanged":
            return failed_run(owner, report, latest, out)
        reason = (report.reason if report else None) or latest.failure_reason or "RunFailed"
        message = (report.message if report else None) or latest.failure_message or "the run failed"
        out.note(latest.finished_at, "failed", f"{reason}: {message}")
        return Outcome.reconciling(
            "Retrying", reason, f"last run {latest.name} failed, the next runs on schedule: {message}"
        ), _crash_health(status)
    if latest is not None and latest.state in ("pending", "running"):
        return Outcome.ready("Executing", "Executing", f"run {latest.name} is collecting"), "HEALTHY"
    health = "HEALTHY" if runs else "UNKNOWN"
    return Outcome.ready("Executing", "Scheduled", f"collects on schedule {spec.schedule!r}"), health


def continuous(
    owner: Owner,
    spec: WrapperSpec,
    code: GeneratedCode,
    status: WrapperStatus | None,
    deployments: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    out: Derivation,
) -> tuple[Outcome, str]:
    name = build.workload_name(owner)
    deployment = _find(deployments, name)
    if deployment is None:
        return Outcome.reconciling(
            "CreatingResource", "CreatingResource", f"creating Deployment {name}"
        ), "UNKNOWN"
    report = status.collector if status is not None else None
    # A report of code older than the one stored is no news about the code running now.
    if report is not None and code.generated_at is not None and report.ran_at < code.generated_at:
        report = None
    if report is not None and report.outcome == "collected":
        record_report(CollectionReport.model_validate(report.model_dump()), out, owner)
    if report is not None and report.outcome == "failed" and report.reason == "SourceChanged":
        return failed_run(owner, CollectionReport.model_validate(report.model_dump()), None, out)
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses") or ():
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in CRASHING:
                message = str(waiting.get("message") or waiting["reason"])
                outcome = blocked_outcome(str(waiting["reason"]), message)
                return outcome, "CRASHED" if waiting["reason"] == "CrashLoopBackOff" else "UNKNOWN"
    failures = status.collector_failures or 0 if status is not None else 0
    if report is not None and report.outcome == "failed" and failures:
        out.note(report.ran_at, "retrying", f"{report.reason}: {report.message}")
        return Outcome.reconciling(
            "Retrying", report.reason or "Retrying", f"{failures} polls in a row failed: {report.message}"
        ), _crash_health(status)
    if int((deployment.get("status") or {}).get("availableReplicas") or 0) < 1:
        return Outcome.reconciling(
            "CreatingResource", "Starting", f"Deployment {name} is starting"
        ), "UNKNOWN"
    empty = status.collector_empty_polls or 0 if status is not None else 0
    health = (
        "STALLED" if empty >= STALLED_AFTER_EMPTY_POLLS else ("HEALTHY" if report is not None else "UNKNOWN")
    )
    return Outcome.ready(
        "Executing", "Collecting", f"polls the source every {spec.poll_interval_seconds} s"
    ), health


def derive(
    owner: Owner,
    spec: WrapperSpec,
    raw_status: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]],
    cronjobs: Sequence[Mapping[str, Any]],
    deployments: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[Outcome, dict[str, Any]]:
    """Outcome and status fields of a Wrapper, given its children."""
    status = parse_status(raw_status)
    out = Derivation(status)
    out.extra["resourceId"] = owner.uid
    try:
        build.check(spec)
    except build.InvalidSpecError as invalid:
        return out.result(Outcome.stalled("Stalled", invalid.reason, invalid.message), "UNKNOWN")
    regeneration = build.regeneration_of(owner, status)
    out.extra["generatorJobName"] = build.generator_job_name(owner, regeneration)
    code = build.current_code(owner, status)
    if code is None:
        found = generation(owner, spec.generator.type, status, jobs, pods, out)
        if not isinstance(found, GeneratedCode):
            return out.result(*found)
        code = found
    if spec.suspend:
        return out.result(Outcome.ready("Stopped", "Suspended", "collection is suspended"), "UNKNOWN")
    owned = [job for job in jobs if name_of(job) != out.extra["generatorJobName"]]
    mode = spec.effective_mode
    out.extra["workloadName"] = (
        build.run_job_name(owner, regeneration) if mode == "once" else build.workload_name(owner)
    )
    if mode == "once":
        return out.result(*once(owner, status, owned, pods, out))
    if mode == "schedule":
        return out.result(*scheduled(owner, spec, status, cronjobs, owned, pods, out))
    return out.result(*continuous(owner, spec, code, status, deployments, pods, out))
