"""The template generator: what it infers from a sample, what it says when it cannot, how feedback moves it
to another reading, and that what it writes is a small module that lints clean and stays within the
collector contract. Sampling is here too: the structure the generator starts from."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from headwater_worker.wrapper import helpers
from headwater_worker.wrapper.contract import ALLOWED_IMPORTS, FORBIDDEN_NAMES, Point, Response
from headwater_worker.wrapper.sample import PageSample, Sample
from headwater_worker.wrapper.sampling import sample_file
from headwater_worker.wrapper.source import FileSource, SourceError
from headwater_worker.wrapper.template import GenerationError, TemplateRequest, generate

from tests.integration.test_wrapper_corpus import KNOWN_FAILURES

CORPUS = Path(__file__).resolve().parents[1] / "data" / "wrapper"
PLACEHOLDER = re.compile(r"\b(TODO|FIXME|XXX)\b|your[_-]?api[_-]?key|example\.(com|org)", re.IGNORECASE)
UNSAFE_MODULES = {"os", "sys", "subprocess", "socket", "builtins", "importlib", "shutil", "pathlib"}


def utc(year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def csv_sample(text: str, name: str = "data.csv", encoding: str = "utf-8") -> Sample:
    return sample_file(text.encode(encoding), "CSV", name)


def run(code: str, source: Any, since: datetime | None = None) -> list[tuple[datetime, float, str | None]]:
    namespace: dict[str, Any] = {}
    exec(compile(code, "wrapper.py", "exec"), namespace)  # noqa: S102 - the generated module under test
    points = [Point(*item) for item in namespace["collect"](since, source)]
    return [(p.timestamp, p.value, (p.attributes or {}).get("series")) for p in points]


def constants(code: str) -> dict[str, Any]:
    """The module's top-level constants, as the generator inlined them."""
    found = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def lint(code: str) -> list[str]:
    command = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-fix", "--output-format", "concise"]
    command += ["--select", "E,F,W,B", "--line-length", "120", "--stdin-filename", "wrapper.py", "-"]
    finished = subprocess.run(command, input=code, capture_output=True, text=True, check=False)
    assert finished.returncode in (0, 1), finished.stderr
    return [line for line in finished.stdout.splitlines() if line.startswith("wrapper.py")]


def contract_problems(code: str) -> list[str]:
    """What the collector contract forbids, found in the module's syntax tree."""
    problems = [f"placeholder {found.group(0)!r}" for found in PLACEHOLDER.finditer(code)]
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"import {alias.name}" for alias in node.names if alias.name not in ALLOWED_IMPORTS]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                if module not in ALLOWED_IMPORTS and f"{module}.{alias.name}" not in ALLOWED_IMPORTS:
                    problems.append(f"from {module} import {alias.name}")
        elif isinstance(node, ast.Name) and (node.id in FORBIDDEN_NAMES or node.id in UNSAFE_MODULES):
            problems.append(f"name {node.id}")
        elif isinstance(node, ast.Name | ast.Attribute) and (
            (node.id if isinstance(node, ast.Name) else node.attr).startswith("__")
        ):
            problems.append("dunder")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            problems.append(f"private attribute {node.attr}")
        elif isinstance(node, ast.FunctionDef) and all(
            isinstance(statement, ast.Pass)
            or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
            for statement in node.body
        ):
            problems.append(f"placeholder body in {node.name}")
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    if "collect" not in functions or [a.arg for a in functions["collect"].args.args] != ["since", "source"]:
        problems.append("no collect(since, source)")
    compares = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and isinstance(node.ops[0], ast.Gt)
        and isinstance(node.comparators[0], ast.Name)
        and node.comparators[0].id == "since"
    ]
    if not compares:
        problems.append("no filter > since")
    return problems


def source_calls(code: str) -> list[tuple[str, list[ast.expr]]]:
    """The attributes of `source` the module uses, with the arguments of each call."""
    used: list[tuple[str, list[ast.expr]]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "source":
            used.append((node.attr, []))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "source"
        ):
            used.append((f"{node.func.attr}()", list(node.args)))
    return used


def clean_module(code: str) -> None:
    assert lint(code) == []
    assert contract_problems(code) == []
    assert len(code.splitlines()) < 80


# -- long tables --------------------------------------------------------------------------------------------

