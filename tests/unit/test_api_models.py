"""The API models: the examples validate, bad input is refused naming the field, status round-trips."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from headwater_operator.api import (
    API_VERSION,
    KINDS,
    TASK_STATUS_VALUES,
    ComputeTaskStatus,
    ConnectorStatus,
    ExportJob,
    ExportJobSpec,
    ExportJobStatus,
    PackageStatus,
    Status,
    WrapperSpec,
    WrapperStatus,
    kind_info,
)
from headwater_operator.api.common import ApiModel, nested_models
from pydantic import BaseModel, ValidationError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DELETE = object()


def example_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def example(name: str) -> dict[str, Any]:
    """A deep copy of the Headwater object called `name` in examples/."""
    for _, document in example_documents():
        if document["apiVersion"] == API_VERSION and document["metadata"]["name"] == name:
            return copy.deepcopy(document)
    raise KeyError(name)


def changed(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The document with `a.b.c` paths set (or removed, with DELETE)."""
    result = copy.deepcopy(document)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return result


def validate(document: dict[str, Any]) -> BaseModel:
    return kind_info(document["kind"]).resource_model.model_validate(document)


# --------------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------------


def test_every_kind_has_an_example() -> None:
    kinds = {doc["kind"] for _, doc in example_documents() if doc["apiVersion"] == API_VERSION}
    assert kinds == {info.kind for info in KINDS}


@pytest.mark.parametrize(
    ("path", "document"),
    [pytest.param(p, d, id=f"{p.name}:{d['metadata']['name']}") for p, d in example_documents()],
)
def test_example_is_valid(path: Path, document: dict[str, Any]) -> None:
    if document["apiVersion"] != API_VERSION:
        assert document["kind"] in {"Secret", "ConfigMap", "PersistentVolumeClaim"}
        return
    validate(document)


def _references(node: Any, kind_of_ref: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.lower().endswith(kind_of_ref.lower()) and isinstance(value, dict) and "name" in value:
                yield value["name"]
            yield from _references(value, kind_of_ref)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item, kind_of_ref)


