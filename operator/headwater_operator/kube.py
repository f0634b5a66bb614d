"""The operator's Kubernetes API access: one configured client, plain JSON over REST.

Requests go through the `kubernetes` client's configured connection pool (its kubeconfig or in-cluster
authentication, TLS and proxies), but bodies are plain dicts in and out: the generated API classes and the
dynamic client would turn each response into model objects only for the operator to turn them back into
dicts, which at hundreds of reconciles a second is a good part of the operator's CPU.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "headwater-operator"
# The threads that make blocking API calls: kopf's synchronous handlers and the status refreshes of child
# events share them. The client keeps as many connections open, so that no thread has to open (and
# TLS-handshake) a connection of its own for every request when all of them are busy.
HANDLER_THREADS = 16
EXECUTOR = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="headwater-api")

# Every kind of child the operator writes, by (apiVersion, kind): its plural. All are namespaced.
PLURALS = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    ("apps/v1", "Deployment"): "deployments",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
}

Json = dict[str, Any]


class ApiError(ApiException):
    """A request the API server refused, told in one line: its status, reason and the server's message
    (not the response headers the client's own exception prints)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status=status, reason=reason)
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"

    @classmethod
    def of(cls, status: int, reason: str, body: bytes) -> ApiError:
        """From the response: the message of the Status object the API server sends with a refusal."""
        text = body.decode(errors="replace")
        try:
            message = str(json.loads(text).get("message") or text)
        except (ValueError, AttributeError):
            message = text
        return cls(status, reason, message[:1000])


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


def collection_path(api_version: str, plural: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None
    return f"{collection_path(api_version, plural, namespace)}/{name}"


def request(
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    query: Mapping[str, str] | None = None,
) -> Json:
    """One API request; the response body as a dict. Raises `ApiError` (with its status) otherwise."""
    client = api_client()
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, _, _ = client.param_serialize(
        method,
        path,
        query_params=list((query or {}).items()),
        header_params=headers,
        auth_settings=["BearerToken"],
    )
    # The body goes to the REST layer as it is: it serializes it once, as JSON (which is YAML too).
    response = client.call_api(method, url, headers, body=dict(body) if body is not None else None)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise ApiError.of(response.status, response.reason, data)
    return dict(json.loads(data))


def apply(manifest: Mapping[str, Any]) -> Json:
    """Create or update a child by server-side apply: applying the same manifest twice changes nothing."""
    metadata = manifest["metadata"]
    return request(
        "PATCH",
        object_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]),
        body=manifest,
        content_type="application/apply-patch+yaml",
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
    )


def create(manifest: Mapping[str, Any]) -> Json:
    """Create a child; when one of that name exists already, return it as it is."""
    metadata = manifest["metadata"]
    path = object_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"])
    try:
        return request("POST", path.rsplit("/", 1)[0], body=manifest, query={"fieldManager": FIELD_MANAGER})
    except ApiError as error:
        if error.status != 409:
            raise
    return request("GET", path)


def delete_if_present(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete a child with background propagation; False when it was already gone."""
    try:
        request(
            "DELETE",
            object_path(api_version, kind, namespace, name),
            body={"propagationPolicy": "Background"},
        )
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def patch_status(
    group: str, version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> Json:
    """Merge-patch `.status` through the status subresource (the operator never writes `spec`); returns
    the object as stored."""
    return request(
        "PATCH",
        f"{collection_path(f'{group}/{version}', plural, namespace)}/{name}/status",
        body={"status": dict(status)},
        content_type="application/merge-patch+json",
    )
