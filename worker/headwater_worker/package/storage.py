"""Where packages (and cached sources) are kept: an S3 bucket prefix or a volume folder.

Paths are relative POSIX paths under the storage root (`gambia/datasets/...`). Every file is written under
a temporary name and moved to its own only when complete, so a reader never sees half a file at its name:
on S3 it is uploaded to `.partial/<id>/...` under the root, then copied to its key and the temporary object
deleted; on a volume it is written beside its final name as `.<name>.<id>.partial`, fsync'd, then renamed
over it with `os.replace`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .. import s3
from ..logs import fields
from .config import StorageSpec, VolumeFolder
from .errors import FailureReason, PackageError
from .layout import lock_file
from .locks import S3Lock, volume_lock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# put_object and copy_object take at most 5 GiB; past these sizes the multipart forms are used.
MULTIPART_THRESHOLD = 64 * MIB
PART_SIZE = 16 * MIB
COPY_LIMIT = 5 * 1024 * MIB
COPY_PART_SIZE = 512 * MIB
DOWNLOAD_CHUNK = MIB
PARTIAL = ".partial"


class StorageUnavailableError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.STORAGE_UNAVAILABLE, message)


def _checked(path: str) -> str:
    """A relative path that stays under the root."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"storage path {path!r} must be relative and stay under the root")
    return str(pure)


class Storage(abc.ABC):
    @abc.abstractmethod
    def check(self) -> None:
        """Fail early, with StorageUnavailableError, when nothing can be written there."""

    @abc.abstractmethod
    def uri(self, path: str) -> str:
        """The storage's own URI of `path` (`s3://bucket/key`, `pvc://claim/...`, `file:///...`)."""

    @property
    @abc.abstractmethod
    def has_portable_uris(self) -> bool:
        """Whether `uri()` names the file for anyone (not a path of this container)."""

    @abc.abstractmethod
    def size(self, path: str) -> int | None:
        """The file's size; None when it does not exist."""

    def exists(self, path: str) -> bool:
        return self.size(path) is not None

    @abc.abstractmethod
    def read_bytes(self, path: str) -> bytes | None:
        """The file's content; None when it does not exist."""

    @abc.abstractmethod
    def put_file(self, local: Path, path: str, content_type: str) -> None:
        """Store a local file at `path` (replacing what is there), under a temporary name first."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, path: str, content_type: str) -> None: ...

    @abc.abstractmethod
    def download(self, path: str, local: Path) -> None:
        """Copy the stored file to a local one, streaming."""

    @abc.abstractmethod
    def list_files(self, folder: str) -> list[str]:
        """Paths of the files under `folder`, at any depth."""

    def local_path(self, path: str) -> Path | None:
        """Where this container can read the stored file in place, when it can."""
        return None

    @abc.abstractmethod
    def lock(self, name: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold the lock `name` (kept at `.locks/<name>.lock`) for the block; wait up to `timeout` s."""


def open_storage(spec: StorageSpec) -> Storage:
    if spec.s3 is not None:
        return S3Storage(spec.s3)
    assert spec.volume is not None
    return VolumeStorage(spec.volume)


# -- S3 ---------------------------------------------------------------------------------------------------


def _s3_errors(action: str) -> contextlib.AbstractContextManager[None]:
    return s3.failures(action, lambda message, _: StorageUnavailableError(message))


