"""The operator's Kubernetes API access: plain JSON over one asynchronous HTTP session.

The connection settings (server, TLS, client certificate, token, proxy) come from the `kubernetes`
package's configuration loading, in a pod the ServiceAccount's and elsewhere the current kubeconfig
context's. The requests go through aiohttp on kopf's event loop: a handler awaits its requests instead of
blocking a thread for them, and bodies are dicts in and out, never the generated client's model objects.
At hundreds of reconciles a second, the thread-pool round trips and the synchronous client's per-request
work were most of what the operator itself spent.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kubernetes
from kubernetes.client import Configuration
from kubernetes.client.rest import should_bypass_proxies

FIELD_MANAGER = "headwater-operator"
# Requests in flight at once; more wait for a free connection, for as long as it takes (at start-up every
# resource is reconciled at once). Once connected, a request that hears nothing for this long fails.
CONNECTIONS = 32
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 30

# Every kind of child the operator writes, by (apiVersion, kind): its plural. All are namespaced.
PLURALS = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "ConfigMap"): "configmaps",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    ("apps/v1", "Deployment"): "deployments",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
}

Json = dict[str, Any]


class ApiError(Exception):
    """A request the API server refused, told in one line: its status, reason and the server's message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status, reason, message)
        self.status = status
        self.reason = reason
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
def configuration() -> Configuration:
    """In a pod the ServiceAccount's token; elsewhere the current kubeconfig context."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return Configuration.get_default_copy()


def ssl_context(config: Configuration) -> ssl.SSLContext | bool:
    if not config.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=config.ssl_ca_cert)
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


@dataclass
class Connection:
    """One session per event loop: aiohttp's sessions and connections belong to the loop that made them."""

    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession
    config: Configuration
    # The server's URL, which may have a path of its own (an API proxy's), without the trailing slash.
    server: str
    proxy: str | None

    @classmethod
    def open(cls) -> Connection:
        config = configuration()
        bypassed = should_bypass_proxies(config.host, config.no_proxy or "")
        proxy = config.proxy if config.proxy and not bypassed else None
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context(config), limit=CONNECTIONS),
            # The API server authenticates every request on its own and sets no cookies.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS
            ),
            headers={"Accept": "application/json", "User-Agent": FIELD_MANAGER},
        )
        return cls(asyncio.get_running_loop(), session, config, config.host.rstrip("/"), proxy)

    def headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Content-Type": content_type} if content_type else {}
        # Asked at every request: a token that expires (in a pod, or from an exec plugin) is refreshed here.
        token = self.config.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        return headers


_connection: Connection | None = None


def connection() -> Connection:
    global _connection
    if _connection is None or _connection.loop is not asyncio.get_running_loop():
        _connection = Connection.open()
    return _connection


async def close() -> None:
    """Close the session of the running loop (at the operator's shutdown)."""
    global _connection
    if _connection is not None and _connection.loop is asyncio.get_running_loop():
        await _connection.session.close()
        _connection = None


async def request(
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    query: Mapping[str, str] | None = None,
) -> Json:
    """One API request; the response body as a dict. Raises `ApiError` (with its status) otherwise."""
    conn = connection()
    async with conn.session.request(
        method,
        conn.server + path,
        params=dict(query or {}),
        # JSON is YAML too: server-side apply takes the same serialization.
        data=json.dumps(body) if body is not None else None,
        headers=conn.headers(content_type if body is not None else None),
        proxy=conn.proxy,
        server_hostname=conn.config.tls_server_name or None,
    ) as response:
        data = await response.read()
        if not 200 <= response.status <= 299:
            raise ApiError.of(response.status, response.reason or "", data)
    return dict(json.loads(data))


def collection_path(api_version: str, plural: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None
    return f"{collection_path(api_version, plural, namespace)}/{name}"


async def apply(manifest: Mapping[str, Any]) -> Json:
    """Create or update a child by server-side apply: applying the same manifest twice changes nothing."""
    metadata = manifest["metadata"]
    return await request(
        "PATCH",
        object_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]),
        body=manifest,
        content_type="application/apply-patch+yaml",
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
    )


async def create(manifest: Mapping[str, Any]) -> Json:
    """Create a child; when one of that name exists already, return it as it is."""
    metadata = manifest["metadata"]
    path = object_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"])
    try:
        return await request(
            "POST", path.rsplit("/", 1)[0], body=manifest, query={"fieldManager": FIELD_MANAGER}
        )
    except ApiError as error:
        if error.status != 409:
            raise
    return await request("GET", path)


async def delete_if_present(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete a child with background propagation; False when it was already gone."""
    try:
        await request(
            "DELETE",
            object_path(api_version, kind, namespace, name),
            body={"propagationPolicy": "Background"},
        )
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


async def patch_status(
    group: str, version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> Json:
    """Merge-patch `.status` through the status subresource (the operator never writes `spec`); returns
    the object as stored."""
    return await request(
        "PATCH",
        f"{collection_path(f'{group}/{version}', plural, namespace)}/{name}/status",
        body={"status": dict(status)},
        content_type="application/merge-patch+json",
    )
