"""`python -m headwater_worker ingest run|migrate` as a Job's pod runs it: configured by its environment,
reporting in its termination message, exiting non-zero with a reason on failure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from headwater_localcluster.services import S3Server, free_port
from headwater_worker.ingest.config import IngestConfig

pytestmark = [pytest.mark.postgres]

PASSWORD_MARK = "tago-token-never-shown-3e1"
AWS_SECRET = "aws-secret-never-shown-5c2"
BAD = b"Hourly\n1\n2\n"  # no time column
CSV = "Date and Time,Hourly\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n"


def worker(action: str, env: dict[str, str], tmp_path: Path) -> tuple[int, dict[str, Any], str, str]:
    log = tmp_path / "termination-log"
    log.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "headwater_worker", "ingest", action],
        env={**os.environ, "HEADWATER_TERMINATION_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = log.read_text()
    return result.returncode, json.loads(text) if text else {}, result.stdout, result.stderr


def file_config(tmp_path: Path, mapping: str = "energy_hourly") -> str:
    return IngestConfig.model_validate(
        {
            "connector": "team/meter",
            "type": "file",
            "mapping": {"name": mapping},
            "datasourceId": "meter-1",
            "file": {
                "path": str(tmp_path / "in"),
                "processedPath": str(tmp_path / "done"),
                "rejectedPath": str(tmp_path / "bad"),
                "stableSeconds": 0,
            },
        }
    ).to_env()


def test_a_run_reports_its_figures_in_the_termination_message(database: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("Date and Time,Hourly\n2024-01-01 00:00,1\n2024-01-01 01:00,x\n")
    env = {"HEADWATER_INGEST_CONFIG": file_config(tmp_path), "DATABASE_URL": database}
    code, message, stdout, _ = worker("run", env, tmp_path)
    assert code == 0
    assert message["rowsLoaded"] == 1
    assert message["rowsRejected"] == 1
    assert message["batches"] == 1
    assert message["qualityScore"] == 0.5
    assert message["lastBatchId"]
    assert message["run"] == {
        "batches": 1,
        "rowsLoaded": 1,
        "rowsRejected": 1,
        "duplicates": 0,
        "rejectedInputs": 0,
        "stagingRowsPruned": 0,
    }
    [line] = [json.loads(text) for text in stdout.splitlines()]
    assert line["status"] == "loaded"


def test_migrate_is_idempotent(database: str, tmp_path: Path) -> None:
    for _ in range(2):
        code, _, stdout, _ = worker("migrate", {"DATABASE_URL": database}, tmp_path)
        assert code == 0
        assert json.loads(stdout) == {"revision": "0002"}


@pytest.mark.parametrize(
    ("env", "reason", "says"),
    [
        ({}, "ConfigurationError", "HEADWATER_INGEST_CONFIG is not set"),
        ({"HEADWATER_INGEST_CONFIG": "{}"}, "ConfigurationError", "connector: Field required"),
        ({"MAPPING": "nope"}, "MappingInvalid", "no mapping named 'nope'"),
        (
            {"DATABASE_URL": "postgresql://u:secret-pw@127.0.0.1:9/x"},
            "DatabaseUnavailable",
            "migration failed",
        ),
    ],
)
def test_failures_exit_non_zero_with_a_reason(
    database: str, tmp_path: Path, env: dict[str, str], reason: str, says: str
) -> None:
    (tmp_path / "in").mkdir()
    full = {
        "HEADWATER_INGEST_CONFIG": file_config(tmp_path, env.pop("MAPPING", "energy_hourly")),
        "DATABASE_URL": database,
    }
    if "HEADWATER_INGEST_CONFIG" not in env and reason == "ConfigurationError":
        full.pop("HEADWATER_INGEST_CONFIG")
    full.update(env)
    code, message, _, stderr = worker("run", full, tmp_path)
    assert code == 1
    assert message["error"]["reason"] == reason
    assert says in message["error"]["message"]
    assert "secret-pw" not in json.dumps(message) + stderr


def test_credentials_never_reach_logs_or_the_message(database: str, tmp_path: Path) -> None:
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    (secrets / "token").write_text(PASSWORD_MARK)
    config = IngestConfig.model_validate(
        {
            "connector": "team/tago",
            "type": "tago",
            "mapping": {"name": "api_energy_hourly"},
            "http": {"baseUrl": "http://127.0.0.1:9", "maxRetries": 0, "timeoutSeconds": 1},
        }
    ).to_env()
    env = {
        "HEADWATER_INGEST_CONFIG": config,
        "DATABASE_URL": database,
        "HEADWATER_CREDENTIALS_DIR": str(secrets),
    }
    code, message, stdout, stderr = worker("run", env, tmp_path)
    assert code == 1
    assert message["error"]["reason"] == "SourceUnavailable"
    assert PASSWORD_MARK not in json.dumps(message) + stdout + stderr


# -- S3 file sources ---------------------------------------------------------------------------------------


def s3_env(
    endpoint: str, bucket: str, database: str, prefix: str = "incoming", max_object_bytes: int | None = None
) -> dict[str, str]:
    """The environment of an S3 file connector's pod: the config, the DSN and the access key pair."""
    config = IngestConfig.model_validate(
        {
            "connector": "team/meter",
            "type": "file",
            "mapping": {"name": "energy_hourly"},
            "datasourceId": "meter-1",
            "file": {
                "s3": {
                    "bucket": bucket,
                    "prefix": prefix,
                    "endpoint": endpoint,
                    "forcePathStyle": True,
                    "processedPrefix": "processed",
                    "rejectedPrefix": "rejected",
                    "maxObjectBytes": max_object_bytes,
                }
            },
        }
    ).to_env()
    return {
        "HEADWATER_INGEST_CONFIG": config,
        "DATABASE_URL": database,
        "AWS_ACCESS_KEY_ID": "headwater-test",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        # Nothing of the machine's own AWS set-up may change what the worker does.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def objects(s3: S3Server, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}


@pytest.mark.s3
def test_an_s3_object_is_loaded_then_moved_to_processed_and_again_is_a_duplicate(
    database: str, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    client = s3.client()
    # At the bucket's root, the processed and rejected prefixes lie inside the incoming one.
    client.put_object(Bucket=bucket, Key="a.csv", Body=CSV.encode())
    client.put_object(Bucket=bucket, Key="notes.txt", Body=b"not a data file")
    client.put_object(Bucket=bucket, Key="archive/b.csv", Body=CSV.encode())
    env = s3_env(s3.endpoint_url, bucket, database, prefix="")
    code, message, stdout, stderr = worker("run", env, tmp_path)
    assert code == 0, stderr
    assert (message["rowsLoaded"], message["batches"]) == (2, 1)
    [line] = [json.loads(text) for text in stdout.splitlines()]
    assert (line["status"], line["source"]) == ("loaded", f"s3://{bucket}/a.csv")
    assert objects(s3, bucket) == {
        "archive/b.csv": CSV.encode(),
        "notes.txt": b"not a data file",
        "processed/a.csv": CSV.encode(),
    }, "only direct objects matching include are read; nothing else is touched"

    # The same content again: a duplicate, moved aside under a new name, nothing loaded.
    client.put_object(Bucket=bucket, Key="a.csv", Body=CSV.encode())
    code, message, stdout, stderr = worker("run", env, tmp_path)
    assert code == 0, stderr
    assert (message["rowsLoaded"], message["batches"]) == (2, 1)
    assert message["run"]["duplicates"] == 1
    assert [json.loads(text)["status"] for text in stdout.splitlines()] == ["duplicate"]
    [again] = [
        key for key in objects(s3, bucket) if key.startswith("processed/") and key != "processed/a.csv"
    ]
    assert re.fullmatch(r"processed/a\.\d{8}T\d{12}Z\.csv", again), "a name already taken gets a timestamp"
    assert "a.csv" not in objects(s3, bucket)
    assert AWS_SECRET not in stdout + stderr


@pytest.mark.s3
def test_a_bad_s3_object_is_moved_to_rejected_with_its_reason(
    database: str, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="incoming/no-time.csv", Body=BAD)
    code, message, _, stderr = worker("run", s3_env(s3.endpoint_url, bucket, database), tmp_path)
    assert code == 0, f"a refused file is an outcome, not a failure: {stderr}"
    assert message["run"]["rejectedInputs"] == 1
    stored = objects(s3, bucket)
    assert sorted(stored) == ["rejected/no-time.csv", "rejected/no-time.csv.rejected.json"]
    assert stored["rejected/no-time.csv"] == BAD
    note = json.loads(stored["rejected/no-time.csv.rejected.json"])
    assert (note["file"], note["reason"]) == ("no-time.csv", "MissingColumns")
    assert note["batchId"]
    assert note["rejectedAt"]


@pytest.mark.s3
def test_an_s3_object_over_the_size_limit_is_rejected_unread_and_the_next_one_loads(
    database: str, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    client = s3.client()
    big = (CSV + "".join(f"2024-01-02 {h:02d}:00,{h}\n" for h in range(24))).encode()
    limit = len(CSV.encode()) + 10
    assert len(big) > limit
    # Listed first (older, or of the same second and first by name): what comes after it still loads.
    client.put_object(Bucket=bucket, Key="incoming/big.csv", Body=big)
    client.put_object(Bucket=bucket, Key="incoming/later.csv", Body=CSV.encode())
    env = s3_env(s3.endpoint_url, bucket, database, max_object_bytes=limit)
    code, message, stdout, stderr = worker("run", env, tmp_path)
    assert code == 0, f"an oversized object is an outcome, not a failure: {stderr}"
    assert (message["rowsLoaded"], message["batches"]) == (2, 1)
    assert [json.loads(text)["source"] for text in stdout.splitlines()] == [
        f"s3://{bucket}/incoming/later.csv"
    ]
    stored = objects(s3, bucket)
    assert sorted(stored) == ["processed/later.csv", "rejected/big.csv", "rejected/big.csv.rejected.json"]
    assert stored["rejected/big.csv"] == big
    note = json.loads(stored["rejected/big.csv.rejected.json"])
    assert (note["file"], note["reason"], note["batchId"]) == ("big.csv", "FileTooLarge", None)
    assert f"{len(big)} bytes" in note["message"]
    assert f"{limit} bytes" in note["message"]


@pytest.mark.s3
def test_an_unreachable_s3_endpoint_fails_clearly_and_deletes_nothing(
    database: str, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    s3.client().put_object(Bucket=bucket, Key="incoming/a.csv", Body=CSV.encode())
    closed = f"http://127.0.0.1:{free_port()}"
    code, message, _, stderr = worker("run", s3_env(closed, bucket, database), tmp_path)
    assert code == 1
    assert message["error"]["reason"] == "SourceUnavailable"
    assert f"S3 ListObjectsV2 s3://{bucket}/incoming/ failed" in message["error"]["message"]
    assert closed in message["error"]["message"]
    assert AWS_SECRET not in json.dumps(message) + stderr

    missing = worker("run", s3_env(s3.endpoint_url, "no-such-bucket", database), tmp_path)[1]
    assert missing["error"]["reason"] == "SourceNotFound"
    assert "NoSuchBucket" in missing["error"]["message"]
    assert objects(s3, bucket) == {"incoming/a.csv": CSV.encode()}
