"""The offline generator: infer a source's shape from its sample and write a collector module from templates.

Every reading of the source that yields points from its sample is a candidate: for a file, a long table (a
column of times and a column of values, series from the columns that tell repeated times apart) or a wide
one (periods as column headers, one row per series) under each row that may be its header, in each sheet;
for an API, the records of its body with a time field and a value field, and the way it pages. Candidates
are ranked (the ones that read most of the data first, then how well the value matches the indicator's
name, unit and notes) and the best one is written out, its parameters inlined and its choice explained in
the module's docstring. Feedback from a failed attempt moves on to the next one: a candidate the errors name
is dropped, and each error that names none (a dry run that yielded nothing) skips the best one left.

A module is small: constants that say what the source looks like, and `collect(since, source)` handing them
to `helpers`, which does the parsing.
"""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import helpers
from .contract import Cell
from .sample import PageSample, Sample, SheetSample
from .source import SourceError

LINE_LENGTH = 110
MAX_PAGES = 100000
_PLACEHOLDERS = re.compile(r"\b(TODO|FIXME|XXX)\b|your[_-]?api[_-]?key|example\.(com|org)", re.IGNORECASE)
_STOP_WORDS = frozenset(
    {
        "of",
        "the",
        "and",
        "in",
        "per",
        "by",
        "a",
        "an",
        "for",
        "to",
        "at",
        "on",
        "from",
        "with",
        "or",
        "de",
        "der",
    }
)
_TIME_WORDS = frozenset(
    {
        "date", "time", "timestamp", "datetime", "day", "week", "month", "year", "quarter", "period", "ts",
        "datum", "zeit", "jahr", "monat", "woche", "quartal", "periode", "fecha", "annee", "mois", "from",
        "start", "when", "observed", "reading", "obs", "periods", "perioden", "dt",
    }
)  # fmt: skip
_NOT_VALUE_WORDS = frozenset(
    {"id", "code", "zip", "postcode", "lat", "lon", "lng", "latitude", "longitude", "key"}
)
_NOT_DATA_SHEETS = ("note", "metadata", "info", "content", "readme", "cover", "about", "definition", "source")
_UNIT_CHARACTERS = str.maketrans(
    {"µ": "u", "μ": "u", "³": "3", "²": "2", "₂": "2", "°": " ", "€": " eur ", "%": " percent ", "/": " "}
)


@dataclass(frozen=True)
class TemplateRequest:
    """What the Wrapper says of its indicator and source: what the generator matches columns against."""

    name: str
    description: str | None = None
    unit: str | None = None
    category: str | None = None
    notes: str | None = None
    url: str | None = None


class GenerationError(Exception):
    """No module can be written: `reason` is `NoTimeAxis` or `NoValues` (or `NoCandidate` once every
    reading of the source has been tried), `message` one readable line naming what was looked for."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- matching columns to the indicator ----------------------------------------------------------------------


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).translate(_UNIT_CHARACTERS).casefold()
    words = re.findall(r"[a-z0-9]+", spaced)
    return {word[:-1] if len(word) > 3 and word.endswith("s") else word for word in words} - _STOP_WORDS


def _compact(text: str) -> str:
    return "".join(re.findall(r"[a-z0-9]+", text.translate(_UNIT_CHARACTERS).casefold()))


def relevance(name: str, request: TemplateRequest) -> tuple[float, list[str]]:
    """How well a column's (or field's) name matches the indicator, and the reasons, for the docstring."""
    words, compact = _words(name), _compact(name)
    score, why = 0.0, []
    unit = _compact(request.unit or "")
    if unit and (unit in words or (len(unit) > 1 and compact.endswith(unit))):
        score += 3
        why.append(f"its unit {request.unit}")
    shared = words & _words(request.name)
    if shared:
        score += 2 * len(shared)
        why.append("the indicator's name (" + ", ".join(sorted(shared)) + ")")
    notes = f"{request.notes or ''} {request.description or ''}"
    wanted, unwanted = _notes_words(notes)
    folded = " ".join(name.split()).casefold()
    named = re.search(rf"(?<![a-z0-9]){re.escape(folded)}(?![a-z0-9])", notes.casefold())
    if len(folded) > 2 and named and not words & unwanted:
        score += 5
        why.append("the notes, which name it")
    elif words & wanted - shared - unwanted:
        score += len(words & wanted - shared - unwanted)
        why.append("the notes (" + ", ".join(sorted(words & wanted - shared - unwanted)) + ")")
    if words & unwanted:
        score -= 2 * len(words & unwanted)
    if words & {"value", "obs", "amount"}:
        score += 0.5
    return score, why


_NEGATIONS = frozenset({"not", "no", "never", "excluding", "except", "without", "instead", "rather", "nor"})


def _notes_words(notes: str) -> tuple[set[str], set[str]]:
    """The words of the notes, split into those asked for and those set aside (`not the forecast`,
    `rather than gross`): a negation sets aside the next three words."""
    wanted: set[str] = set()
    unwanted: set[str] = set()
    negated = 0
    for word in re.findall(r"[a-z0-9]+", notes.translate(_UNIT_CHARACTERS).casefold()):
        if word in _NEGATIONS:
            negated = 3
            continue
        stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
        if stem not in _STOP_WORDS:
            (unwanted if negated else wanted).add(stem)
        negated = max(negated - 1, 0)
    return wanted - unwanted, unwanted


def _time_hint(name: str) -> int:
    words = _words(name)
    return 2 if words & _TIME_WORDS or "date" in name.casefold() or "time" in name.casefold() else 0


# -- candidates ---------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One reading of the source, with what ranks it and the constants its module is written from."""

    layout: str  # long, wide, months (a wide table of month names with a year column), api
    points: int
    relevance: float
    time_hint: int
    order: int
    constants: dict[str, Any]
    explanation: list[str]
    marks: list[str] = field(default_factory=list)  # phrases of the errors this reading fails with

    def rank(self, most_points: int) -> tuple[int, float, int, int, int]:
        return (int(self.points * 2 >= most_points), self.relevance, self.points, self.time_hint, -self.order)


def _name(header: Sequence[Cell], index: int) -> str | int:
    """How a module names a column: its header label when that is unique, else its index."""
    text = helpers.label(header[index]) if index < len(header) else ""
    labels = [helpers.label(cell).casefold() for cell in header]
    return text if text and labels.count(text.casefold()) == 1 else index


def _shown(name: str | int) -> str:
    return repr(name) if isinstance(name, str) else f"number {name + 1}"


def _column(rows: Sequence[Sequence[Cell]], index: int) -> list[Cell]:
    return [row[index] for row in rows if index < len(row)]


def _filled(cells: Iterable[Cell]) -> list[Cell]:
    return [cell for cell in cells if helpers.label(cell)]


def _is_word(cell: Cell) -> bool:
    return (
        isinstance(cell, str)
        and cell.strip().casefold() not in helpers.MISSING
        and helpers.parse_value(cell) is None
        and helpers.time_kind(cell) is None
    )


def _header_rows(sheet: SheetSample, layout: str) -> list[int]:
    """The rows that may be a table's header, the one sampling found first: for a long table rows of words
    (a data row holds times and numbers), for a wide one rows with periods among their cells."""
    from .sampling import is_name

    found = [] if sheet.header_row is None else [sheet.header_row]
    for index, row in enumerate(sheet.rows[:30]):
        filled = _filled(row)
        if index in found or len(filled) < 2:
            continue
        if layout == "long" and sum(1 for cell in filled if _is_word(cell)) >= 0.8 * len(filled):
            found.append(index)
        if layout == "wide" and sum(1 for cell in filled if is_name(cell)) * 2 >= len(filled):
            found.append(index)
    return found


def _decimal_default(sheet: SheetSample) -> str:
    return "," if sheet.delimiter == ";" else "."


def _count(points: Iterable[object]) -> int:
    count = 0
    try:
        for _ in points:
            count += 1
    except SourceError:
        return 0
    return count


def _is_value_column(cells: list[Cell], decimal: str) -> bool:
    filled = [
        cell
        for cell in _filled(cells)
        if not (isinstance(cell, str) and cell.strip().casefold() in helpers.MISSING)
    ]
    numbers = sum(1 for cell in filled if helpers.parse_value(cell, decimal) is not None)
    return numbers >= 1 and numbers >= 0.6 * len(filled)


