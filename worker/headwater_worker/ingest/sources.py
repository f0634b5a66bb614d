"""Readers that turn an input (CSV file, Excel file, JSON records) into chunks of text columns.

A reader first checks what can refuse the whole input — an empty file, a header without the required
columns (often a wrong delimiter), no data rows — and raises `BatchRejected` with the reason; then it
streams chunks of at most `chunk_rows` records, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from .errors import BatchRejected
from .mapping import Mapping
from .transform import ROW

CHUNK_ROWS = 100_000
READ_BLOCK = 1 << 20
CSV_BLOCK = 8 << 20
DELIMITERS = (",", ";", "\t", "|")


@dataclass
class Chunks:
    """The source's columns (canonical names, in order) and an iterator of their chunks."""

    columns: list[str]
    chunks: Iterator[pl.DataFrame]
    encoding: str = "utf-8"
    delimiter: str | None = None


Opener = Callable[[], Chunks]


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    size: int
    encoding: str  # "utf-8" or "latin-1"
    bom: bool


def inspect_file(path: Path) -> FileFacts:
    """One pass over the file: its SHA-256, size, and whether it is UTF-8 (else read as Latin-1)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    size = 0
    first = b""
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            if not first:
                first = block[:3]
            size += len(block)
            digest.update(block)
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    return FileFacts(digest.hexdigest(), size, "utf-8" if utf8 else "latin-1", first == codecs.BOM_UTF8)


# -- columns ----------------------------------------------------------------------------------------


def _match_header(header: Sequence[str], mapping: Mapping) -> dict[str, str]:
    """Header names → the mapping's source names, matching after trimming and ignoring case."""
    wanted = {name.strip().casefold(): name for name in mapping.columns}
    renames: dict[str, str] = {}
    for name in header:
        canonical = wanted.get(name.strip().lstrip("\ufeff").casefold())
        if canonical is not None and canonical not in renames.values():
            renames[name] = canonical
    return renames


def check_header(header: Sequence[str], mapping: Mapping, *, delimiter: str | None = None) -> dict[str, str]:
    renames = _match_header(header, mapping)
    found = set(renames.values())
    missing = [mapping.source_of(c) for c in mapping.required if mapping.source_of(c) not in found]
    if missing:
        shown = ", ".join(repr(name) for name in missing)
        hint = ""
        if delimiter is not None and len(header) <= 1:
            hint = f"; the header has a single column: is the delimiter {delimiter!r} right?"
        raise BatchRejected(
            "MissingColumns",
            f"missing required columns {shown} (header: {', '.join(repr(h) for h in header)[:300]}){hint}",
        )
    return renames


# -- CSV --------------------------------------------------------------------------------------------


