"""Kinds whose behaviour comes later say so in their status instead of being ignored."""

from __future__ import annotations

from typing import Any

import kopf

from .. import conditions, metrics
from ..conditions import Outcome

GROUP, VERSION = "headwater.dev", "v1alpha1"
PENDING_KINDS = ("packages",)

NOT_IMPLEMENTED = Outcome.stalled(
    "Stalled", "NotImplemented", "this version of the Headwater operator does not reconcile this kind yet"
)


def _register(plural: str) -> None:
    @kopf.on.resume(GROUP, VERSION, plural)
    @kopf.on.create(GROUP, VERSION, plural)
    @kopf.on.update(GROUP, VERSION, plural)
    @metrics.measured(plural)
    async def mark_not_implemented(
        body: kopf.Body, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
    ) -> None:
        patch.status.update(conditions.status_patch(status, NOT_IMPLEMENTED, int(meta.get("generation", 1))))
        if conditions.transitioned(status, NOT_IMPLEMENTED):
            kopf.warn(body, reason=NOT_IMPLEMENTED.reason, message=NOT_IMPLEMENTED.message)


for _plural in PENDING_KINDS:
    _register(_plural)