def _time_format(cells: list[Cell], header_name: str) -> str | None:
    found = helpers.detect_time_format(cells, threshold=0.6)
    if found is None:
        return None
    numeric = all(isinstance(cell, int | float) for cell in _filled(cells))
    # A column of plain numbers is a time only when its header says so: values are numbers too.
    if (found in ("excel", "epoch", "epoch_ms") or (found == "year" and numeric)) and not _time_hint(
        header_name
    ):
        return None
    if found == "year" and not _time_hint(header_name):
        # Years without a header saying so must look like a run of years, not like values that could be.
        years = sorted({moment.year for cell in _filled(cells) if (moment := helpers.parse_time(cell))})
        if len(years) < 2 or years[-1] - years[0] > 2 * len(years):
            return None
    return found


def _series_columns(
    body: Sequence[Sequence[Cell]], header: Sequence[Cell], time_index: int, time_format: str, used: set[int]
) -> list[int] | None:
    """The text columns that tell rows of the same time apart, [] when times do not repeat, None when no
    column does."""
    parse = helpers.time_parser(time_format)
    times = [parse(row[time_index]) if time_index < len(row) else None for row in body]
    rows = [(moment, row) for moment, row in zip(times, body, strict=True) if moment is not None]
    if len({moment for moment, _ in rows}) == len(rows):
        return []
    width = max((len(row) for _, row in rows), default=0)
    texts: dict[int, list[str]] = {}
    for index in range(width):
        if index in used or index == time_index:
            continue
        labels = [helpers.label(row[index]) if index < len(row) else "" for _, row in rows]
        if len(set(labels)) >= 2 and not all(
            helpers.parse_value(text) is not None for text in labels if text
        ):
            texts[index] = labels
    moments = [moment for moment, _ in rows]
    for index, labels in texts.items():
        if len(set(zip(moments, labels, strict=True))) == len(rows):
            return [index]
    for first, second in itertools.combinations(texts, 2):
        if len(set(zip(moments, texts[first], texts[second], strict=True))) == len(rows):
            return [first, second]
    return None


def _long_candidates(sheet: SheetSample, sheet_index: int, request: TemplateRequest) -> list[Candidate]:
    found: list[Candidate] = []
    rows = [*sheet.rows, *sheet.last_rows]
    for header_index in _header_rows(sheet, "long"):
        header = sheet.rows[header_index]
        body = rows[header_index + 1 :]
        width = max((len(row) for row in body), default=0)
        columns = {index: _column(body, index) for index in range(width)}
        names = {index: helpers.label(header[index]) if index < len(header) else "" for index in columns}
        times = {
            index: form
            for index in columns
            if (form := _time_format(columns[index], names[index])) is not None
        }
        for time_index, time_format in times.items():
            decimal_default = _decimal_default(sheet)
            decimals = {index: helpers.detect_decimal(columns[index], decimal_default) for index in columns}
            values = [
                index
                for index in columns
                if index != time_index
                and index not in times
                and not _words(names[index]) & _NOT_VALUE_WORDS
                and _is_value_column(columns[index], decimals[index])
            ]
            for value_index in values:
                series = _series_columns(body, header, time_index, time_format, {value_index, *values})
                if series is None:
                    continue
                constants: dict[str, Any] = {
                    "time_column": _name(header, time_index),
                    "time_format": time_format,
                    "value_column": _name(header, value_index),
                    "decimal": decimals[value_index],
                    "series_columns": tuple(_name(header, index) for index in series),
                    "header_row": header_index,
                }
                points = _count(helpers.long_points(rows, **constants))
                if not points:
                    continue
                score, why = relevance(names[value_index], request)
                found.append(
                    Candidate(
                        "long",
                        points,
                        score,
                        _time_hint(names[time_index]),
                        sheet_index * 1000 + header_index * 50 + value_index,
                        {"sheet": sheet.name, **constants},
                        why,
                        [
                            f"and a number in column {constants['value_column']!r}",
                            f"no column {constants['value_column']!r}",
                        ],
                    )
                )
    return found


