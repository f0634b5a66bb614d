"""The termination message: compact JSON that always fits in Kubernetes' 4096 bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from headwater_worker.export.config import ErrorInfo, ExportSummary, FailureReason, TaskResult
from headwater_worker.export.report import (
    termination_log_path,
    termination_message,
    write_termination_message,
)
from headwater_worker.logs import redact


def result(i: int, uri_length: int = 60) -> TaskResult:
    return TaskResult(
        name=f"task_{i}",
        rows=i * 1000,
        bytes=i * 321,
        uri="s3://bucket/" + "p" * uri_length + f"/task_{i}-2025_01_01-12_00_00_AM.csv.gz",
        duration_seconds=1.25,
        finished_at="2025-01-01T00:00:01Z",
    )


def test_success_summary_shape() -> None:
    text = termination_message([result(1)])
    assert json.loads(text) == {
        "tasks": [
            {
                "name": "task_1",
                "rows": 1000,
                "bytes": 321,
                "uri": "s3://bucket/" + "p" * 60 + "/task_1-2025_01_01-12_00_00_AM.csv.gz",
                "durationSeconds": 1.25,
                "finishedAt": "2025-01-01T00:00:01Z",
            }
        ]
    }
    assert " " not in text  # compact
    assert ExportSummary.model_validate_json(text).tasks == [result(1)]


def test_failure_summary_keeps_the_tasks_done_so_far() -> None:
    text = termination_message(
        [result(1)], ErrorInfo(reason=FailureReason.INVALID_QUERY, message="syntax error")
    )
    data = json.loads(text)
    assert data["error"] == {"reason": "InvalidQuery", "message": "syntax error"}
    assert [task["name"] for task in data["tasks"]] == ["task_1"]
    summary = ExportSummary.model_validate_json(text)
    assert summary.error is not None
    assert summary.error.reason is FailureReason.INVALID_QUERY


def test_a_long_error_message_is_shortened_first() -> None:
    error = ErrorInfo(reason=FailureReason.DATABASE_UNAVAILABLE, message="x" * 10_000)
    text = termination_message([result(1), result(2)], error)
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert len(data["tasks"]) == 2
    assert data["error"]["message"].endswith("…")
    assert data["error"]["reason"] == "DatabaseUnavailable"


def test_many_tasks_are_cut_and_counted() -> None:
    tasks = [result(i, uri_length=200) for i in range(100)]
    text = termination_message(tasks)
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    kept = len(data["tasks"])
    assert 0 < kept < 100
    assert data["omittedTasks"] == 100 - kept
    assert [task["name"] for task in data["tasks"]] == [f"task_{i}" for i in range(kept)]
    assert ExportSummary.model_validate_json(text).omitted_tasks == 100 - kept


@pytest.mark.parametrize("limit", [4096, 1000, 300])
def test_always_fits_and_stays_json(limit: int) -> None:
    error = ErrorInfo(reason=FailureReason.VERIFICATION_FAILED, message="é" * 5000)  # multi-byte
    text = termination_message([result(i, 500) for i in range(30)], error, limit=limit)
    assert len(text.encode()) <= limit
    assert json.loads(text)["error"]["reason"] == "VerificationFailed"


def test_secrets_never_reach_the_message() -> None:
    redact.add_dsn("postgresql://app:s3cr3t-pw@db:5432/ckb")
    try:
        error = ErrorInfo(
            reason=FailureReason.CONFIGURATION_ERROR, message='bad "postgresql://app:s3cr3t-pw@db/x"'
        )
        text = termination_message([], error)
        assert "s3cr3t-pw" not in text
        assert "app:***@" in text
    finally:
        redact.clear()


def test_termination_log_path(tmp_path: Path) -> None:
    assert termination_log_path({"HEADWATER_TERMINATION_LOG": str(tmp_path / "t")}) == tmp_path / "t"
    default = termination_log_path({})
    assert default is None or default == Path("/dev/termination-log")


def test_write_termination_message_tolerates_an_unwritable_path(tmp_path: Path) -> None:
    write_termination_message(tmp_path / "missing" / "log", "{}")
    write_termination_message(None, "{}")
    write_termination_message(tmp_path / "log", '{"tasks":[]}')
    assert (tmp_path / "log").read_text() == '{"tasks":[]}'