def _claims(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "claimName":
                yield value
            yield from _claims(value)
    elif isinstance(node, list):
        for item in node:
            yield from _claims(item)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_carry_what_they_reference(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    present = {(d["kind"], d["metadata"]["name"]) for d in documents}
    for document in documents:
        if document["apiVersion"] != API_VERSION:
            continue
        for name in _references(document["spec"], "secretRef"):
            assert ("Secret", name) in present, f"{path.name}: Secret {name} is referenced but not included"
        for name in _references(document["spec"], "configMapRef"):
            assert ("ConfigMap", name) in present, (
                f"{path.name}: ConfigMap {name} is referenced, not included"
            )
        for name in _claims(document["spec"]):
            assert ("PersistentVolumeClaim", name) in present, f"{path.name}: claim {name} is not included"


def test_example_credentials_are_obviously_fake() -> None:
    for _, document in example_documents():
        if document["kind"] != "Secret":
            continue
        for value in document.get("stringData", {}).values():
            assert "demo" in value, f"{document['metadata']['name']}: credentials must be demo values"


# --------------------------------------------------------------------------------------------------
# Wire format and defaults
# --------------------------------------------------------------------------------------------------


def test_exportjob_defaults_and_wire_names() -> None:
    job = ExportJob.model_validate(example("knowledge-base-export"))
    spec = job.spec
    assert spec.database.secret_ref.key == "dsn"
    assert spec.suspend is False
    assert spec.backoff_limit == 3
    assert spec.schedule is None
    assert spec.only is None
    assert spec.destination.s3 is not None
    assert spec.destination.s3.region == "us-east-1"
    credentials = spec.destination.s3.credentials_secret_ref
    assert credentials is not None
    assert (credentials.access_key_id_key, credentials.secret_access_key_key) == (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    wire = spec.to_wire()
    assert wire["gzipLevel"] == 6
    assert wire["destination"]["s3"]["credentialsSecretRef"]["accessKeyIdKey"] == "AWS_ACCESS_KEY_ID"
    assert "tasksFrom" not in wire
    assert "gzip_level" not in wire
    assert ExportJobSpec.model_validate(wire) == spec


def test_models_accept_python_names_too() -> None:
    spec = ExportJobSpec(
        database={"secret_ref": {"name": "db"}},
        tasks_from={"config_map_ref": {"name": "dsl"}},
        destination={"volume": {"claim_name": "data"}},
        gzip_level=9,
    )
    assert spec.to_wire() == {
        "database": {"secretRef": {"name": "db", "key": "dsn"}},
        "tasksFrom": {"configMapRef": {"name": "dsl"}},
        "destination": {"volume": {"claimName": "data", "path": ""}},
        "gzipLevel": 9,
        "suspend": False,
        "backoffLimit": 3,
    }


def test_selective_export_of_dsl_folder() -> None:
    job = ExportJob.model_validate(example("nightly-export"))
    assert job.spec.only == ["agency", "source_file"]
    assert job.spec.tasks_from is not None
    assert job.spec.tasks_from.config_map_ref.name == "export-dsl"
    assert job.spec.time_zone == "Europe/Athens"


def test_wrapper_mode_defaults_by_source() -> None:
    document = example("site-electricity")
    assert WrapperSpec.model_validate(document["spec"]).effective_mode == "once"
    document["spec"].pop("mode")
    assert WrapperSpec.model_validate(document["spec"]).effective_mode == "once"
    api = changed(
        document,
        {"spec.source": {"type": "API", "url": "https://api.example.org/v1/data"}},
    )
    assert WrapperSpec.model_validate(api["spec"]).effective_mode == "continuous"
    assert WrapperSpec.model_validate(api["spec"]).generator.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    "schedule", ["0 2 * * *", "*/15 * * * *", "0 0 1 JAN,JUL MON-FRI", "@daily", "@hourly"]
)
def test_cron_schedules_accepted(schedule: str) -> None:
    document = changed(example("knowledge-base-export"), {"spec.schedule": schedule})
    assert ExportJob.model_validate(document).spec.schedule == schedule


# --------------------------------------------------------------------------------------------------
# Refusals: each names the field (wire name) that is wrong
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invalid:
    """A change that makes an example invalid, the field the refusal must name, and words of its message."""

    id: str
    base: str
    changes: dict[str, Any]
    field: str
    message: str = ""


EJ, EJ_DSL, FILES, TAGO, WRAPPER, TASK, PACKAGE = (
    "knowledge-base-export",
    "nightly-export",
    "farm-energy-files",
    "tago-energy",
    "site-electricity",
    "profile-readings",
    "gambia",
)
ONE_OF_TASKS = "exactly one of tasks or tasksFrom must be set"
ONE_OF_SCHEDULES = "exactly one of schedule or interval must be set (neither when file.watch is true)"

INVALID = [
    # ExportJob
    Invalid(
        "ej-both-sources",
        EJ,
        {"spec.tasksFrom": {"configMapRef": {"name": "dsl"}}},
        "spec.tasks",
        ONE_OF_TASKS,
    ),
    Invalid("ej-no-source", EJ, {"spec.tasks": DELETE}, "spec.tasks", ONE_OF_TASKS),
    Invalid(
        "ej-only-unknown",
        EJ,
        {"spec.only": ["agency", "nope"]},
        "spec.only",
        "every name in only must be the name of a task in tasks",
    ),
    Invalid("ej-tz-no-schedule", EJ, {"spec.timeZone": "UTC"}, "spec.timeZone", "timeZone needs schedule"),
    Invalid(
        "ej-two-destinations",
        EJ,
        {"spec.destination.volume": {"claimName": "data"}},
        "spec.destination.s3",
        "exactly one of s3 or volume must be set",
    ),
    Invalid("ej-no-destination", EJ, {"spec.destination": {}}, "spec.destination.s3", "exactly one of s3"),
    Invalid(
        "ej-path-escapes",
        EJ_DSL,
        {"spec.destination.volume.path": "exports/../../etc"},
        "spec.destination.volume.path",
        "path must stay inside the volume: no '..' segments",
    ),
    Invalid(
        "ej-path-absolute", EJ_DSL, {"spec.destination.volume.path": "/etc"}, "spec.destination.volume.path"
    ),
    Invalid("ej-gzip-high", EJ, {"spec.gzipLevel": 10}, "spec.gzipLevel", "less than or equal to 9"),
    Invalid("ej-gzip-low", EJ, {"spec.gzipLevel": 0}, "spec.gzipLevel", "greater than or equal to 1"),
    Invalid(
        "ej-task-name", EJ, {"spec.tasks": [{"name": "Agency!", "select": "SELECT 1"}]}, "spec.tasks.0.name"
    ),
    Invalid("ej-task-no-select", EJ, {"spec.tasks": [{"name": "agency"}]}, "spec.tasks.0.select", "required"),
    Invalid(
        "ej-duplicate-task",
        EJ,
        {"spec.tasks": [{"name": "a", "select": "SELECT 1"}, {"name": "a", "select": "SELECT 2"}]},
        "spec.tasks.1",
        "duplicate entry 'a'",
    ),
    Invalid(
        "ej-duplicate-only", EJ_DSL, {"spec.only": ["agency", "agency"]}, "spec.only.1", "duplicate entry"
    ),
    Invalid("ej-empty-only", EJ_DSL, {"spec.only": []}, "spec.only", "at least 1 item"),
    Invalid("ej-schedule", EJ, {"spec.schedule": "every day"}, "spec.schedule", "should match pattern"),
    Invalid("ej-schedule-6-fields", EJ, {"spec.schedule": "0 0 2 * * *"}, "spec.schedule"),
    Invalid("ej-timezone", EJ_DSL, {"spec.timeZone": "Europe Athens"}, "spec.timeZone"),
    Invalid("ej-keep-last", EJ, {"spec.retention.keepLast": 0}, "spec.retention.keepLast"),
    Invalid("ej-backoff", EJ, {"spec.backoffLimit": -1}, "spec.backoffLimit"),
    Invalid("ej-deadline", EJ, {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds"),
    Invalid("ej-no-database", EJ, {"spec.database": DELETE}, "spec.database", "required"),
    Invalid(
        "ej-secret-name", EJ, {"spec.database.secretRef.name": "Not_A_Name"}, "spec.database.secretRef.name"
    ),
    Invalid("ej-bucket", EJ, {"spec.destination.s3.bucket": "UPPER"}, "spec.destination.s3.bucket"),
    Invalid(
        "ej-endpoint", EJ, {"spec.destination.s3.endpoint": "ftp://x.example"}, "spec.destination.s3.endpoint"
    ),
    Invalid("ej-unknown-field", EJ, {"spec.bogus": 1}, "spec.bogus", "Extra inputs are not permitted"),
    # Connector
    Invalid("conn-type", FILES, {"spec.type": "ftp"}, "spec.type"),
    Invalid(
        "conn-file-missing",
        FILES,
        {"spec.file": DELETE},
        "spec.file",
        "file must be set when type is file, and only then",
    ),
    Invalid(
        "conn-file-not-file", TAGO, {"spec.file": {"volume": {"claimName": "data"}}}, "spec.file", "only then"
    ),
    Invalid(
        "conn-http-on-file",
        FILES,
        {"spec.http": {"baseUrl": "https://api.example.org"}},
        "spec.http",
        "http must not be set when type is file",
    ),
    Invalid(
        "conn-http-base-url",
        TAGO,
        {"spec.type": "http"},
        "spec.http",
        "http.baseUrl is required when type is http or airbeld",
    ),
    Invalid(
        "conn-airbeld-base-url", TAGO, {"spec.type": "airbeld", "spec.http": DELETE}, "spec.http", "baseUrl"
    ),
    Invalid(
        "conn-schedule-and-interval",
        FILES,
        {"spec.file.watch": False, "spec.schedule": "@hourly", "spec.interval": "5m"},
        "spec.schedule",
        ONE_OF_SCHEDULES,
    ),
    Invalid("conn-no-schedule", FILES, {"spec.file.watch": False}, "spec.schedule", ONE_OF_SCHEDULES),
    Invalid("conn-watch-interval", FILES, {"spec.interval": "5m"}, "spec.schedule", ONE_OF_SCHEDULES),
    Invalid(
        "conn-mapping-both",
        FILES,
        {"spec.mapping.configMapRef": {"name": "m", "key": "m.yaml"}},
        "spec.mapping.name",
        "exactly one of name or configMapRef must be set",
    ),
    Invalid("conn-mapping-name", FILES, {"spec.mapping.name": "energy_hourly.yaml"}, "spec.mapping.name"),
    Invalid(
        "conn-file-both",
        FILES,
        {"spec.file.s3": {"bucket": "data"}},
        "spec.file.volume",
        "exactly one of volume or s3 must be set",
    ),
    Invalid("conn-interval", FILES, {"spec.interval": "5 minutes"}, "spec.interval"),
    Invalid("conn-auth", TAGO, {"spec.http.auth": {"type": "basic"}}, "spec.http.auth.type"),
    Invalid("conn-lookback", TAGO, {"spec.lookbackDays": 0}, "spec.lookbackDays"),
    Invalid("conn-duplicate-devices", TAGO, {"spec.deviceIds": ["a", "a"]}, "spec.deviceIds.1", "duplicate"),
    # Wrapper
    Invalid(
        "wr-schedule-missing",
        WRAPPER,
        {"spec.mode": "schedule"},
        "spec.schedule",
        "schedule must be set when mode is schedule, and only then",
    ),
    Invalid("wr-schedule-stray", WRAPPER, {"spec.schedule": "@daily"}, "spec.schedule", "only then"),
    Invalid("wr-mode", WRAPPER, {"spec.mode": "sometimes"}, "spec.mode"),
    Invalid(
        "wr-gemini-key",
        WRAPPER,
        {"spec.generator": {"type": "gemini"}},
        "spec.generator.apiKeySecretRef",
        "apiKeySecretRef must be set when type is gemini, and only then",
    ),
    Invalid(
        "wr-template-key",
        WRAPPER,
        {"spec.generator.apiKeySecretRef": {"name": "gemini"}},
        "spec.generator.apiKeySecretRef",
        "only then",
    ),
    Invalid(
        "wr-fallback-template",
        WRAPPER,
        {"spec.generator.fallback": "template"},
        "spec.generator.fallback",
        "fallback may be set only when type is gemini",
    ),
    Invalid(
        "wr-fallback-unknown",
        WRAPPER,
        {"spec.generator": {"type": "gemini", "apiKeySecretRef": {"name": "gemini"}, "fallback": "gpt"}},
        "spec.generator.fallback",
    ),
    Invalid("wr-generator-type", WRAPPER, {"spec.generator.type": "gpt"}, "spec.generator.type"),
    Invalid("wr-attempts", WRAPPER, {"spec.generator.maxAttempts": 0}, "spec.generator.maxAttempts"),
    Invalid(
        "wr-source-both",
        WRAPPER,
        {"spec.source.url": "https://example.org/data.csv"},
        "spec.source.url",
        "exactly one of url or file must be set",
    ),
    Invalid(
        "wr-api-no-url",
        WRAPPER,
        {"spec.source.type": "API"},
        "spec.source.url",
        "url is required when type is API",
    ),
    Invalid("wr-source-type", WRAPPER, {"spec.source.type": "JSON"}, "spec.source.type"),
    Invalid(
        "wr-file-both",
        WRAPPER,
        {"spec.source.file.s3": {"bucket": "data", "key": "electricity.csv"}},
        "spec.source.file.configMapRef",
        "exactly one of configMapRef or s3 must be set",
    ),
    Invalid(
        "wr-output-both",
        WRAPPER,
        {"spec.output.s3": {"bucket": "points"}},
        "spec.output.database",
        "exactly one of database or s3 must be set",
    ),
    Invalid("wr-no-indicator", WRAPPER, {"spec.indicator": DELETE}, "spec.indicator", "required"),
    Invalid(
        "wr-api-key-header", WRAPPER, {"spec.source.apiKeyHeader": "X API Key"}, "spec.source.apiKeyHeader"
    ),
    Invalid("wr-poll-interval", WRAPPER, {"spec.pollIntervalSeconds": 5}, "spec.pollIntervalSeconds"),
    Invalid("wr-egress-port", WRAPPER, {"spec.egressPorts": [5432, 70000]}, "spec.egressPorts.1"),
    Invalid(
        "wr-table", WRAPPER, {"spec.output.database.table": "points; drop"}, "spec.output.database.table"
    ),
    Invalid("wr-attempts-max", WRAPPER, {"spec.generator.maxAttempts": 11}, "spec.generator.maxAttempts"),
    # ComputeTask
    Invalid("ct-no-inputs", TASK, {"spec.dataIn": []}, "spec.dataIn", "at least 1 item"),
    Invalid(
        "ct-service-both",
        TASK,
        {"spec.service.image": "example.org/svc:1"},
        "spec.service.name",
        "exactly one of name, image or url must be set",
    ),
    Invalid(
        "ct-service-none",
        TASK,
        {"spec.service": {}},
        "spec.service.name",
        "exactly one of name, image or url",
    ),
    Invalid("ct-task-id", TASK, {"spec.taskId": "not-a-uuid"}, "spec.taskId"),
    Invalid("ct-callback", TASK, {"spec.callbackUrl": "core/tasks/1"}, "spec.callbackUrl"),
    Invalid("ct-no-s3", TASK, {"spec.s3": DELETE}, "spec.s3", "required"),
    # Package
    Invalid("pkg-processor", PACKAGE, {"spec.processors": ["natural_earth"]}, "spec.processors.0"),
    Invalid("pkg-processors-empty", PACKAGE, {"spec.processors": []}, "spec.processors", "at least 1 item"),
    Invalid(
        "pkg-processors-duplicate",
        PACKAGE,
        {"spec.processors": ["test_processor.version_1", "test_processor.version_1"]},
        "spec.processors.1",
        "duplicate entry",
    ),
    Invalid(
        "pkg-storage-both",
        PACKAGE,
        {"spec.storage.volume": {"claimName": "packages"}},
        "spec.storage.s3",
        "exactly one of s3 or volume must be set",
    ),
    Invalid(
        "pkg-geometry-both",
        PACKAGE,
        {"spec.boundary.geometry.configMapRef": {"name": "b", "key": "b.json"}},
        "spec.boundary.geometry.configMapRef",
        "exactly one of configMapRef or geojson must be set",
    ),
    Invalid("pkg-boundary-name", PACKAGE, {"spec.boundary.name": "The Gambia"}, "spec.boundary.name"),
    Invalid("pkg-host-url", PACKAGE, {"spec.packageHostUrl": "packages.example.org"}, "spec.packageHostUrl"),
    Invalid(
        "pkg-options-unknown-processor",
        PACKAGE,
        {
            "spec.options": {
                "natural_earth_raster.version_1": {"source": {"url": "https://example.org/a.tif"}}
            }
        },
        "spec.options",
        "every key of options must be one of processors",
    ),
    Invalid("pkg-parallelism", PACKAGE, {"spec.parallelism": 0}, "spec.parallelism"),
    Invalid(
        "pkg-cache-both",
        PACKAGE,
        {"spec.cache": {"volume": {"claimName": "c"}, "s3": {"bucket": "sources"}}},
        "spec.cache.s3",
        "exactly one of s3 or volume must be set",
    ),
    Invalid(
        "pkg-cache-other-key-pair",
        PACKAGE,
        {"spec.cache": {"s3": {"bucket": "sources", "credentialsSecretRef": {"name": "other"}}}},
        "spec.cache",
        "cache.s3 and storage.s3 must use the same credentialsSecretRef: a Job has one key pair",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in INVALID])
def test_invalid_is_refused_naming_the_field(case: Invalid) -> None:
    document = changed(example(case.base), case.changes)
    with pytest.raises(ValidationError) as refused:
        validate(document)
    errors = refused.value.errors()
    named = [".".join(str(part) for part in error["loc"]) for error in errors]
    assert case.field in named, f"refused at {named}, not at {case.field}: {refused.value}"
    assert case.message in str(refused.value)


def test_every_checkable_cel_rule_has_a_refusal_case() -> None:
    messages = {case.message for case in INVALID}
    for info in KINDS:
        for model in nested_models(info.resource_model):
            if not issubclass(model, ApiModel):
                continue
            for rule in model.cel_rules:
                if rule.check is not None:
                    assert rule.message in messages, f"{model.__name__}: no case refused by {rule.message!r}"


# --------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_exportjob_status_round_trips_in_wire_names() -> None:
    status = ExportJobStatus(
        phase="Succeeded",
        observed_generation=2,
        job_name="knowledge-base-export-export-2",
        last_successful_time=NOW,
        tasks=[
            {
                "name": "agency",
                "rows": 10,
                "bytes": 321,
                "uri": "s3://exports/knowledge-base/agency/agency-2025_01_01-12_00_00.csv.gz",
                "durationSeconds": 0.5,
                "finishedAt": "2025-01-01T12:00:00Z",
            }
        ],
    )
    status.set_condition("Ready", "True", "Exported", "every task exported", now=NOW, observed_generation=2)
    wire = status.to_wire()
    assert wire["phase"] == "Succeeded"
    assert wire["observedGeneration"] == 2
    assert wire["lastSuccessfulTime"] == "2025-01-01T12:00:00Z"
    assert wire["tasks"][0]["durationSeconds"] == 0.5
    assert wire["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "Exported",
        "message": "every task exported",
        "lastTransitionTime": "2025-01-01T12:00:00Z",
        "observedGeneration": 2,
    }
    assert ExportJobStatus.model_validate(wire) == status


def test_set_condition_moves_transition_time_only_on_change() -> None:
    status = Status()
    status.set_condition("Ready", "False", "Starting", now=NOW)
    later = NOW + timedelta(minutes=5)
    status.set_condition("Ready", "False", "StillStarting", "waiting", now=later)
    ready = status.condition("Ready")
    assert ready is not None
    assert ready.last_transition_time == NOW
    assert ready.reason == "StillStarting"
    status.set_condition("Ready", "True", "Done", now=later)
    status.set_condition("Stalled", "False", "Fine", now=later)
    assert [c.type for c in status.conditions] == ["Ready", "Stalled"]
    ready = status.condition("Ready")
    assert ready is not None
    assert ready.last_transition_time == later


def test_status_tolerates_fields_it_does_not_know() -> None:
    status = ExportJobStatus.model_validate({"phase": "Running", "somethingNewer": 1})
    assert status.phase == "Running"


@pytest.mark.parametrize(
    ("model", "phase"),
    [
        (ExportJobStatus, "Done"),
        (ConnectorStatus, "Succeeded"),
        (WrapperStatus, "executing"),
        (PackageStatus, ""),
    ],
)
def test_phase_is_one_of_the_kinds_values(model: type[Status], phase: str) -> None:
    with pytest.raises(ValidationError, match="phase"):
        model.model_validate({"phase": phase})


def test_compute_task_status_uses_the_protocol_values() -> None:
    protocol = [
        "pending",
        "fetching",
        "processing",
        "saving",
        "finished",
        "error",
        "scheduled",
        "skipped",
        "archived",
        "unavailable",
    ]
    assert list(TASK_STATUS_VALUES) == protocol
    for value in protocol:
        assert ComputeTaskStatus.model_validate({"status": value}).status == value
    with pytest.raises(ValidationError, match="status"):
        ComputeTaskStatus.model_validate({"status": "Finished"})


def test_wrapper_status_keeps_the_seed_vocabularies() -> None:
    status = WrapperStatus.model_validate(
        {
            "phase": "Executing",
            "health": "HEALTHY",
            "code": {"configMapName": "w-code", "sha256": "a" * 64, "validation": {"passed": True}},
            "executionLog": [{"time": "2025-01-01T00:00:00Z", "event": "started"}],
        }
    )
    assert status.phase is not None
    assert status.phase.lower() == "executing"
    with pytest.raises(ValidationError, match="executionLog"):
        WrapperStatus.model_validate({"executionLog": [{"time": "2025-01-01T00:00:00Z", "event": "e"}] * 51})


def test_connector_quality_score_is_a_share() -> None:
    assert ConnectorStatus.model_validate({"qualityScore": 0.98}).quality_score == 0.98
    with pytest.raises(ValidationError, match="qualityScore"):
        ConnectorStatus.model_validate({"qualityScore": 98})
