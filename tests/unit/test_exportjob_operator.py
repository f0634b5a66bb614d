"""The ExportJob's pure parts in the operator: children built from a spec, status derived from children."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from headwater_operator.api.exportjob import ExportJobSpec
from headwater_operator.builders import exportjob as build
from headwater_operator.builders.common import Owner
from headwater_operator.config import OperatorConfig
from headwater_operator.jobs import JOB_NAME_LABEL
from headwater_operator.status import exportjob as observe
from headwater_worker.export.config import ExportConfig

OWNER = Owner("ExportJob", "kb", "data", "0b6c1f5e-0000-4000-8000-000000000001", generation=4)
CONFIG = OperatorConfig(worker_image="registry.example/headwater-worker:1", image_pull_secrets=("pull",))
SPEC: dict[str, Any] = {
    "database": {"secretRef": {"name": "db"}},
    "tasks": [{"name": "agency", "select": "SELECT * FROM agency", "delete": "DELETE FROM agency"}],
    "destination": {
        "s3": {
            "bucket": "exports",
            "prefix": "kb",
            "endpoint": "http://minio:9000",
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
        }
    },
    "retention": {"keepLast": 3},
}


def spec(**changes: Any) -> ExportJobSpec:
    body = copy.deepcopy(SPEC)
    body.update(changes)
    return ExportJobSpec.model_validate(body)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    template = (
        manifest["spec"]["template"]
        if manifest["kind"] == "Job"
        else manifest["spec"]["jobTemplate"]["spec"]["template"]
    )
    [worker] = template["spec"]["containers"]
    return dict(worker)


def env(worker: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in worker["env"]}


def test_one_off_export_is_a_service_account_and_a_job_named_by_generation() -> None:
    account, job = build.children(OWNER, spec(), CONFIG)
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == "kb-worker"
    assert account["automountServiceAccountToken"] is False
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "kb-export-4"
    for child in (account, job):
        [owner] = child["metadata"]["ownerReferences"]
        assert owner == {**OWNER.reference(), "controller": True, "blockOwnerDeletion": True}
        assert child["metadata"]["labels"]["headwater.dev/exportjob"] == "kb"
        assert child["metadata"]["namespace"] == "data"


def test_building_twice_gives_the_same_manifests() -> None:
    assert build.children(OWNER, spec(), CONFIG) == build.children(OWNER, spec(), CONFIG)


def test_secrets_travel_only_by_reference() -> None:
    [_, job] = build.children(OWNER, spec(), CONFIG)
    variables = env(container(job))
    assert variables["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "dsn"}},
    }
    assert variables["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert all("value" not in variables[name] for name in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY"))


def test_worker_configuration_round_trips_through_the_workers_model() -> None:
    [_, job] = build.children(OWNER, spec(only=["agency"]), CONFIG)
    config = ExportConfig.from_env(env(container(job))["HEADWATER_EXPORT_CONFIG"]["value"])
    assert [task.name for task in config.tasks] == ["agency"]
    assert config.only == ["agency"]
    assert config.destination.s3 is not None
    assert config.destination.s3.force_path_style is True
    assert config.destination.s3.prefix == "kb"
    assert config.retention is not None
    assert config.retention.keep_last == 3
    assert config.export_job == "data/kb"


def test_pods_run_restricted_as_non_root_with_a_writable_tmp_only() -> None:
    [_, job] = build.children(OWNER, spec(), CONFIG)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    worker = container(job)
    assert worker["image"] == "registry.example/headwater-worker:1"
    assert worker["command"] == ["python", "-m", "headwater_worker", "export"]
    assert worker["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in worker["volumeMounts"]


def test_schedule_makes_a_cronjob_that_never_overlaps_runs() -> None:
    [_, cronjob] = build.children(OWNER, spec(schedule="0 3 * * *", timeZone="Europe/Athens"), CONFIG)
    assert cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "kb-export"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["timeZone"] == "Europe/Athens"
    assert cronjob["spec"]["jobTemplate"]["metadata"]["labels"]["headwater.dev/exportjob"] == "kb"


def test_tasks_from_a_configmap_and_a_volume_destination_are_mounted() -> None:
    volume_spec = spec(
        tasks=None,
        tasksFrom={"configMapRef": {"name": "dsl"}},
        destination={"volume": {"claimName": "exports", "path": "kb/daily"}},
    )
    [_, job] = build.children(OWNER, volume_spec, CONFIG)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tasks"]["configMap"] == {"name": "dsl"}
    assert volumes["destination"]["persistentVolumeClaim"] == {"claimName": "exports"}
    config = ExportConfig.from_env(env(container(job))["HEADWATER_EXPORT_CONFIG"]["value"])
    assert config.tasks_dir == build.TASKS_DIR
    assert config.destination.volume is not None
    assert config.destination.volume.path == f"{build.VOLUME_MOUNT}/kb/daily"


def test_long_names_are_shortened_stably_within_label_limits() -> None:
    owner = Owner("ExportJob", "x" * 63, "data", "uid", generation=12)
    [_, job] = build.children(owner, spec(), CONFIG)
    name = job["metadata"]["name"]
    assert len(name) <= 63
    assert name == build.job_name(owner)
    [_, cronjob] = build.children(owner, spec(schedule="@daily"), CONFIG)
    assert len(cronjob["metadata"]["name"]) <= build.CRONJOB_NAME_LIMIT


# -- status -----------------------------------------------------------------------------------------------


def job_object(
    name: str, *conditions: dict[str, Any], owner: str | None = None, **status: Any
) -> dict[str, Any]:
    refs = [{"kind": "CronJob", "name": owner}] if owner else [{"kind": "ExportJob", "name": "kb"}]
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": status.pop("created", "2026-01-01T00:00:00Z"),
            "ownerReferences": refs,
        },
        "spec": {"suspend": status.pop("suspend", False)},
        "status": {"conditions": list(conditions), **status},
    }


def pod_object(
    job: str, phase: str, message: dict[str, Any] | None = None, waiting: str | None = None
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if message is not None:
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "message": json.dumps(message)}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": 'secret "db" not found'}}
    return {
        "metadata": {"labels": {JOB_NAME_LABEL: job}, "creationTimestamp": "2026-01-01T00:00:01Z"},
        "status": {"phase": phase, "containerStatuses": [{"name": "worker", "state": state}]},
    }


TASK = {
    "name": "agency",
    "rows": 3,
    "bytes": 40,
    "uri": "s3://exports/kb/a.csv.gz",
    "durationSeconds": 0.1,
    "finishedAt": "2026-01-01T00:00:02Z",
}


def test_no_job_yet_is_pending_and_reconciling() -> None:
    outcome, extra = observe.derive(OWNER, spec(), None, [], [])
    assert (outcome.phase, outcome.state) == ("Pending", "reconciling")
    assert extra == {}


def test_completed_job_is_ready_with_the_workers_figures() -> None:
    name = build.job_name(OWNER)
    job = job_object(name, {"type": "Complete", "status": "True"}, completionTime="2026-01-01T00:00:03Z")
    outcome, extra = observe.derive(
        OWNER, spec(), None, [job], [pod_object(name, "Succeeded", {"tasks": [TASK]})]
    )
    assert (outcome.phase, outcome.state, outcome.reason) == ("Succeeded", "ready", "Exported")
    assert extra["tasks"] == [TASK]
    assert extra["lastSuccessfulTime"] == "2026-01-01T00:00:03Z"


def test_failed_job_is_stalled_with_the_workers_reason() -> None:
    name = build.job_name(OWNER)
    job = job_object(name, {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
    error = {"error": {"reason": "InvalidQuery", "message": "task agency: column nope does not exist"}}
    outcome, _ = observe.derive(OWNER, spec(), None, [job], [pod_object(name, "Failed", error)])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Failed", "stalled", "InvalidQuery")
    assert "nope" in outcome.message


def test_a_pod_waiting_for_a_missing_secret_is_stalled() -> None:
    name = build.job_name(OWNER)
    pods = [pod_object(name, "Pending", waiting="CreateContainerConfigError")]
    outcome, _ = observe.derive(OWNER, spec(), None, [job_object(name)], pods)
    assert (outcome.phase, outcome.state, outcome.reason) == ("Stalled", "stalled", "SecretNotFound")


def test_a_retried_run_says_why_the_last_attempt_failed() -> None:
    name = build.job_name(OWNER)
    error = {"error": {"reason": "DestinationUnavailable", "message": "could not connect"}}
    pods = [pod_object(name, "Failed", error), pod_object(name, "Running")]
    outcome, _ = observe.derive(OWNER, spec(), None, [job_object(name, failed=1)], pods)
    assert (outcome.phase, outcome.state, outcome.reason) == ("Running", "reconciling", "Retrying")
    assert "DestinationUnavailable" in outcome.message


def test_jobs_of_an_earlier_generation_do_not_count() -> None:
    stale = job_object("kb-export-3", {"type": "Complete", "status": "True"})
    outcome, _ = observe.derive(OWNER, spec(), None, [stale], [])
    assert outcome.reason == "Creating"


@pytest.mark.parametrize(
    ("latest", "phase", "state"),
    [
        ({"type": "Complete", "status": "True"}, "Scheduled", "ready"),
        ({"type": "Failed", "status": "True"}, "Scheduled", "stalled"),
        (None, "Running", "ready"),
    ],
)
def test_scheduled_export_reports_its_latest_run(
    latest: dict[str, Any] | None, phase: str, state: str
) -> None:
    scheduled = spec(schedule="@daily")
    cron_name = build.cronjob_name(OWNER)
    cronjob = {"metadata": {"name": cron_name}, "status": {"lastScheduleTime": "2026-01-02T00:00:00Z"}}
    older = job_object(
        f"{cron_name}-1",
        {"type": "Complete", "status": "True"},
        owner=cron_name,
        created="2026-01-01T00:00:00Z",
    )
    newer = job_object(
        f"{cron_name}-2", *([latest] if latest else []), owner=cron_name, created="2026-01-02T00:00:00Z"
    )
    pods = [pod_object(f"{cron_name}-1", "Succeeded", {"tasks": [TASK]})]
    if latest is None:
        pods.append(pod_object(f"{cron_name}-2", "Running"))
    elif latest["type"] == "Complete":
        pods.append(pod_object(f"{cron_name}-2", "Succeeded", {"tasks": [TASK]}))
    outcome, extra = observe.derive(OWNER, scheduled, cronjob, [older, newer], pods)
    assert (outcome.phase, outcome.state) == (phase, state)
    assert extra["lastScheduleTime"] == "2026-01-02T00:00:00Z"
    assert extra["jobName"] == f"{cron_name}-2"
    assert extra["tasks"] == [TASK], "figures of the last successful run"
