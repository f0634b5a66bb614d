from typing import Any

import kopf
import pytest
from headwater_operator.handlers.storage import LastHandledInMemory, ProgressInMemory


def body(uid: str, annotations: dict[str, str] | None = None) -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": "headwater.dev/v1alpha1",
        "kind": "ExportJob",
        "metadata": {"name": "x", "namespace": "ns", "uid": uid, "annotations": annotations or {}},
        "spec": {"a": 1},
    }
    return kopf.Body(raw)  # type: ignore[arg-type]


def test_the_last_handled_spec_is_remembered_per_object_without_writing_to_it() -> None:
    storage = LastHandledInMemory()
    first, second = body("u-1"), body("u-2")
    patch = kopf.Patch()
    essence = storage.build(body=first)
    storage.store(body=first, patch=patch, essence=essence)
    assert not patch, "nothing is written to the resource"
    assert storage.fetch(body=first) == essence
    assert storage.fetch(body=second) is None, "an unknown object is new to kopf: it is reconciled once"


def test_the_oldest_objects_are_forgotten_beyond_the_capacity() -> None:
    storage = LastHandledInMemory(capacity=1)
    first, second = body("u-1"), body("u-2")
    storage.store(body=first, patch=kopf.Patch(), essence=storage.build(body=first))
    storage.store(body=second, patch=kopf.Patch(), essence=storage.build(body=second))
    assert storage.fetch(body=first) is None
    assert storage.fetch(body=second) is not None


def test_handler_progress_lives_in_memory_until_purged() -> None:
    storage = ProgressInMemory()
    target = body("u-1")
    handler = kopf.HandlerId("reconcile")
    record: kopf.ProgressRecord = {"retries": 2, "success": False}
    patch = kopf.Patch()
    storage.store(key=handler, record=record, body=target, patch=patch)
    assert not patch
    assert storage.fetch(key=handler, body=target) == record
    assert storage.fetch(key=handler, body=body("u-2")) is None
    storage.purge(key=handler, body=target, patch=patch)
    assert storage.fetch(key=handler, body=target) is None
    assert not patch


def test_a_touch_writes_an_annotation_only_when_it_changes() -> None:
    storage = ProgressInMemory()
    patch = kopf.Patch()
    storage.touch(body=body("u-1"), patch=patch, value="now")
    assert patch == {"metadata": {"annotations": {ProgressInMemory.TOUCH_ANNOTATION: "now"}}}
    unchanged = kopf.Patch()
    storage.touch(body=body("u-1", {ProgressInMemory.TOUCH_ANNOTATION: "now"}), patch=unchanged, value="now")
    assert not unchanged


def test_the_touch_annotation_is_not_part_of_what_kopf_compares() -> None:
    storage = ProgressInMemory()
    essence = {"metadata": {"annotations": {ProgressInMemory.TOUCH_ANNOTATION: "now", "keep": "me"}}}
    assert storage.clear(essence=essence) == {"metadata": {"annotations": {"keep": "me"}}}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        {"metadata": {"name": "x", "uid": "u"}, "spec": {"a": [1, {"b": 2}]}},
        {
            "apiVersion": "headwater.dev/v1alpha1",
            "kind": "ExportJob",
            "metadata": {
                "name": "x",
                "uid": "u",
                "labels": {"team": "data"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "note": "kept",
                },
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": {"tasks": [{"name": "t"}]},
            "status": {"phase": "Pending"},
        },
        {
            "metadata": {
                "name": "x",
                "labels": {},
                "annotations": {
                    "kopf.zalando.org/last-handled-configuration": "{}",
                    "other.example/kopf-managed": "yes",
                    "other.example/reconcile": "{}",
                },
            },
            "spec": {},
        },
    ],
)
def test_the_essence_is_the_one_kopf_builds(raw: dict[str, Any]) -> None:
    expected = kopf.AnnotationsDiffBaseStorage().build(body=kopf.Body(raw))  # type: ignore[arg-type]
    built = LastHandledInMemory().build(body=kopf.Body(raw))  # type: ignore[arg-type]
    assert built == expected
    built["spec"]["changed"] = True
    assert "changed" not in raw["spec"], "the essence is a copy"
