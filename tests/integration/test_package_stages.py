"""The three stages of a Package against real storage (a folder, and S3 through moto's server) and real
sources (files served over HTTP with their ETags, and S3 objects)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from frictionless import Package
from headwater_localcluster.services import S3Server
from headwater_worker.package import layout, stages
from headwater_worker.package.config import PackageConfig, ProcessorPhase, StorageSpec
from headwater_worker.package.errors import FailureReason, PackageError
from headwater_worker.package.hashing import file_sha1
from headwater_worker.package.locks import LockTimeoutError, S3Lock, volume_lock
from headwater_worker.package.storage import S3Storage, Storage, VolumeStorage, open_storage
from headwater_worker.s3 import S3Location
from shapely.geometry import LineString

from tests.fakes.files import FileServer
from tests.fixtures.package import Grid, gambia_geojson, write_geotiff, write_vector

HOST = "https://data.example.org/packages"
RASTER = "natural_earth_raster.version_1"
VECTOR = "natural_earth_vector.version_1"
TEST = "test_processor.version_1"
ALL = [TEST, RASTER, VECTOR]
ROADS = [
    ("crossing", LineString([(-15.5, 14.2), (-15.5, 12.8)])),
    ("elsewhere", LineString([(2.0, 48.0), (2.5, 48.5)])),
]

pytestmark = pytest.mark.usefixtures("processor_path")


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    """Sources served over HTTP: relief.tif and roads.gpkg."""
    root = tmp_path / "served"
    write_geotiff(root / "relief.tif", Grid())
    write_vector(root / "roads.gpkg", ROADS)
    with FileServer(root) as server:
        yield server


def make_config(
    storage: dict[str, Any],
    sources: dict[str, str],
    *,
    name: str = "gambia",
    geojson: str | None = None,
    cache: dict[str, Any] | None = None,
    processors: list[str] | None = None,
    lock_timeout: int = 5,
) -> PackageConfig:
    options = {RASTER: {"source": {"url": sources["raster"]}}, VECTOR: {"source": {"url": sources["vector"]}}}
    return PackageConfig.model_validate(
        {
            "boundary": {"name": name, "longName": "The Gambia", "geojson": geojson or gambia_geojson()},
            "processors": [{"name": item, "options": options.get(item, {})} for item in processors or ALL],
            "storage": storage,
            "packageHostUrl": HOST,
            "cache": cache,
            "lockTimeoutSeconds": lock_timeout,
        }
    )


def served(files: FileServer) -> dict[str, str]:
    return {"raster": files.url("relief.tif"), "vector": files.url("roads.gpkg")}


def run_all(config: PackageConfig, scratch: Path, storage: Storage | None = None) -> dict[str, Any]:
    """Every stage, as the operator's Jobs would run them; the processors' results by name."""
    scratch.mkdir(parents=True, exist_ok=True)
    stage = stages.Stage(
        config=config,
        storage=storage or open_storage(config.storage),
        cache=open_storage(config.cache) if config.cache else None,
        scratch=scratch,
    )
    stages.setup(stage)
    results = {entry.name: stages.process(stage, entry.name) for entry in config.processors}
    report = stages.finalise(stage)
    return {"results": results, "datapackage": report.datapackage_uri}


def stored_path(uri: str) -> str:
    assert uri.startswith(f"{HOST}/")
    return uri[len(HOST) + 1 :]


def assert_package(
    storage: Storage, name: str = "gambia", processors: list[str] | None = None
) -> dict[str, Any]:
    """The seed's layout, a datapackage.json that frictionless accepts and whose hashes and sizes are the
    stored files'."""
    for page in (layout.INDEX, layout.LICENSE, layout.VERSION, layout.DATAPACKAGE, layout.PROVENANCE):
        assert storage.exists(f"{name}/{page}"), page
    descriptor: dict[str, Any] = json.loads(storage.read_bytes(f"{name}/datapackage.json") or b"")
    assert Package.validate_descriptor(descriptor).valid
    assert Package(descriptor).name == name
    expected = {item.split(".")[0] for item in processors or ALL}
    assert {resource["name"] for resource in descriptor["resources"]} == expected
    for resource in descriptor["resources"]:
        dataset, version = resource["name"], resource["version"]
        for page in (layout.INDEX, layout.LICENSE):
            assert storage.exists(f"{name}/datasets/{dataset}/{version}/{page}")
        [uri] = resource["path"]
        path = stored_path(uri)
        extension = "gpkg" if dataset == "natural_earth_vector" else "tif"
        assert path == f"{name}/datasets/{dataset}/{version}/data/{dataset}-{version}-{name}.{extension}"
        assert storage.size(path) == resource["bytes"]
        local = Path(storage.local_path(path) or download(storage, path))
        assert resource["hashes"] == [file_sha1(local)]
    assert len({licence["name"] for licence in descriptor["licenses"]}) == len(descriptor["licenses"])
    return descriptor


def download(storage: Storage, path: str) -> Path:
    import tempfile

    local = Path(tempfile.mkdtemp()) / Path(path).name
    storage.download(path, local)
    return local


def phases(run: dict[str, Any]) -> dict[str, ProcessorPhase]:
    return {name: result.phase for name, result in run["results"].items()}


# -- a package on a volume --------------------------------------------------------------------------------


def test_a_package_is_built_on_a_volume_and_a_second_run_skips_everything(
    files: FileServer, tmp_path: Path
) -> None:
    root = tmp_path / "packages"
    config = make_config({"volume": {"path": str(root)}}, served(files))
    first = run_all(config, tmp_path / "scratch1")
    assert phases(first) == dict.fromkeys(ALL, ProcessorPhase.SUCCEEDED)
    assert first["datapackage"] == f"{HOST}/gambia/datapackage.json"
    storage = VolumeStorage(config.storage.volume)  # type: ignore[arg-type]
    assert_package(storage)
    raster = (
        root / "gambia/datasets/natural_earth_raster/version_1/data/natural_earth_raster-version_1-gambia.tif"
    )
    with rasterio.open(raster) as cropped:
        assert cropped.nodata == -9999.0
    stamps = {
        path: path.stat().st_mtime_ns for path in (root / "gambia/datasets").rglob("*") if path.is_file()
    }

    second = run_all(config, tmp_path / "scratch2")
    assert phases(second) == dict.fromkeys(ALL, ProcessorPhase.SKIPPED)
    assert second["results"][RASTER].result_uris == first["results"][RASTER].result_uris
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    provenance = json.loads((root / "gambia/provenance.json").read_text())
    assert len(provenance) == 2
    [run_entries, *_] = provenance.values()
    assert {key for entry in run_entries for key in entry} == {*ALL, "finalise"}
    assert not list(root.rglob("*.partial"))


def test_a_changed_source_regenerates_only_what_is_made_from_it(files: FileServer, tmp_path: Path) -> None:
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, served(files))
    run_all(config, tmp_path / "scratch1")
    write_geotiff(files.root / "relief.tif", Grid(), offset=0.5)
    again = run_all(config, tmp_path / "scratch2")
    assert phases(again) == {
        TEST: ProcessorPhase.SKIPPED,
        RASTER: ProcessorPhase.SUCCEEDED,
        VECTOR: ProcessorPhase.SKIPPED,
    }
    storage = VolumeStorage(config.storage.volume)  # type: ignore[arg-type]
    assert_package(storage)
    [uri] = again["results"][RASTER].result_uris
    with rasterio.open(tmp_path / "packages" / stored_path(uri)) as cropped:
        values = cropped.read(1)
    assert (values[values != -9999.0] % 1 == 0.5).all()


def test_a_changed_boundary_regenerates_everything(files: FileServer, tmp_path: Path) -> None:
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, served(files))
    run_all(config, tmp_path / "scratch1")
    document = json.loads(gambia_geojson())
    ring = document["features"][0]["geometry"]["coordinates"][0]
    ring[5] = [-14.55, 13.25]
    moved = make_config(
        {"volume": {"path": str(tmp_path / "packages")}}, served(files), geojson=json.dumps(document)
    )
    assert phases(run_all(moved, tmp_path / "scratch2")) == dict.fromkeys(ALL, ProcessorPhase.SUCCEEDED)


def test_an_invalid_boundary_is_refused_by_setup_before_anything_is_written(tmp_path: Path) -> None:
    bowtie = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]})
    config = make_config(
        {"volume": {"path": str(tmp_path / "packages")}},
        {"raster": "http://x", "vector": "http://x"},
        geojson=bowtie,
    )
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path)
    with pytest.raises(PackageError) as caught:
        stages.setup(stage)
    assert caught.value.reason == FailureReason.INVALID_BOUNDARY
    assert caught.value.message == "boundary geometry is not valid: self-intersection at (1, 1)"
    assert not (tmp_path / "packages").exists()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_source_fails_naming_its_url_and_stores_nothing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/relief.tif"
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, {"raster": url, "vector": url})
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path / "scratch")
    stages.setup(stage)
    with pytest.raises(PackageError) as caught:
        stages.process(stage, RASTER)
    assert caught.value.reason == FailureReason.SOURCE_UNAVAILABLE
    assert caught.value.message.startswith(f"source {url} is unreachable: ")
    assert not (tmp_path / "packages/gambia/datasets").exists()


