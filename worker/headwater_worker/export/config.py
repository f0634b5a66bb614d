"""The contract between the operator and the export worker.

The operator builds an `ExportConfig` from an ExportJob's spec and hands it to the worker as JSON in the
`HEADWATER_EXPORT_CONFIG` environment variable (`ExportConfig.to_env()`); the worker reads it back with
`ExportConfig.from_env()`. Secrets never travel in it: the database DSN arrives as `DATABASE_URL` and S3
credentials as `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, each from a Secret.

The worker reports what it did in the container's termination message, an `ExportSummary` (JSON), which
the operator parses with the same model.

This module holds models only (no I/O), so that both sides can import it cheaply.
"""

from __future__ import annotations

import enum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from ..s3 import S3Location
from ..termination import DEFAULT_TERMINATION_LOG, TERMINATION_LOG_ENV, TERMINATION_MESSAGE_LIMIT

CONFIG_ENV = "HEADWATER_EXPORT_CONFIG"
DATABASE_URL_ENV = "DATABASE_URL"

SELECT_SUFFIX = ".select.sql"
DELETE_SUFFIX = ".delete.sql"

TASK_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
TaskName = Annotated[str, StringConstraints(pattern=TASK_NAME_PATTERN)]


def select_key(task: str) -> str:
    """The ConfigMap key holding a task's select query (`<task>.select.sql`)."""
    return f"{task}{SELECT_SUFFIX}"


def delete_key(task: str) -> str:
    """The ConfigMap key holding a task's delete query (`<task>.delete.sql`)."""
    return f"{task}{DELETE_SUFFIX}"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ExportTaskSpec(_Model):
    """One export: a query whose rows become `<name>-<timestamp>.csv.gz`, and optionally a delete query run
    in the same transaction once the file is safely stored."""

    name: TaskName
    select: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="a SELECT (wrapped in `COPY (...) TO STDOUT WITH CSV HEADER`) or a complete "
        "`COPY (...) TO STDOUT ...` statement"
    )
    delete: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None


class S3DestinationSpec(S3Location):
    """A key prefix of a bucket; files go up in parts of `partSizeMiB`."""

    part_size_mib: int = Field(default=8, ge=5, le=1024, alias="partSizeMiB")


class VolumeDestinationSpec(_Model):
    path: Annotated[str, StringConstraints(pattern=r"^/")] = Field(
        description="absolute path of a folder in a mounted volume; created if missing"
    )
    uri_prefix: str | None = Field(
        default=None,
        description="how the folder is named in results (`pvc://<claim>/<path>`); a file:// URI when absent",
    )


class DestinationSpec(_Model):
    """Exactly one of `s3` or `volume`."""

    s3: S3DestinationSpec | None = None
    volume: VolumeDestinationSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.s3 is None) == (self.volume is None):
            raise ValueError("destination needs exactly one of `s3` or `volume`")
        return self


class RetentionSpec(_Model):
    keep_last: int = Field(
        ge=1, description="files kept per task, newest first (by the timestamp in the name)"
    )


class ExportConfig(_Model):
    """The non-secret configuration of one export run (`HEADWATER_EXPORT_CONFIG`)."""

    tasks: list[ExportTaskSpec] = Field(default_factory=list)
    tasks_dir: str | None = Field(
        default=None,
        description="a mounted ConfigMap with keys `<task>.select.sql` and optionally `<task>.delete.sql`",
    )
    only: list[TaskName] | None = Field(default=None, description="run only these tasks")
    destination: DestinationSpec
    gzip_level: int = Field(default=6, ge=0, le=9)
    retention: RetentionSpec | None = None
    export_job: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9.-]*$")] | None
    ) = Field(default=None, description="`<namespace>/<name>` of the ExportJob, for logs and object metadata")

    @model_validator(mode="after")
    def _tasks_declared(self) -> Self:
        if not self.tasks and self.tasks_dir is None:
            raise ValueError("declare `tasks`, `tasksDir` or both")
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique: {', '.join(duplicates)}")
        return self

    def to_env(self) -> str:
        """The JSON for `HEADWATER_EXPORT_CONFIG`."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_env(cls, value: str) -> ExportConfig:
        return cls.model_validate_json(value)


# -- results ----------------------------------------------------------------------------------------------


class FailureReason(enum.StrEnum):
    INVALID_QUERY = "InvalidQuery"
    DATABASE_UNAVAILABLE = "DatabaseUnavailable"
    DESTINATION_UNAVAILABLE = "DestinationUnavailable"
    VERIFICATION_FAILED = "VerificationFailed"
    CONFIGURATION_ERROR = "ConfigurationError"
    # A row the export read was changed by another transaction before the delete: nothing was deleted.
    SERIALIZATION_FAILURE = "SerializationFailure"
    # The worker was asked to stop (SIGTERM/SIGINT) before it finished.
    TERMINATED = "Terminated"


class TaskResult(_Model):
    name: str
    rows: int
    bytes: int = Field(description="compressed size of the stored file")
    uri: str
    duration_seconds: float
    finished_at: str = Field(description="RFC 3339, UTC")


class ErrorInfo(_Model):
    reason: FailureReason
    message: str


class ExportSummary(_Model):
    """The termination message of an export run."""

    tasks: list[TaskResult] = Field(default_factory=list)
    error: ErrorInfo | None = None
    omitted_tasks: int = Field(default=0, description="results left out to fit the 4096-byte message")


__all__ = [
    "CONFIG_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_TERMINATION_LOG",
    "TASK_NAME_PATTERN",
    "TERMINATION_LOG_ENV",
    "TERMINATION_MESSAGE_LIMIT",
    "DestinationSpec",
    "ErrorInfo",
    "ExportConfig",
    "ExportSummary",
    "ExportTaskSpec",
    "FailureReason",
    "RetentionSpec",
    "S3DestinationSpec",
    "TaskResult",
    "VolumeDestinationSpec",
    "delete_key",
    "select_key",
]
