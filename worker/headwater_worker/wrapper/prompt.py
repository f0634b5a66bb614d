"""The prompt a model writes a collector from: one versioned template, filled from the Wrapper and the sample.

`PROMPT_VERSION` names the template. It travels with every module a model writes (the execution log,
`status.code.promptVersion`, the prompts ConfigMap), so a module can be traced to the words that asked for
it: any change of the text below changes the version.

The system instruction is the collector contract (the same for every Wrapper): what `collect` receives and
returns, what `source` and `helpers` offer, the allow-list, the checks the module must pass, a worked
example. The request is the Wrapper's own: the indicator, the source, the sample and the structure the
sampler found in it, and on a retry the previous module with every error found in it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from string import Template

from .contract import ALLOWED_IMPORTS, FORBIDDEN_ATTRIBUTES, FORBIDDEN_NAMES, Cell
from .sample import PageSample, Sample, SheetSample

PROMPT_VERSION = "wrapper-collector/1"

# What of a sample goes into a prompt: enough rows to see a table's layout and enough of a page to see its
# records and links, not the whole source.
PROMPT_ROWS = 40
PROMPT_CELLS = 30
PROMPT_CELL_CHARS = 80
PROMPT_PAGE_CHARS = 6000
PROMPT_SAMPLE_CHARS = 40000
PROMPT_CODE_CHARS = 20000

SYSTEM = Template(
    '''You write one Python module: the collector of one sustainability indicator from one data source, for
Headwater. The module is checked, then run unattended again and again, each run collecting what is new.

# The collector contract

The module defines a top-level function `collect(since, source)`.

- `since` is the newest timestamp already stored, a timezone-aware `datetime`, or `None` on the first run.
  Return or yield only the points newer than `since`.
- A point is a tuple `(timestamp, value)` or `(timestamp, value, attributes)`: `timestamp` a timezone-aware
  `datetime`, `value` a finite `int` or `float` (not a `bool`), `attributes` an optional `dict` of strings.
  The attribute `series` names the series a point belongs to (a station, a region, a sector) when the
  source holds several for the same time.
- `source` is the module's only way to its data:
  - `source.url`: the source's URL (`None` for a file given directly);
  - `source.get(url=None, params=None)`: an HTTP GET on the source's own scheme, host and port only (a
    relative URL resolves against `source.url`; default `source.url`), with the API key added for you (never
    add one yourself); retried on errors. It returns a response with `status_code`, `url`, `headers`,
    `content`, `text` and `json()`. Any other host is refused;
  - `source.read_bytes()`: the file's bytes; `source.csv_rows()`: a CSV file's rows (decoded, its
    delimiter detected); `source.sheet_names()`: a workbook's sheet names; `source.xlsx_rows(sheet=None)`:
    a sheet's rows of cell values (`str`, `int`, `float`, `datetime` or `None`).
- When the source no longer has the shape the module expects (a column or field gone, no records), raise
  `helpers.shape_changed("...")` with a message naming what is missing. Skip rows or records that merely
  lack a value (blanks, markers such as `n/a`, `-`, `:`).

# What the module may use

- Imports: only $allowed. Import the helpers as `from headwater_worker.wrapper import helpers`. No
  relative import, no other module: not `os`, `sys`, `subprocess`, `socket`, `requests`, `urllib`,
  `pathlib`, `pandas`.
- Never name the builtins $forbidden_names, nor any name that begins with `__`. Reach no attribute that
  begins with `_`, none of $forbidden_attributes, and no module through another (write
  `from collections.abc import Mapping`, not `collections.abc.Mapping`). No `global` or `nonlocal`.
- No placeholder: no TODO, FIXME or XXX, no `your_api_key`, no `example.com`, no function whose body is
  only `pass` or `...`. Every value the module needs is in the sample: write it in.
- The module must pass `ruff check` with the rules E, F, W and B and lines of at most 120 characters.
- Before it is stored, the module is run on the sample (a file whole; an API replayed from the sampled
  pages): it must yield at least one valid point.

# helpers

`from headwater_worker.wrapper import helpers` does the parsing:

- `helpers.parse_value(cell, decimal=None)`: a number from a cell (`12.3*`, `1,234.5`, `1.234,5`,
  `1 234,5`; flags dropped), `None` for markers and blanks; `helpers.detect_decimal(cells)` gives a
  column's decimal mark (`"."` or `","`).
- `helpers.parse_time(cell, day_first=True)`: a timezone-aware `datetime` (naive times are UTC, a period at
  its first instant) from datetimes, ISO dates, `dd/mm/yyyy`, `dd.mm.yyyy`, years, months (`2021-03`,
  `2021M03`, `Mar 2021`), quarters (`2021-Q1`), halves, ISO weeks and numbers; `None` when it is none.
  `helpers.time_parser(format)` is the same for one format of `iso`, `datetime`, `dmy`, `mdy`, `year`,
  `half`, `quarter`, `month`, `week`, `excel`, `epoch`, `epoch_ms` or `any`.
- `helpers.table_rows(source, sheet=None, delimiter=None)`: the rows of the file (the sheet of a workbook
  when `sheet` is given, else CSV rows with that delimiter).
- `helpers.long_points(rows, time_column=, value_column=, time_format=, decimal=".", series_columns=(),
  header_row=0)`: the points of a long table (a column of times, a column of values; columns named as in
  the header row at index `header_row`, counted from 0).
- `helpers.wide_points(rows, time_format=, label_columns=(), series_columns=(), decimal=".", header_row=0,
  year_column=None, keep_series=None)`: the points of a wide table (periods as column headers, one row per
  series).
- `helpers.json_body(response)`: a response's JSON (an error status raises);
  `helpers.find_records(body, path)`: the list of records at `path`, a tuple of keys (`()` for a top-level
  list); `helpers.record_point(record, time_field=, value_field=, time_format="any", decimal=".",
  series_field=None)`: the point of a record (fields as tuples of keys), `None` without a time or value;
  `helpers.next_url(response, body)`: the next page's URL from a `Link` header or a `next` link in the body;
  `helpers.more_pages(body, page)`, `helpers.total_count(body)`, `helpers.with_query(url, params)`.
- `helpers.shape_changed(message)`: the error to raise when the source changed shape.

# A worked example

For an API whose pages look like `{"count": 80, "next": "https://api.city.org/v2/aqi/?page=2",
"results": [{"station": "Harbour", "date": "2023-03-01", "aqi": "131"}, ...]}`, of the indicator "Air
quality index" (AQI), a good module is:

```python
"""Air quality index (AQI) per station, from the records under 'results', page after page."""

from headwater_worker.wrapper import helpers

MAX_PAGES = 10000


def collect(since, source):
    response = source.get()
    for _ in range(MAX_PAGES):
        body = helpers.json_body(response)
        records = helpers.find_records(body, ("results",))
        for record in records:
            point = helpers.record_point(
                record,
                time_field=("date",),
                value_field=("aqi",),
                time_format="iso",
                series_field=("station",),
            )
            if point is not None and (since is None or point[0] > since):
                yield point
        url = helpers.next_url(response, body)
        if not records or url is None:
            return
        response = source.get(url)
```

and for a CSV file whose header row (index 0) is `Reading date;Consumption (kWh);Cost (EUR)` with rows such
as `01/01/2021;1.234,5;310,20`, of the indicator "Electricity consumption" (kWh):

```python
"""Electricity consumption (kWh), one reading per day, from the column 'Consumption (kWh)'."""

from headwater_worker.wrapper import helpers


def collect(since, source):
    rows = helpers.table_rows(source, delimiter=";")
    points = helpers.long_points(
        rows, time_column="Reading date", value_column="Consumption (kWh)", time_format="dmy", decimal=","
    )
    for point in points:
        if since is None or point[0] > since:
            yield point
```

# How to answer

Answer with the whole module in one fenced block (```python ... ```). Choose the value that is the
indicator (its name, unit, description and notes say which), keep every series the source holds apart by
its `series` attribute, and read every page of an API.$tools'''
)

TOOLS_NOTE = Template(
    """

Before you write the module you may call `fetch_url` to GET another page or another endpoint of the
source's host, as the module would (at most $calls calls; each answer shows the first $chars characters of
the body). Use it to learn how the API pages or what a parameter does, then answer with the module."""
)

REQUEST = Template(
    """# The indicator

$indicator

# The source

$source

# The sample

$sample
$feedback"""
)


@dataclass(frozen=True)
class Indicator:
    """What the Wrapper says of its indicator and source, for the request."""

    name: str
    unit: str | None = None
    description: str | None = None
    category: str | None = None
    notes: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class PreviousAttempt:
    """A module that failed validation, and every error found in it."""

    code: str
    errors: Sequence[str]


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


def system_instruction(*, tool_calls: int = 0, tool_chars: int = 0) -> str:
    """The contract; with `tool_calls`, the note on the `fetch_url` tool too."""
    tools = TOOLS_NOTE.substitute(calls=tool_calls, chars=f"{tool_chars:,}") if tool_calls else ""
    return SYSTEM.substitute(
        allowed=_names(ALLOWED_IMPORTS),
        forbidden_names=_names(FORBIDDEN_NAMES),
        forbidden_attributes=_names(FORBIDDEN_ATTRIBUTES),
        tools=tools,
    )


def _cell(cell: Cell) -> str | int | float | None:
    if isinstance(cell, datetime):
        return cell.isoformat()
    if isinstance(cell, str) and len(cell) > PROMPT_CELL_CHARS:
        return cell[:PROMPT_CELL_CHARS] + "…"
    return cell


def _row(index: int, row: Sequence[Cell]) -> str:
    cells = [_cell(cell) for cell in row[:PROMPT_CELLS]]
    more = f" … ({len(row) - PROMPT_CELLS} more cells)" if len(row) > PROMPT_CELLS else ""
    return f"{index}: {json.dumps(cells, ensure_ascii=False)}{more}"


def describe_sheet(sheet: SheetSample, source_type: str) -> str:
    """A sheet as the sampler saw it: how it reads, the structure found, its first and last rows."""
    facts = [f"{sheet.total_rows} rows in all" if sheet.total_rows is not None else None]
    if sheet.delimiter is not None:
        facts.append(f"delimiter {sheet.delimiter!r}")
    if sheet.encoding is not None:
        facts.append(f"encoding {sheet.encoding}")
    kind = "The CSV file" if source_type == "CSV" else "Sheet"
    lines = [f"## {kind} {sheet.name!r} ({', '.join(fact for fact in facts if fact)})", ""]
    if sheet.header_row is not None:
        lines.append(f"- header row found at index {sheet.header_row}")
    else:
        lines.append("- no header row found")
    if sheet.title_rows:
        lines.append(f"- title rows above it at indexes {', '.join(map(str, sheet.title_rows))}")
    if sheet.merged_cells:
        lines.append(f"- merged cells: {', '.join(sheet.merged_cells[:20])}")
    if sheet.notes_rows:
        notes = "; ".join(
            " ".join(str(cell) for cell in row if cell not in (None, "")) for row in sheet.notes_rows
        )
        lines.append(f"- notes after the data: {notes[:1000]}")
    shown = sheet.rows[:PROMPT_ROWS]
    lines += ["", "Its first rows (index: cells as JSON):", *(_row(i, row) for i, row in enumerate(shown))]
    if sheet.last_rows:
        first_last = (sheet.total_rows or 0) - len(sheet.last_rows)
        lines += ["", "Its last rows:", *(_row(first_last + i, row) for i, row in enumerate(sheet.last_rows))]
    elif len(sheet.rows) > len(shown):
        lines.append(f"… and {len(sheet.rows) - len(shown)} more rows like these")
    return "\n".join(lines)


def describe_page(number: int, page: PageSample) -> str:
    """One sampled response: what was asked, how it answered, the start of its body."""
    headers = "".join(f", {name}: {value}" for name, value in sorted(page.headers.items()))
    body = page.body
    cut = f"\n… ({len(body) - PROMPT_PAGE_CHARS:,} more characters)" if len(body) > PROMPT_PAGE_CHARS else ""
    return (
        f"## Page {number}: GET {page.url} → HTTP {page.status}{headers}\n\n{body[:PROMPT_PAGE_CHARS]}{cut}"
    )


def describe_sample(sample: Sample) -> str:
    """The sample as the request shows it, within PROMPT_SAMPLE_CHARS."""
    if sample.source_type == "API":
        parts = [describe_page(number, page) for number, page in enumerate(sample.pages, 1)]
        intro = f"The first {len(parts)} pages, each fetched by following the previous one's next link."
    else:
        parts = [describe_sheet(sheet, sample.source_type) for sheet in sample.sheets]
        intro = "Indexes count rows from 0, as `header_row` does; cells are as `source` reads them."
    text = "\n\n".join([intro, *parts])
    if len(text) > PROMPT_SAMPLE_CHARS:
        text = text[:PROMPT_SAMPLE_CHARS] + "\n… (the rest of the sample is left out)"
    return text


def _facts(pairs: Sequence[tuple[str, str | None]]) -> str:
    return "\n".join(f"- {name}: {value}" for name, value in pairs if value)


def request_text(
    indicator: Indicator,
    sample: Sample,
    *,
    previous: PreviousAttempt | None = None,
    earlier_failure: str | None = None,
) -> str:
    """The Wrapper's request: the indicator, the source, the sample, and what went wrong before."""
    where = indicator.url or ("a file in a ConfigMap or S3" if sample.source_type != "API" else None)
    feedback: list[str] = []
    if earlier_failure:
        feedback += [
            "",
            "# The collector before this one",
            "",
            f"It ran on this source and failed: {earlier_failure}",
            "The source changed shape since it was written: write the module for the source as the sample "
            "shows it now.",
        ]
    if previous is not None:
        code = previous.code.strip("\n")[:PROMPT_CODE_CHARS]
        shown = (
            ["", f"```python\n{code}\n```", "", "It failed the checks:"]
            if code
            else ["", "It held no module:"]
        )
        feedback += [
            "",
            "# Your previous answer",
            *shown,
            *(f"- {error}" for error in previous.errors),
            "",
            "Write the whole module again with every one of these errors fixed.",
        ]
    return REQUEST.substitute(
        indicator=_facts(
            [
                ("name", indicator.name),
                ("unit", indicator.unit),
                ("description", indicator.description),
                ("category", indicator.category),
            ]
        ),
        source=_facts(
            [
                ("type", sample.source_type),
                ("URL", where),
                ("notes from the Wrapper's author", indicator.notes),
            ]
        ),
        sample=describe_sample(sample),
        feedback="\n".join(feedback),
    )
