"""validate → transform → stage → load, one transaction per batch.

For each input (a file, an API response):

1. under a transaction-scoped advisory lock on its SHA-256, an input already loaded is a duplicate: nothing
   changes (only an API cursor may move forward to what was already loaded);
2. its records are read in chunks; each chunk is coerced and validated column-wise (polars), then sent two
   ways at once, each by a thread of its own on a connection of its own, while the next chunk is
   transformed: every record, with its raw values, transformed values and errors, is `COPY`-ed into the
   dataset's staging table; the valid ones go to the final table, `COPY`-ed straight in when no row there
   has a key in the chunk's range (new data), else through `INSERT ... SELECT ... ON CONFLICT` with the
   mapping's strategy (duplicates within the batch: the last record wins for `update`, the first for
   `ignore`);
3. the batch, its stage timings, its failed checks and the API cursor are written, and the transaction
   commits: the final table holds all of the batch's valid records or none of them. The staging rows,
   written in a transaction of their own, commit right after it (or roll back with it).

A refusal of the whole input (unreadable, missing columns, no rows, conflicts under `fail`) rolls back
what was staged and loaded for it and records the batch as `rejected` with the reason. Invalid records
never block valid ones: they stay in staging with their errors. Memory stays bounded: a block of the
input and a chunk at a time, at most two more waiting for each connection; keys that earlier chunks
loaded are found in the final table, not kept.

Why two connections: PostgreSQL runs a connection's statements one after the other, in one process;
writing staging and writing the final table (with its primary key) take about as long as each other, so
that two processes, given two cores, take about half as long. The price: the staging rows are not in the
batch's transaction. They commit a moment after it, and would be missing (as after a crash: staging is
UNLOGGED) should the worker die in that moment; the final table and the registry never depend on them.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import psycopg
from psycopg import sql

from ..logs import fields
from . import statements, tables
from .copyformat import Column, CopyRows, Kind, Payload
from .errors import BatchRejected
from .mapping import Mapping
from .sources import Opener
from .statements import BATCH, DEVICE, INJECTED, LoadShape
from .transform import CheckTally, merge_checks, transform

log = logging.getLogger(__name__)

BatchStatus = Literal["loaded", "rejected", "duplicate"]
T = TypeVar("T")


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


def _now() -> datetime:
    return datetime.now(UTC)


def _mark_superseded(frame: Any, rows: Any, on_columns: Sequence[str]) -> Any:
    """Rows another row of the batch supersedes: not loaded, with a note."""
    import polars as pl

    note = json.dumps([f"duplicate of another row of the batch on ({', '.join(on_columns)})"])
    hit = pl.col("row_number").is_in(rows.implode())
    return frame.with_columns(
        pl.when(hit).then(pl.lit(False)).otherwise(pl.col("loaded_to_final")).alias("loaded_to_final"),
        pl.when(hit).then(pl.lit(note)).otherwise(pl.col("errors")).alias("errors"),
    )


def _increasing(frame: Any, keys: list[str]) -> bool:
    """Whether a single key column goes strictly up: then no two rows share a key (the usual case for
    time series, and far cheaper to find out than looking for duplicates)."""
    import polars as pl

    if len(keys) != 1 or frame.height < 2:
        return bool(frame.height < 2)
    key = pl.col(keys[0])
    return bool(frame.select((key.null_count() == 0) & (key > key.shift(1)).all()).item())


def copy_rows(conn: psycopg.Connection[Any], mapping: Mapping) -> tuple[CopyRows, CopyRows]:
    """How a mapping's rows are `COPY`-ed into its staging table and into its final table."""
    mapped: list[tuple[str, Kind]] = [(c, mapping.coercion(c).type) for c in mapping.db_columns]
    staging: list[tuple[str, Kind]] = [
        ("batch_id", "uuid"),
        (DEVICE, "int"),
        ("row_number", "int"),
        ("raw", "record"),
        *mapped,
        ("errors", "json"),
        ("valid", "bool"),
        ("loaded_to_final", "bool"),
    ]
    final: list[tuple[str, Kind]] = [(DEVICE, "int"), *mapped, (BATCH, "uuid")]
    staging_types = tables.column_types(conn, sql.Identifier(mapping.staging_table))
    final_types = tables.column_types(conn, sql.Identifier(mapping.target_table))
    return (
        CopyRows([Column(name, kind, staging_types.get(name, "")) for name, kind in staging]),
        CopyRows([Column(name, kind, final_types.get(name, "")) for name, kind in final]),
    )


