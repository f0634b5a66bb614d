"""The freshest view of each resource the operator reconciles, without reading it from the API server.

A refresh needs the owner's spec and its current status. kopf's watch keeps an index of every owner; the
only thing it can lag behind is the status this process has just written, whose watch event may still be
on its way. `WrittenStatuses` remembers those writes until the watch has caught up, so that a refresh
compares against what is really stored and posts each transition's Event once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..bounded import BoundedMap

Owners = kopf.Index[tuple[str, str], dict[str, Any]]
# Of the metadata, a refresh needs the identity (Owner.of, Events) and the resourceVersion (freshness).
_KEPT_METADATA = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp")


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a refresh reads of an owner: identity, spec and status (not managedFields, not annotations)."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {key: meta[key] for key in _KEPT_METADATA if key in meta},
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


async def _by_name(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Any]:
    # Asynchronous so that kopf runs it on its event loop, not through the thread pool (see `_by_owner`).
    if not namespace or not name:
        return {}
    return {(namespace, name): trimmed(body)}


# The kinds the operator reconciles; each gets an index named `headwater_<plural>`.
for _plural in ("exportjobs", "connectors", "wrappers", "computetasks", "packages"):
    kopf.index(GROUP, VERSION, _plural, id=f"headwater_{_plural}")(_by_name)


def watched(index: Owners, namespace: str, name: str) -> dict[str, Any] | None:
    """The owner as the watch last delivered it; None once it is gone."""
    found = list(index.get((namespace, name), []))
    return found[0] if found else None


def resource_version(body: Mapping[str, Any]) -> int | None:
    """etcd's revision behind a resourceVersion, to tell the newer of two copies of one object apart."""
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def newer(first: Mapping[str, Any], second: Mapping[str, Any]) -> Mapping[str, Any]:
    """The more recent of two copies of one object; the first when they cannot be compared."""
    one, other = resource_version(first), resource_version(second)
    if one is None or other is None:
        return first
    return second if other > one else first


class WrittenStatuses:
    """The last status this process wrote to each resource, bounded: old entries are long overtaken by
    the watch, so forgetting them loses nothing."""

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: BoundedMap[str, dict[str, Any]] = BoundedMap(capacity)

    def record(self, written: Mapping[str, Any]) -> None:
        """Remember an object as the API server returned it after a status write."""
        entry = trimmed(written)
        if entry["metadata"].get("uid"):
            self._entries.put(entry["metadata"]["uid"], entry)

    def freshest(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """`body`, or the object as this process last wrote it if the watch has not delivered that yet."""
        uid = (body.get("metadata") or {}).get("uid")
        written = self._entries.get(uid) if uid else None
        if written is None or newer(body, written) is body:
            return body
        # The whole object as written, spec included: a spec changed since the watch's copy comes with its
        # generation, never the old spec with the new generation.
        return written


WRITTEN = WrittenStatuses()
