"""Where a file connector's files are: a folder of a volume, or a key prefix of an S3 bucket.

A `Store` lists the files that arrived, gives each as a local file for the readers, and moves it to the
processed or rejected folder afterwards — a folder of the same volume, a prefix of the same bucket.

A file on a volume is ready once its size and modification time have not changed for `stableSeconds`: a
writer may still be copying it. An S3 object needs no such wait: a PutObject or a completed multipart
upload makes it appear whole, at once, so an object that is listed is complete. An object is downloaded to
the pod's /tmp, whose size is limited: one listed as larger than `maxObjectBytes` is not downloaded but
refused (`TooLarge`), to be moved to the rejected prefix like any refused file, rather than fill /tmp and
get the pod evicted on every run.

Moving an S3 object is a copy, a check of the copy (HeadObject: its size, and the ETag the copy answered),
and only then the deletion of the original: nothing is deleted unless its copy is stored. Permissions the
worker needs: s3:ListBucket on the incoming prefix (and the processed and rejected ones, so that a
HeadObject on a missing key answers 404 rather than 403), s3:GetObject, s3:PutObject and s3:DeleteObject.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from .. import s3
from .config import FileConfig, S3FileConfig
from .errors import BatchRejected, FailureReason, IngestError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Outcome = Literal["processed", "rejected"]
NOTE_SUFFIX = ".rejected.json"
DOWNLOAD_BLOCK = 1 << 20


@dataclass(frozen=True)
class Arrival:
    """A file found in the incoming folder."""

    name: str
    uri: str  # how batches and logs name it: `file:///...` or `s3://bucket/key`
    size: int = 0  # S3: as listed, what the copy in the processed or rejected prefix must hold
    etag: str = ""  # S3: the version listed, the only one read and moved


class Changed(Exception):  # noqa: N818 - an outcome of a scan, not an error of the run
    """The object was replaced after it was listed (before it was read, or before it was copied): the new
    version is left for the next scan."""


class TooLarge(BatchRejected):
    """The object is larger than the worker may download: refused unread, moved to the rejected folder."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            "FileTooLarge",
            f"the object holds {size} bytes, more than the {limit} bytes the worker may download "
            f"(its temporary space is limited): split it into smaller files",
        )


class Store(Protocol):
    def arrivals(self) -> list[Arrival]:
        """The files directly in the incoming folder whose names match `include`, oldest first."""

    def ready(self, arrival: Arrival) -> bool:
        """Whether the file is complete (waiting a little to find out, if need be)."""

    def local(self, arrival: Arrival) -> AbstractContextManager[Path]:
        """The file as a local path, for as long as the context lasts; `TooLarge` when it cannot be."""

    def move(self, arrival: Arrival, outcome: Outcome, note: str | None = None) -> str:
        """Move the file to the processed or rejected folder, never overwriting (a name already taken
        there gets a timestamp), with `note` beside it as `<name>.rejected.json`; where it went."""


def included(name: str, patterns: Sequence[str]) -> bool:
    """Whether a file name matches one of the `include` globs (ignoring case); hidden files never do."""
    return not name.startswith(".") and any(
        fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns
    )


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `<stem>.<UTC timestamp><suffix>` when a file of that name is already there."""
    if not taken(name):
        return name
    path = Path(name)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{path.stem}.{stamp}{path.suffix}"


# -- volume -------------------------------------------------------------------------------------------------


class VolumeStore:
    def __init__(
        self,
        settings: FileConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert settings.path is not None
        assert settings.processed_path is not None
        assert settings.rejected_path is not None
        self.folder = Path(settings.path)
        self.targets: dict[Outcome, Path] = {
            "processed": Path(settings.processed_path),
            "rejected": Path(settings.rejected_path),
        }
        self.include = settings.include
        self.stable_seconds = settings.stable_seconds
        self.clock = clock
        self.sleep = sleep

    def arrivals(self) -> list[Arrival]:
        if not self.folder.is_dir():
            raise IngestError(FailureReason.SOURCE_NOT_FOUND, f"folder {self.folder} does not exist")
        found = [
            entry for entry in self.folder.iterdir() if entry.is_file() and included(entry.name, self.include)
        ]
        found.sort(key=lambda p: (p.stat().st_mtime, p.name))
        return [Arrival(path.name, f"file://{path}") for path in found]

    def ready(self, arrival: Arrival) -> bool:
        """Whether the file stayed unchanged for `stableSeconds` (waiting up to that long to find out)."""
        path = self.folder / arrival.name
        seconds = self.stable_seconds
        try:
            first = path.stat()
        except FileNotFoundError:
            return False
        if seconds == 0:
            return True
        age = self.clock() - first.st_mtime
        if age < seconds:
            self.sleep(seconds - age)
        try:
            second = path.stat()
        except FileNotFoundError:
            return False
        return (second.st_size, second.st_mtime_ns) == (first.st_size, first.st_mtime_ns) and (
            self.clock() - second.st_mtime >= seconds
        )

    def local(self, arrival: Arrival) -> AbstractContextManager[Path]:
        return contextlib.nullcontext(self.folder / arrival.name)

    def move(self, arrival: Arrival, outcome: Outcome, note: str | None = None) -> str:
        folder = self.targets[outcome]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / free_name(arrival.name, lambda name: (folder / name).exists())
        try:
            os.replace(self.folder / arrival.name, target)
        except OSError:
            shutil.move(str(self.folder / arrival.name), str(target))
        if note is not None:
            target.with_name(target.name + NOTE_SUFFIX).write_text(note)
        return str(target)


# -- S3 -----------------------------------------------------------------------------------------------------


def _failure(message: str, error: Exception) -> Exception:
    """The run's failure for a failed S3 request, or `Changed` when the object is no longer the one listed."""
    code = s3.error_code(error)
    if code in ("PreconditionFailed", "412"):
        return Changed(message)
    if code == "NoSuchBucket":
        return IngestError(FailureReason.SOURCE_NOT_FOUND, message)
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return IngestError(FailureReason.SOURCE_AUTH_FAILED, message)
    return IngestError(FailureReason.SOURCE_UNAVAILABLE, message)


