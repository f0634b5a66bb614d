"""Staging retention: a connector's staging rows go once their batch is older than `stagingRetentionDays`.

Staging keeps every record of every batch with its raw values, which no other table needs once the batch
has been looked at: without pruning it grows with every run. Only staging rows go. The batch registry,
the execution log and the quality checks (with their samples) stay: they are the audit trail, and small.
Each pruned batch's registry row says so in its metadata (`stagingPruned`: when, how many rows), which
also keeps later runs from looking for its rows again.

Rows go in chunks, each its own transaction, so that no statement holds its row locks, or the oldest
snapshot the server must keep, for long. Only the staging table of the connector's mapping is pruned, for
the batches of that mapping's dataset whose rows went to that table (each batch's registry row names it in
its metadata, `stagingTable`): batches loaded under an earlier mapping with another staging table keep their
rows until a run with that mapping. A batch recorded before `stagingTable` was (its table unknown) is pruned
only once rows of its own turn up in the current table; until then it is looked at again on every run.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from ..logs import error_line, fields
from .config import IngestConfig
from .mapping import Mapping

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000  # each chunk holds its locks for milliseconds: a million rows went in 0.6 s
# A watching connector (a Deployment) prunes when it starts, then at most this often.
WATCH_INTERVAL_SECONDS = 3600


def expired_batches(
    conn: psycopg.Connection[Any], connector: str, dataset: str, table: str, days: int
) -> list[tuple[Any, bool]]:
    """The connector's batches of `dataset` staged in `table`, or in a table not recorded, that started
    more than `days` days ago and still have their staging rows, oldest first: (id, whether the batch
    records its staging table)."""
    rows = conn.execute(
        "SELECT id, metadata ? 'stagingTable' FROM ingest_batch WHERE connector = %s AND dataset = %s "
        "AND coalesce(metadata ->> 'stagingTable', %s) = %s "
        "AND started_at < now() - make_interval(days => %s) AND NOT metadata ? 'stagingPruned' "
        "ORDER BY started_at",
        (connector, dataset, table, table, days),
    ).fetchall()
    return [(row[0], bool(row[1])) for row in rows]


def has_rows(conn: psycopg.Connection[Any], table: sql.Identifier, batch_id: Any) -> bool:
    """Whether `table` holds staging rows of the batch (batch ids are unique: they can be no other's)."""
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT FROM {table} WHERE batch_id = %s)").format(table=table), (batch_id,)
    ).fetchone()
    return bool(row and row[0])


def delete_batch_rows(
    conn: psycopg.Connection[Any], table: sql.Identifier, batch_id: Any, *, chunk_rows: int = CHUNK_ROWS
) -> int:
    """Delete one batch's staging rows, `chunk_rows` at a time (the connection autocommits: each chunk
    commits); returns how many went. The registry row then says so."""
    statement = sql.SQL(
        "DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE batch_id = %s LIMIT %s))"
    ).format(table=table)
    deleted = 0
    while True:
        with conn.cursor() as cursor:
            cursor.execute(statement, (batch_id, chunk_rows))
            count = max(cursor.rowcount, 0)
        deleted += count
        if count < chunk_rows:
            break
    conn.execute(
        "UPDATE ingest_batch SET metadata = metadata || jsonb_build_object('stagingPruned', "
        "jsonb_build_object('at', now(), 'rows', %s::bigint)) WHERE id = %s",
        (deleted, batch_id),
    )
    return deleted


def prune_staging(
    conn: psycopg.Connection[Any],
    connector: str,
    mapping: Mapping,
    days: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Delete the staging rows of the connector's batches older than `days` days (0 keeps every row);
    returns how many went."""
    if days == 0:
        return 0
    table = sql.Identifier(mapping.staging_table)
    # A batch that does not name its staging table is pruned here only if its rows are here: they may be
    # in the table of an earlier mapping, which marking it pruned would leave behind for good.
    batches = [
        batch
        for batch, recorded in expired_batches(conn, connector, mapping.dataset, mapping.staging_table, days)
        if recorded or has_rows(conn, table, batch)
    ]
    deleted = sum(delete_batch_rows(conn, table, batch, chunk_rows=chunk_rows) for batch in batches)
    if batches:
        log.info(
            "staging rows pruned",
            extra=fields(table=mapping.staging_table, batches=len(batches), rows=deleted, retentionDays=days),
        )
    return deleted


def prune(conn: psycopg.Connection[Any], config: IngestConfig, mapping: Mapping) -> int:
    """`prune_staging` at the start of a run. A failure (a role without DELETE on staging, a lock
    timeout) is logged and left for the next run: loading matters more than housekeeping."""
    try:
        return prune_staging(conn, config.connector, mapping, config.staging_retention_days)
    except psycopg.Error as error:
        log.warning("staging rows could not be pruned", extra=fields(error=error_line(error)))
        return 0
