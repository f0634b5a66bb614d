"""Connector: ingest files or API data into PostgreSQL through a YAML mapping (seed 001)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .common import (
    API_VERSION,
    MAX_URL,
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
    SecretRef,
    Status,
    VolumeLocation,
    age_column,
    exactly_one,
    message_column,
    phase_column,
    ready_column,
)

ConnectorType = Literal["file", "http", "tago", "airbeld", "fusionsolar"]
ConnectorPhase = Literal["Pending", "Scheduled", "Running", "Watching", "Failed", "Stalled"]

INTERVAL_PATTERN = r"^[1-9][0-9]{0,5}(s|m|h|d)$"
MAPPING_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
RECORDS_PATH_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
GLOB_PATTERN = r"^[^/\s]+$"

Interval = Annotated[str, Field(min_length=2, max_length=8, pattern=INTERVAL_PATTERN)]


class MappingRef(ApiModel):
    """The YAML mapping that turns source records into rows: exactly one of `name` or `configMapRef`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("name", "configMapRef"),)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=MAPPING_NAME_PATTERN,
        description="Name of a mapping shipped with Headwater in `mappings/`, without `.yaml` "
        "(`energy_hourly` is `mappings/energy_hourly.yaml`).",
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="A mapping of your own: the ConfigMap key holding the mapping's YAML (dataset, columns, "
        "coercions, validation rules, conflict resolution, target and staging tables).",
    )


