"""Where a collector's points go: a PostgreSQL table beside the `resources` table, or S3 objects.

Database: the points table is keyed on (resource id, series, timestamp). A run streams its points with `COPY`
into a temporary table and then inserts them in one statement, in the same transaction that brings the
resource's periods and count up to date: a run killed half-way writes nothing, a run repeated writes no
point twice. The high water mark is the newest timestamp stored for the resource.

S3: each run that collected something writes one object `<prefix><resource id>/<time>-<random>.json`,
`{"resource_id": ..., "data": [{"x": ..., "y": ..., "series": ...}]}` as the seed publishes it, created
only if absent (never overwritten), with the run's high water mark in its metadata; the newest object's
metadata is the next run's high water mark.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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
        with self.conn.transaction():
            self.conn.execute(
                "CREATE TEMPORARY TABLE wrapper_incoming (series text NOT NULL, ts timestamptz NOT NULL,"
                " value double precision NOT NULL, attributes jsonb) ON COMMIT DROP"
            )
            with self.conn.cursor().copy("COPY wrapper_incoming FROM STDIN") as copy:
                batch: list[str] = []
                size = 0
                for point in points:
                    attributes = _escape(point.attributes) if point.attributes else "\\N"
                    line = f"{_escape(point.series)}\t{point.timestamp}\t{point.value!r}\t{attributes}\n"
                    batch.append(line)
                    size += len(line)
                    if size >= COPY_BATCH_BYTES:
                        copy.write("".join(batch))
                        batch, size = [], 0
                if batch:
                    copy.write("".join(batch))
            inserted = self._insert_incoming()
            row = self.conn.execute(
                sql.SQL(
                    "UPDATE {resources} r SET"
                    " start_period = least(r.start_period, i.low),"
                    " end_period = greatest(r.end_period, i.high),"
                    " points = r.points + %s, updated_at = now()"
                    " FROM (SELECT min(ts) AS low, max(ts) AS high FROM wrapper_incoming) i"
                    " WHERE r.id = %s RETURNING r.points, r.start_period, r.end_period"
                ).format(resources=self.resources_table),
                (inserted, self.resource_id),
            ).fetchone()
        total, low, high = row if row else (None, None, None)
        return Written(inserted, total, low, high)

    def _insert_incoming(self) -> int:
        """Insert the incoming points the table lacks; how many. A plain insert first: a collector yields
        only points after the high water mark, so a run meets no stored key unless its source repeats a
        point or another run of the resource wrote the same ones meanwhile, and a plain insert costs half
        of one that looks for a conflict at every row. When it does meet a key, it is undone and the
        points go in again skipping the keys already there."""
        insert = sql.SQL(
            "INSERT INTO {points} (resource_id, series, ts, value, attributes)"
            " SELECT %s, series, ts, value, attributes FROM wrapper_incoming"
        ).format(points=self.points_table)
        try:
            with self.conn.transaction():
                return int(self.conn.execute(insert, (self.resource_id,)).rowcount)
        except UniqueViolation:
            pass
        skipping = insert + sql.SQL(" ON CONFLICT (resource_id, series, ts) DO NOTHING")
        return int(self.conn.execute(skipping, (self.resource_id,)).rowcount)


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
