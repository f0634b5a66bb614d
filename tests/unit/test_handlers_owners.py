import dataclasses
from typing import Any

from headwater_operator.bounded import BoundedMap
from headwater_operator.handlers.children import ChildIndexes, OwnedChildren
from headwater_operator.handlers.owners import WrittenStatuses, newer, trimmed


def export_job(resource_version: str, status: dict[str, Any], uid: str = "u-1") -> dict[str, Any]:
    return {
        "apiVersion": "headwater.dev/v1alpha1",
        "kind": "ExportJob",
        "metadata": {
            "name": "daily",
            "namespace": "data",
            "uid": uid,
            "generation": 1,
            "resourceVersion": resource_version,
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"note": "big"},
        },
        "spec": {"tasks": [{"name": "t"}]},
        "status": status,
    }


def job(name: str, resource_version: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": name, "resourceVersion": resource_version},
        "status": status or {},
    }


def test_a_trimmed_owner_keeps_identity_spec_and_status_only() -> None:
    kept = trimmed(export_job("7", {"phase": "Pending"}))
    assert kept["metadata"] == {
        "name": "daily",
        "namespace": "data",
        "uid": "u-1",
        "generation": 1,
        "resourceVersion": "7",
    }
    assert kept["spec"] == {"tasks": [{"name": "t"}]}
    assert kept["status"] == {"phase": "Pending"}


def test_the_newer_copy_is_the_one_with_the_higher_resource_version() -> None:
    old, new = export_job("9", {}), export_job("10", {})
    assert newer(old, new) is new
    assert newer(new, old) is new
    assert newer(old, export_job("opaque", {})) is old, "incomparable versions keep the first"


def test_a_status_written_since_the_watch_delivered_the_owner_is_used() -> None:
    written = WrittenStatuses()
    watched = export_job("10", {"phase": "Pending", "reason": "Creating"})
    written.record(export_job("11", {"phase": "Pending", "reason": "Suspended"}))
    fresh = written.freshest(watched)
    assert fresh["status"]["reason"] == "Suspended"
    assert fresh["metadata"]["resourceVersion"] == "11"


def test_a_spec_changed_since_the_watched_copy_comes_with_its_generation() -> None:
    written = WrittenStatuses()
    watched = export_job("10", {"reason": "Suspended"})
    changed = export_job("12", {"reason": "Exporting"})
    changed["metadata"]["generation"] = 2
    changed["spec"] = {"tasks": [{"name": "new"}]}
    written.record(changed)
    fresh = written.freshest(watched)
    assert (fresh["metadata"]["generation"], fresh["spec"]) == (2, {"tasks": [{"name": "new"}]})


def test_a_watch_that_caught_up_wins_over_an_older_write() -> None:
    written = WrittenStatuses()
    written.record(export_job("11", {"reason": "Suspended"}))
    watched = export_job("12", {"reason": "Exported"})
    assert written.freshest(watched) is watched


def test_a_write_to_another_object_of_the_same_name_is_ignored() -> None:
    written = WrittenStatuses()
    written.record(export_job("11", {"reason": "Old"}, uid="deleted-one"))
    watched = export_job("5", {"reason": "New"}, uid="recreated")
    assert written.freshest(watched) is watched


def test_a_bounded_map_forgets_the_least_recently_written() -> None:
    entries: BoundedMap[str, int] = BoundedMap(2)
    entries.put("a", 1)
    entries.put("b", 2)
    entries.put("a", 3)
    entries.put("c", 4)
    assert (entries.get("a"), entries.get("b"), entries.get("c")) == (3, None, 4)
    entries.pop("a")
    assert entries.get("a") is None


def test_children_just_applied_count_until_the_watch_brings_newer_ones() -> None:
    nothing: dict[str, Any] = {field.name: [] for field in dataclasses.fields(OwnedChildren)}
    indexed = OwnedChildren(**{**nothing, "jobs": [job("a", "5", {"active": 1}), job("b", "3")]})
    updated = indexed.with_applied(
        [
            job("b", "4"),
            job("c", "6"),
            {"kind": "ServiceAccount", "metadata": {"name": "sa", "resourceVersion": "7"}},
            job("a", "2"),
        ]
    )
    versions = {j["metadata"]["name"]: j["metadata"]["resourceVersion"] for j in updated.jobs}
    assert versions == {"a": "5", "b": "4", "c": "6"}
    assert indexed.jobs[1]["metadata"]["resourceVersion"] == "3", "the index's own lists are not changed"


def test_children_left_by_a_deleted_namesake_are_not_the_new_owners() -> None:
    def child(name: str, refs: list[dict[str, str]]) -> dict[str, Any]:
        return {"metadata": {"name": name, "ownerReferences": refs}}

    ours = {"apiVersion": "headwater.dev/v1alpha1", "kind": "ExportJob", "uid": "new"}
    theirs = {**ours, "uid": "old"}
    by_cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "uid": "c-1"}
    key = ("data", "headwater.dev/exportjob", "daily")
    jobs = {
        key: [
            child("daily-export-1", [theirs]),
            child("daily-export-2", [ours]),
            child("run-1", [by_cronjob]),
        ]
    }
    empty: dict[Any, list[dict[str, Any]]] = {}
    indexes = ChildIndexes(jobs, empty, empty, empty, empty, empty)  # type: ignore[arg-type]
    names = [job["metadata"]["name"] for job in indexes.owned(*key, "new").jobs]
    assert names == ["daily-export-2", "run-1"]
