"""Package handlers: start the Jobs the status calls for, and keep the status in step with them.

A Package moves in stages (setup, the processors, finalise), and what the next one needs (setup done, a
processor's slot free, every processor done) arrives in its status. So besides the spec's
create/update/resume, every change of the Package itself converges its children, as a ComputeTask's
callback and a Wrapper's stages do: the Jobs the status now calls for are created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from .. import kube, metrics
from ..api.common import GROUP, VERSION
from ..api.package import PackageSpec
from ..builders import package as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..config import OperatorConfig
from ..jobs import name_of
from ..status import package as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import WRITTEN, trimmed

PLURAL = build.PLURAL
KIND = "Package"
KIND_HANDLERS = common.OwnerKind(KIND, PLURAL)
CONFIG = OperatorConfig.from_env()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
async def reconcile(body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=True)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow(body: kopf.Body, type: str | None, logger: Logger, **kwargs: Any) -> None:
    """The status calls for the next stage's Jobs: start them."""
    if type != "MODIFIED" or body.get("metadata", {}).get("deletionTimestamp"):
        return
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=False)


async def converge(
    body: Mapping[str, Any], indexes: ChildIndexes, logger: Logger, *, apply_all: bool
) -> None:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(PackageSpec, body)
    # Two handlers of one Package at once (its update and its event) would both start the same Jobs.
    async with common.refresh_lock(f"{PLURAL}/children", owner.namespace, owner.name):
        current = WRITTEN.freshest(trimmed(body))
        status = observe.parse_status(current.get("status"))
        children = build.children(owner, spec, CONFIG, status)
        known = KIND_HANDLERS.owned(indexes, owner)
        jobs = {name_of(job) for job in known.jobs}
        missing = [c for c in children if c["kind"] == "Job" and c["metadata"]["name"] not in jobs]
        # A Job needs its ServiceAccount, grants and boundary first, which may not be applied yet: with a
        # Job missing, everything is applied (each apply of what exists changes nothing).
        wanted = children if apply_all or missing else []
        applied = [await common.ensure(child, known) for child in wanted]
        if apply_all:
            await retire_stale_jobs(owner, spec, known, logger)
    await common.refresh(
        PLURAL,
        current,
        lambda fresh: derive(fresh, KIND_HANDLERS.owned(indexes, owner).with_applied(applied)),
    )
    for job in missing:
        logger.info("Package %s/%s: started Job %s", owner.namespace, owner.name, job["metadata"]["name"])


async def retire_stale_jobs(owner: Owner, spec: PackageSpec, known: OwnedChildren, logger: Logger) -> None:
    """Stop the unfinished Jobs of an earlier generation: the new one runs every stage again, and a
    processor still clipping for the old spec would only hold its lock."""
    current = build.job_names(owner, spec)
    for job in known.jobs:
        name = name_of(job)
        ended = any(
            condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True"
            for condition in (job.get("status") or {}).get("conditions") or ()
        )
        if name not in current and not ended:
            await kube.delete_if_present("batch/v1", "Job", owner.namespace, name)
            logger.info("deleted unfinished Job %s of an earlier spec", name)


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(PackageSpec, body)
    return observe.derive(owner, spec, body.get("status"), children.jobs, children.pods)


KIND_HANDLERS.watch_children(derive, (("batch", "v1", "jobs"), ("", "v1", "pods")))
