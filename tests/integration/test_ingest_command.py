"""`python -m headwater_worker ingest run|migrate` as a Job's pod runs it: configured by its environment,
reporting in its termination message, exiting non-zero with a reason on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from headwater_worker.ingest.config import IngestConfig

pytestmark = [pytest.mark.postgres]

PASSWORD_MARK = "tago-token-never-shown-3e1"


def worker(action: str, env: dict[str, str], tmp_path: Path) -> tuple[int, dict[str, Any], str, str]:
    log = tmp_path / "termination-log"
    log.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "headwater_worker", "ingest", action],
        env={**os.environ, "HEADWATER_TERMINATION_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = log.read_text()
    return result.returncode, json.loads(text) if text else {}, result.stdout, result.stderr


def file_config(tmp_path: Path, mapping: str = "energy_hourly") -> str:
    return IngestConfig.model_validate(
        {
            "connector": "team/meter",
            "type": "file",
            "mapping": {"name": mapping},
            "datasourceId": "meter-1",
            "file": {
                "path": str(tmp_path / "in"),
                "processedPath": str(tmp_path / "done"),
                "rejectedPath": str(tmp_path / "bad"),
                "stableSeconds": 0,
            },
        }
    ).to_env()


def test_a_run_reports_its_figures_in_the_termination_message(database: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("Date and Time,Hourly\n2024-01-01 00:00,1\n2024-01-01 01:00,x\n")
    env = {"HEADWATER_INGEST_CONFIG": file_config(tmp_path), "DATABASE_URL": database}
    code, message, stdout, _ = worker("run", env, tmp_path)
    assert code == 0
    assert message["rowsLoaded"] == 1
    assert message["rowsRejected"] == 1
    assert message["batches"] == 1
    assert message["qualityScore"] == 0.5
    assert message["lastBatchId"]
    assert message["run"] == {
        "batches": 1,
        "rowsLoaded": 1,
        "rowsRejected": 1,
        "duplicates": 0,
        "rejectedInputs": 0,
    }
    [line] = [json.loads(text) for text in stdout.splitlines()]
    assert line["status"] == "loaded"


def test_migrate_is_idempotent(database: str, tmp_path: Path) -> None:
    for _ in range(2):
        code, _, stdout, _ = worker("migrate", {"DATABASE_URL": database}, tmp_path)
        assert code == 0
        assert json.loads(stdout) == {"revision": "0001"}


@pytest.mark.parametrize(
    ("env", "reason", "says"),
    [
        ({}, "ConfigurationError", "HEADWATER_INGEST_CONFIG is not set"),
        ({"HEADWATER_INGEST_CONFIG": "{}"}, "ConfigurationError", "connector: Field required"),
        ({"MAPPING": "nope"}, "MappingInvalid", "no mapping named 'nope'"),
        (
            {"DATABASE_URL": "postgresql://u:secret-pw@127.0.0.1:9/x"},
            "DatabaseUnavailable",
            "migration failed",
        ),
    ],
)
def test_failures_exit_non_zero_with_a_reason(
    database: str, tmp_path: Path, env: dict[str, str], reason: str, says: str
) -> None:
    (tmp_path / "in").mkdir()
    full = {
        "HEADWATER_INGEST_CONFIG": file_config(tmp_path, env.pop("MAPPING", "energy_hourly")),
        "DATABASE_URL": database,
    }
    if "HEADWATER_INGEST_CONFIG" not in env and reason == "ConfigurationError":
        full.pop("HEADWATER_INGEST_CONFIG")
    full.update(env)
    code, message, _, stderr = worker("run", full, tmp_path)
    assert code == 1
    assert message["error"]["reason"] == reason
    assert says in message["error"]["message"]
    assert "secret-pw" not in json.dumps(message) + stderr


def test_credentials_never_reach_logs_or_the_message(database: str, tmp_path: Path) -> None:
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    (secrets / "token").write_text(PASSWORD_MARK)
    config = IngestConfig.model_validate(
        {
            "connector": "team/tago",
            "type": "tago",
            "mapping": {"name": "api_energy_hourly"},
            "http": {"baseUrl": "http://127.0.0.1:9", "maxRetries": 0, "timeoutSeconds": 1},
        }
    ).to_env()
    env = {
        "HEADWATER_INGEST_CONFIG": config,
        "DATABASE_URL": database,
        "HEADWATER_CREDENTIALS_DIR": str(secrets),
    }
    code, message, stdout, stderr = worker("run", env, tmp_path)
    assert code == 1
    assert message["error"]["reason"] == "SourceUnavailable"
    assert PASSWORD_MARK not in json.dumps(message) + stdout + stderr
