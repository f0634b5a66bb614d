"""A processor's source data: where it is (a URL or an S3 object), what it is now (its identity, part of
the inputs hash), and a local copy to read, downloaded once into the cache when there is one.

The cache keeps each source at `sources/<id>/<file name>` with `sources/<id>/identity.json` beside it, `<id>`
derived from the source's URI. A cached copy whose identity differs from the source's (a new ETag, size or
modification time) is replaced. The download holds the lock `sources/<id>`, so two Jobs needing the same
source download it once: the second waits, then finds it cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from .. import s3
from ..logs import fields, redact_dsn
from .errors import FailureReason, PackageError
from .storage import Storage

log = logging.getLogger(__name__)

HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
HTTP_RETRIES = 3  # connection failures only; the Job's backoffLimit retries the rest
DOWNLOAD_CHUNK = 1024 * 1024
CACHE_FOLDER = "sources"
IDENTITY_FILE = "identity.json"


class SourceUnavailableError(PackageError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.SOURCE_UNAVAILABLE, message)


class S3Object(BaseModel):
    """One object in a bucket, and how to reach the bucket (credentials from the environment)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, StringConstraints(min_length=1)]
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    region: str = "us-east-1"
    force_path_style: bool = False

    def location(self) -> s3.S3Location:
        return s3.S3Location(
            bucket=self.bucket,
            endpoint=self.endpoint,
            region=self.region,
            force_path_style=self.force_path_style,
        )


