"""What every kind's handlers share: writing status once per change, and telling news from echoes."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import kopf
from pydantic import BaseModel

from .. import conditions, kube
from ..api.common import GROUP, VERSION
from ..bounded import BoundedMap
from ..builders.common import Owner
from ..conditions import Outcome
from ..naming import label_key
from .children import ChildIndexes, OwnedChildren
from .owners import WRITTEN, watched

Logger = logging.Logger | logging.LoggerAdapter[Any]

# A refresh reads the status, derives the new one and writes it, waiting for the API server in between. Two
# refreshes of one resource at once (its handler and an event of its Job, say) would both read the old
# status and both write, posting the same Event twice. One lock per resource serialises them; a lock lives
# only as long as someone holds or awaits it.
_REFRESH_LOCKS: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def refresh_lock(plural: str, namespace: str, name: str) -> asyncio.Lock:
    key = (plural, namespace, name)
    lock = _REFRESH_LOCKS.get(key)
    if lock is None:
        lock = _REFRESH_LOCKS[key] = asyncio.Lock()
    return lock


Derive = Callable[[Mapping[str, Any]], tuple[Outcome, Mapping[str, Any]]]
SpecModel = TypeVar("SpecModel", bound=BaseModel)

# A spec never changes without its generation changing: each is validated once, not at every refresh.
_PARSED_SPECS: BoundedMap[tuple[str, int], BaseModel] = BoundedMap(4096)


def parsed_spec(model: type[SpecModel], body: Mapping[str, Any]) -> SpecModel:
    """The resource's spec as its model, validated once per generation."""
    meta = body["metadata"]
    key = (str(meta["uid"]), int(meta.get("generation") or 1))
    known = _PARSED_SPECS.get(key)
    if isinstance(known, model):
        return known
    parsed = model.model_validate(dict(body["spec"]))
    _PARSED_SPECS.put(key, parsed)
    return parsed


# Children created once and then left as they are. A Job's pod template cannot change once the Job exists
# (one Job per spec generation), so an operator upgrade that builds it differently does not touch a Job that
# exists; a ServiceAccount holds nothing but its owner's identity, which never changes.
CREATED_ONCE = ("Job", "ServiceAccount")


async def ensure(child: Mapping[str, Any], known: OwnedChildren) -> dict[str, Any]:
    """Make a child exist as built; the object as stored.

    Every child but those created once is server-side applied, which converges it to the spec and changes
    nothing when it already matches.
    """
    kind = child["kind"]
    if kind not in CREATED_ONCE:
        return await kube.apply(child)
    name = child["metadata"]["name"]
    if kind == "Job":
        # Jobs are indexed: one that exists needs no request at all.
        existing = next((job for job in known.jobs if job["metadata"]["name"] == name), None)
        if existing is not None:
            return dict(existing)
    created = await kube.create(child)
    owners = {ref.get("uid") for ref in created["metadata"].get("ownerReferences") or ()}
    if not owners & {ref["uid"] for ref in child["metadata"]["ownerReferences"]}:
        # A resource deleted and created again under the same name: its predecessor's children keep their
        # names until the garbage collector has deleted them.
        raise kopf.TemporaryError(
            f"{kind} {name} of an earlier resource of this name is still being deleted", delay=5
        )
    return created


async def refresh(plural: str, body: Mapping[str, Any], derive: Derive) -> None:
    """Derive the resource's status from what its children say, and write it if it changed.

    `body` is the resource as a handler or the owners' index last saw it; the status this process wrote
    since is taken into account.
    """
    meta = body["metadata"]
    async with refresh_lock(plural, meta["namespace"], meta["name"]):
        current = WRITTEN.freshest(body)
        change = status_change(current, derive)
        if change is not None:
            await write_status(plural, current, *change)


