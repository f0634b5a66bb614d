"""Where export files go: an S3 bucket (multipart upload) or a mounted volume (temp file, fsync, link).

An `Upload` receives the compressed stream chunk by chunk: `write()` for chunks that more data follow,
`complete(last)` for the final one. `complete()` stores the file and verifies it (the stored size equals
the bytes sent) before returning its URI; `abort()` removes every trace of an
upload that was not verified: the multipart upload and its parts, a stored but unverified object, a
temporary file.

S3 permissions the worker needs on the bucket and prefix: s3:ListBucket (HeadBucket, listing for the
retention, and a HeadObject on a missing key answering 404 rather than 403), s3:GetObject (HeadObject),
s3:PutObject, s3:AbortMultipartUpload, s3:ListBucketMultipartUploads (removing leftovers of killed runs)
and s3:DeleteObject (retention, removing an unverified object). A lifecycle rule
`AbortIncompleteMultipartUpload` on the bucket is a good second safety net.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import s3
from ..logs import fields
from .config import DestinationSpec, FailureReason, S3DestinationSpec, VolumeDestinationSpec
from .errors import ExportError
from .naming import parse_file_name

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MIB = 1024 * 1024
VOLUME_CHUNK_SIZE = 1 * MIB
CONTENT_TYPE = "application/gzip"


class Upload(abc.ABC):
    """One file being written; chunks arrive in order."""

    def __init__(self) -> None:
        self.bytes_written = 0

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None:
        """A chunk of the stream that more bytes follow."""

    @abc.abstractmethod
    def complete(self, last: bytes = b"") -> str:
        """Add the last chunk, store the file, verify it, return its URI."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove whatever this upload left behind, unless it completed and was verified. Never raises."""


class Destination(abc.ABC):
    chunk_size: int

    @abc.abstractmethod
    def check(self) -> None:
        """Fail early, with DestinationUnavailable, when files cannot be written there."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def open(self, name: str) -> Upload: ...

    @abc.abstractmethod
    def list_names(self, task: str) -> list[str]:
        """Names of the files directly in the destination folder that start with `<task>-`."""

    @abc.abstractmethod
    def delete(self, names: list[str]) -> None: ...

    @abc.abstractmethod
    def sweep_stale(self, task: str, before: datetime) -> list[str]:
        """Remove leftovers of runs killed before they could clean up (multipart uploads, temp files) of
        this task's files, started before `before`; returns what was removed."""

    @abc.abstractmethod
    def uri(self, name: str) -> str: ...


def open_destination(spec: DestinationSpec, *, metadata: dict[str, str] | None = None) -> Destination:
    if spec.s3 is not None:
        return S3Destination(spec.s3, metadata=metadata)
    assert spec.volume is not None
    return VolumeDestination(spec.volume)


# -- S3 -------------------------------------------------------------------------------------------------


def _s3_errors(action: str) -> contextlib.AbstractContextManager[None]:
    return s3.failures(action, lambda message, _: ExportError(FailureReason.DESTINATION_UNAVAILABLE, message))


