"""How a task fails: for good (its inputs, its service), or for now (its storage)."""

from __future__ import annotations


class TaskError(Exception):
    """The task ends in `error` and no retry would change that: an input missing, too large or of a type
    the service does not take, a service that refused or broke on the inputs, a remote service's error."""

    def __init__(self, message: str, reason: str = "InvalidInput") -> None:
        super().__init__(message)
        self.reason = reason


class StorageError(Exception):
    """S3 could not be reached or refused a request: worth another attempt."""
