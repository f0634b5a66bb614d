"""The SQL of a mapping's tables, built without a database: definitions, additive plans, load statements."""

from __future__ import annotations

from pathlib import Path

import pytest
from headwater_worker.ingest import statements
from headwater_worker.ingest.mapping import Mapping, MappingError
from headwater_worker.ingest.statements import (
    ColumnSpec,
    ExistingTable,
    LoadShape,
    SchemaChangeError,
    TableSpec,
    canonical_type,
    conflict_key,
    widens,
)

SEED_MAPPINGS = Path(__file__).resolve().parents[1] / "data" / "cei_inoe_mappings"


def text(statement: object) -> str:
    return statement.as_string(None)  # type: ignore[attr-defined,no-any-return]


# -- the ingestor's mapping files --------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SEED_MAPPINGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_ingestors_mapping_files_load_unchanged(path: Path) -> None:
    mapping = Mapping.load(path)
    assert mapping.target_table in {
        "fact_energy_hourly",
        "fact_energy_daily",
        "environmental_metrics",
        "dairy_production",
    }
    assert mapping.staging_table.startswith("staging_")
    assert mapping.table is None, "they name tables that exist"
    assert mapping.key, "each has a key: primary_key or on_columns"


def test_earlier_names_of_the_injected_columns_are_read_as_the_current_ones() -> None:
    text_ = (SEED_MAPPINGS / "energy_hourly.yaml").read_text().replace("- device_id", "- datasource_id")
    mapping = Mapping.parse(text_)
    assert mapping.primary_key == ["device_id", "ts"]
    assert mapping.conflict_resolution.on_columns == ["device_id", "ts"]


# -- types ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("timestamptz", "timestamp with time zone"),
        ("DECIMAL(8, 2)", "numeric(8,2)"),
        ("numeric(6)", "numeric(6,0)"),
        ("float", "double precision"),
        ("varchar(32)", "character varying(32)"),
        ("int", "integer"),
    ],
)
def test_types_are_named_as_postgresql_reports_them(spelling: str, canonical: str) -> None:
    assert canonical_type(spelling) == canonical


def test_an_unknown_type_is_refused_in_the_mapping_naming_the_column() -> None:
    body = (SEED_MAPPINGS / "energy_hourly.yaml").read_text() + "table:\n  columns:\n    energy_kwh: money\n"
    with pytest.raises(MappingError, match=r"table.columns.energy_kwh.type: unknown type 'money'"):
        Mapping.parse(body)


def test_a_type_that_cannot_hold_the_coercions_values_is_refused() -> None:
    body = (SEED_MAPPINGS / "energy_hourly.yaml").read_text() + "table:\n  columns:\n    energy_kwh: date\n"
    with pytest.raises(
        MappingError, match=r"table.columns.energy_kwh: a date column cannot hold float values"
    ):
        Mapping.parse(body)


@pytest.mark.parametrize(
    ("old", "new", "fits"),
    [
        ("integer", "bigint", True),
        ("bigint", "integer", False),
        ("real", "double precision", True),
        ("double precision", "real", False),
        ("numeric(5,2)", "numeric(7,3)", True),
        ("numeric(5,2)", "numeric(6,4)", False),  # 999.99 needs three integer digits
        ("numeric(5,2)", "numeric(5,1)", False),
        ("numeric(5,2)", "numeric", True),
        ("character varying(16)", "text", True),
        ("character varying(16)", "character varying(8)", False),
        ("text", "integer", False),
        ("timestamp without time zone", "timestamp with time zone", False),
    ],
)
def test_only_changes_every_value_survives_are_widenings(old: str, new: str, fits: bool) -> None:
    assert widens(old, new) is fits


# -- definitions ------------------------------------------------------------------------------------------

SPEC = TableSpec(
    name="soil",
    staging="staging_soil",
    columns=(
        ColumnSpec("ts", "timestamp with time zone", True, "timestamp with time zone"),
        ColumnSpec("moisture", "numeric(5,2)", True, "double precision"),
    ),
    key=("device_id", "ts"),
    indexes=(("created_at",),),
)
FINAL = {
    "device_id": "integer",
    "ts": "timestamp with time zone",
    "moisture": "numeric(5,2)",
    "source_file": "uuid",
    "created_at": "timestamp with time zone",
}
STAGING = {
    "batch_id": "uuid",
    "row_number": "bigint",
    "device_id": "integer",
    "raw": "text[]",
    "ts": "timestamp with time zone",
    "moisture": "double precision",
    "errors": "jsonb",
    "valid": "boolean",
    "loaded_to_final": "boolean",
    "staged_at": "timestamp with time zone",
}


def test_new_tables_are_created_keyed_guarded_and_staged_unlogged() -> None:
    plan = statements.plan(SPEC, None, None)
    sql = [text(s) for s in plan.statements]
    assert sql[0] == (
        'CREATE TABLE "soil" ("device_id" integer NOT NULL, "ts" timestamp with time zone NOT NULL, '
        '"moisture" numeric(5,2), "source_file" uuid NOT NULL, '
        '"created_at" timestamp with time zone NOT NULL DEFAULT now(), '
        'CONSTRAINT "pk_soil" PRIMARY KEY ("device_id", "ts"))'
    )
    assert sql[1] == 'CREATE INDEX "ix_soil_created_at" ON "soil" ("created_at")'
    assert 'EXECUTE FUNCTION "headwater_datasource_check_statement"()' in sql[2]
    assert 'AFTER UPDATE OF "device_id" ON "soil"' in sql[3]
    assert sql[4].startswith('CREATE UNLOGGED TABLE "staging_soil" (')
    assert '"moisture" double precision' in sql[4], "staging holds values as transformed"
    assert sql[5] == 'CREATE INDEX "ix_staging_soil_batch_id" ON "staging_soil" USING brin (batch_id)'


