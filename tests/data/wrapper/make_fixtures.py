"""Builds the Wrapper corpus: sources shaped like real statistics offices', utilities' and open-data APIs'
exports, and the points each one holds.

Each source starts as a list of points (time, value as decimal text, series); the file or the API's records
are written from them in the source's own conventions (markers for missing values, flags, decimal commas,
period labels), and `corpus.json` lists the points themselves with the indicator a Wrapper would declare.
The expected points therefore come from how a fixture is built, never from running the generator.

Run from the repository root: `python tests/data/wrapper/make_fixtures.py`.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl

HERE = Path(__file__).resolve().parent
MONTH_ABBREVIATIONS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FIXED_TIME = datetime(2026, 1, 1)


@dataclass
class Point:
    time: datetime
    text: str  # the value as a plain decimal number, e.g. "1234.5"
    series: str | None = None

    def expected(self) -> dict[str, Any]:
        return {"x": self.time.isoformat(), "y": float(self.text), "series": self.series}


@dataclass
class Source:
    name: str
    file: str
    type: str  # CSV, XLSX, API
    what: str  # one line for docs/wrapper.md
    indicator: dict[str, str]
    points: list[Point] = field(default_factory=list)
    api: dict[str, Any] | None = None


def utc(year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def number(rng: random.Random, low: float, high: float, decimals: int = 1) -> str:
    scale = 10**decimals
    whole = rng.randint(int(low * scale), int(high * scale))
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    return f"{sign}{whole // scale}.{whole % scale:0{decimals}d}" if decimals else f"{sign}{whole}"


def grouped(text: str, thousands: str, decimal: str) -> str:
    """'1234.5' as '1,234.5' (thousands ',' decimal '.') or '1.234,5'."""
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + thousands.join(groups) + (decimal + fraction if fraction else "")


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def months(start: date, count: int) -> list[datetime]:
    found = []
    year, month = start.year, start.month
    for _ in range(count):
        found.append(utc(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def save_workbook(workbook: openpyxl.Workbook, path: Path) -> None:
    """Saves a workbook byte for byte the same on every run: the archive's entries get one fixed time."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    with zipfile.ZipFile(buffer) as built, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as fixed:
        for entry in built.infolist():
            stamped = zipfile.ZipInfo(entry.filename, date_time=(2026, 1, 1, 0, 0, 0))
            stamped.compress_type = zipfile.ZIP_DEFLATED
            content = built.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                # openpyxl stamps the time of saving, whatever the properties say.
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z", content)
            fixed.writestr(stamped, content)


def fixed_workbook() -> openpyxl.Workbook:
    workbook = openpyxl.Workbook()
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    workbook.properties.creator = "Headwater corpus"
    return workbook


# -- files --------------------------------------------------------------------------------------------------


def stats_office_wide() -> Source:
    """A statistics office's wide CSV: title rows, years as headers, `:` for not available, `p` flags,
    thousands separators, notes under the table."""
    rng = random.Random(1)
    source = Source(
        "stats-office-wide",
        "stats_office_energy_by_region.csv",
        "CSV",
        "A statistics office's wide CSV: two title rows, a blank row, regions as rows and the years "
        "2015-2022 as headers, `12,345.6` thousands separators, `:` for not available, `p` flags on 2022, "
        "notes below.",
        {
            "name": "Final energy consumption",
            "unit": "GWh",
            "description": "Final energy consumption by region",
            "notes": "Yearly, from the national energy balance.",
        },
    )
    years = list(range(2015, 2023))
    rows = [
        ["Table 4.2: Final energy consumption by region, 2015-2022", *[""] * len(years)],
        ["Unit: gigawatt hours (GWh)", *[""] * len(years)],
        ["", *[""] * len(years)],
        ["Region", *[str(year) for year in years]],
    ]
    missing = {("East", 2015), ("East", 2016), ("Capital", 2019)}
    for region in ["North", "East", "South", "West", "Capital", "Total"]:
        row = [region]
        for year in years:
            if (region, year) in missing:
                row.append(":")
                continue
            text = number(rng, 900, 25000)
            source.points.append(Point(utc(year), text, region))
            row.append(grouped(text, ",", ".") + ("p" if year == 2022 else ""))
        rows.append(row)
    rows += [
        ["", *[""] * len(years)],
        ["Source: National Statistics Office, energy balance (release 2023-11).", *[""] * len(years)],
        [": not available   p: provisional", *[""] * len(years)],
    ]
    write_csv(HERE / source.file, rows)
    return source