def test_a_missing_source_file_is_named(files: FileServer, tmp_path: Path) -> None:
    url = files.url("nothing-here.tif")
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, {"raster": url, "vector": url})
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path)
    with pytest.raises(PackageError) as caught:
        stages.process(stage, RASTER)
    assert caught.value.message == f"source {url} answered 404 Not Found"


def test_a_failed_move_leaves_neither_the_file_nor_its_temporary_copy(
    files: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, served(files), processors=[RASTER])
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()

    def failing_replace(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", failing_replace)
    with pytest.raises(PackageError) as caught:
        stages.process(stage, RASTER)
    assert caught.value.reason == FailureReason.STORAGE_UNAVAILABLE
    assert "No space left on device" in caught.value.message
    data = tmp_path / "packages/gambia/datasets/natural_earth_raster/version_1/data"
    assert list(data.iterdir()) == []


def test_finalise_refuses_a_package_whose_processor_has_not_run(files: FileServer, tmp_path: Path) -> None:
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, served(files))
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path)
    stages.setup(stage)
    stages.process(stage, TEST)
    with pytest.raises(PackageError) as caught:
        stages.finalise(stage)
    assert caught.value.reason == FailureReason.MISSING_RESULT
    assert RASTER in caught.value.message
    assert VECTOR in caught.value.message


def test_a_second_package_adds_its_datasets_to_the_boundary(files: FileServer, tmp_path: Path) -> None:
    storage_spec = {"volume": {"path": str(tmp_path / "packages")}}
    run_all(make_config(storage_spec, served(files), processors=[TEST]), tmp_path / "s1")
    run_all(make_config(storage_spec, served(files), processors=[RASTER]), tmp_path / "s2")
    storage = open_storage(StorageSpec.model_validate(storage_spec))
    assert_package(storage, processors=[TEST, RASTER])


# -- a package on S3 --------------------------------------------------------------------------------------


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3.client_env().items():
        monkeypatch.setenv(key, value)
    return s3


def s3_storage(s3: S3Server, bucket: str, prefix: str = "packages") -> dict[str, Any]:
    return {"s3": {"bucket": bucket, "prefix": prefix, "endpoint": s3.endpoint_url, "forcePathStyle": True}}


def test_a_package_is_built_on_s3_from_s3_sources(s3_env: S3Server, bucket: str, tmp_path: Path) -> None:
    client = s3_env.client()
    client.put_object(
        Bucket=bucket, Key="sources/relief.tif", Body=write_geotiff(tmp_path / "r.tif").read_bytes()
    )
    client.put_object(
        Bucket=bucket,
        Key="sources/roads.gpkg",
        Body=write_vector(tmp_path / "roads.gpkg", ROADS).read_bytes(),
    )
    source = {"endpoint": s3_env.endpoint_url, "forcePathStyle": True, "bucket": bucket}
    config = PackageConfig.model_validate(
        {
            "boundary": {"name": "gambia", "geojson": gambia_geojson()},
            "processors": [
                TEST,
                {"name": RASTER, "options": {"source": {"s3": {**source, "key": "sources/relief.tif"}}}},
                {"name": VECTOR, "options": {"source": {"s3": {**source, "key": "sources/roads.gpkg"}}}},
            ],
            "storage": s3_storage(s3_env, bucket),
            "packageHostUrl": HOST,
        }
    )
    first = run_all(config, tmp_path / "scratch1")
    assert phases(first) == dict.fromkeys(ALL, ProcessorPhase.SUCCEEDED)
    storage = open_storage(config.storage)
    assert_package(storage)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix="packages/")["Contents"]]
    assert "packages/gambia/datapackage.json" in keys
    assert not [key for key in keys if "/.partial/" in key or key.startswith("packages/.partial")]
    assert not [key for key in keys if key.startswith("packages/.locks/")]

    assert phases(run_all(config, tmp_path / "scratch2")) == dict.fromkeys(ALL, ProcessorPhase.SKIPPED)
    client.put_object(
        Bucket=bucket,
        Key="sources/relief.tif",
        Body=write_geotiff(tmp_path / "r2.tif", offset=0.5).read_bytes(),
    )
    assert phases(run_all(config, tmp_path / "scratch3"))[RASTER] == ProcessorPhase.SUCCEEDED


