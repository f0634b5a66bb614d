"""Package end to end: kubectl apply → operator → setup, processor and finalise Jobs on the local node → a
frictionless data package in S3 (a real S3 protocol server) or on a provisioned volume.

Issue 11's acceptance, on the shipped country boundary and sources the tests make (a GeoTIFF in S3, a
GeoPackage served over HTTP on 127.0.0.1):
- the three processors: the cropped raster's bounds, mask and values, the clipped features, and a
  `datapackage.json` that frictionless accepts with the files' hashes; a new generation of the same inputs
  skips everything (`test_three_processors_*`);
- two Packages of one boundary and processor at once: one clip (`test_two_packages_*`); the operator killed
  mid-run (`test_an_operator_killed_*`);
- bad input: an invalid geometry, an unknown processor or option, an unreachable source (retried, then a
  new generation retries only it), unreachable storage.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from frictionless import Package as FrictionlessPackage
from headwater_localcluster.services import S3Server
from headwater_worker.package.hashing import file_sha1

from tests.fakes.files import FileServer
from tests.fixtures.cluster import Cluster, Kubectl, KubectlError, poll
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.package import Grid, gambia_geojson, write_geotiff, write_vector
from tests.integration.test_package_raster import assert_cropped
from tests.integration.test_package_vector import ROADS, assert_clipped

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

RASTER = "natural_earth_raster.version_1"
VECTOR = "natural_earth_vector.version_1"
TEST = "test_processor.version_1"
ALL = [TEST, RASTER, VECTOR]
NODATA = -9999.0
ENDED = ("Succeeded", "Failed")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Setup:
    kubectl: Kubectl
    cluster: Cluster
    namespace: str
    s3: S3Server
    bucket: str
    files: FileServer

    def storage(self, prefix: str = "packages") -> dict[str, Any]:
        return {
            "s3": {
                "bucket": self.bucket,
                "prefix": prefix,
                "endpoint": self.s3.endpoint_url,
                "forcePathStyle": True,
                "credentialsSecretRef": {"name": "s3"},
            }
        }

    def raster_source(self) -> dict[str, Any]:
        """The synthetic GeoTIFF, as an S3 object read with the storage's key pair."""
        return {
            "source": {
                "s3": {
                    "bucket": self.bucket,
                    "key": "sources/relief.tif",
                    "endpoint": self.s3.endpoint_url,
                    "forcePathStyle": True,
                }
            },
        }

    def vector_source(self) -> dict[str, Any]:
        return {"source": {"url": self.files.url("roads.gpkg")}}

    def package(
        self, name: str, processors: list[str], *, geojson: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        options = {RASTER: self.raster_source(), VECTOR: self.vector_source()}
        body: dict[str, Any] = {
            "boundary": {
                "name": "gambia",
                "longName": "The Gambia",
                "geometry": {"geojson": geojson or gambia_geojson()},
            },
            "processors": processors,
            "options": {key: value for key, value in options.items() if key in processors},
            "storage": self.storage(),
            "backoffLimit": 0,
            **spec,
        }
        return {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "Package",
            "metadata": {"name": name},
            "spec": body,
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.get_json("package", name).get("status") or {})

    def wait_ended(self, name: str, timeout: float = 180) -> dict[str, Any]:
        """The status once the package's current generation ended."""

        def ended() -> dict[str, Any] | None:
            resource = self.kubectl.get_json("package", name)
            status = resource.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or ()}
            current = status.get("observedGeneration") == resource["metadata"]["generation"]
            done = current and status.get("phase") in ENDED and conditions.get("Reconciling") == "False"
            return status if done else None

        return dict(poll(ended, timeout=timeout, interval=0.5, message=lambda: self.describe(name)))

    def jobs(self, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.get_json("jobs", "-l", f"headwater.dev/package={name}")[
            "items"
        ]
        return items

    def describe(self, name: str) -> str:
        pods = self.kubectl.get_json("pods", "-l", f"headwater.dev/package={name}")["items"]
        logs = {p["metadata"]["name"]: self.kubectl("logs", p["metadata"]["name"])[-3000:] for p in pods}
        return (
            f"package {name}: {json.dumps(self.status(name), indent=1)}\nlogs: {json.dumps(logs, indent=1)}"
        )

    def processors(self, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {entry["name"]: entry for entry in status["processors"]}

    def download(self, key: str) -> Path:
        local = Path(tempfile.mkdtemp()) / Path(key).name
        self.s3.client().download_file(self.bucket, key, str(local))
        return local

    def key_of(self, uri: str) -> str:
        prefix = f"s3://{self.bucket}/"
        assert uri.startswith(prefix), uri
        return uri[len(prefix) :]


@pytest.fixture
def setup(
    operator: OperatorProcess,
    cluster: Cluster,
    restricted_namespace: str,
    s3: S3Server,
    bucket: str,
    tmp_path: Path,
) -> Iterator[Setup]:
    kubectl = cluster.kubectl.in_namespace(restricted_namespace)
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            },
        }
    )
    relief = write_geotiff(tmp_path / "relief.tif", Grid(), nodata=NODATA)
    s3.client().upload_file(str(relief), bucket, "sources/relief.tif")
    served = tmp_path / "served"
    write_geotiff(served / "relief.tif", Grid(), nodata=NODATA)
    write_vector(served / "roads.gpkg", ROADS)
    with FileServer(served) as files:
        yield Setup(kubectl, cluster, restricted_namespace, s3, bucket, files)


