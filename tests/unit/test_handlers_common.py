import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
import pytest
from headwater_operator import kube
from headwater_operator.handlers.children import OwnedChildren
from headwater_operator.handlers.common import ensure, refresh_lock, worth_a_refresh


@pytest.mark.parametrize(
    ("status", "worth"),
    [
        (None, False),
        ({}, False),
        ({"phase": "Pending", "qosClass": "Burstable"}, False),
        ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}, True),
        ({"active": 1, "startTime": "2026-01-01T00:00:00Z"}, True),
        ({"lastScheduleTime": "2026-01-01T00:00:00Z"}, True),
    ],
)
def test_a_child_without_status_is_not_news(status: dict[str, object] | None, worth: bool) -> None:
    body = {"metadata": {"name": "x"}} | ({"status": status} if status is not None else {})
    assert worth_a_refresh(body) is worth


@pytest.mark.parametrize("kind", ["CronJob", "Deployment"])
def test_a_new_workload_is_news_even_without_status(kind: str) -> None:
    assert worth_a_refresh({"kind": kind, "metadata": {"name": "x"}, "status": {}})


def test_a_resource_refreshed_twice_at_once_shares_one_lock_while_it_is_held() -> None:
    async def scenario() -> None:
        lock = refresh_lock("exportjobs", "ns", "a")
        async with lock:
            assert refresh_lock("exportjobs", "ns", "a") is lock
            assert refresh_lock("exportjobs", "ns", "a").locked()
            assert not refresh_lock("exportjobs", "ns", "b").locked()
            assert not refresh_lock("connectors", "ns", "a").locked()

    asyncio.run(scenario())


def test_a_job_that_exists_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_request(manifest: object) -> dict[str, object]:
        raise AssertionError("an existing Job needs no request")

    monkeypatch.setattr(kube, "create", no_request)
    monkeypatch.setattr(kube, "apply", no_request)
    existing = {
        "kind": "Job",
        "metadata": {"name": "daily-export-1", "resourceVersion": "7"},
        "status": {"active": 1},
    }
    known = OwnedChildren(jobs=[existing], cronjobs=[], deployments=[], pods=[])
    built = {"kind": "Job", "metadata": {"name": "daily-export-1"}, "spec": {"template": {"changed": True}}}
    assert asyncio.run(ensure(built, known)) == existing


def owned_by(uid: str) -> dict[str, Any]:
    return {"ownerReferences": [{"apiVersion": "headwater.dev/v1alpha1", "kind": "ExportJob", "uid": uid}]}


def test_jobs_and_service_accounts_are_created_the_rest_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def recorder(verb: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def record(manifest: dict[str, Any]) -> dict[str, Any]:
            calls.append((verb, manifest["kind"]))
            return manifest

        return record

    monkeypatch.setattr(kube, "create", recorder("create"))
    monkeypatch.setattr(kube, "apply", recorder("apply"))
    known = OwnedChildren(jobs=[], cronjobs=[], deployments=[], pods=[])
    for kind in ("ServiceAccount", "Job", "CronJob"):
        asyncio.run(ensure({"kind": kind, "metadata": {"name": "daily-export-2", **owned_by("u-2")}}, known))
    assert calls == [("create", "ServiceAccount"), ("create", "Job"), ("apply", "CronJob")]


@pytest.mark.parametrize("kind", ["Job", "ServiceAccount"])
def test_a_child_left_by_a_deleted_namesake_is_waited_for(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    leftover = {"kind": kind, "metadata": {"name": "daily-export-1", **owned_by("deleted")}}

    async def create(manifest: object) -> dict[str, Any]:
        return leftover

    monkeypatch.setattr(kube, "create", create)
    known = OwnedChildren(jobs=[], cronjobs=[], deployments=[], pods=[])
    built = {"kind": kind, "metadata": {"name": "daily-export-1", **owned_by("recreated")}}
    with pytest.raises(kopf.TemporaryError, match=f"{kind} daily-export-1 .* still being deleted"):
        asyncio.run(ensure(built, known))
