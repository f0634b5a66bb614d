"""Where a collector's points go: a PostgreSQL table beside the `resources` table, or S3 objects.

Database: the points table is keyed on (resource id, series, timestamp). A run streams its points with `COPY`
into it (through a temporary table that skips stored keys when the table already holds one of them), in
the same transaction that brings the resource's periods and count up to date: a run killed half-way
writes nothing, a run repeated writes no point twice. The high water mark is the newest timestamp stored
for the resource.

S3: each run that collected something writes one object `<prefix><resource id>/<time>-<random>.json`,
`{"resource_id": ..., "data": [{"x": ..., "y": ..., "series": ...}]}` as the seed publishes it, created
only if absent (never overwritten), with the run's high water mark in its metadata; the newest object's
metadata is the next run's high water mark.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from psycopg import sql
from psycopg.errors import UniqueViolation

from .. import s3
from ..s3 import S3Location
from .config import IndicatorConfig
from .sandbox import RawPoint

RESOURCE_TYPE = "sustainability_indicator"
RESOURCES_TABLE = "resources"
DDL_LOCK_KEY = 0x48575752  # one advisory lock for the wrappers' table creation
HWM_METADATA = "high-water-mark"
COPY_BATCH_BYTES = 1 << 20
POINT_COLUMNS = sql.SQL("resource_id, series, ts, value, attributes")


class OutputError(Exception):
    """The output cannot be written (`OutputUnavailable`)."""


@dataclass(frozen=True)
class Written:
    new_points: int
    total_points: int | None
    low_water_mark: datetime | None
    high_water_mark: datetime | None


class Store(Protocol):
    def high_water_mark(self) -> datetime | None: ...

    def write(self, points: Iterable[RawPoint]) -> Written: ...


def _escape(text: str) -> str:
    """A field for COPY's text format: tabs and newlines never occur (the harness removed them)."""
    return text.replace("\\", "\\\\") if "\\" in text else text


def split_table(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


@dataclass
class DatabaseStore:
    conn: Any  # an autocommit psycopg connection in UTC
    table: str
    resource_id: str
    wrapper: str
    indicator: IndicatorConfig

    def _name(self, table: str) -> sql.Composable:
        schema, _ = split_table(self.table)
        return sql.Identifier(schema, table) if schema else sql.Identifier(table)

    @property
    def points_table(self) -> sql.Composable:
        return self._name(split_table(self.table)[1])

    @property
    def resources_table(self) -> sql.Composable:
        return self._name(RESOURCES_TABLE)

    def ensure_tables(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            self.conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {points} ("
                    " resource_id text NOT NULL, series text NOT NULL DEFAULT '', ts timestamptz NOT NULL,"
                    " value double precision NOT NULL, attributes jsonb,"
                    " collected_at timestamptz NOT NULL DEFAULT now(),"
                    " PRIMARY KEY (resource_id, series, ts))"
                ).format(points=self.points_table)
            )
            self.conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {resources} ("
                    " id text PRIMARY KEY, wrapper text NOT NULL, name text NOT NULL,"
                    " type text NOT NULL DEFAULT 'sustainability_indicator', unit text, description text,"
                    " category text, start_period timestamptz, end_period timestamptz,"
                    " points bigint NOT NULL DEFAULT 0, deleted boolean NOT NULL DEFAULT false,"
                    " created_at timestamptz NOT NULL DEFAULT now(),"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(resources=self.resources_table)
            )
            self._upsert_resource()

    def _upsert_resource(self) -> None:
        indicator = self.indicator
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {resources} (id, wrapper, name, type, unit, description, category)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET wrapper = EXCLUDED.wrapper, name = EXCLUDED.name,"
                " unit = EXCLUDED.unit, description = EXCLUDED.description, category = EXCLUDED.category,"
                " deleted = false, updated_at = now()"
            ).format(resources=self.resources_table),
            (
                self.resource_id,
                self.wrapper,
                indicator.name,
                RESOURCE_TYPE,
                indicator.unit,
                indicator.description,
                indicator.category,
            ),
        )

    def high_water_mark(self) -> datetime | None:
        row = self.conn.execute(
            sql.SQL("SELECT max(ts) FROM {points} WHERE resource_id = %s").format(points=self.points_table),
            (self.resource_id,),
        ).fetchone()
        return row[0] if row else None

    def write(self, points: Iterable[RawPoint]) -> Written:
        """Stream the points with `COPY` straight into the points table, as the collector yields them,
        keeping a copy in a local spool. A collector yields only points after the high water mark, so the
        table holds none of their keys unless the source repeats a point or another run of the resource
        wrote the same ones meanwhile; then that COPY is undone and the spooled points go in through a
        temporary table, skipping the keys already there. Either way in one transaction with the
        resource's periods and count."""
        span = _Span()
        with self.conn.transaction(), tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            batches = _copy_batches(points, self.resource_id, span)
            try:
                with (
                    self.conn.transaction(),
                    self.conn.cursor().copy(
                        sql.SQL("COPY {points} ({columns}) FROM STDIN").format(
                            points=self.points_table, columns=POINT_COLUMNS
                        )
                    ) as copy,
                ):
                    for batch in batches:
                        spool.write(batch)
                        copy.write(batch)
                inserted = span.count
            except UniqueViolation:
                for batch in batches:
                    spool.write(batch)
                spool.seek(0)
                inserted = self._insert_skipping_stored(spool)
            row = self.conn.execute(
                sql.SQL(
                    "UPDATE {resources} SET"
                    " start_period = least(start_period, %s::timestamptz),"
                    " end_period = greatest(end_period, %s::timestamptz),"
                    " points = points + %s, updated_at = now()"
                    " WHERE id = %s RETURNING points, start_period, end_period"
                ).format(resources=self.resources_table),
                (span.low, span.high, inserted, self.resource_id),
            ).fetchone()
        total, low, high = row if row else (None, None, None)
        return Written(inserted, total, low, high)

    def _insert_skipping_stored(self, spool: IO[str]) -> int:
        """The spooled points the table lacks, inserted through a temporary table; how many."""
        self.conn.execute(
            "CREATE TEMPORARY TABLE wrapper_incoming (resource_id text NOT NULL, series text NOT NULL,"
            " ts timestamptz NOT NULL, value double precision NOT NULL, attributes jsonb) ON COMMIT DROP"
        )
        with self.conn.cursor().copy("COPY wrapper_incoming FROM STDIN") as copy:
            while block := spool.read(COPY_BATCH_BYTES):
                copy.write(block)
        return int(
            self.conn.execute(
                sql.SQL(
                    "INSERT INTO {points} ({columns}) SELECT {columns} FROM wrapper_incoming"
                    " ON CONFLICT (resource_id, series, ts) DO NOTHING"
                ).format(points=self.points_table, columns=POINT_COLUMNS)
            ).rowcount
        )