def test_tables_that_match_need_nothing_but_their_indexes_checked() -> None:
    plan = statements.plan(SPEC, ExistingTable(FINAL, ("device_id", "ts")), ExistingTable(STAGING))
    assert plan.changes == []
    assert [text(s) for s in plan.statements] == [
        'CREATE INDEX IF NOT EXISTS "ix_soil_created_at" ON "soil" ("created_at")'
    ]


def test_a_new_column_is_added_nullable_and_a_widened_type_altered() -> None:
    wider = TableSpec(
        name=SPEC.name,
        staging=SPEC.staging,
        columns=(
            *SPEC.columns[:1],
            ColumnSpec("moisture", "numeric(7,3)", True, "double precision"),
            ColumnSpec("depth", "integer", False, "bigint"),
        ),
        key=SPEC.key,
    )
    plan = statements.plan(wider, ExistingTable(FINAL, ("device_id", "ts")), ExistingTable(STAGING))
    assert [text(s) for s in plan.statements] == [
        'ALTER TABLE "soil" ALTER COLUMN "moisture" TYPE numeric(7,3)',
        'ALTER TABLE "soil" ADD COLUMN "depth" integer',
        'ALTER TABLE "staging_soil" ADD COLUMN "depth" bigint',
    ]
    assert plan.changes == [
        "widen column soil.moisture from numeric(5,2) to numeric(7,3)",
        "add column soil.depth integer",
        "add column staging_soil.depth bigint",
    ]


def test_a_table_the_seed_layout_names_ingested_at_needs_no_created_at() -> None:
    final = {k: v for k, v in FINAL.items() if k != "created_at"} | {
        "ingested_at": "timestamp with time zone"
    }
    plan = statements.plan(SPEC, ExistingTable(final, ("device_id", "ts")), ExistingTable(STAGING))
    assert plan.changes == []


@pytest.mark.parametrize(
    ("final", "key", "message"),
    [
        (
            FINAL | {"moisture": "numeric(6,3)"},
            ("device_id", "ts"),
            r"column moisture is numeric\(6,3\), declared numeric\(5,2\)",
        ),
        (FINAL | {"notes": "text"}, ("device_id", "ts"), "column notes is not declared"),
        (FINAL, ("ts",), r"declared key \(device_id, ts\) differs from the table's \(ts\)"),
    ],
    ids=["narrowing", "dropped-column", "changed-key"],
)
def test_a_change_that_would_lose_data_is_refused(
    final: dict[str, str], key: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SchemaChangeError, match=message):
        statements.plan(SPEC, ExistingTable(final, key), ExistingTable(STAGING))


def test_one_table_of_the_pair_missing_is_refused() -> None:
    with pytest.raises(SchemaChangeError, match="table soil exists but staging_soil does not"):
        statements.plan(SPEC, ExistingTable(FINAL, ("device_id", "ts")), None)


# -- loading ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_columns", "key", "target"),
    [
        (["device_id", "ts"], ("device_id", "ts"), ("device_id", "ts")),
        (["timestamp"], ("device_id", "timestamp"), ("device_id", "timestamp")),
        (["timestamp"], ("timestamp",), ("timestamp",)),
    ],
)
def test_on_columns_without_the_device_mean_the_same_on_a_table_keyed_by_it(
    on_columns: list[str], key: tuple[str, ...], target: tuple[str, ...]
) -> None:
    assert conflict_key(on_columns, key) == target


def test_on_columns_that_are_no_key_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"on_columns \(ts\) are not the table's primary key \(device_id, day\)"
    ):
        conflict_key(["ts"], ("device_id", "day"))


SHAPE = LoadShape(
    target="environmental_metrics",
    staging="staging_environmental_metrics",
    mapped=("timestamp", "temperature"),
    strategy="update",
    key=("device_id", "timestamp"),
    update_columns=("temperature",),
    types={"device_id": "integer", "timestamp": "timestamp with time zone", "temperature": "numeric(6,2)"},
    written_at="created_at",
)


def test_update_takes_new_values_only_when_they_differ_and_marks_the_batch() -> None:
    assert text(statements.on_conflict_clause(SHAPE)) == (
        'ON CONFLICT ("device_id", "timestamp") DO UPDATE SET "temperature" = EXCLUDED."temperature", '
        '"source_file" = EXCLUDED."source_file", "created_at" = now() '
        'WHERE ("environmental_metrics"."temperature") IS DISTINCT FROM (EXCLUDED."temperature")'
    )


def test_ignore_keeps_the_row_there() -> None:
    shape = LoadShape(**{**SHAPE.__dict__, "strategy": "ignore"})
    assert text(statements.on_conflict_clause(shape)) == 'ON CONFLICT ("device_id", "timestamp") DO NOTHING'


def test_the_key_range_is_one_device_and_a_range_of_each_other_key_column() -> None:
    assert text(statements.key_range(SHAPE)) == (
        '"device_id" = %s::integer AND "timestamp" BETWEEN %s::timestamp with time zone '
        "AND %s::timestamp with time zone"
    )
    assert SHAPE.dedupe_keys == ("timestamp",)


def test_incoming_rows_go_in_with_the_bookkeeping_columns() -> None:
    assert text(statements.insert_incoming(SHAPE, on_conflict=False)) == (
        'INSERT INTO "environmental_metrics" ("device_id", "timestamp", "temperature", "source_file") '
        'SELECT "device_id", "timestamp", "temperature", "source_file" FROM "incoming_environmental_metrics"'
    )