def _wide_candidates(sheet: SheetSample, sheet_index: int, request: TemplateRequest) -> list[Candidate]:
    found: list[Candidate] = []
    rows = [*sheet.rows, *sheet.last_rows]
    for header_index in _header_rows(sheet, "wide"):
        header = sheet.rows[header_index]
        body = rows[header_index + 1 :]
        kinds = [helpers.time_kind(helpers.label(cell)) for cell in header]
        months = [index for index, kind in enumerate(kinds) if kind == "monthname"]
        periods: dict[str, list[int]] = {}
        for index, kind in enumerate(kinds):
            if kind in helpers.PERIODS or kind in ("iso", "dmy", "mdy", "dm"):
                periods.setdefault("dmy" if kind == "dm" else kind, []).append(index)
        options: list[tuple[str, list[int], int | None]] = [
            (form, indexes, None) for form, indexes in periods.items() if len(indexes) >= 2
        ]
        if len(months) >= 6:
            for index in range(len(header)):
                name = helpers.label(header[index])
                if index not in months and _time_format(_column(body, index), name or "year") == "year":
                    options.append(("month", months, index))
                    break
        for time_format, indexes, year_index in options:
            labels = [
                index
                for index in range(min(indexes))
                if index != year_index and any(helpers.label(cell) for cell in _column(body, index))
            ]
            decimal = helpers.detect_decimal(
                [cell for index in indexes for cell in _column(body, index)], _decimal_default(sheet)
            )
            series = [
                index
                for index in labels
                if len({helpers.label(cell) for cell in _filled(_column(body, index))}) >= 2
                and not all(helpers.parse_value(cell) is not None for cell in _filled(_column(body, index)))
            ]
            constants: dict[str, Any] = {
                "time_format": time_format,
                "label_columns": tuple(
                    _name(header, index) for index in labels if isinstance(_name(header, index), str)
                ),
                "series_columns": tuple(_name(header, index) for index in series),
                "decimal": decimal,
                "header_row": header_index,
            }
            if year_index is not None:
                constants["year_column"] = _name(header, year_index)
                constants["series_columns"] = ()
            points = _count(helpers.wide_points(rows, **constants))
            if not points:
                continue
            title = " ".join(helpers.label(cell) for row in sheet.rows[:header_index] for cell in row)
            score, why = relevance(f"{sheet.name} {title}", request)
            found.append(
                Candidate(
                    "months" if year_index is not None else "wide",
                    points,
                    score,
                    2,
                    sheet_index * 1000 + header_index * 50,
                    {"sheet": sheet.name, **constants},
                    why,
                    [f"of {time_format} periods has a number"],
                )
            )
    return found


def _file_candidates(sample: Sample, request: TemplateRequest) -> list[Candidate]:
    found: list[Candidate] = []
    for index, sheet in enumerate(sample.sheets):
        if sample.source_type == "XLSX" and any(word in sheet.name.casefold() for word in _NOT_DATA_SHEETS):
            index += 100
        found += _long_candidates(sheet, index, request)
        found += _wide_candidates(sheet, index, request)
    return found


def _no_time_axis(sample: Sample) -> GenerationError:
    described = []
    for sheet in sample.sheets[:3]:
        header_index = sheet.header_row if sheet.header_row is not None else 0
        header = sheet.rows[header_index] if header_index < len(sheet.rows) else []
        names = ", ".join(text for text in (helpers.label(cell) for cell in header) if text)[:200]
        described.append(f"sheet {sheet.name!r} (headers: {names or 'none'})")
    where = "; ".join(described) or "the file, which holds no rows"
    return GenerationError(
        "NoTimeAxis", f"no column or header row of dates, months, quarters, weeks or years in {where}"
    )


def _no_values(sample: Sample) -> GenerationError | None:
    """Why a sheet with a column of times gave no reading: no numbers beside them, or times that repeat
    with no column to tell their rows apart."""
    for sheet in sample.sheets:
        rows = [*sheet.rows, *sheet.last_rows]
        for header_index in _header_rows(sheet, "long"):
            header, body = sheet.rows[header_index], rows[header_index + 1 :]
            width = max((len(row) for row in body), default=0)
            for index in range(width):
                name = helpers.label(header[index]) if index < len(header) else ""
                time_format = _time_format(_column(body, index), name)
                if time_format is None:
                    continue
                names = ", ".join(text for text in (helpers.label(cell) for cell in header) if text)[:200]
                numbers = [
                    other
                    for other in range(width)
                    if other != index and _is_value_column(_column(body, other), _decimal_default(sheet))
                ]
                where = f"sheet {sheet.name!r} has times in column {_shown(_name(header, index))}"
                if numbers and _series_columns(body, header, index, time_format, set(numbers)) is None:
                    return GenerationError(
                        "NoValues",
                        f"{where}, but they repeat and no column of text tells their rows apart "
                        f"(headers: {names})",
                    )
                return GenerationError(
                    "NoValues", f"{where} but no column of numbers beside them (headers: {names})"
                )
    return None


