"""The CEI-InOE ingestor's mappings and tables, datasets declared by mappings, and migration 0002, against a
real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from alembic import command
from headwater_worker.ingest import schema
from headwater_worker.ingest.config import IngestConfig, IngestSummary
from headwater_worker.ingest.errors import IngestError
from headwater_worker.ingest.runner import run_once

pytestmark = [pytest.mark.postgres]

SEED_MAPPINGS = Path(__file__).resolve().parents[1] / "data" / "cei_inoe_mappings"
UTC = dt.UTC


class Files:
    """A file connector's folders and runs, with a mapping given by path (as a ConfigMap's key is)."""

    def __init__(self, dsn: str, root: Path) -> None:
        self.dsn, self.root = dsn, root
        (root / "incoming").mkdir(parents=True)

    def drop(self, name: str, content: str | bytes) -> None:
        path = self.root / "incoming" / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    def run(self, mapping: Path, datasource: str = "site-1") -> IngestSummary:
        config = IngestConfig.model_validate(
            {
                "connector": "tests/seed",
                "type": "file",
                "mapping": {"path": str(mapping)},
                "datasourceId": datasource,
                "file": {
                    "path": str(self.root / "incoming"),
                    "processedPath": str(self.root / "processed"),
                    "rejectedPath": str(self.root / "rejected"),
                    "stableSeconds": 0,
                },
            }
        )
        return run_once(config, self.dsn, self.root / "no-credentials")

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return list(conn.execute(statement, params).fetchall())

    def incoming(self) -> list[str]:
        return sorted(p.name for p in (self.root / "incoming").iterdir())


@pytest.fixture
def files(database: str, tmp_path: Path) -> Files:
    return Files(database, tmp_path)


# -- the ingestor's own mappings ----------------------------------------------------------------------------


def test_the_ingestors_energy_mappings_load_its_meter_exports(files: Files) -> None:
    files.drop("hourly.csv", "Date and Time,Hourly\n01/03/2024 00:00,1.5\n01/03/2024 01:00,2.25\n")
    assert files.run(SEED_MAPPINGS / "energy_hourly.yaml").run.rows_loaded == 2
    files.drop("daily.csv", "Date and Time,Daily\n01/03/2024,36.5\n02/03/2024,40\n")
    assert files.run(SEED_MAPPINGS / "energy_daily.yaml").run.rows_loaded == 2

    assert files.query("SELECT ts, energy_kwh FROM fact_energy_hourly ORDER BY ts") == [
        (dt.datetime(2024, 3, 1, 0, tzinfo=UTC), 1.5),
        (dt.datetime(2024, 3, 1, 1, tzinfo=UTC), 2.25),
    ]
    assert files.query("SELECT ts, energy_kwh FROM fact_energy_daily ORDER BY ts") == [
        (dt.date(2024, 3, 1), 36.5),
        (dt.date(2024, 3, 2), 40.0),
    ]
    [(device, batch)] = files.query("SELECT DISTINCT device_id, source_file FROM fact_energy_daily")
    assert files.query("SELECT external_id FROM datasource WHERE id = %s", device) == [("site-1",)]
    assert files.query("SELECT dataset FROM ingest_batch WHERE id = %s", batch) == [("energy_daily",)]


def test_the_ingestors_weather_mapping_loads_unit_headers_and_offsets_into_its_decimals(files: Files) -> None:
    files.drop(
        "station.csv",
        "timestamp,atm_pressure (hPa),noise_level_db (dB),temperature (°C),humidity (%),pm10 (µg/m³),"
        "wind_speed (m/s),wind_direction (sectors),wind_angle (°),pm2p5 (µg/m³)\n"
        "2024-06-01T10:00:00+03:00,1012.4,48.25,27.125,51,18.5,3.4,5,212.5,9.75\n"
        "2024-06-01T11:00:00+03:00,1012.1,,28,49.5,17,3.9,6,225,9\n"
        "2024-06-01T12:00:00+03:00,1011.9,50,75,48,16,4,6,230,8\n",
    )
    summary = files.run(SEED_MAPPINGS / "environmental_metrics.yaml")
    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (2, 1), "75 °C is out of range"
    rows = files.query(
        'SELECT "timestamp", atm_pressure, noise_level_db, temperature, wind_direction_sectors, pm2p5 '
        'FROM environmental_metrics ORDER BY "timestamp"'
    )
    d = decimal.Decimal
    assert rows == [
        (dt.datetime(2024, 6, 1, 7, tzinfo=UTC), d("1012.40"), d("48.25"), d("27.13"), d("5.00"), d("9.75")),
        (dt.datetime(2024, 6, 1, 8, tzinfo=UTC), d("1012.10"), None, d("28.00"), d("6.00"), d("9.00")),
    ]
    [(errors,)] = files.query("SELECT errors FROM staging_environmental_metrics WHERE NOT valid")
    assert any("temperature" in error for error in errors)


def test_two_stations_through_the_ingestors_mapping_keep_their_own_rows(files: Files) -> None:
    mapping = SEED_MAPPINGS / "environmental_metrics.yaml"
    header = "timestamp,temperature (°C)\n"
    files.drop("a.csv", header + "2024-06-01T10:00:00Z,20\n")
    files.run(mapping, datasource="station-a")
    files.drop("b.csv", header + "2024-06-01T10:00:00Z,25\n")
    files.run(mapping, datasource="station-b")
    files.drop("a2.csv", header + "2024-06-01T10:00:00Z,21\n")
    files.run(mapping, datasource="station-a")
    rows = files.query(
        "SELECT d.external_id, m.temperature FROM environmental_metrics m "
        "JOIN datasource d ON d.id = m.device_id ORDER BY 1"
    )
    assert rows == [("station-a", decimal.Decimal("21.00")), ("station-b", decimal.Decimal("25.00"))]


@pytest.mark.parametrize("mapping", ["dairy_production.yaml", "dairy_production_daily.yaml"])
def test_the_ingestors_dairy_mappings_load_a_workbook_with_excel_dates(files: Files, mapping: str) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(
        [
            "Date",
            "Day production/cow (kg)",
            "Nr. animals",
            "Average lactation days",
            "Fed per cow (kg) - Total",
            "Fed per cow (kg) - Water",
            "Feed efficiency",
            "Rumination minutes",
        ]
    )
    sheet.append([dt.datetime(2024, 5, 1), 31.456, 120, 180, 22.5, 80.25, 1.3981, 510])
    sheet.append([dt.date(2024, 5, 2), 32.1, 121.0, 181, 22.75, 81, 1.4109, 505])
    sheet.append([dt.date(2024, 5, 3), 30.0, None, 182, 22, 79, 1.36, 500])
    files.drop("herd.xlsx", b"")
    workbook.save(files.root / "incoming" / "herd.xlsx")

    summary = files.run(SEED_MAPPINGS / mapping)
    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (2, 1), "Nr. animals is required"
    d = decimal.Decimal
    assert files.query(
        "SELECT production_date, day_production_per_cow_kg, number_of_animals, average_lactation_days, "
        "fed_per_cow_total_kg, fed_per_cow_water_kg, feed_efficiency, rumination_minutes "
        "FROM dairy_production ORDER BY production_date"
    ) == [
        (dt.date(2024, 5, 1), d("31.46"), 120, 180, d("22.50"), d("80.25"), d("1.3981"), 510),
        (dt.date(2024, 5, 2), d("32.10"), 121, 181, d("22.75"), d("81.00"), d("1.4109"), 505),
    ]
    assert files.query("SELECT count(*) FROM dairy_production WHERE ingested_at IS NOT NULL") == [(2,)]


# -- a dataset of one's own -------------------------------------------------------------------------------

SOIL: dict[str, Any] = {
    "dataset": "soil_moisture",
    "granularity": "raw",
    "columns": {"Zeit (UTC±)": "ts", "Feuchte (%)": "moisture", "Sonde": "probe"},
    "coercions": {"ts": "datetime", "moisture": "float"},
    "primary_key": ["device_id", "ts"],
    "validation_rules": {
        "schema": {"required": ["ts", "moisture"]},
        "constraints": {"moisture": {"min": 0, "max": 100}},
    },
    "conflict_resolution": {
        "strategy": "update",
        "on_columns": ["device_id", "ts"],
        "update_columns": ["moisture"],
    },
    "table": {"columns": {"moisture": "numeric(5,2)", "probe": "varchar(16)"}, "indexes": [["created_at"]]},
    "target_table": "soil_moisture",
    "staging_table": "staging_soil_moisture",
}


def declare(root: Path, name: str, changes: dict[str, Any]) -> Path:
    body = yaml.safe_load(yaml.safe_dump(SOIL))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = body
        for part in parents:
            target = target[part]
        target[last] = value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


def columns_of(files: Files, table: str) -> dict[str, str]:
    rows = files.query(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        table,
    )
    return dict(rows)


def test_a_declared_dataset_ingests_into_a_table_headwater_creates(files: Files, tmp_path: Path) -> None:
    mapping = declare(tmp_path, "v1", {})
    files.drop(
        "probe.csv",
        "Zeit (UTC±),Feuchte (%),Sonde\n2024-04-01T06:00:00+02:00,31.255,S-1\n"
        "2024-04-01T07:00:00+02:00,32,S-1\n2024-04-01T08:00:00+02:00,140,S-1\n",
    )
    summary = files.run(mapping)
    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (2, 1)
    assert columns_of(files, "soil_moisture") == {
        "device_id": "integer",
        "ts": "timestamp with time zone",
        "moisture": "numeric(5,2)",
        "probe": "character varying(16)",
        "source_file": "uuid",
        "created_at": "timestamp with time zone",
    }
    assert files.query(
        "SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        "WHERE i.indrelid = 'soil_moisture'::regclass AND i.indisprimary"
    ) == [(["device_id", "ts"],)]
    assert files.query("SELECT relpersistence FROM pg_class WHERE relname = 'staging_soil_moisture'") == [
        ("u",)
    ]
    assert files.query("SELECT ts, moisture, probe FROM soil_moisture ORDER BY ts") == [
        (dt.datetime(2024, 4, 1, 4, tzinfo=UTC), decimal.Decimal("31.26"), "S-1"),
        (dt.datetime(2024, 4, 1, 5, tzinfo=UTC), decimal.Decimal("32.00"), "S-1"),
    ]
    [(raw, errors)] = files.query(
        "SELECT jsonb_object(b.raw_columns, s.raw), s.errors FROM staging_soil_moisture s "
        "JOIN ingest_batch b ON b.id = s.batch_id WHERE NOT s.valid"
    )
    assert raw["Feuchte (%)"] == "140"
    assert errors == ["moisture: 140.0 is above the maximum 100.0"]

    # The table refers to datasource like the shipped ones: a datasource in use cannot go.
    with psycopg.connect(files.dsn) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM datasource")


def test_a_later_mapping_adds_columns_and_widens_types(files: Files, tmp_path: Path) -> None:
    files.drop("a.csv", "Zeit (UTC±),Feuchte (%)\n2024-04-01T06:00:00Z,31\n")
    files.run(declare(tmp_path, "v1", {}))

    v2 = declare(
        tmp_path,
        "v2",
        {
            "columns": {**SOIL["columns"], "Tiefe (cm)": "depth_cm"},
            "coercions": {**SOIL["coercions"], "depth_cm": "int"},
            "table.columns": {"moisture": "numeric(7,3)", "probe": "text", "depth_cm": "integer"},
        },
    )
    files.drop("b.csv", "Zeit (UTC±),Feuchte (%),Tiefe (cm)\n2024-04-01T07:00:00Z,33.125,30\n")
    assert files.run(v2).run.rows_loaded == 1
    assert columns_of(files, "soil_moisture")["moisture"] == "numeric(7,3)"
    assert columns_of(files, "soil_moisture")["probe"] == "text"
    assert columns_of(files, "staging_soil_moisture")["depth_cm"] == "bigint"
    assert files.query("SELECT ts, moisture, depth_cm FROM soil_moisture ORDER BY ts") == [
        (dt.datetime(2024, 4, 1, 6, tzinfo=UTC), decimal.Decimal("31.000"), None),
        (dt.datetime(2024, 4, 1, 7, tzinfo=UTC), decimal.Decimal("33.125"), 30),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"table.columns": {"moisture": "numeric(4,1)"}},
            r"column moisture is numeric\(5,2\), declared numeric\(4,1\)",
        ),
        (
            {
                "columns": {"Zeit (UTC±)": "ts", "Feuchte (%)": "moisture"},
                "table.columns": {"moisture": "numeric(5,2)"},
            },
            "column probe is not declared; Headwater never drops a column",
        ),
        (
            {
                "primary_key": ["ts"],
                "conflict_resolution.on_columns": ["ts"],
            },
            r"declared key \(ts\) differs from the table's \(device_id, ts\)",
        ),
    ],
    ids=["narrowed-type", "dropped-column", "changed-key"],
)
def test_a_change_that_would_lose_data_is_refused_and_nothing_moves(
    files: Files, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    files.drop("a.csv", "Zeit (UTC±),Feuchte (%),Sonde\n2024-04-01T06:00:00Z,31,S-1\n")
    files.run(declare(tmp_path, "v1", {}))
    before = columns_of(files, "soil_moisture")

    files.drop("b.csv", "Zeit (UTC±),Feuchte (%)\n2024-04-01T07:00:00Z,33\n")
    with pytest.raises(IngestError, match=message) as refused:
        files.run(declare(tmp_path, "v2", changes))
    assert refused.value.reason == "SchemaMismatch"
    assert "\n" not in str(refused.value)
    assert columns_of(files, "soil_moisture") == before
    assert files.incoming() == ["b.csv"], "the file waits for a mapping that fits"
    assert files.query("SELECT count(*) FROM soil_moisture") == [(1,)]


def test_a_mapping_without_a_declaration_names_the_missing_table(files: Files, tmp_path: Path) -> None:
    body = {key: value for key, value in SOIL.items() if key != "table"}
    path = tmp_path / "undeclared.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    files.drop("a.csv", "Zeit (UTC±),Feuchte (%)\n2024-04-01T06:00:00Z,31\n")
    with pytest.raises(
        IngestError, match=r"table soil_moisture of mapping soil_moisture does not exist \(declare"
    ):
        files.run(path)


# -- migration 0002 ---------------------------------------------------------------------------------------


def at_0001(dsn: str) -> None:
    config = schema.alembic_config(dsn)
    command.upgrade(config, "0001")


def test_migration_0002_moves_earlier_tables_to_the_seed_layout_without_losing_rows(database: str) -> None:
    at_0001(database)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("INSERT INTO datasource (external_id, source_type) VALUES ('m', 'file'), ('s', 'file')")
        batch = "0190f5a4-0000-7000-8000-000000000001"
        conn.execute(
            "INSERT INTO fact_energy_daily (datasource_id, day, energy_kwh, source_batch_id) "
            "VALUES (1, '2024-01-01', 10.5, %s), (1, '2024-01-02', 11, %s)",
            (batch, batch),
        )
        conn.execute(
            "INSERT INTO environmental_metrics (datasource_id, ts, temperature_c, humidity_pct, co2_ppm, "
            "pm25_ugm3, pressure_hpa, source_batch_id) VALUES "
            "(1, '2024-01-01T00:00Z', 21.5, 40, 600, 5.25, 1013.2, %s), "
            "(2, '2024-01-01T00:00Z', 19, 55, 700, 6, 1009, %s)",
            (batch, batch),
        )
        conn.execute(
            "INSERT INTO dairy_production (datasource_id, day, milk_liters, cows_milked, source_batch_id) "
            "VALUES (2, '2024-05-01', 1200.5, 50, %s)",
            (batch,),
        )
    assert schema.migrate(database) == "0002"
    with psycopg.connect(database) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        assert conn.execute(
            "SELECT device_id, ts, energy_kwh, source_file::text FROM fact_energy_daily ORDER BY ts"
        ).fetchall() == [(1, dt.date(2024, 1, 1), 10.5, batch), (1, dt.date(2024, 1, 2), 11.0, batch)]
        d = decimal.Decimal
        assert conn.execute(
            'SELECT device_id, "timestamp", temperature, humidity, co2_ppm, pm2p5, atm_pressure, wind_speed '
            "FROM environmental_metrics ORDER BY device_id"
        ).fetchall() == [
            (
                1,
                dt.datetime(2024, 1, 1, tzinfo=UTC),
                d("21.50"),
                d("40.00"),
                600.0,
                d("5.25"),
                d("1013.20"),
                None,
            ),
            (
                2,
                dt.datetime(2024, 1, 1, tzinfo=UTC),
                d("19.00"),
                d("55.00"),
                700.0,
                d("6.00"),
                d("1009.00"),
                None,
            ),
        ]
        assert conn.execute(
            "SELECT device_id, production_date, milk_liters, number_of_animals, ingested_at IS NOT NULL "
            "FROM dairy_production"
        ).fetchall() == [(2, dt.date(2024, 5, 1), 1200.5, 50, True)]
        # The triggers still guard the renamed column.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM datasource WHERE id = 1")


def test_migration_0002_refuses_to_round_stored_readings_and_changes_nothing(database: str) -> None:
    at_0001(database)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("INSERT INTO datasource (external_id, source_type) VALUES ('s', 'file')")
        conn.execute(
            "INSERT INTO environmental_metrics (datasource_id, ts, temperature_c, source_batch_id) "
            "VALUES (1, '2024-01-01T00:00Z', 21.125, '0190f5a4-0000-7000-8000-000000000001')"
        )
    with pytest.raises(RuntimeError, match=r"environmental_metrics.temperature: 1 stored values do not fit"):
        schema.migrate(database)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT temperature_c FROM environmental_metrics").fetchall() == [(21.125,)]
        assert conn.execute(f"SELECT version_num FROM {schema.VERSION_TABLE}").fetchall() == [("0001",)]