def assert_datapackage(setup: Setup, uri: str, processors: list[str]) -> dict[str, Any]:
    """A datapackage.json that frictionless accepts, listing each dataset once with its stored files'
    sizes and SHA-1 hashes."""
    descriptor: dict[str, Any] = json.loads(setup.download(setup.key_of(uri)).read_text())
    assert FrictionlessPackage.validate_descriptor(descriptor).valid
    assert descriptor["name"] == "gambia"
    assert {r["name"] for r in descriptor["resources"]} == {p.split(".")[0] for p in processors}
    for resource in descriptor["resources"]:
        [path] = resource["path"]
        local = setup.download(setup.key_of(path))
        assert resource["bytes"] == local.stat().st_size
        assert resource["hashes"] == [file_sha1(local)]
    return descriptor


def test_three_processors_make_a_valid_package_and_a_new_generation_skips_everything(setup: Setup) -> None:
    setup.kubectl.apply(setup.package("gambia", ALL))
    status = setup.wait_ended("gambia")

    assert status["phase"] == "Succeeded", setup.describe("gambia")
    assert status["progress"] == 100
    assert status["reason"] == "Packaged"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    uri = status["datapackageUri"]
    assert uri == f"s3://{setup.bucket}/packages/gambia/datapackage.json"
    processors = setup.processors(status)
    assert {name: entry["phase"] for name, entry in processors.items()} == dict.fromkeys(ALL, "Succeeded")
    assert all(entry["progress"] == 100 for entry in processors.values())
    [raster_uri] = processors[RASTER]["resultUris"]
    assert raster_uri.endswith(
        "/gambia/datasets/natural_earth_raster/version_1/data/natural_earth_raster-version_1-gambia.tif"
    )
    assert_cropped(setup.download(setup.key_of(raster_uri)), Grid())
    [vector_uri] = processors[VECTOR]["resultUris"]
    assert_clipped(setup.download(setup.key_of(vector_uri)))
    assert_datapackage(setup, uri, ALL)

    # Parallelism 2: the third processor's Job was created only once one of the first two had ended.
    jobs = {job["metadata"]["name"]: job for job in setup.jobs("gambia")}
    assert len(jobs) == 5, sorted(jobs)
    first, second, third = (jobs[processors[name]["jobName"]] for name in ALL)
    earliest_end = min(job["status"]["completionTime"] for job in (first, second))
    assert third["metadata"]["creationTimestamp"] >= earliest_end
    finalise = jobs[status["finaliseJob"]]
    latest_end = max(jobs[processors[name]["jobName"]]["status"]["completionTime"] for name in ALL)
    assert finalise["metadata"]["creationTimestamp"] >= latest_end

    # The same inputs in a new generation (only the Jobs' retries change): every processor is skipped.
    again = setup.package("gambia", ALL, backoffLimit=1)
    setup.kubectl.apply(again)
    status = setup.wait_ended("gambia")
    assert status["phase"] == "Succeeded", setup.describe("gambia")
    assert status["observedGeneration"] == 2
    skipped = setup.processors(status)
    assert {name: entry["phase"] for name, entry in skipped.items()} == dict.fromkeys(ALL, "Skipped")
    assert skipped[RASTER]["resultUris"] == [raster_uri]
    assert len(setup.jobs("gambia")) == 10
    assert_datapackage(setup, status["datapackageUri"], ALL)
    events = setup.kubectl.get_json("events", "--field-selector=involvedObject.name=gambia")["items"]
    assert [e["reason"] for e in events].count("Packaged") >= 1

    # The processors' account may write its progress into this Package's status, and nothing else.
    account = f"--as=system:serviceaccount:{setup.namespace}:gambia-worker"
    can = ["auth", "can-i", "patch", account, "--subresource=status"]
    assert setup.kubectl(*can, "packages.headwater.dev/gambia").strip() == "yes"
    with pytest.raises(KubectlError):
        setup.kubectl(*can, "packages.headwater.dev/another")


