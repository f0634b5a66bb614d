"""The children of a ComputeTask: its ServiceAccount, the Job running the task, and a callback Job.

- A built-in service (`service.name`) or a running one (`service.url`): the worker runs the task, writes
  each protocol state into the status (a Role grants it `patch` on this ComputeTask's status alone) and
  delivers the TaskUpdate itself.
- The user's image (`service.image`): the image runs with the ServiceTask in `HEADWATER_SERVICE_TASK` and
  leaves its TaskUpdate in its termination message; it gets no API token.

When the task's pod could not deliver the TaskUpdate (an `image` task, a pod that was killed, ran out of
time or could not reach S3), the status names a callback Job, and the worker delivers it from there.
"""

from __future__ import annotations

import uuid
from typing import Any

from headwater_worker.compute.callback import CallbackPolicy
from headwater_worker.compute.config import (
    CALLBACK_ENV,
    CONFIG_ENV,
    FINAL_ERROR_EXIT,
    SERVICE_TASK_ENV,
    CallbackConfig,
    ComputeConfig,
    Limits,
    RemoteSettings,
)
from headwater_worker.compute.protocol import ServiceTask, Task, TaskUpdate

from .. import naming, security
from ..api.computetask import ComputeTaskSpec, ComputeTaskStatus
from ..config import OperatorConfig
from .common import (
    Owner,
    role_binding,
    s3_credentials_env,
    s3_location,
    service_account,
    service_account_name,
    status_writer_role,
    worker_pod_spec,
)

PLURAL = "computetasks"
COMPONENT = "task"
CALLBACK_COMPONENT = "callback"
POD_IP_ENV = "HEADWATER_POD_IP"
CALLBACK_DEADLINE_SECONDS = 900
# The Core engine's services are known by a UUID; one derived from the service keeps it stable.
SERVICE_ID_NAMESPACE = uuid.UUID("5b0f7e1c-6a35-4c59-9c0e-0c7d1e7a2b11")


def job_name(owner: Owner) -> str:
    """The spec never changes, so one name serves for the task's whole life."""
    return naming.child_name(owner.name, COMPONENT)


def callback_job_name(owner: Owner) -> str:
    return naming.child_name(owner.name, CALLBACK_COMPONENT)


def status_writer_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "status-writer")


def task_id(owner: Owner, spec: ComputeTaskSpec) -> str:
    return str(spec.task_id or owner.uid)


def service_id(spec: ComputeTaskSpec) -> uuid.UUID:
    if spec.service_id is not None:
        return uuid.UUID(str(spec.service_id))
    service = spec.service
    return uuid.uuid5(SERVICE_ID_NAMESPACE, service.name or service.image or str(service.url))


def task(owner: Owner, spec: ComputeTaskSpec) -> Task:
    optional = {
        "pipeline_execution_id": spec.pipeline_execution_id,
        "pipeline_step_id": spec.pipeline_step_id,
    }
    return Task.model_validate(
        {
            "id": task_id(owner, spec),
            "data_in": list(spec.data_in),
            "data_out": list(spec.data_out) if spec.data_out is not None else None,
            "status": "pending",
            "service_id": service_id(spec),
            **{key: str(value) for key, value in optional.items() if value is not None},
        }
    )


def callback_policy(config: OperatorConfig) -> CallbackPolicy:
    return CallbackPolicy(attempts=config.callback_attempts, timeout_seconds=config.callback_timeout_seconds)


def worker_config(owner: Owner, spec: ComputeTaskSpec, config: OperatorConfig) -> ComputeConfig:
    return ComputeConfig.model_validate(
        {
            "task": task(owner, spec).model_dump(mode="json"),
            "service": spec.service.name,
            "url": str(spec.service.url).rstrip("/") if spec.service.url is not None else None,
            "s3": s3_location(spec.s3),
            "callbackUrl": str(spec.callback_url) if spec.callback_url is not None else None,
            "deadlineSeconds": spec.active_deadline_seconds,
            "limits": Limits(max_input_bytes=config.compute_max_input_bytes),
            "remote": RemoteSettings(poll_interval_seconds=config.compute_poll_seconds),
            "callback": callback_policy(config),
            "computeTask": f"{owner.namespace}/{owner.name}",
        }
    )