class FailingCopy:
    """An S3 client whose CopyObject fails after the upload to the temporary key succeeded."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def copy_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}}, "CopyObject"
        )


def test_on_s3_a_failed_move_leaves_nothing_at_the_final_key(
    s3_env: S3Server, bucket: str, tmp_path: Path
) -> None:
    location = S3Location(
        bucket=bucket, prefix="packages", endpoint=s3_env.endpoint_url, force_path_style=True
    )
    storage = S3Storage(location, client=FailingCopy(s3_env.client()))  # type: ignore[arg-type]
    local = tmp_path / "file.tif"
    local.write_bytes(b"x" * 1000)
    with pytest.raises(PackageError) as caught:
        storage.put_file(local, "gambia/datasets/a/version_1/data/a-version_1-gambia.tif", "image/tiff")
    assert "CopyObject" in caught.value.message
    assert s3_env.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_on_s3_a_large_file_goes_up_in_parts(s3_env: S3Server, bucket: str, tmp_path: Path) -> None:
    location = S3Location(bucket=bucket, endpoint=s3_env.endpoint_url, force_path_style=True)
    mib = 1024 * 1024
    storage = S3Storage(location, multipart_threshold=5 * mib, part_size=5 * mib)
    local = tmp_path / "big.bin"
    local.write_bytes(np.random.default_rng(1).bytes(11 * mib))
    storage.put_file(local, "gambia/big.bin", "application/octet-stream")
    assert storage.size("gambia/big.bin") == 11 * mib
    copy = tmp_path / "copy.bin"
    storage.download("gambia/big.bin", copy)
    assert file_sha1(copy) == file_sha1(local)
    assert [item["Key"] for item in s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]] == [
        "gambia/big.bin"
    ]


# -- the source cache and the locks -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["volume", "s3"])
def test_a_cached_source_is_downloaded_once_for_every_package(
    backend: str, files: FileServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "s3":
        s3 = request.getfixturevalue("s3_env")
        cache = s3_storage(s3, request.getfixturevalue("bucket"), prefix="cache")
    else:
        cache = {"volume": {"path": str(tmp_path / "cache")}}
    storage_spec = {"volume": {"path": str(tmp_path / "packages")}}
    for name in ("gambia", "gambia_copy"):
        config = make_config(storage_spec, served(files), name=name, cache=cache, processors=[RASTER, VECTOR])
        assert set(phases(run_all(config, tmp_path / name)).values()) == {ProcessorPhase.SUCCEEDED}
    assert files.downloads == {"/relief.tif": 1, "/roads.gpkg": 1}

    write_geotiff(files.root / "relief.tif", Grid(), offset=0.5)
    config = make_config(storage_spec, served(files), cache=cache, processors=[RASTER])
    run_all(config, tmp_path / "again")
    assert files.downloads["/relief.tif"] == 2


def test_a_processor_whose_lock_is_held_waits_then_gives_up_naming_the_lock(
    files: FileServer, tmp_path: Path
) -> None:
    config = make_config({"volume": {"path": str(tmp_path / "packages")}}, served(files), lock_timeout=0)
    stage = stages.Stage(config=config, storage=open_storage(config.storage), scratch=tmp_path)
    lock_file = (
        tmp_path
        / "packages"
        / layout.lock_file(layout.processor_lock("gambia", "test_processor", "version_1"))
    )
    with volume_lock(lock_file, timeout=0), pytest.raises(LockTimeoutError) as caught:
        stages.process(stage, TEST)
    assert caught.value.reason == FailureReason.LOCK_TIMEOUT
    assert "test_processor.version_1.lock is held by another Job" in caught.value.message
    # Released: the next run goes ahead.
    assert stages.process(stage, TEST).phase == ProcessorPhase.SUCCEEDED


def test_an_s3_lock_is_taken_by_one_holder_at_a_time(s3_env: S3Server, bucket: str) -> None:
    client = s3_env.client()
    first = S3Lock(client, bucket, ".locks/gambia/x.lock", poll=0.01)
    second = S3Lock(client, bucket, ".locks/gambia/x.lock", poll=0.01)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert not second.break_if_stale()
    with pytest.raises(LockTimeoutError):
        second.acquire(timeout=0)
    first.renew()
    assert not first.lost
    first.release()
    with second.held(timeout=0):
        assert not first.try_acquire()
    assert first.try_acquire()
    first.release()


def test_a_stale_s3_lock_of_a_dead_holder_is_broken(s3_env: S3Server, bucket: str) -> None:
    client = s3_env.client()
    key = ".locks/gambia/x.lock"
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"owner": "dead", "ttlSeconds": -1}).encode())
    taker = S3Lock(client, bucket, key, poll=0.01)
    with taker.held(timeout=0):
        assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["owner"] == taker.owner
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_renewal_that_finds_its_lock_taken_over_says_the_lock_is_lost(
    s3_env: S3Server, bucket: str
) -> None:
    client = s3_env.client()
    key = ".locks/gambia/x.lock"
    holder = S3Lock(client, bucket, key)
    assert holder.try_acquire()
    client.put_object(Bucket=bucket, Key=key, Body=b'{"owner": "someone else"}')
    holder.renew()
    assert holder.lost
    holder.release()
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["owner"] == "someone else"
