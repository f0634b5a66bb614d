"""Export throughput: the export worker against `psql \\copy | gzip`, on the same table in the same run.

Headwater side: `python -m headwater_worker export`, configured the way the operator configures it in a
Job (`HEADWATER_EXPORT_CONFIG`, `DATABASE_URL`, AWS variables), streaming `COPY ... TO STDOUT` through
gzip into a multipart upload to an S3 protocol endpoint (moto, its own process), then verifying it.

Baseline: `psql -c "\\copy (SELECT ...) to stdout with csv header" | gzip -6 > file`, the same query at the
same compression level, written to a local file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from headwater_localcluster.services import PostgresServer, S3Server

from .processes import Usage, cpu_seconds, measured
from .results import Benchmark, Side, Target

log = logging.getLogger("bench.export")

ROWS = 1_000_000
REPETITIONS = 3
GZIP_LEVEL = 6
TARGET = Target(">=", 0.8)
DATABASE = "bench"
BUCKET = "bench-exports"
PREFIX = "bench"
TASK = "readings"
SELECT = "SELECT id, recorded_at, station, reading, note FROM readings ORDER BY id"

# A realistic mix: a bigint key, a timestamptz, a ~30-character text, a numeric and a text that is NULL
# in a third of the rows.
SCHEMA = """
CREATE TABLE readings (
    id bigint PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    station text NOT NULL,
    reading numeric(12, 3) NOT NULL,
    note text
)
"""
FILL = """
INSERT INTO readings (id, recorded_at, station, reading, note)
SELECT i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '7 seconds' + (i % 997) * interval '1 ms',
       'station-' || lpad((i % 5000)::text, 4, '0') || '-' || substr(md5(i::text), 1, 17),
       round(((i * 7919) % 1000003)::numeric / 97, 3),
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'calibrated by team ' || (i % 89)::text END
FROM generate_series(1::bigint, %s) AS i
"""


# The compression work alone, on one thread: one zlib stream with a gzip wrapper, output dropped. (The
# worker spreads the same work over several threads, one 1 MiB block each.)
ZLIB_ONLY = """
import sys, zlib
compressor = zlib.compressobj(int(sys.argv[2]), zlib.DEFLATED, 16 + zlib.MAX_WBITS)
with open(sys.argv[1], "rb") as source:
    while block := source.read(256 * 1024):
        compressor.compress(block)