def image_service_task(owner: Owner, spec: ComputeTaskSpec) -> ServiceTask:
    """What an `image` service receives: no key pair (it has `AWS_*` from the Secret) and no callback (its
    termination message is its answer)."""
    return ServiceTask(
        s3_access_key_id="",
        s3_secret_access_key="",
        s3_region=spec.s3.region,
        s3_host=str(spec.s3.endpoint).rstrip("/") if spec.s3.endpoint else "",
        s3_bucket=spec.s3.bucket,
        task=task(owner, spec),
        callback_url="",
    )


def worker_task_pod(owner: Owner, spec: ComputeTaskSpec, config: OperatorConfig) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": CONFIG_ENV, "value": worker_config(owner, spec, config).to_env()},
        {"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        *s3_credentials_env(spec.s3),
    ]
    return worker_pod_spec(owner, config, ["compute", "task"], env, automount_token=True)


def image_task_pod(owner: Owner, spec: ComputeTaskSpec, config: OperatorConfig) -> dict[str, Any]:
    assert spec.service.image is not None
    env = [
        {"name": SERVICE_TASK_ENV, "value": image_service_task(owner, spec).model_dump_json()},
        *s3_credentials_env(spec.s3),
    ]
    pod = worker_pod_spec(owner, config, [], env)
    container = pod["containers"][0]
    del container["command"]
    container.update(
        {
            "name": "service",
            "image": spec.service.image,
            "args": list(spec.service.args),
            "securityContext": security.container_security_context(),
        }
    )
    return pod


def task_job(owner: Owner, spec: ComputeTaskSpec, config: OperatorConfig) -> dict[str, Any]:
    image = spec.service.image is not None
    job: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {
            "metadata": {"labels": naming.labels(owner.kind, owner.name, COMPONENT)},
            "spec": image_task_pod(owner, spec, config) if image else worker_task_pod(owner, spec, config),
        },
    }
    if not image:
        # The worker exits with this code when the task ended in an error no retry would change.
        job["podFailurePolicy"] = {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "worker",
                        "operator": "In",
                        "values": [FINAL_ERROR_EXIT],
                    },
                }
            ]
        }
    if spec.active_deadline_seconds is not None:
        job["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(job_name(owner), COMPONENT),
        "spec": job,
    }


def pending_update(status: ComputeTaskStatus) -> TaskUpdate:
    """The TaskUpdate the status holds for an ended task."""
    return TaskUpdate(
        status=status.status or "error",
        data_out=list(status.data_out),
        error_message=status.error_message,
    )


def callback_job(
    owner: Owner, spec: ComputeTaskSpec, status: ComputeTaskStatus, config: OperatorConfig
) -> dict[str, Any]:
    assert spec.callback_url is not None
    delivery = CallbackConfig(
        url=str(spec.callback_url),
        update=pending_update(status),
        policy=callback_policy(config),
    )
    env = [{"name": CALLBACK_ENV, "value": delivery.to_env()}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(callback_job_name(owner), CALLBACK_COMPONENT),
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": CALLBACK_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": naming.labels(owner.kind, owner.name, CALLBACK_COMPONENT)},
                "spec": worker_pod_spec(owner, config, ["compute", "callback"], env),
            },
        },
    }


def needs_callback_job(status: ComputeTaskStatus | None) -> bool:
    """The status names a callback Job once the task ended without its pod delivering the update."""
    return status is not None and status.callback is not None and status.callback.job_name is not None


def children(
    owner: Owner, spec: ComputeTaskSpec, config: OperatorConfig, status: ComputeTaskStatus | None
) -> list[dict[str, Any]]:
    """Everything the ComputeTask should own now, in the order to apply it."""
    built = [service_account(owner)]
    if spec.service.image is None:
        writer = status_writer_name(owner)
        built += [
            status_writer_role(owner, PLURAL, writer),
            role_binding(owner, writer, service_account_name(owner)),
        ]
    built.append(task_job(owner, spec, config))
    if needs_callback_job(status):
        assert status is not None
        built.append(callback_job(owner, spec, status, config))
    return built
