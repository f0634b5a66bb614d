"""The bodies of the `COPY ... FROM STDIN` statements that write staging and final tables.

PostgreSQL's binary format when every column of the table takes it (the tables of every shipped mapping
do), its text format otherwise (a table of one's own with, say, a `numeric` column).

Why binary: PostgreSQL then takes each value as it comes (a copy, a byte swap), where the text format has
it parse every timestamp, number, UUID, array and JSON document. On the benchmark's million rows this
takes about 40% off PostgreSQL's CPU for staging and a third off the final table's (`bench/ingest.py`).

How, without a Python loop per row: a row of the format is its number of fields, then each field as its
length in bytes (-1 for NULL) and its bytes. Every column becomes pieces of bytes, one per row: blocks of
one width (lengths, numbers, constants) or text of varying length. The pieces are laid side by side in a
matrix of one row per record, each as wide as its widest value, and a mask of the bytes each record uses
(text shorter than the widest, a NULL's missing value) reads the matrix out, row after row, as the
stream. Rows whose text is far wider than the others' go in matrices of their own, so that one long value
does not widen every row, and a matrix never exceeds `MATRIX_BYTES`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping as MappingOf
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
from psycopg import sql

from .errors import FailureReason, IngestError

# What a column of a frame holds: a mapping's coercion type, or one of the pipeline's own columns (`json`:
# the errors, `record`: the source's values, a struct of text; `uuid`: a batch id, always a constant).
Kind = Literal["bool", "int", "float", "date", "datetime", "str", "json", "record", "uuid"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # then the flags and the header extension's length: none
TRAILER = b"\xff\xff"
MATRIX_BYTES = 32 << 20
TEXT_OID = 25
# PostgreSQL counts dates and timestamps from 2000-01-01, polars from 1970-01-01.
EPOCH_DAYS = 10_957
EPOCH_MICROSECONDS = EPOCH_DAYS * 86_400_000_000

# The fixed-width types: the numpy type of their binary form, and the kinds of value each takes.
FIXED: dict[str, tuple[str, frozenset[str]]] = {
    "boolean": ("u1", frozenset({"bool"})),
    "smallint": (">i2", frozenset({"int"})),
    "integer": (">i4", frozenset({"int"})),
    "bigint": (">i8", frozenset({"int"})),
    "double precision": (">f8", frozenset({"float", "int"})),
    "date": (">i4", frozenset({"date"})),
    "timestamp with time zone": (">i8", frozenset({"datetime"})),
    "timestamp without time zone": (">i8", frozenset({"datetime"})),
    "uuid": ("V16", frozenset({"uuid"})),
}
# The text types: what precedes the text in their binary form (jsonb's format version).
TEXTS: dict[str, str] = {"text": "", "character varying": "", "json": "", "jsonb": "\x01"}
TEXT_KINDS = frozenset({"str", "json"})
TEXT_ARRAY = "text[]"
# What `encode` returns: bytes, or a view of numpy's buffer where copying it into bytes would be a waste.
Payload = bytes | memoryview


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    pg_type: str  # as `format_type()` names it: `integer`, `timestamp(3) with time zone`, `text[]`

    @property
    def base_type(self) -> str:
        """The type without its modifiers: `character varying(20)` is `character varying`."""
        return re.sub(r"\(\d+(,\d+)?\)", "", self.pg_type)

    @property
    def binary(self) -> bool:
        """Whether this module writes this kind of value in the type's binary form."""
        base = self.base_type
        if base in FIXED:
            return self.kind in FIXED[base][1]
        if base in TEXTS:
            return self.kind in TEXT_KINDS
        return base == TEXT_ARRAY and self.kind == "record"


