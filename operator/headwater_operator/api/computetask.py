"""ComputeTask: one task of the compute service protocol, run as a Job (seed 002)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from headwater_worker.compute.protocol import TASK_STATUSES, TaskStatus
from pydantic import Field

from .common import (
    API_VERSION,
    MAX_KEY,
    ApiModel,
    CelRule,
    HttpUrl,
    KindInfo,
    ObjectMeta,
    PrinterColumn,
    S3Bucket,
    Status,
    StatusModel,
    Uuid,
    age_column,
    exactly_one,
    message_column,
    phase_column,
    ready_column,
)

# The protocol's task status values, exactly as they travel in ServiceTask and TaskUpdate.
TaskStatusValue = TaskStatus
TASK_STATUS_VALUES = TASK_STATUSES
ComputeTaskPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Stalled"]

SERVICE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
IMAGE_PATTERN = r"^[^\s]+$"
MAX_OBJECTS = 100

ObjectKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY, pattern=r"^[^\s][^\n]*$")]


class ComputeService(ApiModel):
    """The processing service that runs the task: exactly one of `name`, `image` or `url`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("name", "image", "url"),)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=SERVICE_NAME_PATTERN,
        description="Slug of a processing service built into the Headwater worker.",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=IMAGE_PATTERN,
        description="Container image of a service that processes one task per run and exits; it receives the "
        "task (the protocol's ServiceTask) in its environment.",
    )
    url: HttpUrl | None = Field(
        default=None,
        description="Base URL of a running service speaking the protocol: the task is POSTed to "
        "`<url>/compute` and the service PATCHes its TaskUpdate back.",
    )
    args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=32, description="`image`: arguments passed to the container."
    )


class ComputeTaskSpec(ApiModel):
    """The inputs of one task, where they live, and whom to tell when it is done. Immutable once created.

    The fields are those of the protocol's ServiceTask: `dataIn` and `dataOut` are `data_in` and `data_out`,
    `s3` carries `s3_host`, `s3_region`, `s3_bucket` and the access key pair.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule="self == oldSelf",
            message="spec is immutable: create a new ComputeTask instead",
            check=None,
        ),
    )

    service: ComputeService = Field(
        description="The processing service: exactly one of `name`, `image` or `url`."
    )
    data_in: list[ObjectKey] = Field(
        min_length=1,
        max_length=MAX_OBJECTS,
        description="S3 object keys of the inputs, in the bucket of `s3`.",
    )
    data_out: list[ObjectKey] | None = Field(
        default=None,
        max_length=MAX_OBJECTS,
        description="S3 object keys the outputs should be written to. Absent: the service chooses them and "
        "reports them in `status.dataOut`.",
    )
    s3: S3Bucket = Field(description="The bucket `dataIn` is read from and `dataOut` written to.")
    callback_url: HttpUrl | None = Field(
        default=None,
        description="Where the TaskUpdate (`data_out`, `status`, `error_message`) is PATCHed when the task "
        "ends, of the form `<core>/tasks/<task id>`.",
    )
    task_id: Uuid | None = Field(
        default=None, description="Id of the task. Absent: the resource's `metadata.uid`."
    )
    service_id: Uuid | None = Field(
        default=None, description="Id of the service, as registered with the core."
    )
    pipeline_execution_id: Uuid | None = Field(
        default=None, description="Id of the pipeline execution the task belongs to."
    )
    pipeline_step_id: Uuid | None = Field(
        default=None, description="Id of the pipeline step the task belongs to."
    )
    backoff_limit: int = Field(
        default=0, ge=0, le=10, description="Retries of a failed run before the task ends in `error`."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=2592000, description="Seconds the task may take. Absent means no limit."
    )


class CallbackStatus(StatusModel):
    """Delivery of the TaskUpdate to `callbackUrl`."""

    url: str | None = Field(default=None, max_length=2048, description="Where the update is PATCHed.")
    attempts: int | None = Field(default=None, ge=0, description="Delivery attempts so far.")
    last_status_code: int | None = Field(
        default=None, ge=100, le=599, description="HTTP status of the last attempt."
    )
    delivered: bool | None = Field(default=None, description="Whether the update was accepted (2xx).")
    last_error: str | None = Field(
        default=None, max_length=1024, description="Error of the last failed attempt."
    )
    last_attempt_time: datetime | None = Field(default=None, description="When the last attempt was made.")
    job_name: str | None = Field(
        default=None,
        max_length=253,
        description="The callback Job delivering the update, when the task's own pod could not (an `image` "
        "task, or a pod that was stopped before it could).",
    )


class StageStatus(StatusModel):
    """One state the task went through, and how long it stayed there."""

    status: TaskStatusValue = Field(description="The protocol's task status of this stage.")
    started_at: datetime = Field(description="When the task entered it.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="How long the task stayed in it; absent while it lasts."
    )


class ComputeTaskStatus(Status):
    """What the operator last observed of the task."""

    phase: ComputeTaskPhase | None = Field(
        default=None,
        description="`Pending`, `Running`, `Succeeded` (`status` finished), `Failed` (`status` error) or "
        "`Stalled` (cannot proceed until the spec or a referenced object changes).",
    )
    status: TaskStatusValue | None = Field(
        default=None,
        description="The task status of the protocol: `pending`, `fetching`, `processing`, `saving`, "
        "`finished`, `error`, `scheduled`, `skipped`, `archived` or `unavailable`.",
    )
    task_id: str | None = Field(
        default=None, max_length=36, description="Id of the task as sent to the service."
    )
    data_out: list[Annotated[str, Field(max_length=MAX_KEY)]] = Field(
        default_factory=list, max_length=MAX_OBJECTS, description="S3 object keys the service wrote."
    )
    error_message: str | None = Field(
        default=None, max_length=32768, description="The service's error message."
    )
    job_name: str | None = Field(
        default=None, max_length=253, description="Name of the Job running the task."
    )
    stages: list[StageStatus] = Field(
        default_factory=list,
        max_length=16,
        description="The protocol states the task went through (`fetching`, `processing`, `saving`, ...), "
        "with their durations.",
    )
    started_at: datetime | None = Field(default=None, description="When processing started.")
    finished_at: datetime | None = Field(default=None, description="When the task ended.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="How long the task took, in seconds."
    )
    callback: CallbackStatus | None = Field(default=None, description="Delivery of the TaskUpdate.")


class ComputeTask(ApiModel):
    """One task of the compute service protocol: S3 inputs in, a processing service, S3 outputs out."""

    api_version: Literal["headwater.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["ComputeTask"] = Field(default="ComputeTask", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ComputeTaskSpec = Field(description="The service, the inputs and the callback.")
    status: ComputeTaskStatus | None = Field(default=None, description="What the operator last observed.")


KIND = KindInfo(
    kind="ComputeTask",
    plural="computetasks",
    singular="computetask",
    short_names=("ct",),
    spec_model=ComputeTaskSpec,
    status_model=ComputeTaskStatus,
    resource_model=ComputeTask,
    description=ComputeTask.__doc__ or "",
    printer_columns=(
        PrinterColumn(
            "Service", ".spec.service.name", description="Built-in service (empty for image / url)."
        ),
        phase_column(),
        PrinterColumn("Status", ".status.status", description="Task status of the protocol."),
        ready_column(),
        PrinterColumn(
            "Duration", ".status.durationSeconds", type="number", description="Seconds the task took."
        ),
        age_column(),
        PrinterColumn(
            "Callback",
            ".status.callback.delivered",
            type="boolean",
            description="TaskUpdate delivered.",
            priority=1,
        ),
        message_column(),
    ),
)
