"""`python -m headwater_worker package <stage>` as a Job's pod runs it: configured through its environment,
reporting progress on stdout and its result in the termination message, with an exit status that tells a
retry from a refusal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from frictionless import Package
from headwater_localcluster.services import S3Server
from shapely.geometry import LineString

from tests.fakes.files import FileServer
from tests.fixtures.package import Grid, gambia_geojson, write_geotiff, write_vector

HOST = "https://data.example.org/packages"
RASTER = "natural_earth_raster.version_1"
VECTOR = "natural_earth_vector.version_1"
TEST = "test_processor.version_1"
SECRET = "aws-secret-never-shown-5d2e1b"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]

    @property
    def progress(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    write_geotiff(root / "relief.tif", Grid())
    write_vector(root / "roads.gpkg", [("crossing", LineString([(-15.5, 14.2), (-15.5, 12.8)]))])
    with FileServer(root) as server:
        yield server


def worker(
    tmp_path: Path, pythonpath: str, config: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> Run:
    termination = tmp_path / f"termination-{len(list(tmp_path.glob('termination-*')))}"
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    process = subprocess.run(
        [sys.executable, "-m", "headwater_worker", "package", *args],
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "PYTHONPATH": pythonpath,
            "HEADWATER_PACKAGE_CONFIG": json.dumps(config),
            "HEADWATER_TERMINATION_LOG": str(termination),
            "HEADWATER_SCRATCH": str(scratch),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(termination.read_text()) if termination.exists() else {}
    assert len(termination.read_bytes()) <= 4096
    assert list(scratch.iterdir()) == []
    return Run(process.returncode, process.stdout, process.stderr, report)


def package_config(storage: dict[str, Any], files: FileServer, **changes: Any) -> dict[str, Any]:
    return {
        "package": "default/gambia",
        "boundary": {"name": "gambia", "longName": "The Gambia", "geojson": gambia_geojson()},
        "processors": [
            TEST,
            {"name": RASTER, "options": {"source": {"url": files.url("relief.tif")}}},
            {"name": VECTOR, "options": {"source": {"url": files.url("roads.gpkg")}}},
        ],
        "storage": storage,
        "packageHostUrl": HOST,
        **changes,
    }


def test_every_stage_runs_as_a_job_would_run_it(
    files: FileServer, tmp_path: Path, processor_path: str
) -> None:
    root = tmp_path / "packages"
    config = package_config({"volume": {"path": str(root), "uriPrefix": "pvc://data/packages"}}, files)

    setup = worker(tmp_path, processor_path, config, "setup")
    assert (setup.returncode, setup.report) == (0, {"stage": "setup", "boundary": "gambia", "processors": []})
    assert {page.name for page in (root / "gambia").iterdir()} == {
        "index.html",
        "license.html",
        "version.html",
    }

    raster = worker(tmp_path, processor_path, config, "process", "--processor", RASTER)
    assert raster.returncode == 0, raster.stderr
    [result] = raster.report["processors"]
    assert result["name"] == RASTER
    assert result["phase"] == "Succeeded"
    assert result["resultUris"] == [
        f"{HOST}/gambia/datasets/natural_earth_raster/version_1/data/natural_earth_raster-version_1-gambia.tif"
    ]
    assert len(result["inputsHash"]) == 64
    steps = [(line["percent"], line["message"]) for line in raster.progress]
    assert steps[0] == (0, "checking the sources")
    assert steps[-1] == (100, "done")
    assert [percent for percent, _ in steps] == sorted(percent for percent, _ in steps)
    assert {line["processor"] for line in raster.progress} == {RASTER}

    for name in (TEST, VECTOR):
        assert worker(tmp_path, processor_path, config, "process", "--processor", name).returncode == 0

    finalise = worker(tmp_path, processor_path, config, "finalise")
    assert finalise.returncode == 0, finalise.stderr
    assert finalise.report["datapackageUri"] == f"{HOST}/gambia/datapackage.json"
    descriptor = json.loads((root / "gambia/datapackage.json").read_text())
    assert Package.validate_descriptor(descriptor).valid
    assert len(descriptor["resources"]) == 3

    again = worker(tmp_path, processor_path, config, "process", "--processor", RASTER)
    assert again.report["processors"][0]["phase"] == "Skipped"
    assert again.report["processors"][0]["resultUris"] == result["resultUris"]


def test_without_a_host_url_results_are_named_by_the_storage(
    files: FileServer, tmp_path: Path, processor_path: str
) -> None:
    config = package_config(
        {"volume": {"path": str(tmp_path / "packages"), "uriPrefix": "pvc://data/packages"}},
        files,
        processors=[TEST],
    )
    config.pop("packageHostUrl")
    run = worker(tmp_path, processor_path, config, "process", "--processor", TEST)
    assert run.report["processors"][0]["resultUris"] == [
        "pvc://data/packages/gambia/datasets/test_processor/version_1/data/test_processor-version_1-gambia.tif"
    ]
    assert worker(tmp_path, processor_path, config, "finalise").report["datapackageUri"] == (
        "pvc://data/packages/gambia/datapackage.json"
    )


def test_an_invalid_boundary_is_refused_for_good(
    files: FileServer, tmp_path: Path, processor_path: str
) -> None:
    bowtie = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]})
    config = package_config({"volume": {"path": str(tmp_path / "packages")}}, files)
    config["boundary"]["geojson"] = bowtie
    run = worker(tmp_path, processor_path, config, "setup")
    assert run.returncode == 2
    assert run.report["error"] == {
        "reason": "InvalidBoundary",
        "message": "boundary geometry is not valid: self-intersection at (1, 1)",
        "permanent": True,
    }


def test_an_unknown_processor_is_refused_listing_the_known_ones(
    files: FileServer, tmp_path: Path, processor_path: str
) -> None:
    config = package_config(
        {"volume": {"path": str(tmp_path / "packages")}}, files, processors=["nightlights.version_9"]
    )
    run = worker(tmp_path, processor_path, config, "setup")
    assert run.returncode == 2
    assert run.report["error"]["reason"] == "UnknownProcessor"
    message = run.report["error"]["message"]
    assert message.startswith("unknown processor 'nightlights.version_9'; known: ")
    for name in (TEST, RASTER, VECTOR):
        assert name in message


def test_an_unreachable_source_fails_for_a_retry_naming_the_url(tmp_path: Path, processor_path: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/relief.tif"
    config = {
        "boundary": {"name": "gambia", "geojson": gambia_geojson()},
        "processors": [{"name": RASTER, "options": {"source": {"url": url}}}],
        "storage": {"volume": {"path": str(tmp_path / "packages")}},
    }
    run = worker(tmp_path, processor_path, config, "process", "--processor", RASTER)
    assert run.returncode == 1
    assert run.report["error"]["reason"] == "SourceUnavailable"
    assert run.report["error"]["permanent"] is False
    assert run.report["error"]["message"].startswith(f"source {url} is unreachable")
    [result] = run.report["processors"]
    assert (result["name"], result["phase"]) == (RASTER, "Failed")


def test_unreachable_storage_fails_for_a_retry_without_showing_the_credentials(
    files: FileServer, tmp_path: Path, processor_path: str, s3: S3Server
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    storage = {"s3": {"bucket": "packages", "endpoint": endpoint, "forcePathStyle": True}}
    env = {**s3.client_env(), "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL_S3": endpoint}
    run = worker(tmp_path, processor_path, package_config(storage, files), "setup", env=env)
    assert run.returncode == 1
    assert run.report["error"]["reason"] == "StorageUnavailable"
    assert "HeadBucket packages failed" in run.report["error"]["message"]
    assert SECRET not in run.stdout + run.stderr + json.dumps(run.report)


def test_a_missing_configuration_is_a_configuration_error(tmp_path: Path, processor_path: str) -> None:
    termination = tmp_path / "termination"
    process = subprocess.run(
        [sys.executable, "-m", "headwater_worker", "package", "setup"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": processor_path,
            "HEADWATER_TERMINATION_LOG": str(termination),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 2
    assert json.loads(termination.read_text())["error"] == {
        "reason": "ConfigurationError",
        "message": "HEADWATER_PACKAGE_CONFIG is not set",
        "permanent": True,
    }