class CopyRows:
    """How to write rows of a table with `COPY`: binary when every column takes it, else text."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.binary = all(column.binary for column in self.columns)
        self.header = SIGNATURE if self.binary else b""
        self.trailer = TRAILER if self.binary else b""

    def statement(self, table: sql.Identifier) -> sql.Composed:
        names = sql.SQL(", ").join(sql.Identifier(column.name) for column in self.columns)
        options = sql.SQL(" WITH (FORMAT binary)" if self.binary else "")
        return sql.SQL("COPY {} ({}) FROM STDIN{}").format(table, names, options)

    def encode(self, frame: pl.DataFrame, constants: MappingOf[str, Any]) -> Payload:
        """The rows of `frame` (header and trailer aside); `constants` give the value of a column for
        every row (a batch id, a datasource), the frame the other columns."""
        if self.binary:
            return binary_rows(frame, self.columns, constants)
        values = [
            pl.lit(str(constants[c.name])).alias(c.name) if c.name in constants else pl.col(c.name)
            for c in self.columns
        ]
        return copy_text(frame.select(values))


# -- binary ----------------------------------------------------------------------------------------------


class Piece(NamedTuple):
    """A part of every row, `width` bytes at most: the same `constant` for every row, row i of `block`,
    or the next `used[i]` bytes of `text`."""

    width: int
    constant: bytes | None = None
    block: np.ndarray[Any, Any] | None = None  # a row of `width` bytes per row
    text: np.ndarray[Any, Any] | None = None  # the rows' bytes one after the other
    used: np.ndarray[Any, Any] | None = None  # per row; None: every row takes `width` bytes


def _block(values: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    """Values as rows of bytes in `dtype` (big-endian: the network order the format uses)."""
    return np.ascontiguousarray(values, dtype=dtype).view(np.uint8).reshape(len(values), -1)


def _lengths(lengths: np.ndarray[Any, Any]) -> Piece:
    return Piece(4, block=_block(lengths, ">i4"))


def constant_field(column: Column, value: Any) -> bytes:
    """One value's field (its length, then its bytes)."""
    if column.kind == "uuid":
        data = uuid.UUID(str(value)).bytes
    else:
        data = _fixed(column, pl.Series([value])).tobytes()
    return len(data).to_bytes(4, "big") + data


def _fixed(column: Column, series: pl.Series) -> np.ndarray[Any, Any]:
    """The values of a fixed-width column in the type's binary form (a NULL as zero)."""
    dtype = FIXED[column.base_type][0]
    if column.kind == "datetime":
        series = series.dt.epoch("us") - EPOCH_MICROSECONDS
    elif column.kind == "date":
        series = series.to_physical().cast(pl.Int64) - EPOCH_DAYS
    elif column.kind == "bool":
        series = series.cast(pl.UInt8)
    values = series.fill_null(0).to_numpy()
    if np.dtype(dtype).kind == "i" and values.size:
        limits = np.iinfo(np.dtype(dtype))
        if values.min() < limits.min or values.max() > limits.max:
            raise IngestError(
                FailureReason.LOAD_FAILED, f"{column.name}: a value is out of range for type {column.pg_type}"
            )
    return _block(values, dtype)


def _fixed_pieces(column: Column, series: pl.Series) -> list[Piece]:
    block = _fixed(column, series)
    width = block.shape[1]
    if not series.null_count():
        return [Piece(4, width.to_bytes(4, "big")), Piece(width, block=block)]
    null = series.is_null().to_numpy()
    return [_lengths(np.where(null, -1, width)), Piece(width, block=block, used=np.where(null, 0, width))]


def _text_pieces(series: pl.Series, prefix: str = "") -> tuple[list[Piece], np.ndarray[Any, Any]]:
    """A text column's pieces, and the bytes each row's text takes (0 for NULL)."""
    if prefix:
        series = pl.select(pl.concat_str([pl.lit(prefix), pl.lit(series)])).to_series()
    used = series.str.len_bytes().fill_null(0).to_numpy().astype(np.int64)
    lengths = _lengths(np.where(series.is_null().to_numpy(), -1, used))
    width = int(used.max(initial=0))
    if width == 0:
        return [lengths], used
    text = np.frombuffer(series.str.join("").item().encode(), np.uint8)
    if used.min() == width:  # every row's text as long: a block
        return [lengths, Piece(width, block=text.reshape(-1, width))], used
    return [lengths, Piece(width, text=text, used=used)], used