METERS = """\
date,site,electricity_kwh,gas_m3,water_m3,cost_eur
2023-01-01,Depot,120.5,30.1,4.2,55.10
2023-01-02,Depot,130.0,n/a,4.4,57.30
2023-01-03,Depot,-,31.9,4.1,56.00
2023-01-04,Depot,128.25,29.0,,54.90
"""


def test_the_value_column_is_the_one_the_indicator_names_and_the_module_says_why() -> None:
    sample = csv_sample(METERS)
    gas = generate(TemplateRequest(name="Gas consumption", unit="m³"), sample)
    assert constants(gas)["VALUE_COLUMN"] == "gas_m3"
    docstring = " ".join((ast.get_docstring(ast.parse(gas)) or "").split())
    assert "'gas_m3'" in docstring
    assert "chosen over" in docstring
    assert "'water_m3'" in docstring
    assert run(gas, FileSource(sample.data or b"")) == [
        (utc(2023, 1, 1), 30.1, None),
        (utc(2023, 1, 3), 31.9, None),
        (utc(2023, 1, 4), 29.0, None),
    ]
    electricity = generate(TemplateRequest(name="Electricity use", unit="kWh"), sample)
    assert constants(electricity)["VALUE_COLUMN"] == "electricity_kwh"
    water = generate(TemplateRequest(name="Site water", unit="m3", notes="metered mains water"), sample)
    assert constants(water)["VALUE_COLUMN"] == "water_m3"
    # The same unit twice: the notes decide, and a column they set aside loses.
    notes = TemplateRequest(name="Consumption", unit="m³", notes="The water meter, not gas.")
    assert constants(generate(notes, sample))["VALUE_COLUMN"] == "water_m3"
    for code in (gas, electricity, water):
        clean_module(code)


def test_repeated_times_are_told_apart_by_a_series_column() -> None:
    text = "Datum;Station;Wert\n01.02.2022;Nord;1.234,5\n01.02.2022;Süd;987,6\n02.02.2022;Nord;1,5\n"
    sample = csv_sample(text, encoding="latin-1")
    code = generate(TemplateRequest(name="Wert", unit="m³"), sample)
    values = constants(code)
    assert values["SERIES_COLUMNS"] == ("Station",)
    assert values["DECIMAL"] == ","
    assert values["DELIMITER"] == ";"
    assert values["TIME_FORMAT"] == "dmy"
    assert run(code, FileSource(sample.data or b"")) == [
        (utc(2022, 2, 1), 1234.5, "Nord"),
        (utc(2022, 2, 1), 987.6, "Süd"),
        (utc(2022, 2, 2), 1.5, "Nord"),
    ]
    clean_module(code)


def test_numbers_that_could_be_years_or_serial_days_are_values_unless_the_header_says_time() -> None:
    text = "when,output,serial\n2021-01-01,1834,44197\n2021-01-02,1920,44198\n2021-01-03,2011,44199\n"
    code = generate(TemplateRequest(name="Output"), csv_sample(text))
    assert constants(code)["TIME_COLUMN"] == "when"
    assert constants(code)["VALUE_COLUMN"] == "output"


# -- wide tables --------------------------------------------------------------------------------------------

WIDE = """\
"Table 3: Waste generated by district, tonnes",,,,
,,,,
District,2019,2020,2021,2022 (p)
Centre,"1,200.5",:,"1,300.0","1,350.2"
Harbour,800,810,..,850
"Source: city statistics",,,,
"""


def test_a_wide_table_of_years_with_titles_markers_and_notes() -> None:
    sample = csv_sample(WIDE)
    code = generate(TemplateRequest(name="Waste generated", unit="t"), sample)
    values = constants(code)
    assert values["TIME_FORMAT"] == "year"
    assert values["SERIES_COLUMNS"] == ("District",)
    assert values["HEADER_ROW"] == 2
    assert "helpers.wide_points(" in code
    assert run(code, FileSource(sample.data or b"")) == [
        (utc(2019), 1200.5, "Centre"),
        (utc(2021), 1300.0, "Centre"),
        (utc(2022), 1350.2, "Centre"),
        (utc(2019), 800.0, "Harbour"),
        (utc(2020), 810.0, "Harbour"),
        (utc(2022), 850.0, "Harbour"),
    ]
    clean_module(code)


def test_a_wide_table_of_one_series_has_no_series_attribute() -> None:
    text = "indicator,2021-Q1,2021-Q2,2021-Q3\nEmissions (kt),1.5,2.5,3.5\n"
    sample = csv_sample(text)
    code = generate(TemplateRequest(name="Emissions", unit="kt"), sample)
    assert constants(code)["TIME_FORMAT"] == "quarter"
    assert run(code, FileSource(sample.data or b"")) == [
        (utc(2021, 1), 1.5, None),
        (utc(2021, 4), 2.5, None),
        (utc(2021, 7), 3.5, None),
    ]