class SourceRef(BaseModel):
    """Exactly one of `url` or `s3`; `member` picks a file inside a zip archive."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    s3: S3Object | None = None
    member: str | None = Field(default=None, description="path of the file inside a zip archive source")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.url is None) == (self.s3 is None):
            raise ValueError("a source needs exactly one of `url` or `s3`")
        return self

    @property
    def uri(self) -> str:
        if self.s3 is not None:
            return f"s3://{self.s3.bucket}/{self.s3.key}"
        assert self.url is not None
        return self.url

    @property
    def shown(self) -> str:
        """The URI fit for a message: any password in it replaced."""
        return redact_dsn(self.uri)

    @property
    def file_name(self) -> str:
        path = self.s3.key if self.s3 is not None else urllib.parse.urlsplit(self.uri).path
        return PurePosixPath(path).name or "source"

    def gdal_path(self, local: Path) -> str:
        """How GDAL opens the local copy: the file, or the member inside the archive."""
        if self.member:
            return f"/vsizip/{local}/{self.member.lstrip('/')}"
        return str(local)


@dataclass(frozen=True)
class SourceIdentity:
    """What the source says it is now; a change of any part regenerates the outputs made from it."""

    uri: str
    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _http_client() -> httpx.Client:
    return httpx.Client(
        timeout=HTTP_TIMEOUT, follow_redirects=True, transport=httpx.HTTPTransport(retries=HTTP_RETRIES)
    )


def _http_identity(url: str, response: httpx.Response) -> SourceIdentity:
    length = response.headers.get("content-length")
    return SourceIdentity(
        uri=url,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        size=int(length) if length and length.isdigit() else None,
    )


class Sources:
    """Identify and fetch sources, through the cache when there is one."""

    def __init__(self, scratch: Path, cache: Storage | None = None, *, lock_timeout: float = 3600) -> None:
        self.scratch = scratch
        self.cache = cache
        self.lock_timeout = lock_timeout

    # -- identity -------------------------------------------------------------------------------------

    def identify(self, ref: SourceRef) -> SourceIdentity:
        if ref.s3 is not None:
            return self._s3_identity(ref)
        assert ref.url is not None
        try:
            with _http_client() as client:
                response = client.head(ref.url)
                if response.status_code in (405, 501):
                    with client.stream("GET", ref.url) as streamed:
                        response = streamed
                self._raise_for_status(ref, response)
                return _http_identity(ref.url, response)
        except httpx.HTTPError as error:
            raise SourceUnavailableError(
                f"source {ref.shown} is unreachable: {_http_reason(error)}"
            ) from error

    def _s3_identity(self, ref: SourceRef) -> SourceIdentity:
        assert ref.s3 is not None
        client = s3.client(ref.s3.location())
        with s3.failures(f"HeadObject {ref.shown}", self._s3_unavailable(ref)):
            head = client.head_object(Bucket=ref.s3.bucket, Key=ref.s3.key)
        return SourceIdentity(
            uri=ref.uri,
            etag=head.get("ETag"),
            last_modified=head["LastModified"].isoformat() if "LastModified" in head else None,
            size=head.get("ContentLength"),
        )

    @staticmethod
    def _s3_unavailable(ref: SourceRef) -> Any:
        def fail(message: str, error: Exception) -> PackageError:
            if s3.is_not_found(error):
                return SourceUnavailableError(f"source {ref.shown} does not exist")
            return SourceUnavailableError(f"source {ref.shown} is unreachable: {message}")

        return fail

    @staticmethod
    def _raise_for_status(ref: SourceRef, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise SourceUnavailableError(
                f"source {ref.shown} answered {response.status_code} {response.reason_phrase}"
            )

    # -- fetching -------------------------------------------------------------------------------------

    def fetch(self, ref: SourceRef, identity: SourceIdentity) -> Path:
        """A local copy of the source as `identity` describes it."""
        if self.cache is None:
            return self._download(ref, self._scratch_file(ref))
        entry = f"{CACHE_FOLDER}/{hashlib.sha256(ref.uri.encode()).hexdigest()[:24]}"
        cached = self._cached(entry, ref, identity)
        if cached is not None:
            return cached
        with self.cache.lock(entry, self.lock_timeout):
            # Another Job may have downloaded it while this one waited.
            cached = self._cached(entry, ref, identity)
            if cached is not None:
                return cached
            local = self._download(ref, self._scratch_file(ref))
            cached_path = f"{entry}/{ref.file_name}"
            self.cache.put_file(local, cached_path, "application/octet-stream")
            # The identity last: a cached copy is trusted only once it is complete.
            self.cache.put_bytes(
                json.dumps(identity.as_dict()).encode(), f"{entry}/{IDENTITY_FILE}", "application/json"
            )
            log.info("source cached", extra=fields(source=ref.shown, entry=entry))
        in_place = self.cache.local_path(cached_path)
        if in_place is None:
            return local
        local.unlink()  # a volume cache is read in place: no second copy in scratch
        return in_place

    def _cached(self, entry: str, ref: SourceRef, identity: SourceIdentity) -> Path | None:
        """The cached copy when the cache holds this identity of the source; local for reading."""
        assert self.cache is not None
        stored = self.cache.read_bytes(f"{entry}/{IDENTITY_FILE}")
        if stored is None:
            return None
        try:
            if json.loads(stored) != identity.as_dict():
                return None
        except ValueError:
            return None
        path = f"{entry}/{ref.file_name}"
        in_place = self.cache.local_path(path)
        if in_place is not None:
            return in_place if in_place.is_file() else None
        if not self.cache.exists(path):
            return None
        local = self._scratch_file(ref)
        self.cache.download(path, local)
        log.info("source taken from the cache", extra=fields(source=ref.shown, entry=entry))
        return local

    def _scratch_file(self, ref: SourceRef) -> Path:
        folder = self.scratch / "sources" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / ref.file_name

    def _download(self, ref: SourceRef, local: Path) -> Path:
        log.info("downloading a source", extra=fields(source=ref.shown))
        if ref.s3 is not None:
            client = s3.client(ref.s3.location())
            with s3.failures(f"GetObject {ref.shown}", self._s3_unavailable(ref)), local.open("wb") as out:
                body = client.get_object(Bucket=ref.s3.bucket, Key=ref.s3.key)["Body"]
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                    out.write(chunk)
            return local
        assert ref.url is not None
        written = 0
        try:
            with _http_client() as http, http.stream("GET", ref.url) as response:
                self._raise_for_status(ref, response)
                expected = _http_identity(ref.url, response).size
                with local.open("wb") as out:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
        except httpx.HTTPError as error:
            raise SourceUnavailableError(
                f"source {ref.shown} is unreachable: {_http_reason(error)}"
            ) from error
        if expected is not None and written != expected:
            raise SourceUnavailableError(f"source {ref.shown} ended after {written} of {expected} bytes")
        return local


def _http_reason(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]
