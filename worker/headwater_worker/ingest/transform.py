"""Validate and transform a chunk of source records column by column (polars expressions, no row loop).

Input: a DataFrame whose columns are the source's (all text) plus `ROW` (the record's number in the
batch). Output: the staging columns — `row_number`, `raw` (the record's values, a struct of text in the
source's column order: staging's `text[]`), one column per mapped
database column with its coerced value, `errors` (a JSON array of messages) and `valid` — and, per check,
how many records failed it with a few examples.

Coercions:

- `float`: `1.234,56` and `1,234.56` and `12,5` (the mapping's `decimal` settles `1,234`: `auto` reads it
  European, as the seed's sources are);
- `int`: a float that is a whole number (`12.0` is 12);
- `datetime`: ISO 8601 (with or without offset or `Z`), day-first or month-first dates with 24-hour or
  AM/PM times, epoch seconds or milliseconds; naive values are read in the column's or mapping's time
  zone and stored in UTC;
- `date`: the same, reduced to the date in the mapping's time zone;
- `bool`, `str`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from polars.datatypes import TemporalType

from .mapping import Coercion, Mapping

ROW = "__row"
MISSING = ("", "NA", "N/A", "n/a", "NULL", "null", "None", "none", "-", "--", "NaN", "nan")
SAMPLES = 5

_ISO = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
)
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M%z")
_TIMES = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")


def _day_month(day_first: bool) -> tuple[str, ...]:
    orders = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y") if day_first else ("%m/%d/%Y", "%m.%d.%Y", "%m-%d-%Y")
    return (*orders, "%Y-%m-%d", "%Y/%m/%d")


def datetime_formats(day_first: bool) -> tuple[str, ...]:
    local = tuple(f"{date} {time}" for date in _day_month(day_first)[:3] for time in _TIMES)
    return (*_ISO, *local)


def date_formats(day_first: bool) -> tuple[str, ...]:
    return _day_month(day_first)


@dataclass
class CheckTally:
    """Failures of one check across the chunks of a batch."""

    check: str
    column: str | None
    failed: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Transformed:
    frame: pl.DataFrame
    rows: int
    valid: int
    checks: list[tuple[str, str | None, int, list[dict[str, Any]]]]


# -- parsing expressions ---------------------------------------------------------------------------


def cleaned(expr: pl.Expr) -> pl.Expr:
    """Trimmed text, with the usual spellings of "no value" as null."""
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text.is_in(MISSING)).then(None).otherwise(text)


def parse_float(text: pl.Expr, decimal: str) -> pl.Expr:
    compact = text.str.replace_all(r"[\s\u00a0\u202f']", "")
    comma_decimal = compact.str.replace_all(r"\.", "").str.replace(",", ".", literal=True)
    dot_decimal = compact.str.replace_all(",", "", literal=True)
    if decimal == "comma":
        normal = comma_decimal
    elif decimal == "dot":
        normal = dot_decimal
    else:
        european = compact.str.contains(r"^[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+$")
        normal = pl.when(european).then(comma_decimal).otherwise(dot_decimal)
    value = normal.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value).otherwise(None)


def _whole(value: pl.Expr) -> pl.Expr:
    whole = (value == value.round(0)) & (value.abs() < 9.2e18)
    return pl.when(whole).then(value.cast(pl.Int64, strict=False)).otherwise(None)


def parse_int(text: pl.Expr, decimal: str) -> pl.Expr:
    return _whole(parse_float(text, decimal))


def parse_bool(text: pl.Expr) -> pl.Expr:
    lower = text.str.to_lowercase()
    return (
        pl.when(lower.is_in(("true", "t", "yes", "y", "1", "on")))
        .then(True)
        .when(lower.is_in(("false", "f", "no", "n", "0", "off")))
        .then(False)
        .otherwise(None)
    )


def _normal_time_text(text: pl.Expr) -> pl.Expr:
    """`1:00 p.m.` → `1:00 PM`; `...Z` → `...+00:00`; a `T` or several spaces → one space kept as is."""
    meridiem = text.str.replace(r"(?i)\s*([ap])\.?\s*m\.?$", " ${1}M").str.to_uppercase()
    return meridiem.str.replace(r"Z$", "+00:00").str.replace_all(r"\s+", " ")


def _epoch(text: pl.Expr) -> pl.Expr:
    """Epoch seconds or milliseconds (by magnitude), as UTC."""
    number = pl.when(text.str.contains(r"^\d{9,13}(\.\d+)?$")).then(text.cast(pl.Float64, strict=False))
    millis = pl.when(number > 1e11).then(number).otherwise(number * 1000)
    return pl.from_epoch(millis.cast(pl.Int64), time_unit="ms").cast(pl.Datetime("us"))


def _naive(text: pl.Expr, formats: Sequence[str]) -> pl.Expr:
    attempts = [text.str.strptime(pl.Datetime("us"), fmt, strict=False, exact=True) for fmt in formats]
    return pl.coalesce(attempts)


def _aware_utc(text: pl.Expr) -> pl.Expr:
    """Values with an offset, as naive UTC."""
    attempts = [
        text.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False, exact=True).dt.replace_time_zone(None)
        for fmt in _ISO_AWARE
    ]
    return pl.coalesce([*attempts, _epoch(text)])


def _local_to_utc(naive: pl.Expr, zone: str) -> pl.Expr:
    if zone.upper() == "UTC":
        return naive
    return (
        naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )


def _utc_to_local(utc: pl.Expr, zone: str) -> pl.Expr:
    if zone.upper() == "UTC":
        return utc
    return utc.dt.replace_time_zone("UTC").dt.convert_time_zone(zone).dt.replace_time_zone(None)


def parse_datetime(text: pl.Expr, coercion: Coercion, mapping: Mapping) -> pl.Expr:
    """Naive UTC datetimes (the database session runs in UTC)."""
    normal = _normal_time_text(text)
    zone = coercion.timezone or mapping.timezone
    formats = (coercion.format,) if coercion.format else ()
    local = _naive(normal, (*formats, *datetime_formats(mapping.day_first), *date_formats(mapping.day_first)))
    return pl.coalesce([_aware_utc(normal), _local_to_utc(local, zone)])


def parse_date(text: pl.Expr, coercion: Coercion, mapping: Mapping) -> pl.Expr:
    normal = _normal_time_text(text)
    zone = coercion.timezone or mapping.timezone
    formats = (coercion.format,) if coercion.format else ()
    dates = [
        normal.str.strptime(pl.Date, fmt, strict=False, exact=True)
        for fmt in (*formats, *date_formats(mapping.day_first))
    ]
    local = _naive(normal, datetime_formats(mapping.day_first))
    return pl.coalesce([*dates, local.dt.date(), _utc_to_local(_aware_utc(normal), zone).dt.date()])


# Timestamps are parsed column by column, but format by format only for the values no earlier format
# could read: most columns use one format, so most values are parsed once. The formats are tried in the
# order in which they read a sample of the chunk best.

SAMPLE_ROWS = 256
Attempt = Callable[[pl.Series], pl.Series]


def _strptime(
    fmt: str, dtype: TemporalType, after: Callable[[pl.Series], pl.Series] | None = None
) -> Attempt:
    def attempt(text: pl.Series) -> pl.Series:
        parsed = text.str.strptime(dtype, fmt, strict=False, exact=True)
        return after(parsed) if after is not None else parsed

    return attempt


def _epoch_attempt(text: pl.Series) -> pl.Series:
    return text.to_frame("t").select(_epoch(pl.col("t"))).to_series()


def _series(expr: Callable[[pl.Expr], pl.Expr]) -> Callable[[pl.Series], pl.Series]:
    return lambda values: values.to_frame("v").select(expr(pl.col("v"))).to_series()


def _nulls(name: str, length: int, dtype: pl.DataType) -> pl.Series:
    return pl.Series(name, [], dtype=dtype).extend_constant(None, length)


def _order(sample: pl.Series, attempts: Sequence[Attempt]) -> list[Attempt]:
    """The attempts, those that read the most of the sample first (one that reads all of it ends the
    search: most columns use one format)."""
    hits: list[int] = []
    for index, attempt in enumerate(attempts):
        hits.append(int(attempt(sample).is_not_null().sum()))
        if hits[-1] == sample.len():
            return [attempt, *attempts[:index], *attempts[index + 1 :]]
    return [attempts[i] for i in sorted(range(len(attempts)), key=lambda i: -hits[i])]


def _unread(sample: pl.Series, attempts: Sequence[Attempt], dtype: pl.DataType) -> int:
    """How many values of the sample no attempt reads."""
    read = pl.Series("read", [False] * sample.len())
    for attempt in attempts:
        read = read | attempt(sample).cast(dtype).is_not_null()
        if read.all():
            return 0
    return sample.len() - int(read.sum())


def _first_readable(
    text: pl.Series, attempts: Sequence[Attempt], dtype: pl.DataType, *, limit: int | None = None
) -> pl.Series:
    """Each value read by the first attempt that can, the attempts ordered by how much of a sample they
    read; only the `limit` best attempts when given."""
    sample = text.drop_nulls().head(SAMPLE_ROWS)
    if sample.len() == 0:
        return _nulls(text.name, text.len(), dtype)
    first, *others = _order(sample, attempts)
    result = first(text).cast(dtype)
    pending = (result.is_null() & text.is_not_null()).arg_true()
    for attempt in others[: None if limit is None else limit - 1]:
        if pending.len() == 0:
            break
        parsed = attempt(text.gather(pending)).cast(dtype)
        found = parsed.is_not_null()
        if found.any():
            result = result.scatter(pending.filter(found), parsed.filter(found))
            pending = pending.filter(found.not_())
    return result


def datetime_attempts(coercion: Coercion, mapping: Mapping) -> list[Attempt]:
    zone = coercion.timezone or mapping.timezone
    naive = (
        *((coercion.format,) if coercion.format else ()),
        *datetime_formats(mapping.day_first),
        *date_formats(mapping.day_first),
    )
    to_utc = _series(lambda e: _local_to_utc(e, zone))
    aware = [
        _strptime(fmt, pl.Datetime("us", "UTC"), lambda v: v.dt.replace_time_zone(None)) for fmt in _ISO_AWARE
    ]
    return [*(_strptime(fmt, pl.Datetime("us"), to_utc) for fmt in naive), *aware, _epoch_attempt]


def date_attempts(coercion: Coercion, mapping: Mapping) -> list[Attempt]:
    zone = coercion.timezone or mapping.timezone
    dates = [
        _strptime(fmt, pl.Date())
        for fmt in (*((coercion.format,) if coercion.format else ()), *date_formats(mapping.day_first))
    ]
    day = _series(lambda e: e.dt.date())
    local_day = _series(lambda e: _utc_to_local(e, zone).dt.date())
    naive = [_strptime(fmt, pl.Datetime("us"), day) for fmt in datetime_formats(mapping.day_first)]
    aware = [
        _strptime(fmt, pl.Datetime("us", "UTC"), lambda v: local_day(v.dt.replace_time_zone(None)))
        for fmt in _ISO_AWARE
    ]
    return [*dates, *naive, *aware, lambda v: local_day(_epoch_attempt(v))]


# Below this many values left unread by the chunk's main format, they are tried against every format at
# once (one expression); above, format by format, each on the values still unread.
FEW = 1000


def coerce_temporal(text: pl.Series, coercion: Coercion, mapping: Mapping) -> pl.Series:
    """A `datetime` (naive UTC) or `date` column from cleaned text.

    Values are read as they are first; only those no format reads are normalized (`1:00 p.m.`, a
    trailing `Z`, doubled spaces) and tried again. When normalizing reads more of a sample of the chunk,
    the whole chunk is normalized first instead."""
    dtype: pl.DataType
    if coercion.type == "date":
        attempts, dtype = date_attempts(coercion, mapping), pl.Date()
        every_format = _series(lambda e: parse_date(e, coercion, mapping))
    else:
        attempts, dtype = datetime_attempts(coercion, mapping), pl.Datetime("us")
        every_format = _series(lambda e: parse_datetime(e, coercion, mapping))
    normalize = _series(_normal_time_text)
    sample = text.drop_nulls().head(SAMPLE_ROWS)
    unread = _unread(sample, attempts, dtype) if sample.len() else 0
    if unread and _unread(normalize(sample), attempts, dtype) < unread:
        return _first_readable(normalize(text), attempts, dtype)
    result = _first_readable(text, attempts, dtype, limit=1)
    pending = (result.is_null() & text.is_not_null()).arg_true()
    if pending.len() == 0:
        return result
    rest = text.gather(pending)
    if pending.len() <= FEW:
        parsed = every_format(rest).cast(dtype)
    else:
        parsed = _first_readable(normalize(rest), attempts, dtype)
    found = parsed.is_not_null()
    if found.any():
        result = result.scatter(pending.filter(found), parsed.filter(found))
    return result


def coerce_number(text: pl.Series, coercion: Coercion, mapping: Mapping) -> pl.Series:
    """A `float` or `int` column from cleaned text.

    Most values are plain numbers (`12.5`), which a cast reads; only the others (`1.234,56`, `1 234`,
    `12,5`) go through the rewriting of `parse_float`. With `decimal: comma` every value does, since
    `1.234` then means 1234."""
    parse = parse_int if coercion.type == "int" else parse_float
    if mapping.decimal == "comma":
        return _series(lambda e: parse(e, mapping.decimal))(text)
    value = text.cast(pl.Float64, strict=False)
    pending = (value.is_null() & text.is_not_null()).arg_true()
    if pending.len():
        rewritten = _series(lambda e: parse_float(e, mapping.decimal))(text.gather(pending))
        value = value.scatter(pending, rewritten)
    value = value.to_frame("v").select(pl.when(pl.col("v").is_finite()).then(pl.col("v"))).to_series()
    if coercion.type == "int":
        return value.to_frame("v").select(_whole(pl.col("v"))).to_series()
    return value


def coerce(text: pl.Expr, coercion: Coercion, mapping: Mapping) -> pl.Expr:
    if coercion.type == "float":
        return parse_float(text, mapping.decimal)
    if coercion.type == "int":
        return parse_int(text, mapping.decimal)
    if coercion.type == "datetime":
        return parse_datetime(text, coercion, mapping)
    if coercion.type == "date":
        return parse_date(text, coercion, mapping)
    if coercion.type == "bool":
        return parse_bool(text)
    return text


# -- a chunk -------------------------------------------------------------------------------------------


def _json_list(messages: pl.Expr) -> pl.Expr:
    """A list of strings as a JSON array (escaped by polars' JSON encoder)."""
    return pl.struct(messages.alias("e")).struct.json_encode().str.strip_prefix('{"e":').str.strip_suffix("}")


def _number_text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String)


