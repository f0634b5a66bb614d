"""Export tasks: `COPY ... TO STDOUT` → gzip → destination, then the task's delete, without losing rows.

How nothing is lost
-------------------
Each task runs in one `REPEATABLE READ` transaction, so the COPY and the delete see the same snapshot,
taken when the COPY starts:

1. `COPY (<select>) TO STDOUT WITH CSV HEADER` streams into gzip and the upload (see `pipeline`: this
   thread reads, others compress and upload);
2. the upload is completed and **verified** (the stored size equals the bytes sent);
3. only then the delete query runs, in the same transaction, and the transaction commits.

Rows inserted by other sessions after the snapshot are invisible to the delete, so they survive to the
next run: only what was exported can be deleted. If another session updates or deletes a row this
transaction exported before our delete reaches it, PostgreSQL refuses the delete with a serialization
failure; the task then fails with `SerializationFailure` and nothing is deleted.

Any failure before the commit — bad SQL, the database or the destination going away, the process being
killed — rolls the transaction back (PostgreSQL does so when the connection drops), so every row stays.
The upload is aborted on the way out (multipart upload and parts, or temporary file); a SIGKILL leaves no
chance to do so, and the next run of the same task removes such leftovers before it starts.

Duplicate risk: when the file was stored and verified but the delete or the commit then failed (a
serialization failure, the database going away at that moment), the file stays while its rows remain in
the table, and the next run exports them again. Consumers that need exactly-once should deduplicate on a
key. Rows are never lost; at worst they are exported twice.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from ..logs import error_line, fields
from .config import FailureReason, TaskResult
from .destinations import Destination
from .errors import ConfigurationError, ExportError
from .naming import expired, file_name
from .pipeline import BlockPipeline, blocks
from .tasks import ExportTask

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 5
CONNECT_BASE_DELAY = 0.5
CONNECT_MAX_DELAY = 8.0
CONNECT_TIMEOUT_SECONDS = 10
NAME_ATTEMPTS = 3


@dataclass
class TaskOutcome:
    name: str
    rows: int
    bytes: int
    uri: str
    duration_seconds: float
    finished_at: datetime
    deleted: int | None
    file_name: str

    def result(self) -> TaskResult:
        return TaskResult(
            name=self.name,
            rows=self.rows,
            bytes=self.bytes,
            uri=self.uri,
            duration_seconds=round(self.duration_seconds, 3),
            finished_at=self.finished_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )

    def line(self) -> dict[str, Any]:
        """The JSON line printed on stdout when the task finishes."""
        return {**self.result().model_dump(by_alias=True), "deleted": self.deleted}


# -- database -------------------------------------------------------------------------------------------


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs (`postgresql+psycopg2://`) as libpq does not."""
    return re.sub(r"^(postgres(?:ql)?)\+[a-z0-9_]+://", r"\1://", dsn.strip(), flags=re.I)


def connect(
    dsn: str, *, attempts: int = CONNECT_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
) -> psycopg.Connection[Any]:
    """Connect in autocommit mode (transactions are explicit), retrying with exponential backoff."""
    delay = CONNECT_BASE_DELAY
    for attempt in range(1, attempts + 1):
        try:
            return psycopg.connect(
                normalize_dsn(dsn),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name="headwater-export",
                keepalives=1,
                keepalives_idle=30,
            )
        except psycopg.ProgrammingError as error:
            raise ConfigurationError(f"invalid DATABASE_URL: {error_line(error)}") from None
        except psycopg.OperationalError as error:
            message = error_line(error)
            if attempt == attempts:
                raise ExportError(
                    FailureReason.DATABASE_UNAVAILABLE,
                    f"cannot connect to the database after {attempts} attempts: {message}",
                ) from None
            log.warning(
                "database connection failed; retrying",
                extra=fields(attempt=attempt, retryInSeconds=round(delay, 2), error=message),
            )
            sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not cryptography
            delay = min(delay * 2, CONNECT_MAX_DELAY)
    raise AssertionError("unreachable")


def classify_database_error(error: psycopg.Error, conn: psycopg.Connection[Any], task: str) -> ExportError:
    """Map a psycopg error to the reason the termination message reports."""
    sqlstate = error.sqlstate or ""
    message = error_line(error)
    if sqlstate in ("40001", "40P01"):
        reason = FailureReason.SERIALIZATION_FAILURE
        message = f"task {task}: {message} (a row the export read was changed concurrently; nothing deleted)"
        return ExportError(reason, message, task=task)
    unavailable = (
        conn.broken
        or sqlstate.startswith(("08", "53", "57", "58", "XX"))
        or (not sqlstate and isinstance(error, psycopg.OperationalError | psycopg.InterfaceError))
    )
    reason = FailureReason.DATABASE_UNAVAILABLE if unavailable else FailureReason.INVALID_QUERY
    return ExportError(reason, f"task {task}: {message}", task=task)


