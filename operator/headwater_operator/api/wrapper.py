"""Wrapper: a generated data collector for one sustainability indicator (seed 000)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .common import (
    API_VERSION,
    ApiModel,
    CelRule,
    ConfigMapKeyRef,
    CronSchedule,
    DatabaseRef,
    HttpUrl,
    KindInfo,
    ObjectMeta,
    PrinterColumn,
    S3Location,
    S3Object,
    SecretKey,
    SecretKeyRef,
    Status,
    StatusModel,
    age_column,
    exactly_one,
    message_column,
    phase_column,
    ready_column,
)

SourceType = Literal["API", "CSV", "XLSX"]
WrapperMode = Literal["once", "continuous", "schedule"]
GeneratorType = Literal["gemini", "template"]
FallbackGenerator = Literal["template"]
WrapperPhase = Literal[
    "Pending",
    "Generating",
    "CreatingResource",
    "Executing",
    "Retrying",
    "Stopped",
    "Completed",
    "Error",
    "Stalled",
]
CollectionPhase = Literal["historical", "continuous"]
WrapperHealth = Literal["HEALTHY", "STALLED", "DEGRADED", "CRASHED", "UNKNOWN"]

DEFAULT_MODEL = "gemini-2.5-flash"
MAX_LOG_ENTRIES = 50
TABLE_PATTERN = r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$"


class Indicator(ApiModel):
    """The sustainability indicator the wrapper collects."""

    name: str = Field(min_length=1, max_length=253, description="Display name of the indicator.")
    description: str | None = Field(
        default=None, max_length=4096, description="What the indicator measures; given to the generator."
    )
    unit: str | None = Field(
        default=None, max_length=64, description="Unit of the values (`kWh`, `tCO2e`, `%`)."
    )
    category: str | None = Field(
        default=None, max_length=128, description="Category or domain of the indicator (`energy`, `water`)."
    )


class WrapperFile(ApiModel):
    """A CSV or XLSX file: exactly one of `configMapRef` or `s3`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("configMapRef", "s3"),)

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="ConfigMap key holding the file (`binaryData` for XLSX). ConfigMaps hold at most 1 MiB.",
    )
    s3: S3Object | None = Field(default=None, description="The file as an S3 object.")


class ApiKeySecretKeyRef(SecretKeyRef):
    """The Secret key holding an API key."""

    key: SecretKey = Field(default="apiKey", description="Key inside the Secret's data holding the API key.")


