"""ExportJob handlers: apply the children, then keep the status in step with what they report."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from .. import conditions, kube, metrics
from ..api.common import GROUP, VERSION
from ..api.exportjob import ExportJobSpec
from ..builders import exportjob as build
from ..builders.common import Owner
from ..config import OperatorConfig
from ..naming import label_key
from ..status import exportjob as observe

PLURAL = "exportjobs"
KIND = "ExportJob"
OWNER_LABEL = label_key(KIND)
CONFIG = OperatorConfig.from_env()
Logger = logging.Logger | logging.LoggerAdapter[Any]


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(KIND, meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation") or 1))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
def reconcile(body: kopf.Body, spec: kopf.Spec, logger: Logger, **_: Any) -> None:
    owner = owner_of(body)
    parsed = ExportJobSpec.model_validate(dict(spec))
    children = build.children(owner, parsed, CONFIG)
    for child in children:
        kube.apply(child)
    retire_stale_children(owner, parsed, logger)
    refresh(owner.namespace, owner.name)
    logger.info("reconciled ExportJob %s/%s: %d children applied", owner.namespace, owner.name, len(children))


def retire_stale_children(owner: Owner, spec: ExportJobSpec, logger: Logger) -> None:
    """Stop what an earlier spec started: its unfinished Job, or a CronJob that is no longer wanted."""
    if spec.schedule is None and kube.delete_if_present(
        "batch/v1", "CronJob", owner.namespace, build.cronjob_name(owner)
    ):
        logger.info("deleted CronJob %s: the export no longer has a schedule", build.cronjob_name(owner))
    current = build.job_name(owner) if spec.schedule is None else None
    for job in kube.list_objects("batch/v1", "Job", owner.namespace, f"{OWNER_LABEL}={owner.name}"):
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
            kube.delete_if_present("batch/v1", "Job", owner.namespace, name)
            logger.info("deleted unfinished Job %s of an earlier spec", name)


def refresh(namespace: str, name: str) -> None:
    """Read the ExportJob and its children, and patch its status if what they say has changed."""
    body = kube.get_custom(GROUP, VERSION, PLURAL, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    owner = owner_of(body)
    spec = ExportJobSpec.model_validate(body["spec"])
    selector = f"{OWNER_LABEL}={name}"
    jobs = kube.list_objects("batch/v1", "Job", namespace, selector)
    pods = kube.list_objects("v1", "Pod", namespace, selector)
    cronjob = None
    if spec.schedule is not None:
        found = kube.list_objects("batch/v1", "CronJob", namespace, selector)
        cronjob = next((c for c in found if c["metadata"]["name"] == build.cronjob_name(owner)), None)
    outcome, extra = observe.derive(owner, spec, cronjob, jobs, pods)
    previous = body.get("status") or {}
    patch = conditions.status_patch(previous, outcome, owner.generation, extra)
    if all(previous.get(key) == value for key, value in patch.items()):
        return
    kube.patch_status(GROUP, VERSION, PLURAL, namespace, name, patch)
    if conditions.transitioned(previous, outcome):
        event_type = "Warning" if outcome.state == "stalled" else "Normal"
        kopf.event(
            kopf.Body(cast(kopf.RawBody, body)),
            type=event_type,
            reason=outcome.reason,
            message=outcome.message or outcome.phase,
        )


@kopf.on.event("batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("batch", "v1", "cronjobs", labels={OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={OWNER_LABEL: kopf.PRESENT})
def child_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    if namespace:
        refresh(namespace, labels[OWNER_LABEL])