# -- one task ----------------------------------------------------------------------------------------------


def choose_name(
    destination: Destination, task: str, *, clock: Callable[[], datetime]
) -> tuple[str, datetime]:
    """A file name for `task` that does not exist yet: names have one-second resolution, so a second run
    within the same second waits for the next one rather than overwrite a file."""
    for _ in range(NAME_ATTEMPTS):
        now = clock()
        name = file_name(task, now)
        if not destination.exists(name):
            return name, now
        time.sleep(1.05 - now.microsecond / 1_000_000)
    raise ExportError(
        FailureReason.DESTINATION_UNAVAILABLE, f"{destination.uri(name)} exists already", task=task
    )


def export_task(
    conn: psycopg.Connection[Any],
    destination: Destination,
    task: ExportTask,
    *,
    gzip_level: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TaskOutcome:
    """Export one task; see the module docstring for the transaction."""
    started = time.monotonic()
    name, _ = choose_name(destination, task.name, clock=clock)
    statement = task.copy_statement
    log.info("export started", extra=fields(task=task.name, file=destination.uri(name)))
    deleted: int | None = None
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = task.delete is None
        with conn.transaction(), conn.cursor() as cursor:
            upload = destination.open(name)
            pipeline = BlockPipeline(upload, level=gzip_level, chunk_size=destination.chunk_size)
            try:
                with cursor.copy(statement) as copy:
                    for block in blocks(copy.read):
                        pipeline.put(block)
                rows = cursor.rowcount
                uri = pipeline.complete()
            except BaseException:
                pipeline.abort()
                raise
            log.info(
                "export stored and verified",
                extra=fields(task=task.name, rows=rows, bytes=upload.bytes_written, uri=uri),
            )
            if task.delete is not None:
                cursor.execute(task.delete)
                deleted = _rows_changed(cursor)
                while cursor.nextset():
                    deleted += _rows_changed(cursor)
        # Leaving the transaction block committed it.
    except psycopg.Error as error:
        raise classify_database_error(error, conn, task.name) from None
    if deleted is not None:
        log.info("exported rows deleted", extra=fields(task=task.name, deleted=deleted))
    return TaskOutcome(
        name=task.name,
        rows=rows,
        bytes=upload.bytes_written,
        uri=uri,
        duration_seconds=time.monotonic() - started,
        finished_at=datetime.now(UTC),
        deleted=deleted,
        file_name=name,
    )


def _rows_changed(cursor: psycopg.Cursor[Any]) -> int:
    """Rows a statement of the delete query changed: a SELECT among them (a lock, a check) counts none."""
    command = (cursor.statusmessage or "").split(" ", 1)[0].upper()
    return 0 if command in ("SELECT", "") else max(cursor.rowcount, 0)


def apply_retention(destination: Destination, task: str, keep_last: int, *, protect: str) -> list[str]:
    """Remove this task's files beyond the `keep_last` newest. Best effort: the export itself is done, so a
    failure here is logged, not raised."""
    try:
        names = expired(destination.list_names(task), task, keep_last, protect=protect)
        destination.delete(names)
    except ExportError as failure:
        log.warning("retention failed", extra=fields(task=task, error=failure.message))
        return []
    if names:
        log.info("retention removed old files", extra=fields(task=task, removed=names))
    return names


def sweep(destination: Destination, task: str, before: datetime) -> None:
    """Best effort: leftovers cost storage, not correctness, so a failure here does not stop the export."""
    try:
        removed = destination.sweep_stale(task, before)
    except ExportError as failure:
        log.warning(
            "could not look for leftovers of interrupted runs", extra=fields(task=task, error=failure.message)
        )
        return
    if removed:
        log.info("removed leftovers of an interrupted run", extra=fields(task=task, removed=removed))


# -- the run ---------------------------------------------------------------------------------------------


def run_tasks(
    dsn: str,
    destination: Destination,
    tasks: list[ExportTask],
    *,
    gzip_level: int,
    keep_last: int | None,
    on_done: Callable[[TaskOutcome], None],
) -> None:
    """Run the tasks in order, stopping at the first failure (raised as ExportError)."""
    run_started = datetime.now(UTC)
    destination.check()
    for task in tasks:
        sweep(destination, task.name, run_started)
    with connect(dsn) as conn:
        for task in tasks:
            outcome = export_task(conn, destination, task, gzip_level=gzip_level)
            if keep_last is not None:
                apply_retention(destination, task.name, keep_last, protect=outcome.file_name)
            on_done(outcome)
