"""The contract between the operator and the wrapper worker: its configuration and its reports.

The operator builds a `WrapperConfig` from a Wrapper's spec and hands it over as JSON in
`HEADWATER_WRAPPER_CONFIG`. Secrets never travel in it: the source's API key arrives as
`HEADWATER_SOURCE_API_KEY`, Gemini's as `HEADWATER_GEMINI_API_KEY` (the generator only), the database DSN
as `DATABASE_URL`, S3 keys as `AWS_*`, each from a Secret.
The worker reports in its termination message (a Job) or in the Wrapper's status (a Deployment), with the
models below, which the operator parses too. Models only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..s3 import S3Location
from .source import ApiKey

CONFIG_ENV = "HEADWATER_WRAPPER_CONFIG"
API_KEY_ENV = "HEADWATER_SOURCE_API_KEY"
GEMINI_API_KEY_ENV = "HEADWATER_GEMINI_API_KEY"
DATABASE_URL_ENV = "DATABASE_URL"
CODE_KEY = "wrapper.py"
# The generator's exit status when Gemini is out of reach or of quota (EX_TEMPFAIL): the one exit its Job
# retries, with a new pod after the Job controller's backoff.
EXIT_TRY_LATER = 75
MAX_LOG_PER_REPORT = 10

SourceType = Literal["API", "CSV", "XLSX"]
Mode = Literal["once", "schedule", "continuous"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class S3ObjectConfig(S3Location):
    key: str = Field(min_length=1)


class IndicatorConfig(_Model):
    name: str
    description: str | None = None
    unit: str | None = None
    category: str | None = None


class SourceConfig(_Model):
    """Exactly one of `url` (an API, or a file to download), `path` (a mounted file) or `s3`."""

    type: SourceType
    url: str | None = None
    path: str | None = None
    s3: S3ObjectConfig | None = None
    api_key_header: str = "X-API-Key"
    api_key_query_parameter: str | None = None
    notes: str | None = None

    def api_key(self, env: Mapping[str, str]) -> ApiKey | None:
        """The API key from the environment, placed where this source wants it; `None` without one."""
        value = env.get(API_KEY_ENV)
        return ApiKey(value, self.api_key_header, self.api_key_query_parameter) if value else None


class GeneratorConfig(_Model):
    type: Literal["template", "gemini"]
    model: str | None = None
    max_attempts: int = Field(default=3, ge=1)
    base_url: str | None = Field(default=None, description="Gemini's API base URL; None: the SDK's own")
    fallback: Literal["template"] | None = Field(
        default=None, description="the generator to write with when Gemini is unreachable or exhausted"
    )


class DatabaseOutput(_Model):
    table: str = "indicator_points"


class OutputConfig(_Model):
    database: DatabaseOutput | None = None
    s3: S3Location | None = None


class WrapperConfig(_Model):
    wrapper: str = Field(description="namespace/name of the Wrapper")
    resource_id: str = Field(description="the id of the Wrapper's resource: its uid")
    generation: int
    indicator: IndicatorConfig
    source: SourceConfig
    generator: GeneratorConfig
    output: OutputConfig | None = None
    mode: Mode = "once"
    poll_interval_seconds: int = 3600
    # generate: the ConfigMap the module goes into; run: where it is mounted and its digest.
    code_config_map: str | None = None
    prompts_config_map: str | None = None
    code_path: str | None = None
    code_sha256: str | None = None
    previous_error: str | None = None

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class LogEntry(_Model):
    time: datetime
    event: str
    message: str | None = None


class Validation(_Model):
    passed: bool
    errors: list[str] = Field(default_factory=list)


class TokenUsage(_Model):
    """What a model was asked and answered in one generation, as its `usageMetadata` counts it."""

    requests: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)


class GenerationReport(_Model):
    """What a generator Job did: `generated` with the module's digest, or `failed` with why; `retryable`
    when it failed for want of Gemini (unreachable, overloaded, out of quota) and may succeed later."""

    outcome: Literal["generated", "failed"]
    generator: str
    attempts: int
    model: str | None = None
    prompt_version: str | None = None
    tokens: TokenUsage | None = None
    retryable: bool | None = None
    sha256: str | None = None
    generated_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
    validation: Validation | None = None
    log: list[LogEntry] = Field(default_factory=list, max_length=MAX_LOG_PER_REPORT)


class CollectionReport(_Model):
    """What a collector run did: `collected` with the resource's figures, or `failed` with why."""

    outcome: Literal["collected", "failed"]
    ran_at: datetime
    resource_id: str | None = None
    new_points: int | None = None
    total_points: int | None = None
    high_water_mark: datetime | None = None
    low_water_mark: datetime | None = None
    collection_phase: Literal["historical", "continuous"] | None = None
    reason: str | None = None
    message: str | None = None

    def to_status(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
