"""Package: datasets clipped to a boundary and published as a frictionless data package (seed 003)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, WithJsonSchema

from .common import (
    API_VERSION,
    ApiModel,
    CelRule,
    ConfigMapKeyRef,
    HttpUrl,
    KindInfo,
    ObjectMeta,
    PrinterColumn,
    S3Location,
    Status,
    StatusModel,
    VolumeLocation,
    age_column,
    exactly_one,
    message_column,
    phase_column,
    ready_column,
)

PackagePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Stalled"]
ProcessorPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
StagePhase = Literal["Pending", "Running", "Succeeded", "Failed"]

PROCESSOR_PATTERN = r"^[a-z0-9][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$"
BOUNDARY_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
MAX_PROCESSORS = 50
MAX_GEOJSON = 262144
MAX_PARALLELISM = 16

ProcessorName = Annotated[str, Field(min_length=3, max_length=127, pattern=PROCESSOR_PATTERN)]
# A processor's options are its own (its options model, in the worker, checks them): any JSON object here.
ProcessorOptions = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "Options of one processor, as its options model takes them.",
        }
    ),
]


class BoundaryGeometry(ApiModel):
    """The boundary's geometry as GeoJSON: exactly one of `configMapRef` or `geojson`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("configMapRef", "geojson"),)

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding a GeoJSON Feature, FeatureCollection or geometry."
    )
    geojson: str | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_GEOJSON,
        description=f"The GeoJSON inline (at most {MAX_GEOJSON // 1024} KiB; use `configMapRef` for larger).",
    )


class Boundary(ApiModel):
    """The area every dataset is clipped to."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=BOUNDARY_NAME_PATTERN,
        description="Short name of the boundary (`gambia`); names the package's folder.",
    )
    long_name: str | None = Field(default=None, max_length=256, description="Display name (`The Gambia`).")
    geometry: BoundaryGeometry = Field(
        description="The boundary's geometry: exactly one of `configMapRef` or `geojson`."
    )


class PackageStorage(ApiModel):
    """Where the package is stored: exactly one of `s3` or `volume`.

    The package lives in the folder `<boundary name>/` under the prefix or path: `datapackage.json`,
    `provenance.json` and its html pages at its root, each processor's files under
    `datasets/<dataset>/<version>/data/`.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("s3", "volume"),)

    s3: S3Location | None = Field(default=None, description="Store the package in this S3 bucket and prefix.")
    volume: VolumeLocation | None = Field(
        default=None, description="Store the package in this folder of a PersistentVolumeClaim."
    )


class SourceCache(ApiModel):
    """Where downloaded source data is kept between runs: exactly one of `s3` or `volume`."""

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("s3", "volume"),)

    s3: S3Location | None = Field(default=None, description="Keep sources in this S3 bucket and prefix.")
    volume: VolumeLocation | None = Field(
        default=None, description="Keep sources in this folder of a PersistentVolumeClaim."
    )


def _options_name_processors(spec: PackageSpec) -> bool:
    return set(spec.options) <= set(spec.processors)


_CACHE_KEYS, _STORAGE_KEYS = "self.cache.s3.credentialsSecretRef", "self.storage.s3.credentialsSecretRef"
# Objects at two places of a schema are of two CEL types: their fields are compared one by one.
_ONE_KEY_PAIR_RULE = (
    "!has(self.cache) || !has(self.cache.s3) || !has(self.storage.s3) || "
    f"(has({_CACHE_KEYS}) ? has({_STORAGE_KEYS}) && "
    + " && ".join(
        f"{_CACHE_KEYS}.{key} == {_STORAGE_KEYS}.{key}"
        for key in ("name", "accessKeyIdKey", "secretAccessKeyKey")
    )
    + f" : !has({_STORAGE_KEYS}))"
)


def _one_key_pair(spec: PackageSpec) -> bool:
    if spec.cache is None or spec.cache.s3 is None or spec.storage.s3 is None:
        return True
    return spec.cache.s3.credentials_secret_ref == spec.storage.s3.credentials_secret_ref


