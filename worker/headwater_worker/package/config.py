"""The contract between the operator and the Package worker.

The operator builds a `PackageConfig` from a Package's spec and hands it to every stage's Job as JSON in
`HEADWATER_PACKAGE_CONFIG` (`PackageConfig.to_env()`). Secrets never travel in it: S3 credentials arrive as
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from a Secret. Each stage reports a `StageReport` (JSON) in its
container's termination message, which the operator parses with the same model.

Models only (no I/O, no geo libraries), so that the operator can import them cheaply.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ..s3 import S3Location
from .errors import FailureReason
from .metadata import PROCESSOR_PATTERN

CONFIG_ENV = "HEADWATER_PACKAGE_CONFIG"
BOUNDARY_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
MAX_PROCESSORS = 50

ProcessorName = Annotated[str, StringConstraints(pattern=PROCESSOR_PATTERN, min_length=3, max_length=127)]
StageName = Literal["setup", "process", "finalise"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _exactly_one(model: BaseModel, *names: str) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        raise ValueError(f"exactly one of {' or '.join(f'`{to_camel(name)}`' for name in names)} is needed")


class BoundarySpec(_Model):
    """The area every dataset is clipped to."""

    name: Annotated[str, StringConstraints(pattern=BOUNDARY_NAME_PATTERN, max_length=63)] = Field(
        description="short name (`gambia`); names the package's folder"
    )
    long_name: str | None = Field(default=None, max_length=256, description="display name (`The Gambia`)")
    geojson: str | None = Field(
        default=None, description="GeoJSON geometry, Feature or FeatureCollection of one Feature"
    )
    geojson_file: Annotated[str, StringConstraints(pattern=r"^/")] | None = Field(
        default=None,
        description="the same in a file (a mounted ConfigMap key), for boundaries too big for "
        "an environment variable",
    )

    @model_validator(mode="after")
    def _one_geometry(self) -> Self:
        _exactly_one(self, "geojson", "geojson_file")
        return self


class VolumeFolder(_Model):
    """A folder of a mounted volume."""

    path: Annotated[str, StringConstraints(pattern=r"^/")] = Field(
        description="absolute path of the folder in the container; created if missing"
    )
    uri_prefix: str | None = Field(
        default=None,
        description="how the folder is named in results (`pvc://<claim>/<path>`); absent: `file://` URIs",
    )


class StorageSpec(_Model):
    """Exactly one of `s3` (a bucket prefix) or `volume` (a mounted folder)."""

    s3: S3Location | None = None
    volume: VolumeFolder | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> Self:
        _exactly_one(self, "s3", "volume")
        return self


def _processor_entry(value: Any) -> Any:
    """A bare `dataset.version` is the processor with its default options."""
    return {"name": value} if isinstance(value, str) else value


class ProcessorEntry(_Model):
    name: ProcessorName = Field(description="`dataset.version`")
    options: dict[str, JsonValue] = Field(
        default_factory=dict, description="the processor's options (its `Options` model), such as its source"
    )


class PackageConfig(_Model):
    """The non-secret configuration of every stage of one Package (`HEADWATER_PACKAGE_CONFIG`)."""

    package: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9.-]*$")] | None = (
        Field(default=None, description="`<namespace>/<name>` of the Package, for logs")
    )
    boundary: BoundarySpec
    processors: list[Annotated[ProcessorEntry, BeforeValidator(_processor_entry)]] = Field(
        min_length=1, max_length=MAX_PROCESSORS
    )
    storage: StorageSpec
    package_host_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = Field(
        default=None,
        description="root URL the storage is served from; `datapackage.json` links files below it. Absent: "
        "links are storage URIs (`s3://...`, the volume's `uriPrefix`) or, failing those, relative paths",
    )
    cache: StorageSpec | None = Field(
        default=None, description="where downloaded sources are kept between runs; absent: scratch space"
    )
    lock_timeout_seconds: int = Field(
        default=3600, ge=0, le=86400, description="how long a stage waits for another Job's lock"
    )

    @model_validator(mode="after")
    def _unique_processors(self) -> Self:
        names = [entry.name for entry in self.processors]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"each processor is run once: {', '.join(duplicates)} given more than once")
        return self

    def processor(self, name: str) -> ProcessorEntry | None:
        return next((entry for entry in self.processors if entry.name == name), None)

    def to_env(self) -> str:
        """The JSON for `HEADWATER_PACKAGE_CONFIG`."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_env(cls, value: str) -> PackageConfig:
        return cls.model_validate_json(value)


# -- results ----------------------------------------------------------------------------------------------


class ProcessorPhase(enum.StrEnum):
    SUCCEEDED = "Succeeded"
    SKIPPED = "Skipped"
    FAILED = "Failed"


class ProcessorResult(_Model):
    name: str = Field(description="`dataset.version`")
    phase: ProcessorPhase
    progress: int = Field(ge=0, le=100)
    message: str = ""
    result_uris: list[str] = Field(default_factory=list)
    omitted_uris: int = Field(default=0, description="result URIs left out to fit the message")
    inputs_hash: str | None = None


class ErrorInfo(_Model):
    reason: FailureReason
    message: str
    permanent: bool = Field(default=False, description="retrying the Job cannot help")


class StageReport(_Model):
    """The termination message of a stage."""

    stage: StageName
    boundary: str
    processors: list[ProcessorResult] = Field(default_factory=list)
    datapackage_uri: str | None = None
    error: ErrorInfo | None = None
