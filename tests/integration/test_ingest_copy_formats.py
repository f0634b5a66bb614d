"""The COPY bodies against a real PostgreSQL: rows built in the binary format read back exactly as the same
rows in the text format, and a table with a type the binary encoder does not write loads in text."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from headwater_worker.ingest import copyformat
from headwater_worker.ingest.copyformat import Column, CopyRows, Kind
from headwater_worker.ingest.runner import run_once
from headwater_worker.ingest.tables import column_types
from psycopg import sql

pytestmark = [pytest.mark.postgres]

TABLE = """
CREATE TABLE {name} (
    n integer, flag boolean, small smallint, big bigint, reading double precision, day date,
    at timestamptz, local timestamp, batch uuid, note text, code varchar(20), errors jsonb, doc json,
    raw text[] {extra}
)
"""
KINDS: dict[str, Kind] = {
    "n": "int",
    "flag": "bool",
    "small": "int",
    "big": "int",
    "reading": "float",
    "day": "date",
    "at": "datetime",
    "local": "datetime",
    "batch": "uuid",
    "note": "str",
    "code": "str",
    "errors": "json",
    "doc": "json",
    "raw": "record",
}
NOTES = ["", "tab\there", "line\nbreak", "back\\slash", "é ✓ 漢字", "x" * 300, None, '"quoted", {braced}']


def frame(rows: int) -> pl.DataFrame:
    """Every kind of value, NULLs and texts of very different lengths among them."""
    start = dt.datetime(2024, 1, 1, 0, 0, 0, 123456)
    return pl.DataFrame(
        {
            "n": list(range(rows)),
            "flag": [None if i % 7 == 0 else i % 2 == 0 for i in range(rows)],
            "small": [None if i % 5 == 0 else i - 100 for i in range(rows)],
            "big": [2**40 + i for i in range(rows)],
            "reading": [None if i % 3 == 0 else i / 7 - 2 for i in range(rows)],
            "day": [dt.date(1999, 12, 30) + dt.timedelta(days=i) for i in range(rows)],
            "at": [None if i % 11 == 0 else start + dt.timedelta(hours=i) for i in range(rows)],
            "local": [start - dt.timedelta(days=90 * i) for i in range(rows)],
            "note": [NOTES[i % len(NOTES)] for i in range(rows)],
            "code": [f"c{i}" for i in range(rows)],
            "errors": ["[]" if i % 4 else f'["row {i}: \\"bad\\""]' for i in range(rows)],
            "doc": [None if i % 6 == 0 else f'{{"i": {i}}}' for i in range(rows)],
            "raw": [{"A": str(i), "B": NOTES[(i + 3) % len(NOTES)]} for i in range(rows)],
        }
    )


def load(
    conn: psycopg.Connection[Any], table: str, data: pl.DataFrame, constants: dict[str, Any]
) -> CopyRows:
    types = column_types(conn, sql.Identifier(table))
    rows = CopyRows([Column(name, KINDS.get(name, "float"), kind) for name, kind in types.items()])
    with conn.cursor() as cursor, cursor.copy(rows.statement(sql.Identifier(table))) as copy:
        copy.write(rows.header)
        copy.write(rows.encode(data, constants))
        copy.write(rows.trailer)
    return rows


def test_binary_rows_read_back_as_text_rows(
    postgres_conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small matrices: the rows go in several groups and slices.
    monkeypatch.setattr(copyformat, "MATRIX_BYTES", 4096)
    conn = postgres_conn
    conn.execute(TABLE.format(name="in_binary", extra=""))
    conn.execute(TABLE.format(name="in_text", extra=", spare numeric"))  # numeric: no binary here
    data = frame(200)
    constants = {"batch": uuid.uuid4()}
    assert load(conn, "in_binary", data, constants).binary
    assert not load(
        conn, "in_text", data.with_columns(pl.lit(None, pl.Float64).alias("spare")), constants
    ).binary
    columns = ", ".join(KINDS)
    binary = conn.execute(f"SELECT {columns} FROM in_binary ORDER BY n").fetchall()
    text = conn.execute(f"SELECT {columns} FROM in_text ORDER BY n").fetchall()
    assert len(binary) == 200
    assert binary == text
    assert binary[2][-1] == ["2", "x" * 300]
    assert binary[3][-1] == ["3", None]
    assert binary[4][-1] == ["4", '"quoted", {braced}']


def test_an_empty_frame_is_no_rows(postgres_conn: psycopg.Connection[Any]) -> None:
    postgres_conn.execute(TABLE.format(name="empty", extra=""))
    load(postgres_conn, "empty", frame(0), {"batch": uuid.uuid4()})
    assert postgres_conn.execute("SELECT count(*) FROM empty").fetchone() == (0,)


def test_a_final_table_of_ones_own_with_a_numeric_column_loads_in_text(database: str, tmp_path: Path) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        from headwater_worker.ingest import schema

        schema.migrate(database)
        conn.execute(
            "CREATE TABLE energy_numeric (device_id integer NOT NULL, ts timestamptz NOT NULL, "
            "energy_kwh numeric(12, 3), source_file uuid NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (device_id, ts))"
        )
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    custom = tmp_path / "numeric.yaml"
    custom.write_text(mapping.replace("target_table: fact_energy_hourly", "target_table: energy_numeric"))
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a.csv").write_text("Date and Time,Hourly\n2024-01-01 00:00,1.25\n2024-01-01 01:00,2.5\n")
    config = {
        "connector": "tests/numeric",
        "type": "file",
        "mapping": {"path": str(custom)},
        "datasourceId": "meter-1",
        "file": {
            "path": str(incoming),
            "processedPath": str(tmp_path / "processed"),
            "rejectedPath": str(tmp_path / "rejected"),
            "stableSeconds": 0,
        },
    }
    from headwater_worker.ingest.config import IngestConfig

    summary = run_once(IngestConfig.model_validate(config), database, tmp_path / "none")
    assert summary.run.rows_loaded == 2
    with psycopg.connect(database) as conn:
        values = conn.execute("SELECT energy_kwh::text FROM energy_numeric ORDER BY ts").fetchall()
        staged = conn.execute("SELECT count(*) FROM staging_energy_hourly").fetchone()
    assert values == [("1.250",), ("2.500",)]
    assert staged == (2,)


@pytest.fixture
def postgres_conn(database: str) -> Any:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn
