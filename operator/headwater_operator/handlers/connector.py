"""Connector handlers: apply the children, then keep the status in step with what they report."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import kopf

from .. import kube, metrics
from ..api.common import GROUP, VERSION
from ..api.connector import ConnectorSpec
from ..builders import connector as build
from ..builders.common import RBAC_API_VERSION, Owner
from ..conditions import Outcome
from ..config import OperatorConfig
from ..status import connector as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import trimmed

PLURAL = "connectors"
KIND = "Connector"
KIND_HANDLERS = common.OwnerKind(KIND, PLURAL)
CONFIG = OperatorConfig.from_env()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
async def reconcile(body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
    indexes = ChildIndexes.of(kwargs)
    owner = Owner.of(KIND, body)
    parsed = parsed_spec(ConnectorSpec, body)
    try:
        children = build.children(owner, parsed, CONFIG)
    except build.InvalidSpecError as invalid:
        # Nothing can run as asked: say so, and stop what an earlier spec started.
        await retire_stale_children(owner, indexes, logger, keep=())
        stalled = Outcome.stalled("Stalled", invalid.reason, invalid.message)
        await common.refresh(PLURAL, trimmed(body), lambda _: (stalled, {}))
        logger.info("Connector %s/%s cannot run: %s", owner.namespace, owner.name, invalid.message)
        return
    known = KIND_HANDLERS.owned(indexes, owner)
    applied = [await common.ensure(child, known) for child in children]
    await retire_stale_children(owner, indexes, logger, keep={child["kind"] for child in children})
    await common.refresh(
        PLURAL,
        trimmed(body),
        lambda current: derive(current, KIND_HANDLERS.owned(indexes, owner).with_applied(applied)),
    )
    logger.info("reconciled Connector %s/%s: %d children applied", owner.namespace, owner.name, len(children))


async def retire_stale_children(
    owner: Owner, indexes: ChildIndexes, logger: Logger, *, keep: Collection[str]
) -> None:
    """Delete the children of the kinds not in `keep`: a watcher replaces the CronJob and the other way
    round, its status-writer Role and RoleBinding go when it stops watching, an invalid spec keeps none."""
    workload, writer = build.workload_name(owner), build.status_writer_name(owner)
    children = KIND_HANDLERS.owned(indexes, owner)
    for api_version, kind, name, present in (
        ("batch/v1", "CronJob", workload, children.cronjobs),
        ("apps/v1", "Deployment", workload, children.deployments),
        (RBAC_API_VERSION, "RoleBinding", writer, children.rolebindings),
        (RBAC_API_VERSION, "Role", writer, children.roles),
    ):
        if (
            kind not in keep
            and present
            and await kube.delete_if_present(api_version, kind, owner.namespace, name)
        ):
            logger.info("deleted %s %s: the connector no longer runs that way", kind, name)


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(ConnectorSpec, body)
    watching = build.watches(spec)
    found = children.deployments if watching else children.cronjobs
    workload = next((w for w in found if w["metadata"]["name"] == build.workload_name(owner)), None)
    jobs = [] if watching else children.jobs
    return observe.derive(owner, spec, workload, jobs, children.pods)


KIND_HANDLERS.watch_children(derive)