compressor.flush()
"""


def _fill(dsn: str, rows: int) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(FILL.replace("%s", str(int(rows))))
        conn.execute("VACUUM ANALYZE readings")
        size = conn.execute("SELECT pg_total_relation_size('readings')").fetchone()
        width = conn.execute("SELECT avg(length(station)) FROM readings").fetchone()
    return {
        "table_mib": round(int(size[0]) / 2**20, 1) if size else 0,
        "station_chars": round(float(width[0]), 1) if width else 0,
    }


class ExportBench:
    def __init__(self, root: Path, rows: int = ROWS, repetitions: int = REPETITIONS) -> None:
        self.root = root
        self.rows = rows
        self.repetitions = repetitions
        self.postgres = PostgresServer(root / "postgres")
        self.s3 = S3Server(root / "s3")
        self.work = root / "runs"
        self.raw_csv = root / "runs" / "export.csv"
        self.dsn = ""

    # -- setup ----------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        log.info("starting PostgreSQL and the S3 endpoint")
        self.postgres.start()
        self.s3.start()
        self.s3.client().create_bucket(Bucket=BUCKET)
        self.dsn = self.postgres.create_database(DATABASE)
        log.info("filling a table with %d rows", self.rows)
        started = time.monotonic()
        facts = _fill(self.dsn, self.rows)
        log.info("table ready in %.1fs: %s", time.monotonic() - started, facts)
        return facts

    def stop(self) -> None:
        self.s3.stop()
        self.postgres.destroy()

    # -- the two sides --------------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
        return {key: os.environ[key] for key in keep if key in os.environ}

    def worker_env(self, termination_log: Path) -> dict[str, str]:
        config = {
            "tasks": [{"name": TASK, "select": SELECT}],
            "destination": {"s3": {"bucket": BUCKET, "prefix": PREFIX, "endpoint": self.s3.endpoint_url}},
            "gzipLevel": GZIP_LEVEL,
            "exportJob": "bench/export",
        }
        return {
            **self._base_env(),
            "HEADWATER_EXPORT_CONFIG": json.dumps(config),
            "DATABASE_URL": self.dsn,
            "AWS_ACCESS_KEY_ID": self.s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_access_key,
            "AWS_DEFAULT_REGION": self.s3.region,
            "HEADWATER_TERMINATION_LOG": str(termination_log),
        }

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "headwater_worker", "export"]

    def baseline_command(self, target: Path) -> list[str]:
        copy = f"\\copy ({SELECT}) to stdout with csv header"
        # The file name travels as $1, the DSN as $2, so neither needs quoting.
        script = f'psql -X -q -v ON_ERROR_STOP=1 -d "$2" -c \'{copy}\' | gzip -{GZIP_LEVEL} > "$1"'
        return ["bash", "-o", "pipefail", "-c", script, "baseline", str(target), self.dsn]

    def _server_cpu(self) -> dict[str, float]:
        assert self.s3.state is not None
        return {
            "postgres": cpu_seconds(self.postgres.pid, with_children=True),
            "s3": cpu_seconds(self.s3.state.pid, with_children=True),
        }

    def _figures(self, usage: Usage, before: dict[str, float], **extra: Any) -> dict[str, Any]:
        time.sleep(0.3)  # let the server reap the session's backend, so that its CPU time is counted
        after = self._server_cpu()
        return {
            "seconds": round(usage.seconds, 3),
            "rows_per_second": round(self.rows / usage.seconds),
            "peak_rss_mib": round(usage.max_rss_mib, 1),
            "client_cpu_seconds": round(usage.cpu_seconds, 2),
            "postgres_cpu_seconds": round(after["postgres"] - before["postgres"], 2),
            "s3_cpu_seconds": round(after["s3"] - before["s3"], 2),
            **extra,
        }

    def run_worker(self, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        termination_log = self.work / f"worker-{number}.termination"
        before = self._server_cpu()
        usage = measured(
            self.worker_command(),
            folder=self.work,
            name=f"worker-{number}",
            env=self.worker_env(termination_log),
        )
        message = json.loads(termination_log.read_text()) if termination_log.exists() else {}
        if usage.returncode != 0 or message.get("error"):
            stderr = (self.work / f"worker-{number}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker failed ({usage.returncode}): {message}\n{stderr}")
        task = message["tasks"][0]
        if task["rows"] != self.rows:
            raise RuntimeError(f"the worker exported {task['rows']} rows, expected {self.rows}")
        figures = self._figures(
            usage, before, gzip_mib=round(task["bytes"] / 2**20, 2), task_seconds=task["durationSeconds"]
        )
        return figures, task

    def run_baseline(self, number: int, target: Path) -> dict[str, Any]:
        before = self._server_cpu()
        usage = measured(self.baseline_command(target), folder=self.work, name=f"baseline-{number}")
        if usage.returncode != 0:
            stderr = (self.work / f"baseline-{number}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the baseline failed ({usage.returncode}):\n{stderr}")
        return self._figures(usage, before, gzip_mib=round(target.stat().st_size / 2**20, 2))

    # -- checks ---------------------------------------------------------------------------------------

    def _object_digest(self, uri: str) -> str:
        key = uri.removeprefix(f"s3://{BUCKET}/")
        local = self.work / "worker-output.csv.gz"
        self.s3.client().download_file(BUCKET, key, str(local))
        try:
            return _gunzip_digest(local)
        finally:
            local.unlink()

    def _delete_object(self, uri: str) -> None:
        # moto keeps objects in memory: three 25 MiB files are harmless, but there is no need to keep them.
        self.s3.client().delete_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))

    # -- the benchmark --------------------------------------------------------------------------------

    def profile_worker(self, output: Path) -> None:
        """One more worker run under pyinstrument (a sampling profiler, which must be importable: it is
        no dependency of the project), its text report written to `output`."""
        termination_log = self.work / "profiled.termination"
        env = self.worker_env(termination_log)
        command = [sys.executable, "-m", "pyinstrument", "--renderer=text"]
        command += ["--outfile", str(output), *self.worker_command()[1:]]
        usage = measured(command, folder=self.work, name="profiled", env=env)
        if usage.returncode != 0:
            stderr = (self.work / "profiled.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the profiled worker failed ({usage.returncode}):\n{stderr}")
        log.info("worker profile (%.1fs run) written to %s", usage.seconds, output)

    def run(self, profile: Path | None = None) -> Benchmark:
        facts = self.start()
        log.info("warm-up: one run of each side, not counted")
        warm = self.work / "warm-up.csv.gz"
        self.run_baseline(0, warm)
        _, task = self.run_worker(0)
        identical = self._object_digest(task["uri"]) == _gunzip_digest(warm)
        if not identical:
            raise RuntimeError("the worker's file and the baseline's differ once decompressed")
        self._delete_object(task["uri"])
        _gunzip(warm, self.raw_csv)
        warm.unlink()
        workers: list[dict[str, Any]] = []
        baselines: list[dict[str, Any]] = []
        for number in range(1, self.repetitions + 1):
            target = self.work / f"baseline-{number}.csv.gz"
            baselines.append(self.run_baseline(number, target))
            target.unlink()
            log.info("baseline %d: %s", number, baselines[-1])
            figures, task = self.run_worker(number)
            workers.append(figures)
            self._delete_object(task["uri"])
            log.info("worker %d: %s", number, figures)
        diagnosis = self.diagnose()
        self.raw_csv.unlink()
        if profile is not None:
            self.profile_worker(profile)
        return self.judge(workers, baselines, facts, diagnosis)

    def diagnose(self) -> dict[str, float]:
        """The parts on their own, once each: reading the COPY stream (psql to /dev/null), and compressing
        the same CSV at level 6 with Python's zlib (as the worker does) and with gzip."""
        log.info("diagnosis: reading alone, compressing alone")
        copy = f"\\copy ({SELECT}) to stdout with csv header"
        read = [
            "bash",
            "-c",
            f"psql -X -q -v ON_ERROR_STOP=1 -d \"$1\" -c '{copy}' > /dev/null",
            "read",
            self.dsn,
        ]
        gzip_only = ["bash", "-c", f'gzip -{GZIP_LEVEL} < "$1" > /dev/null', "gzip", str(self.raw_csv)]
        zlib_only = [sys.executable, "-c", ZLIB_ONLY, str(self.raw_csv), str(GZIP_LEVEL)]
        figures: dict[str, float] = {"csv_mib": round(self.raw_csv.stat().st_size / 2**20, 1)}
        for name, command in (("read_only", read), ("gzip_only", gzip_only), ("zlib_only", zlib_only)):
            usage = measured(command, folder=self.work, name=name)
            if usage.returncode != 0:
                raise RuntimeError(f"diagnosis {name} failed ({usage.returncode})")
            figures[f"{name}_seconds"] = round(usage.seconds, 3)
        log.info("diagnosis: %s", figures)
        return figures

    def judge(
        self,
        workers: list[dict[str, Any]],
        baselines: list[dict[str, Any]],
        facts: dict[str, Any],
        diagnosis: dict[str, float],
    ) -> Benchmark:
        subject = Side.from_runs(
            "headwater-worker export",
            "`python -m headwater_worker export` as a Job runs it (configuration in "
            "`HEADWATER_EXPORT_CONFIG`, `DATABASE_URL`, AWS variables): `COPY (SELECT ...) TO STDOUT "
            "WITH CSV HEADER` in a REPEATABLE READ transaction, gzip level 6, multipart upload (8 MiB "
            "parts) to the S3 endpoint, then a HeadObject to verify the stored size. Timed from process "
            "start to exit, Python start-up and imports included.",
            workers,
        )
        baseline = Side.from_runs(
            "psql \\copy | gzip",
            f'`psql -c "\\copy ({SELECT}) to stdout with csv header" | gzip -6 > file`: the same query and '
            "compression level, written to a local file (no upload). Timed from start to exit.",
            baselines,
        )
        w, b = subject.median, baseline.median
        findings = [
            "Both sides produce byte-identical CSV (checked on the warm-up run by comparing the SHA-256 of "
            "the decompressed files).",
            f"CPU per export (medians): worker process {w['client_cpu_seconds']:.2f} s, S3 endpoint "
            f"{w['s3_cpu_seconds']:.2f} s, PostgreSQL {w['postgres_cpu_seconds']:.2f} s; baseline psql + "
            f"gzip {b['client_cpu_seconds']:.2f} s, PostgreSQL {b['postgres_cpu_seconds']:.2f} s.",
            f"Peak RSS of the worker process: {w['peak_rss_mib']:.0f} MiB (median of "
            f"{len(workers)} runs; from `wait4`'s rusage, measured through a small launcher so that the "
            "benchmark's own memory is not inherited).",
            *_where_time_goes(w, b, diagnosis),
        ]
        return Benchmark.judge(
            key="export",
            title="Export throughput",
            metric="rows_per_second",
            unit="rows/s",
            subject=subject,
            baseline=baseline,
            target=TARGET,
            ratio_definition="worker rows/s ÷ baseline rows/s; higher is better",
            parameters={"rows": self.rows, "gzip level": GZIP_LEVEL, **facts},
            details={"diagnosis": diagnosis},
            method=[
                f"A table of {self.rows:,} rows: `id bigint` primary key, `recorded_at timestamptz`, "
                "`station text` (30 characters), `reading numeric(12,3)` and `note text`, NULL in a third "
                "of the rows; exported with `" + SELECT + "`.",
                "PostgreSQL (`PostgresServer`) and the S3 endpoint (`S3Server`, moto as its own process) run "
                "on the same machine, started for the benchmark in a temporary folder and stopped after.",
                "One warm-up run of each side first (not counted), which also checks that both produce the "
                "same CSV.",
                "CPU seconds: the measured command and every process it waited for (rusage); PostgreSQL and "
                "the S3 endpoint from `/proc/<pid>/stat` before and after.",
                "After the measured runs, the parts alone, once each: `psql` into /dev/null (reading the "
                "COPY stream), and compressing the same CSV, decompressed from the warm-up file, at level 6 "
                "with `gzip` and with Python's zlib on one thread (the worker's compression work, which it "
                "spreads over several threads).",
            ],
            findings=findings,
        )