def test_two_packages_of_one_boundary_and_processor_at_once_clip_it_once(setup: Setup) -> None:
    folder = setup.cluster.claim_folder(setup.namespace, "packages")
    # No S3 here: the source too is served over HTTP (S3 sources are read with the storage's key pair).
    storage = {"volume": {"claimName": "packages"}}
    options = {RASTER: {"source": {"url": setup.files.url("relief.tif")}}}
    setup.kubectl.apply(
        [setup.package(name, [RASTER], storage=storage, options=options) for name in ("first", "second")]
    )
    ended = {name: setup.wait_ended(name) for name in ("first", "second")}

    for name, status in ended.items():
        assert status["phase"] == "Succeeded", setup.describe(name)
        assert status["datapackageUri"] == "pvc://packages/gambia/datapackage.json"
    phases = sorted(setup.processors(status)[RASTER]["phase"] for status in ended.values())
    assert phases == ["Skipped", "Succeeded"]
    dataset = folder / "gambia/datasets/natural_earth_raster/version_1"
    assert_cropped(dataset / "data/natural_earth_raster-version_1-gambia.tif", Grid())
    assert (folder / ".locks/gambia/natural_earth_raster.version_1.lock").exists()
    # One run made the record; both finalised the package.
    record = json.loads((dataset / "provenance.json").read_text())
    assert record["processor"] == RASTER
    assert len(json.loads((folder / "gambia/provenance.json").read_text())) == 2
    assert not list(folder.rglob("*.partial"))


def test_an_operator_killed_mid_run_converges_without_a_duplicate_job(
    setup: Setup, operator: OperatorProcess
) -> None:
    setup.kubectl.apply(setup.package("gambia", ALL, parallelism=1))

    def processing() -> bool:
        return any("jobName" in entry for entry in setup.status("gambia").get("processors") or ())

    poll(processing, timeout=120, interval=0.25, message=lambda: setup.describe("gambia"))
    operator.kill()
    try:
        started = {job["metadata"]["name"] for job in setup.jobs("gambia")}
    finally:
        operator.start()
    status = setup.wait_ended("gambia")

    assert status["phase"] == "Succeeded", setup.describe("gambia")
    jobs = setup.jobs("gambia")
    names = [job["metadata"]["name"] for job in jobs]
    assert len(names) == len(set(names)) == 5
    assert started <= set(names)
    pods = setup.kubectl.get_json("pods", "-l", "headwater.dev/package=gambia")["items"]
    assert len(pods) == 5, "each Job ran once"
    assert all(job["status"].get("succeeded") == 1 for job in jobs)


BOWTIE = {"type": "Polygon", "coordinates": [[[-16, 13], [-14, 14], [-14, 13], [-16, 14], [-16, 13]]]}
INVALID_GEOMETRIES = {
    "bowtie": (BOWTIE, "boundary geometry is not valid: self-intersection at (-15, 13.5)"),
    "point": ({"type": "Point", "coordinates": [-15.0, 13.5]}, "boundary geometry has type 'Point'"),
    "empty": ({"type": "Polygon", "coordinates": []}, "boundary geometry is an empty Polygon"),
}


