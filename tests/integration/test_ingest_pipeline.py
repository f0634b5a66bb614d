"""The ingest pipeline against a real PostgreSQL: file connector → validate → transform → stage → load.

Each bad input of issue 4 has its test here, with the outcome it must have: rows rejected with reasons in
staging, or the whole file refused with a reason and moved to `rejected/`; the final table never holds a
partial batch.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from headwater_worker.ingest import retention, schema
from headwater_worker.ingest.config import IngestConfig, IngestSummary
from headwater_worker.ingest.errors import IngestError
from headwater_worker.ingest.mapping import mappings_dir, shipped
from headwater_worker.ingest.pipeline import Pipeline
from headwater_worker.ingest.runner import run_once
from psycopg import sql

pytestmark = [pytest.mark.postgres]

HEADER = "Date and Time,Hourly\n"


@dataclass
class Ingest:
    dsn: str
    root: Path

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    def drop(self, name: str, content: str | bytes) -> Path:
        self.incoming.mkdir(parents=True, exist_ok=True)
        path = self.incoming / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def config(self, mapping: str | dict[str, str] = "energy_hourly", **extra: Any) -> IngestConfig:
        body: dict[str, Any] = {
            "connector": "tests/files",
            "type": "file",
            "mapping": {"name": mapping} if isinstance(mapping, str) else mapping,
            "datasourceId": "meter-1",
            "file": {
                "path": str(self.incoming),
                "processedPath": str(self.root / "processed"),
                "rejectedPath": str(self.root / "rejected"),
                "stableSeconds": 0,
            },
        }
        body.update(extra)
        return IngestConfig.model_validate(body)

    def run(self, mapping: str = "energy_hourly", **extra: Any) -> IngestSummary:
        self.incoming.mkdir(parents=True, exist_ok=True)
        return run_once(self.config(mapping, **extra), self.dsn, self.root / "no-credentials")

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return list(conn.execute(statement, params).fetchall())

    def scalar(self, statement: str, *params: Any) -> Any:
        return self.query(statement, *params)[0][0]

    def batches(self) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT status, reason, message, rows_total, rows_valid, rows_rejected, rows_loaded, "
            "rows_duplicate FROM ingest_batch ORDER BY started_at"
        )
        keys = ("status", "reason", "message", "total", "valid", "rejected", "loaded", "duplicate")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def staged_errors(self) -> dict[int, list[str]]:
        rows = self.query("SELECT row_number, errors FROM staging_energy_hourly ORDER BY row_number")
        return {int(number): list(errors) for number, errors in rows if errors}

    def folder(self, name: str) -> list[str]:
        folder = self.root / name
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def ingest(database: str, tmp_path: Path) -> Ingest:
    return Ingest(database, tmp_path)


def hourly_rows(count: int, start_hour: int = 0) -> str:
    lines = [
        f"2024-01-{1 + (h // 24):02d} {h % 24:02d}:00,{h}.5" for h in range(start_hour, start_hour + count)
    ]
    return HEADER + "\n".join(lines) + "\n"


# -- the happy path and idempotency --------------------------------------------------------------------------


def test_a_csv_is_loaded_staged_and_moved_to_processed(ingest: Ingest) -> None:
    ingest.drop("meter.csv", hourly_rows(48))
    summary = ingest.run()

    assert summary.run.batches == 1
    assert summary.run.rows_loaded == 48
    assert (summary.rows_loaded, summary.rows_rejected, summary.batches) == (48, 0, 1)
    assert summary.quality_score == 1.0
    assert ingest.scalar("SELECT count(*) FROM fact_energy_hourly") == 48
    first = ingest.query("SELECT ts, energy_kwh FROM fact_energy_hourly ORDER BY ts LIMIT 1")[0]
    assert first[0].isoformat() == "2024-01-01T00:00:00+00:00"
    assert first[1] == 0.5
    assert ingest.scalar("SELECT count(*) FROM staging_energy_hourly WHERE loaded_to_final") == 48
    raw = ingest.scalar(
        "SELECT jsonb_object(b.raw_columns, s.raw) FROM staging_energy_hourly s "
        "JOIN ingest_batch b ON b.id = s.batch_id WHERE s.row_number = 2"
    )
    assert raw == {"Date and Time": "2024-01-01 01:00", "Hourly": "1.5"}
    assert ingest.folder("processed") == ["meter.csv"]
    assert ingest.folder("incoming") == []
    stages = [row[0] for row in ingest.query("SELECT stage FROM pipeline_execution ORDER BY id")]
    assert stages == ["transform", "stage", "load"]
    assert summary.last_batch_id == str(ingest.scalar("SELECT id FROM ingest_batch"))


def test_staging_keeps_every_raw_value_as_it_was(ingest: Ingest) -> None:
    """Raw values go through PostgreSQL's array and COPY syntaxes: none of their characters may be lost."""
    notes = [
        'a "quoted", {braced} value',
        "back\\slash and\ttab",
        "two\nlines",
        "NULL",
        "  padded  ",
        "é ünïcödé ✓",
    ]
    lines = [HEADER.strip() + ",Note"]
    for hour, note in enumerate(notes):
        escaped = note.replace('"', '""')
        lines.append(f'2024-01-01 {hour:02d}:00,{hour},"{escaped}"')
    lines.append("2024-01-01 09:00,9,")
    ingest.drop("notes.csv", "\n".join(lines) + "\n")
    summary = ingest.run()

    assert summary.run.rows_loaded == len(notes) + 1
    raws = ingest.query(
        "SELECT s.row_number, jsonb_object(b.raw_columns, s.raw) FROM staging_energy_hourly s "
        "JOIN ingest_batch b ON b.id = s.batch_id ORDER BY s.row_number"
    )
    assert [raw["Note"] for _, raw in raws] == [*notes, None]
    assert raws[1][1] == {"Date and Time": "2024-01-01 01:00", "Hourly": "1", "Note": notes[1]}


def test_the_same_file_again_is_a_duplicate_and_changes_nothing(ingest: Ingest) -> None:
    content = hourly_rows(10)
    ingest.drop("a.csv", content)
    ingest.run()
    before = ingest.query("SELECT ts, energy_kwh, created_at FROM fact_energy_hourly ORDER BY ts")

    ingest.drop("a.csv", content)
    summary = ingest.run()

    assert summary.run.duplicates == 1
    assert summary.run.batches == 0
    assert summary.batches == 1, "totals unchanged"
    assert ingest.query("SELECT ts, energy_kwh, created_at FROM fact_energy_hourly ORDER BY ts") == before
    assert ingest.scalar("SELECT count(*) FROM ingest_batch") == 1
    assert ingest.scalar("SELECT count(*) FROM staging_energy_hourly") == 10
    assert len(ingest.folder("processed")) == 2, "the copy is moved aside too, under a new name"


def test_corrected_values_in_a_new_file_update_the_final_rows(ingest: Ingest) -> None:
    ingest.drop("a.csv", HEADER + "2024-01-01 00:00,1\n2024-01-01 01:00,2\n")
    ingest.run()
    ingest.drop("b.csv", HEADER + "2024-01-01 01:00,20\n2024-01-01 02:00,3\n")
    summary = ingest.run()
    assert summary.run.rows_loaded == 2
    values = ingest.query("SELECT energy_kwh FROM fact_energy_hourly ORDER BY ts")
    assert [v[0] for v in values] == [1.0, 20.0, 3.0]


