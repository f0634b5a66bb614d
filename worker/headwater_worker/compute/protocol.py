"""The compute service protocol's wire models, as a Core engine and its services exchange them.

One set of models serves the worker (the body it POSTs to a `url` service, the TaskUpdate it PATCHes), the
operator (the status values a ComputeTask reports) and the gateway (the `/compute` endpoints). Unknown
fields are accepted and ignored, as the protocol asks: a Core engine adds `created_at` / `updated_at`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

TaskStatus = Literal[
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
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
# The states a service moves a task through, in order; `error` may end any of them.
RUN_STAGES: tuple[TaskStatus, ...] = ("fetching", "processing", "saving")
ENDED: frozenset[TaskStatus] = frozenset({"finished", "error"})

MimeType = Literal[
    "image/jpeg",
    "image/png",
    "text/plain",
    "text/csv",
    "application/json",
    "application/pdf",
    "application/zip",
    "audio/mpeg",
    "audio/ogg",
]
MIME_TYPES: tuple[MimeType, ...] = get_args(MimeType)
ServiceStatus = Literal["available", "unavailable", "disabled", "sleeping"]

ObjectKey = Annotated[str, Field(min_length=1, max_length=1024)]


class ProtocolModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Task(ProtocolModel):
    """The task inside a ServiceTask."""

    id: UUID
    data_in: list[ObjectKey]
    data_out: list[ObjectKey] | None = None
    status: TaskStatus = "pending"
    service_id: UUID | None = None
    pipeline_execution_id: UUID | None = None
    pipeline_step_id: UUID | None = None
    error_message: str | None = None


class ServiceTask(ProtocolModel):
    """What a service receives on `POST /compute`: the task, where its objects are, whom to tell."""

    s3_access_key_id: str
    s3_secret_access_key: str
    s3_region: str
    s3_host: str
    s3_bucket: str
    task: Task
    callback_url: str


class TaskUpdate(ProtocolModel):
    """What a service PATCHes to the callback URL when the task ends (and a Core engine applies)."""

    data_out: list[ObjectKey] = Field(default_factory=list)
    status: TaskStatus
    error_message: str | None = None


class StatusAnswer(ProtocolModel):
    """The JSON answer of a service's `GET /status`, `GET /tasks/{id}/status` and `POST /compute`."""

    status: str


SERVICE_AVAILABLE = StatusAnswer(status="Service is available")
TASK_QUEUED = StatusAnswer(status="Task added to the queue")


class FieldDescription(ProtocolModel):
    """One input or output of a service: its name and the MIME types it takes or gives."""

    name: str = Field(min_length=1, max_length=63)
    type: list[MimeType] = Field(min_length=1)
    format_hint: str | None = None


class ExecutionUnitTag(ProtocolModel):
    name: str
    acronym: str


class ServiceRegistration(ProtocolModel):
    """The body of `POST <core>/services`: a service introducing itself to a Core engine."""

    name: str
    slug: str
    url: str
    summary: str
    description: str
    status: ServiceStatus = "available"
    data_in_fields: list[FieldDescription]
    data_out_fields: list[FieldDescription]
    tags: list[ExecutionUnitTag] = Field(default_factory=list)
    has_ai: bool = False
    docs_url: str | None = None
