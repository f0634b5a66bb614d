"""In-memory indexes of the children the operator manages, kept current by kopf's watches.

A status refresh reads Jobs, CronJobs, Deployments and pods from here instead of listing them from the API
server on every event: the same information an informer cache gives a Go controller. Roles and
RoleBindings are indexed only so that a reconcile knows which ones there are to retire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import kopf

from ..naming import GROUP
from .owners import newer

MANAGED = {"app.kubernetes.io/managed-by": "headwater-operator"}
# (namespace, owner label key, owner name): the owner label is `headwater.dev/<kind>=<name>`.
ChildKey = tuple[str, str, str]
Children = kopf.Index[ChildKey, dict[str, Any]]


async def _by_owner(namespace: str | None, body: kopf.Body, **_: Any) -> dict[ChildKey, dict[str, Any]]:
    """A child under each `headwater.dev/<kind>` label it carries: the owner's kind and name.

    Asynchronous only so that kopf calls it on its event loop: a plain function would be sent through the
    thread pool and back, for microseconds of work, at every event of every child."""
    if not namespace:
        return {}
    # One shallow copy of the whole body, read as plain dicts: this runs for every event of every child,
    # and kopf's views resolve each key they are asked for again.
    child = dict(body)
    labels: Mapping[str, str] = child["metadata"].get("labels") or {}
    return {(namespace, key, value): child for key, value in labels.items() if key.startswith(f"{GROUP}/")}


# group, version and plural of every kind of child; each gets an index named `headwater_<plural>`.
CHILD_RESOURCES = (
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)


for _group, _version, _plural in CHILD_RESOURCES:
    kopf.index(_group, _version, _plural, labels=MANAGED, id=f"headwater_{_plural}")(_by_owner)


@dataclass(frozen=True)
class ChildIndexes:
    """The indexes kopf hands to every handler, by the names given above."""

    jobs: Children
    cronjobs: Children
    deployments: Children
    pods: Children
    roles: Children
    rolebindings: Children

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> ChildIndexes:
        return cls(
            kwargs["headwater_jobs"],
            kwargs["headwater_cronjobs"],
            kwargs["headwater_deployments"],
            kwargs["headwater_pods"],
            kwargs["headwater_roles"],
            kwargs["headwater_rolebindings"],
        )

    @staticmethod
    def _of(index: Children, key: ChildKey) -> list[dict[str, Any]]:
        return list(index.get(key, []))

    def owned(self, namespace: str, label: str, name: str, uid: str) -> OwnedChildren:
        """The children of the owner `name` with this `uid`: those an earlier owner of the same name left
        (the garbage collector has yet to delete them) are not its."""
        key = (namespace, label, name)

        def of(index: Children) -> list[dict[str, Any]]:
            return [child for child in self._of(index, key) if not _of_another_owner(child, uid)]

        return OwnedChildren(
            jobs=of(self.jobs),
            cronjobs=of(self.cronjobs),
            deployments=of(self.deployments),
            pods=of(self.pods),
            roles=of(self.roles),
            rolebindings=of(self.rolebindings),
        )


def _of_another_owner(child: Mapping[str, Any], uid: str) -> bool:
    """Whether the child belongs to a Headwater resource other than the one with this uid. A child of a
    child (a CronJob's Job, a Job's pod) refers to its direct owner only and is not judged here."""
    return any(
        str(ref.get("apiVersion", "")).startswith(f"{GROUP}/") and ref.get("uid") != uid
        for ref in (child.get("metadata") or {}).get("ownerReferences") or ()
    )


@dataclass(frozen=True)
class OwnedChildren:
    jobs: list[dict[str, Any]]
    cronjobs: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    # Only a watching Connector has these: empty unless given.
    roles: list[dict[str, Any]] = field(default_factory=list)
    rolebindings: list[dict[str, Any]] = field(default_factory=list)

    def with_applied(self, applied: Sequence[Mapping[str, Any]]) -> OwnedChildren:
        """These children updated with objects just applied, which the watch may not have delivered yet:
        a reconcile can then report on its Job at once instead of waiting for the Job's first event."""
        fields = {"Job": "jobs", "CronJob": "cronjobs", "Deployment": "deployments"}
        updated = self
        for manifest in applied:
            field = fields.get(str(manifest.get("kind")))
            if field is None:
                continue
            name = manifest["metadata"]["name"]
            known: list[dict[str, Any]] = getattr(updated, field)
            same = [child for child in known if child["metadata"]["name"] == name]
            fresh = dict(newer(same[0], manifest)) if same else dict(manifest)
            others = [child for child in known if child["metadata"]["name"] != name]
            updated = replace(updated, **{field: [*others, fresh]})
        return updated
