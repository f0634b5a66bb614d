"""One task, start to end: check the inputs, fetch them, process, save the outputs.

A built-in service runs here, on local copies of its inputs; a `url` service is handed the task and does
its own fetching and saving, while this pod waits for its TaskUpdate. Either way the task's states are
entered on the `StageClock`, and a `TaskUpdate` comes out.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..logs import error_line
from .config import ComputeConfig
from .errors import TaskError
from .protocol import ServiceTask, TaskUpdate
from .services import ComputeService, ServiceError, TaskInput
from .stages import StageClock
from .storage import TaskObjects, input_types, match_fields, output_key

DEADLINE_RESERVE_SECONDS = 10.0


def run_builtin(
    config: ComputeConfig, service: ComputeService, objects: TaskObjects, clock: StageClock
) -> TaskUpdate:
    """Raises `TaskError` (the task will never succeed) or `StorageError` (S3 failed: worth a retry)."""
    task, info = config.task, service.info
    clock.enter("fetching")
    types = input_types(task.data_in, info.data_in_fields)
    if task.data_out is not None:
        match_fields(task.data_out, info.data_out_fields, "outputs")
    objects.sizes(task.data_in, config.limits.max_input_bytes)
    with tempfile.TemporaryDirectory(prefix="task-") as folder:
        downloads, workdir = Path(folder) / "inputs", Path(folder) / "outputs"
        downloads.mkdir()
        workdir.mkdir()
        inputs = []
        for index, (key, field, mime_type) in enumerate(
            zip(task.data_in, info.data_in_fields, types, strict=True)
        ):
            path = downloads / f"{index}{Path(key).suffix.lower()}"
            objects.download(key, path)
            inputs.append(TaskInput(field.name, key, mime_type, path))
        clock.enter("processing")
        try:
            outputs = list(service.process(inputs, workdir))
        except ServiceError as refused:
            raise TaskError(str(refused)) from None
        except Exception as crash:
            raise TaskError(f"service {info.slug!r} failed: {error_line(crash)}", "ServiceFailed") from crash
        if [o.field for o in outputs] != [f.name for f in info.data_out_fields]:
            raise TaskError(
                f"service {info.slug!r} returned outputs {[o.field for o in outputs]}, not "
                f"{[f.name for f in info.data_out_fields]}",
                "ServiceFailed",
            )
        clock.enter("saving")
        keys = list(task.data_out or (output_key(str(task.id), o.field, o.mime_type) for o in outputs))
        objects.publish(
            [(o.path, key, o.mime_type) for o, key in zip(outputs, keys, strict=True)],
            {"headwater-task-id": str(task.id), **{k: v for o in outputs for k, v in o.metadata.items()}},
        )
    clock.enter("finished")
    return TaskUpdate(data_out=keys, status="finished")


def service_task(config: ComputeConfig, env: Mapping[str, str], callback_url: str) -> ServiceTask:
    """The task as a `url` service receives it: the protocol hands it the bucket's key pair (and
    `run_remote` its own receiver as `callback_url`)."""
    return ServiceTask(
        s3_access_key_id=env.get("AWS_ACCESS_KEY_ID", ""),
        s3_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
        s3_region=config.s3.region,
        s3_host=config.s3.endpoint or f"https://s3.{config.s3.region}.amazonaws.com",
        s3_bucket=config.s3.bucket,
        task=config.task,
        callback_url=callback_url,
    )


def run_remote(
    config: ComputeConfig, objects: TaskObjects, clock: StageClock, env: Mapping[str, str]
) -> TaskUpdate:
    """Hand the task to the `url` service and wait for its TaskUpdate, or the deadline."""
    from .remote import run_remote as wait_for_service

    assert config.url is not None
    objects.sizes(config.task.data_in, config.limits.max_input_bytes)
    deadline = None
    if config.deadline_seconds:
        # Stop waiting before the Job's own deadline stops the pod, to report the error and deliver it.
        reserve = min(DEADLINE_RESERVE_SECONDS, config.deadline_seconds / 4)
        deadline = time.monotonic() + config.deadline_seconds - reserve
    clock.enter("pending")
    update = wait_for_service(
        config.url,
        service_task(config, env, ""),
        deadline=deadline,
        poll_interval=config.remote.poll_interval_seconds,
        receiver_host=config.remote.receiver_host,
        advertised_host=env.get(config.remote.advertised_host_env) or "127.0.0.1",
        on_status=clock.enter,
    )
    clock.enter(update.status)
    return update
