"""The children of a Connector: a ServiceAccount, and a CronJob (scheduled runs) or a Deployment (a file
connector watching its folder continuously) with the Role and RoleBinding that let it write its figures
into the Connector's status."""

from __future__ import annotations

from typing import Any

from headwater_worker.ingest.config import CONFIG_ENV, CREDENTIALS_DIR_ENV, DATABASE_URL_ENV, IngestConfig

from .. import naming
from ..api.connector import KIND, ConnectorSpec, FileSource
from ..config import OperatorConfig
from .common import (
    WORKER_TMP_BYTES,
    Owner,
    role_binding,
    s3_credentials_env,
    s3_location,
    secret_env,
    service_account,
    status_writer_role,
    worker_pod_spec,
)

COMPONENT = "ingest"
DATA_MOUNT = "/var/lib/headwater/ingest"
MAPPING_DIR = "/etc/headwater/mapping"
CREDENTIALS_DIR = "/var/run/headwater/credentials"
CRONJOB_NAME_LIMIT = 52  # the CronJob controller appends an 11-character suffix to its Jobs' names
BACKOFF_LIMIT = 3
# The largest S3 object the worker downloads to its /tmp: the object, and the UTF-8 copy a Latin-1 CSV needs
# beside it (at most twice its size: each byte above 0x7F takes two), fit. A larger one is rejected unread.
MAX_S3_OBJECT_BYTES = WORKER_TMP_BYTES // 3


