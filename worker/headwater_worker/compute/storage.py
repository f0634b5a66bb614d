"""A task's objects on S3: inputs checked before anything is fetched, outputs published all or nothing.

Outputs are uploaded under temporary keys first and copied to their final keys only once every one of
them is stored, so a task that fails half-way leaves no output behind, and a client never reads a
half-written object at a final key.
"""

from __future__ import annotations

import contextlib
import mimetypes
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .. import s3
from .errors import StorageError, TaskError
from .protocol import MIME_TYPES, FieldDescription, MimeType

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TEMPORARY_PREFIX = ".headwater-tmp"
COPY_CHUNK = 1 << 20
# What a key's extension says of its content, for the types of the protocol; `mimetypes` knows the rest.
EXTENSION_TYPES: dict[str, MimeType] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
}
TYPE_EXTENSIONS: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
}


def mime_type_of(key: str) -> MimeType | None:
    """The protocol's MIME type of a key, from its extension (as the Core engine's services infer it)."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix in EXTENSION_TYPES:
        return EXTENSION_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(f"x{suffix}")
    return next((t for t in MIME_TYPES if t == guessed), None)


def output_key(task_id: str, field: str, mime_type: str) -> str:
    """Where an output goes when the task names no `data_out`: under a folder of the task's id."""
    return f"{task_id}/{field}{TYPE_EXTENSIONS.get(mime_type, '')}"


@dataclass(frozen=True)
class CheckedInput:
    key: str
    field: FieldDescription
    mime_type: MimeType
    size: int


def match_fields(keys: Sequence[str], fields: Sequence[FieldDescription], what: str) -> None:
    if len(keys) != len(fields):
        names = ", ".join(f.name for f in fields) or "none"
        raise TaskError(f"the service takes {len(fields)} {what} ({names}), the task gives {len(keys)}")


def input_types(keys: Sequence[str], fields: Sequence[FieldDescription]) -> list[MimeType]:
    """Each input's type, one its field accepts; inputs map to the service's fields by position."""
    match_fields(keys, fields, "inputs")
    types: list[MimeType] = []
    for key, field in zip(keys, fields, strict=True):
        mime_type = mime_type_of(key)
        if mime_type is None or mime_type not in field.type:
            found = mime_type or f"unknown (extension {PurePosixPath(key).suffix or 'none'})"
            raise TaskError(f"input {key!r} is {found}: field {field.name!r} takes {', '.join(field.type)}")
        types.append(mime_type)
    return types


class TaskObjects:
    """The task's bucket, through one client."""

    def __init__(self, client: S3Client, location: s3.S3Location) -> None:
        self.client = client
        self.bucket = location.bucket

    def sizes(self, keys: Sequence[str], max_bytes: int) -> list[int]:
        """Each input's size; a missing or oversized one is a `TaskError` naming it."""
        sizes = []
        for key in keys:
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as error:
                if s3.is_not_found(error):
                    raise TaskError(f"input {key!r} does not exist in bucket {self.bucket!r}") from None
                raise StorageError(f"S3 HeadObject of input {key!r} failed: {error}") from error
            size = int(head.get("ContentLength") or 0)
            if size > max_bytes:
                raise TaskError(f"input {key!r} is {size} bytes, more than the limit of {max_bytes}")
            sizes.append(size)
        return sizes

    def download(self, key: str, path: Path) -> None:
        with (
            s3.failures(f"GetObject of input {key!r}", lambda message, _: StorageError(message)),
            path.open("wb") as local,
        ):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            shutil.copyfileobj(body, local, COPY_CHUNK)

    def publish(self, outputs: Sequence[tuple[Path, str, str]], metadata: dict[str, str]) -> None:
        """Upload `(path, key, content type)` outputs under temporary keys, then copy each to its key.

        On any failure the temporary objects are removed and nothing reaches a final key that was not
        there before (a failure among the copies, which S3 cannot make atomic, may leave the earlier
        ones in place)."""
        run = uuid.uuid4().hex
        staged: list[tuple[str, str, str]] = []
        try:
            for index, (path, key, content_type) in enumerate(outputs):
                temporary = f"{TEMPORARY_PREFIX}/{run}/{index}"
                with (
                    s3.failures(f"PutObject of output {key!r}", lambda message, _: StorageError(message)),
                    path.open("rb") as body,
                ):
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=temporary,
                        Body=body,
                        ContentType=content_type,
                        Metadata=metadata,
                    )
                staged.append((temporary, key, content_type))
            for temporary, key, _ in staged:
                with s3.failures(f"CopyObject to output {key!r}", lambda message, _: StorageError(message)):
                    self.client.copy_object(
                        Bucket=self.bucket,
                        Key=key,
                        CopySource={"Bucket": self.bucket, "Key": temporary},
                        MetadataDirective="COPY",
                    )
        finally:
            self._remove([temporary for temporary, _, _ in staged])

    def _remove(self, keys: Sequence[str]) -> None:
        for key in keys:
            # A temporary object left over is harmless; the task's own outcome is what matters.
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=key)
