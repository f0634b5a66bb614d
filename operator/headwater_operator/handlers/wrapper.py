"""Wrapper handlers: build the children the spec and the status call for, and keep the status in step.

A Wrapper moves in stages (generate the code, then run it), and what the next stage needs (the code's
digest, a regeneration) arrives in its status. So besides the spec's create/update/resume, every change of
the Wrapper itself (its status included) converges its children: the Jobs, CronJob or Deployment the
current stage needs are created when they are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from .. import kube, metrics
from ..api.common import GROUP, VERSION
from ..api.wrapper import WrapperSpec
from ..builders import wrapper as build
from ..builders.common import RBAC_API_VERSION, Owner
from ..conditions import Outcome
from ..config import OperatorConfig
from ..status import wrapper as observe
from . import common
from .children import ChildIndexes, OwnedChildren
from .common import Logger, parsed_spec
from .owners import WRITTEN, trimmed

PLURAL = "wrappers"
KIND = "Wrapper"
KIND_HANDLERS = common.OwnerKind(KIND, PLURAL)
CONFIG = OperatorConfig.from_env()
# Children whose presence the index tells: the stages' workloads and the continuous collector's grant.
INDEXED = {
    "Job": "jobs",
    "CronJob": "cronjobs",
    "Deployment": "deployments",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@metrics.measured(KIND)
async def reconcile(body: kopf.Body, logger: Logger, **kwargs: Any) -> None:
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=True)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow(body: kopf.Body, type: str | None, logger: Logger, **kwargs: Any) -> None:
    """A new stage shows in the status: start what it needs."""
    if type != "MODIFIED" or body.get("metadata", {}).get("deletionTimestamp"):
        return
    await converge(body, ChildIndexes.of(kwargs), logger, apply_all=False)


def _present(child: Mapping[str, Any], known: OwnedChildren) -> bool:
    """Whether the child exists as built: a CronJob or Deployment built for other code is not."""
    field = INDEXED.get(str(child["kind"]))
    if field is None:
        return False
    name = child["metadata"]["name"]
    return any(
        item["metadata"]["name"] == name and build.up_to_date(child, item) for item in getattr(known, field)
    )


async def converge(
    body: Mapping[str, Any], indexes: ChildIndexes, logger: Logger, *, apply_all: bool
) -> None:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(WrapperSpec, body)
    # Two handlers of one Wrapper at once (its update and its event) would both create the same Job.
    async with common.refresh_lock(f"{PLURAL}/children", owner.namespace, owner.name):
        current = WRITTEN.freshest(trimmed(body))
        status = observe.parse_status(current.get("status"))
        try:
            children = build.children(owner, spec, CONFIG, status)
        except build.InvalidSpecError as invalid:
            await retire_stale_children(owner, spec, indexes, logger, invalid=True)
            stalled = Outcome.stalled("Stalled", invalid.reason, invalid.message)
            await common.refresh(PLURAL, current, lambda _: (stalled, {}))
            return
        known = KIND_HANDLERS.owned(indexes, owner)
        missing = [child for child in children if child["kind"] in INDEXED and not _present(child, known)]
        # A stage's workload needs what comes before it (its ServiceAccount, the code ConfigMap, its
        # grants), which the spec's handler may not have applied yet: with a workload missing, all of it.
        wanted = children if apply_all or missing else []
        applied = [await common.ensure(child, known) for child in wanted]
        await retire_stale_children(owner, spec, indexes, logger)
    await common.refresh(
        PLURAL,
        current,
        lambda fresh: derive(fresh, KIND_HANDLERS.owned(indexes, owner).with_applied(applied)),
    )
    if applied:
        logger.info("Wrapper %s/%s: %d children applied", owner.namespace, owner.name, len(applied))


async def retire_stale_children(
    owner: Owner, spec: WrapperSpec, indexes: ChildIndexes, logger: Logger, *, invalid: bool = False
) -> None:
    """Delete the collectors of another mode: a CronJob once the mode is no longer `schedule`, the
    Deployment and its status grant once it is no longer `continuous`; all of them for an invalid spec."""
    mode = None if invalid else spec.effective_mode
    workload, writer = build.workload_name(owner), build.status_writer_name(owner)
    children = KIND_HANDLERS.owned(indexes, owner)
    for api_version, kind, name, present, keep in (
        ("batch/v1", "CronJob", workload, children.cronjobs, mode == "schedule"),
        ("apps/v1", "Deployment", workload, children.deployments, mode == "continuous"),
        (RBAC_API_VERSION, "RoleBinding", writer, children.rolebindings, mode == "continuous"),
        (RBAC_API_VERSION, "Role", writer, children.roles, mode == "continuous"),
    ):
        if not keep and present and await kube.delete_if_present(api_version, kind, owner.namespace, name):
            logger.info("deleted %s %s: the wrapper no longer runs that way", kind, name)


def derive(body: Mapping[str, Any], children: OwnedChildren) -> tuple[Outcome, dict[str, Any]]:
    owner = Owner.of(KIND, body)
    spec = parsed_spec(WrapperSpec, body)
    return observe.derive(
        owner, spec, body.get("status"), children.jobs, children.cronjobs, children.deployments, children.pods
    )


KIND_HANDLERS.watch_children(derive)
