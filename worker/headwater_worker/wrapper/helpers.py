"""What a generated collector calls: value and time parsing, tables read into points, JSON records and pages.

A collector imports this module and nothing else of Headwater (``from headwater_worker.wrapper import
helpers``), so everything here is pure: it reads what the collector hands it and never reaches a file, a
process or the network. The generator finds the shape of a source once (the time format of a column, its
decimal convention, the header row) and writes it into the module; the functions here take that shape as
parameters and do the per-row work with the cheapest parse that fits it, falling back to the general parse
for a cell that does not.

A shape that no longer fits (a column gone, no header row, no point where there were rows) raises
``SourceError`` with reason ``SourceChanged``: the runner then knows the module must be regenerated.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import chain, islice
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .contract import Cell, Response
from .source import SourceError

Attributes = dict[str, str] | None
Row = Sequence[Cell]
TimeParser = Callable[[Cell], datetime | None]
ValueParser = Callable[[Cell], float | None]

HEADER_LOOKAHEAD = 60

# -- values -------------------------------------------------------------------------------------------------

# What statistics offices and utilities write where there is no value: not available, confidential, not
# applicable, nil, break in series.
MISSING = frozenset(
    {
        "", "-", "--", "---", "\u2013", "\u2014", ".", "..", "...", ":", "x", "na", "n/a", "n.a.", "n.a",
        "nan", "null", "none", "nd", "n.d.", "#n/a", "#na", "#value!", "#div/0!", "c", "s", "z", "(x)", "(c)",
        "*",
    }
)  # fmt: skip
# A number, possibly with thousands separators, followed by flags (`12.3*`, `12.3 p`, `12.3e`, `12.3 (p)`).
_NUMBER = re.compile(
    r"([-+\u2212]?)\s*([0-9][0-9.,'\s\u00a0\u202f]*|[.,][0-9]+)\s*[%*\u2020\u2021a-z()\[\]\s]*"
)
_SPACES = str.maketrans("", "", " '\u00a0\u202f\u2009")
_GROUPED_BY_COMMA = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_GROUPED_BY_DOT = re.compile(r"[0-9]{1,3}(\.[0-9]{3})+")


def _finite(value: float) -> float | None:
    # nan - nan and inf - inf are nan, which is never equal to 0.
    return value if value - value == 0.0 else None


def _digits(text: str) -> tuple[str, str] | None:
    """The sign and the digits (with separators) of a cell's text, without flags; None for a marker."""
    text = text.strip()
    if text.casefold() in MISSING:
        return None
    found = _NUMBER.fullmatch(text.casefold())
    if found is None:
        return None
    sign = "-" if found.group(1) in ("-", "\u2212") else ""
    return sign, found.group(2).translate(_SPACES)


def _decimal_of(digits: str) -> str | None:
    """The decimal mark one number's text shows ('.' or ','), None when it could be either."""
    comma, dot = digits.rfind(","), digits.rfind(".")
    if comma >= 0 and dot >= 0:
        return "," if comma > dot else "."
    if comma >= 0:
        return None if _GROUPED_BY_COMMA.fullmatch(digits) else ","
    if dot >= 0:
        if digits.count(".") > 1:
            return ","
        return None if _GROUPED_BY_DOT.fullmatch(digits) else "."
    return None


def _number(sign: str, digits: str, decimal: str | None) -> float | None:
    if (decimal or _decimal_of(digits) or ".") == ",":
        digits = digits.replace(".", "").replace(",", ".")
    else:
        digits = digits.replace(",", "")
    try:
        return _finite(float(sign + digits))
    except ValueError:
        return None


