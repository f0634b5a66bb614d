"""Package: datasets clipped to a boundary and published as a frictionless data package (seed 003)."""

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

PROCESSOR_PATTERN = r"^[a-z0-9][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$"
BOUNDARY_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
MAX_PROCESSORS = 50
MAX_GEOJSON = 262144

ProcessorName = Annotated[str, Field(min_length=3, max_length=127, pattern=PROCESSOR_PATTERN)]


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

    The package lives in the folder `<boundary name>/` under the prefix or path: `datapackage.json` at its
    root and each processor's files under `<dataset>/<version>/`.
    """

    cel_rules: ClassVar[Sequence[CelRule]] = (exactly_one("s3", "volume"),)

    s3: S3Location | None = Field(default=None, description="Store the package in this S3 bucket and prefix.")
    volume: VolumeLocation | None = Field(
        default=None, description="Store the package in this folder of a PersistentVolumeClaim."
    )


class PackageSpec(ApiModel):
    """A boundary, the datasets to clip to it, and where to store the package.

    A setup Job prepares the package folder, one Job per processor clips its dataset (in parallel), and a
    finalise Job writes `datapackage.json`. A processor whose files already exist is skipped.
    """

    boundary: Boundary = Field(description="The area every dataset is clipped to.")
    processors: list[ProcessorName] = Field(
        min_length=1,
        max_length=MAX_PROCESSORS,
        description="Processors to run, as `dataset.version` (`natural_earth_raster.version_1`), each once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    storage: PackageStorage = Field(
        description="Where the package is stored: exactly one of `s3` or `volume`. The package is the folder "
        "`<boundary name>/` under the prefix or path: `datapackage.json` at its root, each processor's files "
        "under `<dataset>/<version>/`."
    )
    package_host_url: HttpUrl | None = Field(
        default=None,
        description="Root URL the stored packages are served from (`https://example.org/packages`); "
        "`datapackage.json` links resources below it. Absent: links are `s3://` or `pvc://` URIs.",
    )
    cache: VolumeLocation | None = Field(
        default=None,
        description="Folder where processors keep downloaded source data between runs. Absent: each Job "
        "downloads into scratch space.",
    )
    backoff_limit: int = Field(default=3, ge=0, le=100, description="Retries of each failed Job.")
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
    result_uris: list[Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=list, max_length=100, description="Where the processor's files are."
    )
    job_name: str | None = Field(default=None, max_length=253, description="Name of the processor's Job.")
    finished_at: datetime | None = Field(default=None, description="When the processor finished.")


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
    setup_job: str | None = Field(default=None, max_length=253, description="Name of the setup Job.")
    finalise_job: str | None = Field(default=None, max_length=253, description="Name of the finalise Job.")
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