def eurostat_tsv() -> Source:
    """A Eurostat bulk-download TSV: a comma-joined key in the first column, years with trailing spaces as
    headers, values with flags after a space, `:` for missing values."""
    rng = random.Random(2)
    source = Source(
        "eurostat-tsv",
        "eurostat_nrg_ind_ren.tsv",
        "CSV",
        "A Eurostat bulk TSV: the key `freq,nrg_bal,unit,geo\\TIME_PERIOD` in one tab-separated column, "
        "years with trailing spaces as headers, flags after values (`33.50 b`), `: ` and `: c` for missing.",
        {
            "name": "Share of renewable energy in gross final energy consumption",
            "unit": "%",
            "notes": "Eurostat dataset nrg_ind_ren, one series per country.",
        },
    )
    years = list(range(2013, 2023))
    lines = ["freq,nrg_bal,unit,geo\\TIME_PERIOD\t" + "\t".join(f"{year} " for year in years)]
    flags = ["", "", "", " b", " e", " p", " bep"]
    for geo in ["AT", "BE", "DE", "DK", "EE", "FR", "SE"]:
        key = f"A,REN,PC,{geo}"
        cells = []
        for year in years:
            if rng.random() < 0.08:
                cells.append(rng.choice([": ", ": c", ":"]))
                continue
            text = number(rng, 5, 65, 3)
            source.points.append(Point(utc(year), text, key))
            cells.append(text + rng.choice(flags) + " ")
        lines.append(key + "\t" + "\t".join(cells))
    (HERE / source.file).write_bytes(("\n".join(lines) + "\n").encode())
    return source


def utility_monthly() -> Source:
    """A utility's monthly export: semicolons, `dd/mm/yyyy`, `1.234,5`, UTF-8 with a BOM, a cost column
    beside the consumption, an `n/a` month and a total row at the end."""
    rng = random.Random(3)
    source = Source(
        "utility-monthly",
        "utility_meter_export.csv",
        "CSV",
        "A utility's monthly meter export: `;`-separated, UTF-8 with BOM, `dd/mm/yyyy`, `1.234,5` decimals, "
        "consumption and cost columns, an `n/a` reading and a total row.",
        {
            "name": "Electricity consumption",
            "unit": "kWh",
            "description": "Monthly electricity consumption of the town hall",
        },
    )
    rows = [["Reading date", "Meter", "Consumption (kWh)", "Cost (EUR)", "Reading type"]]
    for moment in months(date(2021, 1, 1), 36):
        when = moment.strftime("%d/%m/%Y")
        if moment == utc(2022, 7):
            rows.append([when, "MTR-0042", "n/a", "", "missing"])
            continue
        text = number(rng, 800, 4200)
        cost = number(rng, 150, 900, 2)
        source.points.append(Point(moment, text))
        rows.append(
            [
                when,
                "MTR-0042",
                grouped(text, ".", ","),
                grouped(cost, ".", ","),
                rng.choice(["actual", "estimated"]),
            ]
        )
    rows.append(["Total", "", "", "", ""])
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
    (HERE / source.file).write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode())
    return source


def latin1_semicolon() -> Source:
    """A German water utility's daily CSV in Latin-1: semicolons, `dd.mm.yyyy`, decimal commas, two
    measuring points in one column, a temperature column beside the consumption."""
    rng = random.Random(4)
    source = Source(
        "latin1-water",
        "wasserverbrauch_latin1.csv",
        "CSV",
        "A water utility's daily CSV in Latin-1: `;`, `dd.mm.yyyy`, decimal commas, two measuring points "
        "(`Nord`, `Süd`) in one column, consumption in m³ beside a temperature in °C.",
        {
            "name": "Water consumption",
            "unit": "m³",
            "notes": "Daily readings of the municipal water utility (Wasserverbrauch), per measuring point.",
        },
    )
    rows = [["Datum", "Messstelle", "Wasserverbrauch (m³)", "Temperatur (°C)"]]
    for day in range(45):
        moment = utc(2022, 1, 1) + timedelta(days=day)
        for station in ("Nord", "Süd"):
            text = number(rng, 400, 2600)
            source.points.append(Point(moment, text, station))
            temperature = number(rng, -5, 12)
            rows.append(
                [moment.strftime("%d.%m.%Y"), station, grouped(text, ".", ","), temperature.replace(".", ",")]
            )
    write_csv(HERE / source.file, rows, delimiter=";", encoding="latin-1")
    return source


def xlsx_titles_notes() -> Source:
    """A municipal energy report: a cover sheet, then a sheet with merged title cells, a header under them,
    months as dates, three energy carriers, a gap and an `n/a`, and notes under the data."""
    rng = random.Random(5)
    source = Source(
        "xlsx-report",
        "municipal_energy_report.xlsx",
        "XLSX",
        "A municipal energy report (XLSX): a cover sheet, then `Monthly data` with two merged title rows, a "
        "header in row 4, months as date cells, electricity / natural gas / district heating columns, notes "
        "rows under the data.",
        {
            "name": "Natural gas consumption",
            "unit": "MWh",
            "description": "Natural gas used by public buildings",
            "notes": "Monthly, from the municipal energy report.",
        },
    )
    workbook = fixed_workbook()
    cover = workbook.active
    assert cover is not None
    cover.title = "Cover"
    cover["A1"] = "Municipal energy report 2022-2023"
    cover["A3"] = "Prepared by the facility management office."
    sheet = workbook.create_sheet("Monthly data")
    sheet["A1"] = "Energy consumption of public buildings"
    sheet.merge_cells("A1:E1")
    sheet["A2"] = "Monthly totals, all buildings"
    sheet.merge_cells("A2:E2")
    sheet.append([])
    sheet.append(["Month", "Electricity (MWh)", "Natural gas (MWh)", "District heating (MWh)", "Buildings"])
    for moment in months(date(2022, 1, 1), 24):
        gas: Any
        if moment == utc(2023, 2):
            gas = None
        elif moment == utc(2023, 3):
            gas = "n/a"
        else:
            text = number(rng, 150, 900)
            source.points.append(Point(moment, text))
            gas = float(text)
        electricity = float(number(rng, 300, 500))
        heating = float(number(rng, 50, 400))
        sheet.append([moment.replace(tzinfo=None), electricity, gas, heating, 42])
        sheet.cell(sheet.max_row, 1).number_format = "mmm yyyy"
    sheet.append([])
    sheet.append(["Notes:"])
    sheet.append(["1) February 2023 natural gas reading missing; March 2023 not available."])
    sheet.append(["Source: facility management, meter readings."])
    save_workbook(workbook, HERE / source.file)
    return source


def xlsx_serial_dates() -> Source:
    """A heat meter export: an info sheet first, then daily readings with dates as Excel serial numbers
    (no date format), a heat column and an outdoor temperature."""
    rng = random.Random(6)
    source = Source(
        "xlsx-serial",
        "heat_meter_serial_dates.xlsx",
        "XLSX",
        "A heat meter export (XLSX): an `Info` sheet first, then `Readings` with dates as Excel serial "
        "numbers without a date format, heat in kWh beside an outdoor temperature.",
        {"name": "Heat consumption", "unit": "kWh", "description": "Daily heat of the school's substation"},
    )
    workbook = fixed_workbook()
    info = workbook.active
    assert info is not None
    info.title = "Info"
    info["A1"] = "Substation 7, school campus"
    info["A2"] = "Exported from the meter portal"
    sheet = workbook.create_sheet("Readings")
    sheet.append(["Date", "Heat (kWh)", "Outdoor temperature (°C)"])
    start = date(2023, 1, 1)
    for day in range(60):
        moment = start + timedelta(days=day)
        serial = (moment - date(1899, 12, 30)).days
        text = number(rng, 200, 1800)
        source.points.append(Point(utc(moment.year, moment.month, moment.day), text))
        sheet.append([serial, float(text), float(number(rng, -8, 10))])
    save_workbook(workbook, HERE / source.file)
    return source


def months_wide() -> Source:
    """A wide table of months: one row per year, `Jan`..`Dec` as headers, an annual total column, `-` for
    months without data and blanks for months still to come."""
    rng = random.Random(7)
    source = Source(
        "months-wide",
        "fleet_co2_monthly_wide.csv",
        "CSV",
        "A wide table of months: a title row, then one row per year (2019-2023) with `Jan`..`Dec` as "
        "headers and an annual total, `-` for a month without data, blanks for months to come.",
        {
            "name": "CO2 emissions of the city fleet",
            "unit": "t",
            "notes": "Monthly emissions; the total column is yearly.",
        },
    )
    rows = [["CO2 emissions of the city fleet (t CO2)", *[""] * 13], ["Year", *MONTH_ABBREVIATIONS, "Total"]]
    for year in range(2019, 2024):
        row = [str(year)]
        for month in range(1, 13):
            if year == 2023 and month > 8:
                row.append("")
            elif (year, month) == (2020, 4):
                row.append("-")
            else:
                text = number(rng, 80, 160)
                source.points.append(Point(utc(year, month), text))
                row.append(text)
        row.append("")
        rows.append(row)
    write_csv(HERE / source.file, rows)
    return source


def weekly() -> Source:
    """ISO weeks (`2021-W07`) in a long CSV with two value columns; the unit and name pick the rate."""
    rng = random.Random(8)
    source = Source(
        "weekly",
        "waste_weekly.csv",
        "CSV",
        "Weekly waste collection: ISO weeks `2021-W01`..`2021-W52` in a long CSV, residual waste in t and a "
        "recycling rate in % (the indicator's name and unit pick the rate).",
        {"name": "Recycling rate", "unit": "%", "description": "Share of collected waste that is recycled"},
    )
    rows = [["Week", "Residual waste (t)", "Recycling rate (%)"]]
    for week in range(1, 53):
        monday = date.fromisocalendar(2021, week, 1)
        text = number(rng, 30, 70)
        source.points.append(Point(utc(monday.year, monday.month, monday.day), text))
        rows.append([f"2021-W{week:02d}", number(rng, 100, 400), text])
    write_csv(HERE / source.file, rows)
    return source


def quarterly() -> Source:
    """Quarterly greenhouse gas emissions by sector, long: `2020-Q1` labels, the sector as series, tabs."""
    rng = random.Random(9)
    source = Source(
        "quarterly",
        "ghg_quarterly_by_sector.tsv",
        "CSV",
        "Quarterly greenhouse-gas emissions by sector, long and tab-separated: `2020-Q1` labels, the sector "
        "in its own column (the series), a status column.",
        {"name": "Greenhouse gas emissions", "unit": "kt CO2e", "notes": "By sector, quarterly estimates."},
    )
    rows = [["Quarter", "Sector", "Emissions (kt CO2e)", "Status"]]
    for year in (2020, 2021, 2022):
        for quarter in range(1, 5):
            for sector in ("Energy", "Industry", "Transport", "Buildings"):
                text = number(rng, 200, 3000)
                source.points.append(Point(utc(year, 3 * quarter - 2), text, sector))
                rows.append([f"{year}-Q{quarter}", sector, text, "final" if year < 2022 else "estimate"])
    write_csv(HERE / source.file, rows, delimiter="\t")
    return source


def air_quality_columns() -> Source:
    """An air quality station's hourly CSV with five measurements; the notes name NO2."""
    rng = random.Random(10)
    source = Source(
        "air-quality-columns",
        "air_quality_hourly.csv",
        "CSV",
        "An air-quality station's hourly CSV: ISO timestamps with `Z`, five measurement columns "
        "(`temperature_c`, `humidity_pct`, `pm25_ugm3`, `pm10_ugm3`, `no2_ugm3`); the notes name NO2.",
        {
            "name": "Nitrogen dioxide concentration",
            "unit": "µg/m³",
            "notes": "Hourly NO2 means at the city centre station.",
        },
    )
    rows = [["timestamp", "temperature_c", "humidity_pct", "pm25_ugm3", "pm10_ugm3", "no2_ugm3"]]
    start = utc(2023, 5, 1)
    for hour in range(7 * 24):
        moment = start + timedelta(hours=hour)
        no2 = "" if hour in (30, 31) else number(rng, 5, 80)
        if no2:
            source.points.append(Point(moment, no2))
        rows.append(
            [
                moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                number(rng, 5, 25),
                number(rng, 30, 95, 0),
                number(rng, 2, 40),
                number(rng, 5, 60),
                no2,
            ]
        )
    write_csv(HERE / source.file, rows)
    return source


def solar_named_months() -> Source:
    """Monthly solar generation: `Jan 2021` months, quoted `1,234.5` values, `*` on provisional ones."""
    rng = random.Random(11)
    source = Source(
        "solar-months",
        "solar_generation_monthly.csv",
        "CSV",
        "Monthly solar generation: `Jan 2021` labels, quoted `1,234.5` values, `*` on the provisional last "
        "three months, a capacity factor column beside, a footnote line.",
        {"name": "Solar generation", "unit": "MWh", "description": "Electricity generated by municipal PV"},
    )
    rows = [["Month", "Generation (MWh)", "Capacity factor (%)"]]
    stamps = months(date(2021, 1, 1), 36)
    for index, moment in enumerate(stamps):
        text = number(rng, 400, 3800)
        source.points.append(Point(moment, text))
        flag = "*" if index >= len(stamps) - 3 else ""
        rows.append(
            [
                f"{MONTH_ABBREVIATIONS[moment.month - 1]} {moment.year}",
                grouped(text, ",", ".") + flag,
                number(rng, 5, 25),
            ]
        )
    rows.append(["* provisional", "", ""])
    write_csv(HERE / source.file, rows)
    return source


# -- APIs ---------------------------------------------------------------------------------------------------


def api_results_next() -> Source:
    """A REST API in the Django REST framework's shape: `count`, `next`, `previous`, `results`; values as
    strings, two stations, pages of 25."""
    rng = random.Random(12)
    source = Source(
        "api-results-next",
        "api_air_quality_index.json",
        "API",
        "An open-data REST API: `{count, next, previous, results}`, absolute `next` links, pages of 25, the "
        "index as a string, two stations (the series), an `id` per record.",
        {"name": "Air quality index", "unit": "AQI", "notes": "Daily index per station."},
    )
    records: list[dict[str, Any]] = []
    for day in range(40):
        moment = utc(2023, 3, 1) + timedelta(days=day)
        for station in ("Harbour", "Old town"):
            text = number(rng, 10, 180, 0)
            source.points.append(Point(moment, text, station))
            records.append(
                {
                    "id": len(records) + 1,
                    "station": station,
                    "date": moment.date().isoformat(),
                    "aqi": text,
                    "dominant_pollutant": rng.choice(["pm25", "o3", "no2"]),
                }
            )
    source.api = {"style": "results-next", "path": "/api/v2/aqi/", "page_size": 25, "records": records}
    return source


def api_data_page() -> Source:
    """A carbon intensity API: `data` with `from`/`to` and a nested `intensity` of forecast and actual, a
    `meta` with the page and page count, pages asked for by `page`."""
    rng = random.Random(13)
    source = Source(
        "api-data-page",
        "api_carbon_intensity.json",
        "API",
        "A grid carbon-intensity API: `{data, meta: {page, per_page, total_pages}}`, half-hourly records "
        "with `from`/`to` and a nested `intensity` {forecast, actual, index}, pages by `?page=`; the notes "
        "pick the actual value, a few of which are null.",
        {
            "name": "Carbon intensity of electricity",
            "unit": "gCO2/kWh",
            "notes": "Use the actual measured intensity, not the forecast.",
        },
    )
    records: list[dict[str, Any]] = []
    start = utc(2023, 6, 1)
    for slot in range(96):
        moment = start + timedelta(minutes=30 * slot)
        actual = None if slot in (20, 21, 70) else number(rng, 80, 320, 0)
        if actual is not None:
            source.points.append(Point(moment, actual))
        records.append(
            {
                "from": moment.strftime("%Y-%m-%dT%H:%MZ"),
                "to": (moment + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
                "intensity": {
                    "forecast": int(number(rng, 80, 320, 0)),
                    "actual": None if actual is None else int(actual),
                    "index": rng.choice(["low", "moderate", "high"]),
                },
            }
        )
    source.api = {"style": "data-page", "path": "/intensity", "page_size": 30, "records": records}
    return source


def api_list_link() -> Source:
    """A top-level JSON list with GitHub-style `Link` headers (relative URLs), months as `2021-03`, values
    as strings."""
    rng = random.Random(14)
    source = Source(
        "api-list-link",
        "api_monthly_emissions.json",
        "API",
        'A top-level JSON list paged by a `Link` header (`rel="next"`, `rel="last"`, relative URLs), '
        "months as `2021-03`, values as strings with a unit field.",
        {"name": "Monthly CO2 emissions", "unit": "Mt", "description": "National monthly CO2 emissions"},
    )
    records: list[dict[str, Any]] = []
    for moment in months(date(2019, 1, 1), 60):
        text = number(rng, 20, 60, 2)
        source.points.append(Point(moment, text))
        records.append({"period": moment.strftime("%Y-%m"), "value": text, "unit": "Mt"})
    source.api = {"style": "list-link", "path": "/v1/emissions/monthly", "page_size": 12, "records": records}
    return source


def api_offset() -> Source:
    """An SDMX-flavoured API: `observations` with `TIME_PERIOD` as `2021M01`, `OBS_VALUE` as strings,
    `OBS_FLAG`s, `total`/`offset`/`limit`, pages asked for by offset."""
    rng = random.Random(15)
    source = Source(
        "api-offset",
        "api_sdmx_observations.json",
        "API",
        "An SDMX-flavoured API: `{total, offset, limit, observations}`, `TIME_PERIOD` as `2021M01`, "
        '`OBS_VALUE` as strings (`"NaN"` for missing), `OBS_FLAG`, pages by `offset`/`limit`.',
        {
            "name": "Electricity prices for household consumers",
            "unit": "EUR/kWh",
            "notes": "Monthly observations, OBS_VALUE.",
        },
    )
    records: list[dict[str, Any]] = []
    for moment in months(date(2020, 1, 1), 48):
        if moment == utc(2021, 6):
            records.append({"TIME_PERIOD": "2021M06", "OBS_VALUE": "NaN", "OBS_FLAG": "m", "UNIT": "EUR_KWH"})
            continue
        text = number(rng, 0.15, 0.45, 4)
        source.points.append(Point(moment, text))
        records.append(
            {
                "TIME_PERIOD": f"{moment.year}M{moment.month:02d}",
                "OBS_VALUE": text,
                "OBS_FLAG": "",
                "UNIT": "EUR_KWH",
            }
        )
    source.api = {"style": "offset", "path": "/sdmx/data/nrg_pc_204", "page_size": 20, "records": records}
    return source


def year_month_columns() -> Source:
    """An energy agency's monthly table with the year and the month in two columns of numbers."""
    rng = random.Random(16)
    source = Source(
        "year-month-columns",
        "electricity_net_generation.csv",
        "CSV",
        "An energy agency's monthly CSV with the year and the month (1-12) in two numeric columns, then "
        "net generation and a share of renewables.",
        {"name": "Net electricity generation", "unit": "GWh"},
    )
    rows = [["YEAR", "MONTH", "NET_GENERATION_GWH", "RENEWABLE_SHARE_PCT"]]
    for moment in months(date(2021, 1, 1), 30):
        text = number(rng, 3000, 5000)
        source.points.append(Point(moment, text))
        rows.append([str(moment.year), str(moment.month), text, number(rng, 20, 45)])
    write_csv(HERE / source.file, rows)
    return source


def api_odata_periods() -> Source:
    """An OData v4 API in a statistics office's style: `value` records, `@odata.nextLink`, periods coded
    `2021MM01`, one column per measure."""
    rng = random.Random(17)
    source = Source(
        "api-odata-periods",
        "api_odata_statline.json",
        "API",
        "An OData v4 API in a statistics office's style: `{@odata.context, value, @odata.nextLink}`, periods "
        "coded `2021MM01`, a region code per record, one field per measure.",
        {"name": "Electricity delivered to households", "unit": "MWh", "notes": "Monthly, per municipality."},
    )
    records: list[dict[str, Any]] = []
    for moment in months(date(2021, 1, 1), 24):
        for region in ("GM0363", "GM0599"):
            text = number(rng, 50000, 90000, 0)
            source.points.append(Point(moment, text, region))
            records.append(
                {
                    "ID": len(records),
                    "RegioS": region,
                    "Perioden": f"{moment.year}MM{moment.month:02d}",
                    "ElectricityDeliveredHouseholds_1": int(text),
                    "NaturalGasDeliveredHouseholds_2": int(number(rng, 1000, 9000, 0)),
                }
            )
    source.api = {
        "style": "odata",
        "path": "/ODataApi/odata/83989ENG/TypedDataSet",
        "page_size": 20,
        "records": records,
    }
    return source


BUILDERS: list[Callable[[], Source]] = [
    stats_office_wide,
    eurostat_tsv,
    utility_monthly,
    latin1_semicolon,
    xlsx_titles_notes,
    xlsx_serial_dates,
    months_wide,
    weekly,
    quarterly,
    air_quality_columns,
    solar_named_months,
    api_results_next,
    api_data_page,
    api_list_link,
    api_offset,
    year_month_columns,
    api_odata_periods,
]


def main() -> None:
    corpus = []
    for build in BUILDERS:
        source = build()
        if source.api is not None:
            (HERE / source.file).write_text(json.dumps(source.api, indent=1) + "\n")
        corpus.append(
            {
                "name": source.name,
                "file": source.file,
                "type": source.type,
                "what": source.what,
                "indicator": source.indicator,
                "expected": [point.expected() for point in source.points],
            }
        )
    (HERE / "corpus.json").write_text(json.dumps(corpus, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