def status_change(body: Mapping[str, Any], derive: Derive) -> tuple[Outcome, dict[str, Any]] | None:
    """The outcome derived for the resource and the status patch it takes; None when its status says so
    already (or it is being deleted)."""
    if body["metadata"].get("deletionTimestamp"):
        return None
    outcome, extra = derive(body)
    previous = body.get("status") or {}
    patch = conditions.status_patch(previous, outcome, int(body["metadata"].get("generation") or 1), extra)
    if all(previous.get(key) == value for key, value in patch.items()):
        return None
    return outcome, patch


DeriveFromChildren = Callable[[Mapping[str, Any], OwnedChildren], tuple[Outcome, Mapping[str, Any]]]

# What a kind's workloads are made of, as (group, version, plural): their events can change its status.
WORKLOADS = (
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
)


async def refresh_on_child_event(
    plural: str,
    kind: str,
    child: Mapping[str, Any],
    namespace: str | None,
    owner: str,
    kwargs: Mapping[str, Any],
    derive: DeriveFromChildren,
) -> None:
    """Refresh the owner of a child that changed, if the change can matter. `kwargs` are the handler's:
    kopf's indexes of owners and children are among them."""
    if not namespace or not worth_a_refresh(child):
        return
    current = watched(kwargs[f"headwater_{plural}"], namespace, owner)
    if current is None:
        return
    indexes = ChildIndexes.of(kwargs)
    label = label_key(kind)

    def derive_owned(body: Mapping[str, Any]) -> tuple[Outcome, Mapping[str, Any]]:
        return derive(body, indexes.owned(namespace, label, owner, body["metadata"]["uid"]))

    await refresh(plural, current, derive_owned)


async def write_status(
    plural: str, body: Mapping[str, Any], outcome: Outcome, patch: Mapping[str, Any]
) -> None:
    """Merge-patch the status, and post an Event when the phase or reason is news."""
    meta = body["metadata"]
    WRITTEN.record(await kube.patch_status(GROUP, VERSION, plural, meta["namespace"], meta["name"], patch))
    if conditions.transitioned(body.get("status"), outcome):
        kopf.event(
            kopf.Body(cast(kopf.RawBody, body)),
            type="Warning" if outcome.state == "stalled" else "Normal",
            reason=outcome.reason,
            message=outcome.message or outcome.phase,
        )


def worth_a_refresh(body: Mapping[str, Any]) -> bool:
    """Whether a child's event can change its owner's status.

    A Job or pod that has no status yet is the operator's own work coming back; its controller (or the
    node) reports on it moments later. A CronJob or Deployment is different: its mere appearance moves the
    owner from `Creating` to `Scheduled`, and a CronJob has no status until its first run.
    """
    if body.get("kind") in ("CronJob", "Deployment"):
        return True
    status = {key: value for key, value in (body.get("status") or {}).items() if key != "qosClass"}
    return status not in ({}, {"phase": "Pending"})


@dataclass(frozen=True)
class OwnerKind:
    """One kind the operator reconciles, and what its handlers share: finding its children by their owner
    label, and refreshing its status when one of them changes."""

    kind: str
    plural: str

    @property
    def label(self) -> str:
        return label_key(self.kind)

    def owned(self, indexes: ChildIndexes, owner: Owner) -> OwnedChildren:
        return indexes.owned(owner.namespace, self.label, owner.name, owner.uid)

    def watch_children(
        self, derive: DeriveFromChildren, resources: Sequence[tuple[str, str, str]] = WORKLOADS
    ) -> None:
        """Refresh the owner's status from `derive` whenever one of its children of these resources
        (group, version, plural) changes."""

        async def child_changed(
            body: kopf.Body, labels: kopf.Labels, namespace: str | None, **kwargs: Any
        ) -> None:
            await refresh_on_child_event(
                self.plural, self.kind, body, namespace, labels[self.label], kwargs, derive
            )

        for group, version, plural in resources:
            kopf.on.event(
                group, version, plural, labels={self.label: kopf.PRESENT}, id=f"{self.plural}-{plural}"
            )(child_changed)
