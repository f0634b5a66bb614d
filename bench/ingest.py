"""Ingest throughput: the Connector worker loading a 1,000,000-row energy CSV into PostgreSQL, against a raw
`COPY` of the same file and a per-row baseline, in the same run.

Headwater side: `python -m headwater_worker ingest run`, configured the way the operator configures a file
Connector's Job (`HEADWATER_INGEST_CONFIG`, `DATABASE_URL`), with the CSV waiting in its folder: validate,
transform, stage every record, load the valid ones into `fact_energy_hourly` in one transaction, record the
batch, move the file to `processed/`. Each run gets a fresh database whose schema was migrated beforehand
(as a first run would have done), so that every run loads into empty tables.

Baseline (a), the physical limit: `psql -c '\\copy ... from pstdin (format csv, header)'` of the same file
into a table of two unconstrained text columns.

Baseline (b), the per-row way of the ingestor this replaces: one pydantic model per row (European decimals,
day-first dates, range checks), then `executemany` INSERTs into a staging table (raw values as jsonb) and,
for valid rows, `INSERT ... ON CONFLICT DO UPDATE` into a final table, in one transaction. It runs on the
first 50,000 rows of the file; its rows/s are extrapolated from the time of the work itself.

`python -m bench.ingest per-row DSN CSV` runs baseline (b) alone, and `python -m bench.ingest payloads CSV
FOLDER DSN` the worker's client-side work alone (the benchmark starts them so).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from headwater_localcluster.services import PostgresServer

from .processes import Usage, cpu_seconds, measured
from .results import REPO, TIMES, Benchmark, Side, Target

log = logging.getLogger("bench.ingest")

ROWS = 1_000_000
PER_ROW_ROWS = 50_000
REPETITIONS = 3
COPY_TARGET = Target(">=", 0.5)
PER_ROW_TARGET = Target(">=", 10.0)
RSS_LIMIT_MIB = 500
MAPPING = "energy_hourly"
CONNECTOR = "bench/energy"
DATASOURCE = "meter-0001"
HEADER = ("Date and Time", "Hourly")

# Rows that break a rule, at the same places in every 100,000 (position: what is wrong).
INVALID = {
    12_345: "a negative reading",
    23_456: "a reading of 'n/a'",
    34_567: "a date that does not exist (31 February)",
    45_678: "an unreadable reading",
    56_789: "a reading above the maximum",
}
# Rows that repeat the hour of the row before (a meter sending an hour again), once in every 200,000.
REPEATED = 77_777


# -- the file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvFacts:
    rows: int
    invalid: int
    repeated: int
    mib: float

    @property
    def valid(self) -> int:
        return self.rows - self.invalid

    @property
    def loaded(self) -> int:
        """Rows the final table gets: the valid ones, less those a later row of the same hour replaces."""
        return self.valid - self.repeated


def write_energy_csv(path: Path, rows: int) -> CsvFacts:
    """An hourly meter export as the `energy_hourly` mapping reads it: `Date and Time` day-first
    (`31/12/2023 23:00`), `Hourly` in kWh with three decimals following a daily cycle. Deterministic: the
    same rows every time (no random generator; a multiplicative hash of the row number makes the noise)."""
    import polars as pl

    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True).alias("i")
    frame = pl.DataFrame(i).with_columns(
        pl.datetime(2000, 1, 1).alias("start"),
        ((pl.col("i") * 2_654_435_761) % 4_294_967_296 / 4_294_967_296).alias("noise"),
        (pl.col("i") % 100_000).alias("place"),
    )
    hour = (pl.col("i") % 24).cast(pl.Float64)
    reading = 0.35 + 1.25 * ((hour - 7) * 3.141592653589793 / 12).sin().clip(0, None) + 0.4 * pl.col("noise")
    stamp = (pl.col("start") + pl.duration(hours=pl.col("i"))).dt.strftime("%d/%m/%Y %H:%M")
    previous = (pl.col("start") + pl.duration(hours=pl.col("i") - 1)).dt.strftime("%d/%m/%Y %H:%M")
    text = reading.round(3).cast(pl.String)
    place = pl.col("place")
    frame = frame.select(
        pl.when(place == 34_567)
        .then(pl.lit("31/02/2003 10:00"))
        .when((pl.col("i") % 200_000) == REPEATED)
        .then(previous)
        .otherwise(stamp)
        .alias(HEADER[0]),
        pl.when(place == 12_345)
        .then(pl.lit("-1.250"))
        .when(place == 23_456)
        .then(pl.lit("n/a"))
        .when(place == 45_678)
        .then(pl.lit("1.2.3"))
        .when(place == 56_789)
        .then(pl.lit("15000"))
        .otherwise(text)
        .alias(HEADER[1]),
    )
    frame.write_csv(path)
    invalid = sum(1 + (rows - 1 - p) // 100_000 for p in INVALID if p < rows)
    repeated = 1 + (rows - 1 - REPEATED) // 200_000 if rows > REPEATED else 0
    return CsvFacts(rows, invalid, repeated, round(path.stat().st_size / 2**20, 1))


def head_of(source: Path, target: Path, rows: int) -> None:
    """The header and the first `rows` rows of a CSV."""
    with source.open("rb") as handle, target.open("wb") as out:
        for _ in range(rows + 1):
            out.write(handle.readline())


# -- baseline (b): per row --------------------------------------------------------------------------------

SEED_SCHEMA = """
CREATE TABLE seed_datasource (
    id serial PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    source_type text NOT NULL
);
CREATE TABLE seed_staging_energy_hourly (
    id bigserial PRIMARY KEY,
    batch_id uuid NOT NULL,
    row_number bigint NOT NULL,
    raw jsonb NOT NULL,
    ts timestamptz,
    energy_kwh double precision,
    errors jsonb NOT NULL,
    valid boolean NOT NULL,
    staged_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE seed_fact_energy_hourly (
    id bigserial PRIMARY KEY,
    datasource_id integer NOT NULL REFERENCES seed_datasource (id),
    ts timestamptz NOT NULL,
    energy_kwh double precision,
    source_batch_id uuid NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (datasource_id, ts)
);
"""
MISSING = {"", "NA", "N/A", "n/a", "NULL", "null", "None", "-", "--", "NaN", "nan"}
TIMESTAMP_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
EUROPEAN = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+$")


def per_row(dsn: str, csv_path: Path) -> dict[str, Any]:
    """Baseline (b): validate each row with a pydantic model, then `executemany` INSERTs."""
    import csv
    import uuid
    from datetime import UTC, datetime

    import psycopg
    from pydantic import BaseModel, Field, ValidationError, field_validator

    class EnergyHourlyRecord(BaseModel):
        ts: datetime
        energy_kwh: float = Field(ge=0, le=10_000)

        @field_validator("ts", mode="before")
        @classmethod
        def _timestamp(cls, value: object) -> object:
            if isinstance(value, str):
                text = value.strip()
                for fmt in TIMESTAMP_FORMATS:
                    try:
                        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
                    except ValueError:
                        continue
            return value

        @field_validator("energy_kwh", mode="before")
        @classmethod
        def _decimal(cls, value: object) -> object:
            if isinstance(value, str):
                text = value.strip().replace(" ", "")
                if text in MISSING:
                    return None
                if EUROPEAN.match(text):
                    return text.replace(".", "").replace(",", ".")
                return text.replace(",", "")
            return value

    started = time.perf_counter()
    batch_id = uuid.uuid4()
    staged: list[tuple[Any, ...]] = []
    final: list[tuple[Any, ...]] = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for number, record in enumerate(csv.DictReader(handle), 1):
            try:
                model = EnergyHourlyRecord.model_validate(
                    {"ts": record[HEADER[0]], "energy_kwh": record[HEADER[1]]}
                )
            except ValidationError as error:
                messages = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
                staged.append((batch_id, number, json.dumps(record), None, None, json.dumps(messages), False))
                continue
            staged.append((batch_id, number, json.dumps(record), model.ts, model.energy_kwh, "[]", True))
            final.append((model.ts, model.energy_kwh))
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        row = cursor.execute(
            "INSERT INTO seed_datasource (external_id, source_type) VALUES (%s, 'file') "
            "ON CONFLICT (external_id) DO UPDATE SET external_id = EXCLUDED.external_id RETURNING id",
            (DATASOURCE,),
        ).fetchone()
        assert row is not None
        datasource_id = row[0]
        cursor.executemany(
            "INSERT INTO seed_staging_energy_hourly "
            "(batch_id, row_number, raw, ts, energy_kwh, errors, valid) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            staged,
        )
        cursor.executemany(
            "INSERT INTO seed_fact_energy_hourly (datasource_id, ts, energy_kwh, source_batch_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (datasource_id, ts) DO UPDATE SET "
            "energy_kwh = EXCLUDED.energy_kwh, source_batch_id = EXCLUDED.source_batch_id, loaded_at = now()",
            [(datasource_id, ts, value, batch_id) for ts, value in final],
        )
    return {
        "rows": len(staged),
        "valid": len(final),
        "work_seconds": round(time.perf_counter() - started, 3),
    }


def payloads(csv_path: Path, folder: Path, dsn: str) -> dict[str, Any]:
    """The worker's client-side work alone: read, transform and encode the file as the pipeline does,
    writing the two COPY streams (staging, final table) to files instead of sending them. Returns its
    time and, per stream, the COPY statement that reads it."""
    import uuid

    import polars as pl
    import psycopg
    from headwater_worker.ingest.mapping import shipped
    from headwater_worker.ingest.pipeline import copy_rows
    from headwater_worker.ingest.sources import csv_chunks, inspect_file
    from headwater_worker.ingest.transform import transform
    from psycopg import sql

    mapping = shipped(MAPPING, {"HEADWATER_MAPPINGS_DIR": str(REPO / "mappings")})
    with psycopg.connect(dsn) as conn:
        staging_rows, final_rows = copy_rows(conn, mapping)
        row = conn.execute("SELECT id FROM datasource WHERE external_id = %s", (DATASOURCE,)).fetchone()
        assert row is not None
        statements = {
            "staging": staging_rows.statement(sql.Identifier(mapping.staging_table)).as_string(conn),
            "final": final_rows.statement(sql.Identifier(mapping.target_table)).as_string(conn),
        }
    batch = uuid.uuid4()
    started = time.perf_counter()
    source = csv_chunks(csv_path, mapping, inspect_file(csv_path))
    with (folder / "staging.copy").open("wb") as staging, (folder / "final.copy").open("wb") as final:
        staging.write(staging_rows.header)
        final.write(final_rows.header)
        for chunk in source.chunks:
            done = transform(chunk, mapping, source.columns)
            staged = done.frame.with_columns(pl.col("valid").alias("loaded_to_final"))
            staging.write(staging_rows.encode(staged, {"batch_id": batch, "device_id": row[0]}))
            rows = done.frame.filter(pl.col("valid")).unique(subset=["ts"], keep="last", maintain_order=True)
            constants = {"device_id": row[0], "source_file": batch}
            final.write(final_rows.encode(rows.select(mapping.db_columns), constants))
        staging.write(staging_rows.trailer)
        final.write(final_rows.trailer)
    return {"seconds": round(time.perf_counter() - started, 3), "statements": statements}


# -- the benchmark ----------------------------------------------------------------------------------------


class IngestBench:
    def __init__(self, root: Path, rows: int = ROWS, repetitions: int = REPETITIONS) -> None:
        self.root = root
        self.rows = rows
        self.per_row_rows = min(PER_ROW_ROWS, rows)
        self.repetitions = repetitions
        self.postgres = PostgresServer(root / "postgres")
        self.work = root / "runs"
        self.csv = root / "energy.csv"
        self.slice = root / "energy-head.csv"
        self.facts: CsvFacts | None = None
        self.slice_facts: CsvFacts | None = None

    # -- setup ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        log.info("writing a %d-row energy CSV", self.rows)
        self.facts = write_energy_csv(self.csv, self.rows)
        head_of(self.csv, self.slice, self.per_row_rows)
        self.slice_facts = CsvFacts(
            self.per_row_rows,
            sum(1 for p in INVALID if p < self.per_row_rows),
            1 if self.per_row_rows > REPEATED else 0,
            round(self.slice.stat().st_size / 2**20, 1),
        )
        log.info("file: %s; per-row slice: %s", self.facts, self.slice_facts)
        log.info("starting PostgreSQL")
        self.postgres.start()

    def stop(self) -> None:
        self.postgres.destroy()

    def _database(self, name: str) -> str:
        return self.postgres.create_database(name)

    def _server_cpu(self) -> float:
        return cpu_seconds(self.postgres.pid, with_children=True)

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
        return {key: os.environ[key] for key in keep if key in os.environ}

    def _figures(self, rows: int, usage: Usage, before: float, **extra: Any) -> dict[str, Any]:
        time.sleep(0.3)  # let the server reap the session's backend, so that its CPU time is counted
        return {
            "seconds": round(usage.seconds, 3),
            "rows_per_second": round(rows / usage.seconds),
            "peak_rss_mib": round(usage.max_rss_mib, 1),
            "client_cpu_seconds": round(usage.cpu_seconds, 2),
            "postgres_cpu_seconds": round(self._server_cpu() - before, 2),
            **extra,
        }

    # -- (a) raw COPY ---------------------------------------------------------------------------------

    def copy_command(self, dsn: str, table: str) -> list[str]:
        copy = f"\\copy {table} from pstdin with (format csv, header true)"
        script = f'psql -X -q -v ON_ERROR_STOP=1 -d "$2" -c \'{copy}\' < "$1"'
        return ["bash", "-o", "pipefail", "-c", script, "copy", str(self.csv), dsn]

    def run_copy(self, number: int) -> dict[str, Any]:
        import psycopg

        name = f"copy_{number}"
        dsn = self._database(name)
        table = "raw_energy"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE TABLE {table} ("{HEADER[0]}" text, "{HEADER[1]}" text)')
        before = self._server_cpu()
        usage = measured(self.copy_command(dsn, table), folder=self.work, name=name)
        if usage.returncode != 0:
            stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the raw COPY failed ({usage.returncode}):\n{stderr}")
        figures = self._figures(self.rows, usage, before)
        with psycopg.connect(dsn) as conn:
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        if not count or count[0] != self.rows:
            raise RuntimeError(f"the raw COPY loaded {count} rows, expected {self.rows}")
        self.postgres.drop_database(name)
        return figures

    # -- the pipeline ---------------------------------------------------------------------------------

    def worker_env(self, dsn: str, folder: Path) -> dict[str, str]:
        config = {
            "connector": CONNECTOR,
            "type": "file",
            "mapping": {"name": MAPPING},
            "datasourceId": DATASOURCE,
            "file": {
                "path": str(folder / "incoming"),
                "processedPath": str(folder / "processed"),
                "rejectedPath": str(folder / "rejected"),
                "stableSeconds": 0,
            },
        }
        return {
            **self._base_env(),
            "HEADWATER_INGEST_CONFIG": json.dumps(config),
            "DATABASE_URL": dsn,
            "HEADWATER_MAPPINGS_DIR": str(REPO / "mappings"),
            "HEADWATER_CREDENTIALS_DIR": str(folder / "credentials"),
            "HEADWATER_TERMINATION_LOG": str(folder / "termination-log"),
        }

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "headwater_worker", "ingest", "run"]

    def _prepare_worker(self, name: str) -> tuple[str, Path]:
        """A fresh database with the ingest schema, and a folder with the file waiting in `incoming/`."""
        from headwater_worker.ingest import schema

        dsn = self._database(name)
        schema.migrate(dsn)
        folder = self.work / name
        (folder / "incoming").mkdir(parents=True)
        (folder / "credentials").mkdir()
        os.link(self.csv, folder / "incoming" / "meter.csv")
        return dsn, folder

    def run_worker(self, number: int) -> dict[str, Any]:
        name = f"worker_{number}"
        dsn, folder = self._prepare_worker(name)
        before = self._server_cpu()
        usage = measured(self.worker_command(), folder=self.work, name=name, env=self.worker_env(dsn, folder))
        figures = self._figures(self.rows, usage, before)
        self._check_worker(name, usage, folder, dsn)
        figures.update(self._stages(dsn))
        self.postgres.drop_database(name)
        shutil.rmtree(folder)
        return figures

    def _check_worker(self, name: str, usage: Usage, folder: Path, dsn: str) -> None:
        import psycopg

        assert self.facts is not None
        log_path = folder / "termination-log"
        message = json.loads(log_path.read_text()) if log_path.exists() else {}
        if usage.returncode != 0 or message.get("error"):
            stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker failed ({usage.returncode}): {message}\n{stderr}")
        run = message.get("run") or {}
        expected = {"rowsLoaded": self.facts.loaded, "rowsRejected": self.facts.invalid, "batches": 1}
        if any(run.get(key) != value for key, value in expected.items()):
            raise RuntimeError(f"the worker reported {run}, expected {expected}")
        with psycopg.connect(dsn) as conn:
            final = conn.execute("SELECT count(*) FROM fact_energy_hourly").fetchone()
            staged = conn.execute("SELECT count(*) FROM staging_energy_hourly").fetchone()
        if (final and final[0], staged and staged[0]) != (self.facts.loaded, self.rows):
            raise RuntimeError(f"final {final}, staging {staged}: expected {self.facts.loaded}, {self.rows}")
        if not (folder / "processed" / "meter.csv").exists():
            raise RuntimeError("the worker did not move the file to processed/")

    def _stages(self, dsn: str) -> dict[str, float]:
        """Where the worker's time went, from its `pipeline_execution` rows."""
        import psycopg

        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT stage, extract(epoch FROM finished_at - started_at), message FROM pipeline_execution"
            ).fetchall()
        stages = {str(stage): (float(seconds), message) for stage, seconds, message in rows}
        transform = stages.get("transform", (0.0, None))[1] or "0s"
        return {
            "main_thread_seconds": round(float(str(transform).rstrip("s")), 3),
            "stage_seconds": round(stages.get("stage", (0.0, None))[0], 3),
            "load_seconds": round(stages.get("load", (0.0, None))[0], 3),
        }

    def profile_worker(self, output: Path) -> None:
        """One more worker run under pyinstrument (which must be importable), its text report to `output`."""
        name = "worker_profiled"
        dsn, folder = self._prepare_worker(name)
        command = [sys.executable, "-m", "pyinstrument", "--renderer=text", "--outfile", str(output)]
        command += self.worker_command()[1:]
        usage = measured(command, folder=self.work, name=name, env=self.worker_env(dsn, folder))
        if usage.returncode != 0:
            stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the profiled worker failed ({usage.returncode}):\n{stderr}")
        self.postgres.drop_database(name)
        shutil.rmtree(folder)
        log.info("worker profile (%.1fs run) written to %s", usage.seconds, output)

    # -- (b) per row ----------------------------------------------------------------------------------

    def run_per_row(self, number: int) -> dict[str, Any]:
        import psycopg

        assert self.slice_facts is not None
        name = f"per_row_{number}"
        dsn = self._database(name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SEED_SCHEMA)
        before = self._server_cpu()
        command = [sys.executable, "-m", "bench.ingest", "per-row", dsn, str(self.slice)]
        env = {**self._base_env(), "PYTHONPATH": str(REPO)}
        usage = measured(command, folder=self.work, name=name, env=env)
        if usage.returncode != 0:
            stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the per-row baseline failed ({usage.returncode}):\n{stderr}")
        report = json.loads((self.work / f"{name}.out").read_text())
        figures = self._figures(self.per_row_rows, usage, before)
        work = float(report["work_seconds"])
        # The figure compared: rows per second of the work itself, start-up left out (see `method`).
        figures = {
            "rows_per_second": round(self.per_row_rows / work),
            "work_seconds": work,
            **{k: v for k, v in figures.items() if k != "rows_per_second"},
            "rows": self.per_row_rows,
        }
        with psycopg.connect(dsn) as conn:
            final = conn.execute("SELECT count(*) FROM seed_fact_energy_hourly").fetchone()
        if not final or final[0] != self.slice_facts.loaded:
            expected = self.slice_facts.loaded
            raise RuntimeError(f"the per-row baseline loaded {final} rows, expected {expected}")
        self.postgres.drop_database(name)
        return figures

    # -- the parts alone ------------------------------------------------------------------------------

    def diagnose(self) -> dict[str, float]:
        """The worker's three streams of work, each alone, once: the client's (reading, transforming and
        encoding, written to files), PostgreSQL's COPY of the staging rows, and its COPY of the final
        rows (with the primary key and the datasource check), the last two with `psql` from those files."""
        import psycopg

        log.info("diagnosis: the parts alone")
        name = "parts"
        dsn, folder = self._prepare_worker(name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO datasource (external_id, source_type) VALUES (%s, 'file')", (DATASOURCE,)
            )
        command = [sys.executable, "-m", "bench.ingest", "payloads", str(self.csv), str(folder), dsn]
        usage = measured(
            command, folder=self.work, name="payloads", env={**self._base_env(), "PYTHONPATH": str(REPO)}
        )
        if usage.returncode != 0:
            stderr = (self.work / "payloads.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"writing the payloads failed ({usage.returncode}):\n{stderr}")
        report = json.loads((self.work / "payloads.out").read_text())
        figures: dict[str, float] = {
            "client_seconds": float(report["seconds"]),
            "client_cpu_seconds": round(usage.cpu_seconds, 2),
        }
        for part in ("staging", "final"):
            # The worker's own statement, as psql's \\copy (which reads the file from its standard input).
            copy = "\\" + report["statements"][part].replace(" FROM STDIN", " from pstdin")
            script = f'psql -X -q -v ON_ERROR_STOP=1 -d "$2" -c \'{copy}\' < "$1"'
            before = self._server_cpu()
            usage = measured(
                ["bash", "-c", script, part, str(folder / f"{part}.copy"), dsn], folder=self.work, name=part
            )
            if usage.returncode != 0:
                stderr = (self.work / f"{part}.err").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the {part} COPY failed ({usage.returncode}):\n{stderr}")
            time.sleep(0.3)
            figures[f"{part}_copy_seconds"] = round(usage.seconds, 3)
            figures[f"{part}_postgres_cpu_seconds"] = round(self._server_cpu() - before, 2)
            figures[f"{part}_mib"] = round((folder / f"{part}.copy").stat().st_size / 2**20, 1)
        self.postgres.drop_database(name)
        shutil.rmtree(folder)
        log.info("diagnosis: %s", figures)
        return figures

    # -- run and judge --------------------------------------------------------------------------------

    def run(self, profile: Path | None = None) -> list[Benchmark]:
        self.start()
        log.info("warm-up: one run of each side, not counted")
        self.run_copy(0)
        self.run_worker(0)
        self.run_per_row(0)
        copies: list[dict[str, Any]] = []
        workers: list[dict[str, Any]] = []
        per_rows: list[dict[str, Any]] = []
        for number in range(1, self.repetitions + 1):
            copies.append(self.run_copy(number))
            log.info("raw COPY %d: %s", number, copies[-1])
            workers.append(self.run_worker(number))
            log.info("worker %d: %s", number, workers[-1])
            per_rows.append(self.run_per_row(number))
            log.info("per-row %d: %s", number, per_rows[-1])
        diagnosis = self.diagnose()
        if profile is not None:
            self.profile_worker(profile)
        return self.judge(workers, copies, per_rows, diagnosis)

    def judge(
        self,
        workers: list[dict[str, Any]],
        copies: list[dict[str, Any]],
        per_rows: list[dict[str, Any]],
        diagnosis: dict[str, float],
    ) -> list[Benchmark]:
        assert self.facts is not None
        facts = self.facts
        subject = Side.from_runs(
            "headwater-worker ingest run",
            "`python -m headwater_worker ingest run` as a file Connector's Job runs it (configuration in "
            "`HEADWATER_INGEST_CONFIG`, `DATABASE_URL`), the CSV waiting in its folder: read in chunks of "
            "100,000 rows, coerced and validated column-wise (polars) and encoded column-wise (numpy) in "
            "PostgreSQL's binary `COPY` format; for each chunk, every record `COPY`-ed into the UNLOGGED "
            "staging table with its raw values, typed values and errors on one connection while the valid "
            "rows are `COPY`-ed into `fact_energy_hourly` (primary key, datasource reference checked) on "
            "another, in the batch's transaction; the batch recorded, that transaction committed, then "
            "the staging one; the file moved to `processed/`. Before that, staging rows past the "
            "connector's retention are looked for (there are none). Timed from process start to exit, "
            "Python start-up and imports included.",
            workers,
        )
        copy_side = Side.from_runs(
            "psql \\copy",
            "`psql -c '\\copy raw_energy from pstdin with (format csv, header true)' < file`: the same "
            "file into a table of two `text` columns, no key, no index, no constraint. Timed from start "
            "to exit.",
            copies,
        )
        per_row_side = Side.from_runs(
            "pydantic per row + executemany",
            f"The first {self.per_row_rows:,} rows of the same file through the per-row way of the "
            "ingestor Headwater replaces: `csv.DictReader`, one pydantic model per row (day-first "
            "timestamps, European decimals, 0 ≤ kWh ≤ 10,000), then, in one transaction, psycopg's "
            "`executemany` INSERT of every row into a staging table (raw values as jsonb) and "
            "`executemany` `INSERT ... ON CONFLICT DO UPDATE` of the valid rows into a final table "
            "with the same keys. Its rows/s are extrapolated: rows over the time of that work, measured "
            "inside the process (interpreter start-up and imports, which 1,000,000 rows would amortise, "
            "left out); process figures are for the slice.",
            per_rows,
        )
        w, c, p = subject.median, copy_side.median, per_row_side.median
        rss_max = max(float(run["peak_rss_mib"]) for run in workers)
        rss_met = rss_max < RSS_LIMIT_MIB
        parameters: dict[str, Any] = {
            "rows": facts.rows,
            "csv mib": facts.mib,
            "invalid rows": facts.invalid,
            "repeated hours": facts.repeated,
            "rows loaded": facts.loaded,
            "per-row slice rows": self.per_row_rows,
        }
        method = [
            f"The file: {facts.rows:,} hourly readings of one meter ({facts.mib} MiB), `Date and Time` "
            "day-first (`31/12/2023 23:00`), `Hourly` in kWh with three decimals following a daily "
            f"cycle, written deterministically by the benchmark. {facts.invalid} rows break a rule "
            "(in every 100,000: "
            + ", ".join(INVALID.values())
            + f") and {facts.repeated} repeat the hour before them (the later row wins): "
            f"{facts.loaded:,} rows reach the final table. Each run checks those counts.",
            "PostgreSQL (`PostgresServer`: fsync and synchronous_commit off, as for the tests) runs on the "
            "same machine, started for the benchmark in a temporary folder and stopped after; every run "
            "of every side gets a fresh database, its tables created before the clock starts (the "
            "worker's by its migrations).",
            "One warm-up run of each side first (not counted); then the three sides in turn, repeatedly.",
            "CPU seconds: the measured command and every process it waited for (rusage); PostgreSQL "
            "from `/proc/<pid>/stat` before and after. Peak RSS: `wait4`'s rusage, through a small "
            "launcher so that the benchmark's own memory is not inherited.",
            "The worker's stages come from its own `pipeline_execution` rows, all from the first chunk on: "
            "`stage` ends when the staging COPY has ended, `load` when the final table has the batch; "
            "`main thread seconds` is the time the main thread spent reading, transforming and "
            "encoding (two threads send the chunks meanwhile).",
            "After the measured runs, the parts alone, once each: the worker's client-side work (the "
            "same code reading, transforming and encoding the file, writing both COPY streams to files), "
            "then `psql` COPYing each stream alone into a fresh, migrated database.",
        ]
        findings = self._findings(w, c, p, rss_max, rss_met, diagnosis)
        details = {
            "peak_rss": {"limit_mib": RSS_LIMIT_MIB, "max_mib": rss_max, "met": rss_met},
            "file": asdict(facts),
            "diagnosis": diagnosis,
        }
        versus_copy = Benchmark.judge(
            key="ingest",
            title="Ingest throughput against a raw COPY",
            metric="rows_per_second",
            unit="rows/s",
            subject=subject,
            baseline=copy_side,
            target=COPY_TARGET,
            ratio_definition="worker rows/s ÷ raw COPY rows/s; higher is better",
            parameters=parameters,
            method=method,
            findings=findings,
            details=details,
        )
        versus_per_row = Benchmark.judge(
            key="ingest_per_row",
            title="Ingest throughput against per-row validation and inserts",
            metric="rows_per_second",
            unit="rows/s",
            subject=subject,
            baseline=per_row_side,
            target=PER_ROW_TARGET,
            ratio_definition="worker rows/s ÷ per-row rows/s (extrapolated from a 50,000-row slice); "
            "higher is better",
            parameters=parameters,
            method=method,
            findings=findings,
            details=details,
        )
        return [versus_copy, versus_per_row]

    def _findings(
        self,
        w: dict[str, Any],
        c: dict[str, Any],
        p: dict[str, Any],
        rss_max: float,
        rss_met: bool,
        d: dict[str, float],
    ) -> list[str]:
        seconds = float(w["seconds"])
        stage, load = float(w["stage_seconds"]), float(w["load_seconds"])
        other = seconds - max(stage, load)
        raw_cpu = max(float(c["postgres_cpu_seconds"]), 0.01)
        client, staging, final = (
            d["client_cpu_seconds"],
            d["staging_postgres_cpu_seconds"],
            d["final_postgres_cpu_seconds"],
        )
        return [
            f"Where the worker's {seconds:.2f} s go (medians): the chunks stream for {max(stage, load):.2f} "
            f"s (staging done after {stage:.2f} s, the final table after {load:.2f} s; the main thread "
            f"spent {float(w['main_thread_seconds']):.2f} s of it reading, transforming and encoding), "
            f"and {other:.2f} s go to the rest: interpreter start-up and imports, the schema check, "
            "hashing the file, recording the batch, committing.",
            f"The parts alone (one run each): the client's work {d['client_seconds']:.2f} s "
            f"({client:.2f} s CPU), PostgreSQL's COPY of the {d['staging_mib']:.0f} MiB staging stream "
            f"{d['staging_copy_seconds']:.2f} s ({staging:.2f} s CPU), its COPY of the "
            f"{d['final_mib']:.0f} MiB final stream {d['final_copy_seconds']:.2f} s ({final:.2f} s CPU): "
            f"{client + staging + final:.2f} s of CPU that the worker spreads over the machine's cores "
            f"(here {os.cpu_count()}). The raw COPY needs {float(c['postgres_cpu_seconds']):.2f} s of "
            "PostgreSQL CPU for the same rows: one text parse per value into a table without index, where "
            "the worker has every row written twice, once into staging with its raw values, typed values "
            "and errors, once into a table with a primary key and a datasource check. Both streams are in "
            "PostgreSQL's binary format: the server parses no timestamp, number, UUID or array, only each "
            "row's errors as JSON.",
            f"What bounds the first ratio: 0.5{TIMES} means the whole run within "
            f"{2 * float(c['seconds']):.2f} s. Start-up and bookkeeping alone take {other:.2f} s; "
            f"PostgreSQL's part of the work is {(staging + final) / raw_cpu:.0f} times the raw COPY's. With "
            f"the client's, that work (reading, transforming and encoding every value, writing every row "
            f"twice, maintaining the primary key) is {client + staging + final:.1f} s of CPU: "
            f"{(client + staging + final) / 2:.1f} s on two cores at best.",
            f"CPU per run (medians): worker process {float(w['client_cpu_seconds']):.2f} s, PostgreSQL "
            f"{float(w['postgres_cpu_seconds']):.2f} s; raw COPY: psql {float(c['client_cpu_seconds']):.2f} "
            f"s, PostgreSQL {float(c['postgres_cpu_seconds']):.2f} s.",
            f"Peak RSS of the worker process: {rss_max:.0f} MiB at most over the runs, against a limit of "
            f"{RSS_LIMIT_MIB} MiB: {'met' if rss_met else 'NOT met'}. It does not grow with the file: the "
            "CSV is read in blocks of whole records, at most two chunks wait for each connection, and no "
            "key of earlier chunks is kept (repeats across chunks are found in the final table).",
            f"The per-row baseline handled its {self.per_row_rows:,} rows at "
            f"{float(p['rows_per_second']):,.0f} rows/s of work ({float(p['work_seconds']):.2f} s; "
            f"{float(p['seconds']):.2f} s with start-up). The worker keeps both cores busy, the baseline "
            "about one: other load on the machine lowers the worker's rows/s, and this ratio, the more.",
            "The PostgreSQL server runs with fsync off (a test server): the WAL the final table writes "
            "costs only CPU here. Staging is UNLOGGED and writes none: about 120 MiB of WAL spared per "
            "million rows, which counts on a durable server (and its replicas).",
            "`python -m bench ingest --profile-worker FILE` (with pyinstrument importable) adds one profiled "
            "worker run and writes its call tree to FILE.",
        ]


def run(rows: int = ROWS, repetitions: int = REPETITIONS, profile: Path | None = None) -> list[Benchmark]:
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-ingest-"))
    bench = IngestBench(root, rows, repetitions)
    try:
        return bench.run(profile)
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "per-row":
        print(json.dumps(per_row(argv[1], Path(argv[2]))))
        return 0
    if len(argv) == 4 and argv[0] == "payloads":
        print(json.dumps(payloads(Path(argv[1]), Path(argv[2]), argv[3])))
        return 0
    print("usage: python -m bench.ingest per-row DSN CSV | payloads CSV FOLDER DSN", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
