"""validate → transform → stage → load, one transaction per batch.

For each input (a file, an API response):

1. under a transaction-scoped advisory lock on its SHA-256, an input already loaded is a duplicate: nothing
   changes (only an API cursor may move forward to what was already loaded);
2. its records are read in chunks; each chunk is coerced and validated column-wise and `COPY`-ed into the
   dataset's staging table with its raw values, transformed values and errors;
3. the valid records move to the final table with one `INSERT ... SELECT ... ON CONFLICT` following the
   mapping's strategy (duplicates within the batch: the last record wins for `update`, the first for
   `ignore`);
4. the batch, its stage timings, its failed checks and the API cursor are written, and the transaction
   commits: the final table holds all of the batch's valid records or none of them.

A refusal of the whole input (unreadable, missing columns, no rows, conflicts under `fail`) rolls back
what was staged for it and records the batch as `rejected` with the reason. Invalid records never block
valid ones: they stay in staging with their errors.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from ..logs import fields
from .errors import BatchRejected, FailureReason, IngestError
from .mapping import INJECTED_COLUMNS, Mapping
from .sources import Opener
from .transform import CheckTally, merge_checks, transform

log = logging.getLogger(__name__)

BatchStatus = Literal["loaded", "rejected", "duplicate"]


@dataclass(frozen=True)
class CursorUpdate:
    connector: str
    device_id: str
    dataset: str
    cursor: datetime


@dataclass
class BatchInput:
    connector: str
    source_uri: str
    sha256: str
    datasource: str
    source_type: str
    open: Opener
    metadata: dict[str, Any] = field(default_factory=dict)
    cursor: CursorUpdate | None = None


@dataclass
class BatchResult:
    batch_id: str | None
    status: BatchStatus
    source_uri: str
    reason: str | None = None
    message: str | None = None
    rows_total: int = 0
    rows_valid: int = 0
    rows_duplicate: int = 0
    rows_loaded: int = 0
    quality_score: float | None = None

    @property
    def rows_rejected(self) -> int:
        return self.rows_total - self.rows_valid

    def line(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "status": self.status,
            "source": self.source_uri,
            "reason": self.reason,
            "message": self.message,
            "rows": self.rows_total,
            "rowsValid": self.rows_valid,
            "rowsRejected": self.rows_rejected,
            "rowsDuplicate": self.rows_duplicate,
            "rowsLoaded": self.rows_loaded,
            "qualityScore": self.quality_score,
        }


@dataclass
class _Stage:
    name: str
    started: datetime
    finished: datetime
    rows_in: int | None
    rows_out: int | None
    status: str = "ok"
    message: str | None = None


def copy_text(frame: Any) -> bytes:
    """A DataFrame as the body of `COPY ... FROM STDIN` in PostgreSQL's text format: tab-separated, `\\N`
    for NULL, backslash, tab and line breaks escaped in text columns. (PostgreSQL reads it a little faster
    than CSV: no quotes to look for.)"""
    import polars as pl

    escaped = frame.with_columns(
        pl.col(pl.String).str.replace_many(["\\", "\t", "\n", "\r"], ["\\\\", "\\t", "\\n", "\\r"])
    )
    text: str = escaped.write_csv(
        include_header=False,
        separator="\t",
        quote_style="never",
        null_value="\\N",
        datetime_format="%Y-%m-%d %H:%M:%S%.f",
        date_format="%Y-%m-%d",
    )
    return text.encode()


def _now() -> datetime:
    return datetime.now(UTC)


def _ident(*names: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


# -- schema check -----------------------------------------------------------------------------------------


def check_tables(conn: psycopg.Connection[Any], mapping: Mapping) -> None:
    """The mapping's target and staging tables exist with its columns; else a clear SchemaMismatch."""
    wanted = {
        mapping.target_table: [*mapping.db_columns, "datasource_id", "source_batch_id"],
        mapping.staging_table: [*mapping.db_columns, "batch_id", "row_number", "raw", "errors", "valid"],
    }
    for table, columns in wanted.items():
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s",
            (table,),
        ).fetchall()
        if not rows:
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH, f"table {table} of mapping {mapping.dataset} does not exist"
            )
        present = {row[0] for row in rows}
        missing = [c for c in columns if c not in present]
        if missing:
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH,
                f"table {table} of mapping {mapping.dataset} has no column {', '.join(missing)}",
            )


# -- one batch ------------------------------------------------------------------------------------------


@dataclass
class _Staged:
    """What staging learnt of a batch that the load needs."""

    raw_columns: list[str] = field(default_factory=list)
    # Row numbers of valid rows that another row of the batch supersedes (same key): not loaded.
    superseded: list[int] = field(default_factory=list)
    # Per key column (injected ones aside), the smallest and largest value among the rows to load.
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def new_batch_id() -> uuid.UUID:
    """A version 7 UUID: 48 bits of Unix time in milliseconds, then random bits. Later batches sort after
    earlier ones, which lets a BRIN index on staging's `batch_id` find a batch's rows."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return uuid.UUID(int=value)


class _Sender:
    """Sends COPY data from a thread, so that the next chunk is transformed while PostgreSQL reads this
    one. At most `depth` chunks wait to be sent: memory stays bounded."""

    def __init__(self, copy: psycopg.Copy, depth: int = 2) -> None:
        self.copy = copy
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="copy-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (data := self.queue.get()) is not None:
                self.copy.write(data)
        except BaseException as error:  # handed to the main thread
            self.error = error
            while self.queue.get() is not None:
                pass

    def send(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(data)

    def close(self, *, failed: bool) -> None:
        """Wait until everything queued is sent (or dropped after an error); then the connection is the
        caller's again."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and not failed:
            raise self.error


