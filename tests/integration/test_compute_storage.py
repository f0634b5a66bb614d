"""A task's objects on a real S3 protocol server: inputs checked before fetching, outputs all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from headwater_localcluster.services import S3Server
from headwater_worker import s3
from headwater_worker.compute.errors import StorageError, TaskError
from headwater_worker.compute.storage import TaskObjects

pytestmark = pytest.mark.s3


def objects(server: S3Server, bucket: str, client: Any = None) -> TaskObjects:
    location = s3.S3Location(bucket=bucket, endpoint=server.endpoint_url, force_path_style=True)
    return TaskObjects(client or server.client(), location)


def keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_inputs_are_sized_and_a_missing_or_oversized_one_is_named(s3: S3Server, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="in/a.csv", Body=b"x" * 10)
    store = objects(s3, bucket)
    assert store.sizes(["in/a.csv"], max_bytes=10) == [10]
    with pytest.raises(TaskError, match=r"input 'in/b\.csv' does not exist in bucket"):
        store.sizes(["in/a.csv", "in/b.csv"], max_bytes=10)
    with pytest.raises(TaskError, match=r"input 'in/a\.csv' is 10 bytes, more than the limit of 9"):
        store.sizes(["in/a.csv"], max_bytes=9)


def test_published_outputs_reach_their_keys_and_nothing_temporary_stays(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    objects(s3, bucket).publish(
        [(first, "out/1.txt", "text/plain"), (second, "out/2.json", "application/json")],
        {"headwater-task-id": "t"},
    )
    assert keys(s3, bucket) == ["out/1.txt", "out/2.json"]
    head = s3.client().head_object(Bucket=bucket, Key="out/2.json")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"headwater-task-id": "t"}
    assert s3.client().get_object(Bucket=bucket, Key="out/1.txt")["Body"].read() == b"one"


class FailingSecondUpload:
    """The real client, except that its second PutObject is refused as S3 would refuse it."""

    def __init__(self, client: Any) -> None:
        self.client, self.puts = client, 0

    def put_object(self, **arguments: Any) -> Any:
        self.puts += 1
        if self.puts == 2:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your rate"}}, "PutObject"
            )
        return self.client.put_object(**arguments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_failed_upload_publishes_nothing_and_cleans_up(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    store = objects(s3, bucket, FailingSecondUpload(s3.client()))
    with pytest.raises(StorageError, match=r"PutObject of output 'out/2\.txt' failed"):
        store.publish([(first, "out/1.txt", "text/plain"), (second, "out/2.txt", "text/plain")], {})
    # Neither the first output (already uploaded under its temporary key) nor that key is left.
    assert keys(s3, bucket) == []