class FileSource(ApiModel):
    """Where a `file` connector finds CSV and Excel files: exactly one of `volume` or `s3`.

    Files are picked up once complete (on a volume, once their size has not changed for `stableSeconds`),
    loaded, then moved to `processedPath` (loaded) or `rejectedPath` (refused). A file already loaded (same
    SHA-256) is not loaded twice.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("volume", "s3"),)

    volume: VolumeLocation | None = Field(
        default=None, description="Incoming folder on a PersistentVolumeClaim (`incoming`)."
    )
    s3: S3Location | None = Field(default=None, description="Incoming key prefix in an S3 bucket.")
    include: list[Annotated[str, Field(min_length=1, max_length=128, pattern=GLOB_PATTERN)]] = Field(
        default=["*.csv", "*.xlsx", "*.xls"],
        min_length=1,
        max_length=32,
        description="Glob patterns of the file names to load.",
    )
    processed_path: str = Field(
        default="processed",
        min_length=1,
        max_length=1024,
        pattern=r"^[^/\s][^\s]*$",
        description="Where loaded files are moved: a folder of the same volume, or a key prefix of the same "
        "bucket, relative to its root.",
    )
    rejected_path: str = Field(
        default="rejected",
        min_length=1,
        max_length=1024,
        pattern=r"^[^/\s][^\s]*$",
        description="Where refused files are moved: a folder of the same volume, or a key prefix of the same "
        "bucket, relative to its root.",
    )
    stable_seconds: int = Field(
        default=3,
        ge=0,
        le=3600,
        description="Seconds a file's size must stay unchanged before it is read. Volumes only: an S3 object "
        "appears whole once its upload completes.",
    )
    watch: bool = Field(
        default=False,
        description="Watch the folder continuously (a Deployment polling every `pollSeconds`) instead of "
        "running on `schedule` / `interval`.",
    )
    poll_seconds: int = Field(
        default=5, ge=1, le=3600, description="With `watch`: seconds between two scans."
    )


HttpAuthType = Literal["bearer", "apiKey", "oauthPassword"]


class HttpAuth(ApiModel):
    """How requests authenticate. The secrets themselves come from `credentialsSecretRef`."""

    type: HttpAuthType = Field(
        description="`bearer`: header `Authorization: Bearer <token>` (Secret key `token`); `apiKey`: the "
        "Secret key `apiKey` sent in header `headerName`; `oauthPassword`: the Secret keys `username` and "
        "`password` exchanged at `tokenUrl` for a bearer token."
    )
    header_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=HEADER_NAME_PATTERN,
        description="Header carrying the credential; default `Authorization` for `bearer`, `X-API-Key` for "
        "`apiKey`.",
    )
    token_url: HttpUrl | None = Field(
        default=None,
        description="`oauthPassword`: the token endpoint. Absent: the connector type's own login endpoint.",
    )


class HttpSource(ApiModel):
    """HTTP settings of the API connectors (`http`, `tago`, `airbeld`, `fusionsolar`)."""

    base_url: HttpUrl | None = Field(
        default=None,
        description="Base URL of the API. Required for `http` and `airbeld`; `tago` defaults to "
        "`https://api.tago.io`, `fusionsolar` to `https://intl.fusionsolar.huawei.com/thirdData`.",
    )
    path: str = Field(
        default="",
        max_length=MAX_URL,
        pattern=r"^(/[^\s]*)?$",
        description="`http`: path of the endpoint returning the records, appended to `baseUrl` (`/v1/data`).",
    )
    records_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=RECORDS_PATH_PATTERN,
        description="`http`: dotted path to the list of records in the JSON response (`data.items`). Absent: "
        "the response is the list.",
    )
    headers: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra request headers (not secrets: use `auth` and `credentialsSecretRef` for those).",
    )
    auth: HttpAuth | None = Field(
        default=None,
        description="How requests authenticate. Absent: the connector type's own scheme (`tago`: device "
        "token, `airbeld`: e-mail and password, `fusionsolar`: user name and system code), or none for "
        "`http`.",
    )
    timeout_seconds: int = Field(default=30, ge=1, le=600, description="Timeout of one request, in seconds.")
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of a failed request (connection error, 429 or 5xx), with exponential backoff.",
    )


class ConnectorSpec(ApiModel):
    """A data source, the mapping of its records, when to ingest and the database to load into.

    Each run discovers new input (files, or API data since the cursor), then validates, transforms, stages
    and loads it into PostgreSQL. A scheduled connector runs as a CronJob; a `file` connector with
    `file.watch` runs as a Deployment.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule="(self.type == 'file') == has(self.file)",
            message="file must be set when type is file, and only then",
            check=lambda m: (m.type == "file") == (m.file is not None),
            field_path=".file",
        ),
        CelRule(
            rule="self.type != 'file' || !has(self.http)",
            message="http must not be set when type is file",
            check=lambda m: m.type != "file" or m.http is None,
            field_path=".http",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule="!(self.type in ['http', 'airbeld']) || (has(self.http) && has(self.http.baseUrl))",
            message="http.baseUrl is required when type is http or airbeld",
            check=lambda m: m.type not in ("http", "airbeld") or (m.http is not None and m.http.base_url),
            field_path=".http",
            reason="FieldValueRequired",
        ),
        CelRule(
            rule="has(self.file) && self.file.watch"
            " ? !has(self.schedule) && !has(self.interval)"
            " : (has(self.schedule) ? 1 : 0) + (has(self.interval) ? 1 : 0) == 1",
            message="exactly one of schedule or interval must be set (neither when file.watch is true)",
            check=lambda m: (
                m.schedule is None and m.interval is None
                if m.file is not None and m.file.watch
                else (m.schedule is not None) + (m.interval is not None) == 1
            ),
            field_path=".schedule",
        ),
    )

    type: ConnectorType = Field(
        description="Kind of source: `file` (CSV / Excel files on a volume or in S3), `http` (a generic REST "
        "API), `tago` (Tago.io), `airbeld` (Airbeld sensors) or `fusionsolar` (Huawei FusionSolar)."
    )
    schedule: CronSchedule | None = Field(
        default=None,
        description="Cron schedule of the runs (five fields or `@hourly`, `@daily`, ...). Exactly one of "
        "`schedule` or `interval`, unless `file.watch` is true.",
    )
    interval: Interval | None = Field(
        default=None,
        description="Time between two runs: a number and a unit, `s`, `m`, `h` or `d` (`5m`, `1h`, `12h`). "
        "Exactly one of `schedule` or `interval`, unless `file.watch` is true.",
    )
    suspend: bool = Field(default=False, description="Start no further runs (a watcher is scaled to zero).")
    mapping: MappingRef = Field(description="The YAML mapping: exactly one of `name` or `configMapRef`.")
    datasource_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="External id of the datasource the loaded records belong to. Absent: each device id "
        "resolves its own datasource.",
    )
    device_ids: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=100,
        description="Devices (Tago devices, Airbeld devices, FusionSolar station codes) to fetch; empty "
        "means every device the credentials can see.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with the source's credentials. Keys by type: `tago` `token` (or one key per "
        "device id), `airbeld` `username` and `password`, `fusionsolar` `username` and `systemCode`, `http` "
        "as `http.auth` says.",
    )
    lookback_days: int = Field(
        default=7,
        ge=1,
        le=3650,
        description="How far back the first run fetches when there is no cursor yet, in days.",
    )
    staging_retention_days: int = Field(
        default=7,
        ge=0,
        le=3650,
        description="Days a batch's staging rows (every record with its raw values and errors) are kept, "
        "counted from the batch's start; older ones are deleted at the start of each run. 0 keeps them "
        "forever. The batch registry, execution log and quality checks are kept regardless.",
    )
    database: DatabaseRef = Field(description="The PostgreSQL database the records are loaded into.")
    file: FileSource | None = Field(
        default=None,
        description="Where CSV and Excel files come from: exactly one of `volume` or `s3`. Required for "
        "`file`, only then. A file is read once complete (on a volume, once its size has not changed for "
        "`stableSeconds`), then moved to `processedPath` (loaded) or `rejectedPath` (refused); a file "
        "already loaded (same SHA-256) is not loaded twice.",
    )
    http: HttpSource | None = Field(
        default=None, description="HTTP settings of the API connector types. Not used with `file`."
    )