class WrapperSource(ApiModel):
    """Where the indicator's data comes from: exactly one of `url` or `file`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (
        exactly_one("url", "file"),
        CelRule(
            rule="self.type != 'API' || has(self.url)",
            message="url is required when type is API",
            check=lambda m: m.type != "API" or m.url is not None,
            field_path=".url",
            reason="FieldValueRequired",
        ),
    )

    type: SourceType = Field(description="`API` (a web API), `CSV` or `XLSX` (a file).")
    url: HttpUrl | None = Field(
        default=None, description="The API's URL, or where to download the CSV / XLSX file from."
    )
    file: WrapperFile | None = Field(default=None, description="The CSV / XLSX file, from a ConfigMap or S3.")
    api_key_secret_ref: ApiKeySecretKeyRef | None = Field(
        default=None, description="Secret key holding the source API's key, if it needs one."
    )
    api_key_header: str = Field(
        default="X-API-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header the API key is sent in; `Authorization` sends it as `Bearer <key>`.",
    )
    api_key_query_parameter: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Query parameter the API key is sent in, instead of a header.",
    )
    notes: str | None = Field(
        default=None,
        max_length=16384,
        description="Anything the generator should know about the source: endpoints, parameters, the meaning "
        "of columns.",
    )


class Generator(ApiModel):
    """How the collector code is generated."""

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule="(self.type == 'gemini') == has(self.apiKeySecretRef)",
            message="apiKeySecretRef must be set when type is gemini, and only then",
            check=lambda m: (m.type == "gemini") == (m.api_key_secret_ref is not None),
            field_path=".apiKeySecretRef",
        ),
        CelRule(
            rule="!has(self.fallback) || self.type == 'gemini'",
            message="fallback may be set only when type is gemini",
            check=lambda m: m.fallback is None or m.type == "gemini",
            field_path=".fallback",
        ),
    )

    type: GeneratorType = Field(
        description="`template`: built-in templates write the code from a sample of the source, offline and "
        "deterministic. `gemini`: Google Gemini writes it from the sample (and, for an API, the pages it "
        "fetches), with the validation errors fed back on each retry."
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Gemini model name.",
    )
    api_key_secret_ref: ApiKeySecretKeyRef | None = Field(
        default=None, description="Secret key holding the Gemini API key. Required for `gemini`, only then."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Generation attempts before the wrapper is marked `Error`."
    )
    fallback: FallbackGenerator | None = Field(
        default=None,
        description="`template`: when Gemini cannot be reached or its quota is exhausted, write the code "
        "offline with the template generator (the execution log says so). Only for `gemini`.",
    )


class DatabaseTableRef(DatabaseRef):
    """A table in a PostgreSQL database."""

    table: str = Field(
        default="indicator_points",
        min_length=1,
        max_length=127,
        pattern=TABLE_PATTERN,
        description="Table (optionally `schema.table`) receiving the points (resource id, series, timestamp, "
        "value, attributes), keyed on resource id, series and timestamp; created if missing, with a "
        "`resources` table beside it in the same schema.",
    )


class WrapperOutput(ApiModel):
    """Where collected data points go: exactly one of `database` or `s3`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("database", "s3"),)

    database: DatabaseTableRef | None = Field(
        default=None,
        description="Write the points to a PostgreSQL table; a point already stored is not written again.",
    )
    s3: S3Location | None = Field(
        default=None,
        description='Write one JSON object per run that collected points, `{"resource_id": ..., "data": '
        '[{"x": ..., "y": ...}]}`, under `<prefix>/<resource id>/`, named by time, never overwritten.',
    )


