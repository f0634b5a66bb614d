"""Wrapper status as a pure function: its children and the reports they leave in, phase, health and
figures out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from headwater_operator.api.wrapper import MAX_LOG_ENTRIES, WrapperSpec, WrapperStatus
from headwater_operator.builders import wrapper as build
from headwater_operator.builders.common import Owner
from headwater_operator.conditions import Outcome, status_patch
from headwater_operator.config import OperatorConfig
from headwater_operator.status import wrapper as observe

from tests.unit.workloads import job

OWNER = Owner("Wrapper", "site", "team-a", "uid-1", 3)
CONFIG = OperatorConfig(worker_image="worker:test")
SHA = "cd" * 32
NOW = "2025-01-05T00:00:00Z"
CSV_SOURCE = {"type": "CSV", "file": {"configMapRef": {"name": "electricity-csv", "key": "electricity.csv"}}}
API_SOURCE = {"type": "API", "url": "https://meters.example.org/v1/readings"}


def spec(**fields: Any) -> WrapperSpec:
    body: dict[str, Any] = {
        "indicator": {"name": "Site electricity", "unit": "kWh"},
        "source": CSV_SOURCE,
        "generator": {"type": "template"},
        "output": {"database": {"secretRef": {"name": "points-db"}}},
    }
    body.update(fields)
    return WrapperSpec.model_validate(body)


def code(regeneration: int = 0, generated_at: str = "2025-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "generation": 3,
        "regeneration": regeneration,
        "configMapName": "site-code",
        "sha256": SHA,
        "generator": "template",
        "generatedAt": generated_at,
        "validation": {"passed": True, "errors": []},
    }


def stored(regeneration: int = 0, **fields: Any) -> dict[str, Any]:
    return {"code": code(regeneration), "regenerations": regeneration, **fields}


def generated(**fields: Any) -> dict[str, Any]:
    return {
        "outcome": "generated",
        "generator": "template",
        "attempts": 1,
        "sha256": SHA,
        "generatedAt": "2025-01-01T00:00:00Z",
        "log": [{"time": "2025-01-01T00:00:00Z", "event": "generated", "message": "wide table, 3 columns"}],
        **fields,
    }


def collected(**fields: Any) -> dict[str, Any]:
    return {
        "outcome": "collected",
        "ranAt": "2025-01-02T00:00:00Z",
        "resourceId": "uid-1",
        "newPoints": 3,
        "totalPoints": 3,
        "highWaterMark": "2025-01-03T00:00:00Z",
        "lowWaterMark": "2025-01-01T00:00:00Z",
        "collectionPhase": "historical",
        **fields,
    }


def source_changed(ran_at: str = "2025-01-02T00:00:00Z") -> dict[str, Any]:
    return {
        "outcome": "failed",
        "ranAt": ran_at,
        "reason": "SourceChanged",
        "message": "column 'consumption_kwh' is missing",
    }


def derive(
    wrapper: WrapperSpec,
    status: dict[str, Any] | None,
    jobs: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
    *,
    cronjobs: Sequence[dict[str, Any]] = (),
    deployments: Sequence[dict[str, Any]] = (),
    pods: Sequence[dict[str, Any]] = (),
) -> tuple[Outcome, dict[str, Any]]:
    job_objects = [pair[0] for pair in jobs]
    job_pods = [pair[1] for pair in jobs]
    return observe.derive(OWNER, wrapper, status, job_objects, cronjobs, deployments, [*job_pods, *pods])


def merged(status: dict[str, Any] | None, outcome: Outcome, extra: dict[str, Any]) -> dict[str, Any]:
    """The status after the operator's merge patch, as the API server would store it."""
    return {**(status or {}), **status_patch(status, outcome, OWNER.generation, extra, now=NOW)}


def assert_valid(status: dict[str, Any]) -> None:
    WrapperStatus.model_validate(status)


# -- generation ----------------------------------------------------------------------------------------


def test_a_new_wrapper_is_generating_until_its_generator_job_runs() -> None:
    outcome, extra = derive(spec(), None)
    assert (outcome.phase, outcome.state) == ("Generating", "reconciling")
    assert "site-gen-3" in outcome.message
    assert extra["health"] == "UNKNOWN"
    assert extra["resourceId"] == "uid-1"
    outcome, _ = derive(spec(), None, [job("site-gen-3", "running")])
    assert (outcome.phase, outcome.state) == ("Generating", "reconciling")


