"""The contract between the operator and the ingest worker.

The operator builds an `IngestConfig` from a Connector's spec and hands it to the worker as JSON in
`HEADWATER_INGEST_CONFIG` (`IngestConfig.to_env()`). Secrets never travel in it: the database DSN arrives
as `DATABASE_URL` (from a Secret), an API source's credentials as files of a Secret volume, one file per
key, in `HEADWATER_CREDENTIALS_DIR`, and an S3 file source's as `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` (from a Secret).

The worker reports what it did in the container's termination message, an `IngestSummary` (JSON), which
the operator parses with the same model. Models only (no I/O), so that both sides import it cheaply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from ..s3 import S3Location, key_folder

CONFIG_ENV = "HEADWATER_INGEST_CONFIG"
DATABASE_URL_ENV = "DATABASE_URL"
CREDENTIALS_DIR_ENV = "HEADWATER_CREDENTIALS_DIR"
DEFAULT_CREDENTIALS_DIR = "/var/run/headwater/credentials"

ConnectorType = Literal["file", "http", "tago", "airbeld", "fusionsolar"]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/")]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class S3FileConfig(S3Location):
    """The key prefix where objects arrive; loaded and refused ones move to other prefixes of the bucket."""

    processed_prefix: str = Field(min_length=1, description="relative to the bucket's root")
    rejected_prefix: str = Field(min_length=1, description="relative to the bucket's root")
    max_object_bytes: int | None = Field(
        default=None,
        ge=1,
        description="a larger object is rejected without being downloaded: what the worker's /tmp holds, "
        "set by the operator; absent: no limit",
    )

    @property
    def processed_folder(self) -> str:
        return key_folder(self.processed_prefix)

    @property
    def rejected_folder(self) -> str:
        return key_folder(self.rejected_prefix)


class FileConfig(_Model):
    """Exactly one source: a volume folder (`path`, `processedPath`, `rejectedPath`) or `s3`."""

    path: AbsolutePath | None = Field(default=None, description="the folder where files arrive")
    s3: S3FileConfig | None = None
    include: list[str] = Field(default_factory=lambda: ["*.csv", "*.xlsx", "*.xls"], min_length=1)
    processed_path: AbsolutePath | None = None
    rejected_path: AbsolutePath | None = None
    stable_seconds: int = Field(
        default=3, ge=0, description="volume only: S3 objects appear whole, never half-written"
    )
    watch: bool = False
    poll_seconds: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        folders = (self.path, self.processed_path, self.rejected_path)
        if self.s3 is None and None in folders:
            raise ValueError("a volume source needs `path`, `processedPath` and `rejectedPath`")
        if self.s3 is not None and folders != (None, None, None):
            raise ValueError("`s3` goes without `path`, `processedPath` and `rejectedPath`")
        return self


class HttpAuthConfig(_Model):
    type: Literal["bearer", "apiKey", "oauthPassword"]
    header_name: str | None = None
    token_url: str | None = None


class HttpConfig(_Model):
    base_url: str | None = None
    path: str = ""
    records_path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuthConfig | None = None
    timeout_seconds: float = Field(default=30, gt=0)
    max_retries: int = Field(default=3, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0, description="first retry delay; doubles each time")
    max_backoff_seconds: float = Field(default=60.0, ge=0)


class MappingSource(_Model):
    """Exactly one: a shipped mapping by name, or a file (a mounted ConfigMap key)."""

    name: str | None = None
    path: AbsolutePath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.name is None) == (self.path is None):
            raise ValueError("mapping needs exactly one of `name` or `path`")
        return self


class IngestConfig(_Model):
    """The non-secret configuration of one ingest run (`HEADWATER_INGEST_CONFIG`)."""

    connector: Annotated[str, StringConstraints(min_length=1, max_length=320)] = Field(
        description="`<namespace>/<name>` of the Connector: the key of its batches and cursors"
    )
    type: ConnectorType
    mapping: MappingSource
    datasource_id: str | None = None
    device_ids: list[str] = Field(default_factory=list)
    lookback_days: int = Field(default=7, ge=1)
    file: FileConfig | None = None
    http: HttpConfig | None = None
    chunk_rows: int = Field(default=100_000, ge=1)
    window_hours: int | None = Field(
        default=None, ge=1, description="hours per API fetch; absent: 1 for hourly mappings, else 24"
    )
    staging_retention_days: int = Field(
        default=7,
        ge=0,
        description="days a batch's staging rows are kept, counted from the batch's start; 0 keeps them",
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        if (self.type == "file") != (self.file is not None):
            raise ValueError("`file` is required for type file, and only then")
        if self.type in ("http", "airbeld") and (self.http is None or not self.http.base_url):
            raise ValueError(f"`http.baseUrl` is required for type {self.type}")
        return self

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_env(cls, value: str) -> IngestConfig:
        return cls.model_validate_json(value)


# -- results -------------------------------------------------------------------------------------------


class RunFigures(_Model):
    batches: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    rejected_inputs: int = 0
    staging_rows_pruned: int = 0


class ErrorInfo(_Model):
    reason: str
    message: str


# The fields of an `IngestSummary` that become the Connector's status fields of the same names.
STATUS_FIGURES = ("rowsLoaded", "rowsRejected", "batches", "qualityScore", "cursor", "lastBatchId")


class IngestSummary(_Model):
    """The termination message of an ingest run: the connector's totals so far, and this run's figures."""

    rows_loaded: int | None = None
    rows_rejected: int | None = None
    batches: int | None = None
    quality_score: float | None = None
    cursor: datetime | None = None
    last_batch_id: str | None = None
    run: RunFigures = Field(default_factory=RunFigures)
    error: ErrorInfo | None = None

    def status_figures(self) -> dict[str, Any]:
        """The connector's totals as status fields (JSON values); the ones not known are left out."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {key: data[key] for key in STATUS_FIGURES if key in data}
