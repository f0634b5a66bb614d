"""The operator's Kubernetes API access: one configured client, server-side apply, status patches."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kubernetes
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

FIELD_MANAGER = "headwater-operator"
# The threads that make blocking API calls: kopf's synchronous handlers and the status refreshes of child
# events share them. The client keeps as many connections open, so that no thread has to open (and
# TLS-handshake) a connection of its own for every request when all of them are busy.
HANDLER_THREADS = 16
EXECUTOR = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="headwater-api")


@functools.cache
def api_client() -> ApiClient:
    """In a pod the ServiceAccount's token; elsewhere the current kubeconfig context."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = HANDLER_THREADS
    return ApiClient(configuration)


@functools.cache
def dynamic() -> DynamicClient:
    return DynamicClient(api_client())


def core() -> CoreV1Api:
    return CoreV1Api(api_client())


def custom() -> CustomObjectsApi:
    return CustomObjectsApi(api_client())


def apply(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Create or update a child by server-side apply: applying the same manifest twice changes nothing."""
    resource = dynamic().resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    metadata = manifest["metadata"]
    result = dynamic().server_side_apply(
        resource,
        body=dict(manifest),
        name=metadata["name"],
        namespace=metadata.get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    return dict(result.to_dict())


def create(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Create a child; when one of that name exists already, return it as it is."""
    resource = dynamic().resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    metadata = manifest["metadata"]
    try:
        result = dynamic().create(
            resource, body=dict(manifest), namespace=metadata.get("namespace"), field_manager=FIELD_MANAGER
        )
    except ApiException as error:
        if error.status != 409:
            raise
        result = dynamic().get(resource, name=metadata["name"], namespace=metadata.get("namespace"))
    return dict(result.to_dict())


def delete_if_present(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete a child with background propagation; False when it was already gone."""
    resource = dynamic().resources.get(api_version=api_version, kind=kind)
    try:
        dynamic().delete(resource, name=name, namespace=namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def patch_status(
    group: str, version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch `.status` through the status subresource (the operator never writes `spec`); returns
    the object as stored."""
    return cast(
        dict[str, Any],
        custom().patch_namespaced_custom_object_status(
            group, version, namespace, plural, name, {"status": dict(status)}
        ),
    )
