"""ExportJob: export query results from PostgreSQL to gzip-compressed CSV files (seed 004)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .common import (
    API_VERSION,
    ApiModel,
    CelRule,
    ConfigMapRef,
    CronSchedule,
    DatabaseRef,
    KindInfo,
    ObjectMeta,
    PrinterColumn,
    S3Location,
    Status,
    StatusModel,
    TimeZone,
    VolumeLocation,
    age_column,
    exactly_one,
    message_column,
    phase_column,
    ready_column,
)

TASK_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
MAX_TASKS = 100
MAX_SQL = 65536

TaskName = Annotated[str, Field(min_length=1, max_length=63, pattern=TASK_NAME_PATTERN)]

ExportJobPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Scheduled", "Stalled"]


class ExportTask(ApiModel):
    """One export: the rows a SELECT returns become one CSV file; an optional DELETE then removes them."""

    name: TaskName = Field(
        description="Name of the task, unique within the ExportJob: lower-case letters, digits, `-` and `_` "
        "(`agency`, `source_file`). It names the task's files and its entry in `status.tasks`."
    )
    select: str = Field(
        min_length=1,
        max_length=MAX_SQL,
        description="SQL SELECT (or WITH ... SELECT) whose result is exported. The worker runs "
        "`COPY (<select>) TO STDOUT WITH CSV HEADER`; a trailing semicolon is ignored. For compatibility "
        "with existing DSL folders, a complete `COPY (...) TO STDOUT WITH CSV HEADER` statement is "
        "accepted too and run as written.",
    )
    delete: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SQL,
        description="SQL DELETE that removes the exported rows. It runs only after the task's file has been "
        "uploaded and verified, in the same transaction (and so the same snapshot) as the SELECT; if the "
        "upload fails nothing is deleted. Absent means the rows stay.",
    )


class TasksFrom(ApiModel):
    """Where to read export tasks from instead of listing them inline."""

    config_map_ref: ConfigMapRef = Field(
        description="ConfigMap laid out like a DSL export folder. The folder's `<task>/select.sql` and "
        "`<task>/delete.sql` become the keys `<task>.select.sql` and `<task>.delete.sql` (ConfigMap keys "
        "cannot hold `/`). Every `<task>.select.sql` key defines a task; its `.delete.sql` is optional. "
        "Create one from a folder with `kubectl create configmap NAME --from-file=...` after renaming, or "
        "let the Helm chart render it."
    )


class ExportDestination(ApiModel):
    """Where exported files go: exactly one of `s3` or `volume`.

    Each run writes one gzip-compressed CSV file per task, named as the seed names them, with the run's time
    in UTC: `<task>-YYYY_MM_DD-hh_mm_ss_AM.csv.gz` (`agency-2025_01_01-12_00_00_AM.csv.gz`), directly under
    the bucket prefix or the volume path.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("s3", "volume"),)

    s3: S3Location | None = Field(default=None, description="Write the files to this S3 bucket and prefix.")
    volume: VolumeLocation | None = Field(
        default=None, description="Write the files to this folder of a PersistentVolumeClaim."
    )


class Retention(ApiModel):
    """Which earlier export files to keep at the destination."""

    keep_last: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Keep the newest N files of each task and delete older ones after a successful run. "
        "Absent keeps every file.",
    )


