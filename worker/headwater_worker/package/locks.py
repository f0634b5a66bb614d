"""Locks that keep two Jobs from doing the same work at once (one clip of one boundary and dataset version,
one download of one source, one rewrite of one `datapackage.json`).

- On a volume: `flock` on a lock file. The kernel releases it when its holder dies however it dies, so a
  lock is never stale; the file itself stays and means nothing unless locked. Needs a filesystem with
  working locks (local disks, NFSv4, CephFS do).
- On S3: a lock object created with a conditional put (`If-None-Match: *`), which exactly one writer wins.
  The holder renews it (a put conditional on its ETag) every third of its time-to-live; a lock whose last
  renewal is older than its time-to-live, by the S3 server's own clock, belongs to a dead holder and is
  removed with a delete conditional on the ETag that was seen, so that only that stale lock goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import s3
from ..logs import fields
from .errors import FailureReason, PackageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
S3_LOCK_TTL_SECONDS = 120.0
# A conditional write that loses answers 412; one that races another in flight may answer 409.
LOST_RACE = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")

Sleep = Callable[[float], None]


class LockTimeoutError(PackageError):
    def __init__(self, what: str, waited: float) -> None:
        super().__init__(
            FailureReason.LOCK_TIMEOUT, f"{what} is held by another Job; gave up after {waited:.0f} s"
        )


def owner_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def volume_lock(
    path: Path, *, timeout: float, poll: float = POLL_SECONDS, sleep: Sleep = time.sleep
) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited >= timeout:
                    raise LockTimeoutError(f"lock {path.name}", waited) from None
                log.info("waiting for a lock", extra=fields(lock=str(path)))
                sleep(poll)
                waited += poll
        os.ftruncate(fd, 0)
        os.write(fd, owner_id().encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class S3Lock:
    """A lock object at `key`; see the module's description."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        ttl: float = S3_LOCK_TTL_SECONDS,
        poll: float = POLL_SECONDS,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.ttl = ttl
        self.poll = poll
        self.sleep = sleep
        self.owner = owner_id()
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "ttlSeconds": self.ttl}).encode()

    def _failures(self, action: str) -> contextlib.AbstractContextManager[None]:
        return s3.failures(
            f"{action} {self.key}",
            lambda message, _: PackageError(FailureReason.STORAGE_UNAVAILABLE, message),
        )

    def try_acquire(self) -> bool:
        from botocore.exceptions import ClientError

        with self._failures("PutObject"):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*"
                )
            except ClientError as error:
                if s3.error_code(error) in LOST_RACE:
                    return False
                raise
        self._etag = response["ETag"]
        return True

    def break_if_stale(self) -> bool:
        """Remove the lock object when its holder stopped renewing it; True when it is gone."""
        from botocore.exceptions import ClientError

        with self._failures("GetObject"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key)
            except ClientError as error:
                if s3.is_not_found(error):
                    return True
                raise
            body = response["Body"].read()
        try:
            ttl = float(json.loads(body).get("ttlSeconds", self.ttl))
        except (ValueError, AttributeError, TypeError):
            ttl = self.ttl
        server_now = _server_time(response["ResponseMetadata"]["HTTPHeaders"].get("date"))
        age = (server_now - response["LastModified"]).total_seconds() if server_now else 0.0
        if age <= ttl:
            return False
        log.warning("removing a stale lock", extra=fields(lock=self.key, ageSeconds=round(age)))
        with self._failures("DeleteObject"):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=response["ETag"])
            except ClientError as error:
                # Renewed or replaced in the meantime (not stale after all), or removed by another Job.
                if s3.error_code(error) not in LOST_RACE and not s3.is_not_found(error):
                    raise
        return True

    def acquire(self, timeout: float) -> None:
        waited = 0.0
        while not self.try_acquire():
            if self.break_if_stale():
                continue
            if waited >= timeout:
                raise LockTimeoutError(f"lock s3://{self.bucket}/{self.key}", waited)
            log.info("waiting for a lock", extra=fields(lock=self.key))
            self.sleep(self.poll)
            waited += self.poll
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="s3-lock", daemon=True)
        self._renewer.start()

    def renew(self) -> None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), IfMatch=self._etag or "*"
            )
        except ClientError as error:
            if s3.error_code(error) in LOST_RACE or s3.is_not_found(error):
                self.lost = True
                log.error("the lock was taken over by another Job", extra=fields(lock=self.key))
                return
            log.warning("could not renew the lock", extra=fields(lock=self.key, error=str(error)))
            return
        self._etag = response["ETag"]

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl / 3) and not self.lost:
            self.renew()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self.lost or self._etag is None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)
        except Exception as error:
            log.warning(
                "could not remove the lock; it expires on its own",
                extra=fields(lock=self.key, error=str(error)),
            )
        self._etag = None

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()


def _server_time(date_header: str | None) -> datetime | None:
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