# -- one batch ------------------------------------------------------------------------------------------


@dataclass
class _Staged:
    """What streaming learnt of a batch that the end of the load needs."""

    raw_columns: list[str] = field(default_factory=list)
    # Per key column (injected ones aside), the smallest and largest value among the rows loaded.
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class _Part:
    """The rows of one chunk bound for the final table."""

    payload: Payload  # COPY rows: device_id, the mapped columns, source_file
    rows: int
    bounds: dict[str, tuple[Any, Any]]


@dataclass
class _Loaded:
    rows: int = 0
    # Keys that came in two chunks: the later row won (`update`) or lost (`ignore`) in the final table;
    # staging learns which rows lost at the end.
    repeated: list[tuple[Any, ...]] = field(default_factory=list)
    # Strategy `fail`: the rows wait in the incoming table until the conflicts are counted.
    waiting: bool = False


def new_batch_id() -> uuid.UUID:
    """A version 7 UUID: 48 bits of Unix time in milliseconds, then random bits. Later batches sort after
    earlier ones, which lets a BRIN index on staging's `batch_id` find a batch's rows."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return uuid.UUID(int=value)


class _Worker(Generic[T]):
    """Hands items to `handle` in a thread of its own, so that the next chunk is transformed while
    PostgreSQL works on this one. At most `depth` items wait: memory stays bounded."""

    def __init__(self, handle: Callable[[T], object], name: str, depth: int = 2) -> None:
        self.handle = handle
        self.queue: queue.Queue[tuple[T] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                self.handle(item[0])
        except BaseException as error:  # handed to the main thread
            self.error = error
            while self.queue.get() is not None:
                pass

    def put(self, item: T) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((item,))

    def close(self, *, failed: bool) -> None:
        """Wait until every item is handled (or dropped after an error): then the connection the thread
        used is the caller's again."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and not failed:
            raise self.error


