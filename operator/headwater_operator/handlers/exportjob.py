"""ExportJob handlers: apply the children, then keep the status in step with what they report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from .. import kube, metrics
from ..api.common import GROUP, VERSION
from ..api.exportjob import ExportJobSpec
from ..builders import exportjob as build
from ..builders.common import Owner
from ..conditions import Outcome
from ..config import OperatorConfig
from ..status import exportjob as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import trimmed

PLURAL = "exportjobs"
KIND = "ExportJob"
KIND_HANDLERS = common.OwnerKind(KIND, PLURAL)
CONFIG = OperatorConfig.from_env()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
async def reconcile(body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
    indexes = ChildIndexes.of(kwargs)
    owner = Owner.of(KIND, body)
    parsed = parsed_spec(ExportJobSpec, body)
    children = build.children(owner, parsed, CONFIG)
    known = KIND_HANDLERS.owned(indexes, owner)
    applied = [await common.ensure(child, known) for child in children]
    await retire_stale_children(owner, parsed, indexes, logger)
    await common.refresh(
        PLURAL,
        trimmed(body),
        lambda current: derive(current, KIND_HANDLERS.owned(indexes, owner).with_applied(applied)),
    )
    logger.info("reconciled ExportJob %s/%s: %d children applied", owner.namespace, owner.name, len(children))


async def retire_stale_children(
    owner: Owner, spec: ExportJobSpec, indexes: ChildIndexes, logger: Logger
) -> None:
    """Stop what an earlier spec started: its unfinished Job, or a CronJob that is no longer wanted."""
    children = KIND_HANDLERS.owned(indexes, owner)
    if (
        spec.schedule is None
        and children.cronjobs
        and await kube.delete_if_present("batch/v1", "CronJob", owner.namespace, build.cronjob_name(owner))
    ):
        logger.info("deleted CronJob %s: the export no longer has a schedule", build.cronjob_name(owner))
    current = build.job_name(owner) if spec.schedule is None else None
    for job in children.jobs:
        name = job["metadata"]["name"]
        owned_by_cronjob = any(
            ref.get("kind") == "CronJob" for ref in job["metadata"].get("ownerReferences") or ()
        )
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or ()
        )
        if name != current and not owned_by_cronjob and not finished:
            # Two runs of one export would race to delete the same rows.
            await kube.delete_if_present("batch/v1", "Job", owner.namespace, name)
            logger.info("deleted unfinished Job %s of an earlier spec", name)


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(ExportJobSpec, body)
    cronjob = next((c for c in children.cronjobs if c["metadata"]["name"] == build.cronjob_name(owner)), None)
    return observe.derive(owner, spec, cronjob, children.jobs, children.pods)


KIND_HANDLERS.watch_children(
    derive, (("batch", "v1", "jobs"), ("batch", "v1", "cronjobs"), ("", "v1", "pods"))
)
