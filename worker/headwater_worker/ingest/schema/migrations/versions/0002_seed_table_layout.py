"""The seed project's table layout: its column names and types, `device_id` and `source_file`.

Existing rows are kept. Columns are renamed in place; columns of Headwater's earlier layout that the
seed's tables lack stay (`co2_ppm`, `voc_ppb`; `milk_liters`, `fat_pct`, `protein_pct`,
`somatic_cell_count`). Environment readings become the seed's decimals only when every stored value fits
unchanged: else the migration stops, names the column and the number of values, and changes nothing.
The datasource triggers find final tables by their trigger, so tables declared by mappings are covered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FINAL_TABLES = {
    "dairy_production": "staging_dairy_production",
    "environmental_metrics": "staging_environmental_metrics",
    "fact_energy_daily": "staging_energy_daily",
    "fact_energy_hourly": "staging_energy_hourly",
    "fact_solar_daily": "staging_solar_daily",
    "fact_solar_hourly": "staging_solar_hourly",
    "fact_solar_monthly": "staging_solar_monthly",
}
WRITTEN_AT = {"dairy_production": "ingested_at"}
# Per table, the renames of mapped columns (in its staging table too).
RENAMED = {
    "fact_energy_daily": {"day": "ts"},
    "environmental_metrics": {
        "ts": "timestamp",
        "temperature_c": "temperature",
        "humidity_pct": "humidity",
        "pm10_ugm3": "pm10",
        "pm25_ugm3": "pm2p5",
        "pressure_hpa": "atm_pressure",
    },
    "dairy_production": {"day": "production_date", "cows_milked": "number_of_animals"},
}
# Per table, the seed's columns, with their final-table type (staging holds decimals as the transform's
# floats: a rejected row's value may not fit the decimal).
ADDED = {
    "environmental_metrics": {
        "noise_level_db": "numeric(6,2)",
        "wind_speed": "numeric(6,2)",
        "wind_direction_sectors": "numeric(6,2)",
        "wind_angle": "numeric(6,2)",
    },
    "dairy_production": {
        "day_production_per_cow_kg": "numeric(10,2)",
        "average_lactation_days": "integer",
        "fed_per_cow_total_kg": "numeric(10,2)",
        "fed_per_cow_water_kg": "numeric(10,2)",
        "feed_efficiency": "numeric(10,4)",
        "rumination_minutes": "integer",
    },
}
# Existing double precision columns that become the seed's decimals: (precision, scale).
DECIMALS = {
    "environmental_metrics": {
        "atm_pressure": (8, 2),
        "temperature": (6, 2),
        "humidity": (6, 2),
        "pm10": (8, 2),
        "pm2p5": (8, 2),
    }
}

DATASOURCE_FUNCTIONS = """
CREATE OR REPLACE FUNCTION headwater_datasource_check_statement() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    wanted integer[];
    found integer;
    missing integer;
BEGIN
    SELECT array_agg(device_id) INTO wanted FROM (SELECT DISTINCT device_id FROM new_rows) AS ids;
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
                DETAIL = format('Key (device_id)=(%s) is not present in table "datasource".', missing);
    END IF;
    RETURN NULL;
END
$body$;

CREATE OR REPLACE FUNCTION headwater_datasource_check_row() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM 1 FROM datasource WHERE id = NEW.device_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates its reference to table "datasource"',
            TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                DETAIL = format('Key (device_id)=(%s) is not present in table "datasource".', NEW.device_id);
    END IF;
    RETURN NULL;
END
$body$;

-- Every table whose inserts are checked refers to datasource: found by that trigger, so that a table
-- created later (declared by a mapping) is covered without changing this function.
CREATE OR REPLACE FUNCTION headwater_datasource_in_use() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    final_table regclass;
    used boolean;
BEGIN
    FOR final_table IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger
        WHERE tgfoid = 'headwater_datasource_check_statement'::regproc
    LOOP
        IF TG_OP = 'TRUNCATE' THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', final_table) INTO used;
            IF used THEN
                RAISE EXCEPTION 'cannot truncate table "datasource": table "%" refers to it', final_table
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
        ELSE
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE device_id = $1)', final_table)
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

IN_USE_TRIGGERS = (
    "CREATE TRIGGER datasource_in_use_delete BEFORE DELETE ON datasource FOR EACH ROW "
    "EXECUTE FUNCTION headwater_datasource_in_use()",
    "CREATE TRIGGER datasource_in_use_update BEFORE UPDATE OF id ON datasource FOR EACH ROW "
    "WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION headwater_datasource_in_use()",
    "CREATE TRIGGER datasource_in_use_truncate BEFORE TRUNCATE ON datasource FOR EACH STATEMENT "
    "EXECUTE FUNCTION headwater_datasource_in_use()",
)


def _staging_type(kind: str) -> str:
    return "double precision" if kind.startswith("numeric") else kind


def _rename(table: str, old: str, new: str) -> None:
    op.execute(f'ALTER TABLE {table} RENAME COLUMN {old} TO "{new}"')


def _refuse_lossy_decimals() -> None:
    connection = op.get_bind()
    for table, columns in DECIMALS.items():
        for column, (precision, scale) in columns.items():
            limit = 10 ** (precision - scale)
            count = connection.exec_driver_sql(
                f'SELECT count(*) FROM {table} WHERE "{column}" IS NOT NULL AND '
                f'(abs("{column}") >= {limit} OR "{column}"::numeric <> round("{column}"::numeric, {scale}))'
            ).scalar_one()
            if count:
                raise RuntimeError(
                    f"{table}.{column}: {count} stored values do not fit numeric({precision},{scale}) "
                    "unchanged; nothing was migrated. Round or move them, then run the migration again"
                )


def upgrade() -> None:
    for table, staging in FINAL_TABLES.items():
        _rename(table, "datasource_id", "device_id")
        _rename(table, "source_batch_id", "source_file")
        _rename(table, "loaded_at", WRITTEN_AT.get(table, "created_at"))
        _rename(staging, "datasource_id", "device_id")
        for old, new in RENAMED.get(table, {}).items():
            _rename(table, old, new)
            _rename(staging, old, new)
        for column, kind in ADDED.get(table, {}).items():
            op.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
            op.execute(f'ALTER TABLE {staging} ADD COLUMN "{column}" {_staging_type(kind)}')
    _refuse_lossy_decimals()
    for table, columns in DECIMALS.items():
        for column, (precision, scale) in columns.items():
            op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE numeric({precision},{scale})')
    op.execute(DATASOURCE_FUNCTIONS)
    for trigger in ("delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER datasource_in_use_{trigger} ON datasource")
    for statement in IN_USE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError(
        "0002 is not reversed: the seed's layout has columns the earlier one lacks; restore a backup"
    )
