"""Failures of an ingest run and refusals of a batch, each with the reason that status reports."""

from __future__ import annotations

import enum
from typing import Any


class FailureReason(enum.StrEnum):
    CONFIGURATION_ERROR = "ConfigurationError"
    MAPPING_INVALID = "MappingInvalid"
    DATABASE_UNAVAILABLE = "DatabaseUnavailable"
    SCHEMA_MISMATCH = "SchemaMismatch"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    SOURCE_AUTH_FAILED = "SourceAuthFailed"
    SOURCE_INVALID_RESPONSE = "SourceInvalidResponse"
    SOURCE_NOT_FOUND = "SourceNotFound"
    LOAD_FAILED = "LoadFailed"
    TERMINATED = "Terminated"


class IngestError(Exception):
    """A run stopped for `reason`; `message` is safe to show (no credentials)."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.summary: Any = None  # what the run had done before it failed, when known

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class BatchRejected(Exception):  # noqa: N818 - a refusal, not an error of the run
    """One input refused as a whole (recorded in `ingest_batch`, the run goes on)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
