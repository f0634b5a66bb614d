"""The throwaway servers come up, are usable, and leave no process behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from headwater_localcluster.services import PostgresServer, S3Server, descendants, pid_alive


@pytest.mark.postgres
def test_session_postgres_round_trip(database: str) -> None:
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        conn.commit()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("one",), ("two",)]


@pytest.mark.postgres
def test_databases_are_fresh_per_test(database: str) -> None:
    with psycopg.connect(database) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


@pytest.mark.postgres
def test_postgres_under_unreachable_folder_starts_and_stops_cleanly(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = PostgresServer(private / "pg")
    server.start()
    try:
        assert server.state is not None
        if os.geteuid() == 0:
            # pytest's folders are 0700 root: the data lives where the postgres user can reach it.
            assert server.state.dedicated_runtime_dir
            assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
        dsn = server.create_database("app")
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT current_setting('fsync'), current_user").fetchone() == (
                "off",
                "headwater",
            )
        # Password authentication on loopback: a wrong password is refused.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn.replace(server.password, "wrong"), connect_timeout=5).close()
        postmaster = server.pid
        runtime_dir = Path(server.state.runtime_dir)
        workers = descendants(postmaster)
        assert workers, "PostgreSQL runs its background processes"
        # Starting again is a no-op.
        server.start()
        assert server.pid == postmaster
    finally:
        server.destroy()
    assert not pid_alive(postmaster)
    assert not [pid for pid in workers if pid_alive(pid)]
    assert not runtime_dir.exists()


@pytest.mark.postgres
def test_postgres_restarts_with_its_data(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg")
    server.start()
    try:
        dsn = server.create_database("keep")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE kept (id int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        server.stop()
        assert not server.is_running()
        # Another instance (as the CLI would be) finds the same cluster through the state file.
        again = PostgresServer(tmp_path / "pg")
        again.start()
        with psycopg.connect(again.dsn("keep")) as conn:
            assert conn.execute("SELECT id FROM kept").fetchall() == [(7,)]
        again.stop()
    finally:
        server.destroy()


@pytest.mark.s3
def test_session_s3_put_get(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"


@pytest.mark.s3
@pytest.mark.parametrize("in_process", [False, True], ids=["process", "threaded"])
def test_s3_server_starts_and_stops_cleanly(tmp_path: Path, in_process: bool) -> None:
    server = S3Server(tmp_path / "s3", in_process=in_process)
    server.start()
    try:
        client = server.client()
        client.create_bucket(Bucket="round-trip")
        client.put_object(Bucket="round-trip", Key="k", Body=b"v" * 1000)
        assert client.head_object(Bucket="round-trip", Key="k")["ContentLength"] == 1000
        assert server.state is not None
        pid = server.state.pid
    finally:
        server.stop()
    assert not server.is_running()
    if not in_process:
        assert not pid_alive(pid)


@pytest.mark.postgres
@pytest.mark.s3
def test_cli_up_is_idempotent_and_down_stops(tmp_path: Path) -> None:
    root = tmp_path / "cluster"

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "headwater_localcluster", f"--root={root}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return result.stdout

    try:
        first = cli("postgres", "up")
        assert first == cli("postgres", "up")
        assert "DATABASE_URL=postgresql://" in first
        cli("s3", "up")
        cli("s3", "up")
        postgres = PostgresServer(root / "services" / "postgres")
        s3 = S3Server(root / "services" / "s3")
        assert postgres.is_running()
        assert s3.is_running()
        pids = [postgres.pid, *descendants(postgres.pid)]
        assert s3.state is not None
        pids.append(s3.state.pid)
        with psycopg.connect(postgres.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        cli("postgres", "down")
        cli("s3", "down")
        cli("s3", "down")
        assert not [pid for pid in pids if pid_alive(pid)]
    finally:
        PostgresServer(root / "services" / "postgres").destroy()
        S3Server(root / "services" / "s3").stop()


def test_a_stale_state_file_never_signals_an_unrelated_process(tmp_path: Path) -> None:
    """After a reboot the pid in a state file may belong to someone else: `down` must leave it alone."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        postgres_root = tmp_path / "services" / "postgres"
        postgres_root.mkdir(parents=True)
        (postgres_root / "state.json").write_text(
            json.dumps(
                {
                    "pid": bystander.pid,
                    "port": 1,
                    "password": "x",
                    "runtime_dir": str(tmp_path / "gone"),
                    "dedicated_runtime_dir": False,
                    "version": "15",
                }
            )
        )
        s3_root = tmp_path / "services" / "s3"
        s3_root.mkdir(parents=True)
        (s3_root / "state.json").write_text(json.dumps({"pid": bystander.pid, "port": 1}))
        postgres = PostgresServer(postgres_root)
        assert not postgres.is_running()
        postgres.stop()
        s3 = S3Server(s3_root)
        assert not s3.is_running()
        s3.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