def test_an_invalid_geometry_is_refused_by_setup_with_a_clear_reason(setup: Setup) -> None:
    setup.kubectl.apply(
        [
            setup.package(name, [TEST], geojson=json.dumps(geometry), backoffLimit=3)
            for name, (geometry, _) in INVALID_GEOMETRIES.items()
        ]
    )
    for name, (_, message) in INVALID_GEOMETRIES.items():
        status = setup.wait_ended(name)
        assert status["phase"] == "Failed", setup.describe(name)
        assert status["reason"] == "InvalidBoundary"
        assert status["message"].startswith(f"setup failed: {message}")
        assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] == "True"
        [setup_job] = setup.jobs(name)
        # Refused at once, not after three retries: the worker's exit code fails the Job.
        assert setup_job["status"].get("failed") == 1
        assert setup.processors(status)[TEST]["message"] == "waiting for setup"


def test_an_unknown_processor_or_a_bad_option_stalls_the_package_naming_it(setup: Setup) -> None:
    unknown = setup.package("unknown", [TEST, "no_such.version_1"])
    bad_option = setup.package("bad-option", [RASTER])
    bad_option["spec"]["options"][RASTER]["colour"] = "red"
    setup.kubectl.apply([unknown, bad_option])

    status = setup.wait_ended("unknown")
    assert (status["phase"], status["reason"]) == ("Failed", "UnknownProcessor"), setup.describe("unknown")
    assert "unknown processor 'no_such.version_1'; known: " in status["message"]
    assert TEST in status["message"]
    status = setup.wait_ended("bad-option")
    assert (status["phase"], status["reason"]) == ("Failed", "ConfigurationError"), setup.describe(
        "bad-option"
    )
    assert f"invalid options of {RASTER}" in status["message"]
    assert "colour" in status["message"]


def test_an_unreachable_source_is_retried_then_fails_naming_it_and_a_new_generation_retries_only_it(
    setup: Setup,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/relief.tif"
    package = setup.package("gambia", [TEST, RASTER], backoffLimit=1)
    package["spec"]["options"][RASTER] = {"source": {"url": url}}
    setup.kubectl.apply(package)
    status = setup.wait_ended("gambia")

    assert status["phase"] == "Failed", setup.describe("gambia")
    assert status["reason"] == "SourceUnavailable"
    assert status["message"].startswith(f"{RASTER} failed: source {url} is unreachable")
    processors = setup.processors(status)
    assert processors[TEST]["phase"] == "Succeeded"
    assert processors[RASTER]["phase"] == "Failed"
    assert processors[RASTER]["reason"] == "SourceUnavailable"
    raster_job = setup.kubectl.get_json("job", processors[RASTER]["jobName"])
    assert raster_job["status"]["failed"] == 2, "one run and its one retry"
    assert "finaliseJob" not in status

    setup.kubectl.apply(setup.package("gambia", [TEST, RASTER], backoffLimit=1))
    status = setup.wait_ended("gambia")
    assert status["phase"] == "Succeeded", setup.describe("gambia")
    phases = {name: entry["phase"] for name, entry in setup.processors(status).items()}
    assert phases == {TEST: "Skipped", RASTER: "Succeeded"}
    assert_datapackage(setup, status["datapackageUri"], [TEST, RASTER])


def test_unreachable_storage_fails_setup_saying_so(setup: Setup) -> None:
    package = setup.package("gambia", [TEST])
    package["spec"]["storage"]["s3"]["endpoint"] = f"http://127.0.0.1:{closed_port()}"
    setup.kubectl.apply(package)
    status = setup.wait_ended("gambia")

    assert status["phase"] == "Failed", setup.describe("gambia")
    assert status["reason"] == "StorageUnavailable"
    assert status["message"].startswith("setup failed: ")
    assert setup.s3.client().list_objects_v2(Bucket=setup.bucket, Prefix="packages/").get("KeyCount") == 0