def _array_pieces(series: pl.Series) -> list[Piece]:
    """A struct of text as a one-dimensional `text[]`: its length, its header, then each element as a
    field."""
    fields = series.struct.unnest()
    count = len(fields.columns)
    header = np.array([1, 0, TEXT_OID, count, 1], ">i4").tobytes()  # dimensions, no flags, type, size, base
    size = np.full(len(series), len(header) + 4 * count, np.int64)
    elements: list[Piece] = []
    for name in fields.columns:
        pieces, used = _text_pieces(fields[name].cast(pl.String))
        elements += pieces
        size += used
    return [_lengths(size), Piece(len(header), header), *elements]


def _pieces(column: Column, series: pl.Series) -> list[Piece]:
    base = column.base_type
    if base in FIXED:
        return _fixed_pieces(column, series)
    if base in TEXTS:
        return _text_pieces(series, TEXTS[base])[0]
    return _array_pieces(series)


def _records(rows: int, width: int, start: int, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Bytes `start` to `start + width` of each row of `matrix`, as one value per row (numpy copies such
    values far faster than as columns of single bytes)."""
    kind = np.dtype((np.void, width))
    return np.ndarray((rows,), kind, buffer=matrix, offset=start, strides=(matrix.strides[0],))


def _matrix(pieces: Sequence[Piece], rows: int) -> memoryview:
    """The pieces side by side, read out row after row without the bytes no row uses."""
    width = sum(piece.width for piece in pieces)
    matrix = np.empty((rows, width), np.uint8)
    keep: np.ndarray[Any, Any] | None = None
    start = 0
    for piece in pieces:
        end = start + piece.width
        if piece.used is not None:
            if keep is None:
                keep = np.ones((rows, width), np.bool_)
            np.less(np.arange(piece.width), piece.used[:, None], out=keep[:, start:end])
        if piece.constant is not None:
            _records(rows, piece.width, start, matrix)[:] = np.void(piece.constant)
        elif piece.block is not None:
            _records(rows, piece.width, start, matrix)[:] = _records(rows, piece.width, 0, piece.block)
        else:
            assert keep is not None  # text always comes with `used`
            assert piece.text is not None
            matrix[:, start:end][keep[:, start:end]] = piece.text
        start = end
    return (matrix if keep is None else matrix[keep]).data.cast("B")


def _merged(pieces: Sequence[Piece]) -> list[Piece]:
    """Constants next to each other as one (one copy into the matrix instead of several)."""
    merged: list[Piece] = []
    for piece in pieces:
        if merged and piece.constant is not None and merged[-1].constant is not None:
            merged[-1] = Piece(merged[-1].width + piece.width, merged[-1].constant + piece.constant)
        else:
            merged.append(piece)
    return merged


def _rows(frame: pl.DataFrame, columns: Sequence[Column], constants: MappingOf[str, Any]) -> memoryview:
    count = len(columns).to_bytes(2, "big")
    pieces = [Piece(len(count), count)]
    for column in columns:
        if column.name in constants:
            field = constant_field(column, constants[column.name])
            pieces.append(Piece(len(field), field))
        else:
            pieces += _pieces(column, frame[column.name])
    return _matrix(_merged(pieces), frame.height)


def _text_lengths(columns: Sequence[Column], frame: pl.DataFrame) -> list[pl.Expr]:
    """The length in bytes of every text of a row (each element of an array too)."""
    lengths: list[pl.Expr] = []
    for column in columns:
        kind = frame.schema.get(column.name)
        if isinstance(kind, pl.Struct):
            value = pl.col(column.name).struct
            lengths += [value.field(f.name).cast(pl.String).str.len_bytes() for f in kind.fields]
        elif kind is not None and column.base_type in TEXTS:
            lengths.append(pl.col(column.name).str.len_bytes())
    return lengths


def binary_rows(frame: pl.DataFrame, columns: Sequence[Column], constants: MappingOf[str, Any]) -> Payload:
    """Rows of PostgreSQL's binary COPY format (the header and trailer aside).

    Rows go in groups by the bit length of their widest text (under 16 bytes, under 32, ...), so that no
    matrix is much wider than its rows, and in slices of a group small enough for `MATRIX_BYTES`. Rows of
    a group keep their order."""
    if frame.height == 0:
        return b""
    lengths = _text_lengths(columns, frame)
    if lengths:
        widest = frame.select(pl.max_horizontal(lengths).fill_null(0)).to_series().to_numpy()
        groups = np.frexp(widest.astype(np.float64))[1]  # each row's widest text is under 2 ** group bytes
    else:
        groups = np.zeros(1, np.int64)
    if groups.min() == groups.max():
        parts = {int(groups[0]): frame}
    else:
        split = frame.with_columns(pl.Series("__group", groups)).partition_by(
            "__group", as_dict=True, include_key=False
        )
        parts = {int(key[0]): part for key, part in split.items()}
    out: list[memoryview] = []
    for group, part in parts.items():
        # At most: the field count, 24 bytes a field (a UUID, an array's header), every text at its widest.
        row_bytes = 2 + 24 * len(columns) + len(lengths) * (4 + (1 << group))
        step = max(1, MATRIX_BYTES // row_bytes)
        out += [_rows(part.slice(start, step), columns, constants) for start in range(0, part.height, step)]
    return out[0] if len(out) == 1 else b"".join(out)


# -- text ------------------------------------------------------------------------------------------------


def text_array(columns: Sequence[pl.Expr]) -> pl.Expr:
    """Text values as a PostgreSQL `text[]` literal: `{12.5,"a \\"quoted\\" value",NULL}`.

    A value is double-quoted only when it must be (empty, `NULL`, blank at either end, or holding one of
    `{},"\\`); inside quotes `"` and `\\` take a backslash. Fewer bytes for PostgreSQL to read."""
    items = []
    for value in columns:
        escaped = value.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        items.append(
            pl.when(value.is_null())
            .then(pl.lit("NULL"))
            .when(value.str.contains(r'(?i)^$|^\s|\s$|[{},"\\]|^null$'))
            .then(pl.format('"{}"', escaped))
            .otherwise(value)
        )
    if not items:
        return pl.lit("{}")
    return pl.concat_str([pl.lit("{"), pl.concat_str(items, separator=","), pl.lit("}")])


def copy_text(frame: pl.DataFrame) -> bytes:
    """A DataFrame as the body of `COPY ... FROM STDIN` in PostgreSQL's text format: tab-separated, `\\N`
    for NULL, backslash, tab and line breaks escaped in text columns, booleans as `1` and `0`, a struct of
    text as a `text[]`."""
    arrays = {
        name: text_array([pl.col(name).struct.field(f.name).cast(pl.String) for f in kind.fields])
        for name, kind in frame.schema.items()
        if isinstance(kind, pl.Struct)
    }
    frame = frame.with_columns(value.alias(name) for name, value in arrays.items())
    special = r"[\\\t\n\r]"
    texts = [name for name, kind in frame.schema.items() if kind == pl.String]
    flagged = frame.select(pl.col(texts).str.contains(special).any()).row(0) if texts else ()
    escaped = frame.with_columns(
        *(
            pl.col(name).str.replace_many(["\\", "\t", "\n", "\r"], ["\\\\", "\\t", "\\n", "\\r"])
            for name, needed in zip(texts, flagged, strict=True)
            if needed
        ),
        pl.col(pl.Boolean).cast(pl.UInt8),
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