def test_european_decimals_am_pm_dates_and_time_zones(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    custom = tmp_path / "athens.yaml"
    custom.write_text(mapping + "timezone: Europe/Athens\ncsv:\n  delimiter: ';'\n")
    ingest.drop(
        "eu.csv",
        "Date and Time;Hourly\n01/02/2024 01:00 PM;1.234,56\n01/02/2024 02:00 p.m.;12,5\n"
        "2024-02-01T13:00:00Z;7\n",
    )
    summary = run_once(ingest.config(mapping={"path": str(custom)}), ingest.dsn, tmp_path / "none")
    assert summary.run.rows_loaded == 3
    rows = ingest.query("SELECT ts, energy_kwh FROM fact_energy_hourly ORDER BY ts")
    assert [(r[0].strftime("%Y-%m-%d %H:%M"), r[1]) for r in rows] == [
        ("2024-02-01 11:00", 1234.56),  # 13:00 in Athens (UTC+2), a European decimal
        ("2024-02-01 12:00", 12.5),  # "02:00 p.m." in Athens
        ("2024-02-01 13:00", 7.0),  # an ISO timestamp with its own offset
    ]


def test_excel_workbooks_are_loaded(ingest: Ingest) -> None:
    import datetime as dt

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Date", "Day production/cow (kg)", "Nr. animals", "Feed efficiency"])
    sheet.append([dt.datetime(2024, 5, 1), 31.5, 50.0, "1,39"])
    sheet.append(["02.05.2024", "32,25", 51, 1.41])
    sheet.append([dt.date(2024, 5, 3), 30, 50.5, 1.4])
    ingest.incoming.mkdir(parents=True, exist_ok=True)
    workbook.save(ingest.incoming / "herd.xlsx")

    summary = ingest.run("dairy_production")

    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (2, 1)
    rows = ingest.query(
        "SELECT production_date::text, day_production_per_cow_kg::float8, number_of_animals, "
        "feed_efficiency::float8 FROM dairy_production ORDER BY production_date"
    )
    assert rows == [("2024-05-01", 31.5, 50, 1.39), ("2024-05-02", 32.25, 51, 1.41)]
    [errors] = [e[0] for e in ingest.query("SELECT errors FROM staging_dairy_production WHERE NOT valid")]
    assert errors == ["number_of_animals: cannot read '50.5' as int"]
    assert ingest.folder("processed") == ["herd.xlsx"]


# -- bad input -----------------------------------------------------------------------------------------------


def test_wrong_delimiter_refuses_the_file_with_a_reason(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    comma = tmp_path / "comma.yaml"
    comma.write_text(mapping + "csv:\n  delimiter: ','\n")
    ingest.drop("semicolons.csv", "Date and Time;Hourly\n2024-01-01 00:00;1\n")

    summary = run_once(ingest.config(mapping={"path": str(comma)}), ingest.dsn, tmp_path / "none")

    assert summary.run.rejected_inputs == 1
    [batch] = ingest.batches()
    assert batch["status"] == "rejected"
    assert batch["reason"] == "MissingColumns"
    assert "single column" in batch["message"]
    assert "','" in batch["message"]
    assert ingest.scalar("SELECT count(*) FROM fact_energy_hourly") == 0
    assert ingest.folder("rejected") == ["semicolons.csv", "semicolons.csv.rejected.json"]
    note = json.loads((ingest.root / "rejected" / "semicolons.csv.rejected.json").read_text())
    assert note["reason"] == "MissingColumns"


def test_an_unknown_delimiter_is_guessed_from_the_header(ingest: Ingest) -> None:
    ingest.drop("tabs.csv", "Date and Time\tHourly\n2024-01-01 00:00\t1,5\n")
    summary = ingest.run()
    assert summary.run.rows_loaded == 1
    assert ingest.scalar("SELECT energy_kwh FROM fact_energy_hourly") == 1.5


def test_missing_required_columns_refuse_the_file(ingest: Ingest) -> None:
    ingest.drop("partial.csv", "Date and Time,Other\n2024-01-01 00:00,1\n")
    ingest.run()
    [batch] = ingest.batches()
    assert (batch["status"], batch["reason"]) == ("rejected", "MissingColumns")
    assert "'Hourly'" in batch["message"]
    assert ingest.folder("rejected")[0] == "partial.csv"


def test_garbage_lines_are_rejected_rows_and_the_rest_loads(ingest: Ingest) -> None:
    ingest.drop(
        "noisy.csv",
        HEADER + "2024-01-01 00:00,1\n#### garbage ####\n2024-01-01 01:00,2,unexpected,fields\n"
        "not a date,3\n2024-01-01 02:00,three\n2024-01-01 03:00,4\n",
    )
    summary = ingest.run()

    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (3, 3)
    assert summary.quality_score == 0.5
    assert ingest.staged_errors() == {
        2: ["ts: cannot read '#### garbage ####' as datetime", "energy_kwh: required value missing"],
        4: ["ts: cannot read 'not a date' as datetime"],
        5: ["energy_kwh: cannot read 'three' as float"],
    }
    assert ingest.folder("processed") == ["noisy.csv"]
    checks = dict(ingest.query("SELECT check_name, failed_rows FROM data_quality_checks"))
    assert checks == {"type:ts": 2, "required:energy_kwh": 1, "type:energy_kwh": 1}


def test_a_utf8_bom_is_ignored(ingest: Ingest) -> None:
    ingest.drop("bom.csv", b"\xef\xbb\xbf" + hourly_rows(3).encode())
    summary = ingest.run()
    assert summary.run.rows_loaded == 3
    assert ingest.scalar("SELECT metadata->>'bom' FROM ingest_batch") == "true"


def test_latin1_bytes_are_read_as_latin1(ingest: Ingest) -> None:
    content = "timestamp,temperature (°C),humidity (%)\n2024-01-01 00:00,21.5,40\n2024-01-01 01:00,22,41\n"
    ingest.drop("latin.csv", content.encode("latin-1"))
    summary = ingest.run("environmental_metrics")
    assert summary.run.rows_loaded == 2
    assert ingest.scalar("SELECT metadata->>'encoding' FROM ingest_batch") == "latin-1"
    assert (
        ingest.scalar("SELECT temperature::float8 FROM environmental_metrics ORDER BY timestamp LIMIT 1")
        == 21.5
    )
    raw = ingest.scalar(
        "SELECT jsonb_object(b.raw_columns, s.raw) FROM staging_environmental_metrics s "
        "JOIN ingest_batch b ON b.id = s.batch_id WHERE s.row_number = 1"
    )
    assert raw["temperature (°C)"] == "21.5"


def test_a_header_only_file_is_refused_as_empty(ingest: Ingest) -> None:
    ingest.drop("header.csv", HEADER)
    ingest.run()
    [batch] = ingest.batches()
    assert (batch["status"], batch["reason"]) == ("rejected", "NoRows")
    assert ingest.folder("rejected")[0] == "header.csv"


def test_a_zero_byte_file_is_refused_as_empty(ingest: Ingest) -> None:
    ingest.drop("zero.csv", b"")
    ingest.run()
    [batch] = ingest.batches()
    assert (batch["status"], batch["reason"]) == ("rejected", "EmptyFile")
    assert "0 bytes" in batch["message"]
    assert ingest.folder("rejected")[0] == "zero.csv"


def test_duplicate_rows_load_once_and_the_later_row_wins(ingest: Ingest) -> None:
    ingest.drop("dupes.csv", HEADER + "2024-01-01 00:00,1\n2024-01-01 00:00,2\n2024-01-01 01:00,3\n")
    summary = ingest.run()
    [batch] = ingest.batches()
    assert (batch["loaded"], batch["duplicate"], batch["rejected"]) == (2, 1, 0)
    assert summary.run.rows_loaded == 2
    assert [r[0] for r in ingest.query("SELECT energy_kwh FROM fact_energy_hourly ORDER BY ts")] == [2.0, 3.0]
    assert ingest.staged_errors() == {1: ["duplicate of another row of the batch on (device_id, ts)"]}


def test_duplicates_in_different_chunks_load_once_and_the_later_row_wins(ingest: Ingest) -> None:
    """Chunks of two rows: the repeated hours arrive in later chunks than the rows they replace."""
    ingest.drop(
        "chunked.csv",
        HEADER + "2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 02:00,3\n2024-01-01 00:00,10\n"
        "2024-01-01 01:00,2\n2024-01-01 03:00,4\n",
    )
    summary = ingest.run(chunkRows=2)

    [batch] = ingest.batches()
    assert (batch["loaded"], batch["duplicate"], batch["valid"]) == (4, 2, 6)
    assert summary.run.rows_loaded == 4
    rows = ingest.query("SELECT extract(hour FROM ts)::int, energy_kwh FROM fact_energy_hourly ORDER BY ts")
    assert rows == [(0, 10.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    note = ["duplicate of another row of the batch on (device_id, ts)"]
    assert ingest.staged_errors() == {1: note, 2: note}
    loaded = ingest.query("SELECT row_number FROM staging_energy_hourly WHERE loaded_to_final ORDER BY 1")
    assert [r[0] for r in loaded] == [3, 4, 5, 6]


def test_with_ignore_the_first_of_duplicates_in_different_chunks_wins(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    keep = tmp_path / "keep.yaml"
    keep.write_text(mapping.replace("strategy: update", "strategy: ignore"))
    ingest.drop("chunked.csv", HEADER + "2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 00:00,10\n")
    summary = run_once(ingest.config(mapping={"path": str(keep)}, chunkRows=2), ingest.dsn, tmp_path / "none")

    assert (summary.run.rows_loaded, ingest.batches()[0]["duplicate"]) == (2, 1)
    assert [r[0] for r in ingest.query("SELECT energy_kwh FROM fact_energy_hourly ORDER BY ts")] == [1.0, 2.0]
    assert list(ingest.staged_errors()) == [3]


def test_rows_another_transaction_added_meanwhile_are_updated_not_refused(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The range check said "new data", but the final table has the key: the COPY rolls back to its
    savepoint and the part goes through ON CONFLICT."""
    ingest.drop("a.csv", HEADER + "2024-01-01 01:00,1\n")
    ingest.run()
    monkeypatch.setattr(Pipeline, "_overlaps", lambda *args: False)
    ingest.drop("b.csv", HEADER + "2024-01-01 00:00,5\n2024-01-01 01:00,6\n")
    summary = ingest.run()

    assert summary.run.rows_loaded == 2
    assert [r[0] for r in ingest.query("SELECT energy_kwh FROM fact_energy_hourly ORDER BY ts")] == [5.0, 6.0]


def test_out_of_range_values_are_rejected_rows(ingest: Ingest) -> None:
    ingest.drop("range.csv", HEADER + "2024-01-01 00:00,-1\n2024-01-01 01:00,5\n2024-01-01 02:00,20000\n")
    summary = ingest.run()
    assert (summary.run.rows_loaded, summary.run.rows_rejected) == (1, 2)
    errors = ingest.staged_errors()
    assert errors[1] == ["energy_kwh: -1.0 is below the minimum 0.0"]
    assert errors[3] == ["energy_kwh: 20000.0 is above the maximum 10000.0"]


def test_a_file_with_no_valid_row_is_refused_and_its_rows_kept_with_reasons(ingest: Ingest) -> None:
    ingest.drop("bad.csv", HEADER + "x,1\ny,2\n")
    ingest.run()
    [batch] = ingest.batches()
    assert (batch["status"], batch["reason"], batch["rejected"]) == ("rejected", "NoValidRows", 2)
    assert len(ingest.staged_errors()) == 2
    assert ingest.folder("rejected")[0] == "bad.csv"


def test_a_failing_load_leaves_no_partial_batch(ingest: Ingest, tmp_path: Path) -> None:
    """`append` into a table with a unique key: the second file collides half-way; nothing of it stays."""
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    append = tmp_path / "append.yaml"
    append.write_text(mapping.replace("strategy: update", "strategy: append"))
    config = ingest.config(mapping={"path": str(append)})
    ingest.drop("a.csv", HEADER + "2024-01-01 01:00,1\n")
    run_once(config, ingest.dsn, tmp_path / "none")
    ingest.drop("b.csv", HEADER + "2024-01-01 00:00,5\n2024-01-01 01:00,6\n2024-01-01 02:00,7\n")
    # One row per chunk: the collision comes in the second chunk, after the first is in the final table.
    run_once(config.model_copy(update={"chunk_rows": 1}), ingest.dsn, tmp_path / "none")

    assert [r[0] for r in ingest.query("SELECT energy_kwh FROM fact_energy_hourly")] == [1.0]
    assert ingest.scalar("SELECT count(*) FROM staging_energy_hourly") == 1, "b.csv left no staged rows"
    second = ingest.batches()[1]
    assert (second["status"], second["reason"]) == ("rejected", "LoadFailed")
    assert "duplicate key" in second["message"]


def test_strategy_fail_refuses_a_batch_that_conflicts(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        mapping.replace("strategy: update", "strategy: fail").replace("update_columns: [energy_kwh]", "")
    )
    config = ingest.config(mapping={"path": str(strict)})
    ingest.drop("a.csv", HEADER + "2024-01-01 01:00,1\n")
    run_once(config, ingest.dsn, tmp_path / "none")
    ingest.drop("b.csv", HEADER + "2024-01-01 00:00,5\n2024-01-01 01:00,6\n")
    run_once(config, ingest.dsn, tmp_path / "none")
    assert ingest.scalar("SELECT count(*) FROM fact_energy_hourly") == 1
    assert ingest.batches()[1]["reason"] == "Conflict"
    assert ingest.scalar("SELECT count(*) FROM staging_energy_hourly") == 1, "the refused batch left no rows"
    ingest.drop("c.csv", HEADER + "2024-01-01 02:00,7\n2024-01-01 03:00,8\n2024-01-01 04:00,9\n")
    summary = run_once(config.model_copy(update={"chunk_rows": 2}), ingest.dsn, tmp_path / "none")
    assert summary.run.rows_loaded == 3, "new rows load, in chunks"
    ingest.drop("d.csv", HEADER + "2024-01-01 05:00,1\n2024-01-01 06:00,2\n2024-01-01 05:00,3\n")
    run_once(config.model_copy(update={"chunk_rows": 2}), ingest.dsn, tmp_path / "none")
    refused = ingest.batches()[-1]
    assert (refused["reason"], refused["duplicate"]) == ("Conflict", 1)
    assert "1 repeat another row" in refused["message"]


def test_strategy_ignore_keeps_existing_rows(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    keep = tmp_path / "keep.yaml"
    keep.write_text(mapping.replace("strategy: update", "strategy: ignore"))
    config = ingest.config(mapping={"path": str(keep)})
    ingest.drop("a.csv", HEADER + "2024-01-01 01:00,1\n")
    run_once(config, ingest.dsn, tmp_path / "none")
    ingest.drop("b.csv", HEADER + "2024-01-01 00:00,5\n2024-01-01 01:00,6\n")
    summary = run_once(config, ingest.dsn, tmp_path / "none")
    assert summary.run.rows_loaded == 1
    assert [r[0] for r in ingest.query("SELECT energy_kwh FROM fact_energy_hourly ORDER BY ts")] == [5.0, 1.0]


# -- files still being written, concurrency, schema ----------------------------------------------------------


def test_a_file_still_changing_is_left_for_the_next_scan(ingest: Ingest) -> None:
    path = ingest.drop("growing.csv", hourly_rows(2))
    config = ingest.config()
    assert config.file is not None
    patient = config.model_copy(update={"file": config.file.model_copy(update={"stable_seconds": 2})})
    writing = threading.Event()

    def writer() -> None:
        while not writing.wait(0.2):
            with path.open("a") as handle:
                handle.write("2024-02-01 00:00,1\n")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        summary = run_once(patient, ingest.dsn, ingest.root / "none")
    finally:
        writing.set()
        thread.join()
    assert summary.run.batches == 0
    assert path.exists()
    summary = run_once(patient, ingest.dsn, ingest.root / "none")
    assert summary.run.batches == 1, "once it stops changing, the next scan loads it"


def test_concurrent_runs_load_a_file_once(ingest: Ingest) -> None:
    content = hourly_rows(200)
    first, second = ingest.root / "one", ingest.root / "two"
    results: list[IngestSummary] = []
    errors: list[BaseException] = []

    def run(folder: Path) -> None:
        folder.mkdir()
        (folder / "same.csv").write_text(content)
        config = ingest.config()
        assert config.file is not None
        moved = config.model_copy(update={"file": config.file.model_copy(update={"path": str(folder)})})
        try:
            results.append(run_once(moved, ingest.dsn, ingest.root / "none"))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(folder,)) for folder in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.run.batches for r in results) == [0, 1]
    assert sorted(r.run.duplicates for r in results) == [0, 1]
    assert ingest.scalar("SELECT count(*) FROM fact_energy_hourly") == 200


def test_migrations_create_exactly_the_models(ingest: Ingest) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from headwater_worker.ingest.schema.models import metadata
    from sqlalchemy import create_engine

    schema.migrate(ingest.dsn)
    assert schema.migrate(ingest.dsn) == "0002", "a second migration is a no-op"
    head = ScriptDirectory.from_config(schema.alembic_config(ingest.dsn)).get_current_head()
    assert head == schema.HEAD, "schema.HEAD names the newest migration (runs skip Alembic when there)"
    assert schema.ensure(ingest.dsn) == schema.HEAD
    engine = create_engine(schema.sqlalchemy_url(ingest.dsn))
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": schema.VERSION_TABLE}
        )
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


def test_a_missing_target_table_fails_the_run_clearly(ingest: Ingest, tmp_path: Path) -> None:
    mapping = (Path(__file__).resolve().parents[2] / "mappings" / "energy_hourly.yaml").read_text()
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(mapping.replace("target_table: fact_energy_hourly", "target_table: nowhere"))
    ingest.drop("a.csv", hourly_rows(1))
    with pytest.raises(IngestError) as failure:
        run_once(ingest.config(mapping={"path": str(elsewhere)}), ingest.dsn, tmp_path / "none")
    assert failure.value.reason == "SchemaMismatch"
    assert "nowhere" in failure.value.message


def test_final_rows_refer_to_datasources_that_exist(ingest: Ingest) -> None:
    """Triggers stand for the foreign key to datasource, checked once per statement."""
    ingest.drop("a.csv", hourly_rows(2))
    ingest.run()
    insert = (
        "INSERT INTO fact_energy_hourly (device_id, ts, energy_kwh, source_file) "
        "VALUES (%s, now(), 1, gen_random_uuid())"
    )
    violation = psycopg.errors.ForeignKeyViolation
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        used = conn.execute("SELECT id FROM datasource").fetchone()
        assert used is not None
        meter = int(used[0])
        with pytest.raises(violation, match="datasource"):
            conn.execute(insert, (meter + 1000,))
        with pytest.raises(violation, match="datasource"):
            conn.execute("UPDATE fact_energy_hourly SET device_id = %s", (meter + 1000,))
        for statement in (
            "DELETE FROM datasource WHERE id = %s",
            "UPDATE datasource SET id = id + 1000 WHERE id = %s",
        ):
            with pytest.raises(violation, match="fact_energy_hourly"):
                conn.execute(statement, (meter,))
        with pytest.raises(violation, match="fact_energy_hourly"):
            conn.execute("TRUNCATE datasource CASCADE")

        spare = conn.execute(
            "INSERT INTO datasource (external_id, source_type) VALUES ('spare', 'file') RETURNING id"
        ).fetchone()
        assert spare is not None
        conn.execute(insert, (spare[0],))
        conn.execute("DELETE FROM fact_energy_hourly WHERE device_id = %s", (spare[0],))
        conn.execute("DELETE FROM datasource WHERE id = %s", (spare[0],))
    assert ingest.scalar("SELECT count(*) FROM datasource") == 1
    assert ingest.scalar("SELECT count(*) FROM fact_energy_hourly") == 2


# -- staging retention ---------------------------------------------------------------------------------------


def batch_of(ingest: Ingest, source: str) -> Any:
    return ingest.scalar("SELECT id FROM ingest_batch WHERE source_uri LIKE %s", f"%{source}")


def staged_rows(ingest: Ingest, batch: Any) -> int:
    return int(ingest.scalar("SELECT count(*) FROM staging_energy_hourly WHERE batch_id = %s", batch))


def backdate(ingest: Ingest, batch: Any, days: int) -> None:
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE ingest_batch SET started_at = started_at - make_interval(days => %s) WHERE id = %s",
            (days, batch),
        )


def test_staging_rows_of_batches_older_than_the_retention_go(ingest: Ingest) -> None:
    ingest.drop("old.csv", hourly_rows(24) + "2024-01-02 00:00,-5\n")
    ingest.run()
    ingest.drop("recent.csv", hourly_rows(24, start_hour=100))
    ingest.run()
    ingest.drop("other.csv", hourly_rows(24, start_hour=200))
    ingest.run(connector="tests/other-connector")
    old, recent, other = (batch_of(ingest, name) for name in ("old.csv", "recent.csv", "other.csv"))
    backdate(ingest, old, 8)
    backdate(ingest, other, 8)
    kept = ("ingest_batch", "pipeline_execution", "data_quality_checks", "fact_energy_hourly")
    before = {table: ingest.scalar(f"SELECT count(*) FROM {table}") for table in kept}

    summary = ingest.run(stagingRetentionDays=7)

    assert summary.run.staging_rows_pruned == 25
    assert (staged_rows(ingest, old), staged_rows(ingest, recent), staged_rows(ingest, other)) == (0, 24, 24)
    assert {table: ingest.scalar(f"SELECT count(*) FROM {table}") for table in kept} == before
    assert ingest.scalar("SELECT count(*) FROM data_quality_checks WHERE batch_id = %s", old) == 1
    pruned = ingest.scalar("SELECT metadata -> 'stagingPruned' FROM ingest_batch WHERE id = %s", old)
    assert pruned["rows"] == 25
    assert ingest.run().run.staging_rows_pruned == 0, "a pruned batch is not looked at again"


def test_a_retention_of_zero_keeps_every_staging_row(ingest: Ingest) -> None:
    ingest.drop("old.csv", hourly_rows(24))
    ingest.run()
    backdate(ingest, batch_of(ingest, "old.csv"), 400)
    summary = ingest.run(stagingRetentionDays=0)
    assert summary.run.staging_rows_pruned == 0
    assert ingest.scalar("SELECT count(*) FROM staging_energy_hourly") == 24
    assert ingest.scalar("SELECT count(*) FROM ingest_batch WHERE metadata ? 'stagingPruned'") == 0


def test_staging_rows_go_in_chunks(ingest: Ingest) -> None:
    ingest.drop("old.csv", hourly_rows(24))
    ingest.run()
    old = batch_of(ingest, "old.csv")
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        table = sql.Identifier("staging_energy_hourly")
        assert retention.delete_batch_rows(conn, table, old, chunk_rows=7) == 24
        assert retention.delete_batch_rows(conn, table, old, chunk_rows=7) == 0
    assert staged_rows(ingest, old) == 0


def test_a_failed_pruning_is_logged_and_the_run_goes_on(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.drop("old.csv", hourly_rows(24))
    ingest.run()
    backdate(ingest, batch_of(ingest, "old.csv"), 8)
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE staging_energy_hourly RENAME TO staging_elsewhere")
        assert retention.prune(conn, ingest.config(), shipped("energy_hourly")) == 0
        conn.execute("ALTER TABLE staging_elsewhere RENAME TO staging_energy_hourly")
    assert "staging rows could not be pruned" in caplog.text
    assert ingest.run().run.staging_rows_pruned == 24, "left for the next run"


def test_a_changed_staging_table_keeps_the_old_batches_rows_for_the_old_mapping(ingest: Ingest) -> None:
    """Same dataset, another staging table: each run prunes only the batches staged in its own table."""
    ingest.drop("old.csv", hourly_rows(24))
    ingest.run()
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE staging_energy_v2 (LIKE staging_energy_hourly INCLUDING ALL)")
    text = (mappings_dir() / "energy_hourly.yaml").read_text()
    line = "staging_table: staging_energy_hourly\n"
    assert line in text
    moved = ingest.root / "energy_v2.yaml"
    moved.write_text(text.replace(line, "staging_table: staging_energy_v2\n"))
    v2 = {"path": str(moved)}
    ingest.drop("new.csv", hourly_rows(24, start_hour=100))
    run_once(ingest.config(v2), ingest.dsn, ingest.root / "no-credentials")
    old, new = batch_of(ingest, "old.csv"), batch_of(ingest, "new.csv")
    assert ingest.scalar("SELECT metadata ->> 'stagingTable' FROM ingest_batch WHERE id = %s", old) == (
        "staging_energy_hourly"
    )
    assert ingest.scalar("SELECT count(*) FROM staging_energy_v2 WHERE batch_id = %s", new) == 24
    backdate(ingest, old, 8)
    backdate(ingest, new, 8)

    summary = run_once(ingest.config(v2, stagingRetentionDays=7), ingest.dsn, ingest.root / "no-credentials")
    assert summary.run.staging_rows_pruned == 24
    assert ingest.scalar("SELECT count(*) FROM staging_energy_v2") == 0
    assert staged_rows(ingest, old) == 24, "the old table's rows are not the new mapping's to prune"
    pruned = ingest.query("SELECT id FROM ingest_batch WHERE metadata ? 'stagingPruned'")
    assert pruned == [(new,)], "the old batch is not marked pruned while its rows remain"

    assert ingest.run(stagingRetentionDays=7).run.staging_rows_pruned == 24, "the old mapping prunes them"
    assert staged_rows(ingest, old) == 0


def test_a_batch_not_naming_its_staging_table_is_pruned_only_where_its_rows_are(ingest: Ingest) -> None:
    ingest.drop("here.csv", hourly_rows(24))
    ingest.run()
    ingest.drop("elsewhere.csv", hourly_rows(24, start_hour=100))
    ingest.run()
    here, elsewhere = batch_of(ingest, "here.csv"), batch_of(ingest, "elsewhere.csv")
    with psycopg.connect(ingest.dsn, autocommit=True) as conn:
        # As recorded before batches named their staging table; the second one's rows are in another table.
        conn.execute("UPDATE ingest_batch SET metadata = metadata - 'stagingTable'")
        conn.execute("CREATE UNLOGGED TABLE staging_elsewhere (LIKE staging_energy_hourly INCLUDING ALL)")
        conn.execute(
            "WITH gone AS (DELETE FROM staging_energy_hourly WHERE batch_id = %s RETURNING *) "
            "INSERT INTO staging_elsewhere SELECT * FROM gone",
            (elsewhere,),
        )
    backdate(ingest, here, 8)
    backdate(ingest, elsewhere, 8)

    assert ingest.run(stagingRetentionDays=7).run.staging_rows_pruned == 24
    assert staged_rows(ingest, here) == 0
    assert ingest.scalar("SELECT count(*) FROM staging_elsewhere") == 24
    assert ingest.query("SELECT id FROM ingest_batch WHERE metadata ? 'stagingPruned'") == [(here,)]
