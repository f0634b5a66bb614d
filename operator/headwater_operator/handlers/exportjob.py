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
from ..naming import label_key
from ..status import exportjob as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import trimmed

PLURAL = "exportjobs"
KIND = "ExportJob"
OWNER_LABEL = label_key(KIND)
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
    known = owned(indexes, owner)
    applied = [await common.ensure(child, known) for child in children]
    await retire_stale_children(owner, parsed, indexes, logger)
    await common.refresh(
        PLURAL, trimmed(body), lambda current: derive(current, owned(indexes, owner).with_applied(applied))
    )
    logger.info("reconciled ExportJob %s/%s: %d children applied", owner.namespace, owner.name, len(children))


async def retire_stale_children(
    owner: Owner, spec: ExportJobSpec, indexes: ChildIndexes, logger: Logger
) -> None:
    """Stop what an earlier spec started: its unfinished Job, or a CronJob that is no longer wanted."""
    children = owned(indexes, owner)
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


def owned(indexes: ChildIndexes, owner: Owner) -> OwnedChildren:
    return indexes.owned(owner.namespace, OWNER_LABEL, owner.name, owner.uid)


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(ExportJobSpec, body)
    cronjob = next((c for c in children.cronjobs if c["metadata"]["name"] == build.cronjob_name(owner)), None)
    return observe.derive(owner, spec, cronjob, children.jobs, children.pods)


@kopf.on.event("batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("batch", "v1", "cronjobs", labels={OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={OWNER_LABEL: kopf.PRESENT})
async def child_changed(body: kopf.Body, labels: kopf.Labels, namespace: str | None, **kwargs: Any) -> None:
    await common.refresh_on_child_event(PLURAL, KIND, body, namespace, labels[OWNER_LABEL], kwargs, derive)
