"""File names `<task>-<timestamp>.csv.gz` (the seed's pattern, in UTC) and the retention rule."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

SUFFIX = ".csv.gz"
TIMESTAMP_FORMAT = "%Y_%m_%d-%I_%M_%S_%p"  # e.g. 2025_01_01-12_00_00_AM
_TIMESTAMP = r"(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})_(AM|PM)"


def file_name(task: str, at: datetime) -> str:
    """`agency-2025_01_01-12_00_00_AM.csv.gz` for task `agency` at midnight UTC."""
    utc = at.astimezone(UTC)
    # %p depends on the locale: spell AM/PM out.
    meridiem = "AM" if utc.hour < 12 else "PM"
    hour12 = utc.hour % 12 or 12
    return f"{task}-{utc:%Y_%m_%d}-{hour12:02d}_{utc:%M_%S}_{meridiem}{SUFFIX}"


def name_pattern(task: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(task)}-{_TIMESTAMP}{re.escape(SUFFIX)}$")


def parse_file_name(task: str, name: str) -> datetime | None:
    """The UTC time in a file name of `task`; None for any other name (another task's, a temp file...)."""
    match = name_pattern(task).match(name)
    if match is None:
        return None
    year, month, day, hour12, minute, second = (int(value) for value in match.groups()[:6])
    if not 1 <= hour12 <= 12:
        return None
    hour = hour12 % 12 + (12 if match.group(7) == "PM" else 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def expired(names: Iterable[str], task: str, keep_last: int, *, protect: str | None = None) -> list[str]:
    """The files of `task` beyond the `keep_last` newest (by the time in their name), oldest last.

    Names that are not this task's export files are never returned, nor is `protect` (the file just
    written, even should a clock step back have made it look older than the others).
    """
    dated = sorted(
        ((when, name) for name in set(names) if (when := parse_file_name(task, name)) is not None),
        reverse=True,
    )
    keep = {name for _, name in dated[:keep_last]}
    if protect is not None:
        keep.add(protect)
    return [name for _, name in dated if name not in keep]
