"""Where kopf keeps its bookkeeping: in this process, not on the resources.

kopf's default stores, per object, the last spec it handled and each handler's progress in annotations.
That costs one more write to every resource for every change handled (and the write comes back as one more
watch event), which at hundreds of resources a second is most of the operator's load on the API server.

Nothing is lost by keeping them in memory. Reconciling is idempotent (server-side apply, a status derived
from what exists), so a new process that knows nothing treats every object as new and reconciles it once,
which is what resuming would do; a retry in progress starts again from its first attempt. Both stores are
bounded: an object forgotten is reconciled again at its next event, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import kopf

from ..api.common import GROUP
from ..bounded import BoundedMap

# kubectl's client-side apply keeps the whole last applied manifest here: kopf leaves it out of the essence.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class LastHandledInMemory(kopf.DiffBaseStorage):
    """The last spec handled per object (kopf's "diff base"), by object uid."""

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__()
        self._essences: BoundedMap[str, kopf.BodyEssence] = BoundedMap(capacity)

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        """kopf's essence of the object, built from the parts it keeps.

        kopf deep-copies the whole object (managedFields, the last-applied annotation, the status) to keep
        the spec, labels and annotations, on every event of every resource; here only those are copied.
        """
        if extra_fields:
            return super().build(body=body, extra_fields=extra_fields)
        raw = dict(body)
        essence: dict[str, Any] = {
            key: _copied(value)
            for key, value in raw.items()
            if key not in ("apiVersion", "kind", "metadata", "status")
        }
        meta = raw.get("metadata") or {}
        annotations: dict[str, str] = meta.get("annotations") or {}
        # kopf's rule: other kopf-based operators' bookkeeping is not part of an object's essence.
        ignored = [f"{prefix}/" for prefix in self._detect_marked_prefixes(annotations)]
        kept = {
            key: value
            for key, value in annotations.items()
            if key != LAST_APPLIED and not any(key.startswith(prefix) for prefix in ignored)
        }
        metadata = {
            stanza: values
            for stanza, values in (("labels", dict(meta.get("labels") or {})), ("annotations", kept))
            if values
        }
        if metadata:
            essence["metadata"] = metadata
        return cast(kopf.BodyEssence, essence)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return self._essences.get(body.metadata.uid or "")

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if body.metadata.uid:
            self._essences.put(body.metadata.uid, essence)


def _copied(value: Any) -> Any:
    """A copy of a JSON value: what `copy.deepcopy` does for it, without its bookkeeping."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


class ProgressInMemory(kopf.ProgressStorage):
    """Each handler's progress per object (attempts, delays), by object uid and handler id.

    Only the "touch" stays an annotation: after a delay kopf wakes an object up by changing it, which
    needs a real write to produce a watch event.
    """

    TOUCH_ANNOTATION = f"{GROUP}/touch"

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__()
        self._records: BoundedMap[tuple[str, str], kopf.ProgressRecord] = BoundedMap(capacity)

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        return self._records.get((body.metadata.uid or "", key))

    def store(
        self, *, key: kopf.HandlerId, record: kopf.ProgressRecord, body: kopf.Body, patch: kopf.Patch
    ) -> None:
        if body.metadata.uid:
            self._records.put((body.metadata.uid, key), record)

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        self._records.pop((body.metadata.uid or "", key))

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        if body.metadata.annotations.get(self.TOUCH_ANNOTATION) != value:
            patch.metadata.annotations[self.TOUCH_ANNOTATION] = value

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        # kopf's own clear deep-copies the whole essence to drop its keys; only the touch is dropped here,
        # so only the mappings on the way to it are copied.
        annotations = (essence.get("metadata") or {}).get("annotations") or {}
        if self.TOUCH_ANNOTATION not in annotations:
            return essence
        metadata = {**essence["metadata"], "annotations": dict(annotations)}
        cleared = cast(kopf.BodyEssence, {**essence, "metadata": metadata})
        self.remove_annotations(cleared, {self.TOUCH_ANNOTATION})
        self.remove_empty_stanzas(cleared)
        return cleared
