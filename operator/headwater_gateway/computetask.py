"""A Core engine's ServiceTask as Headwater objects: a `ComputeTask`, and a Secret for the bucket's key pair.

Pure functions: the ServiceTask in, manifests out. The key pair never enters the ComputeTask: it goes into a
Secret that the ComputeTask references (and, once created, owns). Names derive from the task id, so that the
same task posted twice finds what the first post made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from headwater_operator.api.common import API_VERSION
from headwater_operator.api.computetask import ComputeTaskSpec
from headwater_worker.compute.protocol import ServiceTask
from pydantic import ValidationError

from .problems import FieldError, InvalidFieldsError

MANAGED_BY = {"app.kubernetes.io/managed-by": "headwater-gateway"}
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - the name of a key, not a secret
DEFAULT_REGION = "us-east-1"

# Where each ComputeTask field comes from in the ServiceTask, so that an error names what the client sent.
SERVICE_TASK_FIELDS = {
    ("dataIn",): "task.data_in",
    ("dataOut",): "task.data_out",
    ("s3", "bucket"): "s3_bucket",
    ("s3", "endpoint"): "s3_host",
    ("s3", "region"): "s3_region",
    ("callbackUrl",): "callback_url",
    ("taskId",): "task.id",
    ("serviceId",): "task.service_id",
    ("pipelineExecutionId",): "task.pipeline_execution_id",
    ("pipelineStepId",): "task.pipeline_step_id",
}


def task_name(task_id: UUID) -> str:
    """The ComputeTask of a task id (`task-<uuid>`: a valid name, short enough for its Jobs' names)."""
    return f"task-{task_id}"


def credentials_name(task_id: UUID) -> str:
    return f"{task_name(task_id)}-s3"


@dataclass(frozen=True)
class TaskObjects:
    """What one ServiceTask becomes: the ComputeTask and, when the task carries a key pair, its Secret."""

    compute_task: dict[str, Any]
    credentials: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.compute_task["metadata"]["name"])


def task_objects(
    service_task: ServiceTask, service: str, namespace: str, *, force_path_style: bool
) -> TaskObjects:
    """The ComputeTask (running built-in `service`) and Secret for `service_task`. Raises
    `InvalidFieldsError` naming the ServiceTask's fields when it does not make a valid ComputeTask."""
    task = service_task.task
    has_keys = bool(service_task.s3_access_key_id or service_task.s3_secret_access_key)
    s3: dict[str, Any] = {
        "bucket": service_task.s3_bucket,
        "region": service_task.s3_region or DEFAULT_REGION,
    }
    if service_task.s3_host:
        s3 |= {"endpoint": service_task.s3_host, "forcePathStyle": force_path_style}
    if has_keys:
        s3["credentialsSecretRef"] = {"name": credentials_name(task.id)}
    spec: dict[str, Any] = {
        "service": {"name": service},
        "dataIn": task.data_in,
        "s3": s3,
        "callbackUrl": service_task.callback_url,
        "taskId": str(task.id),
    }
    if task.data_out is not None:
        spec["dataOut"] = task.data_out
    for field, value in (
        ("serviceId", task.service_id),
        ("pipelineExecutionId", task.pipeline_execution_id),
        ("pipelineStepId", task.pipeline_step_id),
    ):
        if value is not None:
            spec[field] = str(value)
    validated = validated_spec(spec)
    metadata = {"name": task_name(task.id), "namespace": namespace, "labels": dict(MANAGED_BY)}
    compute_task = {
        "apiVersion": API_VERSION,
        "kind": "ComputeTask",
        "metadata": metadata,
        "spec": validated.to_wire(),
    }
    credentials = None
    if has_keys:
        credentials = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": credentials_name(task.id),
                "namespace": namespace,
                "labels": dict(MANAGED_BY),
            },
            "type": "Opaque",
            "stringData": {
                ACCESS_KEY_ID: service_task.s3_access_key_id,
                SECRET_ACCESS_KEY: service_task.s3_secret_access_key,
            },
        }
    return TaskObjects(compute_task, credentials)


def validated_spec(spec: dict[str, Any]) -> ComputeTaskSpec:
    try:
        return ComputeTaskSpec.model_validate(spec)
    except ValidationError as error:
        raise InvalidFieldsError([_service_task_error(item) for item in error.errors()]) from None


def _service_task_error(item: Any) -> FieldError:
    location = tuple(item.get("loc", ()))
    for prefix, field in SERVICE_TASK_FIELDS.items():
        if location[: len(prefix)] == prefix:
            rest = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in location[len(prefix) :]
            )
            return FieldError(field=field + rest, location="body", message=str(item.get("msg")))
    return FieldError(
        field=".".join(map(str, location)) or "body", location="body", message=str(item.get("msg"))
    )


def same_task(existing: dict[str, Any], wanted: TaskObjects) -> bool:
    """Whether a ComputeTask found under the task's name is this task (its spec, defaults applied)."""
    try:
        found = ComputeTaskSpec.model_validate(existing.get("spec") or {})
    except ValidationError:
        return False
    return found == ComputeTaskSpec.model_validate(wanted.compute_task["spec"])


def owner_reference(compute_task: dict[str, Any]) -> dict[str, Any]:
    """Makes the ComputeTask own its Secret: deleting the task deletes the key pair."""
    metadata = compute_task["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeTask",
        "name": metadata["name"],
        "uid": metadata["uid"],
    }
