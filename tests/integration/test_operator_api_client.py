"""The operator's API client (`headwater_operator.kube`) against a real API server."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import kubernetes
import pytest
from headwater_operator import kube

from tests.fixtures.cluster import Cluster

T = TypeVar("T")


@pytest.fixture
def connected(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """kube's connection settings from the test cluster's kubeconfig (client certificates)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=config)
    monkeypatch.setattr(kube, "configuration", lambda: config)


def run(call: Coroutine[Any, Any, T]) -> T:
    async def closing() -> T:
        try:
            return await call
        finally:
            await kube.close()

    return asyncio.run(closing())


def service_account(namespace: str, name: str, label: str = "a") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": {"test": label}},
        "automountServiceAccountToken": False,
    }


@pytest.mark.usefixtures("connected")
def test_creating_twice_returns_the_object_that_exists(namespace: str) -> None:
    first = run(kube.create(service_account(namespace, "worker")))
    again = run(kube.create(service_account(namespace, "worker", label="changed")))
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert again["metadata"]["labels"] == {"test": "a"}, "an existing object is returned as it is"


@pytest.mark.usefixtures("connected")
def test_applying_the_same_manifest_again_changes_nothing(namespace: str) -> None:
    manifest = service_account(namespace, "applied")
    first = run(kube.apply(manifest))
    assert run(kube.apply(manifest))["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = run(kube.apply(service_account(namespace, "applied", label="b")))
    assert changed["metadata"]["labels"] == {"test": "b"}
    managers = {entry["manager"] for entry in changed["metadata"]["managedFields"]}
    assert kube.FIELD_MANAGER in managers


@pytest.mark.usefixtures("connected")
def test_deleting_what_is_gone_is_not_an_error(namespace: str) -> None:
    run(kube.create(service_account(namespace, "doomed")))
    assert run(kube.delete_if_present("v1", "ServiceAccount", namespace, "doomed")) is True
    assert run(kube.delete_if_present("v1", "ServiceAccount", namespace, "never-was")) is False


@pytest.mark.usefixtures("connected")
def test_a_refusal_carries_the_api_servers_status_and_message(namespace: str) -> None:
    with pytest.raises(kube.ApiError) as refused:
        run(kube.create(service_account(f"{namespace}-missing", "worker")))
    assert refused.value.status == 404
    assert f'namespaces "{namespace}-missing" not found' in str(refused.value)
    assert "\n" not in str(refused.value)
