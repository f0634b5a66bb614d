"""Jobs and their pods as the API returns them, for the tests of status derivation."""

from __future__ import annotations

import json
from typing import Any


def job(
    name: str,
    state: str,
    message: dict[str, Any] | None = None,
    *,
    failed: int = 0,
    created: str = "2025-01-02T00:00:00Z",
    cronjob: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Job in `state` (pending, running, succeeded, failed) and its pod with `message` as its report."""
    conditions = {
        "succeeded": [{"type": "Complete", "status": "True", "lastTransitionTime": created}],
        "failed": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": created,
            }
        ],
    }
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if cronjob is not None:
        metadata["ownerReferences"] = [{"kind": "CronJob", "name": cronjob}]
    status: dict[str, Any] = {"conditions": conditions.get(state, []), "startTime": created, "failed": failed}
    if state == "succeeded":
        status["completionTime"] = created
    phase = {"succeeded": "Succeeded", "failed": "Failed", "running": "Running"}.get(state, "Pending")
    if state == "running" and failed and message:
        phase = "Failed"  # the failed attempt's pod, whose report says why; the retry's pod is pending
    terminated = {"terminated": {"message": json.dumps(message)}} if message else {}
    pod = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": name}, "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "worker", "state": terminated}]},
    }
    return {"metadata": metadata, "status": status}, pod
