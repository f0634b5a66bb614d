"""The ComputeTask benchmark's baseline: an `image-rotate` service of the seed's design, as a long-running
FastAPI app (`uvicorn bench.compute_service:app`).

As the Core engine's services do it: `POST /compute` takes the ServiceTask, queues it and answers at once;
one background worker takes the tasks in turn, reads the inputs from S3 (a client made from the task's own
key pair), rotates the image with Pillow as Headwater's `image-rotate` does, writes the result to the task's
`data_out` key and PATCHes the TaskUpdate to the task's `callback_url`. `GET /status` and
`GET /tasks/{id}/status` answer as the protocol says.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config
from fastapi import FastAPI, HTTPException
from headwater_worker.compute.protocol import (
    SERVICE_AVAILABLE,
    TASK_QUEUED,
    ServiceTask,
    StatusAnswer,
    TaskStatus,
    TaskUpdate,
)
from headwater_worker.compute.services.image_rotate import rotated, rotation_degrees
from PIL import Image

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("bench.compute_service")

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}
CALLBACK_TIMEOUT_SECONDS = 10.0


def s3_client(task: ServiceTask) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=task.s3_host,
        region_name=task.s3_region,
        aws_access_key_id=task.s3_access_key_id,
        aws_secret_access_key=task.s3_secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def rotate(image_bytes: bytes, rotation: str) -> tuple[bytes, str]:
    """The image turned clockwise by `rotation` degrees, in its own format; and that format's MIME type."""
    with Image.open(io.BytesIO(image_bytes), formats=list(FORMATS)) as image:
        image.load()
        kind = str(image.format)
        out = io.BytesIO()
        rotated(image, rotation_degrees(rotation)).save(out, kind)
    return out.getvalue(), FORMATS[kind]


class RotateService:
    """The queue, the task statuses and the one worker thread taking tasks from the queue in turn."""

    def __init__(self) -> None:
        self.tasks: queue.Queue[ServiceTask] = queue.Queue()
        self.statuses: dict[uuid.UUID, TaskStatus] = {}
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS)
        self.worker = threading.Thread(target=self._work, name="tasks", daemon=True)

    def add(self, task: ServiceTask) -> None:
        self._set(task, "pending")
        self.tasks.put(task)

    def status(self, task_id: uuid.UUID) -> TaskStatus | None:
        with self.lock:
            return self.statuses.get(task_id)

    def _set(self, task: ServiceTask, status: TaskStatus) -> None:
        with self.lock:
            self.statuses[task.task.id] = status

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            try:
                update = self._process(task)
            except Exception as failure:  # a task that fails is reported, and the next one taken
                log.exception("task %s failed", task.task.id)
                update = TaskUpdate(status="error", error_message=str(failure))
            self._set(task, update.status)
            try:
                self.http.patch(task.callback_url, json=update.model_dump(mode="json"))
            except httpx.HTTPError as failure:
                log.warning("the callback of task %s failed: %s", task.task.id, failure)

    def _process(self, task: ServiceTask) -> TaskUpdate:
        self._set(task, "fetching")
        s3 = s3_client(task)
        image_key, rotation_key = task.task.data_in
        image = s3.get_object(Bucket=task.s3_bucket, Key=image_key)["Body"].read()
        rotation = s3.get_object(Bucket=task.s3_bucket, Key=rotation_key)["Body"].read().decode().strip()
        self._set(task, "processing")
        result, mime_type = rotate(image, rotation)
        self._set(task, "saving")
        key = task.task.data_out[0] if task.task.data_out else f"{task.task.id}/result.png"
        s3.put_object(Bucket=task.s3_bucket, Key=key, Body=result, ContentType=mime_type)
        return TaskUpdate(status="finished", data_out=[key])


service = RotateService()


@contextlib.asynccontextmanager
async def _worker_running(_: FastAPI) -> AsyncIterator[None]:
    service.worker.start()
    yield


app = FastAPI(title="image-rotate (benchmark baseline)", lifespan=_worker_running)


@app.get("/status")
async def service_status() -> StatusAnswer:
    return SERVICE_AVAILABLE


@app.post("/compute")
async def compute(task: ServiceTask) -> StatusAnswer:
    service.add(task)
    return TASK_QUEUED


@app.get("/tasks/{task_id}/status")
async def task_status(task_id: uuid.UUID) -> dict[str, Any]:
    status = service.status(task_id)
    if status is None:
        raise HTTPException(status_code=404, detail="Task not found")
    return {"status": status}