class _StagingTransaction:
    """The transaction, on the staging connection, that holds one batch's staging rows."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.open = False

    def begin(self) -> None:
        self.conn.execute("BEGIN")
        self.open = True

    def finish(self, *, commit: bool) -> None:
        if not self.open:
            return
        self.open = False
        try:
            self.conn.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.Error as error:
            # Only after the batch's own transaction has ended: what it did stands either way.
            log.warning(
                "staging rows could not be " + ("committed" if commit else "rolled back"),
                extra=fields(error=str(error).strip()),
            )


class Pipeline:
    """Loads batches for one mapping.

    `conn` holds each batch's transaction: the final table and the bookkeeping. `staging_conn` writes the
    batch's staging rows at the same time, so that PostgreSQL works on both with two processes, in a
    transaction of its own that commits right after the batch's and rolls back with it. (Both are
    autocommit connections: transactions are explicit.)"""

    def __init__(
        self, conn: psycopg.Connection[Any], mapping: Mapping, staging_conn: psycopg.Connection[Any]
    ) -> None:
        if staging_conn is conn:
            raise ValueError("staging needs a connection of its own")
        self.conn = conn
        self.staging_conn = staging_conn
        self.mapping = mapping
        self.staging = sql.Identifier(mapping.staging_table)
        self.target = sql.Identifier(mapping.target_table)
        self._shape: LoadShape | None = None
        self._copies: tuple[CopyRows, CopyRows] | None = None

    @property
    def shape(self) -> LoadShape:
        """The final table's key, types and columns the load statements are built from."""
        if self._shape is None:
            self._shape = tables.load_shape(self.conn, self.mapping)
        return self._shape

    def run(self, batch: BatchInput) -> BatchResult:
        staging = _StagingTransaction(self.staging_conn)
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (batch.sha256,))
                loaded = self.conn.execute(
                    "SELECT id FROM ingest_batch WHERE file_sha256 = %s AND status = 'loaded'",
                    (batch.sha256,),
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
                result = self._load(batch, staging)
        except BaseException:
            staging.finish(commit=False)
            raise
        # The batch has committed: its staging rows follow. (Should that fail, the final table and the
        # registry are right, and staging misses the batch as after a crash: staging is UNLOGGED.)
        staging.finish(commit=True)
        return result

    def _load(self, batch: BatchInput, staging: _StagingTransaction) -> BatchResult:
        batch_id = new_batch_id()
        started = _now()
        datasource_id = self._datasource(batch.datasource, batch.source_type)
        result = BatchResult(str(batch_id), "loaded", batch.source_uri)
        stages: list[_Stage] = []
        checks: dict[str, CheckTally] = {}
        staged = _Staged()
        try:
            with self.conn.transaction():
                staging.begin()
                loaded = self._stream(batch, batch_id, datasource_id, result, stages, checks, staged)
                if result.rows_valid == 0:
                    # Staged rows stay, with their errors, for inspection.
                    result.status, result.reason = "rejected", "NoValidRows"
                    result.message = f"none of the {result.rows_total} rows is valid"
                else:
                    self._finish_load(batch_id, datasource_id, result, staged, loaded)
                    stages.append(_Stage("load", started, _now(), result.rows_valid, result.rows_loaded))
                    if loaded.repeated:
                        result.rows_duplicate += self._unmark_repeated(batch_id, loaded.repeated)
        except BatchRejected as refusal:
            staging.finish(commit=False)
            result.status, result.reason, result.message = "rejected", refusal.reason, refusal.message
            result.rows_valid = 0
        except psycopg.errors.IntegrityError as error:
            staging.finish(commit=False)
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

    # -- stream -----------------------------------------------------------------------------------

    def _stream(
        self,
        batch: BatchInput,
        batch_id: uuid.UUID,
        datasource_id: int,
        result: BatchResult,
        stages: list[_Stage],
        checks: dict[str, CheckTally],
        staged: _Staged,
    ) -> _Loaded:
        """Read, transform and validate the input chunk by chunk; send every record to staging and the
        valid ones to the final table, each through a thread and a connection of its own."""
        import polars as pl

        rows = self._copy_rows()[0]
        constants = {"batch_id": batch_id, DEVICE: datasource_id}
        started = _now()
        transform_seconds = 0.0
        keys = list(self.shape.dedupe_keys)
        spans: list[dict[str, tuple[Any, Any]]] = []
        loaded = _Loaded()
        on_columns = self.mapping.conflict_resolution.on_columns
        dedupe = bool(keys) and self.shape.strategy in ("update", "ignore")
        source = batch.open()
        staged.raw_columns = list(source.columns)
        batch.metadata.update({"encoding": source.encoding, "delimiter": source.delimiter})
        loader: _Worker[_Part] = _Worker(
            lambda part: self._load_part(batch_id, datasource_id, part, loaded), "final-load"
        )
        try:
            with self.staging_conn.cursor() as cursor, cursor.copy(rows.statement(self.staging)) as writer:
                sender: _Worker[Payload] = _Worker(writer.write, "staging-copy")
                try:
                    sender.put(rows.header)
                    for chunk in source.chunks:
                        begun = time.perf_counter()
                        done = transform(chunk, self.mapping, source.columns)
                        merge_checks(checks, done)
                        result.rows_total += done.rows
                        result.rows_valid += done.valid
                        valid = done.frame.filter(pl.col("valid"))
                        superseded = self._superseded(valid, keys) if dedupe else None
                        # Valid rows reach the final table, but for those another row of the batch
                        # supersedes: marked here when in the same chunk, at the end when in another.
                        frame = done.frame.with_columns(pl.col("valid").alias("loaded_to_final"))
                        if superseded is not None:
                            result.rows_duplicate += superseded.len()
                            valid = valid.filter(pl.col("row_number").is_in(superseded.implode()).not_())
                            frame = _mark_superseded(frame, superseded, on_columns)
                        sender.put(rows.encode(frame, constants))
                        part = self._part(valid, batch_id, datasource_id, keys)
                        spans.append(part.bounds)
                        transform_seconds += time.perf_counter() - begun
                        if part.rows:
                            loader.put(part)
                    sender.put(rows.trailer)
                except BaseException:
                    sender.close(failed=True)
                    raise
                sender.close(failed=False)
            staging_done = _now()
        except BaseException:
            loader.close(failed=True)
            raise
        loader.close(failed=False)
        stages.append(
            _Stage(
                "transform",
                started,
                _now(),
                result.rows_total,
                result.rows_valid,
                message=f"{transform_seconds:.3f}s",
            )
        )
        stages.append(_Stage("stage", started, staging_done, result.rows_total, result.rows_total))
        for key in keys:
            lows = [span[key][0] for span in spans if span and span[key][0] is not None]
            highs = [span[key][1] for span in spans if span and span[key][1] is not None]
            staged.bounds[key] = (min(lows, default=None), max(highs, default=None))
        return loaded

    def _superseded(self, valid: Any, keys: list[str]) -> Any:
        """Row numbers of the valid rows of a chunk that a row of the same chunk supersedes (same key; the
        last wins for `update`, the first for `ignore`), or None when there is none."""
        import polars as pl

        if _increasing(valid, keys):
            return None
        key = pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])
        last = self.shape.strategy == "update"
        kept = key.is_last_distinct() if last else key.is_first_distinct()
        rows = valid.filter(kept.not_())["row_number"]
        return rows if rows.len() else None

    def _part(self, valid: Any, batch_id: uuid.UUID, datasource_id: int, keys: list[str]) -> _Part:
        """A chunk's rows for the final table (valid, none superseded within the chunk) and the range of
        their keys."""
        import polars as pl

        bounds: dict[str, tuple[Any, Any]] = {}
        if keys and valid.height:
            low = valid.select(pl.col(k).min() for k in keys).row(0)
            high = valid.select(pl.col(k).max() for k in keys).row(0)
            bounds = {k: (lo, hi) for k, lo, hi in zip(keys, low, high, strict=True)}
        constants = {DEVICE: datasource_id, BATCH: batch_id}
        payload = self._copy_rows()[1].encode(valid.select(self.mapping.db_columns), constants)
        return _Part(payload, valid.height, bounds)

    # -- load -------------------------------------------------------------------------------------

    def _load_part(self, batch_id: uuid.UUID, datasource_id: int, part: _Part, loaded: _Loaded) -> None:
        """One chunk's rows into the final table, in the batch's transaction (runs in the loader thread).

        `COPY` straight into the final table when no row there has a key within the part's key range (new
        data: the usual case); else through the incoming table (temporary) with `INSERT ... SELECT ...
        ON CONFLICT` and the mapping's strategy. Rows of earlier chunks are in the final table already:
        a key repeated across chunks takes the second way too, and the later row wins (`update`) or
        loses (`ignore`) as within a chunk. A straight `COPY` that meets a row another transaction added
        meanwhile rolls back to its savepoint and takes the second way."""
        shape = self.shape
        if shape.strategy == "fail":
            self._copy_into(self._incoming(empty=False), part.payload)
            loaded.waiting = True
            return
        if shape.strategy == "append" or not shape.key:
            loaded.rows += self._copy_into(self.target, part.payload)
            return
        if not self._overlaps(datasource_id, batch_id, part.bounds):
            try:
                with self.conn.transaction():
                    loaded.rows += self._copy_into(self.target, part.payload)
                return
            except psycopg.errors.UniqueViolation:
                log.info("rows appeared in the final table meanwhile: loading this part with ON CONFLICT")
        self._copy_into(self._incoming(empty=True), part.payload)
        loaded.repeated += self._repeated(batch_id)
        loaded.rows += self._insert_incoming(on_conflict=True)

    def _finish_load(
        self, batch_id: uuid.UUID, datasource_id: int, result: BatchResult, staged: _Staged, loaded: _Loaded
    ) -> None:
        shape = self.shape
        if loaded.waiting:  # strategy fail
            result.rows_duplicate = (
                self._count(statements.duplicates_in_incoming(shape)) if shape.dedupe_keys else 0
            )
            existing = (
                self._count(statements.existing_matches(shape))
                if self._overlaps(datasource_id, batch_id, staged.bounds)
                else 0
            )
            if existing or result.rows_duplicate:
                raise BatchRejected(
                    "Conflict",
                    f"strategy 'fail': {existing} rows match rows already in {self.mapping.target_table} "
                    f"and {result.rows_duplicate} repeat another row of the batch on "
                    f"({', '.join(self.mapping.conflict_resolution.on_columns)})",
                )
            loaded.rows = self._insert_incoming(on_conflict=False)
        if shape.strategy == "append" and shape.dedupe_keys:
            # Loaded all the same (or refused by the final table's key): counted for the record.
            result.rows_duplicate = self._count(
                statements.duplicates_in_staging(shape), (batch_id,), conn=self.staging_conn
            )
        if loaded.repeated and shape.strategy == "update":
            # A later chunk updated rows an earlier one had loaded: count each key once.
            params = self._range_params(datasource_id, batch_id, staged.bounds)
            loaded.rows = self._count(statements.rows_of_batch_in_range(shape), (batch_id, *params))
        result.rows_loaded = loaded.rows

    def _count(
        self,
        statement: sql.Composed,
        params: Sequence[Any] = (),
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> int:
        row = (conn or self.conn).execute(statement, params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _repeated(self, batch_id: uuid.UUID) -> list[tuple[Any, ...]]:
        """Keys of the incoming rows that an earlier chunk of the batch loaded."""
        rows = self.conn.execute(statements.repeated_keys(self.shape), (batch_id,)).fetchall()
        return [tuple(row) for row in rows]

    def _unmark_repeated(self, batch_id: uuid.UUID, repeated: list[tuple[Any, ...]]) -> int:
        """Staging rows a row of another chunk superseded (same key): not loaded, with a note. Returns how
        many."""
        columns = [list(values) for values in zip(*repeated, strict=True)]
        with self.staging_conn.cursor() as cursor:
            cursor.execute(statements.unmark_superseded(self.shape), (self._note(), batch_id, *columns))
            return max(cursor.rowcount, 0)

    def _note(self) -> str:
        keys = self.mapping.conflict_resolution.on_columns
        return json.dumps([f"duplicate of another row of the batch on ({', '.join(keys)})"])

    def _copy_into(self, table: sql.Identifier, payload: Payload) -> int:
        rows = self._copy_rows()[1]
        with self.conn.cursor() as cursor:
            with cursor.copy(rows.statement(table)) as copy:
                copy.write(rows.header)
                copy.write(payload)
                copy.write(rows.trailer)
            return max(cursor.rowcount, 0)

    def _copy_rows(self) -> tuple[CopyRows, CopyRows]:
        """How rows are `COPY`-ed into staging and into the final table (and the incoming table, its like)."""
        if self._copies is None:
            self._copies = copy_rows(self.conn, self.mapping)
        return self._copies

    def _incoming(self, *, empty: bool) -> sql.Identifier:
        """The session's incoming table, shaped like the final table, emptied at every commit."""
        incoming = self.shape.incoming
        row = self.conn.execute(
            "SELECT to_regclass(%s)", ("pg_temp." + incoming.as_string(self.conn),)
        ).fetchone()
        if row is None or row[0] is None:
            self.conn.execute(statements.create_incoming(self.shape))
        elif empty:
            self.conn.execute(sql.SQL("TRUNCATE {}").format(incoming))
        return incoming

    def _insert_incoming(self, *, on_conflict: bool) -> int:
        with self.conn.cursor() as cursor:
            cursor.execute(statements.insert_incoming(self.shape, on_conflict=on_conflict))
            return max(cursor.rowcount, 0)

    def _range_params(
        self, datasource_id: int, batch_id: uuid.UUID, bounds: dict[str, tuple[Any, Any]]
    ) -> list[Any]:
        """The parameters of `statements.key_range` for this batch's rows."""
        params: list[Any] = []
        for key in self.shape.key:
            if key in INJECTED:
                params.append(datasource_id if key == DEVICE else batch_id)
            else:
                params += bounds.get(key, (None, None))
        return params

    def _overlaps(self, datasource_id: int, batch_id: uuid.UUID, bounds: dict[str, tuple[Any, Any]]) -> bool:
        """Whether the final table holds any row within `bounds`: one index range scan."""
        if any(low is None or high is None for low, high in bounds.values()):
            return False  # a key column with no value: no row of these can conflict
        params = self._range_params(datasource_id, batch_id, bounds)
        row = self.conn.execute(statements.any_in_range(self.shape), params).fetchone()
        return bool(row and row[0])

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
                # The staging table names where the batch's rows are, for retention to prune them there.
                json.dumps({**batch.metadata, "stagingTable": self.mapping.staging_table}, default=str),
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
