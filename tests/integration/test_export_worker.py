"""`python -m headwater_worker export` against a real PostgreSQL and a real S3 protocol endpoint (moto).

The worker runs as a subprocess configured through its environment, as in a Job's Pod.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_localcluster.services import S3Server, free_port
from headwater_worker.export.config import delete_key, select_key
from headwater_worker.export.naming import file_name, parse_file_name
from psycopg.conninfo import conninfo_to_dict

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

AWS_SECRET = "aws-secret-never-shown-7f3a9c"
# Linux carries a process's peak RSS across fork and exec, so a child forked from this (large) test
# process would report our peak as its own. A small launcher forks the worker and reports the worker's.
MEASURING_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
PREFIX = "exports/daily"
MIB = 1024 * 1024


# -- running the worker ------------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    message: dict[str, Any]
    max_rss_mib: float

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def reason(self) -> str | None:
        error = self.message.get("error")
        return None if error is None else str(error["reason"])

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    folder: Path
    secrets: tuple[str, ...]

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 180.0) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"the worker did not finish in {timeout}s:\n{self._read('stderr')}")
            time.sleep(0.05)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = self._read("stdout"), self._read("stderr")
        termination = self._read("termination-log")
        measured = self._read("max-rss-kib")
        max_rss_kib = int(measured) if measured else usage.ru_maxrss
        for secret in self.secrets:
            for name, text in (("stdout", stdout), ("stderr", stderr), ("termination message", termination)):
                assert secret not in text, f"a secret appeared in the worker's {name}"
        if termination:
            assert len(termination.encode()) <= 4096
        return Run(
            returncode=self.process.returncode,
            stdout=stdout,
            stderr=stderr,
            message=json.loads(termination) if termination else {},
            max_rss_mib=max_rss_kib / 1024,
        )

    def _read(self, name: str) -> str:
        path = self.folder / name
        return path.read_text() if path.exists() else ""


class Exporter:
    """Starts the worker with a DSN, the session's S3 endpoint and a configuration."""

    def __init__(self, tmp_path: Path, dsn: str, s3: S3Server) -> None:
        self.tmp_path = tmp_path
        self.dsn = dsn
        self.s3 = s3
        self.runs = 0

    def start(
        self, config: dict[str, Any], *, dsn: str | None = None, measure_memory: bool = False
    ) -> Worker:
        self.runs += 1
        folder = self.tmp_path / f"run-{self.runs}"
        folder.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "DATABASE_"))}
        dsn = self.dsn if dsn is None else dsn
        env.update(
            {
                "HEADWATER_EXPORT_CONFIG": json.dumps(config),
                "DATABASE_URL": dsn,
                "AWS_ACCESS_KEY_ID": "headwater-test",
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "HEADWATER_TERMINATION_LOG": str(folder / "termination-log"),
            }
        )
        password = conninfo_to_dict(dsn).get("password")
        with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
            argv = [sys.executable, "-m", "headwater_worker", "export"]
            if measure_memory:
                argv = [sys.executable, "-c", MEASURING_LAUNCHER, str(folder / "max-rss-kib"), *argv]
            process = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        secrets = (AWS_SECRET, dsn, *([str(password)] if password else []))
        return Worker(process, folder, secrets)

    def run(self, config: dict[str, Any], **kwargs: Any) -> Run:
        return self.start(config, **kwargs).wait()


@pytest.fixture
def exporter(tmp_path: Path, database: str, s3: S3Server) -> Iterator[Exporter]:
    yield Exporter(tmp_path, database, s3)
    # A worker killed while its query slept leaves a backend behind until the sleep ends.
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'headwater-export' AND datname = current_database()"
        )


