"""What the workers share of S3: the location the operator hands over, the client, and botocore's failures.

A location never holds a secret: botocore reads `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the
environment (the operator fills them from a Secret with `secretKeyRef`), else the pod's ambient
credentials. botocore itself is imported only when a client is made or a failure examined, so that the
configuration models stay cheap to import (the operator imports them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from .logs import redact

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_ATTEMPTS = 5  # botocore's standard mode: exponential backoff with jitter between attempts
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def redact_credentials(env: Mapping[str, str]) -> None:
    """Keep the secret parts of the environment's credentials out of every log line and message."""
    for name in SECRET_ENV:
        redact.add(env.get(name))


def _url_text(value: object) -> object:
    """Accept URL objects (pydantic's HttpUrl, as the operator's models hold) as their text, without the
    trailing slash such objects add."""
    if value is None or isinstance(value, str):
        return value
    return str(value).rstrip("/")


def key_folder(prefix: str) -> str:
    """A key prefix as a folder: `a/b` and `a/b/` are `a/b/`, an empty prefix the bucket's root."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


class S3Location(BaseModel):
    """A key prefix in a bucket, and how to reach the bucket."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: str = Field(
        default="", description="folder inside the bucket; no leading or trailing slash needed"
    )
    endpoint: (
        Annotated[str, BeforeValidator(_url_text), StringConstraints(pattern=r"^https?://\S+$")] | None
    ) = Field(default=None, description="S3 protocol endpoint (MinIO, Ceph, ...); AWS when absent")
    region: str = "us-east-1"
    force_path_style: bool = Field(
        default=False, description="address objects as `<endpoint>/<bucket>/<key>` (MinIO, Ceph, ...)"
    )

    @property
    def folder(self) -> str:
        """The prefix as a key folder: `a/b/` (or empty)."""
        return key_folder(self.prefix)


def client(location: S3Location) -> S3Client:
    # botocore's own session: what boto3.client() would build, without importing boto3's transfer manager
    # and resources (some 50 ms at every start, for nothing the workers use).
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 120,
    }
    if location.force_path_style:
        options["s3"] = {"addressing_style": "path"}
    created = botocore.session.get_session().create_client(
        "s3", endpoint_url=location.endpoint, region_name=location.region, config=Config(**options)
    )
    return cast("S3Client", created)


def error_code(error: Exception) -> str:
    """The S3 error code of a failed request (`NoSuchKey`, `AccessDenied`, `412`, ...); empty for a
    failure that got no answer (connection refused, time-out)."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return ""
    return str(error.response.get("Error", {}).get("Code", ""))


def is_not_found(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in ("404", "NoSuchKey", "NotFound") or status == 404


def exists(client: S3Client, bucket: str, key: str) -> bool:
    """HeadObject: False when the key is missing; another failure raises botocore's error."""
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


@contextlib.contextmanager
def failures(action: str, fail: Callable[[str, Exception], Exception]) -> Iterator[None]:
    """Turn botocore's failures of `action` into the worker's own error, `fail(message, error)`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise fail(f"S3 {action} failed: {error}", error) from error