def parse_value(cell: Cell, decimal: str | None = None) -> float | None:
    """A cell's number, or None where it holds none. Markers (`n/a`, `-`, `..`, `:`, empty) are None; flags
    after a number (`12.3*`, `12.3 p`) are dropped; thousands separators (`1,234.5`, `1.234,5`, `1 234,5`,
    `1'234.5`) are read by the `decimal` mark given (`.` or `,`), or guessed from the cell alone."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        return _finite(float(cell))
    if isinstance(cell, datetime):
        return None
    text = str(cell)
    if decimal != ",":
        try:
            return _finite(float(text))
        except ValueError:
            pass
    parts = _digits(text)
    return None if parts is None else _number(parts[0], parts[1], decimal)


def detect_decimal(cells: Iterable[Cell], default: str = ".") -> str:
    """The decimal mark of a column ('.' or ','): what its cells show when they show one, else `default`.
    One column speaks one convention, so `1,234` is read by its neighbours (`0,5` makes it 1.234)."""
    votes = {".": 0, ",": 0}
    for cell in cells:
        if not isinstance(cell, str):
            continue
        parts = _digits(cell)
        if parts is None:
            continue
        mark = _decimal_of(parts[1])
        if mark is not None:
            votes[mark] += 1
    if votes[","] > votes["."]:
        return ","
    if votes["."] > votes[","]:
        return "."
    return default


def value_parser(decimal: str = ".") -> ValueParser:
    """`parse_value` for a column of known decimal mark, with a fast path for plain numbers."""

    if decimal == ",":

        def parse(cell: Cell) -> float | None:
            if cell.__class__ is str and "." not in cell:
                try:
                    return _finite(float(cell.replace(",", ".")))
                except ValueError:
                    return parse_value(cell, ",")
            return parse_value(cell, ",")

    else:

        def parse(cell: Cell) -> float | None:
            if cell.__class__ is str:
                try:
                    value = float(cell)
                except ValueError:
                    return parse_value(cell, ".")
                # The finiteness test inline: this is the per-row path of every long table.
                return value if value - value == 0.0 else None
            if cell.__class__ is float or cell.__class__ is int:
                return _finite(float(cell))
            return parse_value(cell, ".")

    return parse


# -- times --------------------------------------------------------------------------------------------------

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january", "janv", "janvier", "januar", "ene", "enero", "gen"),
            ("feb", "february", "fev", "fevr", "février", "februar", "febrero"),
            ("mar", "march", "mars", "märz", "marz", "mrz", "marzo"),
            ("apr", "april", "avr", "avril", "abr", "abril"),
            ("may", "mai", "mayo", "mag"),
            ("jun", "june", "juin", "juni", "junio", "giu"),
            ("jul", "july", "juil", "juillet", "juli", "julio", "lug"),
            ("aug", "august", "aout", "août", "ago", "agosto"),
            ("sep", "sept", "september", "septembre", "septiembre", "set"),
            ("oct", "october", "octobre", "okt", "oktober", "octubre", "ott"),
            ("nov", "november", "novembre", "noviembre"),
            ("dec", "december", "decembre", "décembre", "dez", "dezember", "dic", "diciembre"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_YEAR = re.compile(r"(1[0-9]{3}|2[0-2][0-9]{2})")
# `2021.03` is a month only with two digits: `1717.1` is a value.
_YEAR_MONTH = re.compile(r"([12][0-9]{3})(?:\s*(?:[-/]|M|-M)\s*(0?[1-9]|1[0-2])|\.(0[1-9]|1[0-2]))")
_MONTH_YEAR = re.compile(r"(0?[1-9]|1[0-2])\s*[-/.]\s*([12][0-9]{3})")
_NAMED_MONTH = re.compile(rf"({_MONTH_NAMES})\.?[\s\-/,]*([12][0-9]{{3}}|[0-9]{{2}})")
_YEAR_NAMED_MONTH = re.compile(rf"([12][0-9]{{3}})[\s\-/,]*({_MONTH_NAMES})\.?")
_QUARTER = re.compile(r"([12][0-9]{3})\s*-?\s*Q([1-4])|Q([1-4])\s*[-/ ]?\s*([12][0-9]{3})")
_HALF = re.compile(r"([12][0-9]{3})\s*-?\s*[SH]([12])|[SH]([12])\s*[-/ ]?\s*([12][0-9]{3})")
_WEEK = re.compile(r"([12][0-9]{3})\s*-?\s*W([0-5]?[0-9])(?:-?([1-7]))?")
_FISCAL = re.compile(r"([12][0-9]{3})\s*[/-]\s*([0-9]{2})")
_DAY_MONTH_YEAR = re.compile(
    r"([0-9]{1,2})[./-]([0-9]{1,2})[./-]([0-9]{4}|[0-9]{2})(?:[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?"
)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _year_of(text: str) -> int:
    year = int(text)
    return year + 2000 if year < 70 else year + 1900 if year < 100 else year


def _number_time(number: float, kind: str | None = None) -> datetime | None:
    integral = number == int(number)
    if kind in (None, "year") and integral and 1000 <= number <= 2200:
        return datetime(int(number), 1, 1, tzinfo=UTC)
    if kind == "epoch_ms" or (kind is None and 1e11 <= number < 1e14):
        return _EPOCH + timedelta(milliseconds=number)
    if kind == "epoch" or (kind is None and 1e8 <= number < 1e11):
        return _EPOCH + timedelta(seconds=number)
    if kind in (None, "excel") and 0 < number < 2958466:
        return _EXCEL_EPOCH + timedelta(days=number)
    return None


def _day_month_year(found: re.Match[str], day_first: bool) -> datetime | None:
    first, second = int(found.group(1)), int(found.group(2))
    day, month = (first, second) if day_first else (second, first)
    hour, minute, second_ = (int(found.group(i) or 0) for i in (4, 5, 6))
    try:
        return datetime(_year_of(found.group(3)), month, day, hour, minute, second_, tzinfo=UTC)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def _text_time(text: str, day_first: bool = True) -> datetime | None:
    """A text's time: ISO dates and datetimes, `dd/mm/yyyy` (or `mm/dd/yyyy`), and periods at their first
    instant (years, months, quarters, halves, ISO weeks, fiscal years `2020/21`)."""
    if _YEAR.fullmatch(text):
        return datetime(int(text), 1, 1, tzinfo=UTC)
    head = text[:4]
    if head.isdigit():
        if found := _WEEK.fullmatch(text):
            try:
                day = date.fromisocalendar(int(found.group(1)), int(found.group(2)), int(found.group(3) or 1))
            except ValueError:
                return None
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        try:
            return _aware(_fromisoformat(text))
        except ValueError:
            pass
        if found := _YEAR_MONTH.fullmatch(text):
            return _month_start(int(found.group(1)), int(found.group(2) or found.group(3)))
        if found := _QUARTER.fullmatch(text):
            return _month_start(int(found.group(1)), 3 * int(found.group(2)) - 2)
        if found := _HALF.fullmatch(text):
            return _month_start(int(found.group(1)), 6 * int(found.group(2)) - 5)
        if found := _FISCAL.fullmatch(text):
            if (int(found.group(1)) + 1) % 100 == int(found.group(2)):
                return datetime(int(found.group(1)), 1, 1, tzinfo=UTC)
            return None
        if found := _YEAR_NAMED_MONTH.fullmatch(text.casefold()):
            return _month_start(int(found.group(1)), MONTHS[found.group(2)])
        return None
    if found := _DAY_MONTH_YEAR.fullmatch(text):
        return _day_month_year(found, day_first)
    if found := _MONTH_YEAR.fullmatch(text):
        return _month_start(int(found.group(2)), int(found.group(1)))
    if found := _QUARTER.fullmatch(text):
        return _month_start(int(found.group(4)), 3 * int(found.group(3)) - 2)
    if found := _HALF.fullmatch(text):
        return _month_start(int(found.group(4)), 6 * int(found.group(3)) - 5)
    if found := _NAMED_MONTH.fullmatch(text.casefold()):
        return _month_start(_year_of(found.group(2)), MONTHS[found.group(1)])
    return None


def parse_time(cell: Cell, day_first: bool = True) -> datetime | None:
    """A cell's time, timezone-aware (naive times are UTC), a period at its first instant; None if none.

    Reads datetimes (as XLSX cells hold them), ISO dates and datetimes, `dd/mm/yyyy` (`mm/dd/yyyy` when
    `day_first` is false), years (`2021`), months (`2021-03`, `2021M03`, `Mar 2021`, `03/2021`), quarters
    (`2021-Q1`), halves (`2021S1`), ISO weeks (`2021-W07`), and numbers: years, Excel serial days, Unix
    seconds or milliseconds."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, datetime):
        return _aware(cell)
    if isinstance(cell, date):
        return datetime(cell.year, cell.month, cell.day, tzinfo=UTC)
    if isinstance(cell, int | float):
        return _number_time(cell) if cell - cell == 0 else None
    text = str(cell).strip()
    return _text_time(text, day_first) if text else None


def time_kind(cell: Cell) -> str | None:
    """What a cell's time looks like: one of `TIME_FORMATS`, `dm` when it could be `dmy` or `mdy`,
    `monthname` for a month without its year (`Jan`), None when it is no time."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, datetime | date):
        return "datetime"
    if isinstance(cell, int | float):
        if cell - cell != 0:
            return None
        if cell == int(cell) and 1000 <= cell <= 2200:
            return "year"
        if 1e11 <= cell < 1e14:
            return "epoch_ms"
        if 1e8 <= cell < 1e11:
            return "epoch"
        return "excel" if 1 <= cell < 200000 else None
    text = str(cell).strip()
    if not text:
        return None
    folded = text.casefold()
    if folded.rstrip(".") in MONTHS:
        return "monthname"
    if _YEAR.fullmatch(text):
        return "year"
    if _WEEK.fullmatch(text):
        return "week"
    if _QUARTER.fullmatch(text):
        return "quarter"
    if _HALF.fullmatch(text):
        return "half"
    if _YEAR_MONTH.fullmatch(text) or _MONTH_YEAR.fullmatch(text):
        return "month"
    if _FISCAL.fullmatch(text):
        return "year" if _text_time(text) is not None else None
    if _NAMED_MONTH.fullmatch(folded) or _YEAR_NAMED_MONTH.fullmatch(folded):
        return "month"
    if found := _DAY_MONTH_YEAR.fullmatch(text):
        first, second = int(found.group(1)), int(found.group(2))
        if first > 12 and second <= 12:
            return "dmy"
        if second > 12 and first <= 12:
            return "mdy"
        return "dm" if first <= 12 and second <= 12 else None
    if text[:4].isdigit():
        try:
            _fromisoformat(text)
        except ValueError:
            return None
        return "iso"
    return None


PERIODS = ("year", "half", "quarter", "month", "week")
TIME_FORMATS = ("iso", "datetime", "dmy", "mdy", *PERIODS, "excel", "epoch", "epoch_ms", "any")


def detect_time_format(cells: Iterable[Cell], threshold: float = 0.8) -> str | None:
    """The time format of a column (one of `TIME_FORMATS`), or None when fewer than `threshold` of its
    non-empty cells are times of one format."""
    kinds: dict[str, int] = {}
    filled = 0
    for cell in cells:
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            continue
        filled += 1
        kind = time_kind(cell)
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0) + 1
    if not filled or not kinds:
        return None
    dates = kinds.get("dmy", 0) + kinds.get("mdy", 0) + kinds.get("dm", 0)
    if dates:
        kind = "mdy" if kinds.get("mdy", 0) > kinds.get("dmy", 0) else "dmy"
        count = dates
    else:
        kind = max(kinds, key=kinds.__getitem__)
        count = kinds[kind]
    if count < threshold * filled or kind == "monthname":
        return None
    return kind


# What makes an ISO text with no offset read as UTC at once: appending the offset is several times cheaper
# than `replace(tzinfo=...)` on the parsed datetime. A date alone needs a time before its offset.
_UTC_SUFFIXES = ("+00:00", "T00:00+00:00")


def _iso_parser() -> TimeParser:
    """ISO times, fastest for a column whose cells all look alike: the suffix that made the last one UTC is
    tried first, and a column that already carries offsets is read as it is."""
    suffixes = list(_UTC_SUFFIXES)

    def parse(cell: Cell) -> datetime | None:
        if cell.__class__ is not str:
            return parse_time(cell)
        text: str = cell
        if suffixes:
            try:
                fast = _fromisoformat(text + suffixes[0])
            except ValueError:
                pass
            else:
                # A date alone with an offset parses, as a naive midnight.
                if fast.tzinfo is not None:
                    return fast
        try:
            moment = _fromisoformat(text)
        except ValueError:
            return parse_time(cell)
        if moment.tzinfo is not None:
            suffixes.clear()
            return moment
        for suffix in _UTC_SUFFIXES:
            try:
                aware = _fromisoformat(text + suffix)
            except ValueError:
                continue
            if aware.tzinfo is not None:
                suffixes[:] = [suffix]
                return aware
        return moment.replace(tzinfo=UTC)

    return parse


def _slashed_time(day_first: bool) -> TimeParser:
    day, month = (slice(0, 2), slice(3, 5)) if day_first else (slice(3, 5), slice(0, 2))

    def parse(cell: Cell) -> datetime | None:
        if cell.__class__ is str and len(cell) == 10:
            text: str = cell
            try:
                # Positional arguments: datetime's keyword parsing costs more than the parse itself.
                return datetime(int(text[6:10]), int(text[month]), int(text[day]), 0, 0, 0, 0, UTC)
            except ValueError:
                pass
        return parse_time(cell, day_first)

    return parse


def _numeric_time(kind: str) -> TimeParser:
    def parse(cell: Cell) -> datetime | None:
        if isinstance(cell, int | float) and not isinstance(cell, bool):
            return _number_time(cell, kind) if cell - cell == 0 else None
        if isinstance(cell, str):
            number = parse_value(cell)
            if number is not None:
                return _number_time(number, kind)
        return parse_time(cell)

    return parse


def time_parser(time_format: str) -> TimeParser:
    """`parse_time` for a column of a known format (see `detect_time_format`), fastest for that format."""
    if time_format in ("iso", "datetime"):
        return _iso_parser()
    if time_format in ("dmy", "mdy"):
        return _slashed_time(time_format == "dmy")
    if time_format in ("excel", "epoch", "epoch_ms"):
        return _numeric_time(time_format)
    if time_format in (*PERIODS, "any"):
        return parse_time
    raise ValueError(f"unknown time format {time_format!r}; known: {', '.join(TIME_FORMATS)}")


_HEADER_FLAGS = re.compile(
    r"(?:\s*[*\u2020\u2021]+|\s*\((?:p|e|r|f|prov|est)\.?\)|\s+(?:p|e|r|f))$", re.IGNORECASE
)


def header_time_parser(time_format: str) -> TimeParser:
    """`time_parser` for period headers, which may carry a flag after the period (`2023*`, `2023 (p)`)."""
    parse = time_parser(time_format)

    def parse_header(cell: Cell) -> datetime | None:
        moment = parse(cell)
        if moment is None and isinstance(cell, str) and _HEADER_FLAGS.search(cell.strip()):
            moment = parse(_HEADER_FLAGS.sub("", cell.strip()))
        return moment

    return parse_header


def _month_header(cell: Cell) -> datetime | None:
    month = month_of(cell)
    return None if month is None else datetime(2000, month, 1, tzinfo=UTC)


def month_of(cell: Cell) -> int | None:
    """A month named without its year (`Jan`, `January`, `janv.`): its number."""
    return MONTHS.get(str(cell).strip().casefold().rstrip(".")) if isinstance(cell, str) else None


# -- files --------------------------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """A text file's content: UTF-8 (with or without BOM), else Windows-1252, else Latin-1 (any byte)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def detect_delimiter(text: str) -> str:
    """The delimiter of a CSV text: of `,`, `;`, tab and `|`, the one that splits its first lines most
    evenly (counted outside quotes), `,` when none does."""
    lines = [line for line in text[:65536].splitlines()[:50] if line.strip()]
    best, best_score = ",", 0.0
    for delimiter in (",", ";", "\t", "|"):
        counts = [len(next(csv.reader([line], delimiter=delimiter))) - 1 for line in lines]
        counts = [count for count in counts if count > 0]
        if not counts:
            continue
        common = max(set(counts), key=counts.count)
        score = counts.count(common) * (1 + min(common, 20) / 20)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def csv_rows(data: bytes, delimiter: str | None = None) -> Iterator[list[str]]:
    """The rows of a CSV file (decoded as `decode` does; delimiter detected unless given)."""
    text = decode(data)
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or detect_delimiter(text))