def s3_config(s3: S3Server | str, bucket: str, tasks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    endpoint = s3 if isinstance(s3, str) else s3.endpoint_url
    return {
        "tasks": tasks,
        "destination": {
            "s3": {
                "bucket": bucket,
                "prefix": PREFIX,
                "endpoint": endpoint,
                "region": "us-east-1",
                "partSizeMiB": 5,
            }
        },
        "exportJob": "data/nightly",
        **extra,
    }


# -- database helpers --------------------------------------------------------------------------------------


def sql(dsn: str, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    """Run test SQL (several statements when without parameters); the last result's rows."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def count(dsn: str, table: str) -> int:
    return int(sql(dsn, f"SELECT count(*) FROM {table}")[0][0])


def copy_out(dsn: str, query: str) -> bytes:
    statement = f"COPY ({query}) TO STDOUT WITH CSV HEADER"
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor, cursor.copy(statement) as copy:
        return b"".join(bytes(block) for block in copy)


def create_agency(dsn: str, rows: int = 100) -> None:
    sql(
        dsn,
        f"""
        CREATE TABLE agency (id int PRIMARY KEY, name text, note text, score numeric, seen timestamptz);
        INSERT INTO agency
        SELECT g,
               'agency ' || g,
               CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN 'multi' || E'\\n' || 'line, "quoted"'
                          WHEN 2 THEN 'ünïcødé ✓' ELSE '' END,
               g / 7.0,
               timestamptz '2025-01-01 00:00:00+00' + g * interval '1 hour'
        FROM generate_series(1, {int(rows)}) AS g;
        """,
    )


def create_big(dsn: str, rows: int) -> None:
    """Rows of unrelated hex digests: about 140 bytes each, compressing to roughly half (5 MiB ≈ 75k rows)."""
    sql(
        dsn,
        f"""
        CREATE TABLE big (id int PRIMARY KEY, a text, b text, c text, d text);
        INSERT INTO big
        SELECT g, md5('a' || g), md5('b' || g), md5('c' || g), md5('d' || g)
        FROM generate_series(1, {int(rows)}) AS g;
        CREATE FUNCTION pause_at(row_id int, at int, seconds float) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            IF row_id = at THEN PERFORM pg_sleep(seconds); END IF;
            RETURN true;
        END $$;
        """,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def lock_waiters(dsn: str, key: int) -> int:
    rows = sql(
        dsn,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (key,),
    )
    return int(rows[0][0])


@contextlib.contextmanager
def advisory_lock(dsn: str, key: int) -> Iterator[None]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# -- S3 helpers ---------------------------------------------------------------------------------------------


def keys(s3: S3Server, bucket: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def read(s3: S3Server, bucket: str, key: str) -> bytes:
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def multipart_uploads(s3: S3Server, bucket: str) -> list[dict[str, Any]]:
    uploads: list[Any] = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


def uploaded_parts(s3: S3Server, bucket: str) -> int:
    client = s3.client()
    total = 0
    for upload in multipart_uploads(s3, bucket):
        parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        total += len(parts.get("Parts", []))
    return total


# -- tests --------------------------------------------------------------------------------------------------


def test_export_is_exactly_copy_output_then_rows_are_deleted(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=1000)
    query = "SELECT * FROM agency ORDER BY id"
    expected = copy_out(database, query)
    before = datetime.now(UTC).replace(microsecond=0)

    run = exporter.run(
        s3_config(s3, bucket, [{"name": "agency", "select": query, "delete": "DELETE FROM agency"}])
    )

    assert run.returncode == 0, run.stderr
    [key] = keys(s3, bucket)
    assert key.startswith(f"{PREFIX}/agency-")
    stamp = parse_file_name("agency", key.removeprefix(f"{PREFIX}/"))
    assert stamp is not None
    assert before <= stamp <= datetime.now(UTC)
    body = read(s3, bucket, key)
    assert gzip.decompress(body) == expected
    assert count(database, "agency") == 0

    [line] = run.lines
    assert line["name"] == "agency"
    assert line["rows"] == 1000
    assert line["deleted"] == 1000
    assert line["bytes"] == len(body)
    assert line["uri"] == f"s3://{bucket}/{key}"
    assert run.message == {"tasks": [{k: line[k] for k in line if k != "deleted"}]}
    assert set(run.message["tasks"][0]) == {"name", "rows", "bytes", "uri", "durationSeconds", "finishedAt"}
    head = s3.client().head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"headwater-export-job": "data/nightly"}
    assert all(entry["level"] in ("info", "warning") for entry in run.logs())


def test_a_task_without_delete_keeps_its_rows_and_runs_read_only(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=10)
    ok = exporter.run(s3_config(s3, bucket, [{"name": "agency", "select": "SELECT id FROM agency"}]))
    assert ok.returncode == 0, ok.stderr
    assert ok.lines[0]["deleted"] is None
    assert count(database, "agency") == 10
    # The transaction of a task without delete is read only: a select that writes is refused.
    writes = exporter.run(
        s3_config(s3, bucket, [{"name": "sneaky", "select": "DELETE FROM agency RETURNING id"}])
    )
    assert writes.reason == "InvalidQuery"
    assert "read-only" in writes.message["error"]["message"]
    assert count(database, "agency") == 10


def test_empty_result_and_seed_style_copy_statement(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=0)
    run = exporter.run(
        s3_config(
            s3,
            bucket,
            [{"name": "agency", "select": "COPY (SELECT * FROM agency) TO STDOUT WITH CSV HEADER;"}],
        )
    )
    assert run.returncode == 0, run.stderr
    [key] = keys(s3, bucket)
    assert gzip.decompress(read(s3, bucket, key)) == b"id,name,note,score,seen\n"
    assert run.lines[0]["rows"] == 0


def test_several_tasks_in_order_with_only(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    sql(
        database,
        "CREATE TABLE a (x int); INSERT INTO a VALUES (1); CREATE TABLE b (y int); INSERT INTO b VALUES (2)",
    )
    tasks = [
        {"name": "task_a", "select": "SELECT * FROM a", "delete": "DELETE FROM a"},
        {"name": "task_b", "select": "SELECT * FROM b", "delete": "DELETE FROM b"},
        {"name": "task_c", "select": "SELECT * FROM missing_table"},
    ]
    run = exporter.run(s3_config(s3, bucket, tasks, only=["task_b", "task_a"]))
    assert run.returncode == 0, run.stderr
    assert [line["name"] for line in run.lines] == ["task_a", "task_b"]
    assert [task["name"] for task in run.message["tasks"]] == ["task_a", "task_b"]
    assert count(database, "a") == count(database, "b") == 0

    unknown = exporter.run(s3_config(s3, bucket, tasks, only=["task_a", "nope"]))
    assert unknown.returncode == 1
    assert unknown.reason == "ConfigurationError"
    assert "nope" in unknown.message["error"]["message"]


def test_delete_runs_only_after_the_upload_is_verified(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=200)
    expected = copy_out(database, "SELECT * FROM agency ORDER BY id")
    # The delete first takes an advisory lock the test holds: the worker stops right before deleting.
    delete = "SELECT pg_advisory_xact_lock(4245); DELETE FROM agency"
    with advisory_lock(database, 4245):
        worker = exporter.start(
            s3_config(
                s3,
                bucket,
                [{"name": "agency", "select": "SELECT * FROM agency ORDER BY id", "delete": delete}],
            )
        )
        wait_until(lambda: lock_waiters(database, 4245) == 1, "the worker to reach its delete")
        # The file is complete and readable before a single row is deleted.
        [key] = keys(s3, bucket)
        assert gzip.decompress(read(s3, bucket, key)) == expected
        assert not multipart_uploads(s3, bucket)
        assert count(database, "agency") == 200
    run = worker.wait()
    assert run.returncode == 0, run.stderr
    assert run.lines[0]["deleted"] == 200
    assert count(database, "agency") == 0


def test_rows_inserted_during_the_export_survive(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=300)
    expected = copy_out(database, "SELECT id, name FROM agency ORDER BY id")
    # The select waits on an advisory lock after its snapshot was taken; meanwhile other rows arrive.
    select = (
        "SELECT agency.id, agency.name FROM agency "
        "CROSS JOIN (SELECT pg_advisory_xact_lock_shared(4243)) AS gate ORDER BY agency.id"
    )
    with advisory_lock(database, 4243):
        worker = exporter.start(
            s3_config(s3, bucket, [{"name": "agency", "select": select, "delete": "DELETE FROM agency"}])
        )
        wait_until(lambda: lock_waiters(database, 4243) == 1, "the worker's export to start")
        sql(
            database,
            "INSERT INTO agency (id, name) SELECT g, 'late ' || g FROM generate_series(1001, 1050) g",
        )
    run = worker.wait()

    assert run.returncode == 0, run.stderr
    [key] = keys(s3, bucket)
    assert gzip.decompress(read(s3, bucket, key)) == expected
    assert run.lines[0]["rows"] == 300
    assert run.lines[0]["deleted"] == 300
    assert sql(database, "SELECT min(id), max(id), count(*) FROM agency") == [(1001, 1050, 50)]


def test_a_concurrent_update_of_an_exported_row_fails_the_task_and_deletes_nothing(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=100)
    delete = "SELECT pg_advisory_xact_lock(4246); DELETE FROM agency"
    with advisory_lock(database, 4246):
        worker = exporter.start(
            s3_config(s3, bucket, [{"name": "agency", "select": "SELECT * FROM agency", "delete": delete}])
        )
        wait_until(lambda: lock_waiters(database, 4246) == 1, "the worker to reach its delete")
        sql(database, "UPDATE agency SET name = 'changed meanwhile' WHERE id = 42")
    run = worker.wait()

    assert run.returncode == 1
    assert run.reason == "SerializationFailure"
    assert count(database, "agency") == 100
    assert sql(database, "SELECT name FROM agency WHERE id = 42") == [("changed meanwhile",)]
    # The verified file stays: those rows will be exported again next time (documented duplicate risk).
    assert len(keys(s3, bucket)) == 1


def test_bad_sql_is_an_invalid_query_and_deletes_nothing(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=50)
    run = exporter.run(
        s3_config(
            s3,
            bucket,
            [
                {
                    "name": "agency",
                    "select": "SELECT no_such_column FROM agency",
                    "delete": "DELETE FROM agency",
                }
            ],
        )
    )
    assert run.returncode == 1
    assert run.reason == "InvalidQuery"
    assert "no_such_column" in run.message["error"]["message"]
    assert run.message["tasks"] == []
    assert count(database, "agency") == 50
    assert keys(s3, bucket) == []
    assert multipart_uploads(s3, bucket) == []

    bad_delete = exporter.run(
        s3_config(
            s3, bucket, [{"name": "agency", "select": "SELECT * FROM agency", "delete": "DELETE FROM agenc"}]
        )
    )
    assert bad_delete.reason == "InvalidQuery"
    assert count(database, "agency") == 50


def test_an_error_mid_stream_aborts_the_multipart_upload(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_big(database, rows=150_000)
    # Division by zero at row 140000: by then more than one 5 MiB part has been uploaded.
    select = "SELECT id, a, b, c, d, 1 / (id - 140000) AS boom FROM big"
    run = exporter.run(
        s3_config(s3, bucket, [{"name": "big", "select": select, "delete": "DELETE FROM big"}])
    )
    assert run.returncode == 1
    assert run.reason == "InvalidQuery"
    assert "division by zero" in run.message["error"]["message"]
    assert any(entry["message"] == "multipart upload aborted" for entry in run.logs())
    assert multipart_uploads(s3, bucket) == []
    assert keys(s3, bucket) == []
    assert count(database, "big") == 150_000


def test_unreachable_s3_is_destination_unavailable(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=20)
    closed = f"http://127.0.0.1:{free_port()}"
    run = exporter.run(
        s3_config(
            closed,
            bucket,
            [{"name": "agency", "select": "SELECT * FROM agency", "delete": "DELETE FROM agency"}],
        )
    )
    assert run.returncode == 1
    assert run.reason == "DestinationUnavailable"
    assert count(database, "agency") == 20
    assert keys(s3, bucket) == []
    assert multipart_uploads(s3, bucket) == []

    missing_bucket = exporter.run(s3_config(s3, "no-such-bucket", [{"name": "agency", "select": "SELECT 1"}]))
    assert missing_bucket.reason == "DestinationUnavailable"
    assert "does not exist" in missing_bucket.message["error"]["message"]


def test_s3_going_away_mid_upload_deletes_nothing(exporter: Exporter, tmp_path: Path, database: str) -> None:
    create_big(database, rows=150_000)
    own = S3Server(tmp_path / "own-s3").start()
    try:
        own.client().create_bucket(Bucket="vanishing")
        worker = exporter.start(
            s3_config(
                own,
                "vanishing",
                [
                    {
                        "name": "big",
                        "select": "SELECT * FROM big WHERE pause_at(id, 120000, 2)",
                        "delete": "DELETE FROM big",
                    }
                ],
            )
        )
        wait_until(lambda: uploaded_parts(own, "vanishing") >= 1, "a first part to be uploaded")
    finally:
        own.stop()
    run = worker.wait()
    assert run.returncode == 1
    assert run.reason == "DestinationUnavailable"
    assert count(database, "big") == 150_000


def test_unreachable_database_is_database_unavailable(exporter: Exporter, s3: S3Server, bucket: str) -> None:
    dsn = f"postgresql://headwater:db-password-9d1e@127.0.0.1:{free_port()}/nothing"
    started = time.monotonic()
    run = exporter.run(s3_config(s3, bucket, [{"name": "agency", "select": "SELECT 1"}]), dsn=dsn)
    assert run.returncode == 1
    assert run.reason == "DatabaseUnavailable"
    assert "5 attempts" in run.message["error"]["message"]
    assert time.monotonic() - started < 60
    retries = [entry for entry in run.logs() if entry["message"] == "database connection failed; retrying"]
    assert len(retries) == 4
    assert keys(s3, bucket) == []


def test_losing_the_database_mid_export_aborts_the_upload(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_big(database, rows=150_000)
    worker = exporter.start(
        s3_config(
            s3,
            bucket,
            [
                {
                    "name": "big",
                    "select": "SELECT * FROM big WHERE pause_at(id, 120000, 30)",
                    "delete": "DELETE FROM big",
                }
            ],
        )
    )
    wait_until(lambda: uploaded_parts(s3, bucket) >= 1, "a first part to be uploaded")
    sql(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'headwater-export' AND datname = current_database()",
    )
    run = worker.wait()
    assert run.returncode == 1
    assert run.reason == "DatabaseUnavailable"
    assert multipart_uploads(s3, bucket) == []
    assert keys(s3, bucket) == []
    assert count(database, "big") == 150_000


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_export_loses_no_rows_and_the_next_run_cleans_up(
    exporter: Exporter, s3: S3Server, bucket: str, database: str, signum: int
) -> None:
    create_big(database, rows=150_000)
    slow = "SELECT * FROM big WHERE pause_at(id, 120000, 60)"
    worker = exporter.start(
        s3_config(s3, bucket, [{"name": "big", "select": slow, "delete": "DELETE FROM big"}])
    )
    wait_until(lambda: uploaded_parts(s3, bucket) >= 1, "a first part to be uploaded")
    worker.signal(signum)
    killed = worker.wait()

    assert count(database, "big") == 150_000
    assert keys(s3, bucket) == []
    if signum == signal.SIGTERM:
        # Asked to stop: the worker cancels its query, aborts the upload and says why.
        assert killed.returncode == 1
        assert killed.reason == "Terminated"
        assert multipart_uploads(s3, bucket) == []
    else:
        # No chance to clean up: the parts stay until the next run of the task.
        assert killed.returncode == -signal.SIGKILL
        assert len(multipart_uploads(s3, bucket)) == 1

    again = exporter.run(
        s3_config(s3, bucket, [{"name": "big", "select": "SELECT * FROM big", "delete": "DELETE FROM big"}])
    )
    assert again.returncode == 0, again.stderr
    assert multipart_uploads(s3, bucket) == []
    [key] = keys(s3, bucket)
    assert gzip.decompress(read(s3, bucket, key)).count(b"\n") == 150_001
    assert count(database, "big") == 0


def test_retention_keeps_the_newest_files_of_the_task(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_agency(database, rows=5)
    client = s3.client()
    base = datetime(2025, 3, 1, 9, tzinfo=UTC)
    old = [f"{PREFIX}/{file_name('agency', base + timedelta(hours=h))}" for h in (0, 2, 4, 6)]
    untouched = [
        f"{PREFIX}/{file_name('agency_archive', base)}",
        f"{PREFIX}/agency-notes.txt",
        f"other/{file_name('agency', base)}",
    ]
    for key in old + untouched:
        client.put_object(Bucket=bucket, Key=key, Body=b"older export")

    run = exporter.run(
        s3_config(
            s3, bucket, [{"name": "agency", "select": "SELECT * FROM agency"}], retention={"keepLast": 2}
        )
    )
    assert run.returncode == 0, run.stderr
    new = run.lines[0]["uri"].removeprefix(f"s3://{bucket}/")
    assert keys(s3, bucket) == sorted([new, old[-1], *untouched])


def test_volume_destination_with_a_tasks_configmap(exporter: Exporter, tmp_path: Path, database: str) -> None:
    create_agency(database, rows=500)
    sql(database, "CREATE TABLE source (id int); INSERT INTO source SELECT generate_series(1, 7)")
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / select_key("agency")).write_text("SELECT * FROM agency ORDER BY id\n")
    (tasks_dir / delete_key("agency")).write_text("DELETE FROM agency;\n")
    (tasks_dir / select_key("source")).write_text("SELECT * FROM source")
    (tasks_dir / delete_key("source")).write_text("DELETE FROM source")
    out = tmp_path / "exported-data"
    out.mkdir()
    expected = copy_out(database, "SELECT * FROM agency ORDER BY id")

    run = exporter.run(
        {
            "tasksDir": str(tasks_dir),
            "only": ["agency"],
            "destination": {"volume": {"path": str(out)}},
            "gzipLevel": 9,
            "retention": {"keepLast": 3},
        }
    )
    assert run.returncode == 0, run.stderr
    [exported] = list(out.iterdir())
    assert parse_file_name("agency", exported.name) is not None
    assert gzip.decompress(exported.read_bytes()) == expected
    assert run.lines[0]["uri"] == exported.as_uri()
    assert run.lines[0]["bytes"] == exported.stat().st_size
    assert count(database, "agency") == 0
    assert count(database, "source") == 7

    unwritable = exporter.run(
        {"tasksDir": str(tasks_dir), "destination": {"volume": {"path": str(exported) + "/below"}}}
    )
    assert unwritable.reason == "DestinationUnavailable"
    assert count(database, "source") == 7


def test_a_large_export_streams_in_bounded_memory(
    exporter: Exporter, s3: S3Server, bucket: str, database: str
) -> None:
    create_big(database, rows=200_000)
    config = s3_config(
        s3, bucket, [{"name": "big", "select": "SELECT * FROM big", "delete": "DELETE FROM big"}]
    )
    del config["destination"]["s3"]["partSizeMiB"]  # the default, 8 MiB parts
    run = exporter.run(config, measure_memory=True)

    assert run.returncode == 0, run.stderr
    assert run.lines[0]["rows"] == 200_000
    [key] = keys(s3, bucket)
    head = s3.client().head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] > 8 * MIB
    assert head["ETag"].strip('"').endswith(("-2", "-3"))  # a multipart upload
    assert gzip.decompress(read(s3, bucket, key)).count(b"\n") == 200_001
    assert count(database, "big") == 0
    assert run.max_rss_mib < 150, f"peak RSS {run.max_rss_mib:.0f} MiB"
