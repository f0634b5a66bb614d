"""What generated collectors lean on: values with markers and separators, times in every format a source
writes them, tables read into points, JSON records and the link to the next page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from headwater_worker.wrapper import helpers
from headwater_worker.wrapper.contract import Cell, Response
from headwater_worker.wrapper.source import SourceError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("12.3", 12.3),
        ("12.3*", 12.3),
        (" 12.3 p", 12.3),
        ("12.3e", 12.3),
        ("12.3 (p)", 12.3),
        ("1,234.5", 1234.5),
        ("1.234,5", 1234.5),
        ("1 234,5", 1234.5),
        ("1\u00a0234,5", 1234.5),
        ("1'234.5", 1234.5),
        ("1.234.567", 1234567.0),
        ("12,5", 12.5),
        ("-3,25", -3.25),
        ("\u22125.5", -5.5),
        ("1e3", 1000.0),
        (42, 42.0),
        (0.5, 0.5),
    ],
)
def test_values_are_read_through_flags_and_separators(cell: str | int | float, expected: float) -> None:
    assert helpers.parse_value(cell) == expected


@pytest.mark.parametrize(
    "cell", ["", "  ", "n/a", "N/A", "-", "\u2013", "..", "...", ":", "x", "nan", "inf", None]
)
def test_markers_and_non_finite_numbers_are_no_value(cell: str | None) -> None:
    assert helpers.parse_value(cell) is None
    assert helpers.value_parser(".")(cell) is None
    assert helpers.value_parser(",")(cell) is None


def test_the_column_decides_what_an_ambiguous_separator_means() -> None:
    # Alone, "1,234" reads as a thousand; in a column whose other cells show a decimal comma it is 1.234.
    assert helpers.parse_value("1,234") == 1234.0
    assert helpers.detect_decimal(["1,234", "0,5", "n/a"]) == ","
    assert helpers.detect_decimal(["1,234", "12.5"]) == "."
    assert helpers.detect_decimal(["1,234", "2,345"]) == "."
    assert helpers.detect_decimal(["1,234", "2,345"], default=",") == ","
    comma = helpers.value_parser(",")
    assert [comma(cell) for cell in ("1,234", "1.234", "1.234,5", "7", "12.3*")] == [
        1.234,
        1234.0,
        1234.5,
        7.0,
        123.0,
    ]
    dot = helpers.value_parser(".")
    assert [dot(cell) for cell in ("1,234", "1.234", "1,234.5", "7", 3)] == [1234.0, 1.234, 1234.5, 7.0, 3.0]


# -- times --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2021-03-04", utc(2021, 3, 4)),
        ("2021-03-04T05:06:07", utc(2021, 3, 4, 5, 6, 7)),
        ("2021-03-04 05:06", utc(2021, 3, 4, 5, 6)),
        ("2021-03-04T05:06:07Z", utc(2021, 3, 4, 5, 6, 7)),
        ("04/03/2021", utc(2021, 3, 4)),
        ("04.03.2021", utc(2021, 3, 4)),
        ("04/03/2021 10:30", utc(2021, 3, 4, 10, 30)),
        ("2021", utc(2021, 1, 1)),
        (2021, utc(2021, 1, 1)),
        ("2021-03", utc(2021, 3, 1)),
        ("2021M03", utc(2021, 3, 1)),
        ("Mar 2021", utc(2021, 3, 1)),
        ("March 2021", utc(2021, 3, 1)),
        ("Mar-21", utc(2021, 3, 1)),
        ("03/2021", utc(2021, 3, 1)),
        ("2021 Mar", utc(2021, 3, 1)),
        ("2021-Q1", utc(2021, 1, 1)),
        ("2021Q3", utc(2021, 7, 1)),
        ("Q4 2020", utc(2020, 10, 1)),
        ("2021S2", utc(2021, 7, 1)),
        ("2021-W07", utc(2021, 2, 15)),
        ("2021W01", utc(2021, 1, 4)),
        ("2020/21", utc(2020, 1, 1)),
        (44197, utc(2021, 1, 1)),
        (44197.5, utc(2021, 1, 1, 12)),
        (1612137600, utc(2021, 2, 1)),
        (1612137600000, utc(2021, 2, 1)),
        (datetime(2021, 3, 4, 5), utc(2021, 3, 4, 5)),
    ],
)
def test_times_in_every_format_are_aware_and_periods_start_at_their_first_instant(
    cell: str | int | float | datetime, expected: datetime
) -> None:
    moment = helpers.parse_time(cell)
    assert moment == expected
    assert moment is not None
    assert moment.utcoffset() is not None


def test_an_offset_is_kept_and_a_non_time_is_none() -> None:
    moment = helpers.parse_time("2021-03-04T05:00:00+02:00")
    assert moment == utc(2021, 3, 4, 3)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)
    for cell in ("", "Total", "2021-13", "31/02/2021", "Notes: provisional", None, True):
        assert helpers.parse_time(cell) is None


def test_a_column_has_one_format_and_day_or_month_first_is_decided_by_the_column() -> None:
    assert helpers.detect_time_format(["01/02/2021", "13/02/2021", ""]) == "dmy"
    assert helpers.detect_time_format(["01/02/2021", "02/13/2021"]) == "mdy"
    assert helpers.detect_time_format(["01/02/2021", "02/03/2021"]) == "dmy"
    assert (
        helpers.detect_time_format(["2021-01", "2021-02", "2021-03", "2021-04", "Source: office"]) == "month"
    )
    assert helpers.detect_time_format(["2021-01", "Total", "Notes"]) is None
    assert helpers.detect_time_format(["Jan", "Feb"]) is None
    assert helpers.detect_time_format([44197, 44198]) == "excel"
    assert helpers.detect_time_format(["2021-W07", "2021-W08"]) == "week"
    assert helpers.detect_time_format(["2021-01-01T00:00:00Z"]) == "iso"


def test_the_parser_of_a_format_reads_what_the_general_parse_reads() -> None:
    cells = ["2021-03-04", "2021-03-04T05:06:07", "2021-03-04T05:06:07+01:00"]
    iso = helpers.time_parser("iso")
    # One parser sees a date, then a datetime, then offsets: each read right whatever came before.
    assert [iso(cell) for cell in cells] == [helpers.parse_time(cell) for cell in cells]
    assert iso("2021-03-04") == utc(2021, 3, 4)
    assert iso("x") is None
    assert helpers.time_parser("dmy")("04/03/2021") == utc(2021, 3, 4)
    assert helpers.time_parser("mdy")("04/03/2021") == utc(2021, 4, 3)
    assert helpers.time_parser("dmy")("4/3/2021 10:00") == utc(2021, 3, 4, 10)
    assert helpers.time_parser("excel")(44197) == utc(2021, 1, 1)
    assert helpers.time_parser("excel")("44197") == utc(2021, 1, 1)
    assert helpers.time_parser("epoch")("1612137600") == utc(2021, 2, 1)
    assert helpers.header_time_parser("year")("2023 (p)") == utc(2023, 1, 1)
    assert helpers.header_time_parser("year")("2023*") == utc(2023, 1, 1)
    with pytest.raises(ValueError, match="unknown time format"):
        helpers.time_parser("fortnight")


# -- tables -------------------------------------------------------------------------------------------------


def test_a_long_table_is_read_under_its_header_skipping_titles_notes_and_markers() -> None:
    rows = [
        ["Monthly electricity", "", ""],
        ["Date", "Consumption (MWh)", "Cost"],
        ["01/01/2021", "1.234,5", "10"],
        ["01/02/2021", "n/a", "11"],
        ["01/03/2021", "2.000", "12"],
        [],
        ["Source: utility", "", ""],
    ]
    points = list(
        helpers.long_points(
            rows,
            time_column="Date",
            value_column="Consumption (MWh)",
            time_format="dmy",
            decimal=",",
            header_row=1,
        )
    )
    assert points == [(utc(2021, 1, 1), 1234.5, None), (utc(2021, 3, 1), 2000.0, None)]


def test_the_header_is_found_again_when_a_row_is_added_above_it() -> None:
    rows = [["Title"], ["Updated monthly"], ["Region", "Date", "Value"], ["North", "2021-01-01", "1"]]
    points = list(
        helpers.long_points(
            rows,
            time_column="Date",
            value_column="Value",
            time_format="iso",
            series_columns=["Region"],
            header_row=1,
        )
    )
    assert points == [(utc(2021, 1, 1), 1.0, {"series": "North"})]


def test_a_missing_column_or_a_table_without_points_is_a_changed_source() -> None:
    rows = [["Date", "Value"], ["2021-01-01", "1"]]
    with pytest.raises(SourceError, match="'Amount'") as missing:
        list(helpers.long_points(rows, time_column="Date", value_column="Amount", time_format="iso"))
    assert missing.value.reason == "SourceChanged"
    empty = [["Date", "Value"], ["soon", "1"], ["later", "2"]]
    with pytest.raises(SourceError, match="no row under the header") as pointless:
        list(helpers.long_points(empty, time_column="Date", value_column="Value", time_format="iso"))
    assert pointless.value.reason == "SourceChanged"


def test_a_wide_table_gives_one_series_per_row_and_skips_blank_periods() -> None:
    rows: list[list[Cell]] = [
        ["Energy consumption by region (GWh)", None, None, None],
        ["Region", 2019, "2020", "2021 (p)"],
        ["North", "1,200", ":", "1,300*"],
        [None, None, None, None],
        ["South", 800, None, "850"],
        ["Source: statistics office", None, None, None],
    ]
    points = list(
        helpers.wide_points(
            rows, time_format="year", label_columns=["Region"], series_columns=["Region"], header_row=1
        )
    )
    assert points == [
        (utc(2019, 1, 1), 1200.0, {"series": "North"}),
        (utc(2021, 1, 1), 1300.0, {"series": "North"}),
        (utc(2019, 1, 1), 800.0, {"series": "South"}),
        (utc(2021, 1, 1), 850.0, {"series": "South"}),
    ]
    kept = list(
        helpers.wide_points(
            rows, time_format="year", label_columns=["Region"], series_columns=["Region"], keep_series="south"
        )
    )
    assert kept == [(utc(2019, 1, 1), 800.0, None), (utc(2021, 1, 1), 850.0, None)]


def test_a_wide_table_of_month_names_takes_its_year_from_a_column() -> None:
    rows = [["Year", "Jan", "Feb", "Mar"], ["2020", "1", "2", ""], ["2021", "4", "-", "6"]]
    points = list(helpers.wide_points(rows, time_format="month", year_column="Year"))
    assert [(moment, value) for moment, value, _ in points] == [
        (utc(2020, 1, 1), 1.0),
        (utc(2020, 2, 1), 2.0),
        (utc(2021, 1, 1), 4.0),
        (utc(2021, 3, 1), 6.0),
    ]


def test_csv_text_is_decoded_and_split_by_its_own_delimiter() -> None:
    latin = "Datum;Menge\n01.02.2021;1,5\n".encode("latin-1") + "02.02.2021;2,5 \xfc\n".encode("latin-1")
    assert list(helpers.csv_rows(latin)) == [
        ["Datum", "Menge"],
        ["01.02.2021", "1,5"],
        ["02.02.2021", "2,5 ü"],
    ]
    assert helpers.detect_delimiter("unit,geo\\time\t2020 \t2021 \nKWH,DE\t1 \t2 \n") == "\t"
    assert helpers.detect_delimiter('date;value\n01/01/2021;1,5\n02/01/2021;"2,5"\n') == ";"
    assert helpers.detect_delimiter('date,value\n2021-01-01,"1,234.5"\n') == ","


# -- JSON APIs ----------------------------------------------------------------------------------------------


def test_records_are_found_under_known_keys_nested_or_at_the_top_level() -> None:
    assert helpers.records_path([{"a": 1}]) == ()
    assert helpers.records_path({"count": 2, "results": [{"a": 1}]}) == ("results",)
    assert helpers.records_path({"meta": {"links": [{"x": 1}]}, "data": [{"a": 1}]}) == ("data",)
    assert helpers.records_path({"response": {"body": {"items": [{"a": 1}]}}}) == (
        "response",
        "body",
        "items",
    )
    assert helpers.records_path({"status": "ok", "payload": [{"a": 1}, {"a": 2}]}) == ("payload",)
    assert helpers.records_path({"data": []}) == ("data",)
    assert helpers.records_path({"status": "ok"}) is None
    assert helpers.find_records({"data": {"rows": [1]}}, ("data", "rows")) == [1]
    with pytest.raises(SourceError, match=r"no list of records at data\.rows"):
        helpers.find_records({"data": {}}, ("data", "rows"))


def response(body: bytes, status: int = 200, **headers: str) -> Response:
    return Response(status, "http://127.0.0.1:1/api", headers, body)


def test_the_next_page_comes_from_a_link_header_or_the_body() -> None:
    linked = response(b"[]", link='<http://h/a?page=1>; rel="prev", <http://h/a?page=3>; rel="next"')
    assert helpers.next_url(linked, []) == "http://h/a?page=3"
    assert helpers.next_url(response(b"{}"), {"next": "/a?cursor=x"}) == "/a?cursor=x"
    assert helpers.next_url(response(b"{}"), {"links": {"next": {"href": "/a?p=2"}}}) == "/a?p=2"
    assert helpers.next_url(response(b"{}"), {"next": None, "previous": "/a"}) is None
    assert helpers.more_pages({"meta": {"page": 2, "total_pages": 3}}, 2)
    assert not helpers.more_pages({"meta": {"page": 3, "total_pages": 3}}, 3)
    assert not helpers.more_pages({"has_more": False}, 1)
    assert helpers.more_pages({}, 7)
    assert helpers.total_count({"total": 25, "limit": 10}) == 25
    assert (
        helpers.with_query("http://h/api/v1?series=co2&page=1", {"page": 2})
        == "http://h/api/v1?series=co2&page=2"
    )


def test_a_record_gives_its_point_from_strings_nested_fields_and_series() -> None:
    record = {"attributes": {"date": "2021-03", "value": "1.234,5"}, "station": "Harbour"}
    point = helpers.record_point(
        record,
        time_field=("attributes", "date"),
        value_field=("attributes", "value"),
        time_format="month",
        decimal=",",
        series_field=("station",),
    )
    assert point == (utc(2021, 3, 1), 1234.5, {"series": "Harbour"})
    assert helpers.record_point({"t": "2021", "v": None}, time_field=("t",), value_field=("v",)) is None


def test_json_bodies_of_errors_or_other_formats_are_refused_with_their_reason() -> None:
    with pytest.raises(SourceError) as failed:
        helpers.json_body(response(b"oops", 503))
    assert failed.value.reason == "SourceUnreachable"
    with pytest.raises(SourceError) as html:
        helpers.json_body(response(b"<html></html>"))
    assert html.value.reason == "SourceChanged"
    assert helpers.json_body(response(b'{"a": 1}')) == {"a": 1}


def test_offsets_other_than_utc_survive_parsing_a_whole_column() -> None:
    parse = helpers.time_parser("iso")
    cells = ["2021-01-01T00:00:00+01:00", "2021-01-01T01:00:00+01:00"]
    assert [parse(cell) for cell in cells] == [
        datetime(2021, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(2021, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ]


@pytest.mark.parametrize(
    ("record", "missing"),
    [({"t": "2021", "reading": "4.2"}, "'v'"), ({"when": "2021", "v": "4.2"}, "'t'"), ([1, 2], "'t'")],
)
def test_a_record_without_its_time_or_value_field_is_a_changed_source(record: object, missing: str) -> None:
    with pytest.raises(SourceError) as raised:
        helpers.record_point(record, time_field=("t",), value_field=("v",))
    assert raised.value.reason == "SourceChanged"
    assert f"no field {missing}" in raised.value.message
