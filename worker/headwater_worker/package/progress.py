"""A processor's progress, written into its Package's status while it runs.

The termination message tells the operator how a processor ended; while it runs, its Job merge-patches its
own entry of `status.reports` (`{processor: {jobName, percent, message, time}}`) through the status
subresource, as its ServiceAccount (the operator grants it `patch` on that one Package's status and nothing
else). A merge patch of one key of a map leaves the other keys alone, so parallel processors never undo
each other's reports, and the operator, which folds them into `status.processors`, never writes that field.

Writes are spaced at least `MIN_INTERVAL` seconds apart (the last report, at 100 percent, always goes), so
that a crop reporting every row of tiles costs the API server a write every few seconds at most. A write
that fails is logged once and the processor goes on: its end still arrives in the termination message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..kubeapi import SERVICE_ACCOUNT_DIR, ApiServer, OpenClient, merge_patch
from ..logs import fields, one_line, redact

PACKAGES_API = "apis/headwater.dev/v1alpha1"
JOB_ENV = "HEADWATER_PACKAGE_JOB"
FIELD_MANAGER = "headwater-package"
MIN_INTERVAL = 2.0
MAX_MESSAGE = 1024

log = logging.getLogger(__name__)


def report_patch(processor: str, job: str, percent: int, message: str, at: datetime) -> dict[str, Any]:
    """The merge patch of one report: the processor's own entry of `status.reports`, nothing else."""
    moment = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"jobName": job, "percent": percent, "message": message[:MAX_MESSAGE], "time": moment}
    return {"status": {"reports": {processor: entry}}}


class ProgressWriter:
    """Called with each progress report of the stage's processor; writes the ones due."""

    def __init__(
        self,
        package: str,
        job: str,
        server: ApiServer,
        *,
        open_client: OpenClient = ApiServer.client,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        namespace, name = package.split("/", 1)
        self.url = f"{server.url}/{PACKAGES_API}/namespaces/{namespace}/packages/{name}/status"
        self.job = job
        self.server = server
        self._open_client = open_client
        self._clock = clock
        self._now = now
        self._last_write: float | None = None
        self._failing = False

    def __call__(self, processor: str, percent: int, message: str) -> None:
        moment = self._clock()
        due = self._last_write is None or moment - self._last_write >= MIN_INTERVAL or percent >= 100
        if not due:
            return
        self._last_write = moment
        patch = report_patch(processor, self.job, percent, one_line(redact(message)), self._now())
        problem = merge_patch(
            self.server, self.url, patch, open_client=self._open_client, field_manager=FIELD_MANAGER
        )
        if problem is None:
            self._failing = False
            return
        # One warning per outage, not one per report.
        log.log(
            logging.DEBUG if self._failing else logging.WARNING,
            "could not write the processor's progress into the Package's status",
            extra=fields(processor=processor, error=problem),
        )
        self._failing = True


def progress_writer(
    env: Mapping[str, str], package: str | None, account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ProgressWriter | None:
    """The writer of a processor's Job, or None outside one (no token, no Package or Job named)."""
    server = ApiServer.in_cluster(env, account_dir)
    job = env.get(JOB_ENV)
    if server is None or package is None or not job:
        return None
    return ProgressWriter(package, job, server)