def _checks(mapping: Mapping) -> list[tuple[str, str | None, pl.Expr, pl.Expr]]:
    """Per check: its name, its column, whether a row fails it, and the row's message when it does."""
    checks: list[tuple[str, str | None, pl.Expr, pl.Expr]] = []
    required = set(mapping.required)
    for column in mapping.db_columns:
        text, value = pl.col(f"__text_{column}"), pl.col(column)
        kind = mapping.coercion(column).type
        if column in required:
            checks.append(
                (f"required:{column}", column, text.is_null(), pl.lit(f"{column}: required value missing"))
            )
        if kind != "str":
            checks.append(
                (
                    f"type:{column}",
                    column,
                    text.is_not_null() & value.is_null(),
                    pl.format("{}: cannot read '{}' as {}", pl.lit(column), text, pl.lit(kind)),
                )
            )
        constraint = mapping.validation_rules.constraints.get(column)
        if constraint is not None and constraint.min is not None:
            checks.append(
                (
                    f"min:{column}",
                    column,
                    value < constraint.min,
                    pl.format(
                        "{}: {} is below the minimum {}",
                        pl.lit(column),
                        _number_text(value),
                        pl.lit(constraint.min),
                    ),
                )
            )
        if constraint is not None and constraint.max is not None:
            checks.append(
                (
                    f"max:{column}",
                    column,
                    value > constraint.max,
                    pl.format(
                        "{}: {} is above the maximum {}",
                        pl.lit(column),
                        _number_text(value),
                        pl.lit(constraint.max),
                    ),
                )
            )
    return checks


