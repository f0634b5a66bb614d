"""Failures of a Package stage, each with the reason its report carries."""

from __future__ import annotations

import enum


class FailureReason(enum.StrEnum):
    CONFIGURATION_ERROR = "ConfigurationError"
    INVALID_BOUNDARY = "InvalidBoundary"
    UNKNOWN_PROCESSOR = "UnknownProcessor"
    BROKEN_PROCESSOR = "BrokenProcessor"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    LOCK_TIMEOUT = "LockTimeout"
    PROCESSING_FAILED = "ProcessingFailed"
    MISSING_RESULT = "MissingResult"
    INVALID_DATAPACKAGE = "InvalidDatapackage"
    TERMINATED = "Terminated"


# What retrying cannot fix: the operator's Job fails at once on these (a podFailurePolicy on the exit code).
PERMANENT = frozenset(
    {
        FailureReason.CONFIGURATION_ERROR,
        FailureReason.INVALID_BOUNDARY,
        FailureReason.UNKNOWN_PROCESSOR,
        FailureReason.BROKEN_PROCESSOR,
        FailureReason.INVALID_DATAPACKAGE,
    }
)


class PackageError(Exception):
    """A stage stopped for `reason`; `message` is one line, safe to show (no credentials)."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT
