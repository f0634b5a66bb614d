"""The ingest schema as SQLAlchemy tables: registry, cursors, execution log, staging and final tables.

Alembic migrations (`migrations/versions/`) create exactly these tables; a test compares the two.

- `datasource`: one row per external id (a meter, a device, a station); final rows point at it.
- `ingest_batch`: one row per input (a file, an API response). `file_sha256` is unique among loaded
  batches, which makes loading the same input twice a no-op; refused batches are kept for the record.
- `api_fetch_cursor`: where the next API fetch of a connector, device and dataset starts; written in the
  transaction that loads the batch, so it never runs ahead of the data.
- `pipeline_execution`, `data_quality_checks`: per batch, the stages with their timings and row counts, and
  each failed check with a sample of the rows that failed it.
- `staging_<dataset>`: every record of a batch with its raw values, its transformed values, its errors and
  whether it reached the final table (see "Staging" below).
- final tables, keyed by what their mappings name in `conflict_resolution.on_columns` (the datasource and
  the time): that is their primary key, and they have no other index (see "Final tables" below).

Staging is built to be written fast, since every record of every batch goes through it:

- `raw` holds the record's source values as `text[]`, in the order of the source's columns, whose names
  the batch keeps in `ingest_batch.raw_columns`: `jsonb_object(b.raw_columns, s.raw)` gives the record as
  an object. (PostgreSQL reads a text array in about half the time it takes to parse a JSON object.)
- A record is identified by `(batch_id, row_number)`: no surrogate key, no B-tree to maintain while a
  million rows arrive. A BRIN index on `batch_id` finds a batch's rows, because batch ids are time-ordered
  UUIDs (version 7) and a batch's rows are appended together.
- The tables are UNLOGGED: no write-ahead log for staged rows. Staging is a re-creatable record of what the
  inputs held, not data of record: after a crash PostgreSQL empties unlogged tables, while the batch
  registry, the quality checks with their samples and the final tables, all logged, survive; files stay
  in `processedPath` and API data can be fetched again. Unlogged tables are not replicated either: read
  staging on the primary.

Final tables are built for loading a million rows at a time, where each index costs nearly as much as
writing the rows:

- The primary key is the natural one, `(device_id, <time>)`, which `ON CONFLICT` needs anyway: no
  surrogate `id` with an index of its own to maintain.
- They refer to `datasource` without a foreign key: PostgreSQL checks a foreign key with one query per
  inserted row, which took longer than inserting the rows. The migration installs triggers that keep the
  same guarantee set-wise: after each INSERT statement one query locks (`FOR KEY SHARE`, as a foreign key
  does) and checks the distinct datasources the new rows name; a row whose `device_id` changes is
  checked on its own; a datasource that final rows refer to cannot be deleted, renumbered or truncated.
  Alembic does not compare triggers: `tests/integration/test_ingest_pipeline.py` checks them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

NOW = sa.text("now()")


def _created() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW)


datasource = sa.Table(
    "datasource",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("external_id", sa.Text, nullable=False, unique=True),
    sa.Column("source_type", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    _created(),
)

ingest_batch = sa.Table(
    "ingest_batch",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("connector", sa.Text, nullable=False),
    sa.Column("dataset", sa.Text, nullable=False),
    sa.Column("source_uri", sa.Text, nullable=False),
    sa.Column("file_sha256", sa.CHAR(64), nullable=False),
    sa.Column("datasource_id", sa.Integer, sa.ForeignKey("datasource.id")),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("rows_total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_valid", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_duplicate", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("quality_score", sa.Float),
    sa.Column("raw_columns", pg.ARRAY(sa.Text), comment="names of the values in staging's `raw`, in order"),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("status IN ('loaded', 'rejected')", name="status"),
    sa.Index(
        "uq_ingest_batch_loaded_sha256",
        "file_sha256",
        unique=True,
        postgresql_where=sa.text("status = 'loaded'"),
    ),
    sa.Index("ix_ingest_batch_connector_started_at", "connector", "started_at"),
)

api_fetch_cursor = sa.Table(
    "api_fetch_cursor",
    metadata,
    sa.Column("connector", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("dataset", sa.Text, primary_key=True),
    sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_batch_id", pg.UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

pipeline_execution = sa.Table(
    "pipeline_execution",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", pg.UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("rows_in", sa.BigInteger),
    sa.Column("rows_out", sa.BigInteger),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("message", sa.Text),
)

data_quality_checks = sa.Table(
    "data_quality_checks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", pg.UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("check_name", sa.Text, nullable=False),
    sa.Column("column_name", sa.Text),
    sa.Column("failed_rows", sa.BigInteger, nullable=False),
    sa.Column("samples", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    _created(),
)

# -- final tables ------------------------------------------------------------------------------------


def _fact(
    name: str,
    key: str,
    key_type: sa.types.TypeEngine[Any],
    *measures: sa.Column[object],
    written_at: str = "created_at",
) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        # Refers to datasource.id: checked by triggers, not by a foreign key (see the module's docstring).
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column(key, key_type, nullable=False),
        *measures,
        sa.Column("source_file", pg.UUID(as_uuid=True), nullable=False),
        sa.Column(written_at, sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("device_id", key),
    )


def _floats(*names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.Float) for name in names]


def _decimals(precision: int, scale: int, *names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.Numeric(precision, scale)) for name in names]


TIMESTAMP = sa.DateTime(timezone=True)
SOLAR_PERIOD = (
    "inverter_power_kwh",
    "radiation_kwh_m2",
    "theory_power_kwh",
    "performance_ratio",
    "ongrid_power_kwh",
    "use_power_kwh",
    "power_profit",
)
# Columns of Headwater's earlier layout that the seed's tables do not have: kept, so no value is lost.
EARLIER_ENVIRONMENT = ("co2_ppm", "voc_ppb")
EARLIER_DAIRY = ("milk_liters", "fat_pct", "protein_pct", "somatic_cell_count")

fact_energy_hourly = _fact("fact_energy_hourly", "ts", TIMESTAMP, *_floats("energy_kwh"))
fact_energy_daily = _fact("fact_energy_daily", "ts", sa.Date(), *_floats("energy_kwh"))
environmental_metrics = _fact(
    "environmental_metrics",
    "timestamp",
    TIMESTAMP,
    *_decimals(8, 2, "atm_pressure"),
    *_decimals(6, 2, "noise_level_db", "temperature", "humidity"),
    *_decimals(8, 2, "pm10"),
    *_decimals(6, 2, "wind_speed", "wind_direction_sectors", "wind_angle"),
    *_decimals(8, 2, "pm2p5"),
    *_floats(*EARLIER_ENVIRONMENT),
)
dairy_production = _fact(
    "dairy_production",
    "production_date",
    sa.Date(),
    *_decimals(10, 2, "day_production_per_cow_kg"),
    sa.Column("number_of_animals", sa.Integer),
    sa.Column("average_lactation_days", sa.Integer),
    *_decimals(10, 2, "fed_per_cow_total_kg", "fed_per_cow_water_kg"),
    *_decimals(10, 4, "feed_efficiency"),
    sa.Column("rumination_minutes", sa.Integer),
    sa.Column("milk_liters", sa.Float),
    sa.Column("fat_pct", sa.Float),
    sa.Column("protein_pct", sa.Float),
    sa.Column("somatic_cell_count", sa.BigInteger),
    written_at="ingested_at",
)
fact_solar_hourly = _fact(
    "fact_solar_hourly",
    "ts",
    TIMESTAMP,
    *_floats(
        "inverter_power_kwh", "radiation_kwh_m2", "theory_power_kwh", "ongrid_power_kwh", "power_profit"
    ),
)
fact_solar_daily = _fact("fact_solar_daily", "day", sa.Date(), *_floats(*SOLAR_PERIOD))
fact_solar_monthly = _fact("fact_solar_monthly", "month", sa.Date(), *_floats(*SOLAR_PERIOD))

FINAL_TABLES: dict[str, sa.Table] = {
    table.name: table
    for table in (
        fact_energy_hourly,
        fact_energy_daily,
        environmental_metrics,
        dairy_production,
        fact_solar_hourly,
        fact_solar_daily,
        fact_solar_monthly,
    )
}

# -- staging tables ----------------------------------------------------------------------------------

STAGING_OF: dict[str, str] = {
    "fact_energy_hourly": "staging_energy_hourly",
    "fact_energy_daily": "staging_energy_daily",
    "environmental_metrics": "staging_environmental_metrics",
    "dairy_production": "staging_dairy_production",
    "fact_solar_hourly": "staging_solar_hourly",
    "fact_solar_daily": "staging_solar_daily",
    "fact_solar_monthly": "staging_solar_monthly",
}
BOOKKEEPING = ("device_id", "source_file", "created_at", "ingested_at")


def _staging(final: sa.Table) -> sa.Table:
    """Every value column of `final`, nullable (a rejected record may lack any), plus the record's story.

    UNLOGGED, no primary key, a BRIN index on `batch_id`: see the module's docstring."""
    name = STAGING_OF[final.name]
    values = [
        # Staging keeps the transformed values as the transform made them: a rejected row's value may not
        # fit the final table's decimal type.
        sa.Column(column.name, sa.Float if isinstance(column.type, sa.Numeric) else column.type)
        for column in final.columns
        if column.name not in BOOKKEEPING
    ]
    return sa.Table(
        name,
        metadata,
        sa.Column("batch_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("row_number", sa.BigInteger, nullable=False),
        sa.Column("device_id", sa.Integer),
        sa.Column("raw", pg.ARRAY(sa.Text), nullable=False),
        *values,
        sa.Column("errors", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("loaded_to_final", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Index(
            f"ix_{name}_batch_id",
            "batch_id",
            postgresql_using="brin",
        ),
        prefixes=["UNLOGGED"],
    )


STAGING_TABLES: dict[str, sa.Table] = {
    STAGING_OF[name]: _staging(table) for name, table in FINAL_TABLES.items()
}
