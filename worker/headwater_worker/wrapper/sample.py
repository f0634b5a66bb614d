"""What generation sees of a source: the first rows and the structure of a file, or the first pages of an
API. A sample is also what the dry run of a generated module runs against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .contract import Cell

SAMPLE_ROWS = 60
SAMPLE_PAGES = 3
SAMPLE_LAST_ROWS = 12


@dataclass(frozen=True)
class SheetSample:
    """The first rows of one sheet (a CSV file is one sheet named after the file)."""

    name: str
    rows: list[list[Cell]]
    merged_cells: list[str] = field(default_factory=list)  # A1 ranges, like "A1:F1"
    total_rows: int | None = None
    # The structure found in it (row indexes from 0): the header row, the title rows above it, and the
    # notes rows after the data (their cells), which the first rows of a long sheet do not reach.
    header_row: int | None = None
    title_rows: list[int] = field(default_factory=list)
    notes_rows: list[list[Cell]] = field(default_factory=list)
    last_rows: list[list[Cell]] = field(default_factory=list)
    # How a CSV file reads: its delimiter and the encoding it decodes with.
    delimiter: str | None = None
    encoding: str | None = None


@dataclass(frozen=True)
class PageSample:
    """One response of the API, as fetched."""

    url: str
    params: dict[str, str]
    status: int
    content_type: str
    headers: dict[str, str]  # only the ones that matter for paging: Link, Content-Type
    body: str


@dataclass(frozen=True)
class Sample:
    source_type: Literal["API", "CSV", "XLSX"]
    url: str | None = None
    sheets: list[SheetSample] = field(default_factory=list)
    pages: list[PageSample] = field(default_factory=list)
    # The whole file: a module's dry run reads it as a run would.
    data: bytes | None = None
