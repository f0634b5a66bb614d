"""The S3 store of the file connector against a real S3 protocol endpoint (moto): what it does when an object
changes under it, and that it deletes an original only once its copy is verified."""

from __future__ import annotations

import dataclasses

import pytest
from headwater_localcluster.services import S3Server
from headwater_worker.ingest.config import S3FileConfig
from headwater_worker.ingest.errors import FailureReason, IngestError
from headwater_worker.ingest.stores import Changed, S3Store

pytestmark = [pytest.mark.s3]


def store(s3: S3Server, bucket: str) -> S3Store:
    location = S3FileConfig(
        bucket=bucket,
        prefix="incoming",
        endpoint=s3.endpoint_url,
        force_path_style=True,
        processed_prefix="processed",
        rejected_prefix="rejected",
    )
    return S3Store(location, ["*.csv"], client=s3.client())


def keys(s3: S3Server, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_arrivals_come_oldest_first_with_what_the_listing_says(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="incoming/b.CSV", Body=b"1234")
    client.put_object(Bucket=bucket, Key="incoming/.hidden.csv", Body=b"x")
    client.put_object(Bucket=bucket, Key="incoming/deeper/c.csv", Body=b"x")
    client.put_object(Bucket=bucket, Key="incomingx.csv", Body=b"x")
    [arrival] = store(s3, bucket).arrivals()
    assert (arrival.name, arrival.uri, arrival.size) == ("b.CSV", f"s3://{bucket}/incoming/b.CSV", 4)
    assert arrival.etag


def test_an_object_replaced_after_its_listing_is_left_for_the_next_scan(s3: S3Server, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"first")
    incoming = store(s3, bucket)
    [arrival] = incoming.arrivals()
    s3.client().put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"second version")
    with pytest.raises(Changed), incoming.local(arrival):
        pytest.fail("the replaced object was read")
    assert keys(s3, bucket) == ["incoming/a.csv"]


def test_an_original_is_deleted_only_once_its_copy_is_verified(s3: S3Server, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"id\n1\n")
    incoming = store(s3, bucket)
    [arrival] = incoming.arrivals()
    with incoming.local(arrival) as path:
        assert path.read_bytes() == b"id\n1\n"
        assert path.name == "a.csv"
    assert not path.exists(), "the download is removed once read"

    # A copy that does not hold what was listed (the object changed, on a server that ignores
    # CopySourceIfMatch): the original stays.
    with pytest.raises(IngestError) as failure:
        incoming.move(dataclasses.replace(arrival, size=arrival.size + 1), "processed")
    assert failure.value.reason == FailureReason.SOURCE_UNAVAILABLE
    assert "the original is left in place" in failure.value.message
    assert "incoming/a.csv" in keys(s3, bucket)

    assert incoming.move(arrival, "rejected", '{"reason": "test"}\n') == f"s3://{bucket}/rejected/a.csv"
    assert keys(s3, bucket) == ["processed/a.csv", "rejected/a.csv", "rejected/a.csv.rejected.json"]
