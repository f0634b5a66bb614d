"""File names in the seed's pattern, parsed back, and the retention rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from headwater_worker.export.naming import expired, file_name, parse_file_name


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC), "agency-2025_01_01-12_00_00_AM.csv.gz"),
        (datetime(2025, 1, 1, 0, 30, 5, tzinfo=UTC), "agency-2025_01_01-12_30_05_AM.csv.gz"),
        (datetime(2025, 1, 1, 9, 7, 3, tzinfo=UTC), "agency-2025_01_01-09_07_03_AM.csv.gz"),
        (datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC), "agency-2025_01_01-12_00_00_PM.csv.gz"),
        (datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), "agency-2025_12_31-11_59_59_PM.csv.gz"),
    ],
)
def test_file_name_follows_the_seed_pattern(at: datetime, expected: str) -> None:
    assert file_name("agency", at) == expected
    assert parse_file_name("agency", expected) == at


def test_file_name_is_in_utc() -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    at = datetime(2025, 6, 1, 13, 0, 0, tzinfo=lisbon_summer)
    assert file_name("source_file", at) == "source_file-2025_06_01-12_00_00_PM.csv.gz"


def test_every_second_of_a_day_round_trips() -> None:
    start = datetime(2024, 2, 29, tzinfo=UTC)
    for seconds in range(0, 86400, 97):
        at = start + timedelta(seconds=seconds)
        assert parse_file_name("t", file_name("t", at)) == at


@pytest.mark.parametrize(
    "name",
    [
        "agency-2025_01_01-12_00_00_AM.csv",  # not gzip
        ".agency-2025_01_01-12_00_00_AM.csv.gz.partial",  # a temporary file
        "agency-2025_01_01-13_00_00_PM.csv.gz",  # no 13 o'clock on a 12-hour clock
        "agency-2025_01_01-00_00_00_AM.csv.gz",
        "agency-2025_02_30-01_00_00_AM.csv.gz",  # no such day
        "agency-extra-2025_01_01-01_00_00_AM.csv.gz",  # another task's file
        "agency-2025_01_01-01_00_00_XM.csv.gz",
        "source-2025_01_01-01_00_00_AM.csv.gz",
        "notes.txt",
    ],
)
def test_other_names_are_not_this_tasks_files(name: str) -> None:
    assert parse_file_name("agency", name) is None


def test_similar_task_names_do_not_match_each_other() -> None:
    name = file_name("source_file", datetime(2025, 1, 1, tzinfo=UTC))
    assert parse_file_name("source", name) is None
    assert parse_file_name("source_file", name) is not None


def _names(task: str, hours: list[int]) -> list[str]:
    return [file_name(task, datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=h)) for h in hours]


def test_retention_keeps_the_newest_by_timestamp_not_by_text() -> None:
    # 11 AM sorts after 01 PM as text; by time it is older.
    eleven_am, one_pm, three_pm = _names("t", [11, 13, 15])
    assert expired([one_pm, eleven_am, three_pm], "t", 2) == [eleven_am]
    assert expired([one_pm, eleven_am, three_pm], "t", 1) == [one_pm, eleven_am]
    assert expired([one_pm, eleven_am, three_pm], "t", 3) == []


def test_retention_crosses_days_and_years() -> None:
    old = file_name("t", datetime(2024, 12, 31, 23, 0, tzinfo=UTC))
    new = file_name("t", datetime(2025, 1, 1, 1, 0, tzinfo=UTC))
    assert expired([new, old], "t", 1) == [old]


def test_retention_only_touches_this_tasks_files() -> None:
    mine = _names("t", [1, 2, 3])
    others = [*_names("t_other", [0]), *_names("other", [0]), "t-notes.txt", ".t-x.partial"]
    assert expired(mine + others, "t", 1) == [mine[1], mine[0]]


def test_retention_never_removes_the_file_just_written() -> None:
    older_looking = file_name("t", datetime(2020, 1, 1, tzinfo=UTC))
    newer = _names("t", [1, 2])
    removed = expired([*newer, older_looking], "t", 1, protect=older_looking)
    assert older_looking not in removed
    assert removed == [newer[0]]
