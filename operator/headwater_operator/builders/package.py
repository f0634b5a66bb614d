"""The children of a Package, as a function of its spec and of how far its status has come.

Always: a ServiceAccount, a Role and RoleBinding that let the processor Jobs patch this Package's status
(their progress reports), the ConfigMap holding an inline boundary, and the setup Job. Once the status says
setup succeeded: one Job per processor, at most `parallelism` unfinished at once, started in the order the
spec lists them. Once every processor Succeeded or was Skipped: the finalise Job.

Job names come from the Package's name, the stage (or processor) and a digest of the Package's uid and
spec generation: a restarted operator finds the same Jobs, and a new generation runs every stage anew (the
worker skips what is already stored, so only what failed or changed does any work).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from headwater_worker.package.config import CONFIG_ENV, PackageConfig

from .. import naming
from ..api.common import S3Location, VolumeLocation
from ..api.package import PackageSpec, PackageStatus, ProcessorStatus
from ..config import OperatorConfig
from .common import (
    Owner,
    role_binding,
    s3_credentials_env,
    s3_location,
    service_account,
    status_writer_role,
    worker_pod_spec,
)

PLURAL = "packages"
SETUP = "setup"
PROCESS = "process"
FINALISE = "finalise"
BOUNDARY_DIR = "/etc/headwater/boundary"
BOUNDARY_FILE = "boundary.geojson"
CLAIMS_DIR = "/var/lib/headwater/volumes"
SCRATCH_DIR = "/var/lib/headwater/scratch"
SCRATCH_ENV = "HEADWATER_SCRATCH"
JOB_ENV = "HEADWATER_PACKAGE_JOB"
# The worker's exit code for a failure no retry can mend (an invalid boundary, an unknown processor, ...).
PERMANENT_EXIT = 2
DONE = ("Succeeded", "Skipped")
ENDED = ("Succeeded", "Skipped", "Failed")
# The raster crop peaks near 200 MiB whatever the raster's size; the vector clip holds a batch of 50,000
# features and their clipped copies. Setup and finalise read little and keep the worker's default.
PROCESS_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


# -- names ------------------------------------------------------------------------------------------------


def _digest(owner: Owner, stage: str) -> str:
    run = f"{owner.uid}/{owner.generation}/{stage}"
    return hashlib.sha256(run.encode()).hexdigest()[:6]


def _slug(processor: str) -> str:
    """`natural_earth_raster.version_1` as a name part: `natural-earth-raster-version-1`. Two processors
    with the same slug (`a_b.c`, `a.b_c`) still get distinct names: the digest covers the processor."""
    return processor.replace("_", "-").replace(".", "-")


def setup_job_name(owner: Owner) -> str:
    return naming.child_name(owner.name, SETUP, _digest(owner, SETUP))


def finalise_job_name(owner: Owner) -> str:
    return naming.child_name(owner.name, FINALISE, _digest(owner, FINALISE))


def processor_job_name(owner: Owner, processor: str) -> str:
    return naming.child_name(owner.name, _slug(processor), _digest(owner, f"{PROCESS}/{processor}"))


def job_names(owner: Owner, spec: PackageSpec) -> set[str]:
    """Every Job this generation of the Package may have."""
    processors = {processor_job_name(owner, name) for name in spec.processors}
    return {setup_job_name(owner), finalise_job_name(owner), *processors}


def boundary_config_map_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "boundary")


def status_writer_name(owner: Owner) -> str:
    return naming.child_name(owner.name, "status-writer")


# -- what the status says of this generation --------------------------------------------------------------


def processor_entry(owner: Owner, status: PackageStatus | None, processor: str) -> ProcessorStatus | None:
    """The status of a processor's Job of this generation; None before that Job was started."""
    if status is None:
        return None
    name = processor_job_name(owner, processor)
    return next((p for p in status.processors if p.name == processor and p.job_name == name), None)


def setup_succeeded(owner: Owner, status: PackageStatus | None) -> bool:
    return (
        status is not None and status.setup_job == setup_job_name(owner) and status.setup_phase == "Succeeded"
    )


def started_processors(owner: Owner, spec: PackageSpec, status: PackageStatus | None) -> list[str]:
    """The processors whose Jobs should exist now: those started already, then as many more (in the spec's
    order) as `parallelism` leaves room for. None before setup succeeded."""
    if not setup_succeeded(owner, status):
        return []
    entries = {name: processor_entry(owner, status, name) for name in spec.processors}
    started = [name for name, entry in entries.items() if entry is not None]
    running = [entry for entry in entries.values() if entry is not None and entry.phase not in ENDED]
    room = max(spec.parallelism - len(running), 0)
    waiting = [name for name in spec.processors if name not in started]
    chosen = set(started) | set(waiting[:room])
    return [name for name in spec.processors if name in chosen]


def all_processors_done(owner: Owner, spec: PackageSpec, status: PackageStatus | None) -> bool:
    entries = [processor_entry(owner, status, name) for name in spec.processors]
    return all(entry is not None and entry.phase in DONE for entry in entries)


# -- the worker's configuration ---------------------------------------------------------------------------


def _claims(spec: PackageSpec) -> list[str]:
    """The distinct claims the storage and the cache live on: each is mounted once."""
    volumes = [location.volume for location in (spec.storage, spec.cache) if location is not None]
    return list(dict.fromkeys(volume.claim_name for volume in volumes if volume is not None))


def _volume_folder(volume: VolumeLocation) -> dict[str, str]:
    path = f"{CLAIMS_DIR}/{volume.claim_name}/{volume.path}".rstrip("/")
    return {"path": path, "uriPrefix": f"pvc://{volume.claim_name}/{volume.path}".rstrip("/")}


def _location(s3: S3Location | None, volume: VolumeLocation | None) -> dict[str, Any]:
    if s3 is not None:
        return {"s3": s3_location(s3)}
    assert volume is not None
    return {"volume": _volume_folder(volume)}


def worker_config(owner: Owner, spec: PackageSpec) -> PackageConfig:
    boundary = spec.boundary
    config: dict[str, Any] = {
        "package": f"{owner.namespace}/{owner.name}",
        "boundary": {
            "name": boundary.name,
            "longName": boundary.long_name,
            "geojsonFile": f"{BOUNDARY_DIR}/{BOUNDARY_FILE}",
        },
        "processors": [{"name": name, "options": spec.options.get(name) or {}} for name in spec.processors],
        "storage": _location(spec.storage.s3, spec.storage.volume),
        "packageHostUrl": str(spec.package_host_url).rstrip("/") if spec.package_host_url else None,
        "cache": _location(spec.cache.s3, spec.cache.volume) if spec.cache is not None else None,
    }
    return PackageConfig.model_validate({key: value for key, value in config.items() if value is not None})


def _s3_credentials(spec: PackageSpec) -> list[dict[str, Any]]:
    """The key pair of the storage's bucket, else the cache's: the API refuses two different ones."""
    for location in (spec.storage, spec.cache):
        if location is not None and location.s3 is not None and location.s3.credentials_secret_ref:
            return s3_credentials_env(location.s3)
    return []


# -- children ---------------------------------------------------------------------------------------------


def boundary_config_map(owner: Owner, spec: PackageSpec) -> dict[str, Any]:
    """An inline boundary, as a file for the Jobs: too big for an environment variable at its largest."""
    assert spec.boundary.geometry.geojson is not None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(boundary_config_map_name(owner), "boundary"),
        "data": {BOUNDARY_FILE: spec.boundary.geometry.geojson},
    }


def _boundary_volume(owner: Owner, spec: PackageSpec) -> dict[str, Any]:
    reference = spec.boundary.geometry.config_map_ref
    if reference is None:
        source = {"name": boundary_config_map_name(owner)}
        key = BOUNDARY_FILE
    else:
        source = {"name": reference.name}
        key = reference.key
    return {"name": "boundary", "configMap": {**source, "items": [{"key": key, "path": BOUNDARY_FILE}]}}


def pod_spec(
    owner: Owner, spec: PackageSpec, config: OperatorConfig, command: Sequence[str], *, job: str
) -> dict[str, Any]:
    process = command[0] == PROCESS
    env: list[dict[str, Any]] = [
        {"name": CONFIG_ENV, "value": worker_config(owner, spec).to_env()},
        {"name": SCRATCH_ENV, "value": SCRATCH_DIR},
        *_s3_credentials(spec),
    ]
    volumes: list[dict[str, Any]] = [_boundary_volume(owner, spec), {"name": "scratch", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [
        {"name": "boundary", "mountPath": BOUNDARY_DIR, "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH_DIR},
    ]
    for index, claim in enumerate(_claims(spec)):
        volumes.append({"name": f"claim-{index}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"claim-{index}", "mountPath": f"{CLAIMS_DIR}/{claim}"})
    if process:
        env.append({"name": JOB_ENV, "value": job})
    # Only a processor reports progress through the API server (its Role: this Package's status alone).
    pod = worker_pod_spec(owner, config, ["package", *command], env, volumes, mounts, automount_token=process)
    if process:
        pod["containers"][0]["resources"] = PROCESS_RESOURCES
    return pod


def _job(
    owner: Owner,
    spec: PackageSpec,
    config: OperatorConfig,
    name: str,
    component: str,
    command: Sequence[str],
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        # A retry cannot mend an invalid boundary, option or processor: the worker says so by its exit code.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "worker",
                        "operator": "In",
                        "values": [PERMANENT_EXIT],
                    },
                }
            ]
        },
        "template": {
            "metadata": {"labels": naming.labels(owner.kind, owner.name, component)},
            "spec": pod_spec(owner, spec, config, command, job=name),
        },
    }
    if spec.active_deadline_seconds is not None:
        job["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": owner.metadata(name, component), "spec": job}


def setup_job(owner: Owner, spec: PackageSpec, config: OperatorConfig) -> dict[str, Any]:
    return _job(owner, spec, config, setup_job_name(owner), SETUP, [SETUP])


def processor_job(owner: Owner, spec: PackageSpec, config: OperatorConfig, processor: str) -> dict[str, Any]:
    name = processor_job_name(owner, processor)
    return _job(owner, spec, config, name, PROCESS, [PROCESS, "--processor", processor])


def finalise_job(owner: Owner, spec: PackageSpec, config: OperatorConfig) -> dict[str, Any]:
    return _job(owner, spec, config, finalise_job_name(owner), FINALISE, [FINALISE])


def children(
    owner: Owner, spec: PackageSpec, config: OperatorConfig, status: PackageStatus | None
) -> list[dict[str, Any]]:
    """Everything the Package should own now, in the order to apply it."""
    writer = status_writer_name(owner)
    built = [
        service_account(owner),
        status_writer_role(owner, PLURAL, writer),
        role_binding(owner, writer),
    ]
    if spec.boundary.geometry.geojson is not None:
        built.append(boundary_config_map(owner, spec))
    built.append(setup_job(owner, spec, config))
    built += [processor_job(owner, spec, config, name) for name in started_processors(owner, spec, status)]
    if all_processors_done(owner, spec, status):
        built.append(finalise_job(owner, spec, config))
    return built