@dataclass
class _Span:
    """How many points a run wrote, its oldest and newest time (the harness's UTC ISO form, which sorts
    as the times do)."""

    count: int = 0
    low: str | None = None
    high: str | None = None


def _copy_batches(points: Iterable[RawPoint], resource_id: str, span: _Span) -> Iterator[str]:
    """The points as COPY text, about `COPY_BATCH_BYTES` at a time, counted into `span`."""
    resource = _escape(resource_id)
    batch: list[str] = []
    size = count = 0
    low = high = None
    for point in points:
        timestamp = point.timestamp
        if low is None or timestamp < low:
            low = timestamp
        if high is None or timestamp > high:
            high = timestamp
        attributes = _escape(point.attributes) if point.attributes else "\\N"
        line = f"{resource}\t{_escape(point.series)}\t{timestamp}\t{point.value!r}\t{attributes}\n"
        batch.append(line)
        size += len(line)
        count += 1
        if size >= COPY_BATCH_BYTES:
            span.count, span.low, span.high = count, low, high
            yield "".join(batch)
            batch, size = [], 0
    span.count, span.low, span.high = count, low, high
    if batch:
        yield "".join(batch)


def object_name(resource_id: str, ran_at: datetime) -> str:
    return f"{resource_id}/{ran_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.json"


@dataclass
class S3Store:
    location: S3Location
    resource_id: str
    client: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = s3.client(self.location)

    @property
    def folder(self) -> str:
        return f"{self.location.folder}{self.resource_id}/"

    def _newest_key(self) -> str | None:
        newest: str | None = None
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.folder):
            for entry in page.get("Contents") or ():
                if entry["Key"].endswith(".json") and (newest is None or entry["Key"] > newest):
                    newest = entry["Key"]
        return newest

    def high_water_mark(self) -> datetime | None:
        with s3.failures("listing the output", lambda message, _: OutputError(message)):
            key = self._newest_key()
            if key is None:
                return None
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
        mark = (head.get("Metadata") or {}).get(HWM_METADATA)
        return datetime.fromisoformat(mark) if mark else None

    def write(self, points: Iterable[RawPoint]) -> Written:
        count, low, high = 0, None, None
        with tempfile.TemporaryFile("w+b") as spool:
            spool.write(b'{"resource_id": ' + json.dumps(self.resource_id).encode() + b', "data": [')
            for point in points:
                item: dict[str, Any] = {"x": point.timestamp, "y": point.value}
                if point.series:
                    item["series"] = point.series
                if point.attributes:
                    item.update(json.loads(point.attributes))
                spool.write((b", " if count else b"") + json.dumps(item).encode())
                count += 1
                low = point.timestamp if low is None or point.timestamp < low else low
                high = point.timestamp if high is None or point.timestamp > high else high
            spool.write(b"]}")
            if count == 0:
                return Written(0, None, None, None)
            spool.seek(0)
            key = f"{self.folder}{object_name(self.resource_id, datetime.now(UTC))}"
            with s3.failures("writing the points", lambda message, _: OutputError(message)):
                self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=key,
                    Body=spool,
                    ContentType="application/json",
                    Metadata={HWM_METADATA: str(high)},
                    IfNoneMatch="*",
                )
        return Written(
            count, None, datetime.fromisoformat(low) if low else None, datetime.fromisoformat(str(high))
        )


@dataclass
class CountingStore:
    """No output: the points are counted, nothing is kept, every run starts from the beginning."""

    def high_water_mark(self) -> datetime | None:
        return None

    def write(self, points: Iterable[RawPoint]) -> Written:
        count, low, high = 0, None, None
        for point in points:
            count += 1
            low = point.timestamp if low is None or point.timestamp < low else low
            high = point.timestamp if high is None or point.timestamp > high else high
        return Written(
            count,
            count,
            datetime.fromisoformat(low) if low else None,
            datetime.fromisoformat(high) if high else None,
        )