class WrapperSpec(ApiModel):
    """An indicator, its source, how often to collect it, and how the collector is generated.

    A generator Job samples the source and writes the collector code into a ConfigMap; the code then runs
    once (a Job), continuously (a Deployment) or on a schedule (a CronJob).
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule="has(self.schedule) == (has(self.mode) && self.mode == 'schedule')",
            message="schedule must be set when mode is schedule, and only then",
            check=lambda m: (m.schedule is not None) == (m.mode == "schedule"),
            field_path=".schedule",
        ),
    )

    indicator: Indicator = Field(description="The sustainability indicator collected.")
    source: WrapperSource = Field(description="Where the data comes from.")
    mode: WrapperMode | None = Field(
        default=None,
        description="`once` (collect everything, then complete), `continuous` (keep collecting new data) or "
        "`schedule` (collect on `schedule`). Absent: `continuous` for `API` sources, `once` for files.",
    )
    schedule: CronSchedule | None = Field(
        default=None,
        description="Cron schedule of the collection. Required when `mode` is `schedule`, only then.",
    )
    poll_interval_seconds: int = Field(
        default=3600,
        ge=10,
        le=604800,
        description="`continuous`: seconds between two polls of the source.",
    )
    suspend: bool = Field(
        default=False,
        description="Stop collecting (the `Stopped` status): no run starts until this is false again. The "
        "code is still generated.",
    )
    egress_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list,
        max_length=16,
        description="TCP ports the collector may reach beyond DNS, those of its source URL and its S3 "
        "endpoints, PostgreSQL's 5432 and the API server's 443 and 6443 (a database on another port, say); "
        "its NetworkPolicy allows no others.",
    )
    generator: Generator = Field(description="How the collector code is generated.")
    output: WrapperOutput | None = Field(
        default=None,
        description="Where the data points go. Absent: points are only counted in status (a dry run), and "
        "every run starts from the beginning.",
    )

    @property
    def effective_mode(self) -> WrapperMode:
        """The mode, with the default applied: `continuous` for API sources, `once` for files."""
        if self.mode is not None:
            return self.mode
        return "continuous" if self.source.type == "API" else "once"


class CodeValidation(StatusModel):
    """Outcome of the checks run on the generated code: syntax, placeholders, imports, lint, the dry run."""

    passed: bool = Field(description="Whether the code passed every check.")
    errors: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=20, description="The first errors found, if any."
    )


class TokenUsage(StatusModel):
    """What a generation cost in Gemini's tokens, as its answers' `usageMetadata` count them."""

    requests: int = Field(default=0, ge=0, description="Requests Gemini answered.")
    prompt_tokens: int = Field(default=0, ge=0, description="Tokens of the prompts.")
    output_tokens: int = Field(default=0, ge=0, description="Tokens of the answers, thinking included.")
    total_tokens: int = Field(default=0, ge=0, description="Tokens in all.")


class GeneratedCode(StatusModel):
    """The collector code currently in use."""

    generation: int | None = Field(default=None, ge=1, description="The spec generation it was written for.")
    regeneration: int | None = Field(
        default=None, ge=0, description="1 when it was rewritten after the source changed shape."
    )
    config_map_name: str | None = Field(
        default=None, max_length=253, description="ConfigMap holding the code (key `wrapper.py`)."
    )
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", max_length=64, description="SHA-256 of the code."
    )
    generator: GeneratorType | None = Field(default=None, description="Generator that wrote it.")
    model: str | None = Field(default=None, max_length=128, description="Gemini model that wrote it.")
    prompt_version: str | None = Field(
        default=None, max_length=64, description="Version of the prompt template Gemini was asked with."
    )
    prompts_config_map_name: str | None = Field(
        default=None,
        max_length=253,
        description="ConfigMap holding what Gemini was asked and answered in this generation (redacted).",
    )
    tokens: TokenUsage | None = Field(default=None, description="Gemini's tokens used by this generation.")
    generated_at: datetime | None = Field(default=None, description="When it was generated.")
    validation: CodeValidation | None = Field(default=None, description="Outcome of the checks on the code.")


class ExecutionLogEntry(StatusModel):
    """One event of the wrapper's life."""

    time: datetime = Field(description="When it happened.")
    event: str = Field(
        min_length=1,
        max_length=64,
        description="What happened: `prompted` (Gemini was asked), `generated`, `validation_failed`, "
        "`generation_failed`, `fallback` (written offline instead of by Gemini), `completed`, `retrying`, "
        "`failed`, `regenerating` or `error`.",
    )
    message: str | None = Field(default=None, max_length=1024, description="Details.")


class CollectorReport(StatusModel):
    """The last report of the collector: what its run collected, or why it failed."""

    outcome: Literal["collected", "failed"] = Field(description="`collected` or `failed`.")
    ran_at: datetime = Field(description="When the run started.")
    resource_id: str | None = Field(default=None, max_length=253, description="The resource collected.")
    new_points: int | None = Field(default=None, ge=0, description="Points this run added.")
    total_points: int | None = Field(default=None, ge=0, description="Points of the resource after it.")
    high_water_mark: datetime | None = Field(default=None, description="Newest timestamp stored.")
    low_water_mark: datetime | None = Field(default=None, description="Oldest timestamp stored.")
    collection_phase: CollectionPhase | None = Field(
        default=None, description="`historical` or `continuous`."
    )
    reason: str | None = Field(default=None, max_length=64, description="Why it failed.")
    message: str | None = Field(default=None, max_length=1024, description="What failed, one line.")