class ExportJobSpec(ApiModel):
    """What to export, from which database, to where, and when.

    Without `schedule` the ExportJob runs once, as one Job; with it, as a CronJob. Without `only` every task
    is exported (a bulk export); `only` names the tasks to export (a selective export).
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (
        exactly_one("tasks", "tasksFrom"),
        CelRule(
            rule="!has(self.only) || !has(self.tasks) || self.only.all(n, self.tasks.exists(t, t.name == n))",
            message="every name in only must be the name of a task in tasks",
            check=lambda m: (
                m.only is None or m.tasks is None or set(m.only) <= {task.name for task in m.tasks}
            ),
            field_path=".only",
        ),
        CelRule(
            rule="!has(self.timeZone) || has(self.schedule)",
            message="timeZone needs schedule",
            check=lambda m: m.time_zone is None or m.schedule is not None,
            field_path=".timeZone",
            reason="FieldValueForbidden",
        ),
    )

    database: DatabaseRef = Field(description="The PostgreSQL database to export from.")
    tasks: list[ExportTask] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TASKS,
        description="Export tasks, listed inline. Exactly one of `tasks` or `tasksFrom` must be set.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    tasks_from: TasksFrom | None = Field(
        default=None,
        description="Read the export tasks from a ConfigMap. Exactly one of `tasks` or `tasksFrom` must be "
        "set.",
    )
    only: list[TaskName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TASKS,
        description="Names of the tasks to export. Absent exports every task. With `tasksFrom`, a name "
        "missing from the ConfigMap fails the run.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    destination: ExportDestination = Field(
        description="Where the files go: exactly one of `s3` or `volume`. Each run writes one "
        "gzip-compressed CSV file per task, named as the seed names them, with the run's time in UTC: "
        "`<task>-YYYY_MM_DD-hh_mm_ss_AM.csv.gz` (`agency-2025_01_01-12_00_00_AM.csv.gz`), directly under the "
        "bucket prefix or the volume path."
    )
    gzip_level: int = Field(default=6, ge=1, le=9, description="gzip compression level, 1 (fastest) to 9.")
    schedule: CronSchedule | None = Field(
        default=None,
        description="Cron schedule (five fields, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). "
        "Set: the export runs as a CronJob on this schedule. Absent: it runs once, as a Job.",
    )
    time_zone: TimeZone | None = Field(
        default=None,
        description="IANA time zone of `schedule` (`Europe/Athens`); absent means the controller's time "
        "zone (UTC on most clusters). Needs `schedule`.",
    )
    suspend: bool = Field(
        default=False,
        description="Suspend the export: a scheduled one starts no further runs, a one-off one does not "
        "start (or, already running, its Job is suspended).",
    )
    retention: Retention | None = Field(
        default=None, description="Which earlier files to keep. Absent keeps every file."
    )
    backoff_limit: int = Field(
        default=3, ge=0, le=100, description="Retries of a failed run before it is marked failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=2592000,
        description="Seconds a run may take, retries included, before it is stopped and marked failed. "
        "Absent means no limit.",
    )


class ExportTaskStatus(StatusModel):
    """The outcome of one task in the last finished run."""

    name: TaskName = Field(description="Name of the task.")
    rows: int | None = Field(default=None, ge=0, description="Rows exported.")
    bytes: int | None = Field(default=None, ge=0, description="Size of the compressed file, in bytes.")
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the file was written: `s3://bucket/key`, or for a volume a `file://` URI as seen "
        "by the export's pod.",
    )
    duration_seconds: float | None = Field(
        default=None, ge=0, description="How long the task took, in seconds."
    )
    finished_at: datetime | None = Field(default=None, description="When the task finished.")
    deleted_rows: int | None = Field(
        default=None, ge=0, description="Rows removed by the task's DELETE; absent when it has none."
    )


class ExportJobStatus(Status):
    """What the operator last observed of the export."""

    phase: ExportJobPhase | None = Field(
        default=None,
        description="`Pending` (not started yet), `Running`, `Succeeded` / `Failed` (a one-off export's "
        "outcome), `Scheduled` (a scheduled export waiting for its next run) or `Stalled` (cannot proceed "
        "until the spec or a referenced object changes, e.g. a missing Secret).",
    )
    tasks: list[ExportTaskStatus] = Field(
        default_factory=list,
        max_length=MAX_TASKS,
        description="Per task outcome of the last finished run.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    job_name: str | None = Field(
        default=None, max_length=253, description="Name of the Job of the current or last run."
    )
    last_schedule_time: datetime | None = Field(
        default=None, description="When a run was last started by the schedule."
    )
    last_successful_time: datetime | None = Field(default=None, description="When a run last succeeded.")


class ExportJob(ApiModel):
    """An export of PostgreSQL query results to gzip-compressed CSV files in S3 or on a volume."""

    api_version: Literal["headwater.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["ExportJob"] = Field(default="ExportJob", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ExportJobSpec = Field(description="What to export, to where, and when.")
    status: ExportJobStatus | None = Field(default=None, description="What the operator last observed.")


KIND = KindInfo(
    kind="ExportJob",
    plural="exportjobs",
    singular="exportjob",
    short_names=("ej",),
    spec_model=ExportJobSpec,
    status_model=ExportJobStatus,
    resource_model=ExportJob,
    description=ExportJob.__doc__ or "",
    printer_columns=(
        phase_column(),
        ready_column(),
        PrinterColumn("Schedule", ".spec.schedule", description="Cron schedule; empty for a one-off export."),
        PrinterColumn(
            "Last Success",
            ".status.lastSuccessfulTime",
            type="date",
            description="When a run last succeeded.",
        ),
        age_column(),
        PrinterColumn("Job", ".status.jobName", description="Job of the current or last run.", priority=1),
        message_column(),
    ),
)
