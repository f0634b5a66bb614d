"""The configuration the operator hands to every stage, and the report each stage hands back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from headwater_worker.package.command import termination_message
from headwater_worker.package.config import (
    ErrorInfo,
    PackageConfig,
    ProcessorPhase,
    ProcessorResult,
    StageReport,
)
from headwater_worker.package.errors import FailureReason
from headwater_worker.package.records import append_run
from pydantic import ValidationError

BASE: dict[str, Any] = {
    "boundary": {"name": "gambia", "geojson": "{}"},
    "processors": ["test_processor.version_1"],
    "storage": {"volume": {"path": "/data/packages"}},
}


def config(**changes: Any) -> PackageConfig:
    return PackageConfig.model_validate({**BASE, **changes})


def test_a_bare_processor_name_takes_the_default_options_and_the_config_survives_the_environment() -> None:
    parsed = config(
        processors=[
            "test_processor.version_1",
            {"name": "natural_earth_raster.version_1", "options": {"source": {"url": "https://e.org/a.tif"}}},
        ],
        cache={"s3": {"bucket": "cache-bucket", "prefix": "sources"}},
        packageHostUrl="https://example.org/packages",
    )
    assert [entry.options for entry in parsed.processors] == [{}, {"source": {"url": "https://e.org/a.tif"}}]
    assert PackageConfig.from_env(parsed.to_env()) == parsed
    assert parsed.processor("natural_earth_raster.version_1") is parsed.processors[1]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"processors": ["a.version_1", "a.version_1"]}, "a.version_1 given more than once"),
        ({"processors": ["no_version"]}, "String should match pattern"),
        ({"storage": {}}, "exactly one of `s3` or `volume`"),
        ({"storage": {"volume": {"path": "relative"}}}, "String should match pattern"),
        ({"boundary": {"name": "gambia"}}, "exactly one of `geojson` or `geojsonFile`"),
        ({"boundary": {"name": "Gambia!", "geojson": "{}"}}, "String should match pattern"),
    ],
)
def test_bad_configurations_are_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("`", ".")):
        config(**changes)


def test_the_termination_message_fits_kubernetes_limit_by_leaving_out_uris() -> None:
    uris = [
        f"https://example.org/packages/gambia/datasets/a/version_1/data/file-{n:04d}.tif" for n in range(200)
    ]
    report = StageReport(
        stage="process",
        boundary="gambia",
        processors=[
            ProcessorResult(
                name="a.version_1", phase=ProcessorPhase.SUCCEEDED, progress=100, result_uris=uris
            )
        ],
    )
    text = termination_message(report)
    assert len(text.encode()) <= 4096
    [result] = json.loads(text)["processors"]
    assert result["resultUris"] == uris[: len(result["resultUris"])]
    assert result["omittedUris"] == 200 - len(result["resultUris"])


def test_a_long_error_is_shortened_to_fit() -> None:
    report = StageReport(
        stage="setup",
        boundary="gambia",
        error=ErrorInfo(reason=FailureReason.INVALID_BOUNDARY, message="x" * 10_000, permanent=True),
    )
    parsed = json.loads(termination_message(report))
    assert parsed["error"]["reason"] == "InvalidBoundary"
    assert parsed["error"]["permanent"] is True
    assert len(parsed["error"]["message"]) <= 1024


def test_provenance_runs_are_appended_under_their_time() -> None:
    first = append_run(None, "2026-01-01T00:00:00Z", [{"a.version_1": {"ok": True}}])
    second = append_run(first, "2026-01-02T00:00:00Z", [{"b.version_1": {}}])
    assert json.loads(second) == {
        "2026-01-01T00:00:00Z": [{"a.version_1": {"ok": True}}],
        "2026-01-02T00:00:00Z": [{"b.version_1": {}}],
    }
    assert json.loads(append_run(b"{broken", "t", []))["unreadable"] == "{broken"