class Pipeline:
    """Loads batches for one mapping into one database connection (autocommit; transactions explicit)."""

    def __init__(self, conn: psycopg.Connection[Any], mapping: Mapping) -> None:
        self.conn = conn
        self.mapping = mapping
        self.staging = sql.Identifier(mapping.staging_table)
        self.target = sql.Identifier(mapping.target_table)
        self._types: dict[str, str] | None = None

    def run(self, batch: BatchInput) -> BatchResult:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (batch.sha256,))
            loaded = self.conn.execute(
                "SELECT id FROM ingest_batch WHERE file_sha256 = %s AND status = 'loaded'", (batch.sha256,)
            ).fetchone()
            if loaded is not None:
                if batch.cursor is not None:
                    self._advance(batch.cursor, None)
                log.info(
                    "input already loaded: skipped",
                    extra=fields(source=batch.source_uri, batchId=str(loaded[0]), sha256=batch.sha256),
                )
                return BatchResult(
                    str(loaded[0]),
                    "duplicate",
                    batch.source_uri,
                    reason="Duplicate",
                    message=f"already loaded as batch {loaded[0]}",
                )
            return self._load(batch)

    def _load(self, batch: BatchInput) -> BatchResult:
        batch_id = new_batch_id()
        started = _now()
        datasource_id = self._datasource(batch.datasource, batch.source_type)
        result = BatchResult(str(batch_id), "loaded", batch.source_uri)
        stages: list[_Stage] = []
        checks: dict[str, CheckTally] = {}
        staged = _Staged()
        try:
            with self.conn.transaction():
                self._stage(batch, batch_id, datasource_id, result, stages, checks, staged)
                if result.rows_valid == 0:
                    # Staged rows stay, with their errors, for inspection.
                    result.status, result.reason = "rejected", "NoValidRows"
                    result.message = f"none of the {result.rows_total} rows is valid"
                else:
                    self._move(batch_id, datasource_id, result, stages, staged)
        except BatchRejected as refusal:
            result.status, result.reason, result.message = "rejected", refusal.reason, refusal.message
            result.rows_valid = 0
        except psycopg.errors.IntegrityError as error:
            result.status, result.reason = "rejected", "LoadFailed"
            result.message = str(error).strip().splitlines()[0]
            result.rows_valid = 0
        if result.status == "rejected":
            result.rows_loaded = 0
        if result.rows_total:
            result.quality_score = round(result.rows_valid / result.rows_total, 6)
        self._record(batch, batch_id, datasource_id, started, result, stages, checks, staged.raw_columns)
        if batch.cursor is not None:
            self._advance(batch.cursor, batch_id)
        log.info("batch " + result.status, extra=fields(**result.line()))
        return result

    def _datasource(self, external_id: str, source_type: str) -> int:
        row = self.conn.execute(
            "INSERT INTO datasource (external_id, source_type) VALUES (%s, %s) "
            "ON CONFLICT (external_id) DO UPDATE SET external_id = EXCLUDED.external_id RETURNING id",
            (external_id, source_type),
        ).fetchone()
        assert row is not None
        return int(row[0])

    # -- stage ------------------------------------------------------------------------------------

    def _dedupe_keys(self) -> list[str]:
        """The key columns that tell rows of one batch apart (the injected ones are the same for all)."""
        return [k for k in self.mapping.conflict_resolution.on_columns if k not in INJECTED_COLUMNS]

    def _stage(
        self,
        batch: BatchInput,
        batch_id: uuid.UUID,
        datasource_id: int,
        result: BatchResult,
        stages: list[_Stage],
        checks: dict[str, CheckTally],
        staged: _Staged,
    ) -> None:
        """COPY every record into staging, chunk by chunk; a thread sends one chunk while the next is
        transformed. Only the keys of valid rows are kept, to find the rows of the batch that repeat a
        key and the range of keys the load will touch."""
        import polars as pl

        columns = [
            "batch_id",
            "datasource_id",
            "row_number",
            "raw",
            *self.mapping.db_columns,
            "errors",
            "valid",
            "loaded_to_final",
        ]
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(self.staging, _ident(*columns))
        started = _now()
        mark = time.perf_counter()
        transform_seconds = 0.0
        keys = self._dedupe_keys()
        seen_keys: list[pl.DataFrame] = []
        source = batch.open()
        staged.raw_columns = list(source.columns)
        batch.metadata.update({"encoding": source.encoding, "delimiter": source.delimiter})
        with self.conn.cursor() as cursor, cursor.copy(copy) as writer:
            sender = _Sender(writer)
            try:
                for chunk in source.chunks:
                    begun = time.perf_counter()
                    done = transform(chunk, self.mapping, source.columns)
                    frame = done.frame.select(
                        pl.lit(str(batch_id)).alias("batch_id"),
                        pl.lit(datasource_id).alias("datasource_id"),
                        pl.all(),
                        # Valid rows reach the final table; the few a later row supersedes are unmarked after.
                        pl.col("valid").alias("loaded_to_final"),
                    )
                    payload = copy_text(frame)
                    merge_checks(checks, done)
                    if keys:
                        seen_keys.append(done.frame.filter(pl.col("valid")).select(*keys, "row_number"))
                    result.rows_total += done.rows
                    result.rows_valid += done.valid
                    transform_seconds += time.perf_counter() - begun
                    sender.send(payload)
            except BaseException:
                sender.close(failed=True)
                raise
            sender.close(failed=False)
        if seen_keys:
            self._study_keys(pl.concat(seen_keys), keys, result, staged)
        finished = _now()
        stages.append(
            _Stage(
                "transform",
                started,
                finished,
                result.rows_total,
                result.rows_valid,
                message=f"{transform_seconds:.3f}s",
            )
        )
        stages.append(
            _Stage(
                "stage",
                started,
                finished,
                result.rows_total,
                result.rows_total,
                message=f"{time.perf_counter() - mark:.3f}s",
            )
        )

    def _study_keys(self, every: Any, keys: list[str], result: BatchResult, staged: _Staged) -> None:
        """Rows repeating another's key (the last wins for `update`, the first otherwise) and the range of
        keys to load, from the keys of the valid rows in row order."""
        import polars as pl

        key = pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])
        strategy = self.mapping.conflict_resolution.strategy
        repeats = key.is_last_distinct() if strategy == "update" else key.is_first_distinct()
        flagged = every.with_columns(repeats.not_().alias("__repeat"))
        result.rows_duplicate = int(flagged["__repeat"].sum())
        kept = flagged
        if result.rows_duplicate and strategy in ("update", "ignore"):
            staged.superseded = flagged.filter(pl.col("__repeat"))["row_number"].to_list()
            kept = flagged.filter(pl.col("__repeat").not_())
        ends = kept.select(*(pl.col(k).min().alias(f"min_{k}") for k in keys)).row(0)
        tops = kept.select(*(pl.col(k).max().alias(f"max_{k}") for k in keys)).row(0)
        staged.bounds = {k: (low, high) for k, low, high in zip(keys, ends, tops, strict=True)}

    # -- load -------------------------------------------------------------------------------------

    def _move(
        self,
        batch_id: uuid.UUID,
        datasource_id: int,
        result: BatchResult,
        stages: list[_Stage],
        staged: _Staged,
    ) -> None:
        """Valid rows to the final table, in the batch's transaction.

        A plain `INSERT ... SELECT` when no row of the final table has a key within the batch's key range
        (new data: the usual case), else `INSERT ... SELECT ... ON CONFLICT` with the mapping's strategy.
        A plain insert that meets a row another transaction added meanwhile rolls back to its savepoint
        and goes the `ON CONFLICT` way."""
        started = _now()
        conflict = self.mapping.conflict_resolution
        strategy = conflict.strategy
        keys = conflict.on_columns
        if staged.superseded:
            self._unmark(batch_id, staged.superseded)
        overlap = bool(keys) and strategy != "append" and self._overlaps(batch_id, datasource_id, staged)
        if strategy == "fail":
            existing = self._existing(batch_id) if overlap else 0
            if existing or result.rows_duplicate:
                raise BatchRejected(
                    "Conflict",
                    f"strategy 'fail': {existing} rows match rows already in {self.mapping.target_table} "
                    f"and {result.rows_duplicate} repeat another row of the batch on ({', '.join(keys)})",
                )
        if strategy in ("update", "ignore") and keys:
            loaded: int | None = None
            if not overlap:
                try:
                    with self.conn.transaction():
                        loaded = self._insert(batch_id, sql.Composed([]))
                except psycopg.errors.UniqueViolation:
                    log.info("rows appeared in the final table meanwhile: loading with ON CONFLICT")
            if loaded is None:
                loaded = self._insert(batch_id, self._on_conflict())
            result.rows_loaded = loaded
        else:
            result.rows_loaded = self._insert(batch_id, sql.Composed([]))
        stages.append(_Stage("load", started, _now(), result.rows_valid, result.rows_loaded))

    def _insert(self, batch_id: uuid.UUID, on_conflict: sql.Composable) -> int:
        columns = ["datasource_id", *self.mapping.db_columns]
        statement = sql.SQL(
            "INSERT INTO {target} ({cols}, source_batch_id) SELECT {cols}, batch_id FROM {staging} "
            "WHERE batch_id = %s AND loaded_to_final {on_conflict}"
        ).format(target=self.target, cols=_ident(*columns), staging=self.staging, on_conflict=on_conflict)
        with self.conn.cursor() as cursor:
            cursor.execute(statement, (batch_id,))
            return max(cursor.rowcount, 0)

    def _on_conflict(self) -> sql.Composable:
        conflict = self.mapping.conflict_resolution
        keys = conflict.on_columns
        if conflict.strategy == "ignore":
            return sql.SQL("ON CONFLICT ({keys}) DO NOTHING").format(keys=_ident(*keys))
        updates = [*conflict.update_columns, "source_batch_id"]
        return sql.SQL(
            "ON CONFLICT ({keys}) DO UPDATE SET {sets}, loaded_at = now() "
            "WHERE ({old}) IS DISTINCT FROM ({new})"
        ).format(
            keys=_ident(*keys),
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updates
            ),
            old=sql.SQL(", ").join(
                sql.SQL("{t}.{c}").format(t=self.target, c=sql.Identifier(c)) for c in conflict.update_columns
            ),
            new=sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in conflict.update_columns
            ),
        )

    def _unmark(self, batch_id: uuid.UUID, rows: list[int]) -> None:
        """Rows another row of the batch supersedes stay in staging, not loaded, with a note."""
        keys = self.mapping.conflict_resolution.on_columns
        self.conn.execute(
            sql.SQL(
                "UPDATE {staging} SET loaded_to_final = false, errors = errors || %s::jsonb "
                "WHERE batch_id = %s AND row_number = ANY(%s)"
            ).format(staging=self.staging),
            (json.dumps([f"duplicate of another row of the batch on ({', '.join(keys)})"]), batch_id, rows),
        )

    def _column_types(self) -> dict[str, str]:
        if self._types is None:
            rows = self.conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (self.target.as_string(self.conn),),
            ).fetchall()
            self._types = {str(name): str(kind) for name, kind in rows}
        return self._types

    def _overlaps(self, batch_id: uuid.UUID, datasource_id: int, staged: _Staged) -> bool:
        """Whether the final table holds any row within the batch's key range: one index range scan."""
        types = self._column_types()
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        for key in self.mapping.conflict_resolution.on_columns:
            cast = sql.SQL(types.get(key, "text"))
            if key in INJECTED_COLUMNS:
                conditions.append(sql.SQL("{} = %s::{}").format(sql.Identifier(key), cast))
                params.append(datasource_id if key == "datasource_id" else batch_id)
            else:
                low, high = staged.bounds.get(key, (None, None))
                if low is None or high is None:
                    return False  # no row of the batch has a value there: none can conflict
                between = sql.SQL("{} BETWEEN %s::{} AND %s::{}")
                conditions.append(between.format(sql.Identifier(key), cast, cast))
                params += [low, high]
        row = self.conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
                self.target, sql.SQL(" AND ").join(conditions)
            ),
            params,
        ).fetchone()
        return bool(row and row[0])

    def _existing(self, batch_id: uuid.UUID) -> int:
        """How many rows of the batch match a row of the final table (strategy `fail`)."""
        keys = self.mapping.conflict_resolution.on_columns
        join = sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in keys)
        row = self.conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {staging} s JOIN {target} t ON {join} WHERE s.batch_id = %s AND s.valid"
            ).format(staging=self.staging, target=self.target, join=join),
            (batch_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    # -- bookkeeping ------------------------------------------------------------------------------

    def _record(
        self,
        batch: BatchInput,
        batch_id: uuid.UUID,
        datasource_id: int,
        started: datetime,
        result: BatchResult,
        stages: Sequence[_Stage],
        checks: dict[str, CheckTally],
        raw_columns: list[str],
    ) -> None:
        self.conn.execute(
            "INSERT INTO ingest_batch (id, connector, dataset, source_uri, file_sha256, datasource_id, "
            "status, reason, message, rows_total, rows_valid, rows_rejected, rows_duplicate, rows_loaded, "
            "quality_score, raw_columns, metadata, started_at, finished_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
            (
                batch_id,
                batch.connector,
                self.mapping.dataset,
                batch.source_uri,
                batch.sha256,
                datasource_id,
                result.status,
                result.reason,
                result.message,
                result.rows_total,
                result.rows_valid,
                result.rows_rejected,
                result.rows_duplicate,
                result.rows_loaded,
                result.quality_score,
                raw_columns or None,
                json.dumps(batch.metadata, default=str),
                started,
            ),
        )
        with self.conn.cursor() as cursor:
            if stages:
                cursor.executemany(
                    "INSERT INTO pipeline_execution (batch_id, stage, status, rows_in, rows_out, started_at, "
                    "finished_at, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (batch_id, s.name, s.status, s.rows_in, s.rows_out, s.started, s.finished, s.message)
                        for s in stages
                    ],
                )
            if checks:
                cursor.executemany(
                    "INSERT INTO data_quality_checks (batch_id, check_name, column_name, failed_rows, "
                    "samples) VALUES (%s, %s, %s, %s, %s)",
                    [
                        (batch_id, t.check, t.column, t.failed, json.dumps(t.samples, default=str))
                        for t in checks.values()
                    ],
                )

    def _advance(self, update: CursorUpdate, batch_id: uuid.UUID | None) -> None:
        """Move the cursor forward (never back), in the batch's transaction."""
        self.conn.execute(
            "INSERT INTO api_fetch_cursor AS c (connector, device_id, dataset, cursor, last_batch_id) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (connector, device_id, dataset) DO UPDATE SET "
            "cursor = greatest(c.cursor, EXCLUDED.cursor), "
            "last_batch_id = coalesce(EXCLUDED.last_batch_id, c.last_batch_id), updated_at = now()",
            (update.connector, update.device_id, update.dataset, update.cursor, batch_id),
        )


