"""Initial ingest schema: registry, cursors, execution log, staging and final tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 02:45:59.966394
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Final tables refer to datasource.id. A foreign key would check that with one query per inserted row,
# which took longer than inserting the rows; these triggers keep the guarantee set-wise (see models.py).
FINAL_TABLES = (
    "dairy_production",
    "environmental_metrics",
    "fact_energy_daily",
    "fact_energy_hourly",
    "fact_solar_daily",
    "fact_solar_hourly",
    "fact_solar_monthly",
)

DATASOURCE_FUNCTIONS = """
CREATE FUNCTION headwater_datasource_check_statement() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    wanted integer[];
    found integer;
    missing integer;
BEGIN
    SELECT array_agg(datasource_id) INTO wanted FROM (SELECT DISTINCT datasource_id FROM new_rows) AS ids;
    IF wanted IS NULL THEN
        RETURN NULL;
    END IF;
    -- Lock the rows referred to, as a foreign key check does: they cannot go before this commits.
    PERFORM 1 FROM datasource WHERE id = ANY (wanted) FOR KEY SHARE;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found < cardinality(wanted) THEN
        SELECT min(i) INTO missing FROM unnest(wanted) AS i WHERE NOT EXISTS (
            SELECT 1 FROM datasource WHERE id = i
        );
        RAISE EXCEPTION 'insert or update on table "%" violates its reference to table "datasource"',
            TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                DETAIL = format('Key (datasource_id)=(%s) is not present in table "datasource".', missing);
    END IF;
    RETURN NULL;
END
$body$;

CREATE FUNCTION headwater_datasource_check_row() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM 1 FROM datasource WHERE id = NEW.datasource_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates its reference to table "datasource"',
            TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                DETAIL = format('Key (datasource_id)=(%s) is not present in table "datasource".',
                    NEW.datasource_id);
    END IF;
    RETURN NULL;
END
$body$;

CREATE FUNCTION headwater_datasource_in_use() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    final_table text;
    used boolean;
