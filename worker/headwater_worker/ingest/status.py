"""A watching file connector's figures, written into its Connector's status after each load.

A scheduled run reports its totals in its termination message; a watcher never terminates. After every
scan that loaded or refused a file it therefore merge-patches the connector's totals, and the time of that
load, into the Connector's status itself, through the status subresource, as its own ServiceAccount (the
operator grants it `patch` on that one Connector's status, nothing else). Only those fields are
sent: the phase and conditions belong to the operator. A write that fails is logged and tried again after
the next scan; it never stops ingestion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..kubeapi import ApiServer, OpenClient, merge_patch
from ..logs import fields
from .config import IngestSummary

CONNECTORS_API = "apis/headwater.dev/v1alpha1"

log = logging.getLogger(__name__)


def status_patch(totals: IngestSummary, loaded_at: datetime) -> dict[str, Any]:
    """The merge patch of a load: the connector's totals and when they changed, none of the operator's
    fields (phase, conditions), so that neither side's writes undo the other's."""
    moment = loaded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {**totals.status_figures(), "lastLoadTime": moment}}


class StatusReporter:
    """Called after every scan, with the connector's totals when the scan loaded or refused something
    (else None): writes the newest figures not written yet."""

    def __init__(
        self,
        connector: str,
        server: ApiServer,
        *,
        open_client: OpenClient = ApiServer.client,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        namespace, name = connector.split("/", 1)
        self.url = f"{server.url}/{CONNECTORS_API}/namespaces/{namespace}/connectors/{name}/status"
        self.server = server
        self._open_client = open_client
        self._now = now
        self._unwritten: dict[str, Any] | None = None
        self._failing = False

    def __call__(self, totals: IngestSummary | None) -> None:
        if totals is not None:
            self._unwritten = status_patch(totals, self._now())
        if self._unwritten is None:
            return
        problem = self._write(self._unwritten)
        if problem is None:
            self._unwritten = None
            if self._failing:
                log.info("connector status written again")
            self._failing = False
            return
        # One warning per outage, not one per scan: the retries of a long one would flood the log.
        log.log(
            logging.DEBUG if self._failing else logging.WARNING,
            "could not write the connector's status; trying again after the next scan",
            extra=fields(error=problem),
        )
        self._failing = True

    def _write(self, patch: Mapping[str, Any]) -> str | None:
        """None once written, else what went wrong (never the token)."""
        return merge_patch(self.server, self.url, patch, open_client=self._open_client)


def reporter(env: Mapping[str, str], connector: str) -> StatusReporter | None:
    """The watcher's reporter, or None when this pod has no API access to write its status with."""
    server = ApiServer.in_cluster(env)
    if server is None:
        log.info("no ServiceAccount token: the figures of each load are not written into the status")
        return None
    return StatusReporter(connector, server)
