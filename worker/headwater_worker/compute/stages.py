"""The protocol states a task moves through, timed, and written into its ComputeTask as they change.

The worker merge-patches `status.status` and `status.stages` of its own ComputeTask through the status
subresource, as its ServiceAccount (the operator grants it `patch` on that one ComputeTask's status and
nothing else). The phase and conditions stay the operator's. A write that fails is logged and the task goes
on: the termination message reports the same stages at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..kubeapi import ApiServer, merge_patch
from ..logs import fields
from .config import Stage
from .protocol import TaskStatus

COMPUTETASKS_API = "apis/headwater.dev/v1alpha1"

log = logging.getLogger(__name__)

Report = Callable[[TaskStatus, list[Stage]], None]


class StageClock:
    """Enter each state in turn; the one before it ends then."""

    def __init__(self, report: Report | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._report = report
        self._now = now
        self.stages: list[Stage] = []

    @property
    def current(self) -> TaskStatus | None:
        return self.stages[-1].status if self.stages else None

    def enter(self, status: TaskStatus) -> None:
        if status == self.current:
            return
        moment = self._now()
        if self.stages:
            last = self.stages[-1]
            elapsed = max(0.0, (moment - last.started_at).total_seconds())
            self.stages[-1] = last.model_copy(update={"duration_seconds": round(elapsed, 3)})
        self.stages.append(Stage(status=status, started_at=moment))
        if self._report is not None:
            self._report(status, list(self.stages))


def stage_patch(status: TaskStatus, stages: list[Stage]) -> dict[str, Any]:
    """Only the worker's fields, so that neither side's writes undo the other's."""
    return {
        "status": {
            "status": status,
            "stages": [stage.model_dump(mode="json", by_alias=True, exclude_none=True) for stage in stages],
        }
    }


class StatusWriter:
    """Writes each new state into the ComputeTask `namespace/name`."""

    def __init__(self, compute_task: str, server: ApiServer) -> None:
        namespace, name = compute_task.split("/", 1)
        self.url = f"{server.url}/{COMPUTETASKS_API}/namespaces/{namespace}/computetasks/{name}/status"
        self.server = server

    def __call__(self, status: TaskStatus, stages: list[Stage]) -> None:
        problem = merge_patch(
            self.server, self.url, stage_patch(status, stages), field_manager="headwater-compute"
        )
        if problem is not None:
            log.warning("could not write the task's state", extra=fields(status=status, error=problem))


def status_writer(env: Mapping[str, str], compute_task: str | None) -> StatusWriter | None:
    """The writer, or None outside a pod with API access (the stages then arrive with the result)."""
    server = ApiServer.in_cluster(env)
    if server is None or compute_task is None:
        return None
    return StatusWriter(compute_task, server)