BEGIN
    FOREACH final_table IN ARRAY TG_ARGV LOOP
        IF TG_OP = 'TRUNCATE' THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', final_table) INTO used;
            IF used THEN
                RAISE EXCEPTION 'cannot truncate table "datasource": table "%" refers to it', final_table
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
        ELSE
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE datasource_id = $1)', final_table)
                INTO used USING OLD.id;
            IF used THEN
                RAISE EXCEPTION 'update or delete on table "datasource" violates the reference from "%"',
                    final_table
                    USING ERRCODE = 'foreign_key_violation',
                        DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', OLD.id,
                            final_table);
            END IF;
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSIF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END
$body$;
"""


def _datasource_triggers() -> list[str]:
    statements = []
    for table in FINAL_TABLES:
        statements += [
            f"CREATE TRIGGER {table}_datasource_insert AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION headwater_datasource_check_statement()",
            f"CREATE TRIGGER {table}_datasource_update AFTER UPDATE OF datasource_id ON {table} "
            "FOR EACH ROW WHEN (OLD.datasource_id IS DISTINCT FROM NEW.datasource_id) "
            "EXECUTE FUNCTION headwater_datasource_check_row()",
        ]
    tables = ", ".join(f"'{table}'" for table in FINAL_TABLES)
    statements += [
        "CREATE TRIGGER datasource_in_use_delete BEFORE DELETE ON datasource FOR EACH ROW "
        f"EXECUTE FUNCTION headwater_datasource_in_use({tables})",
        "CREATE TRIGGER datasource_in_use_update BEFORE UPDATE OF id ON datasource FOR EACH ROW "
        f"WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION headwater_datasource_in_use({tables})",
        "CREATE TRIGGER datasource_in_use_truncate BEFORE TRUNCATE ON datasource FOR EACH STATEMENT "
        f"EXECUTE FUNCTION headwater_datasource_in_use({tables})",
    ]
    return statements


def upgrade() -> None:
    op.create_table(
        "api_fetch_cursor",
        sa.Column("connector", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_batch_id", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("connector", "device_id", "dataset", name=op.f("pk_api_fetch_cursor")),
    )
    op.create_table(
        "data_quality_checks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("check_name", sa.Text(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=True),
        sa.Column("failed_rows", sa.BigInteger(), nullable=False),
        sa.Column(
            "samples",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_quality_checks")),
    )
    op.create_index(
        op.f("ix_data_quality_checks_batch_id"), "data_quality_checks", ["batch_id"], unique=False
    )
    op.create_table(
        "datasource",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("source_type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasource")),
        sa.UniqueConstraint("external_id", name=op.f("uq_datasource_external_id")),
    )
    op.create_table(
        "pipeline_execution",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("rows_in", sa.BigInteger(), nullable=True),
        sa.Column("rows_out", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_execution")),
    )
    op.create_index(op.f("ix_pipeline_execution_batch_id"), "pipeline_execution", ["batch_id"], unique=False)
    op.create_table(
        "staging_dairy_production",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("milk_liters", sa.Float(), nullable=True),
        sa.Column("cows_milked", sa.Integer(), nullable=True),
        sa.Column("fat_pct", sa.Float(), nullable=True),
        sa.Column("protein_pct", sa.Float(), nullable=True),
        sa.Column("somatic_cell_count", sa.BigInteger(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_dairy_production_batch_id",
        "staging_dairy_production",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_energy_daily",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("energy_kwh", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_energy_daily_batch_id",
        "staging_energy_daily",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_energy_hourly",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("energy_kwh", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_energy_hourly_batch_id",
        "staging_energy_hourly",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_environmental_metrics",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("humidity_pct", sa.Float(), nullable=True),
        sa.Column("co2_ppm", sa.Float(), nullable=True),
        sa.Column("pm25_ugm3", sa.Float(), nullable=True),
        sa.Column("pm10_ugm3", sa.Float(), nullable=True),
        sa.Column("voc_ppb", sa.Float(), nullable=True),
        sa.Column("pressure_hpa", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_environmental_metrics_batch_id",
        "staging_environmental_metrics",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_solar_daily",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("performance_ratio", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("use_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_solar_daily_batch_id",
        "staging_solar_daily",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_solar_hourly",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_solar_hourly_batch_id",
        "staging_solar_hourly",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "staging_solar_monthly",
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("raw", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("month", sa.Date(), nullable=True),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("performance_ratio", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("use_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("loaded_to_final", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        "ix_staging_solar_monthly_batch_id",
        "staging_solar_monthly",
        ["batch_id"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "dairy_production",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("milk_liters", sa.Float(), nullable=True),
        sa.Column("cows_milked", sa.Integer(), nullable=True),
        sa.Column("fat_pct", sa.Float(), nullable=True),
        sa.Column("protein_pct", sa.Float(), nullable=True),
        sa.Column("somatic_cell_count", sa.BigInteger(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "day", name=op.f("pk_dairy_production")),
    )
    op.create_table(
        "environmental_metrics",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("humidity_pct", sa.Float(), nullable=True),
        sa.Column("co2_ppm", sa.Float(), nullable=True),
        sa.Column("pm25_ugm3", sa.Float(), nullable=True),
        sa.Column("pm10_ugm3", sa.Float(), nullable=True),
        sa.Column("voc_ppb", sa.Float(), nullable=True),
        sa.Column("pressure_hpa", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "ts", name=op.f("pk_environmental_metrics")),
    )
    op.create_table(
        "fact_energy_daily",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "day", name=op.f("pk_fact_energy_daily")),
    )
    op.create_table(
        "fact_energy_hourly",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "ts", name=op.f("pk_fact_energy_hourly")),
    )
    op.create_table(
        "fact_solar_daily",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("performance_ratio", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("use_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "day", name=op.f("pk_fact_solar_daily")),
    )
    op.create_table(
        "fact_solar_hourly",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "ts", name=op.f("pk_fact_solar_hourly")),
    )
    op.create_table(
        "fact_solar_monthly",
        sa.Column("datasource_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("inverter_power_kwh", sa.Float(), nullable=True),
        sa.Column("radiation_kwh_m2", sa.Float(), nullable=True),
        sa.Column("theory_power_kwh", sa.Float(), nullable=True),
        sa.Column("performance_ratio", sa.Float(), nullable=True),
        sa.Column("ongrid_power_kwh", sa.Float(), nullable=True),
        sa.Column("use_power_kwh", sa.Float(), nullable=True),
        sa.Column("power_profit", sa.Float(), nullable=True),
        sa.Column("source_batch_id", sa.UUID(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("datasource_id", "month", name=op.f("pk_fact_solar_monthly")),
    )
    op.create_table(
        "ingest_batch",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("connector", sa.Text(), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("datasource_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("rows_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_valid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_duplicate", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_loaded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column(
            "raw_columns",
            postgresql.ARRAY(sa.Text()),
            nullable=True,
            comment="names of the values in staging's `raw`, in order",
        ),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('loaded', 'rejected')", name=op.f("ck_ingest_batch_status")),
        sa.ForeignKeyConstraint(
            ["datasource_id"], ["datasource.id"], name=op.f("fk_ingest_batch_datasource_id_datasource")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_batch")),
    )
    op.create_index(
        "ix_ingest_batch_connector_started_at", "ingest_batch", ["connector", "started_at"], unique=False
    )
    op.create_index(
        "uq_ingest_batch_loaded_sha256",
        "ingest_batch",
        ["file_sha256"],
        unique=True,
        postgresql_where=sa.text("status = 'loaded'"),
    )
    op.execute(DATASOURCE_FUNCTIONS)
    for statement in _datasource_triggers():
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(
        "uq_ingest_batch_loaded_sha256",
        table_name="ingest_batch",
        postgresql_where=sa.text("status = 'loaded'"),
    )
    op.drop_index("ix_ingest_batch_connector_started_at", table_name="ingest_batch")
    op.drop_table("ingest_batch")
    op.drop_table("fact_solar_monthly")
    op.drop_table("fact_solar_hourly")
    op.drop_table("fact_solar_daily")
    op.drop_table("fact_energy_hourly")
    op.drop_table("fact_energy_daily")
    op.drop_table("environmental_metrics")
    op.drop_table("dairy_production")
    op.drop_index("ix_staging_solar_monthly_batch_id", table_name="staging_solar_monthly")
    op.drop_table("staging_solar_monthly")
    op.drop_index("ix_staging_solar_hourly_batch_id", table_name="staging_solar_hourly")
    op.drop_table("staging_solar_hourly")
    op.drop_index("ix_staging_solar_daily_batch_id", table_name="staging_solar_daily")
    op.drop_table("staging_solar_daily")
    op.drop_index("ix_staging_environmental_metrics_batch_id", table_name="staging_environmental_metrics")
    op.drop_table("staging_environmental_metrics")
    op.drop_index("ix_staging_energy_hourly_batch_id", table_name="staging_energy_hourly")
    op.drop_table("staging_energy_hourly")
    op.drop_index("ix_staging_energy_daily_batch_id", table_name="staging_energy_daily")
    op.drop_table("staging_energy_daily")
    op.drop_index("ix_staging_dairy_production_batch_id", table_name="staging_dairy_production")
    op.drop_table("staging_dairy_production")
    op.drop_index(op.f("ix_pipeline_execution_batch_id"), table_name="pipeline_execution")
    op.drop_table("pipeline_execution")
    op.drop_table("datasource")
    op.drop_index(op.f("ix_data_quality_checks_batch_id"), table_name="data_quality_checks")
    op.drop_table("data_quality_checks")
    op.drop_table("api_fetch_cursor")
    for function in ("check_statement", "check_row", "in_use"):
        op.execute(f"DROP FUNCTION headwater_datasource_{function}()")
