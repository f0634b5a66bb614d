"""What the operator logs beyond kopf's defaults.

kopf logs at INFO that each handler succeeded and that each change was processed: for an operator with
hundreds of resources and children, a few lines per event that only say nothing failed. Failures are
logged at WARNING and above either way; these routine lines are kept for `--verbose`.
"""

from __future__ import annotations

import logging
import re

# kopf's per-object logger, which its handlers' `logger` also writes to.
OBJECTS_LOGGER = "kopf.objects"
ROUTINE = re.compile(r"Handler '[^']+' succeeded\.|\w+ is processed: \d+ succeeded; 0 failed\.")


class RoutineSuccesses(logging.Filter):
    """Drops kopf's routine success lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO and isinstance(record.msg, str) and ROUTINE.fullmatch(record.msg)
        )


def configure(verbose: bool) -> None:
    """Leave out kopf's routine success lines unless `verbose`."""
    if not verbose:
        logging.getLogger(OBJECTS_LOGGER).addFilter(RoutineSuccesses())
