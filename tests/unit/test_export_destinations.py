"""Uploads against an in-memory S3 stand-in and a local folder: parts, verification, abort, sweep."""

from __future__ import annotations

import gzip
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from headwater_worker.export.config import FailureReason, S3DestinationSpec, VolumeDestinationSpec
from headwater_worker.export.destinations import MIB, S3Destination, VolumeDestination
from headwater_worker.export.errors import ExportError
from headwater_worker.export.gzipstream import GzipChunker
from headwater_worker.export.naming import file_name

NAME = file_name("t", datetime(2025, 1, 1, tzinfo=UTC))
NOT_FOUND: Any = {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}


class FakeS3:
    """Just enough of an S3 client for the upload logic; `calls` records the operations in order."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.size_lie = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def head_bucket(self, **_: Any) -> dict[str, Any]:
        self._call("head_bucket")
        return {}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self._call("head_object")
        if Key not in self.objects:
            raise ClientError(NOT_FOUND, "HeadObject")
        return {"ContentLength": len(self.objects[Key]) + self.size_lie}

    def put_object(self, *, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("put_object")
        self.objects[Key] = bytes(Body)
        return {}

    def create_multipart_upload(self, *, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("create_multipart_upload")
        upload_id = f"u{len(self.uploads)}"
        self.uploads[upload_id] = {"Key": Key, "parts": {}, "Initiated": datetime.now(UTC)}
        return {"UploadId": upload_id}

    def upload_part(self, *, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("upload_part")
        self.uploads[UploadId]["parts"][PartNumber] = bytes(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, *, Key: str, UploadId: str, MultipartUpload: Any, **_: Any) -> Any:  # noqa: N803
        self._call("complete_multipart_upload")
        upload = self.uploads.pop(UploadId)
        numbers = [part["PartNumber"] for part in MultipartUpload["Parts"]]
        assert numbers == sorted(upload["parts"])
        self.objects[Key] = b"".join(upload["parts"][n] for n in numbers)
        return {}

    def abort_multipart_upload(self, *, UploadId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("abort_multipart_upload")
        self.uploads.pop(UploadId, None)
        return {}

    def delete_object(self, *, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("delete_object")
        self.objects.pop(Key, None)
        return {}

    def delete_objects(self, *, Delete: Any, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._call("delete_objects")
        for item in Delete["Objects"]:
            self.objects.pop(item["Key"], None)
        return {}

    def get_paginator(self, operation: str) -> Any:
        fake = self

        class Paginator:
            def paginate(self, *, Prefix: str, **_: Any) -> list[dict[str, Any]]:  # noqa: N803
                fake._call(operation)
                if operation == "list_objects_v2":
                    return [{"Contents": [{"Key": k} for k in sorted(fake.objects) if k.startswith(Prefix)]}]
                uploads = [
                    {"Key": u["Key"], "UploadId": i, "Initiated": u["Initiated"]}
                    for i, u in fake.uploads.items()
                    if u["Key"].startswith(Prefix)
                ]
                return [{"Uploads": uploads}]

        return Paginator()


def s3_destination(fake: FakeS3, prefix: str = "daily/") -> S3Destination:
    spec = S3DestinationSpec(bucket="exports", prefix=prefix, part_size_mib=5)
    return S3Destination(spec, client=cast(Any, fake))


def stream(
    destination: S3Destination | VolumeDestination, payload: bytes, name: str = NAME
) -> tuple[str, int]:
    """Feed `payload` through gzip into an upload as the runner does."""
    upload = destination.open(name)
    chunker = GzipChunker(1, destination.chunk_size)
    for start in range(0, len(payload), 65536):
        for chunk in chunker.write(payload[start : start + 65536]):
            upload.write(chunk)
    *middle, last = chunker.finish()
    for chunk in middle:
        upload.write(chunk)
    return upload.complete(last), upload.bytes_written


def test_a_small_export_is_one_put_object() -> None:
    fake = FakeS3()
    uri, size = stream(s3_destination(fake), b"id\n1\n")
    assert uri == f"s3://exports/daily/{NAME}"
    assert fake.calls == ["put_object", "head_object"]
    assert gzip.decompress(fake.objects[f"daily/{NAME}"]) == b"id\n1\n"
    assert size == len(fake.objects[f"daily/{NAME}"])


def test_a_large_export_is_a_multipart_upload_of_fixed_parts() -> None:
    fake = FakeS3()
    payload = os.urandom(12 * MIB)  # incompressible: three parts of 5 MiB, 5 MiB and the rest
    uri, _ = stream(s3_destination(fake, prefix=""), payload)
    assert uri == f"s3://exports/{NAME}"
    assert fake.calls.count("upload_part") == 3
    assert fake.calls[-2:] == ["complete_multipart_upload", "head_object"]
    assert gzip.decompress(fake.objects[NAME]) == payload
    assert not fake.uploads


def test_a_size_mismatch_fails_verification_and_removes_the_object() -> None:
    fake = FakeS3()
    fake.size_lie = -1
    upload = s3_destination(fake).open(NAME)
    with pytest.raises(ExportError) as raised:
        upload.complete(b"x" * 100)
    assert raised.value.reason is FailureReason.VERIFICATION_FAILED
    upload.abort()
    assert not fake.objects


def test_a_lost_completion_response_still_removes_the_object() -> None:
    fake = FakeS3()
    upload = s3_destination(fake).open(NAME)
    upload.write(b"a" * 5 * MIB)
    fake.fail["head_object"] = EndpointConnectionError(endpoint_url="http://s3")
    with pytest.raises(ExportError, match="HeadObject"):
        upload.complete(b"b")
    upload.abort()
    assert fake.calls[-1] == "delete_object"
    assert not fake.objects


def test_parts_are_sent_as_they_come_and_a_failed_part_aborts_the_upload() -> None:
    fake = FakeS3()
    upload = s3_destination(fake).open(NAME)
    upload.write(b"a" * 5 * MIB)
    assert fake.calls == ["create_multipart_upload", "upload_part"]
    fake.fail["upload_part"] = EndpointConnectionError(endpoint_url="http://s3")
    with pytest.raises(ExportError) as raised:
        upload.write(b"b" * 5 * MIB)
    assert raised.value.reason is FailureReason.DESTINATION_UNAVAILABLE
    upload.abort()
    assert fake.calls[-1] == "abort_multipart_upload"
    assert not fake.uploads
    assert not fake.objects


def test_abort_never_raises_even_when_s3_is_gone() -> None:
    fake = FakeS3()
    upload = s3_destination(fake).open(NAME)
    upload.write(b"a" * 5 * MIB)
    fake.fail["abort_multipart_upload"] = EndpointConnectionError(endpoint_url="http://s3")
    upload.abort()


def test_exists_and_unreachable() -> None:
    fake = FakeS3()
    destination = s3_destination(fake)
    assert not destination.exists(NAME)
    fake.objects[f"daily/{NAME}"] = b"x"
    assert destination.exists(NAME)
    fake.fail["head_object"] = EndpointConnectionError(endpoint_url="http://s3")
    with pytest.raises(ExportError, match="HeadObject") as raised:
        destination.exists(NAME)
    assert raised.value.reason is FailureReason.DESTINATION_UNAVAILABLE


def test_list_and_delete_stay_in_the_prefix_folder() -> None:
    fake = FakeS3()
    for key in (f"daily/{NAME}", f"daily/t-nested/{NAME}", f"other/{NAME}", "daily/t_other-x"):
        fake.objects[key] = b"x"
    destination = s3_destination(fake)
    assert destination.list_names("t") == [NAME]
    destination.delete([NAME])
    assert f"daily/{NAME}" not in fake.objects
    assert f"other/{NAME}" in fake.objects


def test_sweep_aborts_only_this_tasks_uploads_started_before_the_run() -> None:
    fake = FakeS3()
    destination = s3_destination(fake)
    stale = fake.create_multipart_upload(Key=f"daily/{NAME}")["UploadId"]
    fake.create_multipart_upload(Key="daily/t-notes.txt")
    fake.create_multipart_upload(Key=f"daily/{file_name('t_x', datetime(2025, 1, 1, tzinfo=UTC))}")
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    fresh = fake.create_multipart_upload(Key=f"daily/{NAME}")["UploadId"]
    fake.uploads[fresh]["Initiated"] = cutoff + timedelta(seconds=1)
    assert destination.sweep_stale("t", cutoff) == [f"daily/{NAME}"]
    assert stale not in fake.uploads
    assert fresh in fake.uploads
    assert len(fake.uploads) == 3


# -- volume -----------------------------------------------------------------------------------------------


def volume(tmp_path: Path) -> VolumeDestination:
    return VolumeDestination(VolumeDestinationSpec(path=str(tmp_path)))


def test_volume_upload_writes_through_a_temp_file(tmp_path: Path) -> None:
    destination = volume(tmp_path)
    payload = os.urandom(3 * MIB)
    uri, size = stream(destination, payload)
    assert uri == (tmp_path / NAME).as_uri()
    assert gzip.decompress((tmp_path / NAME).read_bytes()) == payload
    assert (tmp_path / NAME).stat().st_size == size
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def test_volume_upload_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"precious")
    destination = volume(tmp_path)
    upload = destination.open(NAME)
    with pytest.raises(ExportError, match="publishing"):
        upload.complete(b"new")
    upload.abort()
    assert (tmp_path / NAME).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def test_volume_abort_removes_the_temp_file(tmp_path: Path) -> None:
    upload = volume(tmp_path).open(NAME)
    upload.write(b"partial")
    assert list(tmp_path.iterdir())
    upload.abort()
    assert not list(tmp_path.iterdir())


def test_volume_sweep_removes_stale_temp_files_of_the_task(tmp_path: Path) -> None:
    stale = tmp_path / f".{NAME}.partial"
    other = tmp_path / f".{file_name('u', datetime(2025, 1, 1, tzinfo=UTC))}.partial"
    for path in (stale, other):
        path.write_bytes(b"x")
        old = time.time() - 3600
        os.utime(path, (old, old))
    assert volume(tmp_path).sweep_stale("t", datetime.now(UTC)) == [stale.name]
    assert not stale.exists()
    assert other.exists()


def test_volume_check(tmp_path: Path) -> None:
    volume(tmp_path).check()
    VolumeDestination(VolumeDestinationSpec(path=str(tmp_path / "new" / "folder"))).check()
    assert (tmp_path / "new" / "folder").is_dir(), "a missing folder is created, like a prefix in a bucket"
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="cannot create") as raised:
        VolumeDestination(VolumeDestinationSpec(path=str(tmp_path / "file" / "below"))).check()
    assert raised.value.reason is FailureReason.DESTINATION_UNAVAILABLE