def _first_line(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        return handle.readline().lstrip("\ufeff").rstrip("\r\n")


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def choose_delimiter(line: str, mapping: Mapping) -> str:
    """The mapping's delimiter, else the one that finds the most mapped columns (then the most fields)."""
    if mapping.csv.delimiter:
        return mapping.csv.delimiter
    return max(
        DELIMITERS,
        key=lambda d: (len(_match_header(_split(line, d), mapping)), len(_split(line, d)), d == ","),
    )


def _transcode(path: Path, encoding: str, folder: Path | None) -> Path:
    """A UTF-8 copy of a file in another encoding, in the scratch folder (streamed)."""
    handle, name = tempfile.mkstemp(suffix=".csv", dir=folder)
    with open(handle, "wb") as out, path.open("r", encoding=encoding, newline="") as source:
        while block := source.read(READ_BLOCK):
            out.write(block.encode("utf-8"))
    return Path(name)


def _record_end(block: bytes, *, last: bool) -> int:
    """Just after the first (or last) line break of `block` that ends a record, 0 when none does. A line
    break ends a record when an even number of double quotes comes before it (else it is inside a quoted
    value)."""
    if not last:
        start = 0
        while (newline := block.find(b"\n", start)) >= 0:
            if block.count(b'"', 0, newline) % 2 == 0:
                return newline + 1
            start = newline + 1
        return 0
    total, after, end = block.count(b'"'), 0, len(block)
    while (newline := block.rfind(b"\n", 0, end)) >= 0:
        after += block.count(b'"', newline, end)
        if (total - after) % 2 == 0:
            return newline + 1
        end = newline
    return 0


def record_blocks(handle: BinaryIO, size: int = CSV_BLOCK) -> Iterator[bytes]:
    """The data records of a CSV stream (its header record skipped), in blocks of whole records of about
    `size` bytes: what is read at a time, so that memory stays bounded whatever the file's size."""
    carry = b""
    header = True
    while True:
        data = handle.read(size)
        if not data:
            if carry and not header:
                yield carry
            return
        block = carry + data
        if header:
            end = _record_end(block, last=False)
            if end == 0:
                carry = block
                continue
            block, header = block[end:], False
        end = _record_end(block, last=True)
        carry = block[end:]
        if end:
            yield block[:end]


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names, a repeated one suffixed `_duplicated_<n>` (as polars names them)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        if name in seen:
            unique.append(f"{name}_duplicated_{seen[name]}")
            seen[name] += 1
        else:
            seen[name] = 0
            unique.append(name)
    return unique


def csv_chunks(
    path: Path,
    mapping: Mapping,
    facts: FileFacts,
    *,
    chunk_rows: int = CHUNK_ROWS,
    scratch: Path | None = None,
) -> Chunks:
    if facts.size == 0:
        raise BatchRejected("EmptyFile", "the file is empty (0 bytes)")
    encoding = facts.encoding if mapping.csv.encoding == "auto" else mapping.csv.encoding
    line = _first_line(path, encoding)
    if not line.strip():
        raise BatchRejected("EmptyFile", "the file has no header line")
    delimiter = choose_delimiter(line, mapping)
    header = unique_names(_split(line, delimiter))
    renames = check_header(header, mapping, delimiter=delimiter)
    readable = path if encoding == "utf-8" else _transcode(path, encoding, scratch)
    schema = dict.fromkeys(header, pl.String)

    def generate() -> Iterator[pl.DataFrame]:
        rows = 0
        waiting: list[pl.DataFrame] = []  # fewer than chunk_rows rows, for the next chunk
        try:
            with readable.open("rb") as handle:
                for block in record_blocks(handle):
                    parsed = pl.read_csv(
                        block,
                        has_header=False,
                        schema=schema,
                        separator=delimiter,
                        truncate_ragged_lines=True,
                        row_index_name=ROW,
                        row_index_offset=rows + 1,
                        raise_if_empty=False,
                        encoding="utf8",
                    )
                    rows += parsed.height
                    frame = pl.concat([*waiting, parsed]) if waiting else parsed
                    whole = frame.height - frame.height % chunk_rows
                    for start in range(0, whole, chunk_rows):
                        yield frame.slice(start, chunk_rows).rename(renames)
                    waiting = [frame.slice(whole)] if whole < frame.height else []
            if waiting:
                yield waiting[0].rename(renames)
            if rows == 0:
                raise BatchRejected("NoRows", "the file has a header but no data rows")
        except pl.exceptions.PolarsError as error:
            raise BatchRejected("UnreadableFile", f"cannot read the file as CSV: {error}") from None
        finally:
            if readable != path:
                readable.unlink(missing_ok=True)

    columns = [renames.get(name, name) for name in header]
    return Chunks(columns=columns, chunks=generate(), encoding=encoding, delimiter=delimiter)


# -- Excel ------------------------------------------------------------------------------------------


def cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def excel_chunks(path: Path, mapping: Mapping, facts: FileFacts, *, chunk_rows: int = CHUNK_ROWS) -> Chunks:
    """The first sheet of an .xlsx workbook; its first non-empty row is the header."""
    import openpyxl

    if facts.size == 0:
        raise BatchRejected("EmptyFile", "the file is empty (0 bytes)")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged workbook
        raise BatchRejected("UnreadableFile", f"cannot read the file as an Excel workbook: {error}") from None
    sheet = workbook.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header: list[str] = []
    for row in rows:
        if any(value is not None and str(value).strip() for value in row):
            header = [cell_text(value) or f"column_{index + 1}" for index, value in enumerate(row)]
            break
    if not header:
        workbook.close()
        raise BatchRejected("EmptyFile", "the workbook's first sheet is empty")
    renames = check_header(header, mapping)
    columns = [renames.get(name, name) for name in header]

    def generate() -> Iterator[pl.DataFrame]:
        number = 0
        try:
            while True:
                block: list[list[str | None]] = [[] for _ in columns]
                numbers: list[int] = []
                for row in rows:
                    if not any(value is not None for value in row):
                        continue
                    number += 1
                    numbers.append(number)
                    for index in range(len(columns)):
                        block[index].append(cell_text(row[index]) if index < len(row) else None)
                    if len(numbers) >= chunk_rows:
                        break
                if not numbers:
                    break
                data: dict[str, Any] = {ROW: numbers}
                data.update({name: values for name, values in zip(columns, block, strict=True)})
                yield pl.DataFrame(data, schema={ROW: pl.Int64, **dict.fromkeys(columns, pl.String)})
        finally:
            workbook.close()
        if number == 0:
            raise BatchRejected("NoRows", "the sheet has a header but no data rows")

    return Chunks(columns=columns, chunks=generate())


# -- JSON records (API responses) -----------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def record_chunks(
    records: Sequence[dict[str, Any]], mapping: Mapping, *, chunk_rows: int = CHUNK_ROWS
) -> Chunks:
    """Flat JSON records (an API page, usually small) as text columns."""
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    renames = check_header(columns, mapping) if records else {}
    if not records:
        raise BatchRejected("NoRows", "the response holds no records")
    canonical = [renames.get(name, name) for name in columns]

    def generate() -> Iterator[pl.DataFrame]:
        for start in range(0, len(records), chunk_rows):
            part = records[start : start + chunk_rows]
            data: dict[str, Any] = {ROW: list(range(start + 1, start + len(part) + 1))}
            for name, target in zip(columns, canonical, strict=True):
                data[target] = [_text(record.get(name)) for record in part]
            yield pl.DataFrame(data, schema={ROW: pl.Int64, **dict.fromkeys(canonical, pl.String)})

    return Chunks(columns=canonical, chunks=generate())


def records_sha256(records: Sequence[dict[str, Any]], *identity: str) -> str:
    digest = hashlib.sha256()
    for part in identity:
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(json.dumps(list(records), sort_keys=True, separators=(",", ":"), default=str).encode())
    return digest.hexdigest()


def is_excel(path: Path) -> bool:
    return path.suffix.lower() in (".xlsx", ".xlsm", ".xls")


def file_chunks(path: Path, mapping: Mapping, facts: FileFacts, *, chunk_rows: int = CHUNK_ROWS) -> Chunks:
    if is_excel(path):
        if path.suffix.lower() == ".xls":
            raise BatchRejected("UnsupportedFormat", "legacy .xls workbooks are not supported: save as .xlsx")
        return excel_chunks(path, mapping, facts, chunk_rows=chunk_rows)
    return csv_chunks(path, mapping, facts, chunk_rows=chunk_rows)


__all__ = [
    "Chunks",
    "FileFacts",
    "Opener",
    "check_header",
    "csv_chunks",
    "excel_chunks",
    "file_chunks",
    "inspect_file",
    "record_chunks",
    "records_sha256",
]