def table_rows(source: Any, sheet: str | None = None, delimiter: str | None = None) -> Iterator[Row]:
    """The rows of the source's file: the sheet of a workbook when `sheet` is given, else CSV rows."""
    if sheet is not None:
        return iter(source.xlsx_rows(sheet))
    return csv_rows(source.read_bytes(), delimiter)


def label(cell: Cell) -> str:
    """A header cell as the generator names it: trimmed, inner whitespace single, `2021.0` as `2021`."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell == int(cell):
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.isoformat()
    return " ".join(str(cell).split())


def _key(cell: Cell) -> str:
    return label(cell).casefold()


def shape_changed(message: str) -> SourceError:
    return SourceError("SourceChanged", message)


def locate_header(
    rows: Iterable[Row],
    header_row: int,
    columns: Sequence[str | int] = (),
    accept: Callable[[Row], bool] | None = None,
) -> tuple[Row, Iterator[Row]]:
    """The header row (the one at index `header_row` if it names all of `columns` and `accept`s, else the
    first one among the first rows that does) and the rows below it."""
    iterator = iter(rows)
    head = list(islice(iterator, max(HEADER_LOOKAHEAD, header_row + 1)))
    wanted = [name.casefold() for name in columns if isinstance(name, str) and name]

    def fits(row: Row) -> bool:
        present = {_key(cell) for cell in row}
        return all(name in present for name in wanted) and (accept is None or accept(row))

    order = [header_row, *(index for index in range(len(head)) if index != header_row)]
    for index in order:
        if index < len(head) and fits(head[index]):
            return head[index], chain(head[index + 1 :], iterator)
    if not wanted:
        raise shape_changed(f"none of the first {len(head)} rows is a header row of periods")
    expected = {_key(cell) for cell in head[header_row]} if header_row < len(head) else set()
    missing = [name for name in columns if isinstance(name, str) and name.casefold() not in expected]
    raise shape_changed(
        f"no row among the first {len(head)} holds the columns "
        f"{', '.join(repr(name) for name in columns if isinstance(name, str))}; the header row "
        f"(row {header_row + 1}) has no column {', no column '.join(repr(name) for name in missing)}"
    )


def column(header: Row, name: str | int) -> int:
    """The index of the header's column called `name` (as `label` writes it, case-insensitively), or the
    column at index `name` for a column the header leaves unnamed."""
    if isinstance(name, int):
        return name
    wanted = name.casefold()
    for index, cell in enumerate(header):
        if _key(cell) == wanted:
            return index
    names = ", ".join(repr(label(cell)) for cell in header if label(cell))
    raise shape_changed(f"the header row has no column {name!r} (columns: {names})")


def _series(row: Row, indexes: Sequence[int]) -> str:
    return " / ".join(label(row[index]) for index in indexes if index < len(row) and label(row[index]))


def long_points(
    rows: Iterable[Row],
    *,
    time_column: str | int,
    value_column: str | int,
    time_format: str,
    decimal: str = ".",
    series_columns: Sequence[str | int] = (),
    header_row: int = 0,
) -> Iterator[tuple[datetime, float, Attributes]]:
    """The points of a long table: one row per time (per series), the time in one column, the value in
    another; series (when named) from the other columns. Rows without a time or a value (notes, blanks,
    markers) are skipped; none at all under a header with rows raises SourceChanged."""
    header, body = locate_header(rows, header_row, [time_column, value_column, *series_columns])
    at, of = column(header, time_column), column(header, value_column)
    series = [column(header, name) for name in series_columns]
    width = max(at, of, *series) + 1
    parse_time_cell, parse_value_cell = time_parser(time_format), value_parser(decimal)
    rows_seen = points = 0
    for row in body:
        if len(row) < width:
            continue
        rows_seen += 1
        moment = parse_time_cell(row[at])
        if moment is None:
            continue
        value = parse_value_cell(row[of])
        if value is None:
            continue
        points += 1
        yield moment, value, ({"series": _series(row, series)} if series else None)
    if rows_seen and not points:
        raise shape_changed(
            f"no row under the header has a time in column {time_column!r} ({time_format}) "
            f"and a number in column {value_column!r}"
        )


def wide_points(
    rows: Iterable[Row],
    *,
    time_format: str,
    label_columns: Sequence[str | int] = (),
    series_columns: Sequence[str | int] = (),
    decimal: str = ".",
    header_row: int = 0,
    year_column: str | int | None = None,
    keep_series: str | None = None,
) -> Iterator[tuple[datetime, float, Attributes]]:
    """The points of a wide table: periods as column headers (`2019`, `2021-03`, `Q1 2021`; or month names
    with the year in `year_column`), one row per series, blanks and markers for missing periods. Series are
    named from `series_columns` (empty labels are filled down from the row above, as in a merged cell);
    with `keep_series`, only that series is kept and it is named by no attribute."""
    header_time = _month_header if year_column is not None else header_time_parser(time_format)

    def has_periods(row: Row) -> bool:
        return sum(1 for cell in row if header_time(cell) is not None) >= 2

    named = [*label_columns, *([] if year_column is None else [year_column])]
    header, body = locate_header(rows, header_row, named, has_periods)
    skip = {column(header, name) for name in label_columns}
    year_at = column(header, year_column) if year_column is not None else None
    periods = [
        (index, moment)
        for index, cell in enumerate(header)
        if index not in skip and index != year_at and (moment := header_time(cell)) is not None
    ]
    series = [column(header, name) for name in series_columns]
    parse_value_cell = value_parser(decimal)
    filled: list[str] = ["" for _ in series]
    rows_seen = points = 0
    for row in body:
        if not any(label(cell) for cell in row):
            continue
        rows_seen += 1
        for place, index in enumerate(series):
            text = label(row[index]) if index < len(row) else ""
            filled[place] = text or filled[place]
        name = " / ".join(text for text in filled if text)
        if keep_series is not None and name.casefold() != keep_series.casefold():
            continue
        year = None
        if year_at is not None:
            year = parse_time(row[year_at]) if year_at < len(row) else None
            if year is None:
                continue
        attributes = {"series": name} if series and keep_series is None else None
        for index, moment in periods:
            if index >= len(row):
                break
            value = parse_value_cell(row[index])
            if value is None:
                continue
            if year is not None:
                moment = moment.replace(year=year.year)
            points += 1
            yield moment, value, attributes
    if rows_seen and not points:
        which = f"series {keep_series!r}" if keep_series is not None else "row"
        raise shape_changed(f"no {which} under the header of {time_format} periods has a number")


# -- JSON APIs ----------------------------------------------------------------------------------------------

RECORD_KEYS = (
    "results", "data", "items", "observations", "records", "value", "values", "rows", "entries", "features",
    "result", "series", "list", "objects", "content", "elements", "hits", "docs", "measurements", "readings",
)  # fmt: skip
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel\s*=\s*"?([^",;]*\bnext\b[^",;]*)"?', re.IGNORECASE)
# Where APIs put the link to their next page, in order of how often they do.
NEXT_PATHS = (
    ("next",), ("links", "next"), ("links", "next", "href"), ("_links", "next", "href"), ("meta", "next"),
    ("pagination", "next"), ("paging", "next"), ("meta", "pagination", "links", "next"), ("@odata.nextLink",),
    ("next_page_url",), ("nextPage",), ("next_page",), ("links", "next_page"),
)  # fmt: skip


def get_path(value: Any, path: Sequence[str]) -> Any:
    """The value at `path` (keys of nested objects) in a JSON value, None where one is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def has_path(value: Any, path: Sequence[str]) -> bool:
    """Whether the keys of `path` lead somewhere in a JSON value (to a null value, too)."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    return True


def records_path(body: Any) -> tuple[str, ...] | None:
    """Where a JSON body holds its records: () for a top-level list, else the keys down to the largest list
    of objects (known names like `results` or `data` first, two levels deep at most)."""
    if isinstance(body, list):
        return ()
    if not isinstance(body, Mapping):
        return None
    found: list[tuple[int, int, tuple[str, ...]]] = []

    def visit(value: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, item in value.items():
            if isinstance(item, list) and item and all(isinstance(entry, Mapping) for entry in item):
                known = 0 if key.casefold() in RECORD_KEYS else 1
                found.append((known + len(path), -len(item), (*path, key)))
            elif isinstance(item, Mapping) and len(path) < 2:
                visit(item, (*path, key))

    visit(body, ())
    if not found:
        for key in RECORD_KEYS:
            if isinstance(body.get(key), list):
                return (key,)
        return None
    return min(found)[2]


def find_records(body: Any, path: Sequence[str] | None = None) -> list[Any]:
    """The records of a JSON body: the list at `path` (() for a top-level list), or wherever
    `records_path` finds one when `path` is None."""
    if path is None:
        path = records_path(body)
        if path is None:
            raise shape_changed("the response holds no list of records")
    records = body if not path else get_path(body, path)
    if not isinstance(records, list):
        where = ".".join(path) or "the top level"
        raise shape_changed(f"the response has no list of records at {where}")
    return records


def json_body(response: Response) -> Any:
    """A response's JSON body; an error status or a body that is no JSON raises SourceError."""
    if response.status_code >= 400:
        raise SourceError("SourceUnreachable", f"{response.url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise shape_changed(f"{response.url} answered with a body that is not JSON") from None


def link_next(headers: Mapping[str, str]) -> str | None:
    """The `rel="next"` target of a `Link` header."""
    value = headers.get("link") or headers.get("Link") or ""
    for found in _LINK_NEXT.finditer(value):
        if "next" in found.group(2).casefold().split():
            return found.group(1) or None
    return None


def next_url(response: Response, body: Any) -> str | None:
    """The URL of the next page: a `Link: <...>; rel="next"` header, else a `next` link in the body."""
    link = link_next(response.headers)
    if link:
        return link
    for path in NEXT_PATHS:
        found = get_path(body, path)
        if isinstance(found, str) and found:
            return found
    return None


def more_pages(body: Any, page: int) -> bool:
    """Whether the body says there is a page after `page` (numbered from 1): False when it gives a page
    count or a flag that says otherwise, True when it says nothing."""
    for holder in (
        body,
        get_path(body, ("meta",)),
        get_path(body, ("pagination",)),
        get_path(body, ("page",)),
    ):
        if not isinstance(holder, Mapping):
            continue
        for key in ("has_more", "hasMore", "has_next", "hasNext", "more"):
            if isinstance(holder.get(key), bool):
                return bool(holder[key])
        for key in ("total_pages", "totalPages", "last_page", "lastPage", "pages", "page_count", "pageCount"):
            count = holder.get(key)
            if isinstance(count, int) and not isinstance(count, bool):
                return page < count
    return True


def total_count(body: Any) -> int | None:
    """The number of records the body says the whole collection holds, when it says."""
    for holder in (body, get_path(body, ("meta",)), get_path(body, ("pagination",))):
        if not isinstance(holder, Mapping):
            continue
        for key in ("total", "count", "total_count", "totalCount", "totalResults", "total_results"):
            count = holder.get(key)
            if isinstance(count, int) and not isinstance(count, bool):
                return count
    return None


def with_query(url: str, params: Mapping[str, str | int | float]) -> str:
    """`url` with `params` set in its query string, its other parameters kept."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({key: str(value) for key, value in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def record_point(
    record: Any,
    *,
    time_field: Sequence[str],
    value_field: Sequence[str],
    time_format: str = "any",
    decimal: str = ".",
    series_field: Sequence[str] | None = None,
) -> tuple[datetime, float, Attributes] | None:
    """The point of one JSON record: its time and value at the given paths, its series from
    `series_field`; None when either is null or a marker. A record without the time or the value field at
    all is a source that changed shape, not a missing value: it raises SourceError `SourceChanged`."""
    for field in (time_field, value_field):
        if not has_path(record, field):
            fields = ", ".join(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
            raise shape_changed(f"a record has no field {'.'.join(field)!r} (it has: {fields})")
    moment = time_parser(time_format)(_cell(get_path(record, time_field)))
    if moment is None:
        return None
    value = parse_value(_cell(get_path(record, value_field)), decimal)
    if value is None:
        return None
    if series_field:
        return moment, value, {"series": label(_cell(get_path(record, series_field)))}
    return moment, value, None


def _cell(value: Any) -> Cell:
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)