class PackageSpec(ApiModel):
    """A boundary, the datasets to clip to it, and where to store the package.

    A setup Job checks the boundary, the processors and the storage; one Job per processor clips its
    dataset (at most `parallelism` at once); a finalise Job writes `datapackage.json` once every processor
    succeeded or was skipped. A processor whose files for the same inputs already exist is skipped.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (
        CelRule(
            rule="!has(self.options) || self.options.all(name, name in self.processors)",
            message="every key of options must be one of processors",
            check=_options_name_processors,
            field_path=".options",
        ),
        CelRule(
            rule=_ONE_KEY_PAIR_RULE,
            message="cache.s3 and storage.s3 must use the same credentialsSecretRef: a Job has one key pair",
            check=_one_key_pair,
            field_path=".cache",
        ),
    )

    boundary: Boundary = Field(description="The area every dataset is clipped to.")
    processors: list[ProcessorName] = Field(
        min_length=1,
        max_length=MAX_PROCESSORS,
        description="Processors to run, as `dataset.version` (`natural_earth_raster.version_1`), each once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    options: dict[str, ProcessorOptions] = Field(
        default_factory=dict,
        max_length=MAX_PROCESSORS,
        description="Options of the processors, by processor name (`natural_earth_raster.version_1: {source: "
        "{url: ...}}`); each key is one of `processors`. A processor checks its own options: setup fails "
        "with `ConfigurationError` naming the one it refuses. S3 sources are read with the key pair of "
        "`storage.s3` (or `cache.s3`).",
    )
    parallelism: int = Field(
        default=2,
        ge=1,
        le=MAX_PARALLELISM,
        description="Processor Jobs running at once; the others start as those end.",
    )
    storage: PackageStorage = Field(
        description="Where the package is stored: exactly one of `s3` or `volume`. The package is the folder "
        "`<boundary name>/` under the prefix or path: `datapackage.json` at its root, each processor's files "
        "under `datasets/<dataset>/<version>/data/`."
    )
    package_host_url: HttpUrl | None = Field(
        default=None,
        description="Root URL the stored packages are served from (`https://example.org/packages`); "
        "`datapackage.json` links resources below it. Absent: links are `s3://` or `pvc://` URIs.",
    )
    cache: SourceCache | None = Field(
        default=None,
        description="Where processors keep downloaded source data between runs, each source downloaded once "
        "across packages: exactly one of `s3` or `volume`. Absent: each Job downloads into scratch space.",
    )
    backoff_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Retries of each failed Job. A failure no retry can mend (an invalid boundary or option, "
        "an unknown processor) fails the Job at once.",
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=2592000, description="Seconds each Job may take. Absent means no limit."
    )


class ProcessorStatus(StatusModel):
    """Progress of one processor."""

    name: ProcessorName = Field(description="The processor, `dataset.version`.")
    phase: ProcessorPhase | None = Field(
        default=None,
        description="`Pending`, `Running`, `Succeeded`, `Failed` or `Skipped` (its files already existed).",
    )
    progress: int | None = Field(default=None, ge=0, le=100, description="Percent done, 0 to 100.")
    message: str | None = Field(default=None, max_length=1024, description="Last progress message.")
    reason: str | None = Field(
        default=None, max_length=128, description="Why the processor failed (`SourceUnavailable`, ...)."
    )
    result_uris: list[Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=list, max_length=100, description="Where the processor's files are."
    )
    job_name: str | None = Field(default=None, max_length=253, description="Name of the processor's Job.")
    finished_at: datetime | None = Field(default=None, description="When the processor finished.")


class ProcessorReport(StatusModel):
    """What a processor's Job last reported while it ran: written by the Job itself."""

    job_name: str = Field(max_length=253, description="The Job that reported it.")
    percent: int = Field(ge=0, le=100, description="Percent done, 0 to 100.")
    message: str = Field(default="", max_length=1024, description="What the processor is doing.")
    time: datetime = Field(description="When it reported it.")


class PackageStatus(Status):
    """What the operator last observed of the package."""

    phase: PackagePhase | None = Field(
        default=None,
        description="`Pending`, `Running`, `Succeeded`, `Failed` or `Stalled` (cannot proceed until the "
        "spec or a referenced object changes).",
    )
    progress: int | None = Field(default=None, ge=0, le=100, description="Overall percent done, 0 to 100.")
    processors: list[ProcessorStatus] = Field(
        default_factory=list,
        max_length=MAX_PROCESSORS,
        description="Progress of each processor.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    reports: dict[str, ProcessorReport] = Field(
        default_factory=dict,
        max_length=MAX_PROCESSORS,
        description="The progress each running processor's Job reports, by processor name; written by the "
        "Jobs themselves (a Role lets them patch this status), folded into `processors` by the operator.",
    )
    setup_job: str | None = Field(default=None, max_length=253, description="Name of the setup Job.")
    setup_phase: StagePhase | None = Field(
        default=None, description="`Pending`, `Running`, `Succeeded` or `Failed`: how the setup Job went."
    )
    finalise_job: str | None = Field(default=None, max_length=253, description="Name of the finalise Job.")
    finalise_phase: StagePhase | None = Field(
        default=None, description="`Pending`, `Running`, `Succeeded` or `Failed`: how the finalise Job went."
    )
    datapackage_uri: str | None = Field(
        default=None, max_length=2048, description="Where the package's `datapackage.json` is."
    )


class Package(ApiModel):
    """Datasets clipped to a boundary and stored as a frictionless data package."""

    api_version: Literal["headwater.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    kind: Literal["Package"] = Field(default="Package", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: PackageSpec = Field(description="The boundary, processors and storage.")
    status: PackageStatus | None = Field(default=None, description="What the operator last observed.")


KIND = KindInfo(
    kind="Package",
    plural="packages",
    singular="package",
    short_names=("pkg",),
    spec_model=PackageSpec,
    status_model=PackageStatus,
    resource_model=Package,
    description=Package.__doc__ or "",
    printer_columns=(
        PrinterColumn("Boundary", ".spec.boundary.name", description="The boundary."),
        phase_column(),
        ready_column(),
        PrinterColumn("Progress", ".status.progress", type="integer", description="Overall percent done."),
        age_column(),
        PrinterColumn(
            "Datapackage", ".status.datapackageUri", description="Where datapackage.json is.", priority=1
        ),
        message_column(),
    ),
)
