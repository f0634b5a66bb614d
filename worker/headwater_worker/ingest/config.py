"""The contract between the operator and the ingest worker.

The operator builds an `IngestConfig` from a Connector's spec and hands it to the worker as JSON in
`HEADWATER_INGEST_CONFIG` (`IngestConfig.to_env()`). Secrets never travel in it: the database DSN arrives
as `DATABASE_URL` (from a Secret) and the source's credentials as files of a Secret volume, one file per
key, in `HEADWATER_CREDENTIALS_DIR`.

The worker reports what it did in the container's termination message, an `IngestSummary` (JSON), which
the operator parses with the same model. Models only (no I/O), so that both sides import it cheaply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

CONFIG_ENV = "HEADWATER_INGEST_CONFIG"
DATABASE_URL_ENV = "DATABASE_URL"
CREDENTIALS_DIR_ENV = "HEADWATER_CREDENTIALS_DIR"
DEFAULT_CREDENTIALS_DIR = "/var/run/headwater/credentials"

ConnectorType = Literal["file", "http", "tago", "airbeld", "fusionsolar"]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/")]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class FileConfig(_Model):
    path: AbsolutePath = Field(description="the folder where files arrive")
    include: list[str] = Field(default_factory=lambda: ["*.csv", "*.xlsx", "*.xls"], min_length=1)
    processed_path: AbsolutePath
    rejected_path: AbsolutePath
    stable_seconds: int = Field(default=3, ge=0)
    watch: bool = False
    poll_seconds: int = Field(default=5, ge=1)


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


class ErrorInfo(_Model):
    reason: str
    message: str


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