class S3Storage(Storage):
    has_portable_uris = True

    def __init__(
        self,
        location: s3.S3Location,
        client: S3Client | None = None,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        self.location = location
        self.bucket = location.bucket
        self.folder = location.folder
        self.client = client or s3.client(location)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    def key(self, path: str) -> str:
        return f"{self.folder}{_checked(path)}"

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    def check(self) -> None:
        with _s3_errors(f"HeadBucket {self.bucket}"):
            self.client.head_bucket(Bucket=self.bucket)

    def size(self, path: str) -> int | None:
        from botocore.exceptions import ClientError

        key = self.key(path)
        with _s3_errors(f"HeadObject {key}"):
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            except ClientError as error:
                if s3.is_not_found(error):
                    return None
                raise

    def read_bytes(self, path: str) -> bytes | None:
        from botocore.exceptions import ClientError

        key = self.key(path)
        with _s3_errors(f"GetObject {key}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if s3.is_not_found(error):
                    return None
                raise

    def _temp_key(self, path: str) -> str:
        return f"{self.folder}{PARTIAL}/{uuid.uuid4().hex}/{_checked(path)}"

    def put_bytes(self, data: bytes, path: str, content_type: str) -> None:
        temp = self._temp_key(path)
        try:
            with _s3_errors(f"PutObject {temp}"):
                self.client.put_object(Bucket=self.bucket, Key=temp, Body=data, ContentType=content_type)
            self._move(temp, path, len(data), content_type)
        finally:
            self._remove_quietly(temp)

    def put_file(self, local: Path, path: str, content_type: str) -> None:
        temp = self._temp_key(path)
        size = local.stat().st_size
        try:
            if size <= self.multipart_threshold:
                with _s3_errors(f"PutObject {temp}"), local.open("rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=temp, Body=body, ContentType=content_type)
            else:
                self._upload_parts(local, temp, content_type)
            self._move(temp, path, size, content_type)
        finally:
            self._remove_quietly(temp)

    def _upload_parts(self, local: Path, key: str, content_type: str) -> None:
        with _s3_errors(f"CreateMultipartUpload {key}"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        try:
            with local.open("rb") as stream:
                while chunk := stream.read(self.part_size):
                    number = len(parts) + 1
                    with _s3_errors(f"UploadPart {number} of {key}"):
                        etag = self.client.upload_part(
                            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                        )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
            with _s3_errors(f"CompleteMultipartUpload {key}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _move(self, temp: str, path: str, size: int, content_type: str) -> None:
        """Copy the complete temporary object to its key: readers see the old object or the new one."""
        key = self.key(path)
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": temp}
        if size <= COPY_LIMIT:
            with _s3_errors(f"CopyObject {key}"):
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=source,
                    ContentType=content_type,
                    MetadataDirective="REPLACE",
                )
        else:
            self._copy_parts(source, key, size, content_type)
        with _s3_errors(f"HeadObject {key}"):
            stored = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if stored != size:
            raise StorageUnavailableError(
                f"{self.uri(path)} holds {stored} bytes after the copy, {size} expected"
            )

    def _copy_parts(self, source: CopySourceTypeDef, key: str, size: int, content_type: str) -> None:
        with _s3_errors(f"CreateMultipartUpload {key}"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        try:
            for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                end = min(start + COPY_PART_SIZE, size) - 1
                with _s3_errors(f"UploadPartCopy {number} of {key}"):
                    result = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": source["Bucket"], "Key": source["Key"]},
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            with _s3_errors(f"CompleteMultipartUpload {key}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _remove_quietly(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            log.warning("could not remove a temporary object", extra=fields(key=key, error=str(error)))

    def download(self, path: str, local: Path) -> None:
        key = self.key(path)
        with _s3_errors(f"GetObject {key}"), local.open("wb") as out:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                out.write(chunk)

    def list_files(self, folder: str) -> list[str]:
        prefix = f"{self.folder}{_checked(folder)}/"
        found: list[str] = []
        with _s3_errors(f"ListObjectsV2 {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found.extend(item["Key"][len(self.folder) :] for item in page.get("Contents", []))
        return found

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[None]:
        with S3Lock(self.client, self.bucket, self.key(lock_file(_checked(name)))).held(timeout):
            yield


# -- volume -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _volume_errors(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise StorageUnavailableError(f"{action} failed: {error.strerror or error}") from error


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VolumeStorage(Storage):
    def __init__(self, spec: VolumeFolder) -> None:
        self.root = Path(spec.path)
        self.uri_prefix = spec.uri_prefix

    @property
    def has_portable_uris(self) -> bool:
        return self.uri_prefix is not None

    def file(self, path: str) -> Path:
        return self.root / _checked(path)

    def local_path(self, path: str) -> Path | None:
        return self.file(path)

    def uri(self, path: str) -> str:
        if self.uri_prefix:
            return f"{self.uri_prefix.rstrip('/')}/{_checked(path)}"
        return self.file(path).as_uri()

    def check(self) -> None:
        with _volume_errors(f"creating {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailableError(f"{self.root} is not writable")

    def size(self, path: str) -> int | None:
        target = self.file(path)
        with _volume_errors(f"reading {target}"):
            try:
                return target.stat().st_size if target.is_file() else None
            except FileNotFoundError:
                return None

    def read_bytes(self, path: str) -> bytes | None:
        target = self.file(path)
        with _volume_errors(f"reading {target}"):
            try:
                return target.read_bytes()
            except FileNotFoundError:
                return None

    @contextlib.contextmanager
    def _writing(self, path: str) -> Iterator[Path]:
        """A temporary file beside `path`, renamed over it when the block ends without an error."""
        final = self.file(path)
        temp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
        with _volume_errors(f"writing {final}"):
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                yield temp
                with temp.open("rb+") as written:
                    os.fsync(written.fileno())
                os.replace(temp, final)
                _fsync_dir(final.parent)
            finally:
                temp.unlink(missing_ok=True)

    def put_file(self, local: Path, path: str, content_type: str) -> None:
        with self._writing(path) as temp:
            shutil.copyfile(local, temp)

    def put_bytes(self, data: bytes, path: str, content_type: str) -> None:
        with self._writing(path) as temp:
            temp.write_bytes(data)

    def download(self, path: str, local: Path) -> None:
        with _volume_errors(f"copying {self.file(path)}"):
            shutil.copyfile(self.file(path), local)

    def list_files(self, folder: str) -> list[str]:
        base = self.file(folder)
        with _volume_errors(f"listing {base}"):
            if not base.is_dir():
                return []
            return sorted(
                str(found.relative_to(self.root))
                for found in base.rglob("*")
                if found.is_file() and not found.name.endswith(PARTIAL)
            )

    def lock(self, name: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        path = self.file(lock_file(_checked(name)))
        with _volume_errors(f"creating {path.parent}"):
            path.parent.mkdir(parents=True, exist_ok=True)
        return volume_lock(path, timeout=timeout)
