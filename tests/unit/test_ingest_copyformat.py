"""COPY bodies without a database: which tables get the binary format, and what the text format writes.
(tests/integration/test_ingest_copy_formats.py reads both back from PostgreSQL.)"""

from __future__ import annotations

import polars as pl
import pytest
from headwater_worker.ingest.copyformat import SIGNATURE, Column, CopyRows, copy_text
from headwater_worker.ingest.errors import IngestError


@pytest.mark.parametrize(
    ("kind", "pg_type", "binary"),
    [
        ("datetime", "timestamp with time zone", True),
        ("datetime", "timestamp(3) with time zone", True),
        ("str", "character varying(20)", True),
        ("json", "jsonb", True),
        ("record", "text[]", True),
        ("int", "double precision", True),
        ("float", "integer", False),
        ("float", "numeric(12,3)", False),
        ("float", "real", False),
        ("str", "integer", False),
    ],
)
def test_binary_when_the_column_takes_the_kind_of_value(kind: str, pg_type: str, binary: bool) -> None:
    assert Column("c", kind, pg_type).binary is binary  # type: ignore[arg-type]


def test_one_column_without_binary_makes_the_whole_copy_text() -> None:
    rows = CopyRows([Column("a", "int", "integer"), Column("b", "float", "numeric")])
    assert not rows.binary
    assert (rows.header, rows.trailer) == (b"", b"")
    assert CopyRows([Column("a", "int", "integer")]).header == SIGNATURE


def test_a_value_out_of_the_columns_range_fails_the_load() -> None:
    rows = CopyRows([Column("a", "int", "integer")])
    with pytest.raises(IngestError, match="a: a value is out of range for type integer"):
        rows.encode(pl.DataFrame({"a": [1, 2**31]}), {})


def test_text_rows_escape_and_write_records_as_text_arrays() -> None:
    frame = pl.DataFrame(
        {
            "raw": [{"a": 'x"y', "b": "-1"}, {"a": None, "b": "NULL"}, {"a": "t\tab", "b": " "}],
            "ok": [True, False, None],
        }
    )
    assert copy_text(frame) == b'{"x\\\\"y",-1}\t1\n{NULL,"NULL"}\t0\n{t\\tab," "}\t\\N\n'