# -- APIs ---------------------------------------------------------------------------------------------------


def _fields(records: Sequence[Any], depth: int = 2) -> list[tuple[str, ...]]:
    found: dict[tuple[str, ...], None] = {}

    def visit(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            if len(path) <= depth:
                for key, item in value.items():
                    visit(item, (*path, str(key)))
        elif not isinstance(value, list) and path:
            found.setdefault(path, None)

    for record in records[:100]:
        visit(record, ())
    return list(found)


def _field_cells(records: Sequence[Any], path: tuple[str, ...]) -> list[Cell]:
    cells: list[Cell] = []
    for record in records:
        value = helpers.get_path(record, path)
        cells.append(value if value is None or isinstance(value, str | int | float) else str(value))
    return cells


def _pagination(page: PageSample, body: Any) -> dict[str, Any]:
    if helpers.link_next(page.headers):
        return {"paging": "link"}
    for path in helpers.NEXT_PATHS:
        if isinstance(helpers.get_path(body, path), str):
            return {"paging": "link"}
    holders = [body, *(helpers.get_path(body, (key,)) for key in ("meta", "pagination", "paging"))]
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        if "offset" in holder and any(key in holder for key in ("limit", "size", "count", "per_page")):
            limit_key = next(key for key in ("limit", "size", "per_page", "count") if key in holder)
            limit = holder[limit_key]
            return {
                "paging": "offset",
                "offset_parameter": "offset",
                "limit_parameter": "limit" if limit_key == "count" else limit_key,
                "limit": limit if isinstance(limit, int) else 100,
            }
        for key in ("page", "current_page", "currentPage", "page_number", "pageNumber"):
            if isinstance(holder.get(key), int):
                return {"paging": "page", "page_parameter": "page" if key != "page_number" else key}
    if "page=" in page.url:
        return {"paging": "page", "page_parameter": "page"}
    return {"paging": "none"}


def _api_candidates(sample: Sample, request: TemplateRequest) -> tuple[list[Candidate], str]:
    pages = [page for page in sample.pages if page.status < 400]
    if not pages:
        raise GenerationError(
            "NoTimeAxis", "the API's sample holds no successful response to read records from"
        )
    try:
        body = json.loads(pages[0].body)
    except ValueError:
        raise GenerationError(
            "NoTimeAxis", f"the API answered {pages[0].content_type or 'a body'} that is not JSON"
        ) from None
    path = helpers.records_path(body)
    if path is None:
        keys = ", ".join(list(body)[:12]) if isinstance(body, dict) else type(body).__name__
        raise GenerationError("NoTimeAxis", f"the API's response holds no list of records (keys: {keys})")
    records: list[Any] = []
    for page in pages:
        try:
            records += helpers.find_records(json.loads(page.body), path)
        except (ValueError, SourceError):
            continue
    where = "under " + ".".join(repr(key) for key in path) if path else "at the top level"
    fields = _fields(records)
    names = {field_path: ".".join(field_path) for field_path in fields}
    cells = {field_path: _field_cells(records, field_path) for field_path in fields}
    times = {
        field_path: form
        for field_path in fields
        if (form := _time_format(cells[field_path], names[field_path].replace(".", " "))) is not None
    }
    listed = ", ".join(names.values())[:200]
    if not times:
        raise GenerationError(
            "NoTimeAxis", f"no field of dates, months or years in the records {where} (fields: {listed})"
        )
    paging = _pagination(pages[0], body)
    found: list[Candidate] = []
    order = 0
    for time_path, time_format in times.items():
        values = [
            field_path
            for field_path in fields
            if field_path not in times
            and not _words(field_path[-1]) & _NOT_VALUE_WORDS
            and not field_path[-1].casefold().endswith("_id")
            and _is_value_column(cells[field_path], helpers.detect_decimal(cells[field_path]))
        ]
        for value_path in values:
            decimal = helpers.detect_decimal(cells[value_path])
            series = _record_series(
                records, time_path, time_format, [p for p in fields if p not in (*values, time_path)]
            )
            if series is None:
                continue
            constants = {
                "records": path,
                "time_field": time_path,
                "time_format": time_format,
                "value_field": value_path,
                "decimal": decimal,
                "series_field": series,
                **paging,
            }
            points = sum(
                1
                for record in records
                if helpers.record_point(
                    record,
                    time_field=time_path,
                    value_field=value_path,
                    time_format=time_format,
                    decimal=decimal,
                    series_field=series,
                )
                is not None
            )
            if not points:
                continue
            score, why = relevance(names[value_path].replace(".", " "), request)
            order += 1
            found.append(
                Candidate("api", points, score, _time_hint(names[time_path]), order, constants, why, [])
            )
    return found, where


def _record_series(
    records: Sequence[Any], time_path: tuple[str, ...], time_format: str, others: Sequence[tuple[str, ...]]
) -> tuple[str, ...] | None:
    parse = helpers.time_parser(time_format)
    times = [parse(cells) for cells in _field_cells(records, time_path)]
    if len(set(times)) == len(times):
        return ()
    for field_path in others:
        labels = [helpers.label(cell) for cell in _field_cells(records, field_path)]
        if len(set(labels)) < 2 or len(set(labels)) == len(labels):
            continue
        if len(set(zip(times, labels, strict=True))) == len(times):
            return field_path
    return None


# -- choosing -----------------------------------------------------------------------------------------------


def _generic_failures(feedback: Sequence[str]) -> int:
    """Errors of earlier attempts that name no reading of the source: each one skips the best reading."""
    return sum(1 for line in feedback if "yielded no point" in line or "InvalidPoint" in line)


def _choose(candidates: list[Candidate], feedback: Sequence[str]) -> tuple[Candidate, list[Candidate]]:
    most = max(candidate.points for candidate in candidates)
    ranked = sorted(candidates, key=lambda candidate: candidate.rank(most), reverse=True)
    left = [c for c in ranked if not any(mark in line for line in feedback for mark in c.marks)]
    skip = _generic_failures(feedback)
    if skip >= len(left):
        tried = len(ranked) - len(left) + min(skip, len(left))
        raise GenerationError(
            "NoCandidate",
            f"every reading of the source found in its sample failed ({tried} tried); last error: "
            f"{feedback[-1] if feedback else 'none'}",
        )
    return left[skip], ranked


# -- writing ------------------------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    """Free text fit for a docstring: one line, no placeholder words, no backslash or quote to escape."""
    text = " ".join((text or "").split()).replace("\\", "/").replace('"', "'")
    return _PLACEHOLDERS.sub("…", text)


def _paragraph(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LINE_LENGTH - 4, break_on_hyphens=False)) if text else ""