# -- reads ----------------------------------------------------------------------------------------------


def read_cursor(
    conn: psycopg.Connection[Any], connector: str, device_id: str, dataset: str
) -> datetime | None:
    row = conn.execute(
        "SELECT cursor FROM api_fetch_cursor WHERE connector = %s AND device_id = %s AND dataset = %s",
        (connector, device_id, dataset),
    ).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class Totals:
    batches: int
    rows_loaded: int
    rows_rejected: int
    last_batch_id: str | None
    quality_score: float | None


def totals(conn: psycopg.Connection[Any], connector: str) -> Totals:
    """What this connector has loaded so far (status reports these, so a lost Job history loses nothing)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'loaded'), coalesce(sum(rows_loaded), 0), "
        "coalesce(sum(rows_rejected), 0) FROM ingest_batch WHERE connector = %s",
        (connector,),
    ).fetchone()
    last = conn.execute(
        "SELECT id, quality_score FROM ingest_batch WHERE connector = %s "
        "ORDER BY finished_at DESC, started_at DESC LIMIT 1",
        (connector,),
    ).fetchone()
    assert row is not None
    return Totals(
        batches=int(row[0]),
        rows_loaded=int(row[1]),
        rows_rejected=int(row[2]),
        last_batch_id=str(last[0]) if last else None,
        quality_score=float(last[1]) if last and last[1] is not None else None,
    )