class S3Destination(Destination):
    def __init__(
        self,
        spec: S3DestinationSpec,
        *,
        metadata: dict[str, str] | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.spec = spec
        self.bucket = spec.bucket
        self.folder = spec.folder
        self.chunk_size = spec.part_size_mib * MIB
        self.metadata = metadata or {}
        self.client = client if client is not None else s3.client(spec)

    def key(self, name: str) -> str:
        return f"{self.folder}{name}"

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def check(self) -> None:
        from botocore.exceptions import ClientError

        with _s3_errors(f"HeadBucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if s3.is_not_found(error):
                    raise ExportError(
                        FailureReason.DESTINATION_UNAVAILABLE, f"bucket {self.bucket} does not exist"
                    ) from error
                raise

    def exists(self, name: str) -> bool:
        with _s3_errors(f"HeadObject {self.key(name)}"):
            return s3.exists(self.client, self.bucket, self.key(name))

    def open(self, name: str) -> Upload:
        return S3Upload(self, name)

    def list_names(self, task: str) -> list[str]:
        names = []
        with _s3_errors(f"ListObjectsV2 {self.folder}{task}-"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.folder}{task}-"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self.folder) :]
                    if "/" not in rest:
                        names.append(rest)
        return names

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            with _s3_errors("DeleteObjects"):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.key(name)} for name in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                raise ExportError(
                    FailureReason.DESTINATION_UNAVAILABLE,
                    f"could not delete {len(errors)} objects, first {errors[0].get('Key')}: "
                    f"{errors[0].get('Message')}",
                )

    def sweep_stale(self, task: str, before: datetime) -> list[str]:
        aborted = []
        with _s3_errors(f"ListMultipartUploads {self.folder}{task}-"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=f"{self.folder}{task}-"
            )
            uploads = [upload for page in pages for upload in page.get("Uploads", [])]
        for upload in uploads:
            key = upload.get("Key", "")
            rest = key[len(self.folder) :] if key.startswith(self.folder) else ""
            initiated = upload.get("Initiated")
            if parse_file_name(task, rest) is None or initiated is None or initiated >= before:
                continue
            with _s3_errors(f"AbortMultipartUpload {key}"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
            aborted.append(key)
        return aborted


class S3Upload(Upload):
    """A stream that fits in one chunk goes up in one PutObject; a longer one as a multipart upload whose
    parts (all but the last of `chunk_size` bytes) are sent as they come, so at most one part is held."""

    def __init__(self, destination: S3Destination, name: str) -> None:
        super().__init__()
        self.destination = destination
        self.client = destination.client
        self.bucket = destination.bucket
        self.key = destination.key(name)
        self.uri = destination.uri(name)
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._stored = False
        self._verified = False

    def write(self, chunk: bytes) -> None:
        self._send_part(chunk)
        self.bytes_written += len(chunk)

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            with _s3_errors(f"CreateMultipartUpload {self.key}"):
                created = self.client.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    ContentType=CONTENT_TYPE,
                    Metadata=self.destination.metadata,
                )
            self._upload_id = created["UploadId"]
            log.info("multipart upload started", extra=fields(key=self.key))
        number = len(self._parts) + 1
        with _s3_errors(f"UploadPart {number} of {self.key}"):
            response = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
            )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self, last: bytes = b"") -> str:
        if self._upload_id is None:
            # From here on the object may exist (a request can succeed and its response be lost): an abort
            # removes it. The key is this run's own, it did not exist before.
            self._stored = True
            with _s3_errors(f"PutObject {self.key}"):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=last,
                    ContentType=CONTENT_TYPE,
                    Metadata=self.destination.metadata,
                )
            self.bytes_written += len(last)
        else:
            if last:
                self.write(last)
            self._stored = True
            with _s3_errors(f"CompleteMultipartUpload {self.key}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._upload_id = None
        with _s3_errors(f"HeadObject {self.key}"):
            size = self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"]
        if size != self.bytes_written:
            raise ExportError(
                FailureReason.VERIFICATION_FAILED,
                f"{self.uri} holds {size} bytes, {self.bytes_written} were sent",
            )
        self._verified = True
        return self.uri

    def abort(self) -> None:
        if self._upload_id is not None:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
                log.info("multipart upload aborted", extra=fields(key=self.key))
            except Exception as error:
                log.warning(
                    "could not abort the multipart upload; the next run removes it",
                    extra=fields(key=self.key, error=str(error)),
                )
            self._upload_id = None
        if self._stored and not self._verified:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
                log.info("unverified object removed", extra=fields(key=self.key))
            except Exception as error:
                log.warning(
                    "could not remove the unverified object", extra=fields(key=self.key, error=str(error))
                )
            self._stored = False


# -- volume -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _volume_errors(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise ExportError(FailureReason.DESTINATION_UNAVAILABLE, f"{action} failed: {error}") from error


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    return f".{name}.partial"


class VolumeDestination(Destination):
    chunk_size = VOLUME_CHUNK_SIZE

    def __init__(self, spec: VolumeDestinationSpec) -> None:
        self.folder = Path(spec.path)
        self.uri_prefix = spec.uri_prefix

    def uri(self, name: str) -> str:
        if self.uri_prefix:
            return f"{self.uri_prefix.rstrip('/')}/{name}"
        return (self.folder / name).as_uri()

    def check(self) -> None:
        try:
            # A folder inside the volume is created on first use, like a key prefix in a bucket.
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ExportError(
                FailureReason.DESTINATION_UNAVAILABLE, f"cannot create {self.folder}: {error.strerror}"
            ) from error
        if not self.folder.is_dir():
            raise ExportError(FailureReason.DESTINATION_UNAVAILABLE, f"{self.folder} is not a folder")
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise ExportError(FailureReason.DESTINATION_UNAVAILABLE, f"{self.folder} is not writable")

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()

    def open(self, name: str) -> Upload:
        return VolumeUpload(self.folder, name, self.uri(name))

    def list_names(self, task: str) -> list[str]:
        with _volume_errors(f"listing {self.folder}"):
            return [
                entry.name
                for entry in self.folder.iterdir()
                if entry.name.startswith(f"{task}-") and entry.is_file()
            ]

    def delete(self, names: list[str]) -> None:
        for name in names:
            with _volume_errors(f"removing {name}"):
                (self.folder / name).unlink(missing_ok=True)
        if names:
            with _volume_errors(f"syncing {self.folder}"):
                _fsync_dir(self.folder)

    def sweep_stale(self, task: str, before: datetime) -> list[str]:
        removed = []
        with _volume_errors(f"listing {self.folder}"):
            for entry in self.folder.iterdir():
                name = entry.name
                if not (name.startswith(".") and name.endswith(".partial")):
                    continue
                if parse_file_name(task, name[1 : -len(".partial")]) is None:
                    continue
                if entry.stat().st_mtime < before.timestamp():
                    entry.unlink(missing_ok=True)
                    removed.append(name)
        return removed


class VolumeUpload(Upload):
    """Written to `.<name>.partial`, fsync'd, checked, then hard-linked to its name (never replacing a file
    that exists) and the folder fsync'd."""

    def __init__(self, folder: Path, name: str, uri: str) -> None:
        super().__init__()
        self.folder = folder
        self.uri = uri
        self.final = folder / name
        self.temp = folder / temp_name(name)
        with _volume_errors(f"creating {self.temp.name}"):
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            self._file = os.fdopen(fd, "wb")
        self._done = False

    def write(self, chunk: bytes) -> None:
        with _volume_errors(f"writing {self.temp.name}"):
            self._file.write(chunk)
        self.bytes_written += len(chunk)

    def complete(self, last: bytes = b"") -> str:
        if last:
            self.write(last)
        with _volume_errors(f"syncing {self.temp.name}"):
            self._file.flush()
            os.fsync(self._file.fileno())
            size = os.fstat(self._file.fileno()).st_size
            self._file.close()
        if size != self.bytes_written:
            raise ExportError(
                FailureReason.VERIFICATION_FAILED,
                f"{self.temp.name} holds {size} bytes after fsync, {self.bytes_written} were written",
            )
        with _volume_errors(f"publishing {self.final.name}"):
            self._publish()
            _fsync_dir(self.folder)
        self._done = True
        return self.uri

    def _publish(self) -> None:
        try:
            os.link(self.temp, self.final)
        except FileExistsError:
            raise
        except OSError as error:
            # Some network filesystems have no hard links: fall back to a rename after a check.
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
            if self.final.exists():
                raise FileExistsError(errno.EEXIST, "file exists", str(self.final)) from error
            os.rename(self.temp, self.final)
            return
        self.temp.unlink()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        if not self._done:
            with contextlib.suppress(OSError):
                self.temp.unlink(missing_ok=True)
