"""A mapping's tables in the database: created or extended when the mapping declares them, checked, and
read into the shape the load statements are built from (`statements`)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from ..logs import fields
from . import statements
from .errors import FailureReason, IngestError
from .mapping import Mapping
from .schema import MIGRATION_LOCK_KEY

log = logging.getLogger(__name__)


def column_types(conn: psycopg.Connection[Any], table: sql.Identifier) -> dict[str, str]:
    """A table's columns and their types, as `format_type()` names them."""
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table.as_string(conn),),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def unique_keys(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, ...]]:
    """The column lists `ON CONFLICT` can name: the primary key first, then each full unique index."""
    rows = conn.execute(
        "SELECT i.indisprimary, array_agg(a.attname ORDER BY k.position) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL "
        "GROUP BY i.indexrelid, i.indisprimary ORDER BY i.indisprimary DESC, i.indexrelid",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return [tuple(columns) for _, columns in rows]


def _existing(conn: psycopg.Connection[Any], table: str) -> statements.ExistingTable | None:
    row = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(table).as_string(conn),)).fetchone()
    if row is None or row[0] is None:
        return None
    keys = unique_keys(conn, table)
    primary = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisprimary)",
        (sql.Identifier(table).as_string(conn),),
    ).fetchone()
    key = keys[0] if keys and primary and primary[0] else ()
    return statements.ExistingTable(column_types(conn, sql.Identifier(table)), key)


def ensure_declared(conn: psycopg.Connection[Any], mapping: Mapping) -> list[str]:
    """Create or extend the tables a mapping declares, under the schema's migration lock, in one
    transaction; returns the changes made. A change that would lose data is refused (SchemaMismatch)."""
    spec = mapping.table_spec()
    if spec is None:
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            plan = statements.plan(spec, _existing(conn, spec.name), _existing(conn, spec.staging))
        except statements.SchemaChangeError as refusal:
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH, f"mapping {mapping.dataset}: {refusal}"
            ) from None
        for statement in plan.statements:
            conn.execute(statement)
    for change in plan.changes:
        log.info("declared table changed", extra=fields(dataset=mapping.dataset, change=change))
    return plan.changes


def check(conn: psycopg.Connection[Any], mapping: Mapping) -> None:
    """The mapping's target and staging tables exist with its columns; else a clear SchemaMismatch."""
    wanted = {
        mapping.target_table: [*mapping.db_columns, *statements.INJECTED],
        mapping.staging_table: [*mapping.db_columns, *statements.STAGING_BOOKKEEPING],
    }
    for table, columns in wanted.items():
        existing = _existing(conn, table)
        if existing is None:
            hint = "" if mapping.table is not None else " (declare it under `table:` to have it created)"
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH,
                f"table {table} of mapping {mapping.dataset} does not exist{hint}",
            )
        missing = [c for c in columns if c not in existing.columns]
        if missing:
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH,
                f"table {table} of mapping {mapping.dataset} has no column {', '.join(missing)}",
            )


def prepare(conn: psycopg.Connection[Any], mapping: Mapping) -> statements.LoadShape:
    """Everything before a mapping's first batch: its declared tables, the check, the load shape."""
    ensure_declared(conn, mapping)
    check(conn, mapping)
    return load_shape(conn, mapping)


def load_shape(conn: psycopg.Connection[Any], mapping: Mapping) -> statements.LoadShape:
    conflict = mapping.conflict_resolution
    types = column_types(conn, sql.Identifier(mapping.target_table))
    key: tuple[str, ...] = tuple(conflict.on_columns)
    if conflict.strategy != "append" and conflict.on_columns:
        candidates = unique_keys(conn, mapping.target_table)
        matches = []
        for candidate in candidates:
            try:
                matches.append(statements.conflict_key(conflict.on_columns, candidate))
            except ValueError:
                continue
        if not matches:
            known = "; ".join(f"({', '.join(c)})" for c in candidates) or "none"
            raise IngestError(
                FailureReason.SCHEMA_MISMATCH,
                f"mapping {mapping.dataset}: conflict_resolution.on_columns "
                f"({', '.join(conflict.on_columns)}) match no primary key or unique index of "
                f"{mapping.target_table} (it has: {known})",
            )
        key = matches[0]
    written_at = next((name for name in statements.WRITTEN_AT_NAMES if name in types), None)
    return statements.LoadShape(
        target=mapping.target_table,
        staging=mapping.staging_table,
        mapped=tuple(mapping.db_columns),
        strategy=conflict.strategy,
        key=key,
        update_columns=tuple(conflict.update_columns),
        types=types,
        written_at=written_at,
    )