def _where_time_goes(w: dict[str, Any], b: dict[str, Any], d: dict[str, float]) -> list[str]:
    """Findings that put the medians beside the parts measured alone."""
    read, zlib_only, gzip_only = d["read_only_seconds"], d["zlib_only_seconds"], d["gzip_only_seconds"]
    serial = read + zlib_only
    task = float(w["task_seconds"])
    overhead = float(w["seconds"]) - task
    how = (
        "about the sum of the two, as when one thread reads and compresses in turn"
        if task >= 0.9 * serial
        else "less than their sum: reading and compressing overlap"
    )
    return [
        f"The parts alone (one run each): reading the COPY stream takes {read:.2f} s (psql to "
        f"/dev/null); compressing the {d['csv_mib']:.0f} MiB of CSV at level 6 takes {zlib_only:.2f} s "
        f"with Python's zlib (what the worker uses) and {gzip_only:.2f} s with gzip.",
        f"The baseline runs psql and gzip as two processes at once: {float(b['seconds']):.2f} s, against "
        f"{max(read, gzip_only):.2f} s for the slower of them alone. The worker's task took {task:.2f} s, "
        f"{how} ({serial:.2f} s), plus {overhead:.2f} s outside the task: interpreter start, imports, "
        "the S3 client, checks before and after.",
        "`python -m bench export --profile-worker FILE` (with pyinstrument importable) adds one profiled "
        "worker run and writes its call tree to FILE.",
    ]


def _gunzip(source: Path, target: Path) -> None:
    with gzip.open(source, "rb") as stream, target.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)


def _gunzip_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run(rows: int = ROWS, repetitions: int = REPETITIONS, profile: Path | None = None) -> Benchmark:
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-export-"))
    bench = ExportBench(root, rows, repetitions)
    try:
        return bench.run(profile)
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)
