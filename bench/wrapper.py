"""Wrapper collection throughput: a generated collector module loading a 1,000,000-point long CSV into the
points table, against a `COPY` of the same points, already parsed, into the same table, in the same run.

Setup (not timed): the CSV is written, sampled and its module generated as `wrapper generate` does it
(`read_sample`, the template generator, the module validated by a dry run in a limited child process).

Headwater side: `python -m headwater_worker wrapper run`, configured the way the operator configures a
Wrapper's Job (`HEADWATER_WRAPPER_CONFIG`, `DATABASE_URL`), in a fresh database: the module's digest and
checks, the module run in the limited child process (the harness) over the whole file, its points read
from the pipe and streamed with `COPY` into the points table as they come (a temporary table would skip
keys already stored; there are none), with the resource's periods and count, in one transaction. The
runner is started through a small driver (`python -m bench.wrapper run OUT`) that calls the worker's own
entry point and then writes the peak RSS of the runner (its own rusage) and of the collector child (its
children's rusage).

Baseline: `psql -c '\\copy indicator_points (...) from pstdin' < file`, the points the warm-up run stored
(exported once, in COPY's text format), into the same points table, freshly created in a fresh database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from headwater_localcluster.services import PostgresServer

from .processes import Usage, cpu_seconds, measured
from .results import REPO, Benchmark, Side, Target

log = logging.getLogger("bench.wrapper")

ROWS = 1_000_000
REPETITIONS = 3
TARGET = Target(">=", 0.25)
RSS_LIMIT_MIB = 400
TABLE = "indicator_points"
COLUMNS = "resource_id, series, ts, value, attributes"
RESOURCE_ID = "5b1f0c7e-2a4d-4e8b-9f61-3c7d2e8a9b40"
WRAPPER = "bench/grid-load"
HEADER = ("timestamp", "load_mw")
START = datetime(1998, 1, 1, tzinfo=UTC)
STEP_MINUTES = 15


# -- the file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvFacts:
    rows: int
    mib: float
    first: str
    last: str
    value_sum: float


def write_load_csv(path: Path, rows: int) -> CsvFacts:
    """A grid operator's load export as a long table: `timestamp` every 15 minutes (`1998-01-01 00:15`),
    `load_mw` with two decimals following a daily cycle. Deterministic: a multiplicative hash of the row
    number makes the noise."""
    import polars as pl

    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True).alias("i")
    frame = pl.DataFrame(i).with_columns(
        ((pl.col("i") * 2_654_435_761) % 4_294_967_296 / 4_294_967_296).alias("noise"),
    )
    hour = (pl.col("i") % (24 * 60 // STEP_MINUTES)).cast(pl.Float64) * STEP_MINUTES / 60
    load = 6200 + 1800 * ((hour - 9) * 3.141592653589793 / 12).sin() + 350 * pl.col("noise")
    start = pl.lit(START.replace(tzinfo=None))
    stamp = (start + pl.duration(minutes=pl.col("i") * STEP_MINUTES)).dt.strftime("%Y-%m-%d %H:%M")
    frame = frame.select(stamp.alias(HEADER[0]), load.round(2).alias(HEADER[1]))
    frame.write_csv(path, float_precision=2)
    values = pl.read_csv(path, columns=[HEADER[1]], schema_overrides={HEADER[1]: pl.Float64})
    return CsvFacts(
        rows=rows,
        mib=round(path.stat().st_size / 2**20, 1),
        first=str(frame[HEADER[0]][0]),
        last=str(frame[HEADER[0]][-1]),
        value_sum=round(float(values[HEADER[1]].sum()), 2),
    )


# -- the driver: the runner, with the peak RSS of both processes ------------------------------------------


def drive(out: Path) -> int:
    """`python -m headwater_worker wrapper run`, in this process, then the peak RSS of this process (the
    runner) and of its waited-for children (the collector) as JSON in `out`."""
    from headwater_worker.__main__ import main as worker_main

    started = time.perf_counter()
    code = worker_main(["wrapper", "run"])
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(
        json.dumps(
            {
                "returncode": code,
                "run_seconds": seconds,
                "runner_max_rss_kib": own.ru_maxrss,
                "runner_cpu_seconds": own.ru_utime + own.ru_stime,
                "collector_max_rss_kib": children.ru_maxrss,
                "collector_cpu_seconds": children.ru_utime + children.ru_stime,
            }
        )
    )
    return code


# -- the benchmark ----------------------------------------------------------------------------------------


class WrapperBench:
    def __init__(self, root: Path, rows: int = ROWS, repetitions: int = REPETITIONS) -> None:
        self.root = root
        self.rows = rows
        self.repetitions = repetitions
        self.postgres = PostgresServer(root / "postgres")
        self.work = root / "runs"
        self.csv = root / "grid-load.csv"
        self.module = root / "wrapper.py"
        self.points = root / "points.copy"
        self.facts: CsvFacts | None = None
        self.generation: dict[str, Any] = {}

    # -- setup ----------------------------------------------------------------------------------------

    def config(self, code_sha256: str | None = None) -> Any:
        from headwater_worker.wrapper.config import WrapperConfig

        settings: dict[str, Any] = {
            "wrapper": WRAPPER,
            "resourceId": RESOURCE_ID,
            "generation": 1,
            "indicator": {
                "name": "Grid load",
                "unit": "MW",
                "description": "Electrical load of the grid every 15 minutes",
                "category": "energy",
            },
            "source": {"type": "CSV", "path": str(self.csv)},
            "generator": {"type": "template"},
            "output": {"database": {"table": TABLE}},
        }
        if code_sha256 is not None:
            settings.update(codePath=str(self.module), codeSha256=code_sha256)
        return WrapperConfig.model_validate(settings)

    def generate(self) -> str:
        """The module, as `wrapper generate` writes it: sample, template, dry run; its SHA-256."""
        from headwater_worker.wrapper.generate import Attempts, generate_module, read_sample, template_writer

        config = self.config()
        started = time.perf_counter()
        sample = read_sample(config, {})
        code, attempts = generate_module(config, sample, template_writer(config), Attempts())
        self.generation = {"attempts": attempts, "seconds": round(time.perf_counter() - started, 1)}
        self.module.write_text(code, encoding="utf-8")
        log.info("module generated in %s: %d lines", self.generation, code.count("\n"))
        return hashlib.sha256(code.encode("utf-8")).hexdigest()

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        log.info("writing a %d-point load CSV", self.rows)
        self.facts = write_load_csv(self.csv, self.rows)
        log.info("file: %s", self.facts)
        self.sha256 = self.generate()
        log.info("starting PostgreSQL")
        self.postgres.start()

    def stop(self) -> None:
        self.postgres.destroy()

    def _server_cpu(self) -> float:
        return cpu_seconds(self.postgres.pid, with_children=True)

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        return {**{key: os.environ[key] for key in keep if key in os.environ}, "PGTZ": "UTC"}

    def _figures(self, usage: Usage, before: float, **extra: Any) -> dict[str, Any]:
        time.sleep(0.3)  # let the server reap the session's backend, so that its CPU time is counted
        return {
            "seconds": round(usage.seconds, 3),
            "rows_per_second": round(self.rows / usage.seconds),
            "client_cpu_seconds": round(usage.cpu_seconds, 2),
            "postgres_cpu_seconds": round(self._server_cpu() - before, 2),
            **extra,
        }

    def _failed(self, what: str, name: str, usage: Usage, more: object = "") -> RuntimeError:
        stderr = (self.work / f"{name}.err").read_text(errors="replace")[-3000:]
        return RuntimeError(f"{what} failed ({usage.returncode}): {more}\n{stderr}")

    # -- Headwater: the runner ------------------------------------------------------------------------

    def runner_env(self, dsn: str, termination_log: Path) -> dict[str, str]:
        return {
            **self._base_env(),
            "PYTHONPATH": str(REPO),
            "HEADWATER_WRAPPER_CONFIG": self.config(self.sha256).to_env(),
            "DATABASE_URL": dsn,
            "HEADWATER_TERMINATION_LOG": str(termination_log),
        }

    def run_runner(self, number: int) -> dict[str, Any]:
        name = f"runner_{number}"
        dsn = self.postgres.create_database(name)
        termination_log = self.work / f"{name}.termination"
        rusage = self.work / f"{name}.rusage.json"
        command = [sys.executable, "-m", "bench.wrapper", "run", str(rusage)]
        before = self._server_cpu()
        usage = measured(command, folder=self.work, name=name, env=self.runner_env(dsn, termination_log))
        report = json.loads(termination_log.read_text()) if termination_log.exists() else {}
        if usage.returncode != 0 or report.get("outcome") != "collected":
            raise self._failed("the runner", name, usage, report)
        if report.get("newPoints") != self.rows:
            raise RuntimeError(f"the runner collected {report.get('newPoints')} points, expected {self.rows}")
        driven = json.loads(rusage.read_text())
        figures = self._figures(
            usage,
            before,
            runner_peak_rss_mib=round(driven["runner_max_rss_kib"] / 1024, 1),
            collector_peak_rss_mib=round(driven["collector_max_rss_kib"] / 1024, 1),
            runner_cpu_seconds=round(driven["runner_cpu_seconds"], 2),
            collector_cpu_seconds=round(driven["collector_cpu_seconds"], 2),
        )
        self._check_table(dsn)
        if number == 0:
            self._export_points(dsn)
        self.postgres.drop_database(name)
        return figures

    def _check_table(self, dsn: str) -> None:
        """The table holds the file's points: as many, from its first time to its last, the same sum."""
        import psycopg

        assert self.facts is not None
        with psycopg.connect(dsn) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            row = conn.execute(
                f"SELECT count(*), min(ts), max(ts), round(sum(value)::numeric, 2) FROM {TABLE}"
            ).fetchone()
        assert row is not None
        count, low, high, total = row
        expected = (self.rows, self.facts.first, self.facts.last, self.facts.value_sum)
        found = (count, f"{low:%Y-%m-%d %H:%M}", f"{high:%Y-%m-%d %H:%M}", float(total))
        if found != expected:
            raise RuntimeError(f"the points table holds {found}, expected {expected}")

    def _export_points(self, dsn: str) -> None:
        """The baseline's input: the points as stored, in COPY's text format."""
        copy = f"\\copy (SELECT {COLUMNS} FROM {TABLE} ORDER BY ts) to '{self.points}'"
        usage = measured(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", copy],
            folder=self.work,
            name="export_points",
            env=self._base_env(),
        )
        if usage.returncode != 0:
            raise self._failed("exporting the points", "export_points", usage)

    # -- baseline: COPY -------------------------------------------------------------------------------

    def _points_table(self, dsn: str) -> None:
        """The points table exactly as the runner creates it."""
        from headwater_worker.ingest.runner import connect
        from headwater_worker.wrapper.store import DatabaseStore

        config = self.config()
        with connect(dsn, application_name="bench-wrapper") as conn:
            DatabaseStore(conn, TABLE, RESOURCE_ID, WRAPPER, config.indicator).ensure_tables()

    def run_copy(self, number: int) -> dict[str, Any]:
        name = f"copy_{number}"
        dsn = self.postgres.create_database(name)
        self._points_table(dsn)
        copy = f"\\copy {TABLE} ({COLUMNS}) from pstdin"
        script = f'psql -X -q -v ON_ERROR_STOP=1 -d "$2" -c \'{copy}\' < "$1"'
        command = ["bash", "-o", "pipefail", "-c", script, "copy", str(self.points), dsn]
        before = self._server_cpu()
        usage = measured(command, folder=self.work, name=name, env=self._base_env())
        if usage.returncode != 0:
            raise self._failed("the COPY", name, usage)
        figures = self._figures(usage, before)
        self._check_table(dsn)
        self.postgres.drop_database(name)
        return figures

    # -- run and judge --------------------------------------------------------------------------------

    def run(self) -> Benchmark:
        self.start()
        log.info("warm-up: one run of each side, not counted (the runner's gives the baseline its points)")
        self.run_runner(0)
        self.run_copy(0)
        runners: list[dict[str, Any]] = []
        copies: list[dict[str, Any]] = []
        for number in range(1, self.repetitions + 1):
            copies.append(self.run_copy(number))
            log.info("COPY %d: %s", number, copies[-1])
            runners.append(self.run_runner(number))
            log.info("runner %d: %s", number, runners[-1])
        return self.judge(runners, copies)

    def judge(self, runners: list[dict[str, Any]], copies: list[dict[str, Any]]) -> Benchmark:
        assert self.facts is not None
        facts = self.facts
        subject = Side.from_runs(
            "headwater-worker wrapper run",
            "`python -m headwater_worker wrapper run` as a Wrapper's Job runs it (configuration in "
            "`HEADWATER_WRAPPER_CONFIG`, `DATABASE_URL`), into a fresh database: the module's digest and "
            "static checks, then the generated module run in the limited child process (restricted "
            "builtins and imports, CPU, memory and file limits, no environment), which reads the file, "
            "parses each row with the helpers and writes each point to a pipe; the runner reads them as "
            "they come and streams them with `COPY` into the points table (primary key: resource, series, "
            "time), keeping a local spool in case a key is already stored (then they would go in through "
            "a temporary table that skips it; here none is), and brings the resource's periods and count "
            "up to date, in one transaction. Timed from process start to exit, Python start-up and imports "
            "included.",
            runners,
        )
        baseline = Side.from_runs(
            "psql \\copy",
            f"`psql -c '\\copy {TABLE} ({COLUMNS}) from pstdin' < file`: the same points, already parsed "
            "(the warm-up run's, exported in COPY's text format), into the same points table, created by "
            "the runner's own DDL in a fresh database. Timed from start to exit.",
            copies,
        )
        w, b = subject.median, baseline.median
        runner_rss = max(float(run["runner_peak_rss_mib"]) for run in runners)
        collector_rss = max(float(run["collector_peak_rss_mib"]) for run in runners)
        rss_met = max(runner_rss, collector_rss) < RSS_LIMIT_MIB
        findings = [
            f"Peak RSS (the highest of {len(runners)} runs): the runner {runner_rss:.0f} MiB, the collector "
            f"child {collector_rss:.0f} MiB; limit {RSS_LIMIT_MIB} MiB each: "
            f"{'met' if rss_met else 'NOT met'}. The child holds the file ({facts.mib} MiB), its decoded "
            "text and the CSV reader's copy of it (four bytes a character) while it parses; the runner "
            "holds a COPY batch of about 1 MiB at a time (the spool is a file).",
            f"CPU per run (medians): collector child {w['collector_cpu_seconds']:.2f} s, runner "
            f"{w['runner_cpu_seconds']:.2f} s, PostgreSQL {w['postgres_cpu_seconds']:.2f} s; baseline psql "
            f"{b['client_cpu_seconds']:.2f} s, PostgreSQL {b['postgres_cpu_seconds']:.2f} s.",
            f"The runner's {float(w['seconds']):.2f} s against the baseline's {float(b['seconds']):.2f} s: "
            f"{self.rows:,} points parsed from text in a Python child, written to a pipe, read back and "
            "encoded for COPY by the runner, while PostgreSQL stores them: three processes at once on "
            f"{os.cpu_count()} cores, where the baseline keeps one busy.",
        ]
        return Benchmark.judge(
            key="wrapper",
            title="Wrapper collection throughput against a COPY",
            metric="rows_per_second",
            unit="rows/s",
            subject=subject,
            baseline=baseline,
            target=TARGET,
            ratio_definition="runner rows/s ÷ COPY rows/s; higher is better",
            parameters={"rows": facts.rows, "csv mib": facts.mib},
            details={
                "peak_rss": {
                    "limit_mib": RSS_LIMIT_MIB,
                    "runner_max_mib": runner_rss,
                    "collector_max_mib": collector_rss,
                    "met": rss_met,
                },
                "file": asdict(facts),
                "generation": self.generation,
            },
            method=[
                f"The file: {facts.rows:,} readings of a grid's load ({facts.mib} MiB), a long table of "
                f"two columns, `{HEADER[0]}` every {STEP_MINUTES} minutes from {facts.first} to "
                f"{facts.last} and `{HEADER[1]}` with two decimals following a daily cycle, written "
                "deterministically by the benchmark.",
                "Its collector module is generated once before the runs, as `wrapper generate` does it: "
                "the file sampled, the template generator, the module validated by a dry run in the "
                f"limited child ({self.generation['seconds']} s, {self.generation['attempts']} attempt(s)).",
                "PostgreSQL (`PostgresServer`: fsync and synchronous_commit off, as for the tests) runs on "
                "the same machine, started for the benchmark in a temporary folder and stopped after; "
                "every run of either side gets a fresh database.",
                "One warm-up run of each side first (not counted): the runner's stored points, exported, "
                "are the baseline's input. Each run checks the table: the file's count of points, its "
                "first and last time, the sum of its values.",
                "CPU seconds: the measured command and every process it waited for (rusage); PostgreSQL "
                "from `/proc/<pid>/stat` before and after. Peak RSS: the runner's from its own rusage, "
                "the collector child's from the runner's children's rusage (which may count the runner's "
                "size at the moment it forks the child: if anything, too high), read by the driver that "
                "runs the worker's entry point.",
            ],
            findings=findings,
        )


def run(rows: int = ROWS, repetitions: int = REPETITIONS) -> Benchmark:
    root = Path(tempfile.mkdtemp(prefix="headwater-bench-wrapper-"))
    bench = WrapperBench(root, rows, repetitions)
    try:
        return bench.run()
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        return drive(Path(argv[1]))
    print("usage: python -m bench.wrapper run OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
