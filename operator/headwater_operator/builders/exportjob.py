"""The children of an ExportJob: a ServiceAccount, and a Job (one-off) or a CronJob (scheduled)."""

from __future__ import annotations

from typing import Any

from headwater_worker.export.config import ExportConfig

from .. import naming
from ..api.exportjob import ExportJobSpec
from ..config import OperatorConfig
from .common import Owner, s3_credentials_env, s3_location, secret_env, service_account, worker_pod_spec

COMPONENT = "export"
TASKS_DIR = "/etc/headwater/export-tasks"
VOLUME_MOUNT = "/var/lib/headwater/export"
CRONJOB_NAME_LIMIT = 52  # the CronJob controller appends an 11-character suffix to its Jobs' names


def job_name(owner: Owner) -> str:
    """One Job per spec generation: a changed spec runs anew, a restarted operator finds the same Job."""
    return naming.child_name(owner.name, COMPONENT, owner.generation)


def cronjob_name(owner: Owner) -> str:
    return naming.child_name(owner.name, COMPONENT, limit=CRONJOB_NAME_LIMIT)


def worker_config(owner: Owner, spec: ExportJobSpec) -> ExportConfig:
    destination: dict[str, Any]
    if spec.destination.s3 is not None:
        destination = {"s3": s3_location(spec.destination.s3)}
    else:
        assert spec.destination.volume is not None
        volume = spec.destination.volume
        destination = {
            "volume": {
                "path": f"{VOLUME_MOUNT}/{volume.path}".rstrip("/"),
                "uriPrefix": f"pvc://{volume.claim_name}/{volume.path}".rstrip("/"),
            }
        }
    return ExportConfig.model_validate(
        {
            "tasks": [t.model_dump(exclude_none=True) for t in spec.tasks or ()],
            "tasksDir": TASKS_DIR if spec.tasks_from is not None else None,
            "only": spec.only,
            "destination": destination,
            "gzipLevel": spec.gzip_level,
            "retention": {"keepLast": spec.retention.keep_last}
            if spec.retention and spec.retention.keep_last
            else None,
            "exportJob": f"{owner.namespace}/{owner.name}",
        }
    )


def pod_spec(owner: Owner, spec: ExportJobSpec, config: OperatorConfig) -> dict[str, Any]:
    env = [
        {
            "name": "HEADWATER_EXPORT_CONFIG",
            "value": worker_config(owner, spec).to_env(),
        },
        secret_env("DATABASE_URL", spec.database.secret_ref.name, spec.database.secret_ref.key),
    ]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.destination.s3 is not None:
        env.extend(s3_credentials_env(spec.destination.s3))
    if spec.destination.volume is not None:
        volumes.append(
            {
                "name": "destination",
                "persistentVolumeClaim": {"claimName": spec.destination.volume.claim_name},
            }
        )
        mounts.append({"name": "destination", "mountPath": VOLUME_MOUNT})
    if spec.tasks_from is not None:
        volumes.append({"name": "tasks", "configMap": {"name": spec.tasks_from.config_map_ref.name}})
        mounts.append({"name": "tasks", "mountPath": TASKS_DIR, "readOnly": True})
    return worker_pod_spec(owner, config, ["export"], env, volumes, mounts)


def job_spec(owner: Owner, spec: ExportJobSpec, config: OperatorConfig) -> dict[str, Any]:
    job: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {
            "metadata": {"labels": naming.labels(owner.kind, owner.name, COMPONENT)},
            "spec": pod_spec(owner, spec, config),
        },
    }
    if spec.active_deadline_seconds is not None:
        job["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return job


def job(owner: Owner, spec: ExportJobSpec, config: OperatorConfig) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(job_name(owner), COMPONENT),
        "spec": {**job_spec(owner, spec, config), "suspend": spec.suspend},
    }


def cronjob(owner: Owner, spec: ExportJobSpec, config: OperatorConfig) -> dict[str, Any]:
    assert spec.schedule is not None
    cron: dict[str, Any] = {
        "schedule": spec.schedule,
        "suspend": spec.suspend,
        # An export deletes what it exported: two runs at once would race for the same rows.
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": naming.labels(owner.kind, owner.name, COMPONENT)},
            "spec": job_spec(owner, spec, config),
        },
    }
    if spec.time_zone is not None:
        cron["timeZone"] = spec.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": owner.metadata(cronjob_name(owner), COMPONENT),
        "spec": cron,
    }


def children(owner: Owner, spec: ExportJobSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything the ExportJob should own, in the order to apply it."""
    run = cronjob(owner, spec, config) if spec.schedule is not None else job(owner, spec, config)
    return [service_account(owner), run]