class ConnectorStatus(Status):
    """What the operator last observed of the connector."""

    phase: ConnectorPhase | None = Field(
        default=None,
        description="`Pending` (not set up yet), `Scheduled` (waiting for the next run), `Running` (a run is "
        "in progress), `Watching` (a file watcher is running), `Failed` (the last run failed) or `Stalled` "
        "(cannot proceed until the spec or a referenced object changes).",
    )
    workload_name: str | None = Field(
        default=None, max_length=253, description="Name of the CronJob or Deployment running the connector."
    )
    last_run_time: datetime | None = Field(default=None, description="When the last run started.")
    last_successful_time: datetime | None = Field(default=None, description="When a run last succeeded.")
    last_load_time: datetime | None = Field(
        default=None,
        description="A watching connector: when it last loaded or refused a file. Its worker writes this and "
        "the figures below after each such load.",
    )
    cursor: datetime | None = Field(
        default=None,
        description="Where the next API fetch starts: the oldest per-device cursor (API connector types).",
    )
    batches: int | None = Field(
        default=None, ge=0, description="Batches (files or API responses) loaded so far."
    )
    rows_loaded: int | None = Field(default=None, ge=0, description="Rows loaded into final tables so far.")
    rows_rejected: int | None = Field(default=None, ge=0, description="Rows refused by validation so far.")
    quality_score: float | None = Field(
        default=None, ge=0, le=1, description="Share of valid rows in the last batch, 0 to 1."
    )
    last_batch_id: str | None = Field(default=None, max_length=64, description="Id of the last batch loaded.")


class Connector(ApiModel):
    """A data ingestion connector: a source, its mapping, a schedule and a target PostgreSQL database."""

    api_version: Literal["headwater.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["Connector"] = Field(default="Connector", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ConnectorSpec = Field(description="The source, mapping, schedule and database.")
    status: ConnectorStatus | None = Field(default=None, description="What the operator last observed.")


KIND = KindInfo(
    kind="Connector",
    plural="connectors",
    singular="connector",
    short_names=("conn",),
    spec_model=ConnectorSpec,
    status_model=ConnectorStatus,
    resource_model=Connector,
    description=Connector.__doc__ or "",
    printer_columns=(
        PrinterColumn("Type", ".spec.type", description="Kind of source."),
        phase_column(),
        ready_column(),
        PrinterColumn("Rows", ".status.rowsLoaded", type="integer", description="Rows loaded so far."),
        PrinterColumn("Rejected", ".status.rowsRejected", type="integer", description="Rows refused so far."),
        PrinterColumn(
            "Last Success",
            ".status.lastSuccessfulTime",
            type="date",
            description="When a run last succeeded.",
        ),
        age_column(),
        PrinterColumn(
            "Quality",
            ".status.qualityScore",
            type="number",
            description="Valid share of the last batch.",
            priority=1,
        ),
        PrinterColumn(
            "Cursor", ".status.cursor", type="date", description="Where the next fetch starts.", priority=1
        ),
        message_column(),
    ),
)
