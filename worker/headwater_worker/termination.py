"""The container's termination message: a run's result, read by the operator from the pod's status.

Kubernetes copies the file at `terminationMessagePath` (default `/dev/termination-log`) into the
container's terminated state, up to 4096 bytes, so a worker needs no API access to report what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from .logs import fields

TERMINATION_LOG_ENV = "HEADWATER_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096

log = logging.getLogger(__name__)


def termination_log_path(env: Mapping[str, str]) -> Path | None:
    """`HEADWATER_TERMINATION_LOG` when set; else `/dev/termination-log` when Kubernetes mounted it."""
    configured = env.get(TERMINATION_LOG_ENV)
    if configured:
        return Path(configured)
    default = Path(DEFAULT_TERMINATION_LOG)
    return default if default.exists() else None


def write_termination_message(path: Path | None, text: str) -> None:
    """Write the result; a path that cannot be written is logged, never fatal: the run's work is done."""
    if path is None:
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        log.warning("could not write the termination message", extra=fields(path=str(path), error=str(error)))
