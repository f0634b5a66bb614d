"""ComputeTask handlers: start the task's Job, then the callback Job its status may call for, and keep
the status in step with both.

The spec never changes, but the status does: once the task ended without its pod delivering the
TaskUpdate, the status names a callback Job. So besides create and resume, every change of the ComputeTask
itself converges its children, as a Wrapper's stages do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from .. import metrics
from ..api.common import GROUP, VERSION
from ..api.computetask import ComputeTaskSpec
from ..builders import computetask as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..config import OperatorConfig
from ..status import computetask as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import WRITTEN, trimmed

PLURAL = build.PLURAL
KIND = "ComputeTask"
KIND_HANDLERS = common.OwnerKind(KIND, PLURAL)
CONFIG = OperatorConfig.from_env()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
async def reconcile(body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=True)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow(body: kopf.Body, type: str | None, logger: Logger, **kwargs: Any) -> None:
    """The status names a callback Job: start it."""
    if type != "MODIFIED" or body.get("metadata", {}).get("deletionTimestamp"):
        return
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=False)


async def converge(
    body: Mapping[str, Any], indexes: ChildIndexes, logger: Logger, *, apply_all: bool
) -> None:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(ComputeTaskSpec, body)
    async with common.refresh_lock(f"{PLURAL}/children", owner.namespace, owner.name):
        current = WRITTEN.freshest(trimmed(body))
        status = observe.parse_status(current.get("status"))
        children = build.children(owner, spec, CONFIG, status)
        known = KIND_HANDLERS.owned(indexes, owner)
        jobs = {job["metadata"]["name"] for job in known.jobs}
        missing = [c for c in children if c["kind"] == "Job" and c["metadata"]["name"] not in jobs]
        # A Job needs its ServiceAccount and grants first, which may not be applied yet: with a Job
        # missing, everything is applied (each apply of what exists changes nothing).
        wanted = children if apply_all or missing else []
        applied = [await common.ensure(child, known) for child in wanted]
    await common.refresh(
        PLURAL,
        current,
        lambda fresh: derive(fresh, KIND_HANDLERS.owned(indexes, owner).with_applied(applied)),
    )
    if missing:
        logger.info(
            "ComputeTask %s/%s: started %s", owner.namespace, owner.name, missing[-1]["metadata"]["name"]
        )


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(ComputeTaskSpec, body)
    return observe.derive(owner, spec, body.get("status"), children.jobs, children.pods)


KIND_HANDLERS.watch_children(derive, (("batch", "v1", "jobs"), ("", "v1", "pods")))