def test_a_wide_table_of_month_names_takes_the_year_from_its_row() -> None:
    header = "Year," + ",".join(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
    text = header + ",Annual\n2022," + ",".join(str(n) for n in range(1, 13)) + ",78\n2023,5,6,,,,,,,,,,,11\n"
    sample = csv_sample(text)
    code = generate(TemplateRequest(name="Rainfall", unit="mm"), sample)
    assert constants(code)["YEAR_COLUMN"] == "Year"
    points = run(code, FileSource(sample.data or b""))
    assert len(points) == 14
    assert points[0] == (utc(2022, 1), 1.0, None)
    assert points[-1] == (utc(2023, 2), 6.0, None)


def test_an_xlsx_sheet_under_merged_titles_with_notes_below_is_found_among_other_sheets(
    tmp_path: Path,
) -> None:
    workbook = openpyxl.Workbook()
    cover = workbook.active
    assert cover is not None
    cover.title = "Contents"
    cover["A1"] = "Energy statistics, see the next sheet"
    sheet = workbook.create_sheet("Table 1")
    sheet["A1"] = "Heat supplied"
    sheet.merge_cells("A1:C1")
    sheet.append(["Unit: MWh"])
    sheet.append(["Period", "Heat supplied", "Losses"])
    for month in (1, 2, 3):
        sheet.append([datetime(2024, month, 1), 100.0 * month, 5])
    sheet.append(["Note: losses are estimated."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()
    sample = sample_file(data, "XLSX", "heat.xlsx")
    table = sample.sheets[1]
    assert [s.name for s in sample.sheets] == ["Contents", "Table 1"]
    assert table.merged_cells == ["A1:C1"]
    assert table.header_row == 2
    assert table.title_rows == [0, 1]
    assert table.notes_rows == [["Note: losses are estimated.", None, None]]
    code = generate(TemplateRequest(name="Heat supplied", unit="MWh"), sample)
    assert constants(code)["SHEET"] == "Table 1"
    assert constants(code)["VALUE_COLUMN"] == "Heat supplied"
    assert run(code, FileSource(data)) == [(utc(2024, m), 100.0 * m, None) for m in (1, 2, 3)]
    clean_module(code)


# -- what cannot be generated -------------------------------------------------------------------------------


def test_a_file_without_a_time_axis_names_what_was_looked_for_and_the_headers_it_saw() -> None:
    sample = csv_sample("Region,Population,Area\nNorth,1200,33.5\nSouth,800,12.0\n", name="regions.csv")
    with pytest.raises(GenerationError) as failure:
        generate(TemplateRequest(name="Population"), sample)
    assert failure.value.reason == "NoTimeAxis"
    assert "no column or header row of dates, months" in failure.value.message
    assert "years" in failure.value.message
    assert "sheet 'regions.csv' (headers: Region, Population, Area)" in failure.value.message
    assert "\n" not in failure.value.message


def test_times_without_numbers_beside_them_are_no_values() -> None:
    sample = csv_sample("date,comment\n2021-01-01,fine\n2021-01-02,windy\n", name="log.csv")
    with pytest.raises(GenerationError) as failure:
        generate(TemplateRequest(name="Comments"), sample)
    assert failure.value.reason == "NoValues"
    assert "column 'date' but no column of numbers" in failure.value.message


def test_repeated_times_with_nothing_to_tell_them_apart_are_no_values() -> None:
    sample = csv_sample("year,month,value\n2021,1,5\n2021,2,6\n2022,1,7\n", name="split.csv")
    with pytest.raises(GenerationError) as failure:
        generate(TemplateRequest(name="Value"), sample)
    assert failure.value.reason == "NoValues"
    assert "times in column 'year', but they repeat and no column of text tells their rows apart" in (
        failure.value.message
    )


# -- feedback -----------------------------------------------------------------------------------------------


def test_feedback_moves_to_the_next_reading_and_runs_out_with_an_error() -> None:
    sample = csv_sample(METERS)
    request = TemplateRequest(name="Gas consumption", unit="m³")
    code = generate(request, sample)
    first = constants(code)["VALUE_COLUMN"]
    # The error a reading fails with, as a dry run reports it, drops that reading.
    unreadable = "\n".join(
        ",".join("n/a" if index == 3 and number else cell for index, cell in enumerate(line.split(",")))
        for number, line in enumerate(METERS.splitlines())
    )
    with pytest.raises(SourceError) as failure:
        run(code, FileSource(unreadable.encode()))
    named = generate(request, sample, [f"dry run: {failure.value.reason}: {failure.value.message}"])
    assert constants(named)["VALUE_COLUMN"] != first
    # An error that names none skips the best reading left, one per failed attempt.
    generic = "dry run: collect yielded no point from the sample"
    second = constants(generate(request, sample, [generic]))["VALUE_COLUMN"]
    third = constants(generate(request, sample, [generic, generic]))["VALUE_COLUMN"]
    assert len({first, second, third}) == 3
    assert "reading number 2" in generate(request, sample, [generic])
    with pytest.raises(GenerationError) as exhausted:
        generate(request, sample, [generic] * 20)
    assert exhausted.value.reason == "NoCandidate"
    assert generic in exhausted.value.message


def test_an_error_about_a_missing_column_steers_a_regeneration_away_from_it() -> None:
    sample = csv_sample(METERS)
    request = TemplateRequest(name="Gas consumption", unit="m³")
    error = "SourceChanged: the header row has no column 'gas_m3' (columns: 'date', 'site')"
    assert constants(generate(request, sample, [error]))["VALUE_COLUMN"] != "gas_m3"


def test_free_text_of_the_indicator_cannot_put_a_placeholder_or_break_the_docstring() -> None:
    request = TemplateRequest(
        name='TODO: gas """ \\ use', unit="m³", notes="see example.com", url="https://example.com"
    )
    code = generate(request, csv_sample(METERS))
    clean_module(code)


# -- APIs ---------------------------------------------------------------------------------------------------


class Pages:
    """An API held in memory: responses by URL, the requests made."""

    def __init__(self, url: str, responses: Mapping[str, tuple[Any, dict[str, str]]]) -> None:
        self.url = url
        self.responses = responses
        self.requested: list[str] = []

    def get(self, url: str | None = None, params: Mapping[str, str | int | float] | None = None) -> Response:
        assert params is None
        target = url or self.url
        if target.startswith("/"):
            target = "http://api.test" + target
        self.requested.append(target)
        body, headers = self.responses[target]
        return Response(200, target, headers, json.dumps(body).encode())

    def sample(self) -> Sample:
        response = self.get()
        self.requested.clear()
        page = PageSample(self.url, {}, 200, "application/json", dict(response.headers), response.text)
        return Sample("API", url=self.url, pages=[page])


def api_module(pages: Pages, request: TemplateRequest) -> str:
    code = generate(request, pages.sample())
    clean_module(code)
    calls = source_calls(code)
    assert {name for name, _ in calls} <= {"get", "get()", "url"}
    assert calls[0] == ("get()", []) or ("get()", []) in calls  # the first page as sampled: no parameters
    return code


def test_records_under_data_paged_by_a_page_parameter() -> None:
    base = "http://api.test/v1/obs"
    records = [
        {"ts": f"2023-01-0{day}T00:00:00Z", "value": str(day * 1.5), "station": "A"} for day in (1, 2, 3)
    ]
    pages = Pages(
        base,
        {
            base: ({"data": records[:2], "meta": {"page": 1, "total_pages": 2}}, {}),
            base + "?page=2": ({"data": records[2:], "meta": {"page": 2, "total_pages": 2}}, {}),
        },
    )
    code = api_module(pages, TemplateRequest(name="Value"))
    assert constants(code)["RECORDS"] == ("data",)
    assert constants(code)["PAGE_PARAMETER"] == "page"
    assert run(code, pages) == [
        (utc(2023, 1, 1), 1.5, None),
        (utc(2023, 1, 2), 3.0, None),
        (utc(2023, 1, 3), 4.5, None),
    ]
    assert pages.requested == [base, base + "?page=2"]
    pages.requested.clear()
    assert run(code, pages, since=utc(2023, 1, 2)) == [(utc(2023, 1, 3), 4.5, None)]


def test_a_top_level_list_paged_by_a_link_header_with_relative_urls() -> None:
    base = "http://api.test/emissions"
    first = [
        {"period": "2021-01", "co2": "1.5", "ch4": "0.1"},
        {"period": "2021-02", "co2": "1.7", "ch4": "0.2"},
    ]
    pages = Pages(
        base,
        {
            base: (first, {"link": '</emissions?page=2>; rel="next", </emissions?page=2>; rel="last"'}),
            base + "?page=2": (
                [{"period": "2021-03", "co2": "n/a", "ch4": "0.3"}],
                {"link": '</emissions?page=1>; rel="first"'},
            ),
        },
    )
    code = api_module(pages, TemplateRequest(name="CO2 emissions", unit="Mt"))
    assert constants(code)["RECORDS"] == ()
    assert constants(code)["VALUE_FIELD"] == ("co2",)
    assert "helpers.next_url(response, body)" in code
    assert run(code, pages) == [(utc(2021, 1), 1.5, None), (utc(2021, 2), 1.7, None)]
    assert pages.requested == [base, "http://api.test/emissions?page=2"]


def test_records_paged_by_offset_until_the_total() -> None:
    base = "http://api.test/sdmx"
    observations = [{"TIME_PERIOD": f"2020M{m:02d}", "OBS_VALUE": f"{m}.25"} for m in range(1, 6)]
    pages = Pages(
        base,
        {
            base: ({"total": 5, "offset": 0, "limit": 2, "observations": observations[:2]}, {}),
            base + "?offset=2&limit=2": (
                {"total": 5, "offset": 2, "limit": 2, "observations": observations[2:4]},
                {},
            ),
            base + "?offset=4&limit=2": (
                {"total": 5, "offset": 4, "limit": 2, "observations": observations[4:]},
                {},
            ),
        },
    )
    code = api_module(pages, TemplateRequest(name="Price"))
    assert constants(code)["LIMIT"] == 2
    assert [value for _, value, _ in run(code, pages)] == [1.25, 2.25, 3.25, 4.25, 5.25]
    assert len(pages.requested) == 3


def test_an_api_without_a_time_field_names_the_fields_it_saw() -> None:
    pages = Pages("http://api.test/x", {"http://api.test/x": ({"results": [{"name": "a", "score": 1}]}, {})})
    with pytest.raises(GenerationError) as failure:
        generate(TemplateRequest(name="Score"), pages.sample())
    assert failure.value.reason == "NoTimeAxis"
    assert failure.value.message == (
        "no field of dates, months or years in the records under 'results' (fields: name, score)"
    )


# -- every corpus module ------------------------------------------------------------------------------------


def corpus_entries() -> Iterable[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CORPUS / "corpus.json").read_text())
    return [entry for entry in entries if entry["type"] != "API" and entry["name"] not in KNOWN_FAILURES]


@pytest.mark.parametrize("entry", corpus_entries(), ids=lambda entry: str(entry["name"]))
def test_every_corpus_file_gives_a_clean_module(entry: dict[str, Any]) -> None:
    sample = sample_file((CORPUS / entry["file"]).read_bytes(), entry["type"], entry["file"])
    indicator = entry["indicator"]
    code = generate(
        TemplateRequest(name=indicator["name"], unit=indicator.get("unit"), notes=indicator.get("notes")),
        sample,
    )
    clean_module(code)
    # A file's module hands its source to the helpers' reader, and asks it for nothing else.
    assert source_calls(code) == []
    assert "helpers.table_rows(source" in code


def test_a_changed_file_fails_its_module_as_a_changed_source() -> None:
    sample = csv_sample(METERS)
    code = generate(TemplateRequest(name="Gas consumption", unit="m³"), sample)
    changed = METERS.replace("gas_m3", "natural_gas_m3").encode()
    with pytest.raises(SourceError) as failure:
        run(code, FileSource(changed))
    assert failure.value.reason == "SourceChanged"
    assert "'gas_m3'" in failure.value.message


def test_sampling_keeps_the_end_of_a_long_file_and_its_structure() -> None:
    rows = "\n".join(f"2021-01-01T{hour % 24:02d}:00:00,{hour}" for hour in range(500))
    text = "Meter export\n\ntime,value\n" + rows + "\nSource: meter portal\n"
    sample = csv_sample(text, name="long.csv")
    sheet = sample.sheets[0]
    assert sheet.total_rows == 504
    assert sheet.header_row == 2
    assert sheet.title_rows == [0]
    assert sheet.notes_rows == [["Source: meter portal"]]
    assert sheet.last_rows[-1] == ["Source: meter portal"]
    assert sheet.delimiter == ","
    assert sheet.encoding == "utf-8"
    assert helpers.label(sheet.rows[2][0]) == "time"
