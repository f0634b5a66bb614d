"""Sampling a source for generation: what a file's sheets begin and end with, and how they are laid out.

A sheet's sample holds its first rows and its last ones (notes under the data sit at the end of a long
file, where the first rows never reach), its merged cells, and the structure found in it: the header row,
the title rows above it and the notes rows below the data. Rows are read as a collector reads them (the
CSV reader and the workbook reader of `source`), so what generation infers holds at run time.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from . import helpers
from .contract import Cell
from .sample import SAMPLE_LAST_ROWS, SAMPLE_ROWS, Sample, SheetSample
from .source import SourceError, xlsx_rows

# Workbooks larger than this are sampled without their merged cells: finding them needs the whole
# workbook in memory, the rows do not.
MERGED_CELLS_MAX_BYTES = 32 << 20


@dataclass(frozen=True)
class Structure:
    header_row: int | None
    title_rows: list[int] = field(default_factory=list)
    notes_rows: list[list[Cell]] = field(default_factory=list)


def _filled(row: Sequence[Cell]) -> int:
    return sum(1 for cell in row if helpers.label(cell))


def _is_number(cell: Cell) -> bool:
    if cell is None or isinstance(cell, bool | datetime):
        return False
    return isinstance(cell, int | float) or helpers.parse_value(cell) is not None


def _numbers(row: Sequence[Cell]) -> int:
    return sum(1 for cell in row if _is_number(cell))


def is_name(cell: Cell) -> bool:
    """Whether a cell reads as a column's name: a word, or a period (a wide table's `2021`, `2021-03`), but
    not a value (numbers that could be years count only from 1900 to 2100)."""
    if cell is None or isinstance(cell, bool | datetime):
        return False
    if isinstance(cell, int | float):
        return cell == int(cell) and 1900 <= cell <= 2100
    text = cell.strip()
    if not text or text.casefold() in helpers.MISSING:
        return False
    kind = helpers.time_kind(text)
    if kind == "year" and text.isdigit():
        return 1900 <= int(text) <= 2100
    if kind in (*helpers.PERIODS, "monthname"):
        return True
    return kind is None and helpers.parse_value(text) is None


def _looks_like_header(row: Sequence[Cell]) -> bool:
    """A header names its columns: its cells are words or periods, not data."""
    filled = [cell for cell in row if helpers.label(cell)]
    return len(filled) >= 2 and sum(1 for cell in filled if is_name(cell)) >= 0.6 * len(filled)


def _is_data(row: Sequence[Cell]) -> bool:
    return _filled(row) >= 2 and _numbers(row) >= 1


def find_structure(rows: Sequence[Sequence[Cell]], last_rows: Sequence[Sequence[Cell]] = ()) -> Structure:
    """The header row (the first row that names its columns and has data under it, as wide as most rows
    that follow), the non-empty rows above it, and the rows after the last data row (notes, sources)."""
    widths = [_filled(row) for row in rows]
    widest = max(widths, default=0)
    header: int | None = None
    for index, row in enumerate(rows):
        if widths[index] < max(2, 0.5 * widest) or not _looks_like_header(row):
            continue
        below = [other for other in rows[index + 1 : index + 8] if _filled(other) >= 2]
        if below and any(_is_data(other) for other in below):
            header = index
            break
    titles = [index for index in range(header or 0) if widths[index]]
    tail = list(last_rows) if last_rows else list(rows[(header or 0) + 1 :])
    last_data = max((index for index, row in enumerate(tail) if _is_data(row)), default=-1)
    notes = [list(row) for row in tail[last_data + 1 :] if _filled(row)]
    return Structure(header, titles, notes)


def _sheet(name: str, rows: Iterable[list[Cell]], merged: list[str], **extra: str) -> SheetSample:
    first: list[list[Cell]] = []
    last: deque[list[Cell]] = deque(maxlen=SAMPLE_LAST_ROWS)
    total = 0
    for row in rows:
        total += 1
        if len(first) < SAMPLE_ROWS:
            first.append(row)
        else:
            last.append(row)
    structure = find_structure(first, list(last))
    return SheetSample(
        name=name,
        rows=first,
        merged_cells=merged,
        total_rows=total,
        header_row=structure.header_row,
        title_rows=structure.title_rows,
        notes_rows=structure.notes_rows,
        last_rows=list(last),
        delimiter=extra.get("delimiter"),
        encoding=extra.get("encoding"),
    )


def _encoding(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return "utf-8" if encoding == "utf-8-sig" else encoding
    return "latin-1"


def _merged_cells(data: bytes) -> dict[str, list[str]]:
    if len(data) > MERGED_CELLS_MAX_BYTES:
        return {}
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    try:
        return {
            sheet.title: [str(cells) for cells in sheet.merged_cells.ranges] for sheet in workbook.worksheets
        }
    finally:
        workbook.close()


def sample_file(data: bytes, source_type: str, name: str) -> Sample:
    """The sample of a CSV file (one sheet, named `name`) or an XLSX workbook (every sheet)."""
    if source_type == "CSV":
        text = helpers.decode(data)
        delimiter = helpers.detect_delimiter(text)
        rows = helpers.csv_rows(data, delimiter)
        sheet = _sheet(name, (list(row) for row in rows), [], delimiter=delimiter, encoding=_encoding(data))
        return Sample("CSV", sheets=[sheet], data=data)
    if source_type == "XLSX":
        from .source import sheet_names

        names = sheet_names(data)
        merged = _merged_cells(data)
        sheets = [_sheet(sheet, xlsx_rows(data, sheet), merged.get(sheet, [])) for sheet in names]
        return Sample("XLSX", sheets=sheets, data=data)
    raise SourceError("SourceUnreadable", f"a {source_type} source is not a file to sample")
