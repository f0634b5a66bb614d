"""Failures of an export run, each with the reason the termination message reports."""

from __future__ import annotations

from .config import FailureReason


class ExportError(Exception):
    """A run stopped for `reason`; `message` is safe to show (no credentials)."""

    def __init__(self, reason: FailureReason, message: str, *, task: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.task = task

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class ConfigurationError(ExportError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.CONFIGURATION_ERROR, message)
