"""What a run reports: one JSON line per finished task on stdout, and the termination message."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..logs import redact
from ..termination import termination_log_path, write_termination_message
from .config import (
    TERMINATION_MESSAGE_LIMIT,
    ErrorInfo,
    ExportSummary,
    TaskResult,
)

log = logging.getLogger(__name__)
ELLIPSIS = "…"


def _dump(summary: ExportSummary) -> str:
    data = summary.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not data.get("omittedTasks"):
        data.pop("omittedTasks", None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(length - 1, 0)] + ELLIPSIS


def termination_message(
    tasks: list[TaskResult], error: ErrorInfo | None = None, *, limit: int = TERMINATION_MESSAGE_LIMIT
) -> str:
    """The compact JSON summary, made to fit in `limit` bytes: first the error message is shortened, then
    the results of the last tasks are left out (counted in `omittedTasks`)."""
    if error is not None:
        error = ErrorInfo(reason=error.reason, message=redact(error.message))
    kept = list(tasks)
    fitted = error
    for length in (None, 1024, 256, 64) if error is not None else (None,):
        if error is not None and length is not None:
            fitted = ErrorInfo(reason=error.reason, message=_shorten(error.message, length))
        text = _dump(ExportSummary(tasks=kept, error=fitted))
        if len(text.encode()) <= limit:
            return text
    while kept:
        kept.pop()
        text = _dump(ExportSummary(tasks=kept, error=fitted, omitted_tasks=len(tasks) - len(kept)))
        if len(text.encode()) <= limit:
            return text
    # Only pathological limits get here.
    minimal = ExportSummary(error=fitted, omitted_tasks=len(tasks))
    return _dump(minimal)[:limit]


def print_line(payload: Mapping[str, Any]) -> None:
    print(redact(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)), flush=True)


__all__ = ["print_line", "termination_log_path", "termination_message", "write_termination_message"]
