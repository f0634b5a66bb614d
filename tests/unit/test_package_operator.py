"""The Package's pure parts in the operator: children built from a spec and a status, status derived from
children. The DAG is walked here as the handlers walk it: derive the status, build what it calls for."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest
from headwater_operator.api.package import PackageSpec, PackageStatus
from headwater_operator.builders import package as build
from headwater_operator.builders.common import Owner
from headwater_operator.conditions import Outcome, status_patch
from headwater_operator.config import OperatorConfig
from headwater_operator.naming import MAX_NAME
from headwater_operator.status import package as observe
from headwater_worker.package.command import EXIT_PERMANENT
from headwater_worker.package.config import PackageConfig
from pydantic import ValidationError

from tests.unit.workloads import job

UID = "0b6c1f5e-0000-4000-8000-000000000003"
OWNER = Owner("Package", "gambia", "data", UID, generation=1)
CONFIG = OperatorConfig(worker_image="registry.example/headwater-worker:1")
RASTER, VECTOR, TEST = (
    "natural_earth_raster.version_1",
    "natural_earth_vector.version_1",
    "test_processor.version_1",
)
GEOJSON = '{"type": "Polygon", "coordinates": [[[-16.9, 13.0], [-13.7, 13.0], [-13.7, 13.9], [-16.9, 13.0]]]}'
SPEC: dict[str, Any] = {
    "boundary": {"name": "gambia", "longName": "The Gambia", "geometry": {"geojson": GEOJSON}},
    "processors": [TEST, RASTER, VECTOR],
    "options": {RASTER: {"source": {"url": "https://data.example/relief.tif"}}},
    "storage": {
        "s3": {
            "bucket": "packages",
            "endpoint": "http://minio:9000",
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
        }
    },
    "packageHostUrl": "https://data.example/packages/",
    "backoffLimit": 2,
    "activeDeadlineSeconds": 600,
}


def spec(**changes: Any) -> PackageSpec:
    body = copy.deepcopy(SPEC)
    body.update(changes)
    return PackageSpec.model_validate(body)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    [worker] = manifest["spec"]["template"]["spec"]["containers"]
    return dict(worker)


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container(manifest)["env"]}


def config_of(manifest: dict[str, Any]) -> PackageConfig:
    return PackageConfig.from_env(env(manifest)["HEADWATER_PACKAGE_CONFIG"]["value"])


def jobs_of(children: Sequence[dict[str, Any]]) -> list[str]:
    return [c["metadata"]["name"] for c in children if c["kind"] == "Job"]


def setup_report() -> dict[str, Any]:
    return {"stage": "setup", "boundary": "gambia"}


def processed(name: str, phase: str = "Succeeded") -> dict[str, Any]:
    message = "generated" if phase == "Succeeded" else "outputs for these inputs exist"
    dataset, version = name.split(".")
    uri = f"https://data.example/packages/gambia/datasets/{dataset}/{version}/data/{dataset}-{version}-gambia.tif"
    return {
        "stage": "process",
        "boundary": "gambia",
        "processors": [
            {"name": name, "phase": phase, "progress": 100, "message": message, "resultUris": [uri]}
        ],
    }


def failed_processing(name: str, reason: str, message: str, permanent: bool = False) -> dict[str, Any]:
    return {
        "stage": "process",
        "boundary": "gambia",
        "processors": [{"name": name, "phase": "Failed", "progress": 0, "message": message}],
        "error": {"reason": reason, "message": message, "permanent": permanent},
    }


FINALISED = {
    "stage": "finalise",
    "boundary": "gambia",
    "datapackageUri": "https://data.example/packages/gambia/datapackage.json",
}


class Run:
    """A Package's children and status as the handlers keep them: each step derives the status from the
    Jobs, then builds what that status calls for."""

    def __init__(self, package: PackageSpec, owner: Owner = OWNER) -> None:
        self.spec = package
        self.owner = owner
        self.jobs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.status: dict[str, Any] = {}
        self.outcome = Outcome.reconciling("Pending", "NotDerived")

    def step(self) -> list[str]:
        """Derive, write, build: the names of the Jobs the status now calls for (created pending)."""
        self.derive()
        parsed = PackageStatus.model_validate(self.status)
        wanted = jobs_of(build.children(self.owner, self.spec, CONFIG, parsed))
        for name in wanted:
            self.jobs.setdefault(name, job(name, "pending"))
        self.derive()
        return wanted

    def derive(self) -> None:
        jobs = [j for j, _ in self.jobs.values()]
        pods = [p for _, p in self.jobs.values()]
        self.outcome, extra = observe.derive(self.owner, self.spec, self.status, jobs, pods)
        patch = status_patch(self.status, self.outcome, self.owner.generation, extra)
        merged = {**self.status, **patch}
        self.status = {key: value for key, value in merged.items() if value is not None}

    def end(self, name: str, state: str, message: dict[str, Any]) -> None:
        self.jobs[name] = job(name, state, message)

    def processor(self, name: str) -> dict[str, Any]:
        return next(p for p in self.status["processors"] if p["name"] == name)


# -- names ------------------------------------------------------------------------------------------------


def test_job_names_are_stable_distinct_per_stage_and_generation_and_fit_a_label() -> None:
    names = build.job_names(OWNER, spec())
    assert len(names) == 5
    assert build.setup_job_name(OWNER).startswith("gambia-setup-")
    assert build.processor_job_name(OWNER, RASTER).startswith("gambia-natural-earth-raster-version-1-")
    assert build.job_names(OWNER, spec()) == names
    later = Owner("Package", "gambia", "data", UID, generation=2)
    assert not build.job_names(later, spec()) & names
    again = Owner("Package", "gambia", "data", "another-uid")
    assert not build.job_names(again, spec()) & names
    # Processors whose names differ only where the name's characters are not allowed in a Job name.
    assert build.processor_job_name(OWNER, "a_b.c") != build.processor_job_name(OWNER, "a.b_c")
    long = Owner("Package", "p" * 63, "data", UID)
    assert all(len(name) <= MAX_NAME for name in build.job_names(long, spec()))


# -- the children -----------------------------------------------------------------------------------------


def test_a_new_package_is_an_account_its_status_grant_its_boundary_and_the_setup_job() -> None:
    children = build.children(OWNER, spec(), CONFIG, None)
    kinds = [c["kind"] for c in children]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Job"]
    account, role, binding, boundary, setup = children
    assert role["rules"] == [
        {
            "apiGroups": ["headwater.dev"],
            "resources": ["packages/status"],
            "resourceNames": ["gambia"],
            "verbs": ["patch"],
        }
    ]
    assert binding["subjects"][0]["name"] == account["metadata"]["name"]
    assert boundary["data"] == {"boundary.geojson": GEOJSON}
    assert setup["metadata"]["name"] == build.setup_job_name(OWNER)
    assert container(setup)["command"][-2:] == ["package", "setup"]
    for child in children:
        assert child["metadata"]["ownerReferences"] == [OWNER.reference()]


def test_every_job_has_the_specs_limits_and_fails_at_once_on_the_workers_permanent_exit() -> None:
    setup = build.setup_job(OWNER, spec(), CONFIG)
    processor = build.processor_job(OWNER, spec(), CONFIG, RASTER)
    for manifest in (setup, processor, build.finalise_job(OWNER, spec(), CONFIG)):
        assert manifest["spec"]["backoffLimit"] == 2
        assert manifest["spec"]["activeDeadlineSeconds"] == 600
        [rule] = manifest["spec"]["podFailurePolicy"]["rules"]
        assert rule["action"] == "FailJob"
        assert rule["onExitCodes"]["values"] == [EXIT_PERMANENT]
    assert container(processor)["command"][-4:] == ["package", "process", "--processor", RASTER]
    assert (
        "activeDeadlineSeconds"
        not in build.setup_job(OWNER, spec(activeDeadlineSeconds=None), CONFIG)["spec"]
    )


def test_pods_are_restricted_and_only_a_processor_gets_a_token() -> None:
    setup = build.setup_job(OWNER, spec(), CONFIG)["spec"]["template"]["spec"]
    processor = build.processor_job(OWNER, spec(), CONFIG, RASTER)["spec"]["template"]["spec"]
    for pod in (setup, processor):
        assert pod["securityContext"]["runAsNonRoot"] is True
        [worker] = pod["containers"]
        assert worker["securityContext"]["allowPrivilegeEscalation"] is False
        assert worker["securityContext"]["readOnlyRootFilesystem"] is True
        assert worker["image"] == CONFIG.worker_image
    assert setup["automountServiceAccountToken"] is False
    assert processor["automountServiceAccountToken"] is True
    assert processor["containers"][0]["resources"]["limits"]["memory"] == "1Gi"


def test_the_worker_gets_its_configuration_and_the_key_pair_only_from_the_secret() -> None:
    manifest = build.processor_job(OWNER, spec(), CONFIG, RASTER)
    variables = env(manifest)
    config = config_of(manifest)
    assert config.package == "data/gambia"
    assert config.boundary.name == "gambia"
    assert config.boundary.long_name == "The Gambia"
    assert config.boundary.geojson is None
    assert config.boundary.geojson_file == f"{build.BOUNDARY_DIR}/{build.BOUNDARY_FILE}"
    assert [(p.name, p.options) for p in config.processors] == [
        (TEST, {}),
        (RASTER, {"source": {"url": "https://data.example/relief.tif"}}),
        (VECTOR, {}),
    ]
    assert config.storage.s3 is not None
    assert config.storage.s3.bucket == "packages"
    assert config.storage.s3.endpoint == "http://minio:9000"
    assert config.package_host_url == "https://data.example/packages"
    assert config.cache is None
    assert variables["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert variables["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3"
    assert variables["HEADWATER_PACKAGE_JOB"]["value"] == manifest["metadata"]["name"]
    assert variables["HEADWATER_SCRATCH"]["value"] == build.SCRATCH_DIR
    assert "HEADWATER_PACKAGE_JOB" not in env(build.setup_job(OWNER, spec(), CONFIG))
    pod = manifest["spec"]["template"]["spec"]
    boundary = next(v for v in pod["volumes"] if v["name"] == "boundary")
    assert boundary["configMap"] == {
        "name": build.boundary_config_map_name(OWNER),
        "items": [{"key": "boundary.geojson", "path": "boundary.geojson"}],
    }


def test_a_boundary_in_the_users_config_map_is_mounted_from_it() -> None:
    package = spec(
        boundary={"name": "gambia", "geometry": {"configMapRef": {"name": "shapes", "key": "gmb.json"}}}
    )
    children = build.children(OWNER, package, CONFIG, None)
    assert "ConfigMap" not in [c["kind"] for c in children]
    pod = children[-1]["spec"]["template"]["spec"]
    boundary = next(v for v in pod["volumes"] if v["name"] == "boundary")
    assert boundary["configMap"] == {
        "name": "shapes",
        "items": [{"key": "gmb.json", "path": "boundary.geojson"}],
    }


def test_volume_storage_and_cache_on_one_claim_mount_it_once() -> None:
    package = spec(
        storage={"volume": {"claimName": "geodata", "path": "packages"}},
        cache={"volume": {"claimName": "geodata", "path": "sources"}},
    )
    manifest = build.processor_job(OWNER, package, CONFIG, RASTER)
    pod = manifest["spec"]["template"]["spec"]
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "claim-0", "persistentVolumeClaim": {"claimName": "geodata"}}]
    assert {"name": "claim-0", "mountPath": f"{build.CLAIMS_DIR}/geodata"} in container(manifest)[
        "volumeMounts"
    ]
    config = config_of(manifest)
    assert config.storage.volume is not None
    assert config.cache is not None
    assert config.cache.volume is not None
    assert config.storage.volume.path == f"{build.CLAIMS_DIR}/geodata/packages"
    assert config.storage.volume.uri_prefix == "pvc://geodata/packages"
    assert config.cache.volume.path == f"{build.CLAIMS_DIR}/geodata/sources"
    assert "AWS_ACCESS_KEY_ID" not in env(manifest)


def test_an_s3_cache_shares_the_storages_key_pair() -> None:
    bucket = copy.deepcopy(SPEC["storage"]["s3"])
    package = spec(cache={"s3": {**bucket, "bucket": "sources"}})
    config = config_of(build.processor_job(OWNER, package, CONFIG, RASTER))
    assert config.cache is not None
    assert config.cache.s3 is not None
    assert config.cache.s3.bucket == "sources"
    with pytest.raises(ValidationError, match="same credentialsSecretRef"):
        spec(cache={"s3": {**bucket, "credentialsSecretRef": {"name": "other"}}})
    with pytest.raises(ValidationError, match="every key of options must be one of processors"):
        spec(options={"unknown.version_1": {}})


def test_building_twice_gives_the_same_manifests() -> None:
    assert build.children(OWNER, spec(), CONFIG, None) == build.children(OWNER, spec(), CONFIG, None)


# -- the DAG ----------------------------------------------------------------------------------------------


def test_setup_then_at_most_parallelism_processors_then_finalise() -> None:
    run = Run(spec())
    setup = build.setup_job_name(OWNER)
    assert run.step() == [setup]
    assert run.status["setupPhase"] == "Pending"
    assert run.outcome.reason == "SettingUp"
    assert [p["message"] for p in run.status["processors"]] == ["waiting for setup"] * 3

    run.end(setup, "succeeded", setup_report())
    test_job, raster_job, vector_job = (build.processor_job_name(OWNER, p) for p in (TEST, RASTER, VECTOR))
    assert run.step() == [setup, test_job, raster_job]  # parallelism 2
    assert run.status["setupPhase"] == "Succeeded"
    assert run.processor(VECTOR) == {
        "name": VECTOR,
        "phase": "Pending",
        "progress": 0,
        "message": "waiting: 2 processors run at once",
        "resultUris": [],
    }
    assert run.processor(TEST)["jobName"] == test_job
    assert run.step() == [setup, test_job, raster_job], "a step with nothing new starts nothing"

    run.end(test_job, "succeeded", processed(TEST))
    assert run.step() == [setup, test_job, raster_job, vector_job]
    assert run.outcome.message == "1 of 3 processors done"
    assert run.processor(TEST)["phase"] == "Succeeded"
    assert run.processor(TEST)["resultUris"][0].endswith("/data/test_processor-version_1-gambia.tif")

    run.end(raster_job, "succeeded", processed(RASTER, "Skipped"))
    run.end(vector_job, "running", {})
    assert build.finalise_job_name(OWNER) not in run.step()
    run.end(vector_job, "succeeded", processed(VECTOR))
    finalise = build.finalise_job_name(OWNER)
    assert run.step()[-1] == finalise
    assert run.status["finaliseJob"] == finalise
    assert run.outcome.reason == "Finalising"
    assert run.status["progress"] == 95

    run.end(finalise, "succeeded", FINALISED)
    run.step()
    assert run.outcome == Outcome.ready(
        "Succeeded",
        "Packaged",
        "2 generated, 1 skipped; datapackage.json at https://data.example/packages/gambia/datapackage.json",
    )
    assert run.status["datapackageUri"] == FINALISED["datapackageUri"]
    assert run.status["progress"] == 100
    assert run.status["finalisePhase"] == "Succeeded"
    assert [p["phase"] for p in run.status["processors"]] == ["Succeeded", "Skipped", "Succeeded"]
    PackageStatus.model_validate(run.status)


def test_a_failed_processor_fails_the_package_after_the_others_end_and_finalise_never_runs() -> None:
    run = Run(spec(parallelism=3))
    setup = build.setup_job_name(OWNER)
    run.step()
    run.end(setup, "succeeded", setup_report())
    run.step()
    raster_job = build.processor_job_name(OWNER, RASTER)
    unreachable = "cannot reach https://data.example/relief.tif: connection refused"
    run.end(raster_job, "failed", failed_processing(RASTER, "SourceUnavailable", unreachable))
    run.step()
    assert run.processor(RASTER)["phase"] == "Failed"
    assert run.processor(RASTER)["reason"] == "SourceUnavailable"
    assert run.processor(RASTER)["message"] == unreachable
    assert run.outcome.state == "reconciling"
    assert run.outcome.message == f"0 of 3 processors done; {RASTER} failed: {unreachable}"

    for name in (TEST, VECTOR):
        run.end(build.processor_job_name(OWNER, name), "succeeded", processed(name))
    wanted = run.step()
    assert build.finalise_job_name(OWNER) not in wanted
    assert run.outcome == Outcome.stalled("Failed", "SourceUnavailable", f"{RASTER} failed: {unreachable}")
    assert "finaliseJob" not in run.status


def test_a_new_generation_runs_every_stage_again_and_forgets_the_old_runs() -> None:
    run = Run(spec(processors=[TEST], options={}))
    run.step()
    run.end(build.setup_job_name(OWNER), "succeeded", setup_report())
    run.step()
    run.end(
        build.processor_job_name(OWNER, TEST), "failed", failed_processing(TEST, "StorageUnavailable", "no")
    )
    run.step()
    assert run.status["phase"] == "Failed"

    later = Owner("Package", "gambia", "data", UID, generation=2)
    run.owner = later
    assert run.step() == [build.setup_job_name(later)]
    assert run.status["phase"] == "Pending"
    assert run.processor(TEST) == {
        "name": TEST,
        "phase": "Pending",
        "progress": 0,
        "message": "waiting for setup",
        "resultUris": [],
    }
    run.end(build.setup_job_name(later), "succeeded", setup_report())
    assert build.processor_job_name(later, TEST) in run.step()


def test_a_started_job_the_index_has_not_shown_yet_stays_started() -> None:
    """The status names the Jobs the operator created; a refresh from an index that lags keeps them, so the
    next step neither forgets them nor starts more than `parallelism`."""
    run = Run(spec())
    run.step()
    run.end(build.setup_job_name(OWNER), "succeeded", setup_report())
    started = run.step()
    test_job = build.processor_job_name(OWNER, TEST)
    del run.jobs[test_job]
    run.derive()
    assert run.processor(TEST)["jobName"] == test_job
    assert run.step() == started


def test_setup_refusing_the_boundary_stalls_with_the_workers_reason() -> None:
    run = Run(spec())
    run.step()
    message = "the boundary is not a valid polygon: Self-intersection at (-15.0, 13.5)"
    refused = {
        "stage": "setup",
        "boundary": "gambia",
        "error": {"reason": "InvalidBoundary", "message": message, "permanent": True},
    }
    run.end(build.setup_job_name(OWNER), "failed", refused)
    assert run.step() == [build.setup_job_name(OWNER)]
    assert run.outcome == Outcome.stalled("Failed", "InvalidBoundary", f"setup failed: {message}")
    assert run.status["setupPhase"] == "Failed"


def test_a_retried_processor_says_why_its_last_attempt_failed() -> None:
    run = Run(spec())
    run.step()
    run.end(build.setup_job_name(OWNER), "succeeded", setup_report())
    run.step()
    name = build.processor_job_name(OWNER, RASTER)
    problem = failed_processing(RASTER, "SourceUnavailable", "cannot reach https://data.example/relief.tif")
    run.jobs[name] = job(name, "running", problem, failed=1)
    run.derive()
    assert run.processor(RASTER)["message"] == (
        "attempt 2: the last one failed: cannot reach https://data.example/relief.tif"
    )


def test_a_running_processor_shows_what_its_job_reported_and_nothing_of_an_earlier_job() -> None:
    run = Run(spec())
    run.step()
    run.end(build.setup_job_name(OWNER), "succeeded", setup_report())
    run.step()
    name = build.processor_job_name(OWNER, RASTER)
    run.end(name, "running", {})
    now = "2025-01-02T00:00:05Z"
    run.status["reports"] = {
        RASTER: {"jobName": name, "percent": 44, "message": "cropping the source", "time": now},
        TEST: {
            "jobName": "gambia-test-processor-version-1-oldjob",
            "percent": 90,
            "message": "old",
            "time": now,
        },
        "gone.version_1": {"jobName": "x", "percent": 1, "message": "", "time": now},
    }
    _, extra = observe.derive(
        OWNER, spec(), run.status, [j for j, _ in run.jobs.values()], [p for _, p in run.jobs.values()]
    )
    raster = next(p for p in extra["processors"] if p["name"] == RASTER)
    assert (raster["phase"], raster["progress"], raster["message"]) == ("Running", 44, "cropping the source")
    test = next(p for p in extra["processors"] if p["name"] == TEST)
    assert (test["progress"], test["message"]) == (0, "starting")
    # A report of a processor no longer in the spec is removed; the others are the Jobs' to write.
    assert extra["reports"] == {"gone.version_1": None}
    assert extra["progress"] == 5 + int(90 * 44 / 300)


def test_a_pod_that_cannot_start_stalls_the_package() -> None:
    run = Run(spec())
    run.step()
    name = build.setup_job_name(OWNER)
    pending, pod = job(name, "pending")
    pod["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}
    }
    run.jobs[name] = (pending, pod)
    run.derive()
    assert run.outcome.state == "stalled"
    assert run.outcome.reason == "SecretNotFound"


def test_a_job_past_its_deadline_says_so() -> None:
    run = Run(spec())
    run.step()
    name = build.setup_job_name(OWNER)
    expired, pod = job(name, "failed")
    expired["status"]["conditions"][0].update(reason="DeadlineExceeded", message="Job was active longer")
    run.jobs[name] = (expired, pod)
    run.derive()
    assert run.outcome == Outcome.stalled(
        "Failed",
        "DeadlineExceeded",
        "setup failed: setup did not finish within activeDeadlineSeconds of 600 s",
    )


def test_a_finished_job_without_a_report_still_counts_and_messages_fit_the_status() -> None:
    run = Run(spec(processors=[TEST], options={}))
    run.step()
    run.end(build.setup_job_name(OWNER), "succeeded", setup_report())
    run.step()
    long = failed_processing(TEST, "ProcessingFailed", "x" * 5000)
    run.end(build.processor_job_name(OWNER, TEST), "failed", long)
    run.step()
    assert len(run.processor(TEST)["message"]) == 1024
    PackageStatus.model_validate(run.status)
    run.end(build.processor_job_name(OWNER, TEST), "succeeded", {})
    run.step()
    assert run.processor(TEST)["phase"] == "Succeeded"
    assert run.processor(TEST)["message"] == "ended without a report"


def test_the_status_written_is_valid_json_of_the_crds_shape() -> None:
    run = Run(spec())
    run.step()
    json.dumps(run.status)
    PackageStatus.model_validate(run.status)
