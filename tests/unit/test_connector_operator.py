"""Connector children and status, as pure functions: spec in, manifests out; children in, status out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from headwater_operator.api.connector import ConnectorSpec
from headwater_operator.builders import connector as build
from headwater_operator.builders.common import Owner
from headwater_operator.conditions import status_patch
from headwater_operator.config import OperatorConfig
from headwater_operator.status import connector as observe
from headwater_worker.ingest.config import STATUS_FIGURES, IngestConfig
from pydantic import ValidationError

OWNER = Owner("Connector", "farm", "team-a", "uid-1", 2)
CONFIG = OperatorConfig(worker_image="worker:test")


def spec(**fields: Any) -> ConnectorSpec:
    body: dict[str, Any] = {
        "type": "file",
        "interval": "5m",
        "mapping": {"name": "energy_hourly"},
        "database": {"secretRef": {"name": "db"}},
        "file": {"volume": {"claimName": "landing", "path": "incoming"}},
    }
    body.update(fields)
    return ConnectorSpec.model_validate(body)


def of_kind(children: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [child] = [c for c in children if c["kind"] == kind]
    return child


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    pod = (
        manifest["spec"].get("jobTemplate", {}).get("spec", {}).get("template")
        or manifest["spec"]["template"]
    )
    [container] = pod["spec"]["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize(
    ("interval", "cron"),
    [
        ("1m", "* * * * *"),
        ("5m", "*/5 * * * *"),
        ("30m", "*/30 * * * *"),
        ("60m", "0 * * * *"),
        ("120s", "*/2 * * * *"),
        ("1h", "0 * * * *"),
        ("6h", "0 */6 * * *"),
        ("24h", "0 0 * * *"),
        ("1d", "0 0 * * *"),
        ("7d", "0 0 * * 0"),
    ],
)
def test_exact_intervals_become_cron_expressions(interval: str, cron: str) -> None:
    assert build.interval_to_cron(interval) == cron


@pytest.mark.parametrize("interval", ["30s", "90s", "7m", "45m", "5h", "2d", "90m"])
def test_inexact_intervals_are_refused_clearly(interval: str) -> None:
    with pytest.raises(build.InvalidSpecError) as refusal:
        build.interval_to_cron(interval)
    assert refusal.value.reason == "InvalidInterval"
    assert interval in refusal.value.message


def test_a_scheduled_file_connector_is_a_cronjob_with_its_volume_and_config() -> None:
    account, cronjob = build.children(OWNER, spec(), CONFIG)
    assert account["kind"] == "ServiceAccount"
    assert cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "farm-ingest"
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == build.BACKOFF_LIMIT
    pod = job["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "-m", "headwater_worker", "ingest", "run"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "landing"}} in pod["volumes"]
    env = env_of(cronjob)
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "db", "key": "dsn"}}
    config = IngestConfig.from_env(env["HEADWATER_INGEST_CONFIG"])
    assert config.connector == "team-a/farm"
    assert config.mapping.name == "energy_hourly"
    assert config.file is not None
    assert config.file.path == "/var/lib/headwater/ingest/incoming"
    assert config.file.processed_path == "/var/lib/headwater/ingest/processed"
    assert config.file.rejected_path == "/var/lib/headwater/ingest/rejected"


def test_a_watching_file_connector_is_a_single_replica_deployment() -> None:
    watching = spec(interval=None, file={"volume": {"claimName": "landing"}, "watch": True, "pollSeconds": 2})
    deployment = of_kind(build.children(OWNER, watching, CONFIG), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    config = IngestConfig.from_env(env_of(deployment)["HEADWATER_INGEST_CONFIG"])
    assert config.file is not None
    assert config.file.watch
    assert config.file.poll_seconds == 2
    suspended = spec(interval=None, suspend=True, file={"volume": {"claimName": "landing"}, "watch": True})
    assert of_kind(build.children(OWNER, suspended, CONFIG), "Deployment")["spec"]["replicas"] == 0


def test_only_a_watcher_gets_a_token_and_a_role_to_write_its_own_status() -> None:
    scheduled = build.children(OWNER, spec(), CONFIG)
    assert [child["kind"] for child in scheduled] == ["ServiceAccount", "CronJob"]
    pod = scheduled[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False

    watching = build.children(
        OWNER, spec(interval=None, file={"volume": {"claimName": "x"}, "watch": True}), CONFIG
    )
    assert [child["kind"] for child in watching] == ["ServiceAccount", "Role", "RoleBinding", "Deployment"]
    account, role, binding, deployment = watching
    assert account["automountServiceAccountToken"] is False, "only the watcher's pod asks for the token"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert role["rules"] == [
        {
            "apiGroups": ["headwater.dev"],
            "resources": ["connectors/status"],
            "resourceNames": ["farm"],
            "verbs": ["patch"],
        }
    ]
    for grant in (role, binding):
        assert grant["metadata"]["name"] == "farm-status-writer"
        assert grant["metadata"]["namespace"] == "team-a"
        assert grant["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert grant["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "headwater-operator"
        assert grant["metadata"]["labels"]["headwater.dev/connector"] == "farm"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "farm-status-writer",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "team-a"}
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_an_api_connector_gets_its_credentials_as_a_secret_volume() -> None:
    tago = spec(
        type="tago",
        file=None,
        interval=None,
        schedule="@hourly",
        mapping={"configMapRef": {"name": "maps", "key": "tago.yaml"}},
        deviceIds=["d1", "d2"],
        credentialsSecretRef={"name": "tago-tokens"},
        lookbackDays=3,
        http={"timeoutSeconds": 10, "maxRetries": 5},
    )
    _, cronjob = build.children(OWNER, tago, CONFIG)
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "tago-tokens"
    assert volumes["mapping"]["configMap"] == {
        "name": "maps",
        "items": [{"key": "tago.yaml", "path": "tago.yaml"}],
    }
    env = env_of(cronjob)
    assert env["HEADWATER_CREDENTIALS_DIR"] == build.CREDENTIALS_DIR
    config = IngestConfig.from_env(env["HEADWATER_INGEST_CONFIG"])
    assert config.mapping.path == "/etc/headwater/mapping/tago.yaml"
    assert config.device_ids == ["d1", "d2"]
    assert config.lookback_days == 3
    assert config.http is not None
    assert (config.http.timeout_seconds, config.http.max_retries) == (10, 5)
    assert "tago-tokens" not in env["HEADWATER_INGEST_CONFIG"]


def test_an_s3_file_source_hands_over_its_prefixes_and_takes_its_keys_from_the_secret() -> None:
    s3 = spec(
        file={
            "s3": {
                "bucket": "landing",
                "prefix": "meters/incoming",
                "endpoint": "http://minio.storage:9000",
                "region": "eu-west-1",
                "forcePathStyle": True,
                "credentialsSecretRef": {"name": "minio", "accessKeyIdKey": "user"},
            },
            "include": ["*.csv"],
            "processedPath": "meters/done",
        }
    )
    _, cronjob = build.children(OWNER, s3, CONFIG)
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"], "no data volume: objects go to /tmp"
    env = env_of(cronjob)
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "minio", "key": "user"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "minio", "key": "AWS_SECRET_ACCESS_KEY"}}
    config = IngestConfig.from_env(env["HEADWATER_INGEST_CONFIG"])
    assert config.file is not None
    assert (config.file.path, config.file.processed_path, config.file.rejected_path) == (None, None, None)
    assert config.file.include == ["*.csv"]
    location = config.file.s3
    assert location is not None
    assert (location.bucket, location.folder) == ("landing", "meters/incoming/")
    assert (location.endpoint, location.region, location.force_path_style) == (
        "http://minio.storage:9000",
        "eu-west-1",
        True,
    )
    assert (location.processed_folder, location.rejected_folder) == ("meters/done/", "rejected/")
    assert "credentials" not in env["HEADWATER_INGEST_CONFIG"], "the Secret stays out of the config"


def test_an_s3_file_source_downloads_no_object_larger_than_a_third_of_the_pods_tmp() -> None:
    _, cronjob = build.children(OWNER, spec(file={"s3": {"bucket": "landing"}}), CONFIG)
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [tmp] = [volume for volume in pod["volumes"] if volume["name"] == "tmp"]
    assert tmp["emptyDir"]["sizeLimit"] == "1Gi"
    config = IngestConfig.from_env(env_of(cronjob)["HEADWATER_INGEST_CONFIG"])
    assert config.file is not None
    assert config.file.s3 is not None
    # The object and the UTF-8 copy of a Latin-1 CSV (up to twice its size) fit in /tmp.
    assert config.file.s3.max_object_bytes == (1 << 30) // 3
    assert 3 * config.file.s3.max_object_bytes <= 1 << 30


def test_an_s3_file_source_without_a_secret_uses_ambient_credentials() -> None:
    s3 = spec(interval=None, file={"s3": {"bucket": "landing"}, "watch": True})
    deployment = of_kind(build.children(OWNER, s3, CONFIG), "Deployment")
    env = env_of(deployment)
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    config = IngestConfig.from_env(env["HEADWATER_INGEST_CONFIG"])
    assert config.file is not None
    assert config.file.s3 is not None
    assert (config.file.s3.folder, config.file.s3.endpoint) == ("", None)
    assert config.file.s3.processed_folder == "processed/"


@pytest.mark.parametrize(
    ("fields", "days"), [({}, 7), ({"stagingRetentionDays": 30}, 30), ({"stagingRetentionDays": 0}, 0)]
)
def test_the_staging_retention_reaches_the_worker(fields: dict[str, Any], days: int) -> None:
    _, cronjob = build.children(OWNER, spec(**fields), CONFIG)
    config = IngestConfig.from_env(env_of(cronjob)["HEADWATER_INGEST_CONFIG"])
    assert config.staging_retention_days == days


@pytest.mark.parametrize("days", [-1, 3651])
def test_a_staging_retention_out_of_range_is_refused(days: int) -> None:
    with pytest.raises(ValidationError, match="stagingRetentionDays"):
        spec(stagingRetentionDays=days)


def test_children_are_deterministic() -> None:
    assert build.children(OWNER, spec(), CONFIG) == build.children(OWNER, spec(), CONFIG)


# -- status -------------------------------------------------------------------------------------------------

SUMMARY = {
    "rowsLoaded": 48,
    "rowsRejected": 2,
    "batches": 2,
    "qualityScore": 0.96,
    "cursor": "2026-01-01T10:00:00Z",
    "lastBatchId": "b-2",
    "run": {"batches": 1, "rowsLoaded": 24},
}


def run_job(name: str, created: str, state: str, message: dict[str, Any] | None = None) -> tuple[Any, Any]:
    conditions = {
        "succeeded": [{"type": "Complete", "status": "True"}],
        "failed": [{"type": "Failed", "status": "True"}],
    }
    job = {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "ownerReferences": [{"kind": "CronJob", "name": "farm-ingest"}],
        },
        "status": {"conditions": conditions.get(state, []), "startTime": created, "completionTime": created},
    }
    phase = {"succeeded": "Succeeded", "failed": "Failed"}.get(state, "Running")
    terminated = {"terminated": {"message": json.dumps(message)}} if message else {}
    pod = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": name}, "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "worker", "state": terminated}]},
    }
    return job, pod


CRONJOB = {"metadata": {"name": "farm-ingest"}, "status": {"lastScheduleTime": "2026-01-01T10:05:00Z"}}


def test_figures_come_from_the_last_finished_run() -> None:
    old_job, old_pod = run_job(
        "farm-ingest-1", "2026-01-01T09:00:00Z", "succeeded", {**SUMMARY, "rowsLoaded": 24}
    )
    new_job, new_pod = run_job("farm-ingest-2", "2026-01-01T10:00:00Z", "succeeded", SUMMARY)
    outcome, extra = observe.derive(OWNER, spec(), CRONJOB, [old_job, new_job], [old_pod, new_pod])
    assert (outcome.phase, outcome.state) == ("Scheduled", "ready")
    assert extra["rowsLoaded"] == 48
    assert extra["cursor"] == "2026-01-01T10:00:00Z"
    assert extra["lastBatchId"] == "b-2"
    assert extra["lastRunTime"] == "2026-01-01T10:05:00Z"
    assert extra["lastSuccessfulTime"] == "2026-01-01T10:00:00Z"
    assert extra["workloadName"] == "farm-ingest"


def test_a_failed_run_reports_its_reason_and_what_it_had_done() -> None:
    job, pod = run_job(
        "farm-ingest-3",
        "2026-01-01T11:00:00Z",
        "failed",
        {**SUMMARY, "error": {"reason": "SourceUnavailable", "message": "GET /data: 500 (after 4 attempts)"}},
    )
    outcome, extra = observe.derive(OWNER, spec(), CRONJOB, [job], [pod])
    assert (outcome.phase, outcome.state, outcome.reason) == ("Failed", "stalled", "SourceUnavailable")
    assert "500 (after 4 attempts)" in outcome.message
    assert extra["batches"] == 2


def test_a_running_run_and_a_missing_cronjob() -> None:
    job, pod = run_job("farm-ingest-4", "2026-01-01T12:00:00Z", "running")
    assert observe.derive(OWNER, spec(), CRONJOB, [job], [pod])[0].phase == "Running"
    assert observe.derive(OWNER, spec(), None, [], [])[0].phase == "Pending"


def test_an_inexact_interval_stalls() -> None:
    outcome, _ = observe.derive(OWNER, spec(interval="7m"), None, [], [])
    assert (outcome.phase, outcome.reason) == ("Stalled", "InvalidInterval")


def test_a_watcher_is_ready_once_available() -> None:
    watching = spec(interval=None, file={"volume": {"claimName": "landing"}, "watch": True})
    deployment: dict[str, Any] = {"metadata": {"name": "farm-ingest"}, "status": {"availableReplicas": 1}}
    assert observe.derive(OWNER, watching, deployment, [], [])[0].phase == "Watching"
    deployment["status"] = {}
    assert observe.derive(OWNER, watching, deployment, [], [])[0].phase == "Pending"
    blocked = {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "db" not found',
                        }
                    }
                }
            ]
        }
    }
    outcome, _ = observe.derive(OWNER, watching, deployment, [], [blocked])
    assert (outcome.phase, outcome.reason) == ("Stalled", "SecretNotFound")


def test_a_watchers_status_leaves_the_figures_to_its_worker() -> None:
    watching = spec(interval=None, file={"volume": {"claimName": "landing"}, "watch": True})
    deployment = {"metadata": {"name": "farm-ingest"}, "status": {"availableReplicas": 1}}
    outcome, extra = observe.derive(OWNER, watching, deployment, [], [])
    # The operator merge-patches only the keys it derives: the figures the worker wrote stay.
    patch = status_patch({"rowsLoaded": 24, "lastLoadTime": "2026-01-01T10:00:00Z"}, outcome, 2, extra)
    assert not set(patch) & {*STATUS_FIGURES, "lastLoadTime"}


def test_malformed_figures_are_dropped() -> None:
    assert observe.figures({"rowsLoaded": "many"}) == {}
    assert observe.figures(None) == {}
