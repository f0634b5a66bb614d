"""Column-wise coercion and validation (no database): what each source spelling becomes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from headwater_worker.ingest.errors import BatchRejected
from headwater_worker.ingest.mapping import Mapping
from headwater_worker.ingest.sources import choose_delimiter, csv_chunks, inspect_file, record_chunks
from headwater_worker.ingest.transform import ROW, transform

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


def mapping(name: str = "energy_hourly", **overrides: Any) -> Mapping:
    data = Mapping.load(MAPPINGS / f"{name}.yaml").model_dump(by_alias=True)
    data.update(overrides)
    return Mapping.model_validate(data)


def run(values: dict[str, list[str | None]], m: Mapping) -> list[dict[str, Any]]:
    rows = len(next(iter(values.values())))
    frame = pl.DataFrame({ROW: list(range(1, rows + 1)), **values})
    return transform(frame, m, list(values)).frame.to_dicts()


UTC_HOUR = dt.datetime(2024, 2, 1, 13, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01/02/2024 01:00 PM", UTC_HOUR),
        ("01/02/2024 1:00 p.m.", UTC_HOUR),
        ("01/02/2024 13:00", UTC_HOUR),
        ("01.02.2024 13:00:00", UTC_HOUR),
        ("2024-02-01 13:00", UTC_HOUR),
        ("2024-02-01T13:00:00", UTC_HOUR),
        ("2024-02-01T13:00:00.000Z", UTC_HOUR),
        ("2024-02-01T15:00:00+02:00", UTC_HOUR),
        ("1706792400", UTC_HOUR),
        ("1706792400000", UTC_HOUR),
        (" 2024-02-01 13:00 ", UTC_HOUR),
    ],
)
def test_datetimes(text: str, expected: dt.datetime) -> None:
    [row] = run({"Date and Time": [text], "Hourly": ["1"]}, mapping())
    assert row["ts"] == expected
    assert row["valid"]


def test_naive_times_are_read_in_the_mapping_time_zone() -> None:
    [winter, summer, aware] = run(
        {
            "Date and Time": ["01/02/2024 13:00", "01/07/2024 13:00", "2024-07-01T13:00:00Z"],
            "Hourly": ["1"] * 3,
        },
        mapping(timezone="Europe/Athens"),
    )
    assert winter["ts"] == dt.datetime(2024, 2, 1, 11, 0)
    assert summer["ts"] == dt.datetime(2024, 7, 1, 10, 0)
    assert aware["ts"] == dt.datetime(2024, 7, 1, 13, 0), "an explicit offset wins over the mapping's zone"


def test_month_first_when_the_mapping_says_so() -> None:
    [row] = run({"Date and Time": ["02/01/2024 01:00 PM"], "Hourly": ["1"]}, mapping(day_first=False))
    assert row["ts"] == UTC_HOUR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", 1234.56),
        ("1,234.56", 1234.56),
        ("12,5", 12.5),
        ("12.5", 12.5),
        ("1 234,5", 1234.5),
        ("-0,25", -0.25),
        ("7", 7.0),
    ],
)
def test_numbers(text: str, expected: float) -> None:
    m = mapping(validation_rules={"schema": {"required": ["ts"]}})
    [row] = run({"Date and Time": ["2024-01-01 00:00"], "Hourly": [text]}, m)
    assert row["energy_kwh"] == pytest.approx(expected)


def test_decimal_setting_settles_ambiguous_numbers() -> None:
    assert run({"Date and Time": ["2024-01-01"], "Hourly": ["1,234"]}, mapping())[0]["energy_kwh"] == 1.234
    assert (
        run({"Date and Time": ["2024-01-01"], "Hourly": ["1,234"]}, mapping(decimal="dot"))[0]["energy_kwh"]
        == 1234
    )


def test_integers_from_floats_and_dates() -> None:
    rows = run(
        {
            "Date": ["01.05.2024", "2024-05-02", "2024-05-03 00:00:00", "05/04/2024"],
            "Day production/cow (kg)": ["10", "10", "10", "10"],
            "Nr. animals": ["50.0", "50", "50.5", "1.000,0"],
        },
        mapping("dairy_production"),
    )
    assert [r["production_date"] for r in rows] == [
        dt.date(2024, 5, 1),
        dt.date(2024, 5, 2),
        dt.date(2024, 5, 3),
        dt.date(2024, 4, 5),
    ]
    assert [r["number_of_animals"] for r in rows] == [50, 50, None, 1000]
    assert json.loads(rows[2]["errors"]) == ["number_of_animals: cannot read '50.5' as int"]


def test_dates_from_epoch_milliseconds_in_the_mapping_zone() -> None:
    midnight_athens = int(
        dt.datetime(2024, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=3))).timestamp() * 1000
    )
    [row] = run({"collectTime": [str(midnight_athens)], "inverter_power": ["1"]}, mapping("api_solar_daily"))
    assert row["day"] == dt.date(2024, 5, 1)


def test_errors_list_every_problem_of_a_row_and_values_with_quotes_stay_readable() -> None:
    rows = run(
        {"Date and Time": ['x"y', None, "2024-01-01 00:00"], "Hourly": ["-1", "NULL", "20000"]},
        mapping(),
    )
    assert json.loads(rows[0]["errors"]) == [
        "ts: cannot read 'x\"y' as datetime",
        "energy_kwh: -1.0 is below the minimum 0.0",
    ]
    assert json.loads(rows[1]["errors"]) == [
        "ts: required value missing",
        "energy_kwh: required value missing",
    ]
    assert json.loads(rows[2]["errors"]) == ["energy_kwh: 20000.0 is above the maximum 10000.0"]
    # raw: the source values as they were, in the source's column order.
    assert [list(r["raw"].values()) for r in rows] == [
        ['x"y', "-1"],
        [None, "NULL"],
        ["2024-01-01 00:00", "20000"],
    ]
    assert [r["valid"] for r in rows] == [False, False, False]


def test_the_delimiter_is_guessed_from_the_header_unless_the_mapping_sets_it() -> None:
    assert choose_delimiter("Date and Time;Hourly", mapping()) == ";"
    assert choose_delimiter("Date and Time\tHourly", mapping()) == "\t"
    assert choose_delimiter("Date and Time,Hourly", mapping()) == ","
    assert choose_delimiter("Date and Time;Hourly", mapping(csv={"delimiter": ","})) == ","


def test_csv_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(
        "Date and Time,Hourly\n" + "".join(f"2024-01-01 00:{i % 60:02d},{i}\n" for i in range(2500))
    )
    source = csv_chunks(path, mapping(), inspect_file(path), chunk_rows=1000)
    sizes = [chunk.height for chunk in source.chunks]
    assert sum(sizes) == 2500
    assert max(sizes) <= 1000
    assert len(sizes) >= 3


def test_header_problems_refuse_the_whole_input(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("When,What\n1,2\n")
    with pytest.raises(BatchRejected) as refusal:
        csv_chunks(path, mapping(), inspect_file(path))
    assert refusal.value.reason == "MissingColumns"
    with pytest.raises(BatchRejected, match="no records"):
        record_chunks([], mapping("api_energy_hourly"))


def test_json_records_become_text_columns() -> None:
    source = record_chunks(
        [
            {"time": "2024-01-01T00:00:00Z", "value": 1.5, "unit": "kWh"},
            {"time": "2024-01-01T01:00:00Z", "value": 2},
        ],
        mapping("api_energy_hourly"),
    )
    [chunk] = list(source.chunks)
    rows = transform(chunk, mapping("api_energy_hourly"), source.columns).frame.to_dicts()
    assert [r["energy_kwh"] for r in rows] == [1.5, 2.0]