def _s3_errors(action: str) -> AbstractContextManager[None]:
    return s3.failures(action, _failure)


class S3Store:
    def __init__(
        self, location: S3FileConfig, include: Sequence[str], *, client: S3Client | None = None
    ) -> None:
        self.bucket = location.bucket
        self.folder = location.folder
        self.targets: dict[Outcome, str] = {
            "processed": location.processed_folder,
            "rejected": location.rejected_folder,
        }
        self.include = include
        self.max_bytes = location.max_object_bytes
        self.client = client if client is not None else s3.client(location)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def arrivals(self) -> list[Arrival]:
        found = []
        with _s3_errors(f"ListObjectsV2 {self.uri(self.folder)}"):
            # The delimiter keeps deeper keys out, the processed and rejected prefixes among them when they
            # lie under the incoming one.
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.folder, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.folder) :]
                    if "/" not in name and included(name, self.include):
                        found.append((item["LastModified"], name, item["Size"], item["ETag"]))
        found.sort()
        return [
            Arrival(name, self.uri(self.folder + name), size=size, etag=etag) for _, name, size, etag in found
        ]

    def ready(self, arrival: Arrival) -> bool:
        return True  # a listed object is whole (see the module's documentation)

    @contextlib.contextmanager
    def local(self, arrival: Arrival) -> Iterator[Path]:
        """Downloaded to a private temporary folder (the pod's writable /tmp), block by block so that memory
        stays bounded, under its own name (the readers go by its suffix); removed afterwards. An object listed
        as larger than `maxObjectBytes` is refused (`TooLarge`) before anything is downloaded."""
        if self.max_bytes is not None and arrival.size > self.max_bytes:
            raise TooLarge(arrival.size, self.max_bytes)
        with tempfile.TemporaryDirectory(prefix="headwater-ingest-") as scratch:
            path = Path(scratch) / arrival.name
            with _s3_errors(f"GetObject {arrival.uri}"), path.open("wb") as out:
                # IfMatch: the version listed, or Changed. botocore checks that the body holds all the bytes
                # its Content-Length announced.
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self.folder + arrival.name, IfMatch=arrival.etag
                )
                for block in response["Body"].iter_chunks(DOWNLOAD_BLOCK):
                    out.write(block)
            yield path

    def move(self, arrival: Arrival, outcome: Outcome, note: str | None = None) -> str:
        folder = self.targets[outcome]
        target = folder + free_name(arrival.name, lambda name: self._exists(folder + name))
        source = self.folder + arrival.name
        with _s3_errors(f"CopyObject {arrival.uri} to {self.uri(target)}"):
            # CopySourceIfMatch: a file replaced since it was listed stays for the next scan to load.
            copied = self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=arrival.etag,
            )
        self._verify(target, arrival.size, copied["CopyObjectResult"].get("ETag", ""))
        with _s3_errors(f"DeleteObject {arrival.uri}"):
            self.client.delete_object(Bucket=self.bucket, Key=source)
        if note is not None:
            with _s3_errors(f"PutObject {self.uri(target + NOTE_SUFFIX)}"):
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=target + NOTE_SUFFIX,
                    Body=note.encode(),
                    ContentType="application/json",
                )
        return self.uri(target)

    def _exists(self, key: str) -> bool:
        with _s3_errors(f"HeadObject {self.uri(key)}"):
            return s3.exists(self.client, self.bucket, key)

    def _verify(self, key: str, size: int, etag: str) -> None:
        """The copy is stored whole: its size is the original's, its ETag the one the copy answered."""
        with _s3_errors(f"HeadObject {self.uri(key)}"):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        if head["ContentLength"] != size or head.get("ETag") != etag:
            raise IngestError(
                FailureReason.SOURCE_UNAVAILABLE,
                f"the copy {self.uri(key)} holds {head['ContentLength']} bytes (ETag {head.get('ETag')}), "
                f"not the {size} bytes (ETag {etag}) copied: the original is left in place",
            )