def _constant(name: str, value: Any) -> str:
    line = f"{name} = {value!r}"
    if len(line) <= LINE_LENGTH or not isinstance(value, str):
        return line
    parts = [value[start : start + 80] for start in range(0, len(value), 80)]
    return f"{name} = (\n" + "".join(f"    {part!r}\n" for part in parts) + ")"


def _listed(names: Sequence[str | int]) -> str:
    shown = [_shown(name) for name in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _explain_choice(chosen: Candidate, ranked: list[Candidate]) -> str:
    if chosen.layout in ("wide", "months"):
        return ""
    key = "value_column" if chosen.layout == "long" else "value_field"
    same = [
        c
        for c in ranked
        if c is not chosen
        and c.layout == chosen.layout
        and c.constants.get("sheet") == chosen.constants.get("sheet")
        and c.constants.get("time_column", c.constants.get("time_field"))
        == chosen.constants.get("time_column", chosen.constants.get("time_field"))
    ]
    others = list(
        dict.fromkeys(_as_name(c.constants[key]) for c in same if c.constants[key] != chosen.constants[key])
    )
    if not others:
        return ""
    reason = (
        " and ".join(chosen.explanation)
        if chosen.explanation
        else "it reads the most values (nothing matched better)"
    )
    return f" It is chosen over {_listed(others)} for {reason}."


def _as_name(value: Any) -> str | int:
    if isinstance(value, tuple):
        return ".".join(value)
    return value  # type: ignore[no-any-return]


def _header(request: TemplateRequest, shape: str, attempt: int) -> str:
    unit = f" ({_clean(request.unit)})" if request.unit else ""
    first = _paragraph(f'"""Collector of {_clean(request.name)!r}{unit}, written by the template generator.')
    note = f" This is its reading number {attempt + 1} of the source." if attempt else ""
    return (
        first
        + "\n\n"
        + _paragraph(_clean(shape) + note)
        + '\n"""\n\nfrom headwater_worker.wrapper import helpers\n'
    )


def _time_example(sample: Sample, chosen: Candidate) -> str:
    sheet = next((s for s in sample.sheets if s.name == chosen.constants.get("sheet")), None)
    if sheet is None or chosen.layout != "long":
        return ""
    rows = sheet.rows[chosen.constants["header_row"] + 1 :]
    index = helpers.column(sheet.rows[chosen.constants["header_row"]], chosen.constants["time_column"])
    for cell in _column(rows, index):
        if helpers.parse_time(cell) is not None:
            return f", like {helpers.label(cell)!r}"
    return ""


def _table_module(
    request: TemplateRequest, sample: Sample, chosen: Candidate, ranked: list[Candidate], attempt: int
) -> str:
    c = chosen.constants
    sheet = next(s for s in sample.sheets if s.name == c["sheet"])
    place = f"sheet {sheet.name!r} of the workbook" if sample.source_type == "XLSX" else "the CSV file"
    structure = f"The header is row {c['header_row'] + 1}"
    if sheet.title_rows:
        structure += f", under {len(sheet.title_rows)} title row{'s' if len(sheet.title_rows) > 1 else ''}"
    if sheet.notes_rows:
        structure += ", with notes below the data, which are skipped"
    structure += "."
    decimal = "a decimal comma" if c["decimal"] == "," else "a decimal point"
    if chosen.layout == "long":
        series = (
            f" Rows of the same time are told apart by {_listed(c['series_columns'])}, each point's series."
            if c["series_columns"]
            else ""
        )
        shape = (
            f"The source is {place}, a long table. {structure} The time is column "
            f"{_shown(c['time_column'])} ({c['time_format']}{_time_example(sample, chosen)}), the value "
            f"column {_shown(c['value_column'])} (numbers with {decimal}; n/a, - or .. are none)."
            f"{_explain_choice(chosen, ranked)}{series}"
        )
        call = "long_points"
        keys = ["time_column", "time_format", "value_column", "decimal", "series_columns", "header_row"]
    else:
        if chosen.layout == "months":
            shape = (
                f"The source is {place}, a wide table of months: one row per year (column "
                f"{_shown(c['year_column'])}), the months as column headers; blank and marked months are "
                f"skipped. {structure}"
            )
            keys = ["time_format", "year_column", "decimal", "header_row"]
        else:
            series = (
                f" Each row is a series, named by {_listed(c['series_columns'])}."
                if c["series_columns"]
                else " It holds one series."
            )
            shape = (
                f"The source is {place}, a wide table: {c['time_format']} periods as column headers, "
                f"blank and marked periods skipped (numbers with {decimal}). {structure}{series}"
            )
            keys = ["time_format", "label_columns", "series_columns", "decimal", "header_row"]
        call = "wide_points"
    lines = [_header(request, shape, attempt), ""]
    if sample.source_type == "XLSX":
        lines.append(_constant("SHEET", sheet.name))
    else:
        lines.append(_constant("DELIMITER", sheet.delimiter or ","))
    lines += [_constant(key.upper(), c[key]) for key in keys]
    source_rows = (
        "helpers.table_rows(source, sheet=SHEET)"
        if sample.source_type == "XLSX"
        else ("helpers.table_rows(source, delimiter=DELIMITER)")
    )
    arguments = "".join(f"        {key}={key.upper()},\n" for key in keys)
    lines += [
        "",
        "",
        "def collect(since, source):",
        f"    rows = {source_rows}",
        f"    points = helpers.{call}(\n        rows,\n{arguments}    )",
        "    for point in points:",
        "        if since is None or point[0] > since:",
        "            yield point",
        "",
    ]
    return "\n".join(lines)


def _api_module(
    request: TemplateRequest, chosen: Candidate, ranked: list[Candidate], where: str, attempt: int
) -> str:
    c = chosen.constants
    paging = {
        "link": "pages follow the link to the next one (a Link header or a next link in the body)",
        "page": f"pages are asked for by the {c.get('page_parameter')!r} parameter until one comes back "
        "empty or the body says it was the last",
        "offset": f"pages are asked for by the {c.get('offset_parameter')!r} and "
        f"{c.get('limit_parameter')!r} parameters until the total the body gives is reached or a page comes "
        "back empty",
        "none": "the first response holds all of them",
    }[c["paging"]]
    series = (
        f" Records of the same time are told apart by field {'.'.join(c['series_field'])!r}."
        if c["series_field"]
        else ""
    )
    shape = (
        f"The source is a JSON API: its records are {where}; {paging}. The time is field "
        f"{'.'.join(c['time_field'])!r} ({c['time_format']}), the value field {'.'.join(c['value_field'])!r} "
        f"(numbers or numbers as text; null and markers are no value)."
        f"{_explain_choice(chosen, ranked)}{series}"
    )
    lines = [_header(request, shape, attempt), ""]
    lines += [
        _constant("RECORDS", c["records"]),
        _constant("TIME_FIELD", c["time_field"]),
        _constant("TIME_FORMAT", c["time_format"]),
        _constant("VALUE_FIELD", c["value_field"]),
        _constant("DECIMAL", c["decimal"]),
        _constant("SERIES_FIELD", c["series_field"]),
    ]
    if c["paging"] == "page":
        lines.append(_constant("PAGE_PARAMETER", c["page_parameter"]))
    if c["paging"] == "offset":
        lines += [
            _constant("OFFSET_PARAMETER", c["offset_parameter"]),
            _constant("LIMIT_PARAMETER", c["limit_parameter"]),
            _constant("LIMIT", c["limit"]),
        ]
    lines += [
        _constant("MAX_PAGES", MAX_PAGES),
        "",
        "",
        "def points(records):",
        "    for record in records:",
        "        point = helpers.record_point(",
        "            record,",
        "            time_field=TIME_FIELD,",
        "            value_field=VALUE_FIELD,",
        "            time_format=TIME_FORMAT,",
        "            decimal=DECIMAL,",
        "            series_field=SERIES_FIELD,",
        "        )",
        "        if point is not None:",
        "            yield point",
        "",
        "",
        "def collect(since, source):",
        "    response = source.get()",
    ]
    if c["paging"] == "page":
        lines += ["    page, previous = 1, None"]
    if c["paging"] == "offset":
        lines += ["    offset = 0"]
    lines += [
        "    for _ in range(MAX_PAGES):",
        "        body = helpers.json_body(response)",
        "        records = helpers.find_records(body, RECORDS)",
        "        for point in points(records):",
        "            if since is None or point[0] > since:",
        "                yield point",
    ]
    if c["paging"] == "link":
        lines += [
            "        url = helpers.next_url(response, body)",
            "        if not records or url is None:",
            "            return",
            "        response = source.get(url)",
        ]
    elif c["paging"] == "page":
        lines += [
            "        if not records or records == previous or not helpers.more_pages(body, page):",
            "            return",
            "        page, previous = page + 1, records",
            "        response = source.get(helpers.with_query(source.url, {PAGE_PARAMETER: page}))",
        ]
    elif c["paging"] == "offset":
        lines += [
            "        offset += len(records)",
            "        total = helpers.total_count(body)",
            "        if not records or (total is not None and offset >= total):",
            "            return",
            "        response = source.get(",
            "            helpers.with_query(source.url, {OFFSET_PARAMETER: offset, LIMIT_PARAMETER: LIMIT})",
            "        )",
        ]
    else:
        lines += ["        return"]
    lines.append("")
    return "\n".join(lines)


def generate(request: TemplateRequest, sample: Sample, feedback: Sequence[str] = ()) -> str:
    """The Python source of a collector module for the source `sample` shows, or GenerationError."""
    if sample.source_type == "API":
        candidates, where = _api_candidates(sample, request)
        if not candidates:
            raise GenerationError(
                "NoValues", f"the records {where} have a time field but no field of numbers"
            )
        chosen, ranked = _choose(candidates, feedback)
        return _api_module(request, chosen, ranked, where, ranked.index(chosen))
    candidates = _file_candidates(sample, request)
    if not candidates:
        raise _no_values(sample) or _no_time_axis(sample)
    chosen, ranked = _choose(candidates, feedback)
    return _table_module(request, sample, chosen, ranked, ranked.index(chosen))
