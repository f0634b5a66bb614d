"""What the operator hands a ComputeTask's Job, and what the Job hands back.

The operator builds a `ComputeConfig` from the ComputeTask and passes it as JSON in
`HEADWATER_COMPUTE_CONFIG`; S3 credentials travel apart, as `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
from a Secret. The worker reports a `ComputeResult` in its termination message, which the operator parses
with the same model. Models only (no I/O): both sides import this cheaply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from ..s3 import S3Location
from .callback import CallbackPolicy
from .protocol import Task, TaskStatus, TaskUpdate

CONFIG_ENV = "HEADWATER_COMPUTE_CONFIG"
CALLBACK_ENV = "HEADWATER_COMPUTE_CALLBACK"
# The ServiceTask an `image` service receives, as JSON; its key pair fields are empty (the keys are in
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, from the Secret).
SERVICE_TASK_ENV = "HEADWATER_SERVICE_TASK"
DEFAULT_MAX_INPUT_BYTES = 256 << 20
# A task the worker could not run, and no retry will change (an input missing, of the wrong type, too big,
# refused by the service): the Job fails at once instead of trying `backoffLimit` more times.
FINAL_ERROR_EXIT = 2

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Limits(_Model):
    max_input_bytes: int = Field(default=DEFAULT_MAX_INPUT_BYTES, ge=1, description="largest input object")


class RemoteSettings(_Model):
    """How a `url` task waits for its service."""

    poll_interval_seconds: float = Field(default=5.0, gt=0)
    # Where the callback receiver listens, and the address the service is told to call (the pod's IP).
    receiver_host: str = "0.0.0.0"  # noqa: S104 - the service calls the pod from outside it
    advertised_host_env: str = "HEADWATER_POD_IP"


class ComputeConfig(_Model):
    """One task, as its Job runs it: `service` is a built-in service's slug, or `url` a running service."""

    task: Task
    service: Slug | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    s3: S3Location
    callback_url: str | None = None
    deadline_seconds: int | None = Field(default=None, ge=1)
    limits: Limits = Field(default_factory=Limits)
    remote: RemoteSettings = Field(default_factory=RemoteSettings)
    callback: CallbackPolicy = Field(default_factory=CallbackPolicy)
    compute_task: str | None = Field(default=None, description="`namespace/name` of the ComputeTask")

    @model_validator(mode="after")
    def _one_service(self) -> ComputeConfig:
        if (self.service is None) == (self.url is None):
            raise ValueError("exactly one of `service` and `url` must be set")
        return self

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_env(cls, value: str) -> ComputeConfig:
        return cls.model_validate_json(value)


class CallbackConfig(_Model):
    """A callback Job's work: deliver one TaskUpdate (a task whose pod could not, or an `image` task)."""

    url: str
    update: TaskUpdate
    policy: CallbackPolicy = Field(default_factory=CallbackPolicy)

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class Stage(_Model):
    """One protocol state the task went through."""

    status: TaskStatus
    started_at: datetime
    duration_seconds: float | None = Field(default=None, ge=0)


class ErrorInfo(_Model):
    reason: str
    message: str


class ComputeResult(_Model):
    """The termination message of a task's Job: the TaskUpdate, the stages, and the callback's fate."""

    update: TaskUpdate
    stages: list[Stage] = Field(default_factory=list)
    callback: dict[str, object] | None = Field(
        default=None, description="the delivery's outcome, as `status.callback` holds it"
    )
    error: ErrorInfo | None = None
    kind: Literal["compute"] = "compute"
