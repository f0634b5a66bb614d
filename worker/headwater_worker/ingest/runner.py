"""One ingest run: connect, migrate, let the connector feed the pipeline, then read the totals."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from ..logs import error_line, fields
from . import retention, schema, tables
from .config import IngestConfig, IngestSummary, RunFigures
from .connectors import Context, create
from .connectors.base import read_credentials
from .errors import FailureReason, IngestError
from .mapping import Mapping, MappingError, shipped
from .pipeline import BatchInput, BatchResult, CursorUpdate, Pipeline, read_cursor, totals
from .schema import libpq_dsn

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 5
CONNECT_TIMEOUT_SECONDS = 10
APPLICATION = "headwater-ingest"
STAGING_APPLICATION = "headwater-ingest-staging"


def connect(
    dsn: str,
    *,
    attempts: int = CONNECT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    application_name: str = APPLICATION,
) -> Any:
    """An autocommit connection in UTC, retried with exponential backoff."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            conn = psycopg.connect(
                libpq_dsn(dsn),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=application_name,
            )
        except psycopg.ProgrammingError as error:
            raise IngestError(
                FailureReason.CONFIGURATION_ERROR, f"invalid DATABASE_URL: {error_line(error)}"
            ) from None
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise IngestError(
                    FailureReason.DATABASE_UNAVAILABLE,
                    f"cannot connect to the database after {attempts} attempts: {error_line(error)}",
                ) from None
            sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
            delay = min(delay * 2, 8.0)
            continue
        conn.execute("SET TIME ZONE 'UTC'")
        return conn
    raise AssertionError("unreachable")


def load_mapping(config: IngestConfig) -> Mapping:
    try:
        if config.mapping.path is not None:
            return Mapping.load(Path(config.mapping.path))
        assert config.mapping.name is not None
        return shipped(config.mapping.name)
    except MappingError as error:
        raise IngestError(FailureReason.MAPPING_INVALID, str(error)) from None


@dataclass
class DatabaseSink:
    """The pipeline behind the connector-facing `Sink`, counting this run's figures."""

    conn: Any
    pipeline: Pipeline
    connector: str
    figures: RunFigures = field(default_factory=RunFigures)
    results: list[BatchResult] = field(default_factory=list)
    on_batch: Callable[[BatchResult], None] | None = None

    def load(self, batch: BatchInput) -> BatchResult:
        try:
            result = self.pipeline.run(batch)
        except psycopg.Error as error:
            raise IngestError(
                FailureReason.DATABASE_UNAVAILABLE
                if isinstance(error, psycopg.OperationalError)
                else FailureReason.LOAD_FAILED,
                f"{batch.source_uri}: {error_line(error)}",
            ) from None
        self.results.append(result)
        update: dict[str, int] = {}
        if result.status == "loaded":
            update = {
                "batches": self.figures.batches + 1,
                "rows_loaded": self.figures.rows_loaded + result.rows_loaded,
                "rows_rejected": self.figures.rows_rejected + result.rows_rejected,
            }
        elif result.status == "duplicate":
            update = {"duplicates": self.figures.duplicates + 1}
        else:
            update = {
                "rejected_inputs": self.figures.rejected_inputs + 1,
                "rows_rejected": self.figures.rows_rejected + result.rows_rejected,
            }
        self.figures = self.figures.model_copy(update=update)
        if self.on_batch is not None:
            self.on_batch(result)
        return result

    def advance(self, update: CursorUpdate) -> None:
        with self.conn.transaction():
            self.pipeline._advance(update, None)

    def cursor(self, device_id: str, dataset: str) -> datetime | None:
        return read_cursor(self.conn, self.connector, device_id, dataset)


def oldest_cursor(conn: Any, connector: str) -> datetime | None:
    row = conn.execute(
        "SELECT min(cursor) FROM api_fetch_cursor WHERE connector = %s", (connector,)
    ).fetchone()
    return None if row is None else row[0]


def summary(conn: Any, connector: str, figures: RunFigures) -> IngestSummary:
    total = totals(conn, connector)
    return IngestSummary(
        rows_loaded=total.rows_loaded,
        rows_rejected=total.rows_rejected,
        batches=total.batches,
        quality_score=total.quality_score,
        cursor=oldest_cursor(conn, connector),
        last_batch_id=total.last_batch_id,
        run=figures,
    )


def run_once(
    config: IngestConfig,
    dsn: str,
    credentials_dir: Path,
    *,
    context: Context | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> IngestSummary:
    """Migrate, ingest whatever the source has, and return the connector's totals."""
    mapping = load_mapping(config)
    if context is None:
        context = Context(config=config, mapping=mapping, credentials=read_credentials(credentials_dir))
    try:
        schema.ensure(dsn)
    except Exception as error:
        raise IngestError(
            FailureReason.DATABASE_UNAVAILABLE, f"migration failed: {error_line(error)}"
        ) from None
    # Two connections: the batch's transaction on one, its staging rows written at the same time on the other.
    with connect(dsn) as conn, connect(dsn, application_name=STAGING_APPLICATION) as staging_conn:
        tables.prepare(conn, mapping)
        pipeline = Pipeline(conn, mapping, staging_conn)
        figures = RunFigures(staging_rows_pruned=retention.prune(conn, config, mapping))
        sink = DatabaseSink(conn, pipeline, config.connector, figures=figures, on_batch=on_batch)
        connector = create(context)
        try:
            connector.run(sink)
        except IngestError as failure:
            failure.summary = summary(conn, config.connector, sink.figures)
            raise
        log.info("ingest run finished", extra=fields(**sink.figures.model_dump(by_alias=True)))
        return summary(conn, config.connector, sink.figures)


def took_something_in(before: RunFigures, after: RunFigures) -> bool:
    """Whether a scan loaded or refused an input; a duplicate changes nothing."""
    return (after.batches, after.rejected_inputs) != (before.batches, before.rejected_inputs)


def watch(
    config: IngestConfig,
    dsn: str,
    credentials_dir: Path,
    *,
    on_batch: Callable[[BatchResult], None] | None = None,
    on_scan: Callable[[IngestSummary | None], None] | None = None,
) -> None:
    """Scan every `pollSeconds` until stopped (SIGTERM): a file connector's Deployment. After each scan,
    `on_scan` gets the connector's totals when the scan loaded or refused something, else None."""
    assert config.file is not None
    mapping = load_mapping(config)
    context = Context(config=config, mapping=mapping, credentials=read_credentials(credentials_dir))
    schema.ensure(dsn)
    # Two connections: the batch's transaction on one, its staging rows written at the same time on the other.
    with connect(dsn) as conn, connect(dsn, application_name=STAGING_APPLICATION) as staging_conn:
        tables.prepare(conn, mapping)
        pipeline = Pipeline(conn, mapping, staging_conn)
        sink = DatabaseSink(conn, pipeline, config.connector, on_batch=on_batch)
        connector = create(context)
        pruned_at: float | None = None
        while not context.stop.is_set():
            if pruned_at is None or time.monotonic() - pruned_at >= retention.WATCH_INTERVAL_SECONDS:
                retention.prune(conn, config, mapping)
                pruned_at = time.monotonic()
            before = sink.figures
            connector.run(sink)
            if on_scan is not None:
                news = took_something_in(before, sink.figures)
                on_scan(summary(conn, config.connector, sink.figures) if news else None)
            context.stop.wait(config.file.poll_seconds)