class WrapperStatus(Status):
    """What the operator last observed of the wrapper."""

    phase: WrapperPhase | None = Field(
        default=None,
        description="The seed's wrapper status, capitalised: `Pending`, `Generating` (writing the code), "
        "`CreatingResource` (starting the collector), `Executing` (collecting), `Retrying` (a run failed and "
        "is tried again), `Stopped` (suspended), `Completed` (a one-off collection finished), `Error`, or "
        "`Stalled` (cannot proceed until the spec or a referenced object changes).",
    )
    collection_phase: CollectionPhase | None = Field(
        default=None,
        description="`historical` after the first run, which back-fills the source's past (it starts without "
        "a high water mark); `continuous` after the runs that follow.",
    )
    health: WrapperHealth | None = Field(
        default=None,
        description="Health of the collector: `HEALTHY` (its last run collected, or one is collecting), "
        "`STALLED` (a continuous collector found nothing new in 3 polls in a row), `DEGRADED` (a run fails "
        "and is retried after earlier ones collected), `CRASHED` (a run fails and none ever collected, a run "
        "failed for good, or the pod crash-loops) or `UNKNOWN` (generating, stopped, or no report yet).",
    )
    code: GeneratedCode | None = Field(default=None, description="The generated code in use.")
    attempts: int | None = Field(
        default=None, ge=0, description="Generation attempts made for this generation."
    )
    resource_id: str | None = Field(
        default=None,
        max_length=253,
        description="Id of the `sustainability_indicator` resource of this wrapper.",
    )
    generator_job_name: str | None = Field(
        default=None, max_length=253, description="Name of the generator Job."
    )
    workload_name: str | None = Field(
        default=None, max_length=253, description="Name of the Job, CronJob or Deployment running the code."
    )
    high_water_mark: datetime | None = Field(
        default=None, description="Newest timestamp collected: the next collection starts after it."
    )
    low_water_mark: datetime | None = Field(default=None, description="Oldest timestamp collected.")
    start_period: datetime | None = Field(default=None, description="Earliest data point of the resource.")
    end_period: datetime | None = Field(default=None, description="Latest data point of the resource.")
    points_collected: int | None = Field(default=None, ge=0, description="Data points collected so far.")
    last_run_time: datetime | None = Field(default=None, description="When the last successful run started.")
    regenerations: int | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Times the code was rewritten for this generation because the source changed shape: "
        "once at most, a second change is `Error`.",
    )
    collector: CollectorReport | None = Field(default=None, description="The collector's last report.")
    collector_failures: int | None = Field(
        default=None, ge=0, description="Consecutive failed polls of a continuous collector."
    )
    collector_empty_polls: int | None = Field(
        default=None, ge=0, description="Consecutive polls of a continuous collector that found nothing new."
    )
    execution_log: list[ExecutionLogEntry] = Field(
        default_factory=list,
        max_length=MAX_LOG_ENTRIES,
        description=f"The last {MAX_LOG_ENTRIES} events, oldest first.",
    )


class Wrapper(ApiModel):
    """A generated collector for one sustainability indicator, from an API, CSV or XLSX source."""

    api_version: Literal["headwater.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["Wrapper"] = Field(default="Wrapper", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: WrapperSpec = Field(description="The indicator, source, mode and generator.")
    status: WrapperStatus | None = Field(default=None, description="What the operator last observed.")


KIND = KindInfo(
    kind="Wrapper",
    plural="wrappers",
    singular="wrapper",
    short_names=("wr",),
    spec_model=WrapperSpec,
    status_model=WrapperStatus,
    resource_model=Wrapper,
    description=Wrapper.__doc__ or "",
    printer_columns=(
        PrinterColumn("Source", ".spec.source.type", description="API, CSV or XLSX."),
        PrinterColumn("Mode", ".spec.mode", description="once, continuous or schedule (empty: by source)."),
        phase_column(),
        PrinterColumn("Health", ".status.health", description="Health of the running collector."),
        ready_column(),
        PrinterColumn(
            "Points", ".status.pointsCollected", type="integer", description="Data points collected."
        ),
        age_column(),
        PrinterColumn(
            "Attempts", ".status.attempts", type="integer", description="Generation attempts.", priority=1
        ),
        PrinterColumn("End", ".status.endPeriod", type="date", description="Latest data point.", priority=1),
        message_column(),
    ),
)