class InvalidSpecError(ValueError):
    """A spec the API server accepted but that cannot run as asked; `reason` goes into status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def workload_name(owner: Owner) -> str:
    return naming.child_name(owner.name, COMPONENT, limit=CRONJOB_NAME_LIMIT)


def status_writer_name(owner: Owner) -> str:
    """The name of the Role and RoleBinding that let a watcher write its figures."""
    return naming.child_name(owner.name, "status-writer")


def watches(spec: ConnectorSpec) -> bool:
    return spec.file is not None and spec.file.watch


# -- schedule ------------------------------------------------------------------------------------------


def interval_to_cron(interval: str) -> str:
    """`5m` → `*/5 * * * *`, when a cron expression runs at exactly that interval; refused otherwise."""
    number, unit = int(interval[:-1]), interval[-1]
    minutes = {"s": number / 60, "m": number, "h": number * 60, "d": number * 1440}[unit]
    if minutes != int(minutes) or minutes < 1:
        raise InvalidSpecError(
            "InvalidInterval", f"interval {interval!r}: the shortest schedule is one minute, in whole minutes"
        )
    minutes = int(minutes)
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and minutes < 1440 and 24 % (minutes // 60) == 0:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if minutes == 1440:
        return "0 0 * * *"
    if minutes == 7 * 1440:
        return "0 0 * * 0"
    raise InvalidSpecError(
        "InvalidInterval",
        f"interval {interval!r} has no exact cron equivalent: use a divisor of 60 minutes or of 24 hours, "
        f"1d or 7d, or give a `schedule`",
    )


def schedule_of(spec: ConnectorSpec) -> str:
    if spec.schedule is not None:
        return spec.schedule
    assert spec.interval is not None
    return interval_to_cron(spec.interval)


# -- the worker's configuration ---------------------------------------------------------------------------


def _in_volume(path: str) -> str:
    return f"{DATA_MOUNT}/{path}".rstrip("/")


def _file_config(source: FileSource) -> dict[str, Any]:
    """Where files arrive and where they go: folders of the mounted volume, or prefixes of the bucket (its
    credentials come as environment variables, never here)."""
    settings: dict[str, Any] = {
        "include": list(source.include),
        "stableSeconds": source.stable_seconds,
        "watch": source.watch,
        "pollSeconds": source.poll_seconds,
    }
    if source.s3 is not None:
        settings["s3"] = {
            **s3_location(source.s3),
            "processedPrefix": source.processed_path,
            "rejectedPrefix": source.rejected_path,
            "maxObjectBytes": MAX_S3_OBJECT_BYTES,
        }
        return settings
    assert source.volume is not None
    settings.update(
        {
            "path": _in_volume(source.volume.path),
            "processedPath": _in_volume(source.processed_path),
            "rejectedPath": _in_volume(source.rejected_path),
        }
    )
    return settings


def worker_config(owner: Owner, spec: ConnectorSpec) -> IngestConfig:
    mapping: dict[str, str]
    if spec.mapping.name is not None:
        mapping = {"name": spec.mapping.name}
    else:
        assert spec.mapping.config_map_ref is not None
        mapping = {"path": f"{MAPPING_DIR}/{spec.mapping.config_map_ref.key}"}
    body: dict[str, Any] = {
        "connector": f"{owner.namespace}/{owner.name}",
        "type": spec.type,
        "mapping": mapping,
        "datasourceId": spec.datasource_id,
        "deviceIds": list(spec.device_ids),
        "lookbackDays": spec.lookback_days,
        "stagingRetentionDays": spec.staging_retention_days,
    }
    if spec.file is not None:
        body["file"] = _file_config(spec.file)
    if spec.http is not None:
        http = spec.http
        settings = {
            "baseUrl": http.base_url,
            "path": http.path,
            "recordsPath": http.records_path,
            "headers": dict(http.headers),
            "auth": http.auth.model_dump(exclude_none=True) if http.auth else None,
            "timeoutSeconds": http.timeout_seconds,
            "maxRetries": http.max_retries,
        }
        body["http"] = {key: value for key, value in settings.items() if value is not None}
    return IngestConfig.model_validate({key: value for key, value in body.items() if value is not None})


def pod_spec(
    owner: Owner, spec: ConnectorSpec, config: OperatorConfig, *, restart_policy: str
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": CONFIG_ENV, "value": worker_config(owner, spec).to_env()},
        secret_env(DATABASE_URL_ENV, spec.database.secret_ref.name, spec.database.secret_ref.key),
    ]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.file is not None and spec.file.volume is not None:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": spec.file.volume.claim_name}})
        mounts.append({"name": "data", "mountPath": DATA_MOUNT})
    if spec.file is not None and spec.file.s3 is not None:
        env.extend(s3_credentials_env(spec.file.s3))
    if spec.mapping.config_map_ref is not None:
        ref = spec.mapping.config_map_ref
        volumes.append(
            {"name": "mapping", "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": ref.key}]}}
        )
        mounts.append({"name": "mapping", "mountPath": MAPPING_DIR, "readOnly": True})
    if spec.credentials_secret_ref is not None:
        volumes.append(
            {
                "name": "credentials",
                "secret": {"secretName": spec.credentials_secret_ref.name, "defaultMode": 0o400},
            }
        )
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
        env.append({"name": CREDENTIALS_DIR_ENV, "value": CREDENTIALS_DIR})
    return worker_pod_spec(
        owner,
        config,
        ["ingest", "run"],
        env,
        volumes,
        mounts,
        restart_policy=restart_policy,
        # A watcher never terminates, so it has no termination message to report through: it writes its
        # figures into the status itself, with its ServiceAccount's token (see common.status_writer_role).
        automount_token=watches(spec),
    )


def cronjob(owner: Owner, spec: ConnectorSpec, config: OperatorConfig) -> dict[str, Any]:
    labels = naming.labels(owner.kind, owner.name, COMPONENT)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": owner.metadata(workload_name(owner), COMPONENT),
        "spec": {
            "schedule": schedule_of(spec),
            "suspend": spec.suspend,
            # Two runs at once would fetch the same windows and race for the same files.
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    # A run killed half-way is retried: it resumes from the cursors and files it left.
                    "backoffLimit": BACKOFF_LIMIT,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": pod_spec(owner, spec, config, restart_policy="Never"),
                    },
                },
            },
        },
    }


def deployment(owner: Owner, spec: ConnectorSpec, config: OperatorConfig) -> dict[str, Any]:
    labels = naming.labels(owner.kind, owner.name, COMPONENT)
    selector = {naming.label_key(owner.kind): owner.name, "app.kubernetes.io/component": COMPONENT}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(workload_name(owner), COMPONENT),
        "spec": {
            "replicas": 0 if spec.suspend else 1,
            # One watcher at a time: a rolling update would have two moving the same files.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(owner, spec, config, restart_policy="Always"),
            },
        },
    }


def children(owner: Owner, spec: ConnectorSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything the Connector should own, in the order to apply it; raises InvalidSpecError."""
    if watches(spec):
        # The grant before the watcher, so that its first status write is allowed.
        return [
            service_account(owner),
            status_writer_role(owner, KIND.plural, status_writer_name(owner)),
            role_binding(owner, status_writer_name(owner)),
            deployment(owner, spec, config),
        ]
    return [service_account(owner), cronjob(owner, spec, config)]