def transform(chunk: pl.DataFrame, mapping: Mapping, source_columns: Sequence[str]) -> Transformed:
    """Coerce and validate one chunk; `source_columns` are the columns of the source (in order).

    Every step is column-wise; the messages of failed checks are built for the failing rows only."""
    present = set(chunk.columns)
    texts: dict[str, pl.Expr] = {}
    for db_column in mapping.db_columns:
        source = mapping.source_of(db_column)
        texts[db_column] = cleaned(pl.col(source)) if source in present else pl.lit(None, dtype=pl.String)

    staged = chunk.select(
        pl.col(ROW).cast(pl.Int64).alias("row_number"),
        pl.struct(pl.col(c).cast(pl.String) for c in source_columns if c in present).alias("raw"),
        *[texts[c].alias(f"__text_{c}") for c in mapping.db_columns],
    )
    values: list[pl.Series | pl.Expr] = []
    for column in mapping.db_columns:
        coercion, text = mapping.coercion(column), staged[f"__text_{column}"]
        if coercion.type in ("datetime", "date"):
            values.append(coerce_temporal(text, coercion, mapping).alias(column))
        elif coercion.type in ("float", "int"):
            values.append(coerce_number(text, coercion, mapping).alias(column))
        else:
            values.append(coerce(pl.col(f"__text_{column}"), coercion, mapping).alias(column))
    staged = staged.with_columns(values)

    checks = _checks(mapping)
    flags = [failed.fill_null(False).alias(f"__check_{i}") for i, (_, _, failed, _) in enumerate(checks)]
    staged = staged.with_columns(flags)
    if checks:
        staged = staged.with_columns(
            pl.any_horizontal([pl.col(f"__check_{i}") for i in range(len(checks))]).not_().alias("valid")
        )
    else:
        staged = staged.with_columns(pl.lit(True).alias("valid"))

    errors = pl.Series("errors", [], dtype=pl.String).extend_constant("[]", staged.height)
    failing = staged["valid"].not_().arg_true()
    if failing.len():
        messages = [
            pl.when(pl.col(f"__check_{i}")).then(message) for i, (_, _, _, message) in enumerate(checks)
        ]
        failed_errors = (
            staged[failing]
            .select(_json_list(pl.concat_list(messages).list.drop_nulls()).alias("errors"))
            .to_series()
        )
        errors = errors.scatter(failing, failed_errors)
    staged = staged.with_columns(errors)

    tallies: list[tuple[str, str | None, int, list[dict[str, Any]]]] = []
    if checks:
        counts = staged.select([pl.col(f"__check_{i}").sum() for i in range(len(checks))]).row(0)
        for index, ((name, checked, _, _), failed) in enumerate(zip(checks, counts, strict=True)):
            if not failed or checked is None:
                continue
            samples = (
                staged.filter(pl.col(f"__check_{index}"))
                .head(SAMPLES)
                .select("row_number", pl.col(f"__text_{checked}").alias("value"))
                .to_dicts()
            )
            tallies.append((name, checked, int(failed), samples))

    valid = staged.height - failing.len()
    frame = staged.select("row_number", "raw", *mapping.db_columns, "errors", "valid")
    return Transformed(frame=frame, rows=staged.height, valid=valid, checks=tallies)


def merge_checks(total: dict[str, CheckTally], chunk: Transformed) -> None:
    for name, column, failed, samples in chunk.checks:
        tally = total.setdefault(name, CheckTally(name, column))
        tally.failed += failed
        tally.samples.extend(samples[: SAMPLES - len(tally.samples)])
