"""`csv-profile`: what a CSV holds, column by column, as JSON — types, nulls, distinct values, ranges, numeric
summaries and quantiles, string lengths and most frequent values.

The file is scanned, never loaded whole: one streaming query computes every summary, collected together with
one grouping query per text column for its most frequent values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, time
from pathlib import Path
from typing import Any

import polars as pl

from ..protocol import ExecutionUnitTag, FieldDescription
from . import ServiceError, ServiceInfo, TaskInput, TaskOutput
from .fields import input_for

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Rows that decide the column types; a file contradicting them further down is read again, all rows deciding.
SAMPLE_ROWS = 10_000
TOP_VALUES = 5

Profile = dict[str, Any]


def profile_csv(path: Path) -> Profile:
    """The profile of a CSV file with a header row. Counts and distinct values leave nulls out; `std` is the
    sample standard deviation; quantiles interpolate linearly between the nearest values."""
    try:
        try:
            return _profile(path, _schema(path, SAMPLE_ROWS))
        except pl.exceptions.ComputeError:
            # A value further down does not fit the type the sample gave its column (or the file is malformed,
            # which the second pass finds again): every row decides the types, at the cost of a full pass.
            return _profile(path, _schema(path, None))
    except pl.exceptions.NoDataError:
        raise ServiceError("dataset: the CSV is empty") from None
    except pl.exceptions.PolarsError as error:
        raise ServiceError(f"dataset: polars cannot read it as CSV: {_reason(error)}") from None


def _schema(path: Path, rows: int | None) -> pl.Schema:
    return _scan(path, infer_schema_length=rows).collect_schema()


def _scan(path: Path, **options: Any) -> pl.LazyFrame:
    return pl.scan_csv(path, try_parse_dates=True, glob=False, **options)


def _profile(path: Path, schema: pl.Schema) -> Profile:
    # The schema is given, so no query infers it again.
    frame = _scan(path, schema=schema)
    topped = [name for name, dtype in schema.items() if _has_top_values(dtype)]
    summary, *tops = pl.collect_all(
        [frame.select(_summary_expressions(schema)), *(_top_values(frame, name) for name in topped)],
        engine="streaming",
    )
    stats = summary.row(0, named=True)
    top_values = dict(zip(topped, tops, strict=True))
    columns = []
    for index, (name, dtype) in enumerate(schema.items()):
        column: Profile = {"name": name, "type": str(dtype)}
        column |= _plain(stats[_summary_name(index)])
        if name in top_values:
            column["top_values"] = [
                {"value": row["value"], "count": row["count"]}
                for row in top_values[name].iter_rows(named=True)
            ]
        columns.append(column)
    return {"rows": stats["rows"], "columns": columns}


def _summary_expressions(schema: pl.Schema) -> list[pl.Expr]:
    """The row count, then one struct of summaries per column, named by position: a column may be named
    anything, "rows" included."""
    expressions = [pl.len().alias("rows")]
    for index, (name, dtype) in enumerate(schema.items()):
        column = pl.col(name)
        stats = {
            "count": column.count(),
            "null_count": column.null_count(),
            "distinct": column.drop_nulls().n_unique(),
        }
        if dtype.is_numeric():
            stats |= {"min": column.min(), "max": column.max(), "mean": column.mean(), "std": column.std()}
            stats["quantiles"] = _struct({str(q): column.quantile(q, "linear") for q in QUANTILES})
        elif dtype.is_temporal():
            stats |= {"min": column.min(), "max": column.max()}
        elif dtype == pl.String:
            lengths = column.str.len_chars()
            stats |= {"min_length": lengths.min(), "max_length": lengths.max()}
        expressions.append(_struct(stats).alias(_summary_name(index)))
    return expressions


def _struct(fields: dict[str, pl.Expr]) -> pl.Expr:
    return pl.struct([expression.alias(name) for name, expression in fields.items()])


def _summary_name(index: int) -> str:
    return f"column {index}"


def _has_top_values(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Boolean


def _top_values(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
    # Ties are broken by value so the same file always gives the same profile.
    return (
        frame.select(pl.col(name).alias("value"))
        .drop_nulls()
        .group_by("value")
        .len(name="count")
        .sort(["count", "value"], descending=[True, False])
        .head(TOP_VALUES)
    )


def _plain(value: Any) -> Any:
    """A value JSON can hold: dates and times as ISO text, NaN and infinities as null."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def _reason(error: pl.exceptions.PolarsError) -> str:
    # The first line is the reason; what follows suggests reader options the task's author cannot set.
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


class CsvProfile:
    info = ServiceInfo(
        name="CSV Profile",
        slug="csv-profile",
        summary="Profile a CSV file: per column its type, nulls, distinct values, ranges and quantiles.",
        description=(
            "Reads a CSV file with a header row and returns a JSON profile: the number of rows and, for each "
            "column, its type, non-null count, null count and distinct values; for numbers min, max, mean, "
            "sample standard deviation and the 5/25/50/75/95% quantiles; for text the shortest and longest "
            f"length and the {TOP_VALUES} most frequent values; for dates and times the earliest and latest."
        ),
        data_in_fields=(FieldDescription(name="dataset", type=["text/csv"]),),
        data_out_fields=(FieldDescription(name="profile", type=["application/json"]),),
        tags=(ExecutionUnitTag(name="Data Preprocessing", acronym="DP"),),
    )

    def process(self, inputs: Sequence[TaskInput], workdir: Path) -> Sequence[TaskOutput]:
        profile = profile_csv(input_for(inputs, "dataset").path)
        path = workdir / "profile.json"
        path.write_text(json.dumps(profile, allow_nan=False, ensure_ascii=False, indent=2) + "\n", "utf-8")
        return [TaskOutput(field="profile", mime_type="application/json", path=path)]