def test_stored_code_goes_into_status_and_the_collector_comes_next() -> None:
    outcome, extra = derive(spec(), None, [job("site-gen-3", "succeeded", generated())])
    assert extra["code"] == {
        "configMapName": "site-code",
        "sha256": SHA,
        "generator": "template",
        "generatedAt": "2025-01-01T00:00:00Z",
        "validation": {"passed": True, "errors": []},
        "generation": 3,
        "regeneration": 0,
    }
    assert extra["attempts"] == 1
    assert (outcome.phase, outcome.state) == ("CreatingResource", "reconciling")
    assert "site-run-3" in outcome.message
    assert {
        "time": "2025-01-01T00:00:00Z",
        "event": "generated",
        "message": "wide table, 3 columns",
    } in extra["executionLog"]
    status = merged(None, outcome, extra)
    assert_valid(status)
    # What the builders make of that status: the run, and no second generator.
    children = build.children(OWNER, spec(), CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-run-3"]


def test_a_generation_failure_is_an_error_with_the_validation_errors() -> None:
    report = {
        "outcome": "failed",
        "generator": "template",
        "attempts": 3,
        "reason": "ValidationFailed",
        "message": "no time axis found: no column holds dates, years or months",
        "validation": {"passed": False, "errors": ["dry run: no point collected", "no time axis found"]},
    }
    outcome, extra = derive(spec(), None, [job("site-gen-3", "failed", report)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Error", "stalled", "ValidationFailed")
    assert "no time axis found" in outcome.message
    assert "\n" not in outcome.message
    assert extra["code"]["validation"] == {
        "passed": False,
        "errors": ["dry run: no point collected", "no time axis found"],
    }
    assert "sha256" not in extra["code"]
    assert extra["attempts"] == 3
    assert extra["executionLog"][-1]["event"] == "error"
    status = merged(None, outcome, extra)
    assert_valid(status)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    # An error stays one: the builders start no new generator for this generation.
    children = build.children(OWNER, spec(), CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-gen-3"]


def test_a_generator_pod_without_a_report_fails_with_the_jobs_words() -> None:
    outcome, extra = derive(spec(), None, [job("site-gen-3", "failed")])
    assert (outcome.phase, outcome.reason) == ("Error", "BackoffLimitExceeded")
    assert extra["code"]["validation"]["passed"] is False


def test_a_missing_secret_stalls_with_one_line_naming_it() -> None:
    generator, pod = job("site-gen-3", "pending")
    pod["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "meter-api" not found'}
    }
    outcome, extra = derive(spec(source=API_SOURCE), None, [(generator, pod)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Stalled", "stalled", "SecretNotFound")
    assert "meter-api" in outcome.message
    assert "\n" not in outcome.message
    assert extra["health"] == "UNKNOWN"


# -- once ------------------------------------------------------------------------------------------------


def test_a_completed_run_records_water_marks_periods_and_points() -> None:
    outcome, extra = derive(spec(), stored(), [job("site-run-3", "succeeded", collected())])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Completed", "ready", "Completed")
    assert extra["health"] == "HEALTHY"
    assert extra["highWaterMark"] == "2025-01-03T00:00:00Z"
    assert extra["lowWaterMark"] == "2025-01-01T00:00:00Z"
    assert extra["startPeriod"] == "2025-01-01T00:00:00Z"
    assert extra["endPeriod"] == "2025-01-03T00:00:00Z"
    assert extra["pointsCollected"] == 3
    assert extra["lastRunTime"] == "2025-01-02T00:00:00Z"
    assert extra["collectionPhase"] == "historical"
    assert extra["resourceId"] == "uid-1"
    assert extra["executionLog"][-1]["event"] == "completed"
    status = merged(stored(), outcome, extra)
    assert_valid(status)
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"


def test_the_low_water_mark_only_moves_back() -> None:
    earlier = stored(lowWaterMark="2024-06-01T00:00:00Z", highWaterMark="2024-12-01T00:00:00Z")
    _, extra = derive(spec(), earlier, [job("site-run-3", "succeeded", collected())])
    assert extra["lowWaterMark"] == extra["startPeriod"] == "2024-06-01T00:00:00Z"
    assert extra["highWaterMark"] == "2025-01-03T00:00:00Z"


def test_an_s3_output_counts_each_run_once() -> None:
    wrapper = spec(output={"s3": {"bucket": "points"}})
    report = collected(totalPoints=None, newPoints=4)
    before = stored(pointsCollected=10, lastRunTime="2025-01-01T00:00:00Z")
    _, extra = derive(wrapper, before, [job("site-run-3", "succeeded", report)])
    assert extra["pointsCollected"] == 14
    _, again = derive(wrapper, {**before, **extra}, [job("site-run-3", "succeeded", report)])
    assert again["pointsCollected"] == 14, "the same run is not counted twice"


def test_a_run_in_progress_then_retrying() -> None:
    outcome, extra = derive(spec(), stored(), [job("site-run-3", "running")])
    assert (outcome.phase, extra["health"]) == ("Executing", "HEALTHY")
    failure = {
        "outcome": "failed",
        "ranAt": "2025-01-02T00:00:00Z",
        "reason": "SourceUnavailable",
        "message": "503",
    }
    outcome, extra = derive(spec(), stored(), [job("site-run-3", "running", failure, failed=1)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Retrying", "reconciling", "SourceUnavailable")
    assert "attempt 2" in outcome.message
    assert extra["health"] == "CRASHED", "no run ever succeeded"
    outcome, extra = derive(
        spec(), stored(pointsCollected=5), [job("site-run-3", "running", failure, failed=1)]
    )
    assert extra["health"] == "DEGRADED", "it used to collect"


def test_a_run_that_fails_for_good_is_an_error() -> None:
    failure = {
        "outcome": "failed",
        "ranAt": "2025-01-02T00:00:00Z",
        "reason": "SourceUnavailable",
        "message": "GET /: 503 after 4 attempts",
    }
    outcome, extra = derive(spec(), stored(), [job("site-run-3", "failed", failure)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Error", "stalled", "SourceUnavailable")
    assert extra["health"] == "CRASHED"
    assert "regenerations" not in extra


def test_a_source_that_changes_shape_is_regenerated_once_then_an_error_never_a_loop() -> None:
    wrapper = spec()
    status = stored()
    outcome, extra = derive(wrapper, status, [job("site-run-3", "failed", source_changed())])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Generating", "reconciling", "Regenerating")
    assert extra["regenerations"] == 1
    assert extra["executionLog"][-1]["event"] == "regenerating"
    status = merged(status, outcome, extra)
    assert_valid(status)

    children = build.children(OWNER, wrapper, CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-gen-3-r1"]
    outcome, _ = derive(wrapper, status, [job("site-run-3", "failed", source_changed())])
    assert outcome.phase == "Generating", "the old run's failure is not counted again"

    regenerated = job("site-gen-3-r1", "succeeded", generated(generatedAt="2025-01-03T00:00:00Z"))
    outcome, extra = derive(wrapper, status, [job("site-run-3", "failed", source_changed()), regenerated])
    assert extra["code"]["regeneration"] == 1
    status = merged(status, outcome, extra)
    children = build.children(OWNER, wrapper, CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-run-3-r1"]

    second = job("site-run-3-r1", "failed", source_changed("2025-01-04T00:00:00Z"))
    outcome, extra = derive(wrapper, status, [regenerated, second])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Error", "stalled", "SourceChanged")
    assert "again" in outcome.message
    assert extra["health"] == "CRASHED"
    assert "regenerations" not in extra
    status = merged(status, outcome, extra)
    assert_valid(status)
    assert status["regenerations"] == 1
    children = build.children(OWNER, wrapper, CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-run-3-r1"]
    events = [entry["event"] for entry in status["executionLog"]]
    assert events.count("regenerating") == 1


# -- schedule -----------------------------------------------------------------------------------------


SCHEDULED = {"mode": "schedule", "schedule": "0 6 * * *"}
CRONJOB = {"metadata": {"name": "site-collect"}}


def test_a_scheduled_wrapper_reports_its_runs() -> None:
    wrapper = spec(**SCHEDULED)
    outcome, _ = derive(wrapper, stored())
    assert outcome.phase == "CreatingResource"
    outcome, extra = derive(wrapper, stored(), cronjobs=[CRONJOB])
    assert (outcome.phase, outcome.state, outcome.reason, extra["health"]) == (
        "Executing",
        "ready",
        "Scheduled",
        "UNKNOWN",
    )
    older = job(
        "site-collect-1", "succeeded", collected(), created="2025-01-02T06:00:00Z", cronjob="site-collect"
    )
    outcome, extra = derive(wrapper, stored(), [older], cronjobs=[CRONJOB])
    assert (outcome.phase, outcome.reason, extra["health"]) == ("Executing", "Scheduled", "HEALTHY")
    assert extra["pointsCollected"] == 3
    failure = {
        "outcome": "failed",
        "ranAt": "2025-01-03T06:00:00Z",
        "reason": "SourceUnavailable",
        "message": "503",
    }
    newer = job("site-collect-2", "failed", failure, created="2025-01-03T06:00:00Z", cronjob="site-collect")
    outcome, extra = derive(wrapper, stored(pointsCollected=3), [older, newer], cronjobs=[CRONJOB])
    assert (outcome.phase, outcome.reason) == ("Retrying", "SourceUnavailable")
    assert extra["health"] == "DEGRADED", "some runs fail, others succeed"
    assert extra["highWaterMark"] == "2025-01-03T00:00:00Z", "figures from the last good run"


# -- continuous ----------------------------------------------------------------------------------------


def deployment(available: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "site-collect"}, "status": {"availableReplicas": available}}


def test_a_continuous_collector_starts_then_collects() -> None:
    wrapper = spec(source=API_SOURCE)
    assert derive(wrapper, stored())[0].phase == "CreatingResource"
    outcome, extra = derive(wrapper, stored(), deployments=[deployment(0)])
    assert (outcome.phase, outcome.reason) == ("CreatingResource", "Starting")
    outcome, extra = derive(wrapper, stored(), deployments=[deployment()])
    assert (outcome.phase, outcome.state, extra["health"]) == ("Executing", "ready", "UNKNOWN")
    report = collected(ranAt="2025-01-02T00:00:00Z", collectionPhase="continuous")
    outcome, extra = derive(wrapper, stored(collector=report), deployments=[deployment()])
    assert (outcome.phase, outcome.reason, extra["health"]) == ("Executing", "Collecting", "HEALTHY")
    assert extra["highWaterMark"] == "2025-01-03T00:00:00Z"
    assert extra["collectionPhase"] == "continuous"


def test_several_empty_polls_are_stalled_health() -> None:
    wrapper = spec(source=API_SOURCE)
    report = collected(newPoints=0)
    few = stored(collector=report, collectorEmptyPolls=observe.STALLED_AFTER_EMPTY_POLLS - 1)
    assert derive(wrapper, few, deployments=[deployment()])[1]["health"] == "HEALTHY"
    many = stored(collector=report, collectorEmptyPolls=observe.STALLED_AFTER_EMPTY_POLLS)
    outcome, extra = derive(wrapper, many, deployments=[deployment()])
    assert (outcome.phase, extra["health"]) == ("Executing", "STALLED")


def test_failing_polls_are_retrying_degraded_or_crashed() -> None:
    wrapper = spec(source=API_SOURCE)
    failure = {
        "outcome": "failed",
        "ranAt": "2025-01-02T00:00:00Z",
        "reason": "SourceUnavailable",
        "message": "503",
    }
    outcome, extra = derive(
        wrapper, stored(collector=failure, collectorFailures=2, pointsCollected=8), deployments=[deployment()]
    )
    assert (outcome.phase, outcome.reason, extra["health"]) == ("Retrying", "SourceUnavailable", "DEGRADED")
    assert "2 polls in a row" in outcome.message
    _, extra = derive(wrapper, stored(collector=failure, collectorFailures=1), deployments=[deployment()])
    assert extra["health"] == "CRASHED"


@pytest.mark.parametrize(
    ("reason", "message", "phase", "health"),
    [
        ("CrashLoopBackOff", "back-off 5m0s restarting failed container", "Stalled", "CRASHED"),
        ("CreateContainerConfigError", 'secret "points-db" not found', "Stalled", "UNKNOWN"),
    ],
)
def test_a_collector_pod_that_cannot_run(reason: str, message: str, phase: str, health: str) -> None:
    pod = {"status": {"containerStatuses": [{"state": {"waiting": {"reason": reason, "message": message}}}]}}
    outcome, extra = derive(spec(source=API_SOURCE), stored(), deployments=[deployment(0)], pods=[pod])
    assert (outcome.phase, outcome.state, extra["health"]) == (phase, "stalled", health)
    if "secret" in message:
        assert outcome.reason == "SecretNotFound"
        assert "points-db" in outcome.message


def test_a_continuous_collector_whose_source_changed_is_regenerated_once() -> None:
    wrapper = spec(source=API_SOURCE)
    outcome, extra = derive(wrapper, stored(collector=source_changed()), deployments=[deployment()])
    assert (outcome.phase, extra["regenerations"]) == ("Generating", 1)
    # The report of the old code says nothing about the regenerated code.
    newer = {**stored(1, collector=source_changed()), "code": code(1, generated_at="2025-01-03T00:00:00Z")}
    outcome, extra = derive(wrapper, newer, deployments=[deployment()])
    assert outcome.phase == "Executing"
    after = {**newer, "collector": source_changed("2025-01-04T00:00:00Z")}
    outcome, extra = derive(wrapper, after, deployments=[deployment()])
    assert (outcome.phase, outcome.reason, extra["health"]) == ("Error", "SourceChanged", "CRASHED")
    assert "regenerations" not in extra


# -- across modes ----------------------------------------------------------------------------------------


def test_a_suspended_wrapper_is_stopped() -> None:
    outcome, extra = derive(spec(source=API_SOURCE, suspend=True), stored())
    assert (outcome.phase, outcome.state, outcome.reason) == ("Stopped", "ready", "Suspended")
    assert extra["health"] == "UNKNOWN"


def test_a_spec_that_cannot_run_is_stalled() -> None:
    s3 = {
        "type": "CSV",
        "file": {"s3": {"bucket": "files", "key": "a.csv", "credentialsSecretRef": {"name": "a"}}},
    }
    wrapper = spec(source=s3, output={"s3": {"bucket": "points", "credentialsSecretRef": {"name": "b"}}})
    outcome, _ = derive(wrapper, None)
    assert (outcome.phase, outcome.state, outcome.reason) == ("Stalled", "stalled", "ConflictingCredentials")


def test_the_execution_log_is_bounded_and_logs_each_event_once() -> None:
    old = [
        {"time": f"2024-01-01T00:{minute:02d}:00Z", "event": "completed"} for minute in range(MAX_LOG_ENTRIES)
    ]
    status = stored(executionLog=old)
    runs = [job("site-run-3", "succeeded", collected())]
    outcome, extra = derive(spec(), status, runs)
    log = extra["executionLog"]
    assert len(log) == MAX_LOG_ENTRIES
    assert log[0] == old[1], "the oldest entry makes room"
    assert log[-1]["time"] == "2025-01-02T00:00:00Z"
    status = merged(status, outcome, extra)
    assert_valid(status)
    _, again = derive(spec(), status, runs)
    assert again["executionLog"] == log, "the same children looked at again add nothing"


def test_an_unparsable_status_is_rebuilt() -> None:
    assert observe.parse_status({"phase": "Sometimes"}) is None
    outcome, extra = derive(spec(), {"phase": "Sometimes"})
    assert outcome.phase == "Generating"
    assert extra["executionLog"] == []


def test_a_new_spec_generation_gets_its_own_regeneration() -> None:
    """An earlier generation that used its regeneration (and ended in `Error`) leaves none to the next."""
    used = {"code": {**code(1), "generation": 2}, "regenerations": 1}
    children = build.children(OWNER, spec(), CONFIG, WrapperStatus.model_validate(used))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-gen-3"]
    outcome, extra = derive(spec(), used, [job("site-gen-3", "succeeded", generated())])
    assert extra["regenerations"] == 0
    assert extra["code"]["regeneration"] == 0
    status = merged(used, outcome, extra)
    children = build.children(OWNER, spec(), CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-run-3"]
    outcome, extra = derive(spec(), status, [job("site-run-3", "failed", source_changed())])
    assert (outcome.phase, outcome.reason, extra["regenerations"]) == ("Generating", "Regenerating", 1)


# -- Gemini ----------------------------------------------------------------------------------------------

GEMINI = {"type": "gemini", "apiKeySecretRef": {"name": "gemini"}}
TOKENS = {"requests": 2, "promptTokens": 2400, "outputTokens": 600, "totalTokens": 3000}


def gemini_failure(reason: str, message: str, **fields: Any) -> dict[str, Any]:
    return {
        "outcome": "failed",
        "generator": "gemini",
        "attempts": 1,
        "model": "gemini-2.5-flash",
        "reason": reason,
        "message": message,
        "log": [{"time": "2025-01-01T00:01:00Z", "event": "prompted", "message": "attempt 1"}],
        **fields,
    }


def test_code_by_gemini_records_the_model_the_prompt_version_the_prompts_and_the_tokens() -> None:
    report = generated(
        generator="gemini", model="gemini-2.5-flash", promptVersion="wrapper-collector/1", tokens=TOKENS
    )
    outcome, extra = derive(spec(generator=GEMINI), None, [job("site-gen-3", "succeeded", report)])
    assert outcome.phase == "CreatingResource"
    assert extra["code"]["generator"] == "gemini"
    assert extra["code"]["model"] == "gemini-2.5-flash"
    assert extra["code"]["promptVersion"] == "wrapper-collector/1"
    assert extra["code"]["promptsConfigMapName"] == "site-prompts"
    assert extra["code"]["tokens"] == TOKENS
    assert_valid(merged(None, outcome, extra))


def test_code_written_by_the_fallback_says_so_and_keeps_what_gemini_cost() -> None:
    log = [{"time": "2025-01-01T00:01:00Z", "event": "fallback", "message": "GeminiUnavailable: overloaded"}]
    report = generated(generator="template", tokens={**TOKENS, "requests": 0, "totalTokens": 0}, log=log)
    _, extra = derive(spec(generator=GEMINI), None, [job("site-gen-3", "succeeded", report)])
    assert extra["code"]["generator"] == "template"
    assert "model" not in extra["code"]
    assert extra["code"]["promptsConfigMapName"] == "site-prompts"
    assert extra["executionLog"][0]["event"] == "fallback"


def test_gemini_out_of_quota_is_retrying_while_the_generator_job_tries_again() -> None:
    report = gemini_failure(
        "GeminiQuotaExhausted",
        "Gemini did not answer after 5 requests: HTTP 429",
        retryable=True,
        tokens=TOKENS,
    )
    outcome, extra = derive(spec(generator=GEMINI), None, [job("site-gen-3", "running", report, failed=1)])
    assert (outcome.phase, outcome.state, outcome.reason) == (
        "Retrying",
        "reconciling",
        "GeminiQuotaExhausted",
    )
    assert "tries again later (attempt 2)" in outcome.message
    assert "HTTP 429" in outcome.message
    assert [entry["event"] for entry in extra["executionLog"]] == ["prompted", "retrying"]
    assert extra["health"] == "UNKNOWN"
    assert_valid(merged(None, outcome, extra))


def test_gemini_out_of_quota_after_the_job_s_retries_is_an_error() -> None:
    report = gemini_failure(
        "GeminiQuotaExhausted", "Gemini did not answer after 5 requests", retryable=True, tokens=TOKENS
    )
    outcome, extra = derive(spec(generator=GEMINI), None, [job("site-gen-3", "failed", report, failed=4)])
    assert (outcome.phase, outcome.reason) == ("Error", "GeminiQuotaExhausted")
    assert extra["code"]["tokens"] == TOKENS


def test_a_refused_gemini_key_stalls_the_wrapper_and_starts_nothing_more() -> None:
    report = gemini_failure("GeminiKeyRejected", "Gemini refused the request: HTTP 403 PERMISSION_DENIED: no")
    outcome, extra = derive(spec(generator=GEMINI), None, [job("site-gen-3", "failed", report)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Stalled", "stalled", "GeminiKeyRejected")
    assert "PERMISSION_DENIED" in outcome.message
    status = merged(None, outcome, extra)
    assert_valid(status)
    children = build.children(OWNER, spec(generator=GEMINI), CONFIG, WrapperStatus.model_validate(status))
    assert [c["metadata"]["name"] for c in children if c["kind"] == "Job"] == ["site-gen-3"], "no retry storm"


def test_a_safety_block_is_an_error() -> None:
    report = gemini_failure("GeminiBlocked", "Gemini blocked the prompt (blockReason SAFETY)")
    outcome, _ = derive(spec(generator=GEMINI), None, [job("site-gen-3", "failed", report)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Error", "stalled", "GeminiBlocked")
    assert "SAFETY" in outcome.message
